#include <catch2/catch.hpp>

#include <sstream>
#include <vector>

#include "sluice/audit/report.hpp"

using namespace sluice;
using audit::Record;
using nlohmann::json;

namespace {

const std::string kBundle = "3f2a91c0d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f";
const std::string kOther = "77aa0000d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f";

const json kRelease = {{"changes", "Retrained on Q3 data"},
                       {"reason", "Fixes the accuracy regression in 1.4.0"},
                       {"approved_by", "carol (release board)"},
                       {"rollback_to", "1.4.0"},
                       {"previous_version", "1.4.0"},
                       {"created_by", "alice"},
                       {"created_at", "2026-11-29T14:00:00Z"}};

/// Builds a trace as the daemons would record it: sender records (upstream) then the receiver's.
class Trace {
public:
    Trace& sender(std::string time, std::string event, json details = json::object(), std::string actor = "system",
                  std::string outcome = "ok") {
        return add(true, std::move(time), std::move(event), std::move(details), std::move(actor), std::move(outcome));
    }
    Trace& receiver(std::string time, std::string event, json details = json::object(), std::string actor = "system",
                    std::string outcome = "ok") {
        return add(false, std::move(time), std::move(event), std::move(details), std::move(actor), std::move(outcome));
    }
    /// A receiver record of another bundle (context: the channel's other releases and rollbacks).
    Trace& other(std::string bundle, std::string channel, std::string time, std::string event, json details,
                 std::string actor = "system", std::string outcome = "ok") {
        add(false, std::move(time), std::move(event), std::move(details), std::move(actor), std::move(outcome));
        records_.back().bundle = std::move(bundle);
        records_.back().channel = std::move(channel);
        return *this;
    }
    [[nodiscard]] const std::vector<Record>& records() const { return records_; }

private:
    Trace& add(bool upstream, std::string time, std::string event, json details, std::string actor, std::string outcome) {
        Record r;
        r.seq = upstream ? ++sender_seq_ : ++receiver_seq_;
        r.time = std::move(time);
        r.host = upstream ? "send-1" : "recv-1";
        r.side = upstream ? "sender" : "receiver";
        r.bundle = kBundle;
        r.channel = "models";
        r.event = std::move(event);
        r.actor = std::move(actor);
        r.outcome = std::move(outcome);
        r.details = details.dump();
        r.prev_hash = std::string(64, '0');
        r.hash = std::string(64, 'f');
        r.upstream = upstream;
        records_.push_back(std::move(r));
        return *this;
    }
    std::vector<Record> records_;
    std::int64_t sender_seq_ = 100;
    std::int64_t receiver_seq_ = 500;
};

Trace released_bundle() {
    Trace t;
    t.sender("2026-11-29T14:05:00.000Z", "bundle_submitted",
             {{"version", "1.5.0"}, {"path", "/srv/out/models-1.5.0.tar"}, {"release", kRelease}, {"signers", {"alice", "ci"}}},
             "alice")
        .sender("2026-11-29T14:05:02.000Z", "bundle_verified", {{"signers", {"alice", "ci"}}, {"archive_sha256", "ab"}, {"bytes", 4096}})
        .sender("2026-11-29T14:05:02.100Z", "bundle_queued", {{"job", 1}, {"priority", "normal"}, {"passes", 2}, {"transfer", 77}})
        .sender("2026-11-29T14:05:03.000Z", "pass_started", {{"transfer", 77}, {"pass", 1}, {"passes", 2}})
        .sender("2026-11-29T14:06:00.000Z", "pass_finished", {{"transfer", 77}, {"pass", 1}})
        .sender("2026-11-29T14:07:00.000Z", "bundle_sent", {{"transfer", 77}, {"passes", 2}})
        .receiver("2026-11-29T14:05:03.500Z", "transfer_started", {{"transfer", 77}, {"version", "1.5.0"}, {"bytes", 4096}, {"pass", 1}})
        .receiver("2026-11-29T14:06:00.500Z", "transfer_assembled", {{"transfer", 77}, {"bytes", 4096}})
        .receiver("2026-11-29T14:06:01.000Z", "bundle_received", {{"transfer", 77}, {"version", "1.5.0"}, {"signers", 2}, {"path", "/var/lib/sluice/incoming/x.tar"}})
        .receiver("2026-11-29T14:06:01.100Z", "upstream_events_recorded", {{"count", 5}, {"host", "send-1"}, {"signed_by", "ff00"}})
        .receiver("2026-11-29T14:06:02.000Z", "bundle_quarantined",
                  {{"version", "1.5.0"}, {"release", kRelease}, {"signers", {"alice", "ci"}}, {"payload_bytes", 4000}, {"payload_files", 3}})
        .receiver("2026-11-29T14:06:02.100Z", "rule_result", {{"rule", "signers"}, {"detail", "2 of 2 trusted signers"}}, "system", "pass")
        .receiver("2026-11-29T14:06:02.200Z", "rule_result", {{"rule", "version"}, {"detail", "1.5.0 is newer than 1.4.0"}}, "system", "pass")
        .receiver("2026-11-29T14:06:02.300Z", "scan_started", {{"scanner", "clamav"}})
        .receiver("2026-11-29T14:06:32.300Z", "scan_result", {{"scanner", "clamav"}, {"summary", "clamd unreachable after 3 attempts"}}, "system", "error")
        .receiver("2026-11-29T14:06:32.400Z", "bundle_held", {{"reason", "scanner clamav failed: clamd unreachable"}}, "system", "held")
        .receiver("2026-11-29T15:00:00.000Z", "scan_started", {{"scanner", "clamav"}})
        .receiver("2026-11-29T15:00:05.000Z", "scan_result", {{"scanner", "clamav"}, {"summary", "no findings in 3 files"}}, "system", "clean")
        .receiver("2026-11-29T15:00:05.100Z", "approval_pending",
                  {{"approvals_required", 2}, {"mode", "two-person"}, {"diff_against", "1.4.0"},
                   {"diff", {{"added", {"a", "b", "c"}}, {"removed", {"d"}}, {"changed", {"e", "f"}}}}},
                  "system", "pending")
        .receiver("2026-11-29T16:00:00.000Z", "approval_recorded",
                  {{"reason", "Eval report reviewed"}, {"uid", 1001}, {"approvals", 1}, {"approvals_required", 2}}, "bob", "approved")
        // The approval that completes the count is recorded as bundle_approved (not also approval_recorded).
        .receiver("2026-11-29T16:30:00.000Z", "bundle_approved",
                  {{"reason", "Scans clean, on the plan"}, {"uid", 1002}, {"approvals", 2}, {"approvals_required", 2}}, "dave", "approved")
        .receiver("2026-11-29T16:30:02.000Z", "bundle_released",
                  {{"version", "1.5.0"}, {"path", "/srv/releases/models/1.5.0"}, {"previous", "1.4.0"}}, "dave", "released")
        .receiver("2026-11-29T16:30:03.000Z", "post_release_hook", {{"hook", "registry"}, {"result", "exit 0"}})
        .receiver("2026-11-29T16:30:04.000Z", "post_release_hook_failed", {{"hook", "notify"}, {"result", "exit 2: connection refused"}}, "system", "error")
        .receiver("2026-11-30T09:00:00.000Z", "channel_rolled_back", {{"from", "1.5.0"}, {"to", "1.4.0"}, {"reason", "1.5.0 misbehaves"}}, "erin", "rolled_back");
    return t;
}

std::string render(const json& report) {
    std::ostringstream out;
    audit::write_report(out, report);
    return out.str();
}

bool has_line(const std::string& text, const std::string& line) {
    std::istringstream in(text);
    std::string l;
    while (std::getline(in, l)) {
        if (l == line) return true;
    }
    return false;
}

}  // namespace

