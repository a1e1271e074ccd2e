#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <deque>

#include "common.hpp"
#include "sluice/audit/hops.hpp"
#include "sluice/bundle/digest.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::audit {

// --- records -----------------------------------------------------------------

json Record::to_json() const {
    json d = json::parse(details, nullptr, false);
    if (d.is_discarded()) d = details;  // never happens for rows we wrote; shown as text if it does
    json j{{"seq", seq},         {"time", time},       {"host", host},       {"side", side},
           {"bundle", bundle},   {"channel", channel}, {"event", event},     {"actor", actor},
           {"outcome", outcome}, {"details", d},       {"prev_hash", prev_hash}, {"hash", hash}};
    if (upstream) j["upstream"] = true;
    return j;
}

Result<Record> Record::from_json(const json& j) {
    if (!j.is_object()) return fail("an audit record must be a JSON object");
    Record r;
    auto text = [&](const char* key, std::string& out) -> bool {
        auto it = j.find(key);
        if (it == j.end() || !it->is_string()) return false;
        out = it->get<std::string>();
        return true;
    };
    auto seq = j.find("seq");
    if (seq == j.end() || !seq->is_number_integer() || seq->get<std::int64_t>() < 1) {
        return fail("audit record: \"seq\" must be a positive integer");
    }
    r.seq = seq->get<std::int64_t>();
    for (auto [key, field] : {std::pair{"time", &r.time}, {"host", &r.host}, {"side", &r.side}, {"bundle", &r.bundle},
                              {"channel", &r.channel}, {"event", &r.event}, {"actor", &r.actor},
                              {"outcome", &r.outcome}, {"prev_hash", &r.prev_hash}, {"hash", &r.hash}}) {
        if (!text(key, *field)) return fail(std::string("audit record ") + std::to_string(r.seq) + ": \"" + key + "\" must be a string");
    }
    auto d = j.find("details");
    if (d == j.end() || !d->is_object()) return fail("audit record " + std::to_string(r.seq) + ": \"details\" must be an object");
    r.details = d->dump();
    if (auto u = j.find("upstream"); u != j.end() && u->is_boolean()) r.upstream = u->get<bool>();
    return r;
}

std::string canonical_bytes(const Record& r) {
    std::string out(kFormat);
    out += '\n';
    auto field = [&](std::string_view v) {
        out += std::to_string(v.size());
        out += ':';
        out += v;
        out += '\n';
    };
    field(std::to_string(r.seq));
    for (const std::string* v : {&r.time, &r.host, &r.side, &r.bundle, &r.channel, &r.event, &r.actor, &r.outcome, &r.details}) {
        field(*v);
    }
    return out;
}

std::string chain_hash(const Record& r) {
    auto prev = bundle::sha256_from_hex(r.prev_hash);
    if (!prev || !detail::is_hex64(r.prev_hash)) return {};
    bundle::Sha256 h;
    h.update(std::span<const std::byte>(reinterpret_cast<const std::byte*>(prev->data()), prev->size()));
    h.update(canonical_bytes(r));
    auto digest = h.finish();
    return bundle::to_hex(digest);
}

std::string Checkpoint::signed_text() const {
    return "sluice.audit.checkpoint/1\nhost=" + host + "\nside=" + side + "\nseq=" + std::to_string(seq) +
           "\nhash=" + hash + "\ntime=" + time + "\n";
}

json Checkpoint::to_json() const {
    return {{"id", id},     {"seq", seq},   {"hash", hash}, {"time", time}, {"host", host}, {"side", side},
            {"key_fingerprint", key_fingerprint}, {"signature", signature}};
}

// --- helpers -------------------------------------------------------------------

namespace detail {

bool is_hex64(std::string_view text) {
    if (text.size() != 64) return false;
    for (char c : text) {
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    }
    return true;
}

std::string now_rfc3339_ms() {
    auto now = std::chrono::system_clock::now();
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03dZ", static_cast<int>(ms % 1000));
    return buf;
}

std::string local_host_name() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
    return buf;
}

Record row_to_record(const sql::Statement& st, bool upstream) {
    Record r;
    r.seq = st.integer(0);
    r.time = st.text(1);
    r.host = st.text(2);
    r.side = st.text(3);
    r.bundle = st.text(4);
    r.channel = st.text(5);
    r.event = st.text(6);
    r.actor = st.text(7);
    r.outcome = st.text(8);
    r.details = st.text(9);
    r.prev_hash = st.text(10);
    r.hash = st.text(11);
    r.upstream = upstream;
    return r;
}

