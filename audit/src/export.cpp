#include "sluice/audit/export.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/core/version.hpp"

namespace sluice::audit {

using nlohmann::json;

namespace {

constexpr std::array<std::string_view, 6> kFormatNames = {"table", "json", "jsonl", "csv", "cef", "syslog"};

// ---- UTF-8 ----------------------------------------------------------------

/// The code point at `pos` and its length in bytes, or nullopt for an invalid
/// sequence (overlong, surrogate, beyond U+10FFFF, truncated).
std::optional<std::pair<char32_t, std::size_t>> decode_utf8(std::string_view s, std::size_t pos) {
    const auto b0 = static_cast<unsigned char>(s[pos]);
    if (b0 < 0x80) return std::pair{char32_t{b0}, std::size_t{1}};
    struct Lead {
        unsigned char mask, value;
        std::size_t len;
        char32_t min;  // smaller code points in this length are overlong
    };
    static constexpr Lead kLeads[] = {{0xe0, 0xc0, 2, 0x80}, {0xf0, 0xe0, 3, 0x800}, {0xf8, 0xf0, 4, 0x10000}};
    const Lead* lead = nullptr;
    for (const auto& l : kLeads) {
        if ((b0 & l.mask) == l.value) lead = &l;
    }
    if (lead == nullptr) return std::nullopt;
    const std::size_t len = lead->len;
    char32_t cp = b0 & static_cast<unsigned char>(~lead->mask);
    if (pos + len > s.size()) return std::nullopt;
    for (std::size_t i = 1; i < len; ++i) {
        const auto b = static_cast<unsigned char>(s[pos + i]);
        if ((b & 0xc0) != 0x80) return std::nullopt;
        cp = (cp << 6) | (b & 0x3fu);
    }
    if (cp < lead->min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return std::nullopt;
    return std::pair{cp, len};
}

/// `text` with every invalid byte sequence replaced by U+FFFD (CEF and syslog carry UTF-8).
std::string valid_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
        if (auto d = decode_utf8(text, pos)) {
            out.append(text.substr(pos, d->second));
            pos += d->second;
        } else {
            out += "\xEF\xBF\xBD";
            ++pos;
        }
    }
    return out;
}

/// Characters, counted as code points: what a terminal shows for the text
/// terminal_safe() returns (wide East Asian characters aside).
std::size_t display_width(std::string_view text) {
    std::size_t n = 0;
    for (char c : text) n += (static_cast<unsigned char>(c) & 0xc0) != 0x80 ? 1 : 0;
    return n;
}

/// At most `max` characters of valid UTF-8 `text`, ending in "…" when cut.
std::string truncate(std::string_view text, std::size_t max) {
    if (display_width(text) <= max || max == 0) return std::string(text);
    std::size_t chars = 0;
    std::size_t pos = 0;
    for (; pos < text.size(); ++pos) {
        if ((static_cast<unsigned char>(text[pos]) & 0xc0) != 0x80 && chars++ == max - 1) break;
    }
    return std::string(text.substr(0, pos)) + "\xE2\x80\xA6";
}

// ---- time -----------------------------------------------------------------

bool digits(std::string_view s, std::size_t pos, std::size_t n, int& out) {
    if (pos + n > s.size()) return false;
    int v = 0;
    for (std::size_t i = pos; i < pos + n; ++i) {
        if (s[i] < '0' || s[i] > '9') return false;
        v = v * 10 + (s[i] - '0');
    }
    out = v;
    return true;
}

// ---- CSV ------------------------------------------------------------------

void append_csv_field(std::string& out, std::string_view field) {
    std::string value;
    // A leading ' is added to formula-like fields and to fields already starting
    // with ' (so that stripping one leading ' is always the exact inverse).
    if (!field.empty() && std::string_view("=+-@\t\r'").find(field.front()) != std::string_view::npos) value = "'";
    value.append(field);
    if (value.find_first_of(",\"\r\n") == std::string::npos) {
        out += value;
        return;
    }
    out += '"';
    for (char c : value) {
        if (c == '"') out += '"';
        out += c;
    }
    out += '"';
}

// ---- CEF ------------------------------------------------------------------

std::string cef_header_field(std::string_view text) {
    std::string out;
    for (char c : valid_utf8(text)) {
        if (c == '\\' || c == '|') out += '\\';
        if (c == '\n' || c == '\r') c = ' ';  // a header has no escape for line breaks
        out += c;
    }
    return out;
}

std::string cef_extension_value(std::string_view text) {
    std::string out;
    for (char c : valid_utf8(text)) {
        switch (c) {
            case '\\': out += "\\\\"; break;
            case '=': out += "\\="; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            default: out += c;
        }
    }
    return out;
}

/// "bundle_released" -> "Bundle released"
std::string event_title(std::string_view event) {
    std::string out(event);
    std::replace(out.begin(), out.end(), '_', ' ');
    if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
    return out;
}

// ---- syslog ---------------------------------------------------------------

/// RFC 5424 header fields are PRINTUSASCII (33..126) of bounded length; others become '_'.
std::string printable_ascii(std::string_view text, std::size_t max) {
    std::string out;
    for (char c : text.substr(0, max)) {
        const auto u = static_cast<unsigned char>(c);
        out += (u >= 33 && u <= 126) ? c : '_';
    }
    return out.empty() ? std::string("-") : out;
}

/// SD-PARAM value: `"` `\` `]` escaped as RFC 5424 says; control characters,
/// which would break a line-based transport, as \n \r \t or \xHH (a backslash
/// before any other character is kept literally by a conforming parser).
std::string sd_value(std::string_view text) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (char c : valid_utf8(text)) {
        const auto u = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\' || c == ']') {
            out += '\\';
            out += c;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (u < 0x20 || u == 0x7f) {
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 0xf];
        } else {
            out += c;
        }
    }
    return out;
}

