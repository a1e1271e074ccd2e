#pragma once
// File-private I/O for the bundle module: RAII descriptors, bounded reads,
// streaming hash/copy through a caller-owned buffer, write-beside-then-rename.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/bundle/digest.hpp"
#include "sluice/core/result.hpp"

namespace sluice::bundle::detail {

/// Buffer size for streaming file contents: large enough for full-speed
/// sequential I/O and hashing, small enough that memory stays flat.
inline constexpr std::size_t kIoBufferBytes = 1 << 20;

std::string errno_text(int err);

class Fd {
public:
    Fd() = default;
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd();
    Fd(Fd&& other) noexcept : fd_(other.release()) {}
    Fd& operator=(Fd&& other) noexcept;
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    [[nodiscard]] bool valid() const { return fd_ >= 0; }
    int release() {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

private:
    int fd_ = -1;
};

enum class Links { refuse, follow };

/// Opens an existing regular file for reading; refuses special files, and
/// symbolic links unless `links` is follow (for paths a user typed).
Result<Fd> open_regular_file(const std::filesystem::path& path, std::uint64_t* size_out = nullptr,
                             Links links = Links::refuse);

/// Reads a whole (small) regular file, refusing one larger than max_bytes.
Result<std::string> read_small_file(const std::filesystem::path& path, std::size_t max_bytes,
                                    Links links = Links::refuse);

/// Creates a new file (never overwrites, never follows a link) with `bytes`.
Result<void> write_new_file(const std::filesystem::path& path, std::string_view bytes, unsigned mode, bool sync);

/// Writes all of `bytes` to fd; the error names `what`.
Result<void> write_all(int fd, std::span<const std::byte> bytes, std::string_view what);

Result<void> fsync_path(const std::filesystem::path& path);

struct FileDigest {
    Sha256Digest digest{};
    std::uint64_t size = 0;
};

/// Streams a regular file through SHA-256.
Result<FileDigest> hash_file(const std::filesystem::path& path, std::span<std::byte> buffer);

/// Copies src to a new file dst (mode 0644) hashing the bytes on the way: one
/// pass. Not synced: files are written inside a StagingDir, whose commit syncs;
/// with start_writeback the disk starts writing while the copy goes on, so
/// that final sync has little left to wait for.
Result<FileDigest> copy_and_hash(const std::filesystem::path& src, const std::filesystem::path& dst,
                                 std::span<std::byte> buffer, bool start_writeback);

/// rename(2) that fails instead of replacing an existing target.
Result<void> rename_no_replace(const std::filesystem::path& from, const std::filesystem::path& to);

/// A fresh hidden directory beside `final_path` that is removed with everything
/// in it unless commit() moved it into place.
class StagingDir {
public:
    static Result<StagingDir> create_beside(const std::filesystem::path& final_path);
    StagingDir(StagingDir&& other) noexcept;
    StagingDir& operator=(StagingDir&&) = delete;
    ~StagingDir();
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    /// Syncs the file system (optionally: syncfs, one call for the whole tree)
    /// and renames the staging directory to its final path, then syncs the parent.
    Result<void> commit(bool sync);

private:
    StagingDir(std::filesystem::path path, std::filesystem::path final_path)
        : path_(std::move(path)), final_(std::move(final_path)) {}
    std::filesystem::path path_;
    std::filesystem::path final_;
    bool active_ = true;
};

/// A new file beside `final_path`, removed unless commit() renamed it into place.
class StagingFile {
public:
    static Result<StagingFile> create_beside(const std::filesystem::path& final_path);
    StagingFile(StagingFile&& other) noexcept;
    StagingFile& operator=(StagingFile&&) = delete;
    ~StagingFile();
    [[nodiscard]] int fd() const { return fd_.get(); }
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    Result<void> commit(bool sync);

private:
    StagingFile(Fd fd, std::filesystem::path path, std::filesystem::path final_path)
        : fd_(std::move(fd)), path_(std::move(path)), final_(std::move(final_path)) {}
    Fd fd_;
    std::filesystem::path path_;
    std::filesystem::path final_;
    bool active_ = true;
};

/// Indices of `sizes`, largest first: handing the biggest files out first
/// keeps the workers busy to the end (longest-processing-time scheduling).
std::vector<std::size_t> largest_first(const std::vector<std::uint64_t>& sizes);

/// Runs job(i) for every i in `order`, in that order, on `threads` workers
/// (each with its own I/O buffer). Stops handing out work after the first
/// failure; of the failures seen, returns the one with the lowest index.
Result<void> parallel_for(const std::vector<std::size_t>& order, unsigned threads,
                          const std::function<Result<void>(std::size_t, std::span<std::byte>)>& job);

/// Effective worker count for a Parallelism request.
unsigned worker_count(unsigned requested);

}  // namespace sluice::bundle::detail
