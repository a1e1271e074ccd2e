// The index envelope: round trips, damage, keys, what encryption hides, and
// every content check of parse_index (bodies re-encoded through encode_index,
// which does not validate, so the envelope checksum is right and the content
// checks are what refuse them).
#include <catch2/catch.hpp>

#include "media_fixture.hpp"

using namespace sluice;
using namespace sluice::media;
using namespace sluice::media::test;

namespace {

constexpr std::size_t kHeader = 68;  // magic 8, version, flags, reserved 2, volume 4, length 4, set id 32, key check 16

const std::string kHops = R"({"bundle":"aaaa","events":[{"actor":"alice","kind":"bundle_signed","note":"sluice-hop-secret"}]})";

transfer::TransferInfo sample_info() {
    transfer::TransferInfo info;
    auto id = bundle::sha256("bundle 9");
    std::memcpy(info.bundle_id.data(), id.data(), 32);
    auto sha = bundle::sha256("archive 9");
    std::memcpy(info.archive_sha256.data(), sha.data(), 32);
    info.archive_bytes = 42 * 16 * 1024 - 1000;  // 42 blocks of K=16 × 1 KiB
    info.channel = "secret-channel";
    info.version = "4.2.1-rc7";
    return info;
}

/// Volume `volume` of 3 (16 + 16 + 10 blocks), sets of 5 blocks, K=16 M=8 run 4: 6 stripes.
VolumeIndex sample(unsigned volume, const MediaKey* key) {
    LayoutOptions o;
    o.data_symbols = 16;
    o.parity_percent = 50;
    o.symbol_bytes = 1024;
    o.encrypted = key != nullptr;
    o.max_segment_bytes = 5 * 4 * (1024 + 40 + (key ? 16 : 0));
    auto info = sample_info();
    o.volume_bytes = volume_bytes_for(info.archive_bytes, o, 16);
    auto layout = plan_layout(info.archive_bytes, o);
    REQUIRE(layout);
    REQUIRE(layout->blocks_per_volume == 16);
    REQUIRE(layout->blocks_per_set == 5);
    auto ix = make_index(info, *layout, volume, key);
    ix.hops = kHops;
    return ix;
}

std::uint32_t get32(const std::vector<std::byte>& b, std::size_t at) {
    std::uint32_t v = 0;
    for (std::size_t i = 0; i < 4; ++i) v = (v << 8) | std::to_integer<std::uint32_t>(b[at + i]);
    return v;
}
void put32(std::vector<std::byte>& b, std::size_t at, std::uint32_t v) {
    for (int i = 3; i >= 0; --i, v >>= 8) b[at + static_cast<std::size_t>(i)] = std::byte(v & 0xff);
}

std::string body_of(const std::vector<std::byte>& plain) {
    return as_string(std::span(plain).subspan(kHeader, get32(plain, 16)));
}

/// A plain index with `body` in place of its own (header kept, length and checksum right).
std::vector<std::byte> rewrap(const std::vector<std::byte>& plain, const std::string& body) {
    std::vector<std::byte> out(plain.begin(), plain.begin() + kHeader);
    put32(out, 16, static_cast<std::uint32_t>(body.size()));
    auto b = as_bytes(body);
    out.insert(out.end(), b.begin(), b.end());
    out.resize(out.size() + 32);
    reseal(out);
    return out;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
    auto at = text.find(from);
    REQUIRE(at != std::string::npos);
    text.replace(at, from.size(), to);
    return text;
}

bool contains(std::span<const std::byte> hay, std::string_view needle) {
    return as_string(hay).find(needle) != std::string::npos;
}

std::string invalid(const std::vector<std::byte>& bytes, const MediaKey* key = nullptr, const IndexLimits& limits = {}) {
    auto p = parse_index(bytes, key, limits);
    CHECK(p.error == IndexError::invalid);
    return p.message;
}

/// The message parse_index gives for `ix` re-encoded after `change`.
template <class Change>
std::string refused_after(Change change, const MediaKey* key = nullptr, const IndexLimits& limits = {}) {
    auto ix = sample(2, key);
    change(ix);
    return invalid(encode_index(ix, key), key, limits);
}

}  // namespace