TEST_CASE("report: the four answers of a released bundle, both sides", "[audit]") {
    const Trace t = released_bundle();
    const json r = audit::build_report(kBundle.substr(0, 8), t.records());  // a prefix resolves to the id

    CHECK(r["bundle"] == kBundle);
    CHECK(r["channel"] == "models");
    CHECK(r["version"] == "1.5.0");
    CHECK(r["signed_rollback"].is_null());
    CHECK(r["state"] == json{{"name", "released"}, {"event", "bundle_released"}, {"time", "2026-11-29T16:30:02.000Z"}});
    CHECK(r["events"] == 25);
    CHECK(r["sides"] == json{"sender", "receiver"});

    CHECK(r["what_changed"] == json{{"changes", "Retrained on Q3 data"},
                                    {"version", "1.5.0"},
                                    {"previous_version", "1.4.0"},
                                    {"diff", {{"against", "1.4.0"}, {"added", 3}, {"removed", 1}, {"changed", 2}}}});
    CHECK(r["why"] == "Fixes the accuracy regression in 1.4.0");
    CHECK(r["created"] == json{{"by", "alice"}, {"at", "2026-11-29T14:00:00Z"}});

    const json& up = r["who_approved"]["upstream"];
    CHECK(up["approved_by"] == "carol (release board)");
    CHECK(up["signers"] == json{"alice", "ci"});
    CHECK(up["receiver_signers"] == json{"alice", "ci"});
    const json& im = r["who_approved"]["import"];
    CHECK(im["mode"] == "two-person");
    CHECK(im["approvals_required"] == 2);
    REQUIRE(im["approvals"].size() == 2);
    CHECK(im["approvals"][0] ==
          json{{"officer", "bob"}, {"uid", 1001}, {"time", "2026-11-29T16:00:00.000Z"}, {"reason", "Eval report reviewed"}});
    CHECK(im["approvals"][1]["officer"] == "dave");
    CHECK(im["approvals"][1]["uid"] == 1002);
    CHECK(im["decision"] == json{{"by", "dave"}, {"time", "2026-11-29T16:30:00.000Z"}, {"reason", "Scans clean, on the plan"}, {"automatic", false}});

    const json& how = r["how_to_roll_back"];
    CHECK(how["channel"] == "models");
    CHECK(how["to"] == "1.4.0");
    CHECK(how["command"] == "sluice rollback models --to 1.4.0 --reason \"…\"");
    CHECK(how["released"] == true);
    CHECK(how["target"]["status"] == "released");
    CHECK(how["target"]["evidence"] ==
          json{"it was the channel's current release when this bundle was released (2026-11-29T16:30:02.000Z)",
               "the channel was rolled back to it 2026-11-30T09:00:00.000Z by erin"});
    CHECK(how["rolled_back_from"] ==
          json::array({{{"time", "2026-11-30T09:00:00.000Z"}, {"actor", "erin"}, {"to", "1.4.0"}, {"reason", "1.5.0 misbehaves"}}}));

    REQUIRE(r["scans"].size() == 2);
    CHECK(r["scans"][0] == json{{"time", "2026-11-29T14:06:32.300Z"}, {"scanner", "clamav"}, {"outcome", "error"},
                                {"summary", "clamd unreachable after 3 attempts"}});
    CHECK(r["scans"][1]["outcome"] == "clean");
    CHECK(r["holds"].size() == 1);
    REQUIRE(r["rules"].size() == 2);
    CHECK(r["rules"][1] == json{{"time", "2026-11-29T14:06:02.200Z"}, {"rule", "version"}, {"outcome", "pass"},
                                {"detail", "1.5.0 is newer than 1.4.0"}});
    CHECK(r["release"] == json{{"time", "2026-11-29T16:30:02.000Z"}, {"actor", "dave"}, {"version", "1.5.0"},
                               {"path", "/srv/releases/models/1.5.0"}, {"previous", "1.4.0"}});
    CHECK(r["rejection"].is_null());
    CHECK(r["refusals"].empty());
    REQUIRE(r["hooks"].size() == 2);
    CHECK(r["hooks"][0]["ok"] == true);
    CHECK(r["hooks"][1] == json{{"time", "2026-11-29T16:30:04.000Z"}, {"hook", "notify"}, {"ok", false}, {"result", "exit 2: connection refused"}});
    CHECK(r["channel_rollbacks"].size() == 1);

    REQUIRE(r["hops"].size() == 25);
    CHECK(r["hops"][0] == json{{"seq", 101}, {"time", "2026-11-29T14:05:00.000Z"}, {"side", "sender"}, {"host", "send-1"},
                               {"event", "bundle_submitted"}, {"actor", "alice"}, {"outcome", "ok"}, {"upstream", true}});
    CHECK(r["hops"][6]["event"] == "transfer_started");
    CHECK(r["hops"][6]["upstream"] == false);
    CHECK(r["missing"].empty());
    CHECK(r["warnings"].empty());

    const std::string text = render(r);
    INFO(text);
    CHECK(has_line(text, "bundle      " + kBundle));
    CHECK(has_line(text, "channel     models   version 1.5.0"));
    CHECK(has_line(text, "state       released since 2026-11-29T16:30:02.000Z (bundle_released)"));
    CHECK(has_line(text, "  Retrained on Q3 data"));
    CHECK(has_line(text, "  version 1.5.0, follows 1.4.0"));
    CHECK(has_line(text, "  against current 1.4.0: 3 added, 1 removed, 2 changed"));
    CHECK(has_line(text, "  Fixes the accuracy regression in 1.4.0"));
    CHECK(has_line(text, "  upstream        carol (release board) (release.json approved_by)"));
    CHECK(has_line(text, "  signed by       alice, ci (at the sender)"));
    CHECK(has_line(text, "  at import       2 of 2 officer approval(s) (two-person)"));
    CHECK(has_line(text, "    2026-11-29T16:00:00.000Z  bob (uid 1001): \"Eval report reviewed\""));
    CHECK(has_line(text, "    2026-11-29T16:30:00.000Z  dave (uid 1002): \"Scans clean, on the plan\""));
    CHECK(has_line(text, "  command         sluice rollback models --to 1.4.0 --reason \"…\""));
    CHECK(has_line(text, "  rolled back     2026-11-30T09:00:00.000Z by erin to 1.4.0: \"1.5.0 misbehaves\""));
    CHECK(has_line(text, "  released?       1.4.0: it was the channel's current release when this bundle was released "
                         "(2026-11-29T16:30:02.000Z); the channel was rolled back to it 2026-11-30T09:00:00.000Z by erin"));
    CHECK(has_line(text, "  still kept?     not in the log: `sluice releases models` lists kept versions"));
    CHECK(has_line(text, "  pass signers: 2 of 2 trusted signers"));
    CHECK(has_line(text, "  2026-11-29T14:06:32.300Z  error  clamav: clamd unreachable after 3 attempts"));
    CHECK(has_line(text, "  2026-11-29T15:00:05.000Z  clean  clamav: no findings in 3 files"));
    CHECK(has_line(text, "  released 2026-11-29T16:30:02.000Z: version 1.5.0 to /srv/releases/models/1.5.0 (previous current 1.4.0)"));
    CHECK(has_line(text, "  2026-11-29T16:30:04.000Z  FAILED notify: exit 2: connection refused"));
    CHECK(has_line(text, "  2026-11-29T14:05:00.000Z  sender@send-1    bundle_submitted          alice   ok"));
    CHECK(text.find("not recorded") == std::string::npos);
}

