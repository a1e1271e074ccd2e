#pragma once
// Release-train version order. Versions are 1–64 of [A-Za-z0-9._+-]
// (bundle::is_valid_version). Compared piece by piece like Debian and semver
// agree on for release trains:
//   split at '.', '-', '_' ; build metadata after '+' ignored for order
//   numeric pieces compare as numbers ("1.10" > "1.9"), leading zeros ignored
//   alphanumeric pieces compare as text; a numeric piece > a text piece
//   a version with a pre-release part ("1.2.0-rc1") < the same without ("1.2.0")
//   missing trailing pieces count as 0 ("1.2" == "1.2.0")

#include <string_view>

namespace sluice::policy {

/// <0, 0, >0 like strcmp.
[[nodiscard]] int compare_versions(std::string_view a, std::string_view b);

}  // namespace sluice::policy