TEST_CASE("an index round-trips through encode_index and parse_index, plain and encrypted", "[media][index]") {
    const auto key = key_of(1);
    for (const MediaKey* k : {static_cast<const MediaKey*>(nullptr), &key}) {
        for (unsigned volume : {1u, 2u, 3u}) {
            CAPTURE(k != nullptr, volume);
            auto ix = sample(volume, k);
            CHECK(ix.volumes == 3);
            CHECK(ix.segments.size() == (volume == 3 ? 2u : 4u) * 6);
            auto bytes = encode_index(ix, k);
            auto p = parse_index(bytes, k);
            INFO(p.message);
            REQUIRE(p.error == IndexError::none);
            CHECK(p.message.empty());
            CHECK(p.index == ix);
            CHECK(p.index.layout.encrypted == (k != nullptr));
            CHECK(p.index.hops == kHops);
            // encode_index is deterministic: a copy written later is byte for byte the same.
            CHECK(encode_index(p.index, k) == bytes);
        }
    }
    // A plain index parses the same when a key is given.
    auto plain = sample(1, nullptr);
    auto p = parse_index(encode_index(plain, nullptr), &key);
    REQUIRE(p.error == IndexError::none);
    CHECK(p.index == plain);
}

TEST_CASE("an index without hops, with one segment, round-trips", "[media][index]") {
    LayoutOptions o;
    o.data_symbols = 4;
    o.parity_percent = 25;  // M=1, run 1, 5 stripes
    o.symbol_bytes = 512;
    o.volume_bytes = 64ULL << 20;
    auto info = sample_info();
    info.archive_bytes = 1;
    auto layout = plan_layout(info.archive_bytes, o);
    REQUIRE(layout);
    auto ix = make_index(info, *layout, 1, nullptr);
    CHECK(ix.segments.size() == 5);
    CHECK(ix.end_block == 1);
    auto p = parse_index(encode_index(ix, nullptr), nullptr);
    REQUIRE(p.error == IndexError::none);
    CHECK(p.index == ix);
    CHECK(p.index.hops.empty());
}

TEST_CASE("every single-byte change of an index is refused as damaged", "[media][index]") {
    const auto key = key_of(2);
    for (const MediaKey* k : {static_cast<const MediaKey*>(nullptr), &key}) {
        CAPTURE(k != nullptr);
        const auto bytes = encode_index(sample(2, k), k);
        REQUIRE(bytes.size() > 2000);
        std::size_t refused = 0;
        for (std::size_t at = 0; at < bytes.size(); ++at) {
            for (unsigned mask : {0x01u, 0x80u, 0xffu}) {
                auto damaged = bytes;
                damaged[at] ^= std::byte(mask);
                auto p = parse_index(damaged, k);
                if (p.error != IndexError::damaged) {
                    FAIL_CHECK("byte " << at << " ^ " << int(mask) << " gave error " << int(p.error) << ": " << p.message);
                } else {
                    ++refused;
                }
                CHECK_FALSE(p.message.empty());
            }
        }
        CHECK(refused == 3 * bytes.size());
        // In the magic: "not a Sluice media index"; elsewhere the checksum.
        auto magic = bytes;
        magic[0] ^= std::byte{1};
        CHECK(parse_index(magic, k).message == "not a Sluice media index (bad magic)");
        auto body = bytes;
        body[kHeader + 10] ^= std::byte{1};
        CHECK(parse_index(body, k).message == "checksum mismatch: the index is damaged");
    }
}

TEST_CASE("a truncated or extended index is refused as damaged", "[media][index]") {
    const auto key = key_of(3);
    for (const MediaKey* k : {static_cast<const MediaKey*>(nullptr), &key}) {
        const auto bytes = encode_index(sample(1, k), k);
        for (std::size_t len : {std::size_t{0}, std::size_t{1}, std::size_t{8}, std::size_t{67}, std::size_t{99},
                                std::size_t{100}, std::size_t{101}, bytes.size() / 2, bytes.size() - 33,
                                bytes.size() - 32, bytes.size() - 1}) {
            CAPTURE(k != nullptr, len);
            auto p = parse_index(std::span(bytes).first(len), k);
            CHECK(p.error == IndexError::damaged);
            if (len < 100) CHECK(p.message == "too short to be an index");
        }
        auto longer = bytes;
        longer.push_back(std::byte{0});
        CHECK(parse_index(longer, k).error == IndexError::damaged);
        // Truncated, with the checksum recomputed over what is left: the length field catches it.
        auto cut = std::vector<std::byte>(bytes.begin(), bytes.end() - 40);
        reseal(cut);
        auto p = parse_index(cut, k);
        CHECK(p.error == IndexError::damaged);
        CHECK(p.message == "the index length does not match its size");
    }
}

