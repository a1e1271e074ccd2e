#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "audit/audit_fixture.hpp"
#include "sluice/audit/service.hpp"
#include "sluice/bundle/digest.hpp"

using namespace sluice;
using namespace sluice::test;
using nlohmann::json;

namespace {

const std::string kBundleA(64, 'a');
const std::string kBundleB = std::string(6, 'b') + std::string(58, 'c');

audit::VerifyReport verify(const AuditFixture& f, bool pinned = true) {
    auto r = f.reader()->verify(pinned ? f.pub.get() : nullptr);
    REQUIRE(r);
    return *r;
}

}  // namespace

TEST_CASE("events chain: seq, previous hash and hash recompute", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    auto a = log->append(event("bundle_received", kBundleA));
    REQUIRE(a);
    auto b = log->append(event("bundle_quarantined", kBundleA, "system", "ok", {{"version", "1.0"}}));
    REQUIRE(b);
    CHECK(a->seq == 1);
    CHECK(a->prev_hash == audit::kGenesisHash);
    CHECK(b->seq == 2);
    CHECK(b->prev_hash == a->hash);
    CHECK(audit::chain_hash(*b) == b->hash);
    CHECK(a->hash != b->hash);
    CHECK(a->host == "test-host");
    CHECK(a->side == "receiver");
    CHECK(a->time.size() == 24);  // 2026-11-29T21:55:01.123Z
    REQUIRE(log->checkpoint());
    auto rep = verify(f);
    CHECK(rep.ok);
    CHECK(rep.events == 2);
    CHECK(rep.head_seq == 2);

    // Reopening continues the chain.
    log.reset();
    auto again = f.open();
    auto c = again->append(event("bundle_released", kBundleA));
    REQUIRE(c);
    CHECK(c->seq == 3);
    CHECK(c->prev_hash == b->hash);
}

TEST_CASE("with a pinned key, a log without any checkpoint does not verify", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    REQUIRE(log->append(event("a")));
    auto pinned = verify(f, true);
    CHECK_FALSE(pinned.ok);
    CHECK_THAT(pinned.problem, Catch::Contains("no checkpoint at all"));
    CHECK(verify(f, false).ok);  // without a key only a warning: the log may be young
    REQUIRE(log->checkpoint());
    CHECK(verify(f, true).ok);
}

TEST_CASE("canonical bytes are unambiguous", "[audit]") {
    audit::Record x;
    x.seq = 1;
    x.event = "ab";
    x.actor = "c";
    audit::Record y = x;
    y.event = "a";
    y.actor = "bc";
    CHECK(audit::canonical_bytes(x) != audit::canonical_bytes(y));
    x.prev_hash = audit::kGenesisHash;
    y.prev_hash = audit::kGenesisHash;
    CHECK(audit::chain_hash(x) != audit::chain_hash(y));
    x.prev_hash = "zz";
    CHECK(audit::chain_hash(x).empty());
}

TEST_CASE("the database refuses updates, deletes and events that do not extend the chain", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    REQUIRE(log->append(event("a")));
    REQUIRE(log->checkpoint());
    CHECK_THAT(f.raw_sql("UPDATE events SET actor = 'mallory'"), Catch::Contains("append-only"));
    CHECK_THAT(f.raw_sql("DELETE FROM events"), Catch::Contains("append-only"));
    CHECK_THAT(f.raw_sql("DELETE FROM checkpoints"), Catch::Contains("append-only"));
    CHECK_THAT(f.raw_sql("UPDATE meta SET value = 'sender' WHERE key = 'side'"), Catch::Contains("append-only"));
    CHECK_THAT(f.raw_sql("INSERT INTO events VALUES (5, 't', 'h', 'receiver', '', '', 'x', 'a', 'ok', '{}', '" +
                         audit::kGenesisHash + "', 'x')"),
               Catch::Contains("extend the chain"));
    CHECK(verify(f).ok);
}

TEST_CASE("a row edited after dropping the triggers is found, with its sequence", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    for (int i = 0; i < 10; ++i) REQUIRE(log->append(event("e" + std::to_string(i), kBundleA)));
    REQUIRE(log->checkpoint());
    log.reset();
    REQUIRE(f.raw_sql("DROP TRIGGER events_no_update").empty());
    REQUIRE(f.raw_sql("UPDATE events SET actor = 'mallory' WHERE seq = 4").empty());
    auto rep = verify(f);
    CHECK_FALSE(rep.ok);
    REQUIRE(rep.first_bad_seq);
    CHECK(*rep.first_bad_seq == 4);
    CHECK_THAT(rep.problem, Catch::Contains("event 4 was altered"));
    bool warned = false;
    for (const auto& w : rep.warnings) warned = warned || w.find("triggers are missing") != std::string::npos;
    CHECK(warned);
    // The writer refuses to extend a chain whose tail does not verify only when the tail is hit; here it is not.
}

