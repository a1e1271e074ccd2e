// Damaged media: corrupted, missing, truncated and misplaced records are
// erasures; parity repairs what it can and the rest is named precisely.
#include <catch2/catch.hpp>

#include <random>

#include "media_fixture.hpp"

using namespace sluice;
using namespace sluice::media;
using namespace sluice::media::test;

namespace {

LayoutOptions small_layout(unsigned k, unsigned pct, std::uint64_t blocks_per_set = 0) {
    LayoutOptions o;
    o.data_symbols = k;
    o.parity_percent = pct;
    o.symbol_bytes = 1024;
    if (blocks_per_set) {
        const unsigned m = (k * pct + 99) / 100;
        const unsigned run = std::max(1u, m / 2);
        o.max_segment_bytes = blocks_per_set * run * (1024 + 40);
    }
    return o;
}

fs::path segment_path(const FoundVolume& v, std::size_t i) { return v.directory / v.index.segments[i].name(v.index.volume); }

std::size_t segment_named(const FoundVolume& v, const std::string& name) {
    for (std::size_t i = 0; i < v.index.segments.size(); ++i) {
        if (v.index.segments[i].name(v.index.volume) == name) return i;
    }
    FAIL("no segment " << name);
    return 0;
}

void check_intact_except(const VolumeImport& imp, const VolumeIndex& ix, const std::vector<std::size_t>& except) {
    REQUIRE(imp.segments.size() == ix.segments.size());
    for (std::size_t i = 0; i < ix.segments.size(); ++i) {
        if (std::find(except.begin(), except.end(), i) != except.end()) continue;
        CAPTURE(imp.segments[i].name);
        CHECK(imp.segments[i].intact(ix.segments[i].records));
    }
}

}  // namespace

TEST_CASE("random bytes corrupted in segments, up to M records per block, are repaired", "[media][damage]") {
    Fixture f(2u << 20, 21);
    // K=16, M=8, run 4: 6 stripes; 128 blocks in sets of 40 (40, 40, 40, 8): 24 segments.
    f.write({f.dir / "usb"}, small_layout(16, 50, 40));
    auto v = f.found(f.dir / "usb");
    const auto& ix = v.index;
    REQUIRE(ix.layout.fec.parity_symbols == 8);
    REQUIRE(ix.layout.stripes == 6);
    REQUIRE(ix.segments.size() == 24);
    REQUIRE(ix.end_block == 128);

    std::mt19937 rng(1234);
    std::vector<std::uint64_t> bad(ix.segments.size());
    std::uint64_t repaired = 0;
    const unsigned total = 24;
    for (std::uint64_t b = 0; b < ix.end_block; ++b) {
        // 0 … M damaged records in this block (the last blocks take exactly M).
        const auto count = b >= 120 ? 8u : static_cast<unsigned>(rng() % 9);
        std::vector<unsigned> symbols(total);
        for (unsigned s = 0; s < total; ++s) symbols[s] = s;
        std::shuffle(symbols.begin(), symbols.end(), rng);
        bool data_hit = false;
        for (unsigned i = 0; i < count; ++i) {
            const unsigned s = symbols[i];
            auto p = place_of(ix, b, s);
            // One to three neighbouring bytes anywhere in the record: header, payload or checksum.
            const auto bytes = static_cast<unsigned>(1 + rng() % 3);
            const std::uint64_t at = p.offset + rng() % (ix.layout.record_bytes() - 2);
            for (unsigned j = 0; j < bytes; ++j) {
                flip_byte(segment_path(v, p.segment), at + j, static_cast<unsigned char>(1 + rng() % 255));
            }
            ++bad[p.segment];
            data_hit |= s < 16;
        }
        repaired += data_hit ? 1 : 0;
    }
    REQUIRE(repaired > 20);

    auto imp = f.import(v);
    CHECK(imp.unrecoverable.empty());
    CHECK(imp.blocks == 128);
    CHECK(imp.blocks_repaired == repaired);
    CHECK(imp.blocks_direct == 128 - repaired);
    for (std::size_t i = 0; i < ix.segments.size(); ++i) {
        CAPTURE(imp.segments[i].name);
        CHECK(imp.segments[i].present);
        CHECK(imp.segments[i].records_read == ix.segments[i].records);
        CHECK(imp.segments[i].records_bad == bad[i]);
    }
    REQUIRE(imp.archive_complete());
    CHECK(f.assembled(v, imp) == f.archive_bytes);
}

