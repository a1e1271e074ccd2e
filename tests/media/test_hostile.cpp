// Hostile media: links and special files are reported and never followed or
// opened, unexpected files are reported, absurd sizes are refused without
// being read, extra bytes are ignored.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "media_fixture.hpp"

using namespace sluice;
using namespace sluice::media;
using namespace sluice::media::test;

namespace {

struct Medium {
    Fixture f{256u << 10, 61};
    fs::path mount = f.dir / "usb";
    fs::path dir;
    std::string rel;  // SLUICE/<dir>

    Medium() {
        // K=16, M=8, run 4: 6 segments (0-3 data, 4-5 parity), 16 blocks.
        f.write({mount}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
        for (const auto& e : fs::directory_iterator(mount / "SLUICE")) dir = e.path();
        rel = "SLUICE/" + dir.filename().string();
    }
    MediumScan scan(const IndexLimits& limits = {}) {
        auto s = scan_medium(mount, nullptr, limits);
        if (!s) FAIL(s.error().message);
        return *s;
    }
    fs::path segment(unsigned stripe) const {
        char name[32];
        std::snprintf(name, sizeof name, "v0001-c0000-s%03u.seg", stripe);
        return dir / name;
    }
};

bool has(const std::vector<std::string>& lines, const std::string& line) {
    return std::find(lines.begin(), lines.end(), line) != lines.end();
}

}  // namespace

TEST_CASE("a medium without SLUICE/, or with SLUICE a symlink or a file, is refused clearly", "[media][hostile]") {
    Medium m;
    auto none = scan_medium(m.f.dir / "nothing", nullptr);
    REQUIRE_FALSE(none);
    CHECK_THAT(none.error().message, Catch::StartsWith("no SLUICE directory on " + (m.f.dir / "nothing").string() +
                                                       ": not a Sluice medium"));

    // SLUICE a symbolic link to a real, valid SLUICE directory elsewhere.
    fs::create_directories(m.f.dir / "evil");
    fs::create_directory_symlink(m.mount / "SLUICE", m.f.dir / "evil" / "SLUICE");
    auto link = scan_medium(m.f.dir / "evil", nullptr);
    REQUIRE_FALSE(link);
    CHECK(link.error().message == (m.f.dir / "evil" / "SLUICE").string() + " is a symbolic link, not followed");

    fs::create_directories(m.f.dir / "file");
    sluice::test::write_file(m.f.dir / "file" / "SLUICE", "x");
    auto file = scan_medium(m.f.dir / "file", nullptr);
    REQUIRE_FALSE(file);
    CHECK(file.error().message == (m.f.dir / "file" / "SLUICE").string() + " is an unexpected file");
}

TEST_CASE("a symlinked bundle directory in SLUICE/ is reported and not followed", "[media][hostile]") {
    Medium m;
    // A second "bundle" that is a link to the real one.
    fs::create_directory_symlink(m.dir, m.mount / "SLUICE" / "linked");
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    CHECK(scan.volumes[0].directory == m.dir);
    CHECK(scan.ignored == std::vector<std::string>{"SLUICE/linked: a symbolic link, not followed"});
}

TEST_CASE("a segment that is a symlink to a real segment elsewhere is not followed: the segment is missing",
          "[media][hostile]") {
    Medium m;
    fs::rename(m.segment(0), m.f.dir / "elsewhere.seg");
    fs::create_symlink(m.f.dir / "elsewhere.seg", m.segment(0));
    // And a link in SLUICE/ itself.
    fs::create_symlink(m.f.dir / "elsewhere.seg", m.mount / "SLUICE" / "v0001-c0000-s000.seg");
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    CHECK(scan.problems.empty());
    CHECK(has(scan.ignored, m.rel + "/v0001-c0000-s000.seg: a symbolic link, not followed"));
    CHECK(has(scan.ignored, "SLUICE/v0001-c0000-s000.seg: a symbolic link, not followed"));
    CHECK(scan.ignored.size() == 2);
    auto imp = m.f.import(scan.volumes[0]);
    CHECK_FALSE(imp.segments[0].present);
    CHECK(imp.segments[0].records_read == 0);
    CHECK(imp.blocks_repaired == 16);
    CHECK(m.f.assembled(scan.volumes[0], imp) == m.f.archive_bytes);
}

TEST_CASE("a FIFO named like a segment is reported and never opened for reading; the import does not hang",
          "[media][hostile]") {
    Medium m;
    fs::remove(m.segment(1));
    REQUIRE(::mkfifo(m.segment(1).c_str(), 0644) == 0);
    REQUIRE(::mkfifo((m.mount / "SLUICE" / "pipe").c_str(), 0644) == 0);
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    CHECK(has(scan.ignored, m.rel + "/v0001-c0000-s001.seg: a special file, not opened"));
    CHECK(has(scan.ignored, "SLUICE/pipe: a special file, not opened"));
    CHECK(scan.ignored.size() == 2);
    // Were it opened blocking, this would wait for a writer forever.
    auto imp = m.f.import(scan.volumes[0]);
    CHECK_FALSE(imp.segments[1].present);
    CHECK(imp.blocks_repaired == 16);
    CHECK(m.f.assembled(scan.volumes[0], imp) == m.f.archive_bytes);
}

TEST_CASE("an index that is a FIFO or a symlink is not read; the other copy is", "[media][hostile]") {
    Medium m;
    fs::rename(m.dir / "v0001.index", m.f.dir / "real.index");
    REQUIRE(::mkfifo((m.dir / "v0001.index").c_str(), 0644) == 0);
    fs::remove(m.dir / "v0001.index2");
    fs::create_symlink(m.f.dir / "real.index", m.dir / "v0001.index2");
    auto scan = m.scan();
    // Neither copy is a regular file: no volume, and both are reported.
    CHECK(scan.volumes.empty());
    CHECK(has(scan.ignored, m.rel + "/v0001.index: a special file, not opened"));
    CHECK(has(scan.ignored, m.rel + "/v0001.index2: a symbolic link, not followed"));
    fs::remove(m.dir / "v0001.index2");
    fs::copy_file(m.f.dir / "real.index", m.dir / "v0001.index2");
    scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    CHECK(has(scan.ignored, m.rel + "/v0001.index: a special file, not opened"));
}

TEST_CASE("unexpected files and directories are reported and left alone", "[media][hostile]") {
    Medium m;
    sluice::test::write_file(m.dir / "README.txt", "hello");
    sluice::test::write_file(m.mount / "SLUICE" / "notes.txt", "hello");
    fs::create_directory(m.dir / "sub");
    sluice::test::write_file(m.dir / "v0001.index3", "x");
    sluice::test::write_file(m.dir / "v0001-c0000-s000.seg.bak", "x");
    sluice::test::write_file(m.dir / "v0001-c0000-s0000.seg", "x");
    sluice::test::write_file(m.dir / "v0002-c0000-s000.seg", "x");  // no index for volume 2
    sluice::test::write_file(m.dir / "v0001-c0001-s000.seg", "x");  // a set the index does not have
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    CHECK(scan.problems.empty());
    std::vector<std::string> expected = {
        "SLUICE/notes.txt: an unexpected file",
        m.rel + "/README.txt: an unexpected file",
        m.rel + "/sub: an unexpected directory",
        m.rel + "/v0001.index3: an unexpected file",
        m.rel + "/v0001-c0000-s000.seg.bak: an unexpected file",
        m.rel + "/v0001-c0000-s0000.seg: an unexpected file",
        m.rel + "/v0002-c0000-s000.seg: not listed by a readable index",
        m.rel + "/v0001-c0001-s000.seg: not listed by a readable index",
    };
    auto got = scan.ignored;
    std::sort(got.begin(), got.end());
    std::sort(expected.begin(), expected.end());
    CHECK(got == expected);
    CHECK(sluice::test::read_file(m.dir / "README.txt") == "hello");
    auto imp = m.f.import(scan.volumes[0]);
    CHECK(imp.blocks_direct == 16);
}

TEST_CASE("a leftover .tmp of an interrupted write is reported as an unfinished write", "[media][hostile]") {
    Medium m;
    fs::copy_file(m.segment(0), m.dir / ".v0001-c0000-s000.seg.tmp");
    sluice::test::write_file(m.dir / ".v0001.index.tmp", "partial");
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    auto got = scan.ignored;
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<std::string>{m.rel + "/.v0001-c0000-s000.seg.tmp: an unfinished write, ignored",
                                          m.rel + "/.v0001.index.tmp: an unfinished write, ignored"});
}