Result<void> create_schema(sql::Db& db) {
    static const std::string kColumns =
        "time TEXT NOT NULL, host TEXT NOT NULL, side TEXT NOT NULL, bundle TEXT NOT NULL, "
        "channel TEXT NOT NULL, event TEXT NOT NULL, actor TEXT NOT NULL, outcome TEXT NOT NULL, "
        "details TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL";
    std::string schema =
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);\n"
        "CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, " + kColumns + ");\n"
        "CREATE INDEX IF NOT EXISTS events_by_bundle ON events (bundle, seq);\n"
        "CREATE INDEX IF NOT EXISTS events_by_channel ON events (channel, seq);\n"
        "CREATE INDEX IF NOT EXISTS events_by_actor ON events (actor, seq);\n"
        "CREATE INDEX IF NOT EXISTS events_by_event ON events (event, seq);\n"
        "CREATE INDEX IF NOT EXISTS events_by_outcome ON events (outcome, seq);\n"
        "CREATE INDEX IF NOT EXISTS events_by_time ON events (time);\n"
        "CREATE TABLE IF NOT EXISTS upstream_events (id INTEGER PRIMARY KEY, received_seq INTEGER NOT NULL, "
        "seq INTEGER NOT NULL, " + kColumns + ", UNIQUE (host, seq, hash));\n"
        "CREATE INDEX IF NOT EXISTS upstream_by_bundle ON upstream_events (bundle, time);\n"
        "CREATE TABLE IF NOT EXISTS checkpoints (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL, hash TEXT NOT NULL, "
        "time TEXT NOT NULL, host TEXT NOT NULL, side TEXT NOT NULL, key_fingerprint TEXT NOT NULL, "
        "public_key TEXT NOT NULL, signature TEXT NOT NULL);\n"
        // The chain is enforced by the database too: the next row must be head + 1 and name the head's hash.
        "CREATE TRIGGER IF NOT EXISTS events_chain BEFORE INSERT ON events\n"
        "WHEN NEW.seq IS NOT (SELECT IFNULL(MAX(seq), 0) + 1 FROM events)\n"
        "  OR NEW.prev_hash IS NOT IFNULL((SELECT hash FROM events ORDER BY seq DESC LIMIT 1), '" +
        kGenesisHash + "')\n"
        "BEGIN SELECT RAISE(ABORT, 'audit log: an event must extend the chain (seq = head + 1, prev_hash = head hash)'); END;\n";
    for (const char* table : {"meta", "events", "upstream_events", "checkpoints"}) {
        for (const char* op : {"UPDATE", "DELETE"}) {
            std::string name = std::string(table) + "_no_" + (op[0] == 'U' ? "update" : "delete");
            schema += "CREATE TRIGGER IF NOT EXISTS " + name + " BEFORE " + op + " ON " + table +
                      " BEGIN SELECT RAISE(ABORT, 'audit log is append-only: " + table + " rows cannot be " +
                      (op[0] == 'U' ? "updated" : "deleted") + "'); END;\n";
        }
    }
    return db.exec(schema);
}

}  // namespace detail

// --- the writer ------------------------------------------------------------------

struct Log::State {
    fs::path path;
    LogOptions options;
    sql::Db db;
    sql::Statement insert;
    mutable std::mutex mutex;
    std::int64_t head_seq = 0;
    std::string head_hash = kGenesisHash;
    std::int64_t since_checkpoint = 0;
    std::optional<std::int64_t> last_checkpoint;
    std::deque<Record> backlog;  // seq, prev_hash and hash assigned when written
    std::string public_key_pem;
    std::string key_fingerprint;

    /// Inside a transaction: makes `r` the event after (seq, prev) — its seq,
    /// previous hash and hash — inserts it, and advances (seq, prev) to it.
    Result<void> insert_next(Record& r, std::int64_t& seq, std::string& prev) {
        r.seq = seq + 1;
        r.prev_hash = prev;
        r.hash = chain_hash(r);
        insert.reset();
        insert.bind(1, r.seq).bind(2, r.time).bind(3, r.host).bind(4, r.side).bind(5, r.bundle).bind(6, r.channel)
            .bind(7, r.event).bind(8, r.actor).bind(9, r.outcome).bind(10, r.details).bind(11, r.prev_hash).bind(12, r.hash);
        auto ok = insert.run();
        insert.reset();
        if (!ok) return ok;
        seq = r.seq;
        prev = r.hash;
        return {};
    }

