#pragma once
// Released bundles on disk, where production pulls from:
//
//   <root>/<channel>/<version>/          a whole bag (bagit.txt, data/…, release.json, signatures/)
//   <root>/<channel>/current -> <version>  symlink, relative, switched atomically
//   <root>/<channel>/.partial-<version>-<random>/   an install in progress (never read by anyone)
//
// install() copies a bag beside its final place, checking every payload byte
// against the bag's manifest as it copies, fsyncs, then renames into place;
// set_current() makes a temporary symlink and renames it over `current`.
// Either step fails whole: a partial copy is never visible under <version>.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/result.hpp"

namespace sluice::policy {

class ReleaseStore {
public:
    explicit ReleaseStore(std::filesystem::path root);

    /// Copies the bag at `bag_dir` into <root>/<channel>/<version>/ (files 0644, dirs
    /// 0755), each data/ file hashed while copied and compared with manifest-sha256.txt,
    /// everything fsynced, then renamed into place (RENAME_NOREPLACE). Errors: the
    /// version exists, a file differs from the manifest (named), I/O (disk full, named
    /// path). On any error the partial directory is removed.
    [[nodiscard]] Result<std::filesystem::path> install(std::string_view channel, std::string_view version,
                                                        const std::filesystem::path& bag_dir);

    /// Points <channel>/current at <version> atomically (symlink + rename, then
    /// fsync of the channel directory). Error: no such version, I/O.
    [[nodiscard]] Result<void> set_current(std::string_view channel, std::string_view version);

    /// The version `current` points at, if any.
    [[nodiscard]] std::optional<std::string> current(std::string_view channel) const;

    /// Installed versions, oldest first by compare_versions; `current` and partials excluded.
    [[nodiscard]] std::vector<std::string> versions(std::string_view channel) const;

    /// Channels that have a directory under root, sorted.
    [[nodiscard]] std::vector<std::string> channels() const;

    /// Removes the oldest versions (compare_versions) beyond the newest `keep`,
    /// never the current one. Returns what it removed.
    [[nodiscard]] Result<std::vector<std::string>> prune(std::string_view channel, std::size_t keep);

    /// Removes a version directory (not the current one). For a release whose
    /// commit failed after install.
    [[nodiscard]] Result<void> remove(std::string_view channel, std::string_view version);

    /// Removes leftover .partial-* directories (a crash during install). Returns how many.
    std::size_t sweep_partials();

    [[nodiscard]] std::filesystem::path path_of(std::string_view channel, std::string_view version) const;
    [[nodiscard]] const std::filesystem::path& root() const { return root_; }

private:
    std::filesystem::path root_;
};

}  // namespace sluice::policy
