// Writes the seed corpus of tests/fuzz/fuzz_media_index with the real
// encode_index. Hidden: run it by hand when the index format changes,
//
//   SLUICE_MEDIA_CORPUS_DIR=tests/fuzz/corpus/fuzz_media_index build/tests/test_media '[.corpus]'
//
// Plain and encrypted (under the fuzz target's fixed key: bytes 0, 1, …, 31),
// one and several volumes and sets, with and without the sender's hop record
// (a real one: the fuzz_hops seed written by audit::Log::hop_record()).
#include <catch2/catch.hpp>

#include <cstdlib>

#include "media_fixture.hpp"

using namespace sluice;
using namespace sluice::media;
using namespace sluice::media::test;

namespace {

transfer::TransferInfo info_of(std::uint64_t archive_bytes, const char* seed) {
    transfer::TransferInfo info;
    auto id = bundle::sha256(std::string("bundle ") + seed);
    std::memcpy(info.bundle_id.data(), id.data(), 32);
    auto sha = bundle::sha256(std::string("archive ") + seed);
    std::memcpy(info.archive_sha256.data(), sha.data(), 32);
    info.archive_bytes = archive_bytes;
    info.channel = "models";
    info.version = "1.4.0";
    return info;
}

}  // namespace

TEST_CASE("write the fuzz_media_index seed corpus", "[.corpus]") {
    const char* out = std::getenv("SLUICE_MEDIA_CORPUS_DIR");
    if (out == nullptr || *out == '\0') {
        WARN("set SLUICE_MEDIA_CORPUS_DIR to the directory to write the seeds to");
        return;
    }
    const std::string hops = sluice::test::read_file(std::string(SLUICE_TESTS_DIR) + "/fuzz/corpus/fuzz_hops/one-event.json");
    MediaKey key;
    for (unsigned i = 0; i < 32; ++i) key.secret.push_back(std::byte(i));

    auto seed = [&](const std::string& name, std::uint64_t archive, LayoutOptions o, unsigned volume, bool encrypted,
                    bool with_hops) {
        o.encrypted = encrypted;
        const MediaKey* k = encrypted ? &key : nullptr;
        auto info = info_of(archive, name.c_str());
        auto layout = plan_layout(archive, o);
        REQUIRE(layout);
        auto ix = make_index(info, *layout, volume, k);
        if (with_hops) ix.hops = hops;
        auto bytes = encode_index(ix, k);
        REQUIRE(parse_index(bytes, k).error == IndexError::none);
        REQUIRE(bytes.size() < (64u << 10));
        sluice::test::write_file(std::filesystem::path(out) / (name + ".index"), as_string(bytes));
    };

    LayoutOptions few;  // K=16, M=8, run 4: 6 stripes
    few.data_symbols = 16;
    few.parity_percent = 50;
    few.symbol_bytes = 1024;
    few.volume_bytes = 64ULL << 20;

    LayoutOptions sets = few;  // 3 volumes of 16 blocks, sets of 5
    sets.max_segment_bytes = 5 * 4 * (1024 + 40);
    const std::uint64_t three = 42 * 16 * 1024 - 1000;
    sets.volume_bytes = volume_bytes_for(three, sets, 16);
    LayoutOptions sets_enc = sets;
    sets_enc.max_segment_bytes = 5 * 4 * (1024 + 40 + 16);
    sets_enc.encrypted = true;
    sets_enc.volume_bytes = volume_bytes_for(three, sets_enc, 16);

    LayoutOptions tiny;  // K=4, M=1, run 1: 5 stripes, one block
    tiny.data_symbols = 4;
    tiny.parity_percent = 25;
    tiny.symbol_bytes = 512;
    tiny.volume_bytes = 64ULL << 20;

    LayoutOptions defaults;  // K=64, M=7, 16 KiB symbols: 24 stripes
    defaults.volume_bytes = 64ULL << 20;

    seed("plain-v1of1-hops", 256u << 10, few, 1, false, true);
    seed("plain-v2of3-sets-hops", three, sets, 2, false, true);
    seed("plain-v3of3-short-set", three, sets, 3, false, false);
    seed("plain-one-block-no-hops", 1, tiny, 1, false, false);
    seed("plain-defaults", 5u << 20, defaults, 1, false, false);
    seed("enc-v1of1-hops", 256u << 10, few, 1, true, true);
    seed("enc-v3of3-sets-hops", three, sets_enc, 3, true, true);
    seed("enc-one-block-no-hops", 1, tiny, 1, true, false);
}
