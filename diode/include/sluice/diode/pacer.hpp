#pragma once
// Pacer: a sans-IO token bucket (in its GCRA form) that spreads datagrams at a
// configured line rate. A diode has no back-pressure: whatever the receiver or
// a switch cannot absorb is lost, so the sender must never exceed the rate the
// far side was sized for, and its bursts must fit the buffers on the way.
//
// The caller passes the time; the pacer never reads a clock or sleeps.

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace sluice::diode {

/// IPv4 (20) + UDP (8) header bytes added to every datagram on the wire.
inline constexpr std::size_t kIpv4UdpOverhead = 28;
/// IPv6 (40) + UDP (8) header bytes added to every datagram on the wire.
inline constexpr std::size_t kIpv6UdpOverhead = 48;

/// Bytes one datagram of `datagram` payload bytes occupies on the wire at the
/// IP layer (link-layer framing is not counted).
[[nodiscard]] constexpr std::size_t wire_bytes(std::size_t datagram, bool ipv6) {
    return datagram + (ipv6 ? kIpv6UdpOverhead : kIpv4UdpOverhead);
}

class Pacer {
public:
    using Clock = std::chrono::steady_clock;

    /// `rate_bits_per_s` = 0 disables pacing (every delay is zero): for
    /// benchmarks only, never on a real diode. `burst_bytes` is how many bytes
    /// may leave back to back after an idle period (the bucket depth).
    Pacer(std::uint64_t rate_bits_per_s, std::size_t burst_bytes);

    /// How long to wait before `wire_bytes` may be sent, given the time `now`;
    /// the bytes are charged to the bucket as sent at `now + delay`. A send
    /// larger than the burst is allowed, it just waits for its whole cost.
    [[nodiscard]] std::chrono::nanoseconds delay_before(std::size_t wire_bytes, Clock::time_point now);

    [[nodiscard]] std::uint64_t rate_bits_per_s() const noexcept { return rate_; }
    [[nodiscard]] std::size_t burst_bytes() const noexcept { return burst_; }

private:
    /// Nanoseconds `bytes` take at the rate; the sub-nanosecond remainder is
    /// carried in `remainder_` so long runs are exact, not drifting.
    std::chrono::nanoseconds cost(std::size_t bytes);

    std::uint64_t rate_;
    std::size_t burst_;
    std::chrono::nanoseconds tolerance_;         ///< burst_ expressed as time at rate_
    Clock::time_point tat_ = Clock::time_point::min();  ///< theoretical arrival time of the next byte
    std::uint64_t remainder_ = 0;                 ///< (bits * 1e9) mod rate_ carried over
};

}  // namespace sluice::diode
