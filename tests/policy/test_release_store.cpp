#include <catch2/catch.hpp>

#include <grp.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "sluice/bundle/bundle.hpp"
#include "sluice/policy/release_store.hpp"
#include "support/bundle_fixture.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace sluice;
using policy::ReleaseStore;

namespace {

/// Sorted names in a directory (all of them, dot-entries included).
std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return static_cast<unsigned>(st.st_mode & 07777);
}

/// Sets every file to `file_mode` and every directory (root included) to `dir_mode`.
void chmod_tree(const fs::path& root, unsigned file_mode, unsigned dir_mode) {
    std::vector<fs::path> all;
    for (const auto& e : fs::recursive_directory_iterator(root)) all.push_back(e.path());
    all.push_back(root);
    for (const auto& p : all) {
        if (fs::is_symlink(p)) continue;
        const unsigned mode = fs::is_directory(p) ? dir_mode : file_mode;
        REQUIRE(::chmod(p.c_str(), static_cast<mode_t>(mode)) == 0);
    }
}

/// A signed bag with a tiny payload, for tests that install it many times.
void create_small_bag(test::BundleFixture& fx) {
    fs::remove_all(fx.src);
    fs::remove_all(fx.bag);
    test::write_file(fx.src / "model.bin", test::random_bytes(4096, 7));
    test::write_file(fx.src / "conf" / "serving.toml", "max_batch = 8\n");
    fx.create();
}

template <class R>
void require_ok(const R& r) {
    INFO((r.ok() ? std::string() : r.error().message));
    REQUIRE(r.ok());
}

void require_error(const Result<fs::path>& r, std::initializer_list<std::string> needles) {
    REQUIRE_FALSE(r.ok());
    INFO("error: " << r.error().message);
    for (const auto& n : needles) CHECK(r.error().message.find(n) != std::string::npos);
}

}  // namespace

TEST_CASE("install copies a real bag that still verifies", "[policy][release]") {
    test::BundleFixture fx;
    fx.create();
    ReleaseStore store(fx.dir / "releases");

    auto installed = store.install("models", "1.4.0", fx.bag);
    require_ok(installed);
    CHECK(installed->string() == store.path_of("models", "1.4.0").string());
    CHECK(installed->string() == (fx.dir / "releases" / "models" / "1.4.0").string());

    // Signatures, tag and payload fixity, completeness: the copy is the bag.
    auto report = fx.verify(*installed);
    require_ok(report);
    CHECK(report->payload_files == 7);
    CHECK(test::read_file(*installed / "data" / "weights" / "model.safetensors") ==
          test::read_file(fx.src / "weights" / "model.safetensors"));
    CHECK(fs::exists(*installed / "signatures" / "alice.sig"));
    CHECK(fs::exists(*installed / "release.json"));

    CHECK(mode_of(*installed) == 0755);
    CHECK(mode_of(*installed / "data" / "weights") == 0755);
    CHECK(mode_of(*installed / "data" / "weights" / "model.safetensors") == 0644);
    CHECK(mode_of(*installed / "bagit.txt") == 0644);
    CHECK(mode_of(fx.dir / "releases" / "models") == 0755);

    CHECK(names_in(fx.dir / "releases" / "models") == std::vector<std::string>{"1.4.0"});
    CHECK(store.versions("models") == std::vector<std::string>{"1.4.0"});
    CHECK(store.channels() == std::vector<std::string>{"models"});
    CHECK_FALSE(store.current("models").has_value());

    require_ok(store.install("models-canary", "1.4.0", fx.bag));
    CHECK(store.channels() == std::vector<std::string>{"models", "models-canary"});
}

