#pragma once
// `sluice media write|import|status|show`: removable media. write goes to the
// sender daemon (verified and recorded like a push), import and status to the
// receiver daemon; show reads a medium locally and changes nothing.

#include <CLI/CLI.hpp>

namespace sluice::cli {

void add_media_commands(CLI::App& app, int& exit_code);

}  // namespace sluice::cli
