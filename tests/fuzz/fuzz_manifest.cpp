// libFuzzer target for the BagIt text parsers: manifests, manifest paths,
// bag-info.txt, bagit.txt, Payload-Oxum, base64 signatures and hex digests.
//
//   input bytes ─┬─► parse_manifest ──► format_manifest ──► parse_manifest   same entries
//                ├─► decode_manifest_path ◄─► encode_manifest_path           inverse
//                ├─► check_relative_path   vs. an independent oracle         agree
//                ├─► parse_bag_info ──► format_bag_info ──► parse_bag_info   same pairs
//                ├─► parse_bagit_txt, parse_payload_oxum                     vs. oracles
//                ├─► base64_decode ──► base64_encode                         one spelling
//                └─► sha256_from_hex ──► to_hex                              lowercase input
//
// Every parser sees the whole input; a property that fails traps (see fuzz_check.hpp).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz_check.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/bundle/manifest.hpp"

namespace {

using namespace sluice::bundle;

constexpr std::string_view kWhiteSpace = " \t";

// ── independent oracles ─────────────────────────────────────────────────────

/// Strict UTF-8 as nlohmann::json's encoder checks it (Hoehrmann's DFA), so the
/// library's own validator is compared against a different implementation.
bool is_utf8(std::string_view s) {
    try {
        (void)nlohmann::json(std::string(s)).dump();
        return true;
    } catch (const nlohmann::json::type_error&) {
        return false;
    }
}

bool is_ascii_control(char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

/// C0, DEL or C1 (U+0080..U+009F, "\xc2\x80".."\xc2\x9f" in valid UTF-8).
bool has_control(std::string_view s) {
    if (std::any_of(s.begin(), s.end(), is_ascii_control)) return true;
    for (std::size_t i = s.find('\xc2'); i != std::string_view::npos && i + 1 < s.size(); i = s.find('\xc2', i + 1)) {
        auto next = static_cast<unsigned char>(s[i + 1]);
        if (next >= 0x80 && next <= 0x9f) return true;
    }
    return false;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

std::string_view trim(std::string_view s) {
    std::size_t first = s.find_first_not_of(kWhiteSpace);
    if (first == std::string_view::npos) return {};
    return s.substr(first, s.find_last_not_of(kWhiteSpace) - first + 1);
}

/// What check_relative_path documents: relative, UTF-8, no empty, "." or ".."
/// components, no control characters (C0, DEL, C1), components ≤ 255 bytes, whole ≤ max.
bool expect_safe_path(std::string_view path, std::size_t max_bytes) {
    if (path.empty() || path.size() > max_bytes || path.front() == '/') return false;
    if (!is_utf8(path) || has_control(path)) return false;
    std::size_t start = 0;
    for (;;) {
        std::size_t end = std::min(path.find('/', start), path.size());
        std::string_view part = path.substr(start, end - start);
        if (part.empty() || part == "." || part == ".." || part.size() > 255) return false;
        if (end == path.size()) return true;
        start = end + 1;
    }
}

/// Decoding succeeds exactly when every '%' starts %25, %0A or %0D (any case).
bool expect_decodable(std::string_view encoded) {
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] != '%') continue;
        std::string_view code = encoded.substr(i + 1, 2);
        if (!iequals(code, "25") && !iequals(code, "0a") && !iequals(code, "0d")) return false;
        i += 2;
    }
    return true;
}

/// 1–20 decimal digits that fit in 64 bits.
bool expect_u64(std::string_view s, std::uint64_t& out) {
    if (s.empty() || s.size() > 20) return false;
    out = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        if (__builtin_mul_overflow(out, 10U, &out) || __builtin_add_overflow(out, static_cast<unsigned>(c - '0'), &out)) {
            return false;
        }
    }
    return true;
}

bool same_entries(const std::vector<ManifestEntry>& a, const std::vector<ManifestEntry>& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                      [](const ManifestEntry& x, const ManifestEntry& y) { return x.path == y.path && x.digest == y.digest; });
}

// ── properties ──────────────────────────────────────────────────────────────