TEST_CASE("an index file over the size limit is refused without being read", "[media][hostile]") {
    Medium m;
    // 8 GiB, sparse: reading it whole would take minutes and all the memory.
    fs::rename(m.dir / "v0001.index", m.f.dir / "kept.index");
    {
        int fd = ::open((m.dir / "v0001.index").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, 8LL << 30) == 0);
        ::close(fd);
    }
    const std::string limit = std::to_string(68 + kMaxIndexBody + kTagBytes + 32);
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    REQUIRE(scan.volumes[0].notes.size() == 1);
    CHECK(scan.volumes[0].notes[0] ==
          (m.dir / "v0001.index").string() + " claims 8589934592 bytes, over the limit of " + limit +
              " (the other copy was read)");

    // Both copies too large: a problem naming the volume and both files.
    fs::remove(m.dir / "v0001.index2");
    fs::copy_file(m.f.dir / "kept.index", m.dir / "v0001.index2");
    IndexLimits small;
    small.max_body_bytes = 100;
    scan = m.scan(small);
    CHECK(scan.volumes.empty());
    REQUIRE(scan.problems.size() == 1);
    CHECK_THAT(scan.problems[0], Catch::StartsWith(m.rel + " volume 1: "));
    CHECK_THAT(scan.problems[0], Catch::Contains("v0001.index claims 8589934592 bytes, over the limit of 216"));
    CHECK_THAT(scan.problems[0], Catch::Contains("v0001.index2 claims "));
}