TEST_CASE("an encrypted index needs its key; another key is refused as wrong_key", "[media][index][crypto]") {
    const auto key = key_of(4);
    const auto bytes = encode_index(sample(1, &key), &key);

    auto none = parse_index(bytes, nullptr);
    CHECK(none.error == IndexError::needs_key);
    CHECK(none.message == "the medium is encrypted: give its key file");

    for (const auto& other : {key_of(5), key_of(6)}) {
        REQUIRE(other.secret.size() == 32);
        REQUIRE(other.secret != key.secret);
        auto wrong = parse_index(bytes, &other);
        CHECK(wrong.error == IndexError::wrong_key);
        CHECK(wrong.message == "the medium was encrypted with another key");
    }
    // The same 32 bytes and one more: another key too.
    MediaKey longer = key;
    longer.secret.push_back(std::byte{0});
    CHECK(parse_index(bytes, &longer).error == IndexError::wrong_key);
    CHECK(parse_index(bytes, &key).error == IndexError::none);
}

TEST_CASE("an encrypted body changed with its checksum recomputed fails its tag", "[media][index][crypto]") {
    const auto key = key_of(7);
    auto bytes = encode_index(sample(1, &key), &key);
    for (std::size_t at : {kHeader, kHeader + 100, bytes.size() - 32 - 1 /* the tag */}) {
        CAPTURE(at);
        auto forged = bytes;
        forged[at] ^= std::byte{1};
        reseal(forged);
        auto p = parse_index(forged, &key);
        CHECK(p.error == IndexError::damaged);
        CHECK(p.message == "the index fails its authentication tag (damaged or forged)");
    }
    // The header's volume is bound into the nonce: moving an index to another volume number fails too.
    auto moved = bytes;
    put32(moved, 12, 2);
    reseal(moved);
    CHECK(parse_index(moved, &key).error == IndexError::damaged);
    // The key check is in the clear; changing it is a wrong key, not a crash.
    auto check = bytes;
    check[52] ^= std::byte{1};
    reseal(check);
    CHECK(parse_index(check, &key).error == IndexError::wrong_key);
}

TEST_CASE("an encrypted index shows no channel, version, bundle id, host or hop record", "[media][index][crypto]") {
    const auto key = key_of(8);
    auto ix = sample(2, &key);
    const std::string bundle_hex = transfer::to_hex(ix.info.bundle_id);
    const std::string archive_hex = transfer::to_hex(ix.info.archive_sha256);
    const std::vector<std::string> secrets = {ix.info.channel, ix.info.version, bundle_hex,  archive_hex,
                                              "test-host",     "tester",        "sluice-hop-secret", "sluice.media/1",
                                              "segments"};
    auto plain = encode_index(sample(2, nullptr), nullptr);
    auto enc = encode_index(ix, &key);
    for (const auto& s : secrets) {
        CAPTURE(s);
        CHECK(contains(plain, s));  // the check below can fail
        CHECK_FALSE(contains(enc, s));
    }
    // Nor the raw bundle id bytes.
    CHECK_FALSE(contains(enc, std::string_view(reinterpret_cast<const char*>(ix.info.bundle_id.data()), 32)));
    // The set id is keyed: it does not follow from the bundle and layout alone.
    CHECK(ix.set_id != set_id_for(ix.info.bundle_id, ix.layout, nullptr));
    const auto other = key_of(9);
    CHECK(ix.set_id != set_id_for(ix.info.bundle_id, ix.layout, &other));
    CHECK(ix.set_id == set_id_for(ix.info.bundle_id, ix.layout, &key));
}

