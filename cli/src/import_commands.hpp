#pragma once
// What security officers use every day, against the receiver daemon:
// `sluice pending`, `show`, `approve`, `reject`, `rescan`, `releases`,
// `rollback`; and offline, `sluice policy check FILE` and `sluice policy explain BUNDLE`.

#include <CLI/CLI.hpp>

namespace sluice::cli {

void add_import_commands(CLI::App& app, int& exit_code);

}  // namespace sluice::cli
