// Bundles that span volumes, imported in any order and across receiver
// restarts; the two index copies of a volume.
#include <catch2/catch.hpp>

#include "media_fixture.hpp"

using namespace sluice;
using namespace sluice::media;
using namespace sluice::media::test;

namespace {

using Ranges = std::vector<std::pair<std::uint64_t, std::uint64_t>>;

constexpr std::uint64_t kBlock = 16 * 1024;          // K=16 × 1 KiB
constexpr std::size_t kArchive = 42 * kBlock - 1000;  // 42 blocks, the last one short

/// K=16, M=8, run 4: 6 segments per set (few files: every one is fsynced).
LayoutOptions few_segments() {
    LayoutOptions o;
    o.data_symbols = 16;
    o.parity_percent = 50;
    o.symbol_bytes = 1024;
    return o;
}

LayoutOptions three_volumes() {
    LayoutOptions o = few_segments();
    o.volume_bytes = volume_bytes_for(kArchive, o, 16);  // 16 + 16 + 10 blocks
    return o;
}

fs::path bundle_dir(const fs::path& mountdir) {
    std::vector<fs::path> dirs;
    for (const auto& e : fs::directory_iterator(mountdir / "SLUICE")) dirs.push_back(e.path());
    REQUIRE(dirs.size() == 1);
    return dirs[0];
}

}  // namespace

TEST_CASE("three volumes, imported 3, 1, 2 across a receiver restart: complete only after the last",
          "[media][volumes]") {
    Fixture f(kArchive, 41);
    auto report = f.write({f.dir / "usb1", f.dir / "usb2", f.dir / "usb3"}, three_volumes());
    REQUIRE(report.volumes == 3);
    REQUIRE(report.layout.blocks_per_volume == 16);
    REQUIRE(report.written.size() == 3);
    for (unsigned i = 0; i < 3; ++i) {
        CHECK(report.written[i].volume == i + 1);
        CHECK(report.written[i].volumes == 3);
        CHECK(report.written[i].directory == bundle_dir(f.dir / ("usb" + std::to_string(i + 1))));
    }

    FoundVolume v[4];
    for (unsigned i = 1; i <= 3; ++i) {
        v[i] = f.found(f.dir / ("usb" + std::to_string(i)));
        CHECK(v[i].index.volume == i);
        CHECK(v[i].index.volumes == 3);
        CHECK(v[i].index.set_id == report.set_id);
        CHECK(v[i].notes.empty());
    }
    CHECK(v[1].index.first_block == 0);
    CHECK(v[2].index.first_block == 16);
    CHECK(v[3].index.first_block == 32);
    CHECK(v[3].index.end_block == 42);

    // Nothing imported yet: every volume is needed.
    auto needed = still_needed(v[1].index, transfer::BlockSet{}, {});
    REQUIRE(needed.size() == 3);
    CHECK(describe(needed[0], 3) == "volume 1 of 3: 16 blocks (0-15) not yet imported");
    CHECK(describe(needed[1], 3) == "volume 2 of 3: 16 blocks (16-31) not yet imported");
    CHECK(describe(needed[2], 3) == "volume 3 of 3: 10 blocks (32-41) not yet imported");

    std::map<unsigned, VolumeImport> imports;
    auto i3 = f.import(v[3]);
    imports[3] = i3;
    CHECK(i3.volume == 3);
    CHECK(i3.blocks == 10);
    CHECK(i3.blocks_held_before == 0);
    CHECK(i3.blocks_direct == 10);
    CHECK(i3.archive_blocks == 42);
    CHECK(i3.archive_blocks_held == 10);
    CHECK_FALSE(i3.archive_complete());
    needed = still_needed(v[3].index, f.held(v[3]), imports);
    REQUIRE(needed.size() == 2);
    CHECK(needed[0].volume == 1);
    CHECK(needed[1].volume == 2);
    CHECK_FALSE(needed[0].imported);

    auto i1 = f.import(v[1]);
    imports[1] = i1;
    CHECK(i1.blocks_direct == 16);
    CHECK(i1.archive_blocks_held == 26);
    CHECK_FALSE(i1.archive_complete());
    CHECK(i1.staging_key == i3.staging_key);

    // Days later, another receiver process on the same state directory.
    f.reopen_store();
    auto held = f.held(v[2]);
    CHECK(held.count() == 26);
    needed = still_needed(v[2].index, held, imports);
    REQUIRE(needed.size() == 1);
    CHECK(needed[0].volume == 2);
    CHECK(needed[0].blocks_missing == 16);
    CHECK(needed[0].ranges == Ranges{{16, 31}});
    CHECK_FALSE(needed[0].imported);
    CHECK(needed[0].segments.empty());
    CHECK(describe(needed[0], 3) == "volume 2 of 3: 16 blocks (16-31) not yet imported");

    auto i2 = f.import(v[2]);
    imports[2] = i2;
    CHECK(i2.blocks_held_before == 0);
    CHECK(i2.blocks_direct == 16);
    CHECK(i2.archive_blocks_held == 42);
    REQUIRE(i2.archive_complete());
    CHECK(still_needed(v[2].index, f.held(v[2]), imports).empty());

    // Volume 1 again: all its blocks are held, nothing is decoded.
    auto again = f.import(v[1]);
    CHECK(again.blocks_held_before == 16);
    CHECK(again.blocks_direct == 0);
    CHECK(again.blocks_repaired == 0);
    CHECK(again.archive_complete());

    CHECK(f.assembled(v[2], i2) == f.archive_bytes);
}

