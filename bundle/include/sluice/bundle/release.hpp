#pragma once
// release.json: the tag file that answers the four audit questions — what
// changed, why, who approved upstream, how to roll back — and places the
// bundle in its release train (channel, version, previous version).
// Schema: docs/bundle-format.md.

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sluice/core/result.hpp"

namespace sluice::bundle {

inline constexpr std::string_view kReleaseSchema = "sluice.release/1";

struct Release {
    std::string channel;
    std::string version;
    std::optional<std::string> previous_version;
    std::string changes;      ///< what changed
    std::string reason;       ///< why
    std::string approved_by;  ///< who approved upstream
    std::string rollback_to;  ///< the version to return to if this one misbehaves
    std::string created_at;   ///< RFC 3339, UTC, second precision ("2026-11-29T14:00:00Z")
    std::string created_by;
    nlohmann::json artifacts = nlohmann::json::object();  ///< free-form description of the payload
    /// A signed rollback: this bundle deliberately re-ships a version older than
    /// the channel's newest (receivers refuse older versions otherwise, and still
    /// want an officer's approval for it). Written to release.json only when true.
    bool rollback = false;

    bool operator==(const Release&) const = default;
};

/// Checks every field (names usable as directory names, non-empty answers,
/// RFC 3339 time). The error names the field.
[[nodiscard]] Result<void> validate_release(const Release& release);

/// Canonical bytes: sorted keys, two-space indent, trailing newline.
[[nodiscard]] std::string format_release(const Release& release);

/// Parses untrusted bytes (size, nesting and types checked); never throws.
[[nodiscard]] Result<Release> parse_release(std::string_view bytes);

/// Channel names: 1–64 of [a-z0-9._-], starting with a letter or digit.
[[nodiscard]] bool is_valid_channel(std::string_view channel);
/// Versions: 1–64 of [A-Za-z0-9._+-], starting with a letter or digit.
[[nodiscard]] bool is_valid_version(std::string_view version);
/// Signer names (signature file stems): 1–64 of [A-Za-z0-9._-], no leading dot.
[[nodiscard]] bool is_valid_signer_name(std::string_view name);

/// Seconds since the epoch → "YYYY-MM-DDTHH:MM:SSZ".
[[nodiscard]] std::string format_rfc3339(long long epoch_seconds);
/// Accepts "YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)"; returns epoch seconds.
[[nodiscard]] Result<long long> parse_rfc3339(std::string_view text);

}  // namespace sluice::bundle
