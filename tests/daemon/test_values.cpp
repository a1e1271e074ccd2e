#include <catch2/catch.hpp>

#include "sluice/daemon/values.hpp"

using namespace sluice::daemon;
using namespace std::chrono_literals;

TEST_CASE("durations parse with units and refuse bare numbers", "[daemon][values]") {
    CHECK(*parse_duration("500ms") == 500ms);
    CHECK(*parse_duration("1s") == 1000ms);
    CHECK(*parse_duration("2m") == 120'000ms);
    CHECK(*parse_duration("1h") == 3'600'000ms);
    CHECK(*parse_duration("1m30s") == 90'000ms);
    CHECK(*parse_duration("0ms") == 0ms);

    for (const char* bad : {"", "1", "1x", "s", "1.5s", "-1s", "1 s", "99999999999999999999ms", "5000000000000000h"}) {
        INFO(bad);
        auto r = parse_duration(bad);
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error().message, Catch::Contains("is not a duration"));
    }
    CHECK_THAT(parse_duration("1").error().message, Catch::Contains("missing unit"));
    CHECK_THAT(parse_duration("3d").error().message, Catch::Contains("unknown unit \"d\""));
}

TEST_CASE("format_duration reads back", "[daemon][values]") {
    CHECK(format_duration(0ms) == "0ms");
    CHECK(format_duration(90'000ms) == "1m30s");
    CHECK(format_duration(1500ms) == "1s500ms");
    for (auto d : {1ms, 999ms, 61'001ms, 7'200'000ms}) CHECK(*parse_duration(format_duration(d)) == d);
}

TEST_CASE("byte sizes use binary units", "[daemon][values]") {
    CHECK(*parse_byte_size("65536") == 65536);
    CHECK(*parse_byte_size("256K") == 256 * 1024);
    CHECK(*parse_byte_size("64M") == 64ull << 20);
    CHECK(*parse_byte_size("64MiB") == 64ull << 20);
    CHECK(*parse_byte_size("1g") == 1ull << 30);
    CHECK(*parse_byte_size("2T") == 2ull << 40);
    CHECK(*parse_byte_size("512B") == 512);
    for (const char* bad : {"", "M", "64X", "1.5M", "64MB2", "-1", "99999999999T"}) {
        INFO(bad);
        CHECK_FALSE(parse_byte_size(bad));
    }
}

TEST_CASE("bit rates use decimal units and allow fractions", "[daemon][values]") {
    CHECK(*parse_bit_rate("800M") == 800'000'000);
    CHECK(*parse_bit_rate("1.5G") == 1'500'000'000);
    CHECK(*parse_bit_rate("2G") == 2'000'000'000);
    CHECK(*parse_bit_rate("100000k") == 100'000'000);
    CHECK(*parse_bit_rate("1234") == 1234);
    CHECK(*parse_bit_rate("0.001G") == 1'000'000);
    CHECK(*parse_bit_rate("1.50k") == 1500);
    CHECK(*parse_bit_rate("1.5000k") == 1500);
    for (const char* bad : {"", "fast", "1.5", "1.2345k", "1.", ".5G", "10Mbit", "1T", "20000000000G"}) {
        INFO(bad);
        auto r = parse_bit_rate(bad);
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error().message, Catch::Contains("is not a bit rate"));
    }
}

TEST_CASE("lanes are numeric address:port", "[daemon][values]") {
    auto v4 = parse_lane("127.0.0.1:47000");
    REQUIRE(v4);
    CHECK(v4->address == "127.0.0.1");
    CHECK(v4->port == 47000);
    CHECK_FALSE(v4->ipv6);
    auto v6 = parse_lane("[::1]:47001");
    REQUIRE(v6);
    CHECK(v6->address == "::1");
    CHECK(v6->port == 47001);
    CHECK(v6->ipv6);
    for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "localhost:47000",
                            "::1:47000", "[::1]47000", "[::1:47000", "[127.0.0.1]:1", "1.2.3:4", "1.2.3.4:x"}) {
        INFO(bad);
        auto r = parse_lane(bad);
        REQUIRE_FALSE(r);
        CHECK_THAT(r.error().message, Catch::Contains("is not a lane address"));
    }
}
