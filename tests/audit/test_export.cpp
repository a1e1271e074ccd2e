#include <catch2/catch.hpp>

#include <sstream>
#include <vector>

#include "sluice/audit/export.hpp"
#include "sluice/core/version.hpp"

using namespace sluice;
using audit::Record;
using nlohmann::json;

namespace {

const std::string kBundle = "3f2a91c0d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f";
const std::string kPrev(64, '0');
const std::string kHash = "ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01ab01";

Record record(std::int64_t seq, std::string event, std::string outcome, std::string details) {
    Record r;
    r.seq = seq;
    r.time = "2026-11-29T21:55:01.123Z";
    r.host = "recv-1";
    r.side = "receiver";
    r.bundle = kBundle;
    r.channel = "models";
    r.event = std::move(event);
    r.actor = "system";
    r.outcome = std::move(outcome);
    r.details = std::move(details);
    r.prev_hash = kPrev;
    r.hash = kHash;
    return r;
}

/// A record whose only interesting field is the actor (CSV field 8).
Record with_actor(std::string actor) {
    Record r;
    r.seq = 1;
    r.time = "t";
    r.host = "h";
    r.side = "receiver";
    r.event = "e";
    r.actor = std::move(actor);
    r.outcome = "ok";
    r.details = "{}";
    return r;
}

}  // namespace

TEST_CASE("formats: names parse, others are refused by name", "[audit]") {
    for (auto f : {audit::Format::table, audit::Format::json, audit::Format::jsonl, audit::Format::csv, audit::Format::cef,
                   audit::Format::syslog}) {
        auto parsed = audit::parse_format(audit::to_string(f));
        REQUIRE(parsed);
        CHECK(*parsed == f);
    }
    auto bad = audit::parse_format("CSV");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("'CSV'") != std::string::npos);
}

TEST_CASE("csv: RFC 4180 quoting, details verbatim, formula injection neutralised", "[audit]") {
    Record r = record(7, "bundle_rejected", "rejected", R"({"reason":"bad, \"very\"\nbad"})");
    r.actor = R"(=HYPERLINK("http://x"))";
    CHECK(audit::csv_row(r) ==
          "7,2026-11-29T21:55:01.123Z,recv-1,receiver," + kBundle +
              R"csv(,models,bundle_rejected,"'=HYPERLINK(""http://x"")",rejected,"{""reason"":""bad, \""very\""\nbad""}",)csv" +
              kPrev + "," + kHash + ",false");

    struct Case {
        std::string value, field;
    };
    const std::vector<Case> cases = {
        {"=1+1", "'=1+1"},
        {"+1", "'+1"},
        {"-1", "'-1"},
        {"@SUM(A1)", "'@SUM(A1)"},
        {"\tx", "'\tx"},
        {"\rx", "\"'\rx\""},          // quoted: it holds a CR
        {"'x", "''x"},                // so that one leading ' always comes off
        {"a=b", "a=b"},               // only a leading character is a formula
        {"", ""},
        {"x,y", "\"x,y\""},
        {"line\nbreak", "\"line\nbreak\""},
        {"say \"hi\"", "\"say \"\"hi\"\"\""},
    };
    for (const auto& c : cases) {
        INFO("actor " << json(c.value).dump());
        CHECK(audit::csv_row(with_actor(c.value)) == "1,t,h,receiver,,,e," + c.field + ",ok,{},,,false");
    }
    Record up = with_actor("a");
    up.upstream = true;
    CHECK(audit::csv_row(up) == "1,t,h,receiver,,,e,a,ok,{},,,true");
}

TEST_CASE("csv: the header once, CRLF line ends, across pages", "[audit]") {
    std::ostringstream out;
    {
        audit::RecordWriter w(out, audit::Format::csv);
        const std::vector<Record> a = {with_actor("a")};
        const std::vector<Record> b = {with_actor("b")};
        w.write(a);
        w.write(b);
        CHECK(w.written() == 2);
    }
    CHECK(out.str() == std::string(audit::csv_header()) + "\r\n1,t,h,receiver,,,e,a,ok,{},,,false\r\n" +
                           "1,t,h,receiver,,,e,b,ok,{},,,false\r\n");
    CHECK(audit::csv_header() == "seq,time,host,side,bundle,channel,event,actor,outcome,details,prev_hash,hash,upstream");

    std::ostringstream empty;
    audit::write_records(empty, audit::Format::csv, {});
    CHECK(empty.str() == std::string(audit::csv_header()) + "\r\n");
    std::ostringstream bare;
    audit::write_records(bare, audit::Format::csv, {}, false);
    CHECK(bare.str().empty());
}

