// libFuzzer target for media indexes: the first thing a receiver reads from a
// removable medium someone handed in, before any segment is opened.
//
//   input bytes ─┬─► parse_index(no key) ─┐
//                ├─► parse_index(key)     ├─ refused: an error kind and a reason
//                └─ the same with the     └─ accepted: the index is consistent (layout,
//                   SHA-256 trailer          info, volume range, segment list) and
//                   recomputed, so the       re-encodes (plain, or encrypted under the
//                   fuzzer gets past the     same key) to bytes that parse back to it
//                   checksum
//
// Encrypted seeds use the fixed key below (tests/fuzz/corpus/fuzz_media_index/).
// A property that fails traps (see fuzz_check.hpp).

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/media/media.hpp"

namespace {

using namespace sluice::media;

const MediaKey& fixed_key() {
    static const MediaKey key = [] {
        MediaKey k;
        for (unsigned i = 0; i < 32; ++i) k.secret.push_back(std::byte(i));
        return k;
    }();
    return key;
}

const MediaKey& other_key() {
    static const MediaKey key = [] {
        MediaKey k;
        for (unsigned i = 0; i < 32; ++i) k.secret.push_back(std::byte(0xA0 + i));
        return k;
    }();
    return key;
}

void check_accepted(const VolumeIndex& ix, const IndexLimits& limits) {
    FUZZ_REQUIRE(ix.layout.validate().ok(), "accepted: the layout is valid");
    FUZZ_REQUIRE(ix.info.validate(limits.info).ok(), "accepted: the transfer info is valid");
    FUZZ_REQUIRE(ix.info.fec == ix.layout.fec, "accepted: one FEC for info and layout");
    FUZZ_REQUIRE(ix.volume >= 1 && ix.volume <= ix.volumes && ix.volumes <= kMaxVolumes, "accepted: volume i of n");
    const std::uint64_t blocks = ix.info.blocks();
    const std::uint64_t bpv = ix.layout.blocks_per_volume;
    FUZZ_REQUIRE(ix.volumes == (blocks + bpv - 1) / bpv, "accepted: n volumes cover the archive");
    FUZZ_REQUIRE(ix.first_block < ix.end_block && ix.end_block <= blocks, "accepted: a non-empty block range");
    FUZZ_REQUIRE(ix.end_block - ix.first_block <= bpv, "accepted: no more blocks than a volume holds");
    const std::uint64_t sets = (ix.end_block - ix.first_block + ix.layout.blocks_per_set - 1) / ix.layout.blocks_per_set;
    FUZZ_REQUIRE(ix.segments.size() == sets * ix.layout.stripes, "accepted: every segment listed once");
    FUZZ_REQUIRE(ix.segments.size() <= limits.max_segments, "accepted: within the segment bound");
    FUZZ_REQUIRE(ix.hops.size() <= limits.max_hops_bytes, "accepted: within the hop record bound");
    std::uint64_t records = 0;
    for (std::size_t i = 0; i < ix.segments.size(); ++i) {
        const auto& e = ix.segments[i];
        FUZZ_REQUIRE(e.set == i / ix.layout.stripes && e.stripe == i % ix.layout.stripes, "accepted: segments in order");
        FUZZ_REQUIRE(e.bytes == e.records * ix.layout.record_bytes(), "accepted: bytes are records × record size");
        FUZZ_REQUIRE(e.bytes <= limits.max_segment_bytes, "accepted: within the segment size bound");
        FUZZ_REQUIRE(e.name(ix.volume).size() == 20, "accepted: a canonical segment name");
        records += e.records;
    }
    FUZZ_REQUIRE(records == (ix.end_block - ix.first_block) * (ix.layout.fec.data_symbols + ix.layout.fec.parity_symbols),
                 "accepted: every symbol of every block has one record");
}

/// An accepted index, encoded again (in its own mode: the record size, and
/// so every segment's length, depends on it), parses back to itself: what the
/// writer writes, the reader reads.
void check_round_trip(const VolumeIndex& ix) {
    const MediaKey* key = ix.layout.encrypted ? &fixed_key() : nullptr;
    auto bytes = encode_index(ix, key);
    auto again = parse_index(bytes, key);
    FUZZ_REQUIRE(again.error == IndexError::none, "re-encoding parses");
    FUZZ_REQUIRE(again.index == ix, "re-encoding round-trips");
    if (key != nullptr) {
        FUZZ_REQUIRE(parse_index(bytes, nullptr).error == IndexError::needs_key, "encrypted: no key, needs_key");
        FUZZ_REQUIRE(parse_index(bytes, &other_key()).error == IndexError::wrong_key, "encrypted: another key, wrong_key");
    }
}

void check(std::span<const std::byte> bytes) {
    const IndexLimits limits;
    for (const MediaKey* key : {static_cast<const MediaKey*>(nullptr), &fixed_key()}) {
        auto parsed = parse_index(bytes, key, limits);
        if (parsed.error != IndexError::none) {
            FUZZ_REQUIRE(!parsed.message.empty(), "parse_index: a refusal names its reason");
            FUZZ_REQUIRE(key != nullptr || parsed.error != IndexError::wrong_key, "no key given: never wrong_key");
            FUZZ_REQUIRE(key == nullptr || parsed.error != IndexError::needs_key, "key given: never needs_key");
            continue;
        }
        FUZZ_REQUIRE(parsed.message.empty(), "accepted: no message");
        FUZZ_REQUIRE(!parsed.index.layout.encrypted || key != nullptr, "accepted encrypted only with a key");
        check_accepted(parsed.index, limits);
        check_round_trip(parsed.index);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    check(bytes);
    // The same bytes with the SHA-256 trailer made right: mutations reach the
    // header, the key check, the tag and the JSON body instead of all
    // stopping at the checksum.
    if (size >= 32) {
        std::vector<std::byte> fixed(bytes.begin(), bytes.end());
        auto d = sluice::bundle::sha256(std::string_view(reinterpret_cast<const char*>(data), size - 32));
        std::memcpy(fixed.data() + size - 32, d.data(), 32);
        check(fixed);
    }
    return 0;
}
