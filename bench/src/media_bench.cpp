// bench/media: write-and-verify and import throughput of the removable-media
// carrier against `cp` of the same bytes to the same filesystem, in the same
// run (see bench/media, the script that runs it, and bench/README.md).
//
//   media_bench [BYTES] [DIR]
//
// In a fresh directory DIR/media-bench.<pid> (on the filesystem under test):
//  0. writes an "archive" of BYTES incompressible pseudo-random bytes
//     (xoshiro256**) and its SHA-256, fsyncs it (untimed);
//  1. cp: `cp archive copy` as a real process, then open + fsync of the copy
//     (a copy onto a medium is done when it is on the medium), timed; removed;
//  2. write: media::write_volumes of the archive to DIR/…/medium, default
//     layout (10 % parity, K=64, 16 KiB symbols), one volume, timed end to end
//     (encode, write, fsync, rename, index, read-back check);
//  3. import: scan_medium + import_volume into a transfer::FileBlockStore,
//     flush, finalize (SHA-256 of the rebuilt archive checked), timed end to
//     end; the returned file is then hashed again (untimed) against the original;
//  4. cp again (the baseline is the mean of the runs before 2 and after 3,
//     so drift in the machine's load affects both sides alike);
//  5. informative: import again after deleting one segment file (repair of
//     every block from parity), timed, intact or not.
// Before every timed phase: sync, then `echo 3 > /proc/sys/vm/drop_caches`
// when writable (else POSIX_FADV_DONTNEED of the files the phase reads; the
// output says which), so every phase reads its input from the disk.
//
// Last line: write_ratio=<x> import_ratio=<x> intact=<yes|no>
//   write_ratio  = cp seconds / write seconds   (same archive bytes: parity
//   import_ratio = cp seconds / import seconds   and framing count against us)

#include <fcntl.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "sluice/bundle/digest.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/block_store.hpp"
#include "sluice/transfer/metadata.hpp"

extern char** environ;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using namespace sluice;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

/// xoshiro256** (Blackman & Vigna): fast, and its output does not compress.
struct Xoshiro256 {
    std::array<std::uint64_t, 4> s{};
    explicit Xoshiro256(std::uint64_t seed) {
        for (auto& w : s) {  // splitmix64
            seed += 0x9e3779b97f4a7c15ULL;
            std::uint64_t z = seed;
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            w = z ^ (z >> 31);
        }
    }
    static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
    std::uint64_t next() {
        const std::uint64_t result = rotl(s[1] * 5, 7) * 9;
        const std::uint64_t t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = rotl(s[3], 45);
        return result;
    }
    void fill(std::byte* p, std::size_t n) {
        for (; n >= 8; p += 8, n -= 8) {
            const std::uint64_t v = next();
            std::memcpy(p, &v, 8);
        }
        if (n > 0) {
            const std::uint64_t v = next();
            std::memcpy(p, &v, n);
        }
    }
};

/// User + system CPU seconds of this process (all threads) and of waited-for children.
struct Cpu {
    double user = 0, sys = 0;
    static Cpu now() {
        Cpu c;
        for (int who : {RUSAGE_SELF, RUSAGE_CHILDREN}) {
            rusage ru{};
            ::getrusage(who, &ru);
            c.user += static_cast<double>(ru.ru_utime.tv_sec) + static_cast<double>(ru.ru_utime.tv_usec) / 1e6;
            c.sys += static_cast<double>(ru.ru_stime.tv_sec) + static_cast<double>(ru.ru_stime.tv_usec) / 1e6;
        }
        return c;
    }
    Cpu operator-(const Cpu& o) const { return {user - o.user, sys - o.sys}; }
};

/// Seconds the calling thread has waited on a run queue (runnable, no CPU free):
/// the second field of /proc/thread-self/schedstat; 0 when unavailable.
double run_queue_wait() {
    std::FILE* f = std::fopen("/proc/thread-self/schedstat", "r");
    if (!f) return 0;
    unsigned long long on_cpu = 0, waited = 0;
    const int n = std::fscanf(f, "%llu %llu", &on_cpu, &waited);
    std::fclose(f);
    return n == 2 ? static_cast<double>(waited) / 1e9 : 0;
}

