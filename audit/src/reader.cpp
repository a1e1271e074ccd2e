#include <algorithm>
#include <map>
#include <set>

#include "common.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/bundle/release.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::audit {

struct Reader::State {
    fs::path path;
    sql::Db db;

    Result<std::vector<Record>> rows(sql::Statement& st, bool upstream, std::int64_t* last_id = nullptr) {
        std::vector<Record> out;
        for (;;) {
            auto row = st.step();
            if (!row) return fail(path.string() + ": " + row.error().message);
            if (!*row) break;
            out.push_back(detail::row_to_record(st, upstream));
            if (last_id != nullptr) *last_id = st.integer(12);
        }
        return out;
    }

    Result<std::string> meta(std::string_view key) {
        auto st = db.prepare("SELECT value FROM meta WHERE key = ?");
        if (!st) return fail(st.error().message);
        st->bind(1, key);
        auto row = st->step();
        if (!row) return fail(row.error().message);
        return *row ? st->text(0) : std::string{};
    }
};

Reader::Reader(std::unique_ptr<State> state) : state_(std::move(state)) {}
Reader::~Reader() = default;

Result<std::unique_ptr<Reader>> Reader::open(const fs::path& path) {
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) return fail("audit database " + path.string() + ": no such file");
    auto db = sql::Db::open(path, true);
    if (!db) return fail(db.error().message);
    auto state = std::make_unique<State>();
    state->path = path;
    state->db = std::move(*db);
    auto format = state->meta("format");
    if (!format) return fail("audit database " + path.string() + ": not a Sluice audit log (" + format.error().message + ")");
    if (*format != kFormat) {
        return fail("audit database " + path.string() + ": format \"" + *format + "\", expected " + std::string(kFormat));
    }
    return std::unique_ptr<Reader>(new Reader(std::move(state)));
}

std::string Reader::side() {
    auto s = state_->meta("side");
    return s ? *s : std::string{};
}

Result<std::int64_t> Reader::head_seq() { return state_->db.scalar("SELECT IFNULL(MAX(seq), 0) FROM events"); }

std::string Reader::host() {
    auto s = state_->meta("host");
    return s ? *s : std::string{};
}

Result<std::string> parse_time_bound(std::string_view text) {
    // A day (YYYY-MM-DD) or a full RFC 3339 time; stored times are UTC with milliseconds.
    if (text.size() == 10 && text[4] == '-' && text[7] == '-') {
        auto t = bundle::parse_rfc3339(std::string(text) + "T00:00:00Z");
        if (!t) return fail("\"" + std::string(text) + "\" is not a date (YYYY-MM-DD)");
        return bundle::format_rfc3339(*t).substr(0, 19) + ".000Z";
    }
    auto t = bundle::parse_rfc3339(text);
    if (!t) return fail("\"" + std::string(text) + "\" is not a time: use YYYY-MM-DD or RFC 3339 (2026-11-29T14:00:00Z)");
    // parse_rfc3339 applied the offset to whole seconds; the fraction (after the
    // seconds, before the offset) is independent of it: keep its milliseconds.
    std::string frac = ".000";
    if (text.size() > 19 && text[19] == '.') {
        std::string digits;
        for (std::size_t i = 20; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])) != 0; ++i) digits += text[i];
        frac = "." + (digits + "000").substr(0, 3);
    }
    return bundle::format_rfc3339(*t).substr(0, 19) + frac + "Z";
}

