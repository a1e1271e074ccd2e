#pragma once
// SHA-256 fixity: streaming hasher, hex encoding, base64 for signature files.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::bundle {

using Sha256Digest = std::array<std::uint8_t, 32>;

/// Incremental SHA-256 (OpenSSL EVP, so SHA-NI/AVX where the CPU has them).
class Sha256 {
public:
    Sha256();
    ~Sha256();
    Sha256(Sha256&&) noexcept;
    Sha256& operator=(Sha256&&) noexcept;
    Sha256(const Sha256&) = delete;
    Sha256& operator=(const Sha256&) = delete;

    void update(std::span<const std::byte> bytes);
    void update(std::string_view bytes);
    /// The digest; the hasher is reset and may be reused.
    [[nodiscard]] Sha256Digest finish();

private:
    struct Ctx;
    std::unique_ptr<Ctx> ctx_;
};

[[nodiscard]] Sha256Digest sha256(std::string_view bytes);

/// Lowercase hex.
[[nodiscard]] std::string to_hex(std::span<const std::uint8_t> bytes);
/// Parses 64 hex digits (either case); nullopt for anything else.
[[nodiscard]] std::optional<Sha256Digest> sha256_from_hex(std::string_view hex);

/// Standard base64 with padding, no line breaks.
[[nodiscard]] std::string base64_encode(std::span<const std::uint8_t> bytes);
/// Strict standard base64; ASCII white space anywhere is ignored (wrapped
/// output of `base64`). nullopt on any other character or bad padding.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> base64_decode(std::string_view text);

}  // namespace sluice::bundle
