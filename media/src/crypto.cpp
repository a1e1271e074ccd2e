#include "crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include <cstring>
#include <stdexcept>
#include <string_view>

namespace sluice::media::detail {
namespace {

void put32(std::byte* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = std::byte(v >> (24 - 8 * i));
}
void put16(std::byte* p, std::uint16_t v) {
    p[0] = std::byte(v >> 8);
    p[1] = std::byte(v & 0xFF);
}

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

}  // namespace

Nonce record_nonce(unsigned volume, unsigned set, unsigned stripe, std::uint64_t record) {
    Nonce n{};
    put32(n.data(), volume);
    put16(n.data() + 4, static_cast<std::uint16_t>(set));
    put16(n.data() + 6, static_cast<std::uint16_t>(stripe));
    put32(n.data() + 8, static_cast<std::uint32_t>(record));
    return n;
}

Nonce index_nonce(unsigned volume) {
    Nonce n{};
    put32(n.data(), volume);
    std::memset(n.data() + 4, 0xFF, 8);
    return n;
}

Sha256 hmac_sha256(std::span<const std::byte> key, std::initializer_list<std::span<const std::byte>> parts) {
    std::unique_ptr<EVP_MAC, decltype(&EVP_MAC_free)> mac{EVP_MAC_fetch(nullptr, "HMAC", nullptr), &EVP_MAC_free};
    if (!mac) throw std::runtime_error("OpenSSL has no HMAC");
    std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> ctx{EVP_MAC_CTX_new(mac.get()), &EVP_MAC_CTX_free};
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0), OSSL_PARAM_construct_end()};
    if (!ctx || EVP_MAC_init(ctx.get(), reinterpret_cast<const unsigned char*>(key.data()), key.size(), params) != 1) {
        throw std::runtime_error("HMAC-SHA256 init failed");
    }
    for (const auto& part : parts) {
        EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(part.data()), part.size());
    }
    Sha256 out{};
    std::size_t len = 0;
    EVP_MAC_final(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, out.size());
    return out;
}

struct Cipher::Ctx {
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> enc{EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free};
    std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)> dec{EVP_CIPHER_CTX_new(), &EVP_CIPHER_CTX_free};
};

Cipher::Cipher(const MediaKey& key, const Sha256& set_id) : ctx_(std::make_unique<Ctx>()) {
    std::unique_ptr<EVP_PKEY_CTX, decltype(&EVP_PKEY_CTX_free)> kdf{EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, nullptr),
                                                                  &EVP_PKEY_CTX_free};
    static constexpr std::string_view kInfo = "sluice.media/1 aes-256-gcm";
    std::size_t len = subkey_.size();
    if (!kdf || EVP_PKEY_derive_init(kdf.get()) != 1 || EVP_PKEY_CTX_set_hkdf_md(kdf.get(), EVP_sha256()) != 1 ||
        EVP_PKEY_CTX_set1_hkdf_salt(kdf.get(), reinterpret_cast<const unsigned char*>(set_id.data()),
                                    static_cast<int>(set_id.size())) != 1 ||
        EVP_PKEY_CTX_set1_hkdf_key(kdf.get(), reinterpret_cast<const unsigned char*>(key.secret.data()),
                                   static_cast<int>(key.secret.size())) != 1 ||
        EVP_PKEY_CTX_add1_hkdf_info(kdf.get(), reinterpret_cast<const unsigned char*>(kInfo.data()),
                                    static_cast<int>(kInfo.size())) != 1 ||
        EVP_PKEY_derive(kdf.get(), reinterpret_cast<unsigned char*>(subkey_.data()), &len) != 1) {
        throw std::runtime_error("HKDF-SHA256 failed");
    }
    auto check = hmac_sha256(subkey_, {bytes_of("sluice.media/1 key check")});
    std::memcpy(check_.data(), check.data(), check_.size());
    auto* k = reinterpret_cast<const unsigned char*>(subkey_.data());
    if (!ctx_->enc || !ctx_->dec || EVP_EncryptInit_ex(ctx_->enc.get(), EVP_aes_256_gcm(), nullptr, k, nullptr) != 1 ||
        EVP_DecryptInit_ex(ctx_->dec.get(), EVP_aes_256_gcm(), nullptr, k, nullptr) != 1) {
        throw std::runtime_error("AES-256-GCM init failed");
    }
}

Cipher::~Cipher() { OPENSSL_cleanse(subkey_.data(), subkey_.size()); }

void Cipher::seal(const Nonce& nonce, std::span<std::byte> data, std::span<std::byte, kTagBytes> tag) {
    auto* c = ctx_->enc.get();
    int out = 0;
    auto* p = reinterpret_cast<unsigned char*>(data.data());
    if (EVP_EncryptInit_ex(c, nullptr, nullptr, nullptr, reinterpret_cast<const unsigned char*>(nonce.data())) != 1 ||
        EVP_EncryptUpdate(c, p, &out, p, static_cast<int>(data.size())) != 1 ||
        EVP_EncryptFinal_ex(c, p + out, &out) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kTagBytes), tag.data()) != 1) {
        throw std::runtime_error("AES-256-GCM encryption failed");
    }
}

bool Cipher::open(const Nonce& nonce, std::span<std::byte> data, std::span<const std::byte, kTagBytes> tag) {
    auto* c = ctx_->dec.get();
    int out = 0;
    auto* p = reinterpret_cast<unsigned char*>(data.data());
    std::array<std::byte, kTagBytes> t{};
    std::memcpy(t.data(), tag.data(), kTagBytes);
    if (EVP_DecryptInit_ex(c, nullptr, nullptr, nullptr, reinterpret_cast<const unsigned char*>(nonce.data())) != 1 ||
        EVP_DecryptUpdate(c, p, &out, p, static_cast<int>(data.size())) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, static_cast<int>(kTagBytes), t.data()) != 1) {
        return false;
    }
    return EVP_DecryptFinal_ex(c, p + out, &out) == 1;
}

}  // namespace sluice::media::detail
