// The write side: refusals before anything is written, replacing a volume
// written before, a medium without room, what the report says.
#include <catch2/catch.hpp>

#include <sys/mount.h>
#include <unistd.h>

#include "media_fixture.hpp"

using namespace sluice;
using namespace sluice::media;
using namespace sluice::media::test;

namespace {

std::string refusal(const WriteRequest& req) {
    auto r = write_volumes(req);
    REQUIRE_FALSE(r);
    return r.error().message;
}

fs::path bundle_dir(const fs::path& mountdir) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(mountdir / "SLUICE")) dirs.push_back(e.path());
    REQUIRE(dirs.size() == 1);
    return dirs[0];
}

/// A small tmpfs mounted for the test (root only), unmounted afterwards.
class SmallMount {
public:
    SmallMount(const fs::path& at, const char* size) : at_(at) {
        fs::create_directories(at);
        std::string options = std::string("size=") + size;
        mounted_ = ::geteuid() == 0 && ::mount("tmpfs", at.c_str(), "tmpfs", 0, options.c_str()) == 0;
    }
    ~SmallMount() {
        if (mounted_) ::umount2(at_.c_str(), MNT_DETACH);
    }
    SmallMount(const SmallMount&) = delete;
    SmallMount& operator=(const SmallMount&) = delete;
    [[nodiscard]] bool mounted() const { return mounted_; }

private:
    fs::path at_;
    bool mounted_ = false;
};

}  // namespace