TEST_CASE("one more damaged record than M in a block makes exactly that block unrecoverable", "[media][damage]") {
    Fixture f(1u << 20, 22);
    f.write({f.dir / "usb"}, small_layout(16, 50));  // 64 blocks, K=16 M=8
    auto v = f.found(f.dir / "usb");
    for (unsigned s = 0; s < 9; ++s) {
        auto p = place_of(v.index, 37, s * 2);  // 9 of the 24 symbols of block 37
        flip_byte(segment_path(v, p.segment), p.offset + 60);
    }
    auto imp = f.import(v);
    CHECK(imp.unrecoverable == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{37, 37}});
    CHECK(imp.blocks_direct == 63);
    CHECK(imp.archive_blocks_held == 63);
    CHECK_FALSE(imp.archive_complete());
}

TEST_CASE("a deleted segment is recovered: run ≤ M/2 leaves parity to spare", "[media][damage]") {
    Fixture f(1u << 20, 23);
    f.write({f.dir / "usb"}, {.parity_percent = 10, .data_symbols = 64, .symbol_bytes = 1024});
    auto v = f.found(f.dir / "usb");
    REQUIRE(v.index.layout.run == 3);  // M = 7
    REQUIRE(v.index.end_block == 16);

    SECTION("a segment of data symbols: every block repaired") {
        fs::remove(segment_path(v, 0));
        auto imp = f.import(v);
        CHECK(imp.blocks_repaired == 16);
        CHECK(imp.blocks_direct == 0);
        CHECK(imp.unrecoverable.empty());
        CHECK_FALSE(imp.segments[0].present);
        CHECK(imp.segments[0].records_read == 0);
        CHECK_FALSE(imp.segments[0].intact(v.index.segments[0].records));
        check_intact_except(imp, v.index, {0});
        REQUIRE(imp.archive_complete());
        CHECK(f.assembled(v, imp) == f.archive_bytes);
    }
    SECTION("the last segment holds only parity: every block direct") {
        fs::remove(segment_path(v, 23));
        auto imp = f.import(v);
        CHECK(imp.blocks_repaired == 0);
        CHECK(imp.blocks_direct == 16);
        CHECK_FALSE(imp.segments[23].present);
        REQUIRE(imp.archive_complete());
        CHECK(f.assembled(v, imp) == f.archive_bytes);
    }
    SECTION("a deleted segment and scattered damage within the other half of the parity") {
        fs::remove(segment_path(v, 5));  // symbols 15-17 of every block
        for (std::uint64_t b = 0; b < 16; ++b) {
            for (unsigned s : {1u, 40u, 66u}) {  // 3 + 3 = 6 ≤ 7
                auto p = place_of(v.index, b, s);
                flip_byte(segment_path(v, p.segment), p.offset + 40 + b);
            }
        }
        auto imp = f.import(v);
        CHECK(imp.blocks_repaired == 16);
        CHECK(imp.unrecoverable.empty());
        CHECK(imp.segments[0].records_bad == 16);
        CHECK(imp.segments[13].records_bad == 16);
        CHECK(imp.segments[22].records_bad == 16);
        CHECK(f.assembled(v, imp) == f.archive_bytes);
    }
}

TEST_CASE("two deleted segments beyond M: the blocks and segments still needed are named; restored, the volume completes",
          "[media][damage]") {
    Fixture f(256u << 10, 24);
    // K=8, parity 5 %: M=1, run 1, 9 stripes; 32 blocks of 8 KiB in sets of 10 (10, 10, 10, 2).
    f.write({f.dir / "usb"}, small_layout(8, 5, 10));
    auto v = f.found(f.dir / "usb");
    REQUIRE(v.index.layout.fec.parity_symbols == 1);
    REQUIRE(v.index.layout.run == 1);
    REQUIRE(v.index.layout.stripes == 9);
    REQUIRE(v.index.layout.blocks_per_set == 10);
    REQUIRE(v.index.segments.size() == 4 * 9);

    const auto s3 = segment_named(v, "v0001-c0002-s003.seg");
    const auto s7 = segment_named(v, "v0001-c0002-s007.seg");
    fs::create_directories(f.dir / "kept");
    fs::rename(segment_path(v, s3), f.dir / "kept" / "a");
    fs::rename(segment_path(v, s7), f.dir / "kept" / "b");

    auto imp = f.import(v);
    CHECK(imp.unrecoverable == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{20, 29}});
    CHECK(imp.blocks_direct == 22);
    CHECK(imp.blocks_repaired == 0);
    CHECK(imp.archive_blocks_held == 22);
    CHECK(imp.archive_blocks == 32);
    CHECK_FALSE(imp.archive_complete());
    CHECK_FALSE(imp.segments[s3].present);
    CHECK_FALSE(imp.segments[s7].present);
    check_intact_except(imp, v.index, {s3, s7});

    auto held = f.held(v);
    CHECK(held.count() == 22);
    auto needed = still_needed(v.index, held, {{1, imp}});
    REQUIRE(needed.size() == 1);
    CHECK(needed[0].volume == 1);
    CHECK(needed[0].blocks_missing == 10);
    CHECK(needed[0].ranges == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{20, 29}});
    CHECK(needed[0].imported);
    CHECK(needed[0].segments == std::vector<std::string>{"v0001-c0002-s003", "v0001-c0002-s007"});
    CHECK(describe(needed[0], 1) ==
          "volume 1 of 1: 10 blocks (20-29) unrecoverable from what was read; "
          "bring these segments intact: v0001-c0002-s003, v0001-c0002-s007");

    // The operator brings the two files back and imports the volume again.
    fs::rename(f.dir / "kept" / "a", segment_path(v, s3));
    fs::rename(f.dir / "kept" / "b", segment_path(v, s7));
    auto again = f.import(f.found(f.dir / "usb"));
    CHECK(again.blocks_held_before == 22);
    CHECK(again.blocks_direct == 10);
    CHECK(again.blocks_repaired == 0);
    CHECK(again.unrecoverable.empty());
    REQUIRE(again.archive_complete());
    CHECK(still_needed(v.index, f.held(v), {{1, again}}).empty());
    CHECK(f.assembled(v, again) == f.archive_bytes);
}

