#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/bundle_fixture.hpp"

using namespace sluice::bundle;
using sluice::test::BundleFixture;
using sluice::test::read_file;
using sluice::test::write_file;
namespace fs = std::filesystem;

namespace {

/// No hidden staging leftovers beside `path`.
bool no_staging_left(const fs::path& parent) {
    for (const auto& e : fs::directory_iterator(parent)) {
        if (e.path().filename().string().find(".partial-") != std::string::npos) return false;
    }
    return true;
}

void flip_byte(const fs::path& file, std::size_t offset) {
    std::string bytes = read_file(file);
    bytes[offset] = static_cast<char>(bytes[offset] ^ 0x01);
    fs::remove(file);
    write_file(file, bytes);
}

/// Rewrites a tag file and the tag manifest line for it, as an attacker who
/// cannot sign would: fixity passes, the signature must not.
void rewrite_tag_consistently(const fs::path& bag, const std::string& name, const std::string& bytes) {
    std::string old_hex = to_hex(sha256(read_file(bag / name)));
    fs::remove(bag / name);
    write_file(bag / name, bytes);
    std::string tm = read_file(bag / "tagmanifest-sha256.txt");
    tm.replace(tm.find(old_hex), 64, to_hex(sha256(bytes)));
    fs::remove(bag / "tagmanifest-sha256.txt");
    write_file(bag / "tagmanifest-sha256.txt", tm);
}

}  // namespace

TEST_CASE("create writes a complete BagIt bag and verify accepts it", "[bundle][bag]") {
    BundleFixture f;
    std::string id = f.create({"alice", "bob"});
    CHECK(id.size() == 64);
    CHECK(id == to_hex(sha256(read_file(f.bag / "tagmanifest-sha256.txt"))));
    CHECK(read_file(f.bag / "bagit.txt") == "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n");
    std::string info = read_file(f.bag / "bag-info.txt");
    CHECK(info.find("Bagging-Date: 2026-11-29\n") != std::string::npos);
    CHECK(info.find("Bag-Group-Identifier: models\n") != std::string::npos);
    CHECK(info.find("Bag-Software-Agent: sluice ") != std::string::npos);
    std::uint64_t total = 0;
    for (const auto& e : fs::recursive_directory_iterator(f.src)) {
        if (e.is_regular_file()) total += e.file_size();
    }
    CHECK(info.find("Payload-Oxum: " + std::to_string(total) + ".7\n") != std::string::npos);
    CHECK(read_file(f.bag / "data/weights/model.safetensors") == read_file(f.src / "weights/model.safetensors"));
    std::string tm = read_file(f.bag / "tagmanifest-sha256.txt");
    for (const char* tag : {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "release.json"}) {
        CHECK(tm.find(std::string("  ") + tag + "\n") != std::string::npos);
    }
    CHECK(fs::exists(f.bag / "signatures/alice.sig"));
    CHECK(fs::exists(f.bag / "signatures/bob.sig"));

    auto report = f.verify(f.bag, 2);
    INFO((report.ok() ? "" : report.error().message));
    REQUIRE(report.ok());
    CHECK(report->bundle_id == id);
    CHECK(report->payload_files == 7);
    CHECK(report->payload_bytes == total);
    CHECK(report->distinct_signers.size() == 2);
    CHECK(report->release == f.release);
    CHECK(no_staging_left(f.dir.path()));
}

TEST_CASE("the same input and time give the same bundle id", "[bundle][bag][reproducible]") {
    BundleFixture f;
    std::string first = f.create({"alice"});
    f.bag = f.dir / "bag2";
    std::string second = f.create({"bob"});  // signatures differ, the id does not
    CHECK(first == second);
    f.bag = f.dir / "bag3";
    f.release.created_at = "2026-11-29T14:00:01Z";
    CHECK(f.create({"alice"}) != first);
}

