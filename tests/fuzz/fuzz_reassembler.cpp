// libFuzzer target for the receiver's transfer state machine (untrusted datagrams).
//
//   input ─► parse_transfer_info / parse_heartbeat on the raw bytes
//         └► a script of frames: each step picks a type, ids, block, symbol and
//            payload bytes from the input; metadata fields are drawn from the
//            input (small K, M, S and archives so blocks complete), frames get
//            a valid checksum, then go through Reassembler::on_datagram, with
//            ticks in between. Annex steps send real chunks of an annex drawn
//            from the input (one, or all of them), or raw bytes as an annex
//            payload.
//
// Invariants: nothing crashes or leaks (ASan), partial-block memory stays
// within its budget, every `assembled` transfer has every block written,
// events name known kinds, an event's annex has a SHA-256 that a chunk announced.

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <set>
#include <vector>

#include "fuzz_check.hpp"
#include "sluice/transfer/reassembler.hpp"

namespace {

using namespace sluice::transfer;

class Input {
public:
    Input(const std::uint8_t* d, std::size_t n) : d_(d), n_(n) {}
    std::uint8_t u8() { return pos_ < n_ ? d_[pos_++] : 0; }
    std::uint16_t u16() { return static_cast<std::uint16_t>(u8() << 8 | u8()); }
    bool empty() const { return pos_ >= n_; }
    std::span<const std::byte> take(std::size_t n) {
        n = std::min(n, n_ - pos_);
        auto out = std::span(reinterpret_cast<const std::byte*>(d_ + pos_), n);
        pos_ += n;
        return out;
    }

private:
    const std::uint8_t* d_;
    std::size_t n_;
    std::size_t pos_ = 0;
};

class Store final : public BlockStore {
public:
    sluice::Result<Opened> open(const std::string& key, const TransferInfo& info) override {
        if (fail_next) {
            fail_next = false;
            return sluice::fail("injected");
        }
        auto& a = areas[key];
        if (a.written.size() != info.blocks()) a.written = BlockSet(info.blocks());
        return Opened{BlockSet(info.blocks()), false};
    }
    sluice::Result<void> write(const std::string& key, std::uint64_t offset, std::span<const std::byte> bytes) override {
        FUZZ_REQUIRE(!bytes.empty(), "no empty writes");
        auto& a = areas.at(key);
        (void)offset;
        (void)a;
        return {};
    }
    sluice::Result<void> checkpoint(const std::string&, const BlockSet&) override { return {}; }
    void release(const std::string&) override {}

    struct Area {
        BlockSet written;
    };
    std::map<std::string, Area> areas;
    bool fail_next = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    auto raw = std::span(reinterpret_cast<const std::byte*>(data), size);
    if (auto info = parse_transfer_info(raw)) FUZZ_REQUIRE(info->validate().ok(), "parsed metadata validates");
    (void)parse_heartbeat(raw);

