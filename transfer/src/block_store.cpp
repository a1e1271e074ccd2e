#include "sluice/transfer/block_store.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>

#include "wire.hpp"

namespace fs = std::filesystem;

namespace sluice::transfer {

std::vector<std::pair<std::uint64_t, std::uint64_t>> BlockSet::missing_ranges(std::size_t max_ranges) const {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    std::uint64_t i = 0;
    while (i < size_ && out.size() < max_ranges) {
        if (words_[i / 64] == ~std::uint64_t{0} && i % 64 == 0) {
            i += 64;
            continue;
        }
        if (test(i)) {
            ++i;
            continue;
        }
        std::uint64_t first = i;
        while (i < size_ && !test(i)) ++i;
        out.emplace_back(first, i - 1);
    }
    return out;
}

Result<BlockSet> BlockSet::from_words(std::uint64_t blocks, std::vector<std::uint64_t> words) {
    if (words.size() != (blocks + 63) / 64) return fail("block set: wrong number of words");
    BlockSet set(blocks);
    if (blocks % 64 != 0 && !words.empty() && (words.back() >> (blocks % 64)) != 0) {
        return fail("block set: bits beyond the last block");
    }
    set.words_ = std::move(words);
    for (auto w : set.words_) set.count_ += static_cast<std::uint64_t>(__builtin_popcountll(w));
    return set;
}

std::string staging_key(const TransferInfo& info) {
    return to_hex(info.archive_sha256) + "-" + std::to_string(info.archive_bytes) + "-" +
           std::to_string(info.fec.data_symbols) + "x" + std::to_string(info.fec.symbol_bytes);
}

namespace {

constexpr char kProgressMagic[4] = {'S', 'L', 'C', 'P'};
constexpr std::uint8_t kProgressVersion = 1;

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

struct File {
    int fd = -1;
    explicit File(int f) : fd(f) {}
    ~File() {
        if (fd >= 0) ::close(fd);
    }
    File(const File&) = delete;
    File& operator=(const File&) = delete;
};

Result<void> write_all(int fd, const std::byte* p, std::size_t n, std::uint64_t offset, const fs::path& path) {
    while (n > 0) {
        ssize_t w = ::pwrite(fd, p, n, static_cast<off_t>(offset));
        if (w < 0) {
            if (errno == EINTR) continue;
            int err = errno;
            return fail("writing " + path.string() + ": " + errno_text(err) +
                        (err == ENOSPC ? " (free space in the receiver's state directory; the next pass resumes)" : ""));
        }
        p += w;
        n -= static_cast<std::size_t>(w);
        offset += static_cast<std::uint64_t>(w);
    }
    return {};
}

void fsync_dir(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

std::vector<std::byte> encode_progress(const TransferInfo& info, const BlockSet& held) {
    wire::Writer w;
    w.bytes(std::as_bytes(std::span(kProgressMagic)));
    w.u8(kProgressVersion);
    w.u64(info.archive_bytes);
    w.u64(info.block_bytes());
    w.u64(held.size());
    for (auto word : held.words()) w.u64(word);
    auto body = w.take();
    wire::Writer tail;
    tail.bytes(body);
    tail.u64(XXH3_64bits(body.data(), body.size()));
    return tail.take();
}

/// A saved progress file; anything unexpected means "start over", never "trust it".
Result<BlockSet> decode_progress(std::span<const std::byte> bytes, const TransferInfo& info) {
    if (bytes.size() < 8) return fail("progress file truncated");
    auto body = bytes.first(bytes.size() - 8);
    if (wire::get_u64(bytes.data() + body.size()) != XXH3_64bits(body.data(), body.size())) {
        return fail("progress file checksum mismatch");
    }
    wire::Reader r(body);
    auto magic = r.bytes(4);
    if (magic.size() != 4 || std::memcmp(magic.data(), kProgressMagic, 4) != 0 || r.u8() != kProgressVersion) {
        return fail("not a progress file");
    }
    if (r.u64() != info.archive_bytes || r.u64() != info.block_bytes()) return fail("progress file is for another layout");
    std::uint64_t blocks = r.u64();
    if (blocks != info.blocks()) return fail("progress file block count differs");
    std::vector<std::uint64_t> words((blocks + 63) / 64);
    for (auto& w : words) w = r.u64();
    if (!r.at_end()) return fail("progress file has trailing bytes");
    return BlockSet::from_words(blocks, std::move(words));
}

}  // namespace

/// SHA-256 of the archive's contiguous prefix of held blocks, advanced by the
/// checkpoint thread from the page cache while the transfer runs, so the
/// end-to-end check at the end only hashes what is left.
struct RunningDigest {
    std::mutex mutex;
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx{EVP_MD_CTX_new(), &EVP_MD_CTX_free};
    std::uint64_t next_block = 0;  // blocks [0, next_block) are hashed
    bool ok = false;

