#include "sluice/audit/report.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <vector>

#include "sluice/audit/export.hpp"

namespace sluice::audit {

using nlohmann::json;

namespace {

constexpr std::string_view kNotRecorded = "not recorded";

json details_of(const Record& r) {
    json j = json::parse(r.details, nullptr, false);
    return j.is_object() ? j : json::object();
}

/// The member as a non-empty string, else null (absent, empty, or another type).
json text(const json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) return nullptr;
    return *it;
}

/// The member as a non-negative count: a number, or the size of an array.
json count(const json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end()) return nullptr;
    if (it->is_number_unsigned() || (it->is_number_integer() && it->get<std::int64_t>() >= 0)) return *it;
    if (it->is_array()) return it->size();
    return nullptr;
}

/// A list of names (strings), or null when the member is not one.
json names(const json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_array()) return nullptr;
    json out = json::array();
    for (const auto& v : *it) {
        if (!v.is_string()) return nullptr;
        out.push_back(v);
    }
    return out;
}

json or_null(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

/// Safe to paste into a POSIX shell: kept as is when made of harmless
/// characters (channel and version names are), else single-quoted.
std::string shell_word(const std::string& word) {
    const bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("._+-/:@,").find(c) != std::string_view::npos;
    });
    if (plain && word.front() != '-') return word;
    std::string out = "'";
    for (char c : word) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

/// The full id `bundle` names in `trace`: itself when a record has it, else the
/// one id that starts with it; empty when none or several do.
std::string resolve_bundle(std::string_view bundle, std::span<const Record> trace) {
    std::string found;
    for (const auto& r : trace) {
        if (r.bundle == bundle) return r.bundle;
    }
    for (const auto& r : trace) {
        if (bundle.size() >= 6 && r.bundle.size() > bundle.size() && r.bundle.compare(0, bundle.size(), bundle) == 0) {
            if (!found.empty() && found != r.bundle) return {};
            found = r.bundle;
        }
    }
    return found;
}

struct StateChange {
    std::string_view event;
    std::string_view state;
};

/// What each event says about where the bundle is; events not listed change nothing.
constexpr StateChange kStates[] = {
    {"bundle_submitted", "submitted"},
    {"bundle_queued", "queued"},
    {"push_refused", "refused"},
    {"bundle_sent", "sent"},
    {"transfer_started", "receiving"},
    {"transfer_incomplete", "incomplete"},
    {"bundle_received", "received"},
    {"bundle_refused", "refused"},
    {"bundle_quarantined", "quarantined"},
    {"bundle_held", "held"},
    {"approval_pending", "pending_approval"},
    {"bundle_approved", "approved"},
    {"bundle_rejected", "rejected"},
    {"release_failed", "release_failed"},
    {"bundle_released", "released"},
};

std::optional<std::string_view> state_of(std::string_view event) {
    for (const auto& s : kStates) {
        if (s.event == event) return s.state;
    }
    return std::nullopt;
}

}  // namespace

