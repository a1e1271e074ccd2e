#include "sluice/bundle/signing.hpp"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <algorithm>

#include "file_io.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/bundle/release.hpp"

namespace sluice::bundle {
namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxKeyFileBytes = 64 * 1024;

using Bio = std::unique_ptr<BIO, decltype(&BIO_free)>;
using MdCtx = std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)>;

/// The most recent OpenSSL error as text, clearing the queue.
std::string openssl_error() {
    unsigned long code = ERR_peek_last_error();
    ERR_clear_error();
    if (code == 0) return "unknown OpenSSL error";
    char buf[256];
    ERR_error_string_n(code, buf, sizeof buf);
    return buf;
}

/// Never prompt on a terminal for a passphrase.
int no_passphrase(char*, int, int, void*) { return -1; }

Result<void> require_p256(const Key& key, const fs::path& path) {
    char group[64] = {};
    std::size_t len = 0;
    if (!EVP_PKEY_is_a(key.get(), "EC") ||
        EVP_PKEY_get_utf8_string_param(key.get(), OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &len) != 1 ||
        std::string_view(group, len) != "prime256v1") {
        return fail(path.string() + ": not an ECDSA P-256 key (create one with `sluice keygen`)");
    }
    return {};
}

Result<std::string> bio_contents(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    if (len < 0 || data == nullptr) return fail("OpenSSL: empty output");
    return std::string(data, static_cast<std::size_t>(len));
}

}  // namespace

void Key::Free::operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }

Key::Key(EVP_PKEY* pkey) : pkey_(pkey) {}

std::string Key::fingerprint() const {
    unsigned char* der = nullptr;
    int len = i2d_PUBKEY(pkey_.get(), &der);
    if (len <= 0) return {};
    std::string_view bytes(reinterpret_cast<const char*>(der), static_cast<std::size_t>(len));
    std::string out = to_hex(sha256(bytes));
    OPENSSL_free(der);
    return out;
}

Result<std::string> generate_key_pair(const fs::path& dir, std::string_view name) {
    if (!is_valid_signer_name(name)) {
        return fail("key name '" + std::string(name) + "' is not valid: use 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit");
    }
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return fail(dir.string() + ": cannot create directory: " + ec.message());
    fs::path key_path = dir / (std::string(name) + ".key");
    fs::path pub_path = dir / (std::string(name) + ".pub");
    for (const auto& p : {key_path, pub_path}) {
        if (fs::exists(fs::symlink_status(p, ec))) return fail(p.string() + ": already exists; refusing to overwrite a key");
    }

    EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    if (raw == nullptr) return fail("cannot generate a P-256 key: " + openssl_error());
    Key key(raw);

    Bio priv(BIO_new(BIO_s_mem()), &BIO_free);
    if (!priv || PEM_write_bio_PrivateKey(priv.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
        return fail("cannot encode the key: " + openssl_error());
    }
    auto priv_pem = bio_contents(priv.get());
    auto pub_pem = format_public_key_pem(key);
    if (!priv_pem) return priv_pem.error();
    if (!pub_pem) return pub_pem.error();
    if (auto ok = detail::write_new_file(key_path, *priv_pem, 0600, true); !ok) return ok.error();
    if (auto ok = detail::write_new_file(pub_path, *pub_pem, 0644, true); !ok) {
        fs::remove(key_path, ec);
        return ok.error();
    }
    return key.fingerprint();
}

Result<std::string> format_public_key_pem(const Key& key) {
    Bio pub(BIO_new(BIO_s_mem()), &BIO_free);
    if (!pub || PEM_write_bio_PUBKEY(pub.get(), key.get()) != 1) return fail("cannot encode the key: " + openssl_error());
    return bio_contents(pub.get());
}

Result<Key> load_private_key(const fs::path& path) {
    auto pem = detail::read_small_file(path, kMaxKeyFileBytes, detail::Links::follow);
    if (!pem) return pem.error();
    Bio bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())), &BIO_free);
    EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, &no_passphrase, nullptr) : nullptr;
    if (raw == nullptr) {
        return fail(path.string() + ": not a readable PEM private key (encrypted keys are not supported): " +
                    openssl_error());
    }
    Key key(raw);
    if (auto ok = require_p256(key, path); !ok) return ok.error();
    return key;
}

Result<Key> parse_public_key_pem(std::string_view pem) {
    Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
    EVP_PKEY* raw = bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, &no_passphrase, nullptr) : nullptr;
    if (raw == nullptr) return fail("not a PEM public key: " + openssl_error());
    return Key(raw);
}

Result<Key> load_public_key(const fs::path& path) {
    auto pem = detail::read_small_file(path, kMaxKeyFileBytes, detail::Links::follow);
    if (!pem) return pem.error();
    auto key = parse_public_key_pem(*pem);
    if (!key) return key.error().within(path.string());
    if (auto ok = require_p256(*key, path); !ok) return ok.error();
    return key;
}

Result<std::vector<std::uint8_t>> sign_message(const Key& private_key, std::string_view message) {
    MdCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    std::size_t len = 0;
    if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, private_key.get()) != 1 ||
        EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
        return fail("cannot sign: " + openssl_error());
    }
    std::vector<std::uint8_t> sig(len);
    if (EVP_DigestSign(ctx.get(), sig.data(), &len, reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
        return fail("cannot sign: " + openssl_error());
    }
    sig.resize(len);
    return sig;
}

bool verify_message(const Key& public_key, std::string_view message, std::span<const std::uint8_t> der_signature) {
    MdCtx ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, public_key.get()) == 1 &&
              EVP_DigestVerify(ctx.get(), der_signature.data(), der_signature.size(),
                               reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
    ERR_clear_error();
    return ok;
}

Result<TrustStore> TrustStore::load(const fs::path& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return fail(dir.string() + ": trust directory does not exist");
    std::vector<fs::path> files;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (it->path().extension() == ".pub") files.push_back(it->path());
    }
    if (ec) return fail(dir.string() + ": cannot list: " + ec.message());
    std::sort(files.begin(), files.end());
    TrustStore store;
    for (const auto& file : files) {
        auto key = load_public_key(file);
        if (!key) return key.error();
        std::string fp = key->fingerprint();
        store.add(TrustedKey{file.stem().string(), std::move(fp), std::move(*key)});
    }
    if (store.keys_.empty()) return fail(dir.string() + ": no trusted keys (*.pub) in the trust directory");
    return store;
}

const TrustedKey* TrustStore::find_signer(std::string_view message, std::span<const std::uint8_t> der_signature) const {
    for (const auto& k : keys_) {
        if (verify_message(k.key, message, der_signature)) return &k;
    }
    return nullptr;
}

}  // namespace sluice::bundle
