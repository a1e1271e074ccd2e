#pragma once
// What changed between two bags: payload files added, removed and changed,
// with sizes, read from each bag's manifest-sha256.txt (hashes) and the files
// themselves (sizes). What an officer sees in `sluice show`.

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "sluice/core/result.hpp"

namespace sluice::policy {

struct TreeEntry {
    std::string path;  ///< bag-relative, "data/model.bin"
    std::uint64_t size = 0;
    std::string sha256;
};

struct TreeChange {
    std::string path;
    std::uint64_t old_size = 0;
    std::uint64_t new_size = 0;
};

struct TreeDiff {
    std::vector<TreeEntry> added;    ///< sorted by path
    std::vector<TreeEntry> removed;  ///< sorted by path
    std::vector<TreeChange> changed; ///< same path, other SHA-256; sorted by path
    std::uint64_t unchanged = 0;
    /// Entries dropped by truncate() (added + removed + changed beyond the lists kept).
    std::uint64_t omitted = 0;

    /// Keeps at most `per_list` entries in each list, counting the rest in
    /// `omitted`, so a record of a million-file bundle stays small.
    void truncate(std::size_t per_list);
};

/// The payload of a bag directory: manifest-sha256.txt lines with each file's size.
/// Error: no or malformed manifest, a listed file missing (named).
[[nodiscard]] Result<std::vector<TreeEntry>> read_bag_payload(const std::filesystem::path& bag_dir);

[[nodiscard]] TreeDiff diff_trees(const std::vector<TreeEntry>& before, const std::vector<TreeEntry>& after);

}  // namespace sluice::policy