    /// Writes `backlog` in one transaction; on failure nothing is written and the backlog stays.
    Result<std::vector<Record>> write_backlog() {
        if (backlog.empty()) return std::vector<Record>{};
        if (auto ok = db.exec("BEGIN IMMEDIATE"); !ok) return fail("audit log: " + ok.error().message);
        std::vector<Record> written;
        written.reserve(backlog.size());
        std::int64_t seq = head_seq;
        std::string prev = head_hash;
        for (auto r : backlog) {
            if (auto ok = insert_next(r, seq, prev); !ok) {
                (void)db.exec("ROLLBACK");
                return fail("audit log " + path.string() + ": " + ok.error().message);
            }
            written.push_back(std::move(r));
        }
        if (auto ok = db.exec("COMMIT"); !ok) {
            (void)db.exec("ROLLBACK");
            return fail("audit log: " + ok.error().message);
        }
        head_seq = seq;
        head_hash = prev;
        since_checkpoint += static_cast<std::int64_t>(written.size());
        backlog.clear();
        return written;
    }

    Record pending(Event ev) const {
        Record r;
        r.time = detail::now_rfc3339_ms();
        r.host = options.host;
        r.side = options.side;
        r.bundle = std::move(ev.bundle);
        r.channel = std::move(ev.channel);
        r.event = std::move(ev.event);
        r.actor = ev.actor.empty() ? "system" : std::move(ev.actor);
        r.outcome = std::move(ev.outcome);
        if (!ev.details.is_object()) ev.details = json{{"value", std::move(ev.details)}};
        // Replace invalid UTF-8 rather than fail: an event is never dropped for its text.
        r.details = ev.details.dump(-1, ' ', false, json::error_handler_t::replace);
        return r;
    }