json build_report(std::string_view bundle, std::span<const Record> trace) {
    const std::string id = resolve_bundle(bundle, trace);
    std::vector<const Record*> own;
    std::vector<const Record*> context;
    for (const auto& r : trace) {
        if (!id.empty() && r.bundle == id) own.push_back(&r);
        else context.push_back(&r);
    }

    json report = json::object();
    report["bundle"] = id.empty() ? std::string(bundle) : id;
    json warnings = json::array();
    json missing = json::array();
    if (id.empty() && !trace.empty()) warnings.push_back("no record names bundle " + std::string(bundle) + " exactly or as the prefix of one id");

    // Identity: channel column, version from the first event that carries one.
    std::string channel;
    std::string version;
    json sender_release = nullptr, receiver_release = nullptr;
    json sender_signers = nullptr, receiver_signers = nullptr;
    for (const Record* r : own) {
        const json d = details_of(*r);
        if (channel.empty()) channel = r->channel;
        if (version.empty() && text(d, "version").is_string() &&
            (r->event == "bundle_submitted" || r->event == "bundle_quarantined" || r->event == "bundle_received" ||
             r->event == "transfer_started" || r->event == "bundle_released")) {
            version = d["version"].get<std::string>();
        }
        if (r->event == "bundle_submitted") {
            if (d.contains("release") && d["release"].is_object()) sender_release = d["release"];
            if (sender_signers.is_null()) sender_signers = names(d, "signers");
        } else if (r->event == "bundle_verified") {
            if (sender_signers.is_null()) sender_signers = names(d, "signers");
        } else if (r->event == "bundle_quarantined") {
            if (d.contains("release") && d["release"].is_object()) receiver_release = d["release"];
            if (d.contains("signers")) receiver_signers = names(d, "signers");
        } else if ((r->event == "approval_pending" || r->event == "bundle_approved") && d.contains("signers")) {
            // The signers the receiver verified against the channel's keys.
            receiver_signers = names(d, "signers");
        }
    }
    report["channel"] = or_null(channel);
    report["version"] = or_null(version);
    if (!sender_release.is_null() && !receiver_release.is_null() && sender_release != receiver_release) {
        warnings.push_back(
            "release.json as the sender recorded it (bundle_submitted) differs from what the receiver recorded "
            "(bundle_quarantined); the receiver's is shown");
    }
    const json release = !receiver_release.is_null() ? receiver_release : sender_release;
    if (release.is_null()) {
        missing.push_back("release.json: neither the sender's bundle_submitted nor the receiver's bundle_quarantined is in the log");
    }
    report["signed_rollback"] =
        release.is_object() && release.contains("rollback") && release["rollback"].is_boolean() ? release["rollback"] : json(nullptr);

    // State: the last event that moved the bundle on.
    report["state"] = nullptr;
    for (const Record* r : own) {
        if (auto s = state_of(r->event)) report["state"] = {{"name", *s}, {"event", r->event}, {"time", r->time}};
    }
    report["events"] = own.size();
    json sides = json::array();
    for (const Record* r : own) {
        if (!r->side.empty() && std::find(sides.begin(), sides.end(), r->side) == sides.end()) sides.push_back(r->side);
    }
    report["sides"] = sides;

    // 1. What changed.
    json diff = nullptr;
    json approval_import = {{"mode", nullptr}, {"approvals_required", nullptr}, {"approvals", json::array()}, {"decision", nullptr}};
    for (const Record* r : own) {
        if (r->event != "approval_pending") continue;
        const json d = details_of(*r);
        const json& dd = d.contains("diff") ? d["diff"] : json(nullptr);
        diff = {{"against", text(d, "diff_against")},
                {"added", count(dd, "added")},
                {"removed", count(dd, "removed")},
                {"changed", count(dd, "changed")}};
        approval_import["mode"] = text(d, "mode");
        approval_import["approvals_required"] = count(d, "approvals_required");
    }
    report["what_changed"] = {{"changes", text(release, "changes")},
                              {"version", or_null(version)},
                              {"previous_version", text(release, "previous_version")},
                              {"diff", diff}};
    // 2. Why.
    report["why"] = text(release, "reason");
    report["created"] = {{"by", text(release, "created_by")}, {"at", text(release, "created_at")}};

    // 3. Who approved: upstream (release.json, signers) and at import (officers, or automatic).
    for (const Record* r : own) {
        const json d = details_of(*r);
        if (r->event == "approval_recorded") {
            json uid = d.contains("uid") && (d["uid"].is_number() || d["uid"].is_string()) ? d["uid"] : json(nullptr);
            approval_import["approvals"].push_back(
                {{"officer", or_null(r->actor)}, {"uid", uid}, {"time", or_null(r->time)}, {"reason", text(d, "reason")}});
            if (approval_import["approvals_required"].is_null()) approval_import["approvals_required"] = count(d, "approvals_required");
        } else if (r->event == "bundle_approved") {
            if (r->actor != "system") {
                // The officer whose approval completed the count: an approval like the others.
                json uid = d.contains("uid") && (d["uid"].is_number() || d["uid"].is_string()) ? d["uid"] : json(nullptr);
                approval_import["approvals"].push_back(
                    {{"officer", or_null(r->actor)}, {"uid", uid}, {"time", or_null(r->time)}, {"reason", text(d, "reason")}});
            }
            approval_import["decision"] = {{"by", or_null(r->actor)},
                                           {"time", or_null(r->time)},
                                           {"reason", text(d, "reason")},
                                           {"automatic", r->actor == "system"}};
        }
    }
    report["who_approved"] = {
        {"upstream", {{"approved_by", text(release, "approved_by")}, {"signers", sender_signers}, {"receiver_signers", receiver_signers}}},
        {"import", approval_import}};

    // Decisions, scans, rules, release, hooks.
    json scans = json::array(), rules = json::array(), holds = json::array(), failures = json::array();
    json refusals = json::array(), hooks = json::array(), hops = json::array();
    json released = nullptr, rejection = nullptr;
    for (const Record* r : own) {
        const json d = details_of(*r);
        const json time = or_null(r->time);
        if (r->event == "scan_result") {
            scans.push_back({{"time", time}, {"scanner", text(d, "scanner")}, {"outcome", or_null(r->outcome)}, {"summary", text(d, "summary")}});
        } else if (r->event == "rule_result") {
            rules.push_back({{"time", time}, {"rule", text(d, "rule")}, {"outcome", or_null(r->outcome)}, {"detail", text(d, "detail")}});
        } else if (r->event == "bundle_held") {
            holds.push_back({{"time", time}, {"reason", text(d, "reason")}});
        } else if (r->event == "bundle_released") {
            released = {{"time", time}, {"actor", or_null(r->actor)}, {"version", text(d, "version")},
                        {"path", text(d, "path")}, {"previous", text(d, "previous")}};
        } else if (r->event == "release_failed") {
            failures.push_back({{"time", time}, {"error", text(d, "error")}});
        } else if (r->event == "bundle_rejected") {
            rejection = {{"time", time}, {"by", or_null(r->actor)}, {"reason", text(d, "reason")}};
        } else if (r->event == "push_refused" || r->event == "bundle_refused" || r->event == "transfer_incomplete") {
            json why = text(d, "error");
            if (why.is_null()) why = text(d, "why");
            refusals.push_back({{"time", time}, {"side", or_null(r->side)}, {"event", r->event}, {"error", why}});
        } else if (r->event == "post_release_hook" || r->event == "post_release_hook_failed") {
            hooks.push_back({{"time", time}, {"hook", text(d, "hook")}, {"ok", r->event == "post_release_hook"},
                             {"result", d.contains("result") && !d["result"].is_null()
                                            ? (d["result"].is_string() ? d["result"] : json(d["result"].dump()))
                                            : json(nullptr)}});
        }
        hops.push_back({{"seq", r->seq}, {"time", time}, {"side", or_null(r->side)}, {"host", or_null(r->host)},
                        {"event", r->event}, {"actor", or_null(r->actor)}, {"outcome", or_null(r->outcome)},
                        {"upstream", r->upstream}});
    }

    // Rollbacks of the channel from or to this version (or naming this bundle).
    json channel_rollbacks = json::array();
    json rolled_back_from = json::array();
    std::vector<std::string> evidence;
    const json rollback_to = text(release, "rollback_to");
    auto same_channel = [&](const Record& r) { return !channel.empty() && r.channel == channel; };
    for (const auto& r : trace) {
        if (r.event != "channel_rolled_back" || !same_channel(r)) continue;
        const json d = details_of(r);
        const json from = text(d, "from"), to = text(d, "to");
        const bool involves = r.bundle == id || (!version.empty() && (from == version || to == version));
        if (!involves) continue;
        channel_rollbacks.push_back({{"time", or_null(r.time)}, {"actor", or_null(r.actor)}, {"from", from}, {"to", to}, {"reason", text(d, "reason")}});
        if (!version.empty() && from == version) {
            rolled_back_from.push_back({{"time", or_null(r.time)}, {"actor", or_null(r.actor)}, {"to", to}, {"reason", text(d, "reason")}});
        }
    }
    if (rollback_to.is_string()) {
        const std::string target = rollback_to.get<std::string>();
        if (released.is_object() && released["previous"] == rollback_to) {
            evidence.push_back("it was the channel's current release when this bundle was released" +
                               (released["time"].is_string() ? " (" + released["time"].get<std::string>() + ")" : std::string()));
        }
        for (const Record* r : context) {
            if (r->event != "bundle_released" || !same_channel(*r)) continue;
            if (text(details_of(*r), "version") == rollback_to) {
                evidence.push_back("released " + r->time + " (bundle " + r->bundle.substr(0, 12) + ")");
            }
        }
        for (const auto& r : trace) {
            if (r.event != "channel_rolled_back" || !same_channel(r)) continue;
            const json d = details_of(r);
            if (text(d, "to") == rollback_to) evidence.push_back("the channel was rolled back to it " + r.time + " by " + r.actor);
            else if (text(d, "from") == rollback_to) evidence.push_back("it was current until a rollback " + r.time + " by " + r.actor);
        }
    }
    json how = json::object();
    how["channel"] = or_null(channel);
    how["to"] = rollback_to;
    how["command"] = !channel.empty() && rollback_to.is_string()
                         ? json("sluice rollback " + shell_word(channel) + " --to " + shell_word(rollback_to.get<std::string>()) +
                                " --reason \"…\"")
                         : json(nullptr);
    how["released"] = released.is_object();
    json ev = json::array();
    for (auto& e : evidence) ev.push_back(std::move(e));
    how["target"] = {{"status", rollback_to.is_null() ? json(nullptr) : json(ev.empty() ? "not recorded" : "released")}, {"evidence", ev}};
    how["rolled_back_from"] = rolled_back_from;
    report["how_to_roll_back"] = how;

    report["scans"] = scans;
    report["rules"] = rules;
    report["holds"] = holds;
    report["release"] = released;
    report["release_failures"] = failures;
    report["rejection"] = rejection;
    report["refusals"] = refusals;
    report["channel_rollbacks"] = channel_rollbacks;
    report["hooks"] = hooks;
    report["hops"] = hops;

    if (own.empty()) missing.push_back("no event of this bundle is in the log");
    if (report["what_changed"]["changes"].is_null() && !release.is_null()) missing.push_back("what changed: release.json has no changes");
    if (report["why"].is_null() && !release.is_null()) missing.push_back("why: release.json has no reason");
    if (rollback_to.is_null() && !release.is_null()) missing.push_back("how to roll back: release.json has no rollback_to");
    if (channel.empty() && !own.empty()) missing.push_back("channel: no event of this bundle names one");
    report["missing"] = missing;
    report["warnings"] = warnings;
    return report;
}

