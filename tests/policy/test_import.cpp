#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/bundle/bundle.hpp"
#include "sluice/policy/import_record.hpp"
#include "sluice/policy/importer.hpp"
#include "sluice/policy/policy.hpp"
#include "support/bundle_fixture.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::policy;
using namespace std::chrono_literals;
using nlohmann::json;
using sluice::test::TempDir;
using sluice::test::write_file;

namespace {

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

template <class T>
T take(sluice::Result<T> r) {
    INFO((r.ok() ? std::string() : "error: " + r.error().message));
    REQUIRE(r.ok());
    return std::move(r).value();
}

template <class T>
std::string error_of(const sluice::Result<T>& r) {
    return r.ok() ? std::string() : r.error().message;
}

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return static_cast<unsigned>(st.st_mode & 07777);
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

/// The states a record went through, from its history's transitions.
std::vector<std::string> states_visited(const ImportRecord& r) {
    std::vector<std::string> out;
    for (const auto& t : r.history) {
        for (const auto& s : {t.from, t.to}) {
            if (!s.empty() && (out.empty() || out.back() != s)) out.push_back(s);
        }
    }
    return out;
}

const Actor kOlivia{"olivia", 1001};
const Actor kOscar{"oscar", 1002};

// ------------------------------------------------------------------ the pure state machine

ImportRecord pending_record(unsigned required) {
    ImportRecord r;
    r.bundle_id = std::string(64, 'c');
    r.channel = "models";
    r.version = "1.4.0";
    r.state = ImportState::pending_approval;
    r.approval_mode = required > 1 ? "two-person" : "manual";
    r.approvals_required = required;
    return r;
}

constexpr ImportState kAllStates[] = {ImportState::failed,           ImportState::quarantined, ImportState::scanning,
                                      ImportState::held,             ImportState::pending_approval,
                                      ImportState::approved,         ImportState::released,    ImportState::rejected};

// ------------------------------------------------------------------ the importer, on real bags

struct Event {
    std::string name;
    json fields;
};

/// A receiver's import directories, signing keys, scanner scripts and the events heard.
class Lab {
public:
    TempDir tmp;
    fs::path keys = tmp / "keys";
    fs::path trust_dir = tmp / "trust";
    fs::path bin = tmp / "bin";
    std::shared_ptr<bundle::TrustStore> trust;
    ImporterPaths paths{tmp / "incoming", tmp / "quarantine", tmp / "state", tmp / "releases"};
    std::atomic<bool> stop{false};

    Lab() {
        for (const char* name : {"alice", "bob"}) REQUIRE(bundle::generate_key_pair(keys, name).ok());
        fs::create_directories(trust_dir);
        fs::copy_file(keys / "alice.pub", trust_dir / "alice.pub");
        fs::copy_file(keys / "bob.pub", trust_dir / "bob.pub");
        auto loaded = bundle::TrustStore::load(trust_dir);
        REQUIRE(loaded.ok());
        trust = std::make_shared<bundle::TrustStore>(std::move(*loaded));
        fs::create_directories(paths.incoming);
    }
    ~Lab() {
        // Quarantine is read-only (0550 directories): let TempDir remove it when not root.
        std::error_code ec;
        for (fs::recursive_directory_iterator it(tmp.path(), ec), end; !ec && it != end; it.increment(ec)) {
            if (it->is_directory(ec) && !it->is_symlink(ec)) ::chmod(it->path().c_str(), 0755);
        }
    }
    Lab(const Lab&) = delete;
    Lab& operator=(const Lab&) = delete;

    EventSink sink() {
        return [this](std::string_view name, const json& fields, EventKind) -> Result<void> {
            if (audit_down) return fail("audit database is full (test)");
            std::lock_guard lock(events_mutex_);
            events_.push_back({std::string(name), fields});
            return {};
        };
    }
    /// The audit log refuses every event while set (a full disk).
    std::atomic<bool> audit_down{false};
    std::vector<Event> events(const std::string& name) {
        std::lock_guard lock(events_mutex_);
        std::vector<Event> out;
        for (const auto& e : events_) {
            if (e.name == name) out.push_back(e);
        }
        return out;
    }
    /// Whether `name` was heard for bundle `id` on `channel` (nullopt: the event
    /// comes before release.json is read, so it names no channel).
    bool heard(const std::string& name, const std::string& id, const std::optional<std::string>& channel = "models") {
        for (const auto& e : events(name)) {
            if (e.fields.value("bundle", "") != id) continue;
            if (!channel || e.fields.value("channel", "") == *channel) return true;
        }
        return false;
    }

    /// A /bin/sh script in bin/.
    fs::path script(const std::string& name, const std::string& body) {
        const fs::path p = bin / name;
        write_file(p, "#!/bin/sh\n" + body);
        ::chmod(p.c_str(), 0755);
        return p;
    }
    ScannerSpec exec_scanner(const std::string& name, const fs::path& script_path, std::chrono::milliseconds timeout = 10s,
                             unsigned attempts = 1, OnScannerError on_error = OnScannerError::hold) const {
        ScannerSpec s;
        s.name = name;
        s.kind = ExecScanner{{"/bin/sh", script_path.string(), "{path}"}};
        s.timeout = timeout;
        s.attempts = attempts;
        s.retry_delay = 50ms;
        s.on_error = on_error;
        return s;
    }
    ChannelPolicy channel(ApprovalMode mode, std::vector<std::string> scanners = {}, const std::string& name = "models") const {
        ChannelPolicy c;
        c.name = name;
        c.trusted_keys = {trust_dir / "alice.pub", trust_dir / "bob.pub"};
        c.trust = trust;
        c.approval = mode;
        c.approvers = mode == ApprovalMode::two_person ? 2 : 1;
        c.scanners = std::move(scanners);
        return c;
    }
    static std::shared_ptr<const Policy> policy(const std::vector<ChannelPolicy>& channels,
                                                const std::vector<ScannerSpec>& scanners = {}) {
        auto p = std::make_shared<Policy>();
        p->file = "/etc/sluice/policy.toml";
        for (const auto& s : scanners) p->scanners[s.name] = s;
        for (const auto& c : channels) p->channels[c.name] = c;
        return p;
    }
    /// A policy with one channel `models` and, if given, one clean exec scanner `av`.
    std::shared_ptr<const Policy> simple_policy(ApprovalMode mode, bool with_scanner = true) {
        if (!with_scanner) return policy({channel(mode)});
        return policy({channel(mode, {"av"})}, {exec_scanner("av", script("clean.sh", "exit 0\n"))});
    }

    std::unique_ptr<Importer> open(std::shared_ptr<const Policy> p) {
        return std::make_unique<Importer>(paths, std::move(p), sink());
    }

    static bundle::Release release(const std::string& version, const std::string& channel_name = "models") {
        bundle::Release r = test::sample_release();
        r.channel = channel_name;
        r.version = version;
        r.previous_version.reset();
        r.rollback_to = "0.1.0";
        return r;
    }

    /// A signed bag of two small files; returns its bundle id.
    std::string make_bag(const bundle::Release& rel, std::initializer_list<std::string> signers = {"alice"},
                         std::map<std::string, std::string> files = {}) {
        const std::string n = std::to_string(++serial_);
        if (files.empty()) {
            files = {{"model.json", "{\"version\": \"" + rel.version + "\"}\n"},
                     {"weights.bin", test::random_bytes(2048, static_cast<unsigned>(serial_))}};
        }
        const fs::path src = tmp / "src" / n;
        fs::create_directories(src);
        for (const auto& [rel_path, bytes] : files) write_file(src / rel_path, bytes);
        fs::create_directories(tmp / "bags");
        bundle::CreateOptions o;
        o.source = src;
        o.out = tmp / "bags" / n;
        o.release = rel;
        o.sync = false;
        for (const auto& s : signers) o.signing_keys.push_back(keys / (s + ".key"));
        const std::string id = take(bundle::create_bag(o));
        bags_[id] = o.out;
        return id;
    }
    /// Packs a bag made before into incoming/<id>.tar, as the diode receiver delivers it.
    fs::path ship(const std::string& id) {
        const fs::path archive = paths.incoming / (id + ".tar");
        CHECK(take(bundle::pack_bag(bags_.at(id), archive, {}, false)) == id);
        return archive;
    }
    /// The bag directory make_bag made for `id`.
    [[nodiscard]] fs::path bag(const std::string& id) const { return bags_.at(id); }
    /// After a test changed a bag's tag files (and so its id).
    void rename_bag(const std::string& old_id, const std::string& new_id) {
        bags_[new_id] = bags_.at(old_id);
        bags_.erase(old_id);
    }
    /// make_bag + ship.
    std::pair<std::string, fs::path> send(const bundle::Release& rel) {
        const std::string id = make_bag(rel);
        return {id, ship(id)};
    }
    ImportRecord admit(Importer& importer, const fs::path& archive) { return take(importer.admit(archive, stop)); }
    /// send + admit.
    ImportRecord import(Importer& importer, const bundle::Release& rel) { return admit(importer, send(rel).second); }

