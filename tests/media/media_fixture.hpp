#pragma once
// A random "archive" with its TransferInfo, written to media under a temp dir
// and imported into a real FileBlockStore.
#include <catch2/catch.hpp>

#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "sluice/bundle/digest.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/block_store.hpp"
#include "support/temp_dir.hpp"

namespace sluice::media::test {

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

    WriteReport write(std::vector<std::filesystem::path> targets, LayoutOptions layout,
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
        auto r = write_volumes(req);
        if (!r) FAIL(r.error().message);
        return *r;
    }

    transfer::FileBlockStore& store() {
        if (!store_) store_ = std::make_unique<transfer::FileBlockStore>(dir / "state");
        return *store_;
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