    RunningDigest() { ok = ctx && EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) == 1; }

    /// Hashes archive bytes [from_block·B, to_block·B) (clamped to the archive) from `fd`.
    Result<void> advance(int fd, const TransferInfo& info, std::uint64_t to_block, const fs::path& path) {
        if (!ok) return fail("OpenSSL: SHA-256 unavailable");
        std::vector<std::byte> buffer(1 << 20);
        std::uint64_t offset = next_block * info.block_bytes();
        const std::uint64_t end = std::min(info.archive_bytes, to_block * info.block_bytes());
        while (offset < end) {
            auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), end - offset));
            ssize_t n = ::pread(fd, buffer.data(), want, static_cast<off_t>(offset));
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                ok = false;  // part of the range is hashed: this digest can no longer be trusted
                return fail("reading " + path.string() + ": " + (n < 0 ? errno_text(errno) : "unexpected end"));
            }
            EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(n));
            offset += static_cast<std::uint64_t>(n);
        }
        next_block = std::max(next_block, to_block);
        return {};
    }
};

struct FileBlockStore::Impl {
    fs::path root;
    std::size_t max_stagings = 0;
    std::unordered_map<std::string, std::shared_ptr<RunningDigest>> digests;
    std::mutex mutex;
    std::unordered_map<std::string, std::shared_ptr<File>> open_files;
    std::unordered_map<std::string, TransferInfo> infos;
    std::unordered_map<std::string, std::string> checkpoint_errors;

    struct Job {
        std::string key;
        std::shared_ptr<File> file;
        TransferInfo info;
        BlockSet held;
        std::shared_ptr<RunningDigest> digest;
    };
    std::deque<Job> jobs;
    bool busy = false;
    std::string busy_key;
    bool stopping = false;
    std::condition_variable wake;
    std::condition_variable idle;
    std::thread worker;

    fs::path dir(const std::string& key) const { return root / "staging" / key; }
    fs::path delivered(const std::string& key) const { return root / "delivered" / key; }

    void run() {
        std::unique_lock lock(mutex);
        for (;;) {
            wake.wait(lock, [&] { return stopping || !jobs.empty(); });
            if (jobs.empty()) return;
            Job job = std::move(jobs.front());
            jobs.pop_front();
            busy = true;
            busy_key = job.key;
            lock.unlock();
            auto ok = persist(job);
            lock.lock();
            busy = false;
            busy_key.clear();
            if (!ok) checkpoint_errors[job.key] = ok.error().message;
            idle.notify_all();
        }
    }

    /// Data first, then the progress that describes it.
    Result<void> persist(const Job& job) {
        if (::fdatasync(job.file->fd) != 0) {
            return fail("syncing " + (dir(job.key) / "archive.part").string() + ": " + errno_text(errno));
        }
        auto bytes = encode_progress(job.info, job.held);
        fs::path tmp = dir(job.key) / "progress.tmp";
        int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0) return fail("writing " + tmp.string() + ": " + errno_text(errno));
        File f(fd);
        if (auto ok = write_all(fd, bytes.data(), bytes.size(), 0, tmp); !ok) return ok;
        if (::fsync(fd) != 0) return fail("syncing " + tmp.string() + ": " + errno_text(errno));
        std::error_code ec;
        fs::rename(tmp, dir(job.key) / "progress", ec);
        if (ec) return fail("renaming " + tmp.string() + ": " + ec.message());
        fsync_dir(dir(job.key));
        if (job.digest) {
            std::lock_guard lock(job.digest->mutex);
            std::uint64_t to = job.digest->next_block;
            while (to < job.held.size() && job.held.test(to)) ++to;
            if (to > job.digest->next_block) {
                // The digest is an optimisation: on a read error the final check rehashes.
                if (!job.digest->advance(job.file->fd, job.info, to, dir(job.key) / "archive.part")) job.digest->ok = false;
            }
        }
        return {};
    }
};

FileBlockStore::FileBlockStore(fs::path root, std::size_t max_stagings) : impl_(std::make_unique<Impl>()) {
    impl_->root = std::move(root);
    impl_->max_stagings = max_stagings;
    std::error_code ec;
    fs::create_directories(impl_->root / "staging", ec);
    if (!ec) fs::create_directories(impl_->root / "delivered", ec);
    if (ec) throw std::runtime_error("cannot create " + impl_->root.string() + ": " + ec.message());
    impl_->worker = std::thread([this] { impl_->run(); });
}

FileBlockStore::~FileBlockStore() {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->stopping = true;
    }
    impl_->wake.notify_all();
    impl_->worker.join();  // pending checkpoints are written first
}

fs::path FileBlockStore::archive_path(const std::string& key) const { return impl_->dir(key) / "archive.part"; }