Result<std::vector<Record>> Reader::query(const Query& q, std::int64_t* cursor) {
    if (q.limit < 1 || q.limit > 100000) return fail("limit must be 1..100000");
    const bool up = q.upstream;
    // A bundle filter is the common question and its index answers it in order; without
    // the hint SQLite may scan the whole table in seq order for a prefix range.
    const char* hint = q.bundle.empty() ? "" : (up ? " INDEXED BY upstream_by_bundle" : " INDEXED BY events_by_bundle");
    std::string sql = "SELECT " + std::string(detail::kEventColumns) + (up ? ", id" : ", seq") + " FROM " +
                      (up ? "upstream_events" : "events") + hint + " WHERE " + (up ? "id" : "seq") + " > ?";
    std::vector<std::string> params;
    if (!q.bundle.empty()) {
        if (q.bundle.size() == 64) {
            sql += " AND bundle = ?";
            params.push_back(q.bundle);
        } else {
            if (q.bundle.size() < 6) return fail("a bundle prefix needs at least 6 hex digits");
            // A range on the index: hex ids sort below 'g'.
            sql += " AND bundle >= ? AND bundle < ?";
            params.push_back(q.bundle);
            params.push_back(q.bundle + "g");
        }
    }
    for (auto [column, value] : {std::pair{"channel", &q.channel}, {"actor", &q.actor}, {"event", &q.event},
                                 {"outcome", &q.outcome}}) {
        if (value->empty()) continue;
        sql += std::string(" AND ") + column + " = ?";
        params.push_back(*value);
    }
    for (auto [op, value] : {std::pair{">=", &q.since}, {"<", &q.until}}) {
        if (value->empty()) continue;
        auto t = parse_time_bound(*value);
        if (!t) return fail(t.error().message);
        sql += std::string(" AND time ") + op + " ?";
        params.push_back(*t);
    }
    sql += std::string(" ORDER BY ") + (up ? "id" : "seq") + " LIMIT ?";
    auto st = state_->db.prepare(sql);
    if (!st) return fail(st.error().message);
    int i = 1;
    st->bind(i++, q.after_seq);
    for (const auto& p : params) st->bind(i++, p);
    st->bind(i, q.limit);
    std::int64_t last = 0;
    auto out = state_->rows(*st, up, &last);
    if (!out) return out;
    if (cursor != nullptr) *cursor = last;
    return out;
}

Result<std::vector<std::string>> Reader::bundles_with_prefix(std::string_view prefix, std::int64_t limit) {
    // A range on the bundle indexes: hex ids sort below 'g'.
    auto st = state_->db.prepare(
        "SELECT bundle FROM events WHERE bundle >= ?1 AND bundle < ?2 UNION "
        "SELECT bundle FROM upstream_events WHERE bundle >= ?1 AND bundle < ?2 ORDER BY bundle LIMIT ?3");
    if (!st) return fail(st.error().message);
    st->bind(1, prefix).bind(2, std::string(prefix) + "g").bind(3, limit);
    std::vector<std::string> out;
    for (;;) {
        auto row = st->step();
        if (!row) return fail(state_->path.string() + ": " + row.error().message);
        if (!*row) return out;
        out.push_back(st->text(0));
    }
}

Result<std::vector<Record>> Reader::trace(std::string_view bundle) {
    std::vector<Record> all;
    for (bool up : {true, false}) {
        auto st = state_->db.prepare("SELECT " + std::string(detail::kEventColumns) + " FROM " +
                                     (up ? "upstream_events WHERE bundle = ? ORDER BY time, host, seq"
                                         : "events WHERE bundle = ? ORDER BY seq"));
        if (!st) return fail(st.error().message);
        st->bind(1, bundle);
        auto rows = state_->rows(*st, up);
        if (!rows) return rows;
        all.insert(all.end(), rows->begin(), rows->end());
    }
    // One timeline: by time (the two sides' clocks may differ a little), the sender's first on a tie.
    std::stable_sort(all.begin(), all.end(), [](const Record& a, const Record& b) {
        if (a.time != b.time) return a.time < b.time;
        return a.upstream && !b.upstream;
    });
    return all;
}

Result<std::vector<Checkpoint>> Reader::checkpoints() {
    auto st = state_->db.prepare(
        "SELECT id, seq, hash, time, host, side, key_fingerprint, public_key, signature FROM checkpoints ORDER BY id");
    if (!st) return fail(st.error().message);
    std::vector<Checkpoint> out;
    for (;;) {
        auto row = st->step();
        if (!row) return fail(row.error().message);
        if (!*row) break;
        Checkpoint c;
        c.id = st->integer(0);
        c.seq = st->integer(1);
        c.hash = st->text(2);
        c.time = st->text(3);
        c.host = st->text(4);
        c.side = st->text(5);
        c.key_fingerprint = st->text(6);
        c.public_key = st->text(7);
        c.signature = st->text(8);
        out.push_back(std::move(c));
    }
    return out;
}