TEST_CASE("a deleted row, a truncated tail and a rewritten chain are found", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    for (int i = 0; i < 20; ++i) REQUIRE(log->append(event("e" + std::to_string(i))));
    REQUIRE(log->checkpoint());
    log.reset();
    REQUIRE(f.raw_sql("DROP TRIGGER events_no_delete").empty());

    SECTION("a row in the middle") {
        REQUIRE(f.raw_sql("DELETE FROM events WHERE seq = 7").empty());
        auto rep = verify(f);
        CHECK_FALSE(rep.ok);
        REQUIRE(rep.first_bad_seq);
        CHECK(*rep.first_bad_seq == 7);
        CHECK_THAT(rep.problem, Catch::Contains("event 7 is missing"));
    }
    SECTION("the last rows") {
        REQUIRE(f.raw_sql("DELETE FROM events WHERE seq > 17").empty());
        auto rep = verify(f);
        CHECK_FALSE(rep.ok);
        REQUIRE(rep.first_bad_seq);
        CHECK(*rep.first_bad_seq == 18);
        CHECK_THAT(rep.problem, Catch::Contains("were removed"));
        // And the writer refuses to go on as if nothing happened? It extends from 17: the checkpoint still catches it.
    }
    SECTION("rows rewritten with a recomputed chain") {
        // Rewrite event 12 onwards consistently: the chain verifies, the signed checkpoint does not.
        auto rows = f.reader()->query(audit::Query{});
        REQUIRE(rows);
        REQUIRE(f.raw_sql("DELETE FROM events WHERE seq >= 12").empty());
        std::string prev = (*rows)[10].hash;
        for (std::size_t i = 11; i < rows->size(); ++i) {
            auto r = (*rows)[i];
            r.actor = "mallory";
            r.prev_hash = prev;
            r.hash = audit::chain_hash(r);
            prev = r.hash;
            REQUIRE(f.raw_sql("INSERT INTO events VALUES (" + std::to_string(r.seq) + ", '" + r.time + "', '" + r.host +
                              "', '" + r.side + "', '', '', '" + r.event + "', 'mallory', 'ok', '{}', '" + r.prev_hash +
                              "', '" + r.hash + "')")
                        .empty());
        }
        auto rep = verify(f);
        CHECK_FALSE(rep.ok);
        REQUIRE(rep.first_bad_seq);
        CHECK(*rep.first_bad_seq == 1);  // the only checkpoint covers 1..20: nothing before it is proven
        CHECK_THAT(rep.problem, Catch::Contains("rewritten"));
    }
}

TEST_CASE("forged, foreign and unpinned checkpoints", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    for (int i = 0; i < 5; ++i) REQUIRE(log->append(event("e")));
    auto first = log->checkpoint();
    REQUIRE(first);
    for (int i = 0; i < 5; ++i) REQUIRE(log->append(event("e")));
    REQUIRE(log->checkpoint());
    log.reset();
    CHECK(verify(f).ok);

    SECTION("a signature that does not verify") {
        auto cp = *first;
        cp.seq = 10;
        auto rows = f.reader()->query(audit::Query{});
        cp.hash = rows->back().hash;
        // Same key and fields of a real checkpoint, with the old signature: forged.
        REQUIRE(f.raw_sql("INSERT INTO checkpoints (seq, hash, time, host, side, key_fingerprint, public_key, signature) "
                          "VALUES (10, '" + cp.hash + "', '" + cp.time + "', '" + cp.host + "', '" + cp.side + "', '" +
                          cp.key_fingerprint + "', '" + cp.public_key + "', '" + cp.signature + "')")
                    .empty());
        auto rep = verify(f);
        CHECK_FALSE(rep.ok);
        REQUIRE(rep.first_bad_seq);
        CHECK(*rep.first_bad_seq == 11);
        CHECK_THAT(rep.problem, Catch::Contains("does not verify"));
    }
    SECTION("signed with another key") {
        TempDir other;
        REQUIRE(bundle::generate_key_pair(other.path(), "mallory"));
        auto mk = bundle::load_private_key(other / "mallory.key");
        REQUIRE(mk);
        audit::Checkpoint cp;
        cp.seq = 10;
        cp.hash = f.reader()->query(audit::Query{})->back().hash;
        cp.time = "2026-11-29T00:00:00.000Z";
        cp.host = "test-host";
        cp.side = "receiver";
        auto sig = bundle::sign_message(*mk, cp.signed_text());
        REQUIRE(sig);
        REQUIRE(f.raw_sql("INSERT INTO checkpoints (seq, hash, time, host, side, key_fingerprint, public_key, signature) "
                          "VALUES (10, '" + cp.hash + "', '" + cp.time + "', 'test-host', 'receiver', '" + mk->fingerprint() +
                          "', '" + read_file(other / "mallory.pub") + "', '" + bundle::base64_encode(*sig) + "')")
                    .empty());
        auto pinned = verify(f, true);
        CHECK_FALSE(pinned.ok);
        CHECK_THAT(pinned.problem, Catch::Contains("not signed with the given key"));
        auto unpinned = verify(f, false);
        CHECK_FALSE(unpinned.ok);
        CHECK_THAT(unpinned.problem, Catch::Contains("another key"));
    }
    SECTION("the right key, not pinned, is a warning") {
        auto rep = verify(f, false);
        CHECK(rep.ok);
        CHECK_FALSE(rep.key_pinned);
        REQUIRE_FALSE(rep.warnings.empty());
        CHECK_THAT(rep.warnings.back(), Catch::Contains("not pinned"));
    }
}

