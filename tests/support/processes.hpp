#pragma once
// Watching processes from tests (the process runner, scanners, clamd).

#include <sys/types.h>

#include <chrono>

namespace sluice::test {

/// Alive and not a zombie. A process whose parent died is reparented to
/// init, which in a container may never reap it: a zombie counts as gone.
bool alive(pid_t pid);

/// Polls alive() every 10 ms; true once the process is gone, false after `limit`.
bool gone_within(pid_t pid, std::chrono::milliseconds limit);

}  // namespace sluice::test
