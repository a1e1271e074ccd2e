#pragma once
// A fresh directory under $TMPDIR for one test, removed afterwards.

#include <filesystem>
#include <string>
#include <string_view>

namespace sluice::test {

class TempDir {
public:
    TempDir();
    ~TempDir();
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    [[nodiscard]] std::filesystem::path operator/(std::string_view rel) const { return path_ / rel; }

private:
    std::filesystem::path path_;
};

/// Writes `bytes` to `path`, creating parent directories.
void write_file(const std::filesystem::path& path, std::string_view bytes);
/// The whole file as a string.
std::string read_file(const std::filesystem::path& path);
/// Deterministic pseudo-random bytes.
std::string random_bytes(std::size_t n, unsigned seed);

}  // namespace sluice::test