TEST_CASE("automatic checkpoints every N events; none without a key", "[audit]") {
    AuditFixture f;
    auto log = f.open("sender", 4);
    for (int i = 0; i < 10; ++i) REQUIRE(log->append(event("e")));
    auto cps = f.reader()->checkpoints();
    REQUIRE(cps);
    REQUIRE(cps->size() == 2);
    CHECK((*cps)[0].seq == 4);
    CHECK((*cps)[1].seq == 8);
    auto rep = verify(f);
    CHECK(rep.ok);
    CHECK(rep.unsealed == 2);

    audit::LogOptions o;
    o.side = "sender";
    auto keyless = audit::Log::open(f.dir / "nokey.db", o);
    REQUIRE(keyless);
    CHECK_FALSE((*keyless)->checkpoint());
}

TEST_CASE("a database of the other side or another format is refused", "[audit]") {
    AuditFixture f;
    { auto log = f.open("receiver"); }
    audit::LogOptions o;
    o.side = "sender";
    auto other = audit::Log::open(f.db, o);
    REQUIRE_FALSE(other);
    CHECK_THAT(other.error().message, Catch::Contains("belongs to the receiver side"));
    write_file(f.dir / "junk.db", "not a database at all, not even close to one....................................");
    auto junk = audit::Reader::open(f.dir / "junk.db");
    REQUIRE_FALSE(junk);
    CHECK_FALSE(audit::Reader::open(f.dir / "missing.db"));
}

TEST_CASE("a failed write keeps the event and every later one, in order, until it can be written", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    REQUIRE(log->append(event("before")));
    // A failure the database itself produces on insert, switched from outside (like a full disk).
    REQUIRE(f.raw_sql("CREATE TABLE failswitch (x INTEGER); CREATE TRIGGER failing BEFORE INSERT ON events "
                      "WHEN EXISTS (SELECT 1 FROM failswitch) BEGIN SELECT RAISE(ABORT, 'disk full (test)'); END;")
                .empty());
    REQUIRE(f.raw_sql("INSERT INTO failswitch VALUES (1)").empty());
    auto a = log->append(event("during-1"));
    REQUIRE_FALSE(a);
    CHECK_THAT(a.error().message, Catch::Contains("disk full (test)"));
    CHECK_FALSE(log->append(event("during-2")));
    CHECK(log->backlog() == 2);
    CHECK_FALSE(log->flush());
    REQUIRE(f.raw_sql("DELETE FROM failswitch").empty());
    auto c = log->append(event("after"));
    REQUIRE(c);
    CHECK(c->seq == 4);
    CHECK(log->backlog() == 0);
    auto rows = f.reader()->query(audit::Query{});
    REQUIRE(rows->size() == 4);
    CHECK((*rows)[1].event == "during-1");
    CHECK((*rows)[2].event == "during-2");
    CHECK((*rows)[3].event == "after");
    CHECK(verify(f, false).ok);
    REQUIRE(log->checkpoint());
    CHECK(verify(f).ok);
}

