#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "sluice/policy/version.hpp"

using sluice::policy::compare_versions;

namespace {

int sign(int v) { return (v > 0) - (v < 0); }

struct Case {
    const char* a;
    const char* b;
    int expected;  // sign of compare_versions(a, b)
};

}  // namespace

TEST_CASE("compare_versions orders a release train", "[policy][version]") {
    const Case cases[] = {
        // numeric pieces compare as numbers
        {"1.9", "1.10", -1},
        {"1.10", "1.9", 1},
        {"2.0", "10.0", -1},
        {"1.2.3", "1.2.3", 0},
        {"1.2.3", "1.2.4", -1},
        {"1.3", "1.2.99", 1},
        {"01.002", "1.2", 0},  // leading zeros ignored
        {"1.0010", "1.9", 1},
        {"99999999999999999999999", "99999999999999999999998", 1},  // beyond 64 bits
        // missing trailing pieces count as 0
        {"1.2", "1.2.0", 0},
        {"1.2", "1.2.0.0", 0},
        {"1", "1.0.1", -1},
        // a pre-release comes before its release
        {"1.2.0-rc1", "1.2.0", -1},
        {"1.2.0", "1.2.0-rc1", 1},
        {"1.2-rc1", "1.2.0", -1},
        {"1.2.0-1", "1.2.0", -1},
        {"1.2.0-rc1", "1.1.9", 1},
        {"1.2.0-rc1", "1.2.0-rc2", -1},
        {"1.2.0-alpha", "1.2.0-beta", -1},
        {"1.2.0-rc.1", "1.2.0-rc.2", -1},
        {"1.2.0-rc.2", "1.2.0-rc.10", -1},
        // build metadata is ignored
        {"1.2.0+build5", "1.2.0+build7", 0},
        {"1.2.0+build5", "1.2.0", 0},
        {"1.2.0-rc1+b1", "1.2.0-rc1", 0},
        {"1.2.1+0", "1.2.0+9", 1},
        // text pieces compare as text; a number beats text
        {"1.2.a", "1.2.b", -1},
        {"1.2.1", "1.2.a", 1},
        {"1.2.0-rc1", "1.2.0-1", -1},
        {"1.a", "1.0", -1},
        {"1.B", "1.a", -1},  // byte order: upper case first
        // '_' separates like '.' and '-' (inside the release part)
        {"1_2_3", "1.2.3", 0},
        // dates as versions
        {"2024.01.15", "2024.2.1", -1},
    };
    for (const auto& c : cases) {
        INFO(c.a << " vs " << c.b);
        CHECK(sign(compare_versions(c.a, c.b)) == c.expected);
        CHECK(sign(compare_versions(c.b, c.a)) == -c.expected);
    }
}

TEST_CASE("compare_versions sorts a shuffled train into order", "[policy][version]") {
    const std::vector<std::string> ordered = {"0.9",       "1.0.0-alpha", "1.0.0-beta", "1.0.0-rc1", "1.0.0-rc2",
                                              "1.0.0",     "1.0.1",       "1.2",        "1.9",       "1.10.0-rc1",
                                              "1.10.0",    "1.10.1",      "2.0.0",      "10.0"};
    std::vector<std::string> shuffled = {"1.10.0", "0.9",        "2.0.0",     "1.0.0-rc2", "1.2",    "10.0",   "1.0.0",
                                         "1.9",    "1.0.0-beta", "1.10.0-rc1", "1.0.1",    "1.10.1", "1.0.0-rc1",
                                         "1.0.0-alpha"};
    std::sort(shuffled.begin(), shuffled.end(),
              [](const std::string& a, const std::string& b) { return compare_versions(a, b) < 0; });
    CHECK(shuffled == ordered);
}

TEST_CASE("compare_versions is a consistent order over odd inputs", "[policy][version]") {
    // Transitivity and antisymmetry over every pair and triple: std::sort
    // relies on them.
    const std::vector<std::string> v = {"1",     "1.0",   "1..0",  "1.",    "1-",     "1-0",   "1-a",  "1+x",
                                        "1.a",   "a",     "A",     "0",     "00",     "1_0-1", "1.0-1", "1.0.0-0",
                                        "1-1-1", "1.2.3", "1.2.x", "z.9.9", "1.2.3-b", ""};
    for (const auto& a : v) {
        CHECK(compare_versions(a, a) == 0);
        for (const auto& b : v) {
            INFO(a << " vs " << b);
            CHECK(sign(compare_versions(a, b)) == -sign(compare_versions(b, a)));
            for (const auto& c : v) {
                if (compare_versions(a, b) <= 0 && compare_versions(b, c) <= 0) {
                    INFO("then " << c);
                    CHECK(compare_versions(a, c) <= 0);
                }
            }
        }
    }
}
