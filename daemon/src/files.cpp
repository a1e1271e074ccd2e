#include "files.hpp"

#include "sluice/daemon/log.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <chrono>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace fs = std::filesystem;

namespace sluice::daemon::files {
namespace {

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

Result<void> write_all(int fd, const char* p, std::size_t n, const fs::path& path) {
    while (n > 0) {
        ssize_t w = ::write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return fail("writing " + path.string() + ": " + errno_text(errno));
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return {};
}

/// Reads `from` in 1 MiB pieces, hashing, and writes them to `out_fd` when >= 0.
Result<Copied> stream(const fs::path& from, int out_fd, const fs::path& to) {
    int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (in < 0) {
        int err = errno;
        return fail("cannot read " + from.string() + ": " + errno_text(err) +
                    (err == EACCES ? " (the daemon's service user must be able to read it)" : ""));
    }
    Fd input(in);
    ::posix_fadvise(in, 0, 0, POSIX_FADV_SEQUENTIAL);
    std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return fail("OpenSSL: SHA-256 unavailable");
    std::vector<char> buffer(1 << 20);
    Copied out;
    for (;;) {
        ssize_t n = ::read(in, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return fail("reading " + from.string() + ": " + errno_text(errno));
        if (n == 0) break;
        EVP_DigestUpdate(ctx.get(), buffer.data(), static_cast<std::size_t>(n));
        if (out_fd >= 0) {
            if (auto ok = write_all(out_fd, buffer.data(), static_cast<std::size_t>(n), to); !ok) return ok.error();
        }
        out.bytes += static_cast<std::uint64_t>(n);
    }
    unsigned len = 0;
    EVP_DigestFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.sha256.data()), &len);
    return out;
}

}  // namespace

void sync_dir(const fs::path& dir) {
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
    }
}

Result<void> write_durably(const fs::path& path, std::string_view bytes) {
    fs::path tmp = path;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return fail("cannot write " + tmp.string() + ": " + errno_text(errno));
    {
        Fd f(fd);
        if (auto ok = write_all(fd, bytes.data(), bytes.size(), tmp); !ok) return ok;
        if (::fsync(fd) != 0) return fail("syncing " + tmp.string() + ": " + errno_text(errno));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) return fail("renaming " + tmp.string() + ": " + errno_text(errno));
    sync_dir(path.parent_path());
    return {};
}

Result<Copied> copy_hashed(const fs::path& from, const fs::path& to) {
    int fd = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (fd < 0) return fail("cannot create " + to.string() + ": " + errno_text(errno));
    Fd out(fd);
    auto copied = stream(from, fd, to);
    if (copied && ::fsync(fd) != 0) copied = fail("syncing " + to.string() + ": " + errno_text(errno));
    if (!copied) ::unlink(to.c_str());
    return copied;
}

Result<Copied> hash_file(const fs::path& path) { return stream(path, -1, {}); }

Result<void> move_no_replace(const fs::path& from, const fs::path& to) {
    if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) {
        sync_dir(to.parent_path());
        return {};
    }
    if (errno == EEXIST) return fail(to.string() + " already exists");
    if (errno != EXDEV) return fail("cannot move " + from.string() + " to " + to.string() + ": " + errno_text(errno));
    fs::path tmp = to.parent_path() / ("." + to.filename().string() + ".part");
    std::error_code ec;
    fs::remove(tmp, ec);
    auto copied = copy_hashed(from, tmp);
    if (!copied) return copied.error();
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) != 0) {
        int err = errno;
        fs::remove(tmp, ec);
        return fail("cannot move into " + to.string() + ": " + errno_text(err));
    }
    sync_dir(to.parent_path());
    fs::remove(from, ec);
    return {};
}

std::uint64_t random_u64() {
    std::uint64_t v = 0;
    while (::getrandom(&v, sizeof v, 0) != static_cast<ssize_t>(sizeof v)) {
    }
    return v;
}

std::string now_rfc3339() {
    std::time_t t = std::time(nullptr);
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

bundle::TrustStore load_trust(const std::vector<fs::path>& keys) {
    bundle::TrustStore trust;
    for (const auto& path : keys) {
        auto key = bundle::load_public_key(path);
        if (!key) throw std::runtime_error("trusted key " + path.string() + ": " + key.error().message);
        std::string fingerprint = key->fingerprint();
        trust.add(bundle::TrustedKey{path.stem().string(), fingerprint, std::move(*key)});
    }
    return trust;
}

std::optional<transfer::LinkKey> load_link_key(const std::optional<fs::path>& file) {
    if (!file) return std::nullopt;
    std::ifstream in(*file, std::ios::binary);
    std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) throw std::runtime_error("cannot read link key " + file->string());
    return transfer::LinkKey(std::as_bytes(std::span(secret.data(), secret.size())));
}

std::vector<diode::Endpoint> parse_lanes(const std::vector<std::string>& lanes) {
    std::vector<diode::Endpoint> out;
    for (const auto& lane : lanes) {
        auto ep = diode::parse_endpoint(lane);
        if (!ep) throw std::runtime_error("link.lanes: " + ep.error().message);
        out.push_back(*ep);
    }
    return out;
}

void require_any_role(const Peer& peer, const RolesConfig& roles) {
    if (has_role(peer, Role::operator_, roles) || has_role(peer, Role::officer, roles) ||
        has_role(peer, Role::auditor, roles)) {
        return;
    }
    // Any of the three roles will do: name every group that grants one, not only
    // the operators' (an officer asking why `sluice pending` refuses must not be
    // told to become an operator).
    std::string groups;
    for (const auto* list : {&roles.operator_groups, &roles.officer_groups, &roles.auditor_groups}) {
        for (const auto& g : *list) groups += (groups.empty() ? "" : ", ") + g;
    }
    throw std::runtime_error("permission denied: " + peer.user + " needs the operator, officer or auditor role" +
                             (groups.empty() ? std::string(" (only root holds one)") : " (a member of one of " + groups + ")"));
}

void write_metrics(const std::optional<fs::path>& path, std::span<const MetricSample> samples) {
    if (!path) return;
    if (auto ok = MetricsFile(*path).write(samples); !ok) {
        log_warning("metrics_not_written", {{"file", *path}, {"error", ok.error().message}});
    }
}

}  // namespace sluice::daemon::files
