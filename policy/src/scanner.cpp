#include "sluice/policy/scanner.hpp"

#include "posix_io.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <exception>
#include <map>
#include <thread>
#include <utility>

#include "sluice/policy/process.hpp"

namespace sluice::policy {
namespace {

using detail::Fd;

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// clamd answers with one short line; anything longer is not clamd.
constexpr std::size_t kMaxReplyBytes = 4096;
/// Upper bound on one INSTREAM chunk, whatever the configuration says: the
/// buffer is allocated once per scan and memory must stay flat.
constexpr std::size_t kMaxChunkBytes = 16u << 20;
/// At most this many exec output lines become findings; beyond that the
/// output is not a list of findings but a report, kept whole in `output`.
constexpr std::size_t kMaxExecFindings = 100;
/// How often scan() looks at `stop` while waiting between attempts.
constexpr milliseconds kStopPollInterval{20};


std::string errno_text(int err) {
    std::array<char, 256> buf{};
    return ::strerror_r(err, buf.data(), buf.size());
}

std::string format_duration(milliseconds d) {
    const auto ms = d.count();
    if (ms < 1000) return std::to_string(ms) + "ms";
    const auto tenths = (ms + 50) / 100;
    std::string s = std::to_string(tenths / 10);
    if (tenths % 10 != 0) s += "." + std::to_string(tenths % 10);
    return s + "s";
}

std::string format_bytes(std::uint64_t n) {
    if (n >= (1ull << 20) && n % (1ull << 20) == 0) return std::to_string(n >> 20) + " MiB";
    return std::to_string(n) + " bytes";
}

milliseconds since(Clock::time_point start) {
    return std::chrono::duration_cast<milliseconds>(Clock::now() - start);
}

/// Trims trailing NULs, newlines and spaces, and leading spaces.
std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.back() == '\0' || s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
        s.remove_suffix(1);
    }
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    return s;
}

/// Makes text from a scanner printable on one log line.
std::string one_line(std::string_view s, std::size_t max = 200) {
    std::string out;
    for (const char c : s.substr(0, max)) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
    }
    if (s.size() > max) out += "...";
    return out;
}

ScanResult error_result(const ScannerSpec& spec, std::string summary) {
    ScanResult r;
    r.scanner = spec.name;
    r.verdict = Verdict::error;
    r.summary = std::move(summary);
    return r;
}

// ---------------------------------------------------------------- exec

/// "path: signature FOUND" (clamscan and friends) ─► a finding with the path
/// made relative to root; any other line ─► a finding with no path.
Finding exec_finding(std::string_view line, const fs::path& root) {
    constexpr std::string_view kFound = " FOUND";
    const auto colon = line.find(": ");
    if (line.size() > kFound.size() && line.ends_with(kFound) && colon != std::string_view::npos) {
        std::string path(line.substr(0, colon));
        const std::string prefix = root.string() + "/";
        if (path.starts_with(prefix)) path.erase(0, prefix.size());
        std::string_view sig = line.substr(colon + 2);
        sig.remove_suffix(kFound.size());
        return Finding{std::move(path), std::string(trim(sig))};
    }
    return Finding{"", std::string(line)};
}

std::vector<Finding> exec_findings(const std::string& output, const fs::path& root) {
    std::vector<std::string_view> lines;
    std::string_view rest(output);
    while (!rest.empty()) {
        const auto nl = rest.find('\n');
        const auto line = trim(rest.substr(0, nl));
        if (!line.empty()) lines.push_back(line);
        if (nl == std::string_view::npos) break;
        rest.remove_prefix(nl + 1);
    }
    // If some lines say "... FOUND", those are the findings and the rest is chatter.
    std::vector<Finding> found;
    for (const auto line : lines) {
        if (line.ends_with(" FOUND") && line.find(": ") != std::string_view::npos) {
            found.push_back(exec_finding(line, root));
        }
    }
    if (!found.empty()) {
        if (found.size() > kMaxExecFindings) found.resize(kMaxExecFindings);
        return found;
    }
    if (lines.size() > kMaxExecFindings) return {};
    for (const auto line : lines) found.push_back(Finding{"", one_line(line, 1000)});
    return found;
}