json VerifyReport::to_json() const {
    json j{{"ok", ok},
           {"events", events},
           {"head_seq", head_seq},
           {"checkpoints", checkpoints},
           {"last_checkpoint_seq", last_checkpoint_seq},
           {"unsealed", unsealed},
           {"upstream_events", upstream_events},
           {"first_bad_seq", first_bad_seq ? json(*first_bad_seq) : json(nullptr)},
           {"problem", problem},
           {"key_fingerprint", key_fingerprint},
           {"key_pinned", key_pinned},
           {"warnings", warnings}};
    return j;
}

Result<VerifyReport> Reader::verify(const bundle::Key* pinned) {
    auto& db = state_->db;
    // One snapshot: the daemon may append (WAL) while this reads the tables one after the other.
    if (auto ok = db.exec("BEGIN"); !ok) return fail(ok.error().message);
    struct EndRead {
        sql::Db& db;
        ~EndRead() { (void)db.exec("COMMIT"); }
    } end_read{db};
    VerifyReport rep;
    auto bad = [&](std::int64_t seq, std::string why) {
        // The earliest problem is the one reported.
        if (!rep.ok && rep.first_bad_seq && *rep.first_bad_seq <= seq) return;
        rep.ok = false;
        rep.first_bad_seq = seq;
        rep.problem = std::move(why);
    };

    // Checkpoints first: their signatures, their order, and the (seq, hash) pairs the chain must reproduce.
    auto cps = checkpoints();
    if (!cps) return fail(cps.error().message);
    rep.checkpoints = static_cast<std::int64_t>(cps->size());
    std::string pinned_fp = pinned != nullptr ? pinned->fingerprint() : std::string{};
    rep.key_pinned = pinned != nullptr;
    std::map<std::int64_t, const Checkpoint*> signed_at;  // seq -> the first valid checkpoint of it
    std::int64_t last_good_seq = 0;  // the highest sequence a valid checkpoint vouches for, in order
    std::int64_t prev_seq = -1;
    std::optional<std::pair<std::int64_t, std::string>> checkpoint_problem;  // (first bad seq, why)
    for (const auto& c : *cps) {
        std::string who = "checkpoint " + std::to_string(c.id) + " (seq " + std::to_string(c.seq) + ")";
        std::string why;
        if (rep.key_fingerprint.empty()) rep.key_fingerprint = c.key_fingerprint;
        auto key = bundle::parse_public_key_pem(c.public_key);
        auto sig = bundle::base64_decode(c.signature);
        const bundle::Key* check = pinned;
        if (!key) {
            why = who + ": its public key is unreadable";
        } else if (pinned == nullptr && key->fingerprint() != rep.key_fingerprint) {
            why = who + ": signed with another key (" + key->fingerprint().substr(0, 16) + "…) than the first checkpoint";
        } else if (pinned != nullptr && c.key_fingerprint != pinned_fp) {
            why = who + ": not signed with the given key (signed by " + c.key_fingerprint.substr(0, 16) + "…)";
        }
        if (why.empty()) {
            if (check == nullptr) check = &*key;
            if (!sig || !bundle::verify_message(*check, c.signed_text(), *sig)) {
                why = who + ": the signature does not verify (forged or altered)";
            } else if (c.seq < prev_seq) {
                why = who + ": goes backwards (after a checkpoint of seq " + std::to_string(prev_seq) + ")";
            }
        }
        if (!why.empty()) {
            if (!checkpoint_problem) checkpoint_problem = std::pair{last_good_seq + 1, why};
            continue;
        }
        prev_seq = c.seq;
        if (!checkpoint_problem) last_good_seq = std::max(last_good_seq, c.seq);
        signed_at.emplace(c.seq, &c);
        rep.last_checkpoint_seq = std::max(rep.last_checkpoint_seq, c.seq);
    }

    // The chain, row by row.
    auto st = db.prepare("SELECT " + std::string(detail::kEventColumns) + " FROM events ORDER BY seq");
    if (!st) return fail(st.error().message);
    std::int64_t expect = 1;
    std::string prev = kGenesisHash;
    std::set<std::string> upstream_listed;  // "host/seq/hash" of every upstream row the chain says it recorded
    // A checkpoint of seq 0 vouches for the empty log.
    if (auto it = signed_at.find(0); it != signed_at.end() && it->second->hash != kGenesisHash) {
        bad(1, "checkpoint " + std::to_string(it->second->id) + " of the empty log has a wrong hash");
    }
    for (;;) {
        auto row = st->step();
        if (!row) return fail(state_->path.string() + ": " + row.error().message);
        if (!*row) break;
        Record r = detail::row_to_record(*st, false);
        ++rep.events;
        rep.head_seq = r.seq;
        if (r.seq != expect) {
            bad(expect, "event " + std::to_string(expect) + (r.seq > expect ? " is missing (deleted)" : " is out of order") +
                            ": the next row is " + std::to_string(r.seq));
        } else if (r.prev_hash != prev) {
            // Event N-1 was altered with its own hash recomputed (or N's link was): N-1 is the first suspect.
            bad(std::max<std::int64_t>(1, r.seq - 1),
                "event " + std::to_string(r.seq) + " does not follow event " + std::to_string(r.seq - 1) +
                    ": its previous hash differs (event " + std::to_string(r.seq - 1) +
                    " was altered and its hash recomputed, or event " + std::to_string(r.seq) + "'s link was)");
        } else if (chain_hash(r) != r.hash) {
            bad(r.seq, "event " + std::to_string(r.seq) + " was altered: its hash does not match its contents");
        }
        if (auto it = signed_at.find(r.seq); it != signed_at.end() && it->second->hash != r.hash) {
            std::int64_t from = 1;
            for (const auto& [s, c] : signed_at) {
                if (s < r.seq && c->hash.size() == 64) from = s + 1;
            }
            bad(from, "checkpoint " + std::to_string(it->second->id) + " signed event " + std::to_string(r.seq) +
                          " with another hash: the chain was rewritten after event " + std::to_string(from - 1));
        }
        if (r.event == "upstream_events_recorded") {
            auto d = json::parse(r.details, nullptr, false);
            if (d.is_object() && d.contains("events") && d["events"].is_array() && d.value("host", "") != "") {
                for (const auto& e : d["events"]) {
                    if (e.is_array() && e.size() == 2 && e[0].is_number_integer() && e[1].is_string()) {
                        upstream_listed.insert(d["host"].get<std::string>() + "/" + std::to_string(e[0].get<std::int64_t>()) +
                                               "/" + e[1].get<std::string>());
                    }
                }
            }
        }
        prev = r.hash;
        expect = r.seq + 1;
    }
    // Truncation: a checkpoint vouches for more events than the table holds.
    if (!signed_at.empty() && signed_at.rbegin()->first > rep.head_seq) {
        bad(rep.head_seq + 1, "the log ends at event " + std::to_string(rep.head_seq) + " but checkpoint " +
                                  std::to_string(signed_at.rbegin()->second->id) + " signed event " +
                                  std::to_string(signed_at.rbegin()->first) + ": events " +
                                  std::to_string(rep.head_seq + 1) + ".." + std::to_string(signed_at.rbegin()->first) +
                                  " were removed");
    }
    if (checkpoint_problem) bad(checkpoint_problem->first, checkpoint_problem->second);

    // The sender's events recorded here: each must recompute, and each the chain lists must be there.
    auto up = db.prepare("SELECT " + std::string(detail::kEventColumns) + " FROM upstream_events ORDER BY id");
    if (!up) return fail(up.error().message);
    std::set<std::string> present;
    for (;;) {
        auto row = up->step();
        if (!row) return fail(row.error().message);
        if (!*row) break;
        Record r = detail::row_to_record(*up, true);
        ++rep.upstream_events;
        const std::string key = r.host + "/" + std::to_string(r.seq);
        present.insert(key + "/" + r.hash);
        if (!rep.ok) continue;
        if (chain_hash(r) != r.hash) {
            rep.ok = false;
            rep.problem = "upstream event " + key + " (bundle " + r.bundle.substr(0, 12) + "…) was altered";
        } else if (!upstream_listed.contains(key + "/" + r.hash)) {
            // Every genuine upstream row is listed by the upstream_events_recorded event written with it.
            rep.ok = false;
            rep.problem = "upstream event " + key + " (bundle " + r.bundle.substr(0, 12) +
                          "…) is not listed by any upstream_events_recorded event: inserted or altered";
        }
    }
    for (const auto& key : upstream_listed) {
        if (!present.contains(key) && rep.ok) {
            rep.ok = false;
            rep.problem = "upstream event " + key.substr(0, key.rfind('/')) + " was recorded but is missing (deleted)";
        }
    }

    rep.unsealed = rep.head_seq - rep.last_checkpoint_seq;
    if (rep.checkpoints == 0 && rep.events > 0 && rep.key_pinned) {
        // A daemon signs a checkpoint when it opens its log: none at all means they were removed.
        bad(1, "no checkpoint at all: the log cannot be proven to be the host's (checkpoints removed, or not "
               "written by a Sluice daemon)");
    }
    if (rep.checkpoints == 0 && rep.events > 0) {
        rep.warnings.push_back("no checkpoint: truncation of the newest events cannot be detected");
    } else if (rep.unsealed > 0) {
        rep.warnings.push_back(std::to_string(rep.unsealed) +
                               " events after the last checkpoint are not yet signed (a checkpoint is written "
                               "periodically and at shutdown)");
    }
    if (!rep.key_pinned && rep.checkpoints > 0) {
        rep.warnings.push_back("checkpoint key not pinned: pass --key with the host's audit public key "
                               "to prove who signed (fingerprint " + rep.key_fingerprint + ")");
    }
    auto triggers = db.scalar("SELECT count(*) FROM sqlite_master WHERE type = 'trigger'");
    if (triggers && *triggers < 9) {
        rep.warnings.push_back("append-only triggers are missing: someone removed them (" + std::to_string(*triggers) +
                               " of 9 present)");
    }
    return rep;
}

