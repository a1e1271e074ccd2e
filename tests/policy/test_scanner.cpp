#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "sluice/policy/scanner.hpp"
#include "support/processes.hpp"
#include "support/temp_dir.hpp"

using namespace sluice::policy;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using sluice::test::TempDir;
using sluice::test::write_file;

using sluice::test::alive;
using sluice::test::gone_within;

namespace {

// The markers installed by tests/tools/start_clamd.sh.
constexpr std::string_view kHashMarker = "SLUICE-TEST-MALWARE-MARKER";
constexpr std::string_view kNdbMarker = "EVIL-PAYLOAD-XYZ";

std::size_t count_lines(const fs::path& file) {
    std::ifstream in(file);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
}

/// An exec scanner running a shell script: $1 is the root scanned.
ScannerSpec exec_scanner(const std::string& script) {
    ScannerSpec spec;
    spec.name = "script";
    spec.kind = ExecScanner{{"/bin/sh", "-c", script, "scanner", "{path}"}};
    spec.timeout = 20s;
    spec.attempts = 1;
    spec.retry_delay = 10ms;
    return spec;
}

ScannerSpec clamd_scanner(ClamdScanner clamd) {
    ScannerSpec spec;
    spec.name = "av";
    spec.kind = std::move(clamd);
    spec.timeout = 20s;
    spec.attempts = 1;
    spec.retry_delay = 10ms;
    return spec;
}

ClamdScanner unix_clamd(const fs::path& socket) {
    ClamdScanner c;
    c.socket = socket;
    return c;
}

ClamdScanner tcp_clamd(std::uint16_t port) {
    ClamdScanner c;
    c.host = "127.0.0.1";
    c.port = port;
    return c;
}

/// A loopback port nobody listens on (just released by us).
std::uint16_t free_tcp_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    ::close(fd);
    return ntohs(a.sin_port);
}

/// A real clamd with the test signatures (tests/tools/start_clamd.sh), on a
/// Unix socket and a loopback TCP port; stopped when the test binary exits.
class Clamd {
public:
    Clamd() : port_(free_tcp_port()) {
        const auto script = fs::path(SLUICE_TESTS_DIR) / "tools" / "start_clamd.sh";
        const auto dir = dir_ / "clamd";
        const std::string command = "CLAMD_WATCH_PID=" + std::to_string(::getpid()) + " '" + script.string() +
                                    "' '" + dir.string() + "' " + std::to_string(port_) + " >'" +
                                    (dir_ / "start.out").string() + "' 2>'" + (dir_ / "start.err").string() + "'";
        const auto start = std::chrono::steady_clock::now();
        const int status = std::system(command.c_str());
        startup_ = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
        if (status != 0) {
            FAIL("start_clamd.sh failed (" << status << "): " << sluice::test::read_file(dir_ / "start.err"));
        }
        socket_ = dir / "clamd.sock";
        std::ifstream(dir / "clamd.pid") >> pid_;
        REQUIRE(pid_ > 0);
        REQUIRE(sluice::test::read_file(dir_ / "start.out") == socket_.string() + "\n");
    }
    ~Clamd() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        if (!gone_within(pid_, 10s)) ::kill(pid_, SIGKILL);
    }
    Clamd(const Clamd&) = delete;
    Clamd& operator=(const Clamd&) = delete;

    /// One per test process: every test case that needs clamd shares it.
    static Clamd& shared() {
        static Clamd clamd;
        return clamd;
    }

    [[nodiscard]] const fs::path& socket() const { return socket_; }
    [[nodiscard]] std::uint16_t port() const { return port_; }
    [[nodiscard]] std::chrono::milliseconds startup() const { return startup_; }
    [[nodiscard]] std::string log() const { return sluice::test::read_file(dir_ / "clamd" / "clamd.log"); }

private:
    TempDir dir_;
    std::uint16_t port_;
    fs::path socket_;
    pid_t pid_ = -1;
    std::chrono::milliseconds startup_{0};
};