std::string last_line(const std::string& output) {
    std::string_view rest = trim(output);
    const auto nl = rest.rfind('\n');
    if (nl != std::string_view::npos) rest.remove_prefix(nl + 1);
    return one_line(trim(rest));
}

std::string describe_finding(const Finding& f) {
    if (f.path.empty()) return one_line(f.signature);
    return one_line(f.path + ": " + f.signature + " FOUND");
}

std::string found_summary(const std::vector<Finding>& findings) {
    std::string s = describe_finding(findings.front());
    if (findings.size() > 1) s += " (+" + std::to_string(findings.size() - 1) + " more)";
    return s;
}

ScanResult scan_exec(const ScannerSpec& spec, const ExecScanner& exec, const fs::path& root) {
    if (exec.command.empty()) {
        return error_result(spec, "scanner " + spec.name + " has no command (set command in [scanners." +
                                      spec.name + "])");
    }
    // The command runs in "/": a relative root would name the wrong directory.
    std::error_code ec;
    const fs::path absolute_root = fs::absolute(root, ec);
    if (ec) return error_result(spec, "cannot resolve " + root.string() + ": " + ec.message());
    CommandSpec command;
    command.argv = substitute(exec.command, {{"path", absolute_root.string()}});
    command.timeout = spec.timeout;
    command.env = minimal_environment();
    command.ip_network = false;  // a scanner reads the quarantine; it has no business on the network
    const CommandResult run = run_command(command);

    ScanResult r;
    r.scanner = spec.name;
    r.output = run.output;
    r.took = run.took;
    using Outcome = CommandResult::Outcome;
    if (run.outcome == Outcome::exited && run.exit_code == 0) {
        r.verdict = Verdict::clean;
        r.summary = "clean (exit 0)";
    } else if (run.outcome == Outcome::exited && run.exit_code == 1) {
        r.verdict = Verdict::found;
        r.findings = exec_findings(run.output, absolute_root);
        if (r.findings.empty()) {
            const std::string line = last_line(run.output);
            r.summary = "found (exit 1)" + (line.empty() ? std::string() : ": " + line);
            r.findings.push_back(Finding{"", r.summary});
        } else {
            r.summary = "found (exit 1): " + found_summary(r.findings);
        }
    } else {
        r.verdict = Verdict::error;
        r.summary = run.describe();
        if (run.outcome == Outcome::failed_to_start) {
            r.summary += " (check command in [scanners." + spec.name + "])";
        } else if (run.outcome == Outcome::timed_out) {
            r.summary += " (raise timeout in [scanners." + spec.name + "] if the bundle is large)";
        } else if (const std::string line = last_line(run.output); !line.empty()) {
            r.summary += ": " + line;
        }
    }
    return r;
}

// ---------------------------------------------------------------- clamd

std::string clamd_address(const ClamdScanner& clamd) {
    if (clamd.socket) return clamd.socket->string();
    if (clamd.host.find(':') != std::string::npos) return "[" + clamd.host + "]:" + std::to_string(clamd.port);
    return clamd.host + ":" + std::to_string(clamd.port);
}

std::string connect_hint(const ClamdScanner& clamd, int err) {
    if (err == EACCES || err == EPERM) {
        return " (may this user use the socket? add it to clamd's group, or check LocalSocketMode)";
    }
    if (clamd.socket) return " (is clamav-daemon running, with this LocalSocket in clamd.conf?)";
    return " (is clamav-daemon running, with TCPSocket and TCPAddr set to this address in clamd.conf?)";
}

/// Waits for `events` on fd until the deadline. Returns the revents, or 0 on timeout.
Result<short> wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
        if (left <= 0) return short{0};
        pollfd p{fd, events, 0};
        const int timeout = static_cast<int>(std::min<long long>(left + 1, 1 << 30));
        const int n = ::poll(&p, 1, timeout);
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(errno_text(errno));
        }
        if (n > 0) return p.revents;
    }
}

