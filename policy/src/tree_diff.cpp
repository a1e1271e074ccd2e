#include "sluice/policy/tree_diff.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <string_view>
#include <utility>

#include "posix_io.hpp"
#include "sluice/bundle/bundle.hpp"

namespace sluice::policy {
namespace fs = std::filesystem;
namespace {

/// The manifest of a bag with a million files fits well below this; a larger
/// one is refused rather than read into memory (same bound as bundle::Limits).
constexpr std::size_t kMaxManifestBytes = bundle::Limits{}.max_tag_file_bytes;



Result<std::string> read_manifest(const fs::path& path) {
    return detail::read_regular_file(path, kMaxManifestBytes, " (not a bag directory?)");
}

}  // namespace

Result<std::vector<TreeEntry>> read_bag_payload(const fs::path& bag_dir) {
    const fs::path manifest_path = bag_dir / bundle::kManifest;
    auto text = read_manifest(manifest_path);
    if (!text) return text.error();
    auto manifest = bundle::parse_manifest(*text);
    if (!manifest) return manifest.error().within(manifest_path.string());

    const std::string data_prefix = std::string(bundle::kPayloadDir) + "/";
    std::vector<TreeEntry> entries;
    entries.reserve(manifest->size());
    for (const auto& m : *manifest) {
        // The payload manifest lists payload only (RFC 8493 §2.1.3).
        if (m.path.rfind(data_prefix, 0) != 0) {
            return fail(manifest_path.string() + ": '" + m.path + "' is outside data/");
        }
        const fs::path file = bag_dir / m.path;
        struct stat st {};
        if (::lstat(file.c_str(), &st) != 0) {
            if (errno == ENOENT) return fail(m.path + ": listed in " + std::string(bundle::kManifest) + " but missing");
            return detail::io_error(file, "cannot stat", errno);
        }
        if (!S_ISREG(st.st_mode)) return fail(m.path + ": not a regular file");
        entries.push_back(TreeEntry{m.path, static_cast<std::uint64_t>(st.st_size), bundle::to_hex(m.digest)});
    }
    std::sort(entries.begin(), entries.end(), [](const TreeEntry& a, const TreeEntry& b) { return a.path < b.path; });
    return entries;
}

TreeDiff diff_trees(const std::vector<TreeEntry>& before, const std::vector<TreeEntry>& after) {
    // Maps rather than relying on the callers' order: the result is sorted by
    // path whatever order the inputs came in.
    std::map<std::string_view, const TreeEntry*> old_files;
    for (const auto& e : before) old_files[e.path] = &e;
    std::map<std::string_view, const TreeEntry*> new_files;
    for (const auto& e : after) new_files[e.path] = &e;

    TreeDiff diff;
    for (const auto& [path, entry] : new_files) {
        auto it = old_files.find(path);
        if (it == old_files.end()) {
            diff.added.push_back(*entry);
        } else if (it->second->sha256 != entry->sha256) {
            diff.changed.push_back(TreeChange{entry->path, it->second->size, entry->size});
        } else {
            ++diff.unchanged;
        }
    }
    for (const auto& [path, entry] : old_files) {
        if (!new_files.contains(path)) diff.removed.push_back(*entry);
    }
    return diff;
}

void TreeDiff::truncate(std::size_t per_list) {
    auto cut = [&](auto& list) {
        if (list.size() <= per_list) return;
        omitted += list.size() - per_list;
        list.resize(per_list);
    };
    cut(added);
    cut(removed);
    cut(changed);
}

}  // namespace sluice::policy