/// A Unix socket that accepts connections into its backlog and never answers.
class SilentSocket {
public:
    explicit SilentSocket(fs::path path) : path_(std::move(path)) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
    }
    ~SilentSocket() { ::close(fd_); }
    SilentSocket(const SilentSocket&) = delete;
    SilentSocket& operator=(const SilentSocket&) = delete;

private:
    fs::path path_;
    int fd_ = -1;
};

/// A Unix socket that answers every connection with `reply` (NUL included).
class FakeClamd {
public:
    FakeClamd(fs::path path, std::string reply) : reply_(std::move(reply)) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
        thread_ = std::thread([this] {
            for (;;) {
                const int c = ::accept(fd_, nullptr, nullptr);
                if (c < 0) return;  // shut down
                char buf[256];
                (void)::recv(c, buf, sizeof buf, 0);  // the command
                (void)::send(c, reply_.data(), reply_.size(), MSG_NOSIGNAL);
                ::close(c);
            }
        });
    }
    ~FakeClamd() {
        ::shutdown(fd_, SHUT_RDWR);
        thread_.join();
        ::close(fd_);
    }
    FakeClamd(const FakeClamd&) = delete;
    FakeClamd& operator=(const FakeClamd&) = delete;

private:
    std::string reply_;
    int fd_ = -1;
    std::thread thread_;
};

}  // namespace

// ---------------------------------------------------------------- exec

