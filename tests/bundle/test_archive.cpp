#include <catch2/catch.hpp>

#include "support/bundle_fixture.hpp"

using namespace sluice::bundle;
using sluice::test::BundleFixture;
using sluice::test::read_file;
using sluice::test::write_file;
namespace fs = std::filesystem;

TEST_CASE("pack gives the same bytes every time and verify accepts the archive", "[bundle][archive][reproducible]") {
    BundleFixture f;
    std::string id = f.create({"alice", "bob"});
    auto a = pack_bag(f.bag, f.dir / "a.tar", {}, false);
    auto b = pack_bag(f.bag, f.dir / "b.tar", {}, false);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(*a == id);
    CHECK(read_file(f.dir / "a.tar") == read_file(f.dir / "b.tar"));

    auto report = f.verify(f.dir / "a.tar", 2);
    INFO((report.ok() ? "" : report.error().message));
    REQUIRE(report.ok());
    CHECK(report->bundle_id == id);
    CHECK(report->payload_files == 7);
}

TEST_CASE("the archive lists tag files first, then payload in byte order", "[bundle][archive]") {
    BundleFixture f;
    f.create({"alice"});
    REQUIRE(pack_bag(f.bag, f.dir / "a.tar", {}, false).ok());
    std::string tar = read_file(f.dir / "a.tar");
    auto pos = [&](const std::string& name) { return tar.find(name + std::string(1, '\0')); };
    CHECK(pos("bagit.txt") < pos("bag-info.txt"));
    CHECK(pos("release.json") < pos("tagmanifest-sha256.txt"));
    CHECK(pos("tagmanifest-sha256.txt") < pos("signatures/alice.sig"));
    CHECK(pos("signatures/alice.sig") < pos("data/empty.txt"));
    CHECK(pos("data/empty.txt") < pos("data/eval/report.json"));
    CHECK(pos("data/eval/report.json") < pos("data/model card.md"));
    CHECK(pos("data/weights/model.safetensors") < pos("data/weights/shard-2.bin"));
}

TEST_CASE("unpack then verify round-trips, with non-ASCII names", "[bundle][archive]") {
    BundleFixture f;
    write_file(f.src / "mod\xc3\xa8le" / "carte \xe2\x9c\x93.md", "utf-8 names survive\n");
    std::string id = f.create({"alice"});
    REQUIRE(pack_bag(f.bag, f.dir / "a.tar", {}, false).ok());
    auto unpacked = unpack_archive(f.dir / "a.tar", f.dir / "out", {}, false);
    REQUIRE(unpacked.ok());
    CHECK(unpacked->files == 14);  // 8 payload + 4 tag files + tagmanifest + 1 signature
    CHECK(read_file(f.dir / "out/data/mod\xc3\xa8le/carte \xe2\x9c\x93.md") == "utf-8 names survive\n");
    auto report = f.verify(f.dir / "out");
    REQUIRE(report.ok());
    CHECK(report->bundle_id == id);
}

TEST_CASE("pack refuses a bag whose payload no longer matches, leaving no file", "[bundle][archive]") {
    BundleFixture f;
    f.create({"alice"});
    std::string bytes = read_file(f.bag / "data/tokenizer.json");
    bytes[0] = 'X';
    fs::remove(f.bag / "data/tokenizer.json");
    write_file(f.bag / "data/tokenizer.json", bytes);
    auto r = pack_bag(f.bag, f.dir / "a.tar", {}, false);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("data/tokenizer.json: SHA-256 mismatch") != std::string::npos);
    CHECK_FALSE(fs::exists(f.dir / "a.tar"));
    for (const auto& e : fs::directory_iterator(f.dir.path())) {
        CHECK(e.path().filename().string().find(".partial-") == std::string::npos);
    }
}

TEST_CASE("verify of an archive names what is wrong", "[bundle][archive][verify]") {
    BundleFixture f;
    f.create({"alice"});
    REQUIRE(pack_bag(f.bag, f.dir / "a.tar", {}, false).ok());
    std::string tar = read_file(f.dir / "a.tar");

    SECTION("a payload byte flipped inside the archive") {
        std::string marker = read_file(f.src / "serving/config.toml");
        auto at = tar.find(marker);
        REQUIRE(at != std::string::npos);
        tar[at] = static_cast<char>(tar[at] ^ 0x20);
        write_file(f.dir / "bad.tar", tar);
        f.expect_refused(f.dir / "bad.tar", "data/serving/config.toml: SHA-256 mismatch");
    }
    SECTION("the archive cut short") {
        write_file(f.dir / "short.tar", tar.substr(0, tar.size() / 2));
        auto r = f.verify(f.dir / "short.tar");
        REQUIRE_FALSE(r.ok());
        INFO(r.error().message);
        CHECK((r.error().message.find("truncated") != std::string::npos ||
               r.error().message.find("damaged") != std::string::npos));
    }
    SECTION("a signature by an untrusted key") {
        REQUIRE(sign_bag(f.bag, f.keys / "mallory.key").ok());
        REQUIRE(pack_bag(f.bag, f.dir / "m.tar", {}, false).ok());
        f.expect_refused(f.dir / "m.tar", "signatures/mallory.sig: does not verify with any trusted key");
    }
    SECTION("not an archive at all") {
        write_file(f.dir / "junk.tar", std::string(4096, 'j'));
        f.expect_refused(f.dir / "junk.tar", "junk.tar");
    }
}

TEST_CASE("inspect reads what a bundle says without hashing the payload", "[bundle][archive]") {
    BundleFixture f;
    std::string id = f.create({"alice", "bob"});
    REQUIRE(pack_bag(f.bag, f.dir / "a.tar", {}, false).ok());
    for (const auto& path : {f.bag, f.dir / "a.tar"}) {
        auto s = inspect_bundle(path);
        REQUIRE(s.ok());
        CHECK(s->bundle_id == id);
        REQUIRE(s->release.has_value());
        CHECK(s->release->rollback_to == "1.3.2");
        CHECK(s->manifest_files == 7);
        CHECK(s->signature_files == std::vector<std::string>{"signatures/alice.sig", "signatures/bob.sig"});
    }
    auto missing = inspect_bundle(f.dir / "src");
    REQUIRE_FALSE(missing.ok());
}
