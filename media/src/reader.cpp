// Reading media: find the volumes (never following links), then rebuild blocks
// into the BlockStore, every unreadable record an erasure.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <optional>

#include "crypto.hpp"
#include "media_io.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/block_codec.hpp"
#include "sluice/transfer/frame.hpp"

namespace sluice::media {
namespace {

constexpr std::size_t kReadBufferBytes = 1u << 20;  // per segment
constexpr std::uint64_t kCheckpointBlocks = 256;

std::string kind_of(mode_t mode) {
    if (S_ISLNK(mode)) return "a symbolic link, not followed";
    if (S_ISDIR(mode)) return "an unexpected directory";
    if (S_ISREG(mode)) return "an unexpected file";
    return "a special file, not opened";
}

struct Name {
    enum Kind { none, index, index2, segment } kind = none;
    unsigned volume = 0, set = 0, stripe = 0;
};

Name classify(const std::string& name) {
    Name n;
    unsigned v = 0, c = 0, s = 0;
    char tail[8] = {};
    if (name.size() == 11 && std::sscanf(name.c_str(), "v%4u.index%1s", &v, tail) == 1) {
        n.kind = Name::index;
    } else if (name.size() == 12 && std::sscanf(name.c_str(), "v%4u.index%1s", &v, tail) == 2 && tail[0] == '2') {
        n.kind = Name::index2;
    } else if (name.size() == 20 && std::sscanf(name.c_str(), "v%4u-c%4u-s%3u.seg", &v, &c, &s) == 3) {
        n.kind = Name::segment;
    }
    n.volume = v;
    n.set = c;
    n.stripe = s;
    // Only the canonical spelling counts (sscanf accepts "v+001" and the like).
    char canon[32];
    if (n.kind == Name::index || n.kind == Name::index2) {
        std::snprintf(canon, sizeof canon, "v%04u.index%s", v, n.kind == Name::index2 ? "2" : "");
        if (name != canon) n.kind = Name::none;
    } else if (n.kind == Name::segment) {
        std::snprintf(canon, sizeof canon, "v%04u-c%04u-s%03u.seg", v, c, s);
        if (name != canon) n.kind = Name::none;
    }
    return n;
}

/// Sequential reader of one segment's records, in chunks.
class SegmentIn {
public:
    SegmentIn(const fs::path& path, std::uint64_t expected_records, std::size_t record_bytes, SegmentState& state)
        : path_(path), record_(record_bytes), state_(state) {
        fd_ = detail::Fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
        struct stat st {};
        if (fd_ && ::fstat(fd_.get(), &st) == 0 && S_ISREG(st.st_mode)) {
            state_.present = true;
            available_ = std::min<std::uint64_t>(static_cast<std::uint64_t>(st.st_size) / record_, expected_records);
            ::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
        } else {
            fd_.reset();
        }
        buffer_.resize(std::max<std::size_t>(1, kReadBufferBytes / record_) * record_);
    }

