#pragma once
// The requests `sluice audit` makes, answered the same way by a daemon (over
// its control socket, auditor role) and by the command line on a database
// file (`--db FILE`, offline, e.g. on a copy). Every answer is JSON:
//
//   {"op":"query", "filter":{"bundle","channel","actor","event","outcome","since","until"},
//    "after_seq":N, "limit":N, "upstream":bool}      -> {"records":[Record…], "next_after_seq":N|null}
//   {"op":"trace", "bundle":ID}                      -> {"bundle":ID, "records":[Record…]}  both sides, in order
//   {"op":"report", "bundle":ID}                     -> {"bundle":ID, "records":[…], "report":{…}} (report.hpp)
//   {"op":"gaps"}                                    -> {"gaps":[{bundle, channel, version, status, announced_by,
//                                                        first_seen, last_event, last_event_time, detail}…]}
//                                                       status: never_seen | in_progress | incomplete | refused
//   {"op":"verify", "key":PEM?}                      -> {"verify":VerifyReport}
//   {"op":"info"}                                    -> {"side","host","head_seq","checkpoints"}
//
// A bundle given as a prefix (≥ 6 hex digits) must name exactly one bundle.
// Bad requests throw std::invalid_argument with a message for the user.

#include <nlohmann/json.hpp>

#include "sluice/audit/log.hpp"

namespace sluice::audit {

/// Answers one request (see above) from `reader`. Throws std::invalid_argument
/// on a bad request and std::runtime_error when the database cannot be read.
[[nodiscard]] nlohmann::json serve(Reader& reader, const nlohmann::json& request);

}  // namespace sluice::audit
