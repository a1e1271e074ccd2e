#pragma once
// Reassembler: frames in (any order, any loss, duplicates, corruption), whole
// archives out. Sans-IO: datagrams and the time come in as arguments; blocks go
// to a BlockStore; what happened comes out of drain().
//
//   datagram ─parse_frame─► metadata  ─► transfer known (K, M, S, D, size, SHA-256)
//                           symbol    ─► partial block (≤ K+M symbols, bounded pool)
//                                         └─ K symbols ─► RS decode ─► store.write(offset)
//                           heartbeat ─► Event::heartbeat (LinkMonitor)
//                           annex     ─► AnnexCollector per transfer ─► Event::annex on assembled/incomplete
//   on_tick(now) ─► checkpoints; idle or finished-but-short transfers ─► Event::incomplete
//
// Every transfer has its own state; an unrecoverable block only makes its own
// transfer incomplete. A staging area is shared by every transfer of the same
// archive, so passes and re-sends fill each other's gaps. Memory is bounded by
// Limits::max_buffered_bytes (partial blocks) and max_transfers, whatever the
// archive sizes: the oldest partial block is abandoned first.
//
// Annex (annex.hpp): each transfer collects its own, within its symbol size
// and ≤ 2 × 64 KiB (the one being collected and the last complete one, kept
// until a newer one completes). An annex completed by any transfer of an
// archive is also offered to the other transfers of that archive that have
// none. Annexes live in memory only: after a restart the next pass resends.
// Annex chunks before their metadata wait in the orphan buffer, like symbols.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/transfer/annex.hpp"
#include "sluice/transfer/block_codec.hpp"
#include "sluice/transfer/block_store.hpp"
#include "sluice/transfer/frame.hpp"
#include "sluice/transfer/metadata.hpp"

namespace sluice::transfer {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

struct ReassemblerLimits {
    InfoLimits info;
    std::size_t max_buffered_bytes = 48u << 20;         ///< partial blocks, all transfers together
    std::size_t max_transfers = 64;                     ///< transfers tracked at once
    std::size_t max_orphan_bytes = 4u << 20;            ///< symbols held until their metadata arrives
    std::chrono::milliseconds transfer_timeout{30000};  ///< no frame for this long → incomplete
    std::chrono::milliseconds finished_grace{3000};     ///< sender says all passes sent → incomplete after this
    std::chrono::milliseconds checkpoint_interval{1000};
    unsigned window_groups = 4;  ///< partial blocks this many groups behind the newest one are abandoned
};

struct Event {
    enum class Kind {
        started,     ///< first metadata of a transfer (info, held = blocks already staged)
        assembled,   ///< every block held: finalize (SHA-256) and deliver `key`
        incomplete,  ///< the transfer stopped short: `missing` blocks, staging kept for a later pass
        delivered_before,  ///< the archive was delivered already; this transfer is ignored
        failed,      ///< the store refused (disk full, I/O error): `message`; retried by the next pass
        heartbeat,   ///< a sender heartbeat (`heartbeat`)
    };
    Kind kind = Kind::started;
    std::uint64_t session = 0;
    std::uint64_t transfer = 0;
    TransferInfo info;
    std::string key;
    std::uint64_t blocks_held = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> missing;  ///< [first, last] ranges (at most 32)
    std::string message;
    Heartbeat heartbeat;
    /// assembled, incomplete: the newest complete annex (SHA-256 checked) of this
    /// transfer, else one completed by another transfer of the same archive; empty if none.
    std::vector<std::byte> annex;
};

[[nodiscard]] std::string_view to_string(Event::Kind kind);

struct ReassemblerStats {
    std::uint64_t datagrams = 0;
    std::uint64_t bytes = 0;
    std::uint64_t frame_errors[11] = {};  ///< indexed by FrameError
    std::uint64_t metadata_frames = 0;
    std::uint64_t heartbeat_frames = 0;
    std::uint64_t symbol_frames = 0;
    std::uint64_t annex_frames = 0;
    std::uint64_t bad_payloads = 0;            ///< metadata/heartbeat refused, symbol of wrong size or index
    std::uint64_t bad_annex_chunks = 0;        ///< annex chunk malformed, larger than a symbol, contradicting its annex, or completing one with the wrong SHA-256
    std::uint64_t annexes_completed = 0;       ///< annexes whose SHA-256 checked out
    std::uint64_t symbols_before_metadata = 0; ///< symbols of a transfer not yet described (held as orphans)
    std::uint64_t orphans_dropped = 0;         ///< orphans pushed out of their budget or never described
    std::uint64_t symbols_duplicate = 0;
    std::uint64_t symbols_unneeded = 0;        ///< block already held (later pass, parity after decode)
    std::uint64_t blocks_direct = 0;           ///< all K data symbols arrived
    std::uint64_t blocks_recovered = 0;        ///< rebuilt with parity
    std::uint64_t symbols_rebuilt = 0;
    std::uint64_t blocks_abandoned = 0;        ///< too few symbols before the window or memory moved on
    std::uint64_t symbols_missing = 0;         ///< symbols short in abandoned blocks
    std::uint64_t transfers_started = 0;
    std::uint64_t transfers_assembled = 0;
    std::uint64_t transfers_incomplete = 0;
    std::uint64_t transfers_evicted = 0;       ///< dropped to stay within max_transfers
    std::uint64_t store_errors = 0;
    std::uint64_t internal_errors = 0;         ///< exceptions caught in on_datagram (out of memory)