/// One timed phase: wall seconds, CPU, and how long the main thread waited for a CPU.
struct Phase {
    double seconds = 0;
    Cpu cpu;
    double run_wait = 0;
};

class Stopwatch {
public:
    Stopwatch() : cpu_(Cpu::now()), wait_(run_queue_wait()), t_(Clock::now()) {}
    [[nodiscard]] Phase stop() const { return {seconds_since(t_), Cpu::now() - cpu_, run_queue_wait() - wait_}; }

private:
    Cpu cpu_;
    double wait_;
    Clock::time_point t_;
};

double mb_per_s(std::uint64_t bytes, double seconds) { return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0; }

std::string cpu_text(const Phase& p, bool own_thread = true) {
    char buf[160];
    int n = std::snprintf(buf, sizeof buf, "cpu user %.2f s sys %.2f s (%.0f%% of one core)", p.cpu.user, p.cpu.sys,
                          p.seconds > 0 ? 100.0 * (p.cpu.user + p.cpu.sys) / p.seconds : 0.0);
    if (own_thread && n > 0) {
        std::snprintf(buf + n, sizeof buf - static_cast<std::size_t>(n), ", main thread waited %.2f s for a CPU",
                      p.run_wait);
    }
    return buf;
}

std::string load_average() {
    std::FILE* f = std::fopen("/proc/loadavg", "r");
    if (!f) return "?";
    char buf[64] = {};
    if (!std::fgets(buf, sizeof buf, f)) buf[0] = 0;
    std::fclose(f);
    std::string s(buf);
    // the first three fields
    std::size_t at = 0;
    for (int i = 0; i < 3 && at != std::string::npos; ++i) at = s.find(' ', at + 1);
    return s.substr(0, at);
}

/// Whether `echo 3 > /proc/sys/vm/drop_caches` works here (probed once).
bool g_drop_caches = false;

bool write_drop_caches() {
    int fd = ::open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::write(fd, "3\n", 2) == 2;
    ::close(fd);
    return ok;
}

void fadvise_dontneed(const fs::path& path) {
    std::error_code ec;
    auto drop = [](const fs::path& p) {
        int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) return;
        ::fdatasync(fd);
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
        ::close(fd);
    };
    if (fs::is_directory(path, ec)) {
        for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
             it.increment(ec)) {
            if (it->is_regular_file(ec)) drop(it->path());
        }
    } else if (fs::exists(path, ec)) {
        drop(path);
    }
}

/// Writes back everything dirty and empties the page cache (or, without the
/// privilege, drops the pages of `inputs`), so the next phase reads from disk.
void cold_cache(const std::vector<fs::path>& inputs) {
    ::sync();
    if (g_drop_caches && write_drop_caches()) return;
    for (const auto& p : inputs) fadvise_dontneed(p);
}

bool fsync_path(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    const bool ok = ::fsync(fd) == 0;
    ::close(fd);
    return ok;
}

/// `cp -- src dst` as a real process, then fsync of the copy. Timed by the caller.
bool run_cp(const fs::path& src, const fs::path& dst) {
    std::string a0 = "cp", a1 = "--", a2 = src.string(), a3 = dst.string();
    char* argv[] = {a0.data(), a1.data(), a2.data(), a3.data(), nullptr};
    pid_t pid = 0;
    if (::posix_spawnp(&pid, "cp", nullptr, nullptr, argv, environ) != 0) {
        std::fprintf(stderr, "media_bench: cannot start cp: %s\n", std::strerror(errno));
        return false;
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "media_bench: cp failed (status %d)\n", status);
        return false;
    }
    return fsync_path(dst);
}

std::optional<transfer::Sha256> hash_file(const fs::path& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return std::nullopt;
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    std::vector<std::byte> buffer(4u << 20);
    bundle::Sha256 hash;
    for (;;) {
        ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            return std::nullopt;
        }
        if (n == 0) break;
        hash.update(std::span<const std::byte>(buffer.data(), static_cast<std::size_t>(n)));
    }
    ::close(fd);
    auto d = hash.finish();
    transfer::Sha256 out{};
    std::memcpy(out.data(), d.data(), 32);
    return out;
}