TEST_CASE("a damaged record of another set does not put its segment in the still-needed list", "[media][damage]") {
    Fixture f(256u << 10, 25);
    f.write({f.dir / "usb"}, small_layout(8, 5, 10));
    auto v = f.found(f.dir / "usb");
    fs::remove(segment_path(v, segment_named(v, "v0001-c0003-s000.seg")));  // data symbol 0
    fs::remove(segment_path(v, segment_named(v, "v0001-c0003-s008.seg")));  // the parity symbol
    // One bad record in set 0 (repaired) must not be asked for.
    auto p = place_of(v.index, 3, 2);
    flip_byte(segment_path(v, p.segment), p.offset + 100);
    auto imp = f.import(v);
    CHECK(imp.unrecoverable == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{30, 31}});
    CHECK(imp.blocks_repaired == 1);
    CHECK(imp.blocks_direct == 29);
    auto needed = still_needed(v.index, f.held(v), {{1, imp}});
    REQUIRE(needed.size() == 1);
    CHECK(needed[0].blocks_missing == 2);
    CHECK(needed[0].segments == std::vector<std::string>{"v0001-c0003-s000", "v0001-c0003-s008"});
    CHECK(describe(needed[0], 1) ==
          "volume 1 of 1: 2 blocks (30-31) unrecoverable from what was read; "
          "bring these segments intact: v0001-c0003-s000, v0001-c0003-s008");
}

TEST_CASE("a truncated segment: the records before the cut are used, the rest are erasures", "[media][damage]") {
    Fixture f(1u << 20, 26);
    f.write({f.dir / "usb"}, {.parity_percent = 10, .data_symbols = 64, .symbol_bytes = 1024});
    auto v = f.found(f.dir / "usb");
    const auto record = v.index.layout.record_bytes();
    REQUIRE(v.index.segments[5].records == 48);  // 16 blocks × symbols 15-17
    fs::resize_file(segment_path(v, 5), 20 * record + 100);  // 20 whole records and part of one
    auto imp = f.import(v);
    CHECK(imp.segments[5].present);
    CHECK(imp.segments[5].records_read == 20);
    CHECK(imp.segments[5].records_bad == 0);
    CHECK_FALSE(imp.segments[5].intact(48));
    // Records 0-17 are blocks 0-5 whole; block 6 lacks its third symbol from record 20 on.
    CHECK(imp.blocks_direct == 6);
    CHECK(imp.blocks_repaired == 10);
    check_intact_except(imp, v.index, {5});
    CHECK(f.assembled(v, imp) == f.archive_bytes);
}