TEST_CASE("install refuses a bag that differs from its manifest and leaves nothing", "[policy][release]") {
    test::BundleFixture fx;
    fx.create();
    ReleaseStore store(fx.dir / "releases");
    const fs::path channel_dir = fx.dir / "releases" / "models";

    SECTION("a payload byte changed after creation") {
        const fs::path victim = fx.bag / "data" / "weights" / "shard-2.bin";
        std::string bytes = test::read_file(victim);
        const std::string expected = bundle::to_hex(bundle::sha256(bytes));
        bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 0x01);
        const std::string actual = bundle::to_hex(bundle::sha256(bytes));
        test::write_file(victim, bytes);
        require_error(store.install("models", "1.4.0", fx.bag), {"data/weights/shard-2.bin", expected, actual});
    }
    SECTION("a payload file added after creation") {
        test::write_file(fx.bag / "data" / "weights" / "extra.bin", "surprise");
        require_error(store.install("models", "1.4.0", fx.bag), {"data/weights/extra.bin", "not listed"});
    }
    SECTION("a listed payload file deleted") {
        fs::remove(fx.bag / "data" / "eval" / "report.json");
        require_error(store.install("models", "1.4.0", fx.bag), {"data/eval/report.json", "missing"});
    }
    SECTION("a symbolic link in the bag") {
        fs::create_symlink("/etc/passwd", fx.bag / "data" / "passwd");
        require_error(store.install("models", "1.4.0", fx.bag), {(fx.bag / "data" / "passwd").string(), "symbolic link"});
    }
    SECTION("a fifo in the bag") {
        REQUIRE(::mkfifo((fx.bag / "zz-fifo").c_str(), 0644) == 0);
        require_error(store.install("models", "1.4.0", fx.bag), {(fx.bag / "zz-fifo").string(), "special file"});
    }
    SECTION("no manifest") {
        fs::remove(fx.bag / "manifest-sha256.txt");
        require_error(store.install("models", "1.4.0", fx.bag), {"manifest-sha256.txt", "missing"});
    }

    // Nothing of the failed install is visible or left behind.
    if (fs::exists(channel_dir)) CHECK(names_in(channel_dir).empty());
    CHECK_FALSE(fs::exists(store.path_of("models", "1.4.0")));
    CHECK(store.versions("models").empty());
}

TEST_CASE("install refuses a version that is already released", "[policy][release]") {
    test::BundleFixture fx;
    create_small_bag(fx);
    ReleaseStore store(fx.dir / "releases");
    auto first = store.install("models", "1.4.0", fx.bag);
    require_ok(first);
    const std::string before = test::read_file(*first / "data" / "model.bin");

    auto again = store.install("models", "1.4.0", fx.bag);
    require_error(again, {"version 1.4.0 of channel models is already released"});

    CHECK(names_in(fx.dir / "releases" / "models") == std::vector<std::string>{"1.4.0"});
    CHECK(test::read_file(*first / "data" / "model.bin") == before);
    require_ok(fx.verify(*first));
}

TEST_CASE("install and set_current refuse names that are not channels or versions", "[policy][release]") {
    test::BundleFixture fx;
    create_small_bag(fx);
    const fs::path root = fx.dir / "releases";
    ReleaseStore store(root);
    for (const char* channel : {"", "Models", "../models", "a/b", ".hidden", "-x"}) {
        INFO("channel '" << channel << "'");
        auto r = store.install(channel, "1.0.0", fx.bag);
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("channel"));
    }
    for (const char* version : {"", "../1.0", "1/2", ".1", "current", "1 0"}) {
        INFO("version '" << version << "'");
        auto r = store.install("models", version, fx.bag);
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("version"));
        CHECK_FALSE(store.set_current("models", version).ok());
    }
    CHECK_FALSE(fs::exists(root));  // refused before anything was created
}

