#include "file_io.hpp"

#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

namespace sluice::bundle::detail {
namespace fs = std::filesystem;

std::string errno_text(int err) { return std::strerror(err); }

Fd::~Fd() {
    if (fd_ >= 0) ::close(fd_);
}

Fd& Fd::operator=(Fd&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = other.release();
    }
    return *this;
}

namespace {

Error io_error(std::string_view what, const fs::path& path, int err) {
    return fail(path.string() + ": " + std::string(what) + ": " + errno_text(err));
}

std::string random_suffix() {
    static std::atomic<unsigned> counter{0};
    std::random_device rd;
    return std::to_string(::getpid()) + "-" + std::to_string(counter.fetch_add(1)) + "-" + std::to_string(rd() % 100000);
}

/// The final path must be new, and its parent must exist (named in the error,
/// rather than the hidden staging name that could not be created).
Result<void> refuse_existing(const fs::path& final_path) {
    std::error_code ec;
    if (final_path.filename().empty()) return fail(final_path.string() + ": give a file or directory name, not a path ending in '/'");
    if (fs::exists(fs::symlink_status(final_path, ec))) {
        return fail(final_path.string() + ": already exists; choose a new name or remove it first");
    }
    fs::path parent = final_path.parent_path();
    if (!parent.empty() && !fs::is_directory(parent, ec)) {
        return fail(parent.string() + ": directory does not exist (create it first)");
    }
    return {};
}

/// Renames `from` to `to` (never replacing) and, with sync, makes the new name durable.
Result<void> rename_into_place(const fs::path& from, const fs::path& to, bool sync) {
    if (auto ok = rename_no_replace(from, to); !ok) return ok;
    if (!sync) return {};
    fs::path parent = to.parent_path();
    return fsync_path(parent.empty() ? fs::path(".") : parent);
}

/// Removes staging entries for `final_path` left by a process that no longer
/// exists (killed, or the machine lost power). Entries of live processes, and
/// anything whose name does not parse, are left alone.
void remove_stale_staging(const fs::path& final_path) {
    fs::path parent = final_path.parent_path();
    if (parent.empty()) parent = ".";
    const std::string prefix = "." + final_path.filename().string() + ".partial-";
    std::error_code ec;
    for (auto it = fs::directory_iterator(parent, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (name.rfind(prefix, 0) != 0) continue;
        std::string rest = name.substr(prefix.size());
        std::size_t dash = rest.find('-');
        if (dash == 0 || dash == std::string::npos) continue;
        char* end = nullptr;
        long pid = std::strtol(rest.c_str(), &end, 10);
        if (end != rest.c_str() + dash || pid <= 0) continue;
        if (::kill(static_cast<pid_t>(pid), 0) == 0 || errno != ESRCH) continue;  // alive, or not ours to judge
        std::error_code rm;
        fs::remove_all(it->path(), rm);
    }
}

fs::path staging_name(const fs::path& final_path) {
    fs::path parent = final_path.parent_path();
    if (parent.empty()) parent = ".";
    return parent / ("." + final_path.filename().string() + ".partial-" + random_suffix());
}

Result<std::size_t> read_some(int fd, std::span<std::byte> buffer, const fs::path& path) {
    for (;;) {
        ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n >= 0) return static_cast<std::size_t>(n);
        if (errno != EINTR) return io_error("read failed", path, errno);
    }
}

}  // namespace

