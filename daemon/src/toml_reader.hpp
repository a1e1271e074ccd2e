#pragma once
// Reading TOML configuration files strictly, for every file the daemons read
// (sender.toml, receiver.toml, policy.toml): unknown keys refused with a
// suggestion, types and ranges checked, and every refusal a ConfigError that
// names FILE:LINE: KEY. Private to sluice::daemon_support.

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <span>
#include <sstream>
#include <string_view>

#include <toml++/toml.h>

#include "sluice/daemon/config.hpp"
#include "sluice/daemon/values.hpp"

namespace sluice::daemon::toml_reading {
namespace fs = std::filesystem;


using Keys = std::span<const std::string_view>;

inline int line_of(const toml::source_region& src) { return static_cast<int>(src.begin.line); }

inline std::string_view type_name(toml::node_type t) {
    switch (t) {
        case toml::node_type::table: return "a table";
        case toml::node_type::array: return "an array";
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a float";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::date: return "a date";
        case toml::node_type::time: return "a time";
        case toml::node_type::date_time: return "a date-time";
        case toml::node_type::none: break;
    }
    return "nothing";
}

inline std::size_t edit_distance(std::string_view a, std::string_view b) {
    std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
    for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        cur[0] = i;
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
        }
        std::swap(prev, cur);
    }
    return prev[b.size()];
}

/// " (did you mean \"rate\"?)" when one allowed key is close enough, else "".
inline std::string suggestion(std::string_view unknown, Keys allowed) {
    std::string_view best;
    std::size_t best_distance = std::numeric_limits<std::size_t>::max();
    for (auto candidate : allowed) {
        const std::size_t d = edit_distance(unknown, candidate);
        if (d < best_distance) {
            best_distance = d;
            best = candidate;
        }
    }
    const std::size_t limit = std::max<std::size_t>(2, unknown.size() / 3);
    if (best.empty() || best_distance > limit) return {};
    return " (did you mean \"" + std::string(best) + "\"?)";
}

inline std::string join(Keys keys) {
    std::string out;
    for (auto k : keys) {
        if (!out.empty()) out += ", ";
        out += k;
    }
    return out;
}

/// One TOML table being read, with the file it came from for error messages.
class TableReader {
public:
    TableReader(const fs::path& file, const fs::path& base_dir, const toml::table& table, std::string name)
        : file_(file), base_dir_(base_dir), table_(table), name_(std::move(name)) {}

    [[noreturn]] void fail_at(int line, std::string_view key, std::string problem) const {
        throw ConfigError(file_, line, qualified(key), std::move(problem));
    }

    /// Refuses any key outside `allowed`; `elsewhere` are keys that belong to
    /// the other daemon, refused with a message saying so.
    void refuse_unknown(Keys allowed, Keys elsewhere, std::string_view elsewhere_reason) const {
        for (auto&& [k, v] : table_) {
            (void)v;
            const std::string_view name = k.str();
            if (std::find(allowed.begin(), allowed.end(), name) != allowed.end()) continue;
            if (std::find(elsewhere.begin(), elsewhere.end(), name) != elsewhere.end())
                fail_at(line_of(k.source()), name, "not allowed here: " + std::string(elsewhere_reason));
            fail_at(line_of(k.source()), name,
                    "unknown key" + suggestion(name, allowed) + "; allowed keys: " + join(allowed));
        }
    }

    [[nodiscard]] const toml::node* find(std::string_view key) const { return table_.get(key); }
    [[nodiscard]] int line(std::string_view key) const {
        const toml::node* n = find(key);
        return n != nullptr ? line_of(n->source()) : table_line();
    }
    [[nodiscard]] int table_line() const { return line_of(table_.source()); }

    [[noreturn]] void missing(std::string_view key, std::string_view example) const {
        fail_at(table_line(), key, "missing required key; add it to [" + name_ + "], e.g. " + std::string(example));
    }

    template <class T>
    const toml::value<T>* typed(const toml::node& n, std::string_view key, std::string_view expected) const {
        const auto* v = n.as<T>();
        if (v == nullptr)
            fail_at(line_of(n.source()), key,
                    "expected " + std::string(expected) + ", got " + std::string(type_name(n.type())));
        return v;
    }

    std::optional<std::string> string(std::string_view key) const {
        const toml::node* n = find(key);
        if (n == nullptr) return std::nullopt;
        return typed<std::string>(*n, key, "a string")->get();
    }

    /// An unsigned integer in [min, max].
    template <class U>
    std::optional<U> integer(std::string_view key, std::uint64_t min, std::uint64_t max) const {
        const toml::node* n = find(key);
        if (n == nullptr) return std::nullopt;
        const std::int64_t v = typed<std::int64_t>(*n, key, "an integer")->get();
        if (v < 0 || static_cast<std::uint64_t>(v) < min || static_cast<std::uint64_t>(v) > max)
            fail_at(line_of(n->source()), key,
                    "must be between " + std::to_string(min) + " and " + std::to_string(max) + " (got " +
                        std::to_string(v) + ")");
        return static_cast<U>(v);
    }

