// libFuzzer target for annex chunks (untrusted frame payloads of type 4).
//
//   input ─┬─► parse_annex_chunk (the whole input as one payload)
//          ├─► records [u16 big-endian length][payload]… ─► parse_annex_chunk ─► one AnnexCollector
//          └─► the input as an annex ─► encode_annex_chunks (chunk size from the
//              first byte, at most 64 chunks: tiny chunks only cost allocations)
//              ─► parse ─► a fresh collector, last chunk first
//
// Invariants: a parsed chunk lies inside its payload and fits its annex (every
// chunk but the last has the chunk size, the last is the remainder, count =
// ⌈total / chunk size⌉); a collector completes only an annex whose SHA-256 and
// length are the announced ones and never holds more than two annexes; every
// encoded annex comes back byte for byte, exactly once.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "fuzz_check.hpp"
#include "sluice/transfer/annex.hpp"
#include "sluice/transfer/frame.hpp"

namespace {

using namespace sluice::transfer;

void check_chunk(std::span<const std::byte> payload, const AnnexChunk& c) {
    FUZZ_REQUIRE(c.data.data() >= payload.data() && c.data.data() + c.data.size() == payload.data() + payload.size(),
                 "the chunk data is the end of the payload");
    FUZZ_REQUIRE(c.total >= 1 && c.total <= kMaxAnnexBytes, "annex length within bounds");
    FUZZ_REQUIRE(c.count >= 1 && c.index < c.count, "index < count");
    FUZZ_REQUIRE(c.chunk_bytes >= 1 && c.chunk_bytes + kAnnexHeaderBytes <= kMaxFramePayload, "chunk size fits a frame");
    FUZZ_REQUIRE((c.total + c.chunk_bytes - 1) / c.chunk_bytes == c.count, "count = ceil(total / chunk size)");
    const std::size_t want = c.index + 1u < c.count ? c.chunk_bytes : c.total - (c.count - 1u) * c.chunk_bytes;
    FUZZ_REQUIRE(!c.data.empty() && c.data.size() == want, "chunk length consistent with its place");
}

void check_collector(const AnnexCollector& collector, const AnnexChunk& chunk, AnnexCollector::Outcome outcome) {
    FUZZ_REQUIRE(collector.memory_bytes() <= 2 * kMaxAnnexBytes + kMaxAnnexChunks / 8 + 64,
                 "a collector holds at most two annexes");
    if (outcome != AnnexCollector::Outcome::completed) return;
    const auto& done = collector.complete();
    FUZZ_REQUIRE(done && done->size() == chunk.total, "a completed annex has its announced length");
    FUZZ_REQUIRE(annex_sha256(*done) == chunk.sha256, "a completed annex has its announced SHA-256");
    FUZZ_REQUIRE(collector.chunks_held() == 0, "nothing is being collected right after a completion");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
    if (auto c = parse_annex_chunk(input)) check_chunk(input, *c);

    // Records, as a receiver sees the chunks of one transfer.
    AnnexCollector collector;
    for (std::size_t pos = 0; pos + 2 <= size;) {
        std::size_t length = static_cast<std::size_t>(data[pos]) << 8 | data[pos + 1];
        pos += 2;
        length = std::min(length, size - pos);
        auto payload = input.subspan(pos, length);
        pos += length;
        auto c = parse_annex_chunk(payload);
        if (!c) continue;
        check_chunk(payload, *c);
        if (auto outcome = collector.add(*c)) check_collector(collector, *c, *outcome);
    }

    // The input as an annex: whatever the bytes, it comes back whole.
    if (size == 0) return 0;
    auto annex = input.first(std::min(size, kMaxAnnexBytes));
    const std::size_t payload_bytes = kAnnexHeaderBytes + 1 + data[0] + annex.size() / 64;
    auto chunks = encode_annex_chunks(annex, payload_bytes);
    FUZZ_REQUIRE(chunks.ok(), "any annex of at most 64 KiB in at most 64 chunks encodes");
    AnnexCollector fresh;
    int completed = 0;
    for (std::size_t i = chunks->size(); i-- > 0;) {
        const auto& p = (*chunks)[i];
        FUZZ_REQUIRE(p.size() <= payload_bytes, "chunk payloads within the asked size");
        auto c = parse_annex_chunk(p);
        FUZZ_REQUIRE(c.ok(), "encoded chunks parse");
        check_chunk(p, *c);
        auto outcome = fresh.add(*c);
        FUZZ_REQUIRE(outcome.ok(), "encoded chunks are accepted");
        check_collector(fresh, *c, *outcome);
        if (*outcome == AnnexCollector::Outcome::completed) ++completed;
    }
    FUZZ_REQUIRE(completed == 1 && fresh.complete() && fresh.complete()->size() == annex.size() &&
                     std::equal(annex.begin(), annex.end(), fresh.complete()->begin()),
                 "encode, parse and collect give the annex back");
    return 0;
}