    Result<Checkpoint> checkpoint_locked(std::string_view why) {
        if (!options.key) return fail("audit log: no key to sign checkpoints with");
        if (auto w = write_backlog(); !w) return fail(w.error().message);
        Checkpoint c;
        c.seq = head_seq;
        c.hash = head_hash;
        c.time = detail::now_rfc3339_ms();
        c.host = options.host;
        c.side = options.side;
        c.key_fingerprint = key_fingerprint;
        c.public_key = public_key_pem;
        auto sig = bundle::sign_message(*options.key, c.signed_text());
        if (!sig) return fail("audit checkpoint: " + sig.error().message);
        c.signature = bundle::base64_encode(*sig);
        auto st = db.prepare(
            "INSERT INTO checkpoints (seq, hash, time, host, side, key_fingerprint, public_key, signature) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
        if (!st) return fail(st.error().message);
        st->bind(1, c.seq).bind(2, c.hash).bind(3, c.time).bind(4, c.host).bind(5, c.side).bind(6, c.key_fingerprint)
            .bind(7, c.public_key).bind(8, c.signature);
        if (auto ok = st->run(); !ok) return fail("audit checkpoint: " + ok.error().message);
        c.id = sqlite3_last_insert_rowid(db.get());
        since_checkpoint = 0;
        last_checkpoint = c.seq;
        if (options.on_checkpoint) options.on_checkpoint(c, why);
        return c;
    }

    void maybe_checkpoint() {
        if (options.key && options.checkpoint_every > 0 && since_checkpoint >= options.checkpoint_every) {
            (void)checkpoint_locked("events");  // retried after the next append if it failed
        }
    }
};

Log::Log(std::unique_ptr<State> state) : state_(std::move(state)) {}
Log::~Log() = default;

Result<std::unique_ptr<Log>> Log::open(const fs::path& path, LogOptions options) {
    if (options.side != "sender" && options.side != "receiver") return fail("audit log: side must be sender or receiver");
    if (options.host.empty()) options.host = detail::local_host_name();
    auto state = std::make_unique<State>();
    state->path = path;
    state->options = std::move(options);
    const bool existed = fs::exists(path);
    auto db = sql::Db::open(path, false);
    if (!db) return fail(db.error().message);
    state->db = std::move(*db);
    if (!existed) ::chmod(path.c_str(), 0640);
    auto& d = state->db;
    // WAL with a sync at every commit: an append that returned survives a power cut.
    if (auto ok = d.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"); !ok) {
        return fail(ok.error().message);
    }
    if (auto ok = detail::create_schema(d); !ok) return fail("audit log: cannot create the schema: " + ok.error().message);

    // meta: format and side are fixed at creation; a database of the other side is refused.
    auto get_meta = [&](std::string_view key) -> Result<std::string> {
        auto st = d.prepare("SELECT value FROM meta WHERE key = ?");
        if (!st) return fail(st.error().message);
        st->bind(1, key);
        auto row = st->step();
        if (!row) return fail(row.error().message);
        return *row ? st->text(0) : std::string{};
    };
    auto format = get_meta("format");
    if (!format) return fail(format.error().message);
    if (format->empty()) {
        auto st = d.prepare("INSERT INTO meta (key, value) VALUES ('format', ?), ('side', ?), ('host', ?), ('created', ?)");
        if (!st) return fail(st.error().message);
        st->bind(1, kFormat).bind(2, state->options.side).bind(3, state->options.host).bind(4, detail::now_rfc3339_ms());
        if (auto ok = st->run(); !ok) return fail("audit log: " + ok.error().message);
    } else if (*format != kFormat) {
        return fail("audit log " + path.string() + ": format " + *format + ", this build writes " + std::string(kFormat));
    } else {
        auto side = get_meta("side");
        if (!side) return fail(side.error().message);
        if (*side != state->options.side) {
            return fail("audit log " + path.string() + " belongs to the " + *side + " side, not the " + state->options.side);
        }
    }

    // The head: the last row must chain on the one before (a torn or edited tail is refused, not extended).
    auto st = d.prepare("SELECT " + std::string(detail::kEventColumns) + " FROM events ORDER BY seq DESC LIMIT 2");
    if (!st) return fail(st.error().message);
    std::vector<Record> tail;
    for (;;) {
        auto row = st->step();
        if (!row) return fail(row.error().message);
        if (!*row) break;
        tail.push_back(detail::row_to_record(*st, false));
    }
    if (!tail.empty()) {
        const auto& last = tail.front();
        if (chain_hash(last) != last.hash || (tail.size() == 2 && last.prev_hash != tail[1].hash) ||
            (tail.size() == 1 && last.prev_hash != kGenesisHash)) {
            return fail("audit log " + path.string() + ": the last event (" + std::to_string(last.seq) +
                        ") does not verify; run `sluice audit verify --db " + path.string() + "`");
        }
        state->head_seq = last.seq;
        state->head_hash = last.hash;
    }
    auto since = d.scalar("SELECT " + std::to_string(state->head_seq) + " - IFNULL(MAX(seq), 0) FROM checkpoints");
    if (since) state->since_checkpoint = *since;
    if (auto n = d.scalar("SELECT count(*) FROM checkpoints"); n && *n > 0) {
        state->last_checkpoint = state->head_seq - state->since_checkpoint;
    }

    auto ins = d.prepare("INSERT INTO events (seq, time, host, side, bundle, channel, event, actor, outcome, details, "
                         "prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!ins) return fail(ins.error().message);
    state->insert = std::move(*ins);
    if (state->options.key) {
        auto pem = bundle::format_public_key_pem(*state->options.key);
        if (!pem) return fail(pem.error().message);
        state->public_key_pem = *pem;
        state->key_fingerprint = state->options.key->fingerprint();
    }
    return std::unique_ptr<Log>(new Log(std::move(state)));
}

Result<Record> Log::append(Event event) {
    std::lock_guard lock(state_->mutex);
    state_->backlog.push_back(state_->pending(std::move(event)));
    auto written = state_->write_backlog();
    if (!written) return fail(written.error().message);
    Record last = written->back();
    state_->maybe_checkpoint();
    return last;
}

Result<Record> Log::append_step(Event event) {
    std::vector<Event> one;
    one.push_back(std::move(event));
    auto written = append_all(std::move(one));
    if (!written) return written.error();
    return written->back();
}

Result<std::vector<Record>> Log::append_all(std::vector<Event> events) {
    std::lock_guard lock(state_->mutex);
    const std::size_t before = state_->backlog.size();
    for (auto& e : events) state_->backlog.push_back(state_->pending(std::move(e)));
    auto written = state_->write_backlog();
    if (!written) {
        // Nothing was written (one transaction): the steps go, the observations before them stay.
        state_->backlog.resize(before);
        return fail(written.error().message);
    }
    std::vector<Record> mine(written->begin() + static_cast<std::ptrdiff_t>(before), written->end());
    state_->maybe_checkpoint();
    return mine;
}

Result<void> Log::flush() {
    std::lock_guard lock(state_->mutex);
    auto written = state_->write_backlog();
    if (!written) return fail(written.error().message);
    return {};
}

std::size_t Log::backlog() const {
    std::lock_guard lock(state_->mutex);
    return state_->backlog.size();
}

Result<Checkpoint> Log::checkpoint(std::string_view why) {
    std::lock_guard lock(state_->mutex);
    return state_->checkpoint_locked(why);
}

std::int64_t Log::head_seq() const {
    std::lock_guard lock(state_->mutex);
    return state_->head_seq;
}

std::optional<std::int64_t> Log::last_checkpoint_seq() const {
    std::lock_guard lock(state_->mutex);
    return state_->last_checkpoint;
}

const fs::path& Log::path() const { return state_->path; }

Result<std::vector<Record>> Log::bundle_events(std::string_view bundle, std::int64_t limit) {
    std::lock_guard lock(state_->mutex);
    auto st = state_->db.prepare("SELECT " + std::string(detail::kEventColumns) +
                                 " FROM events WHERE bundle = ? ORDER BY seq LIMIT ?");
    if (!st) return fail(st.error().message);
    st->bind(1, bundle).bind(2, limit);
    std::vector<Record> out;
    for (;;) {
        auto row = st->step();
        if (!row) return fail(row.error().message);
        if (!*row) break;
        out.push_back(detail::row_to_record(*st, false));
    }
    return out;
}

Result<std::string> Log::hop_record(std::string_view bundle) {
    if (!state_->options.key) return fail("audit log: no key to sign hop records with");
    auto events = bundle_events(bundle, static_cast<std::int64_t>(kMaxHopEvents));
    if (!events) return fail(events.error().message);
    HopRecord hops;
    hops.host = state_->options.host;
    hops.bundle = std::string(bundle);
    hops.events = std::move(*events);
    return encode_hop_record(std::move(hops), *state_->options.key);
}

Result<Record> Log::record_upstream(const HopRecord& hops, std::string_view channel, std::string_view carrier) {
    std::lock_guard lock(state_->mutex);
    auto& s = *state_;
    // Whatever is pending goes first, in the same transaction as the upstream rows and their summary event.
    if (auto w = s.write_backlog(); !w) return fail(w.error().message);
    if (auto ok = s.db.exec("BEGIN IMMEDIATE"); !ok) return fail("audit log: " + ok.error().message);
    auto abort = [&](const std::string& why) -> Result<Record> {
        (void)s.db.exec("ROLLBACK");
        return fail("audit log " + s.path.string() + ": " + why);
    };
    auto st = s.db.prepare("INSERT OR IGNORE INTO upstream_events (received_seq, seq, time, host, side, bundle, channel, "
                           "event, actor, outcome, details, prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!st) return abort(st.error().message);
    json hashes = json::array();
    std::size_t fresh = 0;
    for (const auto& r : hops.events) {
        st->reset();
        st->bind(1, s.head_seq + 1).bind(2, r.seq).bind(3, r.time).bind(4, r.host).bind(5, r.side).bind(6, r.bundle)
            .bind(7, r.channel).bind(8, r.event).bind(9, r.actor).bind(10, r.outcome).bind(11, r.details)
            .bind(12, r.prev_hash).bind(13, r.hash);
        if (auto ok = st->run(); !ok) return abort(ok.error().message);
        if (sqlite3_changes(s.db.get()) > 0) ++fresh;
        hashes.push_back(json::array({r.seq, r.hash}));
    }
    Event ev;
    ev.event = "upstream_events_recorded";
    ev.bundle = hops.bundle;
    ev.channel = std::string(channel);
    ev.details = {{"host", hops.host}, {"count", hops.events.size()}, {"new", fresh},
                  {"signed_by", hops.key_fingerprint}, {"carrier", carrier}, {"events", hashes}};
    Record r = s.pending(std::move(ev));
    std::int64_t seq = s.head_seq;
    std::string prev = s.head_hash;
    if (auto ok = s.insert_next(r, seq, prev); !ok) return abort(ok.error().message);
    if (auto c = s.db.exec("COMMIT"); !c) return abort(c.error().message);
    s.head_seq = seq;
    s.head_hash = prev;
    ++s.since_checkpoint;
    s.maybe_checkpoint();
    return r;
}

}  // namespace sluice::audit
