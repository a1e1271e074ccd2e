#include "support/bundle_fixture.hpp"

#include <catch2/catch.hpp>

namespace sluice::test {
namespace fs = std::filesystem;
using namespace sluice::bundle;

Release sample_release() {
    Release r;
    r.channel = "models";
    r.version = "1.4.0";
    r.previous_version = "1.3.2";
    r.changes = "Retrained on the March corpus";
    r.reason = "Eval accuracy +2.1 points";
    r.approved_by = "Release board";
    r.rollback_to = "1.3.2";
    r.created_at = "2026-11-29T14:00:00Z";
    r.created_by = "ci-release";
    return r;
}

BundleFixture::BundleFixture() {
    for (const char* name : {"alice", "bob", "carol", "mallory"}) {
        REQUIRE(generate_key_pair(keys, name).ok());
    }
    fs::create_directories(trust);
    for (const char* name : {"alice", "bob", "carol"}) fs::copy_file(keys / (std::string(name) + ".pub"), trust / (std::string(name) + ".pub"));
    auto loaded = TrustStore::load(trust);
    REQUIRE(loaded.ok());
    store = std::move(*loaded);

    write_file(src / "weights" / "model.safetensors", random_bytes(3 * 1024 * 1024 + 17, 1));
    write_file(src / "weights" / "shard-2.bin", random_bytes(700 * 1024, 2));
    write_file(src / "tokenizer.json", "{\"vocab\": [\"a\", \"b\"]}\n");
    write_file(src / "serving" / "config.toml", "max_batch = 8\n");
    write_file(src / "model card.md", "# Model card\nIntended use: testing.\n");
    write_file(src / "eval" / "report.json", "{\"accuracy\": 0.91}\n");
    write_file(src / "empty.txt", "");

    release = sample_release();
}

CreateOptions BundleFixture::create_options(std::initializer_list<std::string> signers) const {
    CreateOptions options;
    options.source = src;
    options.out = bag;
    options.release = release;
    options.sync = false;
    for (const auto& s : signers) options.signing_keys.push_back(keys / (s + ".key"));
    return options;
}

std::string BundleFixture::create(std::initializer_list<std::string> signers) {
    auto id = create_bag(create_options(signers));
    INFO((id.ok() ? std::string() : id.error().message));
    REQUIRE(id.ok());
    return *id;
}

sluice::Result<VerifyReport> BundleFixture::verify(const fs::path& path, unsigned min_signers) const {
    VerifyOptions options;
    options.trust = &store;
    options.min_signers = min_signers;
    return verify_bundle(path, options);
}

void BundleFixture::expect_refused(const fs::path& path, const std::string& needle, unsigned min_signers) const {
    auto r = verify(path, min_signers);
    REQUIRE_FALSE(r.ok());
    INFO("error: " << r.error().message);
    CHECK(r.error().message.find(needle) != std::string::npos);
}

}  // namespace sluice::test
