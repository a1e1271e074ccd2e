#pragma once
// Helpers the two daemons share (file-private to daemon/): durable small
// files, copying with a SHA-256 on the way, identifiers and times, and the
// start-up pieces both build from their configuration.

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include <optional>
#include <span>
#include <vector>

#include "sluice/bundle/signing.hpp"
#include "sluice/core/result.hpp"
#include "sluice/daemon/control.hpp"
#include "sluice/daemon/metrics.hpp"
#include "sluice/diode/endpoint.hpp"
#include "sluice/transfer/frame.hpp"
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
/// Removes `p` (a temporary file) when it goes out of scope, unless cleared.
struct RemoveOnExit {
    std::filesystem::path p;
    ~RemoveOnExit() {
        std::error_code ec;
        if (!p.empty()) std::filesystem::remove(p, ec);
    }
};
/// 64 random bits from the kernel.
[[nodiscard]] std::uint64_t random_u64();
/// The current UTC time, RFC 3339 to the second.
[[nodiscard]] std::string now_rfc3339();
/// Loads the trusted public key files (start-up: throws std::runtime_error naming the file).
[[nodiscard]] bundle::TrustStore load_trust(const std::vector<std::filesystem::path>& keys);
/// The link key from `key_file`, if configured (start-up: throws on a read error).
[[nodiscard]] std::optional<transfer::LinkKey> load_link_key(const std::optional<std::filesystem::path>& file);
/// The configured lanes as endpoints (start-up: throws naming the bad lane).
[[nodiscard]] std::vector<diode::Endpoint> parse_lanes(const std::vector<std::string>& lanes);
/// Throws the permission error unless `peer` holds at least one role (read-only commands).
void require_any_role(const Peer& peer, const RolesConfig& roles);
/// Writes `samples` to the metrics file when one is configured; a failure is logged, not fatal.
void write_metrics(const std::optional<std::filesystem::path>& path, std::span<const MetricSample> samples);

}  // namespace sluice::daemon::files
