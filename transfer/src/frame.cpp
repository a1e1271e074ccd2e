#include "sluice/transfer/frame.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack: no allocation per frame
#include <xxhash.h>

#include <cstring>
#include <stdexcept>

#include "wire.hpp"

namespace sluice::transfer {
namespace {

using namespace wire;

constexpr std::uint8_t kFlagMac = 0x01;
constexpr std::size_t kChecksumOffset = 32;

/// XXH3-64 over the frame with the checksum field read as zero.
std::uint64_t frame_checksum(std::span<const std::byte> frame) {
    static constexpr std::byte kZero[8] = {};
    XXH3_state_t state;
    XXH3_INITSTATE(&state);
    XXH3_64bits_reset(&state);
    XXH3_64bits_update(&state, frame.data(), kChecksumOffset);
    XXH3_64bits_update(&state, kZero, sizeof kZero);
    XXH3_64bits_update(&state, frame.data() + kFrameHeaderBytes, frame.size() - kFrameHeaderBytes);
    return XXH3_64bits_digest(&state);
}

bool known_type(std::uint8_t t) { return t >= 1 && t <= 4; }

}  // namespace

std::string_view describe(FrameType type) {
    switch (type) {
        case FrameType::symbol: return "symbol";
        case FrameType::metadata: return "metadata";
        case FrameType::heartbeat: return "heartbeat";
        case FrameType::annex: return "annex";
    }
    return "unknown";
}

std::string_view describe(FrameError error) {
    switch (error) {
        case FrameError::none: return "ok";
        case FrameError::truncated: return "truncated frame";
        case FrameError::bad_magic: return "not a Sluice frame";
        case FrameError::bad_version: return "unsupported frame version";
        case FrameError::bad_type: return "unknown frame type";
        case FrameError::bad_flags: return "unknown flags";
        case FrameError::trailing_bytes: return "bytes after the frame";
        case FrameError::bad_checksum: return "checksum mismatch";
        case FrameError::missing_mac: return "MAC required but missing";
        case FrameError::bad_mac: return "MAC mismatch";
        case FrameError::unexpected_mac: return "MAC present but no link key configured";
    }
    return "unknown";
}

struct LinkKey::State {
    std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac{nullptr, &EVP_MAC_free};
    std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx{nullptr, &EVP_MAC_CTX_free};
};

LinkKey::LinkKey(std::span<const std::byte> secret) : state_(std::make_unique<State>()) {
    if (secret.size() < 16) throw std::invalid_argument("link key: at least 16 bytes of secret are required");
    state_->mac.reset(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
    if (!state_->mac) throw std::runtime_error("OpenSSL: HMAC is not available");
    state_->ctx.reset(EVP_MAC_CTX_new(state_->mac.get()));
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (!state_->ctx ||
        EVP_MAC_init(state_->ctx.get(), reinterpret_cast<const unsigned char*>(secret.data()), secret.size(), params) != 1) {
        throw std::runtime_error("OpenSSL: cannot initialise HMAC-SHA256");
    }
}

LinkKey::~LinkKey() = default;
LinkKey::LinkKey(LinkKey&&) noexcept = default;
LinkKey& LinkKey::operator=(LinkKey&&) noexcept = default;

std::array<std::byte, kFrameMacBytes> LinkKey::mac(std::span<const std::byte> header, std::span<const std::byte> payload) {
    std::array<std::byte, kFrameMacBytes> out{};
    unsigned char full[EVP_MAX_MD_SIZE];
    std::size_t len = 0;
    // Re-initialising with a null key keeps the key and resets the state.
    EVP_MAC_CTX* ctx = state_->ctx.get();
    if (EVP_MAC_init(ctx, nullptr, 0, nullptr) == 1 &&
        EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(header.data()), header.size()) == 1 &&
        EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(payload.data()), payload.size()) == 1 &&
        EVP_MAC_final(ctx, full, &len, sizeof full) == 1 && len >= kFrameMacBytes) {
        std::memcpy(out.data(), full, kFrameMacBytes);
    }
    return out;  // on an OpenSSL failure: zeros, which no honest frame carries as a valid MAC
}

