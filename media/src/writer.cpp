// Writing volumes: encode, write beside, fsync, rename, index, read back.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>

#include "crypto.hpp"
#include "media_io.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/block_codec.hpp"
#include "sluice/transfer/frame.hpp"

namespace sluice::media {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr std::size_t kBufferBytes = 1u << 20;  // per segment being written
constexpr std::size_t kVerifyBufferBytes = 8u << 20;
constexpr unsigned kWriters = 3;                 // O_DIRECT writes in flight at once
constexpr std::uint64_t kReadAhead = 32u << 20;  // archive bytes requested ahead of the encoder

/// One segment file being written beside its final name.
struct SegmentOut {
    SegmentEntry entry;
    fs::path tmp, final;
    detail::Fd fd;
    bool direct = false;  // O_DIRECT: whole records of a multiple of 4 KiB, from an aligned buffer
    detail::AlignedBuffer* buffer = nullptr;  // being filled (encoding thread)
    std::size_t used = 0;
    std::uint64_t flushed = 0;                // writer thread from here on
    detail::Xxh128 hash;
};

/// The writer threads: hash and write filled buffers while the encoding
/// thread fills the next ones. Each segment belongs to one writer (stripe mod
/// writers), so its buffers are written in order; several writers keep several
/// O_DIRECT writes in flight. Buffers come from a fixed pool.
class WritePipeline {
public:
    WritePipeline(unsigned writers, std::size_t buffers, std::size_t buffer_bytes) : lanes_(writers) {
        for (std::size_t i = 0; i < buffers; ++i) {
            pool_.push_back(std::make_unique<detail::AlignedBuffer>(buffer_bytes));
            free_.push_back(pool_.back().get());
        }
        for (unsigned i = 0; i < writers; ++i) threads_.emplace_back([this, i] { run(lanes_[i]); });
    }
    ~WritePipeline() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        for (auto& t : threads_) t.join();
    }
    WritePipeline(const WritePipeline&) = delete;
    WritePipeline& operator=(const WritePipeline&) = delete;

    /// A free buffer (waits for a writer to return one).
    detail::AlignedBuffer* take() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !free_.empty(); });
        auto* b = free_.front();
        free_.pop_front();
        return b;
    }
    /// Hands `out`'s buffer (its first `used` bytes) to the segment's writer.
    void submit(SegmentOut& out) {
        {
            std::lock_guard lock(mutex_);
            lanes_[out.entry.stripe % lanes_.size()].queue.push_back({&out, out.buffer, out.used});
        }
        out.buffer = nullptr;
        out.used = 0;
        cv_.notify_all();
    }
    /// Queues an fsync of `out` behind its writes (the writers sync in parallel).
    void sync(SegmentOut& out) {
        {
            std::lock_guard lock(mutex_);
            lanes_[out.entry.stripe % lanes_.size()].queue.push_back({&out, nullptr, 0});
        }
        cv_.notify_all();
    }
    /// Waits until everything submitted is written; the first error, if any.
    Result<void> drain() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] {
            return std::all_of(lanes_.begin(), lanes_.end(), [](const Lane& l) { return l.queue.empty() && !l.busy; });
        });
        if (error_) return *error_;
        return {};
    }
    [[nodiscard]] bool failed() {
        std::lock_guard lock(mutex_);
        return error_.has_value();
    }

