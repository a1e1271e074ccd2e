// plan_layout and Layout: the options a writer chooses, refused by name when
// wrong, and the geometry they give (run, stripes, sets, volumes).
#include <catch2/catch.hpp>

#include "media_fixture.hpp"

using namespace sluice;
using namespace sluice::media;
using namespace sluice::media::test;

namespace {

LayoutOptions options(unsigned k, unsigned pct, std::size_t symbol = 1024) {
    LayoutOptions o;
    o.data_symbols = k;
    o.parity_percent = pct;
    o.symbol_bytes = symbol;
    o.volume_bytes = 64ULL << 20;
    return o;
}

std::uint64_t blocks_of(std::uint64_t archive, const Layout& l) {
    const std::uint64_t block = std::uint64_t{l.fec.data_symbols} * l.fec.symbol_bytes;
    return (archive + block - 1) / block;
}

std::string refusal(std::uint64_t archive, const LayoutOptions& o) {
    auto l = plan_layout(archive, o);
    REQUIRE_FALSE(l);
    return l.error().message;
}

}  // namespace

TEST_CASE("plan_layout refuses parity outside 1..200 and K outside 1..254, naming the option", "[media][layout]") {
    CHECK(refusal(1 << 20, options(64, 0)) == "parity 0% is outside 1..200");
    CHECK(refusal(1 << 20, options(64, 201)) == "parity 201% is outside 1..200");
    CHECK(refusal(1 << 20, options(0, 10)) == "data symbols per block must be 1..254");
    CHECK(refusal(1 << 20, options(255, 10)) == "data symbols per block must be 1..254");
    // The bounds themselves are accepted.
    CHECK(plan_layout(1 << 20, options(64, 1)));
    CHECK(plan_layout(1 << 20, options(64, 200)));
    CHECK(plan_layout(1 << 20, options(1, 10)));
    CHECK(plan_layout(1 << 20, options(252, 1)));  // 252 + 3 = 255
}

TEST_CASE("plan_layout refuses K + M over 255 symbols, saying how many parity symbols that was", "[media][layout]") {
    CHECK(refusal(1 << 20, options(200, 50)) ==
          "parity 50% needs 100 parity symbols per 200, over the 255 symbols of a block");
    CHECK(refusal(1 << 20, options(254, 1)) == "parity 1% needs 3 parity symbols per 254, over the 255 symbols of a block");
    auto edge = plan_layout(1 << 20, options(85, 200));  // 85 + 170 = 255 exactly
    REQUIRE(edge);
    CHECK(edge->fec.parity_symbols == 170);
}

TEST_CASE("plan_layout refuses a zero volume size, a bad symbol size and an empty archive", "[media][layout]") {
    auto o = options(64, 10);
    o.volume_bytes = 0;
    CHECK(refusal(1 << 20, o) == "the volume size is 0");
    CHECK(refusal(1 << 20, options(64, 10, 100)) == "symbol size 100 is outside 512..65535");
    CHECK(refusal(1 << 20, options(64, 10, 511)) == "symbol size 511 is outside 512..65535");
    CHECK(plan_layout(1 << 20, options(64, 10, 512)));
    CHECK(refusal(0, options(64, 10)) == "the archive is empty");
}

TEST_CASE("a volume too small for one block is refused with the size it needs, and that size suffices", "[media][layout]") {
    for (std::uint64_t small : {std::uint64_t{1000}, std::uint64_t{1} << 20, std::uint64_t{5} << 20}) {
        CAPTURE(small);
        auto o = options(64, 10, 16384);
        o.volume_bytes = small;
        const std::string message = refusal(1ULL << 30, o);
        const std::string head = "a volume of " + std::to_string(small) + " bytes cannot hold one block: it needs at least ";
        REQUIRE(message.starts_with(head));
        REQUIRE(message.ends_with(" bytes"));
        const std::uint64_t needed = std::stoull(message.substr(head.size()));
        // The exact minimum, found by asking plan_layout itself.
        const std::uint64_t minimum = volume_bytes_for(1ULL << 30, o, 1);
        CAPTURE(needed, minimum);
        o.volume_bytes = needed;
        CHECK(plan_layout(1ULL << 30, o));  // "at least N": N is enough…
        o.volume_bytes = needed - 1;
        CHECK_FALSE(plan_layout(1ULL << 30, o));  // …and N - 1 is not
        CHECK(needed == minimum);
    }
}

