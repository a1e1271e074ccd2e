// Review of the audit log (issue 5): the reproducers of the review's findings,
// kept as regression tests now that they are fixed. Each TEST_CASE names its
// finding ([R1], [R2], …); the CHECKs state what the documentation promises.
// Run: build-review/tests/test_audit "[review]"   (one finding: "[R3]")

#include <catch2/catch.hpp>

#include <chrono>

#include "audit/audit_fixture.hpp"
#include "sluice/audit/hops.hpp"
#include "sluice/audit/service.hpp"

using namespace sluice;
using namespace sluice::test;
using nlohmann::json;

namespace {

const std::string kX(64, 'a');
const std::string kY(64, 'b');

/// Makes the next inserts into events fail (like a full disk) until heal() is called.
struct FailSwitch {
    const AuditFixture& f;
    explicit FailSwitch(const AuditFixture& fx) : f(fx) {
        REQUIRE(f.raw_sql("CREATE TABLE failswitch (x INTEGER); CREATE TRIGGER failing BEFORE INSERT ON events "
                          "WHEN EXISTS (SELECT 1 FROM failswitch) BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;")
                    .empty());
    }
    void fail() const { REQUIRE(f.raw_sql("INSERT INTO failswitch VALUES (1)").empty()); }
    void heal() const { REQUIRE(f.raw_sql("DELETE FROM failswitch").empty()); }
};

std::int64_t count_events(const AuditFixture& f, const std::string& name, const std::string& bundle = {}) {
    audit::Query q;
    q.event = name;
    q.bundle = bundle;
    q.limit = 100000;
    auto rows = f.reader()->query(q);
    REQUIRE(rows);
    return static_cast<std::int64_t>(rows->size());
}

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) {
        if (c == '\'') out += '\'';
        out += c;
    }
    return out + "'";
}

/// A hop record of `bundle` from a fresh sender log (its own key, host "test-host").
std::string fresh_sender_hops(const AuditFixture& sender, const std::string& bundle, const std::string& actor) {
    auto log = sender.open("sender");
    REQUIRE(log->append(event("bundle_submitted", bundle, actor, "ok", {{"version", "1.0"}})));
    REQUIRE(log->append(event("bundle_queued", bundle)));
    REQUIRE(log->append(event("pass_started", bundle, "system", "ok", {{"pass", 1}})));
    auto text = log->hop_record(bundle);
    REQUIRE(text);
    return *text;
}

}  // namespace

// ---------------------------------------------------------------------------
// R1: a *gating* event that could not be written stays in the backlog and is
// written later, although the action it gates was refused. The log then says
// that something happened which did not (a queued push that was refused, an
// approval the officer was told failed, …), and a retry records it twice.
// ---------------------------------------------------------------------------
TEST_CASE("R1: a refused push must not appear later in the log as submitted/queued", "[audit][review][R1]") {
    AuditFixture f;
    auto log = f.open("sender");
    FailSwitch sw(f);
    REQUIRE(log->append(event("before")));
    sw.fail();
    // sender.cpp intake(): submitted+verified+queued in one append_all; on error the push is refused.
    std::vector<audit::Event> push{event("bundle_submitted", kX, "alice"), event("bundle_verified", kX),
                                   event("bundle_queued", kX, "system", "ok", {{"job", 7}})};
    REQUIRE_FALSE(log->append_all(std::move(push)));
    // … "push refused: it could not be recorded", nothing queued. The disk recovers:
    sw.heal();
    REQUIRE(log->append(event("link_up")));  // any later event (or tick()'s flush)
    // Expected: the refused push left no bundle_queued behind. Actual: it is there.
    CHECK(count_events(f, "bundle_queued", kX) == 0);
    CHECK(count_events(f, "bundle_submitted", kX) == 0);
}