private:
    struct Job {
        SegmentOut* out;
        detail::AlignedBuffer* buffer;
        std::size_t used;
    };
    struct Lane {
        std::deque<Job> queue;
        bool busy = false;
    };

    void run(Lane& lane) {
        std::unique_lock lock(mutex_);
        for (;;) {
            cv_.wait(lock, [&] { return stopping_ || !lane.queue.empty(); });
            if (lane.queue.empty()) return;
            Job job = lane.queue.front();
            lane.queue.pop_front();
            lane.busy = true;
            const bool skip = error_.has_value();
            lock.unlock();
            Result<void> ok;
            if (!skip) ok = job.buffer != nullptr ? write(job) : sync(job);
            lock.lock();
            if (!ok && !error_) error_ = ok.error();
            if (job.buffer != nullptr) free_.push_back(job.buffer);
            lane.busy = false;
            cv_.notify_all();
        }
    }

    static Result<void> sync(const Job& job) {
        if (::fsync(job.out->fd.get()) != 0) return fail("cannot sync " + job.out->tmp.string() + ": " + std::strerror(errno));
        return {};
    }

    static Result<void> write(const Job& job) {
        auto& o = *job.out;
        std::span<const std::byte> bytes(job.buffer->data(), job.used);
        o.hash.update(bytes);
        if (auto ok = detail::write_all(o.fd.get(), bytes, o.tmp); !ok) return ok;
        if (!o.direct) {
            // Start writeback now, so the disk works while the next blocks are encoded.
            ::sync_file_range(o.fd.get(), static_cast<off_t>(o.flushed), static_cast<off_t>(job.used), SYNC_FILE_RANGE_WRITE);
        }
        o.flushed += job.used;
        return {};
    }

    std::vector<Lane> lanes_;
    std::vector<std::unique_ptr<detail::AlignedBuffer>> pool_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<detail::AlignedBuffer*> free_;
    std::optional<Error> error_;
    bool stopping_ = false;
    std::vector<std::thread> threads_;
};

/// Reads the archive (asking for the next stretch ahead) and computes each
/// block's parity on its own thread, a few blocks ahead of the framing thread.
class BlockSource {
public:
    BlockSource(int fd, const fs::path& name, std::uint64_t archive_bytes, transfer::BlockCodec& codec,
                std::uint64_t first, std::uint64_t end)
        : fd_(fd), name_(name), archive_bytes_(archive_bytes), codec_(codec), first_(first), end_(end) {
        const auto& fec = codec_.params();
        for (unsigned i = 0; i < kRing; ++i) {
            buffers_.emplace_back(std::size_t{fec.data_symbols + fec.parity_symbols} * fec.symbol_bytes);
            free_.push_back(i);
        }
        thread_ = std::thread([this] { run(); });
    }
    ~BlockSource() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }
    BlockSource(const BlockSource&) = delete;
    BlockSource& operator=(const BlockSource&) = delete;

    /// The next block's K+M symbols (data, then parity), in block order; valid until done().
    Result<const std::byte*> next() {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return !ready_.empty() || error_.has_value(); });
        if (ready_.empty()) return *error_;
        current_ = ready_.front();
        ready_.pop_front();
        return buffers_[current_].data();
    }
    void done() {
        {
            std::lock_guard lock(mutex_);
            free_.push_back(current_);
        }
        cv_.notify_all();
    }

private:
    static constexpr unsigned kRing = 4;

    void run() {
        const auto& fec = codec_.params();
        const std::size_t S = fec.symbol_bytes;
        const std::uint64_t block_bytes = std::uint64_t{fec.data_symbols} * S;
        std::vector<const std::byte*> data(fec.data_symbols);
        std::vector<std::byte*> parity(fec.parity_symbols);
        std::uint64_t advised = first_ * block_bytes;
        for (std::uint64_t b = first_; b < end_; ++b) {
            unsigned slot = 0;
            {
                std::unique_lock lock(mutex_);
                cv_.wait(lock, [&] { return stopping_ || !free_.empty(); });
                if (stopping_) return;
                slot = free_.front();
                free_.pop_front();
            }
            std::byte* symbols = buffers_[slot].data();
            const std::uint64_t offset = b * block_bytes;
            const std::size_t want = static_cast<std::size_t>(std::min(block_bytes, archive_bytes_ - offset));
            if (offset + kReadAhead / 2 >= advised) {
                // Ask for the next stretch now: the disk reads it while these blocks are encoded.
                ::posix_fadvise(fd_, static_cast<off_t>(advised), static_cast<off_t>(kReadAhead), POSIX_FADV_WILLNEED);
                advised += kReadAhead;
            }
            auto got = detail::read_at(fd_, std::span(symbols, want), offset, name_);
            if (got && *got != want) got = fail(name_.string() + " is shorter than announced (it changed?)");
            if (!got) {
                std::lock_guard lock(mutex_);
                error_ = got.error();
                cv_.notify_all();
                return;
            }
            std::memset(symbols + want, 0, block_bytes - want);
            for (unsigned i = 0; i < fec.data_symbols; ++i) data[i] = symbols + std::size_t{i} * S;
            for (unsigned i = 0; i < fec.parity_symbols; ++i) parity[i] = symbols + std::size_t{fec.data_symbols + i} * S;
            codec_.encode(data, parity);
            {
                std::lock_guard lock(mutex_);
                ready_.push_back(slot);
            }
            cv_.notify_all();
        }
    }

    int fd_;
    fs::path name_;
    std::uint64_t archive_bytes_;
    transfer::BlockCodec& codec_;
    std::uint64_t first_, end_;
    std::vector<std::vector<std::byte>> buffers_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<unsigned> free_, ready_;
    unsigned current_ = 0;
    std::optional<Error> error_;
    bool stopping_ = false;
    std::thread thread_;
};