TEST_CASE("concurrent appends are all recorded, once, in one chain", "[audit]") {
    AuditFixture f;
    auto log = f.open("receiver", 50);
    constexpr int kThreads = 6, kEach = 200;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                auto r = log->append(event("work", {}, "system", "ok", {{"thread", t}, {"i", i}}));
                if (!r) FAIL(r.error().message);
            }
        });
    }
    for (auto& t : threads) t.join();
    std::set<std::pair<int, int>> seen;
    auto rows = f.reader()->query([] { audit::Query q; q.limit = 100000; return q; }());
    REQUIRE(rows);
    REQUIRE(rows->size() == kThreads * kEach);
    for (std::size_t i = 0; i < rows->size(); ++i) {
        CHECK((*rows)[i].seq == static_cast<std::int64_t>(i + 1));
        auto d = json::parse((*rows)[i].details);
        CHECK(seen.insert({d["thread"].get<int>(), d["i"].get<int>()}).second);
    }
    CHECK(seen.size() == kThreads * kEach);
    CHECK(verify(f).ok);
}

TEST_CASE("kill -9 during heavy writing leaves a valid chain", "[audit]") {
    AuditFixture f;
    { auto log = f.open("sender", 100); }
    pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        auto log = f.open("sender", 100);
        for (int i = 0;; ++i) {
            if (!log->append(event("heavy", {}, "system", "ok", {{"i", i}, {"pad", std::string(200, 'x')}}))) ::_exit(3);
        }
    }
    // Let it write for a while, then kill it mid-flight.
    for (int i = 0; i < 100; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        auto r = audit::Reader::open(f.db);
        if (r && *(*r)->head_seq() > 300) break;
    }
    REQUIRE(::kill(child, SIGKILL) == 0);
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    REQUIRE(WIFSIGNALED(status));
    auto rep = verify(f);
    CHECK(rep.ok);
    CHECK(rep.events > 300);
    CHECK(rep.checkpoints >= 3);
    // The log goes on from where it stopped.
    auto log = f.open("sender", 100);
    auto next = log->append(event("after-crash"));
    REQUIRE(next);
    CHECK(next->seq == rep.head_seq + 1);
    CHECK(verify(f).ok);
}

TEST_CASE("queries return exactly the matching rows, with paging", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    REQUIRE(log->append(event("bundle_received", kBundleA, "system", "ok")));
    REQUIRE(log->append(event("approval_recorded", kBundleA, "alice", "approved")));
    REQUIRE(log->append(event("bundle_received", kBundleB, "system", "ok")));
    REQUIRE(log->append(event("bundle_rejected", kBundleB, "bob", "rejected")));
    REQUIRE(log->append(event("link_down", "", "system", "error")));
    auto reader = f.reader();
    auto seqs = [&](audit::Query q) {
        std::vector<std::int64_t> out;
        auto rows = reader->query(q);
        REQUIRE(rows);
        for (const auto& r : *rows) out.push_back(r.seq);
        return out;
    };
    audit::Query q;
    CHECK(seqs(q) == std::vector<std::int64_t>{1, 2, 3, 4, 5});
    q.bundle = kBundleA;
    CHECK(seqs(q) == std::vector<std::int64_t>{1, 2});
    q.bundle = "bbbbbb";
    CHECK(seqs(q) == std::vector<std::int64_t>{3, 4});
    q.bundle = "bbbbbbcc";
    CHECK(seqs(q) == std::vector<std::int64_t>{3, 4});
    q.bundle = "bbbbbbd";
    CHECK(seqs(q).empty());
    q = {};
    q.actor = "bob";
    CHECK(seqs(q) == std::vector<std::int64_t>{4});
    q = {};
    q.event = "bundle_received";
    CHECK(seqs(q) == std::vector<std::int64_t>{1, 3});
    q.outcome = "error";
    CHECK(seqs(q).empty());
    q = {};
    q.outcome = "error";
    CHECK(seqs(q) == std::vector<std::int64_t>{5});
    q = {};
    q.after_seq = 2;
    q.limit = 2;
    CHECK(seqs(q) == std::vector<std::int64_t>{3, 4});
    q = {};
    q.since = "2000-01-01";
    CHECK(seqs(q).size() == 5);
    q.until = "2000-01-02";
    CHECK(seqs(q).empty());
    q = {};
    q.since = "2999-01-01T00:00:00Z";
    CHECK(seqs(q).empty());
    q = {};
    q.since = "yesterday";
    auto bad = reader->query(q);
    REQUIRE_FALSE(bad);
    CHECK_THAT(bad.error().message, Catch::Contains("yesterday"));
    q = {};
    q.bundle = "abc";
    CHECK_FALSE(reader->query(q));
}

