#pragma once
// Private to audit/: the schema, row <-> Record, time and key helpers.

#include <string>
#include <string_view>

#include "sluice/audit/log.hpp"
#include "sqlite.hpp"

namespace sluice::audit::detail {

/// Creates the tables, indexes and append-only triggers if missing.
Result<void> create_schema(sql::Db& db);

/// The columns read by row_to_record, in order.
inline constexpr std::string_view kEventColumns =
    "seq, time, host, side, bundle, channel, event, actor, outcome, details, prev_hash, hash";
Record row_to_record(const sql::Statement& st, bool upstream);

/// Now, RFC 3339 UTC with milliseconds.
std::string now_rfc3339_ms();
/// gethostname(), or "localhost".
std::string local_host_name();
/// True when `text` is exactly 64 lowercase hex digits.
bool is_hex64(std::string_view text);

}  // namespace sluice::audit::detail
