#pragma once
// `sluice keygen` and `sluice bundle …`.

#include <CLI/CLI.hpp>

namespace sluice::cli {

/// Registers the commands on `app`; the one that runs stores its exit code in `exit_code`.
void add_keygen_command(CLI::App& app, int& exit_code);
void add_bundle_commands(CLI::App& app, int& exit_code);

}  // namespace sluice::cli