    [[nodiscard]] fs::path release_dir(const std::string& version, const std::string& channel_name = "models") const {
        return paths.releases / channel_name / version;
    }
    [[nodiscard]] std::optional<std::string> current(const std::string& channel_name = "models") const {
        const fs::path link = paths.releases / channel_name / "current";
        if (!fs::is_symlink(link)) return std::nullopt;
        return fs::read_symlink(link).string();
    }
    [[nodiscard]] ImportRecord record_on_disk(const std::string& id) const {
        const json j = json::parse(test::read_file(paths.state / "imports" / (id + ".json")));
        return take(record_from_json(j));
    }

private:
    std::mutex events_mutex_;
    std::vector<Event> events_;
    std::map<std::string, fs::path> bags_;
    int serial_ = 0;
};

}  // namespace

// ================================================================== approval state machine

TEST_CASE("import state names round-trip; released and rejected are final", "[policy][import]") {
    for (ImportState s : kAllStates) {
        INFO(to_string(s));
        CHECK(import_state_from(to_string(s)) == s);
        CHECK(is_final(s) == (s == ImportState::released || s == ImportState::rejected));
    }
    CHECK_FALSE(import_state_from("limbo").has_value());
    CHECK_FALSE(import_state_from("").has_value());
}

TEST_CASE("approve: only a pending bundle can be approved", "[policy][import]") {
    for (ImportState s : kAllStates) {
        if (s == ImportState::pending_approval) continue;
        INFO(to_string(s));
        ImportRecord r = pending_record(1);
        r.state = s;
        auto done = approve(r, kOlivia, "reviewed", "2026-11-29T15:00:00Z");
        REQUIRE_FALSE(done.ok());
        CHECK(contains(done.error().message, "bundle cccccccccccc is " + std::string(to_string(s))));
        CHECK(contains(done.error().message, "not pending approval"));
        CHECK(r.state == s);
        CHECK(r.approvals.empty());
        CHECK(r.history.empty());
    }
}

TEST_CASE("approve: one officer completes a manual approval, recorded in history", "[policy][import]") {
    ImportRecord r = pending_record(1);
    auto done = approve(r, kOlivia, "eval report reviewed", "2026-11-29T15:00:00Z");
    REQUIRE(done.ok());
    CHECK(*done);
    CHECK(r.state == ImportState::approved);
    REQUIRE(r.approvals.size() == 1);
    CHECK(r.approvals[0].user == "olivia");
    CHECK(r.approvals[0].uid == 1001);
    CHECK(r.approvals[0].at == "2026-11-29T15:00:00Z");
    CHECK(r.approvals[0].reason == "eval report reviewed");
    REQUIRE(r.history.size() == 1);
    CHECK(r.history[0].from == "pending_approval");
    CHECK(r.history[0].to == "approved");
    CHECK(r.history[0].actor == "olivia");
    CHECK(r.history[0].at == "2026-11-29T15:00:00Z");
    CHECK(r.history[0].note == "eval report reviewed");

    // Approved is not pending: a second approval, even by another officer, is refused.
    auto again = approve(r, kOscar, "me too", "2026-11-29T15:01:00Z");
    REQUIRE_FALSE(again.ok());
    CHECK(contains(again.error().message, "is approved, not pending approval"));
}

TEST_CASE("approve: two-person needs two distinct officers; the same uid twice is refused", "[policy][import]") {
    ImportRecord r = pending_record(2);
    auto first = approve(r, kOlivia, "diff reviewed", "2026-11-29T15:00:00Z");
    REQUIRE(first.ok());
    CHECK_FALSE(*first);
    CHECK(r.state == ImportState::pending_approval);
    REQUIRE(r.history.size() == 1);
    CHECK(r.history[0].from == "pending_approval");
    CHECK(r.history[0].to == "pending_approval");
    CHECK(r.history[0].actor == "olivia");
    CHECK(r.history[0].note == "approval 1 of 2: diff reviewed");

    SECTION("the same officer again") {
        auto twice = approve(r, kOlivia, "really sure", "2026-11-29T15:05:00Z");
        REQUIRE_FALSE(twice.ok());
        CHECK(contains(twice.error().message, "olivia already approved bundle cccccccccccc at 2026-11-29T15:00:00Z"));
        CHECK(contains(twice.error().message, "another officer (1 of 2 so far)"));
        CHECK(r.state == ImportState::pending_approval);
        CHECK(r.approvals.size() == 1);
        CHECK(r.history.size() == 1);
    }
    SECTION("the same uid under another name is the same officer") {
        auto twice = approve(r, Actor{"olivia2", 1001}, "really sure", "2026-11-29T15:05:00Z");
        REQUIRE_FALSE(twice.ok());
        CHECK(contains(twice.error().message, "already approved"));
        CHECK(r.approvals.size() == 1);
    }
    SECTION("a second, distinct officer completes it") {
        auto second = approve(r, kOscar, "scans clean", "2026-11-29T15:10:00Z");
        REQUIRE(second.ok());
        CHECK(*second);
        CHECK(r.state == ImportState::approved);
        REQUIRE(r.approvals.size() == 2);
        CHECK(r.approvals[1].user == "oscar");
        CHECK(r.approvals[1].uid == 1002);
        REQUIRE(r.history.size() == 2);
        CHECK(r.history[1].from == "pending_approval");
        CHECK(r.history[1].to == "approved");
        CHECK(r.history[1].actor == "oscar");
    }
}

TEST_CASE("approve and reject: a blank reason is refused", "[policy][import]") {
    for (const std::string reason : {"", "   ", "\t", " \n ", "\r\n"}) {
        INFO("reason \"" << reason << "\"");
        ImportRecord r = pending_record(1);
        auto done = approve(r, kOlivia, reason, "2026-11-29T15:00:00Z");
        REQUIRE_FALSE(done.ok());
        CHECK(contains(done.error().message, "an approval needs a reason"));
        auto no = reject(r, kOlivia, reason, "2026-11-29T15:00:00Z");
        REQUIRE_FALSE(no.ok());
        CHECK(contains(no.error().message, "a rejection needs a reason"));
        CHECK(r.state == ImportState::pending_approval);
        CHECK(r.approvals.empty());
        CHECK_FALSE(r.rejection.has_value());
        CHECK(r.history.empty());
    }
}

TEST_CASE("reject: a pending, held, failed or approved bundle; nothing else", "[policy][import]") {
    for (ImportState s : kAllStates) {
        INFO(to_string(s));
        ImportRecord r = pending_record(2);
        r.state = s;
        auto no = reject(r, kOscar, "not on the release plan", "2026-11-29T16:00:00Z");
        const bool allowed = s == ImportState::pending_approval || s == ImportState::held || s == ImportState::failed ||
                             s == ImportState::approved;
        REQUIRE(no.ok() == allowed);
        if (allowed) {
            CHECK(r.state == ImportState::rejected);
            REQUIRE(r.rejection.has_value());
            CHECK(r.rejection->user == "oscar");
            CHECK(r.rejection->uid == 1002);
            CHECK(r.rejection->at == "2026-11-29T16:00:00Z");
            CHECK(r.rejection->reason == "not on the release plan");
            CHECK(r.state_reason == "rejected by oscar: not on the release plan");
            REQUIRE(r.history.size() == 1);
            CHECK(r.history[0].from == to_string(s));
            CHECK(r.history[0].to == "rejected");
            CHECK(r.history[0].actor == "oscar");
            CHECK(r.history[0].note == "not on the release plan");
            // Rejected is final: no approval afterwards.
            CHECK_FALSE(approve(r, kOlivia, "too late", "2026-11-29T16:01:00Z").ok());
        } else {
            CHECK(contains(no.error().message, "is " + std::string(to_string(s))));
            CHECK(contains(no.error().message, "only a pending, held, failed or approved (not yet released) bundle can be rejected"));
            CHECK(r.state == s);
            CHECK_FALSE(r.rejection.has_value());
        }
    }
}

