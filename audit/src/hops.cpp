#include "sluice/audit/hops.hpp"

#include "common.hpp"
#include "sluice/bundle/digest.hpp"

using nlohmann::json;

namespace sluice::audit {
namespace {

constexpr std::size_t kMaxFieldBytes = 4096;
constexpr std::size_t kMaxDetailsBytes = 16 * 1024;

json encode(const HopRecord& hops) {
    json events = json::array();
    for (const auto& r : hops.events) {
        json e = r.to_json();
        e.erase("upstream");
        events.push_back(std::move(e));
    }
    return {{"format", kHopsFormat}, {"host", hops.host}, {"bundle", hops.bundle}, {"events", std::move(events)},
            {"public_key", hops.public_key}, {"signature", hops.signature}};
}

}  // namespace

std::string hop_signed_text(const HopRecord& hops) {
    std::string out = std::string(kHopsFormat) + "\nhost=" + hops.host + "\nbundle=" + hops.bundle + "\n";
    for (const auto& r : hops.events) out += std::to_string(r.seq) + " " + r.hash + "\n";
    return out;
}

Result<std::string> encode_hop_record(HopRecord hops, const bundle::Key& private_key) {
    auto pem = bundle::format_public_key_pem(private_key);
    if (!pem) return fail(pem.error().message);
    hops.public_key = *pem;
    hops.key_fingerprint = private_key.fingerprint();
    // Keep the oldest events (submission, verification matter most) that fit:
    // sizes are measured once, then the record is signed once (a bundle with
    // thousands of events must not cost thousands of signatures).
    if (hops.events.size() > kMaxHopEvents) hops.events.resize(kMaxHopEvents);
    std::vector<Record> events = std::move(hops.events);
    hops.events.clear();
    hops.signature = std::string(128, 'A');  // at least as long as a base64 DER P-256 signature
    std::size_t size = encode(hops).dump(-1, ' ', false, json::error_handler_t::replace).size();
    std::size_t keep = 0;
    for (const auto& r : events) {
        json e = r.to_json();
        e.erase("upstream");
        size += e.dump(-1, ' ', false, json::error_handler_t::replace).size() + 1;  // and its comma
        if (size > kMaxHopRecordBytes) break;
        ++keep;
    }
    events.resize(keep);
    hops.events = std::move(events);
    for (;;) {
        auto sig = bundle::sign_message(private_key, hop_signed_text(hops));
        if (!sig) return fail("hop record: " + sig.error().message);
        hops.signature = bundle::base64_encode(*sig);
        std::string text = encode(hops).dump(-1, ' ', false, json::error_handler_t::replace);
        if (text.size() <= kMaxHopRecordBytes) return text;
        if (hops.events.empty()) return fail("hop record: too large even without events");
        hops.events.pop_back();  // not reached unless the estimate was short
    }
}

Result<HopRecord> parse_hop_record(std::string_view bytes) {
    if (bytes.size() > kMaxHopRecordBytes) {
        return fail("hop record: " + std::to_string(bytes.size()) + " bytes, more than " +
                    std::to_string(kMaxHopRecordBytes));
    }
    // Depth-limited parse: a callback refuses nesting deeper than the format needs.
    int depth_exceeded = 0;
    json j = json::parse(
        bytes,
        [&](int depth, json::parse_event_t, json&) {
            if (depth > 16) depth_exceeded = 1;
            return depth <= 16;
        },
        false);
    if (depth_exceeded != 0) return fail("hop record: nested too deeply");
    if (j.is_discarded() || !j.is_object()) return fail("hop record: not a JSON object");
    auto str = [&](const json& o, const char* key, std::string& out) -> Result<void> {
        auto it = o.find(key);
        if (it == o.end() || !it->is_string()) return fail(std::string("hop record: \"") + key + "\" must be a string");
        out = it->get<std::string>();
        if (out.size() > kMaxFieldBytes) return fail(std::string("hop record: \"") + key + "\" is too long");
        return {};
    };
    std::string format;
    HopRecord hops;
    for (auto [key, out] : {std::pair{"format", &format}, {"host", &hops.host}, {"bundle", &hops.bundle},
                            {"public_key", &hops.public_key}, {"signature", &hops.signature}}) {
        if (auto ok = str(j, key, *out); !ok) return ok.error();
    }
    if (format != kHopsFormat) return fail("hop record: format \"" + format + "\", expected " + std::string(kHopsFormat));
    if (!detail::is_hex64(hops.bundle)) return fail("hop record: \"bundle\" must be 64 lowercase hex digits");
    if (hops.host.empty()) return fail("hop record: \"host\" is empty");
    auto events = j.find("events");
    if (events == j.end() || !events->is_array()) return fail("hop record: \"events\" must be an array");
    if (events->size() > kMaxHopEvents) return fail("hop record: more than " + std::to_string(kMaxHopEvents) + " events");
    std::int64_t last_seq = 0;
    for (const auto& e : *events) {
        auto r = Record::from_json(e);
        if (!r) return fail("hop record: " + r.error().message);
        for (const std::string* f : {&r->time, &r->host, &r->side, &r->bundle, &r->channel, &r->event, &r->actor, &r->outcome}) {
            if (f->size() > kMaxFieldBytes) return fail("hop record: event " + std::to_string(r->seq) + " has a field too long");
        }
        if (r->details.size() > kMaxDetailsBytes) return fail("hop record: event " + std::to_string(r->seq) + ": details too long");
        if (r->host != hops.host) return fail("hop record: event " + std::to_string(r->seq) + " is from another host");
        if (r->bundle != hops.bundle) return fail("hop record: event " + std::to_string(r->seq) + " is about another bundle");
        if (r->side != "sender") return fail("hop record: event " + std::to_string(r->seq) + " is not a sender's event");
        if (r->seq <= last_seq) return fail("hop record: events out of order at " + std::to_string(r->seq));
        last_seq = r->seq;
        if (!detail::is_hex64(r->hash) || chain_hash(*r) != r->hash) {
            return fail("hop record: event " + std::to_string(r->seq) + " does not match its hash (altered)");
        }
        r->upstream = true;
        hops.events.push_back(std::move(*r));
    }
    auto key = bundle::parse_public_key_pem(hops.public_key);
    if (!key) return fail("hop record: the signer's key is unreadable: " + key.error().message);
    auto sig = bundle::base64_decode(hops.signature);
    if (!sig || !bundle::verify_message(*key, hop_signed_text(hops), *sig)) {
        return fail("hop record: the signature does not verify");
    }
    hops.key_fingerprint = key->fingerprint();
    return hops;
}

}  // namespace sluice::audit
