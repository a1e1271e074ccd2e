#pragma once
// Hop records: the sender's audit events for one bundle, signed with the
// sender's audit key, travelling with the bundle (as the transfer's annex on
// the diode, in the index on media) so the receiver's log holds both sides.
//
//   {"format":"sluice.hops/1", "host":…, "bundle":…, "events":[Record…],
//    "public_key":PEM, "signature":base64 DER ECDSA over hop_signed_text()}
//
// parse_hop_record() reads untrusted bytes: size, counts and every field are
// bounded, every event's hash must recompute from its own fields and previous
// hash, every event must be the named host's and bundle's, and the signature
// must verify with the key it carries. Whether that key is the sender's is a
// question for the auditor (the receiver records its fingerprint).

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/audit/log.hpp"
#include "sluice/core/result.hpp"

namespace sluice::audit {

inline constexpr std::string_view kHopsFormat = "sluice.hops/1";
inline constexpr std::size_t kMaxHopRecordBytes = 64 * 1024;
inline constexpr std::size_t kMaxHopEvents = 256;

struct HopRecord {
    std::string host;
    std::string bundle;
    std::vector<Record> events;
    std::string public_key;       ///< PEM
    std::string key_fingerprint;  ///< SHA-256 of its DER
    std::string signature;        ///< base64
};

/// The text signed: format, host, bundle, then "seq hash" per event.
[[nodiscard]] std::string hop_signed_text(const HopRecord& hops);

/// Signs and serialises; the newest events are dropped first when over the size bound.
[[nodiscard]] Result<std::string> encode_hop_record(HopRecord hops, const bundle::Key& private_key);

/// Parses and checks untrusted bytes (see above); never throws.
[[nodiscard]] Result<HopRecord> parse_hop_record(std::string_view bytes);

}  // namespace sluice::audit