/// Creates the archive; returns its SHA-256.
std::optional<transfer::Sha256> make_archive(const fs::path& path, std::uint64_t bytes, std::uint64_t seed) {
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        std::fprintf(stderr, "media_bench: cannot create %s: %s\n", path.c_str(), std::strerror(errno));
        return std::nullopt;
    }
    Xoshiro256 rng(seed);
    std::vector<std::byte> buffer(4u << 20);
    bundle::Sha256 hash;
    for (std::uint64_t at = 0; at < bytes;) {
        const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), bytes - at));
        rng.fill(buffer.data(), n);
        hash.update(std::span<const std::byte>(buffer.data(), n));
        for (std::size_t done = 0; done < n;) {
            ssize_t w = ::write(fd, buffer.data() + done, n - done);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                std::fprintf(stderr, "media_bench: cannot write %s: %s\n", path.c_str(), std::strerror(errno));
                ::close(fd);
                return std::nullopt;
            }
            done += static_cast<std::size_t>(w);
        }
        at += n;
    }
    ::fsync(fd);
    ::close(fd);
    auto d = hash.finish();
    transfer::Sha256 out{};
    std::memcpy(out.data(), d.data(), 32);
    return out;
}

struct ImportRun {
    bool ok = false;           ///< scan, import, finalize succeeded
    bool intact = false;       ///< and the returned file hashes to the original
    double scan = 0, import = 0, flush = 0, finalize = 0;
    Phase total;
    media::VolumeImport report;
    std::string error;
};

/// scan_medium + import_volume + flush + finalize into a fresh FileBlockStore at
/// `store_dir`; the timed part ends when finalize returns. Then (untimed) the
/// archive finalize returns is hashed again and compared with `expected`.
ImportRun import_medium(const fs::path& medium, const fs::path& store_dir, const transfer::Sha256& expected) {
    ImportRun run;
    std::optional<fs::path> rebuilt;
    {
        Stopwatch all;
        auto t = Clock::now();
        transfer::FileBlockStore store(store_dir);
        auto scan = media::scan_medium(medium, nullptr);
        run.scan = seconds_since(t);
        if (!scan) {
            run.error = scan.error().message;
            return run;
        }
        if (scan->volumes.size() != 1) {
            run.error = "expected one volume on the medium, found " + std::to_string(scan->volumes.size());
            return run;
        }
        const auto& volume = scan->volumes.front();
        t = Clock::now();
        auto imported = media::import_volume(volume, store, nullptr);
        run.import = seconds_since(t);
        if (!imported) {
            run.error = imported.error().message;
            return run;
        }
        run.report = *imported;
        t = Clock::now();
        store.flush();
        run.flush = seconds_since(t);
        t = Clock::now();
        auto final_path = store.finalize(imported->staging_key, volume.index.info);
        run.finalize = seconds_since(t);
        run.total = all.stop();
        if (!final_path) {
            run.error = final_path.error().message;
            return run;
        }
        run.ok = true;
        rebuilt = *final_path;
        if (volume.index.info.archive_sha256 != expected) {
            run.error = "the index announces another SHA-256 than the archive's";
            return run;
        }
    }
    auto got = hash_file(*rebuilt);
    run.intact = got && *got == expected;
    if (!run.intact) run.error = "the rebuilt archive " + rebuilt->string() + " differs from the original";
    return run;
}

void remove_tree(const fs::path& p) {
    std::error_code ec;
    fs::remove_all(p, ec);
}

/// Removes the working directory whatever happens.
struct WorkDir {
    fs::path path;
    ~WorkDir() {
        if (!path.empty()) remove_tree(path);
    }
};

std::string fs_type(const fs::path& p) {
    struct statfs sf {};
    if (::statfs(p.c_str(), &sf) != 0) return "?";
    switch (static_cast<unsigned long>(sf.f_type)) {
        case 0xEF53: return "ext2/3/4";
        case 0x01021994: return "tmpfs";
        case 0x58465342: return "xfs";
        case 0x9123683E: return "btrfs";
        case 0x4d44: return "vfat";
        case 0x2011BAB0: return "exfat";
        default: {
            char buf[32];
            std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(sf.f_type));
            return buf;
        }
    }
}

