#pragma once
// Small helpers shared by the command implementations.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/core/result.hpp"

namespace sluice::cli {

/// Prints "sluice: error: <message>" to stderr and returns kExitFailed.
int report_error(const Error& error);

/// "2G", "512M", "64K", "1T" (binary multiples) or a plain byte count.
Result<std::uint64_t> parse_size(std::string_view text);

/// "1.9 GiB"
std::string human_bytes(std::uint64_t bytes);

}  // namespace sluice::cli