TEST_CASE("time bounds", "[audit]") {
    CHECK(*audit::parse_time_bound("2026-11-29") == "2026-11-29T00:00:00.000Z");
    CHECK(*audit::parse_time_bound("2026-11-29T14:00:00Z") == "2026-11-29T14:00:00.000Z");
    CHECK(*audit::parse_time_bound("2026-11-29T14:00:00.25Z") == "2026-11-29T14:00:00.250Z");
    CHECK(*audit::parse_time_bound("2026-11-29T15:00:00+01:00") == "2026-11-29T14:00:00.000Z");
    CHECK_FALSE(audit::parse_time_bound("2026-13-40"));
    CHECK_FALSE(audit::parse_time_bound(""));
}

TEST_CASE("serve answers query, trace, gaps, verify and info; refuses bad requests", "[audit]") {
    AuditFixture f;
    auto log = f.open();
    REQUIRE(log->append(event("transfer_started", kBundleA, "system", "ok", {{"version", "1.0"}})));
    REQUIRE(log->append(event("bundle_received", kBundleA)));
    REQUIRE(log->append(event("transfer_started", kBundleB, "system", "ok", {{"version", "2.0"}})));
    REQUIRE(log->append(event("transfer_incomplete", kBundleB, "system", "error", {{"why", "silence"}})));
    REQUIRE(log->checkpoint());
    auto reader = f.reader();

    auto q = audit::serve(*reader, {{"op", "query"}, {"filter", {{"event", "transfer_started"}}}, {"limit", 1}});
    REQUIRE(q["records"].size() == 1);
    CHECK(q["records"][0]["seq"] == 1);
    CHECK(q["next_after_seq"] == 1);
    auto q2 = audit::serve(*reader, {{"op", "query"}, {"filter", {{"event", "transfer_started"}}}, {"after_seq", 1}, {"limit", 1}});
    CHECK(q2["records"][0]["seq"] == 3);
    auto q3 = audit::serve(*reader, {{"op", "query"}, {"filter", {{"event", "transfer_started"}}}, {"after_seq", 3}, {"limit", 1}});
    CHECK(q3["records"].empty());
    CHECK(q3["next_after_seq"].is_null());

    auto t = audit::serve(*reader, {{"op", "trace"}, {"bundle", "bbbbbb"}});
    CHECK(t["bundle"] == kBundleB);
    CHECK(t["records"].size() == 2);

    auto g = audit::serve(*reader, {{"op", "gaps"}});
    REQUIRE(g["gaps"].size() == 1);
    CHECK(g["gaps"][0]["bundle"] == kBundleB);
    CHECK(g["gaps"][0]["status"] == "incomplete");
    CHECK(g["gaps"][0]["version"] == "2.0");

    auto v = audit::serve(*reader, {{"op", "verify"}, {"key", read_file(f.dir / "host.pub")}});
    CHECK(v["verify"]["ok"] == true);
    CHECK(v["verify"]["key_pinned"] == true);

    auto info = audit::serve(*reader, {{"op", "info"}});
    CHECK(info["side"] == "receiver");
    CHECK(info["head_seq"] == 4);

    CHECK_THROWS_WITH(audit::serve(*reader, {{"op", "nope"}}), Catch::Contains("unknown audit operation"));
    CHECK_THROWS_WITH(audit::serve(*reader, {{"op", "trace"}, {"bundle", "ffffff"}}), Catch::Contains("no audit event"));
    CHECK_THROWS_WITH(audit::serve(*reader, {{"op", "trace"}, {"bundle", "xyz"}}), Catch::Contains("not a bundle id"));
    CHECK_THROWS_WITH(audit::serve(*reader, {{"op", "query"}, {"limit", "ten"}}), Catch::Contains("integer"));
    CHECK_THROWS_WITH(audit::serve(*reader, {{"op", "verify"}, {"key", "junk"}}), Catch::Contains("P-256"));
}

TEST_CASE("gaps needs the receiver's log", "[audit]") {
    AuditFixture f;
    { auto log = f.open("sender"); REQUIRE(log->append(event("bundle_sent", kBundleA))); }
    CHECK_THROWS_WITH(audit::serve(*f.reader(), {{"op", "gaps"}}), Catch::Contains("receiver"));
}
