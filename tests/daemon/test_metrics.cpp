#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <limits>

#include "sluice/daemon/metrics.hpp"
#include "support/temp_dir.hpp"

using namespace sluice::daemon;
using sluice::test::TempDir;

namespace {

std::vector<MetricSample> sample_set(double frames) {
    return {
        {"sluice_frames_sent", "Frames put on the wire.", MetricType::counter, {{"lane", "127.0.0.1:47000"}}, frames},
        {"sluice_queue_bundles", "Bundles waiting to be sent.", MetricType::gauge, {}, 3},
        {"sluice_frames_sent_total", "ignored: the family's first help wins", MetricType::counter,
         {{"lane", "127.0.0.1:47001"}}, 7},
    };
}

}  // namespace

TEST_CASE("metrics render in the text format node_exporter reads", "[daemon][metrics]") {
    auto text = render_metrics(sample_set(1234));
    REQUIRE(text);
    CHECK(*text ==
          "# HELP sluice_frames_sent_total Frames put on the wire.\n"
          "# TYPE sluice_frames_sent_total counter\n"
          "sluice_frames_sent_total{lane=\"127.0.0.1:47000\"} 1234\n"
          "sluice_frames_sent_total{lane=\"127.0.0.1:47001\"} 7\n"
          "# HELP sluice_queue_bundles Bundles waiting to be sent.\n"
          "# TYPE sluice_queue_bundles gauge\n"
          "sluice_queue_bundles 3\n");
}

TEST_CASE("metrics escape help and label values and format special values", "[daemon][metrics]") {
    std::vector<MetricSample> s{
        {"m", "line one\nback\\slash", MetricType::gauge, {{"a", "q\"uote\\n\nx"}, {"b", ""}}, 0.25},
        {"m", "", MetricType::gauge, {{"a", "nan"}}, std::numeric_limits<double>::quiet_NaN()},
        {"m", "", MetricType::gauge, {{"a", "inf"}}, std::numeric_limits<double>::infinity()},
        {"m", "", MetricType::gauge, {{"a", "big"}}, 1e20},
    };
    auto text = render_metrics(s);
    REQUIRE(text);
    CHECK(*text ==
          "# HELP m line one\\nback\\\\slash\n"
          "# TYPE m gauge\n"
          "m{a=\"q\\\"uote\\\\n\\nx\",b=\"\"} 0.25\n"
          "m{a=\"nan\"} NaN\n"
          "m{a=\"inf\"} +Inf\n"
          "m{a=\"big\"} 1e+20\n");
}

TEST_CASE("metrics refuse invalid names and mixed types", "[daemon][metrics]") {
    CHECK_FALSE(render_metrics(std::vector<MetricSample>{{"1bad", "", MetricType::gauge, {}, 0}}));
    CHECK_FALSE(render_metrics(std::vector<MetricSample>{{"bad-name", "", MetricType::gauge, {}, 0}}));
    CHECK_FALSE(render_metrics(std::vector<MetricSample>{{"ok", "", MetricType::gauge, {{"la-bel", "v"}}, 0}}));
    CHECK_FALSE(render_metrics(std::vector<MetricSample>{{"ok", "", MetricType::gauge, {{"__reserved", "v"}}, 0}}));
    auto mixed = render_metrics(std::vector<MetricSample>{{"x_total", "", MetricType::counter, {}, 0},
                                                          {"x_total", "", MetricType::gauge, {}, 0}});
    REQUIRE_FALSE(mixed);
    CHECK_THAT(mixed.error().message, Catch::Contains("both as a counter and as a gauge"));
}

TEST_CASE("metrics file is replaced atomically", "[daemon][metrics]") {
    TempDir dir;
    const auto path = dir / "sluice_sender.prom";
    MetricsFile file(path);
    REQUIRE(file.write(sample_set(1)));
    struct stat before {};
    REQUIRE(::stat(path.c_str(), &before) == 0);
    CHECK((before.st_mode & 0777) == 0644);

    // A reader holding the old file keeps seeing the old, complete content.
    const std::string old_content = sluice::test::read_file(path);
    FILE* reader = std::fopen(path.c_str(), "r");
    REQUIRE(reader != nullptr);
    REQUIRE(file.write(sample_set(2)));
    char buf[4096];
    const std::size_t n = std::fread(buf, 1, sizeof buf, reader);
    std::fclose(reader);
    CHECK(std::string(buf, n) == old_content);

    struct stat after {};
    REQUIRE(::stat(path.c_str(), &after) == 0);
    CHECK(after.st_ino != before.st_ino);  // renamed into place, not rewritten
    CHECK_THAT(sluice::test::read_file(path), Catch::Contains("{lane=\"127.0.0.1:47000\"} 2\n"));

    // No temporary file is left behind.
    std::size_t entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
    CHECK(entries == 1);
}

TEST_CASE("metrics write failures leave the old file and no temporary", "[daemon][metrics]") {
    TempDir dir;
    MetricsFile missing_dir(dir / "nope" / "m.prom");
    auto r = missing_dir.write(sample_set(1));
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("No such file or directory"));

    MetricsFile bad(dir / "m.prom");
    REQUIRE(bad.write(sample_set(1)));
    CHECK_FALSE(bad.write(std::vector<MetricSample>{{"bad name", "", MetricType::gauge, {}, 0}}));
    CHECK_THAT(sluice::test::read_file(dir / "m.prom"), Catch::Contains("sluice_queue_bundles 3"));
}
