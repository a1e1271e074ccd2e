#include "sluice/daemon/values.hpp"

#include <arpa/inet.h>

#include <array>
#include <charconv>
#include <limits>

namespace sluice::daemon {
namespace {

constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

bool is_digit(char c) { return c >= '0' && c <= '9'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Leading decimal digits of `s` as an integer; advances `s`. nullopt-like
// signalling via `ok` keeps this allocation-free.
bool take_integer(std::string_view& s, std::uint64_t& out, bool& overflow) {
    std::size_t n = 0;
    while (n < s.size() && is_digit(s[n])) ++n;
    if (n == 0) return false;
    auto [ptr, ec] = std::from_chars(s.data(), s.data() + n, out);
    (void)ptr;
    overflow = ec == std::errc::result_out_of_range;
    s.remove_prefix(n);
    return true;
}

bool mul_overflows(std::uint64_t a, std::uint64_t b) { return b != 0 && a > kMax / b; }

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
    const auto bad = [&](std::string_view why) {
        return fail(quoted(text) + " is not a duration: " + std::string(why) +
                    " (examples: \"500ms\", \"1s\", \"2m\", \"1m30s\")");
    };
    if (text.empty()) return bad("empty");
    std::string_view rest = text;
    std::uint64_t total_ms = 0;
    while (!rest.empty()) {
        std::uint64_t n = 0;
        bool overflow = false;
        if (!take_integer(rest, n, overflow)) return bad("expected a whole number");
        if (overflow) return bad("too large");
        std::size_t unit_len = 0;
        while (unit_len < rest.size() && !is_digit(rest[unit_len])) ++unit_len;
        const std::string_view unit = rest.substr(0, unit_len);
        rest.remove_prefix(unit_len);
        std::uint64_t scale = 0;
        if (unit == "ms") scale = 1;
        else if (unit == "s") scale = 1000;
        else if (unit == "m") scale = 60'000;
        else if (unit == "h") scale = 3'600'000;
        else if (unit.empty()) return bad("missing unit (ms, s, m or h)");
        else return bad("unknown unit \"" + std::string(unit) + "\" (use ms, s, m or h)");
        if (mul_overflows(n, scale) || total_ms > kMax - n * scale) return bad("too large");
        total_ms += n * scale;
    }
    if (total_ms > static_cast<std::uint64_t>(std::numeric_limits<std::chrono::milliseconds::rep>::max()))
        return bad("too large");
    return std::chrono::milliseconds(static_cast<std::chrono::milliseconds::rep>(total_ms));
}

Result<std::uint64_t> parse_byte_size(std::string_view text) {
    const auto bad = [&](std::string_view why) {
        return fail(quoted(text) + " is not a size: " + std::string(why) +
                    " (examples: \"65536\", \"256K\", \"64M\", \"1G\"; K = 1024)");
    };
    if (text.empty()) return bad("empty");
    std::string_view rest = text;
    std::uint64_t n = 0;
    bool overflow = false;
    if (!take_integer(rest, n, overflow)) return bad("expected a whole number");
    if (overflow) return bad("too large");
    std::uint64_t scale = 1;
    if (!rest.empty()) {
        switch (lower(rest.front())) {
            case 'k': scale = std::uint64_t{1} << 10; break;
            case 'm': scale = std::uint64_t{1} << 20; break;
            case 'g': scale = std::uint64_t{1} << 30; break;
            case 't': scale = std::uint64_t{1} << 40; break;
            case 'b': scale = 1; break;
            default: return bad("unknown suffix \"" + std::string(rest) + "\" (use K, M, G or T)");
        }
        if (lower(rest.front()) == 'b') {
            rest.remove_prefix(1);
        } else {
            rest.remove_prefix(1);
            if (rest == "iB" || rest == "B" || rest == "ib" || rest == "b") rest = {};
        }
        if (!rest.empty()) return bad("unknown suffix (use K, M, G or T)");
    }
    if (mul_overflows(n, scale)) return bad("too large");
    return n * scale;
}

Result<std::uint64_t> parse_bit_rate(std::string_view text) {
    const auto bad = [&](std::string_view why) {
        return fail(quoted(text) + " is not a bit rate: " + std::string(why) +
                    " (examples: \"800M\", \"1.5G\", \"100000k\"; bits per second, k/M/G = 10^3/10^6/10^9)");
    };
    if (text.empty()) return bad("empty");
    std::string_view rest = text;
    std::uint64_t whole = 0;
    bool overflow = false;
    if (!take_integer(rest, whole, overflow)) return bad("expected a number");
    if (overflow) return bad("too large");
    std::string_view fraction;
    if (!rest.empty() && rest.front() == '.') {
        rest.remove_prefix(1);
        std::size_t n = 0;
        while (n < rest.size() && is_digit(rest[n])) ++n;
        if (n == 0) return bad("expected digits after the decimal point");
        fraction = rest.substr(0, n);
        rest.remove_prefix(n);
    }
    std::uint64_t scale = 1;
    unsigned scale_digits = 0;
    if (!rest.empty()) {
        if (rest.size() != 1) return bad("unknown suffix \"" + std::string(rest) + "\" (use k, M or G)");
        switch (lower(rest.front())) {
            case 'k': scale = 1'000; scale_digits = 3; break;
            case 'm': scale = 1'000'000; scale_digits = 6; break;
            case 'g': scale = 1'000'000'000; scale_digits = 9; break;
            default: return bad("unknown suffix \"" + std::string(rest) + "\" (use k, M or G)");
        }
    }
    if (fraction.size() > scale_digits) {
        // More fractional digits than the suffix absorbs: only trailing zeros allowed.
        for (std::size_t i = scale_digits; i < fraction.size(); ++i)
            if (fraction[i] != '0') return bad("not a whole number of bits per second");
        fraction = fraction.substr(0, scale_digits);
    }
    if (mul_overflows(whole, scale)) return bad("too large");
    std::uint64_t value = whole * scale;
    std::uint64_t frac_value = 0;
    for (char c : fraction) frac_value = frac_value * 10 + static_cast<std::uint64_t>(c - '0');
    for (std::size_t i = fraction.size(); i < scale_digits; ++i) frac_value *= 10;
    if (value > kMax - frac_value) return bad("too large");
    return value + frac_value;
}

Result<LaneAddress> parse_lane(std::string_view text) {
    const auto bad = [&](std::string_view why) {
        return fail(quoted(text) + " is not a lane address: " + std::string(why) +
                    " (examples: \"127.0.0.1:47000\", \"[::1]:47000\"; numeric addresses only)");
    };
    LaneAddress lane;
    std::string_view port_text;
    if (!text.empty() && text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos) return bad("missing ']' after the IPv6 address");
        lane.address = std::string(text.substr(1, close - 1));
        lane.ipv6 = true;
        if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing \":port\" after ']'");
        port_text = text.substr(close + 2);
        std::array<unsigned char, 16> buf{};
        if (::inet_pton(AF_INET6, lane.address.c_str(), buf.data()) != 1)
            return bad("\"" + lane.address + "\" is not a numeric IPv6 address");
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return bad("missing \":port\"");
        lane.address = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
        if (lane.address.find(':') != std::string::npos) return bad("write IPv6 addresses in brackets");
        std::array<unsigned char, 4> buf{};
        if (::inet_pton(AF_INET, lane.address.c_str(), buf.data()) != 1)
            return bad("\"" + lane.address + "\" is not a numeric IPv4 address");
    }
    std::uint64_t port = 0;
    bool overflow = false;
    std::string_view rest = port_text;
    if (!take_integer(rest, port, overflow) || !rest.empty()) return bad("the port is not a number");
    if (overflow || port == 0 || port > 65535) return bad("the port must be 1..65535");
    lane.port = static_cast<std::uint16_t>(port);
    return lane;
}

std::string format_duration(std::chrono::milliseconds d) {
    auto ms = d.count();
    if (ms == 0) return "0ms";
    std::string out;
    if (ms < 0) {
        out = "-";
        ms = -ms;
    }
    const std::pair<long long, const char*> units[] = {{3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
    for (auto [scale, name] : units) {
        if (ms >= scale) {
            out += std::to_string(ms / scale) + name;
            ms %= scale;
        }
    }
    return out;
}

}  // namespace sluice::daemon
