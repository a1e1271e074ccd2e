#include "sluice/transfer/metadata.hpp"

#include "wire.hpp"

namespace sluice::transfer {
namespace {

constexpr std::uint8_t kInfoVersion = 1;
constexpr std::uint8_t kHeartbeatVersion = 1;
constexpr std::size_t kMaxName = 64;

bool printable_name(const std::string& s) {
    if (s.empty() || s.size() > kMaxName) return false;
    for (unsigned char c : s) {
        if (c < 0x21 || c > 0x7e) return false;  // release names are printable ASCII without spaces
    }
    return true;
}

}  // namespace

std::string to_hex(const Sha256& digest) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    out.reserve(64);
    for (auto b : digest) {
        auto v = std::to_integer<unsigned>(b);
        out.push_back(kHex[v >> 4]);
        out.push_back(kHex[v & 15]);
    }
    return out;
}

Result<Sha256> sha256_from_hex(std::string_view hex) {
    if (hex.size() != 64) return fail("a SHA-256 is 64 hex characters, got " + std::to_string(hex.size()));
    Sha256 out{};
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    for (std::size_t i = 0; i < 32; ++i) {
        int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return fail("not a hex digest: " + std::string(hex));
        out[i] = std::byte(static_cast<unsigned>(hi * 16 + lo));
    }
    return out;
}

Result<void> TransferInfo::validate(const InfoLimits& limits) const {
    if (fec.data_symbols == 0 || fec.parity_symbols == 0 || fec.data_symbols + fec.parity_symbols > 255) {
        return fail("FEC parameters K=" + std::to_string(fec.data_symbols) + " M=" + std::to_string(fec.parity_symbols) +
                    " are outside 1 ≤ K, 1 ≤ M, K + M ≤ 255");
    }
    if (fec.symbol_bytes < limits.min_symbol_bytes || fec.symbol_bytes > limits.max_symbol_bytes) {
        return fail("symbol size " + std::to_string(fec.symbol_bytes) + " is outside " +
                    std::to_string(limits.min_symbol_bytes) + ".." + std::to_string(limits.max_symbol_bytes));
    }
    if (interleave == 0 || interleave > limits.max_interleave) {
        return fail("interleave depth " + std::to_string(interleave) + " is outside 1.." +
                    std::to_string(limits.max_interleave));
    }
    if (archive_bytes == 0) return fail("archive size is 0");
    if (archive_bytes > limits.max_archive_bytes) {
        return fail("archive size " + std::to_string(archive_bytes) + " is over the limit of " +
                    std::to_string(limits.max_archive_bytes) + " bytes");
    }
    if (blocks() > std::min<std::uint64_t>(limits.max_blocks, 0xffffffffULL)) {
        return fail("archive of " + std::to_string(archive_bytes) + " bytes needs " + std::to_string(blocks()) +
                    " blocks of " + std::to_string(block_bytes()) + " bytes, over the limit of " +
                    std::to_string(limits.max_blocks) + " (use larger blocks)");
    }
    if (!printable_name(channel)) return fail("channel name is empty, over 64 bytes or not printable ASCII");
    if (!printable_name(version)) return fail("version is empty, over 64 bytes or not printable ASCII");
    if (pass == 0 || passes == 0 || pass > passes) {
        return fail("pass " + std::to_string(pass) + " of " + std::to_string(passes) + " is inconsistent");
    }
    return {};
}

std::vector<std::byte> encode_transfer_info(const TransferInfo& info) {
    wire::Writer w;
    w.u8(kInfoVersion);
    w.bytes(info.bundle_id);
    w.u64(info.archive_bytes);
    w.bytes(info.archive_sha256);
    w.u8(static_cast<std::uint8_t>(info.fec.data_symbols));
    w.u8(static_cast<std::uint8_t>(info.fec.parity_symbols));
    w.u16(static_cast<std::uint16_t>(info.fec.symbol_bytes));
    w.u16(static_cast<std::uint16_t>(info.interleave));
    w.u32(info.pass);
    w.u32(info.passes);
    w.short_string(info.channel);
    w.short_string(info.version);
    return w.take();
}

Result<TransferInfo> parse_transfer_info(std::span<const std::byte> payload, const InfoLimits& limits) {
    wire::Reader r(payload);
    if (r.u8() != kInfoVersion) return fail("metadata: unknown version");
    TransferInfo info;
    auto copy = [&](Sha256& out) {
        auto b = r.bytes(32);
        if (b.size() == 32) std::copy(b.begin(), b.end(), out.begin());
    };
    copy(info.bundle_id);
    info.archive_bytes = r.u64();
    copy(info.archive_sha256);
    info.fec.data_symbols = r.u8();
    info.fec.parity_symbols = r.u8();
    info.fec.symbol_bytes = r.u16();
    info.interleave = r.u16();
    info.pass = r.u32();
    info.passes = r.u32();
    info.channel = r.short_string();
    info.version = r.short_string();
    if (!r.ok()) return fail("metadata: truncated");
    if (!r.at_end()) return fail("metadata: trailing bytes");
    if (auto ok = info.validate(limits); !ok) return ok.error().within("metadata");
    return info;
}

std::vector<std::byte> encode_heartbeat(const Heartbeat& hb) {
    wire::Writer w;
    w.u8(kHeartbeatVersion);
    w.u64(hb.sequence);
    w.u32(hb.interval_ms);
    w.u64(hb.rate_bits_per_s);
    w.u64(hb.frames_sent);
    w.u64(hb.bytes_sent);
    w.u64(hb.transfers_sent);
    w.u32(hb.queue_length);
    auto n = std::min(hb.recent.size(), kMaxRecentTransfers);
    w.u8(static_cast<std::uint8_t>(n));
    for (std::size_t i = 0; i < n; ++i) {
        const auto& t = hb.recent[i];
        w.u64(t.transfer);
        w.bytes(t.bundle_id);
        w.u64(t.archive_bytes);
        w.u32(t.passes_done);
        w.u32(t.passes);
    }
    return w.take();
}

Result<Heartbeat> parse_heartbeat(std::span<const std::byte> payload) {
    wire::Reader r(payload);
    if (r.u8() != kHeartbeatVersion) return fail("heartbeat: unknown version");
    Heartbeat hb;
    hb.sequence = r.u64();
    hb.interval_ms = r.u32();
    hb.rate_bits_per_s = r.u64();
    hb.frames_sent = r.u64();
    hb.bytes_sent = r.u64();
    hb.transfers_sent = r.u64();
    hb.queue_length = r.u32();
    std::size_t n = r.u8();
    if (n > kMaxRecentTransfers) return fail("heartbeat: more than 16 recent transfers");
    for (std::size_t i = 0; i < n && r.ok(); ++i) {
        RecentTransfer t;
        t.transfer = r.u64();
        auto b = r.bytes(32);
        if (b.size() == 32) std::copy(b.begin(), b.end(), t.bundle_id.begin());
        t.archive_bytes = r.u64();
        t.passes_done = r.u32();
        t.passes = r.u32();
        hb.recent.push_back(t);
    }
    if (!r.ok()) return fail("heartbeat: truncated");
    if (!r.at_end()) return fail("heartbeat: trailing bytes");
    if (hb.interval_ms == 0 || hb.interval_ms > 3'600'000) return fail("heartbeat: interval out of range");
    return hb;
}

}  // namespace sluice::transfer