struct Address {
    sockaddr_storage storage{};
    socklen_t length = 0;
    int family = AF_UNSPEC;
};

Result<Address> resolve(const ClamdScanner& clamd) {
    Address a;
    if (clamd.socket) {
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        const std::string& path = clamd.socket->native();
        if (path.empty() || path.size() >= sizeof un.sun_path) {
            return fail("clamd socket path '" + one_line(path) + "' is empty or longer than " +
                        std::to_string(sizeof un.sun_path - 1) + " bytes (use a shorter LocalSocket path)");
        }
        std::memcpy(un.sun_path, path.data(), path.size());
        std::memcpy(&a.storage, &un, sizeof un);
        a.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
        a.family = AF_UNIX;
        return a;
    }
    if (clamd.host.empty() || clamd.port == 0) {
        return fail("clamd scanner has neither a socket nor a host and port (set socket to clamd's LocalSocket, "
                    "or host and port to its TCPAddr and TCPSocket)");
    }
    sockaddr_in in4{};
    sockaddr_in6 in6{};
    if (::inet_pton(AF_INET, clamd.host.c_str(), &in4.sin_addr) == 1) {
        in4.sin_family = AF_INET;
        in4.sin_port = htons(clamd.port);
        std::memcpy(&a.storage, &in4, sizeof in4);
        a.length = sizeof in4;
        a.family = AF_INET;
        return a;
    }
    if (::inet_pton(AF_INET6, clamd.host.c_str(), &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(clamd.port);
        std::memcpy(&a.storage, &in6, sizeof in6);
        a.length = sizeof in6;
        a.family = AF_INET6;
        return a;
    }
    return fail("clamd host '" + one_line(clamd.host) +
                "' is not a numeric IP address (names are not resolved: use clamd's TCPAddr, e.g. 127.0.0.1)");
}

/// A connected, non-blocking stream socket to clamd, or an error naming it.
Result<Fd> connect_clamd(const ClamdScanner& clamd, Clock::time_point deadline, milliseconds timeout) {
    auto address = resolve(clamd);
    if (!address) return address.error();
    const std::string where = "cannot connect to clamd at " + clamd_address(clamd) + ": ";
    const auto* sa = reinterpret_cast<const sockaddr*>(&address->storage);

    for (;;) {
        Fd fd(::socket(address->family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd.valid()) return fail(where + errno_text(errno));
        if (::connect(fd.get(), sa, address->length) == 0) return fd;
        int err = errno;
        if (err == EAGAIN) {
            // A Unix socket whose backlog is full: clamd is busy. Try again shortly.
            if (Clock::now() + milliseconds{10} >= deadline) {
                return fail(where + "its connection queue stayed full (is clamd overloaded?)");
            }
            std::this_thread::sleep_for(milliseconds{10});
            continue;
        }
        if (err != EINPROGRESS && err != EINTR) return fail(where + errno_text(err) + connect_hint(clamd, err));
        auto ready = wait_for(fd.get(), POLLOUT, deadline);
        if (!ready) return fail(where + ready.error().message);
        if (*ready == 0) {
            return fail(where + "no answer within " + format_duration(timeout) + connect_hint(clamd, 0));
        }
        socklen_t len = sizeof err;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
        if (err != 0) return fail(where + errno_text(err) + connect_hint(clamd, err));
        return fd;
    }
}

enum class SendStop { sent, peer_spoke };

/// Sends all of `data` unless clamd answers or hangs up first (it does so
/// mid-stream when a size limit is hit): then its reply is what matters.
Result<SendStop> send_all(int fd, const char* data, std::size_t size, Clock::time_point deadline) {
    while (size > 0) {
        auto ready = wait_for(fd, POLLOUT | POLLIN, deadline);
        if (!ready) return ready.error();
        if (*ready == 0) return fail("timed out");
        if ((*ready & (POLLIN | POLLHUP | POLLERR)) != 0) return SendStop::peer_spoke;
        const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            if (errno == EPIPE || errno == ECONNRESET) return SendStop::peer_spoke;
            return fail(errno_text(errno));
        }
        data += n;
        size -= static_cast<std::size_t>(n);
    }
    return SendStop::sent;
}

/// clamd's NUL-terminated reply, without the NUL.
Result<std::string> read_reply(int fd, Clock::time_point deadline) {
    std::string reply;
    std::array<char, 512> buf{};
    for (;;) {
        auto ready = wait_for(fd, POLLIN, deadline);
        if (!ready) return ready.error();
        if (*ready == 0) return fail("timed out waiting for its reply");
        const ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            if (reply.empty()) return fail("connection lost before a reply: " + errno_text(errno));
            return reply;
        }
        if (n == 0) {
            if (reply.empty()) return fail("connection closed without a reply");
            return reply;
        }
        const std::string_view got(buf.data(), static_cast<std::size_t>(n));
        const auto nul = got.find('\0');
        reply.append(got.substr(0, nul));
        if (nul != std::string_view::npos) return reply;
        if (reply.size() > kMaxReplyBytes) return fail("reply longer than " + std::to_string(kMaxReplyBytes) + " bytes");
    }
}

