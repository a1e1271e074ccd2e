#pragma once
// UdpReceiver: batched UDP receiving over one or more lanes on an Asio
// io_context. Each lane is a socket; when it becomes readable it is drained
// with recvmmsg(MSG_DONTWAIT) into preallocated buffers and every batch is
// handed to the handler as individual datagrams (UDP_GRO super-packets are
// split at the segment size the kernel reports).

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "sluice/diode/endpoint.hpp"

namespace sluice::diode {

struct ReceiverOptions {
    std::vector<Endpoint> lanes;                  ///< bind addresses, one socket each (port 0: any)
    std::size_t rcvbuf_bytes = 64 * 1024 * 1024;  ///< SO_RCVBUF request per lane
    bool gro = true;                              ///< ask for UDP_GRO super-packets
    std::size_t batch = 64;                       ///< datagrams (or super-packets) per recvmmsg
    bool force_rcvbuf = true;                     ///< try SO_RCVBUFFORCE first (needs CAP_NET_ADMIN)
};

struct ReceiverStats {
    std::uint64_t datagrams = 0;       ///< datagrams handed to the handler
    std::uint64_t bytes = 0;           ///< their payload bytes
    std::uint64_t recv_calls = 0;      ///< recvmmsg calls that returned something
    std::uint64_t buffers = 0;         ///< buffers filled: datagrams, or GRO super-packets of several
    std::uint64_t truncated = 0;       ///< buffers cut short (MSG_TRUNC): dropped, cannot happen with UDP's 64 KiB limit
    std::uint64_t kernel_drops = 0;    ///< datagrams the kernel dropped on a full socket buffer (SO_RXQ_OVFL), summed over lanes
    std::uint64_t handler_errors = 0;  ///< exceptions thrown by the handler (caught: nothing escapes an Asio handler)
    std::uint64_t socket_errors = 0;   ///< recvmmsg failures other than "nothing to read"
};

/// The warning to give when the kernel granted `granted` bytes of receive
/// buffer for a request of `requested`; empty when nothing was capped.
[[nodiscard]] std::string rcvbuf_warning(std::size_t requested, std::size_t granted);

class UdpReceiver {
public:
    /// Receives one batch of datagrams. The spans point into the receiver's
    /// buffers and are valid only during the call. Runs on a thread running
    /// the io_context; with several threads, batches of different lanes may be
    /// handled concurrently.
    using Handler = std::function<void(std::span<const std::span<const std::byte>> datagrams)>;

    /// Binds one socket per lane and starts waiting. Throws std::runtime_error
    /// naming the lane when a socket cannot be opened or bound (start-up).
    UdpReceiver(boost::asio::io_context& io, ReceiverOptions options, Handler handler);
    /// Calls stop(). Outstanding waits hold the internal state, so destroying
    /// the receiver before the io_context has run them is safe.
    ~UdpReceiver();
    UdpReceiver(const UdpReceiver&) = delete;
    UdpReceiver& operator=(const UdpReceiver&) = delete;

    /// Closes the sockets; the handler is not called again. Call from the
    /// io_context's thread (or when it is not running).
    void stop();

    /// The port lane `lane` is bound to (to learn the port after binding 0).
    [[nodiscard]] std::uint16_t local_port(std::size_t lane) const;

    /// Receive buffer the kernel granted per lane (the smallest over lanes),
    /// in the units of the request (the kernel books twice that internally).
    [[nodiscard]] std::size_t effective_rcvbuf() const noexcept;
    /// Non-empty when the kernel capped the receive buffer below the request:
    /// says which sysctl to raise, to what.
    [[nodiscard]] const std::string& warning() const noexcept;
    /// Whether UDP_GRO was accepted by the kernel.
    [[nodiscard]] bool gro_active() const noexcept;

    /// A snapshot of the counters; safe to call from any thread.
    [[nodiscard]] ReceiverStats stats() const;

private:
    struct State;
    std::shared_ptr<State> state_;
};

}  // namespace sluice::diode
