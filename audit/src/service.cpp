#include "sluice/audit/service.hpp"

#include <stdexcept>

#include "sluice/audit/report.hpp"

using nlohmann::json;

namespace sluice::audit {
namespace {

std::string text_field(const json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return {};
    if (!it->is_string()) throw std::invalid_argument(std::string("\"") + key + "\" must be a string");
    return it->get<std::string>();
}

std::int64_t int_field(const json& j, const char* key, std::int64_t fallback) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return fallback;
    if (!it->is_number_integer()) throw std::invalid_argument(std::string("\"") + key + "\" must be an integer");
    return it->get<std::int64_t>();
}

json records_json(const std::vector<Record>& records) {
    json out = json::array();
    for (const auto& r : records) out.push_back(r.to_json());
    return out;
}

template <class T>
T must(Result<T> r) {
    if (!r) throw std::runtime_error(r.error().message);
    return std::move(*r);
}

/// The one bundle id a full id or a prefix names.
std::string resolve_bundle(Reader& reader, const std::string& given) {
    if (given.empty()) throw std::invalid_argument("a bundle id is required");
    for (char c : given) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            throw std::invalid_argument("\"" + given + "\" is not a bundle id (lowercase hex)");
        }
    }
    if (given.size() == 64) return given;
    if (given.size() < 6 || given.size() > 64) throw std::invalid_argument("a bundle prefix needs 6 to 64 hex digits");
    auto found = must(reader.bundles_with_prefix(given, 2));
    if (found.size() > 1) {
        throw std::invalid_argument("\"" + given + "\" names more than one bundle (" + found[0].substr(0, 12) + "…, " +
                                    found[1].substr(0, 12) + "…): give more digits");
    }
    if (found.empty()) throw std::invalid_argument("no audit event names a bundle " + given + "…");
    return found.front();
}

}  // namespace

json serve(Reader& reader, const json& request) {
    if (!request.is_object()) throw std::invalid_argument("an audit request must be a JSON object");
    const std::string op = text_field(request, "op");
    if (op == "query") {
        Query q;
        if (auto f = request.find("filter"); f != request.end() && !f->is_null()) {
            if (!f->is_object()) throw std::invalid_argument("\"filter\" must be an object");
            q.bundle = text_field(*f, "bundle");
            q.channel = text_field(*f, "channel");
            q.actor = text_field(*f, "actor");
            q.event = text_field(*f, "event");
            q.outcome = text_field(*f, "outcome");
            q.since = text_field(*f, "since");
            q.until = text_field(*f, "until");
        }
        q.after_seq = int_field(request, "after_seq", 0);
        q.limit = int_field(request, "limit", 1000);
        if (auto u = request.find("upstream"); u != request.end() && u->is_boolean()) q.upstream = u->get<bool>();
        std::int64_t cursor = 0;
        auto rows = reader.query(q, &cursor);
        if (!rows) throw std::invalid_argument(rows.error().message);
        json next = static_cast<std::int64_t>(rows->size()) == q.limit ? json(cursor) : json(nullptr);
        return {{"records", records_json(*rows)}, {"next_after_seq", next}};
    }
    if (op == "trace" || op == "report") {
        std::string bundle = resolve_bundle(reader, text_field(request, "bundle"));
        auto rows = must(reader.trace(bundle));
        json out{{"bundle", bundle}, {"records", records_json(rows)}};
        if (op == "report") {
            // The channel's releases and rollbacks give the rollback answer its
            // context (a rollback names the bundle made current, not this one).
            std::vector<Record> with_context = rows;
            std::string channel;
            for (const auto& r : rows) {
                if (!r.channel.empty()) channel = r.channel;
            }
            if (!channel.empty()) {
                for (const char* event : {"bundle_released", "channel_rolled_back"}) {
                    Query q;
                    q.channel = channel;
                    q.event = event;
                    q.limit = 1000;
                    for (auto& r : must(reader.query(q))) {
                        if (r.bundle != bundle) with_context.push_back(std::move(r));
                    }
                }
            }
            out["report"] = build_report(bundle, with_context);
        }
        return out;
    }
    if (op == "gaps") {
        auto gaps = reader.gaps();
        if (!gaps) throw std::invalid_argument(gaps.error().message);
        return {{"gaps", *gaps}};
    }
    if (op == "verify") {
        std::string pem = text_field(request, "key");
        std::optional<bundle::Key> key;
        if (!pem.empty()) {
            auto k = bundle::parse_public_key_pem(pem);
            if (!k) throw std::invalid_argument("the key given is not an ECDSA P-256 public key: " + k.error().message);
            key.emplace(std::move(*k));
        }
        auto report = must(reader.verify(key ? &*key : nullptr));
        return {{"verify", report.to_json()}};
    }
    if (op == "info") {
        auto cps = must(reader.checkpoints());
        return {{"side", reader.side()}, {"host", reader.host()}, {"head_seq", must(reader.head_seq())},
                {"checkpoints", cps.size()}};
    }
    if (op.empty()) throw std::invalid_argument("an audit request needs \"op\"");
    throw std::invalid_argument("unknown audit operation \"" + op + "\" (query, trace, report, gaps, verify, info)");
}

}  // namespace sluice::audit