TEST_CASE("exec scanner: exit 0 is clean, 1 found, anything else an error", "[policy][scanner]") {
    TempDir root;
    write_file(root / "data/x.bin", "x");

    SECTION("clean, with {path} replaced by the root and nothing inherited") {
        ::setenv("SLUICE_TEST_SECRET", "s", 1);
        auto spec = exec_scanner("[ \"$1\" = '" + root.path().string() +
                                 "' ] && [ -f \"$1/data/x.bin\" ] && [ -z \"${SLUICE_TEST_SECRET+set}\" ] && exit 0; "
                                 "echo \"wrong: $1\"; exit 2");
        auto r = scan_once(spec, root.path());
        ::unsetenv("SLUICE_TEST_SECRET");
        CHECK(r.verdict == Verdict::clean);
        CHECK(r.scanner == "script");
        CHECK(r.summary == "clean (exit 0)");
        CHECK(r.findings.empty());
        CHECK(r.attempts == 1);
        CHECK(r.output.empty());
    }
    SECTION("a scanner cannot open an IP socket (Unix sockets remain, for clamd)") {
        auto r = scan_once(exec_scanner("/usr/bin/python3 -I -c 'import socket; socket.socket(socket.AF_UNIX)' || exit 3; "
                                        "/usr/bin/python3 -I -c 'import socket; socket.socket()' 2>/dev/null && exit 2; exit 0"),
                           root.path());
        INFO(r.summary << "\n" << r.output);
        CHECK(r.verdict == Verdict::clean);
    }
    SECTION("a relative root is passed as an absolute path (the scanner runs in /)") {
        const auto cwd = fs::current_path();
        fs::current_path(root.path().parent_path());
        auto r = scan_once(exec_scanner("[ \"$1\" = '" + root.path().string() + "' ] && exit 0; echo \"$1\"; exit 2"),
                           root.path().filename());
        fs::current_path(cwd);
        CHECK(r.verdict == Verdict::clean);
    }
    SECTION("found: 'path: signature FOUND' lines become findings, output kept") {
        auto spec = exec_scanner(
            "echo \"$1/data/x.bin: Eicar-Test-Signature FOUND\"; echo 'Scanned files: 1'; "
            "echo \"$1/data/y.bin: Other.Sig FOUND\" >&2; exit 1");
        auto r = scan_once(spec, root.path());
        CHECK(r.verdict == Verdict::found);
        REQUIRE(r.findings.size() == 2);
        CHECK(r.findings[0].path == "data/x.bin");
        CHECK(r.findings[0].signature == "Eicar-Test-Signature");
        CHECK(r.findings[1].path == "data/y.bin");
        CHECK(r.findings[1].signature == "Other.Sig");
        CHECK(r.summary == "found (exit 1): data/x.bin: Eicar-Test-Signature FOUND (+1 more)");
        CHECK_THAT(r.output, Catch::Contains("Scanned files: 1"));
    }
    SECTION("found: free-form lines become findings") {
        auto r = scan_once(exec_scanner("echo 'bad macro in report.docx'; exit 1"), root.path());
        CHECK(r.verdict == Verdict::found);
        REQUIRE(r.findings.size() == 1);
        CHECK(r.findings[0].path.empty());
        CHECK(r.findings[0].signature == "bad macro in report.docx");
    }
    SECTION("found: no output still gives one finding") {
        auto r = scan_once(exec_scanner("exit 1"), root.path());
        CHECK(r.verdict == Verdict::found);
        REQUIRE(r.findings.size() == 1);
        CHECK(r.findings[0].signature == r.summary);
        CHECK(r.summary == "found (exit 1)");
    }
    SECTION("exit 2 is an error that quotes the scanner") {
        auto r = scan_once(exec_scanner("echo 'starting'; echo 'cannot load database' >&2; exit 2"), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK(r.summary == "exit 2: cannot load database");
        CHECK(r.findings.empty());
        CHECK(r.output == "starting\ncannot load database\n");
    }
    SECTION("a signal is an error") {
        auto r = scan_once(exec_scanner("kill -KILL $$"), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK(r.summary == "killed by signal 9");
    }
    SECTION("a scanner that cannot start is an error naming it") {
        auto spec = exec_scanner("");
        spec.kind = ExecScanner{{"/nonexistent/scanner", "{path}"}};
        auto r = scan_once(spec, root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK(r.summary ==
              "cannot start /nonexistent/scanner: No such file or directory (check command in [scanners.script])");
    }
    SECTION("an empty command is an error") {
        auto spec = exec_scanner("");
        spec.kind = ExecScanner{};
        auto r = scan_once(spec, root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::Contains("no command"));
    }
}

TEST_CASE("exec scanner: a hanging scanner is timed out with its whole group", "[policy][scanner]") {
    TempDir root;
    TempDir work;
    const auto pid_file = work / "grandchild.pid";
    auto spec = exec_scanner("sleep 100 & echo $! > '" + pid_file.string() + "'; echo working; sleep 100");
    spec.timeout = 500ms;

    auto r = scan_once(spec, root.path());
    CHECK(r.verdict == Verdict::error);
    CHECK_THAT(r.summary, Catch::StartsWith("timed out after") && Catch::Contains("process group killed") &&
                              Catch::Contains("raise timeout in [scanners.script]"));
    CHECK(r.output == "working\n");
    CHECK(r.took >= 500ms);
    CHECK(r.took < 10s);

    long grandchild = 0;
    std::ifstream(pid_file) >> grandchild;
    REQUIRE(grandchild > 0);
    CHECK(gone_within(static_cast<pid_t>(grandchild), 5s));
}

TEST_CASE("scan retries errors only, with the delay, and stops when asked", "[policy][scanner]") {
    TempDir root;
    TempDir work;
    const auto count = work / "count";
    std::atomic<bool> stop{false};

    SECTION("every attempt fails") {
        auto spec = exec_scanner("echo x >> '" + count.string() + "'; echo broken; exit 2");
        spec.attempts = 3;
        spec.retry_delay = 150ms;
        auto r = scan(spec, root.path(), stop);
        CHECK(r.verdict == Verdict::error);
        CHECK(r.attempts == 3);
        CHECK(count_lines(count) == 3);
        CHECK(r.took >= 300ms);
        CHECK(r.summary == "exit 2: broken");
    }
    SECTION("the second attempt succeeds") {
        auto spec = exec_scanner("echo x >> '" + count.string() + "'; [ $(wc -l < '" + count.string() +
                                 "') -ge 2 ] && exit 0; exit 2");
        spec.attempts = 5;
        auto r = scan(spec, root.path(), stop);
        CHECK(r.verdict == Verdict::clean);
        CHECK(r.attempts == 2);
        CHECK(count_lines(count) == 2);
    }
    SECTION("a finding is not retried") {
        auto spec = exec_scanner("echo x >> '" + count.string() + "'; exit 1");
        spec.attempts = 3;
        auto r = scan(spec, root.path(), stop);
        CHECK(r.verdict == Verdict::found);
        CHECK(r.attempts == 1);
        CHECK(count_lines(count) == 1);
    }
    SECTION("attempts = 0 still scans once") {
        auto spec = exec_scanner("exit 0");
        spec.attempts = 0;
        auto r = scan(spec, root.path(), stop);
        CHECK(r.verdict == Verdict::clean);
        CHECK(r.attempts == 1);
    }
    SECTION("stopped before the first attempt") {
        stop = true;
        auto spec = exec_scanner("echo x >> '" + count.string() + "'; exit 0");
        auto r = scan(spec, root.path(), stop);
        CHECK(r.verdict == Verdict::error);
        CHECK(r.summary == "stopped");
        CHECK(r.attempts == 0);
        CHECK_FALSE(fs::exists(count));
    }
    SECTION("stopped while waiting to retry") {
        auto spec = exec_scanner("echo x >> '" + count.string() + "'; exit 2");
        spec.attempts = 3;
        spec.retry_delay = 60s;
        std::thread stopper([&] {
            std::this_thread::sleep_for(300ms);
            stop = true;
        });
        auto r = scan(spec, root.path(), stop);
        stopper.join();
        CHECK(r.verdict == Verdict::error);
        CHECK(r.summary == "stopped (attempt 1: exit 2)");
        CHECK(r.attempts == 1);
        CHECK(count_lines(count) == 1);
        CHECK(r.took < 10s);
    }
}

TEST_CASE("to_string(Verdict)", "[policy][scanner]") {
    CHECK(to_string(Verdict::clean) == "clean");
    CHECK(to_string(Verdict::found) == "found");
    CHECK(to_string(Verdict::error) == "error");
}

// ---------------------------------------------------------------- clamd, no daemon

TEST_CASE("clamd scanner: errors that need no daemon", "[policy][scanner][clamd]") {
    TempDir root;
    write_file(root / "a.txt", "hello");
    TempDir work;
    const auto missing = work / "clamd.ctl";

    SECTION("an unreachable socket fails every attempt, with the delay") {
        auto spec = clamd_scanner(unix_clamd(missing));
        spec.attempts = 3;
        spec.retry_delay = 150ms;
        std::atomic<bool> stop{false};
        auto r = scan(spec, root.path(), stop);
        CHECK(r.verdict == Verdict::error);
        CHECK(r.attempts == 3);
        CHECK(r.took >= 300ms);
        CHECK(r.files_scanned == 0);
        CHECK(r.summary == "cannot connect to clamd at " + missing.string() +
                               ": No such file or directory (is clamav-daemon running, with this LocalSocket in "
                               "clamd.conf?)");
    }
    SECTION("a stop ends a clamd pass between files, before the next connection") {
        std::atomic<bool> stop{true};
        auto r = scan_once(clamd_scanner(unix_clamd(missing)), root.path(), &stop);
        CHECK(r.verdict == Verdict::error);
        CHECK(r.summary == "stopped");
        CHECK(r.files_scanned == 0);
    }
    SECTION("a closed TCP port") {
        const auto port = free_tcp_port();
        auto r = scan_once(clamd_scanner(tcp_clamd(port)), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::StartsWith("cannot connect to clamd at 127.0.0.1:" + std::to_string(port) +
                                                ": Connection refused"));
    }
    SECTION("a host name is refused: no name resolution") {
        ClamdScanner c;
        c.host = "localhost";
        c.port = 3310;
        auto r = scan_once(clamd_scanner(c), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::Contains("not a numeric IP address"));
    }
    SECTION("neither socket nor host") {
        auto r = scan_once(clamd_scanner(ClamdScanner{}), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::Contains("neither a socket nor a host"));
    }
    SECTION("a file over max_stream_bytes is refused before anything is sent") {
        // The socket does not exist: reaching it would be a connection error.
        write_file(root / "data/big.bin", std::string(2000, 'b'));
        auto c = unix_clamd(missing);
        c.max_stream_bytes = 1000;
        auto r = scan_once(clamd_scanner(c), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK(r.files_scanned == 0);
        CHECK_THAT(r.summary, Catch::StartsWith("data/big.bin is 2000 bytes, over max_stream_bytes (1000 bytes)") &&
                                  Catch::Contains("StreamMaxLength"));
    }
    SECTION("a symbolic link under the root is refused") {
        fs::create_symlink("/etc/passwd", root / "link");
        auto r = scan_once(clamd_scanner(unix_clamd(missing)), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::StartsWith("link is a symbolic link"));
    }
    SECTION("a FIFO under the root is refused") {
        fs::create_directories(root / "data");
        REQUIRE(::mkfifo((root / "data/fifo").c_str(), 0600) == 0);
        auto r = scan_once(clamd_scanner(unix_clamd(missing)), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::StartsWith("data/fifo is not a regular file"));
    }
    SECTION("the root must be a directory") {
        auto r = scan_once(clamd_scanner(unix_clamd(missing)), root / "a.txt");
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::Contains("is not a directory"));
    }
    SECTION("a clamd that never answers is timed out") {
        SilentSocket silent(work / "silent.sock");
        auto spec = clamd_scanner(unix_clamd(work / "silent.sock"));
        spec.timeout = 300ms;
        const auto start = std::chrono::steady_clock::now();
        auto r = scan_once(spec, root.path());
        CHECK(std::chrono::steady_clock::now() - start < 5s);
        CHECK(r.verdict == Verdict::error);
        CHECK(r.took >= 300ms);
        CHECK_THAT(r.summary, Catch::Contains("a.txt") && Catch::Contains("timed out") &&
                                  Catch::Contains("raise timeout in [scanners.av]"));

        auto ping = clamd_ping(unix_clamd(work / "silent.sock"), 300ms);
        REQUIRE_FALSE(ping);
        CHECK_THAT(ping.error().message, Catch::Contains("timed out"));
    }
    SECTION("an unexpected reply is an error, never clean") {
        FakeClamd fake(work / "fake.sock", std::string("stream: Something odd ERROR\0", 29));
        auto r = scan_once(clamd_scanner(unix_clamd(work / "fake.sock")), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::Contains("a.txt") && Catch::Contains("'stream: Something odd ERROR'"));
        CHECK(r.output == "a.txt: stream: Something odd ERROR\n");
    }
    SECTION("clamd_ping fails with the socket named") {
        auto ping = clamd_ping(unix_clamd(missing), 1s);
        REQUIRE_FALSE(ping);
        CHECK_THAT(ping.error().message,
                   Catch::StartsWith("cannot connect to clamd at " + missing.string() + ": No such file or directory"));

        FakeClamd fake(work / "fake.sock", std::string("NOPE\0", 5));
        auto wrong = clamd_ping(unix_clamd(work / "fake.sock"), 1s);
        REQUIRE_FALSE(wrong);
        CHECK_THAT(wrong.error().message, Catch::Contains("answered 'NOPE' to PING"));
    }
}

// ---------------------------------------------------------------- clamd, real daemon

TEST_CASE("clamd scanner against a real clamd", "[policy][scanner][clamd]") {
    const Clamd& clamd = Clamd::shared();
    INFO("clamd started in " << clamd.startup().count() << " ms");
    TempDir root;
    write_file(root / "README.txt", "a clean file\n");
    write_file(root / "data/model.bin", sluice::test::random_bytes(200000, 7));
    write_file(root / "data/sub/empty", "");

    SECTION("clamd_ping over the Unix socket and TCP") {
        CHECK(clamd_ping(unix_clamd(clamd.socket()), 5s));
        CHECK(clamd_ping(tcp_clamd(clamd.port()), 5s));
    }
    SECTION("a clean tree") {
        auto r = scan_once(clamd_scanner(unix_clamd(clamd.socket())), root.path());
        CHECK(r.verdict == Verdict::clean);
        CHECK(r.files_scanned == 3);
        CHECK(r.summary == "clean (3 files)");
        CHECK(r.findings.empty());
        CHECK(r.output.empty());
    }
    SECTION("the .hdb and .ndb test signatures, in sorted order") {
        write_file(root / "data/marker.txt", kHashMarker);
        // The pattern straddles several chunks.
        write_file(root / "data/a-payload.bin", sluice::test::random_bytes(1000, 1) + std::string(kNdbMarker) +
                                                    sluice::test::random_bytes(1000, 2));
        auto c = unix_clamd(clamd.socket());
        c.chunk_bytes = 7;
        auto r = scan_once(clamd_scanner(c), root.path());
        CHECK(r.verdict == Verdict::found);
        CHECK(r.files_scanned == 5);
        REQUIRE(r.findings.size() == 2);
        CHECK(r.findings[0].path == "data/a-payload.bin");
        CHECK(r.findings[0].signature == "Sluice.Test.Ndb.UNOFFICIAL");
        CHECK(r.findings[1].path == "data/marker.txt");
        CHECK(r.findings[1].signature == "Sluice.Test.Hash.UNOFFICIAL");
        CHECK(r.summary == "data/a-payload.bin: Sluice.Test.Ndb.UNOFFICIAL FOUND (+1 more)");
        CHECK(r.output == "data/a-payload.bin: stream: Sluice.Test.Ndb.UNOFFICIAL FOUND\n"
                          "data/marker.txt: stream: Sluice.Test.Hash.UNOFFICIAL FOUND\n");
    }
    SECTION("over TCP") {
        write_file(root / "data/marker.txt", kHashMarker);
        auto r = scan_once(clamd_scanner(tcp_clamd(clamd.port())), root.path());
        CHECK(r.verdict == Verdict::found);
        CHECK(r.files_scanned == 4);
        REQUIRE(r.findings.size() == 1);
        CHECK(r.findings[0].path == "data/marker.txt");
        CHECK(r.findings[0].signature == "Sluice.Test.Hash.UNOFFICIAL");
    }
    SECTION("the marker with a newline is not the .hdb file") {
        // The hash signature is exact: a test that proves the fixture is not matching everything.
        write_file(root / "data/marker.txt", std::string(kHashMarker) + "\n");
        auto r = scan_once(clamd_scanner(unix_clamd(clamd.socket())), root.path());
        CHECK(r.verdict == Verdict::clean);
        CHECK(r.files_scanned == 4);
    }
    SECTION("clamd's own StreamMaxLength (1M) exceeded is an error") {
        write_file(root / "data/large.bin", std::string((1u << 20) + 4096, 'L'));
        auto c = unix_clamd(clamd.socket());
        c.max_stream_bytes = 4u << 20;  // above clamd's limit: a misconfiguration
        auto r = scan_once(clamd_scanner(c), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK(r.files_scanned == 1);  // README.txt, before data/large.bin
        CHECK_THAT(r.summary, Catch::Contains("data/large.bin") &&
                                  Catch::Contains("INSTREAM size limit exceeded. ERROR") &&
                                  Catch::Contains("raise StreamMaxLength"));
        CHECK(r.output == "data/large.bin: INSTREAM size limit exceeded. ERROR\n");
    }
    SECTION("clamd's own StreamMaxLength exceeded over TCP is an error too") {
        // Over TCP clamd's early reply may be lost to the reset that follows
        // it; whichever message comes, the verdict must be an error.
        write_file(root / "data/large.bin", std::string((1u << 20) + 4096, 'L'));
        auto c = tcp_clamd(clamd.port());
        c.max_stream_bytes = 4u << 20;
        auto r = scan_once(clamd_scanner(c), root.path());
        CHECK(r.verdict == Verdict::error);
        CHECK_THAT(r.summary, Catch::Contains("data/large.bin"));
    }
    SECTION("a finding stands when a later file fails") {
        write_file(root / "data/a-marker.txt", kHashMarker);
        write_file(root / "data/large.bin", std::string((1u << 20) + 4096, 'L'));
        auto c = unix_clamd(clamd.socket());
        c.max_stream_bytes = 4u << 20;
        auto r = scan_once(clamd_scanner(c), root.path());
        CHECK(r.verdict == Verdict::found);
        REQUIRE(r.findings.size() == 1);
        CHECK(r.findings[0].path == "data/a-marker.txt");
        CHECK_THAT(r.summary, Catch::Contains("scan stopped") && Catch::Contains("size limit"));
    }
}