Result<BlockStore::Opened> FileBlockStore::open(const std::string& key, const TransferInfo& info) {
    std::unique_lock lock(impl_->mutex);
    // A checkpoint of this archive still queued from before its release would
    // otherwise land after the progress is read here (stale), or find the file
    // truncated by a restart below: wait for it, as flush(key) does.
    impl_->idle.wait(lock, [&] {
        return impl_->busy_key != key &&
               std::none_of(impl_->jobs.begin(), impl_->jobs.end(), [&](const Impl::Job& j) { return j.key == key; });
    });
    Opened out;
    std::error_code ec;
    if (fs::exists(impl_->delivered(key), ec)) {
        out.already_delivered = true;
        return out;
    }
    fs::path dir = impl_->dir(key);
    if (!fs::exists(dir, ec) && impl_->max_stagings > 0) {
        const std::size_t n = staging_count();
        if (n >= impl_->max_stagings) {
            return fail("too many archives partly received (" + std::to_string(n) +
                        "): not starting another until older ones complete or expire");
        }
    }
    fs::create_directories(dir, ec);
    if (ec) return fail("cannot create " + dir.string() + ": " + ec.message());
    fs::path part = dir / "archive.part";
    int fd = ::open(part.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) return fail("cannot open " + part.string() + ": " + errno_text(errno));
    auto file = std::make_shared<File>(fd);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail("cannot stat " + part.string() + ": " + errno_text(errno));
    bool resumed = false;
    if (static_cast<std::uint64_t>(st.st_size) == info.archive_bytes) {
        std::ifstream in(dir / "progress", std::ios::binary);
        std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        if (in.good() || in.eof()) {
            auto held = decode_progress(std::as_bytes(std::span(bytes.data(), bytes.size())), info);
            if (held) {
                out.held = std::move(*held);
                resumed = true;
            }
        }
    }
    if (!resumed) {
        // No usable progress: nothing in the file can be trusted. Start from an
        // empty (sparse) file of the final size.
        fs::remove(dir / "progress", ec);
        if (::ftruncate(fd, 0) != 0 || ::ftruncate(fd, static_cast<off_t>(info.archive_bytes)) != 0) {
            int err = errno;
            return fail("cannot size " + part.string() + " to " + std::to_string(info.archive_bytes) +
                        " bytes: " + errno_text(err));
        }
        out.held = BlockSet(info.blocks());
    }
    if (!resumed || !impl_->digests.count(key)) impl_->digests[key] = std::make_shared<RunningDigest>();
    impl_->open_files[key] = std::move(file);
    impl_->infos[key] = info;
    return out;
}

Result<void> FileBlockStore::write(const std::string& key, std::uint64_t offset, std::span<const std::byte> bytes) {
    std::shared_ptr<File> file;
    {
        std::lock_guard lock(impl_->mutex);
        auto it = impl_->open_files.find(key);
        if (it == impl_->open_files.end()) return fail("staging area " + key + " is not open");
        file = it->second;
    }
    return write_all(file->fd, bytes.data(), bytes.size(), offset, archive_path(key));
}

Result<void> FileBlockStore::checkpoint(const std::string& key, const BlockSet& held) {
    std::lock_guard lock(impl_->mutex);
    if (auto e = impl_->checkpoint_errors.find(key); e != impl_->checkpoint_errors.end()) {
        auto message = std::move(e->second);
        impl_->checkpoint_errors.erase(e);
        return fail(message);
    }
    auto it = impl_->open_files.find(key);
    if (it == impl_->open_files.end()) return fail("staging area " + key + " is not open");
    // A newer snapshot supersedes a pending one for the same archive.
    for (auto& job : impl_->jobs) {
        if (job.key == key) {
            job.held = held;
            return {};
        }
    }
    std::shared_ptr<RunningDigest> digest;
    if (auto d = impl_->digests.find(key); d != impl_->digests.end()) digest = d->second;
    impl_->jobs.push_back(Impl::Job{key, it->second, impl_->infos.at(key), held, std::move(digest)});
    impl_->wake.notify_one();
    return {};
}

void FileBlockStore::release(const std::string& key) {
    std::lock_guard lock(impl_->mutex);
    impl_->open_files.erase(key);  // a pending checkpoint keeps its own reference
    impl_->infos.erase(key);
    // The running digest stays: it covers bytes already durable in this store's
    // own file, so a finalize after release (media: the volume that completes the
    // archive is released before delivery) does not hash the archive a second time.
    // finalize, discard and sweep drop it; open() replaces it when the file restarts.
}

void FileBlockStore::flush() {
    std::unique_lock lock(impl_->mutex);
    impl_->idle.wait(lock, [&] { return impl_->jobs.empty() && !impl_->busy; });
}

