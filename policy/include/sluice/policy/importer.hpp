#pragma once
// The receiver's import pipeline, from a verified archive to a release:
//
//   incoming/<id>.tar ─admit─► quarantine/<id>/ (read-only) ─► facts ─► rules ─► scanners
//                                                                           │
//            pending_approval ◄── manual / two-person / rollback ◄──────────┤ all passed
//                │ approve × N                                              │ auto
//                ▼                                                          ▼
//            approved ─release─► <release_dir>/<channel>/<version>/, current -> <version>,
//                                 prune beyond keep_releases, post-release hooks
//
// Records persist in <state_dir>/imports/<id>.json and channel histories in
// <state_dir>/channels/<channel>.json, so pending approvals, held bundles and
// releases survive restarts. Every transition is reported to the EventSink
// (the daemon logs it; the audit log records it).
//
// Thread-safety: every public method may be called from any thread. Long work
// (unpacking, scanning, copying) runs on the caller's thread without the lock;
// a bundle being worked on is marked busy so no two threads act on it at once,
// and the switches of a channel (release, rollback, prune) are serialized while
// the copies into the release directory run outside that lock.

#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/core/result.hpp"
#include "sluice/policy/import_record.hpp"
#include "sluice/policy/policy.hpp"
#include "sluice/policy/release_store.hpp"

namespace sluice::policy {

struct ImporterPaths {
    std::filesystem::path incoming;    ///< verified archives, <id>.tar (the diode receiver's output)
    std::filesystem::path quarantine;  ///< quarantine/<id>/
    std::filesystem::path state;       ///< imports/ and channels/
    std::filesystem::path releases;    ///< <channel>/<version>/ and <channel>/current
};

/// Called for every event: a stable name ("bundle_quarantined", "scan_result",
/// "bundle_released", …) and its fields (bundle, channel, actor, outcome, …).
/// The audit log: an error means the event could not be written (it is kept
/// and written later), and the importer then does not take the step the event
/// records — a decision is not saved, a release or rollback not switched, and
/// the caller is told. Observations (a rule's result, a scan) go on regardless.
enum class EventKind {
    observation,  ///< a rule's result, a scan, a hook: kept by the log if it cannot write it yet
    step,         ///< a decision, a switch: if the log refuses it, it is not taken
};
using EventSink = std::function<Result<void>(std::string_view event, const nlohmann::json& fields, EventKind kind)>;

struct ReleaseEntry {
    std::string version;
    bool current = false;
    std::optional<std::string> bundle_id;
    std::optional<std::string> released_at;
    std::optional<std::string> released_by;  ///< the approvers, or "auto"
};

struct RollbackOutcome {
    std::string channel;
    std::string from;
    std::string to;
};

class Importer {
public:
    /// Creates the directories. Throws std::runtime_error when they cannot be made
    /// or a record cannot be read (start-up failure, named).
    Importer(ImporterPaths paths, std::shared_ptr<const Policy> policy, EventSink sink);

    /// Replaces the policy (SIGHUP). Bundles already decided keep their decision.
    void set_policy(std::shared_ptr<const Policy> policy);
    [[nodiscard]] std::shared_ptr<const Policy> policy() const;

    /// Takes one archive from incoming/ through quarantine, rules and scanners
    /// to rejected, held, pending_approval or (auto) released. A bundle id seen
    /// before is a replay: the archive is removed and the first record kept.
    /// Returns the record as it ends up; errors only for what could not even be
    /// recorded (the archive stays in incoming/ and is retried).
    Result<ImportRecord> admit(const std::filesystem::path& archive, const std::atomic<bool>& stop);

    /// Work left after a restart or a failure: archives in incoming/ without a
    /// final record, records in quarantined/scanning/failed (admit again) and
    /// approved (release again). Returns bundle ids and archive paths to redo.
    struct Backlog {
        std::vector<std::filesystem::path> to_admit;
        std::vector<std::string> to_release;
    };
    [[nodiscard]] Backlog backlog() const;

    /// Releases an approved bundle (a crash or an I/O error interrupted it).
    Result<ImportRecord> release(const std::string& bundle_id);