TEST_CASE("a volume written on its own (first_volume = 2) is byte for byte the one of the full write", "[media][volumes]") {
    Fixture f(kArchive, 42);
    auto all = f.write({f.dir / "usb1", f.dir / "usb2", f.dir / "usb3"}, three_volumes());
    auto two = f.write({f.dir / "later"}, three_volumes(), std::nullopt, 2);
    CHECK(two.set_id == all.set_id);
    CHECK(two.volumes == 3);
    CHECK(two.layout == all.layout);
    REQUIRE(two.written.size() == 1);
    CHECK(two.written[0].volume == 2);
    CHECK(two.written[0].first_block == 16);
    CHECK(two.written[0].end_block == 32);
    CHECK(two.written[0].bytes == all.written[1].bytes);
    CHECK(two.written[0].segments == all.written[1].segments);
    CHECK(bundle_dir(f.dir / "later").filename() == bundle_dir(f.dir / "usb2").filename());
    auto a = files_under(f.dir / "usb2");
    auto b = files_under(f.dir / "later");
    CHECK(a.size() == 2 + 6);  // two index copies, one set of 6 stripes
    CHECK(a == b);

    // Encrypted too: the keyed set id and every record are deterministic.
    const auto key = key_of(4);
    Fixture g(kArchive, 42);
    auto enc = g.write({g.dir / "usb1", g.dir / "usb2"}, three_volumes(), key);
    auto enc2 = g.write({g.dir / "later"}, three_volumes(), key, 2);
    CHECK(enc.set_id == enc2.set_id);
    CHECK(enc.set_id != all.set_id);
    CHECK(files_under(g.dir / "usb2") == files_under(g.dir / "later"));
    // A volume written by another key does not belong to the set.
    auto other = g.write({g.dir / "other"}, three_volumes(), key_of(5), 2);
    CHECK(other.set_id != enc.set_id);
}