TEST_CASE("transition records who, when and why", "[policy][import]") {
    ImportRecord r;
    r.transition(ImportState::scanning, Actor::system(), "2026-11-29T15:00:00Z");
    r.transition(ImportState::held, Actor::system(), "2026-11-29T15:01:00Z", "scanner down");
    REQUIRE(r.history.size() == 2);
    CHECK(r.history[0].from == "quarantined");
    CHECK(r.history[0].to == "scanning");
    CHECK(r.history[0].actor == "system");
    CHECK(r.history[1].from == "scanning");
    CHECK(r.history[1].to == "held");
    CHECK(r.history[1].at == "2026-11-29T15:01:00Z");
    CHECK(r.history[1].note == "scanner down");
    CHECK(r.state == ImportState::held);
}

// ================================================================== records on disk

namespace {

ImportRecord full_record() {
    ImportRecord r;
    r.bundle_id = std::string(64, 'd');
    r.channel = "models";
    r.version = "1.4.0";
    bundle::Release rel = test::sample_release();
    rel.rollback = true;
    rel.artifacts = json{{"weights", {{"format", "safetensors"}, {"params", 7}}}};
    r.release = rel;
    r.state = ImportState::released;
    r.state_reason = "a reason \"quoted\"\nover two lines";
    r.received_at = "2026-11-29T14:05:00Z";
    r.payload_bytes = 5'000'000'000ULL;  // beyond 32 bits
    r.payload_files = 7;
    r.signers = {"alice", "bob"};
    r.rules = {{"signers", true, "2 distinct trusted signers (alice, bob); 1 required"}, {"version", false, "older"}};
    ScanResult s;
    s.scanner = "clamav";
    s.verdict = Verdict::found;
    s.summary = "data/x: Eicar FOUND";
    s.findings = {{"data/x", "Eicar-Test-Signature"}, {"", "a line"}};
    s.output = "stream: Eicar FOUND\n";
    s.attempts = 2;
    s.took = 1234ms;
    s.files_scanned = 3;
    ScanResult s2;
    s2.scanner = "yara";
    s2.verdict = Verdict::error;
    s2.summary = "timed out";
    r.scans = {s, s2};
    r.diff_against = "1.3.2";
    TreeDiff d;
    d.added = {{"data/new.bin", 10, std::string(64, '1')}};
    d.removed = {{"data/old.bin", 20, std::string(64, '2')}};
    d.changed = {{"data/model.bin", 30, 40}};
    d.unchanged = 5;
    d.omitted = 9;
    r.diff = d;
    r.approval_mode = "two-person";
    r.approvals_required = 2;
    r.approvals = {{"olivia", 1001, "2026-11-29T15:00:00Z", "ok"}, {"oscar", 1002, "2026-11-29T15:10:00Z", "ok too"}};
    r.rejection = Decision{"root", 0, "2026-11-29T15:20:00Z", "hypothetical"};
    r.released_at = "2026-11-29T15:11:00Z";
    r.release_path = "/var/lib/sluice/releases/models/1.4.0";
    r.hooks = {{"registry", true, "exit 0", "copied", "2026-11-29T15:12:00Z"}, {"notify", false, "exit 3", "", "2026-11-29T15:13:00Z"}};
    r.history = {{"", "received", "2026-11-29T14:05:00Z", "system", "/incoming/x.tar"},
                 {"received", "quarantined", "2026-11-29T14:05:01Z", "system", ""}};
    r.attempts = 4;
    return r;
}

}  // namespace

TEST_CASE("to_json and record_from_json round-trip every field", "[policy][import]") {
    const ImportRecord a = full_record();
    const json j = to_json(a);
    CHECK(j.at("schema") == "sluice.import/1");
    // Through text, as the state file is.
    const ImportRecord b = take(record_from_json(json::parse(j.dump(2))));

    CHECK(b.bundle_id == a.bundle_id);
    CHECK(b.channel == a.channel);
    CHECK(b.version == a.version);
    REQUIRE(b.release.has_value());
    CHECK(*b.release == *a.release);
    CHECK(b.release->rollback);
    CHECK(b.state == a.state);
    CHECK(b.state_reason == a.state_reason);
    CHECK(b.received_at == a.received_at);
    CHECK(b.payload_bytes == a.payload_bytes);
    CHECK(b.payload_files == a.payload_files);
    CHECK(b.signers == a.signers);
    REQUIRE(b.rules.size() == a.rules.size());
    for (std::size_t i = 0; i < a.rules.size(); ++i) {
        CHECK(b.rules[i].rule == a.rules[i].rule);
        CHECK(b.rules[i].passed == a.rules[i].passed);
        CHECK(b.rules[i].detail == a.rules[i].detail);
    }
    REQUIRE(b.scans.size() == 2);
    for (std::size_t i = 0; i < a.scans.size(); ++i) {
        CHECK(b.scans[i].scanner == a.scans[i].scanner);
        CHECK(b.scans[i].verdict == a.scans[i].verdict);
        CHECK(b.scans[i].summary == a.scans[i].summary);
        CHECK(b.scans[i].output == a.scans[i].output);
        CHECK(b.scans[i].attempts == a.scans[i].attempts);
        CHECK(b.scans[i].took == a.scans[i].took);
        CHECK(b.scans[i].files_scanned == a.scans[i].files_scanned);
        REQUIRE(b.scans[i].findings.size() == a.scans[i].findings.size());
        for (std::size_t k = 0; k < a.scans[i].findings.size(); ++k) {
            CHECK(b.scans[i].findings[k].path == a.scans[i].findings[k].path);
            CHECK(b.scans[i].findings[k].signature == a.scans[i].findings[k].signature);
        }
    }
    CHECK(b.diff_against == a.diff_against);
    REQUIRE(b.diff.has_value());
    REQUIRE(b.diff->added.size() == 1);
    CHECK(b.diff->added[0].path == "data/new.bin");
    CHECK(b.diff->added[0].size == 10);
    CHECK(b.diff->added[0].sha256 == std::string(64, '1'));
    REQUIRE(b.diff->removed.size() == 1);
    CHECK(b.diff->removed[0].path == "data/old.bin");
    REQUIRE(b.diff->changed.size() == 1);
    CHECK(b.diff->changed[0].path == "data/model.bin");
    CHECK(b.diff->changed[0].old_size == 30);
    CHECK(b.diff->changed[0].new_size == 40);
    CHECK(b.diff->unchanged == 5);
    CHECK(b.diff->omitted == 9);
    CHECK(b.approval_mode == a.approval_mode);
    CHECK(b.approvals_required == a.approvals_required);
    REQUIRE(b.approvals.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(b.approvals[i].user == a.approvals[i].user);
        CHECK(b.approvals[i].uid == a.approvals[i].uid);
        CHECK(b.approvals[i].at == a.approvals[i].at);
        CHECK(b.approvals[i].reason == a.approvals[i].reason);
    }
    REQUIRE(b.rejection.has_value());
    CHECK(b.rejection->user == "root");
    CHECK(b.rejection->uid == 0);
    CHECK(b.rejection->reason == "hypothetical");
    CHECK(b.released_at == a.released_at);
    CHECK(b.release_path == a.release_path);
    REQUIRE(b.hooks.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(b.hooks[i].name == a.hooks[i].name);
        CHECK(b.hooks[i].ok == a.hooks[i].ok);
        CHECK(b.hooks[i].result == a.hooks[i].result);
        CHECK(b.hooks[i].output == a.hooks[i].output);
        CHECK(b.hooks[i].at == a.hooks[i].at);
    }
    REQUIRE(b.history.size() == 2);
    for (std::size_t i = 0; i < 2; ++i) {
        CHECK(b.history[i].from == a.history[i].from);
        CHECK(b.history[i].to == a.history[i].to);
        CHECK(b.history[i].at == a.history[i].at);
        CHECK(b.history[i].actor == a.history[i].actor);
        CHECK(b.history[i].note == a.history[i].note);
    }
    CHECK(b.attempts == a.attempts);
    CHECK(to_json(b) == j);
}

TEST_CASE("to_json and record_from_json: a minimal record keeps its absent parts absent", "[policy][import]") {
    ImportRecord a;
    a.bundle_id = std::string(64, 'e');
    a.state = ImportState::failed;
    const ImportRecord b = take(record_from_json(to_json(a)));
    CHECK(b.bundle_id == a.bundle_id);
    CHECK(b.state == ImportState::failed);
    CHECK_FALSE(b.release.has_value());
    CHECK_FALSE(b.diff.has_value());
    CHECK_FALSE(b.diff_against.has_value());
    CHECK_FALSE(b.rejection.has_value());
    CHECK_FALSE(b.released_at.has_value());
    CHECK_FALSE(b.release_path.has_value());
    CHECK(b.history.empty());
}