/// The stored details are compact JSON; in valid JSON a raw line break or tab
/// can only be whitespace between tokens, so replacing it keeps the JSON valid
/// and the message on one line.
std::string one_line(std::string_view text) {
    std::string out = valid_utf8(text);
    for (char& c : out) {
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    }
    return out;
}

// ---- table ----------------------------------------------------------------

constexpr std::size_t kBundleColumn = 12;
constexpr std::size_t kSummaryColumn = 80;

void write_table(std::ostream& out, std::span<const Record> records, bool header) {
    static constexpr std::array<std::string_view, 9> kTitles = {"SEQ",    "TIME",   "SIDE",    "EVENT",  "ACTOR",
                                                                "OUTCOME", "BUNDLE", "CHANNEL", "DETAILS"};
    std::vector<std::array<std::string, 9>> rows;
    rows.reserve(records.size() + 1);
    if (header) {
        std::array<std::string, 9> titles;
        for (std::size_t i = 0; i < kTitles.size(); ++i) titles[i] = std::string(kTitles[i]);
        rows.push_back(std::move(titles));
    }
    for (const auto& r : records) {
        rows.push_back({std::to_string(r.seq), terminal_safe(r.time), terminal_safe(r.side),
                        terminal_safe(r.event), terminal_safe(r.actor), terminal_safe(r.outcome),
                        terminal_safe(r.bundle.substr(0, kBundleColumn)), terminal_safe(r.channel),
                        terminal_safe(details_summary(r.details, kSummaryColumn))});
    }
    std::array<std::size_t, 9> width{};
    for (const auto& row : rows) {
        for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], display_width(row[i]));
    }
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t i = 0; i < row.size(); ++i) {
            const bool last = i + 1 == row.size();
            if (i == 0) line.append(width[0] - display_width(row[0]), ' ');  // numbers right-aligned
            line += row[i];
            if (!last) line.append(i == 0 ? 2 : width[i] - display_width(row[i]) + 2, ' ');
        }
        while (!line.empty() && line.back() == ' ') line.pop_back();
        out << line << '\n';
    }
}