TEST_CASE("cef: header and extension escaping, standard keys", "[audit]") {
    Record r = record(42, "scan_result", "found", R"({"scanner":"clamav","summary":"Eicar=1 C:\\x"})");
    r.host = "recv|1";  // a | needs no escape in an extension value
    CHECK(audit::cef_line(r) ==
          std::string("CEF:0|Sluice|sluice|") + kVersion +
              "|scan_result|Scan result|8|rt=1795989301123 dvchost=recv|1 suser=system outcome=found cs1=" + kBundle +
              " cs1Label=bundle cs2=models cs2Label=channel cn1=42 cn1Label=seq cs3=" + kHash +
              " cs3Label=hash cs4=receiver cs4Label=side cs5=" + kPrev +
              R"( cs5Label=prev_hash cs6=false cs6Label=upstream msg={"scanner":"clamav","summary":"Eicar\=1 C:\\\\x"})");

    Record odd;
    odd.seq = 1;
    odd.time = "yesterday";  // not a time: no rt
    odd.event = "odd|ev\\x";
    odd.actor = "a\r\nb=c";
    odd.outcome = "ok";
    odd.details = "{}";
    CHECK(audit::cef_line(odd) == std::string("CEF:0|Sluice|sluice|") + kVersion +
                                      R"(|odd\|ev\\x|Odd\|ev\\x|3|suser=a\r\nb\=c outcome=ok cn1=1 cn1Label=seq cs6=false cs6Label=upstream msg={})");

    CHECK(audit::cef_severity("found") == 8);
    CHECK(audit::cef_severity("error") == 7);
    CHECK(audit::cef_severity("refused") == 6);
    CHECK(audit::cef_severity("rejected") == 6);
    CHECK(audit::cef_severity("fail") == 6);
    CHECK(audit::cef_severity("held") == 5);
    CHECK(audit::cef_severity("ok") == 3);
    CHECK(audit::cef_severity("released") == 3);
}

TEST_CASE("syslog: RFC 5424 PRI, header fields, SD-PARAM escaping, NILVALUE", "[audit]") {
    Record r = record(42, "bundle_released", "released", R"({"path":"/srv/x","version":"1.5.0"})");
    r.host = std::string("recv 1\x01", 7);
    r.actor = R"(o"f]f\i)";
    CHECK(audit::syslog_line(r) ==
          "<109>1 2026-11-29T21:55:01.123Z recv_1_ sluice-receiver - bundle_released [sluice@32473 seq=\"42\" bundle=\"" +
              kBundle + R"(" channel="models" actor="o\"f\]f\\i" outcome="released" hash=")" + kHash +
              R"("] {"path":"/srv/x","version":"1.5.0"})");

    Record odd;
    odd.seq = 3;
    odd.time = "yesterday";
    odd.event = "event with spaces and more than thirty-two chars";
    odd.actor = "line\nbreak";
    odd.outcome = "error";
    odd.upstream = true;
    CHECK(audit::syslog_line(odd) ==
          R"(<107>1 - - sluice - event_with_spaces_and_more_than_ [sluice@32473 seq="3" bundle="" channel="" actor="line\nbreak" outcome="error" hash="" upstream="true"])");

    Record pretty = with_actor("x");
    pretty.time = "2026-11-29T21:55:01+01:00";
    pretty.details = "{\n  \"a\": 1\n}";  // not compact: still one line
    pretty.outcome = "refused";
    CHECK(audit::syslog_line(pretty) ==
          R"(<108>1 2026-11-29T21:55:01+01:00 h sluice-receiver - e [sluice@32473 seq="1" bundle="" channel="" actor="x" outcome="refused" hash=""] {   "a": 1 })");

    CHECK(audit::syslog_severity("ok") == 5);
    CHECK(audit::syslog_severity("released") == 5);
    CHECK(audit::syslog_severity("refused") == 4);
    CHECK(audit::syslog_severity("rejected") == 4);
    CHECK(audit::syslog_severity("fail") == 4);
    CHECK(audit::syslog_severity("found") == 4);
    CHECK(audit::syslog_severity("error") == 3);
}

TEST_CASE("syslog and cef: invalid UTF-8 is replaced, never passed on", "[audit]") {
    Record r = with_actor(std::string("bad\xff", 4));
    CHECK(audit::syslog_line(r).find("actor=\"bad\xEF\xBF\xBD\"") != std::string::npos);
    CHECK(audit::cef_line(r).find("suser=bad\xEF\xBF\xBD ") != std::string::npos);
}

TEST_CASE("epoch_millis: RFC 3339 with fraction and offset; nonsense refused", "[audit]") {
    CHECK(audit::epoch_millis("1970-01-01T00:00:00Z") == 0);
    CHECK(audit::epoch_millis("2026-11-29T21:55:01.123Z") == 1795989301123);
    CHECK(audit::epoch_millis("2026-11-29T21:55:01.1Z") == 1795989301100);
    CHECK(audit::epoch_millis("2026-11-29T21:55:01.123456Z") == 1795989301123);
    CHECK(audit::epoch_millis("2026-11-29T21:55:01+01:00") == 1795985701000);
    CHECK(audit::epoch_millis("1969-12-31T23:59:59Z") == -1000);
    for (const char* bad : {"", "2026-11-29", "2026-11-29T21:55:01", "2026-02-30T00:00:00Z", "2026-11-29T24:00:00Z",
                            "2026-11-29T21:55:60Z", "2026-11-29t21:55:01z", "2026-11-29T21:55:01.1234567Z",
                            "2026-11-29T21:55:01.Z", "2026-11-29T21:55:01+1:00", "2026-11-29T21:55:01Zjunk"}) {
        INFO(bad);
        CHECK_FALSE(audit::epoch_millis(bad).has_value());
    }
}

