#pragma once
// The receiver daemon's service: whole, verified archives out of a one-way link.
//
//   lanes ──UdpReceiver (recvmmsg/GRO)──► Reassembler ──blocks──► FileBlockStore (state/transfers/)
//                                              │ events                │
//                                              ▼                       ▼ assembled
//                                         LinkMonitor          finalize thread: SHA-256 of the
//                                      (alarms, heartbeats)    archive, signatures (trusted keys),
//                                                              bundle id = metadata ─► incoming/<id>.tar
//                                                              refused ─► state/refused/<id>.tar + .reason
//
// Everything but finalization runs on the io_context thread; the reassembler
// is never touched from elsewhere.

#include <boost/asio/io_context.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "sluice/daemon/config.hpp"

namespace sluice::daemon {

class ReceiverService {
public:
    /// Binds the lanes and the control socket. Throws std::runtime_error (or
    /// ConfigError) on start-up failures, naming what failed.
    ReceiverService(boost::asio::io_context& io, ReceiverConfig config);
    ~ReceiverService();
    ReceiverService(const ReceiverService&) = delete;
    ReceiverService& operator=(const ReceiverService&) = delete;

    /// Stops receiving, checkpoints progress and waits for a finalization in flight.
    void stop();
    /// Re-reads the configuration: trusted keys, roles, metrics and timeouts take effect.
    void reload();
    /// Whether the io thread ran its periodic tick within `within` (for the watchdog).
    [[nodiscard]] bool healthy(std::chrono::milliseconds within) const;
    [[nodiscard]] nlohmann::json status() const;
    [[nodiscard]] std::string status_line() const;
    /// Port lane `i` is bound to (tests bind port 0).
    [[nodiscard]] std::uint16_t local_port(std::size_t lane) const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::daemon
