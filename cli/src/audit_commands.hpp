#pragma once
// `sluice audit query|trace|report|gaps|export|verify`: the audit log of a
// daemon (its control socket, auditor role) or of a database file (`--db FILE`:
// offline, e.g. on a copy). Both answer the requests of sluice/audit/service.hpp.

#include <CLI/CLI.hpp>

namespace sluice::cli {

void add_audit_commands(CLI::App& app, int& exit_code);

}  // namespace sluice::cli
