#include "sluice/daemon/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <mutex>

namespace sluice::daemon {
namespace {

std::atomic<int> g_threshold{static_cast<int>(LogLevel::info)};
std::mutex g_write_mutex;

/// Length of the valid UTF-8 sequence starting at s[i], or 0 if invalid.
std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    std::size_t n = 0;
    unsigned min = 0;
    unsigned cp = 0;
    if (c >= 0xC2 && c <= 0xDF) { n = 2; cp = c & 0x1Fu; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { n = 3; cp = c & 0x0Fu; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { n = 4; cp = c & 0x07u; min = 0x10000; }
    else return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xC0u) != 0x80u) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3Fu);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

void append_hex(std::string& out, unsigned char c) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += "\\x";
    out += kHex[c >> 4];
    out += kHex[c & 0xF];
}

}  // namespace

std::string LogField::format_float(double v) {
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    if (ec != std::errc()) return "nan";
    return std::string(buf, end);
}

std::string log_quote(std::string_view v) {
    // Valid non-ASCII UTF-8 stays bare ("café"); spaces, specials, control
    // bytes and invalid UTF-8 force quotes.
    std::string out;
    out.reserve(v.size() + 2);
    bool quote = v.empty();
    for (std::size_t i = 0; i < v.size(); ++i) {
        const auto c = static_cast<unsigned char>(v[i]);
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '=' || c == '\\') quote = true;
        if (c >= 0x80) {
            const std::size_t n = utf8_length(v, i);
            if (n == 0) quote = true;
            else i += n - 1;
        }
    }
    if (quote) out += '"';
    for (std::size_t i = 0; i < v.size(); ++i) {
        const auto c = static_cast<unsigned char>(v[i]);
        switch (c) {
            case '"': out += "\\\""; continue;
            case '\\': out += "\\\\"; continue;
            case '\n': out += "\\n"; continue;
            case '\r': out += "\\r"; continue;
            case '\t': out += "\\t"; continue;
            default: break;
        }
        if (c < 0x20 || c == 0x7f) {
            append_hex(out, c);
        } else if (c >= 0x80) {
            const std::size_t n = utf8_length(v, i);
            if (n == 0) {
                append_hex(out, c);
            } else {
                out.append(v.substr(i, n));
                i += n - 1;
            }
        } else {
            out += static_cast<char>(c);
        }
    }
    if (quote) out += '"';
    return out;
}

std::string format_log_line(LogLevel level, std::string_view event, LogFields fields) {
    std::string line = "<" + std::to_string(static_cast<int>(level)) + ">event=" + log_quote(event);
    for (const auto& f : fields) {
        line += ' ';
        // Keys come from code; still keep them one token.
        std::string key;
        for (char c : f.key) key += (c == ' ' || c == '=' || c == '\n' || c == '"') ? '_' : c;
        line += key.empty() ? std::string("_") : key;
        line += '=';
        line += log_quote(f.value);
    }
    line += '\n';
    return line;
}

void log(LogLevel level, std::string_view event, LogFields fields) {
    if (static_cast<int>(level) > g_threshold.load(std::memory_order_relaxed)) return;
    const std::string line = format_log_line(level, event, fields);
    const std::lock_guard lock(g_write_mutex);
    std::size_t done = 0;
    while (done < line.size()) {
        const ssize_t n = ::write(STDERR_FILENO, line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;  // nowhere to report a failure to log
        done += static_cast<std::size_t>(n);
    }
}

void set_log_level(LogLevel level) { g_threshold.store(static_cast<int>(level), std::memory_order_relaxed); }

}  // namespace sluice::daemon