struct FileEntry {
    fs::path path;
    std::string rel;  // generic form, relative to the root
    std::uint64_t size = 0;
};

/// Every regular file under root, sorted by relative path. Anything else
/// (a link, a device, a FIFO) cannot be in a quarantine and is an error.
Result<std::vector<FileEntry>> list_files(const fs::path& root, std::uint64_t max_bytes,
                                          const std::string& scanner) {
    std::error_code ec;
    const auto root_status = fs::symlink_status(root, ec);
    if (ec) return fail("cannot read " + root.string() + ": " + ec.message());
    if (!fs::is_directory(root_status)) return fail(root.string() + " is not a directory");

    std::vector<FileEntry> files;
    fs::recursive_directory_iterator it(root, fs::directory_options::none, ec);
    const fs::recursive_directory_iterator end;
    for (; !ec && it != end; it.increment(ec)) {
        const auto& entry = *it;
        const std::string rel = entry.path().lexically_relative(root).generic_string();
        const auto st = entry.symlink_status(ec);
        if (ec) break;
        if (fs::is_symlink(st)) {
            return fail(rel + " is a symbolic link: a quarantine holds only regular files and directories");
        }
        if (fs::is_directory(st)) continue;
        if (!fs::is_regular_file(st)) {
            return fail(rel + " is not a regular file: a quarantine holds only regular files and directories");
        }
        const auto size = entry.file_size(ec);
        if (ec) break;
        if (size > max_bytes) {
            // clamd would stop reading at its StreamMaxLength and could call
            // the truncated file clean: refuse before sending anything.
            return fail(rel + " is " + std::to_string(size) + " bytes, over max_stream_bytes (" +
                        format_bytes(max_bytes) + "): raise StreamMaxLength in clamd.conf and max_stream_bytes in "
                        "[scanners." + scanner + "] together");
        }
        files.push_back(FileEntry{entry.path(), rel, size});
    }
    if (ec) return fail("cannot list " + root.string() + ": " + ec.message());
    std::sort(files.begin(), files.end(), [](const FileEntry& a, const FileEntry& b) { return a.rel < b.rel; });
    return files;
}

/// What clamd said about one file: nullopt when clean, else the signature.
using FileVerdict = std::optional<std::string>;