TEST_CASE("report: missing pieces are shown as not recorded, never invented", "[audit]") {
    Trace t;
    t.receiver("2026-12-01T10:00:00.000Z", "transfer_started", {{"transfer", 9}, {"version", "1.6.0"}, {"bytes", 10}, {"pass", 1}})
        .receiver("2026-12-01T10:05:00.000Z", "transfer_incomplete", {{"transfer", 9}, {"missing", 3}, {"why", "3 blocks missing after 2 passes"}},
                  "system", "error");
    const json r = audit::build_report(kBundle, t.records());
    CHECK(r["version"] == "1.6.0");
    CHECK(r["state"]["name"] == "incomplete");
    CHECK(r["what_changed"]["changes"].is_null());
    CHECK(r["what_changed"]["diff"].is_null());
    CHECK(r["why"].is_null());
    CHECK(r["who_approved"]["upstream"]["approved_by"].is_null());
    CHECK(r["who_approved"]["upstream"]["signers"].is_null());
    CHECK(r["who_approved"]["import"]["decision"].is_null());
    CHECK(r["how_to_roll_back"]["to"].is_null());
    CHECK(r["how_to_roll_back"]["command"].is_null());
    CHECK(r["how_to_roll_back"]["target"]["status"].is_null());
    CHECK(r["release"].is_null());
    CHECK(r["refusals"] == json::array({{{"time", "2026-12-01T10:05:00.000Z"}, {"side", "receiver"}, {"event", "transfer_incomplete"},
                                         {"error", "3 blocks missing after 2 passes"}}}));
    CHECK(r["missing"] == json{"release.json: neither the sender's bundle_submitted nor the receiver's bundle_quarantined is in the log"});

    CHECK(render(r) ==
          "bundle      " + kBundle + "\n"
          "channel     models   version 1.6.0\n"
          "state       incomplete since 2026-12-01T10:05:00.000Z (transfer_incomplete)\n"
          "\n"
          "What changed\n"
          "  not recorded\n"
          "  version 1.6.0, follows not recorded\n"
          "  files against the current release: not recorded\n"
          "  created not recorded by not recorded\n"
          "\n"
          "Why\n"
          "  not recorded\n"
          "\n"
          "Who approved\n"
          "  upstream        not recorded (release.json approved_by)\n"
          "  signed by       not recorded (at the sender)\n"
          "  trusted signers not recorded (the channel's keys, at the receiver)\n"
          "  at import       not recorded\n"
          "\n"
          "How to roll back\n"
          "  to              not recorded (release.json rollback_to) on channel models\n"
          "  (this bundle was not released per the log: there is nothing of it to roll back)\n"
          "\n"
          "Rules\n"
          "  not recorded\n"
          "\n"
          "Scans\n"
          "  not recorded\n"
          "\n"
          "Decision\n"
          "  transfer_incomplete 2026-12-01T10:05:00.000Z (receiver): 3 blocks missing after 2 passes\n"
          "\n"
          "Rollbacks of the channel involving this version\n"
          "  none recorded\n"
          "\n"
          "Post-release hooks\n"
          "  none recorded\n"
          "\n"
          "Hops\n"
          "  2026-12-01T10:00:00.000Z  receiver@recv-1  transfer_started     system  ok\n"
          "  2026-12-01T10:05:00.000Z  receiver@recv-1  transfer_incomplete  system  error\n"
          "\n"
          "Not recorded\n"
          "  release.json: neither the sender's bundle_submitted nor the receiver's bundle_quarantined is in the log\n");
}

