#include "sluice/policy/release_store.hpp"

#include "posix_io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>  // renameat2
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <utility>

#include "sluice/bundle/bundle.hpp"
#include "sluice/policy/version.hpp"

namespace sluice::policy {
namespace fs = std::filesystem;
namespace {

using detail::Fd;
using detail::errno_text;
using detail::io_error;

/// Streaming buffer for copies: big enough for full-speed sequential I/O,
/// fixed so that memory does not grow with file sizes.
constexpr std::size_t kCopyBufferBytes = 1 << 20;
/// Same bound the bundle module puts on a tag file.
constexpr std::size_t kMaxManifestBytes = bundle::Limits{}.max_tag_file_bytes;

constexpr std::string_view kCurrent = "current";
constexpr std::string_view kPartialPrefix = ".partial-";
constexpr std::string_view kCurrentTempPrefix = ".current-";

constexpr mode_t kFileMode = 0644;
constexpr mode_t kDirMode = 0755;


struct DirClose {
    void operator()(DIR* dir) const { ::closedir(dir); }
};
using DirStream = std::unique_ptr<DIR, DirClose>;



/// A caller-supplied name made safe to show: control and non-ASCII bytes become '?'.
std::string printable(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, 80)) out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
    if (text.size() > 80) out += "...";
    return out;
}

/// 16 hex digits, so that concurrent installs and switches never pick the
/// same temporary name.
std::string random_hex16() {
    std::array<std::uint8_t, 8> bytes{};
    std::size_t got = 0;
    while (got < bytes.size()) {
        ssize_t n = ::getrandom(bytes.data() + got, bytes.size() - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    if (got < bytes.size()) {
        // Only uniqueness matters here (mkdir/symlink refuse an existing
        // name), so the process, a counter and the clock are good enough.
        static std::atomic<std::uint64_t> counter{0};
        std::uint64_t mix = static_cast<std::uint64_t>(::getpid()) * 0x9E3779B97F4A7C15ULL ^
                            static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
                            (counter.fetch_add(1) << 48);
        for (auto& b : bytes) {
            b = static_cast<std::uint8_t>(mix & 0xff);
            mix >>= 8;
        }
    }
    return bundle::to_hex(bytes);
}

Result<void> check_channel(std::string_view channel) {
    if (bundle::is_valid_channel(channel)) return {};
    return fail("channel '" + printable(channel) +
                "' is not valid: use 1-64 of a-z 0-9 . _ - starting with a letter or digit");
}

Result<void> check_names(std::string_view channel, std::string_view version) {
    if (auto ok = check_channel(channel); !ok) return ok;
    if (!bundle::is_valid_version(version)) {
        return fail("version '" + printable(version) +
                    "' is not valid: use 1-64 of A-Z a-z 0-9 . _ + - starting with a letter or digit");
    }
    // Versions become directory names beside the `current` symlink.
    if (version == kCurrent) return fail("version 'current' is reserved for the symlink to the current version");
    return {};
}

bool starts_with(std::string_view text, std::string_view prefix) { return text.substr(0, prefix.size()) == prefix; }

Result<void> fsync_fd(int fd, const fs::path& path) {
    if (::fsync(fd) != 0) return io_error(path, "fsync failed", errno);
    return {};
}

Result<Fd> open_directory(const fs::path& path) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd.valid()) {
        if (errno == ENOTDIR || errno == ELOOP) return fail(path.string() + ": not a directory");
        return io_error(path, "cannot open directory", errno);
    }
    return fd;
}

/// Removes a tree even where someone made directories read-only (0555 or
/// 0000): a directory's entries can only be unlinked if it is writable, so
/// every directory is given owner rwx before remove_all.
/// Gives a real directory (never a symlink's target) owner rwx. Plain chmod
/// after lstat: libstdc++'s permissions(nofollow) goes through
/// fchmodat(AT_SYMLINK_NOFOLLOW), which fails with ENOTSUP on some systems.
void add_owner_rwx(const fs::path& dir) {
    struct stat st {};
    if (::lstat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) ::chmod(dir.c_str(), (st.st_mode & 07777) | 0700);
}

