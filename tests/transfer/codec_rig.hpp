#pragma once
// Shared by the transfer codec tests: seeded archives, an in-memory BlockStore
// with Nth-write failure injection, a Reassembler rig with a fake clock, and
// the frames of one encoder pass.

#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "lossy_link.hpp"
#include "sluice/transfer/encoder.hpp"
#include "sluice/transfer/reassembler.hpp"

namespace sluice::test {

using namespace sluice::transfer;

using Bytes = std::vector<std::byte>;

inline Bytes random_archive(std::size_t n, unsigned seed) {
    Bytes out(n);
    std::mt19937_64 rng(seed);
    for (auto& b : out) b = std::byte(rng() & 0xff);
    return out;
}

inline Sha256 sha256(const Bytes& b) {
    Sha256 out{};
    unsigned len = 0;
    EVP_Digest(b.data(), b.size(), reinterpret_cast<unsigned char*>(out.data()), &len, EVP_sha256(), nullptr);
    return out;
}

inline TransferInfo info_for(const Bytes& archive, FecParams fec, unsigned interleave, std::uint32_t pass = 1,
                      std::uint32_t passes = 1) {
    TransferInfo info;
    info.bundle_id = sha256(Bytes(archive.begin(), archive.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(16, archive.size()))));
    info.archive_bytes = archive.size();
    info.archive_sha256 = sha256(archive);
    info.fec = fec;
    info.interleave = interleave;
    info.channel = "models";
    info.version = "1.4.0";
    info.pass = pass;
    info.passes = passes;
    return info;
}

inline ArchiveReader reader_of(const Bytes& archive) {
    return [&archive](std::uint64_t offset, std::span<std::byte> out) -> Result<std::size_t> {
        if (offset >= archive.size()) return std::size_t{0};
        auto n = std::min<std::size_t>(out.size(), archive.size() - offset);
        std::memcpy(out.data(), archive.data() + offset, n);
        return n;
    };
}

/// In-memory store with Nth-write failure injection.
class MemoryStore final : public BlockStore {
public:
    Result<Opened> open(const std::string& key, const TransferInfo& info) override {
        ++opens;
        if (delivered.count(key)) return Opened{BlockSet{}, true};
        auto& a = areas[key];
        if (a.bytes.size() != info.archive_bytes) {
            a.bytes.assign(info.archive_bytes, std::byte{0});
            a.durable = BlockSet(info.blocks());
        }
        return Opened{a.durable, false};
    }
    Result<void> write(const std::string& key, std::uint64_t offset, std::span<const std::byte> bytes) override {
        if (fail_write_at > 0 && ++writes == fail_write_at) return sluice::fail("injected: No space left on device");
        auto& a = areas.at(key);
        std::memcpy(a.bytes.data() + offset, bytes.data(), bytes.size());
        return {};
    }
    Result<void> checkpoint(const std::string& key, const BlockSet& held) override {
        areas.at(key).durable = held;
        ++checkpoints;
        return {};
    }
    void release(const std::string&) override {}

    struct Area {
        Bytes bytes;
        BlockSet durable;
    };
    std::map<std::string, Area> areas;
    std::map<std::string, bool> delivered;
    std::size_t writes = 0, fail_write_at = 0, opens = 0, checkpoints = 0;
};

struct Rig {
    MemoryStore store;
    ReassemblerLimits limits;
    std::unique_ptr<Reassembler> rx;
    TimePoint now{};
    std::vector<Event> events;

    explicit Rig(ReassemblerLimits l = {}) : limits(l) { rx = std::make_unique<Reassembler>(limits, store, nullptr); }

    void feed(std::span<const std::byte> datagram) {
        now += std::chrono::microseconds(10);
        rx->on_datagram(datagram, now);
    }
    void tick(std::chrono::milliseconds advance) {
        now += advance;
        rx->on_tick(now);
    }
    std::vector<Event> take() {
        auto e = rx->drain();
        events.insert(events.end(), e.begin(), e.end());
        return e;
    }
    std::size_t count(Event::Kind k) const {
        return static_cast<std::size_t>(std::count_if(events.begin(), events.end(), [&](const Event& e) { return e.kind == k; }));
    }
};

/// Every frame of one pass, in order.
inline std::vector<Bytes> frames_of(const TransferInfo& info, const Bytes& archive, std::uint64_t session,
                                    std::uint64_t transfer, LinkKey* key = nullptr, const Bytes& annex = {}) {
    Encoder enc(info, session, transfer, reader_of(archive), key, annex);
    FrameBatch batch(32, enc.max_frame_bytes());
    std::vector<Bytes> out;
    for (bool more = true; more;) {
        batch.clear();
        auto r = enc.fill(batch);
        REQUIRE(r);
        more = *r;
        for (auto f : batch.frames()) out.emplace_back(f.begin(), f.end());
    }
    CHECK(out.size() == enc.frames_total());
    return out;
}

inline void send(Rig& rig, const std::vector<Bytes>& frames, LossyLink& link) {
    for (const auto& f : frames) {
        for (const auto& out : link.pass(f)) rig.feed(out);
    }
    for (const auto& out : link.flush()) rig.feed(out);
    rig.take();
}

inline const FecParams kSmall{16, 8, 256};

}  // namespace sluice::test
