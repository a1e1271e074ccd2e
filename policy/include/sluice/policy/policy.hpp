#pragma once
// The import policy: what a receiver accepts from each channel, and how.
//
//   policy.toml ──(daemon::load_policy: FILE:LINE: KEY errors)──► Policy
//     [scanners.<name>]   exec or clamd, timeout, attempts, on_error
//     [channels.<name>]   signers, limits, content types, forbidden paths,
//                         required answers, scanners, approval, releases kept,
//                         [[channels.<name>.post_release]] hooks
//
// A bundle whose channel has no [channels.<name>] table is rejected. The types
// here are plain data; rules.hpp evaluates them, importer.hpp acts on them.

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/bundle/signing.hpp"
#include "sluice/policy/scanner.hpp"

namespace sluice::policy {

enum class ApprovalMode {
    automatic,   ///< "auto": released when every rule and scanner passes
    manual,      ///< "manual": one officer approves
    two_person,  ///< "two-person": `approvers` distinct officers approve
};
[[nodiscard]] std::string_view to_string(ApprovalMode mode);  // "auto", "manual", "two-person"

/// A command run after a release, e.g. `skopeo copy` into a local registry.
/// Placeholders: {path} (the released version directory), {channel}, {version}, {bundle}.
struct PostReleaseHook {
    std::string name;                          ///< for the record: the command's file name unless given
    std::vector<std::string> command;          ///< argv; argv[0] absolute
    std::chrono::milliseconds timeout{600000};
};

struct ChannelPolicy {
    std::string name;
    std::vector<std::filesystem::path> trusted_keys;  ///< public keys whose signatures count
    std::shared_ptr<const bundle::TrustStore> trust;  ///< loaded from trusted_keys
    unsigned min_signers = 1;                         ///< distinct trusted signers required
    std::optional<std::uint64_t> max_bundle_bytes;    ///< payload bytes
    std::optional<std::uint64_t> max_files;           ///< payload files
    std::optional<std::uint64_t> max_file_bytes;      ///< one payload file
    /// MIME types by content (libmagic), exact ("application/json") or a family
    /// ("text/*"). Empty: any type.
    std::vector<std::string> allowed_types;
    /// Glob patterns (fnmatch) over bag paths ("data/bin/x.exe"); `*` also crosses '/'; case-insensitive.
    std::vector<std::string> forbidden_paths;
    /// release.json answers that must be non-empty (beyond whitespace).
    std::vector<std::string> required_answers{"changes", "reason", "approved_by", "rollback_to"};
    std::vector<std::string> scanners;  ///< names of [scanners.*], run in this order
    ApprovalMode approval = ApprovalMode::manual;
    unsigned approvers = 1;       ///< distinct officers (two-person: >= 2)
    unsigned keep_releases = 5;   ///< versions kept on disk for rollback (>= 2)
    std::vector<PostReleaseHook> post_release;
};

struct Policy {
    std::filesystem::path file;  ///< where it was read from
    std::map<std::string, ScannerSpec, std::less<>> scanners;
    std::map<std::string, ChannelPolicy, std::less<>> channels;

    [[nodiscard]] const ChannelPolicy* channel(std::string_view name) const {
        auto it = channels.find(name);
        return it == channels.end() ? nullptr : &it->second;
    }
};

/// The answers release.json can be required to give.
inline constexpr std::string_view kReleaseAnswers[] = {"changes", "reason", "approved_by", "rollback_to"};

}  // namespace sluice::policy
