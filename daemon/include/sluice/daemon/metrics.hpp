#pragma once
// Counters and gauges for node_exporter's textfile collector, in the
// Prometheus text exposition format that collector parses (the OpenMetrics
// text subset it shares; no `# EOF`, which node_exporter does not expect):
//
//   # HELP sluice_frames_sent_total Frames put on the wire.
//   # TYPE sluice_frames_sent_total counter
//   sluice_frames_sent_total{lane="127.0.0.1:47000"} 1234
//
// Counter names end in `_total` (added when missing). Samples that share a
// name form one family under one HELP/TYPE, whatever their order in the list.
// The file is replaced atomically: written to `<path>.tmp.<pid>`, fsynced and
// renamed, so the collector never reads half a file.

#include <filesystem>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/core/result.hpp"

namespace sluice::daemon {

enum class MetricType { counter, gauge };

struct MetricSample {
    std::string name;  ///< [a-zA-Z_:][a-zA-Z0-9_:]*, e.g. "sluice_frames_sent_total"
    std::string help;  ///< one line
    MetricType type = MetricType::gauge;
    std::vector<std::pair<std::string, std::string>> labels;  ///< names [a-zA-Z_][a-zA-Z0-9_]*; values any text
    double value = 0;
};

/// The exposition text for `samples`. Error: an invalid metric or label name,
/// or one name used with two types.
[[nodiscard]] Result<std::string> render_metrics(std::span<const MetricSample> samples);

class MetricsFile {
public:
    explicit MetricsFile(std::filesystem::path path) : path_(std::move(path)) {}

    /// Renders and atomically replaces the file. Error: rendering failed, or the
    /// directory is missing or not writable (the old file, if any, stays).
    [[nodiscard]] Result<void> write(std::span<const MetricSample> samples) const;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }

private:
    std::filesystem::path path_;
};

}  // namespace sluice::daemon
