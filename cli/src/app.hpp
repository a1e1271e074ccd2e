#pragma once
// The `sluice` command tree. Exit codes: 0 success, 1 the operation was
// refused or failed (the message says why), 2 the command line was wrong.

namespace sluice::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

int run(int argc, char** argv);

}  // namespace sluice::cli