TEST_CASE("record_from_json: a damaged record is an error naming what is wrong, never an exception", "[policy][import]") {
    const json good = to_json(full_record());
    auto damaged = [&](const std::function<void(json&)>& damage, const std::string& needle) {
        json j = good;
        damage(j);
        std::optional<sluice::Result<ImportRecord>> r;
        REQUIRE_NOTHROW(r.emplace(record_from_json(j)));
        REQUIRE_FALSE(r->ok());
        INFO("error: " << r->error().message);
        CHECK(contains(r->error().message, needle));
    };
    damaged([](json& j) { j.erase("state_reason"); }, "state_reason");
    damaged([](json& j) { j.erase("history"); }, "history");
    damaged([](json& j) { j["history"][0].erase("actor"); }, "actor");
    damaged([](json& j) { j["payload_bytes"] = "5000000000"; }, "damaged import record");
    damaged([](json& j) { j["approvals"][0]["uid"] = "1001"; }, "damaged import record");
    damaged([](json& j) { j["signers"] = "alice"; }, "damaged import record");
    damaged([](json& j) { j["state"] = "limbo"; }, "unknown state \"limbo\"");
    damaged([](json& j) { j["state"] = 3; }, "damaged import record");
    damaged([](json& j) { j["scans"][0]["verdict"] = "maybe"; }, "unknown verdict \"maybe\"");
    damaged([](json& j) { j["schema"] = "sluice.import/99"; }, "unknown schema");
    damaged([](json& j) { j["release"]["channel"] = "Not A Channel!"; }, "release");
    damaged([](json& j) { j["release"]["surprise"] = 1; }, "release");
    damaged([](json& j) { j = json::array(); }, "damaged import record");
    damaged([](json& j) { j = nullptr; }, "damaged import record");
    damaged([](json& j) { j = "text"; }, "damaged import record");
}

// ================================================================== the importer end to end

TEST_CASE("importer: an auto channel releases a clean bundle", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::automatic));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    const ImportRecord r = lab.admit(*importer, archive);

    INFO("state_reason: " << r.state_reason);
    REQUIRE(r.state == ImportState::released);
    CHECK(r.bundle_id == id);
    CHECK(r.channel == "models");
    CHECK(r.version == "1.0.0");
    REQUIRE(r.release.has_value());
    CHECK(*r.release == Lab::release("1.0.0"));
    CHECK(r.approval_mode == "auto");
    CHECK(r.approvals_required == 0);
    CHECK(r.approvals.empty());
    CHECK(r.signers == std::vector<std::string>{"alice"});
    CHECK(r.payload_files == 2);
    CHECK(r.payload_bytes == 2048 + test::read_file(lab.release_dir("1.0.0") / "data" / "model.json").size());
    CHECK(all_passed(r.rules));
    CHECK(r.rules.size() == 4);  // signers, required_answers, version
    REQUIRE(r.scans.size() == 1);
    CHECK(r.scans[0].scanner == "av");
    CHECK(r.scans[0].verdict == Verdict::clean);
    CHECK(states_visited(r) == std::vector<std::string>{"received", "quarantined", "scanning", "approved", "released"});
    REQUIRE(r.diff.has_value());  // everything is new on a first release
    CHECK(r.diff->added.size() == 2);
    CHECK_FALSE(r.diff_against.has_value());

    // The release: the whole bag under <releases>/<channel>/<version>/, and current.
    const fs::path dir = lab.release_dir("1.0.0");
    REQUIRE(r.release_path.has_value());
    CHECK(fs::path(*r.release_path) == dir);
    CHECK(r.released_at.has_value());
    CHECK(test::read_file(dir / "data" / "model.json") == "{\"version\": \"1.0.0\"}\n");
    CHECK(fs::file_size(dir / "data" / "weights.bin") == 2048);
    for (const char* tag : {"bagit.txt", "bag-info.txt", "release.json", "manifest-sha256.txt", "tagmanifest-sha256.txt",
                            "signatures/alice.sig"}) {
        CHECK(fs::is_regular_file(dir / tag));
    }
    CHECK(fs::is_symlink(lab.paths.releases / "models" / "current"));
    CHECK(lab.current() == "1.0.0");

    // What is left behind: no quarantine copy, no archive, a durable record.
    CHECK_FALSE(fs::exists(lab.paths.quarantine / id));
    CHECK_FALSE(fs::exists(archive));
    const ImportRecord disk = lab.record_on_disk(id);
    CHECK(disk.state == ImportState::released);
    CHECK(disk.history.size() == r.history.size());
    CHECK(disk.release_path == r.release_path);
    CHECK(fs::exists(lab.paths.state / "channels" / "models.json"));

    const ChannelHistory h = importer->history("models");
    CHECK(h.highest_released == "1.0.0");
    CHECK(h.current == "1.0.0");
    CHECK(h.released == std::vector<std::string>{"1.0.0"});

    CHECK(take(importer->find(id.substr(0, 8))).state == ImportState::released);
    CHECK(lab.heard("bundle_quarantined", id, std::nullopt));
    CHECK(lab.heard("rule_result", id));
    CHECK(lab.heard("scan_result", id));
    CHECK(lab.heard("bundle_approved", id));
    CHECK(lab.heard("bundle_released", id));
    CHECK(lab.events("approval_pending").empty());

    SECTION("the next version is diffed against the current one") {
        const std::string id2 = lab.make_bag(Lab::release("1.1.0"), {"alice"},
                                             {{"model.json", "{\"version\": \"1.1.0\"}\n"}, {"extra.txt", "new\n"}});
        const ImportRecord r2 = lab.admit(*importer, lab.ship(id2));
        REQUIRE(r2.state == ImportState::released);
        CHECK(r2.diff_against == "1.0.0");
        REQUIRE(r2.diff.has_value());
        REQUIRE(r2.diff->added.size() == 1);
        CHECK(r2.diff->added[0].path == "data/extra.txt");
        REQUIRE(r2.diff->removed.size() == 1);
        CHECK(r2.diff->removed[0].path == "data/weights.bin");
        REQUIRE(r2.diff->changed.size() == 1);
        CHECK(r2.diff->changed[0].path == "data/model.json");
        CHECK(lab.current() == "1.1.0");
        CHECK(importer->history("models").released == std::vector<std::string>{"1.0.0", "1.1.0"});
    }
}

TEST_CASE("importer: a manual channel waits for one officer; quarantine is read-only meanwhile", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::manual));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    const ImportRecord r = lab.admit(*importer, archive);
    INFO("state_reason: " << r.state_reason);
    REQUIRE(r.state == ImportState::pending_approval);
    CHECK(r.approval_mode == "manual");
    CHECK(r.approvals_required == 1);
    CHECK(lab.heard("approval_pending", id));
    CHECK_FALSE(fs::exists(lab.release_dir("1.0.0")));
    CHECK_FALSE(lab.current().has_value());
    CHECK_FALSE(fs::exists(archive));

    // Quarantine: every file and directory without a write bit.
    const fs::path q = lab.paths.quarantine / id;
    REQUIRE(fs::is_directory(q));
    CHECK((mode_of(q) & 0222) == 0);
    std::size_t files = 0;
    for (const auto& e : fs::recursive_directory_iterator(q)) {
        INFO(e.path());
        CHECK((mode_of(e.path()) & 0222) == 0);
        if (e.is_regular_file()) ++files;
    }
    CHECK(files >= 7);  // tag files, a signature and two payload files

    const auto pending = importer->list({ImportState::pending_approval});
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].bundle_id == id);
    CHECK(importer->list({ImportState::released}).empty());

    // Prefixes: at least 6 hex digits, unique.
    CHECK(contains(error_of(importer->find(id.substr(0, 5))), "too short"));
    CHECK(contains(error_of(importer->find("zzzzzzzz")), "not a bundle id"));
    CHECK(contains(error_of(importer->find(std::string(10, id[0] == 'f' ? 'e' : 'f'))), "no bundle"));

    auto blank = importer->approve(id, kOlivia, "  ");
    CHECK(contains(error_of(blank), "needs a reason"));
    CHECK(take(importer->find(id)).state == ImportState::pending_approval);

    const ImportRecord done = take(importer->approve(id.substr(0, 10), kOlivia, "eval report reviewed"));
    CHECK(done.state == ImportState::released);
    REQUIRE(done.approvals.size() == 1);
    CHECK(done.approvals[0].user == "olivia");
    CHECK(lab.current() == "1.0.0");
    CHECK_FALSE(fs::exists(q));
    CHECK(lab.heard("bundle_approved", id));
    CHECK(lab.heard("bundle_released", id));
    const auto entries = take(importer->releases("models"));
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].released_by == "olivia");

    CHECK(contains(error_of(importer->approve(id, kOscar, "again")), "is released, not pending approval"));
    CHECK(contains(error_of(importer->reject(id, kOscar, "no")), "only a pending, held, failed or approved"));
}

