#pragma once
// The audit log: an append-only, hash-chained SQLite table of events, one per
// side (sender, receiver), with signed checkpoints of the chain head.
//
//   append(Event) ─► seq = last + 1, time, host, side
//                    hash = SHA-256(prev_hash ‖ canonical(record))   (canonical_bytes below)
//                    INSERT … COMMIT  (WAL, synchronous=FULL: durable when append returns)
//   checkpoint()  ─► (seq, hash) of the head, signed with the host's key (ECDSA P-256)
//
//   tables   events            this side's chain               UPDATE/DELETE refused by triggers
//            upstream_events   the sender's events for bundles that arrived (receiver)
//            checkpoints       signed chain heads
//            meta              format, side, host
//
// An event is never dropped: when a write fails, append() keeps it (and every
// later one) in memory, in order, and returns the error; the next append or
// flush() writes the backlog first. Callers that are about to *do* something
// treat an error as "do not proceed"; callers that only observe may ignore it.
// See docs/audit.md.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/bundle/signing.hpp"
#include "sluice/core/result.hpp"

namespace sluice::audit {

inline constexpr std::string_view kFormat = "sluice.audit/1";

/// What a caller records. Fields are free text; `bundle` is a 64-hex bundle id or empty.
struct Event {
    std::string event;               ///< stable name: "bundle_submitted", "bundle_released", …
    std::string bundle;
    std::string channel;
    std::string actor = "system";    ///< Unix user (SO_PEERCRED) or "system"
    std::string outcome = "ok";      ///< ok, error, refused, rejected, approved, pass, fail, …
    nlohmann::json details = nlohmann::json::object();  ///< must be an object
};

/// A stored event.
struct Record {
    std::int64_t seq = 0;
    std::string time;       ///< RFC 3339 UTC with milliseconds: 2026-11-29T21:55:01.123Z
    std::string host;
    std::string side;       ///< "sender" or "receiver"
    std::string bundle;
    std::string channel;
    std::string event;
    std::string actor;
    std::string outcome;
    std::string details;    ///< JSON object text exactly as hashed
    std::string prev_hash;  ///< 64 hex; 64 zeros for seq 1
    std::string hash;       ///< 64 hex
    bool upstream = false;  ///< from upstream_events: the sender's record, carried with a bundle

    [[nodiscard]] nlohmann::json to_json() const;
    /// Parses and checks the field types (not the hash); for hop records and control responses.
    [[nodiscard]] static Result<Record> from_json(const nlohmann::json& j);
};

/// The bytes hashed after the previous hash: "sluice.audit/1\n" then each field
/// (seq, time, host, side, bundle, channel, event, actor, outcome, details) as
/// `<decimal length>:<bytes>\n`.
[[nodiscard]] std::string canonical_bytes(const Record& r);
/// Lowercase hex SHA-256(raw prev_hash ‖ canonical_bytes(r)); empty if prev_hash is not 64 hex.
[[nodiscard]] std::string chain_hash(const Record& r);

inline const std::string kGenesisHash(64, '0');

struct Checkpoint {
    std::int64_t id = 0;
    std::int64_t seq = 0;        ///< last event covered (0: empty log)
    std::string hash;            ///< that event's hash (genesis for 0)
    std::string time;
    std::string host;
    std::string side;
    std::string key_fingerprint; ///< SHA-256 of the signer's public key (DER)
    std::string public_key;      ///< PEM
    std::string signature;       ///< base64 DER ECDSA over signed_text()

    [[nodiscard]] std::string signed_text() const;
    [[nodiscard]] nlohmann::json to_json() const;
};

struct LogOptions {
    std::string side;            ///< "sender" or "receiver"
    std::string host;            ///< recorded in every event; default: gethostname()
    std::shared_ptr<const bundle::Key> key;  ///< signs checkpoints; none: checkpoints refused
    std::int64_t checkpoint_every = 1000;    ///< events between automatic checkpoints (0: never)
    /// Told of every checkpoint written, automatic ones too, with why it was
    /// taken (the daemon logs it: an anchor kept outside the database).
    std::function<void(const Checkpoint&, std::string_view why)> on_checkpoint;
};

/// The writer: one per database file and process. Thread-safe.
class Log {
public:
    /// Opens or creates the database (parent directory must exist), mode 0640.
    /// Refuses a database of another side or format, or whose last row does not chain.
    [[nodiscard]] static Result<std::unique_ptr<Log>> open(const std::filesystem::path& db, LogOptions options);
    ~Log();
    Log(const Log&) = delete;
    Log& operator=(const Log&) = delete;