TEST_CASE("run is max(1, ⌊M/2⌋) and stripes ⌈(K+M)/run⌉; every symbol of a block is in exactly one stripe", "[media][layout]") {
    struct Case {
        unsigned k, pct, m, run, stripes;
    };
    for (const Case& c : {Case{64, 10, 7, 3, 24}, Case{64, 1, 1, 1, 65}, Case{16, 50, 8, 4, 6}, Case{64, 200, 128, 64, 3},
                          Case{1, 1, 1, 1, 2}, Case{100, 3, 3, 1, 103}, Case{85, 200, 170, 85, 3}, Case{64, 5, 4, 2, 34}}) {
        CAPTURE(c.k, c.pct);
        auto l = plan_layout(1 << 20, options(c.k, c.pct));
        REQUIRE(l);
        CHECK(l->fec.data_symbols == c.k);
        CHECK(l->fec.parity_symbols == c.m);
        CHECK(l->run == c.run);
        CHECK(l->stripes == c.stripes);
        unsigned total = 0;
        for (unsigned w = 0; w < l->stripes; ++w) {
            CHECK(l->symbols_in(w) >= 1);
            CHECK(l->symbols_in(w) <= l->run);
            total += l->symbols_in(w);
        }
        CHECK(total == c.k + c.m);
        CHECK(l->symbols_in(l->stripes) == 0);
        CHECK(l->symbols_in(100000) == 0);
        // Losing one whole segment costs a block at most half its parity.
        CHECK(l->run <= std::max(1u, c.m / 2));
        CHECK(l->validate());
    }
}

TEST_CASE("symbols_in: full runs, then the remainder in the last stripe", "[media][layout]") {
    auto l = plan_layout(1 << 20, options(64, 10));
    REQUIRE(l);
    for (unsigned w = 0; w < 23; ++w) CHECK(l->symbols_in(w) == 3);
    CHECK(l->symbols_in(23) == 2);  // symbols 69, 70
    CHECK(l->symbols_in(24) == 0);
}

TEST_CASE("record size: frame header and symbol, plus the GCM tag when encrypted", "[media][layout]") {
    auto o = options(64, 10, 1024);
    auto plain = plan_layout(1 << 20, o);
    o.encrypted = true;
    auto enc = plan_layout(1 << 20, o);
    REQUIRE(plain);
    REQUIRE(enc);
    CHECK(plain->record_bytes() == 40 + 1024);
    CHECK(enc->record_bytes() == 40 + 1024 + 16);
    CHECK(enc->encrypted);
    CHECK_FALSE(plain->encrypted);
}

