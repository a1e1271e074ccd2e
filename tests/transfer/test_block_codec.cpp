#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <vector>

#include "sluice/transfer/block_codec.hpp"

using namespace sluice::transfer;

namespace {

struct Block {
    FecParams params;
    std::vector<std::vector<std::byte>> symbols;  // K data then M parity

    Block(FecParams p, unsigned seed) : params(p) {
        std::mt19937 rng(seed);
        symbols.assign(p.data_symbols + p.parity_symbols, std::vector<std::byte>(p.symbol_bytes));
        for (unsigned i = 0; i < p.data_symbols; ++i) {
            for (auto& b : symbols[i]) b = std::byte(rng() & 0xff);
        }
    }
    void encode(BlockCodec& codec) {
        std::vector<const std::byte*> data;
        std::vector<std::byte*> parity;
        for (unsigned i = 0; i < params.data_symbols; ++i) data.push_back(symbols[i].data());
        for (unsigned i = 0; i < params.parity_symbols; ++i) parity.push_back(symbols[params.data_symbols + i].data());
        codec.encode(data, parity);
    }
    std::vector<std::byte*> pointers() {
        std::vector<std::byte*> out;
        for (auto& s : symbols) out.push_back(s.data());
        return out;
    }
};

}  // namespace

TEST_CASE("any K of K+M symbols rebuild the data", "[transfer][fec]") {
    for (FecParams p : {FecParams{4, 2, 64}, FecParams{64, 16, 1350}, FecParams{200, 55, 33}, FecParams{1, 1, 7}}) {
        BlockCodec codec(p);
        std::mt19937 rng(p.data_symbols);
        for (int trial = 0; trial < 20; ++trial) {
            Block block(p, static_cast<unsigned>(trial) + 1);
            block.encode(codec);
            const auto original = block.symbols;
            // Erase exactly M random symbols (the worst recoverable case) and scribble on them.
            std::vector<unsigned> idx(p.data_symbols + p.parity_symbols);
            for (unsigned i = 0; i < idx.size(); ++i) idx[i] = i;
            std::shuffle(idx.begin(), idx.end(), rng);
            std::vector<bool> present(idx.size(), true);
            for (unsigned e = 0; e < p.parity_symbols; ++e) {
                present[idx[e]] = false;
                std::fill(block.symbols[idx[e]].begin(), block.symbols[idx[e]].end(), std::byte{0xAA});
            }
            auto ptrs = block.pointers();
            REQUIRE(codec.decode(ptrs, present));
            for (unsigned i = 0; i < p.data_symbols; ++i) {
                INFO("K=" << p.data_symbols << " M=" << p.parity_symbols << " trial " << trial << " symbol " << i);
                REQUIRE(block.symbols[i] == original[i]);
            }
        }
    }
}

TEST_CASE("more than M erasures cannot be decoded and nothing is touched", "[transfer][fec]") {
    FecParams p{8, 3, 32};
    BlockCodec codec(p);
    Block block(p, 7);
    block.encode(codec);
    std::vector<bool> present(11, true);
    present[0] = present[1] = present[2] = present[9] = false;
    std::fill(block.symbols[0].begin(), block.symbols[0].end(), std::byte{0x55});
    const auto before = block.symbols;
    auto ptrs = block.pointers();
    CHECK_FALSE(codec.decode(ptrs, present));
    CHECK(block.symbols == before);
}

TEST_CASE("decode matrices are cached by erasure pattern", "[transfer][fec]") {
    FecParams p{16, 4, 64};
    BlockCodec codec(p, 2);
    std::vector<bool> a(20, true), b(20, true), c(20, true);
    a[3] = false;
    b[5] = false;
    c[7] = false;
    for (auto* pattern : {&a, &a, &b, &a, &c, &b}) {
        Block block(p, 1);
        block.encode(codec);
        auto original = block.symbols;
        auto ptrs = block.pointers();
        REQUIRE(codec.decode(ptrs, *pattern));
        REQUIRE(block.symbols == original);
    }
    // a (miss), a (hit), b (miss), a (hit), c (miss, evicts b), b (miss)
    CHECK(codec.stats().inversions == 4);
    CHECK(codec.stats().cache_hits == 2);
    CHECK(codec.stats().decodes == 6);
}

TEST_CASE("nothing missing among the data symbols needs no decode", "[transfer][fec]") {
    FecParams p{4, 2, 16};
    BlockCodec codec(p);
    Block block(p, 3);
    block.encode(codec);
    std::vector<bool> present{true, true, true, true, false, false};
    auto ptrs = block.pointers();
    CHECK(codec.decode(ptrs, present));
    CHECK(codec.stats().decodes == 0);
}

TEST_CASE("invalid FEC parameters are configuration errors", "[transfer][fec]") {
    CHECK_THROWS_AS(BlockCodec(FecParams{0, 4, 10}), std::invalid_argument);
    CHECK_THROWS_AS(BlockCodec(FecParams{4, 0, 10}), std::invalid_argument);
    CHECK_THROWS_AS(BlockCodec(FecParams{200, 56, 10}), std::invalid_argument);
    CHECK_THROWS_AS(BlockCodec(FecParams{4, 4, 0}), std::invalid_argument);
    CHECK_NOTHROW(BlockCodec(FecParams{200, 55, 10}));
}
