#pragma once
// AES-256-GCM and the key schedule of encrypted media (file-private to media/).
//
//   subkey    = HKDF-SHA256(ikm = key file bytes, salt = set id, info = "sluice.media/1 aes-256-gcm")
//   key check = HMAC-SHA256(subkey, "sluice.media/1 key check")[0..16)   (in the clear in every index)
//   nonce     = volume u32 ‖ set u16 ‖ stripe u16 ‖ record u32   (records)
//               volume u32 ‖ 0xFFFF ‖ 0xFFFF ‖ 0xFFFFFFFF           (the index)
//
// Records and indexes are deterministic functions of the bundle and the layout,
// so the same (key, nonce) never protects two different plaintexts.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "sluice/media/media.hpp"

namespace sluice::media::detail {

using Nonce = std::array<std::byte, 12>;
using KeyCheck = std::array<std::byte, 16>;

[[nodiscard]] Nonce record_nonce(unsigned volume, unsigned set, unsigned stripe, std::uint64_t record);
[[nodiscard]] Nonce index_nonce(unsigned volume);

/// HMAC-SHA256 of `parts` concatenated.
[[nodiscard]] Sha256 hmac_sha256(std::span<const std::byte> key, std::initializer_list<std::span<const std::byte>> parts);

/// One write's cipher: the subkey for a set id. Not thread-safe.
class Cipher {
public:
    Cipher(const MediaKey& key, const Sha256& set_id);
    ~Cipher();
    Cipher(const Cipher&) = delete;
    Cipher& operator=(const Cipher&) = delete;

    [[nodiscard]] const KeyCheck& key_check() const { return check_; }
    /// Encrypts `data` in place and writes the tag.
    void seal(const Nonce& nonce, std::span<std::byte> data, std::span<std::byte, kTagBytes> tag);
    /// Decrypts in place; false when the tag does not match (wrong key, damage or forgery).
    [[nodiscard]] bool open(const Nonce& nonce, std::span<std::byte> data, std::span<const std::byte, kTagBytes> tag);

private:
    struct Ctx;
    std::array<std::byte, 32> subkey_{};
    KeyCheck check_{};
    std::unique_ptr<Ctx> ctx_;
};

}  // namespace sluice::media::detail