TEST_CASE("R1: an approval the officer was told failed must not be recorded later, nor twice on retry",
          "[audit][review][R1]") {
    AuditFixture f;
    auto log = f.open("receiver");
    FailSwitch sw(f);
    sw.fail();
    // importer.cpp approve(): commit(rec, "bundle_approved") -> gate (a step) -> AuditTrail::record_step -> append_step
    REQUIRE_FALSE(log->append_step(event("bundle_approved", kX, "olivia", "approved")));
    // The officer gets the error; the bundle stays pending. Later the disk recovers and she approves again.
    sw.heal();
    REQUIRE(log->append_step(event("bundle_approved", kX, "olivia", "approved")));
    // Expected: exactly one approval (the one that took effect). Actual: two.
    CHECK(count_events(f, "bundle_approved", kX) == 1);
}

// ---------------------------------------------------------------------------
// R2: an upstream row that no upstream_events_recorded lists is never checked
// against the chain: an attacker with write access inserts a fabricated
// sender event (self-consistent hash), trace/report show it, verify says ok.
// ---------------------------------------------------------------------------
TEST_CASE("R2: a fabricated upstream row is not detected by verify", "[audit][review][R2]") {
    AuditFixture sender;
    auto hops = audit::parse_hop_record(fresh_sender_hops(sender, kX, "alice"));
    REQUIRE(hops);
    AuditFixture f;
    {
        auto log = f.open("receiver");
        REQUIRE(log->record_upstream(*hops, "models", "diode"));
        REQUIRE(log->checkpoint());
    }
    audit::Record fake = hops->events.front();
    fake.seq = 4242;  // a (host, seq) the receiver never recorded
    fake.actor = "mallory";
    fake.details = R"({"release":{"approved_by":["mallory"]},"version":"1.0"})";
    fake.hash = audit::chain_hash(fake);
    REQUIRE(f.raw_sql("INSERT INTO upstream_events (received_seq, seq, time, host, side, bundle, channel, event, actor, "
                      "outcome, details, prev_hash, hash) VALUES (1, 4242, " +
                      quote(fake.time) + ", " + quote(fake.host) + ", 'sender', " + quote(kX) +
                      ", '', 'bundle_submitted', 'mallory', 'ok', " + quote(fake.details) + ", " +
                      quote(fake.prev_hash) + ", " + quote(fake.hash) + ")")
                .empty());  // an INSERT: no trigger even needs dropping
    auto trace = f.reader()->trace(kX);
    REQUIRE(trace);
    bool shown = false;
    for (const auto& r : *trace) shown = shown || r.actor == "mallory";
    CHECK(shown);  // the forgery is in the bundle's trace (and report)
    auto rep = f.reader()->verify(f.pub.get());
    REQUIRE(rep);
    CHECK_FALSE(rep->ok);  // Expected: found. Actual: ok.
}

// ---------------------------------------------------------------------------
// R3: upstream_events is UNIQUE (host, seq) with INSERT OR IGNORE. A second
// sender log with the same host name (a re-installed sender whose audit.db
// started again at seq 1, or two senders both called e.g. "localhost") has
// its events silently dropped, while the chain lists their hashes: verify
// then reports a legitimately written log as altered, and trace loses hops.
// ---------------------------------------------------------------------------
TEST_CASE("R3: a re-created sender log (same host, seq from 1 again): upstream rows dropped, false alarm",
          "[audit][review][R3]") {
    AuditFixture sender_old;
    AuditFixture sender_new;  // another database (and key): the sender after a re-install
    auto old_hops = audit::parse_hop_record(fresh_sender_hops(sender_old, kX, "alice"));
    auto new_hops = audit::parse_hop_record(fresh_sender_hops(sender_new, kY, "bob"));
    REQUIRE(old_hops);
    REQUIRE(new_hops);
    REQUIRE(old_hops->host == new_hops->host);
    AuditFixture f;
    auto log = f.open("receiver");
    REQUIRE(log->record_upstream(*old_hops, "models", "diode"));
    auto rec = log->record_upstream(*new_hops, "models", "diode");
    REQUIRE(rec);
    CHECK(json::parse(rec->details)["new"] == 3);  // Actual: 0, all three ignored
    REQUIRE(log->checkpoint());
    auto trace = f.reader()->trace(kY);
    REQUIRE(trace);
    int upstream = 0;
    for (const auto& r : *trace) upstream += r.upstream ? 1 : 0;
    CHECK(upstream == 3);  // Actual: 0: the sender's hops of bundle Y are lost
    auto rep = f.reader()->verify(f.pub.get());
    REQUIRE(rep);
    CHECK(rep->ok);  // Actual: "upstream event test-host/1 … was altered" on an untouched log
    INFO(rep->problem);
}