TEST_CASE("a segment file much longer than the index says: the extra bytes are ignored", "[media][hostile]") {
    Medium m;
    const auto before = fs::file_size(m.segment(2));
    {
        std::ofstream out(m.segment(2), std::ios::binary | std::ios::app);
        out << sluice::test::random_bytes(3u << 20, 5);
    }
    {
        // And one sparse to 64 GiB: nothing beyond the index's length is read.
        int fd = ::open(m.segment(3).c_str(), O_WRONLY);
        REQUIRE(fd >= 0);
        REQUIRE(::ftruncate(fd, 64LL << 30) == 0);
        ::close(fd);
    }
    REQUIRE(fs::file_size(m.segment(2)) == before + (3u << 20));
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    CHECK(scan.ignored.empty());
    auto imp = m.f.import(scan.volumes[0]);
    CHECK(imp.segments[2].records_read == scan.volumes[0].index.segments[2].records);
    CHECK(imp.segments[2].records_bad == 0);
    CHECK(imp.segments[3].records_read == scan.volumes[0].index.segments[3].records);
    CHECK(imp.blocks_direct == 16);
    CHECK(m.f.assembled(scan.volumes[0], imp) == m.f.archive_bytes);
}

TEST_CASE("a segment under a non-canonical name is not read", "[media][hostile]") {
    Medium m;
    fs::rename(m.segment(1), m.dir / "v1-c0-s1.seg");
    fs::rename(m.segment(2), m.dir / "v+001-c0000-s002.seg");  // sscanf would take it
    fs::rename(m.segment(3), m.dir / "V0001-C0000-S003.SEG");
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    auto got = scan.ignored;
    std::sort(got.begin(), got.end());
    std::vector<std::string> expected = {m.rel + "/v1-c0-s1.seg: an unexpected file",
                                         m.rel + "/v+001-c0000-s002.seg: an unexpected file",
                                         m.rel + "/V0001-C0000-S003.SEG: an unexpected file"};
    std::sort(expected.begin(), expected.end());
    CHECK(got == expected);
    auto imp = m.f.import(scan.volumes[0]);
    CHECK_FALSE(imp.segments[1].present);
    CHECK_FALSE(imp.segments[2].present);
    CHECK_FALSE(imp.segments[3].present);
    // Three segments of 4 symbols is 12 erasures, over M = 8: every block is lost.
    CHECK(imp.unrecoverable == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, 15}});
}

TEST_CASE("a directory named like a segment is reported and the segment counted missing", "[media][hostile]") {
    Medium m;
    fs::remove(m.segment(2));
    fs::create_directory(m.segment(2));
    auto scan = m.scan();
    REQUIRE(scan.volumes.size() == 1);
    CHECK(scan.ignored == std::vector<std::string>{m.rel + "/v0001-c0000-s002.seg: an unexpected directory"});
    auto imp = m.f.import(scan.volumes[0]);
    CHECK_FALSE(imp.segments[2].present);
    CHECK(imp.blocks_repaired == 16);
    CHECK(m.f.assembled(scan.volumes[0], imp) == m.f.archive_bytes);
}

TEST_CASE("an index and segments of another write in the same directory do not mix", "[media][hostile]") {
    Medium m;
    // A forged index whose segments claim another size: refused, its volume listed as a problem.
    auto bytes = sluice::test::read_file(m.dir / "v0001.index");
    auto parsed = parse_index(as_bytes(bytes), nullptr);
    REQUIRE(parsed.error == IndexError::none);
    auto forged = parsed.index;
    forged.segments[0].bytes *= 2;
    auto out = encode_index(forged, nullptr);
    sluice::test::write_file(m.dir / "v0001.index", as_string(out));
    sluice::test::write_file(m.dir / "v0001.index2", as_string(out));
    auto scan = m.scan();
    CHECK(scan.volumes.empty());
    REQUIRE(scan.problems.size() == 1);
    CHECK(scan.problems[0] == m.rel + " volume 1: v0001.index: segment 0 (v0001-c0000-s000.seg) does not match the layout; "
                                      "v0001.index2: segment 0 (v0001-c0000-s000.seg) does not match the layout");
}