TEST_CASE("table: aligned columns, short bundle, details summary, hostile text defused", "[audit]") {
    Record a = record(9, "bundle_submitted", "ok",
                      R"({"path":"/srv/in/models-1.5.0.tar","release":{"changes":"x"},"signers":["alice","ci"],"version":"1.5.0"})");
    a.side = "sender";
    a.actor = "alice";
    Record b = record(10, "bundle_rejected", "rejected", R"({"reason":"not on the plan"})");
    b.time = "2026-11-29T21:56:00.000Z";
    b.actor = "bob\x1b[31m";  // an escape sequence must not reach the terminal
    b.bundle.clear();
    std::ostringstream out;
    const std::vector<Record> records = {a, b};
    audit::write_records(out, audit::Format::table, records);
    CHECK(out.str() ==
          "SEQ  TIME                      SIDE      EVENT             ACTOR     OUTCOME   BUNDLE        CHANNEL  DETAILS\n"
          "  9  2026-11-29T21:55:01.123Z  sender    bundle_submitted  alice     ok        3f2a91c0d4e5  models   "
          "version=1.5.0 path=/srv/in/models-1.5.0.tar signers=alice,ci\n"
          " 10  2026-11-29T21:56:00.000Z  receiver  bundle_rejected   bob?[31m  rejected                models   "
          "reason=\"not on the plan\"\n");

    std::ostringstream none;
    audit::write_records(none, audit::Format::table, {});
    CHECK(none.str().empty());
}

TEST_CASE("terminal_safe and details_summary", "[audit]") {
    CHECK(audit::terminal_safe("a\x1b[2Jb") == "a?[2Jb");
    CHECK(audit::terminal_safe("\xE2\x80\xAE" "evil") == "?evil");    // U+202E right-to-left override
    CHECK(audit::terminal_safe("\xC2\x9B" "31m") == "?31m");          // U+009B, a C1 CSI
    CHECK(audit::terminal_safe("caf\xC3\xA9") == "caf\xC3\xA9");      // é stays
    CHECK(audit::terminal_safe("\xC0\xAF\xFF") == "???");             // overlong, invalid
    CHECK(audit::terminal_safe("tab\there") == "tab?here");

    CHECK(audit::details_summary(R"({"reason":"abcdefghijklmnopqrstuvwxyz"})", 20) == "reason=abcdefghijkl\xE2\x80\xA6");
    CHECK(audit::details_summary(R"({"b":2,"a":true,"error":"disk full","o":{"x":1},"n":null})") == "error=\"disk full\" a=true b=2");
    CHECK(audit::details_summary(R"({"reason":"two\nlines"})") == "reason=\"two lines\"");
    CHECK(audit::details_summary("not json") == "not json");
    CHECK(audit::details_summary("{}").empty());
}

TEST_CASE("json and jsonl: Record::to_json per record, parseable, round trip", "[audit]") {
    Record a = record(1, "bundle_received", "ok", R"({"version":"1.5.0"})");
    Record b = record(2, "bundle_quarantined", "ok", R"({"signers":["alice"]})");
    b.upstream = true;
    const std::vector<Record> first = {a};
    const std::vector<Record> second = {b};

    std::ostringstream json_out;
    {
        audit::RecordWriter w(json_out, audit::Format::json);
        w.write(first);
        w.write(second);
    }
    CHECK(json_out.str() == "[\n" + a.to_json().dump() + ",\n" + b.to_json().dump() + "\n]\n");
    const json all = json::parse(json_out.str());
    REQUIRE(all.size() == 2);
    CHECK(all[1]["details"]["signers"][0] == "alice");

    std::ostringstream empty;
    audit::write_records(empty, audit::Format::json, {});
    CHECK(empty.str() == "[]\n");

    std::ostringstream lines;
    const std::vector<Record> both = {a, b};
    audit::write_records(lines, audit::Format::jsonl, both);
    std::istringstream in(lines.str());
    std::string line;
    std::vector<Record> back;
    while (std::getline(in, line)) {
        auto r = Record::from_json(json::parse(line));
        REQUIRE(r);
        back.push_back(*r);
    }
    REQUIRE(back.size() == 2);
    CHECK(back[1].seq == 2);
    CHECK(back[1].details == b.details);
    CHECK(back[1].hash == kHash);
    CHECK(back[1].upstream);
    CHECK_FALSE(back[0].upstream);
}
