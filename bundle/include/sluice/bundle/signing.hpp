#pragma once
// Signer keys (ECDSA P-256) and detached signatures over the exact bytes of
// tagmanifest-sha256.txt: DER-encoded, base64 in signatures/<signer>.sig, so
//   openssl dgst -sha256 -verify signer.pub -signature <(base64 -d signer.sig) tagmanifest-sha256.txt
// prints "Verified OK" (and `cosign verify-blob --key` accepts it).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/result.hpp"

typedef struct evp_pkey_st EVP_PKEY;  // NOLINT: OpenSSL's own spelling

namespace sluice::bundle {

/// An owned EVP_PKEY.
class Key {
public:
    explicit Key(EVP_PKEY* pkey);
    [[nodiscard]] EVP_PKEY* get() const { return pkey_.get(); }
    /// Lowercase hex SHA-256 of the DER SubjectPublicKeyInfo: the key's identity.
    [[nodiscard]] std::string fingerprint() const;

private:
    struct Free { void operator()(EVP_PKEY* p) const; };
    std::unique_ptr<EVP_PKEY, Free> pkey_;
};

/// Writes DIR/NAME.key (PEM PKCS#8, mode 0600) and DIR/NAME.pub (PEM SPKI).
/// Refuses to overwrite either file. Returns the public key's fingerprint.
[[nodiscard]] Result<std::string> generate_key_pair(const std::filesystem::path& dir, std::string_view name);

/// Loads a PEM private key; only ECDSA P-256 is accepted.
[[nodiscard]] Result<Key> load_private_key(const std::filesystem::path& path);
/// Loads a PEM public key; only ECDSA P-256 is accepted.
[[nodiscard]] Result<Key> load_public_key(const std::filesystem::path& path);
[[nodiscard]] Result<Key> parse_public_key_pem(std::string_view pem);
/// The PEM SubjectPublicKeyInfo of a key (private or public): what NAME.pub holds.
[[nodiscard]] Result<std::string> format_public_key_pem(const Key& key);

/// DER ECDSA signature of SHA-256(message).
[[nodiscard]] Result<std::vector<std::uint8_t>> sign_message(const Key& private_key, std::string_view message);
[[nodiscard]] bool verify_message(const Key& public_key, std::string_view message,
                                  std::span<const std::uint8_t> der_signature);

struct TrustedKey {
    std::string name;  ///< file stem in the trust directory
    std::string fingerprint;
    Key key;
};

/// The public keys an operator trusts: every *.pub in a directory.
class TrustStore {
public:
    /// Loads DIR/*.pub; any unreadable or non-P-256 key is an error naming the file.
    [[nodiscard]] static Result<TrustStore> load(const std::filesystem::path& dir);
    void add(TrustedKey key) { keys_.push_back(std::move(key)); }
    [[nodiscard]] const std::vector<TrustedKey>& keys() const { return keys_; }
    /// The trusted key that verifies this signature, or nullptr.
    [[nodiscard]] const TrustedKey* find_signer(std::string_view message,
                                                std::span<const std::uint8_t> der_signature) const;

private:
    std::vector<TrustedKey> keys_;
};

}  // namespace sluice::bundle
