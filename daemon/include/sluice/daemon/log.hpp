#pragma once
// Structured log lines on stderr, one write per line, which journald reads
// with their sd-daemon priority prefix:
//
//   log_info("bundle_queued", {{"bundle", id}, {"priority", "high"}, {"passes", 2}});
//   -> <6>event=bundle_queued bundle=3f2a… priority=high passes=2
//
// A value is written bare when it is plain, else in double quotes with \" \\ and
// \n \r \t \xHH escapes (control bytes, invalid UTF-8), so one event is
// always one line that `key=value` tools split correctly. Never log file
// contents or secrets.

#include <concepts>
#include <filesystem>
#include <initializer_list>
#include <span>
#include <string>
#include <string_view>

namespace sluice::daemon {

/// syslog / sd-daemon priorities.
enum class LogLevel { critical = 2, error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

/// One `key=value` pair; built from strings, paths, integers, floats and bools.
struct LogField {
    LogField(std::string_view k, std::string_view v) : key(k), value(v) {}
    LogField(std::string_view k, const char* v) : key(k), value(v != nullptr ? v : "") {}
    LogField(std::string_view k, const std::string& v) : key(k), value(v) {}
    LogField(std::string_view k, const std::filesystem::path& v) : key(k), value(v.string()) {}
    LogField(std::string_view k, bool v) : key(k), value(v ? "true" : "false") {}
    template <class T>
        requires(std::integral<T> && !std::same_as<T, bool> && !std::same_as<T, char>)
    LogField(std::string_view k, T v) : key(k), value(std::to_string(v)) {}
    template <std::floating_point T>
    LogField(std::string_view k, T v) : key(k), value(format_float(static_cast<double>(v))) {}

    std::string_view key;
    std::string value;

private:
    static std::string format_float(double v);
};

using LogFields = std::span<const LogField>;

/// The line `log` writes, with its trailing newline ("<6>event=x a=1\n").
[[nodiscard]] std::string format_log_line(LogLevel level, std::string_view event, LogFields fields);
[[nodiscard]] inline std::string format_log_line(LogLevel level, std::string_view event,
                                                 std::initializer_list<LogField> fields) {
    return format_log_line(level, event, LogFields(fields.begin(), fields.size()));
}

/// `value` as it appears after `key=`: bare, or quoted and escaped.
[[nodiscard]] std::string log_quote(std::string_view value);

/// Writes one line to stderr (fd 2) if `level` passes the threshold. Thread-safe.
void log(LogLevel level, std::string_view event, LogFields fields = {});
inline void log(LogLevel level, std::string_view event, std::initializer_list<LogField> fields) {
    log(level, event, LogFields(fields.begin(), fields.size()));
}

/// Lines less important than `level` are dropped (default: info).
void set_log_level(LogLevel level);

inline void log_debug(std::string_view event, std::initializer_list<LogField> fields = {}) { log(LogLevel::debug, event, fields); }
inline void log_info(std::string_view event, std::initializer_list<LogField> fields = {}) { log(LogLevel::info, event, fields); }
inline void log_notice(std::string_view event, std::initializer_list<LogField> fields = {}) { log(LogLevel::notice, event, fields); }
inline void log_warning(std::string_view event, std::initializer_list<LogField> fields = {}) { log(LogLevel::warning, event, fields); }
inline void log_error(std::string_view event, std::initializer_list<LogField> fields = {}) { log(LogLevel::error, event, fields); }
inline void log_critical(std::string_view event, std::initializer_list<LogField> fields = {}) { log(LogLevel::critical, event, fields); }

}  // namespace sluice::daemon