TEST_CASE("importer: two-person approval needs two distinct officers", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::two_person));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    REQUIRE(lab.admit(*importer, archive).state == ImportState::pending_approval);

    const ImportRecord one = take(importer->approve(id, kOlivia, "diff reviewed"));
    CHECK(one.state == ImportState::pending_approval);
    CHECK(one.approval_mode == "two-person");
    CHECK(one.approvals_required == 2);
    CHECK(one.approvals.size() == 1);
    CHECK(lab.heard("approval_recorded", id));
    CHECK(lab.events("bundle_approved").empty());

    auto twice = importer->approve(id, kOlivia, "still fine");
    REQUIRE_FALSE(twice.ok());
    CHECK(contains(twice.error().message, "olivia already approved"));
    CHECK(take(importer->find(id)).approvals.size() == 1);
    CHECK(lab.record_on_disk(id).approvals.size() == 1);
    CHECK_FALSE(lab.current().has_value());

    const ImportRecord two = take(importer->approve(id, kOscar, "scans clean"));
    CHECK(two.state == ImportState::released);
    CHECK(two.approvals.size() == 2);
    CHECK(lab.current() == "1.0.0");
    const auto entries = take(importer->releases("models"));
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].released_by == "olivia, oscar");
}

TEST_CASE("importer: a scanner finding rejects the bundle and it is never released", "[policy][import]") {
    Lab lab;
    const fs::path found = lab.script("found.sh", "echo \"$1/data/weights.bin: Sluice.Test.Marker FOUND\"\nexit 1\n");
    auto importer = lab.open(Lab::policy({lab.channel(ApprovalMode::automatic, {"av"})}, {lab.exec_scanner("av", found)}));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    const ImportRecord r = lab.admit(*importer, archive);
    REQUIRE(r.state == ImportState::rejected);
    CHECK(contains(r.state_reason, "scanner av found"));
    CHECK(contains(r.state_reason, "Sluice.Test.Marker"));
    REQUIRE(r.scans.size() == 1);
    CHECK(r.scans[0].verdict == Verdict::found);
    REQUIRE(r.scans[0].findings.size() == 1);
    CHECK(r.scans[0].findings[0].path == "data/weights.bin");
    CHECK(r.scans[0].findings[0].signature == "Sluice.Test.Marker");

    CHECK_FALSE(fs::exists(lab.release_dir("1.0.0")));
    CHECK_FALSE(lab.current().has_value());
    CHECK(importer->history("models").released.empty());
    CHECK(fs::is_directory(lab.paths.quarantine / id));  // kept for inspection
    CHECK(lab.heard("bundle_rejected", id));
    CHECK(lab.events("bundle_released").empty());
    CHECK(lab.record_on_disk(id).state == ImportState::rejected);

    CHECK_FALSE(importer->approve(id, kOlivia, "let it through").ok());
    CHECK_FALSE(importer->rescan(id, kOlivia, lab.stop).ok());
    CHECK_FALSE(importer->release(id).ok());
    CHECK_FALSE(lab.current().has_value());
}

TEST_CASE("importer: a rule failure rejects before any scanner runs", "[policy][import]") {
    Lab lab;
    const fs::path marker = lab.tmp / "scanner-ran";
    const fs::path noting = lab.script("noting.sh", "touch '" + marker.string() + "'\nexit 0\n");
    ChannelPolicy c = lab.channel(ApprovalMode::automatic, {"av"});
    c.max_files = 1;
    auto importer = lab.open(Lab::policy({c}, {lab.exec_scanner("av", noting)}));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    const ImportRecord r = lab.admit(*importer, archive);
    REQUIRE(r.state == ImportState::rejected);
    CHECK(r.state_reason == "policy refused it: max_files: 2 payload files; at most 1 allowed");
    CHECK(r.scans.empty());
    CHECK_FALSE(fs::exists(marker));
    CHECK_FALSE(lab.current().has_value());

    // The rule results are on record, and were each reported.
    const auto failed = std::count_if(r.rules.begin(), r.rules.end(), [](const RuleResult& x) { return !x.passed; });
    CHECK(failed == 1);
    CHECK(lab.events("rule_result").size() == r.rules.size());
}

TEST_CASE("importer: a hanging scanner holds the bundle; a rescan with a working scanner continues", "[policy][import]") {
    Lab lab;
    const fs::path hang = lab.script("hang.sh", "sleep 30\n");
    const fs::path clean = lab.script("clean.sh", "exit 0\n");
    const ChannelPolicy c = lab.channel(ApprovalMode::automatic, {"av"});
    auto importer = lab.open(Lab::policy({c}, {lab.exec_scanner("av", hang, 300ms, 2, OnScannerError::hold)}));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));

    const auto start = std::chrono::steady_clock::now();
    const ImportRecord held = lab.admit(*importer, archive);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(took < 3s);  // two 300 ms attempts, not sleep 30
    REQUIRE(held.state == ImportState::held);
    CHECK(contains(held.state_reason, "scanner av failed after 2 attempt(s)"));
    CHECK(contains(held.state_reason, "timed out"));
    CHECK(contains(held.state_reason, "sluice rescan " + id.substr(0, 12)));
    REQUIRE(held.scans.size() == 1);
    CHECK(held.scans[0].verdict == Verdict::error);
    CHECK(held.scans[0].attempts == 2);
    CHECK(lab.heard("bundle_held", id));
    CHECK_FALSE(lab.current().has_value());
    CHECK(lab.record_on_disk(id).state == ImportState::held);
    CHECK(contains(error_of(importer->approve(id, kOlivia, "skip the scan")), "is held"));

    SECTION("rescan after the scanner is fixed") {
        importer->set_policy(Lab::policy({c}, {lab.exec_scanner("av", clean)}));
        const ImportRecord r = take(importer->rescan(id.substr(0, 12), kOlivia, lab.stop));
        INFO("state_reason: " << r.state_reason);
        CHECK(r.state == ImportState::released);
        REQUIRE(r.scans.size() == 1);  // the failed scan is replaced, not appended
        CHECK(r.scans[0].verdict == Verdict::clean);
        CHECK(lab.current() == "1.0.0");
        const bool asked = std::any_of(r.history.begin(), r.history.end(), [](const Transition& t) {
            return t.actor == "olivia" && t.note == "rescan requested";
        });
        CHECK(asked);
        CHECK(lab.heard("rescan_requested", id));
        CHECK_FALSE(importer->rescan(id, kOlivia, lab.stop).ok());  // released: not held any more
    }
    SECTION("an officer rejects it instead") {
        const ImportRecord r = take(importer->reject(id, kOscar, "scanner will not come back"));
        CHECK(r.state == ImportState::rejected);
        CHECK(lab.heard("bundle_rejected", id));
    }
}

TEST_CASE("importer: a failing scanner with on_error = reject rejects the bundle", "[policy][import]") {
    Lab lab;
    const fs::path hang = lab.script("hang.sh", "sleep 30\n");
    auto importer = lab.open(Lab::policy({lab.channel(ApprovalMode::automatic, {"av"})},
                                         {lab.exec_scanner("av", hang, 300ms, 2, OnScannerError::reject)}));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    const ImportRecord r = lab.admit(*importer, archive);
    REQUIRE(r.state == ImportState::rejected);
    CHECK(contains(r.state_reason, "scanner av failed after 2 attempt(s)"));
    CHECK(contains(r.state_reason, "timed out"));
    CHECK(lab.heard("bundle_rejected", id));
    CHECK_FALSE(lab.current().has_value());
}

TEST_CASE("importer: a bundle for a channel without a policy is held, naming the channel, until the policy has it",
          "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::automatic));
    const auto [id, archive] = lab.send(Lab::release("1.0.0", "datasets"));
    const ImportRecord r = lab.admit(*importer, archive);
    REQUIRE(r.state == ImportState::held);
    CHECK(r.channel == "datasets");
    CHECK(contains(r.state_reason, "no import policy for channel datasets: add [channels.datasets] to /etc/sluice/policy.toml"));
    CHECK(contains(r.state_reason, "sluice rescan " + id.substr(0, 12)));
    CHECK(r.rules.empty());
    CHECK(r.scans.empty());
    CHECK_FALSE(fs::exists(lab.paths.releases / "datasets"));
    CHECK(lab.heard("bundle_held", id, "datasets"));
    CHECK(importer->backlog().to_admit.empty());
    // Held, so an officer can still reject it.
    CHECK(importer->reject(id, Actor{"oscar", 1002}, "not for this site").ok());
}

