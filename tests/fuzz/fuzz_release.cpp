// libFuzzer target for release.json and the RFC 3339 times inside it.
//
//   input bytes ─┬─► parse_release ──► format_release ──► parse_release   same Release,
//                │                                                         same bytes again
//                └─► parse_rfc3339 ──► format_rfc3339 ──► parse_rfc3339   same instant
//
// A property that fails traps (see fuzz_check.hpp).

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "sluice/bundle/release.hpp"

namespace {

using namespace sluice::bundle;

// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z: the years "YYYY" can spell.
constexpr long long kFirstSecond = -62167219200LL;
constexpr long long kLastSecond = 253402300799LL;

void fuzz_parse_release(std::string_view bytes) {
    auto release = parse_release(bytes);
    if (!release) {
        FUZZ_REQUIRE(!release.error().message.empty(), "parse_release: a refusal names its reason");
        return;
    }
    FUZZ_REQUIRE(validate_release(*release).ok(), "a parsed release validates");
    FUZZ_REQUIRE(release->artifacts.is_object(), "artifacts is an object");

    std::string canonical = format_release(*release);
    auto again = parse_release(canonical);
    FUZZ_REQUIRE(again.ok(), "format_release output parses");
    FUZZ_REQUIRE(*again == *release, "parse_release(format_release(r)) == r");
    FUZZ_REQUIRE(format_release(*again) == canonical, "format_release is a fixed point");

    auto when = parse_rfc3339(release->created_at);
    FUZZ_REQUIRE(when.ok() && format_rfc3339(*when) == release->created_at, "created_at is canonical");
}

void fuzz_rfc3339(std::string_view text) {
    auto when = parse_rfc3339(text);
    if (!when) return;
    // A UTC offset may carry a time just outside the four-digit years.
    if (*when < kFirstSecond || *when > kLastSecond) return;
    std::string canonical = format_rfc3339(*when);
    auto again = parse_rfc3339(canonical);
    FUZZ_REQUIRE(again.ok() && *again == *when, "parse_rfc3339(format_rfc3339(t)) == t");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text = sluice::fuzz::as_text(data, size);
    fuzz_parse_release(text);
    fuzz_rfc3339(text);
    return 0;
}
