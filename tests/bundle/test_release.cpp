#include <catch2/catch.hpp>

#include "sluice/bundle/release.hpp"
#include "support/bundle_fixture.hpp"

using namespace sluice::bundle;

namespace {

Release sample() {
    Release r = sluice::test::sample_release();
    r.approved_by = "Release board (J. Doe)";
    r.artifacts = {{"weights", "data/weights/model.safetensors"}, {"images", {"sha256:abc"}}};
    return r;
}

}  // namespace

TEST_CASE("release.json round-trips canonically", "[bundle][release]") {
    Release r = sample();
    REQUIRE(validate_release(r).ok());
    std::string text = format_release(r);
    CHECK(text.find("\"schema\": \"sluice.release/1\"") != std::string::npos);
    CHECK(text.back() == '\n');
    auto back = parse_release(text);
    REQUIRE(back.ok());
    CHECK(*back == r);
    CHECK(format_release(*back) == text);

    r.previous_version.reset();
    auto first = parse_release(format_release(r));
    REQUIRE(first.ok());
    CHECK_FALSE(first->previous_version.has_value());
}

TEST_CASE("every audit answer is required", "[bundle][release]") {
    for (auto field : {&Release::changes, &Release::reason, &Release::approved_by, &Release::created_by}) {
        Release r = sample();
        r.*field = "   ";
        auto ok = validate_release(r);
        REQUIRE_FALSE(ok.ok());
        CHECK(ok.error().message.find("is empty") != std::string::npos);
    }
    Release r = sample();
    r.rollback_to = "";
    REQUIRE_FALSE(validate_release(r).ok());
    CHECK(validate_release(r).error().message.find("rollback_to") != std::string::npos);
}

TEST_CASE("names are usable as directory names", "[bundle][release]") {
    CHECK(is_valid_channel("models"));
    CHECK(is_valid_channel("llm.prod-eu_1"));
    CHECK_FALSE(is_valid_channel("Models"));
    CHECK_FALSE(is_valid_channel("../etc"));
    CHECK_FALSE(is_valid_channel(".hidden"));
    CHECK_FALSE(is_valid_channel(std::string(65, 'a')));
    CHECK(is_valid_version("1.4.0-rc.1+build.7"));
    CHECK_FALSE(is_valid_version("1.4/0"));
    CHECK_FALSE(is_valid_version("-1"));
    CHECK(is_valid_signer_name("Alice.Smith"));
    CHECK_FALSE(is_valid_signer_name(".alice"));
}

TEST_CASE("RFC 3339 times", "[bundle][release]") {
    CHECK(*parse_rfc3339("1970-01-01T00:00:00Z") == 0);
    CHECK(*parse_rfc3339("2026-11-29T14:00:00Z") == 1795960800);
    CHECK(*parse_rfc3339("2026-11-29T15:30:00+01:30") == 1795960800);
    CHECK(*parse_rfc3339("2026-11-29T14:00:00.999Z") == 1795960800);
    CHECK(format_rfc3339(1795960800) == "2026-11-29T14:00:00Z");
    CHECK_FALSE(parse_rfc3339("2026-02-30T00:00:00Z").ok());
    CHECK_FALSE(parse_rfc3339("2026-11-29 14:00:00Z").ok());
    CHECK_FALSE(parse_rfc3339("2026-11-29T14:00:00").ok());
    CHECK_FALSE(parse_rfc3339("2026-11-29T24:00:00Z").ok());
    Release r = sample();
    r.created_at = "2026-11-29T15:00:00+01:00";
    REQUIRE_FALSE(validate_release(r).ok());
    CHECK(validate_release(r).error().message.find("2026-11-29T14:00:00Z") != std::string::npos);
}

TEST_CASE("untrusted release.json is refused with the field named", "[bundle][release]") {
    auto refused = [](const std::string& text, const std::string& needle) {
        auto r = parse_release(text);
        REQUIRE_FALSE(r.ok());
        INFO(r.error().message);
        CHECK(r.error().message.find(needle) != std::string::npos);
    };
    std::string good = format_release(sample());
    refused("{", "not valid JSON");
    refused("[]", "must be a JSON object");
    refused(std::string(200, '[') + std::string(200, ']'), "nests deeper");
    refused(good.substr(0, good.size() - 2) + ",\"extra\":1}", "unknown field 'extra'");
    auto j = nlohmann::json::parse(good);
    j.erase("reason");
    refused(j.dump(), "missing field 'reason'");
    j = nlohmann::json::parse(good);
    j["version"] = 14;
    refused(j.dump(), "'version' must be a string");
    j = nlohmann::json::parse(good);
    j["schema"] = "sluice.release/2";
    refused(j.dump(), "schema");
    j = nlohmann::json::parse(good);
    j["channel"] = "../../etc";
    refused(j.dump(), "channel");
    j = nlohmann::json::parse(good);
    j["artifacts"] = "not an object";
    refused(j.dump(), "artifacts");
    refused(std::string(2 << 20, ' '), "larger than 1 MiB");
}

TEST_CASE("answers may not carry control characters", "[bundle][release]") {
    Release r = sample();
    r.changes = "line one\nline two\twith a tab";
    CHECK(validate_release(r).ok());
    r.changes = "ok\x1b]0;owned\a";
    REQUIRE_FALSE(validate_release(r).ok());
    CHECK(validate_release(r).error().message.find("changes contains a control character") != std::string::npos);
    r = sample();
    r.approved_by = "board\nSD_INFO event=approved";
    REQUIRE_FALSE(validate_release(r).ok());
    CHECK(validate_release(r).error().message.find("approved_by") != std::string::npos);
    r = sample();
    r.reason = "C1 \xc2\x9b" "2J";
    CHECK_FALSE(validate_release(r).ok());
}
