#pragma once
// systemd readiness protocol (sd_notify) for Type=notify units:
//
//   start-up done    -> READY=1          (after sockets are bound)
//   what it is doing -> STATUS=<text>    (shown by systemctl status)
//   alive            -> WATCHDOG=1       (every watchdog_interval()/2 when set)
//   SIGHUP           -> RELOADING=1 ... READY=1
//   SIGTERM          -> STOPPING=1
//
// Without NOTIFY_SOCKET (not started by systemd) every call is a no-op.

#include <chrono>
#include <optional>
#include <string_view>

namespace sluice::daemon {

class Notifier {
public:
    /// Each call reports whether the message was sent; false (no systemd, or
    /// the socket refused it) is never fatal for a daemon.
    bool ready();
    /// One line of free text; newlines are replaced by spaces.
    bool status(std::string_view text);
    bool reloading();
    bool stopping();
    bool watchdog();
    /// Asks systemd for `extra` more time to start or stop (EXTEND_TIMEOUT_USEC).
    bool extend_timeout(std::chrono::microseconds extra);

    /// The watchdog timeout systemd expects (WATCHDOG_USEC for this pid), or
    /// nullopt when the watchdog is off. Ping at half of it.
    [[nodiscard]] std::optional<std::chrono::microseconds> watchdog_interval() const;

private:
    bool send(std::string_view message);
};

}  // namespace sluice::daemon
