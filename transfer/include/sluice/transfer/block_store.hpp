#pragma once
// Where the reassembler puts recovered blocks, and what it remembers of them.
//
//   Reassembler ──write(offset, bytes)──► BlockStore ──► staging file (at its offset)
//               ──checkpoint(held)──────►            ──► progress (only blocks already durable)
//               ◄──open(): blocks held────            ◄── after a restart, a later pass or a re-send
//
// A staging area is keyed by the archive (its SHA-256 and block layout), not by
// the transfer, so a second pass, a re-send under a new transfer id or a
// restarted receiver all fill the same file. FileBlockStore is the real one;
// tests use an in-memory store with failure injection.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/core/result.hpp"
#include "sluice/transfer/metadata.hpp"

namespace sluice::transfer {

/// Which blocks of an archive are held.
class BlockSet {
public:
    BlockSet() = default;
    explicit BlockSet(std::uint64_t blocks) : size_(blocks), words_((blocks + 63) / 64) {}

    [[nodiscard]] std::uint64_t size() const { return size_; }
    [[nodiscard]] std::uint64_t count() const { return count_; }
    [[nodiscard]] bool complete() const { return count_ == size_; }
    [[nodiscard]] bool test(std::uint64_t i) const { return (words_[i / 64] >> (i % 64)) & 1U; }
    void set(std::uint64_t i) {
        auto& w = words_[i / 64];
        auto bit = std::uint64_t{1} << (i % 64);
        if (!(w & bit)) {
            w |= bit;
            ++count_;
        }
    }
    /// Missing blocks as [first, last] ranges, at most `max_ranges` of them.
    [[nodiscard]] std::vector<std::pair<std::uint64_t, std::uint64_t>> missing_ranges(std::size_t max_ranges) const;
    [[nodiscard]] const std::vector<std::uint64_t>& words() const { return words_; }
    /// Rebuilds a set from saved words; fails when they do not fit `blocks`.
    [[nodiscard]] static Result<BlockSet> from_words(std::uint64_t blocks, std::vector<std::uint64_t> words);

private:
    std::uint64_t size_ = 0;
    std::uint64_t count_ = 0;
    std::vector<std::uint64_t> words_;
};

/// "<archive sha256 hex>-<archive bytes>-<K>x<symbol bytes>": one staging area per archive and block layout.
[[nodiscard]] std::string staging_key(const TransferInfo& info);

class BlockStore {
public:
    virtual ~BlockStore() = default;

    struct Opened {
        BlockSet held;                 ///< blocks already durable from earlier passes
        bool already_delivered = false;///< this archive was assembled and handed over before
    };
    /// Opens (creating or resuming) the staging area for `info`.
    [[nodiscard]] virtual Result<Opened> open(const std::string& key, const TransferInfo& info) = 0;
    /// Writes recovered archive bytes at their offset.
    [[nodiscard]] virtual Result<void> write(const std::string& key, std::uint64_t offset, std::span<const std::byte> bytes) = 0;
    /// Records `held` as durable once the bytes written so far are on disk
    /// (may complete in the background; a crash loses at most the blocks since
    /// the last completed checkpoint, which a later pass fills).
    [[nodiscard]] virtual Result<void> checkpoint(const std::string& key, const BlockSet& held) = 0;
    /// No transfer uses the staging area any more for now (it stays on disk).
    virtual void release(const std::string& key) = 0;
};

/// The persistent store: under `root`, one directory per staging key with
///   archive.part   the archive being rebuilt (sparse, at final size)
///   progress       which blocks are durable (written beside and renamed, checksummed)
/// and `delivered/<key>` markers for archives already handed over.
/// Checkpoints run on one background thread: fdatasync of archive.part, then
/// the progress file, so progress never claims bytes that are not on disk.
class FileBlockStore final : public BlockStore {
public:
    /// Creates `root` if needed. Throws std::runtime_error when it cannot (start-up).
    /// `max_stagings` (0: no limit) bounds the archives partly received at once:
    /// open() of a new one beyond it fails, so forged announcements cannot
    /// exhaust inodes or disk.
    explicit FileBlockStore(std::filesystem::path root, std::size_t max_stagings = 0);
    ~FileBlockStore() override;
    FileBlockStore(const FileBlockStore&) = delete;
    FileBlockStore& operator=(const FileBlockStore&) = delete;

    Result<Opened> open(const std::string& key, const TransferInfo& info) override;
    Result<void> write(const std::string& key, std::uint64_t offset, std::span<const std::byte> bytes) override;
    Result<void> checkpoint(const std::string& key, const BlockSet& held) override;
    void release(const std::string& key) override;

    /// Waits until every checkpoint handed over so far is on disk.
    void flush();
    /// Waits until the checkpoints of `key` handed over so far are on disk.
    void flush(const std::string& key);
    /// The blocks of `key` whose last checkpoint is on disk, read without opening
    /// the staging area (safe while another thread writes it): an empty set when
    /// nothing is staged; nullopt when the archive was delivered already.
    [[nodiscard]] std::optional<BlockSet> durable_blocks(const std::string& key, const TransferInfo& info) const;
    /// Whether a staging area exists for `key` (finalize failed on I/O, not on a digest mismatch).
    [[nodiscard]] bool has_staging(const std::string& key) const;
    /// Removes staging areas not in use whose progress is older than `max_age`
    /// (archives never completed nor re-sent). Returns how many.
    std::size_t sweep(std::chrono::hours max_age);
    [[nodiscard]] std::size_t staging_count() const;
    /// Path of the archive being rebuilt for `key`.
    [[nodiscard]] std::filesystem::path archive_path(const std::string& key) const;
    /// Syncs and hashes the assembled archive; on a SHA-256 match returns its
    /// path (still inside the store); on a mismatch discards the staging area
    /// so the next pass starts clean, and fails naming both digests.
    [[nodiscard]] Result<std::filesystem::path> finalize(const std::string& key, const TransferInfo& info);
    /// Marks the archive delivered (later passes and re-sends are recognised)
    /// and removes its staging area.
    [[nodiscard]] Result<void> mark_delivered(const std::string& key);
    /// Removes the staging area of `key` (after a refusal).
    void discard(const std::string& key);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::transfer