Result<FileVerdict> scan_file(const ScannerSpec& spec, const ClamdScanner& clamd, const FileEntry& file,
                              std::vector<char>& buffer, std::string& not_ok) {
    const milliseconds timeout = spec.timeout;
    const std::string where = "clamd at " + clamd_address(clamd) + ", " + file.rel + ": ";
    const auto deadline = Clock::now() + timeout;

    Fd in(::open(file.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
    if (!in.valid()) return fail(file.rel + ": cannot open: " + errno_text(errno));
    struct stat st {};
    if (::fstat(in.get(), &st) != 0) return fail(file.rel + ": cannot stat: " + errno_text(errno));
    if (!S_ISREG(st.st_mode) || static_cast<std::uint64_t>(st.st_size) != file.size) {
        return fail(file.rel + " changed while being scanned (the quarantine must not change)");
    }

    auto sock = connect_clamd(clamd, deadline, timeout);
    if (!sock) return sock.error();
    // A timeout may be clamd being slow rather than broken; anything else is in its log.
    const auto hint = [&](const std::string& message) {
        if (message.starts_with("timed out")) {
            return " (the timeout is " + format_duration(timeout) + " per file: raise timeout in [scanners." +
                   spec.name + "] if clamd is slow on big files)";
        }
        return std::string(" (see clamd's log)");
    };

    constexpr std::string_view kCommand("zINSTREAM\0", 10);
    auto sent = send_all(sock->get(), kCommand.data(), kCommand.size(), deadline);
    if (!sent) return fail(where + "sending INSTREAM: " + sent.error().message + hint(sent.error().message));

    std::uint64_t total = 0;
    while (*sent == SendStop::sent) {
        ssize_t n;
        do {
            n = ::read(in.get(), buffer.data() + 4, buffer.size() - 4);
        } while (n < 0 && errno == EINTR);
        if (n < 0) return fail(file.rel + ": read error: " + errno_text(errno));
        const auto len = static_cast<std::uint32_t>(n);
        total += len;
        if (total > file.size) return fail(file.rel + " changed while being scanned (the quarantine must not change)");
        const std::uint32_t be = htonl(len);
        std::memcpy(buffer.data(), &be, 4);
        // The last chunk is the zero length that ends the stream.
        sent = send_all(sock->get(), buffer.data(), 4 + len, deadline);
        if (!sent) return fail(where + "sending the file: " + sent.error().message + hint(sent.error().message));
        if (len == 0) break;
    }
    if (*sent == SendStop::sent && total != file.size) {
        return fail(file.rel + " changed while being scanned (the quarantine must not change)");
    }

    auto reply = read_reply(sock->get(), deadline);
    if (!reply) return fail(where + reply.error().message + hint(reply.error().message));

    const std::string_view text = trim(*reply);
    constexpr std::string_view kPrefix = "stream: ";
    constexpr std::string_view kFound = " FOUND";
    if (text == "stream: OK") {
        if (*sent != SendStop::sent) return fail(where + "clamd answered OK before the whole file was sent");
        return FileVerdict{};
    }
    not_ok += file.rel + ": " + one_line(text, kMaxReplyBytes) + "\n";
    if (text.starts_with(kPrefix) && text.ends_with(kFound) && text.size() > kPrefix.size() + kFound.size()) {
        return FileVerdict{std::string(text.substr(kPrefix.size(), text.size() - kPrefix.size() - kFound.size()))};
    }
    const std::string what_to_do = text.find("size limit") != std::string_view::npos
                                       ? " (raise StreamMaxLength in clamd.conf, and max_stream_bytes to match)"
                                       : " (see clamd's log)";
    return fail(where + "clamd answered '" + one_line(text) + "'" + what_to_do);
}

ScanResult scan_clamd(const ScannerSpec& spec, const ClamdScanner& clamd, const fs::path& root,
                      const std::atomic<bool>* stop) {
    // Before touching the tree, so a configuration mistake is reported as one.
    if (auto address = resolve(clamd); !address) return error_result(spec, address.error().message);
    auto files = list_files(root, clamd.max_stream_bytes, spec.name);
    if (!files) return error_result(spec, files.error().message);

    const std::size_t chunk = clamd.chunk_bytes == 0 ? 64 * 1024 : std::min(clamd.chunk_bytes, kMaxChunkBytes);
    std::vector<char> buffer(chunk + 4);

    ScanResult r;
    r.scanner = spec.name;
    for (const auto& file : *files) {
        // A shutdown does not wait for a million-file pass: the next start scans again.
        if (stop != nullptr && stop->load()) return error_result(spec, "stopped");
        auto verdict = scan_file(spec, clamd, file, buffer, r.output);
        if (!verdict) {
            // A finding already made stands: the bundle is refused whatever the
            // rest holds, and retrying would only find it again.
            r.verdict = r.findings.empty() ? Verdict::error : Verdict::found;
            r.summary = r.findings.empty() ? verdict.error().message
                                           : found_summary(r.findings) + "; scan stopped: " + verdict.error().message;
            return r;
        }
        ++r.files_scanned;
        if (*verdict) r.findings.push_back(Finding{file.rel, **verdict});
    }
    if (!r.findings.empty()) {
        r.verdict = Verdict::found;
        r.summary = found_summary(r.findings);
    } else {
        r.verdict = Verdict::clean;
        r.summary = "clean (" + std::to_string(r.files_scanned) + (r.files_scanned == 1 ? " file)" : " files)");
    }
    return r;
}

}  // namespace

std::string_view to_string(Verdict v) {
    switch (v) {
        case Verdict::clean:
            return "clean";
        case Verdict::found:
            return "found";
        case Verdict::error:
            return "error";
    }
    return "error";
}

ScanResult scan_once(const ScannerSpec& spec, const fs::path& root, const std::atomic<bool>* stop) {
    const auto start = Clock::now();
    ScanResult r;
    try {
        if (const auto* exec = std::get_if<ExecScanner>(&spec.kind)) {
            r = scan_exec(spec, *exec, root);
        } else {
            r = scan_clamd(spec, std::get<ClamdScanner>(spec.kind), root, stop);
        }
    } catch (const std::exception& e) {
        // Only allocation can throw here; the caller was promised no exceptions.
        r = error_result(spec, std::string("scanner failed: ") + e.what());
    }
    r.attempts = 1;
    r.took = since(start);
    return r;
}

ScanResult scan(const ScannerSpec& spec, const fs::path& root, const std::atomic<bool>& stop) {
    const auto start = Clock::now();
    const unsigned attempts = std::max(spec.attempts, 1u);
    ScanResult r = error_result(spec, "stopped");
    for (unsigned attempt = 1;; ++attempt) {
        if (stop.load()) break;
        r = scan_once(spec, root, &stop);
        r.attempts = attempt;
        if (r.verdict != Verdict::error || attempt >= attempts) {
            r.took = since(start);
            return r;
        }
        const auto resume = Clock::now() + spec.retry_delay;
        while (!stop.load() && Clock::now() < resume) {
            std::this_thread::sleep_for(std::min(kStopPollInterval, std::chrono::duration_cast<milliseconds>(
                                                                        resume - Clock::now()) + milliseconds{1}));
        }
    }
    if (r.attempts > 0) r.summary = "stopped (attempt " + std::to_string(r.attempts) + ": " + r.summary + ")";
    r.verdict = Verdict::error;
    r.took = since(start);
    return r;
}

Result<void> clamd_ping(const ClamdScanner& clamd, milliseconds timeout) {
    try {
        const auto deadline = Clock::now() + timeout;
        auto sock = connect_clamd(clamd, deadline, timeout);
        if (!sock) return sock.error();
        const std::string where = "clamd at " + clamd_address(clamd) + ": ";
        constexpr std::string_view kPing("zPING\0", 6);
        auto sent = send_all(sock->get(), kPing.data(), kPing.size(), deadline);
        if (!sent) return fail(where + "sending PING: " + sent.error().message);
        auto reply = read_reply(sock->get(), deadline);
        if (!reply) return fail(where + "PING: " + reply.error().message);
        if (trim(*reply) != "PONG") {
            return fail(where + "answered '" + one_line(*reply) + "' to PING, not PONG (is this clamd's socket?)");
        }
        return {};
    } catch (const std::exception& e) {
        return fail(std::string("clamd PING failed: ") + e.what());
    }
}

}  // namespace sluice::policy