TEST_CASE("records moved to another position are refused as misplaced and repaired", "[media][damage]") {
    Fixture f(1u << 20, 27);
    f.write({f.dir / "usb"}, {.parity_percent = 10, .data_symbols = 64, .symbol_bytes = 1024});
    auto v = f.found(f.dir / "usb");
    const auto record = v.index.layout.record_bytes();
    auto copy_record = [&](std::size_t from_segment, std::uint64_t from, std::size_t to_segment, std::uint64_t to) {
        auto src = sluice::test::read_file(segment_path(v, from_segment)).substr(from * record, record);
        std::fstream out(segment_path(v, to_segment), std::ios::in | std::ios::out | std::ios::binary);
        out.seekp(static_cast<std::streamoff>(to * record));
        out.write(src.data(), static_cast<std::streamsize>(src.size()));
        REQUIRE(out);
    };
    copy_record(0, 0, 0, 4);  // block 0 symbol 0 over block 1 symbol 1, same segment
    copy_record(1, 0, 2, 0);  // block 0 symbol 3 over block 0 symbol 6, next segment
    copy_record(7, 9, 7, 9);  // a record over itself: still right

    // A record from another write of the same layout, at the very same position.
    Fixture other(1u << 20, 28);
    other.write({other.dir / "usb"}, {.parity_percent = 10, .data_symbols = 64, .symbol_bytes = 1024});
    auto w = other.found(other.dir / "usb");
    REQUIRE(w.index.set_id != v.index.set_id);
    {
        auto src = sluice::test::read_file(segment_path(w, 3)).substr(2 * record, record);
        std::fstream out(segment_path(v, 3), std::ios::in | std::ios::out | std::ios::binary);
        out.seekp(static_cast<std::streamoff>(2 * record));
        out.write(src.data(), static_cast<std::streamsize>(src.size()));
    }

    auto imp = f.import(v);
    CHECK(imp.segments[0].records_bad == 1);
    CHECK(imp.segments[2].records_bad == 1);
    CHECK(imp.segments[3].records_bad == 1);  // right block and symbol, another session
    CHECK(imp.segments[7].records_bad == 0);
    check_intact_except(imp, v.index, {0, 2, 3});
    CHECK(imp.blocks_repaired == 2);  // block 0 (symbols 6, 11) and block 1 (symbol 1)
    CHECK(imp.blocks_direct == 14);
    CHECK(f.assembled(v, imp) == f.archive_bytes);
}

TEST_CASE("encrypted records: a flipped byte fails the tag, a moved record fails its nonce; both repaired",
          "[media][damage][crypto]") {
    Fixture f(1u << 20, 29);
    const auto key = key_of(1);
    f.write({f.dir / "usb"}, {.parity_percent = 10, .data_symbols = 64, .symbol_bytes = 1024}, key);
    auto v = f.found(f.dir / "usb", &key);
    REQUIRE(v.index.layout.encrypted);
    const auto record = v.index.layout.record_bytes();
    REQUIRE(record == 1024 + 40 + 16);
    flip_byte(segment_path(v, 0), 100);                  // block 0 symbol 0, in the ciphertext
    flip_byte(segment_path(v, 4), 5 * record + 1070);    // block 1 symbol 14, in the tag
    {
        // Record 0 copied over record 3 of the same segment: a valid record, at the wrong nonce.
        auto seg = sluice::test::read_file(segment_path(v, 9));
        std::fstream out(segment_path(v, 9), std::ios::in | std::ios::out | std::ios::binary);
        out.seekp(static_cast<std::streamoff>(3 * record));
        out.write(seg.data(), static_cast<std::streamsize>(record));
    }
    auto imp = f.import(v, &key);
    CHECK(imp.segments[0].records_bad == 1);
    CHECK(imp.segments[4].records_bad == 1);
    CHECK(imp.segments[9].records_bad == 1);
    check_intact_except(imp, v.index, {0, 4, 9});
    CHECK(imp.blocks_repaired == 2);  // blocks 0 and 1 (record 3 of segment 9 is block 1 symbol 27)
    CHECK(imp.blocks_direct == 14);
    CHECK(f.assembled(v, imp) == f.archive_bytes);
}

TEST_CASE("importing an encrypted volume without its key fails clearly; nothing is read", "[media][damage][crypto]") {
    Fixture f(1u << 20, 30);
    const auto key = key_of(2);
    f.write({f.dir / "usb"}, {.symbol_bytes = 1024}, key);
    auto v = f.found(f.dir / "usb", &key);
    auto r = import_volume(v, f.store(), nullptr);
    REQUIRE_FALSE(r);
    CHECK(r.error().message == "volume 1 is encrypted: give its key");
    // With the wrong key every record fails its tag: nothing is written to the store.
    const auto other = key_of(3);
    auto wrong = f.import(v, &other);
    CHECK(wrong.archive_blocks_held == 0);
    CHECK(wrong.unrecoverable == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, 15}});
    for (std::size_t i = 0; i < wrong.segments.size(); ++i) CHECK(wrong.segments[i].records_bad == v.index.segments[i].records);
    // The right key afterwards: complete.
    auto right = f.import(v, &key);
    CHECK(right.blocks_direct == 16);
    CHECK(f.assembled(v, right) == f.archive_bytes);
}

TEST_CASE("a volume of an archive delivered before is recognised and not read", "[media][damage]") {
    Fixture f(1u << 20, 31);
    f.write({f.dir / "usb"}, {.symbol_bytes = 1024});
    auto v = f.found(f.dir / "usb");
    auto imp = f.import(v);
    CHECK(f.assembled(v, imp) == f.archive_bytes);
    REQUIRE(f.store().mark_delivered(imp.staging_key));
    auto again = f.import(v);
    CHECK(again.already_delivered);
    CHECK(again.archive_complete());
    CHECK(again.blocks_direct == 0);
    for (const auto& s : again.segments) CHECK(s.records_read == 0);
}
