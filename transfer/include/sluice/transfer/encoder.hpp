#pragma once
// Encoder: one pass of one archive, as frames.
//
//   archive ──read D blocks──► [blk g·D … g·D+D-1]  (K symbols each, last block zero-padded)
//                                   │ BlockCodec: M parity symbols per block
//                                   ▼
//   metadata, then for symbol s = 0 … K+M-1: for each block of the group: frame(block, s)
//
// Interleaving sends symbol s of every block of a group before symbol s+1, so a
// burst of L lost datagrams costs each block about L/D symbols instead of one
// block L. Metadata frames lead the pass (three copies) and every group, and
// one closes it. Memory: one group, D × (K+M) × symbol bytes.
//
// An optional annex (annex.hpp: ≤ 64 KiB that travel with the transfer) is cut
// into n chunks of at most the symbol size with their header, so annex frames
// are never larger than symbol frames. They are taken in turn from a cycle
// 0, 1, …, n-1, 0, 1, … (so no chunk is sent twice more than another), G groups:
//
//   meta ×3, annex ×2n │ per group: meta, annex ×t, symbols │ annex ×n, closing meta
//   t = max(1, ⌈2n / G⌉)
//
// Every chunk is thus sent at least 4 times before the symbols of the last
// group, i.e. before the archive can assemble in this pass (a chunk lost with
// probability p is missing with p^4: 0.16 % at 20 % loss), plus once at the
// close for a receiver that reports the pass incomplete. Small archives pay
// 5n frames; big ones about n per pass plus one per group (G ≈ blocks / D),
// which also lets a receiver that starts or restarts mid-pass collect the
// annex (the receiver holds it in memory only). No annex: no annex frames.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "sluice/core/result.hpp"
#include "sluice/transfer/annex.hpp"
#include "sluice/transfer/block_codec.hpp"
#include "sluice/transfer/frame.hpp"
#include "sluice/transfer/metadata.hpp"

namespace sluice::transfer {

/// Reads archive bytes at `offset` into `out`; returns how many were read
/// (fewer only at the end of the archive).
using ArchiveReader = std::function<Result<std::size_t>(std::uint64_t offset, std::span<std::byte> out)>;

/// Frames laid out back to back in one buffer, ready for sendmmsg / GSO.
class FrameBatch {
public:
    FrameBatch(std::size_t max_frames, std::size_t max_frame_bytes);

    void clear();
    [[nodiscard]] bool full() const { return frames_.size() == max_frames_; }
    [[nodiscard]] bool empty() const { return frames_.empty(); }
    [[nodiscard]] std::size_t size() const { return frames_.size(); }
    /// Space for one more frame; call commit() with its length. Requires !full().
    [[nodiscard]] std::span<std::byte> next_slot();
    void commit(std::size_t frame_bytes);
    [[nodiscard]] std::span<const std::span<const std::byte>> frames() const { return frames_; }

private:
    std::size_t max_frames_;
    std::size_t slot_bytes_;
    std::vector<std::byte> storage_;
    std::vector<std::span<const std::byte>> frames_;
};

class Encoder {
public:
    /// `info` must validate; `key` may be null (no MAC) and must outlive the encoder.
    /// `annex` (empty: none) travels with the transfer, ≤ kMaxAnnexBytes.
    /// Throws std::invalid_argument on an invalid info or an annex over the limit
    /// (programming errors: the sender builds both from verified data).
    Encoder(TransferInfo info, std::uint64_t session, std::uint64_t transfer, ArchiveReader reader, LinkKey* key,
            std::vector<std::byte> annex = {});

    /// Appends frames until the batch is full or the pass is over.
    /// Returns true while frames remain; an error when the archive cannot be read
    /// (it shrank, or an I/O error).
    [[nodiscard]] Result<bool> fill(FrameBatch& batch);

    [[nodiscard]] const TransferInfo& info() const { return info_; }
    /// Frames the whole pass consists of (annex frames included), and those emitted so far.
    [[nodiscard]] std::uint64_t frames_total() const { return frames_total_; }
    /// Chunks the annex is cut into (0: no annex), and annex frames in the pass.
    [[nodiscard]] std::size_t annex_chunks() const { return annex_chunks_.size(); }
    [[nodiscard]] std::uint64_t annex_frames_total() const { return annex_frames_total_; }
    [[nodiscard]] std::uint64_t frames_emitted() const { return frames_emitted_; }
    /// Largest frame this encoder produces (symbol frames).
    [[nodiscard]] std::size_t max_frame_bytes() const;

private:
    Result<void> load_group();
    void emit(FrameBatch& batch, FrameType type, std::uint32_t block, std::uint16_t symbol,
              std::span<const std::byte> payload);
    void emit_annex_chunk(FrameBatch& batch);

    TransferInfo info_;
    std::uint64_t session_;
    std::uint64_t transfer_;
    ArchiveReader reader_;
    LinkKey* key_;
    BlockCodec codec_;
    std::vector<std::byte> metadata_;

    std::uint64_t blocks_;
    std::uint64_t groups_;
    std::uint64_t group_ = 0;          // current group
    unsigned group_blocks_ = 0;        // blocks in the current group (≤ D)
    unsigned symbol_ = 0;              // next symbol index within the group
    unsigned block_in_group_ = 0;      // next block within the group
    unsigned leading_metadata_ = 3;    // copies still to send before the first symbol
    bool group_loaded_ = false;
    bool group_metadata_sent_ = false;
    bool closing_metadata_sent_ = false;
    std::vector<std::byte> symbols_;   // D blocks × (K+M) symbols

    std::vector<std::vector<std::byte>> annex_chunks_;  // chunk payloads, empty without an annex
    std::size_t annex_next_ = 0;       // next chunk of the cycle
    std::uint64_t annex_due_ = 0;      // chunks to send before anything else
    std::uint64_t annex_per_group_ = 0;// t: chunks after each group's metadata
    bool closing_annex_queued_ = false;
    std::uint64_t annex_frames_total_ = 0;

    std::uint64_t frames_total_ = 0;
    std::uint64_t frames_emitted_ = 0;
};

}  // namespace sluice::transfer
