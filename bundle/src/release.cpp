#include "sluice/bundle/release.hpp"

#include <chrono>
#include <cstdio>

#include "text.hpp"

namespace sluice::bundle {
namespace {

constexpr std::size_t kMaxReleaseBytes = 1 << 20;
constexpr std::size_t kMaxNesting = 32;
constexpr std::size_t kMaxAnswerBytes = 64 * 1024;
constexpr std::size_t kMaxNameBytes = 1024;

bool name_chars(std::string_view s, std::string_view extra, bool allow_upper) {
    if (s.empty() || s.size() > 64) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (allow_upper && c >= 'A' && c <= 'Z');
        if (alnum) continue;
        if (i == 0 || extra.find(c) == std::string_view::npos) return false;
    }
    return true;
}

/// Deepest nesting of [ and { outside strings; stops counting past the limit.
std::size_t nesting_depth(std::string_view text) {
    std::size_t depth = 0;
    std::size_t deepest = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            deepest = std::max(deepest, ++depth);
            if (deepest > kMaxNesting) return deepest;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

/// Free text shown to officers and auditors: UTF-8, and no control characters
/// (escape sequences could rewrite a terminal or forge log lines); multi-line
/// fields may hold line feeds and tabs.
Result<void> check_text(std::string_view field, const std::string& value, std::size_t max_bytes, bool required,
                        bool multi_line = false) {
    if (required && detail::trim(value).empty()) {
        return fail(std::string(field) + " is empty: every bundle must answer it");
    }
    if (value.size() > max_bytes) {
        return fail(std::string(field) + " is longer than " + std::to_string(max_bytes) + " bytes");
    }
    if (!detail::is_valid_utf8(value)) return fail(std::string(field) + " is not valid UTF-8");
    std::string checked = value;
    if (multi_line) std::erase_if(checked, [](char c) { return c == '\n' || c == '\t'; });
    if (detail::has_control(checked)) {
        return fail(std::string(field) + " contains a control character" +
                    (multi_line ? " (only line feeds and tabs are allowed)" : ""));
    }
    return {};
}

}  // namespace

bool is_valid_channel(std::string_view channel) { return name_chars(channel, "._-", false); }
bool is_valid_version(std::string_view version) { return name_chars(version, "._+-", true); }
bool is_valid_signer_name(std::string_view name) { return name_chars(name, "._-", true); }

std::string format_rfc3339(long long epoch_seconds) {
    using namespace std::chrono;
    sys_seconds tp{seconds{epoch_seconds}};
    auto day = floor<days>(tp);
    year_month_day ymd{day};
    hh_mm_ss hms{tp - day};
    char buf[32];
    std::snprintf(buf, sizeof buf, "%04d-%02u-%02uT%02d:%02d:%02dZ", static_cast<int>(ymd.year()),
                  static_cast<unsigned>(ymd.month()), static_cast<unsigned>(ymd.day()),
                  static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()),
                  static_cast<int>(hms.seconds().count()));
    return buf;
}

Result<long long> parse_rfc3339(std::string_view text) {
    auto bad = [&] {
        return fail("'" + detail::printable(text, 80) + "' is not an RFC 3339 time (expected e.g. 2026-11-29T14:00:00Z)");
    };
    auto digits = [&](std::size_t pos, std::size_t n, int& out) {
        if (pos + n > text.size()) return false;
        out = 0;
        for (std::size_t i = pos; i < pos + n; ++i) {
            if (text[i] < '0' || text[i] > '9') return false;
            out = out * 10 + (text[i] - '0');
        }
        return true;
    };
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    if (!digits(0, 4, y) || text.size() < 20 || text[4] != '-' || !digits(5, 2, mo) || text[7] != '-' ||
        !digits(8, 2, d) || (text[10] != 'T' && text[10] != 't') || !digits(11, 2, h) || text[13] != ':' ||
        !digits(14, 2, mi) || text[16] != ':' || !digits(17, 2, s)) {
        return bad();
    }
    using namespace std::chrono;
    year_month_day ymd{year{y}, month{static_cast<unsigned>(mo)}, day{static_cast<unsigned>(d)}};
    if (!ymd.ok() || h > 23 || mi > 59 || s > 60) return bad();
    std::size_t pos = 19;
    if (pos < text.size() && text[pos] == '.') {
        ++pos;
        std::size_t start = pos;
        while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') ++pos;
        if (pos == start) return bad();
    }
    long long offset = 0;
    if (pos < text.size() && (text[pos] == 'Z' || text[pos] == 'z')) {
        ++pos;
    } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
        int oh = 0, om = 0;
        if (!digits(pos + 1, 2, oh) || pos + 3 >= text.size() || text[pos + 3] != ':' || !digits(pos + 4, 2, om) ||
            oh > 23 || om > 59) {
            return bad();
        }
        offset = (oh * 3600LL + om * 60LL) * (text[pos] == '+' ? 1 : -1);
        pos += 6;
    } else {
        return bad();
    }
    if (pos != text.size()) return bad();
    long long days_since = sys_days{ymd}.time_since_epoch().count();
    return days_since * 86400LL + h * 3600LL + mi * 60LL + std::min(s, 59) - offset;
}