std::string record_json(const Record& r) {
    return r.to_json().dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

// ---- public ---------------------------------------------------------------

std::string terminal_safe(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t pos = 0; pos < text.size();) {
        const auto d = decode_utf8(text, pos);
        if (!d) {
            out += '?';
            ++pos;
            continue;
        }
        const char32_t cp = d->first;
        const bool unsafe = cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029 ||
                            (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
        if (unsafe) out += '?';
        else out.append(text.substr(pos, d->second));
        pos += d->second;
    }
    return out;
}

std::string details_summary(std::string_view details, std::size_t max_chars) {
    const json j = json::parse(details, nullptr, false);
    if (!j.is_object()) return truncate(valid_utf8(details), max_chars);
    static constexpr std::array<std::string_view, 16> kFirst = {
        "reason", "error",   "summary", "why",  "rule", "detail", "scanner", "version",
        "from",   "to",      "previous", "hook", "result", "path", "transfer", "pass"};
    auto scalar = [](const json& v) -> std::optional<std::string> {
        if (v.is_string()) {
            std::string s = v.get<std::string>();
            for (char& c : s) {
                if (c == '\n' || c == '\r' || c == '\t') c = ' ';
            }
            if (s.empty() || s.find_first_of(" =\"") != std::string::npos) return json(s).dump(-1, ' ', false, json::error_handler_t::replace);
            return s;
        }
        if (v.is_number() || v.is_boolean()) return v.dump();
        return std::nullopt;
    };
    auto render = [&](const json& v) -> std::optional<std::string> {
        if (auto s = scalar(v)) return s;
        if (!v.is_array() || v.size() > 5) return std::nullopt;
        std::string joined;
        for (const auto& e : v) {
            auto s = scalar(e);
            if (!s) return std::nullopt;
            joined += (joined.empty() ? "" : ",") + *s;
        }
        return joined.empty() ? std::nullopt : std::optional<std::string>(joined);
    };
    std::string out;
    auto add = [&](const std::string& key, const json& v) {
        if (auto text = render(v)) out += (out.empty() ? "" : " ") + key + "=" + *text;
    };
    for (auto key : kFirst) {
        if (auto it = j.find(std::string(key)); it != j.end()) add(std::string(key), *it);
    }
    for (const auto& [key, v] : j.items()) {
        if (std::find(kFirst.begin(), kFirst.end(), key) == kFirst.end()) add(key, v);
    }
    return truncate(valid_utf8(out), max_chars);
}

Result<Format> parse_format(std::string_view name) {
    for (std::size_t i = 0; i < kFormatNames.size(); ++i) {
        if (kFormatNames[i] == name) return static_cast<Format>(i);
    }
    return fail("unknown format '" + std::string(name) + "' (table, json, jsonl, csv, cef, syslog)");
}

std::string_view to_string(Format format) { return kFormatNames.at(static_cast<std::size_t>(format)); }

std::optional<std::int64_t> epoch_millis(std::string_view t) {
    // YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±HH:MM)
    int year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!digits(t, 0, 4, year) || t.size() < 20 || t[4] != '-' || !digits(t, 5, 2, month) || t[7] != '-' ||
        !digits(t, 8, 2, day) || t[10] != 'T' || !digits(t, 11, 2, hour) || t[13] != ':' ||
        !digits(t, 14, 2, minute) || t[16] != ':' || !digits(t, 17, 2, second)) {
        return std::nullopt;
    }
    std::size_t pos = 19;
    std::int64_t millis = 0;
    if (t[pos] == '.') {
        std::size_t n = 0;
        ++pos;
        while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
            if (n < 3) millis = millis * 10 + (t[pos] - '0');
            ++n;
            ++pos;
        }
        if (n == 0 || n > 6) return std::nullopt;
        for (std::size_t i = n; i < 3; ++i) millis *= 10;
    }
    std::int64_t offset_minutes = 0;
    if (pos < t.size() && t[pos] == 'Z') {
        ++pos;
    } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
        int oh = 0, om = 0;
        if (!digits(t, pos + 1, 2, oh) || pos + 3 >= t.size() || t[pos + 3] != ':' || !digits(t, pos + 4, 2, om) ||
            oh > 23 || om > 59) {
            return std::nullopt;
        }
        offset_minutes = (t[pos] == '+' ? 1 : -1) * (oh * 60 + om);
        pos += 6;
    } else {
        return std::nullopt;
    }
    if (pos != t.size() || hour > 23 || minute > 59 || second > 59) return std::nullopt;
    const std::chrono::year_month_day date{std::chrono::year{year}, std::chrono::month{static_cast<unsigned>(month)},
                                           std::chrono::day{static_cast<unsigned>(day)}};
    if (!date.ok()) return std::nullopt;
    const std::int64_t days = std::chrono::sys_days{date}.time_since_epoch().count();
    const std::int64_t seconds = days * 86400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    return seconds * 1000 + millis;
}

std::string_view csv_header() { return "seq,time,host,side,bundle,channel,event,actor,outcome,details,prev_hash,hash,upstream"; }

std::string csv_row(const Record& r) {
    std::string out;
    const std::string seq = std::to_string(r.seq);
    const std::string_view fields[] = {seq,     r.time,    r.host,      r.side,   r.bundle,
                                       r.channel, r.event, r.actor,     r.outcome, r.details,
                                       r.prev_hash, r.hash, r.upstream ? "true" : "false"};
    for (std::size_t i = 0; i < std::size(fields); ++i) {
        if (i != 0) out += ',';
        append_csv_field(out, fields[i]);
    }
    return out;
}

int cef_severity(std::string_view outcome) {
    if (outcome == "found") return 8;
    if (outcome == "error") return 7;
    if (outcome == "refused" || outcome == "rejected" || outcome == "fail") return 6;
    if (outcome == "held") return 5;
    return 3;
}

