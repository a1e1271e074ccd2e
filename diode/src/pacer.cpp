#include "sluice/diode/pacer.hpp"

#include <algorithm>

namespace sluice::diode {

namespace {

__extension__ using Uint128 = unsigned __int128;  // bits × 1e9 overflows 64 bits above ~2 GB per call

constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;

}  // namespace

Pacer::Pacer(std::uint64_t rate_bits_per_s, std::size_t burst_bytes)
    : rate_(rate_bits_per_s), burst_(burst_bytes), tolerance_(0) {
    if (rate_ != 0) {
        const Uint128 ns = Uint128{burst_} * 8 * kNanosPerSecond / rate_;
        tolerance_ = std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
    }
}

std::chrono::nanoseconds Pacer::cost(std::size_t bytes) {
    const Uint128 scaled = Uint128{bytes} * 8 * kNanosPerSecond + remainder_;
    remainder_ = static_cast<std::uint64_t>(scaled % rate_);
    return std::chrono::nanoseconds(static_cast<std::int64_t>(scaled / rate_));
}

std::chrono::nanoseconds Pacer::delay_before(std::size_t wire_bytes, Clock::time_point now) {
    if (rate_ == 0) return std::chrono::nanoseconds(0);
    // GCRA: tat_ is when the bucket would be empty again if nothing more were
    // sent. After an idle period it lags `now`; it restarts from `now`, which
    // is what caps a burst at the bucket depth.
    if (tat_ < now) tat_ = now;
    tat_ += cost(wire_bytes);
    const auto allowed_at = tat_ - tolerance_;
    return std::max(std::chrono::nanoseconds(0),
                    std::chrono::duration_cast<std::chrono::nanoseconds>(allowed_at - now));
}

}  // namespace sluice::diode