// ---------------------------------------------------------------------------
// R4: checkpoint rows can be deleted like any other (triggers dropped). Delete
// the newest checkpoint(s) and everything after the surviving one can be
// truncated or rewritten: verify --key says ok, without even a warning.
// docs/audit.md claims "rewrites and truncations are found".
// ---------------------------------------------------------------------------
TEST_CASE("R4: truncating back to an older checkpoint is caught only against an anchor kept elsewhere",
          "[audit][review][R4]") {
    // A prefix of a valid log is a valid log: what proves it was longer is a
    // checkpoint the attacker cannot delete. The daemon logs every checkpoint's
    // seq and hash to its journal (audit_checkpoint); verify reports the head
    // it found so it can be compared. Inside the database the truncation is
    // invisible, and the documentation says so (docs/audit.md, "Verifying").
    AuditFixture f;
    std::optional<audit::Checkpoint> second;
    {
        auto log = f.open();
        for (int i = 0; i < 10; ++i) REQUIRE(log->append(event("e" + std::to_string(i))));
        REQUIRE(log->checkpoint());  // id 1, seq 10
        for (int i = 10; i < 20; ++i) REQUIRE(log->append(event("e" + std::to_string(i), kX, "olivia", "approved")));
        auto c = log->checkpoint();  // id 2, seq 20: the journal has "audit_checkpoint seq=20 hash=…"
        REQUIRE(c);
        second = *c;
    }
    REQUIRE(f.raw_sql("DROP TRIGGER events_no_delete; DROP TRIGGER checkpoints_no_delete; "
                      "DELETE FROM checkpoints WHERE id = 2; DELETE FROM events WHERE seq > 10; "
                      "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'x'); END; "
                      "CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints BEGIN SELECT RAISE(ABORT, 'x'); END;")
                .empty());
    auto rep = f.reader()->verify(f.pub.get());
    REQUIRE(rep);
    CHECK(rep->ok);
    // The auditor's comparison with the journal's anchor: the log no longer reaches it.
    CHECK(rep->head_seq < second->seq);
    CHECK(rep->last_checkpoint_seq < second->seq);
}

TEST_CASE("R4: all checkpoints deleted: a wholly rewritten log verifies with --key (a warning only)",
          "[audit][review][R4]") {
    AuditFixture f;
    {
        auto log = f.open();
        for (int i = 0; i < 5; ++i) REQUIRE(log->append(event("e" + std::to_string(i))));
        REQUIRE(log->checkpoint());
    }
    REQUIRE(f.raw_sql("DROP TRIGGER checkpoints_no_delete; DELETE FROM checkpoints; "
                      "DROP TRIGGER events_no_delete; DELETE FROM events; "
                      "CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'x'); END; "
                      "CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints BEGIN SELECT RAISE(ABORT, 'x'); END;")
                .empty());
    {
        audit::LogOptions o;  // the attacker writes a new history with the product itself, no key needed
        o.side = "receiver";
        o.host = "test-host";
        auto log = audit::Log::open(f.db, o);
        REQUIRE(log);
        REQUIRE((*log)->append(event("nothing_happened")));
    }
    auto rep = f.reader()->verify(f.pub.get());
    REQUIRE(rep);
    CHECK_FALSE(rep->ok);  // Actual: ok (warning "no checkpoint")
}