TEST_CASE("write_volumes refuses targets that are not directories", "[media][write]") {
    Fixture f(256u << 10, 71);
    auto req = f.request({f.dir / "usb"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    req.targets = {f.dir / "missing"};
    CHECK(refusal(req) == (f.dir / "missing").string() + " is not a directory (mount the medium and name its mount point)");
    sluice::test::write_file(f.dir / "plain-file", "x");
    req.targets = {f.dir / "plain-file"};
    CHECK(refusal(req) == (f.dir / "plain-file").string() +
                              " is not a directory (mount the medium and name its mount point)");
    req.targets = {};
    CHECK(refusal(req) == "no target directory given");

    // SLUICE on the target a file, or a symlink to somewhere else: never written through.
    sluice::test::write_file(f.dir / "usb" / "SLUICE", "x");
    req.targets = {f.dir / "usb"};
    CHECK(refusal(req) == (f.dir / "usb" / "SLUICE").string() +
                              " is not a directory (a symbolic link or file is in the way)");
    fs::remove(f.dir / "usb" / "SLUICE");
    fs::create_directories(f.dir / "victim");
    fs::create_directory_symlink(f.dir / "victim", f.dir / "usb" / "SLUICE");
    CHECK(refusal(req) == (f.dir / "usb" / "SLUICE").string() +
                              " is not a directory (a symbolic link or file is in the way)");
    CHECK(fs::is_empty(f.dir / "victim"));
}

TEST_CASE("write_volumes refuses volume numbers the bundle does not have", "[media][write]") {
    Fixture f(256u << 10, 72);
    auto req = f.request({f.dir / "usb"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    req.first_volume = 2;
    CHECK(refusal(req) == "the bundle takes 1 volume(s) of 67108864 bytes; volume 2 does not exist");
    req.first_volume = 0;
    CHECK(refusal(req) == "volumes are numbered from 1");
    req.first_volume = 1;
    req.targets = {f.dir / "usb", f.dir / "usb2"};
    fs::create_directories(f.dir / "usb2");
    CHECK(refusal(req) == "the bundle takes 1 volume(s) of 67108864 bytes; volume 2 does not exist");
    CHECK_FALSE(fs::exists(f.dir / "usb" / "SLUICE"));  // refused before anything was written
}

TEST_CASE("write_volumes refuses an archive that is not the announced size, and bad layout options", "[media][write]") {
    Fixture f(256u << 10, 73);
    auto req = f.request({f.dir / "usb"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    req.info.archive_bytes += 1;
    CHECK(refusal(req) == f.archive.string() + " is 262144 bytes, not the 262145 announced");
    req = f.request({f.dir / "usb"}, {.parity_percent = 0, .data_symbols = 16, .symbol_bytes = 1024});
    CHECK(refusal(req) == "parity 0% is outside 1..200");
    req = f.request({f.dir / "usb"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    req.archive = f.dir / "none.tar";
    CHECK_THAT(refusal(req), Catch::StartsWith("cannot read " + (f.dir / "none.tar").string()));
}

TEST_CASE("writing the same volume again replaces it: no leftovers, the same bytes", "[media][write]") {
    Fixture f(1u << 20, 74);
    f.write({f.dir / "usb"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    const auto dir = bundle_dir(f.dir / "usb");
    const auto first = files_under(f.dir / "usb");
    CHECK(first.size() == 2 + 6);

    // Leftovers of an interrupted and of an older write of volume 1, and files that are not volume 1's.
    sluice::test::write_file(dir / ".v0001-c0000-s000.seg.tmp", "partial");
    sluice::test::write_file(dir / "v0001-c0007-s000.seg", "stale");
    sluice::test::write_file(dir / ".v0001.index.tmp", "partial");
    flip_byte(dir / "v0001-c0000-s005.seg", 10);
    sluice::test::write_file(dir / "v0002-c0000-s000.seg", "another volume");
    sluice::test::write_file(dir / "notes.txt", "the operator's");

    auto again = f.write({f.dir / "usb"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    auto second = files_under(f.dir / "usb");
    const std::string rel = fs::relative(dir, f.dir / "usb").string() + "/";
    CHECK(second.erase(rel + "v0002-c0000-s000.seg") == 1);  // not volume 1's: left alone
    CHECK(second.erase(rel + "notes.txt") == 1);
    CHECK(second == first);
    REQUIRE(again.written.size() == 1);
    CHECK(again.written[0].segments == 6);
}

TEST_CASE("the write report: files, bytes and progress", "[media][write]") {
    Fixture f(1u << 20, 75);
    std::vector<std::pair<unsigned, std::uint64_t>> progress;
    auto req = f.request({f.dir / "usb"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    auto report = write_volumes(req, [&](unsigned v, std::uint64_t b) { progress.emplace_back(v, b); });
    REQUIRE(report);
    REQUIRE(report->written.size() == 1);
    const auto& w = report->written[0];
    CHECK(w.volume == 1);
    CHECK(w.volumes == 1);
    CHECK(w.first_block == 0);
    CHECK(w.end_block == 64);
    CHECK(w.segments == 6);
    CHECK(w.directory == f.dir / "usb" / "SLUICE" / transfer::to_hex(f.info.bundle_id));
    std::uint64_t on_disk = 0;
    for (const auto& e : fs::directory_iterator(w.directory)) on_disk += e.file_size();
    CHECK(w.bytes == on_disk);
    CHECK(w.write_seconds >= 0);
    CHECK(w.verify_seconds >= 0);
    CHECK(report->set_id == set_id_for(f.info.bundle_id, report->layout, nullptr));
    REQUIRE(progress.size() == 64);
    CHECK(progress.back() == std::pair<unsigned, std::uint64_t>{1, f.info.archive_bytes});
    for (std::size_t i = 1; i < progress.size(); ++i) CHECK(progress[i].second > progress[i - 1].second);
}

TEST_CASE("volume_bytes 0 takes the free space of the first target", "[media][write]") {
    Fixture f(256u << 10, 76);
    auto req = f.request({f.dir / "usb"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    req.layout.volume_bytes = 0;
    auto report = write_volumes(req);
    REQUIRE(report);
    CHECK(report->volumes == 1);
    CHECK(report->layout.blocks_per_volume == 16);  // capped at the archive's blocks
}

TEST_CASE("a medium without room for the volume is refused before writing, naming the space", "[media][write][root]") {
    Fixture f(3u << 20, 77);
    SmallMount small(f.dir / "tiny", "2m");
    if (!small.mounted()) {
        WARN("not root or tmpfs cannot be mounted here: the out-of-space case is not run");
        return;
    }
    auto req = f.request({f.dir / "tiny"}, {.parity_percent = 50, .data_symbols = 16, .symbol_bytes = 1024});
    const std::string message = refusal(req);
    CHECK_THAT(message, Catch::StartsWith((f.dir / "tiny").string() + " has "));
    CHECK_THAT(message, Catch::Contains(" bytes free; volume 1 needs "));
    // Nothing of the volume is left on the medium.
    std::size_t files = 0;
    for (const auto& e : fs::recursive_directory_iterator(f.dir / "tiny")) files += e.is_regular_file() ? 1 : 0;
    CHECK(files == 0);

    // Planned for the medium's real size instead, the bundle spans volumes.
    req.layout.volume_bytes = 0;
    auto planned = write_volumes(req);
    REQUIRE_FALSE(planned);
    CHECK_THAT(planned.error().message, Catch::StartsWith("a volume of "));
    CHECK_THAT(planned.error().message, Catch::Contains("cannot hold one block"));
}
