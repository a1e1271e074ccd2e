#pragma once
// A random "archive" with its TransferInfo, written to media under a temp dir
// and imported into a real FileBlockStore; plus the helpers the media tests
// share to find, damage and compare what is on a medium.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/bundle/digest.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/block_store.hpp"
#include "support/temp_dir.hpp"

namespace sluice::media::test {

namespace fs = std::filesystem;

/// A 32-byte key derived from `seed` (different seeds: different keys).
inline MediaKey key_of(unsigned seed) {
    MediaKey key;
    auto bytes = sluice::test::random_bytes(32, 1000 + seed);
    for (char c : bytes) key.secret.push_back(std::byte(static_cast<unsigned char>(c)));
    return key;
}

inline std::vector<std::byte> as_bytes(std::string_view s) {
    std::vector<std::byte> out(s.size());
    if (!s.empty()) std::memcpy(out.data(), s.data(), s.size());  // memcpy from nullptr is UB even for 0 bytes
    return out;
}
inline std::string as_string(std::span<const std::byte> b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

/// The SHA-256 trailer an index envelope ends with, recomputed over `bytes` minus its last 32.
inline void reseal(std::vector<std::byte>& bytes) {
    REQUIRE(bytes.size() >= 32);
    auto d = bundle::sha256(as_string(std::span(bytes).first(bytes.size() - 32)));
    std::memcpy(bytes.data() + bytes.size() - 32, d.data(), 32);
}

/// Flips (XOR) one byte of a file in place.
inline void flip_byte(const fs::path& file, std::uint64_t offset, unsigned char mask = 0x5a) {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    REQUIRE(f);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.read(&c, 1);
    REQUIRE(f);
    c = static_cast<char>(static_cast<unsigned char>(c) ^ mask);
    f.seekp(static_cast<std::streamoff>(offset));
    f.write(&c, 1);
    REQUIRE(f);
}

/// Every regular file under `dir`, by path relative to it, with its bytes.
inline std::map<std::string, std::string> files_under(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = sluice::test::read_file(e.path());
    }
    return out;
}

/// Where symbol `s` of block `b` sits on a volume: the segment (index into
/// VolumeIndex::segments) and the byte offset of its record, per media.hpp.
struct Place {
    std::size_t segment = 0;
    std::uint64_t record = 0;
    std::uint64_t offset = 0;
};
inline Place place_of(const VolumeIndex& ix, std::uint64_t b, unsigned s) {
    const Layout& l = ix.layout;
    const std::uint64_t set = (b - ix.first_block) / l.blocks_per_set;
    const std::uint64_t first = ix.first_block + set * l.blocks_per_set;
    const unsigned w = s / l.run;
    const std::uint64_t r = (b - first) * l.symbols_in(w) + s % l.run;
    return {static_cast<std::size_t>(set * l.stripes + w), r, r * l.record_bytes()};
}

/// The index the writer makes for `volume` (mirrors write_volumes), segment
/// digests filled with something recognisable. For index tests that need no medium.
inline VolumeIndex make_index(const transfer::TransferInfo& base, const Layout& layout, unsigned volume,
                              const MediaKey* key) {
    VolumeIndex ix;
    ix.info = base;
    ix.info.fec = layout.fec;
    ix.info.interleave = 1;
    ix.info.pass = ix.info.passes = 1;
    ix.layout = layout;
    ix.set_id = set_id_for(base.bundle_id, layout, key);
    ix.volume = volume;
    const std::uint64_t blocks = ix.info.blocks();
    ix.volumes = static_cast<unsigned>((blocks + layout.blocks_per_volume - 1) / layout.blocks_per_volume);
    ix.first_block = std::uint64_t{volume - 1} * layout.blocks_per_volume;
    ix.end_block = std::min(blocks, std::uint64_t{volume} * layout.blocks_per_volume);
    for (unsigned c = 0; std::uint64_t{c} * layout.blocks_per_set < ix.end_block - ix.first_block; ++c) {
        const std::uint64_t first = ix.first_block + std::uint64_t{c} * layout.blocks_per_set;
        const std::uint64_t in_set = std::min(layout.blocks_per_set, ix.end_block - first);
        for (unsigned w = 0; w < layout.stripes; ++w) {
            SegmentEntry e;
            e.set = c;
            e.stripe = w;
            e.records = in_set * layout.symbols_in(w);
            e.bytes = e.records * layout.record_bytes();
            auto d = bundle::sha256(e.name(volume));
            std::memcpy(e.xxh128.data(), d.data(), 16);
            ix.segments.push_back(e);
        }
    }
    ix.written_at = "2026-11-30T00:00:00Z";
    ix.written_by = "tester";
    ix.host = "test-host";
    return ix;
}

/// The smallest volume_bytes for which plan_layout gives at least `blocks`
/// blocks per volume (plan_layout is monotonic in the volume size).
inline std::uint64_t volume_bytes_for(std::uint64_t archive_bytes, LayoutOptions o, std::uint64_t blocks) {
    std::uint64_t lo = 1, hi = 1ULL << 40;
    while (lo < hi) {
        o.volume_bytes = lo + (hi - lo) / 2;
        auto l = plan_layout(archive_bytes, o);
        if (l && l->blocks_per_volume >= blocks) {
            hi = o.volume_bytes;
        } else {
            lo = o.volume_bytes + 1;
        }
    }
    return lo;
}

struct Fixture {
    sluice::test::TempDir tmp;
    std::filesystem::path dir = tmp.path();
    std::string archive_bytes;
    std::filesystem::path archive = dir / "bundle.tar";
    transfer::TransferInfo info;
    std::unique_ptr<transfer::FileBlockStore> store_;