TEST_CASE("report: a scanner finding rejects; automatic approval; empty trace", "[audit]") {
    SECTION("found, rejected by the daemon: nothing to roll back") {
        Trace t;
        t.receiver("2026-12-01T10:00:00.000Z", "bundle_quarantined", {{"version", "1.6.0"}, {"release", kRelease}, {"signers", {"alice"}}})
            .receiver("2026-12-01T10:00:05.000Z", "scan_result", {{"scanner", "clamav"}, {"summary", "Eicar-Test-Signature in data/x"}}, "system", "found")
            .receiver("2026-12-01T10:00:05.100Z", "bundle_rejected", {{"reason", "clamav found Eicar-Test-Signature"}}, "system", "rejected");
        const json r = audit::build_report(kBundle, t.records());
        CHECK(r["state"]["name"] == "rejected");
        CHECK(r["scans"][0]["outcome"] == "found");
        CHECK(r["rejection"] == json{{"time", "2026-12-01T10:00:05.100Z"}, {"by", "system"}, {"reason", "clamav found Eicar-Test-Signature"}});
        CHECK(r["how_to_roll_back"]["released"] == false);
        CHECK(r["how_to_roll_back"]["target"]["status"] == "not recorded");
        CHECK(r["who_approved"]["upstream"]["signers"].is_null());  // only the receiver recorded signers
        CHECK(r["who_approved"]["upstream"]["receiver_signers"] == json{"alice"});
        const std::string text = render(r);
        CHECK(has_line(text, "  rejected 2026-12-01T10:00:05.100Z by system: \"clamav found Eicar-Test-Signature\""));
        CHECK(has_line(text, "  released?       1.4.0: not recorded in this trace"));
        CHECK(has_line(text, "  at import       not recorded"));
    }
    SECTION("approved by the daemon: auto") {
        Trace t;
        t.receiver("2026-12-01T10:00:00.000Z", "bundle_quarantined", {{"version", "1.6.0"}, {"release", kRelease}})
            .receiver("2026-12-01T10:00:06.000Z", "bundle_approved", {{"reason", "automatic: every rule and scanner passed"}}, "system", "approved");
        const json r = audit::build_report(kBundle, t.records());
        CHECK(r["who_approved"]["import"]["decision"]["automatic"] == true);
        CHECK(has_line(render(r), "  at import       auto (approved by the daemon 2026-12-01T10:00:06.000Z)"));
    }
    SECTION("no event at all") {
        const json r = audit::build_report(kBundle, {});
        CHECK(r["bundle"] == kBundle);
        CHECK(r["state"].is_null());
        CHECK(r["hops"].empty());
        CHECK(r["missing"].size() == 2);
        CHECK(has_line(render(r), "state       not recorded"));
    }
}