Result<void> remove_tree(const fs::path& path) {
    std::error_code ec;
    auto status = fs::symlink_status(path, ec);
    if (ec) {
        if (ec == std::errc::no_such_file_or_directory) return {};
        return fail(path.string() + ": cannot stat: " + ec.message());
    }
    if (fs::is_directory(status)) {
        std::error_code ignored;
        add_owner_rwx(path);
        // The iterator opens a directory when it steps into it, after we
        // have seen (and fixed) its entry.
        fs::recursive_directory_iterator it(path, ignored);
        for (; !ignored && it != fs::recursive_directory_iterator(); it.increment(ignored)) {
            if (it->is_directory(ignored) && !it->is_symlink(ignored)) add_owner_rwx(it->path());
        }
    }
    fs::remove_all(path, ec);
    if (ec) return fail(path.string() + ": cannot remove: " + ec.message());
    return {};
}

/// The .partial-<version>-<random> directory of an install: removed with
/// everything in it unless the install renamed it into place.
class PartialDir {
public:
    explicit PartialDir(fs::path path) : path_(std::move(path)) {}
    ~PartialDir() {
        if (armed_) (void)remove_tree(path_);
    }
    PartialDir(const PartialDir&) = delete;
    PartialDir& operator=(const PartialDir&) = delete;
    [[nodiscard]] const fs::path& path() const { return path_; }
    void disarm() { armed_ = false; }

private:
    fs::path path_;
    bool armed_ = true;
};

/// Reads and parses manifest-sha256.txt: bag-relative path → lowercase hex
/// digest, plus the digest of the manifest bytes themselves (so that the copy
/// of the manifest is known to be the one that was checked against).
struct Manifest {
    std::map<std::string, std::string> digests;
    std::string self_digest;
};

Result<Manifest> read_manifest(const fs::path& bag_dir) {
    const fs::path path = bag_dir / bundle::kManifest;
    auto read = detail::read_regular_file(path, kMaxManifestBytes, " (not a bag directory?)");
    if (!read) return read.error();
    const std::string& text = *read;

    auto entries = bundle::parse_manifest(text);
    if (!entries) return entries.error().within(path.string());
    Manifest manifest;
    const std::string data_prefix = std::string(bundle::kPayloadDir) + "/";
    for (const auto& e : *entries) {
        if (!starts_with(e.path, data_prefix)) return fail(path.string() + ": '" + e.path + "' is outside data/");
        manifest.digests.emplace(e.path, bundle::to_hex(e.digest));
    }
    manifest.self_digest = bundle::to_hex(bundle::sha256(text));
    return manifest;
}

Result<void> write_all(int fd, std::span<const std::byte> bytes, const fs::path& path) {
    while (!bytes.empty()) {
        ssize_t n = ::write(fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return io_error(path, "write failed", errno);
        }
        bytes = bytes.subspan(static_cast<std::size_t>(n));
    }
    return {};
}

/// Copies a bag tree into a fresh directory, hashing each payload file on
/// the way (one read of every byte) and checking it against the manifest.
class BagCopier {
public:
    BagCopier(fs::path src_root, fs::path dst_root, Manifest manifest)
        : src_root_(std::move(src_root)), dst_root_(std::move(dst_root)), manifest_(std::move(manifest)),
          buffer_(kCopyBufferBytes) {}