TEST_CASE("importer: an archive not named <bundle-id>.tar is refused", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::automatic));
    const std::string id = lab.make_bag(Lab::release("1.0.0"));
    const fs::path archive = lab.ship(id);
    const fs::path renamed = lab.paths.incoming / "bundle.tar";
    fs::rename(archive, renamed);
    auto r = importer->admit(renamed, lab.stop);
    REQUIRE_FALSE(r.ok());
    CHECK(contains(r.error().message, "not named <bundle-id>.tar"));
    CHECK(fs::exists(renamed));
    CHECK(importer->list().empty());
}

TEST_CASE("importer: the same bundle again is a replay; the first record stands", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::automatic));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    const ImportRecord first = lab.admit(*importer, archive);
    REQUIRE(first.state == ImportState::released);
    const std::string record_bytes = test::read_file(lab.paths.state / "imports" / (id + ".json"));
    const auto released_events = lab.events("bundle_released").size();

    const fs::path again = lab.ship(id);
    REQUIRE(fs::exists(again));
    const ImportRecord replay = lab.admit(*importer, again);
    CHECK(replay.state == ImportState::released);
    CHECK(replay.history.size() == first.history.size());
    CHECK(replay.released_at == first.released_at);
    CHECK_FALSE(fs::exists(again));
    CHECK(test::read_file(lab.paths.state / "imports" / (id + ".json")) == record_bytes);
    CHECK(lab.heard("bundle_replayed", id));
    CHECK(lab.events("bundle_released").size() == released_events);
    CHECK(importer->history("models").released == std::vector<std::string>{"1.0.0"});
    CHECK(importer->list().size() == 1);
}

TEST_CASE("importer: an older version is refused; a signed rollback waits for an officer even on auto", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::automatic));
    REQUIRE(lab.import(*importer, Lab::release("2.0.0")).state == ImportState::released);

    const ImportRecord older = lab.import(*importer, Lab::release("1.0.0"));
    REQUIRE(older.state == ImportState::rejected);
    CHECK(contains(older.state_reason, "version: 1.0.0 is not newer than 2.0.0"));
    CHECK(lab.current() == "2.0.0");

    bundle::Release rb = Lab::release("1.5.0");
    rb.rollback = true;
    rb.rollback_to = "2.0.0";
    const auto [id, archive] = lab.send(rb);
    const ImportRecord pending = lab.admit(*importer, archive);
    INFO("state_reason: " << pending.state_reason);
    REQUIRE(pending.state == ImportState::pending_approval);
    CHECK(pending.approval_mode == "manual");
    CHECK(pending.approvals_required == 1);
    REQUIRE_FALSE(pending.history.empty());
    CHECK(contains(pending.history.back().note, "signed rollback"));
    CHECK(lab.current() == "2.0.0");
    CHECK(lab.heard("approval_pending", id));

    const ImportRecord released = take(importer->approve(id, kOlivia, "1.5.0 is the audited one"));
    CHECK(released.state == ImportState::released);
    CHECK(lab.current() == "1.5.0");
    const ChannelHistory h = importer->history("models");
    CHECK(h.highest_released == "2.0.0");  // a rollback does not lower the bar
    CHECK(h.current == "1.5.0");
}

TEST_CASE("importer: a signed rollback equal by version order still waits for an officer", "[policy][import]") {
    // "2.0.0+rebuild" orders equal to "2.0.0" (build metadata is ignored): the
    // version rule accepts it only as a signed rollback that an officer approves.
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::automatic));
    REQUIRE(lab.import(*importer, Lab::release("2.0.0")).state == ImportState::released);

    SECTION("not flagged as a rollback: refused") {
        const ImportRecord r = lab.import(*importer, Lab::release("2.0.0+rebuild"));
        CHECK(r.state == ImportState::rejected);
        CHECK(lab.current() == "2.0.0");
    }
    SECTION("flagged as a rollback: pending, never released automatically") {
        bundle::Release rb = Lab::release("2.0.0+rebuild");
        rb.rollback = true;
        const ImportRecord r = lab.import(*importer, rb);
        INFO("state_reason: " << r.state_reason);
        CHECK(r.state == ImportState::pending_approval);
        CHECK(lab.current() == "2.0.0");
    }
}

TEST_CASE("importer: releases newest first; rollback to rollback_to, the next older, or a named version", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::automatic, false));
    std::map<std::string, std::string> ids;
    for (const auto& [version, rollback_to] : std::vector<std::pair<std::string, std::string>>{
             {"1.0.0", "0.9.0"}, {"1.1.0", "1.0.0"}, {"1.2.0", "1.0.0"}}) {
        bundle::Release rel = Lab::release(version);
        rel.rollback_to = rollback_to;
        const ImportRecord r = lab.import(*importer, rel);
        REQUIRE(r.state == ImportState::released);
        ids[version] = r.bundle_id;
    }

    auto entries = take(importer->releases("models"));
    REQUIRE(entries.size() == 3);
    CHECK(entries[0].version == "1.2.0");
    CHECK(entries[1].version == "1.1.0");
    CHECK(entries[2].version == "1.0.0");
    CHECK(entries[0].current);
    CHECK_FALSE(entries[1].current);
    CHECK_FALSE(entries[2].current);
    for (const auto& e : entries) {
        CHECK(e.bundle_id == ids[e.version]);
        CHECK(e.released_by == "auto");
        CHECK(e.released_at.has_value());
    }
    CHECK(contains(error_of(importer->releases("nope")), "no releases on channel nope"));

    CHECK(contains(error_of(importer->rollback("models", std::nullopt, kOlivia, " ")), "needs a reason"));
    CHECK(contains(error_of(importer->rollback("empty", std::nullopt, kOlivia, "why")), "no current release"));

    // By default: 1.2.0's own rollback_to (1.0.0), not merely the next older (1.1.0).
    const RollbackOutcome back = take(importer->rollback("models", std::nullopt, kOlivia, "1.2.0 misbehaves"));
    CHECK(back.channel == "models");
    CHECK(back.from == "1.2.0");
    CHECK(back.to == "1.0.0");
    CHECK(lab.current() == "1.0.0");
    CHECK(importer->history("models").current == "1.0.0");
    entries = take(importer->releases("models"));
    REQUIRE(entries.size() == 3);
    CHECK(entries[2].version == "1.0.0");
    CHECK(entries[2].current);
    CHECK_FALSE(entries[0].current);
    const auto rolled = lab.events("channel_rolled_back");
    REQUIRE(rolled.size() == 1);
    CHECK(rolled[0].fields.value("channel", "") == "models");
    CHECK(rolled[0].fields.value("from", "") == "1.2.0");
    CHECK(rolled[0].fields.value("to", "") == "1.0.0");
    CHECK(rolled[0].fields.value("actor", "") == "olivia");
    CHECK(rolled[0].fields.value("reason", "") == "1.2.0 misbehaves");

    auto not_kept = importer->rollback("models", std::string("0.9.0"), kOlivia, "older still");
    REQUIRE_FALSE(not_kept.ok());
    CHECK(contains(not_kept.error().message, "version 0.9.0 of channel models is not kept here (kept: 1.0.0, 1.1.0, 1.2.0)"));
    CHECK(contains(error_of(importer->rollback("models", std::string("1.0.0"), kOlivia, "again")),
                   "already the current release"));
    CHECK(lab.current() == "1.0.0");

    const RollbackOutcome forward = take(importer->rollback("models", std::string("1.2.0"), kOscar, "fixed upstream"));
    CHECK(forward.from == "1.0.0");
    CHECK(forward.to == "1.2.0");
    CHECK(lab.current() == "1.2.0");

    // A release whose rollback_to is not kept: the next older kept version.
    bundle::Release rel = Lab::release("1.3.0");
    rel.rollback_to = "0.5.0";
    REQUIRE(lab.import(*importer, rel).state == ImportState::released);
    CHECK(take(importer->rollback("models", std::nullopt, kOlivia, "1.3.0 misbehaves")).to == "1.2.0");
    CHECK(lab.current() == "1.2.0");
}

