#include "sluice/policy/import_record.hpp"

#include <algorithm>

namespace sluice::policy {
namespace {

using nlohmann::json;

constexpr std::pair<ImportState, std::string_view> kStates[] = {
    {ImportState::failed, "failed"},
    {ImportState::quarantined, "quarantined"},
    {ImportState::scanning, "scanning"},
    {ImportState::held, "held"},
    {ImportState::pending_approval, "pending_approval"},
    {ImportState::approved, "approved"},
    {ImportState::released, "released"},
    {ImportState::rejected, "rejected"},
};

json decision_json(const Decision& d) {
    return {{"user", d.user}, {"uid", d.uid}, {"at", d.at}, {"reason", d.reason}};
}
Decision decision_from(const json& j) {
    return Decision{j.at("user").get<std::string>(), j.at("uid").get<std::int64_t>(), j.at("at").get<std::string>(),
                    j.at("reason").get<std::string>()};
}

json entries_json(const std::vector<TreeEntry>& v) {
    json a = json::array();
    for (const auto& e : v) a.push_back({{"path", e.path}, {"size", e.size}, {"sha256", e.sha256}});
    return a;
}
std::vector<TreeEntry> entries_from(const json& a) {
    std::vector<TreeEntry> v;
    for (const auto& e : a) v.push_back({e.at("path").get<std::string>(), e.at("size").get<std::uint64_t>(), e.at("sha256").get<std::string>()});
    return v;
}

Verdict verdict_from(std::string_view s) {
    if (s == "clean") return Verdict::clean;
    if (s == "found") return Verdict::found;
    if (s == "error") return Verdict::error;
    throw std::invalid_argument("unknown verdict \"" + std::string(s) + "\"");
}

}  // namespace

std::string_view to_string(ImportState s) {
    for (auto [state, name] : kStates) {
        if (state == s) return name;
    }
    return "?";
}

std::optional<ImportState> import_state_from(std::string_view text) {
    for (auto [state, name] : kStates) {
        if (name == text) return state;
    }
    return std::nullopt;
}

bool is_final(ImportState s) { return s == ImportState::released || s == ImportState::rejected; }

void ImportRecord::transition(ImportState to, const Actor& actor, const std::string& at, std::string note) {
    history.push_back({std::string(to_string(state)), std::string(to_string(to)), at, actor.user, std::move(note)});
    state = to;
}

json to_json(const ImportRecord& r) {
    json j;
    j["schema"] = "sluice.import/1";
    j["bundle"] = r.bundle_id;
    j["channel"] = r.channel;
    j["version"] = r.version;
    j["release"] = r.release ? json::parse(bundle::format_release(*r.release)) : json(nullptr);
    j["state"] = to_string(r.state);
    j["state_reason"] = r.state_reason;
    j["received_at"] = r.received_at;
    j["payload_bytes"] = r.payload_bytes;
    j["payload_files"] = r.payload_files;
    j["signers"] = r.signers;
    json rules = json::array();
    for (const auto& x : r.rules) rules.push_back({{"rule", x.rule}, {"passed", x.passed}, {"detail", x.detail}});
    j["rules"] = rules;
    json scans = json::array();
    for (const auto& s : r.scans) {
        json findings = json::array();
        for (const auto& f : s.findings) findings.push_back({{"path", f.path}, {"signature", f.signature}});
        scans.push_back({{"scanner", s.scanner}, {"verdict", to_string(s.verdict)}, {"summary", s.summary},
                         {"findings", findings}, {"output", s.output}, {"attempts", s.attempts},
                         {"took_ms", s.took.count()}, {"files_scanned", s.files_scanned}});
    }
    j["scans"] = scans;
    j["diff_against"] = r.diff_against ? json(*r.diff_against) : json(nullptr);
    if (r.diff) {
        json changed = json::array();
        for (const auto& c : r.diff->changed) changed.push_back({{"path", c.path}, {"old_size", c.old_size}, {"new_size", c.new_size}});
        j["diff"] = {{"added", entries_json(r.diff->added)}, {"removed", entries_json(r.diff->removed)},
                     {"changed", changed}, {"unchanged", r.diff->unchanged}, {"omitted", r.diff->omitted}};
    } else {
        j["diff"] = nullptr;
    }
    j["approval_mode"] = r.approval_mode;
    j["approvals_required"] = r.approvals_required;
    json approvals = json::array();
    for (const auto& a : r.approvals) approvals.push_back(decision_json(a));
    j["approvals"] = approvals;
    j["rejection"] = r.rejection ? decision_json(*r.rejection) : json(nullptr);
    j["released_at"] = r.released_at ? json(*r.released_at) : json(nullptr);
    j["release_path"] = r.release_path ? json(*r.release_path) : json(nullptr);
    json hooks = json::array();
    for (const auto& h : r.hooks) hooks.push_back({{"name", h.name}, {"ok", h.ok}, {"result", h.result}, {"output", h.output}, {"at", h.at}});
    j["hooks"] = hooks;
    json history = json::array();
    for (const auto& t : r.history)
        history.push_back({{"from", t.from}, {"to", t.to}, {"at", t.at}, {"actor", t.actor}, {"note", t.note}});
    j["history"] = history;
    j["attempts"] = r.attempts;
    return j;
}

Result<ImportRecord> record_from_json(const json& j) {
    try {
        if (j.at("schema").get<std::string>() != "sluice.import/1") return fail("unknown schema");
        ImportRecord r;
        r.bundle_id = j.at("bundle").get<std::string>();
        r.channel = j.at("channel").get<std::string>();
        r.version = j.at("version").get<std::string>();
        if (!j.at("release").is_null()) {
            auto rel = bundle::parse_release(j.at("release").dump());
            if (!rel) return rel.error().within("release");
            r.release = *rel;
        }
        auto state = import_state_from(j.at("state").get<std::string>());
        if (!state) return fail("unknown state \"" + j.at("state").get<std::string>() + "\"");
        r.state = *state;
        r.state_reason = j.at("state_reason").get<std::string>();
        r.received_at = j.at("received_at").get<std::string>();
        r.payload_bytes = j.at("payload_bytes").get<std::uint64_t>();
        r.payload_files = j.at("payload_files").get<std::uint64_t>();
        r.signers = j.at("signers").get<std::vector<std::string>>();
        for (const auto& x : j.at("rules"))
            r.rules.push_back({x.at("rule").get<std::string>(), x.at("passed").get<bool>(), x.at("detail").get<std::string>()});
        for (const auto& s : j.at("scans")) {
            ScanResult sr;
            sr.scanner = s.at("scanner").get<std::string>();
            sr.verdict = verdict_from(s.at("verdict").get<std::string>());
            sr.summary = s.at("summary").get<std::string>();
            for (const auto& f : s.at("findings")) sr.findings.push_back({f.at("path").get<std::string>(), f.at("signature").get<std::string>()});
            sr.output = s.at("output").get<std::string>();
            sr.attempts = s.at("attempts").get<unsigned>();
            sr.took = std::chrono::milliseconds(s.at("took_ms").get<std::int64_t>());
            sr.files_scanned = s.at("files_scanned").get<std::uint64_t>();
            r.scans.push_back(std::move(sr));
        }
        if (!j.at("diff_against").is_null()) r.diff_against = j.at("diff_against").get<std::string>();
        if (const auto& d = j.at("diff"); !d.is_null()) {
            TreeDiff diff;
            diff.added = entries_from(d.at("added"));
            diff.removed = entries_from(d.at("removed"));
            for (const auto& c : d.at("changed"))
                diff.changed.push_back({c.at("path").get<std::string>(), c.at("old_size").get<std::uint64_t>(), c.at("new_size").get<std::uint64_t>()});
            diff.unchanged = d.at("unchanged").get<std::uint64_t>();
            diff.omitted = d.value("omitted", std::uint64_t{0});
            r.diff = std::move(diff);
        }
        r.approval_mode = j.at("approval_mode").get<std::string>();
        r.approvals_required = j.at("approvals_required").get<unsigned>();
        for (const auto& a : j.at("approvals")) r.approvals.push_back(decision_from(a));
        if (!j.at("rejection").is_null()) r.rejection = decision_from(j.at("rejection"));
        if (!j.at("released_at").is_null()) r.released_at = j.at("released_at").get<std::string>();
        if (!j.at("release_path").is_null()) r.release_path = j.at("release_path").get<std::string>();
        for (const auto& h : j.at("hooks"))
            r.hooks.push_back({h.at("name").get<std::string>(), h.at("ok").get<bool>(), h.at("result").get<std::string>(),
                               h.at("output").get<std::string>(), h.at("at").get<std::string>()});
        for (const auto& t : j.at("history"))
            r.history.push_back({t.at("from").get<std::string>(), t.at("to").get<std::string>(), t.at("at").get<std::string>(),
                                 t.at("actor").get<std::string>(), t.at("note").get<std::string>()});
        r.attempts = j.at("attempts").get<unsigned>();
        return r;
    } catch (const std::exception& e) {
        return fail(std::string("damaged import record: ") + e.what());
    }
}

Result<bool> approve(ImportRecord& r, const Actor& officer, const std::string& reason, const std::string& at) {
    if (r.state != ImportState::pending_approval) {
        return fail("bundle " + r.bundle_id.substr(0, 12) + " is " + std::string(to_string(r.state)) +
                    ", not pending approval; nothing to approve");
    }
    if (std::all_of(reason.begin(), reason.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; })) {
        return fail("an approval needs a reason: --reason \"why this may go to production\"");
    }
    for (const auto& a : r.approvals) {
        if (a.uid == officer.uid) {
            return fail(officer.user + " already approved bundle " + r.bundle_id.substr(0, 12) + " at " + a.at +
                        "; a second approval must come from another officer (" +
                        std::to_string(r.approvals.size()) + " of " + std::to_string(r.approvals_required) + " so far)");
        }
    }
    r.approvals.push_back({officer.user, officer.uid, at, reason});
    if (r.approvals.size() >= r.approvals_required) {
        r.transition(ImportState::approved, officer, at, reason);
        return true;
    }
    r.history.push_back({"pending_approval", "pending_approval", at, officer.user,
                         "approval " + std::to_string(r.approvals.size()) + " of " + std::to_string(r.approvals_required) + ": " + reason});
    return false;
}

Result<void> reject(ImportRecord& r, const Actor& officer, const std::string& reason, const std::string& at) {
    // `approved` is included: a bundle whose release keeps failing (its quarantine
    // copy lost, say) must have a way out other than being retried forever.
    if (r.state != ImportState::pending_approval && r.state != ImportState::held && r.state != ImportState::failed &&
        r.state != ImportState::approved) {
        return fail("bundle " + r.bundle_id.substr(0, 12) + " is " + std::string(to_string(r.state)) +
                    "; only a pending, held, failed or approved (not yet released) bundle can be rejected");
    }
    if (std::all_of(reason.begin(), reason.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; })) {
        return fail("a rejection needs a reason: --reason \"why this must not go to production\"");
    }
    r.rejection = Decision{officer.user, officer.uid, at, reason};
    r.state_reason = "rejected by " + officer.user + ": " + reason;
    r.transition(ImportState::rejected, officer, at, reason);
    return {};
}

}  // namespace sluice::policy