void fuzz_parse_manifest(std::string_view text, const ManifestLimits& limits) {
    auto entries = parse_manifest(text, limits);
    if (!entries) {
        FUZZ_REQUIRE(!entries.error().message.empty(), "parse_manifest: a refusal names its reason");
        return;
    }
    FUZZ_REQUIRE(entries->size() <= limits.max_entries, "parse_manifest: at most max_entries entries");
    std::set<std::string> seen;
    for (const auto& e : *entries) {
        FUZZ_REQUIRE(expect_safe_path(e.path, limits.max_path_bytes), "parse_manifest: every path is safe");
        FUZZ_REQUIRE(seen.insert(e.path).second, "parse_manifest: no path twice");
    }
    std::string canonical = format_manifest(*entries);
    auto again = parse_manifest(canonical, limits);
    FUZZ_REQUIRE(again.ok(), "format_manifest output parses");
    FUZZ_REQUIRE(same_entries(*again, *entries), "parse_manifest(format_manifest(e)) == e");
    FUZZ_REQUIRE(format_manifest(*again) == canonical, "format_manifest is a fixed point");
}

void fuzz_manifest_path(std::string_view text) {
    // encode is total, and decode inverts it for every byte string.
    std::string encoded = encode_manifest_path(text);
    FUZZ_REQUIRE(encoded.find_first_of("\r\n") == std::string::npos, "encode_manifest_path leaves no line break");
    auto decoded = decode_manifest_path(encoded);
    FUZZ_REQUIRE(decoded.ok() && *decoded == text, "decode(encode(x)) == x");

    auto direct = decode_manifest_path(text);
    FUZZ_REQUIRE(direct.ok() == expect_decodable(text), "decode_manifest_path accepts exactly %25, %0A, %0D");
    if (!direct) return;
    FUZZ_REQUIRE(direct->size() <= text.size(), "decoding never grows a path");
    auto again = decode_manifest_path(encode_manifest_path(*direct));
    FUZZ_REQUIRE(again.ok() && *again == *direct, "decode(encode(decode(x))) == decode(x)");
}

void fuzz_relative_path(std::string_view text) {
    for (std::size_t max_bytes : {std::size_t{4096}, std::size_t{64}}) {
        bool ok = check_relative_path(text, max_bytes).ok();
        FUZZ_REQUIRE(ok == expect_safe_path(text, max_bytes), "check_relative_path agrees with its documentation");
        if (!ok) continue;
        // The point of the check: the path stays below any directory it is joined to.
        const std::filesystem::path root = "/fuzz-root";
        auto joined = (root / std::filesystem::path(std::string(text))).lexically_normal();
        auto rel = joined.lexically_relative(root);
        FUZZ_REQUIRE(!rel.empty() && *rel.begin() != "..", "a safe path stays below its root");
        FUZZ_REQUIRE(std::filesystem::path(std::string(text)).is_relative(), "a safe path is relative");
    }
}

void fuzz_bag_info(std::string_view text) {
    auto info = parse_bag_info(text);
    if (!info) return;
    FUZZ_REQUIRE(is_utf8(text), "parse_bag_info accepts only UTF-8");
    BagInfo trimmed;
    for (const auto& [label, value] : *info) {
        FUZZ_REQUIRE(!label.empty(), "bag-info: labels are not empty");
        FUZZ_REQUIRE(trim(label) == label, "bag-info: labels are trimmed");
        FUZZ_REQUIRE(label.find_first_of(":\r\n") == std::string::npos, "bag-info: no ':' or line break in a label");
        FUZZ_REQUIRE(value.find_first_of("\r\n") == std::string::npos, "bag-info: no line break in a value");
        trimmed.emplace_back(label, std::string(trim(value)));
    }
    for (std::size_t i = 0; i < std::min<std::size_t>(info->size(), 32); ++i) {  // quadratic: a few suffice
        const std::string& label = (*info)[i].first;
        auto first = std::find_if(info->begin(), info->end(), [&](const auto& p) { return iequals(p.first, label); });
        std::string upper(label);
        std::transform(upper.begin(), upper.end(), upper.begin(), [](char c) {
            return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
        });
        FUZZ_REQUIRE(bag_info_value(*info, upper) == first->second, "bag_info_value: first value, label in any case");
    }
    // A value folded from an all-blank continuation line keeps a trailing
    // space that "Label: value" cannot carry; the written form drops it, and
    // from then on the pairs are a fixed point.
    std::string canonical = format_bag_info(*info);
    auto again = parse_bag_info(canonical);
    FUZZ_REQUIRE(again.ok(), "format_bag_info output parses");
    FUZZ_REQUIRE(*again == trimmed, "parse_bag_info(format_bag_info(i)) == i (values trimmed)");
    auto twice = parse_bag_info(format_bag_info(*again));
    FUZZ_REQUIRE(twice.ok() && *twice == *again, "format_bag_info is a fixed point");
}

