#include "sluice/transfer/block_codec.hpp"

#include <isa-l/erasure_code.h>

#include <algorithm>

#include <stdexcept>

namespace sluice::transfer {
namespace {

// ISA-L takes non-const unsigned char**; it never writes through the data pointers.
unsigned char* as_uchar(const std::byte* p) { return reinterpret_cast<unsigned char*>(const_cast<std::byte*>(p)); }

}  // namespace

BlockCodec::BlockCodec(FecParams params, std::size_t cache_entries)
    : params_(params), cache_entries_(std::max<std::size_t>(cache_entries, 1)) {
    const unsigned k = params_.data_symbols;
    const unsigned m = params_.parity_symbols;
    if (k == 0 || m == 0 || k + m > 255) {
        throw std::invalid_argument("FEC: need 1 <= data symbols, 1 <= parity symbols, data + parity <= 255 (got " +
                                    std::to_string(k) + " + " + std::to_string(m) + ")");
    }
    if (params_.symbol_bytes == 0) throw std::invalid_argument("FEC: symbol size must be at least 1 byte");
    matrix_.resize(static_cast<std::size_t>(k + m) * k);
    // Cauchy: every K x K submatrix is invertible, so any K symbols suffice.
    gf_gen_cauchy1_matrix(matrix_.data(), static_cast<int>(k + m), static_cast<int>(k));
    parity_tables_.resize(static_cast<std::size_t>(32) * k * m);
    ec_init_tables(static_cast<int>(k), static_cast<int>(m), matrix_.data() + static_cast<std::size_t>(k) * k,
                   parity_tables_.data());
}

void BlockCodec::encode(std::span<const std::byte* const> data, std::span<std::byte* const> parity) {
    const unsigned k = params_.data_symbols;
    const unsigned m = params_.parity_symbols;
    if (data.size() != k || parity.size() != m) throw std::invalid_argument("FEC encode: wrong number of symbols");
    std::vector<unsigned char*> in(k);
    std::vector<unsigned char*> out(m);
    for (unsigned i = 0; i < k; ++i) in[i] = as_uchar(data[i]);
    for (unsigned i = 0; i < m; ++i) out[i] = reinterpret_cast<unsigned char*>(parity[i]);
    ec_encode_data(static_cast<int>(params_.symbol_bytes), static_cast<int>(k), static_cast<int>(m),
                   parity_tables_.data(), in.data(), out.data());
}

const BlockCodec::DecodePlan& BlockCodec::plan_for(const std::vector<bool>& present) {
    const unsigned k = params_.data_symbols;
    const unsigned total = k + params_.parity_symbols;
    // The pattern: which symbols serve as sources (the first K present).
    std::string key(total, '\0');
    DecodePlan plan;
    for (unsigned i = 0; i < total && plan.sources.size() < k; ++i) {
        if (present[i]) {
            plan.sources.push_back(i);
            key[i] = 1;
        }
    }
    if (auto it = cache_.find(key); it != cache_.end()) {
        lru_.splice(lru_.begin(), lru_, it->second);
        ++stats_.cache_hits;
        return it->second->second;
    }
    ++stats_.inversions;
    for (unsigned i = 0; i < k; ++i) {
        if (!present[i]) plan.missing.push_back(i);
    }
    // Only the r missing data symbols are unknown. With the r parity sources
    // p_b (the last r of the K sources) and the present data d_i:
    //   A_mm · x = P + A_mp · d        (A_mm: r×r, parity rows × missing columns)
    //   x = A_mm⁻¹ · P + (A_mm⁻¹ · A_mp) · d
    // so one r×r inversion (r ≤ M) replaces a K×K one: ~20 µs instead of ~1 ms
    // at K = 64, which matters because random loss rarely repeats a pattern.
    const std::size_t r = plan.missing.size();
    std::vector<unsigned> parity_rows(plan.sources.end() - static_cast<std::ptrdiff_t>(r), plan.sources.end());
    auto a = [&](unsigned row, unsigned col) { return matrix_[static_cast<std::size_t>(row) * k + col]; };
    std::vector<unsigned char> amm(r * r), inv(r * r);
    for (std::size_t i = 0; i < r; ++i) {
        for (std::size_t j = 0; j < r; ++j) amm[i * r + j] = a(parity_rows[i], plan.missing[j]);
    }
    if (gf_invert_matrix(amm.data(), inv.data(), static_cast<int>(r)) != 0) {
        throw std::logic_error("FEC: singular Cauchy submatrix");  // cannot happen for a Cauchy matrix
    }
    std::vector<unsigned char> rows(r * k, 0);
    for (std::size_t out = 0; out < r; ++out) {
        unsigned char* row = rows.data() + out * k;
        for (std::size_t src = 0; src < k; ++src) {
            const unsigned index = plan.sources[src];
            if (index >= k) {
                row[src] = inv[out * r + (src - (k - r))];  // a parity source: its column of A_mm⁻¹
            } else {
                unsigned char c = 0;
                for (std::size_t b = 0; b < r; ++b) {
                    c ^= gf_mul(inv[out * r + b], a(parity_rows[b], index));
                }
                row[src] = c;
            }
        }
    }
    plan.tables.resize(static_cast<std::size_t>(32) * k * plan.missing.size());
    ec_init_tables(static_cast<int>(k), static_cast<int>(plan.missing.size()), rows.data(), plan.tables.data());

    lru_.emplace_front(key, std::move(plan));
    cache_[key] = lru_.begin();
    if (lru_.size() > cache_entries_) {
        cache_.erase(lru_.back().first);
        lru_.pop_back();
    }
    return lru_.front().second;
}

bool BlockCodec::decode(std::span<std::byte* const> symbols, const std::vector<bool>& present) {
    const unsigned k = params_.data_symbols;
    const unsigned total = k + params_.parity_symbols;
    if (symbols.size() != total || present.size() != total) throw std::invalid_argument("FEC decode: wrong number of symbols");
    unsigned have = 0;
    bool data_missing = false;
    for (unsigned i = 0; i < total; ++i) {
        if (present[i]) ++have;
        else if (i < k) data_missing = true;
    }
    if (!data_missing) return true;
    if (have < k) return false;
    ++stats_.decodes;
    const DecodePlan& plan = plan_for(present);
    std::vector<unsigned char*> in(k);
    std::vector<unsigned char*> out(plan.missing.size());
    for (unsigned r = 0; r < k; ++r) in[r] = reinterpret_cast<unsigned char*>(symbols[plan.sources[r]]);
    for (std::size_t r = 0; r < plan.missing.size(); ++r) out[r] = reinterpret_cast<unsigned char*>(symbols[plan.missing[r]]);
    ec_encode_data(static_cast<int>(params_.symbol_bytes), static_cast<int>(k), static_cast<int>(plan.missing.size()),
                   const_cast<unsigned char*>(plan.tables.data()), in.data(), out.data());
    return true;
}

}  // namespace sluice::transfer
