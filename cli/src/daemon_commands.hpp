#pragma once
// `sluice push`, `sluice queue`, `sluice status`: requests to the daemons'
// control sockets (identity comes from the kernel, never from a flag).

#include <CLI/CLI.hpp>

namespace sluice::cli {

void add_daemon_commands(CLI::App& app, int& exit_code);

}  // namespace sluice::cli
