// Write volumes to a directory, import them into a FileBlockStore: the archive comes back.
#include <catch2/catch.hpp>

#include "media_fixture.hpp"

using namespace sluice;
using namespace sluice::media::test;

TEST_CASE("a single volume round-trips through write and import", "[media]") {
    Fixture f(3u << 20);
    auto report = f.write({f.dir / "usb1"}, {});
    REQUIRE(report.volumes == 1);
    REQUIRE(report.written.size() == 1);
    auto scan = media::scan_medium(f.dir / "usb1", nullptr);
    REQUIRE(scan);
    REQUIRE(scan->volumes.size() == 1);
    CHECK(scan->problems.empty());
    CHECK(scan->ignored.empty());
    auto imported = media::import_volume(scan->volumes[0], f.store(), nullptr);
    REQUIRE(imported);
    CHECK(imported->archive_complete());
    CHECK(imported->blocks_repaired == 0);
    CHECK(f.assembled(scan->volumes[0], *imported) == f.archive_bytes);
}