    explicit Fixture(std::size_t bytes, unsigned seed = 7) {
        archive_bytes = sluice::test::random_bytes(bytes, seed);
        sluice::test::write_file(archive, archive_bytes);
        auto d = bundle::sha256(archive_bytes);
        std::memcpy(info.archive_sha256.data(), d.data(), 32);
        auto id = bundle::sha256("bundle " + std::to_string(seed));
        std::memcpy(info.bundle_id.data(), id.data(), 32);
        info.archive_bytes = bytes;
        info.channel = "models";
        info.version = "1.0." + std::to_string(seed);
    }

    /// The request write() sends (small archives get 4 KiB symbols unless the options say otherwise).
    WriteRequest request(std::vector<std::filesystem::path> targets, LayoutOptions layout,
                         std::optional<MediaKey> key = std::nullopt, unsigned first_volume = 1) {
        for (const auto& t : targets) std::filesystem::create_directories(t);
        WriteRequest req;
        req.archive = archive;
        req.info = info;
        if (layout.volume_bytes == 0) layout.volume_bytes = 64ULL << 20;
        if (layout.symbol_bytes == 16384 && archive_bytes.size() < (8u << 20)) layout.symbol_bytes = 4096;
        req.layout = layout;
        req.key = std::move(key);
        req.targets = std::move(targets);
        req.first_volume = first_volume;
        req.written_at = "2026-11-30T00:00:00Z";
        req.written_by = "tester";
        req.host = "test-host";
        return req;
    }

    WriteReport write(std::vector<std::filesystem::path> targets, LayoutOptions layout,
                      std::optional<MediaKey> key = std::nullopt, unsigned first_volume = 1) {
        auto r = write_volumes(request(std::move(targets), layout, std::move(key), first_volume));
        if (!r) FAIL(r.error().message);
        return *r;
    }

    transfer::FileBlockStore& store() {
        if (!store_) store_ = std::make_unique<transfer::FileBlockStore>(dir / "state");
        return *store_;
    }
    /// Closes the store (pending checkpoints written) and opens a new one on
    /// the same root, as a receiver restarted days later would.
    transfer::FileBlockStore& reopen_store() {
        store_.reset();
        return store();
    }

    /// The one volume found on `mountdir` (no problems allowed).
    FoundVolume found(const fs::path& mountdir, const MediaKey* key = nullptr) {
        auto scan = scan_medium(mountdir, key);
        if (!scan) FAIL(scan.error().message);
        REQUIRE(scan->problems.empty());
        REQUIRE(scan->volumes.size() == 1);
        return scan->volumes[0];
    }

    VolumeImport import(const FoundVolume& v, const MediaKey* key = nullptr) {
        auto r = import_volume(v, store(), key);
        if (!r) FAIL(r.error().message);
        return *r;
    }

    /// The blocks the store holds durably for the archive `volume` carries.
    transfer::BlockSet held(const FoundVolume& volume) {
        store().flush();
        auto key = transfer::staging_key(volume.index.info);
        auto opened = store().open(key, volume.index.info);
        if (!opened) FAIL(opened.error().message);
        store().release(key);
        return opened->held;
    }

    /// Finalizes the staging area (SHA-256 checked) and returns the archive's bytes.
    std::string assembled(const FoundVolume& volume, const VolumeImport& imported) {
        store().flush();
        auto path = store().finalize(imported.staging_key, volume.index.info);
        if (!path) FAIL(path.error().message);
        return sluice::test::read_file(*path);
    }
};

}  // namespace sluice::media::test