Result<json> Reader::gaps() {
    if (side() != "receiver") return fail("gaps needs the receiver's audit log (this one is the " + side() + "'s)");
    struct Seen {
        std::string channel, version, first_time, last_event, last_time, detail;
        bool completed = false, refused = false, incomplete = false, started = false, sent = false, missed = false;
    };
    std::map<std::string, Seen> bundles;
    auto note = [&](const Record& r) {
        if (r.bundle.empty()) return;
        auto& s = bundles[r.bundle];
        if (s.first_time.empty() || r.time < s.first_time) s.first_time = r.time;
        if (!r.channel.empty()) s.channel = r.channel;
        auto d = json::parse(r.details, nullptr, false);
        if (d.is_object() && d.contains("version") && d["version"].is_string()) s.version = d["version"].get<std::string>();
        if (r.event == "bundle_received") s.completed = true;
        if (r.event == "bundle_refused") {
            s.refused = true;
            if (d.is_object()) s.detail = d.value("error", "");
        }
        if (r.event == "transfer_incomplete") {
            s.incomplete = true;
            if (d.is_object()) s.detail = d.value("why", "");
        }
        if (r.event == "transfer_started") s.started = true;
        if (r.event == "transfer_missed") s.missed = true;
        if (r.event == "bundle_sent" || r.event == "pass_started") s.sent = true;
        if (!r.upstream && r.time >= s.last_time) {
            s.last_time = r.time;
            s.last_event = r.event;
        }
    };
    for (bool up : {true, false}) {
        auto st = state_->db.prepare(
            "SELECT " + std::string(detail::kEventColumns) + " FROM " + (up ? "upstream_events" : "events") +
            " WHERE event IN ('bundle_sent', 'pass_started', 'transfer_started', 'transfer_incomplete', "
            "'transfer_missed', 'bundle_received', 'bundle_refused') ORDER BY time");
        if (!st) return fail(st.error().message);
        auto rows = state_->rows(*st, up);
        if (!rows) return fail(rows.error().message);
        for (const auto& r : *rows) note(r);
    }
    json out = json::array();
    for (const auto& [bundle, s] : bundles) {
        if (s.completed) continue;
        std::string status = s.refused ? "refused" : s.incomplete ? "incomplete" : s.started ? "in_progress" : "never_seen";
        out.push_back({{"bundle", bundle},
                       {"channel", s.channel},
                       {"version", s.version},
                       {"status", status},
                       {"announced_by", s.missed ? "heartbeat" : s.sent ? "sender" : "transfer"},
                       {"first_seen", s.first_time},
                       {"last_event", s.last_event.empty() ? json(nullptr) : json(s.last_event)},
                       {"last_event_time", s.last_time.empty() ? json(nullptr) : json(s.last_time)},
                       {"detail", s.detail}});
    }
    return out;
}

}  // namespace sluice::audit
