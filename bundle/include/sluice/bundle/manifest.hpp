#pragma once
// Parsers and writers for the BagIt text files (RFC 8493): manifests
// ("<hex>  <path>" lines, paths percent-encoded for CR, LF and %),
// bag-info.txt ("Label: value" with continuation lines) and bagit.txt.
// All parsers take untrusted bytes and return a Result; none throws.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/bundle/digest.hpp"
#include "sluice/core/result.hpp"

namespace sluice::bundle {

/// Longest path in a bundle. Well under PATH_MAX (4096), so that the bag can
/// live below any reasonable directory and every path still resolves.
inline constexpr std::size_t kMaxPathBytes = 1024;

struct ManifestEntry {
    std::string path;  ///< decoded, relative to the bag root ("data/weights/a.bin")
    Sha256Digest digest;
};

struct ManifestLimits {
    std::size_t max_entries = 1'000'000;
    std::size_t max_path_bytes = kMaxPathBytes;
};

/// Lines of "<64 hex>  <path>"; LF, CRLF or CR endings. Refuses duplicates,
/// unsafe paths (see check_relative_path) and anything malformed, naming the line.
[[nodiscard]] Result<std::vector<ManifestEntry>> parse_manifest(std::string_view text,
                                                                const ManifestLimits& limits = {});
/// One line per entry in the given order, LF endings, paths encoded.
[[nodiscard]] std::string format_manifest(const std::vector<ManifestEntry>& entries);

/// RFC 8493 §2.1.3: CR, LF and % become %0D, %0A, %25.
[[nodiscard]] std::string encode_manifest_path(std::string_view path);
[[nodiscard]] Result<std::string> decode_manifest_path(std::string_view encoded);

/// A path that is safe to create below a fresh directory: relative, UTF-8,
/// no empty, "." or ".." components, no NUL or control characters, each
/// component ≤ 255 bytes, the whole ≤ max_bytes.
[[nodiscard]] Result<void> check_relative_path(std::string_view path, std::size_t max_bytes = kMaxPathBytes);

/// bag-info.txt: ordered (label, value) pairs; continuation lines folded with one space.
using BagInfo = std::vector<std::pair<std::string, std::string>>;
[[nodiscard]] Result<BagInfo> parse_bag_info(std::string_view text);
[[nodiscard]] std::string format_bag_info(const BagInfo& info);
/// The first value for `label` (labels compare case-insensitively), or empty.
[[nodiscard]] std::string bag_info_value(const BagInfo& info, std::string_view label);

/// The bagit.txt this software writes (BagIt 1.0, UTF-8).
[[nodiscard]] std::string format_bagit_txt();
/// Accepts BagIt-Version 1.0 (or 0.97) declaring UTF-8.
[[nodiscard]] Result<void> parse_bagit_txt(std::string_view text);

/// "Payload-Oxum: <octets>.<streams>"
struct PayloadOxum {
    std::uint64_t octets = 0;
    std::uint64_t streams = 0;
    bool operator==(const PayloadOxum&) const = default;
};
[[nodiscard]] Result<PayloadOxum> parse_payload_oxum(std::string_view value);

}  // namespace sluice::bundle
