#include "output.hpp"

#include <charconv>
#include <cstdio>
#include <iostream>

#include "app.hpp"

namespace sluice::cli {

int report_error(const Error& error) {
    std::cerr << "sluice: error: " << error.message << '\n';
    return kExitFailed;
}

Result<std::uint64_t> parse_size(std::string_view text) {
    auto bad = [&] { return fail("'" + std::string(text) + "' is not a size (e.g. 1048576, 512M, 2G, 1T)"); };
    if (text.empty()) return bad();
    std::uint64_t shift = 0;
    switch (text.back()) {
        case 'K': case 'k': shift = 10; break;
        case 'M': case 'm': shift = 20; break;
        case 'G': case 'g': shift = 30; break;
        case 'T': case 't': shift = 40; break;
        default: break;
    }
    if (shift != 0) text.remove_suffix(1);
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr != text.data() + text.size() || text.empty()) return bad();
    if (shift != 0 && value > (UINT64_MAX >> shift)) return bad();
    return value << shift;
}

std::string human_bytes(std::uint64_t bytes) {
    static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = static_cast<double>(bytes);
    int unit = 0;
    while (v >= 1024.0 && unit < 5) {
        v /= 1024.0;
        ++unit;
    }
    char buf[32];
    if (unit == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(bytes));
    else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[unit]);
    return buf;
}

}  // namespace sluice::cli
