#pragma once
// Reading a bag directory from disk (file-private to the bundle module).

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "bag_check.hpp"

namespace sluice::bundle::detail {

using PayloadListing = std::vector<std::pair<std::string, std::uint64_t>>;  // "data/…" path, size; sorted

/// Loads the tag area (top-level files, signatures/*) into `check`. Refuses
/// links, special files and unexpected directories.
Result<void> read_bag_tags(const std::filesystem::path& bag_dir, BagCheck& check, const Limits& limits);

/// Every regular file below bag_dir/data, sorted by path; links and special files refused.
Result<PayloadListing> list_payload(const std::filesystem::path& bag_dir, const Limits& limits);

}  // namespace sluice::bundle::detail