void fuzz_bagit_txt(std::string_view text) {
    if (!parse_bagit_txt(text)) return;
    FUZZ_REQUIRE(text.size() <= 4096, "bagit.txt: at most 4 KiB");
    auto info = parse_bag_info(text);
    FUZZ_REQUIRE(info.ok(), "bagit.txt is a valid bag-info file");
    std::string version = bag_info_value(*info, "bagit-version");
    FUZZ_REQUIRE(version == "1.0" || version == "0.97", "bagit.txt: version 1.0 or 0.97");
    FUZZ_REQUIRE(iequals(bag_info_value(*info, "TAG-FILE-CHARACTER-ENCODING"), "utf-8"), "bagit.txt: UTF-8");
}

void fuzz_payload_oxum(std::string_view text) {
    auto oxum = parse_payload_oxum(text);
    std::size_t dot = text.find('.');
    PayloadOxum expected;
    bool expect_ok = dot != std::string_view::npos && expect_u64(text.substr(0, dot), expected.octets) &&
                     expect_u64(text.substr(dot + 1), expected.streams);
    FUZZ_REQUIRE(oxum.ok() == expect_ok, "parse_payload_oxum accepts exactly <digits>.<digits>");
    if (!oxum) return;
    FUZZ_REQUIRE(*oxum == expected, "parse_payload_oxum reads the numbers written");
    auto again = parse_payload_oxum(std::to_string(oxum->octets) + "." + std::to_string(oxum->streams));
    FUZZ_REQUIRE(again.ok() && *again == *oxum, "Payload-Oxum round trip");
}

void fuzz_base64(std::string_view text, std::span<const std::uint8_t> bytes) {
    // Encoding is total and decoding inverts it.
    std::string encoded = base64_encode(bytes);
    FUZZ_REQUIRE(encoded.size() == (bytes.size() + 2) / 3 * 4, "base64_encode length");
    auto decoded = base64_decode(encoded);
    FUZZ_REQUIRE(decoded && std::equal(decoded->begin(), decoded->end(), bytes.begin(), bytes.end()),
                 "base64_decode(base64_encode(b)) == b");

    // Strict decoding (padding required, trailing bits zero) leaves exactly one
    // spelling of every byte string, white space aside.
    auto direct = base64_decode(text);
    if (!direct) return;
    std::string stripped;
    for (char c : text) {
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') stripped.push_back(c);
    }
    std::string reencoded = base64_encode(*direct);
    FUZZ_REQUIRE(reencoded == stripped, "base64: accepted text is the canonical encoding");
    auto again = base64_decode(reencoded);
    FUZZ_REQUIRE(again && *again == *direct, "base64_decode(base64_encode(base64_decode(x))) == base64_decode(x)");
}

void fuzz_hex(std::string_view text) {
    auto digest = sha256_from_hex(text);
    bool expect_ok = text.size() == 64 && std::all_of(text.begin(), text.end(), [](char c) {
                         return (c >= '0' && c <= '9') || (lower(c) >= 'a' && lower(c) <= 'f');
                     });
    FUZZ_REQUIRE(digest.has_value() == expect_ok, "sha256_from_hex accepts exactly 64 hex digits");
    if (!digest) return;
    std::string lowered(text);
    std::transform(lowered.begin(), lowered.end(), lowered.begin(), lower);
    FUZZ_REQUIRE(to_hex(*digest) == lowered, "to_hex(sha256_from_hex(x)) == lowercase(x)");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    // The files this software writes must satisfy its own parsers.
    FUZZ_REQUIRE(parse_bagit_txt(format_bagit_txt()).ok(), "parse_bagit_txt(format_bagit_txt())");
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text = sluice::fuzz::as_text(data, size);
    fuzz_parse_manifest(text, ManifestLimits{});
    fuzz_parse_manifest(text, ManifestLimits{4, 64});  // small limits reach the refusals
    fuzz_manifest_path(text);
    fuzz_relative_path(text);
    fuzz_bag_info(text);
    fuzz_bagit_txt(text);
    fuzz_payload_oxum(text);
    fuzz_base64(text, std::span(data, size));
    fuzz_hex(text);
    return 0;
}
