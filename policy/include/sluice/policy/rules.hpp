#pragma once
// The import rules, evaluated on facts gathered from a quarantined bag:
//
//   quarantine/<id>/ ──gather_facts──► BundleFacts (release.json, trusted signers for
//                                       the channel, every payload file's size and
//                                       content type by libmagic)
//   BundleFacts + ChannelPolicy + ChannelHistory ──evaluate_rules──► [RuleResult]
//
// evaluate_rules is pure: the same facts give the same decisions, which is what
// `sluice policy explain` shows before anything is sent.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "sluice/bundle/release.hpp"
#include "sluice/core/result.hpp"
#include "sluice/policy/policy.hpp"

namespace sluice::policy {

struct FileFact {
    std::string path;  ///< bag-relative, "data/model.bin"
    std::uint64_t size = 0;
    std::string type;  ///< MIME type by content, "application/octet-stream"; "inode/x-empty" for an empty file
};

struct BundleFacts {
    std::string bundle_id;
    bundle::Release release;
    std::vector<std::string> signers;  ///< names of the channel's trusted keys that signed, distinct
    std::string signature_error;       ///< why signatures fell short, if they did
    std::uint64_t payload_bytes = 0;
    std::vector<FileFact> files;       ///< payload files, sorted by path
    /// Entries outside data/ that are not one of the bag's own tag files
    /// (bagit.txt, bag-info.txt, release.json, the two manifests, signatures/*.sig):
    /// BagIt allows extra tag files, but they would bypass the file rules.
    std::vector<std::string> extra_entries;
};

/// What the receiver already did on the channel, for version monotonicity.
struct ChannelHistory {
    std::optional<std::string> highest_released;  ///< highest version ever released
    std::optional<std::string> current;           ///< what `current` points at
    std::vector<std::string> released;            ///< every version released, in order
    std::vector<std::string> kept;                ///< versions still on disk (rollback targets)
};

/// The release directory is a floor too: raises highest_released to the newest
/// of `kept` (sorted oldest first), so a lost channel history cannot let an older
/// version pass as a first release.
void apply_kept_floor(ChannelHistory& history);

struct RuleResult {
    std::string rule;    ///< stable name: signers, bag_layout, max_bundle_bytes, max_files, max_file_bytes,
                         ///< file_types, forbidden_paths, required_answers, version
    bool passed = false;
    std::string detail;  ///< why, in words: "2 distinct trusted signers (alice, bob); 2 required"
};

/// Reads the quarantined bag at `bag_dir`: verifies it (fixity and the channel's
/// signers) and types every payload file. A verification failure of any kind is
/// a fact (`signature_error`, which fails the signers rule, naming what is wrong),
/// not an error. Error: release.json unreadable, I/O while typing files.
[[nodiscard]] Result<BundleFacts> gather_facts(const std::filesystem::path& bag_dir, const ChannelPolicy& channel);

/// Every rule of the channel on these facts, in a fixed order.
[[nodiscard]] std::vector<RuleResult> evaluate_rules(const ChannelPolicy& channel, const BundleFacts& facts,
                                                     const ChannelHistory& history);

/// True when every result passed.
[[nodiscard]] bool all_passed(const std::vector<RuleResult>& results);

/// The MIME type of a file by content (libmagic, MAGIC_MIME_TYPE). Error: libmagic failed.
[[nodiscard]] Result<std::string> content_type(const std::filesystem::path& file);

/// Whether `type` matches `pattern` ("text/plain", "text/*", "*/*").
[[nodiscard]] bool type_matches(std::string_view pattern, std::string_view type);

}  // namespace sluice::policy
