#pragma once
// File-private text helpers shared by the bundle parsers.

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <string>
#include <string_view>

namespace sluice::bundle::detail {

/// Strict UTF-8: no overlongs, no surrogates, nothing above U+10FFFF.
inline bool is_valid_utf8(std::string_view s) {
    std::size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<std::uint8_t>(s[i]);
        std::size_t len = 0;
        std::uint32_t cp = 0;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            len = 2;
            cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3;
            cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > s.size()) return false;
        for (std::size_t k = 1; k < len; ++k) {
            auto cc = static_cast<std::uint8_t>(s[i + k]);
            if ((cc & 0xc0) != 0x80) return false;
            cp = (cp << 6) | (cc & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)) return false;
        if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
        i += len;
    }
    return true;
}

inline bool is_control(char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
}

/// C0, DEL, or a UTF-8 encoded C1 control (U+0080..U+009F) anywhere in s.
inline bool has_control(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (is_control(s[i])) return true;
        if (static_cast<unsigned char>(s[i]) == 0xc2 && i + 1 < s.size() &&
            static_cast<unsigned char>(s[i + 1]) >= 0x80 && static_cast<unsigned char>(s[i + 1]) <= 0x9f) {
            return true;
        }
    }
    return false;
}

/// Untrusted text made safe to print in one line of a message or log:
/// control characters become \n, \r, \t or \xNN, backslashes are doubled,
/// and anything past `max_bytes` is cut with "…".
inline std::string printable(std::string_view s, std::size_t max_bytes = 8192) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(std::min(s.size(), max_bytes) + 8);
    for (std::size_t i = 0; i < s.size() && i < max_bytes; ++i) {
        auto u = static_cast<unsigned char>(s[i]);
        if (s[i] == '\\') out += "\\\\";
        else if (s[i] == '\n') out += "\\n";
        else if (s[i] == '\r') out += "\\r";
        else if (s[i] == '\t') out += "\\t";
        else if (u < 0x20 || u == 0x7f) {
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0x0f];
        } else if (u == 0xc2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
                   static_cast<unsigned char>(s[i + 1]) <= 0x9f) {  // C1 control, U+0080..U+009F
            auto c1 = static_cast<unsigned char>(s[++i]);
            out += "\\u00";
            out += kHex[c1 >> 4];
            out += kHex[c1 & 0x0f];
        } else {
            out += s[i];
        }
    }
    if (s.size() > max_bytes) out += "…";
    return out;
}

inline char ascii_lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

inline std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

/// Splits on LF, CRLF or CR; calls fn(line, 1-based line number) until it returns false.
template <class Fn>
bool for_each_line(std::string_view text, Fn&& fn) {
    std::size_t number = 0;
    while (!text.empty()) {
        std::size_t end = text.find_first_of("\r\n");
        std::string_view line = text.substr(0, end);
        ++number;
        if (!fn(line, number)) return false;
        if (end == std::string_view::npos) break;
        std::size_t skip = (text[end] == '\r' && end + 1 < text.size() && text[end + 1] == '\n') ? 2 : 1;
        text.remove_prefix(end + skip);
    }
    return true;
}

}  // namespace sluice::bundle::detail
