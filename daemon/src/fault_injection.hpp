#pragma once
// Fault injection for the system tests (tests/system/notify_daemons.sh),
// compiled into the real daemons and armed only from their environment:
//
//   SLUICE_FAULT_STALL_AFTER=<seconds>   ("3", "2.5"; 0 to 86400)
//       that long after start, the loop whose liveness gates the systemd
//       watchdog blocks for good at its stall_point(): the sender's send
//       thread, the receiver's io-thread tick. It sleeps (no spinning), holds
//       no lock and dies with the process (SIGKILL).
//
// Only run_daemon() arms it, so a service built in a unit test never stalls.
// Unarmed, stall_point() is one atomic load.

#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>

#include "sluice/daemon/log.hpp"

namespace sluice::daemon::fault {

inline constexpr std::string_view kStallAfter = "SLUICE_FAULT_STALL_AFTER";

/// steady_clock time (ns since its epoch) from which stall_point() blocks; 0: never.
inline std::atomic<std::int64_t> stall_at_ns{0};

/// Reads SLUICE_FAULT_STALL_AFTER at start-up and logs fault_injection_armed
/// when set. Returns a message naming the variable for a bad value, else "".
inline std::string arm_from_environment() {
    const char* value = std::getenv(std::string(kStallAfter).c_str());
    if (value == nullptr) return {};
    const std::string_view text(value);
    double seconds = -1;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), seconds, std::chars_format::fixed);
    if (ec != std::errc{} || end != text.data() + text.size() || !(seconds >= 0 && seconds <= 86400)) {
        return std::string(kStallAfter) + "=\"" + std::string(text) +
               "\": not a number of seconds from 0 to 86400 (it is for tests only: unset it)";
    }
    const auto at = std::chrono::steady_clock::now() +
                    std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    stall_at_ns = at.time_since_epoch().count();
    log_warning("fault_injection_armed", {{"variable", kStallAfter}, {"fault", "stall"}, {"after_seconds", seconds}});
    return {};
}

/// Blocks the calling thread for good once the armed time has come.
inline void stall_point() {
    const std::int64_t at = stall_at_ns.load(std::memory_order_relaxed);
    if (at == 0 || std::chrono::steady_clock::now().time_since_epoch().count() < at) return;
    log_warning("fault_injected", {{"fault", "stall"}, {"variable", kStallAfter}});
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
}

}  // namespace sluice::daemon::fault