TEST_CASE("set ids and directory names", "[media][index]") {
    auto plain = sample(1, nullptr);
    const auto key = key_of(10);
    auto enc = sample(1, &key);
    CHECK(directory_name(plain) == transfer::to_hex(plain.info.bundle_id));
    const std::string d = directory_name(enc);
    CHECK(d.size() == 33);
    CHECK(d[0] == 'x');
    CHECK(d != directory_name(plain));
    CHECK(transfer::to_hex(enc.info.bundle_id).find(d.substr(1)) == std::string::npos);
    // Deterministic, and a different layout is a different write.
    CHECK(set_id_for(plain.info.bundle_id, plain.layout, nullptr) == plain.set_id);
    Layout other = plain.layout;
    other.blocks_per_set += 1;
    CHECK(set_id_for(plain.info.bundle_id, other, nullptr) != plain.set_id);
    CHECK(plain.session() != plain.transfer());
}

TEST_CASE("index header fields are checked after the checksum", "[media][index]") {
    const auto bytes = encode_index(sample(2, nullptr), nullptr);
    auto changed = [&](std::size_t at, std::byte value) {
        auto b = bytes;
        b[at] = value;
        reseal(b);
        return b;
    };
    CHECK(invalid(changed(8, std::byte{2})) == "index format version 2 is not one this build reads (1)");
    CHECK(invalid(changed(9, std::byte{2})) == "unknown flags in the index header");
    CHECK(invalid(changed(10, std::byte{1})) == "unknown flags in the index header");
    CHECK(invalid(changed(11, std::byte{1})) == "unknown flags in the index header");

    // A body length over the limit is refused before anything is copied.
    auto huge = bytes;
    put32(huge, 16, 0xffffffffu);
    reseal(huge);
    CHECK(invalid(huge) == "the index claims 4294967295 bytes, over the limit of 1048576");
    IndexLimits small;
    small.max_body_bytes = 1000;
    CHECK(invalid(bytes, nullptr, small).starts_with("the index claims "));
    // A length that is off by one.
    auto off = bytes;
    put32(off, 16, get32(bytes, 16) - 1);
    reseal(off);
    CHECK(parse_index(off, nullptr).error == IndexError::damaged);
    // The flag says encrypted, the body is plain: sizes disagree (no tag).
    auto flagged = changed(9, std::byte{1});
    CHECK(parse_index(flagged, nullptr).error == IndexError::damaged);

    // The header's volume must be the body's.
    auto moved = bytes;
    put32(moved, 12, 3);
    reseal(moved);
    CHECK(invalid(moved) == "volume 2 of 3 does not match the header or the archive size");
}

TEST_CASE("index volume claims that do not fit are refused", "[media][index]") {
    CHECK(refused_after([](VolumeIndex& ix) { ix.volume = 4; }) ==
          "volume 4 of 3 does not match the header or the archive size");
    CHECK(refused_after([](VolumeIndex& ix) { ix.volume = 0; }) ==
          "volume 0 of 3 does not match the header or the archive size");
    CHECK(refused_after([](VolumeIndex& ix) { ix.volumes = 4; }) ==
          "volume 2 of 4 does not match the header or the archive size");
    CHECK(refused_after([](VolumeIndex& ix) { ix.volumes = 2; }) ==
          "volume 2 of 2 does not match the header or the archive size");
    CHECK(refused_after([](VolumeIndex& ix) { ix.volume = ix.volumes = 10000; }) ==
          "field 'volume' is 10000, over the limit of 9999");
    CHECK(refused_after([](VolumeIndex& ix) { ix.first_block += 1; }) == "the block range does not match the volume number");
    CHECK(refused_after([](VolumeIndex& ix) { ix.end_block -= 1; }) == "the block range does not match the volume number");
    CHECK(refused_after([](VolumeIndex& ix) { ix.end_block = 1ULL << 33; }) ==
          "field 'end_block' is 8589934592, over the limit of 4294967296");
}