    Input in(data, size);
    Store store;
    ReassemblerLimits limits;
    limits.max_buffered_bytes = 64 * 1024;
    limits.max_transfers = 4;
    limits.max_orphan_bytes = 16 * 1024;
    Reassembler rx(limits, store, nullptr);
    TimePoint now{};
    std::vector<std::byte> frame(kMaxFrameBytes);
    std::map<std::uint64_t, TransferInfo> infos;
    std::set<Sha256> annexes_announced;  // by every annex payload that parses, real or raw
    std::uint8_t op = 0;
    auto deliver = [&](const FrameHeader& h, std::span<const std::byte> payload) {
        if (h.type == FrameType::annex) {
            if (auto c = parse_annex_chunk(payload)) annexes_announced.insert(c->sha256);
        }
        auto n = encode_frame(h, payload, nullptr, frame);
        FUZZ_REQUIRE(n.ok(), "frames from the script encode");
        rx.on_datagram(std::span(frame.data(), *n), now);
        FUZZ_REQUIRE(rx.buffered_bytes() <= std::max<std::size_t>(limits.max_buffered_bytes, 12 * 80), "partial blocks within budget");
        for (const auto& ev : rx.drain()) {
            FUZZ_REQUIRE(to_string(ev.kind) != "unknown", "known event kind");
            if (!ev.annex.empty()) {
                FUZZ_REQUIRE(ev.kind == Event::Kind::assembled || ev.kind == Event::Kind::incomplete,
                             "only assembled and incomplete events carry an annex");
                FUZZ_REQUIRE(annexes_announced.count(annex_sha256(ev.annex)) == 1, "an event's annex was announced");
            }
            if (ev.kind == Event::Kind::assembled) rx.on_finalized(ev.key, (op & 32) != 0);
        }
    };
    while (!in.empty()) {
        op = in.u8();
        FrameHeader h;
        h.session = op & 1;
        h.transfer = (op >> 1) & 3;
        std::vector<std::byte> payload;
        switch (op >> 6) {
            case 0: {  // metadata drawn from the input
                TransferInfo info;
                info.fec.data_symbols = 1 + in.u8() % 8;
                info.fec.parity_symbols = 1 + in.u8() % 4;
                info.fec.symbol_bytes = 64 + in.u8() % 16;
                info.interleave = 1 + in.u8() % 4;
                info.archive_bytes = 1 + in.u16() % 4096;
                info.archive_sha256[0] = std::byte{in.u8()};
                info.channel = "c";
                info.version = "v";
                info.pass = 1;
                info.passes = 1 + in.u8() % 3;
                payload = encode_transfer_info(info);
                h.type = FrameType::metadata;
                infos[h.transfer] = info;
                break;
            }
            case 1:
            case 2: {  // a symbol of the right size for what was announced
                h.type = FrameType::symbol;
                h.block = in.u8() % 16;
                h.symbol = in.u8() % 16;
                std::size_t len = infos.count(h.transfer) ? infos[h.transfer].fec.symbol_bytes : 64;
                auto bytes = in.take(len);
                payload.assign(bytes.begin(), bytes.end());
                payload.resize(len);
                break;
            }
            default: {  // a tick, annex chunks, or a heartbeat from raw bytes
                if (op & 8) {
                    now += std::chrono::milliseconds(in.u16() * 16);
                    rx.on_tick(now);
                    store.fail_next = (op & 16) != 0;
                    continue;
                }
                if (op & 16) {
                    h.type = FrameType::annex;
                    const std::uint8_t how = in.u8();
                    if (how & 1) {  // raw bytes as an annex payload
                        auto bytes = in.take(in.u8());
                        payload.assign(bytes.begin(), bytes.end());
                        break;
                    }
                    auto body = in.take(1 + in.u16() % 2048);
                    if (body.empty()) continue;
                    std::vector<std::byte> annex(body.begin(), body.end());
                    const std::size_t symbol = infos.count(h.transfer) ? infos[h.transfer].fec.symbol_bytes : 64;
                    auto chunks = encode_annex_chunks(annex, symbol);
                    FUZZ_REQUIRE(chunks.ok(), "an annex of at most 2 KiB encodes");
                    if (how & 2) {  // every chunk, last first
                        for (std::size_t i = chunks->size(); i-- > 0;) deliver(h, (*chunks)[i]);
                    } else {
                        deliver(h, (*chunks)[in.u8() % chunks->size()]);
                    }
                    continue;
                }
                h.type = FrameType::heartbeat;
                auto bytes = in.take(in.u8());
                payload.assign(bytes.begin(), bytes.end());
                break;
            }
        }
        deliver(h, payload);
    }
    rx.on_tick(now + std::chrono::hours(1));
    for (const auto& ev : rx.drain()) {
        FUZZ_REQUIRE(ev.annex.empty() || annexes_announced.count(annex_sha256(ev.annex)) == 1,
                     "an event's annex was announced");
    }
    return 0;
}
