#include "sluice/daemon/notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <string>

namespace sluice::daemon {

bool Notifier::send(std::string_view message) {
    const std::string text(message);
    // unset_environment = 0: a reload or a helper process may notify again.
    return ::sd_notify(0, text.c_str()) > 0;
}

bool Notifier::ready() { return send("READY=1"); }

bool Notifier::status(std::string_view text) {
    std::string line = "STATUS=";
    for (char c : text) line += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
    return send(line);
}

bool Notifier::reloading() {
    // systemd >= 253 (Type=notify-reload) wants the monotonic time alongside.
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    const auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ULL +
                      static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    return send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool Notifier::stopping() { return send("STOPPING=1"); }

bool Notifier::watchdog() { return send("WATCHDOG=1"); }

bool Notifier::extend_timeout(std::chrono::microseconds extra) {
    return send("EXTEND_TIMEOUT_USEC=" + std::to_string(extra.count()));
}

std::optional<std::chrono::microseconds> Notifier::watchdog_interval() const {
    std::uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
    return std::chrono::microseconds(static_cast<std::chrono::microseconds::rep>(usec));
}

}  // namespace sluice::daemon