TEST_CASE("index segment lists that do not match the layout are refused, naming the segment", "[media][index]") {
    CHECK(refused_after([](VolumeIndex& ix) { ix.segments.pop_back(); }) ==
          "the index lists 23 segments where 24 are expected");
    CHECK(refused_after([](VolumeIndex& ix) { ix.segments.push_back(ix.segments.back()); }) ==
          "the index lists 25 segments where 24 are expected");
    CHECK(refused_after([](VolumeIndex& ix) { ix.segments.clear(); }) ==
          "the index lists 0 segments where 24 are expected");
    CHECK(refused_after([](VolumeIndex& ix) { ix.segments[1].bytes += 1; }) ==
          "segment 1 (v0002-c0000-s001.seg) does not match the layout");
    CHECK(refused_after([](VolumeIndex& ix) {
              ix.segments[7].records += 1;
              ix.segments[7].bytes += ix.layout.record_bytes();
          }) == "segment 7 (v0002-c0001-s001.seg) does not match the layout");
    CHECK(refused_after([](VolumeIndex& ix) { std::swap(ix.segments[0], ix.segments[1]); }) ==
          "segment 0 (v0002-c0000-s001.seg) does not match the layout");
    CHECK(refused_after([](VolumeIndex& ix) { ix.segments[6].set = 0; }) ==
          "segment 6 (v0002-c0000-s000.seg) does not match the layout");
    CHECK(refused_after([](VolumeIndex& ix) { ix.segments[3].bytes = 5ULL << 30; }) ==
          "segment 3: field 'bytes' is 5368709120, over the limit of 4294967296");
    CHECK(refused_after([](VolumeIndex& ix) { ix.segments[3].records = 1ULL << 41; }) ==
          "segment 3: field 'records' is 2199023255552, over the limit of 1099511627776");
    CHECK(refused_after([](VolumeIndex& ix) { ix.segments[3].set = 10000; }) ==
          "segment 3: field 'set' is 10000, over the limit of 9999");
    IndexLimits few;
    few.max_segments = 20;
    // The refusal must say what was wrong: 24 segments are expected, but over the reader's limit.
    auto many = refused_after([](VolumeIndex&) {}, nullptr, few);
    CHECK_THAT(many, Catch::Contains("24 segments") && Catch::Contains("limit of 20"));
}

TEST_CASE("index archive and FEC claims that are absurd are refused, naming the field", "[media][index]") {
    CHECK(refused_after([](VolumeIndex& ix) { ix.info.archive_bytes = 1ULL << 50; }) ==
          "archive size 1125899906842624 is over the limit of 4398046511104 bytes");
    CHECK(refused_after([](VolumeIndex& ix) { ix.info.archive_bytes = 0; }) == "archive size is 0");
    // Plausible, but not the archive these volumes were cut from.
    CHECK(refused_after([](VolumeIndex& ix) { ix.info.archive_bytes *= 2; }) ==
          "volume 2 of 3 does not match the header or the archive size");
    CHECK(refused_after([](VolumeIndex& ix) { ix.layout.fec.symbol_bytes = 100000; }) ==
          "field 'symbol_bytes' is 100000, over the limit of 65472");
    CHECK(refused_after([](VolumeIndex& ix) { ix.layout.fec.symbol_bytes = 256; }) ==
          "symbol size 256 is outside 512..65535");
    CHECK(refused_after([](VolumeIndex& ix) { ix.layout.fec.data_symbols = 300; }) ==
          "field 'data_symbols' is 300, over the limit of 255");
    CHECK(refused_after([](VolumeIndex& ix) { ix.layout.fec.parity_symbols = 0; }) ==
          "FEC K=16 M=0 is outside 1 ≤ K, 1 ≤ M, K + M ≤ 255");
    CHECK(refused_after([](VolumeIndex& ix) { ix.layout.run = 3; }) == "stripes 6 do not match K+M and run");
    CHECK(refused_after([](VolumeIndex& ix) { ix.layout.blocks_per_volume = 1ULL << 33; }) ==
          "field 'blocks_per_volume' is 8589934592, over the limit of 4294967296");
    CHECK(refused_after([](VolumeIndex& ix) { ix.layout.blocks_per_set = 0; }) == "blocks per set or per volume is 0");
    // 2^26 blocks of 16 KiB is the most an index may announce.
    CHECK(refused_after([](VolumeIndex& ix) { ix.info.archive_bytes = (1ULL << 40) + 1; }).starts_with(
        "archive of 1099511627777 bytes needs 67108865 blocks"));
}

