#include <catch2/catch.hpp>

#include <string>

#include "sluice/diode/endpoint.hpp"

using sluice::diode::parse_endpoint;

TEST_CASE("endpoints parse numeric IPv4 and bracketed IPv6", "[diode]") {
    auto v4 = parse_endpoint("192.0.2.1:9000");
    REQUIRE(v4);
    CHECK(v4->address().to_string() == "192.0.2.1");
    CHECK(v4->port() == 9000);
    CHECK(sluice::diode::to_string(*v4) == "192.0.2.1:9000");

    auto v6 = parse_endpoint("[2001:db8::1]:65535");
    REQUIRE(v6);
    CHECK(v6->address().is_v6());
    CHECK(v6->port() == 65535);
    CHECK(sluice::diode::to_string(*v6) == "[2001:db8::1]:65535");

    auto any = parse_endpoint("0.0.0.0:0");
    REQUIRE(any);
    CHECK(any->port() == 0);
}

TEST_CASE("bad endpoints are refused with a message naming the string", "[diode]") {
    struct Case {
        std::string text;
        std::string needle;
    };
    const auto c = GENERATE(values<Case>({
        {"", "empty"},
        {"192.0.2.1", "missing ':port'"},
        {"192.0.2.1:", "missing port"},
        {"192.0.2.1:65536", "above 65535"},
        {"192.0.2.1:123456", "not a number"},
        {"192.0.2.1:9x", "not a number"},
        {"192.0.2.1:-1", "not a number"},
        {":9000", "missing address"},
        {"localhost:9000", "host names are not resolved"},
        {"192.0.2:9000", "not a numeric IPv4 address"},
        {"2001:db8::1:9000", "brackets"},
        {"[2001:db8::1]9000", "expected ':port'"},
        {"[2001:db8::1", "without ']'"},
        {"[192.0.2.1]:9000", "not a numeric IPv6 address"},
        {"[]:9000", "not a numeric IPv6 address"},
    }));
    CAPTURE(c.text);
    auto r = parse_endpoint(c.text);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("\"" + c.text + "\""));
    CHECK_THAT(r.error().message, Catch::Contains(c.needle));
}