TEST_CASE("volumes of one bundle on one medium are all found and imported back to back; a missing one is still needed",
          "[media][volumes]") {
    Fixture f(kArchive, 43);
    // Volumes 1 and 3 written to the same mount point: one directory, two indexes.
    f.write({f.dir / "usb"}, three_volumes(), std::nullopt, 1);
    f.write({f.dir / "usb"}, three_volumes(), std::nullopt, 3);
    auto scan = scan_medium(f.dir / "usb", nullptr);
    REQUIRE(scan);
    CHECK(scan->problems.empty());
    CHECK(scan->ignored.empty());
    REQUIRE(scan->volumes.size() == 2);
    CHECK(scan->volumes[0].index.volume == 1);
    CHECK(scan->volumes[1].index.volume == 3);
    std::map<unsigned, VolumeImport> imports;
    // Back to back, as a caller reading media.hpp would: no flush of the store in between.
    for (const auto& v : scan->volumes) imports[v.index.volume] = f.import(v);
    CHECK(imports[1].archive_blocks_held == 16);
    CHECK(imports[3].archive_blocks_held == 26);  // volume 1's blocks are still held
    auto needed = still_needed(scan->volumes[0].index, f.held(scan->volumes[0]), imports);
    for (const auto& n : needed) UNSCOPED_INFO(describe(n, 3));
    REQUIRE(needed.size() == 1);
    CHECK(describe(needed[0], 3) == "volume 2 of 3: 16 blocks (16-31) not yet imported");
}

TEST_CASE("the index copies: one damaged or missing, the other is read and a note says so", "[media][volumes]") {
    Fixture f(1u << 20, 44);
    f.write({f.dir / "usb"}, few_segments());
    const auto dir = bundle_dir(f.dir / "usb");
    const std::string rel = "SLUICE/" + dir.filename().string();

    SECTION("v0001.index damaged") {
        flip_byte(dir / "v0001.index", 200);
        auto scan = scan_medium(f.dir / "usb", nullptr);
        REQUIRE(scan);
        CHECK(scan->problems.empty());
        REQUIRE(scan->volumes.size() == 1);
        CHECK(scan->volumes[0].notes ==
              std::vector<std::string>{"v0001.index: checksum mismatch: the index is damaged (the other copy was read)"});
        auto imp = f.import(scan->volumes[0]);
        CHECK(f.assembled(scan->volumes[0], imp) == f.archive_bytes);
    }
    SECTION("v0001.index truncated") {
        fs::resize_file(dir / "v0001.index", 50);
        auto scan = scan_medium(f.dir / "usb", nullptr);
        REQUIRE(scan);
        REQUIRE(scan->volumes.size() == 1);
        CHECK(scan->volumes[0].notes ==
              std::vector<std::string>{"v0001.index: too short to be an index (the other copy was read)"});
    }
    SECTION("v0001.index missing") {
        fs::remove(dir / "v0001.index");
        auto scan = scan_medium(f.dir / "usb", nullptr);
        REQUIRE(scan);
        CHECK(scan->problems.empty());
        REQUIRE(scan->volumes.size() == 1);
        CHECK(scan->volumes[0].notes == std::vector<std::string>{"v0001.index is missing (the other copy was read)"});
        auto imp = f.import(scan->volumes[0]);
        CHECK(imp.archive_complete());
    }
    SECTION("v0001.index2 damaged: the first copy is read, the second is not looked at") {
        flip_byte(dir / "v0001.index2", 200);
        auto scan = scan_medium(f.dir / "usb", nullptr);
        REQUIRE(scan);
        REQUIRE(scan->volumes.size() == 1);
        CHECK(scan->volumes[0].notes.empty());
    }
    SECTION("both damaged: a problem naming the volume and both reasons; its segments are not read") {
        flip_byte(dir / "v0001.index", 200);
        fs::resize_file(dir / "v0001.index2", 99);
        auto scan = scan_medium(f.dir / "usb", nullptr);
        REQUIRE(scan);
        CHECK(scan->volumes.empty());
        CHECK(scan->problems ==
              std::vector<std::string>{rel + " volume 1: v0001.index: checksum mismatch: the index is damaged; "
                                             "v0001.index2: too short to be an index"});
        // The problem covers the volume's segments: they are not listed one by one.
        CHECK(scan->ignored.empty());
    }
    SECTION("both missing: the segments are reported as not listed") {
        fs::remove(dir / "v0001.index");
        fs::remove(dir / "v0001.index2");
        auto scan = scan_medium(f.dir / "usb", nullptr);
        REQUIRE(scan);
        CHECK(scan->volumes.empty());
        CHECK(scan->ignored.size() == 6);
        CHECK_THAT(scan->ignored[0], Catch::StartsWith(rel + "/v0001-c0000-s0"));
    }
    SECTION("v0001.index describes another volume") {
        Fixture g(kArchive, 44);
        g.write({g.dir / "usb2"}, three_volumes(), std::nullopt, 2);
        // An index of another bundle's volume 2, renamed v0001.index: it says volume 2.
        fs::copy_file(bundle_dir(g.dir / "usb2") / "v0002.index", dir / "v0001.index",
                      fs::copy_options::overwrite_existing);
        auto scan = scan_medium(f.dir / "usb", nullptr);
        REQUIRE(scan);
        REQUIRE(scan->volumes.size() == 1);
        CHECK(scan->volumes[0].index.volume == 1);
        CHECK(scan->volumes[0].notes ==
              std::vector<std::string>{"v0001.index: it describes volume 2 (the other copy was read)"});
    }
}