class VolumeWriter {
public:
    VolumeWriter(const WriteRequest& req, const Layout& layout, const Sha256& set_id, unsigned volumes,
                 transfer::BlockCodec& codec, detail::Cipher* cipher, const WriteProgress& progress)
        : req_(req), layout_(layout), set_id_(set_id), volumes_(volumes), codec_(codec), cipher_(cipher),
          progress_(progress) {}

    Result<VolumeWritten> write(const fs::path& target, unsigned volume, int archive_fd) {
        VolumeWritten out;
        out.volume = volume;
        out.volumes = volumes_;
        index_ = make_index(volume);
        out.first_block = index_.first_block;
        out.end_block = index_.end_block;
        auto dir = prepare(target, index_);
        if (!dir) return dir.error();
        dir_ = *dir;
        out.directory = dir_;
        auto started = Clock::now();
        auto written = write_segments(volume, archive_fd);
        if (written) written = write_indexes(volume);
        if (!written) {
            remove_volume(volume);
            return written.error();
        }
        out.write_seconds = seconds_since(started);
        started = Clock::now();
        if (auto ok = verify(volume); !ok) {
            remove_volume(volume);
            return ok.error().within("read-back check of volume " + std::to_string(volume) + " failed");
        }
        out.verify_seconds = seconds_since(started);
        out.segments = index_.segments.size();
        for (const auto& s : index_.segments) out.bytes += s.bytes;
        out.bytes += 2 * index_bytes_;
        return out;
    }

private:
    VolumeIndex make_index(unsigned volume) const {
        VolumeIndex ix;
        ix.info = req_.info;
        ix.info.fec = layout_.fec;
        ix.info.interleave = 1;
        ix.info.pass = ix.info.passes = 1;
        ix.layout = layout_;
        ix.set_id = set_id_;
        ix.volume = volume;
        ix.volumes = volumes_;
        const std::uint64_t blocks = ix.info.blocks();
        ix.first_block = std::uint64_t{volume - 1} * layout_.blocks_per_volume;
        ix.end_block = std::min(blocks, std::uint64_t{volume} * layout_.blocks_per_volume);
        const std::uint64_t record = layout_.record_bytes();
        for (unsigned c = 0; std::uint64_t{c} * layout_.blocks_per_set < ix.end_block - ix.first_block; ++c) {
            const std::uint64_t first = ix.first_block + std::uint64_t{c} * layout_.blocks_per_set;
            const std::uint64_t in_set = std::min(layout_.blocks_per_set, ix.end_block - first);
            for (unsigned w = 0; w < layout_.stripes; ++w) {
                SegmentEntry e;
                e.set = c;
                e.stripe = w;
                e.records = in_set * layout_.symbols_in(w);
                e.bytes = e.records * record;
                ix.segments.push_back(e);
            }
        }
        ix.written_at = req_.written_at;
        ix.written_by = req_.written_by;
        ix.host = req_.host;
        ix.hops = req_.hops;
        return ix;
    }