    [[nodiscard]] std::uint64_t frame_error(FrameError e) const { return frame_errors[static_cast<int>(e)]; }
    /// Frames dropped for a missing, wrong or unexpected MAC.
    [[nodiscard]] std::uint64_t mac_failures() const {
        return frame_error(FrameError::bad_mac) + frame_error(FrameError::missing_mac) +
               frame_error(FrameError::unexpected_mac);
    }
};

/// One transfer in flight, for `sluice status`.
struct TransferProgress {
    std::uint64_t session = 0;
    std::uint64_t transfer = 0;
    TransferInfo info;
    std::uint64_t blocks_held = 0;
    std::uint64_t blocks_total = 0;
    std::size_t partial_blocks = 0;
};

class Reassembler {
public:
    /// `store` and `key` (may be null: no MAC on this link) must outlive the reassembler.
    Reassembler(ReassemblerLimits limits, BlockStore& store, LinkKey* key);
    ~Reassembler();
    Reassembler(const Reassembler&) = delete;
    Reassembler& operator=(const Reassembler&) = delete;

    /// One untrusted datagram. Never throws; every refusal is a counter.
    void on_datagram(std::span<const std::byte> datagram, TimePoint now);
    /// Checkpoints progress; reports transfers that went idle or that the
    /// sender finished without them completing.
    void on_tick(TimePoint now);
    /// Called after the owner finalized an `assembled` archive: on failure the
    /// staging was discarded and later passes start again.
    void on_finalized(const std::string& key, bool delivered);

    [[nodiscard]] std::vector<Event> drain();
    [[nodiscard]] const ReassemblerStats& stats() const { return stats_; }
    [[nodiscard]] std::vector<TransferProgress> in_flight() const;
    [[nodiscard]] std::size_t buffered_bytes() const { return buffered_bytes_; }

private:
    struct Partial;
    struct Staging;
    struct Transfer;
    using TransferId = std::pair<std::uint64_t, std::uint64_t>;  // session, transfer

    void handle_datagram(std::span<const std::byte> datagram, TimePoint now);
    void on_metadata(const FrameView& frame, TimePoint now);
    void on_symbol(const FrameView& frame, TimePoint now);
    void symbol_for(struct Transfer& t, std::uint32_t block, std::uint16_t symbol, std::span<const std::byte> payload);
    void keep_orphan(const FrameView& frame);
    void adopt_orphans(const TransferId& id);
    void on_heartbeat(const FrameView& frame, TimePoint now);
    void on_annex(const FrameView& frame, TimePoint now);
    void annex_chunk_for(Transfer& t, std::span<const std::byte> payload);
    std::vector<std::byte> annex_of(const Transfer& t) const;
    void hold_orphan(const FrameView& frame);
    Partial* partial_for(Transfer& t, std::uint32_t block);
    void complete_block(Transfer& t, std::uint32_t block, Partial& p);
    void abandon(Transfer& t, std::map<std::uint32_t, std::unique_ptr<Partial>>::iterator it);
    void drop_partial(Transfer& t, std::map<std::uint32_t, std::unique_ptr<Partial>>::iterator it);
    bool evict_oldest_partial();
    void end_transfer(std::map<TransferId, Transfer>::iterator it, Event::Kind kind, std::string message);
    Staging* staging_for(const TransferInfo& info, Transfer& t, TimePoint now);
    void release_staging(const std::string& key);
    BlockCodec& codec_for(const FecParams& params);
    std::unique_ptr<Partial> new_partial(std::size_t bytes, unsigned symbols);

    ReassemblerLimits limits_;
    BlockStore& store_;
    LinkKey* key_;
    std::map<TransferId, Transfer> transfers_;
    std::unordered_map<std::string, Staging> stagings_;
    std::vector<std::pair<FecParams, std::unique_ptr<BlockCodec>>> codecs_;
    std::vector<std::unique_ptr<Partial>> free_partials_;
    std::size_t buffered_bytes_ = 0;
    std::uint64_t touch_ = 0;
    std::vector<Event> events_;
    ReassemblerStats stats_;
    std::map<std::pair<std::uint64_t, std::uint64_t>, TimePoint> sender_finished_;  // transfer → when announced
    struct Orphan {
        TransferId id;
        FrameType type;
        std::uint32_t block;
        std::uint16_t symbol;
        std::vector<std::byte> payload;
    };
    std::deque<Orphan> orphans_;  // symbols and annex chunks that arrived before their transfer's metadata
    std::size_t orphan_bytes_ = 0;
};

}  // namespace sluice::transfer
