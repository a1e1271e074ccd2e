#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "sluice/bundle/bundle.hpp"
#include "sluice/policy/tree_diff.hpp"
#include "support/bundle_fixture.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace sluice;
using policy::TreeEntry;

namespace {

std::string hex_of(std::string_view bytes) { return bundle::to_hex(bundle::sha256(bytes)); }

const TreeEntry* find(const std::vector<TreeEntry>& entries, const std::string& path) {
    for (const auto& e : entries) {
        if (e.path == path) return &e;
    }
    return nullptr;
}

}  // namespace

TEST_CASE("read_bag_payload lists a real bag's payload with sizes and digests", "[policy][tree_diff]") {
    test::BundleFixture fx;
    fx.create();
    auto payload = policy::read_bag_payload(fx.bag);
    INFO((payload ? std::string() : payload.error().message));
    REQUIRE(payload.ok());
    REQUIRE(payload->size() == 7);
    for (std::size_t i = 1; i < payload->size(); ++i) CHECK((*payload)[i - 1].path < (*payload)[i].path);

    const auto* model = find(*payload, "data/weights/model.safetensors");
    REQUIRE(model != nullptr);
    CHECK(model->size == 3 * 1024 * 1024 + 17);
    CHECK(model->sha256 == hex_of(test::read_file(fx.src / "weights" / "model.safetensors")));
    const auto* card = find(*payload, "data/model card.md");
    REQUIRE(card != nullptr);
    CHECK(card->size == test::read_file(fx.src / "model card.md").size());
    const auto* empty = find(*payload, "data/empty.txt");
    REQUIRE(empty != nullptr);
    CHECK(empty->size == 0);
    CHECK(empty->sha256 == hex_of(""));
    CHECK(find(*payload, "bagit.txt") == nullptr);  // tag files are not payload
}

TEST_CASE("read_bag_payload refuses what is not a readable bag", "[policy][tree_diff]") {
    test::TempDir dir;
    const fs::path bag = dir / "bag";
    const std::string a_hex = hex_of("a");

    SECTION("no manifest") {
        fs::create_directories(bag / "data");
        auto r = policy::read_bag_payload(bag);
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("manifest-sha256.txt") && Catch::Contains("missing"));
    }
    SECTION("malformed manifest") {
        test::write_file(bag / "manifest-sha256.txt", a_hex + "  data/a\nnot a manifest line\n");
        test::write_file(bag / "data" / "a", "a");
        auto r = policy::read_bag_payload(bag);
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("line 2"));
    }
    SECTION("a listed file is missing") {
        test::write_file(bag / "manifest-sha256.txt", a_hex + "  data/a\n" + a_hex + "  data/sub/gone.bin\n");
        test::write_file(bag / "data" / "a", "a");
        auto r = policy::read_bag_payload(bag);
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("data/sub/gone.bin") && Catch::Contains("missing"));
    }
    SECTION("a listed path outside data/") {
        test::write_file(bag / "manifest-sha256.txt", a_hex + "  bagit.txt\n");
        test::write_file(bag / "bagit.txt", "a");
        auto r = policy::read_bag_payload(bag);
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("outside data/"));
    }
    SECTION("a listed path that is a directory") {
        test::write_file(bag / "manifest-sha256.txt", a_hex + "  data/dir\n");
        fs::create_directories(bag / "data" / "dir");
        auto r = policy::read_bag_payload(bag);
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("data/dir") && Catch::Contains("not a regular file"));
    }
    SECTION("percent-encoded paths are decoded") {
        test::write_file(bag / "manifest-sha256.txt", a_hex + "  data/100%25.txt\n");
        test::write_file(bag / "data" / "100%.txt", "a");
        auto r = policy::read_bag_payload(bag);
        INFO((r ? std::string() : r.error().message));
        REQUIRE(r.ok());
        REQUIRE(r->size() == 1);
        CHECK((*r)[0].path == "data/100%.txt");
        CHECK((*r)[0].size == 1);
        CHECK((*r)[0].sha256 == a_hex);
    }
}

TEST_CASE("diff_trees sorts files into added, removed, changed and unchanged", "[policy][tree_diff]") {
    // Unsorted input on purpose: the output is sorted by path regardless.
    const std::vector<TreeEntry> before = {
        {"data/z-same.bin", 10, hex_of("same")},
        {"data/changed.bin", 100, hex_of("old")},
        {"data/removed-b.txt", 5, hex_of("rb")},
        {"data/removed-a.txt", 7, hex_of("ra")},
        {"data/same-size-other-bytes", 3, hex_of("abc")},
    };
    const std::vector<TreeEntry> after = {
        {"data/new/b.txt", 2, hex_of("nb")},
        {"data/changed.bin", 250, hex_of("new")},
        {"data/z-same.bin", 10, hex_of("same")},
        {"data/new/a.txt", 1, hex_of("na")},
        {"data/same-size-other-bytes", 3, hex_of("abd")},
    };
    auto d = policy::diff_trees(before, after);
    REQUIRE(d.added.size() == 2);
    CHECK(d.added[0].path == "data/new/a.txt");
    CHECK(d.added[0].size == 1);
    CHECK(d.added[1].path == "data/new/b.txt");
    CHECK(d.added[1].size == 2);
    REQUIRE(d.removed.size() == 2);
    CHECK(d.removed[0].path == "data/removed-a.txt");
    CHECK(d.removed[0].size == 7);
    CHECK(d.removed[1].path == "data/removed-b.txt");
    REQUIRE(d.changed.size() == 2);
    CHECK(d.changed[0].path == "data/changed.bin");
    CHECK(d.changed[0].old_size == 100);
    CHECK(d.changed[0].new_size == 250);
    CHECK(d.changed[1].path == "data/same-size-other-bytes");  // a change is the digest, not the size
    CHECK(d.unchanged == 1);

    auto same = policy::diff_trees(after, after);
    CHECK(same.added.empty());
    CHECK(same.removed.empty());
    CHECK(same.changed.empty());
    CHECK(same.unchanged == after.size());

    auto from_nothing = policy::diff_trees({}, after);
    CHECK(from_nothing.added.size() == after.size());
    CHECK(from_nothing.unchanged == 0);
}

TEST_CASE("diff_trees between two real bags", "[policy][tree_diff]") {
    test::BundleFixture fx;
    fx.create();
    // The next release: one file retrained, one dropped, one new.
    test::write_file(fx.src / "weights" / "shard-2.bin", test::random_bytes(800 * 1024, 3));
    fs::remove(fx.src / "eval" / "report.json");
    test::write_file(fx.src / "eval" / "report-v2.json", "{\"accuracy\": 0.93}\n");
    auto options = fx.create_options();
    options.out = fx.dir / "bag2";
    options.release.version = "1.5.0";
    auto id = bundle::create_bag(options);
    INFO((id ? std::string() : id.error().message));
    REQUIRE(id.ok());

    auto before = policy::read_bag_payload(fx.bag);
    auto after = policy::read_bag_payload(options.out);
    REQUIRE(before.ok());
    REQUIRE(after.ok());
    auto d = policy::diff_trees(*before, *after);
    REQUIRE(d.added.size() == 1);
    CHECK(d.added[0].path == "data/eval/report-v2.json");
    REQUIRE(d.removed.size() == 1);
    CHECK(d.removed[0].path == "data/eval/report.json");
    REQUIRE(d.changed.size() == 1);
    CHECK(d.changed[0].path == "data/weights/shard-2.bin");
    CHECK(d.changed[0].old_size == 700 * 1024);
    CHECK(d.changed[0].new_size == 800 * 1024);
    CHECK(d.unchanged == 5);
}
