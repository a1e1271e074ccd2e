#pragma once
// The verification core shared by bag directories and archives. Sans-IO: it
// is fed tag-file bytes and payload digests by whoever reads them (a
// directory walk with parallel hashing, or one pass over a tar stream).
//
//   add_tag_file()* ─► check_tags(trust) ─► on_payload()* ─► finish()
//                      structure, tag          listed? digest?     nothing missing,
//                      fixity, signatures,     duplicate?          Payload-Oxum
//                      release.json, bag-info

#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "file_io.hpp"
#include "sluice/bundle/bundle.hpp"

namespace sluice::bundle::detail {

/// True for names that belong in the tag area of a bag: top-level files and signatures/<x>.
bool is_tag_path(std::string_view path);
/// True for "signatures/…".
bool is_signature_path(std::string_view path);

class BagCheck {
public:
    explicit BagCheck(const Limits& limits) : limits_(limits) {}

    /// A file outside data/: "bagit.txt", "signatures/alice.sig", …
    Result<void> add_tag_file(const std::string& path, std::string bytes);
    [[nodiscard]] bool has_tag_file(const std::string& path) const { return tags_.count(path) != 0; }

    /// Everything that can be decided from the tag files alone. With a trust
    /// store, every signature must verify with a trusted key and at least
    /// min_signers distinct keys must have signed.
    Result<void> check_tags(const TrustStore* trust, unsigned min_signers);

    /// For a directory: the complete payload listing (sorted paths and sizes),
    /// checked for extra and missing files and against Payload-Oxum before any
    /// byte is hashed.
    Result<void> check_listing(const std::vector<std::pair<std::string, std::uint64_t>>& files);

    /// Before hashing an archive entry: refuses an unlisted or repeated path and
    /// one that would take the payload past Payload-Oxum, without reading it.
    Result<void> expect_payload(const std::string& path, std::uint64_t size);

    /// One payload file's digest. Extra, duplicate and altered files are refused.
    Result<void> on_payload(const std::string& path, const FileDigest& digest);

    /// Nothing missing, Payload-Oxum right; the report.
    Result<VerifyReport> finish();

    [[nodiscard]] const std::string& bundle_id() const { return report_.bundle_id; }
    [[nodiscard]] const std::vector<ManifestEntry>& manifest() const { return manifest_; }
    [[nodiscard]] const std::map<std::string, std::string>& tag_files() const { return tags_; }
    [[nodiscard]] const VerifyReport& report() const { return report_; }
    /// Expected digest of a payload path, or nullptr when it is not listed.
    [[nodiscard]] const Sha256Digest* expected(const std::string& path) const;

private:
    Result<void> check_signatures(const TrustStore* trust, unsigned min_signers);
    Result<void> check_oxum(std::uint64_t bytes, std::uint64_t files) const;

    Limits limits_;
    std::map<std::string, std::string> tags_;  // sorted: errors come out in a stable order
    std::uint64_t tag_bytes_ = 0;
    std::vector<ManifestEntry> manifest_;
    std::unordered_map<std::string, std::size_t> index_;
    std::vector<bool> seen_;
    PayloadOxum oxum_;
    std::uint64_t expected_bytes_ = 0;  // announced so far by expect_payload
    std::uint64_t expected_files_ = 0;
    VerifyReport report_;
    bool tags_checked_ = false;
};

}  // namespace sluice::bundle::detail