TEST_CASE("blocks per set keep a segment under max_segment_bytes; blocks per volume fit the volume", "[media][layout]") {
    // K=16, M=8, run 4, record 1064: a block puts 4 records (4256 bytes) in each segment.
    auto o = options(16, 50);
    o.max_segment_bytes = 10 * 4 * 1064;
    auto l = plan_layout(1 << 20, o);  // 64 blocks of 16 KiB
    REQUIRE(l);
    CHECK(l->run == 4);
    CHECK(l->blocks_per_set == 10);
    CHECK(l->blocks_per_volume == 64);  // 64 MiB holds them all: capped at the archive's blocks
    o.max_segment_bytes = 10 * 4 * 1064 + 4255;  // just under 11 blocks
    CHECK(plan_layout(1 << 20, o)->blocks_per_set == 10);
    o.max_segment_bytes = 1;  // at least one block per set
    CHECK(plan_layout(1 << 20, o)->blocks_per_set == 1);
    o.max_segment_bytes = 1ULL << 30;  // more than the volume: a set is the whole volume
    CHECK(plan_layout(1 << 20, o)->blocks_per_set == 64);

    // A volume just big enough for 5 blocks holds 5, and a set no more than the volume.
    o.volume_bytes = volume_bytes_for(1 << 20, o, 5);
    l = plan_layout(1 << 20, o);
    REQUIRE(l);
    CHECK(l->blocks_per_volume == 5);
    CHECK(l->blocks_per_set == 5);
    o.volume_bytes -= 1;
    CHECK(plan_layout(1 << 20, o)->blocks_per_volume == 4);
    // (volume − 4 MiB − 2 %) / bytes per block, per block (K+M) records.
    o.volume_bytes = 64ULL << 20;
    const std::uint64_t reserve = (4ULL << 20) + o.volume_bytes / 50;
    CHECK(plan_layout(1ULL << 30, o)->blocks_per_volume == (o.volume_bytes - reserve) / (24 * 1064));
}

TEST_CASE("the number of volumes follows from blocks per volume; over 9999 is refused", "[media][layout]") {
    auto o = options(64, 10);
    const std::uint64_t block = 64 * 1024;
    const std::uint64_t archive = 42 * block - 1000;  // 42 blocks, the last one short
    o.volume_bytes = volume_bytes_for(archive, o, 16);
    auto l = plan_layout(archive, o);
    REQUIRE(l);
    CHECK(l->blocks_per_volume == 16);  // 3 volumes: 16 + 16 + 10

    CHECK((blocks_of(archive, *l) + l->blocks_per_volume - 1) / l->blocks_per_volume == 3);  // 16 + 16 + 10
    o.volume_bytes -= 1;
    CHECK(plan_layout(archive, o)->blocks_per_volume == 15);  // 15 + 15 + 12

    auto one = volume_bytes_for(1, o, 1);
    o.volume_bytes = one;
    CHECK(refusal(10000 * block, o) == "the bundle would need 10000 volumes of this size, over 9999");
    CHECK(plan_layout(9999 * block, o));
}

TEST_CASE("Layout::validate names the field that is inconsistent", "[media][layout]") {
    auto good = plan_layout(1 << 20, options(64, 10));
    REQUIRE(good);
    auto refused = [&](auto change) {
        Layout l = *good;
        change(l);
        auto ok = l.validate();
        REQUIRE_FALSE(ok);
        return ok.error().message;
    };
    CHECK(refused([](Layout& l) { l.fec.parity_symbols = 0; }) == "FEC K=64 M=0 is outside 1 ≤ K, 1 ≤ M, K + M ≤ 255");
    CHECK(refused([](Layout& l) { l.fec.data_symbols = 250; }) == "FEC K=250 M=7 is outside 1 ≤ K, 1 ≤ M, K + M ≤ 255");
    CHECK(refused([](Layout& l) { l.fec.symbol_bytes = 70000; }) == "symbol size 70000 is outside 512..65535");
    CHECK(refused([](Layout& l) { l.run = 0; }) == "run 0 is outside 1..K+M");
    CHECK(refused([](Layout& l) { l.run = 72; }) == "run 72 is outside 1..K+M");
    CHECK(refused([](Layout& l) { l.stripes = 25; }) == "stripes 25 do not match K+M and run");
    CHECK(refused([](Layout& l) { l.blocks_per_set = 0; }) == "blocks per set or per volume is 0");
    CHECK(refused([](Layout& l) { l.blocks_per_volume = 0; }) == "blocks per set or per volume is 0");
    CHECK(refused([](Layout& l) { l.blocks_per_volume = (1ULL << 32) + 1; }) ==
          "blocks per set or per volume is absurdly large");
    CHECK(refused([](Layout& l) {
              l.blocks_per_set = 1;
              l.blocks_per_volume = 10000;
          }) == "a volume would hold more than 9999 sets");
}
