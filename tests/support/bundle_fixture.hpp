#pragma once
// A signed sample bag built with the real create_bag, for bundle tests.

#include <filesystem>
#include <string>

#include "sluice/bundle/bundle.hpp"
#include "support/temp_dir.hpp"

namespace sluice::test {

/// A complete, valid release description (channel models, version 1.4.0).
bundle::Release sample_release();

struct BundleFixture {
    TempDir dir;
    std::filesystem::path src = dir / "src";
    std::filesystem::path keys = dir / "keys";
    std::filesystem::path trust = dir / "trust";
    std::filesystem::path bag = dir / "bag";
    bundle::TrustStore store;

    BundleFixture();

    /// The release used by create(); tests may tweak it first.
    bundle::Release release;
    /// CreateOptions for `src` → `bag` with `release`, signed by the named keys, no fsync.
    bundle::CreateOptions create_options(std::initializer_list<std::string> signers = {"alice"}) const;
    /// Creates `bag` from `src` signed by the named keys; returns the bundle id.
    std::string create(std::initializer_list<std::string> signers = {"alice"});
    sluice::Result<bundle::VerifyReport> verify(const std::filesystem::path& path, unsigned min_signers = 1) const;
    /// verify() must fail with a message containing `needle`.
    void expect_refused(const std::filesystem::path& path, const std::string& needle, unsigned min_signers = 1) const;
};

}  // namespace sluice::test