TEST_CASE("verification failures name the file or signature at fault", "[bundle][bag][verify]") {
    BundleFixture f;
    f.create({"alice", "bob"});

    SECTION("a payload byte flipped") {
        flip_byte(f.bag / "data/weights/model.safetensors", 1234567);
        f.expect_refused(f.bag, "data/weights/model.safetensors: SHA-256 mismatch");
    }
    SECTION("release.json edited") {
        std::string r = read_file(f.bag / "release.json");
        r.replace(r.find("1.3.2"), 5, "1.0.0");
        fs::remove(f.bag / "release.json");
        write_file(f.bag / "release.json", r);
        f.expect_refused(f.bag, "release.json: SHA-256 does not match tagmanifest-sha256.txt");
    }
    SECTION("release.json and the tag manifest edited together") {
        std::string r = read_file(f.bag / "release.json");
        r.replace(r.find("1.3.2"), 5, "1.0.0");
        rewrite_tag_consistently(f.bag, "release.json", r);
        f.expect_refused(f.bag, "signatures/alice.sig: does not verify with any trusted key");
    }
    SECTION("a payload file missing") {
        fs::remove(f.bag / "data/eval/report.json");
        f.expect_refused(f.bag, "data/eval/report.json: listed in manifest-sha256.txt but missing");
    }
    SECTION("an extra file in data/") {
        write_file(f.bag / "data/serving/backdoor.py", "import os\n");
        f.expect_refused(f.bag, "data/serving/backdoor.py: not listed in manifest-sha256.txt");
    }
    SECTION("an extra tag file nobody signed") {
        write_file(f.bag / "notes.txt", "trust me\n");
        f.expect_refused(f.bag, "notes.txt: not listed in tagmanifest-sha256.txt");
    }
    SECTION("a signature by a key outside the trust directory") {
        REQUIRE(sign_bag(f.bag, f.keys / "mallory.key").ok());
        f.expect_refused(f.bag, "signatures/mallory.sig: does not verify with any trusted key");
    }
    SECTION("too few distinct signers") {
        f.expect_refused(f.bag, "only 2 distinct trusted signer(s) (alice, bob), 3 required", 3);
    }
    SECTION("a signature file duplicated under another name counts once") {
        fs::copy_file(f.bag / "signatures/alice.sig", f.bag / "signatures/carol.sig");
        CHECK(f.verify(f.bag, 2).ok());
        f.expect_refused(f.bag, "only 2 distinct trusted signer(s)", 3);
    }
    SECTION("a corrupted signature") {
        std::string sig = read_file(f.bag / "signatures/bob.sig");
        sig[10] = sig[10] == 'A' ? 'B' : 'A';
        fs::remove(f.bag / "signatures/bob.sig");
        write_file(f.bag / "signatures/bob.sig", sig);
        f.expect_refused(f.bag, "signatures/bob.sig:");
    }
    SECTION("a signature that is not base64") {
        write_file(f.bag / "signatures/carol.sig", "not base64 at all!");
        f.expect_refused(f.bag, "signatures/carol.sig: not a base64 signature");
    }
    SECTION("no signatures at all") {
        fs::remove_all(f.bag / "signatures");
        f.expect_refused(f.bag, "the bag is not signed");
    }
    SECTION("a symbolic link in the payload") {
        fs::create_symlink("/etc/passwd", f.bag / "data/passwd");
        f.expect_refused(f.bag, "data/passwd: symbolic link");
    }
    SECTION("a payload file replaced by a symbolic link to identical content") {
        fs::rename(f.bag / "data/tokenizer.json", f.dir / "tokenizer.json");
        fs::create_symlink(f.dir / "tokenizer.json", f.bag / "data/tokenizer.json");
        f.expect_refused(f.bag, "data/tokenizer.json: symbolic link");
    }
    SECTION("bagit.txt missing") {
        fs::remove(f.bag / "bagit.txt");
        f.expect_refused(f.bag, "bagit.txt: missing");
    }
    SECTION("the tag manifest missing") {
        fs::remove(f.bag / "tagmanifest-sha256.txt");
        f.expect_refused(f.bag, "tagmanifest-sha256.txt: missing");
    }
    SECTION("Payload-Oxum that disagrees with the payload") {
        std::string info = read_file(f.bag / "bag-info.txt");
        auto at = info.find("Payload-Oxum: ") + 14;
        info.insert(at, "1");
        rewrite_tag_consistently(f.bag, "bag-info.txt", info);
        auto r = f.verify(f.bag);
        REQUIRE_FALSE(r.ok());  // the signature no longer matches the tag manifest
        VerifyOptions fixity_only;
        auto fx = verify_bundle(f.bag, fixity_only);
        REQUIRE_FALSE(fx.ok());
        CHECK(fx.error().message.find("Payload-Oxum says") != std::string::npos);
    }
    SECTION("an unexpected directory in the bag root") {
        fs::create_directories(f.bag / "extras");
        f.expect_refused(f.bag, "extras/: unexpected directory");
    }
}

