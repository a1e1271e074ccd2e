#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "sluice/bundle/digest.hpp"
#include "sluice/bundle/signing.hpp"
#include "support/temp_dir.hpp"

using namespace sluice::bundle;
using sluice::test::TempDir;

TEST_CASE("keygen writes a 0600 PKCS#8 key and an SPKI public key", "[bundle][signing]") {
    TempDir dir;
    auto fp = generate_key_pair(dir.path(), "alice");
    REQUIRE(fp.ok());
    CHECK(fp->size() == 64);
    struct stat st {};
    REQUIRE(::stat((dir / "alice.key").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    std::string pem = sluice::test::read_file(dir / "alice.key");
    CHECK(pem.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);
    CHECK(sluice::test::read_file(dir / "alice.pub").rfind("-----BEGIN PUBLIC KEY-----", 0) == 0);

    auto again = generate_key_pair(dir.path(), "alice");
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().message.find("refusing to overwrite") != std::string::npos);
    CHECK(sluice::test::read_file(dir / "alice.key") == pem);
    CHECK_FALSE(generate_key_pair(dir.path(), "../evil").ok());
}

TEST_CASE("signatures verify with the matching public key only", "[bundle][signing]") {
    TempDir dir;
    REQUIRE(generate_key_pair(dir.path(), "alice").ok());
    REQUIRE(generate_key_pair(dir.path(), "bob").ok());
    auto alice = load_private_key(dir / "alice.key");
    auto alice_pub = load_public_key(dir / "alice.pub");
    auto bob_pub = load_public_key(dir / "bob.pub");
    REQUIRE(alice.ok());
    REQUIRE(alice_pub.ok());
    REQUIRE(bob_pub.ok());
    CHECK(alice->fingerprint() == alice_pub->fingerprint());
    CHECK(alice_pub->fingerprint() != bob_pub->fingerprint());

    auto sig = sign_message(*alice, "tag manifest bytes");
    REQUIRE(sig.ok());
    CHECK(verify_message(*alice_pub, "tag manifest bytes", *sig));
    CHECK_FALSE(verify_message(*alice_pub, "tag manifest byteS", *sig));
    CHECK_FALSE(verify_message(*bob_pub, "tag manifest bytes", *sig));
    auto flipped = *sig;
    flipped[flipped.size() / 2] ^= 0x01;
    CHECK_FALSE(verify_message(*alice_pub, "tag manifest bytes", flipped));
    CHECK_FALSE(verify_message(*alice_pub, "tag manifest bytes", std::vector<std::uint8_t>{}));
}

TEST_CASE("trust store loads *.pub and identifies signers", "[bundle][signing]") {
    TempDir keys;
    TempDir trust;
    REQUIRE(generate_key_pair(keys.path(), "alice").ok());
    REQUIRE(generate_key_pair(keys.path(), "mallory").ok());
    std::filesystem::copy_file(keys / "alice.pub", trust / "alice.pub");
    sluice::test::write_file(trust / "README", "not a key, ignored");
    auto store = TrustStore::load(trust.path());
    REQUIRE(store.ok());
    REQUIRE(store->keys().size() == 1);
    CHECK(store->keys()[0].name == "alice");

    auto alice = load_private_key(keys / "alice.key");
    auto mallory = load_private_key(keys / "mallory.key");
    auto good = sign_message(*alice, "m");
    auto bad = sign_message(*mallory, "m");
    const TrustedKey* k = store->find_signer("m", *good);
    REQUIRE(k != nullptr);
    CHECK(k->name == "alice");
    CHECK(store->find_signer("m", *bad) == nullptr);

    sluice::test::write_file(trust / "broken.pub", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n");
    auto broken = TrustStore::load(trust.path());
    REQUIRE_FALSE(broken.ok());
    CHECK(broken.error().message.find("broken.pub") != std::string::npos);

    TempDir empty;
    REQUIRE_FALSE(TrustStore::load(empty.path()).ok());
    REQUIRE_FALSE(TrustStore::load(empty / "missing").ok());
}

TEST_CASE("only ECDSA P-256 keys are accepted", "[bundle][signing]") {
    TempDir dir;
    // A P-384 key made by openssl itself must be refused with a clear message.
    std::string key = (dir / "p384.key").string();
    REQUIRE(std::system(("openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out " + key +
                         " 2>/dev/null").c_str()) == 0);
    auto loaded = load_private_key(key);
    REQUIRE_FALSE(loaded.ok());
    CHECK(loaded.error().message.find("not an ECDSA P-256 key") != std::string::npos);
    sluice::test::write_file(dir / "garbage.key", "hello");
    REQUIRE_FALSE(load_private_key(dir / "garbage.key").ok());
}
