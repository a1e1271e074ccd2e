#pragma once
// UdpSender: paced, batched UDP sending over one or more lanes.
//
// Datagrams are cut into *runs*: consecutive datagrams of equal size (the last
// one may be shorter), at most 64 datagrams and at most one maximum UDP
// payload (65507 bytes over IPv4) in total. Runs are striped round-robin over
// the lanes (run 0 to lane 0, run 1 to lane 1, ...), so each lane sees its
// datagrams in order and bursts of up to ~64 KiB. The cut does not depend on
// whether GSO is active, so the lane a datagram takes is deterministic.
//
// With GSO a run leaves as one UDP_SEGMENT super-packet (one skb through the
// stack, segmented by the NIC or just before it); without it, as one message
// per datagram. Either way messages go out with sendmmsg, paced so that at
// most `burst_bytes` of wire bytes leave back to back.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "sluice/core/result.hpp"
#include "sluice/diode/endpoint.hpp"
#include "sluice/diode/pacer.hpp"

namespace sluice::diode {

struct SenderOptions {
    std::vector<Endpoint> lanes;           ///< destinations, one socket each
    std::uint64_t rate_bits_per_s = 0;     ///< wire rate (IP+UDP headers counted); 0 = unpaced, benchmarks only
    std::size_t burst_bytes = 64 * 1024;   ///< bucket depth: wire bytes allowed back to back
    bool gso = true;                       ///< use UDP_SEGMENT when the kernel supports it
    std::size_t sndbuf_bytes = 4 * 1024 * 1024;  ///< SO_SNDBUF request (SO_SNDBUFFORCE tried first)
};

struct SenderStats {
    std::uint64_t datagrams = 0;        ///< datagrams handed to the kernel
    std::uint64_t bytes = 0;            ///< their payload bytes
    std::uint64_t wire_bytes = 0;       ///< payload + IP/UDP headers
    std::uint64_t send_calls = 0;       ///< sendmmsg calls that sent something
    std::uint64_t enobufs_retries = 0;  ///< ENOBUFS/EAGAIN waits (queue full; retried, never dropped)
    std::uint64_t refused_retries = 0;  ///< ICMP errors reported on send (no one listening); retried
    std::uint64_t gso_fallbacks = 0;    ///< 1 once the kernel refused GSO and plain sending took over
};

class UdpSender {
public:
    /// Opens and connects one socket per lane. Throws std::runtime_error naming
    /// the lane on an empty lane list, port 0, or any socket error (start-up).
    explicit UdpSender(SenderOptions options);
    ~UdpSender();
    UdpSender(const UdpSender&) = delete;
    UdpSender& operator=(const UdpSender&) = delete;

    /// Sends every datagram, blocking the calling thread to keep the rate (the
    /// daemon's dedicated send thread). Full queues (ENOBUFS/EAGAIN) are waited
    /// out and retried, never dropped. Fails on a datagram larger than UDP
    /// allows or on an unexpected socket error; datagrams before the failing
    /// one may have been sent. Not thread-safe: one calling thread.
    [[nodiscard]] Result<void> send(std::span<const std::span<const std::byte>> datagrams);

    /// A snapshot of the counters; safe to call from any thread.
    [[nodiscard]] SenderStats stats() const;

    /// Whether runs currently leave as GSO super-packets.
    [[nodiscard]] bool gso_active() const noexcept { return gso_active_.load(std::memory_order_relaxed); }

    /// SO_SNDBUF the kernel granted on the first lane (as requested, not doubled).
    [[nodiscard]] std::size_t effective_sndbuf() const noexcept { return effective_sndbuf_; }

private:
    struct Lane;
    struct Run {
        std::size_t first = 0;     ///< index of the first datagram in the call's span
        std::size_t count = 0;
        std::size_t segment = 0;   ///< size of every datagram but possibly the last
        std::size_t bytes = 0;     ///< payload bytes of the run
        std::size_t lane = 0;
    };

    Result<void> send_lane(std::size_t lane, std::span<const Run> runs,
                           std::span<const std::span<const std::byte>> datagrams);

    SenderOptions options_;
    std::vector<Lane> lanes_;
    Pacer pacer_;
    std::size_t next_lane_ = 0;
    std::atomic<bool> gso_active_{false};
    std::size_t effective_sndbuf_ = 0;
    std::vector<Run> round_;        ///< reused between calls

    struct Counters {
        std::atomic<std::uint64_t> datagrams{0}, bytes{0}, wire_bytes{0}, send_calls{0},
            enobufs_retries{0}, refused_retries{0}, gso_fallbacks{0};
    } counters_;
};

}  // namespace sluice::diode
