// Writing volumes: encode, write beside, fsync, rename, index, read back.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>

#include "crypto.hpp"
#include "media_io.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/block_codec.hpp"
#include "sluice/transfer/frame.hpp"

namespace sluice::media {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

constexpr std::size_t kBufferBytes = 1u << 20;  // per segment being written
constexpr std::size_t kVerifyBufferBytes = 8u << 20;

/// One segment file being written: buffered, hashed, written beside its final name.
struct SegmentOut {
    SegmentEntry entry;
    fs::path tmp, final;
    detail::Fd fd;
    bool direct = false;  // O_DIRECT: whole records of a multiple of 4 KiB, from an aligned buffer
    std::unique_ptr<detail::AlignedBuffer> buffer;
    std::size_t used = 0;
    std::uint64_t flushed = 0;
    bundle::Sha256 hash;

    Result<void> flush() {
        if (used == 0) return {};
        if (auto ok = detail::write_all(fd.get(), std::span(buffer->data(), used), tmp); !ok) return ok;
        if (!direct) {
            // Start writeback now, so the disk works while the next blocks are encoded.
            ::sync_file_range(fd.get(), static_cast<off_t>(flushed), static_cast<off_t>(used), SYNC_FILE_RANGE_WRITE);
        }
        flushed += used;
        used = 0;
        return {};
    }
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
        std::vector<std::byte> symbols(std::size_t{total} * S);
        std::vector<const std::byte*> data_ptrs(fec.data_symbols);
        std::vector<std::byte*> parity_ptrs(fec.parity_symbols);
        for (unsigned i = 0; i < fec.data_symbols; ++i) data_ptrs[i] = symbols.data() + std::size_t{i} * S;
        for (unsigned i = 0; i < fec.parity_symbols; ++i) {
            parity_ptrs[i] = symbols.data() + std::size_t{fec.data_symbols + i} * S;
        }
        const std::size_t buffer_records = std::max<std::size_t>(1, kBufferBytes / record);
        const bool aligned = record % detail::AlignedBuffer::kAlign == 0;
        transfer::FrameHeader header;
        header.type = transfer::FrameType::symbol;
        header.session = index_.session();
        header.transfer = index_.transfer();

        std::size_t seg_at = 0;
        std::uint64_t encoded = 0;
        while (seg_at < index_.segments.size()) {
            const unsigned set = index_.segments[seg_at].set;
            std::vector<SegmentOut> outs(layout_.stripes);
            for (unsigned w = 0; w < layout_.stripes; ++w) {
                auto& o = outs[w];
                o.entry = index_.segments[seg_at + w];
                o.final = dir_ / o.entry.name(volume);
                o.tmp = dir_ / ("." + o.entry.name(volume) + ".tmp");
                o.direct = aligned;
                o.fd = detail::Fd(detail::open_maybe_direct(o.tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                                                            0644, o.direct));
                if (!o.fd) return fail("cannot create " + o.tmp.string() + ": " + std::strerror(errno));
                o.buffer = std::make_unique<detail::AlignedBuffer>(buffer_records * record);
            }
            const std::uint64_t first = index_.first_block + std::uint64_t{set} * layout_.blocks_per_set;
            const std::uint64_t end = std::min(index_.end_block, first + layout_.blocks_per_set);
            for (std::uint64_t b = first; b < end; ++b) {
                const std::uint64_t offset = b * block_bytes;
                const std::size_t want = static_cast<std::size_t>(std::min(block_bytes, req_.info.archive_bytes - offset));
                auto got = detail::read_at(archive_fd, std::span(symbols.data(), want), offset, req_.archive);
                if (!got) return got.error();
                if (*got != want) return fail(req_.archive.string() + " is shorter than announced (it changed?)");
                std::memset(symbols.data() + want, 0, block_bytes - want);
                codec_.encode(data_ptrs, parity_ptrs);
                header.block = static_cast<std::uint32_t>(b);
                for (unsigned w = 0; w < layout_.stripes; ++w) {
                    auto& o = outs[w];
                    const unsigned n = layout_.symbols_in(w);
                    for (unsigned j = 0; j < n; ++j) {
                        const unsigned s = w * layout_.run + j;
                        header.symbol = static_cast<std::uint16_t>(s);
                        std::span<std::byte> slot(o.buffer->data() + o.used, record);
                        auto len = transfer::encode_frame(header, std::span(symbols.data() + std::size_t{s} * S, S),
                                                          nullptr, slot);
                        if (!len || *len != frame) return fail("internal error: frame encoding failed");
                        if (cipher_) {
                            const std::uint64_t r = (b - first) * n + j;
                            cipher_->seal(detail::record_nonce(volume, set, w, r), slot.first(frame),
                                          std::span<std::byte, kTagBytes>(slot.data() + frame, kTagBytes));
                        }
                        o.hash.update(std::span<const std::byte>(slot));
                        o.used += record;
                        if (o.used == o.buffer->size()) {
                            if (auto ok = o.flush(); !ok) return ok;
                        }
                    }
                }
                encoded += want;
                if (progress_) progress_(volume, encoded);
            }
            for (auto& o : outs) {
                if (auto ok = o.flush(); !ok) return ok;
                if (::fsync(o.fd.get()) != 0) return fail("cannot sync " + o.tmp.string() + ": " + std::strerror(errno));
                auto digest = o.hash.finish();
                std::memcpy(o.entry.sha256.data(), digest.data(), 32);
                index_.segments[seg_at + o.entry.stripe].sha256 = o.entry.sha256;
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
    /// cache) and compares each segment's SHA-256 with the one computed over the
    /// bytes as they were written; then parses both index copies.
    Result<void> verify(unsigned volume) {
        const std::size_t record = layout_.record_bytes();
        const bool aligned = record % detail::AlignedBuffer::kAlign == 0;
        detail::AlignedBuffer buffer(std::max<std::size_t>(1, kVerifyBufferBytes / record) * record);
        for (const auto& e : index_.segments) {
            fs::path path = dir_ / e.name(volume);
            bool direct = aligned;
            detail::Fd fd(detail::open_maybe_direct(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0, direct));
            if (!fd) return fail("cannot open " + path.string() + ": " + std::strerror(errno));
            if (!direct) ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);  // clean after fsync: dropped
            ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
            bundle::Sha256 hash;
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
            auto digest = hash.finish();
            if (std::memcmp(digest.data(), e.sha256.data(), 32) != 0) {
                return fail(path.string() + " does not read back as written (SHA-256 differs)");
            }
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