Result<void> validate_release(const Release& r) {
    if (!is_valid_channel(r.channel)) {
        return fail("channel '" + detail::printable(r.channel, 80) + "' is not valid: use 1-64 of a-z 0-9 . _ - starting with a letter or digit");
    }
    auto version_field = [](std::string_view field, const std::string& v) -> Result<void> {
        if (is_valid_version(v)) return {};
        return fail(std::string(field) + " '" + detail::printable(v, 80) +
                    "' is not valid: use 1-64 of A-Z a-z 0-9 . _ + - starting with a letter or digit");
    };
    if (auto ok = version_field("version", r.version); !ok) return ok;
    if (r.previous_version) {
        if (auto ok = version_field("previous_version", *r.previous_version); !ok) return ok;
    }
    if (auto ok = version_field("rollback_to", r.rollback_to); !ok) return ok;
    if (auto ok = check_text("changes", r.changes, kMaxAnswerBytes, true, true); !ok) return ok;
    if (auto ok = check_text("reason", r.reason, kMaxAnswerBytes, true, true); !ok) return ok;
    if (auto ok = check_text("approved_by", r.approved_by, kMaxNameBytes, true); !ok) return ok;
    if (auto ok = check_text("created_by", r.created_by, kMaxNameBytes, true); !ok) return ok;
    auto when = parse_rfc3339(r.created_at);
    if (!when) return when.error().within("created_at");
    if (format_rfc3339(*when) != r.created_at) {
        return fail("created_at '" + detail::printable(r.created_at, 80) + "' must be UTC with second precision, e.g. " +
                    format_rfc3339(*when));
    }
    if (!r.artifacts.is_object()) return fail("artifacts must be a JSON object");
    return {};
}

std::string format_release(const Release& r) {
    nlohmann::json j = nlohmann::json::object();
    j["schema"] = kReleaseSchema;
    j["channel"] = r.channel;
    j["version"] = r.version;
    j["previous_version"] = r.previous_version ? nlohmann::json(*r.previous_version) : nlohmann::json(nullptr);
    j["changes"] = r.changes;
    j["reason"] = r.reason;
    j["approved_by"] = r.approved_by;
    j["rollback_to"] = r.rollback_to;
    j["created_at"] = r.created_at;
    j["created_by"] = r.created_by;
    j["artifacts"] = r.artifacts;
    if (r.rollback) j["rollback"] = true;  // absent otherwise: earlier bundles keep their exact bytes
    // Invalid UTF-8 cannot reach here through validate_release; replace rather than throw regardless.
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

Result<Release> parse_release(std::string_view bytes) {
    if (bytes.size() > kMaxReleaseBytes) return fail("release.json is larger than 1 MiB");
    if (nesting_depth(bytes) > kMaxNesting) return fail("release.json nests deeper than 32 levels");
    nlohmann::json j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return fail("release.json is not valid JSON");
    if (!j.is_object()) return fail("release.json must be a JSON object");

    static constexpr std::string_view kKnown[] = {"schema",      "channel",    "version",    "previous_version",
                                                  "changes",     "reason",     "approved_by", "rollback_to",
                                                  "created_at",  "created_by", "artifacts",  "rollback"};
    for (const auto& [key, value] : j.items()) {
        if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
            return fail("release.json has unknown field '" + detail::printable(key, 80) + "'");
        }
    }
    auto schema = j.find("schema");
    if (schema == j.end() || !schema->is_string() || schema->get_ref<const std::string&>() != kReleaseSchema) {
        return fail("release.json: schema must be \"" + std::string(kReleaseSchema) + "\"");
    }

    Release r;
    auto string_field = [&](const char* name, std::string& out) -> Result<void> {
        auto it = j.find(name);
        if (it == j.end()) return fail(std::string("release.json: missing field '") + name + "'");
        if (!it->is_string()) return fail(std::string("release.json: field '") + name + "' must be a string");
        out = it->get<std::string>();
        return {};
    };
    for (auto [name, out] : {std::pair{"channel", &r.channel}, {"version", &r.version}, {"changes", &r.changes},
                             {"reason", &r.reason}, {"approved_by", &r.approved_by}, {"rollback_to", &r.rollback_to},
                             {"created_at", &r.created_at}, {"created_by", &r.created_by}}) {
        if (auto ok = string_field(name, *out); !ok) return ok.error();
    }
    if (auto it = j.find("previous_version"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) return fail("release.json: field 'previous_version' must be a string or null");
        r.previous_version = it->get<std::string>();
    }
    if (auto it = j.find("rollback"); it != j.end()) {
        if (!it->is_boolean()) return fail("release.json: field 'rollback' must be true or false");
        r.rollback = it->get<bool>();
    }
    if (auto it = j.find("artifacts"); it != j.end()) {
        if (!it->is_object()) return fail("release.json: field 'artifacts' must be an object");
        r.artifacts = *it;
    }
    if (auto ok = validate_release(r); !ok) return ok.error().within("release.json");
    return r;
}

}  // namespace sluice::bundle
