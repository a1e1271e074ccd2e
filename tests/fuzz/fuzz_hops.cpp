// libFuzzer target for hop records: the sender's signed audit events that
// arrive with a transfer (the annex), parsed by the receiver before anything
// of it reaches its audit log.
//
//   input bytes ─► parse_hop_record ─┬─ refused: a reason is given
//                                    └─ accepted: every event recomputes its hash,
//                                       names the record's host and bundle, is in
//                                       order, and the signature verifies
//
// A property that fails traps (see fuzz_check.hpp).

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "sluice/audit/hops.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace sluice::audit;
    std::string_view text = sluice::fuzz::as_text(data, size);
    auto hops = parse_hop_record(text);
    if (!hops) {
        FUZZ_REQUIRE(!hops.error().message.empty(), "parse_hop_record: a refusal names its reason");
        return 0;
    }
    FUZZ_REQUIRE(size <= kMaxHopRecordBytes, "accepted within the size bound");
    FUZZ_REQUIRE(hops->events.size() <= kMaxHopEvents, "accepted within the event bound");
    std::int64_t last = 0;
    for (const auto& r : hops->events) {
        FUZZ_REQUIRE(chain_hash(r) == r.hash, "every accepted event recomputes its hash");
        FUZZ_REQUIRE(r.host == hops->host && r.bundle == hops->bundle, "every event is the record's");
        FUZZ_REQUIRE(r.seq > last, "events in order");
        FUZZ_REQUIRE(r.upstream, "marked as upstream");
        last = r.seq;
    }
    FUZZ_REQUIRE(!hops->key_fingerprint.empty(), "the signer is known");
    return 0;
}