std::string cef_line(const Record& r) {
    std::string out = "CEF:0|Sluice|sluice|" + cef_header_field(kVersion) + "|" + cef_header_field(r.event) + "|" +
                      cef_header_field(event_title(r.event)) + "|" + std::to_string(cef_severity(r.outcome)) + "|";
    bool first = true;
    auto add = [&](std::string_view key, std::string_view value) {
        if (value.empty()) return;
        if (!first) out += ' ';
        first = false;
        out += key;
        out += '=';
        out += cef_extension_value(value);
    };
    auto add_labelled = [&](std::string_view key, std::string_view value, std::string_view label) {
        if (value.empty()) return;
        add(key, value);
        add(std::string(key) + "Label", label);
    };
    if (auto ms = epoch_millis(r.time)) add("rt", std::to_string(*ms));
    add("dvchost", r.host);
    add("suser", r.actor);
    add("outcome", r.outcome);
    add_labelled("cs1", r.bundle, "bundle");
    add_labelled("cs2", r.channel, "channel");
    add_labelled("cn1", std::to_string(r.seq), "seq");
    add_labelled("cs3", r.hash, "hash");
    add_labelled("cs4", r.side, "side");
    add_labelled("cs5", r.prev_hash, "prev_hash");
    add_labelled("cs6", r.upstream ? "true" : "false", "upstream");
    add("msg", r.details);
    return out;
}

int syslog_severity(std::string_view outcome) {
    if (outcome == "error") return 3;
    if (outcome == "refused" || outcome == "rejected" || outcome == "fail" || outcome == "found" || outcome == "held")
        return 4;
    return 5;
}

std::string syslog_line(const Record& r) {
    constexpr int kFacilityLogAudit = 13;
    // 32473 is the example Private Enterprise Number reserved for documentation
    // (RFC 5612); Sluice has no PEN of its own. SD-IDs with '@' are private.
    constexpr std::string_view kSdId = "sluice@32473";
    std::string out = "<" + std::to_string(kFacilityLogAudit * 8 + syslog_severity(r.outcome)) + ">1 ";
    // TIMESTAMP: the stored RFC 3339 time when it is one RFC 5424 accepts, else NILVALUE.
    out += epoch_millis(r.time).has_value() ? r.time : std::string("-");  // uppercase T and Z, ≤ 6 fraction digits
    out += ' ';
    out += printable_ascii(r.host, 255);
    out += ' ';
    out += r.side.empty() ? std::string("sluice") : "sluice-" + printable_ascii(r.side, 48 - 7);
    out += " - ";
    out += printable_ascii(r.event, 32);
    out += " [";
    out += kSdId;
    auto param = [&](std::string_view name, std::string_view value) {
        out += ' ';
        out += name;
        out += "=\"";
        out += sd_value(value);
        out += '"';
    };
    param("seq", std::to_string(r.seq));
    param("bundle", r.bundle);
    param("channel", r.channel);
    param("actor", r.actor);
    param("outcome", r.outcome);
    param("hash", r.hash);
    if (r.upstream) param("upstream", "true");
    out += ']';
    if (!r.details.empty()) {
        out += ' ';
        out += one_line(r.details);
    }
    return out;
}

// ---- RecordWriter ---------------------------------------------------------

RecordWriter::RecordWriter(std::ostream& out, Format format, bool header) : out_(out), format_(format), header_(header) {}

RecordWriter::~RecordWriter() { finish(); }

void RecordWriter::write(std::span<const Record> records) {
    if (finished_) return;
    switch (format_) {
        case Format::table:
            if (records.empty()) return;
            write_table(out_, records, header_ && !started_);
            break;
        case Format::json: {
            if (!started_) out_ << "[";
            bool first = written_ == 0;
            for (const auto& r : records) {
                out_ << (first ? "\n" : ",\n") << record_json(r);
                first = false;
            }
            break;
        }
        case Format::jsonl:
            for (const auto& r : records) out_ << record_json(r) << '\n';
            break;
        case Format::csv:
            if (!started_ && header_) out_ << csv_header() << "\r\n";
            for (const auto& r : records) out_ << csv_row(r) << "\r\n";
            break;
        case Format::cef:
            for (const auto& r : records) out_ << cef_line(r) << '\n';
            break;
        case Format::syslog:
            for (const auto& r : records) out_ << syslog_line(r) << '\n';
            break;
    }
    started_ = true;
    written_ += records.size();
}

void RecordWriter::finish() {
    if (finished_) return;
    if (format_ == Format::json) {
        if (!started_) out_ << "[";
        out_ << (written_ == 0 ? "]\n" : "\n]\n");
    } else if (format_ == Format::csv && !started_ && header_) {
        out_ << csv_header() << "\r\n";
    }
    started_ = true;
    finished_ = true;
    out_.flush();
}

void write_records(std::ostream& out, Format format, std::span<const Record> records, bool header) {
    RecordWriter writer(out, format, header);
    writer.write(records);
    writer.finish();
}

}  // namespace sluice::audit