    /// Copies the directory open as `src` (taken over) into the one open as
    /// `dst`; `rel` is their bag-relative path ("" for the bag itself).
    Result<void> copy_dir(Fd src, int dst, const std::string& rel) {
        const fs::path src_path = rel.empty() ? src_root_ : src_root_ / rel;
        DirStream dir(::fdopendir(src.get()));
        if (!dir) return io_error(src_path, "cannot read directory", errno);
        src.release();  // now owned by `dir`
        const int src_fd = ::dirfd(dir.get());

        // Sorted, so that the copy (and the first error met) does not depend
        // on the file system's directory order.
        std::vector<std::string> names;
        for (;;) {
            errno = 0;
            const dirent* entry = ::readdir(dir.get());
            if (entry == nullptr) {
                if (errno != 0) return io_error(src_path, "cannot read directory", errno);
                break;
            }
            std::string_view name = entry->d_name;
            if (name == "." || name == "..") continue;
            names.emplace_back(name);
        }
        std::sort(names.begin(), names.end());

        for (const auto& name : names) {
            const std::string child = rel.empty() ? name : rel + "/" + name;
            if (child.size() > bundle::kMaxPathBytes) {
                return fail((src_root_ / child).string() + ": path longer than " +
                            std::to_string(bundle::kMaxPathBytes) + " bytes");
            }
            struct stat st {};
            if (::fstatat(src_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
                return io_error(src_root_ / child, "cannot stat", errno);
            }
            Result<void> ok;
            if (S_ISDIR(st.st_mode)) {
                ok = copy_subdir(src_fd, dst, name, child);
            } else if (S_ISREG(st.st_mode)) {
                ok = copy_file(src_fd, dst, name, child);
            } else {
                ok = fail((src_root_ / child).string() + ": " + (S_ISLNK(st.st_mode) ? "a symbolic link" : "a special file") +
                          "; a release holds regular files and directories only");
            }
            if (!ok) return ok;
        }
        return {};
    }

    /// Every file the manifest lists was found and matched.
    Result<void> check_complete() const {
        if (manifest_.digests.empty()) return {};
        return fail(manifest_.digests.begin()->first + ": listed in " + std::string(bundle::kManifest) +
                    " but missing from the bag");
    }

private:
    Result<void> copy_subdir(int src_parent, int dst_parent, const std::string& name, const std::string& rel) {
        const fs::path dst_path = dst_root_ / rel;
        Fd src(::openat(src_parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!src.valid()) return io_error(src_root_ / rel, "cannot open directory", errno);
        if (::mkdirat(dst_parent, name.c_str(), kDirMode) != 0) return io_error(dst_path, "cannot create directory", errno);
        Fd dst(::openat(dst_parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
        if (!dst.valid()) return io_error(dst_path, "cannot open directory", errno);
        // Not the source's mode (it may be 0555) nor the umask's: readers of
        // the store need 0755, and a later prune needs to write.
        if (::fchmod(dst.get(), kDirMode) != 0) return io_error(dst_path, "cannot set mode", errno);
        if (auto ok = copy_dir(std::move(src), dst.get(), rel); !ok) return ok;
        return fsync_fd(dst.get(), dst_path);
    }

    Result<void> copy_file(int src_parent, int dst_parent, const std::string& name, const std::string& rel) {
        const fs::path src_path = src_root_ / rel;
        const fs::path dst_path = dst_root_ / rel;
        const std::string* expected = nullptr;
        auto listed = manifest_.digests.find(rel);
        if (listed != manifest_.digests.end()) {
            expected = &listed->second;
        } else if (rel == bundle::kManifest) {
            expected = &manifest_.self_digest;
        } else if (starts_with(rel, std::string(bundle::kPayloadDir) + "/")) {
            return fail(rel + ": in data/ but not listed in " + std::string(bundle::kManifest) +
                        " (the bag was changed after it was created)");
        }  // else a tag file (bagit.txt, release.json, signatures/…): copied as is

        Fd in(::openat(src_parent, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
        if (!in.valid()) return io_error(src_path, "cannot open", errno);
        struct stat st {};
        if (::fstat(in.get(), &st) != 0) return io_error(src_path, "cannot stat", errno);
        if (!S_ISREG(st.st_mode)) return fail(src_path.string() + ": not a regular file");
        (void)::posix_fadvise(in.get(), 0, 0, POSIX_FADV_SEQUENTIAL);

        Fd out(::openat(dst_parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, kFileMode));
        if (!out.valid()) return io_error(dst_path, "cannot create", errno);
        if (::fchmod(out.get(), kFileMode) != 0) return io_error(dst_path, "cannot set mode", errno);

        bundle::Sha256 hasher;
        for (;;) {
            ssize_t n = ::read(in.get(), buffer_.data(), buffer_.size());
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return io_error(src_path, "read failed", errno);
            if (n == 0) break;
            auto chunk = std::span<const std::byte>(buffer_.data(), static_cast<std::size_t>(n));
            if (expected != nullptr) hasher.update(chunk);
            if (auto ok = write_all(out.get(), chunk, dst_path); !ok) return ok;
        }
        if (::fdatasync(out.get()) != 0) return io_error(dst_path, "fdatasync failed", errno);
        if (::close(out.release()) != 0) return io_error(dst_path, "close failed", errno);

        if (expected == nullptr) return {};
        const auto digest = hasher.finish();
        const std::string actual = bundle::to_hex(digest);
        if (actual != *expected) {
            if (expected == &manifest_.self_digest) {
                return fail(rel + ": changed while the bag was being installed (SHA-256 " + *expected + " when read, " +
                            actual + " when copied)");
            }
            return fail(rel + ": SHA-256 mismatch: " + std::string(bundle::kManifest) + " says " + *expected +
                        ", the file has " + actual);
        }
        if (listed != manifest_.digests.end()) manifest_.digests.erase(listed);
        return {};
    }

    fs::path src_root_;
    fs::path dst_root_;
    Manifest manifest_;  ///< entries are erased as they are matched
    std::vector<std::byte> buffer_;
};

}  // namespace

ReleaseStore::ReleaseStore(fs::path root) : root_(std::move(root)) {}

fs::path ReleaseStore::path_of(std::string_view channel, std::string_view version) const {
    return root_ / std::string(channel) / std::string(version);
}

Result<fs::path> ReleaseStore::install(std::string_view channel, std::string_view version, const fs::path& bag_dir) {
    if (auto ok = check_names(channel, version); !ok) return ok.error();
    const std::string ch(channel);
    const std::string ver(version);
    const fs::path channel_dir = root_ / ch;
    const fs::path final_dir = channel_dir / ver;
    auto already_released = [&] {
        return fail("version " + ver + " of channel " + ch +
                    " is already released (released versions are never replaced; release a new version)");
    };

    auto manifest = read_manifest(bag_dir);
    if (!manifest) return manifest.error();
    // The bag path is one the caller chose: a symlink to it is followed.
    Fd src(::open(bag_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!src.valid()) return io_error(bag_dir, "cannot open bag directory", errno);

    std::error_code ec;
    fs::create_directories(root_, ec);
    if (ec) return fail(root_.string() + ": cannot create the release store: " + ec.message());
    if (::mkdir(channel_dir.c_str(), kDirMode) == 0) {
        if (::chmod(channel_dir.c_str(), kDirMode) != 0) return io_error(channel_dir, "cannot set mode", errno);
        auto root_fd = open_directory(root_);
        if (!root_fd) return root_fd.error();
        if (auto ok = fsync_fd(root_fd->get(), root_); !ok) return ok.error();
    } else if (errno != EEXIST) {
        return io_error(channel_dir, "cannot create channel directory", errno);
    }
    auto channel_fd = open_directory(channel_dir);
    if (!channel_fd) return channel_fd.error();

    // Refuse before copying gigabytes; the RENAME_NOREPLACE below is what
    // settles a race with a concurrent install.
    struct stat st {};
    if (::fstatat(channel_fd->get(), ver.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return already_released();

    const std::string partial_name = std::string(kPartialPrefix) + ver + "-" + random_hex16();
    const fs::path partial_path = channel_dir / partial_name;
    if (::mkdirat(channel_fd->get(), partial_name.c_str(), kDirMode) != 0) {
        return io_error(partial_path, "cannot create directory", errno);
    }
    PartialDir partial(partial_path);
    auto dst = open_directory(partial_path);
    if (!dst) return dst.error();
    if (::fchmod(dst->get(), kDirMode) != 0) return io_error(partial_path, "cannot set mode", errno);

    BagCopier copier(bag_dir, partial_path, std::move(*manifest));
    if (auto ok = copier.copy_dir(std::move(src), dst->get(), ""); !ok) return ok.error();
    if (auto ok = copier.check_complete(); !ok) return ok.error();
    if (auto ok = fsync_fd(dst->get(), partial_path); !ok) return ok.error();

    if (::renameat2(channel_fd->get(), partial_name.c_str(), channel_fd->get(), ver.c_str(), RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST || errno == ENOTEMPTY) return already_released();
        return io_error(partial_path, "cannot rename to " + final_dir.string(), errno);
    }
    partial.disarm();
    if (auto ok = fsync_fd(channel_fd->get(), channel_dir); !ok) {
        // The new name may not survive a crash; rather than report success
        // for a release that might vanish, take it back.
        (void)remove_tree(final_dir);
        return ok.error();
    }
    return final_dir;
}

Result<void> ReleaseStore::set_current(std::string_view channel, std::string_view version) {
    if (auto ok = check_names(channel, version); !ok) return ok;
    const std::string ch(channel);
    const std::string ver(version);
    const fs::path channel_dir = root_ / ch;
    struct stat st {};
    if (::lstat(channel_dir.c_str(), &st) != 0 && errno == ENOENT) {
        return fail("channel " + ch + " has no releases (install version " + ver + " first)");
    }
    auto channel_fd = open_directory(channel_dir);
    if (!channel_fd) return channel_fd.error();
    if (::fstatat(channel_fd->get(), ver.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
        return fail("version " + ver + " of channel " + ch + " is not installed (install it before making it current)");
    }

    // A symlink cannot be replaced in place; renaming a new one over it is
    // atomic, so readers always see the old or the new target, never none.
    const std::string temp_name = std::string(kCurrentTempPrefix) + random_hex16();
    if (::symlinkat(ver.c_str(), channel_fd->get(), temp_name.c_str()) != 0) {
        return io_error(channel_dir / temp_name, "cannot create symlink", errno);
    }
    if (::renameat(channel_fd->get(), temp_name.c_str(), channel_fd->get(), std::string(kCurrent).c_str()) != 0) {
        const int err = errno;
        (void)::unlinkat(channel_fd->get(), temp_name.c_str(), 0);
        return io_error(channel_dir / kCurrent, "cannot replace", err);
    }
    return fsync_fd(channel_fd->get(), channel_dir);
}

std::optional<std::string> ReleaseStore::current(std::string_view channel) const {
    if (!bundle::is_valid_channel(channel)) return std::nullopt;
    const fs::path link = root_ / std::string(channel) / kCurrent;
    std::array<char, 4096> target{};
    ssize_t n = ::readlink(link.c_str(), target.data(), target.size());
    if (n <= 0 || static_cast<std::size_t>(n) >= target.size()) return std::nullopt;
    return std::string(target.data(), static_cast<std::size_t>(n));
}

std::vector<std::string> ReleaseStore::versions(std::string_view channel) const {
    std::vector<std::string> out;
    if (!bundle::is_valid_channel(channel)) return out;
    std::error_code ec;
    for (fs::directory_iterator it(root_ / std::string(channel), ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (name == kCurrent || !bundle::is_valid_version(name)) continue;  // also skips dot-entries
        std::error_code type_ec;
        if (!it->is_directory(type_ec) || it->is_symlink(type_ec)) continue;
        out.push_back(std::move(name));
    }
    // Ties ("1.2" and "1.2.0") broken by name, so the order is reproducible.
    std::sort(out.begin(), out.end(), [](const std::string& a, const std::string& b) {
        int c = compare_versions(a, b);
        return c != 0 ? c < 0 : a < b;
    });
    return out;
}

std::vector<std::string> ReleaseStore::channels() const {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(root_, ec), end; !ec && it != end; it.increment(ec)) {
        std::string name = it->path().filename().string();
        if (!bundle::is_valid_channel(name)) continue;
        std::error_code type_ec;
        if (!it->is_directory(type_ec) || it->is_symlink(type_ec)) continue;
        out.push_back(std::move(name));
    }
    std::sort(out.begin(), out.end());
    return out;
}

namespace {

/// Takes a version out of the store: first renamed to a .partial- name, so it
/// disappears whole (nobody ever sees a half-deleted release, and a crash
/// mid-delete leaves something sweep_partials() finishes), then deleted.
Result<void> withdraw(const fs::path& channel_dir, const std::string& version) {
    auto channel_fd = open_directory(channel_dir);
    if (!channel_fd) return channel_fd.error();
    const std::string doomed = std::string(kPartialPrefix) + version + "-" + random_hex16();
    if (::renameat2(channel_fd->get(), version.c_str(), channel_fd->get(), doomed.c_str(), RENAME_NOREPLACE) != 0) {
        return io_error(channel_dir / version, "cannot remove", errno);
    }
    if (auto ok = fsync_fd(channel_fd->get(), channel_dir); !ok) return ok;
    if (auto ok = remove_tree(channel_dir / doomed); !ok) {
        return fail("version " + version + " was withdrawn but its files were not all deleted (" + ok.error().message +
                    "); sweep_partials() retries");
    }
    return {};
}

}  // namespace

Result<std::vector<std::string>> ReleaseStore::prune(std::string_view channel, std::size_t keep) {
    if (auto ok = check_channel(channel); !ok) return ok.error();
    const std::string ch(channel);
    const auto all = versions(ch);
    const auto cur = current(ch);
    if (cur && !bundle::is_valid_version(*cur)) {
        // Comparing an odd target ("1.2.0/", "/abs/1.2.0") with version names
        // could delete what production is using.
        return fail("channel " + ch + ": current points at '" + printable(*cur) +
                    "', which is not a version name; point it at a version with set_current first");
    }
    std::vector<std::string> removed;
    if (all.size() <= keep) return removed;
    const std::size_t oldest_kept = all.size() - keep;
    for (std::size_t i = 0; i < oldest_kept; ++i) {
        if (cur && all[i] == *cur) continue;  // e.g. after a rollback to an old version
        if (auto ok = withdraw(root_ / ch, all[i]); !ok) {
            std::string done;
            for (const auto& v : removed) done += (done.empty() ? "" : ", ") + v;
            return fail("channel " + ch + ": " + ok.error().message +
                        (done.empty() ? std::string() : " (already removed: " + done + ")"));
        }
        removed.push_back(all[i]);
    }
    return removed;
}

Result<void> ReleaseStore::remove(std::string_view channel, std::string_view version) {
    if (auto ok = check_names(channel, version); !ok) return ok;
    const std::string ch(channel);
    const std::string ver(version);
    if (current(ch) == ver) {
        return fail("version " + ver + " is the current version of channel " + ch +
                    "; point current at another version first");
    }
    struct stat st {};
    const fs::path dir = root_ / ch / ver;
    if (::lstat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return fail("version " + ver + " of channel " + ch + " is not installed");
    }
    return withdraw(root_ / ch, ver);
}

std::size_t ReleaseStore::sweep_partials() {
    std::size_t removed = 0;
    for (const auto& ch : channels()) {
        const fs::path channel_dir = root_ / ch;
        std::vector<fs::path> partials;
        std::vector<fs::path> temp_links;
        std::error_code ec;
        for (fs::directory_iterator it(channel_dir, ec), end; !ec && it != end; it.increment(ec)) {
            const std::string name = it->path().filename().string();
            std::error_code type_ec;
            if (starts_with(name, kPartialPrefix)) partials.push_back(it->path());
            else if (starts_with(name, kCurrentTempPrefix) && it->is_symlink(type_ec)) temp_links.push_back(it->path());
        }
        for (const auto& p : partials) {
            if (remove_tree(p)) ++removed;
        }
        for (const auto& l : temp_links) {
            if (::unlink(l.c_str()) == 0) ++removed;
        }
    }
    return removed;
}

}  // namespace sluice::policy
