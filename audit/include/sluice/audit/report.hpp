#pragma once
// The audit report of one bundle: the four questions — what changed, why, who
// approved, how to roll back — answered from the bundle's trace on both sides,
// with the scans, rules, decisions, release, rollbacks, hooks and every hop.
//
//   trace (Record…, upstream first, then local)
//     │  sender:   bundle_submitted{release, signers} … bundle_sent
//     │  receiver: transfer_* … bundle_quarantined{release, signers} rule_result scan_result
//     │            approval_pending approval_recorded bundle_approved|bundle_rejected
//     │            bundle_released post_release_hook* channel_rolled_back
//     ▼
//   build_report ─► JSON (below) ─► write_report ─► text for a terminal
//
// Only what the log says: anything not recorded is null (an empty list for
// lists) and printed as "not recorded"; nothing is inferred beyond the events.
//
// Report keys:
//   bundle, channel, version, signed_rollback, state {name, event, time} | null,
//   events, sides, what_changed {changes, version, previous_version,
//   diff {against, added, removed, changed} | null}, why, created {by, at},
//   who_approved {upstream {approved_by, signers, receiver_signers},
//                 import {mode, approvals_required, approvals [{officer, uid, time, reason}],
//                         decision {by, time, reason, automatic} | null}},
//   how_to_roll_back {channel, to, command, released, target {status, evidence [text]},
//                     rolled_back_from [{time, actor, to, reason}]},
//   scans [{time, scanner, outcome, summary}], rules [{time, rule, outcome, detail}],
//   holds [{time, reason}], release {time, actor, version, path, previous} | null,
//   release_failures [{time, error}], rejection {time, by, reason} | null,
//   refusals [{time, side, event, error}], channel_rollbacks [{time, actor, from, to, reason}],
//   hooks [{time, hook, ok, result}], hops [{seq, time, side, host, event, actor, outcome, upstream}],
//   missing [text], warnings [text]

#include <ostream>
#include <span>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sluice/audit/log.hpp"

namespace sluice::audit {

/// The report of `bundle` (an id, or a prefix the trace's records resolve)
/// from `trace`: its records on both sides, in order. The trace may also hold
/// other bundles' `channel_rolled_back` and `bundle_released` records of the
/// same channel; they only serve to answer how to roll back (whether the
/// rollback target was released, rollbacks from or to this version) and are
/// not hops. Never throws on odd records: a malformed detail counts as not recorded.
[[nodiscard]] nlohmann::json build_report(std::string_view bundle, std::span<const Record> trace);

/// Renders a report (build_report's keys; missing keys print "not recorded")
/// for a terminal; every value goes through terminal_safe().
void write_report(std::ostream& out, const nlohmann::json& report);

}  // namespace sluice::audit
