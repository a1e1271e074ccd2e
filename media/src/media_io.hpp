#pragma once
// Small POSIX helpers of media/ (file-private): an owned descriptor, full
// reads and writes that name the file, durable small files.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <new>
#include <cstring>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <array>

#include "sluice/core/result.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice::media::detail {

using Fd = UniqueFd;  // an owned file descriptor

/// Streaming XXH3-128 (a segment's hash): canonical big-endian bytes.
class Xxh128 {
public:
    Xxh128() { XXH3_128bits_reset(&state_); }
    void update(std::span<const std::byte> bytes) { XXH3_128bits_update(&state_, bytes.data(), bytes.size()); }
    [[nodiscard]] std::array<std::byte, 16> finish() {
        XXH128_canonical_t c;
        XXH128_canonicalFromHash(&c, XXH3_128bits_digest(&state_));
        std::array<std::byte, 16> out{};
        std::memcpy(out.data(), c.digest, out.size());
        XXH3_128bits_reset(&state_);
        return out;
    }

private:
    XXH3_state_t state_{};
};

/// A buffer aligned for O_DIRECT (4096 bytes; `bytes` is rounded up to a multiple).
class AlignedBuffer {
public:
    explicit AlignedBuffer(std::size_t bytes)
        : size_(bytes), data_(static_cast<std::byte*>(std::aligned_alloc(kAlign, (bytes + kAlign - 1) / kAlign * kAlign))) {
        if (data_ == nullptr) throw std::bad_alloc();
    }
    ~AlignedBuffer() { std::free(data_); }
    AlignedBuffer(const AlignedBuffer&) = delete;
    AlignedBuffer& operator=(const AlignedBuffer&) = delete;
    [[nodiscard]] std::byte* data() { return data_; }
    [[nodiscard]] std::size_t size() const { return size_; }
    static constexpr std::size_t kAlign = 4096;

private:
    std::size_t size_;
    std::byte* data_;
};

/// Opens `path` with `flags`, adding O_DIRECT when `direct` and the file system
/// takes it (it bypasses the page cache: writes are not copied twice, and a
/// read-back reads the medium, not memory). Sets `direct` to what was used.
inline int open_maybe_direct(const std::filesystem::path& path, int flags, mode_t mode, bool& direct) {
    if (direct) {
        int fd = ::open(path.c_str(), flags | O_DIRECT, mode);
        if (fd >= 0 || errno != EINVAL) return fd;
        direct = false;
    }
    return ::open(path.c_str(), flags, mode);
}

inline Result<void> write_all(int fd, std::span<const std::byte> bytes, const std::filesystem::path& name) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return fail("cannot write " + name.string() + ": " + std::strerror(n < 0 ? errno : EIO));
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return {};
}

/// Reads up to out.size() bytes at `offset`; fewer only at the end of the file.
inline Result<std::size_t> read_at(int fd, std::span<std::byte> out, std::uint64_t offset, const std::filesystem::path& name) {
    std::size_t done = 0;
    while (done < out.size()) {
        ssize_t n = ::pread(fd, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("cannot read " + name.string() + ": " + std::strerror(errno));
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
    }
    return done;
}

inline void sync_dir(const std::filesystem::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

/// Writes beside `path`, fsyncs, renames over it.
inline Result<void> write_file_durably(const std::filesystem::path& path, std::span<const std::byte> bytes) {
    std::filesystem::path tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
    ::unlink(tmp.c_str());
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!fd) return fail("cannot create " + tmp.string() + ": " + std::strerror(errno));
    if (auto ok = write_all(fd.get(), bytes, tmp); !ok) return ok;
    if (::fsync(fd.get()) != 0) return fail("cannot sync " + tmp.string() + ": " + std::strerror(errno));
    fd.reset();
    if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("cannot rename " + tmp.string() + ": " + std::strerror(errno));
    return {};
}

/// A regular file (never through a symlink) of at most `max` bytes.
inline Result<std::vector<std::byte>> read_small_file(const std::filesystem::path& path, std::size_t max) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!fd) return fail("cannot open " + path.string() + ": " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return fail(path.string() + " is not a regular file");
    if (static_cast<std::uint64_t>(st.st_size) > max) {
        return fail(path.string() + " claims " + std::to_string(st.st_size) + " bytes, over the limit of " +
                    std::to_string(max));
    }
    std::vector<std::byte> out(static_cast<std::size_t>(st.st_size));
    auto got = read_at(fd.get(), out, 0, path);
    if (!got) return got.error();
    out.resize(*got);
    return out;
}

}  // namespace sluice::media::detail