// ---------------------------------------------------------------------------
// R5: verify's first bad sequence is one too high when the altered row's own
// hash was recomputed (but not the rest of the chain): it blames N+1.
// ---------------------------------------------------------------------------
TEST_CASE("R5: an edited row whose hash was recomputed is reported as the next row", "[audit][review][R5]") {
    AuditFixture f;
    {
        auto log = f.open();
        for (int i = 0; i < 8; ++i) REQUIRE(log->append(event("e" + std::to_string(i))));
        REQUIRE(log->checkpoint());
    }
    auto rows = f.reader()->query(audit::Query{});
    REQUIRE(rows);
    auto r = (*rows)[4];  // seq 5
    REQUIRE(r.seq == 5);
    r.actor = "mallory";
    r.hash = audit::chain_hash(r);
    REQUIRE(f.raw_sql("DROP TRIGGER events_no_update; UPDATE events SET actor = 'mallory', hash = " + quote(r.hash) +
                      " WHERE seq = 5")
                .empty());
    auto rep = f.reader()->verify(f.pub.get());
    REQUIRE(rep);
    CHECK_FALSE(rep->ok);
    REQUIRE(rep->first_bad_seq);
    INFO(rep->problem);
    CHECK(*rep->first_bad_seq == 5);  // Actual: 6 ("event 6 does not follow event 5")
}

// ---------------------------------------------------------------------------
// R6: encode_hop_record drops one event at a time and re-signs and re-dumps
// the whole record each time: O(n) signatures and O(n²) serialisation for a
// bundle with many events (a pass that keeps failing adds a pass_started
// every second on the send thread). hop_record() runs on the send thread.
// ---------------------------------------------------------------------------
TEST_CASE("R6: hop_record of a bundle with a few thousand events is quadratic", "[audit][review][R6]") {
    AuditFixture f;
    auto log = f.open("sender", 0);
    constexpr int kEvents = 500;  // 4000 events took 563 s on the review machine
    for (int i = 0; i < kEvents; i += 500) {
        std::vector<audit::Event> batch;
        for (int j = 0; j < 500; ++j) {
            batch.push_back(event("pass_started", kX, "system", "ok",
                                  {{"transfer", 1234567890123ULL}, {"pass", 1}, {"passes", 3}, {"version", "1.0"}}));
        }
        REQUIRE(log->append_all(std::move(batch)));
    }
    auto t0 = std::chrono::steady_clock::now();
    auto text = log->hop_record(kX);
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    REQUIRE(text);
    INFO("hop_record took " << secs << " s for " << kEvents << " events");
    CHECK(secs < 0.5);
}

// ---------------------------------------------------------------------------
// R7: parse_time_bound drops the fraction of a time with a numeric offset or
// a lower-case 'z' (both valid RFC 3339): --since then includes up to 999 ms
// of earlier events, --until excludes up to 999 ms of later ones.
// ---------------------------------------------------------------------------
TEST_CASE("R7: time bounds keep milliseconds for +00:00 and lower-case z", "[audit][review][R7]") {
    auto a = audit::parse_time_bound("2026-11-29T14:00:00.500+00:00");
    auto b = audit::parse_time_bound("2026-11-29T14:00:00.500z");
    auto c = audit::parse_time_bound("2026-11-29T15:00:00.500+01:00");
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE(c);
    CHECK(*a == "2026-11-29T14:00:00.500Z");  // Actual: .000Z
    CHECK(*b == "2026-11-29T14:00:00.500Z");  // Actual: .000Z
    CHECK(*c == "2026-11-29T14:00:00.500Z");  // Actual: .000Z
}

// ---------------------------------------------------------------------------
// R8: a failed record_upstream retried (receiver retry_later every 30 s) and a
// failed pass_started retried both append again; for pass_started the failed
// copy is also still in the backlog: the same pass is logged twice.
// ---------------------------------------------------------------------------
TEST_CASE("R8: a pass_started that failed and was retried is recorded twice", "[audit][review][R8]") {
    AuditFixture f;
    auto log = f.open("sender");
    FailSwitch sw(f);
    sw.fail();
    REQUIRE_FALSE(log->append_step(event("pass_started", kX, "system", "ok", {{"pass", 1}})));
    sw.heal();
    // sender.cpp: "the pass waits and is retried" -> the next loop records pass_started again (a step).
    REQUIRE(log->append_step(event("pass_started", kX, "system", "ok", {{"pass", 1}})));
    CHECK(count_events(f, "pass_started", kX) == 1);  // Actual: 2
}