    /// MOUNTDIR/SLUICE/<dir>, created if needed, never through a symlink; room checked.
    Result<fs::path> prepare(const fs::path& target, const VolumeIndex& ix) {
        struct stat st {};
        if (::stat(target.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            return fail(target.string() + " is not a directory (mount the medium and name its mount point)");
        }
        fs::path root = target / kRootDir;
        fs::path dir = root / directory_name(ix);
        for (const auto& d : {root, dir}) {
            if (::mkdir(d.c_str(), 0755) != 0 && errno != EEXIST) {
                return fail("cannot create " + d.string() + ": " + std::strerror(errno));
            }
            if (::lstat(d.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
                return fail(d.string() + " is not a directory (a symbolic link or file is in the way)");
            }
        }
        remove_volume_files(dir, ix.volume);
        std::uint64_t need = 0;
        for (const auto& s : ix.segments) need += s.bytes;
        struct statvfs vfs {};
        if (::statvfs(dir.c_str(), &vfs) == 0) {
            const std::uint64_t free_bytes = std::uint64_t{vfs.f_bavail} * vfs.f_frsize;
            if (free_bytes < need + (1u << 20)) {
                return fail(target.string() + " has " + std::to_string(free_bytes) + " bytes free; volume " +
                            std::to_string(ix.volume) + " needs " + std::to_string(need + (1u << 20)));
            }
        }
        return dir;
    }

    static void remove_volume_files(const fs::path& dir, unsigned volume) {
        char prefix[16];
        std::snprintf(prefix, sizeof prefix, "v%04u", volume);
        std::error_code ec;
        for (const auto& e : fs::directory_iterator(dir, ec)) {
            std::string name = e.path().filename().string();
            std::string bare = name.starts_with(".") ? name.substr(1) : name;
            if (bare.starts_with(std::string(prefix) + "-") || bare.starts_with(std::string(prefix) + ".index")) {
                fs::remove(e.path(), ec);
            }
        }
    }

    void remove_volume(unsigned volume) {
        remove_volume_files(dir_, volume);
        detail::sync_dir(dir_);
    }

    Result<void> write_segments(unsigned volume, int archive_fd) {
        const auto& fec = layout_.fec;
        const unsigned total = fec.data_symbols + fec.parity_symbols;
        const std::size_t S = fec.symbol_bytes;
        const std::size_t record = layout_.record_bytes();
        const std::size_t frame = transfer::frame_size(S, false);
        const std::uint64_t block_bytes = std::uint64_t{fec.data_symbols} * S;
        (void)total;
        const std::size_t buffer_records = std::max<std::size_t>(1, kBufferBytes / record);
        const bool aligned = record % detail::AlignedBuffer::kAlign == 0;
        transfer::FrameHeader header;
        header.type = transfer::FrameType::symbol;
        header.session = index_.session();
        header.transfer = index_.transfer();

        WritePipeline pipeline(kWriters, layout_.stripes + 4 * kWriters, buffer_records * record);
        BlockSource source(archive_fd, req_.archive, req_.info.archive_bytes, codec_, index_.first_block, index_.end_block);
        std::size_t seg_at = 0;
        std::uint64_t encoded = 0;
        while (seg_at < index_.segments.size()) {
            const unsigned set = index_.segments[seg_at].set;
            std::vector<SegmentOut> outs(layout_.stripes);
            // On an early return the writers may still hold jobs that point into `outs`.
            struct DrainFirst {
                WritePipeline& p;
                ~DrainFirst() { (void)p.drain(); }
            } drain_first{pipeline};
            for (unsigned w = 0; w < layout_.stripes; ++w) {
                auto& o = outs[w];
                o.entry = index_.segments[seg_at + w];
                o.final = dir_ / o.entry.name(volume);
                o.tmp = dir_ / ("." + o.entry.name(volume) + ".tmp");
                o.direct = aligned;
                o.fd = detail::Fd(detail::open_maybe_direct(o.tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                                            0644, o.direct));
                if (!o.fd) return fail("cannot create " + o.tmp.string() + ": " + std::strerror(errno));
            }
            const std::uint64_t first = index_.first_block + std::uint64_t{set} * layout_.blocks_per_set;
            const std::uint64_t end = std::min(index_.end_block, first + layout_.blocks_per_set);
            for (std::uint64_t b = first; b < end; ++b) {
                const std::uint64_t offset = b * block_bytes;
                const std::size_t want = static_cast<std::size_t>(std::min(block_bytes, req_.info.archive_bytes - offset));
                auto next = source.next();
                if (!next) return next.error();
                const std::byte* symbols = *next;
                header.block = static_cast<std::uint32_t>(b);
                if (pipeline.failed()) break;
                for (unsigned w = 0; w < layout_.stripes; ++w) {
                    auto& o = outs[w];
                    const unsigned n = layout_.symbols_in(w);
                    for (unsigned j = 0; j < n; ++j) {
                        if (o.buffer == nullptr) o.buffer = pipeline.take();
                        const unsigned s = w * layout_.run + j;
                        header.symbol = static_cast<std::uint16_t>(s);
                        std::span<std::byte> slot(o.buffer->data() + o.used, record);
                        auto len = transfer::encode_frame(header, std::span(symbols + std::size_t{s} * S, S),
                                                          nullptr, slot);
                        if (!len || *len != frame) return fail("internal error: frame encoding failed");
                        if (cipher_) {
                            const std::uint64_t r = (b - first) * n + j;
                            cipher_->seal(detail::record_nonce(volume, set, w, r), slot.first(frame),
                                          std::span<std::byte, kTagBytes>(slot.data() + frame, kTagBytes));
                        }
                        o.used += record;
                        if (o.used == o.buffer->size()) pipeline.submit(o);
                    }
                }
                source.done();
                encoded += want;
                if (progress_) progress_(volume, encoded);
            }
            for (auto& o : outs) {
                if (o.buffer != nullptr) pipeline.submit(o);
                pipeline.sync(o);
            }
            if (auto ok = pipeline.drain(); !ok) return ok;
            for (auto& o : outs) {
                o.entry.xxh128 = o.hash.finish();
                index_.segments[seg_at + o.entry.stripe].xxh128 = o.entry.xxh128;
                o.fd.reset();
            }
            for (auto& o : outs) {
                if (::rename(o.tmp.c_str(), o.final.c_str()) != 0) {
                    return fail("cannot rename " + o.tmp.string() + ": " + std::strerror(errno));
                }
            }
            seg_at += layout_.stripes;
        }
        detail::sync_dir(dir_);
        return {};
    }

    Result<void> write_indexes(unsigned volume) {
        auto bytes = encode_index(index_, req_.key ? &*req_.key : nullptr);
        index_bytes_ = bytes.size();
        for (const char* suffix : {".index", ".index2"}) {
            char name[32];
            std::snprintf(name, sizeof name, "v%04u%s", volume, suffix);
            if (auto ok = detail::write_file_durably(dir_ / name, bytes); !ok) return ok;
        }
        detail::sync_dir(dir_);
        detail::sync_dir(dir_.parent_path());
        return {};
    }

    /// Reads everything back from the medium (bypassing or dropping the page
    /// cache) and compares each segment's XXH3-128 with the one computed over
    /// the bytes as they were written (two threads: one reads while the other
    /// hashes); then parses both index copies.
    Result<void> verify(unsigned volume) {
        std::atomic<std::size_t> next{0};
        std::vector<std::optional<Error>> errors(index_.segments.size());
        auto work = [&] {
            const std::size_t record = layout_.record_bytes();
            detail::AlignedBuffer buffer(std::max<std::size_t>(1, kVerifyBufferBytes / record) * record);
            for (std::size_t i = next++; i < index_.segments.size(); i = next++) {
                if (auto ok = verify_segment(volume, index_.segments[i], buffer); !ok) errors[i] = ok.error();
            }
        };
        std::thread helper(work);
        work();
        helper.join();
        for (auto& e : errors) {
            if (e) return *e;
        }
        for (const char* suffix : {".index", ".index2"}) {
            char name[32];
            std::snprintf(name, sizeof name, "v%04u%s", volume, suffix);
            auto bytes = detail::read_small_file(dir_ / name, kMaxIndexBody + 1024);
            if (!bytes) return bytes.error();
            auto parsed = parse_index(*bytes, req_.key ? &*req_.key : nullptr);
            if (parsed.error != IndexError::none || !(parsed.index == index_)) {
                return fail((dir_ / name).string() + " does not read back as written" +
                            (parsed.message.empty() ? "" : ": " + parsed.message));
            }
        }
        return {};
    }

    Result<void> verify_segment(unsigned volume, const SegmentEntry& e, detail::AlignedBuffer& buffer) {
        const std::size_t record = layout_.record_bytes();
        fs::path path = dir_ / e.name(volume);
        bool direct = record % detail::AlignedBuffer::kAlign == 0;
        detail::Fd fd(detail::open_maybe_direct(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0, direct));
        if (!fd) return fail("cannot open " + path.string() + ": " + std::strerror(errno));
        if (!direct) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);  // clean after fsync: dropped
        ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
        detail::Xxh128 hash;
        std::uint64_t at = 0;
        while (at < e.bytes) {
            const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(buffer.size(), e.bytes - at));
            auto got = detail::read_at(fd.get(), std::span(buffer.data(), want), at, path);
            if (!got) return got.error();
            if (*got != want) return fail(path.string() + " is shorter than written");
            hash.update(std::span<const std::byte>(buffer.data(), want));
            at += want;
        }
        if (::pread(fd.get(), buffer.data(), detail::AlignedBuffer::kAlign, static_cast<off_t>(at)) > 0) {
            return fail(path.string() + " is longer than written");
        }
        if (hash.finish() != e.xxh128) return fail(path.string() + " does not read back as written (XXH3-128 differs)");
        return {};
    }