TEST_CASE("create refuses bad input and leaves nothing behind", "[bundle][bag]") {
    BundleFixture f;
    CreateOptions options = f.create_options();

    auto expect_fail = [&](const std::string& needle) {
        auto r = create_bag(options);
        REQUIRE_FALSE(r.ok());
        INFO(r.error().message);
        CHECK(r.error().message.find(needle) != std::string::npos);
        CHECK_FALSE(fs::exists(f.bag));
        CHECK(no_staging_left(f.dir.path()));
    };

    SECTION("a symbolic link in the source") {
        fs::create_symlink("/etc/hostname", f.src / "serving/link");
        expect_fail("data/serving/link: symbolic link");
    }
    SECTION("a FIFO in the source") {
        REQUIRE(::mkfifo((f.src / "pipe").c_str(), 0644) == 0);
        expect_fail("data/pipe: special file");
    }
    SECTION("no signing key") {
        options.signing_keys.clear();
        expect_fail("must be signed");
    }
    SECTION("a public key given as signing key") {
        options.signing_keys = {f.keys / "alice.pub"};
        expect_fail("alice.pub");
    }
    SECTION("the same key twice") {
        options.signing_keys = {f.keys / "alice.key", f.keys / "alice.key"};
        expect_fail("two keys named 'alice'");
    }
    SECTION("an empty answer in release.json") {
        options.release.reason = "";
        expect_fail("reason is empty");
    }
    SECTION("a source that does not exist") {
        options.source = f.dir / "nowhere";
        expect_fail("not a directory");
    }
    SECTION("an output that exists already") {
        fs::create_directories(f.bag);
        write_file(f.bag / "keep.txt", "precious");
        auto r = create_bag(options);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().message.find("already exists") != std::string::npos);
        CHECK(read_file(f.bag / "keep.txt") == "precious");
    }
    SECTION("a file name with a line break") {
        write_file(f.src / "bad\nname", "x");
        expect_fail("control character");
    }
}

TEST_CASE("sign adds a signature only to an intact bag, once per key", "[bundle][bag][signing]") {
    BundleFixture f;
    f.create({"alice"});
    auto signer = sign_bag(f.bag, f.keys / "bob.key");
    REQUIRE(signer.ok());
    CHECK(*signer == "bob");
    CHECK(f.verify(f.bag, 2).ok());

    auto again = sign_bag(f.bag, f.keys / "bob.key");
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message.find("already exists") != std::string::npos);
    auto renamed = sign_bag(f.bag, f.keys / "bob.key", "robert");
    REQUIRE_FALSE(renamed.ok());
    CHECK(renamed.error().message.find("signatures/bob.sig: this key has already signed") != std::string::npos);
    CHECK_FALSE(fs::exists(f.bag / "signatures/robert.sig"));

    flip_byte(f.bag / "data/weights/shard-2.bin", 5);
    auto tampered = sign_bag(f.bag, f.keys / "carol.key");
    REQUIRE_FALSE(tampered.ok());
    CHECK(tampered.error().message.find("refusing to sign") != std::string::npos);
    CHECK(tampered.error().message.find("data/weights/shard-2.bin") != std::string::npos);
    CHECK_FALSE(fs::exists(f.bag / "signatures/carol.sig"));
}

