#pragma once
// The import policy file (policy.toml), read strictly like the daemons'
// configuration: every refusal is a ConfigError `FILE:LINE: KEY: problem`.
//
//   [scanners.<name>]                 type = "clamd" | "exec", timeout, attempts,
//                                     retry_delay, on_error = "hold" | "reject"
//   [channels.<name>]                 trusted_keys, min_signers, limits, allowed_types,
//                                     forbidden_paths, required_answers, scanners,
//                                     approval = "auto" | "manual" | "two-person", approvers,
//                                     keep_releases
//   [[channels.<name>.post_release]]  command, timeout, name
//
// Every key is documented in docs/policy.md; examples/policy.toml is a commented example.

#include <filesystem>

#include "sluice/policy/policy.hpp"

namespace sluice::daemon {

/// Reads and checks a policy file, loading every channel's trusted keys.
/// Throws ConfigError, and nothing else.
[[nodiscard]] policy::Policy load_policy(const std::filesystem::path& file);

}  // namespace sluice::daemon