    const WriteRequest& req_;
    const Layout& layout_;
    const Sha256& set_id_;
    unsigned volumes_;
    transfer::BlockCodec& codec_;
    detail::Cipher* cipher_;
    const WriteProgress& progress_;
    VolumeIndex index_;
    fs::path dir_;
    std::size_t index_bytes_ = 0;
};

}  // namespace

Result<WriteReport> write_volumes(const WriteRequest& req, const WriteProgress& progress) {
    if (req.targets.empty()) return fail("no target directory given");
    if (req.first_volume == 0) return fail("volumes are numbered from 1");
    detail::Fd archive(::open(req.archive.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat st {};
    if (!archive || ::fstat(archive.get(), &st) != 0) {
        return fail("cannot read " + req.archive.string() + ": " + std::strerror(errno));
    }
    if (static_cast<std::uint64_t>(st.st_size) != req.info.archive_bytes) {
        return fail(req.archive.string() + " is " + std::to_string(st.st_size) + " bytes, not the " +
                    std::to_string(req.info.archive_bytes) + " announced");
    }
    LayoutOptions options = req.layout;
    options.encrypted = req.key.has_value();
    if (options.volume_bytes == 0) {
        struct statvfs vfs {};
        if (::statvfs(req.targets.front().c_str(), &vfs) != 0) {
            return fail("cannot read the free space of " + req.targets.front().string() + ": " + std::strerror(errno));
        }
        options.volume_bytes = std::uint64_t{vfs.f_bavail} * vfs.f_frsize;
    }
    auto layout = plan_layout(req.info.archive_bytes, options);
    if (!layout) return layout.error();
    WriteReport report;
    report.layout = *layout;
    report.volume_bytes = options.volume_bytes;
    const MediaKey* key = req.key ? &*req.key : nullptr;
    report.set_id = set_id_for(req.info.bundle_id, *layout, key);
    transfer::TransferInfo info = req.info;
    info.fec = layout->fec;
    report.volumes = static_cast<unsigned>((info.blocks() + layout->blocks_per_volume - 1) / layout->blocks_per_volume);
    const std::uint64_t last = std::uint64_t{req.first_volume} + req.targets.size() - 1;
    if (last > report.volumes) {
        return fail("the bundle takes " + std::to_string(report.volumes) + " volume(s) of " +
                    std::to_string(options.volume_bytes) + " bytes; volume " + std::to_string(last) + " does not exist");
    }
    transfer::BlockCodec codec(layout->fec);
    std::optional<detail::Cipher> cipher;
    if (key) cipher.emplace(*key, report.set_id);
    VolumeWriter writer(req, *layout, report.set_id, report.volumes, codec, cipher ? &*cipher : nullptr, progress);
    for (std::size_t i = 0; i < req.targets.size(); ++i) {
        const unsigned volume = req.first_volume + static_cast<unsigned>(i);
        auto written = writer.write(req.targets[i], volume, archive.get());
        if (!written) return written.error();
        report.written.push_back(*written);
    }
    return report;
}

}  // namespace sluice::media