    /// An officer approves; when that completes the approvals, the bundle is
    /// released before this returns. Error: unknown id, not pending, same officer twice.
    Result<ImportRecord> approve(const std::string& id_or_prefix, const Actor& officer, const std::string& reason);
    Result<ImportRecord> reject(const std::string& id_or_prefix, const Actor& officer, const std::string& reason);
    /// Runs the scanners again on a held bundle (a scanner was down).
    Result<ImportRecord> rescan(const std::string& id_or_prefix, const Actor& officer, const std::atomic<bool>& stop);

    /// Records, newest first; `states` empty means all.
    [[nodiscard]] std::vector<ImportRecord> list(const std::set<ImportState>& states = {}) const;
    /// How many records are in each state (no copies).
    [[nodiscard]] std::map<ImportState, std::size_t> counts() const;
    /// A record by full id or a unique prefix of at least 6 hex digits.
    [[nodiscard]] Result<ImportRecord> find(const std::string& id_or_prefix) const;

    [[nodiscard]] Result<std::vector<ReleaseEntry>> releases(const std::string& channel) const;
    /// Switches <channel>/current to `to`, or by default to the current release's
    /// rollback_to when it is kept, else the next older kept version.
    Result<RollbackOutcome> rollback(const std::string& channel, const std::optional<std::string>& to,
                                     const Actor& officer, const std::string& reason);

    /// The channel's history, for rules (and `sluice policy explain`). The
    /// version being `installing` is left out of the kept versions (its own copy).
    [[nodiscard]] ChannelHistory history(const std::string& channel, std::string_view installing = {}) const;

    [[nodiscard]] const ImporterPaths& paths() const { return paths_; }

private:
    struct ChannelLog;
    Result<ImportRecord> evaluate(ImportRecord record, const std::atomic<bool>& stop);
    Result<ImportRecord> do_release(ImportRecord record);
    Result<void> save(const ImportRecord& r);
    Result<ImportRecord> claim(const std::string& id_or_prefix);
    /// Claims the record, runs `body` on it, releases the claim.
    Result<ImportRecord> with_claim(const std::string& id_or_prefix,
                                    const std::function<Result<ImportRecord>(ImportRecord&)>& body);
    void unclaim(const std::string& id);
    Result<std::string> resolve_locked(const std::string& id_or_prefix) const;
    /// An observation: the sink keeps what it cannot write yet, so the result is not needed.
    void emit(std::string_view event, const ImportRecord& r, nlohmann::json fields = nlohmann::json::object()) const;
    /// A step that must be in the audit log before it is taken.
    Result<void> gate(std::string_view event, const ImportRecord& r, nlohmann::json fields,
                      EventKind kind = EventKind::step) const;
    /// A decision: recorded in the audit log, then saved; neither happens if the log refuses.
    Result<void> commit(const ImportRecord& r, std::string_view event, nlohmann::json fields);
    Result<void> save_channel(const std::string& channel);
    void remove_quarantine(const std::string& id);

    ImporterPaths paths_;
    EventSink sink_;
    ReleaseStore store_;
    mutable std::mutex mutex_;  // records_, busy_, channels_, policy_
    std::shared_ptr<const Policy> policy_;
    std::map<std::string, ImportRecord> records_;
    std::set<std::string> busy_;
    struct ChannelEntry {
        std::string version, bundle_id, released_at, released_by;
    };
    struct ChannelData {
        std::optional<std::string> highest;
        std::vector<ChannelEntry> released;        // every release ever, in order
        std::vector<nlohmann::json> rollbacks;     // {from, to, at, by, reason}
    };
    std::map<std::string, ChannelData> channels_;
    /// The newest release of `version` on `channel` (the lock on mutex_ held), or nullptr.
    const ChannelEntry* released_as(const std::string& channel, std::string_view version) const;
    std::mutex& channel_lock(const std::string& channel);
    // One switch of a channel at a time (release, rollback, prune); copies run outside it.
    std::map<std::string, std::unique_ptr<std::mutex>> channel_locks_;  // guarded by mutex_
};

}  // namespace sluice::policy