Result<Fd> open_regular_file(const fs::path& path, std::uint64_t* size_out, Links links) {
    int nofollow = links == Links::refuse ? O_NOFOLLOW : 0;
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | nofollow | O_NOCTTY | O_NONBLOCK));
    if (!fd.valid()) {
        if (errno == ELOOP) return fail(path.string() + ": is a symbolic link (only regular files are allowed)");
        return io_error("cannot open", path, errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return io_error("cannot stat", path, errno);
    if (!S_ISREG(st.st_mode)) return fail(path.string() + ": not a regular file");
    int flags = ::fcntl(fd.get(), F_GETFL);
    if (flags >= 0) ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
    if (size_out != nullptr) *size_out = static_cast<std::uint64_t>(st.st_size);
    return fd;
}

Result<std::string> read_small_file(const fs::path& path, std::size_t max_bytes, Links links) {
    std::uint64_t size = 0;
    auto fd = open_regular_file(path, &size, links);
    if (!fd) return fd.error();
    if (size > max_bytes) {
        return fail(path.string() + ": larger than the " + std::to_string(max_bytes) + "-byte limit");
    }
    std::string out(static_cast<std::size_t>(size), '\0');
    std::size_t got = 0;
    while (got < out.size()) {
        auto n = read_some(fd->get(), std::as_writable_bytes(std::span(out.data() + got, out.size() - got)), path);
        if (!n) return n.error();
        if (*n == 0) break;
        got += *n;
    }
    out.resize(got);
    // A file that grew while we read it is refused rather than silently cut.
    std::byte probe[1];
    auto extra = read_some(fd->get(), probe, path);
    if (!extra) return extra.error();
    if (*extra != 0) return fail(path.string() + ": changed while being read");
    return out;
}

Result<void> write_all(int fd, std::span<const std::byte> bytes, std::string_view what) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(std::string(what) + ": write failed: " + errno_text(errno));
        }
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return {};
}

Result<void> write_new_file(const fs::path& path, std::string_view bytes, unsigned mode, bool sync) {
    Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode));
    if (!fd.valid()) return io_error("cannot create", path, errno);
    if (::fchmod(fd.get(), mode) != 0) return io_error("cannot set mode", path, errno);
    if (auto ok = write_all(fd.get(), std::as_bytes(std::span(bytes.data(), bytes.size())), path.string()); !ok) {
        return ok;
    }
    if (sync && ::fsync(fd.get()) != 0) return io_error("fsync failed", path, errno);
    if (::close(fd.release()) != 0) return io_error("close failed", path, errno);
    return {};
}

Result<void> fsync_path(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!fd.valid()) return io_error("cannot open for fsync", path, errno);
    if (::fsync(fd.get()) != 0) return io_error("fsync failed", path, errno);
    return {};
}

Result<FileDigest> hash_file(const fs::path& path, std::span<std::byte> buffer) {
    FileDigest out;
    auto fd = open_regular_file(path);
    if (!fd) return fd.error();
    struct stat st {};
    if (::fstat(fd->get(), &st) == 0 && st.st_nlink > 1) {
        return fail(path.string() + ": has other hard links (a bag's files must not be shared with files outside it)");
    }
    ::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    Sha256 hasher;
    for (;;) {
        auto n = read_some(fd->get(), buffer, path);
        if (!n) return n.error();
        if (*n == 0) break;
        hasher.update(buffer.first(*n));
        out.size += *n;
    }
    out.digest = hasher.finish();
    return out;
}

Result<FileDigest> copy_and_hash(const fs::path& src, const fs::path& dst, std::span<std::byte> buffer,
                                 bool start_writeback) {
    // Writeback is started every kWritebackWindow bytes, so that the disk works
    // while we hash, and the final sync finds little left to do.
    constexpr std::uint64_t kWritebackWindow = 8 << 20;
    FileDigest out;
    auto in = open_regular_file(src);
    if (!in) return in.error();
    ::posix_fadvise(in->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
    Fd fd(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd.valid()) return io_error("cannot create", dst, errno);
    Sha256 hasher;
    std::uint64_t flushed = 0;
    for (;;) {
        auto n = read_some(in->get(), buffer, src);
        if (!n) return n.error();
        if (*n == 0) break;
        hasher.update(buffer.first(*n));
        if (auto ok = write_all(fd.get(), buffer.first(*n), dst.string()); !ok) return ok.error();
        out.size += *n;
        if (start_writeback && out.size - flushed >= kWritebackWindow) {
            ::sync_file_range(fd.get(), static_cast<off_t>(flushed), static_cast<off_t>(out.size - flushed),
                              SYNC_FILE_RANGE_WRITE);
            flushed = out.size;
        }
    }
    if (start_writeback && out.size > flushed) {
        ::sync_file_range(fd.get(), static_cast<off_t>(flushed), 0, SYNC_FILE_RANGE_WRITE);
    }
    out.digest = hasher.finish();
    if (::fchmod(fd.get(), 0644) != 0) return io_error("cannot set mode", dst, errno);
    if (::close(fd.release()) != 0) return io_error("close failed", dst, errno);
    return out;
}

Result<void> rename_no_replace(const fs::path& from, const fs::path& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST) return fail(to.string() + ": already exists; choose a new name or remove it first");
        return io_error("cannot rename into place", to, errno);
    }
    return {};
}

