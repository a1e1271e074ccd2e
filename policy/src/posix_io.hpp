#pragma once
// File descriptors and small reads shared by the policy sources (private).

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/core/result.hpp"
#include "sluice/core/unique_fd.hpp"

namespace sluice::policy::detail {

/// An owned file descriptor.
using Fd = UniqueFd;

/// strerror in the lower case of the rest of a message ("no space left on device").
inline std::string errno_text(int err) {
    std::string text = std::strerror(err);
    if (!text.empty() && text[0] >= 'A' && text[0] <= 'Z') text[0] = static_cast<char>(text[0] - 'A' + 'a');
    return text;
}

/// "PATH: WHAT: errno text"
inline Error io_error(const std::filesystem::path& path, std::string_view what, int err) {
    return fail(path.string() + ": " + std::string(what) + ": " + errno_text(err));
}

/// Reads a regular file of at most `max_bytes` (not following a final symlink).
/// Errors name the path: missing (with `missing_hint`), not a regular file, too large, I/O.
inline Result<std::string> read_regular_file(const std::filesystem::path& path, std::uint64_t max_bytes,
                                             std::string_view missing_hint) {
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
    if (!fd.valid()) {
        if (errno == ENOENT) return fail(path.string() + ": missing" + std::string(missing_hint));
        return io_error(path, "cannot open", errno);
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return io_error(path, "cannot stat", errno);
    if (!S_ISREG(st.st_mode)) return fail(path.string() + ": not a regular file");
    if (static_cast<std::uint64_t>(st.st_size) > max_bytes) {
        return fail(path.string() + ": larger than the " + std::to_string(max_bytes) + "-byte limit");
    }
    std::string text(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < text.size()) {
        ssize_t n = ::read(fd.get(), text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return io_error(path, "read failed", errno);
        if (n == 0) break;
        got += static_cast<std::size_t>(n);
    }
    text.resize(got);
    return text;
}

}  // namespace sluice::policy::detail
