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
    // B = rows of the encode matrix for the sources; data = B^-1 * sources.
    std::vector<unsigned char> b(static_cast<std::size_t>(k) * k);
    std::vector<unsigned char> inv(static_cast<std::size_t>(k) * k);
    for (unsigned r = 0; r < k; ++r) {
        std::copy_n(matrix_.data() + static_cast<std::size_t>(plan.sources[r]) * k, k, b.data() + static_cast<std::size_t>(r) * k);
    }
    if (gf_invert_matrix(b.data(), inv.data(), static_cast<int>(k)) != 0) {
        throw std::logic_error("FEC: singular Cauchy submatrix");  // cannot happen for a Cauchy matrix
    }
    std::vector<unsigned char> rows(plan.missing.size() * k);
    for (std::size_t r = 0; r < plan.missing.size(); ++r) {
        std::copy_n(inv.data() + static_cast<std::size_t>(plan.missing[r]) * k, k, rows.data() + r * k);
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