TEST_CASE("install copies a read-only source tree with normal modes", "[policy][release]") {
    test::BundleFixture fx;
    fx.create();
    chmod_tree(fx.bag, 0444, 0555);
    ReleaseStore store(fx.dir / "releases");
    auto installed = store.install("models", "1.4.0", fx.bag);
    chmod_tree(fx.bag, 0644, 0755);  // so that the temporary directory can be removed
    require_ok(installed);
    require_ok(fx.verify(*installed));
    for (const auto& e : fs::recursive_directory_iterator(*installed)) {
        INFO(e.path());
        CHECK(mode_of(e.path()) == (e.is_directory() ? 0755u : 0644u));
    }
}

TEST_CASE("set_current switches the current symlink atomically", "[policy][release]") {
    test::BundleFixture fx;
    create_small_bag(fx);
    const fs::path channel_dir = fx.dir / "releases" / "models";
    ReleaseStore store(fx.dir / "releases");
    require_ok(store.install("models", "1.4.0", fx.bag));
    require_ok(store.install("models", "1.5.0", fx.bag));

    require_ok(store.set_current("models", "1.4.0"));
    CHECK(store.current("models") == std::optional<std::string>("1.4.0"));
    REQUIRE(fs::is_symlink(channel_dir / "current"));
    CHECK(fs::read_symlink(channel_dir / "current").string() == "1.4.0");  // relative: the store can move

    require_ok(store.set_current("models", "1.5.0"));
    CHECK(store.current("models") == std::optional<std::string>("1.5.0"));
    CHECK(fs::read_symlink(channel_dir / "current").string() == "1.5.0");
    CHECK(fs::exists(channel_dir / "current" / "data" / "model.bin"));
    // Replaced, not duplicated: no temporary link left beside it.
    CHECK(names_in(channel_dir) == std::vector<std::string>{"1.4.0", "1.5.0", "current"});
    CHECK(store.versions("models") == std::vector<std::string>{"1.4.0", "1.5.0"});

    SECTION("an unknown version is refused and current is unchanged") {
        auto r = store.set_current("models", "9.9.9");
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("9.9.9") && Catch::Contains("not installed"));
        CHECK(store.current("models") == std::optional<std::string>("1.5.0"));
        CHECK(names_in(channel_dir) == std::vector<std::string>{"1.4.0", "1.5.0", "current"});
    }
    SECTION("an unknown channel is refused") {
        auto r = store.set_current("other", "1.4.0");
        REQUIRE_FALSE(r.ok());
        CHECK_THAT(r.error().message, Catch::Contains("other"));
        CHECK_FALSE(store.current("other").has_value());
    }
    SECTION("a leftover partial of the same version is not a version") {
        fs::create_directories(channel_dir / ".partial-9.9.9-0123456789abcdef");
        CHECK_FALSE(store.set_current("models", "9.9.9").ok());
        CHECK(store.versions("models") == std::vector<std::string>{"1.4.0", "1.5.0"});
    }
}

TEST_CASE("versions are listed in release order", "[policy][release]") {
    test::BundleFixture fx;
    create_small_bag(fx);
    ReleaseStore store(fx.dir / "releases");
    for (const char* v : {"1.10.0", "2.0.0", "1.9.0", "2.0.0-rc1", "1.2.0", "1.0.0"}) {
        require_ok(store.install("models", v, fx.bag));
    }
    // Things in the channel directory that are not versions are not listed.
    fs::create_directories(fx.dir / "releases" / "models" / ".partial-3.0.0-0000000000000000");
    test::write_file(fx.dir / "releases" / "models" / "3.0.0", "a file, not a release");
    CHECK(store.versions("models") ==
          std::vector<std::string>{"1.0.0", "1.2.0", "1.9.0", "1.10.0", "2.0.0-rc1", "2.0.0"});
    CHECK(store.versions("nothing-here").empty());
    CHECK(store.versions("../models").empty());
}

