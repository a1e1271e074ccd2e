#pragma once
// The sender daemon's service: a persistent queue of verified bundles sent
// across the diode in carousel passes.
//
//   sluice push ──control socket──┐
//   spool dir (files renamed in) ─┴─► intake thread: copy to outbox (SHA-256),
//                                     verify signatures ─► queue/<job>.json
//   send thread: pick (high before normal, then carousel order) ─► Encoder ─►
//                UdpSender (paced, batched) + a heartbeat every interval
//   io thread:   control requests, spool scan, metrics, sd_notify STATUS/WATCHDOG
//
// A pass that is interrupted (SIGTERM) is sent again from the start after a
// restart; a finished pass moves the job to the back of its priority class.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "sluice/daemon/config.hpp"

namespace sluice::daemon {

class SenderService {
public:
    /// Opens sockets, the queue and the control socket. Throws std::runtime_error
    /// (or ConfigError) on start-up failures, naming what failed.
    SenderService(boost::asio::io_context& io, SenderConfig config);
    ~SenderService();
    SenderService(const SenderService&) = delete;
    SenderService& operator=(const SenderService&) = delete;

    /// Stops intake and sending (the current batch finishes); returns when the send thread has exited.
    void stop();
    /// Re-reads the configuration file: rate, passes, trusted keys, roles and
    /// metrics take effect; other changes are reported as needing a restart.
    void reload();
    /// Whether the send thread made progress within `within` (for the watchdog).
    [[nodiscard]] bool healthy(std::chrono::milliseconds within) const;
    /// What `sluice status` shows.
    [[nodiscard]] nlohmann::json status() const;
    /// One line for systemd's STATUS=.
    [[nodiscard]] std::string status_line() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::daemon