TEST_CASE("an encrypted medium: found with its key, a clear problem without it or with another", "[media][volumes][crypto]") {
    Fixture f(1u << 20, 45);
    const auto key = key_of(6);
    f.write({f.dir / "usb"}, few_segments(), key);
    const std::string rel = "SLUICE/" + bundle_dir(f.dir / "usb").filename().string();

    auto none = scan_medium(f.dir / "usb", nullptr);
    REQUIRE(none);
    CHECK(none->volumes.empty());
    CHECK(none->problems == std::vector<std::string>{rel + " volume 1: the medium is encrypted: give its key file"});

    const auto other = key_of(7);
    auto wrong = scan_medium(f.dir / "usb", &other);
    REQUIRE(wrong);
    CHECK(wrong->volumes.empty());
    CHECK(wrong->problems == std::vector<std::string>{rel + " volume 1: the medium was encrypted with another key"});

    auto v = f.found(f.dir / "usb", &key);
    auto imp = f.import(v, &key);
    CHECK(imp.blocks_direct == 64);
    CHECK(f.assembled(v, imp) == f.archive_bytes);
}

TEST_CASE("an encrypted medium shows no channel, version or bundle id anywhere, names included", "[media][volumes][crypto]") {
    Fixture f(1u << 20, 46);
    const auto key = key_of(8);
    auto req = f.request({f.dir / "usb"}, few_segments(), key);
    req.hops = R"({"bundle":"x","events":[{"note":"a-hop-record-secret"}]})";
    auto report = write_volumes(req);
    REQUIRE(report);
    const std::string bundle_hex = transfer::to_hex(f.info.bundle_id);
    const std::string archive_hex = transfer::to_hex(f.info.archive_sha256);
    const auto dir = bundle_dir(f.dir / "usb");
    CHECK(dir.filename().string() != bundle_hex);
    CHECK(dir.filename().string().starts_with("x"));

    std::string everything;
    for (const auto& [name, bytes] : files_under(f.dir / "usb")) everything += name + "\n" + bytes;
    REQUIRE(everything.size() > (1u << 20));
    for (const std::string& s : {f.info.channel, f.info.version, bundle_hex, archive_hex, std::string("a-hop-record-secret"),
                                 std::string("test-host")}) {
        CAPTURE(s);
        CHECK(everything.find(s) == std::string::npos);
    }
    // Nor the archive's bytes: the first 64 bytes of every data symbol are ciphertext.
    CHECK(everything.find(f.archive_bytes.substr(0, 64)) == std::string::npos);
    CHECK(everything.find(f.archive_bytes.substr(500 * 1024, 64)) == std::string::npos);

    // The same write in the clear does show them (the checks above can fail).
    Fixture g(1u << 20, 46);
    auto plain = g.request({g.dir / "usb"}, few_segments());
    plain.hops = req.hops;
    REQUIRE(write_volumes(plain));
    std::string clear;
    for (const auto& [name, bytes] : files_under(g.dir / "usb")) clear += name + "\n" + bytes;
    CHECK(clear.find(bundle_hex) != std::string::npos);
    CHECK(clear.find(g.info.channel) != std::string::npos);
    CHECK(clear.find("a-hop-record-secret") != std::string::npos);
    CHECK(clear.find(g.archive_bytes.substr(0, 64)) != std::string::npos);
}
