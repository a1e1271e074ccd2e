// Archives are hostile input: unpack_archive and verify_archive must refuse
// every entry that could escape, alias, overwrite or exhaust, name it, and
// leave no trace. The tests forge the archives themselves with libarchive's
// writer (or raw ustar bytes where no sane writer would produce them).

#include <catch2/catch.hpp>

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/bundle/bundle.hpp"
#include "sluice/bundle/signing.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace sluice::bundle;
using sluice::test::random_bytes;
using sluice::test::read_file;
using sluice::test::TempDir;
using sluice::test::write_file;

namespace {

// ---------------------------------------------------------------------------
// Forging archives

enum class TarFormat { pax, ustar, gnutar };

struct TarEntry {
    std::string path;
    unsigned type = AE_IFREG;  // AE_IFREG, AE_IFDIR, AE_IFLNK, AE_IFCHR, AE_IFBLK, AE_IFIFO
    unsigned perm = 0644;
    std::string data;
    std::string symlink;   // target of a symbolic link
    std::string hardlink;  // target of a hard link
};

TarEntry regular(std::string path, std::string data, unsigned perm = 0644) {
    return TarEntry{std::move(path), AE_IFREG, perm, std::move(data), {}, {}};
}
TarEntry directory(std::string path, unsigned perm = 0755) {
    return TarEntry{std::move(path), AE_IFDIR, perm, {}, {}, {}};
}
TarEntry symbolic_link(std::string path, std::string target) {
    return TarEntry{std::move(path), AE_IFLNK, 0777, {}, std::move(target), {}};
}
TarEntry hard_link(std::string path, std::string target) {
    return TarEntry{std::move(path), AE_IFREG, 0644, {}, {}, std::move(target)};
}
TarEntry special(std::string path, unsigned type) { return TarEntry{std::move(path), type, 0644, {}, {}, {}}; }

struct WriterFree {
    void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryFree {
    void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};

/// Writes `entries` as a tar with libarchive, exactly as given (the writer
/// does not sanitise names). Throws on any libarchive complaint.
void write_tar(const fs::path& out, const std::vector<TarEntry>& entries, TarFormat format = TarFormat::pax,
               bool gzip = false) {
    std::unique_ptr<struct archive, WriterFree> a(archive_write_new());
    auto check = [&](int rc, const std::string& what) {
        if (rc != ARCHIVE_OK) {
            const char* why = archive_error_string(a.get());
            throw std::runtime_error("forging " + out.string() + ": " + what + ": " + (why != nullptr ? why : "?"));
        }
    };
    switch (format) {
        case TarFormat::pax: check(archive_write_set_format_pax_restricted(a.get()), "pax"); break;
        case TarFormat::ustar: check(archive_write_set_format_ustar(a.get()), "ustar"); break;
        case TarFormat::gnutar: check(archive_write_set_format_gnutar(a.get()), "gnutar"); break;
    }
    check(gzip ? archive_write_add_filter_gzip(a.get()) : archive_write_add_filter_none(a.get()), "filter");
    check(archive_write_open_filename(a.get(), out.c_str()), "open");
    for (const auto& t : entries) {
        std::unique_ptr<struct archive_entry, EntryFree> e(archive_entry_new());
        archive_entry_set_pathname(e.get(), t.path.c_str());
        archive_entry_set_filetype(e.get(), t.type);
        archive_entry_set_perm(e.get(), static_cast<mode_t>(t.perm));
        archive_entry_set_uid(e.get(), 0);
        archive_entry_set_gid(e.get(), 0);
        archive_entry_set_mtime(e.get(), 1'700'000'000, 0);
        bool has_data = t.type == AE_IFREG && t.hardlink.empty();
        archive_entry_set_size(e.get(), has_data ? static_cast<la_int64_t>(t.data.size()) : 0);
        if (!t.symlink.empty()) archive_entry_set_symlink(e.get(), t.symlink.c_str());
        if (!t.hardlink.empty()) archive_entry_set_hardlink(e.get(), t.hardlink.c_str());
        if (t.type == AE_IFCHR || t.type == AE_IFBLK) {
            archive_entry_set_rdevmajor(e.get(), 1);
            archive_entry_set_rdevminor(e.get(), 3);
        }
        check(archive_write_header(a.get(), e.get()), "header of '" + t.path + "'");
        if (has_data && !t.data.empty()) {
            la_ssize_t n = archive_write_data(a.get(), t.data.data(), t.data.size());
            if (n != static_cast<la_ssize_t>(t.data.size())) check(ARCHIVE_FATAL, "data of '" + t.path + "'");
        }
    }
    check(archive_write_close(a.get()), "close");
}

void put_octal(std::string& block, std::size_t offset, std::size_t width, std::uint64_t value) {
    // width-1 zero-padded octal digits, then NUL.
    for (std::size_t i = width - 1; i-- > 0; value >>= 3) block[offset + i] = static_cast<char>('0' + (value & 7));
    block[offset + width - 1] = '\0';
}

/// One ustar header plus its padded data, built byte by byte so the name can
/// hold anything (libarchive's writer would transcode it).
std::string raw_ustar_entry(std::string_view name, std::string_view data, char typeflag = '0') {
    if (name.size() > 100) throw std::logic_error("raw_ustar_entry: name longer than 100 bytes");
    std::string block(512, '\0');
    block.replace(0, name.size(), name);
    put_octal(block, 100, 8, 0644);                // mode
    put_octal(block, 108, 8, 0);                   // uid
    put_octal(block, 116, 8, 0);                   // gid
    put_octal(block, 124, 12, data.size());        // size
    put_octal(block, 136, 12, 1'700'000'000);      // mtime
    block[156] = typeflag;
    block.replace(257, 6, std::string_view("ustar\0", 6));
    block.replace(263, 2, "00");
    block.replace(148, 8, 8, ' ');  // checksum is computed over spaces
    std::uint64_t sum = 0;
    for (char c : block) sum += static_cast<unsigned char>(c);
    put_octal(block, 148, 7, sum);  // six digits, NUL, then the space already there
    std::string out = block + std::string(data);
    out.resize((out.size() + 511) / 512 * 512, '\0');
    return out;
}

std::string raw_end_of_archive() { return std::string(1024, '\0'); }

// ---------------------------------------------------------------------------
// Checking refusals

/// Every path below `root` (relative, symbolic links not followed), directories included.
std::set<std::string> tree(const fs::path& root) {
    std::set<std::string> out;
    for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
        out.insert(fs::relative(it->path(), root).string());
    }
    return out;
}

std::vector<std::string> staging_leftovers(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        std::string name = e.path().filename().string();
        if (name.rfind('.', 0) == 0 && name.find(".partial-") != std::string::npos) out.push_back(name);
    }
    return out;
}

/// The refusal names `entry` and says `what` is wrong.
void check_names(const sluice::Error& error, std::string_view entry, std::string_view what) {
    CHECK_THAT(error.message, Catch::Contains(std::string(entry)));
    CHECK_THAT(error.message, Catch::Contains(std::string(what), Catch::CaseSensitive::No));
}

/// Unpacks `archive` into `out` (which does not exist) and expects a refusal
/// naming `entry` and `what`, after which nothing at all has changed on disk
/// around `out`: no output, no staging directory, nothing that escaped.
void expect_unpack_refused(const fs::path& archive, const fs::path& out, std::string_view entry,
                           std::string_view what, const Limits& limits = {}) {
    REQUIRE_FALSE(fs::exists(fs::symlink_status(out)));
    const fs::path parent = out.parent_path();
    const auto before = tree(parent);
    auto r = unpack_archive(archive, out, limits);
    REQUIRE_FALSE(r.ok());
    INFO("error: " << r.error().message);
    check_names(r.error(), entry, what);
    CHECK_FALSE(fs::exists(fs::symlink_status(out)));
    CHECK(staging_leftovers(parent).empty());
    CHECK(tree(parent) == before);
}

class UmaskScope {
public:
    explicit UmaskScope(mode_t mask) : previous_(::umask(mask)) {}
    ~UmaskScope() { ::umask(previous_); }
    UmaskScope(const UmaskScope&) = delete;
    UmaskScope& operator=(const UmaskScope&) = delete;

private:
    mode_t previous_;
};

unsigned mode_of(const fs::path& p) {
    struct stat st {};
    REQUIRE(::lstat(p.c_str(), &st) == 0);
    return static_cast<unsigned>(st.st_mode);
}

/// A few harmless entries that get the staging directory populated before the
/// hostile one arrives.
std::vector<TarEntry> benign_prefix() {
    return {directory("data/"), regular("data/ok.txt", "fine\n"), directory("data/sub/"),
            regular("data/sub/b.bin", random_bytes(70'000, 7))};
}

struct HostileCase {
    std::string label;
    TarEntry entry;
    std::string named;  // what the error must quote
    std::string what;   // what it must say is wrong
};

/// Generated values outlive the TempDir of the run that created them, so
/// cases that point into the test's directory say "{tmp}" and get the current
/// one here.
constexpr std::string_view kTmpMarker = "{tmp}";
std::string in_tmp(std::string s, const TempDir& tmp) {
    for (auto at = s.find(kTmpMarker); at != std::string::npos; at = s.find(kTmpMarker)) {
        s.replace(at, kTmpMarker.size(), tmp.path().string());
    }
    return s;
}
HostileCase in_tmp(HostileCase c, const TempDir& tmp) {
    c.entry.path = in_tmp(c.entry.path, tmp);
    c.entry.symlink = in_tmp(c.entry.symlink, tmp);
    c.named = in_tmp(c.named, tmp);
    return c;
}

}  // namespace

// ---------------------------------------------------------------------------
// unpack_archive: paths

TEST_CASE("unpack refuses paths that are absolute, climb out or are not canonical", "[bundle][hostile]") {
    // An absolute path that would be writable if it were honoured, so a missing
    // check shows up as a file in tmp rather than as EEXIST on /etc/passwd.
    auto generated = GENERATE(values<HostileCase>({
        {"absolute /etc/passwd", regular("/etc/passwd", "root::0:0::/:/bin/sh\n"), "/etc/passwd", "absolute"},
        {"absolute, writable target", regular("{tmp}/abs-escape", "x"), "{tmp}/abs-escape", "absolute"},
        {"../escape", regular("../escape", "x"), "../escape", "'..'"},
        {"data/../../escape", regular("data/../../escape", "x"), "data/../../escape", "'..'"},
        {"./../escape", regular("./../escape", "x"), "../escape", "'..'"},
        {"directory ../escape-dir/", directory("../escape-dir/"), "../escape-dir", "'..'"},
        {"directory /abs-dir/", directory("{tmp}/abs-escape-dir/"), "{tmp}/abs-escape-dir", "absolute"},
        {"a/./b", regular("a/./b", "x"), "a/./b", "'.'"},
        {"a//b", regular("a//b", "x"), "a//b", "empty component"},
        {"data/./", directory("data/./"), "data/.", "'.'"},
        // "/" is silently taken for the archive's own root today; it is an
        // absolute name all the same and no bundle writer produces it.
        {"bare / directory", directory("/"), "/", "absolute"},
    }));
    TempDir tmp;
    const auto c = in_tmp(generated, tmp);
    CAPTURE(c.label);
    auto entries = benign_prefix();
    entries.push_back(c.entry);
    write_tar(tmp / "hostile.tar", entries);
    expect_unpack_refused(tmp / "hostile.tar", tmp / "out", c.named, c.what);
    CHECK_FALSE(fs::exists(tmp / "escape"));
    CHECK_FALSE(fs::exists(tmp / "escape-dir"));
    CHECK_FALSE(fs::exists(tmp / "abs-escape"));
    CHECK_FALSE(fs::exists(tmp / "abs-escape-dir"));
}

TEST_CASE("unpack refuses over-long paths and components", "[bundle][hostile]") {
    TempDir tmp;
    std::string long_path = "data";
    while (long_path.size() <= kMaxPathBytes) long_path += "/" + std::string(200, 'p');
    long_path += "/f.bin";
    const std::string long_component = "data/" + std::string(256, 'c') + ".bin";

    SECTION("a path over 1024 bytes") {
        write_tar(tmp / "a.tar", {directory("data/"), regular(long_path, "x")});
        // Naming the entry may shorten a 4 KiB name; its start must be there.
        expect_unpack_refused(tmp / "a.tar", tmp / "out", long_path.substr(0, 300), "longer than 1024");
    }
    SECTION("a component over 255 bytes") {
        write_tar(tmp / "a.tar", {directory("data/"), regular(long_component, "x")});
        expect_unpack_refused(tmp / "a.tar", tmp / "out", long_component, "component longer than 255");
    }
    SECTION("a directory with a component over 255 bytes") {
        const std::string dir = "data/" + std::string(300, 'd');
        write_tar(tmp / "a.tar", {directory(dir + "/")});
        expect_unpack_refused(tmp / "a.tar", tmp / "out", dir, "component longer than 255");
    }
    SECTION("a component of exactly 255 bytes is fine") {
        const std::string name = "data/" + std::string(255, 'c');
        write_tar(tmp / "a.tar", {regular(name, "edge")});
        auto r = unpack_archive(tmp / "a.tar", tmp / "out");
        REQUIRE(r.ok());
        CHECK(read_file(tmp / "out" / name) == "edge");
    }
}

// ---------------------------------------------------------------------------
// unpack_archive: entry types

TEST_CASE("unpack refuses links, devices and FIFOs", "[bundle][hostile]") {
    auto generated = GENERATE(values<HostileCase>({
        {"symlink to /etc/passwd", symbolic_link("data/link", "/etc/passwd"), "data/link", "symbolic link"},
        {"symlink out of the tree", symbolic_link("data/up", "../../.."), "data/up", "symbolic link"},
        {"symlink to a directory outside", symbolic_link("data/dir", "{tmp}/outside"), "data/dir", "symbolic link"},
        {"hard link to /etc/shadow", hard_link("data/shadow", "/etc/shadow"), "data/shadow", "hard link"},
        {"hard link inside the archive", hard_link("data/again", "data/ok.txt"), "data/again", "hard link"},
        {"character device", special("data/tty", AE_IFCHR), "data/tty", "device"},
        {"block device", special("data/sda", AE_IFBLK), "data/sda", "device"},
        {"FIFO", special("data/pipe", AE_IFIFO), "data/pipe", "FIFO"},
    }));
    TempDir tmp;
    const auto c = in_tmp(generated, tmp);
    const fs::path outside = tmp / "outside";
    CAPTURE(c.label);
    fs::create_directory(outside);
    auto entries = benign_prefix();
    entries.push_back(c.entry);
    // If the link were created, this would be written through it.
    entries.push_back(regular(c.entry.path + "/planted", "x"));
    write_tar(tmp / "hostile.tar", entries);
    expect_unpack_refused(tmp / "hostile.tar", tmp / "out", c.named, c.what);
    CHECK(fs::is_empty(outside));
}

// ---------------------------------------------------------------------------
// unpack_archive: aliasing

TEST_CASE("unpack refuses duplicate and conflicting entries", "[bundle][hostile]") {
    TempDir tmp;
    std::vector<TarEntry> entries = benign_prefix();
    std::string named;
    std::string what;
    SECTION("the same file twice (the second would overwrite the first)") {
        entries.push_back(regular("data/a.txt", "first\n"));
        entries.push_back(regular("data/a.txt", "second\n"));
        named = "data/a.txt";
        what = "duplicate";
    }
    SECTION("the same file twice, once spelled with ./") {
        entries.push_back(regular("data/a.txt", "first\n"));
        entries.push_back(regular("./data/a.txt", "second\n"));
        named = "data/a.txt";
        what = "duplicate";
    }
    SECTION("a file, then a directory of the same name") {
        entries.push_back(regular("data/a", "file\n"));
        entries.push_back(directory("data/a/"));
        named = "data/a";
        what = "duplicate";
    }
    SECTION("a directory, then a file of the same name") {
        entries.push_back(directory("data/a/"));
        entries.push_back(regular("data/a", "file\n"));
        named = "data/a";
        what = "directory";
    }
    SECTION("a file, then file/child") {
        entries.push_back(regular("data/a", "file\n"));
        entries.push_back(regular("data/a/child", "child\n"));
        named = "data/a/child";
        what = "is a file";
    }
    write_tar(tmp / "hostile.tar", entries);
    expect_unpack_refused(tmp / "hostile.tar", tmp / "out", named, what);
}

// ---------------------------------------------------------------------------
// unpack_archive: limits

TEST_CASE("unpack enforces the entry, total and per-file limits", "[bundle][hostile]") {
    TempDir tmp;
    Limits limits;
    SECTION("more entries than max_entries") {
        limits.max_entries = 4;  // files and directories, implied ones included: data/ + 3 files
        write_tar(tmp / "ok.tar", {regular("data/1", "1"), regular("data/2", "2"), regular("data/3", "3")});
        auto r = unpack_archive(tmp / "ok.tar", tmp / "ok", limits);
        REQUIRE(r.ok());  // exactly at the limit
        CHECK(r->files == 3);
        write_tar(tmp / "a.tar",
                  {regular("data/1", "1"), regular("data/2", "2"), regular("data/3", "3"), regular("data/4", "4")});
        expect_unpack_refused(tmp / "a.tar", tmp / "out", "data/4", "more than 4", limits);
    }
    SECTION("deep paths: implied directories count against max_entries") {
        limits.max_entries = 50;
        std::string deep = "data";
        for (int i = 0; i < 60; ++i) deep += "/d";
        write_tar(tmp / "deep.tar", {regular(deep + "/f", "x")});
        expect_unpack_refused(tmp / "deep.tar", tmp / "out", deep + "/f", "more than 50", limits);
    }
    SECTION("more bytes than max_total_bytes") {
        limits.max_total_bytes = 1000;
        write_tar(tmp / "a.tar", {regular("data/1", std::string(400, 'a')), regular("data/2", std::string(400, 'b')),
                                  regular("data/3", std::string(400, 'c'))});
        expect_unpack_refused(tmp / "a.tar", tmp / "out", "data/3", "total limit", limits);
    }
    SECTION("one file over max_file_bytes") {
        limits.max_file_bytes = 100;
        write_tar(tmp / "ok.tar", {regular("data/edge", std::string(100, 'e'))});
        REQUIRE(unpack_archive(tmp / "ok.tar", tmp / "ok", limits).ok());  // exactly at the limit
        write_tar(tmp / "a.tar", {regular("data/small", "s"), regular("data/big", std::string(101, 'b'))});
        expect_unpack_refused(tmp / "a.tar", tmp / "out", "data/big", "per-file limit", limits);
    }
}

// ---------------------------------------------------------------------------
// unpack_archive: malformed bytes

TEST_CASE("unpack refuses a file name that is not UTF-8", "[bundle][hostile]") {
    TempDir tmp;
    std::string bad;
    SECTION("in the ustar name field") { bad = raw_ustar_entry("data/\xff\xfe.bin", "bad\n"); }
    SECTION("as an overlong encoding of '/'") { bad = raw_ustar_entry("data/..\xc0\xaf" "etc", "bad\n"); }
    SECTION("as a UTF-16 surrogate") { bad = raw_ustar_entry("data/\xed\xa0\x80.bin", "bad\n"); }
    SECTION("in a pax path record") {
        const std::string record = "path=data/\xff\xfe.bin\n";
        const std::string line = std::to_string(record.size() + 3) + " " + record;  // "NN " + record
        REQUIRE(line.size() == record.size() + 3);
        bad = raw_ustar_entry("PaxHeader/bad", line, 'x') + raw_ustar_entry("data/bad", "bad\n");
    }
    SECTION("in a GNU long name") {
        bad = raw_ustar_entry("././@LongLink", std::string("data/\xff\xfe-long.bin") + '\0', 'L') +
              raw_ustar_entry("data/bad", "bad\n");
    }
    write_file(tmp / "a.tar", raw_ustar_entry("data/ok.txt", "fine\n") + bad + raw_end_of_archive());
    // The raw name cannot be quoted as text; the error must still locate it
    // (the entry before it, or its number) and say it is not UTF-8.
    const fs::path out = tmp / "out";
    const auto before = tree(tmp.path());
    auto r = unpack_archive(tmp / "a.tar", out);
    REQUIRE_FALSE(r.ok());
    INFO("error: " << r.error().message);
    CHECK_THAT(r.error().message, Catch::Contains("UTF-8"));
    CHECK_THAT(r.error().message, Catch::Contains("data/ok.txt") || Catch::Contains("entry 2"));
    CHECK_FALSE(fs::exists(fs::symlink_status(out)));
    CHECK(staging_leftovers(tmp.path()).empty());
    CHECK(tree(tmp.path()) == before);
}

TEST_CASE("refusals do not echo control characters from entry names", "[bundle][hostile]") {
    // An entry name is attacker-chosen; echoed raw into an error it can forge
    // a log line (newline + "SD_INFO event=...") or drive the operator's terminal.
    TempDir tmp;
    const std::string name = GENERATE(as<std::string>{}, "data/a\nSD_INFO event=bundle_released channel=models",
                                      "data/\x1b]0;pwned\x07\x1b[2Jx.bin", "data/cr\rfake");
    CAPTURE(name);
    write_tar(tmp / "a.tar", {directory("data/"), regular("data/ok.txt", "fine\n"), regular(name, "x")});
    auto no_control = [](const std::string& message) {
        return std::none_of(message.begin(), message.end(),
                            [](char ch) { return static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f; });
    };
    const fs::path out = tmp / "out";
    auto r = unpack_archive(tmp / "a.tar", out);
    REQUIRE_FALSE(r.ok());
    CAPTURE(r.error().message);
    CHECK_THAT(r.error().message, Catch::Contains("control character"));
    CHECK_THAT(r.error().message, Catch::Contains("data/"));
    CHECK(no_control(r.error().message));
    CHECK_FALSE(fs::exists(fs::symlink_status(out)));
    CHECK(staging_leftovers(tmp.path()).empty());

    // First in the archive, so verify refuses the name itself (not a missing bagit.txt).
    write_tar(tmp / "v.tar", {regular(name, "x")});
    auto v = verify_archive(tmp / "v.tar", VerifyOptions{});
    REQUIRE_FALSE(v.ok());
    CAPTURE(v.error().message);
    CHECK_THAT(v.error().message, Catch::Contains("control character"));
    CHECK(no_control(v.error().message));
}

TEST_CASE("unpack refuses a raw ustar name that climbs out", "[bundle][hostile]") {
    // The same check must hold when the name comes straight from the header bytes.
    TempDir tmp;
    write_file(tmp / "a.tar", raw_ustar_entry("data/ok.txt", "fine\n") + raw_ustar_entry("../raw-escape", "x") +
                                  raw_end_of_archive());
    expect_unpack_refused(tmp / "a.tar", tmp / "out", "../raw-escape", "'..'");
    CHECK_FALSE(fs::exists(tmp / "raw-escape"));
}

TEST_CASE("unpack refuses a truncated archive and leaves nothing", "[bundle][hostile]") {
    TempDir tmp;
    const std::string big = random_bytes(20'000, 11);
    write_tar(tmp / "full.tar", {directory("data/"), regular("data/a.txt", "first\n"), regular("data/big.bin", big)});
    const std::string full = read_file(tmp / "full.tar");
    const std::size_t data_at = full.find(big.substr(0, 64));
    REQUIRE(data_at != std::string::npos);

    SECTION("cut in the middle of a file's data") {
        write_file(tmp / "cut.tar", full.substr(0, data_at + 5000));
        expect_unpack_refused(tmp / "cut.tar", tmp / "out", "data/big.bin", "truncated");
    }
    SECTION("cut at an entry boundary (later entries and the end-of-archive blocks missing)") {
        // POSIX ends a tar with two zero blocks; without them a cut that lands
        // between entries would pass for a shorter, complete archive.
        REQUIRE(full.compare(data_at - 512, 12, "data/big.bin") == 0);  // its header, no pax record before it
        write_file(tmp / "cut.tar", full.substr(0, data_at - 512));
        const fs::path out = tmp / "out";
        auto r = unpack_archive(tmp / "cut.tar", out);
        CHECK_FALSE(fs::exists(fs::symlink_status(out)));
        CHECK(staging_leftovers(tmp.path()).empty());
        REQUIRE_FALSE(r.ok());
        INFO("error: " << r.error().message);
        CHECK_THAT(r.error().message, Catch::Contains("truncated", Catch::CaseSensitive::No) ||
                                          Catch::Contains("end-of-archive", Catch::CaseSensitive::No) ||
                                          Catch::Contains("end of the archive", Catch::CaseSensitive::No));
    }
    SECTION("cut in the middle of a header") {
        // data/big.bin's header is the 512-byte block right before its data.
        write_file(tmp / "cut.tar", full.substr(0, data_at - 300));
        expect_unpack_refused(tmp / "cut.tar", tmp / "out", "data/a.txt", "truncated");
    }
}

TEST_CASE("unpack refuses a gzip-compressed tar", "[bundle][hostile]") {
    TempDir tmp;
    write_tar(tmp / "bundle.tar.gz", {directory("data/"), regular("data/a.txt", "zipped\n")}, TarFormat::pax,
              /*gzip=*/true);
    REQUIRE(read_file(tmp / "bundle.tar.gz").substr(0, 2) == "\x1f\x8b");
    expect_unpack_refused(tmp / "bundle.tar.gz", tmp / "out", (tmp / "bundle.tar.gz").string(), "compressed");
}

// ---------------------------------------------------------------------------
// unpack_archive: all or nothing

TEST_CASE("unpack is all or nothing: a hostile last entry leaves no trace", "[bundle][hostile]") {
    TempDir tmp;
    Limits limits;
    limits.max_file_bytes = 1 << 20;
    auto c = GENERATE(values<HostileCase>({
        {"symlink", symbolic_link("data/zz", "/etc"), "data/zz", "symbolic link"},
        {"parent escape", regular("../escape", "x"), "../escape", "'..'"},
        {"duplicate", regular("data/sub/b.bin", "overwrite"), "data/sub/b.bin", "duplicate"},
        {"over the file limit", regular("data/zz.bin", std::string((1 << 20) + 1, 'z')), "data/zz.bin", "limit"},
        {"FIFO", special("data/zz.fifo", AE_IFIFO), "data/zz.fifo", "FIFO"},
    }));
    CAPTURE(c.label);
    std::vector<TarEntry> entries = {directory("./"),
                                     regular("bagit.txt", "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"),
                                     directory("data/"),
                                     regular("data/a.txt", random_bytes(10'000, 1)),
                                     directory("data/sub/"),
                                     regular("data/sub/b.bin", random_bytes(300'000, 2)),
                                     directory("data/sub/deeper/"),
                                     regular("data/sub/deeper/c.bin", random_bytes(50'000, 3))};
    // The same archive without the last entry extracts: the refusal is the last entry's.
    write_tar(tmp / "good.tar", entries);
    REQUIRE(unpack_archive(tmp / "good.tar", tmp / "good", limits).ok());
    fs::remove_all(tmp / "good");
    fs::remove(tmp / "good.tar");

    entries.push_back(c.entry);
    write_tar(tmp / "hostile.tar", entries);
    expect_unpack_refused(tmp / "hostile.tar", tmp / "out", c.named, c.what, limits);
    CHECK(tree(tmp.path()) == std::set<std::string>{"hostile.tar"});
}

TEST_CASE("unpack refuses an output path that already exists and leaves it untouched", "[bundle][hostile]") {
    TempDir tmp;
    write_tar(tmp / "a.tar", {directory("data/"), regular("data/keep.txt", "from the archive\n")});
    const fs::path out = tmp / "out";
    SECTION("an existing directory") {
        write_file(out / "data" / "keep.txt", "already here\n");
        write_file(out / "other.txt", "mine\n");
        auto r = unpack_archive(tmp / "a.tar", out);
        REQUIRE_FALSE(r.ok());
        check_names(r.error(), out.string(), "already exists");
        CHECK(tree(out) == std::set<std::string>{"data", "data/keep.txt", "other.txt"});
        CHECK(read_file(out / "data" / "keep.txt") == "already here\n");
        CHECK(read_file(out / "other.txt") == "mine\n");
    }
    SECTION("an existing file") {
        write_file(out, "a file\n");
        auto r = unpack_archive(tmp / "a.tar", out);
        REQUIRE_FALSE(r.ok());
        check_names(r.error(), out.string(), "already exists");
        CHECK(read_file(out) == "a file\n");
    }
    SECTION("a dangling symbolic link") {
        fs::create_symlink(tmp / "elsewhere", out);
        auto r = unpack_archive(tmp / "a.tar", out);
        REQUIRE_FALSE(r.ok());
        check_names(r.error(), out.string(), "already exists");
        CHECK(fs::is_symlink(fs::symlink_status(out)));
        CHECK_FALSE(fs::exists(tmp / "elsewhere"));
    }
    CHECK(staging_leftovers(tmp.path()).empty());
}

// ---------------------------------------------------------------------------
// unpack_archive: what must still work

TEST_CASE("unpack extracts ./-prefixed names and explicit directories exactly", "[bundle][hostile]") {
    TempDir tmp;
    auto format = GENERATE(TarFormat::gnutar, TarFormat::ustar, TarFormat::pax);
    CAPTURE(static_cast<int>(format));
    const std::string bagit = "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n";
    const std::string a = random_bytes(12'345, 21);
    const std::string b = random_bytes(1'000'000, 22);
    write_tar(tmp / "gnu.tar",
              {directory("./"), regular("./bagit.txt", bagit), directory("./data/"), regular("./data/a.bin", a),
               directory("./data/sub/"), regular("./data/sub/b.bin", b), regular("./data/sub/empty", ""),
               directory("./data/empty-dir/")},
              format);
    const fs::path out = tmp / "out";
    auto r = unpack_archive(tmp / "gnu.tar", out);
    REQUIRE(r.ok());
    CHECK(r->files == 4);
    CHECK(r->bytes == bagit.size() + a.size() + b.size());
    CHECK(tree(out) == std::set<std::string>{"bagit.txt", "data", "data/a.bin", "data/sub", "data/sub/b.bin",
                                             "data/sub/empty", "data/empty-dir"});
    CHECK(read_file(out / "bagit.txt") == bagit);
    CHECK(read_file(out / "data/a.bin") == a);
    CHECK(read_file(out / "data/sub/b.bin") == b);
    CHECK(read_file(out / "data/sub/empty").empty());
    CHECK(fs::is_directory(fs::symlink_status(out / "data/empty-dir")));
    CHECK(staging_leftovers(tmp.path()).empty());
}

TEST_CASE("unpack writes 0644 files whatever modes the headers carry", "[bundle][hostile]") {
    TempDir tmp;
    UmaskScope no_umask(0);  // so any mode taken from a header would show
    write_tar(tmp / "modes.tar", {directory("data/", 07777), regular("data/setuid", "#!/bin/sh\n", 04755),
                                  regular("data/setgid-world", "w\n", 02777), regular("data/private", "p\n", 0600)});
    auto r = unpack_archive(tmp / "modes.tar", tmp / "out");
    REQUIRE(r.ok());
    CHECK(r->files == 3);
    for (const char* name : {"data/setuid", "data/setgid-world", "data/private"}) {
        CAPTURE(name);
        unsigned mode = mode_of(tmp / "out" / name);
        CHECK(S_ISREG(mode));
        CHECK((mode & 07777) == 0644);
    }
    unsigned dir_mode = mode_of(tmp / "out" / "data");
    CHECK(S_ISDIR(dir_mode));
    CHECK((dir_mode & 07000) == 0);  // no setuid, setgid or sticky bit
    CHECK((dir_mode & 0022) == 0);   // not writable by group or others
    CHECK(read_file(tmp / "out/data/setuid") == "#!/bin/sh\n");
}

// ---------------------------------------------------------------------------
// verify_archive

namespace {

/// A genuine signed bag and its entries in canonical archive order, so that a
/// forged archive is refused for the entry added to it and nothing else.
struct SignedBag {
    TempDir tmp;
    std::vector<TarEntry> tags;
    std::vector<TarEntry> payload;

    SignedBag() {
        write_file(tmp / "src" / "a.txt", "alpha\n");
        write_file(tmp / "src" / "sub" / "b.bin", random_bytes(40'000, 5));
        REQUIRE(generate_key_pair(tmp.path(), "alice").ok());
        CreateOptions options;
        options.source = tmp / "src";
        options.out = tmp / "bag";
        options.release.channel = "models";
        options.release.version = "1.4.0";
        options.release.changes = "new weights";
        options.release.reason = "accuracy";
        options.release.approved_by = "carol";
        options.release.rollback_to = "1.3.2";
        options.release.created_at = "2026-11-29T14:00:00Z";
        options.release.created_by = "ci";
        options.signing_keys = {tmp / "alice.key"};
        options.sync = false;
        auto id = create_bag(options);
        INFO((id.ok() ? std::string() : id.error().message));
        REQUIRE(id.ok());
        for (const char* name : {"bagit.txt", "bag-info.txt", "manifest-sha256.txt", "release.json",
                                 "tagmanifest-sha256.txt", "signatures/alice.sig"}) {
            tags.push_back(regular(name, read_file(tmp / "bag" / name)));
        }
        payload = {regular("data/a.txt", read_file(tmp / "bag/data/a.txt")),
                   regular("data/sub/b.bin", read_file(tmp / "bag/data/sub/b.bin"))};
    }

    std::vector<TarEntry> entries() const {
        std::vector<TarEntry> all = tags;
        all.insert(all.end(), payload.begin(), payload.end());
        return all;
    }
};

}  // namespace

TEST_CASE("verify_archive refuses links, escapes, absolute paths, duplicates and devices", "[bundle][hostile]") {
    SignedBag bag;
    const fs::path archive = bag.tmp / "forged.tar";

    // The untampered entries verify, so each refusal below is the forged entry's.
    write_tar(archive, bag.entries());
    auto clean = verify_archive(archive, VerifyOptions{});
    INFO((clean.ok() ? std::string() : clean.error().message));
    REQUIRE(clean.ok());
    CHECK(clean->payload_files == 2);
    fs::remove(archive);

    enum class Where { first, after_tags, last };
    struct ForgedCase {
        std::string label;
        TarEntry entry;
        Where where;
        std::string named;
        std::string what;
    };
    auto c = GENERATE(values<ForgedCase>({
        {"symlink in the payload", symbolic_link("data/link", "/etc/passwd"), Where::last, "data/link", "symbolic link"},
        {"symlink before the tag files", symbolic_link("notes.txt", "/etc/shadow"), Where::first, "notes.txt",
         "symbolic link"},
        {"hard link in the payload", hard_link("data/again", "data/a.txt"), Where::last, "data/again", "hard link"},
        {"../ escape", regular("../escape", "x"), Where::last, "../escape", "'..'"},
        {"data/../../ escape", regular("data/../../escape", "x"), Where::after_tags, "data/../../escape", "'..'"},
        {"absolute path", regular("/etc/passwd", "x"), Where::last, "/etc/passwd", "absolute"},
        {"absolute path first", regular("/etc/passwd", "x"), Where::first, "/etc/passwd", "absolute"},
        {"bare / directory", directory("/"), Where::after_tags, "/", "absolute"},
        {"duplicate payload file", regular("data/a.txt", "alpha\n"), Where::last, "data/a.txt", "twice"},
        {"duplicate tag file", regular("bagit.txt", "BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"),
         Where::after_tags, "bagit.txt", "twice"},
        {"character device", special("data/tty", AE_IFCHR), Where::last, "data/tty", "device"},
        {"block device", special("data/sda", AE_IFBLK), Where::after_tags, "data/sda", "device"},
        {"FIFO", special("data/pipe", AE_IFIFO), Where::last, "data/pipe", "FIFO"},
        // The archive must describe a file tree that unpacking can build: the
        // two verifiers (archive, unpacked directory) may never disagree.
        {"a tag file named data", regular("data", "x"), Where::after_tags, "data", "unexpected file"},
        {"a file named signatures", regular("signatures", "x"), Where::first, "signatures", "unexpected file"},
        {"a file, then a directory at the same path", directory("data/a.txt/"), Where::last, "data/a.txt",
         "duplicate"},
        {"a file below a file", regular("data/a.txt/x", "x"), Where::last, "data/a.txt/x", "parent"},
    }));
    CAPTURE(c.label);
    std::vector<TarEntry> entries = bag.tags;
    if (c.where == Where::first) entries.insert(entries.begin(), c.entry);
    if (c.where == Where::after_tags) entries.push_back(c.entry);
    entries.insert(entries.end(), bag.payload.begin(), bag.payload.end());
    if (c.where == Where::last) entries.push_back(c.entry);
    write_tar(archive, entries);

    const auto before = tree(bag.tmp.path());
    auto r = verify_archive(archive, VerifyOptions{});
    REQUIRE_FALSE(r.ok());
    INFO("error: " << r.error().message);
    check_names(r.error(), c.named, c.what);
    CHECK(tree(bag.tmp.path()) == before);  // verification writes nothing
    CHECK_FALSE(fs::exists(bag.tmp / "escape"));
}
