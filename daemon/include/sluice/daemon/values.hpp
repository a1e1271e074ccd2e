#pragma once
// The textual values a configuration file holds, parsed strictly:
//
//   duration   "500ms" "1s" "2m" "1h" "1m30s"     -> std::chrono::milliseconds
//   byte size  "65536" "256K" "64M" "1G" "64MiB"  -> bytes   (K = 1024: sizes are binary)
//   bit rate   "100000k" "800M" "1.5G" "2000000"  -> bits/s  (k = 1000: rates are decimal)
//   lane       "127.0.0.1:47000" "[::1]:47000"    -> numeric address + port
//
// Each parser returns a Result whose error names what is wrong and shows a
// valid example; none throws.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/core/result.hpp"

namespace sluice::daemon {

/// A duration: one or more `<integer><unit>` with unit ms, s, m or h ("1m30s").
/// Error: empty, missing or unknown unit, overflow.
[[nodiscard]] Result<std::chrono::milliseconds> parse_duration(std::string_view text);

/// A byte count: an integer with an optional binary suffix K, M, G or T
/// (case-insensitive, optionally followed by "iB" or "B"). Error: not a number,
/// unknown suffix, overflow.
[[nodiscard]] Result<std::uint64_t> parse_byte_size(std::string_view text);

/// A rate in bits per second: a decimal number with an optional decimal suffix
/// k, M or G (10^3, 10^6, 10^9; "1.5G" = 1 500 000 000). Error: not a number,
/// unknown suffix, not a whole number of bits/s, overflow.
[[nodiscard]] Result<std::uint64_t> parse_bit_rate(std::string_view text);

/// A lane address: numeric IPv4 `a.b.c.d:port` or bracketed IPv6 `[addr]:port`,
/// port 1..65535. Host names are refused (no resolver at start-up on an appliance).
struct LaneAddress {
    std::string address;  ///< numeric address without brackets: "127.0.0.1", "::1"
    std::uint16_t port = 0;
    bool ipv6 = false;
};
[[nodiscard]] Result<LaneAddress> parse_lane(std::string_view text);

/// Formats a duration the way the parser reads it back ("1m30s", "500ms", "0ms").
[[nodiscard]] std::string format_duration(std::chrono::milliseconds d);

}  // namespace sluice::daemon
