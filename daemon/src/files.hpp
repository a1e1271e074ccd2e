#pragma once
// File helpers the daemons share (file-private to daemon/): durable small
// files, copying with a SHA-256 on the way, identifiers and times.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "sluice/bundle/signing.hpp"
#include "sluice/core/result.hpp"
#include "sluice/transfer/metadata.hpp"

namespace sluice::daemon::files {

/// Writes `bytes` beside `path`, fsyncs, renames over it and fsyncs the directory.
[[nodiscard]] Result<void> write_durably(const std::filesystem::path& path, std::string_view bytes);
/// fsync of a directory (after a rename into it).
void sync_dir(const std::filesystem::path& dir);
/// Copies `from` to a new file `to` (must not exist), fsyncs it, returns the SHA-256 and size.
struct Copied {
    transfer::Sha256 sha256{};
    std::uint64_t bytes = 0;
};
[[nodiscard]] Result<Copied> copy_hashed(const std::filesystem::path& from, const std::filesystem::path& to);
/// SHA-256 of a file.
[[nodiscard]] Result<Copied> hash_file(const std::filesystem::path& path);
/// Moves a file into place, without replacing anything there: rename when on
/// the same file system, else copy (fsynced) and unlink.
[[nodiscard]] Result<void> move_no_replace(const std::filesystem::path& from, const std::filesystem::path& to);
/// 64 random bits from the kernel.
[[nodiscard]] std::uint64_t random_u64();
/// The current UTC time, RFC 3339 to the second.
[[nodiscard]] std::string now_rfc3339();
/// Loads the trusted public key files (start-up: throws std::runtime_error naming the file).
[[nodiscard]] bundle::TrustStore load_trust(const std::vector<std::filesystem::path>& keys);

}  // namespace sluice::daemon::files
