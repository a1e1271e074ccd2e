// libFuzzer target for the transfer frame parser (untrusted datagrams).
//
//   input ─┬─► parse_frame (as received, with and without a link key)
//          └─► the same bytes with a valid checksum (and MAC) patched in ─► parse_frame
//
// The second path lets the fuzzer past the 64-bit checksum it could never
// guess, into the length, flag and MAC handling. Whatever parses must
// re-encode to the identical bytes.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "fuzz_check.hpp"
#include "sluice/transfer/frame.hpp"

namespace {

using namespace sluice::transfer;

LinkKey& fuzz_key() {
    static const char secret[] = "fuzzing link key, 32 bytes long!";
    static LinkKey key(std::as_bytes(std::span(secret, 32)));
    return key;
}

void check_parsed(std::span<const std::byte> datagram, const ParsedFrame& parsed, LinkKey* key) {
    if (parsed.error != FrameError::none) {
        FUZZ_REQUIRE(!describe(parsed.error).empty(), "every refusal has a description");
        return;
    }
    const auto& f = parsed.frame;
    FUZZ_REQUIRE(f.payload.data() >= datagram.data() &&
                     f.payload.data() + f.payload.size() <= datagram.data() + datagram.size(),
                 "the payload lies inside the datagram");
    std::vector<std::byte> again(kMaxFrameBytes);
    auto n = encode_frame(f.header, f.payload, key, again);
    FUZZ_REQUIRE(n.ok(), "a parsed frame re-encodes");
    FUZZ_REQUIRE(*n == datagram.size() && std::memcmp(again.data(), datagram.data(), *n) == 0,
                 "encode(parse(x)) == x");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
    check_parsed(input, parse_frame(input, nullptr), nullptr);
    check_parsed(input, parse_frame(input, &fuzz_key()), &fuzz_key());

    // Rebuild the frame the input describes (header fields and payload as given,
    // length clamped to what is there) with a genuine checksum and MAC.
    if (size < kFrameHeaderBytes) return 0;
    FrameHeader h;
    h.type = static_cast<FrameType>(data[5]);
    std::memcpy(&h.session, data + 8, 8);
    std::memcpy(&h.transfer, data + 16, 8);
    std::memcpy(&h.block, data + 24, 4);
    std::memcpy(&h.symbol, data + 28, 2);
    auto payload = input.subspan(kFrameHeaderBytes, std::min<std::size_t>(size - kFrameHeaderBytes, kMaxFramePayload));
    bool with_mac = (data[6] & 1) != 0;
    std::vector<std::byte> frame(kMaxFrameBytes);
    auto n = encode_frame(h, payload, with_mac ? &fuzz_key() : nullptr, frame);
    FUZZ_REQUIRE(n.ok(), "encode_frame accepts any payload up to the maximum");
    frame.resize(*n);
    auto parsed = parse_frame(frame, with_mac ? &fuzz_key() : nullptr);
    bool known_type = data[5] >= 1 && data[5] <= 4;  // symbol, metadata, heartbeat, annex
    FUZZ_REQUIRE((parsed.error == FrameError::none) == known_type, "a well-formed frame parses iff its type is known");
    check_parsed(frame, parsed, with_mac ? &fuzz_key() : nullptr);
    return 0;
}