Result<StagingDir> StagingDir::create_beside(const fs::path& final_path) {
    if (auto ok = refuse_existing(final_path); !ok) return ok.error();
    remove_stale_staging(final_path);
    fs::path staging = staging_name(final_path);
    if (::mkdir(staging.c_str(), 0755) != 0) return io_error("cannot create staging directory", staging, errno);
    return StagingDir(staging, final_path);
}

StagingDir::StagingDir(StagingDir&& other) noexcept
    : path_(std::move(other.path_)), final_(std::move(other.final_)), active_(other.active_) {
    other.active_ = false;
}

StagingDir::~StagingDir() {
    if (active_) {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
}

Result<void> StagingDir::commit(bool sync) {
    if (sync) {
        // One syncfs() flushes every file and directory written into the staging
        // tree (and reports their writeback errors) far faster than an fsync per
        // file; only then does the tree get its final name.
        Fd dir(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir.valid()) return io_error("cannot open for sync", path_, errno);
        if (::syncfs(dir.get()) != 0) return io_error("sync failed", path_, errno);
    }
    if (auto ok = rename_into_place(path_, final_, sync); !ok) return ok;
    active_ = false;
    return {};
}

Result<StagingFile> StagingFile::create_beside(const fs::path& final_path) {
    if (auto ok = refuse_existing(final_path); !ok) return ok.error();
    remove_stale_staging(final_path);
    fs::path staging = staging_name(final_path);
    Fd fd(::open(staging.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd.valid()) return io_error("cannot create", staging, errno);
    return StagingFile(std::move(fd), staging, final_path);
}

StagingFile::StagingFile(StagingFile&& other) noexcept
    : fd_(std::move(other.fd_)), path_(std::move(other.path_)), final_(std::move(other.final_)), active_(other.active_) {
    other.active_ = false;
}

StagingFile::~StagingFile() {
    if (active_) ::unlink(path_.c_str());
}

Result<void> StagingFile::commit(bool sync) {
    if (sync && ::fsync(fd_.get()) != 0) return io_error("fsync failed", path_, errno);
    if (::close(fd_.release()) != 0) return io_error("close failed", path_, errno);
    if (auto ok = rename_into_place(path_, final_, sync); !ok) return ok;
    active_ = false;
    return {};
}

unsigned worker_count(unsigned requested) {
    if (requested != 0) return requested;
    unsigned hw = std::thread::hardware_concurrency();
    return std::clamp(hw, 1U, 8U);
}

std::vector<std::size_t> largest_first(const std::vector<std::uint64_t>& sizes) {
    std::vector<std::size_t> order(sizes.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return sizes[a] > sizes[b]; });
    return order;
}

Result<void> parallel_for(const std::vector<std::size_t>& order, unsigned threads,
                          const std::function<Result<void>(std::size_t, std::span<std::byte>)>& job) {
    std::atomic<std::size_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::optional<std::pair<std::size_t, Error>> first_failure;

    auto worker = [&] {
        auto buffer = std::make_unique<std::byte[]>(kIoBufferBytes);
        std::span<std::byte> span(buffer.get(), kIoBufferBytes);
        while (!stop.load(std::memory_order_relaxed)) {
            std::size_t k = next.fetch_add(1);
            if (k >= order.size()) break;
            std::size_t i = order[k];
            Result<void> r = [&]() -> Result<void> {
                try {
                    return job(i, span);
                } catch (const std::exception& e) {
                    return fail(e.what());
                }
            }();
            if (!r) {
                std::lock_guard lock(mutex);
                if (!first_failure || i < first_failure->first) first_failure.emplace(i, r.error());
                stop = true;
            }
        }
    };
    std::size_t n = std::min<std::size_t>(std::max(1U, threads), std::max<std::size_t>(order.size(), 1));
    std::vector<std::jthread> pool;
    for (std::size_t t = 1; t < n; ++t) pool.emplace_back(worker);
    worker();
    pool.clear();  // joins
    if (first_failure) return first_failure->second;
    return {};
}

}  // namespace sluice::bundle::detail
