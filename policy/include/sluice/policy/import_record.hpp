#pragma once
// One bundle's import, from quarantine to its end, as persisted in
// <state_dir>/imports/<bundle-id>.json (written beside, fsynced, renamed).
//
//   quarantined ─► scanning ─► pending_approval ─► approved ─► released
//        │             │              │                │
//        │             ├─► held ──────┤ (rescan)       └─► (release failed: stays approved, retried)
//        ▼             ▼              ▼
//     rejected      rejected       rejected
//   failed: quarantine could not be written (disk full, I/O); retried.
//
// The approval state machine (approve/reject) is pure: it takes the actor and
// the time, and either changes the record or says exactly why it cannot.

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/bundle/release.hpp"
#include "sluice/core/result.hpp"
#include "sluice/policy/rules.hpp"
#include "sluice/policy/scanner.hpp"
#include "sluice/policy/tree_diff.hpp"

namespace sluice::policy {

enum class ImportState { failed, quarantined, scanning, held, pending_approval, approved, released, rejected };
[[nodiscard]] std::string_view to_string(ImportState s);
[[nodiscard]] std::optional<ImportState> import_state_from(std::string_view text);
/// released and rejected are ends; everything else still needs work or a person.
[[nodiscard]] bool is_final(ImportState s);

/// Who did something: a Unix user from SO_PEERCRED, or the daemon itself.
struct Actor {
    std::string user = "system";
    std::int64_t uid = -1;  ///< -1 for "system"
    [[nodiscard]] static Actor system() { return {}; }
};

struct Decision {
    std::string user;
    std::int64_t uid = -1;
    std::string at;      ///< RFC 3339
    std::string reason;
};

struct HookRun {
    std::string name;
    bool ok = false;
    std::string result;  ///< CommandResult::describe()
    std::string output;
    std::string at;
};

struct Transition {
    std::string from, to, at, actor, note;
};

struct ImportRecord {
    std::string bundle_id;
    std::string channel;
    std::string version;
    std::optional<bundle::Release> release;
    ImportState state = ImportState::quarantined;
    std::string state_reason;  ///< why it is rejected, held or failed; empty otherwise
    std::string received_at;
    std::uint64_t payload_bytes = 0;
    std::uint64_t payload_files = 0;
    std::vector<std::string> signers;
    std::vector<RuleResult> rules;
    std::vector<ScanResult> scans;
    std::optional<std::string> diff_against;  ///< the channel's current version at evaluation
    std::optional<TreeDiff> diff;
    std::string approval_mode;      ///< "auto", "manual", "two-person"
    unsigned approvals_required = 0;
    std::vector<Decision> approvals;
    std::optional<Decision> rejection;
    std::optional<std::string> released_at;
    std::optional<std::string> release_path;
    std::vector<HookRun> hooks;
    std::vector<Transition> history;
    unsigned attempts = 0;          ///< quarantine or release attempts that failed

    /// Moves to `to`, recording who, when and why in history.
    void transition(ImportState to, const Actor& actor, const std::string& at, std::string note = {});
};

[[nodiscard]] nlohmann::json to_json(const ImportRecord& r);
/// Reads a record back; error names the field at fault (a damaged state file).
[[nodiscard]] Result<ImportRecord> record_from_json(const nlohmann::json& j);

/// An officer's approval. Error: not pending ("… is released"), the same user
/// (uid) approved already, an empty reason. Returns true when this approval
/// completes the required number (the record is then `approved`).
[[nodiscard]] Result<bool> approve(ImportRecord& r, const Actor& officer, const std::string& reason, const std::string& at);

/// An officer's rejection of a pending, held, failed or approved-but-unreleased
/// bundle. Error: any other state (released, rejected, quarantined, scanning), a blank reason.
[[nodiscard]] Result<void> reject(ImportRecord& r, const Actor& officer, const std::string& reason, const std::string& at);

}  // namespace sluice::policy