TEST_CASE("importer: releases beyond keep_releases are pruned; a pruned version comes back as a signed rollback",
          "[policy][import]") {
    Lab lab;
    ChannelPolicy c = lab.channel(ApprovalMode::automatic);
    c.keep_releases = 2;
    auto importer = lab.open(Lab::policy({c}));
    for (const char* v : {"1.0.0", "1.1.0", "1.2.0"}) REQUIRE(lab.import(*importer, Lab::release(v)).state == ImportState::released);

    CHECK_FALSE(fs::exists(lab.release_dir("1.0.0")));
    CHECK(fs::is_directory(lab.release_dir("1.1.0")));
    CHECK(fs::is_directory(lab.release_dir("1.2.0")));
    const auto entries = take(importer->releases("models"));
    REQUIRE(entries.size() == 2);
    CHECK(entries[0].version == "1.2.0");
    CHECK(entries[1].version == "1.1.0");
    const auto pruned = lab.events("releases_pruned");
    REQUIRE(pruned.size() == 1);
    CHECK(pruned[0].fields.at("removed") == json::array({"1.0.0"}));
    CHECK(importer->history("models").released == std::vector<std::string>{"1.0.0", "1.1.0", "1.2.0"});

    auto gone = importer->rollback("models", std::string("1.0.0"), kOlivia, "back to 1.0.0");
    REQUIRE_FALSE(gone.ok());
    CHECK(contains(gone.error().message, "must be sent again as a signed rollback bundle"));

    SECTION("a signed rollback of a version still kept points at sluice rollback") {
        bundle::Release rb = Lab::release("1.1.0");
        rb.rollback = true;
        const ImportRecord r = lab.import(*importer, rb);
        CHECK(r.state == ImportState::rejected);
        CHECK(contains(r.state_reason, "sluice rollback models --to 1.1.0"));
        CHECK(lab.current() == "1.2.0");
    }
    SECTION("a signed rollback re-ships the pruned version, with an officer's approval") {
        bundle::Release rb = Lab::release("1.0.0");
        rb.rollback = true;
        const ImportRecord r = lab.import(*importer, rb);
        INFO("state_reason: " << r.state_reason);
        REQUIRE(r.state == ImportState::pending_approval);
        const ImportRecord done = take(importer->approve(r.bundle_id, kOlivia, "back to the audited 1.0.0"));
        CHECK(done.state == ImportState::released);
        CHECK(lab.current() == "1.0.0");
        CHECK(fs::is_directory(lab.release_dir("1.0.0")));
        // Pruning never removes the current release.
        CHECK(take(importer->releases("models")).size() == 3);
    }
}

TEST_CASE("importer: a restart keeps pending approvals and lists the backlog", "[policy][import]") {
    Lab lab;
    const auto policy = lab.simple_policy(ApprovalMode::manual);
    auto importer = lab.open(policy);

    // A: pending approval.
    const auto [a, a_archive] = lab.send(Lab::release("1.0.0"));
    REQUIRE(lab.admit(*importer, a_archive).state == ImportState::pending_approval);
    // B: approved, but its release failed (its quarantine copy vanished).
    const auto [b, b_archive] = lab.send(Lab::release("1.1.0"));
    REQUIRE(lab.admit(*importer, b_archive).state == ImportState::pending_approval);
    const fs::path bq = lab.paths.quarantine / b;
    for (const auto& e : fs::recursive_directory_iterator(bq)) {
        if (e.is_directory()) ::chmod(e.path().c_str(), 0755);
    }
    ::chmod(bq.c_str(), 0755);
    fs::remove_all(bq);
    const ImportRecord stuck = take(importer->approve(b, kOlivia, "looks right"));
    CHECK(stuck.state == ImportState::approved);
    CHECK(contains(stuck.state_reason, "release failed"));
    CHECK(contains(stuck.state_reason, "is missing"));
    CHECK(stuck.attempts == 1);
    CHECK(lab.heard("release_failed", b));
    // C: delivered but never admitted.
    const std::string c = lab.make_bag(Lab::release("1.2.0"));
    const fs::path c_archive = lab.ship(c);

    importer.reset();
    importer = lab.open(policy);

    const ImportRecord a_again = take(importer->find(a));
    CHECK(a_again.state == ImportState::pending_approval);
    CHECK(a_again.approvals_required == 1);
    const auto pending = importer->list({ImportState::pending_approval});
    REQUIRE(pending.size() == 1);
    CHECK(pending[0].bundle_id == a);
    const ImportRecord b_again = take(importer->find(b));
    CHECK(b_again.state == ImportState::approved);
    CHECK(b_again.approvals.size() == 1);

    const Importer::Backlog backlog = importer->backlog();
    CHECK(backlog.to_admit == std::vector<fs::path>{c_archive});
    CHECK(backlog.to_release == std::vector<std::string>{b});

    // The work carries on in the new process.
    CHECK(lab.admit(*importer, c_archive).state == ImportState::pending_approval);
    CHECK(take(importer->approve(a, kOscar, "reviewed after the restart")).state == ImportState::released);
    CHECK(lab.current() == "1.0.0");
    CHECK(importer->backlog().to_admit.empty());
}

TEST_CASE("importer: a damaged state file is set aside, named, and start-up goes on", "[policy][import]") {
    Lab lab;
    const auto policy = lab.simple_policy(ApprovalMode::manual);
    { auto first = lab.open(policy); }
    const fs::path bad = lab.paths.state / "imports" / (std::string(64, 'a') + ".json");
    write_file(bad, "{\"schema\": \"sluice.import/1\", \"bundle\": ");
    auto importer = lab.open(policy);
    CHECK_FALSE(fs::exists(bad));
    CHECK(fs::exists(bad.string() + ".damaged"));
    CHECK(importer->list().empty());
    CHECK(lab.events("import_record_damaged").size() == 1);
}

TEST_CASE("importer: post-release hooks get the released path and version; a failing hook leaves the release standing",
          "[policy][import]") {
    Lab lab;
    const fs::path out = lab.tmp / "hook-args.txt";
    const fs::path recorder = lab.script("record.sh", "out=\"$1\"; shift\nprintf '%s\\n' \"$@\" \"$SLUICE_VERSION\" > \"$out\"\n");
    ChannelPolicy c = lab.channel(ApprovalMode::automatic);
    c.post_release = {
        PostReleaseHook{"record", {"/bin/sh", recorder.string(), out.string(), "{path}", "{version}", "{channel}", "{bundle}", "v={version}"}, 5s},
        PostReleaseHook{"broken", {"/bin/sh", "-c", "echo registry unreachable; exit 3"}, 5s},
    };
    auto importer = lab.open(Lab::policy({c}));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    const ImportRecord r = lab.admit(*importer, archive);

    REQUIRE(r.state == ImportState::released);
    CHECK(lab.current() == "1.0.0");
    REQUIRE(fs::exists(out));
    CHECK(lines_of(test::read_file(out)) ==
          std::vector<std::string>{lab.release_dir("1.0.0").string(), "1.0.0", "models", id, "v=1.0.0", "1.0.0"});

    REQUIRE(r.hooks.size() == 2);
    CHECK(r.hooks[0].name == "record");
    CHECK(r.hooks[0].ok);
    CHECK(r.hooks[0].result == "exit 0");
    CHECK(r.hooks[1].name == "broken");
    CHECK_FALSE(r.hooks[1].ok);
    CHECK(r.hooks[1].result == "exit 3");
    CHECK(contains(r.hooks[1].output, "registry unreachable"));

    const ImportRecord disk = lab.record_on_disk(id);
    CHECK(disk.state == ImportState::released);
    REQUIRE(disk.hooks.size() == 2);
    CHECK_FALSE(disk.hooks[1].ok);
    CHECK(lab.heard("post_release_hook", id));
    CHECK(lab.heard("post_release_hook_failed", id));
}