TEST_CASE("report: the channel's other records answer whether the rollback target was released", "[audit]") {
    Trace t;
    t.other(kOther, "models", "2026-11-01T09:00:00.000Z", "bundle_released", {{"version", "1.4.0"}, {"path", "/srv/releases/models/1.4.0"}})
        .other(kOther, "other-channel", "2026-11-01T09:00:00.000Z", "bundle_released", {{"version", "1.4.0"}})
        .other("", "models", "2026-11-02T09:00:00.000Z", "channel_rolled_back", {{"from", "1.3.0"}, {"to", "1.2.0"}, {"reason", "unrelated"}}, "erin",
               "rolled_back")
        .receiver("2026-12-01T10:00:00.000Z", "bundle_quarantined", {{"version", "1.5.0"}, {"release", kRelease}});
    const json r = audit::build_report(kBundle, t.records());
    CHECK(r["how_to_roll_back"]["target"]["evidence"] == json{"released 2026-11-01T09:00:00.000Z (bundle 77aa0000d4e5)"});
    CHECK(r["channel_rollbacks"].empty());  // 1.3.0 -> 1.2.0 does not involve 1.5.0
    CHECK(r["hops"].size() == 1);           // other bundles' records are context, not hops
    CHECK(r["events"] == 1);
}

TEST_CASE("report: sender and receiver disagreeing on release.json is a warning", "[audit]") {
    json changed = kRelease;
    changed["approved_by"] = "mallory";
    Trace t;
    t.sender("2026-12-01T09:00:00.000Z", "bundle_submitted", {{"version", "1.5.0"}, {"release", kRelease}}, "alice")
        .receiver("2026-12-01T10:00:00.000Z", "bundle_quarantined", {{"version", "1.5.0"}, {"release", changed}});
    const json r = audit::build_report(kBundle, t.records());
    CHECK(r["who_approved"]["upstream"]["approved_by"] == "mallory");  // the receiver's, as verified there
    REQUIRE(r["warnings"].size() == 1);
    CHECK(r["warnings"][0].get<std::string>().find("differs") != std::string::npos);
}

TEST_CASE("report: hostile values cannot reach the terminal raw; odd types count as not recorded", "[audit]") {
    Trace t;
    json release = kRelease;
    release["changes"] = "ok\x1b]0;pwned\x07";
    release["reason"] = 42;  // not a string
    release["rollback_to"] = "1.4.0; rm -rf /";
    t.receiver("2026-12-01T10:00:00.000Z", "bundle_quarantined", {{"version", "1.5.0"}, {"release", release}});
    const json r = audit::build_report(kBundle, t.records());
    CHECK(r["why"].is_null());
    CHECK(r["how_to_roll_back"]["command"] == "sluice rollback models --to '1.4.0; rm -rf /' --reason \"…\"");
    const std::string text = render(r);
    CHECK(text.find('\x1b') == std::string::npos);
    CHECK(text.find('\x07') == std::string::npos);
    CHECK(has_line(text, "  ok?]0;pwned?"));
}
