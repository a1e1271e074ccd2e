#pragma once
// Payloads of the two control frame types (see frame.hpp for the header):
//
//   metadata  (type 2)  TransferInfo — what one transfer carries and how it is
//                       cut into blocks. Repeated through the transfer, so a
//                       receiver that starts late or lost the first copies
//                       still learns it.
//   heartbeat (type 3)  Heartbeat — the sender is alive, its counters, and
//                       the transfers it sent recently (so the receiver can
//                       tell which ones it never saw).
//
// Both are versioned, big-endian, length-checked, and refused whole on any
// surprise (parse_* never throw). The annex frame (type 4) has its own header,
// annex.hpp.

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "sluice/core/result.hpp"
#include "sluice/transfer/block_codec.hpp"

namespace sluice::transfer {

using Sha256 = std::array<std::byte, 32>;

/// Lowercase hex of a digest (64 characters).
[[nodiscard]] std::string to_hex(const Sha256& digest);
/// Parses 64 hex characters; fails on anything else.
[[nodiscard]] Result<Sha256> sha256_from_hex(std::string_view hex);

/// Bounds a receiver applies to what a metadata frame may claim.
struct InfoLimits {
    std::uint64_t max_archive_bytes = 4ULL << 40;  ///< 4 TiB, the bundle module's payload bound
    std::size_t min_symbol_bytes = 64;
    std::size_t max_symbol_bytes = 8900;           ///< a jumbo frame
    unsigned max_interleave = 256;
    /// Blocks one transfer may have: bounds the receiver's bitmap of held
    /// blocks (2 MiB at 2^24) whatever is announced. 2^24 blocks of the default
    /// 64 × 1350 bytes is 1.4 TB.
    std::uint64_t max_blocks = std::uint64_t{1} << 24;
};

/// One transfer of one bundle archive.
struct TransferInfo {
    Sha256 bundle_id{};              ///< SHA-256 of the bag's tagmanifest
    std::uint64_t archive_bytes = 0; ///< size of the pax archive
    Sha256 archive_sha256{};         ///< end-to-end check of the reassembled archive
    FecParams fec;                   ///< K, M, symbol size
    unsigned interleave = 16;        ///< D: symbols are sent across D blocks in turn
    std::string channel;             ///< release channel (≤ 64 printable bytes)
    std::string version;             ///< release version (≤ 64 printable bytes)
    std::uint32_t pass = 1;          ///< this pass, 1-based
    std::uint32_t passes = 1;        ///< passes the sender plans for this transfer

    /// Bytes of archive one block carries (K × symbol size).
    [[nodiscard]] std::uint64_t block_bytes() const { return std::uint64_t{fec.data_symbols} * fec.symbol_bytes; }
    /// Number of blocks (the last one is zero-padded).
    [[nodiscard]] std::uint64_t blocks() const { return (archive_bytes + block_bytes() - 1) / block_bytes(); }
    /// Checks the fields against `limits` (sizes, FEC bounds, ≤ 2^32 blocks, printable names).
    [[nodiscard]] Result<void> validate(const InfoLimits& limits = {}) const;

    bool operator==(const TransferInfo&) const = default;
};

[[nodiscard]] std::vector<std::byte> encode_transfer_info(const TransferInfo& info);
/// Parses and validates a metadata payload.
[[nodiscard]] Result<TransferInfo> parse_transfer_info(std::span<const std::byte> payload, const InfoLimits& limits = {});

/// What a heartbeat says about one recent transfer.
struct RecentTransfer {
    std::uint64_t transfer = 0;
    Sha256 bundle_id{};
    std::uint64_t archive_bytes = 0;
    std::uint32_t passes_done = 0;   ///< passes completely sent so far
    std::uint32_t passes = 0;        ///< passes planned

    bool operator==(const RecentTransfer&) const = default;
};

inline constexpr std::size_t kMaxRecentTransfers = 16;

struct Heartbeat {
    std::uint64_t sequence = 0;        ///< +1 per heartbeat of this session: gaps are lost heartbeats
    std::uint32_t interval_ms = 1000;  ///< the sender's heartbeat period
    std::uint64_t rate_bits_per_s = 0; ///< configured pacing rate
    std::uint64_t frames_sent = 0;     ///< counters since the sender started
    std::uint64_t bytes_sent = 0;
    std::uint64_t transfers_sent = 0;  ///< passes completed
    std::uint32_t queue_length = 0;    ///< bundles waiting
    std::vector<RecentTransfer> recent;///< at most kMaxRecentTransfers, newest first

    bool operator==(const Heartbeat&) const = default;
};

[[nodiscard]] std::vector<std::byte> encode_heartbeat(const Heartbeat& heartbeat);
[[nodiscard]] Result<Heartbeat> parse_heartbeat(std::span<const std::byte> payload);

}  // namespace sluice::transfer
