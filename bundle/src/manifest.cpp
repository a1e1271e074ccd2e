#include "sluice/bundle/manifest.hpp"

#include <charconv>
#include <unordered_set>

#include "text.hpp"

namespace sluice::bundle {
namespace {

std::string line_ref(std::size_t line) { return "line " + std::to_string(line); }

Result<std::uint64_t> parse_u64(std::string_view s) {
    std::uint64_t v = 0;
    if (s.empty() || s.size() > 20) return fail("not a number");
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || ptr != s.data() + s.size()) return fail("not a number");
    return v;
}

}  // namespace

std::string encode_manifest_path(std::string_view path) {
    std::string out;
    out.reserve(path.size());
    for (char c : path) {
        if (c == '%') out += "%25";
        else if (c == '\n') out += "%0A";
        else if (c == '\r') out += "%0D";
        else out.push_back(c);
    }
    return out;
}

Result<std::string> decode_manifest_path(std::string_view encoded) {
    std::string out;
    out.reserve(encoded.size());
    for (std::size_t i = 0; i < encoded.size(); ++i) {
        if (encoded[i] != '%') {
            out.push_back(encoded[i]);
            continue;
        }
        std::string_view code = encoded.substr(i + 1, 2);
        if (detail::iequals(code, "25")) out.push_back('%');
        else if (detail::iequals(code, "0A")) out.push_back('\n');
        else if (detail::iequals(code, "0D")) out.push_back('\r');
        else return fail("bad percent-encoding '%" + detail::printable(code) + "' (only %25, %0A and %0D are defined)");
        i += 2;
    }
    return out;
}

Result<void> check_relative_path(std::string_view path, std::size_t max_bytes) {
    if (path.empty()) return fail("empty path");
    if (path.size() > max_bytes) return fail("path longer than " + std::to_string(max_bytes) + " bytes");
    if (!detail::is_valid_utf8(path)) return fail("path is not valid UTF-8");
    if (path.front() == '/') return fail("absolute path");
    if (detail::has_control(path)) return fail("path contains a control character");
    std::size_t start = 0;
    while (start <= path.size()) {
        std::size_t end = path.find('/', start);
        if (end == std::string_view::npos) end = path.size();
        std::string_view part = path.substr(start, end - start);
        if (part.empty()) return fail("path has an empty component");
        if (part == "." || part == "..") return fail("path has a '" + std::string(part) + "' component");
        if (part.size() > 255) return fail("path component longer than 255 bytes");
        start = end + 1;
    }
    return {};
}

Result<std::vector<ManifestEntry>> parse_manifest(std::string_view text, const ManifestLimits& limits) {
    std::vector<ManifestEntry> entries;
    std::unordered_set<std::string> seen;
    std::optional<Error> error;
    detail::for_each_line(text, [&](std::string_view line, std::size_t number) {
        if (line.empty()) return true;
        auto bad = [&](std::string why) {
            error = fail(line_ref(number) + ": " + std::move(why));
            return false;
        };
        if (entries.size() >= limits.max_entries) {
            return bad("more than " + std::to_string(limits.max_entries) + " entries");
        }
        std::size_t sep = line.find_first_of(" \t");
        if (sep == std::string_view::npos) return bad("expected '<sha256>  <path>'");
        auto digest = sha256_from_hex(line.substr(0, sep));
        if (!digest) return bad("'" + detail::printable(line.substr(0, sep), 80) + "' is not a SHA-256 digest");
        std::size_t path_start = line.find_first_not_of(" \t", sep);
        if (path_start == std::string_view::npos) return bad("missing path after the digest");
        std::string_view encoded = line.substr(path_start);
        if (encoded.size() > limits.max_path_bytes * 3) return bad("path too long");
        auto path = decode_manifest_path(encoded);
        if (!path) return bad(path.error().message);
        if (auto ok = check_relative_path(*path, limits.max_path_bytes); !ok) {
            return bad(ok.error().message + " in '" + detail::printable(encoded, 200) + "'");
        }
        if (!seen.insert(*path).second) return bad("'" + *path + "' is listed twice");
        entries.push_back(ManifestEntry{std::move(*path), *digest});
        return true;
    });
    if (error) return *error;
    return entries;
}

std::string format_manifest(const std::vector<ManifestEntry>& entries) {
    std::string out;
    for (const auto& e : entries) {
        out += to_hex(e.digest);
        out += "  ";
        out += encode_manifest_path(e.path);
        out += '\n';
    }
    return out;
}

Result<BagInfo> parse_bag_info(std::string_view text) {
    constexpr std::size_t kMaxLines = 10'000;
    BagInfo info;
    std::optional<Error> error;
    if (!detail::is_valid_utf8(text)) return fail("not valid UTF-8");
    detail::for_each_line(text, [&](std::string_view line, std::size_t number) {
        if (number > kMaxLines) {
            error = fail("more than " + std::to_string(kMaxLines) + " lines");
            return false;
        }
        if (line.empty()) return true;
        if (line.front() == ' ' || line.front() == '\t') {
            if (info.empty()) {
                error = fail(line_ref(number) + ": continuation line before any label");
                return false;
            }
            info.back().second += ' ';
            info.back().second += detail::trim(line);
            return true;
        }
        std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0) {
            error = fail(line_ref(number) + ": expected 'Label: value'");
            return false;
        }
        info.emplace_back(std::string(detail::trim(line.substr(0, colon))), std::string(detail::trim(line.substr(colon + 1))));
        return true;
    });
    if (error) return *error;
    return info;
}

std::string format_bag_info(const BagInfo& info) {
    std::string out;
    for (const auto& [label, value] : info) {
        out += label;
        out += ": ";
        out += value;
        out += '\n';
    }
    return out;
}

std::string bag_info_value(const BagInfo& info, std::string_view label) {
    for (const auto& [l, v] : info) {
        if (detail::iequals(l, label)) return v;
    }
    return {};
}

std::string format_bagit_txt() { return "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"; }

Result<void> parse_bagit_txt(std::string_view text) {
    if (text.size() > 4096) return fail("bagit.txt is larger than 4 KiB");
    auto info = parse_bag_info(text);
    if (!info) return info.error().within("bagit.txt");
    std::string version = bag_info_value(*info, "BagIt-Version");
    std::string encoding = bag_info_value(*info, "Tag-File-Character-Encoding");
    if (version.empty()) return fail("bagit.txt: missing BagIt-Version");
    if (version != "1.0" && version != "0.97") {
        return fail("bagit.txt: BagIt-Version " + detail::printable(version, 40) + " is not supported (1.0 or 0.97)");
    }
    if (!detail::iequals(encoding, "UTF-8")) {
        return fail("bagit.txt: Tag-File-Character-Encoding must be UTF-8, not '" + detail::printable(encoding, 40) + "'");
    }
    return {};
}

Result<PayloadOxum> parse_payload_oxum(std::string_view value) {
    std::size_t dot = value.find('.');
    auto bad = [&] { return fail("Payload-Oxum '" + detail::printable(value, 60) + "' is not <octets>.<files>"); };
    if (dot == std::string_view::npos) return bad();
    auto octets = parse_u64(value.substr(0, dot));
    auto streams = parse_u64(value.substr(dot + 1));
    if (!octets || !streams) return bad();
    return PayloadOxum{*octets, *streams};
}

}  // namespace sluice::bundle
