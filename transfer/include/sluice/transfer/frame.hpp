#pragma once
// sluice::transfer frame format — one format for both carriers (UDP datagrams
// on the diode, segment files on media). Version 1, big-endian, 40-byte header:
//
//   offset  size  field
//   0       4     magic "SLCE"
//   4       1     version (1)
//   5       1     type: 1 symbol, 2 metadata, 3 heartbeat, 4 annex
//   6       1     flags: bit 0 = MAC present; other bits must be 0
//   7       1     reserved, 0
//   8       8     session id   (sender instance)
//   16      8     transfer id  (one bundle's transfer; 64-bit, never wraps)
//   24      4     block number (32-bit)
//   28      2     symbol index within the block
//   30      2     payload length
//   32      8     XXH3-64 of the whole frame, computed with this field = 0
//   40      n     payload
//   40+n    16    MAC, when flags bit 0: HMAC-SHA256(link key) of bytes [0, 40+n)
//                 (checksum field = 0), first 16 bytes
//
// The checksum turns any corruption into an erasure the FEC can repair; the
// optional MAC (HMAC-SHA256 with the pre-shared link key, first 16 bytes, over
// header-with-zero-checksum and payload) makes injected frames an erasure too.
// parse_frame never throws and checks every length against the datagram.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "sluice/core/result.hpp"

namespace sluice::transfer {

inline constexpr std::array<std::byte, 4> kFrameMagic = {std::byte{'S'}, std::byte{'L'}, std::byte{'C'}, std::byte{'E'}};
inline constexpr std::uint8_t kFrameVersion = 1;
inline constexpr std::size_t kFrameHeaderBytes = 40;
inline constexpr std::size_t kFrameMacBytes = 16;
inline constexpr std::size_t kMaxFramePayload = 65535;
inline constexpr std::size_t kMaxFrameBytes = kFrameHeaderBytes + kMaxFramePayload + kFrameMacBytes;

enum class FrameType : std::uint8_t {
    symbol = 1,     ///< one Reed-Solomon symbol (data or parity) of one block
    metadata = 2,   ///< transfer description, repeated through the transfer
    heartbeat = 3,  ///< sender liveness, counters and recent transfer ids
    annex = 4,      ///< one chunk of the bytes that travel with a transfer (annex.hpp)
};

/// The type's name ("symbol", "metadata", "heartbeat", "annex"; "unknown" otherwise).
[[nodiscard]] std::string_view describe(FrameType type);

struct FrameHeader {
    FrameType type = FrameType::symbol;
    std::uint64_t session = 0;   ///< sender instance; changes when the sender restarts
    std::uint64_t transfer = 0;  ///< one bundle's transfer; never reused
    std::uint32_t block = 0;     ///< block number within the transfer
    std::uint16_t symbol = 0;    ///< symbol index within the block: data 0..K-1, parity K..K+M-1

    bool operator==(const FrameHeader&) const = default;
};

/// Why a datagram was dropped (each one is a counter on the receiver).
enum class FrameError : std::uint8_t {
    none = 0,
    truncated,        ///< shorter than a header, or than the length it claims
    bad_magic,        ///< not a Sluice frame
    bad_version,      ///< a version this build does not speak
    bad_type,         ///< unknown frame type
    bad_flags,        ///< unknown flag bits or non-zero reserved byte
    trailing_bytes,   ///< longer than header + length (+ MAC)
    bad_checksum,     ///< corrupted in transit: an erasure
    missing_mac,      ///< the link requires a MAC and the frame has none
    bad_mac,          ///< wrong key or forged: dropped and counted
    unexpected_mac,   ///< MAC present but this link has no key
};

[[nodiscard]] std::string_view describe(FrameError error);

/// The pre-shared key of one link: frames carry HMAC-SHA256(key)[0..16).
/// Not thread-safe: one instance per thread.
class LinkKey {
public:
    /// At least 16 bytes of secret. Throws std::invalid_argument on a shorter key
    /// (configuration error).
    explicit LinkKey(std::span<const std::byte> secret);
    ~LinkKey();
    LinkKey(LinkKey&&) noexcept;
    LinkKey& operator=(LinkKey&&) noexcept;
    LinkKey(const LinkKey&) = delete;
    LinkKey& operator=(const LinkKey&) = delete;

    [[nodiscard]] std::array<std::byte, kFrameMacBytes> mac(std::span<const std::byte> header,
                                                           std::span<const std::byte> payload);

private:
    struct State;
    std::unique_ptr<State> state_;
};

struct FrameView {
    FrameHeader header;
    std::span<const std::byte> payload;  ///< points into the parsed datagram
};

struct ParsedFrame {
    FrameError error = FrameError::none;
    FrameView frame;  ///< valid only when error == none
};

/// Bytes a frame with `payload_bytes` of payload occupies.
[[nodiscard]] constexpr std::size_t frame_size(std::size_t payload_bytes, bool with_mac) {
    return kFrameHeaderBytes + payload_bytes + (with_mac ? kFrameMacBytes : 0);
}

/// Writes one frame into `out`; returns its size. Fails if the payload is over
/// kMaxFramePayload or `out` is too small.
[[nodiscard]] Result<std::size_t> encode_frame(const FrameHeader& header, std::span<const std::byte> payload,
                                               LinkKey* key, std::span<std::byte> out);

/// Parses one untrusted datagram. With a key, frames without a valid MAC are
/// refused; without one, frames that carry a MAC are refused (a misconfigured
/// pair of daemons shows up as a counter, not as silent acceptance).
[[nodiscard]] ParsedFrame parse_frame(std::span<const std::byte> datagram, LinkKey* key);

}  // namespace sluice::transfer