TEST_CASE("importer: the event sink hears every step with the bundle id", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::manual));

    bundle::Release r1 = Lab::release("1.0.0");
    const auto [a, a_archive] = lab.send(r1);
    REQUIRE(lab.admit(*importer, a_archive).state == ImportState::pending_approval);
    CHECK(lab.heard("bundle_quarantined", a, std::nullopt));
    for (const char* name : {"rule_result", "scan_result", "approval_pending"}) {
        INFO(name);
        CHECK(lab.heard(name, a));
    }
    for (const auto& e : lab.events("rule_result")) {
        CHECK(e.fields.contains("rule"));
        CHECK(e.fields.value("outcome", "") == "pass");
    }
    const auto scans = lab.events("scan_result");
    REQUIRE(scans.size() == 1);
    CHECK(scans[0].fields.value("scanner", "") == "av");
    CHECK(scans[0].fields.value("outcome", "") == "clean");

    REQUIRE(take(importer->approve(a, kOlivia, "ok")).state == ImportState::released);
    CHECK(lab.heard("bundle_approved", a));
    CHECK(lab.heard("bundle_released", a));
    const auto approved = lab.events("bundle_approved");
    REQUIRE(approved.size() == 1);
    CHECK(approved[0].fields.value("actor", "") == "olivia");

    const auto [b, b_archive] = lab.send(Lab::release("1.1.0"));
    REQUIRE(lab.admit(*importer, b_archive).state == ImportState::pending_approval);
    REQUIRE(take(importer->reject(b, kOscar, "not on the plan")).state == ImportState::rejected);
    const auto rejected = lab.events("bundle_rejected");
    REQUIRE(rejected.size() == 1);
    CHECK(rejected[0].fields.value("bundle", "") == b);
    CHECK(rejected[0].fields.value("actor", "") == "oscar");
    CHECK(rejected[0].fields.value("reason", "") == "not on the plan");

    bundle::Release r3 = Lab::release("1.2.0");
    r3.rollback_to = "1.0.0";
    const auto [c, c_archive] = lab.send(r3);
    REQUIRE(lab.admit(*importer, c_archive).state == ImportState::pending_approval);
    REQUIRE(take(importer->approve(c, kOlivia, "ok")).state == ImportState::released);
    REQUIRE(take(importer->rollback("models", std::nullopt, kOscar, "1.2.0 misbehaves")).to == "1.0.0");
    const auto rolled = lab.events("channel_rolled_back");
    REQUIRE(rolled.size() == 1);
    CHECK(rolled[0].fields.value("channel", "") == "models");
    // The bundle now current again: the audit log can tie the switch to a bundle.
    CHECK(rolled[0].fields.value("bundle", "") == a);
}

TEST_CASE("importer: approvals out of order never move current backwards", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::manual));
    const auto [a, a_archive] = lab.send(Lab::release("1.4.0"));
    const auto [b, b_archive] = lab.send(Lab::release("1.5.0"));
    REQUIRE(lab.admit(*importer, a_archive).state == ImportState::pending_approval);
    REQUIRE(lab.admit(*importer, b_archive).state == ImportState::pending_approval);
    REQUIRE(take(importer->approve(b, kOlivia, "the newer one")).state == ImportState::released);
    const ImportRecord late = take(importer->approve(a, kOlivia, "the older one, approved late"));
    CHECK(late.state == ImportState::rejected);
    CHECK(contains(late.state_reason, "1.4.0 is no longer newer than 1.5.0"));
    CHECK(contains(late.state_reason, "signed rollback"));
    CHECK(lab.current() == "1.5.0");
    CHECK_FALSE(fs::exists(lab.paths.releases / "models" / "1.4.0"));
}

TEST_CASE("importer: a quarantine altered after the checks is not released", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::manual));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    REQUIRE(lab.admit(*importer, archive).state == ImportState::pending_approval);
    // Something running as the daemon's user rewrites a payload file and its manifest line.
    const fs::path q = lab.paths.quarantine / id;
    ::chmod(q.c_str(), 0750);
    ::chmod((q / "data").c_str(), 0750);
    const fs::path model = q / "data" / "model.json";
    ::chmod(model.c_str(), 0640);
    write_file(model, "{\"evil\": true}\n");
    ::chmod((q / "manifest-sha256.txt").c_str(), 0640);
    std::string manifest;
    {
        std::ifstream in(q / "manifest-sha256.txt");
        std::stringstream text;
        text << in.rdbuf();
        manifest = text.str();
    }
    const std::string digest = bundle::to_hex(bundle::sha256("{\"evil\": true}\n"));
    const auto line = manifest.find("  data/model.json");
    REQUIRE(line != std::string::npos);
    manifest.replace(line - 64, 64, digest);
    write_file(q / "manifest-sha256.txt", manifest);

    const ImportRecord r = take(importer->approve(id, kOlivia, "looks right"));
    CHECK(r.state == ImportState::rejected);
    CHECK(contains(r.state_reason, "the release copy does not verify"));
    CHECK_FALSE(lab.current().has_value());
    CHECK_FALSE(fs::exists(lab.paths.releases / "models" / "1.0.0"));
}

TEST_CASE("importer: files beside data/ that are not the bag's own tag files are refused", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::automatic));
    const std::string id = lab.make_bag(Lab::release("1.0.0"));
    // A tag file BagIt would accept (listed in the tag manifest, bag re-signed).
    const fs::path bag = lab.bag(id);
    write_file(bag / "tool.exe", "MZ not really\n");
    {
        std::ofstream out(bag / "tagmanifest-sha256.txt", std::ios::app);
        out << bundle::to_hex(bundle::sha256("MZ not really\n")) << "  tool.exe\n";
    }
    fs::remove_all(bag / "signatures");
    REQUIRE(bundle::sign_bag(bag, lab.keys / "alice.key").ok());
    std::ifstream in(bag / "tagmanifest-sha256.txt", std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const std::string new_id = bundle::to_hex(bundle::sha256(text.str()));
    lab.rename_bag(id, new_id);
    const fs::path archive = lab.ship(new_id);
    const ImportRecord r = lab.admit(*importer, archive);
    CHECK(r.state == ImportState::rejected);
    CHECK(contains(r.state_reason, "bag_layout"));
    CHECK(contains(r.state_reason, "tool.exe"));
    CHECK_FALSE(lab.current().has_value());
}

TEST_CASE("importer: rejecting an approved bundle whose switch failed removes its installed copy", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::manual));
    const auto [id, archive] = lab.send(Lab::release("1.0.0"));
    REQUIRE(lab.admit(*importer, archive).state == ImportState::pending_approval);
    // The switch of `current` fails: a directory squats where the symlink goes.
    fs::create_directories(lab.paths.releases / "models" / "current" / "squatter");
    const ImportRecord stuck = take(importer->approve(id, kOlivia, "ok"));
    REQUIRE(stuck.state == ImportState::approved);
    CHECK(contains(stuck.state_reason, "release failed"));
    CHECK(fs::exists(lab.paths.releases / "models" / "1.0.0"));
    const ImportRecord r = take(importer->reject(id, kOscar, "give up on it"));
    CHECK(r.state == ImportState::rejected);
    CHECK_FALSE(fs::exists(lab.paths.releases / "models" / "1.0.0"));
}

TEST_CASE("importer: nothing is decided, released or rolled back that the audit log did not take", "[policy][import]") {
    Lab lab;
    auto importer = lab.open(lab.simple_policy(ApprovalMode::manual));
    const auto [a, a_archive] = lab.send(Lab::release("1.0.0"));

    // Quarantine is not recorded: the archive stays in incoming/ for the retry.
    lab.audit_down = true;
    auto refused = importer->admit(a_archive, lab.stop);
    REQUIRE_FALSE(refused);
    CHECK_THAT(refused.error().message, Catch::Contains("not recorded in the audit log"));
    CHECK(fs::exists(a_archive));
    lab.audit_down = false;
    REQUIRE(lab.admit(*importer, a_archive).state == ImportState::pending_approval);

    // An approval the log refuses is not an approval.
    lab.audit_down = true;
    auto approve = importer->approve(a, kOlivia, "ok");
    REQUIRE_FALSE(approve);
    CHECK_THAT(approve.error().message, Catch::Contains("audit database is full"));
    CHECK(take(importer->find(a)).state == ImportState::pending_approval);
    CHECK(take(importer->find(a)).approvals.empty());
    auto reject = importer->reject(a, kOscar, "no");
    REQUIRE_FALSE(reject);
    CHECK(take(importer->find(a)).state == ImportState::pending_approval);
    lab.audit_down = false;
    REQUIRE(take(importer->approve(a, kOlivia, "ok")).state == ImportState::released);
    CHECK(lab.heard("release_started", a));

    bundle::Release r2 = Lab::release("1.1.0");
    r2.rollback_to = "1.0.0";
    const auto [b, b_archive] = lab.send(r2);
    REQUIRE(lab.admit(*importer, b_archive).state == ImportState::pending_approval);
    REQUIRE(take(importer->approve(b, kOlivia, "ok")).state == ImportState::released);

    // A rollback the log refuses does not switch current.
    lab.audit_down = true;
    auto rb = importer->rollback("models", std::nullopt, kOscar, "1.1.0 misbehaves");
    REQUIRE_FALSE(rb);
    CHECK_THAT(rb.error().message, Catch::Contains("not recorded in the audit log"));
    CHECK(fs::read_symlink(lab.paths.releases / "models" / "current").filename() == "1.1.0");
    lab.audit_down = false;
    REQUIRE(take(importer->rollback("models", std::nullopt, kOscar, "1.1.0 misbehaves")).to == "1.0.0");
    CHECK(lab.events("rollback_started").size() == 1);
}