    /// An observation: writes the backlog, then this event, durably. On
    /// failure the event is kept in the backlog (in order, written by the next
    /// append, step or flush) and the error returned.
    Result<Record> append(Event event);
    /// A step about to be taken: written durably (after the backlog) or not at
    /// all. On failure the event is dropped, the error returned, and the
    /// caller does not take the step (so the log never shows a step that was
    /// refused, and a retry is recorded once).
    Result<Record> append_step(Event event);
    /// Steps in one transaction: all written, or none (dropped, as append_step).
    Result<std::vector<Record>> append_all(std::vector<Event> events);
    /// Writes the backlog; ok when it is empty.
    Result<void> flush();
    /// Events waiting to be written.
    [[nodiscard]] std::size_t backlog() const;

    /// Signs and stores a checkpoint of the head (after flushing).
    Result<Checkpoint> checkpoint(std::string_view why = "requested");

    /// Records a sender's hop record that arrived with a bundle (receiver
    /// side, see hops.hpp): its events go to upstream_events (those already
    /// held, same host and seq, are skipped) and, in the same transaction, an
    /// `upstream_events_recorded` event with their hashes joins this chain, so
    /// a removed or altered upstream row is detected by verify().
    Result<Record> record_upstream(const struct HopRecord& hops, std::string_view channel, std::string_view carrier);

    /// This side's first `limit` events of one bundle, in order (for the hop record).
    Result<std::vector<Record>> bundle_events(std::string_view bundle, std::int64_t limit = 100000);
    /// A signed hop record of this bundle's events (hops.hpp); fails without a key.
    Result<std::string> hop_record(std::string_view bundle);

    [[nodiscard]] std::int64_t head_seq() const;
    /// The sequence the newest checkpoint signed; nullopt when there is none.
    [[nodiscard]] std::optional<std::int64_t> last_checkpoint_seq() const;
    [[nodiscard]] const std::filesystem::path& path() const;

    struct State;

private:
    explicit Log(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

/// Filters of `sluice audit query`; empty fields match everything.
struct Query {
    std::string bundle;   ///< exact id, or a prefix of at least 6 hex digits
    std::string channel;
    std::string actor;
    std::string event;
    std::string outcome;
    std::string since;    ///< RFC 3339 or YYYY-MM-DD (inclusive)
    std::string until;    ///< RFC 3339 or YYYY-MM-DD (exclusive)
    std::int64_t after_seq = 0;   ///< paging: only seq > after_seq
    std::int64_t limit = 1000;    ///< at most this many (1..100000)
    /// Query upstream_events (the sender's records) instead: after_seq then pages by its row id.
    bool upstream = false;
};

/// Normalises a --since/--until value to the stored form; fails with a message naming the value.
[[nodiscard]] Result<std::string> parse_time_bound(std::string_view text);

struct VerifyReport {
    bool ok = true;
    std::int64_t events = 0;             ///< rows in events
    std::int64_t head_seq = 0;
    std::int64_t checkpoints = 0;
    std::int64_t last_checkpoint_seq = 0;
    std::int64_t unsealed = 0;           ///< events after the last checkpoint (written since; not yet signed)
    std::int64_t upstream_events = 0;
    std::optional<std::int64_t> first_bad_seq;
    std::string problem;                 ///< what is wrong, naming the sequence or checkpoint
    std::string key_fingerprint;         ///< the checkpoints' signer
    bool key_pinned = false;             ///< checked against a key the caller gave
    std::vector<std::string> warnings;

    [[nodiscard]] nlohmann::json to_json() const;
};

/// Read-only access for queries and verification; works on a copy of the
/// database, offline. Thread-compatible (one per thread).
class Reader {
public:
    [[nodiscard]] static Result<std::unique_ptr<Reader>> open(const std::filesystem::path& db);
    ~Reader();
    Reader(const Reader&) = delete;
    Reader& operator=(const Reader&) = delete;

    /// Matching events in order; `cursor` gets the paging position of the last one (for after_seq).
    [[nodiscard]] Result<std::vector<Record>> query(const Query& q, std::int64_t* cursor = nullptr);
    /// Up to `limit` distinct bundle ids starting with `prefix`, from both tables, sorted.
    [[nodiscard]] Result<std::vector<std::string>> bundles_with_prefix(std::string_view prefix, std::int64_t limit);
    /// Every event of one bundle, both sides (upstream first by time, then local), in order.
    [[nodiscard]] Result<std::vector<Record>> trace(std::string_view bundle);
    [[nodiscard]] Result<std::vector<Checkpoint>> checkpoints();
    /// Recomputes the chain, the checkpoints' signatures (against `pinned` when
    /// given) and the upstream events' hashes.
    [[nodiscard]] Result<VerifyReport> verify(const bundle::Key* pinned = nullptr);
    /// Transfers the sender announced that this receiver never completed (see service.hpp).
    [[nodiscard]] Result<nlohmann::json> gaps();
    /// The last event's sequence number (0 when empty).
    [[nodiscard]] Result<std::int64_t> head_seq();
    [[nodiscard]] std::string side();
    [[nodiscard]] std::string host();

    struct State;

private:
    explicit Reader(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
};

}  // namespace sluice::audit