TEST_CASE("prune keeps the newest versions and the current one", "[policy][release]") {
    test::BundleFixture fx;
    create_small_bag(fx);
    const fs::path channel_dir = fx.dir / "releases" / "models";
    ReleaseStore store(fx.dir / "releases");
    for (const char* v : {"1.10.0", "2.0.0", "1.9.0", "2.0.0-rc1", "1.2.0", "1.0.0"}) {
        require_ok(store.install("models", v, fx.bag));
    }
    // A rollback: production runs the oldest release.
    require_ok(store.set_current("models", "1.0.0"));
    // Someone made a release read-only; prune must still remove it.
    chmod_tree(channel_dir / "1.9.0", 0444, 0555);

    auto removed = store.prune("models", 2);
    require_ok(removed);
    CHECK(*removed == std::vector<std::string>{"1.2.0", "1.9.0", "1.10.0"});
    CHECK(store.versions("models") == std::vector<std::string>{"1.0.0", "2.0.0-rc1", "2.0.0"});
    CHECK(names_in(channel_dir) == std::vector<std::string>{"1.0.0", "2.0.0", "2.0.0-rc1", "current"});
    CHECK(store.current("models") == std::optional<std::string>("1.0.0"));
    require_ok(fx.verify(channel_dir / "current"));

    auto nothing = store.prune("models", 2);
    require_ok(nothing);
    CHECK(nothing->empty());

    auto all_but_current = store.prune("models", 0);
    require_ok(all_but_current);
    CHECK(*all_but_current == std::vector<std::string>{"2.0.0-rc1", "2.0.0"});
    CHECK(store.versions("models") == std::vector<std::string>{"1.0.0"});

    CHECK_FALSE(store.prune("../models", 1).ok());
}

TEST_CASE("prune removes read-only releases without privileges", "[policy][release]") {
    // As root, permissions never stop an unlink, so the read-only case above
    // would pass even without the chmod in remove_tree. Here the prune runs
    // in a child that has dropped to an unprivileged user.
    test::BundleFixture fx;
    create_small_bag(fx);
    const fs::path channel_dir = fx.dir / "releases" / "models";
    ReleaseStore store(fx.dir / "releases");
    for (const char* v : {"1.0.0", "1.1.0", "1.2.0"}) require_ok(store.install("models", v, fx.bag));
    chmod_tree(channel_dir / "1.0.0", 0444, 0555);
    REQUIRE(::chmod((channel_dir / "1.1.0" / "data" / "conf").c_str(), 0) == 0);  // not even readable

    if (::geteuid() != 0) {
        require_ok(store.prune("models", 1));
    } else {
        constexpr uid_t kNobody = 65534;
        for (const auto& e : fs::recursive_directory_iterator(fx.dir.path())) {
            REQUIRE(::lchown(e.path().c_str(), kNobody, kNobody) == 0);
        }
        REQUIRE(::chown(fx.dir.path().c_str(), kNobody, kNobody) == 0);
        pid_t child = ::fork();
        REQUIRE(child >= 0);
        if (child == 0) {
            if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0) ::_exit(3);
            if (::geteuid() == 0) ::_exit(4);
            auto r = store.prune("models", 1);
            ::_exit(r.ok() && r->size() == 2 ? 0 : 1);
        }
        int status = 0;
        REQUIRE(::waitpid(child, &status, 0) == child);
        REQUIRE(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
    }
    CHECK(names_in(channel_dir) == std::vector<std::string>{"1.2.0"});
}

TEST_CASE("remove takes out one version but never the current one", "[policy][release]") {
    test::BundleFixture fx;
    create_small_bag(fx);
    ReleaseStore store(fx.dir / "releases");
    require_ok(store.install("models", "1.0.0", fx.bag));
    require_ok(store.install("models", "1.1.0", fx.bag));
    require_ok(store.set_current("models", "1.1.0"));

    auto refused = store.remove("models", "1.1.0");
    REQUIRE_FALSE(refused.ok());
    CHECK_THAT(refused.error().message, Catch::Contains("current"));
    CHECK(fs::is_directory(store.path_of("models", "1.1.0")));

    chmod_tree(store.path_of("models", "1.0.0"), 0444, 0555);
    require_ok(store.remove("models", "1.0.0"));
    CHECK_FALSE(fs::exists(store.path_of("models", "1.0.0")));
    CHECK(names_in(fx.dir / "releases" / "models") == std::vector<std::string>{"1.1.0", "current"});

    auto missing = store.remove("models", "1.0.0");
    REQUIRE_FALSE(missing.ok());
    CHECK_THAT(missing.error().message, Catch::Contains("1.0.0") && Catch::Contains("not installed"));
}

