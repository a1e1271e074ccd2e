#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <utility>

#include "sluice/diode/pacer.hpp"

using namespace std::chrono_literals;
using sluice::diode::Pacer;
using sluice::diode::wire_bytes;

namespace {

const Pacer::Clock::time_point kT0 = Pacer::Clock::time_point(1000s);

/// Bytes a saturating sender (always a `packet` of wire bytes ready) gets
/// out in [kT0, kT0 + 1s) and in [kT0 + 1s, kT0 + 2s), with a fake clock that
/// jumps to each time the pacer allows.
std::pair<std::uint64_t, std::uint64_t> saturate_two_seconds(Pacer& pacer, std::size_t packet) {
    auto now = kT0;
    std::uint64_t first = 0, second = 0;
    for (;;) {
        const auto delay = pacer.delay_before(packet, now);
        REQUIRE(delay >= 0ns);
        now += delay;
        if (now >= kT0 + 2s) return {first, second};
        (now < kT0 + 1s ? first : second) += packet;
    }
}

}  // namespace

TEST_CASE("wire bytes add the IP and UDP headers", "[diode]") {
    STATIC_REQUIRE(wire_bytes(1390, false) == 1418);
    STATIC_REQUIRE(wire_bytes(1390, true) == 1438);
    STATIC_REQUIRE(wire_bytes(0, false) == 28);
}

TEST_CASE("pacer holds the configured rate over a simulated second", "[diode]") {
    const std::uint64_t rate = GENERATE(std::uint64_t{10'000'000}, std::uint64_t{100'000'000},
                                        std::uint64_t{1'000'000'000}, std::uint64_t{9'999'999'937});
    const std::size_t burst = 64 * 1024;
    const std::size_t packet = GENERATE(std::size_t{1418}, std::size_t{9028});
    CAPTURE(rate, packet);
    Pacer pacer(rate, burst);

    const auto [sent_first, sent_second] = saturate_two_seconds(pacer, packet);
    // The first second carries one bucket of burst on top of the rate.
    const double first = static_cast<double>(sent_first);
    const double expected_first = static_cast<double>(rate) / 8 + burst;
    CHECK(first == Approx(expected_first).epsilon(0.01));
    CHECK(first <= expected_first);

    // After that, exactly the rate (the bucket stays empty while saturated).
    const double next = static_cast<double>(sent_second);
    CHECK(next == Approx(static_cast<double>(rate) / 8).epsilon(0.01));
}

TEST_CASE("pacer carries sub-nanosecond remainders, so long runs do not drift", "[diode]") {
    const std::uint64_t rate = 999'999'937;  // prime: every cost has a remainder
    const std::size_t burst = 65536;
    Pacer pacer(rate, burst);
    std::chrono::nanoseconds last{};
    const std::uint64_t n = 1'000'000;
    for (std::uint64_t i = 0; i < n; ++i) last = pacer.delay_before(1428, kT0);  // all queued at once
    const std::uint64_t total_ns = 1428ULL * 8 * n * 1'000'000'000ULL / rate;   // fits: 1.14e19 < 2^64
    const std::uint64_t tolerance_ns = burst * 8ULL * 1'000'000'000ULL / rate;
    CHECK(static_cast<std::uint64_t>(last.count()) == total_ns - tolerance_ns);
}

TEST_CASE("pacer lets at most one burst through after an idle period", "[diode]") {
    const std::size_t burst = 64 * 1024;
    const std::size_t packet = 1418;
    Pacer pacer(100'000'000, burst);

    auto immediate = [&](Pacer::Clock::time_point now) {
        std::size_t bytes = 0;
        while (pacer.delay_before(packet, now) == 0ns) bytes += packet;
        return bytes;
    };
    const std::size_t first = immediate(kT0);
    CHECK(first <= burst);
    CHECK(first > burst - packet);

    // A long idle period does not bank more than one bucket.
    const std::size_t after_idle = immediate(kT0 + 60s);
    CHECK(after_idle <= burst);
    CHECK(after_idle > burst - packet);
}

TEST_CASE("pacer delays a send larger than the burst by its excess cost", "[diode]") {
    Pacer pacer(8'000'000, 1000);  // 1 byte per microsecond
    CHECK(pacer.delay_before(1000, kT0) == 0ns);
    CHECK(pacer.delay_before(5000, kT0 + 1000us) == 4000us);
    CHECK(pacer.delay_before(500, kT0 + 6000us) == 0ns);  // 1000 µs since the last send refilled the bucket
}

TEST_CASE("pacer with rate 0 never waits", "[diode]") {
    Pacer pacer(0, 0);
    for (int i = 0; i < 1000; ++i) REQUIRE(pacer.delay_before(65536, kT0) == 0ns);
}