    /// A duration string ("500ms", "1s") in [min, max].
    std::optional<std::chrono::milliseconds> duration(std::string_view key, std::chrono::milliseconds min,
                                                      std::chrono::milliseconds max) const {
        const toml::node* n = find(key);
        if (n == nullptr) return std::nullopt;
        if (n->is_integer() || n->is_floating_point())
            fail_at(line_of(n->source()), key, "expected a duration string with a unit, e.g. \"1s\" or \"500ms\"");
        auto d = parse_duration(typed<std::string>(*n, key, "a duration string")->get());
        if (!d) fail_at(line_of(n->source()), key, d.error().message);
        if (*d < min || *d > max)
            fail_at(line_of(n->source()), key,
                    "must be between " + format_duration(min) + " and " + format_duration(max) + " (got " +
                        format_duration(*d) + ")");
        return *d;
    }

    /// A byte size: an integer (bytes) or a string ("64M"), in [min, max].
    std::optional<std::uint64_t> byte_size(std::string_view key, std::uint64_t min, std::uint64_t max,
                                           std::string_view min_text, std::string_view max_text) const {
        const toml::node* n = find(key);
        if (n == nullptr) return std::nullopt;
        std::uint64_t value = 0;
        if (const auto* i = n->as_integer()) {
            if (i->get() < 0) fail_at(line_of(n->source()), key, "must not be negative");
            value = static_cast<std::uint64_t>(i->get());
        } else {
            auto parsed = parse_byte_size(typed<std::string>(*n, key, "a size (\"64M\") or an integer")->get());
            if (!parsed) fail_at(line_of(n->source()), key, parsed.error().message);
            value = *parsed;
        }
        if (value < min || value > max)
            fail_at(line_of(n->source()), key,
                    "must be between " + std::string(min_text) + " and " + std::string(max_text) + " (got " +
                        std::to_string(value) + " bytes)");
        return value;
    }

    /// A bit rate: an integer (bits/s) or a string ("800M", "1.5G"), in [min, max].
    std::optional<std::uint64_t> bit_rate(std::string_view key, std::uint64_t min, std::uint64_t max,
                                          std::string_view range_text) const {
        const toml::node* n = find(key);
        if (n == nullptr) return std::nullopt;
        std::uint64_t value = 0;
        if (const auto* i = n->as_integer()) {
            if (i->get() < 0) fail_at(line_of(n->source()), key, "must not be negative");
            value = static_cast<std::uint64_t>(i->get());
        } else {
            auto parsed = parse_bit_rate(typed<std::string>(*n, key, "a bit rate (\"800M\") or an integer")->get());
            if (!parsed) fail_at(line_of(n->source()), key, parsed.error().message);
            value = *parsed;
        }
        if (value < min || value > max)
            fail_at(line_of(n->source()), key,
                    "must be between " + std::string(range_text) + " (got " + std::to_string(value) + " bits/s)");
        return value;
    }

    /// An array of non-empty strings with their lines.
    std::optional<std::vector<std::pair<std::string, int>>> strings(std::string_view key) const {
        const toml::node* n = find(key);
        if (n == nullptr) return std::nullopt;
        const auto* arr = n->as_array();
        if (arr == nullptr)
            fail_at(line_of(n->source()), key,
                    "expected an array of strings, got " + std::string(type_name(n->type())) +
                        " (write [\"…\"] even for one value)");
        std::vector<std::pair<std::string, int>> out;
        for (const toml::node& element : *arr) {
            const auto* s = element.as_string();
            if (s == nullptr)
                fail_at(line_of(element.source()), key,
                        "expected an array of strings, found " + std::string(type_name(element.type())));
            if (s->get().empty()) fail_at(line_of(element.source()), key, "empty string in the list");
            out.emplace_back(s->get(), line_of(element.source()));
        }
        return out;
    }

    [[nodiscard]] fs::path resolve(const std::string& text, int line, std::string_view key) const {
        if (text.empty()) fail_at(line, key, "empty path");
        if (text.find('\0') != std::string::npos) fail_at(line, key, "path contains a NUL byte");
        fs::path p(text);
        if (p.is_relative()) p = base_dir_ / p;
        return p.lexically_normal();
    }

    std::optional<fs::path> path(std::string_view key) const {
        auto s = string(key);
        if (!s) return std::nullopt;
        return resolve(*s, line(key), key);
    }