    /// Record `r` (read in order), or an empty span when it is not there.
    /// A read error makes it and the rest of the chunk erasures.
    std::span<std::byte> record(std::uint64_t r) {
        if (!fd_ || r >= available_) return {};
        if (r < chunk_first_ || r >= chunk_first_ + chunk_records_) {
            chunk_first_ = r;
            const std::uint64_t n = std::min<std::uint64_t>(buffer_.size() / record_, available_ - r);
            auto got = detail::read_at(fd_.get(), std::span(buffer_.data(), n * record_), r * record_, path_);
            chunk_records_ = got ? *got / record_ : 0;
            if (chunk_records_ == 0) return {};
        }
        ++state_.records_read;
        return std::span(buffer_.data() + (r - chunk_first_) * record_, record_);
    }

private:
    fs::path path_;
    std::size_t record_;
    SegmentState& state_;
    detail::Fd fd_;
    std::uint64_t available_ = 0;
    std::vector<std::byte> buffer_;
    std::uint64_t chunk_first_ = 0;
    std::uint64_t chunk_records_ = 0;
};

void add_range(std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges, std::uint64_t b) {
    if (!ranges.empty() && ranges.back().second + 1 == b) {
        ranges.back().second = b;
    } else if (ranges.size() < 32) {
        ranges.emplace_back(b, b);
    }
}

}  // namespace

Result<MediumScan> scan_medium(const fs::path& mountdir, const MediaKey* key, const IndexLimits& limits) {
    fs::path root = mountdir / kRootDir;
    struct stat st {};
    if (::lstat(root.c_str(), &st) != 0) {
        return fail("no " + std::string(kRootDir) + " directory on " + mountdir.string() + ": not a Sluice medium (" +
                    std::strerror(errno) + ")");
    }
    if (!S_ISDIR(st.st_mode)) return fail(root.string() + " is " + kind_of(st.st_mode));
    MediumScan scan;
    std::error_code ec;
    std::vector<fs::path> dirs;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
        std::string rel = std::string(kRootDir) + "/" + entry.path().filename().string();
        if (::lstat(entry.path().c_str(), &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            dirs.push_back(entry.path());
        } else {
            scan.ignored.push_back(rel + ": " + kind_of(st.st_mode));
        }
    }
    if (ec) return fail("cannot list " + root.string() + ": " + ec.message());
    std::sort(dirs.begin(), dirs.end());
    const std::size_t max_index = 68 + limits.max_body_bytes + kTagBytes + 32;
    for (const auto& dir : dirs) {
        const std::string rel_dir = std::string(kRootDir) + "/" + dir.filename().string();
        std::map<unsigned, std::pair<bool, bool>> indexes;  // volume → (index, index2) present
        std::vector<std::pair<std::string, Name>> segments;
        for (const auto& entry : fs::directory_iterator(dir, ec)) {
            std::string name = entry.path().filename().string();
            std::string rel = rel_dir + "/" + name;
            if (::lstat(entry.path().c_str(), &st) != 0) continue;
            Name n = classify(name);
            if (!S_ISREG(st.st_mode)) {
                scan.ignored.push_back(rel + ": " + kind_of(st.st_mode));
            } else if (n.kind == Name::index) {
                indexes[n.volume].first = true;
            } else if (n.kind == Name::index2) {
                indexes[n.volume].second = true;
            } else if (n.kind == Name::segment) {
                segments.emplace_back(name, n);
            } else if (name.starts_with(".") && name.ends_with(".tmp")) {
                scan.ignored.push_back(rel + ": an unfinished write, ignored");
            } else {
                scan.ignored.push_back(rel + ": " + kind_of(st.st_mode));
            }
        }
        std::set<unsigned> unreadable;  // volumes whose index failed: their segments are covered by that problem
        for (const auto& [volume, present] : indexes) {
            char base[16];
            std::snprintf(base, sizeof base, "v%04u", volume);
            FoundVolume fv;
            fv.directory = dir;
            std::vector<std::string> failures;
            bool ok = false;
            for (int copy = 0; copy < 2 && !ok; ++copy) {
                if (!(copy == 0 ? present.first : present.second)) {
                    failures.push_back(std::string(base) + (copy == 0 ? ".index" : ".index2") + " is missing");
                    continue;
                }
                std::string file = std::string(base) + (copy == 0 ? ".index" : ".index2");
                auto bytes = detail::read_small_file(dir / file, max_index);
                if (!bytes) {
                    failures.push_back(bytes.error().message);
                    continue;
                }
                auto parsed = parse_index(*bytes, key, limits);
                if (parsed.error == IndexError::none && parsed.index.volume != volume) {
                    parsed.error = IndexError::invalid;
                    parsed.message = "it describes volume " + std::to_string(parsed.index.volume);
                }
                if (parsed.error == IndexError::none) {
                    fv.index = std::move(parsed.index);
                    ok = true;
                } else if (parsed.error == IndexError::needs_key || parsed.error == IndexError::wrong_key) {
                    failures.assign(1, parsed.message);  // the same for both copies
                    break;
                } else {
                    failures.push_back(file + ": " + parsed.message);
                }
            }
            if (!ok) {
                std::string why;
                for (const auto& f : failures) why += (why.empty() ? "" : "; ") + f;
                scan.problems.push_back(rel_dir + " volume " + std::to_string(volume) + ": " + why);
                unreadable.insert(volume);
                continue;
            }
            for (const auto& f : failures) fv.notes.push_back(f + " (the other copy was read)");
            scan.volumes.push_back(std::move(fv));
        }
        // Segment files that no readable index lists are reported, not read.
        std::sort(segments.begin(), segments.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (const auto& [name, n] : segments) {
            if (unreadable.count(n.volume)) continue;
            bool listed = false;
            for (const auto& fv : scan.volumes) {
                if (fv.directory != dir || fv.index.volume != n.volume) continue;
                for (const auto& e : fv.index.segments) listed |= e.set == n.set && e.stripe == n.stripe;
            }
            if (!listed) scan.ignored.push_back(rel_dir + "/" + name + ": not listed by a readable index");
        }
    }
    std::sort(scan.ignored.begin(), scan.ignored.end());
    return scan;
}

Result<VolumeImport> import_volume(const FoundVolume& fv, transfer::BlockStore& store, const MediaKey* key) {
    const VolumeIndex& ix = fv.index;
    const Layout& layout = ix.layout;
    if (layout.encrypted && key == nullptr) return fail("volume " + std::to_string(ix.volume) + " is encrypted: give its key");
    VolumeImport out;
    out.volume = ix.volume;
    out.volumes = ix.volumes;
    out.blocks = ix.end_block - ix.first_block;
    transfer::TransferInfo info = ix.info;
    out.staging_key = transfer::staging_key(info);
    out.archive_blocks = info.blocks();
    for (const auto& e : ix.segments) out.segments.push_back({e.name(ix.volume) , false, 0, 0});

    auto opened = store.open(out.staging_key, info);
    if (!opened) return opened.error();
    if (opened->already_delivered) {
        out.already_delivered = true;
        out.archive_blocks_held = out.archive_blocks;
        store.release(out.staging_key);
        return out;
    }
    transfer::BlockSet held = std::move(opened->held);
    for (std::uint64_t b = ix.first_block; b < ix.end_block; ++b) out.blocks_held_before += held.test(b) ? 1 : 0;

    std::optional<detail::Cipher> cipher;
    if (layout.encrypted) cipher.emplace(*key, ix.set_id);
    const auto& fec = layout.fec;
    const unsigned total = fec.data_symbols + fec.parity_symbols;
    const std::size_t S = fec.symbol_bytes;
    const std::size_t record = layout.record_bytes();
    const std::size_t frame = transfer::frame_size(S, false);
    const std::uint64_t block_bytes = std::uint64_t{fec.data_symbols} * S;
    transfer::BlockCodec codec(fec);
    std::vector<std::byte> symbols(std::size_t{total} * S);
    std::vector<std::byte*> ptrs(total);
    for (unsigned i = 0; i < total; ++i) ptrs[i] = symbols.data() + std::size_t{i} * S;
    std::vector<bool> present(total);
    std::uint64_t since_checkpoint = 0;

    auto finish = [&](Result<void> status) -> Result<VolumeImport> {
        if (since_checkpoint > 0) {
            if (auto ok = store.checkpoint(out.staging_key, held); !ok && status) status = ok;
        }
        out.archive_blocks_held = held.count();
        store.release(out.staging_key);
        if (!status) return status.error();
        return out;
    };

    for (std::size_t seg_at = 0; seg_at < ix.segments.size(); seg_at += layout.stripes) {
        const unsigned set = ix.segments[seg_at].set;
        std::vector<std::unique_ptr<SegmentIn>> ins;
        for (unsigned w = 0; w < layout.stripes; ++w) {
            const auto& e = ix.segments[seg_at + w];
            ins.push_back(std::make_unique<SegmentIn>(fv.directory / e.name(ix.volume), e.records, record,
                                                      out.segments[seg_at + w]));
        }
        const std::uint64_t first = ix.first_block + std::uint64_t{set} * layout.blocks_per_set;
        const std::uint64_t end = std::min(ix.end_block, first + layout.blocks_per_set);
        for (std::uint64_t b = first; b < end; ++b) {
            const bool needed = !held.test(b);
            std::fill(present.begin(), present.end(), false);
            unsigned count = 0;
            for (unsigned w = 0; w < layout.stripes; ++w) {
                const unsigned n = layout.symbols_in(w);
                auto& state = out.segments[seg_at + w];
                for (unsigned j = 0; j < n; ++j) {
                    const std::uint64_t r = (b - first) * n + j;
                    auto rec = ins[w]->record(r);
                    if (rec.empty() || !needed) continue;
                    const unsigned s = w * layout.run + j;
                    if (cipher && !cipher->open(detail::record_nonce(ix.volume, set, w, r), rec.first(frame),
                                                std::span<const std::byte, kTagBytes>(rec.data() + frame, kTagBytes))) {
                        ++state.records_bad;
                        continue;
                    }
                    auto parsed = transfer::parse_frame(rec.first(frame), nullptr);
                    const auto& h = parsed.frame.header;
                    if (parsed.error != transfer::FrameError::none || h.type != transfer::FrameType::symbol ||
                        h.session != ix.session() || h.transfer != ix.transfer() || h.block != b || h.symbol != s ||
                        parsed.frame.payload.size() != S) {
                        ++state.records_bad;
                        continue;
                    }
                    std::memcpy(ptrs[s], parsed.frame.payload.data(), S);
                    present[s] = true;
                    ++count;
                }
            }
            if (!needed) continue;
            bool direct = std::all_of(present.begin(), present.begin() + fec.data_symbols, [](bool p) { return p; });
            if (!direct) {
                if (count < fec.data_symbols || !codec.decode(ptrs, present)) {
                    add_range(out.unrecoverable, b);
                    continue;
                }
            }
            const std::uint64_t offset = b * block_bytes;
            const std::size_t len = static_cast<std::size_t>(std::min(block_bytes, info.archive_bytes - offset));
            if (auto ok = store.write(out.staging_key, offset, std::span<const std::byte>(symbols.data(), len)); !ok) {
                return finish(ok);
            }
            held.set(b);
            ++(direct ? out.blocks_direct : out.blocks_repaired);
            if (++since_checkpoint >= kCheckpointBlocks) {
                if (auto ok = store.checkpoint(out.staging_key, held); !ok) return finish(ok);
                since_checkpoint = 0;
            }
        }
    }
    return finish({});
}

}  // namespace sluice::media