void FileBlockStore::flush(const std::string& key) {
    // Only this archive's checkpoints: others may keep the worker busy forever.
    std::unique_lock lock(impl_->mutex);
    impl_->idle.wait(lock, [&] {
        return impl_->busy_key != key &&
               std::none_of(impl_->jobs.begin(), impl_->jobs.end(), [&](const Impl::Job& j) { return j.key == key; });
    });
}

std::optional<BlockSet> FileBlockStore::durable_blocks(const std::string& key, const TransferInfo& info) const {
    std::lock_guard lock(impl_->mutex);  // not while a checkpoint renames the progress file
    std::error_code ec;
    if (fs::exists(impl_->delivered(key), ec)) return std::nullopt;
    std::ifstream in(impl_->dir(key) / "progress", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (in.good() || in.eof()) {
        if (auto held = decode_progress(std::as_bytes(std::span(bytes.data(), bytes.size())), info)) return std::move(*held);
    }
    return BlockSet(info.blocks());
}

bool FileBlockStore::has_staging(const std::string& key) const {
    std::error_code ec;
    return fs::exists(archive_path(key), ec);
}

std::size_t FileBlockStore::sweep(std::chrono::hours max_age) {
    std::vector<std::string> stale;
    {
        std::lock_guard lock(impl_->mutex);
        std::error_code ec;
        const auto now = fs::file_time_type::clock::now();
        for (const auto& entry : fs::directory_iterator(impl_->root / "staging", ec)) {
            const std::string key = entry.path().filename().string();
            if (impl_->open_files.count(key)) continue;
            auto when = fs::last_write_time(entry.path() / "progress", ec);
            if (ec) when = fs::last_write_time(entry.path(), ec);
            if (!ec && now - when > max_age) stale.push_back(key);
        }
    }
    for (const auto& key : stale) discard(key);
    return stale.size();
}

std::size_t FileBlockStore::staging_count() const {
    std::size_t n = 0;
    std::error_code ec;
    for (auto it = fs::directory_iterator(impl_->root / "staging", ec); !ec && it != fs::directory_iterator(); it.increment(ec)) ++n;
    return n;
}

Result<fs::path> FileBlockStore::finalize(const std::string& key, const TransferInfo& info) {
    flush(key);
    fs::path part = archive_path(key);
    int fd = ::open(part.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail("cannot open " + part.string() + ": " + errno_text(errno));
    File file(fd);
    if (::fdatasync(fd) != 0 && errno != EINVAL) return fail("syncing " + part.string() + ": " + errno_text(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail("cannot stat " + part.string() + ": " + errno_text(errno));
    const auto total = static_cast<std::uint64_t>(st.st_size);
    std::shared_ptr<RunningDigest> digest;
    {
        std::lock_guard lock(impl_->mutex);
        if (auto d = impl_->digests.find(key); d != impl_->digests.end()) digest = d->second;
    }
    if (!digest || !digest->ok) digest = std::make_shared<RunningDigest>();  // hash everything here
    Sha256 got{};
    {
        std::lock_guard lock(digest->mutex);
        ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        if (total == info.archive_bytes) {
            if (auto ok = digest->advance(fd, info, info.blocks(), part); !ok) return ok.error();
        }
        unsigned len = 0;
        EVP_DigestFinal_ex(digest->ctx.get(), reinterpret_cast<unsigned char*>(got.data()), &len);
        digest->ok = false;  // finalized: a second finalize starts from scratch
        digest->next_block = 0;
    }
    {
        std::lock_guard lock(impl_->mutex);
        impl_->digests.erase(key);
    }
    if (total != info.archive_bytes || got != info.archive_sha256) {
        discard(key);
        return fail("assembled archive does not match the transfer's SHA-256 (expected " + to_hex(info.archive_sha256) +
                    ", got " + to_hex(got) + " over " + std::to_string(total) +
                    " bytes); staging discarded, the next pass starts again");
    }
    return part;
}

Result<void> FileBlockStore::mark_delivered(const std::string& key) {
    fs::path marker = impl_->delivered(key);
    {
        std::ofstream out(marker, std::ios::trunc);
        out << "delivered\n";
        if (!out.flush()) return fail("cannot write " + marker.string());
    }
    fsync_dir(marker.parent_path());
    discard(key);
    return {};
}

void FileBlockStore::discard(const std::string& key) {
    {
        std::lock_guard lock(impl_->mutex);
        impl_->open_files.erase(key);
        impl_->infos.erase(key);
        std::erase_if(impl_->jobs, [&](const Impl::Job& j) { return j.key == key; });
        impl_->checkpoint_errors.erase(key);
        impl_->digests.erase(key);
    }
    flush(key);  // a checkpoint in progress must not recreate what is removed
    std::error_code ec;
    fs::remove_all(impl_->dir(key), ec);
}

}  // namespace sluice::transfer