    [[nodiscard]] std::string qualified(std::string_view key) const {
        if (key.empty()) return name_;
        return name_ + "." + std::string(key);
    }

private:
    const fs::path& file_;
    const fs::path& base_dir_;
    const toml::table& table_;
    std::string name_;
};

/// The whole document: which top-level tables it has.
struct Document {
    fs::path file;      // as given, for messages
    fs::path base_dir;  // directory of the absolute file
    toml::table root;

    [[noreturn]] void fail_at(int line, std::string key, std::string problem) const {
        throw ConfigError(file, line, std::move(key), std::move(problem));
    }

    void refuse_unknown_tables(Keys allowed, std::string_view other_table, std::string_view other_kind) const {
        for (auto&& [k, v] : root) {
            const std::string_view name = k.str();
            const bool known = std::find(allowed.begin(), allowed.end(), name) != allowed.end();
            if (known && !v.is_table())
                fail_at(line_of(k.source()), std::string(name),
                        "expected a table [" + std::string(name) + "], got " + std::string(type_name(v.type())));
            if (known) continue;
            if (name == other_table)
                fail_at(line_of(k.source()), std::string(name),
                        "this table belongs in a " + std::string(other_kind) +
                            " configuration; is this the right file?");
            const std::string what = v.is_table() ? "unknown table" : "unknown top-level key (keys go inside a table)";
            fail_at(line_of(k.source()), std::string(name),
                    what + suggestion(name, allowed) + "; allowed tables: " + join(allowed));
        }
    }

    /// The table `name`, or an empty stand-in when optional and absent.
    const toml::table* table(std::string_view name, bool required) const {
        const toml::node* n = root.get(name);
        if (n == nullptr) {
            if (required)
                fail_at(0, std::string(name), "missing table; add a [" + std::string(name) + "] section");
            return nullptr;
        }
        return n->as_table();
    }
};

inline Document read_document(const fs::path& file) {
    Document doc;
    doc.file = file;
    std::error_code ec;
    fs::path absolute = fs::absolute(file, ec);
    if (ec) absolute = file;
    doc.base_dir = absolute.parent_path();

    if (fs::is_directory(file, ec)) throw ConfigError(file, 0, "", "is a directory, not a configuration file");
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        const int err = errno;
        throw ConfigError(file, 0, "", std::string("cannot read the configuration file: ") + std::strerror(err));
    }
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) throw ConfigError(file, 0, "", "cannot read the configuration file");
    try {
        doc.root = toml::parse(text.str(), file.string());
    } catch (const toml::parse_error& e) {
        const auto& src = e.source();
        throw ConfigError(file, static_cast<int>(src.begin.line), "",
                          "TOML syntax error: " + std::string(e.description()), static_cast<int>(src.begin.column));
    }
    return doc;
}

/// trusted_keys and min_signers, shared by both sides.
inline void read_trust(const TableReader& r, std::vector<fs::path>& keys, unsigned& min_signers) {
    const auto list = r.strings("trusted_keys");
    if (!list) r.missing("trusted_keys", "trusted_keys = [\"keys/release.pub\"]");
    if (list->empty())
        r.fail_at(r.line("trusted_keys"), "trusted_keys", "list at least one public key of a trusted signer");
    for (const auto& [text, line] : *list) {
        const fs::path p = r.resolve(text, line, "trusted_keys");
        std::error_code ec;
        const auto status = fs::status(p, ec);
        if (!fs::exists(status)) r.fail_at(line, "trusted_keys", p.string() + " does not exist");
        if (!fs::is_regular_file(status)) r.fail_at(line, "trusted_keys", p.string() + " is not a regular file");
        if (std::find(keys.begin(), keys.end(), p) != keys.end())
            r.fail_at(line, "trusted_keys", p.string() + " is listed twice");
        keys.push_back(p);
    }
    if (auto v = r.integer<unsigned>("min_signers", 1, 64)) min_signers = *v;
    if (min_signers > keys.size())
        r.fail_at(r.line("min_signers"), "min_signers",
                  "requires " + std::to_string(min_signers) + " signers but trusted_keys lists only " +
                      std::to_string(keys.size()));
}

inline fs::path absolute_or_given(const fs::path& file) {
    std::error_code ec;
    fs::path p = fs::absolute(file, ec);
    return ec ? file : p.lexically_normal();
}

/// Runs `body`, letting ConfigError through and turning anything else into one.
template <class F>
auto guarded(const fs::path& file, F&& body) -> decltype(body()) {
    try {
        return body();
    } catch (const ConfigError&) {
        throw;
    } catch (const std::exception& e) {
        throw ConfigError(file, 0, "", std::string("cannot load the configuration: ") + e.what());
    } catch (...) {
        throw ConfigError(file, 0, "", "cannot load the configuration: unexpected error");
    }
}

}  // namespace sluice::daemon::toml_reading
