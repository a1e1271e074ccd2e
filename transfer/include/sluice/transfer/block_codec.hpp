#pragma once
// Systematic Reed-Solomon over GF(2^8) for one block (ISA-L, Cauchy matrix):
//
//   K data symbols ──encode──► M parity symbols        (K + M ≤ 255)
//   any K of the K+M symbols ──decode──► the missing data symbols
//
// A decode matrix depends only on which symbols arrived. Only the r ≤ M
// missing data symbols are unknown, so it comes from an r×r inversion (tens
// of microseconds) rather than a K×K one (about a millisecond at K=64, which
// capped a receiver at ~1000 blocks/s under random loss, where patterns rarely
// repeat). Tables are also cached by erasure pattern in a small LRU, which
// pays off for periodic and burst loss.

#include <cstddef>
#include <cstdint>
#include <list>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

namespace sluice::transfer {

struct FecParams {
    unsigned data_symbols = 64;    ///< K
    unsigned parity_symbols = 16;  ///< M
    std::size_t symbol_bytes = 1350;

    bool operator==(const FecParams&) const = default;
};

class BlockCodec {
public:
    /// Throws std::invalid_argument when K = 0, M = 0, K + M > 255 or symbol_bytes = 0
    /// (these come from configuration, checked at start-up).
    explicit BlockCodec(FecParams params, std::size_t cache_entries = 128);

    [[nodiscard]] const FecParams& params() const { return params_; }

    /// data: K symbols; parity: M symbols to fill. Every symbol is symbol_bytes long.
    void encode(std::span<const std::byte* const> data, std::span<std::byte* const> parity);

    /// symbols: K+M buffers, `present[i]` says whether symbol i arrived intact.
    /// Rebuilds every missing data symbol in place (parity is not rebuilt).
    /// Returns false, touching nothing, when fewer than K symbols are present.
    [[nodiscard]] bool decode(std::span<std::byte* const> symbols, const std::vector<bool>& present);

    struct Stats {
        std::uint64_t decodes = 0;      ///< decodes that had to rebuild something
        std::uint64_t cache_hits = 0;
        std::uint64_t inversions = 0;   ///< matrix inversions (cache misses)
    };
    [[nodiscard]] const Stats& stats() const { return stats_; }

private:
    struct DecodePlan {
        std::vector<unsigned> sources;  ///< the K symbol indices used
        std::vector<unsigned> missing;  ///< data indices rebuilt, in order
        std::vector<unsigned char> tables;
    };
    const DecodePlan& plan_for(const std::vector<bool>& present);

    FecParams params_;
    std::size_t cache_entries_;
    std::vector<unsigned char> matrix_;        // (K+M) x K encode matrix
    std::vector<unsigned char> parity_tables_;  // ec_init_tables of the parity rows
    std::list<std::pair<std::string, DecodePlan>> lru_;
    std::unordered_map<std::string, std::list<std::pair<std::string, DecodePlan>>::iterator> cache_;
    Stats stats_;
};

}  // namespace sluice::transfer