TEST_CASE("a bag with an empty payload is valid", "[bundle][bag]") {
    BundleFixture f;
    fs::remove_all(f.src);
    fs::create_directories(f.src);
    f.create();
    auto r = f.verify(f.bag);
    REQUIRE(r.ok());
    CHECK(r->payload_files == 0);
    CHECK(read_file(f.bag / "manifest-sha256.txt").empty());
}

TEST_CASE("create refuses a release description that verify would refuse", "[bundle][bag]") {
    BundleFixture f;
    nlohmann::json deep = nlohmann::json::object();
    nlohmann::json* at = &deep;
    for (int i = 0; i < 40; ++i) at = &((*at)["x"] = nlohmann::json::object());
    f.release.artifacts = deep;
    CreateOptions options = f.create_options();
    auto r = create_bag(options);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("nests deeper than 32") != std::string::npos);
    CHECK_FALSE(fs::exists(f.bag));
}

TEST_CASE("a trust store with min_signers 0 is refused, not a bypass", "[bundle][bag][verify]") {
    BundleFixture f;
    f.create({"alice"});
    fs::remove_all(f.bag / "signatures");
    VerifyOptions options;
    options.trust = &f.store;
    options.min_signers = 0;
    auto r = verify_bundle(f.bag, options);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("min_signers = 0") != std::string::npos);
}

TEST_CASE("a payload file with another hard link is refused", "[bundle][bag][verify]") {
    BundleFixture f;
    f.create({"alice"});
    fs::create_hard_link(f.bag / "data/tokenizer.json", f.dir / "outside.json");
    f.expect_refused(f.bag, "data/tokenizer.json: has other hard links");
}

TEST_CASE("outputs name a missing parent and refuse a place inside the bag", "[bundle][bag]") {
    BundleFixture f;
    f.create({"alice"});
    auto inside = pack_bag(f.bag, f.bag / "bundle.tar", {}, false);
    REQUIRE_FALSE(inside.ok());
    CHECK(inside.error().message.find("inside the bag") != std::string::npos);
    CHECK(f.verify(f.bag).ok());
    auto no_parent = pack_bag(f.bag, f.dir / "nowhere/bundle.tar", {}, false);
    REQUIRE_FALSE(no_parent.ok());
    CHECK(no_parent.error().message.find("nowhere: directory does not exist") != std::string::npos);
    auto slash = unpack_archive(f.dir / "missing.tar", f.dir / "out/", {}, false);
    REQUIRE_FALSE(slash.ok());
}

TEST_CASE("fetch.txt and unchecked manifests are refused even when signed", "[bundle][bag][verify]") {
    for (const char* name : {"fetch.txt", "manifest-md5.txt"}) {
        BundleFixture f;
        f.create({"alice"});
        std::string extra = std::string("http://10.0.0.1/x - data/x\n");
        write_file(f.bag / name, extra);
        std::string tm = read_file(f.bag / "tagmanifest-sha256.txt") + to_hex(sha256(extra)) + "  " + name + "\n";
        fs::remove(f.bag / "tagmanifest-sha256.txt");
        write_file(f.bag / "tagmanifest-sha256.txt", tm);
        fs::remove_all(f.bag / "signatures");
        REQUIRE(sign_bag(f.bag, f.keys / "alice.key").ok() == false);  // sign refuses it as well
        VerifyOptions fixity_only;
        auto r = verify_bundle(f.bag, fixity_only);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().message.find(name) != std::string::npos);
    }
}

TEST_CASE("staging left by a killed process is cleaned up, a live one's is not", "[bundle][bag]") {
    BundleFixture f;
    pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    REQUIRE(child > 0);
    REQUIRE(::waitpid(child, nullptr, 0) == child);  // now a pid with no process
    fs::path dead = f.dir / (".bag.partial-" + std::to_string(child) + "-0-1");
    fs::path live = f.dir / (".bag.partial-" + std::to_string(::getpid()) + "-999-1");
    fs::create_directories(dead / "data");
    write_file(dead / "data/half-written.bin", "xx");
    fs::create_directories(live);
    f.create({"alice"});
    CHECK_FALSE(fs::exists(dead));
    CHECK(fs::exists(live));
    CHECK(f.verify(f.bag).ok());
}