TEST_CASE("index strings: bounded, printable; the hop record bounded", "[media][index]") {
    CHECK(refused_after([](VolumeIndex& ix) { ix.info.channel = "a\nb"; }) ==
          "field 'channel' is over 64 bytes or has control characters");
    CHECK(refused_after([](VolumeIndex& ix) { ix.info.version = std::string(65, 'v'); }) ==
          "field 'version' is over 64 bytes or has control characters");
    CHECK(refused_after([](VolumeIndex& ix) { ix.written_by = std::string(257, 'w'); }) ==
          "field 'written_by' is over 256 bytes or has control characters");
    CHECK(refused_after([](VolumeIndex& ix) { ix.host = std::string("h\x7f"); }) ==
          "field 'host' is over 256 bytes or has control characters");
    CHECK(refused_after([](VolumeIndex& ix) { ix.written_at = std::string(1, '\t'); }) ==
          "field 'written_at' is over 64 bytes or has control characters");
    CHECK(refused_after([](VolumeIndex& ix) { ix.info.channel.clear(); }) ==
          "channel name is empty, over 64 bytes or not printable ASCII");

    CHECK(refused_after([](VolumeIndex& ix) { ix.hops = std::string((64u << 10) + 1, 'h'); }) ==
          "the hop record is 65537 bytes, over the limit of 65536");
    auto ix = sample(2, nullptr);
    ix.hops = std::string(64u << 10, 'h');
    auto p = parse_index(encode_index(ix, nullptr), nullptr);
    REQUIRE(p.error == IndexError::none);
    CHECK(p.index.hops.size() == (64u << 10));
    IndexLimits tight;
    tight.max_hops_bytes = 10;
    CHECK(refused_after([](VolumeIndex&) {}, nullptr, tight) ==
          "the hop record is " + std::to_string(kHops.size()) + " bytes, over the limit of 10");
    // Encrypted, the same checks apply once the body is open.
    const auto key = key_of(11);
    CHECK(refused_after([](VolumeIndex& v) { v.segments.pop_back(); }, &key) ==
          "the index lists 23 segments where 24 are expected");
}

TEST_CASE("index bodies that are not the expected JSON are refused, naming the field", "[media][index]") {
    const auto bytes = encode_index(sample(2, nullptr), nullptr);
    const std::string body = body_of(bytes);
    REQUIRE(body.front() == '{');
    REQUIRE(parse_index(rewrap(bytes, body), nullptr).error == IndexError::none);  // rewrap itself is right

    CHECK(invalid(rewrap(bytes, replaced(body, R"("channel":"secret-channel")", R"("channel":7)"))) ==
          "field 'channel' is missing or of the wrong type");
    CHECK(invalid(rewrap(bytes, replaced(body, R"("channel":"secret-channel",)", ""))) ==
          "field 'channel' is missing or of the wrong type");
    const std::string archive = R"("archive_bytes":)" + std::to_string(sample_info().archive_bytes);
    CHECK(invalid(rewrap(bytes, replaced(body, archive, R"("archive_bytes":-1)"))) ==
          "field 'archive_bytes' is missing or of the wrong type");
    CHECK(invalid(rewrap(bytes, replaced(body, archive, R"("archive_bytes":687000.5)"))) ==
          "field 'archive_bytes' is missing or of the wrong type");
    CHECK(invalid(rewrap(bytes, replaced(body, archive, R"("archive_bytes":"687000")"))) ==
          "field 'archive_bytes' is missing or of the wrong type");
    CHECK(invalid(rewrap(bytes, replaced(body, archive, R"("archive_bytes":99999999999999999999999)"))) ==
          "field 'archive_bytes' is missing or of the wrong type");
    CHECK(invalid(rewrap(bytes, replaced(body, R"("format":"sluice.media/1")", R"("format":"sluice.media/2")"))) ==
          "the index format is not sluice.media/1");
    CHECK(invalid(rewrap(bytes, replaced(body, R"("hops":)", R"("hops":1,"x":)"))) ==
          "field 'hops' is missing or of the wrong type");
    CHECK(invalid(rewrap(bytes, replaced(body, R"("bundle":")", R"("bundle":"zz)"))) ==
          "field 'bundle' is over 64 bytes or has control characters");
    const std::string hex = transfer::to_hex(sample_info().bundle_id);
    CHECK(invalid(rewrap(bytes, replaced(body, R"("bundle":")" + hex, R"("bundle":"g)" + hex.substr(1)))) ==
          "field 'bundle' is not a SHA-256");
    {
        // The first segment object replaced by a number.
        auto at = body.find(R"("segments":[{)");
        REQUIRE(at != std::string::npos);
        at += std::string(R"("segments":[)").size();
        auto end = body.find('}', at);
        std::string b = body;
        b.replace(at, end + 1 - at, "7");
        CHECK(invalid(rewrap(bytes, b)) == "segment 0 is not an object");
    }
    CHECK(invalid(rewrap(bytes, replaced(body, R"("segments":[)", R"("segments":[[[[[[[[[[]]]]]]]]],)"))) ==
          "the index nests deeper than 8");
    CHECK(invalid(rewrap(bytes, "[]")) == "the index body is not a JSON object");
    CHECK(invalid(rewrap(bytes, "")) == "the index body is not a JSON object");
    CHECK(invalid(rewrap(bytes, body.substr(0, body.size() - 1))) == "the index body is not a JSON object");
    CHECK(invalid(rewrap(bytes, body + "x")) == "the index body is not a JSON object");
    CHECK(invalid(rewrap(bytes, std::string(100, '[') + std::string(100, ']'))) == "the index nests deeper than 8");
    // Invalid UTF-8 inside a string.
    CHECK(invalid(rewrap(bytes, replaced(body, R"("host":"test-host")", "\"host\":\"test-\xff\"")))
              == "the index body is not a JSON object");
}