Result<std::size_t> encode_frame(const FrameHeader& header, std::span<const std::byte> payload, LinkKey* key,
                                 std::span<std::byte> out) {
    if (payload.size() > kMaxFramePayload) return fail("frame payload of " + std::to_string(payload.size()) + " bytes is over 65535");
    std::size_t total = frame_size(payload.size(), key != nullptr);
    if (out.size() < total) return fail("frame buffer too small");
    std::byte* p = out.data();
    std::memcpy(p, kFrameMagic.data(), kFrameMagic.size());
    p[4] = std::byte{kFrameVersion};
    p[5] = std::byte{static_cast<std::uint8_t>(header.type)};
    p[6] = std::byte{key != nullptr ? kFlagMac : std::uint8_t{0}};
    p[7] = std::byte{0};
    put_u64(p + 8, header.session);
    put_u64(p + 16, header.transfer);
    put_u32(p + 24, header.block);
    put_u16(p + 28, header.symbol);
    put_u16(p + 30, static_cast<std::uint16_t>(payload.size()));
    put_u64(p + kChecksumOffset, 0);
    if (!payload.empty()) std::memcpy(p + kFrameHeaderBytes, payload.data(), payload.size());
    if (key != nullptr) {
        auto mac = key->mac(std::span<const std::byte>(p, kFrameHeaderBytes), payload);
        std::memcpy(p + kFrameHeaderBytes + payload.size(), mac.data(), mac.size());
    }
    put_u64(p + kChecksumOffset, frame_checksum(std::span<const std::byte>(p, total)));
    return total;
}

ParsedFrame parse_frame(std::span<const std::byte> datagram, LinkKey* key) {
    ParsedFrame out;
    auto bad = [&](FrameError e) {
        out.error = e;
        return out;
    };
    if (datagram.size() < kFrameHeaderBytes) return bad(FrameError::truncated);
    const std::byte* p = datagram.data();
    if (std::memcmp(p, kFrameMagic.data(), kFrameMagic.size()) != 0) return bad(FrameError::bad_magic);
    if (std::to_integer<std::uint8_t>(p[4]) != kFrameVersion) return bad(FrameError::bad_version);
    auto type = std::to_integer<std::uint8_t>(p[5]);
    if (!known_type(type)) return bad(FrameError::bad_type);
    auto flags = std::to_integer<std::uint8_t>(p[6]);
    if ((flags & ~kFlagMac) != 0 || p[7] != std::byte{0}) return bad(FrameError::bad_flags);
    bool has_mac = (flags & kFlagMac) != 0;
    std::size_t length = get_u16(p + 30);
    std::size_t total = frame_size(length, has_mac);
    if (datagram.size() < total) return bad(FrameError::truncated);
    if (datagram.size() > total) return bad(FrameError::trailing_bytes);
    if (get_u64(p + kChecksumOffset) != frame_checksum(datagram)) return bad(FrameError::bad_checksum);
    std::span<const std::byte> payload(p + kFrameHeaderBytes, length);
    if (key != nullptr) {
        if (!has_mac) return bad(FrameError::missing_mac);
        std::byte header[kFrameHeaderBytes];
        std::memcpy(header, p, kFrameHeaderBytes);
        std::memset(header + kChecksumOffset, 0, 8);
        auto want = key->mac(header, payload);
        // Constant-time comparison: timing must not reveal how much of a forgery was right.
        unsigned diff = 0;
        for (std::size_t i = 0; i < kFrameMacBytes; ++i) {
            diff |= std::to_integer<unsigned>(want[i] ^ p[kFrameHeaderBytes + length + i]);
        }
        if (diff != 0) return bad(FrameError::bad_mac);
    } else if (has_mac) {
        return bad(FrameError::unexpected_mac);
    }
    out.frame.header.type = static_cast<FrameType>(type);
    out.frame.header.session = get_u64(p + 8);
    out.frame.header.transfer = get_u64(p + 16);
    out.frame.header.block = get_u32(p + 24);
    out.frame.header.symbol = get_u16(p + 28);
    out.frame.payload = payload;
    return out;
}

}  // namespace sluice::transfer