TEST_CASE("sweep_partials removes what a crash left behind", "[policy][release]") {
    test::BundleFixture fx;
    create_small_bag(fx);
    const fs::path root = fx.dir / "releases";
    ReleaseStore store(root);
    require_ok(store.install("models", "1.0.0", fx.bag));
    require_ok(store.set_current("models", "1.0.0"));
    require_ok(store.install("tools", "0.1", fx.bag));

    const fs::path partial = root / "models" / ".partial-1.1.0-0123456789abcdef";
    test::write_file(partial / "data" / "half.bin", "half");
    chmod_tree(partial, 0444, 0555);
    test::write_file(root / "tools" / ".partial-0.2-fedcba9876543210" / "bagit.txt", "x");
    fs::create_directory_symlink("1.0.0", root / "models" / ".current-00112233aabbccdd");

    CHECK(store.sweep_partials() == 3);
    CHECK(names_in(root / "models") == std::vector<std::string>{"1.0.0", "current"});
    CHECK(names_in(root / "tools") == std::vector<std::string>{"0.1"});
    CHECK(store.current("models") == std::optional<std::string>("1.0.0"));
    require_ok(fx.verify(root / "models" / "1.0.0"));
    CHECK(store.sweep_partials() == 0);
}

namespace {

/// A tmpfs mounted for one test, unmounted (lazily) when it ends.
class SmallTmpfs {
public:
    explicit SmallTmpfs(fs::path dir) : dir_(std::move(dir)) {
        fs::create_directories(dir_);
        mounted_ = ::mount("tmpfs", dir_.c_str(), "tmpfs", 0, "size=1m") == 0;
        if (!mounted_) error_ = std::strerror(errno);
    }
    ~SmallTmpfs() {
        if (mounted_) ::umount2(dir_.c_str(), MNT_DETACH);
    }
    SmallTmpfs(const SmallTmpfs&) = delete;
    SmallTmpfs& operator=(const SmallTmpfs&) = delete;
    [[nodiscard]] bool mounted() const { return mounted_; }
    [[nodiscard]] const std::string& error() const { return error_; }

private:
    fs::path dir_;
    bool mounted_ = false;
    std::string error_;
};

}  // namespace

TEST_CASE("install onto a full disk names the path and leaves nothing", "[policy][release]") {
    test::BundleFixture fx;
    fx.create();  // 3.7 MB of payload, for a 1 MiB file system
    const fs::path mount_point = fx.dir / "small";
    SmallTmpfs tmpfs(mount_point);
    if (!tmpfs.mounted()) {
        WARN("skipped: cannot mount a 1 MiB tmpfs to simulate a full disk (" << tmpfs.error() << ")");
        return;
    }
    ReleaseStore store(mount_point / "releases");
    auto r = store.install("models", "1.4.0", fx.bag);
    require_error(r, {(mount_point / "releases" / "models").string(), "model.safetensors", "no space left on device"});

    CHECK(names_in(mount_point / "releases" / "models").empty());
    struct statvfs vfs {};
    REQUIRE(::statvfs(mount_point.c_str(), &vfs) == 0);
    CHECK(vfs.f_bfree == vfs.f_blocks);  // every block of the partial copy was given back

    // The store still works once there is room.
    create_small_bag(fx);
    require_ok(store.install("models", "1.4.0", fx.bag));
    require_ok(fx.verify(store.path_of("models", "1.4.0")));
}
