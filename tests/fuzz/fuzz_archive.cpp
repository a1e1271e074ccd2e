// libFuzzer target for untrusted archives: the input is a tar stream.
//
//   input ─► memfd, read back as /proc/self/fd/N
//     ├─► verify_archive (no trust store: structure and fixity)  ─┐ when verify_archive passes:
//     ├─► inspect_bundle                                          │ unpack succeeds and all
//     └─► unpack_archive ─► out/ ─┬─► verify_bag_dir             ─┘ three report the same bag
//                         │       │     └─ passes ─► pack_bag ─► verify_archive: same report
//                         │       └─► inspect_bundle
//                         ├─ success: only regular files and directories (no setuid, no exec
//                         │  bits), nothing outside out/, file and byte counts as reported
//                         └─ refusal: nothing left anywhere in SCRATCH (all or nothing)
//
// SCRATCH is created once per process (mkdtemp under $SLUICE_FUZZ_SCRATCH,
// else /dev/shm, else /tmp) and removed at exit. The output directory sits
// three levels down so that an entry escaping by up to three "../" still lands
// inside SCRATCH, where the check sees it.

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "sluice/bundle/bundle.hpp"

namespace {

namespace fs = std::filesystem;
using namespace sluice::bundle;

struct Scratch {
    fs::path root;     // SCRATCH
    fs::path work;     // SCRATCH/a/b/work: parent of the output directory
    fs::path out;      // SCRATCH/a/b/work/out: never exists between inputs
    fs::path archive;  // /proc/self/fd/N of the memfd holding the input
    int memfd = -1;
};

Scratch* g_scratch = nullptr;

[[noreturn]] void setup_failed(const char* what) {
    std::fprintf(stderr, "fuzz_archive: %s: %s\n", what, std::strerror(errno));
    std::exit(2);
}

void remove_scratch() {
    if (g_scratch == nullptr) return;
    std::error_code ec;
    fs::remove_all(g_scratch->root, ec);
}

fs::path scratch_base() {
    if (const char* env = std::getenv("SLUICE_FUZZ_SCRATCH"); env != nullptr && *env != '\0') return env;
    std::error_code ec;
    if (fs::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0) return "/dev/shm";
    return "/tmp";
}

Limits fuzz_limits() {
    Limits limits;
    limits.max_entries = 1000;
    limits.max_total_bytes = 64ULL << 20;
    limits.max_file_bytes = 16ULL << 20;
    limits.max_tag_file_bytes = 4ULL << 20;
    return limits;
}

/// The input as a file: a memfd reused for every input, reached by path.
void load_input(const std::uint8_t* data, std::size_t size) {
    int fd = g_scratch->memfd;
    if (::ftruncate(fd, 0) != 0) setup_failed("ftruncate(memfd)");
    std::size_t done = 0;
    while (done < size) {
        ssize_t n = ::pwrite(fd, data + done, size - done, static_cast<off_t>(done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) setup_failed("pwrite(memfd)");
        done += static_cast<std::size_t>(n);
    }
}

bool is_below(const fs::path& p, const fs::path& dir) {
    std::string s = p.string();
    std::string prefix = dir.string() + "/";
    return s == dir.string() || s.compare(0, prefix.size(), prefix) == 0;
}

/// After unpack_archive: everything in SCRATCH is the fixed skeleton or, when
/// the unpack succeeded, inside out/ and only regular files and directories.
void check_scratch(bool unpacked, const UnpackReport* report) {
    const Scratch& s = *g_scratch;
    std::uint64_t files = 0;
    std::uint64_t bytes = 0;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(s.root, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        const fs::path& p = it->path();
        if (p == s.root / "a" || p == s.root / "a" / "b" || p == s.work) continue;
        FUZZ_REQUIRE(!unpacked || is_below(p, s.out), "unpack_archive created something outside its output directory");
        FUZZ_REQUIRE(unpacked, "a refused unpack_archive left something behind");
        struct stat st {};
        FUZZ_REQUIRE(::lstat(p.c_str(), &st) == 0, "lstat of an unpacked entry");
        FUZZ_REQUIRE(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode), "unpack_archive created something not a file or directory");
        FUZZ_REQUIRE((st.st_mode & (S_ISUID | S_ISGID | S_ISVTX)) == 0, "unpack_archive set a setuid, setgid or sticky bit");
        if (S_ISREG(st.st_mode)) {
            FUZZ_REQUIRE((st.st_mode & 0111) == 0, "unpack_archive created an executable file");
            FUZZ_REQUIRE(st.st_nlink == 1, "unpack_archive created a hard link");
            files += 1;
            bytes += static_cast<std::uint64_t>(st.st_size);
        }
    }
    FUZZ_REQUIRE(!ec, "cannot list the scratch directory");
    if (unpacked) {
        FUZZ_REQUIRE(fs::is_directory(fs::symlink_status(s.out, ec)), "unpack_archive created its output directory");
        FUZZ_REQUIRE(report->files == files && report->bytes == bytes, "UnpackReport counts what is on disk");
    }
}

bool g_verbose = false;  // SLUICE_FUZZ_VERBOSE=1: every step's outcome, for triaging seeds

/// Says why an operation failed before a property about it traps.
template <class T>
void report_error(const char* operation, const sluice::Result<T>& result) {
    if (!result) std::fprintf(stderr, "%s: %s\n", operation, result.error().message.c_str());
}

template <class T>
void trace(const char* operation, const sluice::Result<T>& result) {
    if (!g_verbose) return;
    if (result) std::fprintf(stderr, "%s: ok\n", operation);
    else report_error(operation, result);
}

void same_summary(const BundleSummary& summary, const VerifyReport& report) {
    FUZZ_REQUIRE(summary.bundle_id == report.bundle_id, "inspect and verify agree on the bundle id");
    FUZZ_REQUIRE(summary.release && *summary.release == report.release, "inspect and verify agree on release.json");
    FUZZ_REQUIRE(summary.bag_info == report.bag_info, "inspect and verify agree on bag-info.txt");
    FUZZ_REQUIRE(summary.manifest_files == report.payload_files, "inspect counts the payload verify checked");
    FUZZ_REQUIRE(summary.signature_files.size() == report.signatures.size(), "inspect and verify see the same signatures");
}

bool same_report(const VerifyReport& a, const VerifyReport& b) {
    return a.bundle_id == b.bundle_id && a.payload_files == b.payload_files && a.payload_bytes == b.payload_bytes &&
           a.release == b.release && a.bag_info == b.bag_info && a.signatures.size() == b.signatures.size();
}

/// A bag directory that verifies packs, and its canonical archive verifies
/// to the same report.
void check_repack(const VerifyReport& dir_report, const Limits& limits, const VerifyOptions& options) {
    const fs::path packed = g_scratch->work / "packed.tar";
    auto id = pack_bag(g_scratch->out, packed, limits, /*sync=*/false);
    report_error("pack_bag", id);
    FUZZ_REQUIRE(id.ok() && *id == dir_report.bundle_id, "a bag that verifies packs, keeping its bundle id");
    auto reverified = verify_archive(packed, options);
    report_error("verify_archive of the packed bag", reverified);
    FUZZ_REQUIRE(reverified.ok() && same_report(*reverified, dir_report), "the packed archive verifies alike");
    std::error_code ec;
    fs::remove(packed, ec);
    FUZZ_REQUIRE(!ec, "cannot remove the packed archive");
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
    static Scratch scratch;
    std::string pattern = (scratch_base() / "sluice-fuzz-archive-XXXXXX").string();
    if (::mkdtemp(pattern.data()) == nullptr) setup_failed("mkdtemp");
    scratch.root = pattern;
    scratch.work = scratch.root / "a" / "b" / "work";
    scratch.out = scratch.work / "out";
    std::error_code ec;
    fs::create_directories(scratch.work, ec);
    if (ec) setup_failed("create the scratch directories");
    scratch.memfd = ::memfd_create("fuzz_archive", MFD_CLOEXEC);
    if (scratch.memfd < 0) setup_failed("memfd_create");
    scratch.archive = "/proc/self/fd/" + std::to_string(scratch.memfd);
    g_scratch = &scratch;
    const char* verbose = std::getenv("SLUICE_FUZZ_VERBOSE");
    g_verbose = verbose != nullptr && *verbose != '\0' && *verbose != '0';
    std::atexit(remove_scratch);
    return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const Scratch& s = *g_scratch;
    load_input(data, size);
    const Limits limits = fuzz_limits();

    VerifyOptions options;  // no trust store: structure and fixity only
    options.limits = limits;
    options.parallelism.threads = 1;
    auto verified = verify_archive(s.archive, options);
    trace("verify_archive", verified);

    auto summary = inspect_bundle(s.archive, limits);
    trace("inspect_bundle", summary);
    if (verified) {
        report_error("inspect_bundle", summary);
        FUZZ_REQUIRE(summary.ok(), "inspect_bundle reads what verify_archive accepts");
        same_summary(*summary, *verified);
    }

    auto unpacked = unpack_archive(s.archive, s.out, limits, /*sync=*/false);
    trace("unpack_archive", unpacked);
    check_scratch(unpacked.ok(), unpacked ? &*unpacked : nullptr);
    if (verified) {
        report_error("unpack_archive", unpacked);
        FUZZ_REQUIRE(unpacked.ok(), "an archive that verifies can be unpacked");
    }
    if (!unpacked) return 0;

    // What a receiver does next: look at and verify the extracted directory.
    trace("inspect_bundle of the unpacked directory", inspect_bundle(s.out, limits));
    auto dir_verified = verify_bag_dir(s.out, options);
    trace("verify_bag_dir", dir_verified);
    if (verified) {
        report_error("verify_bag_dir", dir_verified);
        FUZZ_REQUIRE(dir_verified.ok(), "an archive that verifies also verifies once unpacked");
        FUZZ_REQUIRE(same_report(*dir_verified, *verified), "archive and unpacked directory verify alike");
    }
    if (dir_verified) check_repack(*dir_verified, limits, options);

    std::error_code ec;
    fs::remove_all(s.out, ec);
    FUZZ_REQUIRE(!ec, "cannot remove the unpacked directory");
    return 0;
}