int final_line(double write_ratio, double import_ratio, bool intact) {
    std::printf("write_ratio=%.2f import_ratio=%.2f intact=%s\n", write_ratio, import_ratio, intact ? "yes" : "no");
    return intact ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    std::uint64_t bytes = 2ULL << 30;
    fs::path parent = "/var/tmp/sluice-bench-media";
    if (argc > 1) bytes = std::strtoull(argv[1], nullptr, 10);
    if (argc > 2) parent = argv[2];
    if (bytes < (1u << 20)) {
        std::fprintf(stderr, "usage: media_bench [BYTES ≥ 1 MiB] [DIR]\n");
        return 2;
    }
    std::error_code ec;
    fs::create_directories(parent, ec);
    WorkDir work;
    work.path = parent / ("media-bench." + std::to_string(::getpid()));
    remove_tree(work.path);
    if (!fs::create_directory(work.path, ec)) {
        std::fprintf(stderr, "media_bench: cannot create %s: %s\n", work.path.c_str(), ec.message().c_str());
        return 2;
    }
    const fs::path archive = work.path / "archive.bin";
    const fs::path copy = work.path / "copy.bin";
    const fs::path mount = work.path / "medium";
    const fs::path store1 = work.path / "store";
    const fs::path store2 = work.path / "store-damaged";
    fs::create_directory(mount, ec);

    ::sync();
    g_drop_caches = write_drop_caches();
    std::printf("media bench: %" PRIu64 " bytes (%.2f GiB) in %s (%s), load %s\n", bytes,
                static_cast<double>(bytes) / (1u << 30), work.path.c_str(), fs_type(work.path).c_str(),
                load_average().c_str());
    std::printf("cache: %s\n", g_drop_caches
                                   ? "sync + echo 3 > /proc/sys/vm/drop_caches before every timed phase"
                                   : "/proc/sys/vm/drop_caches not writable: sync + fadvise(DONTNEED) of each phase's "
                                     "input files instead");

    // ---- 0. the archive
    std::random_device rd;
    const std::uint64_t seed = (std::uint64_t{rd()} << 32) ^ rd();
    auto t0 = Clock::now();
    auto digest = make_archive(archive, bytes, seed);
    if (!digest) return final_line(0, 0, false);
    const double gen_s = seconds_since(t0);
    transfer::TransferInfo info;
    {
        Xoshiro256 id_rng(seed ^ 0x5eed);
        id_rng.fill(info.bundle_id.data(), info.bundle_id.size());
    }
    info.archive_bytes = bytes;
    info.archive_sha256 = *digest;
    info.channel = "bench";
    info.version = "1.0.0";
    std::printf("archive: %.2f s to generate, hash and fsync (%.0f MB/s); sha256 %s\n", gen_s, mb_per_s(bytes, gen_s),
                transfer::to_hex(*digest).c_str());

    // ---- 1. cp + fsync
    std::vector<Phase> cps;
    auto cp_run = [&]() -> bool {
        cold_cache({archive});
        Stopwatch sw;
        if (!run_cp(archive, copy)) return false;
        cps.push_back(sw.stop());
        std::printf("cp #%zu:   %7.2f s  %7.1f MB/s   (cp, then fsync of the copy; %s)\n", cps.size(), cps.back().seconds,
                    mb_per_s(bytes, cps.back().seconds), cpu_text(cps.back(), false).c_str());
        std::error_code e;
        fs::remove(copy, e);
        return true;
    };
    if (!cp_run()) return final_line(0, 0, false);

    // ---- 2. write and verify
    media::WriteRequest req;
    req.archive = archive;
    req.info = info;
    req.layout.volume_bytes = bytes + bytes / 2 + (64ULL << 20);  // one volume
    req.targets = {mount};
    req.written_at = "2026-11-30T00:00:00Z";
    req.written_by = "media_bench";
    req.host = "bench";
    cold_cache({archive});
    Stopwatch write_sw;
    auto written = media::write_volumes(req);
    const Phase write_phase = write_sw.stop();
    if (!written) {
        std::fprintf(stderr, "media_bench: write failed: %s\n", written.error().message.c_str());
        return final_line(0, 0, false);
    }
    const auto& layout = written->layout;
    const auto& vol = written->written.front();
    std::printf("layout:  K=%u M=%u symbol %zu B, record %zu B, run %u, W=%u stripes, %" PRIu64
                " blocks, %zu segments (%" PRIu64 " blocks per set), %.2f GB on the medium (%.3f x the archive)\n",
                layout.fec.data_symbols, layout.fec.parity_symbols, layout.fec.symbol_bytes, layout.record_bytes(),
                layout.run, layout.stripes, vol.end_block - vol.first_block, vol.segments, layout.blocks_per_set,
                static_cast<double>(vol.bytes) / 1e9, static_cast<double>(vol.bytes) / static_cast<double>(bytes));
    std::printf("write:   %7.2f s  %7.1f MB/s of archive (%.1f MB/s onto the medium); encode+write+fsync %.2f s, "
                "read-back check %.2f s; %s\n",
                write_phase.seconds, mb_per_s(bytes, write_phase.seconds), mb_per_s(vol.bytes, write_phase.seconds),
                vol.write_seconds, vol.verify_seconds, cpu_text(write_phase).c_str());

    // ---- 3. import
    cold_cache({mount});
    auto imp = import_medium(mount, store1, *digest);
    std::printf("import:  %7.2f s  %7.1f MB/s of archive; scan %.3f s, import_volume %.2f s, flush %.2f s, "
                "finalize %.2f s; %" PRIu64 " blocks direct, %" PRIu64 " repaired; %s\n",
                imp.total.seconds, mb_per_s(bytes, imp.total.seconds), imp.scan, imp.import, imp.flush, imp.finalize,
                imp.report.blocks_direct, imp.report.blocks_repaired, cpu_text(imp.total).c_str());
    if (!imp.intact) std::printf("import:  NOT INTACT: %s\n", imp.error.c_str());
    remove_tree(store1);

    // ---- 4. cp again
    if (!cp_run()) return final_line(0, 0, false);

    // ---- 5. import with one segment file lost (informative)
    std::string lost;
    for (const auto& e : fs::directory_iterator(mount / media::kRootDir, ec)) {
        fs::path seg = e.path() / "v0001-c0000-s000.seg";
        if (fs::exists(seg, ec)) {
            lost = seg.filename().string();
            fs::remove(seg, ec);
        }
    }
    cold_cache({mount});
    auto damaged = import_medium(mount, store2, *digest);
    std::printf("damaged: %7.2f s  %7.1f MB/s of archive, %s deleted: %" PRIu64 " blocks direct, %" PRIu64
                " repaired, %zu ranges unrecoverable, intact=%s%s%s\n",
                damaged.total.seconds, mb_per_s(bytes, damaged.total.seconds), lost.empty() ? "(no segment)" : lost.c_str(),
                damaged.report.blocks_direct, damaged.report.blocks_repaired, damaged.report.unrecoverable.size(),
                damaged.intact ? "yes" : "no", damaged.intact ? "" : ": ", damaged.intact ? "" : damaged.error.c_str());
    std::printf("damaged: %s\n", cpu_text(damaged.total).c_str());
    remove_tree(store2);

    // ---- results
    double cp_s = 0;
    for (const auto& c : cps) cp_s += c.seconds;
    cp_s /= static_cast<double>(cps.size());
    const double write_ratio = cp_s / write_phase.seconds;
    const double import_ratio = imp.ok ? cp_s / imp.total.seconds : 0;
    std::printf("cp:      %7.2f s  %7.1f MB/s (mean of %zu runs: %.2f s, %.2f s)\n", cp_s, mb_per_s(bytes, cp_s),
                cps.size(), cps[0].seconds, cps[1].seconds);
    auto verdict = [](double r) { return std::round(r * 100) / 100 >= 0.7 ? "PASS" : "MISS"; };
    std::printf("target:  write_ratio %.2f (>= 0.70: %s), import_ratio %.2f (>= 0.70: %s); load at the end %s\n",
                write_ratio, verdict(write_ratio), import_ratio, verdict(import_ratio), load_average().c_str());
    return final_line(write_ratio, import_ratio, imp.intact);
}
