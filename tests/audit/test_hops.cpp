#include <catch2/catch.hpp>

#include "audit/audit_fixture.hpp"
#include "sluice/audit/hops.hpp"

using namespace sluice;
using namespace sluice::test;
using nlohmann::json;

namespace {

const std::string kBundle(64, 'd');

/// A sender log with a few events of kBundle (and one of another bundle between them).
std::string sender_hops(const AuditFixture& f) {
    auto log = f.open("sender");
    REQUIRE(log->append(event("bundle_submitted", kBundle, "alice", "ok", {{"version", "1.0"}})));
    REQUIRE(log->append(event("bundle_submitted", std::string(64, 'e'), "bob")));
    REQUIRE(log->append(event("bundle_queued", kBundle)));
    REQUIRE(log->append(event("pass_started", kBundle, "system", "ok", {{"pass", 1}})));
    auto text = log->hop_record(kBundle);
    REQUIRE(text);
    return *text;
}

}  // namespace

TEST_CASE("hop records round-trip, signed, with only the bundle's events", "[audit]") {
    AuditFixture f;
    auto text = sender_hops(f);
    auto hops = audit::parse_hop_record(text);
    REQUIRE(hops);
    CHECK(hops->host == "test-host");
    CHECK(hops->bundle == kBundle);
    REQUIRE(hops->events.size() == 3);
    CHECK(hops->events[0].seq == 1);
    CHECK(hops->events[0].actor == "alice");
    CHECK(hops->events[1].seq == 3);
    CHECK(hops->events[2].event == "pass_started");
    CHECK(hops->key_fingerprint == f.key->fingerprint());
}

TEST_CASE("hop records: every surprise is refused", "[audit]") {
    AuditFixture f;
    auto text = sender_hops(f);
    json j = json::parse(text);
    auto refused = [](const json& doc, const std::string& why) {
        auto r = audit::parse_hop_record(doc.dump());
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error().message, Catch::Contains(why));
    };
    SECTION("an altered event") {
        j["events"][0]["actor"] = "mallory";
        refused(j, "does not match its hash");
    }
    SECTION("an event dropped (the signature covers the list)") {
        j["events"].erase(1);
        refused(j, "signature does not verify");
    }
    SECTION("re-signed by someone else is accepted as theirs: the fingerprint tells") {
        TempDir other;
        REQUIRE(bundle::generate_key_pair(other.path(), "m"));
        auto mk = bundle::load_private_key(other / "m.key");
        auto hops = audit::parse_hop_record(text);
        auto again = audit::encode_hop_record(*hops, *mk);
        REQUIRE(again);
        auto parsed = audit::parse_hop_record(*again);
        REQUIRE(parsed);
        CHECK(parsed->key_fingerprint == mk->fingerprint());
        CHECK(parsed->key_fingerprint != f.key->fingerprint());
    }
    SECTION("another bundle's event") {
        j["bundle"] = std::string(64, 'e');
        refused(j, "about another bundle");
    }
    SECTION("wrong format, missing fields, bad types") {
        auto k = j;
        k["format"] = "sluice.hops/9";
        refused(k, "format");
        k = j;
        k.erase("signature");
        refused(k, "\"signature\"");
        k = j;
        k["events"] = "none";
        refused(k, "\"events\"");
        k = j;
        k["events"][0]["seq"] = -1;
        refused(k, "seq");
        k = j;
        k["events"][0]["details"] = "text";
        refused(k, "details");
        k = j;
        k["bundle"] = "short";
        refused(k, "64 lowercase hex");
    }
    SECTION("too large or too deep, not JSON") {
        CHECK_FALSE(audit::parse_hop_record(std::string(audit::kMaxHopRecordBytes + 1, ' ')));
        CHECK_FALSE(audit::parse_hop_record(std::string(100, '[') + std::string(100, ']')));
        CHECK_FALSE(audit::parse_hop_record("{\"format\":"));
        CHECK_FALSE(audit::parse_hop_record(""));
    }
}

TEST_CASE("upstream events are recorded once and chained; their removal or edit is found", "[audit]") {
    AuditFixture sender;
    auto hops = audit::parse_hop_record(sender_hops(sender));
    REQUIRE(hops);

    AuditFixture f;
    auto log = f.open("receiver");
    REQUIRE(log->append(event("transfer_started", kBundle)));
    auto rec = log->record_upstream(*hops, "models", "diode");
    REQUIRE(rec);
    CHECK(rec->event == "upstream_events_recorded");
    CHECK(rec->seq == 2);
    auto details = json::parse(rec->details);
    CHECK(details["new"] == 3);
    CHECK(details["carrier"] == "diode");
    // The same record again (a second pass): nothing new, still chained.
    auto again = log->record_upstream(*hops, "models", "diode");
    REQUIRE(again);
    CHECK(json::parse(again->details)["new"] == 0);
    REQUIRE(log->checkpoint());

    auto trace = f.reader()->trace(kBundle);
    REQUIRE(trace);
    REQUIRE(trace->size() == 6);
    CHECK((*trace)[0].upstream);
    CHECK((*trace)[0].event == "bundle_submitted");
    CHECK((*trace)[0].actor == "alice");
    CHECK_FALSE(trace->back().upstream);
    auto rep = f.reader()->verify(f.pub.get());
    REQUIRE(rep);
    CHECK(rep->ok);
    CHECK(rep->upstream_events == 3);

    log.reset();
    SECTION("deleted") {
        REQUIRE(f.raw_sql("DROP TRIGGER upstream_events_no_delete; DELETE FROM upstream_events WHERE seq = 3").empty());
        auto bad = f.reader()->verify(f.pub.get());
        CHECK_FALSE(bad->ok);
        CHECK_THAT(bad->problem, Catch::Contains("test-host/3 was recorded but is missing"));
    }
    SECTION("edited") {
        REQUIRE(f.raw_sql("DROP TRIGGER upstream_events_no_update; UPDATE upstream_events SET actor = 'eve' WHERE seq = 1").empty());
        auto bad = f.reader()->verify(f.pub.get());
        CHECK_FALSE(bad->ok);
        CHECK_THAT(bad->problem, Catch::Contains("test-host/1"));
    }
}