// ---- rendering --------------------------------------------------------------

namespace {

/// A value for the terminal: strings as they are, numbers and booleans as JSON,
/// null or absent as "not recorded".
std::string show(const json& v) {
    if (v.is_null()) return std::string(kNotRecorded);
    if (v.is_string()) return terminal_safe(v.get_ref<const std::string&>());
    return terminal_safe(v.dump(-1, ' ', false, json::error_handler_t::replace));
}

const json& at(const json& obj, const char* key) {
    static const json kNull = nullptr;
    if (!obj.is_object()) return kNull;
    auto it = obj.find(key);
    return it == obj.end() ? kNull : *it;
}

const json& list(const json& obj, const char* key) {
    static const json kEmpty = json::array();
    const json& v = at(obj, key);
    return v.is_array() ? v : kEmpty;
}

/// "reason" in quotes, or "no reason recorded".
std::string quoted(const json& v, std::string_view what) {
    if (!v.is_string()) return "no " + std::string(what) + " recorded";
    return "\"" + show(v) + "\"";
}

void section(std::ostream& out, std::string_view title) { out << "\n" << title << "\n"; }

}  // namespace

void write_report(std::ostream& out, const json& report) {
    const json& wc = at(report, "what_changed");
    const json& wa = at(report, "who_approved");
    const json& up = at(wa, "upstream");
    const json& im = at(wa, "import");
    const json& how = at(report, "how_to_roll_back");
    const json& state = at(report, "state");

    out << "bundle      " << show(at(report, "bundle")) << "\n"
        << "channel     " << show(at(report, "channel")) << "   version " << show(at(report, "version"));
    if (at(report, "signed_rollback") == true) out << "   (a signed rollback)";
    out << "\n";
    out << "state       ";
    if (state.is_object()) out << show(at(state, "name")) << " since " << show(at(state, "time")) << " (" << show(at(state, "event")) << ")";
    else out << kNotRecorded;
    out << "\n";

    section(out, "What changed");
    out << "  " << show(at(wc, "changes")) << "\n";
    out << "  version " << show(at(wc, "version")) << ", follows " << show(at(wc, "previous_version")) << "\n";
    const json& diff = at(wc, "diff");
    if (diff.is_object()) {
        out << "  against " << (at(diff, "against").is_string() ? "current " + show(at(diff, "against")) : std::string("nothing released before"))
            << ": " << show(at(diff, "added")) << " added, " << show(at(diff, "removed")) << " removed, "
            << show(at(diff, "changed")) << " changed\n";
    } else {
        out << "  files against the current release: " << kNotRecorded << "\n";
    }
    const json& created = at(report, "created");
    out << "  created " << show(at(created, "at")) << " by " << show(at(created, "by")) << "\n";

    section(out, "Why");
    out << "  " << show(at(report, "why")) << "\n";

    section(out, "Who approved");
    out << "  upstream        " << show(at(up, "approved_by")) << " (release.json approved_by)\n";
    auto signer_list = [](const json& v) {
        if (!v.is_array()) return std::string(kNotRecorded);
        if (v.empty()) return std::string("none");
        std::string s;
        for (const auto& n : v) s += (s.empty() ? "" : ", ") + show(n);
        return s;
    };
    out << "  signed by       " << signer_list(at(up, "signers")) << " (at the sender)\n";
    out << "  trusted signers " << signer_list(at(up, "receiver_signers")) << " (the channel's keys, at the receiver)\n";
    out << "  at import       ";
    const json& decision = at(im, "decision");
    const json& approvals = list(im, "approvals");
    if (decision.is_object() && at(decision, "automatic") == true) {
        out << "auto (approved by the daemon " << show(at(decision, "time")) << ")\n";
    } else if (approvals.empty() && !decision.is_object()) {
        out << kNotRecorded << "\n";
    } else {
        out << approvals.size() << " of " << show(at(im, "approvals_required")) << " officer approval(s)";
        if (at(im, "mode").is_string()) out << " (" << show(at(im, "mode")) << ")";
        out << "\n";
        for (const auto& a : approvals) {
            out << "    " << show(at(a, "time")) << "  " << show(at(a, "officer"));
            if (!at(a, "uid").is_null()) out << " (uid " << show(at(a, "uid")) << ")";
            out << ": " << quoted(at(a, "reason"), "reason") << "\n";
        }
        if (decision.is_object()) {
            out << "    approved " << show(at(decision, "time")) << " by " << show(at(decision, "by")) << "\n";
        } else {
            out << "    approval complete: " << kNotRecorded << "\n";
        }
    }

    section(out, "How to roll back");
    out << "  to              " << show(at(how, "to")) << " (release.json rollback_to) on channel " << show(at(how, "channel")) << "\n";
    if (at(how, "command").is_string()) out << "  command         " << show(at(how, "command")) << "\n";
    if (at(how, "to").is_string()) {
        out << "  released?       " << show(at(how, "to")) << ": ";
        const json& target = at(how, "target");
        const json& ev = list(target, "evidence");
        if (ev.empty()) out << kNotRecorded << " in this trace";
        for (std::size_t i = 0; i < ev.size(); ++i) out << (i == 0 ? "" : "; ") << show(ev[i]);
        out << "\n  still kept?     not in the log: `sluice releases " << show(at(how, "channel")) << "` lists kept versions\n";
    }
    if (at(how, "released") == false) out << "  (this bundle was not released per the log: there is nothing of it to roll back)\n";
    for (const auto& r : list(how, "rolled_back_from")) {
        out << "  rolled back     " << show(at(r, "time")) << " by " << show(at(r, "actor")) << " to " << show(at(r, "to"))
            << ": " << quoted(at(r, "reason"), "reason") << "\n";
    }

    section(out, "Rules");
    if (list(report, "rules").empty()) out << "  " << kNotRecorded << "\n";
    for (const auto& r : list(report, "rules"))
        out << "  " << (at(r, "outcome") == "pass" ? "pass " : "FAIL ") << show(at(r, "rule")) << ": " << show(at(r, "detail")) << "\n";

    section(out, "Scans");
    if (list(report, "scans").empty()) out << "  " << kNotRecorded << "\n";
    for (const auto& s : list(report, "scans")) {
        out << "  " << show(at(s, "time")) << "  " << show(at(s, "outcome")) << "  " << show(at(s, "scanner")) << ": "
            << show(at(s, "summary")) << "\n";
    }
    for (const auto& h : list(report, "holds")) out << "  held " << show(at(h, "time")) << ": " << show(at(h, "reason")) << "\n";

    section(out, "Decision");
    bool decided = false;
    if (const json& rel = at(report, "release"); rel.is_object()) {
        out << "  released " << show(at(rel, "time")) << ": version " << show(at(rel, "version")) << " to " << show(at(rel, "path"))
            << " (previous current " << show(at(rel, "previous")) << ")\n";
        decided = true;
    }
    if (const json& rej = at(report, "rejection"); rej.is_object()) {
        out << "  rejected " << show(at(rej, "time")) << " by " << show(at(rej, "by")) << ": " << quoted(at(rej, "reason"), "reason") << "\n";
        decided = true;
    }
    for (const auto& r : list(report, "refusals")) {
        out << "  " << show(at(r, "event")) << " " << show(at(r, "time")) << " (" << show(at(r, "side")) << "): " << show(at(r, "error")) << "\n";
        decided = true;
    }
    for (const auto& f : list(report, "release_failures"))
        out << "  release failed " << show(at(f, "time")) << ": " << show(at(f, "error")) << "\n";
    if (!decided) out << "  no release, rejection or refusal recorded\n";

    section(out, "Rollbacks of the channel involving this version");
    if (list(report, "channel_rollbacks").empty()) out << "  none recorded\n";
    for (const auto& r : list(report, "channel_rollbacks")) {
        out << "  " << show(at(r, "time")) << "  " << show(at(r, "from")) << " -> " << show(at(r, "to")) << " by "
            << show(at(r, "actor")) << ": " << quoted(at(r, "reason"), "reason") << "\n";
    }

    section(out, "Post-release hooks");
    if (list(report, "hooks").empty()) out << "  none recorded\n";
    for (const auto& h : list(report, "hooks")) {
        out << "  " << show(at(h, "time")) << "  " << (at(h, "ok") == true ? "ok     " : "FAILED ") << show(at(h, "hook")) << ": "
            << show(at(h, "result")) << "\n";
    }

    section(out, "Hops");
    const json& hops = list(report, "hops");
    if (hops.empty()) out << "  " << kNotRecorded << "\n";
    std::vector<std::array<std::string, 5>> rows;
    std::array<std::size_t, 5> width{};
    for (const auto& h : hops) {
        rows.push_back({show(at(h, "time")), show(at(h, "side")) + "@" + show(at(h, "host")), show(at(h, "event")),
                        show(at(h, "actor")), show(at(h, "outcome"))});
        for (std::size_t i = 0; i < width.size(); ++i) width[i] = std::max(width[i], rows.back()[i].size());
    }
    for (const auto& row : rows) {
        std::string line = " ";
        for (std::size_t i = 0; i < row.size(); ++i) {
            line += ' ';
            line += row[i];
            if (i + 1 < row.size()) line.append(width[i] - row[i].size() + 1, ' ');
        }
        out << line << "\n";
    }

    const json& miss = list(report, "missing");
    const json& warn = list(report, "warnings");
    if (!miss.empty()) {
        section(out, "Not recorded");
        for (const auto& m : miss) out << "  " << show(m) << "\n";
    }
    if (!warn.empty()) {
        section(out, "Warnings");
        for (const auto& w : warn) out << "  " << show(w) << "\n";
    }
}

}  // namespace sluice::audit
