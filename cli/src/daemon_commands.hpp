#pragma once
// `sluice push`, `sluice queue`, `sluice status`, `sluice train`: requests to the daemons'
// control sockets (identity comes from the kernel, never from a flag).

#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace sluice::cli {

void add_daemon_commands(CLI::App& app, int& exit_code);
/// `sluice train CHANNEL --from DIR` (train_command.cpp).
void add_train_command(CLI::App& app, int& exit_code);

/// $env when set and not empty, else `fallback`.
[[nodiscard]] std::string default_socket(const char* env, const char* fallback);

/// Sends `request`; prints the error (setting exit_code) and returns nullopt
/// when the daemon refused or is unreachable.
[[nodiscard]] std::optional<nlohmann::json> call(const std::string& socket, const nlohmann::json& request, int& exit_code);

}  // namespace sluice::cli