TEST_CASE("load_key: 32 to 4096 bytes of a regular file, refusals name the file", "[media][crypto]") {
    sluice::test::TempDir tmp;
    auto file = tmp / "media.key";
    sluice::test::write_file(file, std::string(32, 'k'));
    auto key = load_key(file);
    REQUIRE(key);
    CHECK(key->secret.size() == 32);
    sluice::test::write_file(file, std::string(4096, 'k'));
    CHECK(load_key(file));

    sluice::test::write_file(file, std::string(31, 'k'));
    auto short_key = load_key(file);
    REQUIRE_FALSE(short_key);
    CHECK(short_key.error().message == "the key file " + file.string() +
                                           " holds 31 bytes; a media key is 32 to 4096 bytes of secret "
                                           "(e.g. head -c 32 /dev/urandom)");
    sluice::test::write_file(file, std::string(4097, 'k'));
    CHECK_FALSE(load_key(file));

    std::filesystem::create_symlink(file, tmp / "link.key");
    auto link = load_key(tmp / "link.key");
    REQUIRE_FALSE(link);
    CHECK(link.error().message.starts_with("cannot read the key file " + (tmp / "link.key").string()));
    auto dir = load_key(tmp.path());
    REQUIRE_FALSE(dir);
    CHECK(dir.error().message == "the key file " + tmp.path().string() + " is not a regular file");
    auto missing = load_key(tmp / "none.key");
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message.starts_with("cannot read the key file " + (tmp / "none.key").string()));
}

TEST_CASE("the index body alone round-trips with the envelope's facts, encrypted layouts too", "[media][index]") {
    for (bool encrypted : {false, true}) {
        auto layout = media::plan_layout(5u << 20, {.parity_percent = 10, .volume_bytes = 64ULL << 20, .encrypted = encrypted});
        REQUIRE(layout);
        media::VolumeIndex ix;
        ix.layout = *layout;
        ix.info.archive_bytes = 5u << 20;
        ix.info.fec = layout->fec;
        ix.info.interleave = 1;
        ix.info.channel = "models";
        ix.info.version = "1.0.0";
        ix.info.bundle_id[0] = std::byte{7};
        ix.set_id[5] = std::byte{9};
        ix.volumes = 1;
        ix.end_block = ix.info.blocks();
        for (unsigned w = 0; w < layout->stripes; ++w) {
            media::SegmentEntry e;
            e.stripe = w;
            e.records = ix.end_block * layout->symbols_in(w);
            e.bytes = e.records * layout->record_bytes();
            ix.segments.push_back(e);
        }
        ix.written_at = "2026-11-30T00:00:00Z";
        auto text = media::encode_index_body(ix);
        auto parsed = media::parse_index_body(text, ix.set_id, 1, encrypted);
        INFO(parsed.message);
        REQUIRE(parsed.error == media::IndexError::none);
        CHECK(parsed.index == ix);
        // Read as the other layout, the segment sizes do not fit: refused, naming a segment.
        auto other = media::parse_index_body(text, ix.set_id, 1, !encrypted);
        CHECK(other.error == media::IndexError::invalid);
        CHECK_THAT(other.message, Catch::Contains("does not match the layout"));
    }
}
