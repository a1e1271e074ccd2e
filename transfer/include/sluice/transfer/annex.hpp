#pragma once
// The annex: opaque bytes (≤ 64 KiB; the sender's audit "hop record" in
// practice) that travel with one transfer, cut into chunks that each fit one
// frame of type 4 (see frame.hpp for the header; the header's session and
// transfer ids say which transfer the annex belongs to, block and symbol are 0).
//
//   annex ──encode_annex_chunks──► chunk 0 … chunk n-1   (each ≤ the symbol size with its header)
//   chunk payload, version 1, big-endian:
//
//   offset  size  field
//   0       1     version (1)
//   1       4     annex total length T   (1 … kMaxAnnexBytes)
//   5       32    SHA-256 of the whole annex
//   37      2     chunk index i          (i < n)
//   39      2     chunk count n          (n = ⌈T / c⌉)
//   41      …     chunk bytes: c for every chunk but the last, T − (n−1)·c for the last (≥ 1)
//
// The chunk size c is not on the wire: a chunk other than the last has length
// c, the last one gives c = (T − length) / (n − 1). parse_annex_chunk checks
// every field and this arithmetic and refuses the whole chunk on any surprise
// (it never throws); AnnexCollector checks that the chunks of one annex agree
// with each other and, once all are there, that their SHA-256 matches.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "sluice/core/result.hpp"
#include "sluice/transfer/metadata.hpp"

namespace sluice::transfer {

inline constexpr std::uint8_t kAnnexVersion = 1;
inline constexpr std::size_t kAnnexHeaderBytes = 41;
inline constexpr std::size_t kMaxAnnexBytes = 65536;
inline constexpr std::size_t kMaxAnnexChunks = 65535;

/// One parsed annex chunk; `data` points into the parsed payload.
struct AnnexChunk {
    std::uint32_t total = 0;        ///< bytes of the whole annex
    Sha256 sha256{};                ///< of the whole annex
    std::uint16_t index = 0;
    std::uint16_t count = 0;
    std::size_t chunk_bytes = 0;    ///< c: length of every chunk but the last (derived, see above)
    std::span<const std::byte> data;
};

/// SHA-256 of `bytes`.
[[nodiscard]] Sha256 annex_sha256(std::span<const std::byte> bytes);

/// Cuts `annex` into chunk payloads of at most `max_payload_bytes` each (header
/// included; values over kMaxFramePayload count as kMaxFramePayload).
/// Fails on an empty annex, one over kMaxAnnexBytes, or a payload size that
/// leaves no room for data or needs more than kMaxAnnexChunks chunks.
[[nodiscard]] Result<std::vector<std::vector<std::byte>>> encode_annex_chunks(std::span<const std::byte> annex,
                                                                            std::size_t max_payload_bytes);

/// Parses one untrusted annex frame payload. Fails on a short payload, another
/// version, a total of 0 or over kMaxAnnexBytes, index ≥ count, an empty chunk,
/// or lengths that do not fit one chunk size c (see above).
[[nodiscard]] Result<AnnexChunk> parse_annex_chunk(std::span<const std::byte> payload);

/// Collects the chunks of one transfer's annex. Memory: the annex being
/// collected (≤ kMaxAnnexBytes and one bit per chunk) and the last complete one
/// (≤ kMaxAnnexBytes, shared, not copied, with whoever keeps the pointer).
class AnnexCollector {
public:
    enum class Outcome {
        stored,     ///< a new chunk of the annex being collected
        duplicate,  ///< held already, or a chunk of the annex that is complete
        completed,  ///< the last missing chunk: complete() is this annex now
    };

    /// Adds one parsed chunk. A chunk with another SHA-256 than the annex being
    /// collected abandons that one and starts collecting its own (the sender
    /// rebuilt the annex); complete() stays until a newer annex completes.
    /// Fails, and drops the chunk, when it contradicts the annex it names (same
    /// SHA-256, other length, count or chunk size); fails, and starts over, when
    /// the completed bytes do not have the announced SHA-256.
    [[nodiscard]] Result<Outcome> add(const AnnexChunk& chunk);

    /// The newest annex whose SHA-256 was checked, or null.
    [[nodiscard]] const std::shared_ptr<const std::vector<std::byte>>& complete() const { return complete_; }
    /// Chunks held of the annex being collected (0 when none is).
    [[nodiscard]] std::size_t chunks_held() const { return held_; }
    /// Bytes allocated for the annex being collected and the complete one.
    [[nodiscard]] std::size_t memory_bytes() const;

private:
    void start(const AnnexChunk& chunk);
    void reset();

    std::shared_ptr<const std::vector<std::byte>> complete_;
    Sha256 complete_sha256_{};

    bool collecting_ = false;
    Sha256 sha256_{};
    std::uint32_t total_ = 0;
    std::uint16_t count_ = 0;
    std::size_t chunk_bytes_ = 0;
    std::vector<std::byte> buffer_;
    std::vector<bool> present_;
    std::size_t held_ = 0;
};

}  // namespace sluice::transfer
