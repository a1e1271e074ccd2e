#pragma once
// sluice::bundle — signed BagIt bundles and their canonical archive.
//
//   SRC dir ──create──► BAGDIR/                       (BagIt 1.0, RFC 8493)
//                         bagit.txt
//                         bag-info.txt                Payload-Oxum, channel, agent
//                         release.json                the four audit answers
//                         manifest-sha256.txt         every file under data/
//                         tagmanifest-sha256.txt ◄─── bundle id = SHA-256 of these bytes
//                         signatures/<signer>.sig ──► ECDSA P-256 over tagmanifest bytes
//                         data/…                      the payload
//
//   BAGDIR ──pack──► FILE.tar   one pax tar: tag files, signatures, then payload
//                               in byte order; uid/gid 0, fixed mtime, modes
//                               0644 — the same bag always gives the same bytes
//   FILE.tar ──unpack──► DIR    hostile-input extraction (regular files and
//                               directories only, limits), all or nothing
//   BAGDIR | FILE.tar ──verify──► report | error naming the file or signature
//
// Every operation streams file contents through a fixed buffer, so memory does
// not grow with file sizes (it grows with the number of files: the manifest is
// held in memory). Outputs are written beside their final name and
// renamed into place: no partial bag, archive or extraction is ever visible.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sluice/bundle/digest.hpp"
#include "sluice/bundle/manifest.hpp"
#include "sluice/bundle/release.hpp"
#include "sluice/bundle/signing.hpp"
#include "sluice/core/result.hpp"

namespace sluice::bundle {

inline constexpr std::string_view kBagitTxt = "bagit.txt";
inline constexpr std::string_view kBagInfoTxt = "bag-info.txt";
inline constexpr std::string_view kManifest = "manifest-sha256.txt";
inline constexpr std::string_view kTagManifest = "tagmanifest-sha256.txt";
inline constexpr std::string_view kReleaseJson = "release.json";
inline constexpr std::string_view kSignaturesDir = "signatures";
inline constexpr std::string_view kPayloadDir = "data";

/// Bounds applied to untrusted bags and archives.
struct Limits {
    std::uint64_t max_entries = 1'000'000;              ///< files and directories (implied ones too) in an archive
    std::uint64_t max_total_bytes = 4ULL << 40;         ///< payload bytes, 4 TiB
    std::uint64_t max_file_bytes = 1ULL << 40;          ///< one file, 1 TiB
    std::size_t max_path_bytes = kMaxPathBytes;         ///< one path (1024 bytes)
    std::size_t max_tag_file_bytes = 256ULL << 20;      ///< one tag file (manifests of ~1 M files fit)
    std::size_t max_signatures = 64;
};

/// Worker threads for hashing; 0 means one per CPU (at most 8).
struct Parallelism {
    unsigned threads = 0;
};

struct CreateOptions {
    std::filesystem::path source;  ///< SRC/a/b becomes data/a/b
    std::filesystem::path out;     ///< must not exist yet
    Release release;
    std::vector<std::filesystem::path> signing_keys;  ///< signer name = key file stem
    Parallelism parallelism;
    bool sync = true;  ///< fsync files and directories before the final rename
};

/// Builds, hashes (one pass: copy and hash together) and signs a bag.
/// Returns the bundle id. On any failure nothing is left at `out`.
[[nodiscard]] Result<std::string> create_bag(const CreateOptions& options);

/// Checks the bag's fixity, then adds signatures/<signer>.sig. The signer
/// name defaults to the key file's stem; an existing signature file is an error.
/// Returns the signer name used.
[[nodiscard]] Result<std::string> sign_bag(const std::filesystem::path& bag_dir,
                                           const std::filesystem::path& key_path,
                                           std::optional<std::string> signer_name = std::nullopt,
                                           Parallelism parallelism = {});

struct SignatureCheck {
    std::string file;         ///< "signatures/alice.sig"
    std::string trusted_key;  ///< name of the trusted key that verified it
    std::string fingerprint;
};

struct VerifyReport {
    std::string bundle_id;
    Release release;
    BagInfo bag_info;
    std::uint64_t payload_files = 0;
    std::uint64_t payload_bytes = 0;
    std::vector<SignatureCheck> signatures;
    std::vector<std::string> distinct_signers;  ///< fingerprints, each once
};

struct VerifyOptions {
    const TrustStore* trust = nullptr;  ///< nullptr: fixity only, signatures not checked
    unsigned min_signers = 1;           ///< distinct trusted keys required (with trust)
    Limits limits;
    Parallelism parallelism;
};

/// Verifies a bag directory or a packed archive (decided by what `path` is):
/// structure, tag and payload fixity, completeness (nothing missing, nothing
/// extra), Payload-Oxum, release.json, and — with a trust store — every
/// signature and the number of distinct trusted signers.
[[nodiscard]] Result<VerifyReport> verify_bundle(const std::filesystem::path& path, const VerifyOptions& options);
[[nodiscard]] Result<VerifyReport> verify_bag_dir(const std::filesystem::path& bag_dir, const VerifyOptions& options);
/// Streams the archive once; nothing is written to disk.
[[nodiscard]] Result<VerifyReport> verify_archive(const std::filesystem::path& archive, const VerifyOptions& options);

/// Writes the canonical archive of a bag, checking every payload file against
/// the manifest as it streams (a bag that fails fixity is not packed).
/// Returns the bundle id.
[[nodiscard]] Result<std::string> pack_bag(const std::filesystem::path& bag_dir, const std::filesystem::path& out_file,
                                           const Limits& limits = {}, bool sync = true);

struct UnpackReport {
    std::uint64_t files = 0;
    std::uint64_t bytes = 0;
};

/// Extracts an untrusted tar into `out_dir` (which must not exist): regular
/// files and directories only, nothing outside, no duplicates, within limits.
/// All or nothing: on any refusal no trace is left and the error names the entry.
[[nodiscard]] Result<UnpackReport> unpack_archive(const std::filesystem::path& archive,
                                                  const std::filesystem::path& out_dir, const Limits& limits = {},
                                                  bool sync = true);

/// What a bundle says about itself, read without checking payload fixity.
struct BundleSummary {
    std::string bundle_id;
    std::optional<Release> release;  ///< absent when release.json is missing or invalid
    std::string release_error;
    BagInfo bag_info;
    std::uint64_t manifest_files = 0;
    std::vector<std::string> signature_files;
};
[[nodiscard]] Result<BundleSummary> inspect_bundle(const std::filesystem::path& path, const Limits& limits = {});

}  // namespace sluice::bundle
