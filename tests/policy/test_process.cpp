#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "sluice/policy/process.hpp"
#include "support/processes.hpp"
#include "support/temp_dir.hpp"

using namespace sluice::policy;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using Outcome = CommandResult::Outcome;

using sluice::test::alive;
using sluice::test::gone_within;

namespace {

CommandSpec shell(std::string script, std::chrono::milliseconds timeout = 20s) {
    CommandSpec spec;
    spec.argv = {"/bin/sh", "-c", std::move(script)};
    spec.env = minimal_environment();
    spec.timeout = timeout;
    return spec;
}

/// Waits for a shell to write its background child's pid to `file`.
pid_t read_pid_file(const fs::path& file, std::chrono::milliseconds limit = 10s) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < until) {
        std::ifstream in(file);
        long pid = 0;
        if (in >> pid && pid > 0) return static_cast<pid_t>(pid);
        std::this_thread::sleep_for(10ms);
    }
    return -1;
}

std::size_t open_fd_count() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

}  // namespace

TEST_CASE("run_command reports exit codes and signals", "[policy][process]") {
    auto ok = run_command(shell("exit 0"));
    CHECK(ok.outcome == Outcome::exited);
    CHECK(ok.exit_code == 0);
    CHECK(ok.describe() == "exit 0");

    auto three = run_command(shell("exit 3"));
    CHECK(three.outcome == Outcome::exited);
    CHECK(three.exit_code == 3);
    CHECK(three.describe() == "exit 3");

    auto killed = run_command(shell("kill -TERM $$"));
    CHECK(killed.outcome == Outcome::signalled);
    CHECK(killed.signal == SIGTERM);
    CHECK(killed.describe() == "killed by signal 15");
}

TEST_CASE("run_command keeps stdout and stderr, up to the cap", "[policy][process]") {
    SECTION("interleaved in order") {
        auto r = run_command(shell("echo one; echo two >&2; echo three"));
        CHECK(r.outcome == Outcome::exited);
        CHECK(r.output == "one\ntwo\nthree\n");
        CHECK(r.output_bytes == r.output.size());
    }
    SECTION("the rest is counted, not kept, and the command is not blocked") {
        auto spec = shell("head -c 300000 /dev/zero; echo end >&2");
        spec.output_cap = 1000;
        auto r = run_command(spec);
        CHECK(r.outcome == Outcome::exited);
        CHECK(r.exit_code == 0);
        CHECK(r.output == std::string(1000, '\0'));
        CHECK(r.output_bytes == 300004);
    }
    SECTION("a cap of zero keeps nothing") {
        auto spec = shell("echo hello");
        spec.output_cap = 0;
        auto r = run_command(spec);
        CHECK(r.output.empty());
        CHECK(r.output_bytes == 6);
    }
    SECTION("stdin is /dev/null") {
        // With an inherited stdin, cat would wait for input until the timeout.
        auto r = run_command(shell("cat; echo eof", 10s));
        CHECK(r.outcome == Outcome::exited);
        CHECK(r.output == "eof\n");
    }
}

TEST_CASE("run_command gives exactly the environment and directory asked for", "[policy][process]") {
    ::setenv("SLUICE_TEST_INHERITED", "leak", 1);

    CommandSpec spec;
    spec.argv = {"/usr/bin/env"};
    spec.env = {"A=1", "B=two words", "EMPTY="};
    auto r = run_command(spec);
    CHECK(r.outcome == Outcome::exited);
    CHECK(r.output == "A=1\nB=two words\nEMPTY=\n");

    spec.env.clear();
    r = run_command(spec);
    CHECK(r.exit_code == 0);
    CHECK(r.output.empty());

    ::unsetenv("SLUICE_TEST_INHERITED");

    sluice::test::TempDir dir;
    spec.argv = {"/bin/pwd"};
    spec.working_dir = dir.path();
    r = run_command(spec);
    CHECK(r.output == fs::canonical(dir.path()).string() + "\n");

    const auto env = minimal_environment({"SLUICE_BUNDLE=x"});
    CHECK(env == std::vector<std::string>{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                                          "LANG=C.UTF-8", "HOME=/nonexistent", "SLUICE_BUNDLE=x"});
}

TEST_CASE("run_command reports a command that cannot start", "[policy][process]") {
    sluice::test::TempDir dir;

    SECTION("missing") {
        CommandSpec spec;
        spec.argv = {"/nonexistent/scanner", "x"};
        auto r = run_command(spec);
        CHECK(r.outcome == Outcome::failed_to_start);
        CHECK(r.error == "cannot start /nonexistent/scanner: No such file or directory");
        CHECK(r.describe() == r.error);
    }
    SECTION("not executable") {
        sluice::test::write_file(dir / "script", "#!/bin/sh\nexit 0\n");
        CommandSpec spec;
        spec.argv = {(dir / "script").string()};
        auto r = run_command(spec);
        CHECK(r.outcome == Outcome::failed_to_start);
        CHECK_THAT(r.error, Catch::Contains("Permission denied"));
    }
    SECTION("no PATH search") {
        CommandSpec spec;
        spec.argv = {"sh", "-c", "exit 0"};
        spec.env = minimal_environment();
        auto r = run_command(spec);
        CHECK(r.outcome == Outcome::failed_to_start);
        CHECK_THAT(r.error, Catch::Contains("not an absolute path"));
    }
    SECTION("empty command") {
        auto r = run_command(CommandSpec{});
        CHECK(r.outcome == Outcome::failed_to_start);
        CHECK_FALSE(r.error.empty());
    }
    SECTION("missing working directory") {
        auto spec = shell("exit 0");
        spec.working_dir = dir / "nowhere";
        auto r = run_command(spec);
        CHECK(r.outcome == Outcome::failed_to_start);
        CHECK_THAT(r.error, Catch::Contains("working directory") && Catch::Contains("nowhere") &&
                                Catch::Contains("No such file or directory"));
    }
}

TEST_CASE("run_command kills the whole process group on timeout", "[policy][process]") {
    sluice::test::TempDir dir;
    const auto pid_file = dir / "grandchild.pid";
    // The grandchild is in the background: only killing the group reaches it.
    auto spec = shell("sleep 100 & echo $! > '" + pid_file.string() + "'; sleep 100", 1500ms);

    CommandResult r;
    std::thread runner([&] { r = run_command(spec); });
    const pid_t grandchild = read_pid_file(pid_file);
    const bool was_alive = grandchild > 0 && alive(grandchild);
    runner.join();

    REQUIRE(grandchild > 0);
    CHECK(was_alive);
    CHECK(r.outcome == Outcome::timed_out);
    CHECK(r.took >= 1500ms);
    CHECK(r.took < 10s);
    CHECK(r.describe() == "timed out after 1.5s (process group killed)");
    CHECK(gone_within(grandchild, 5s));
}

TEST_CASE("run_command leaves nothing of the group behind after the command exits", "[policy][process]") {
    sluice::test::TempDir dir;
    const auto pid_file = dir / "grandchild.pid";

    SECTION("a background child with its own output") {
        auto r = run_command(shell("sleep 100 >/dev/null 2>&1 & echo $! > '" + pid_file.string() + "'; echo done"));
        CHECK(r.outcome == Outcome::exited);
        CHECK(r.exit_code == 0);
        CHECK(r.output == "done\n");
        CHECK(r.took < 10s);
        const pid_t grandchild = read_pid_file(pid_file, 1s);
        REQUIRE(grandchild > 0);
        CHECK(gone_within(grandchild, 5s));
    }
    SECTION("a background child holding the output pipe does not hold the caller") {
        auto r = run_command(shell("sleep 100 & echo $! > '" + pid_file.string() + "'; echo done; exit 4"));
        CHECK(r.outcome == Outcome::exited);
        CHECK(r.exit_code == 4);
        CHECK(r.output == "done\n");
        CHECK(r.took < 10s);
        const pid_t grandchild = read_pid_file(pid_file, 1s);
        REQUIRE(grandchild > 0);
        CHECK(gone_within(grandchild, 5s));
    }
}

TEST_CASE("run_command leaks no descriptors, in either direction", "[policy][process]") {
    sluice::test::TempDir dir;
    sluice::test::write_file(dir / "f", "x");
    // Opened the careless way, without O_CLOEXEC: the command must not get it.
    const int careless = ::open((dir / "f").c_str(), O_RDONLY);
    REQUIRE(careless >= 0);

    const auto before = open_fd_count();
    CommandSpec spec;
    spec.argv = {"/bin/ls", "/proc/self/fd"};
    auto r = run_command(spec);
    CHECK(r.outcome == Outcome::exited);
    // 0, 1, 2 and ls's own descriptor on the directory it lists.
    CHECK(r.output == "0\n1\n2\n3\n");

    for (int i = 0; i < 5; ++i) {
        (void)run_command(shell("exit 1"));
        (void)run_command(shell("sleep 10", 50ms));
        CommandSpec missing;
        missing.argv = {"/nonexistent"};
        (void)run_command(missing);
    }
    CHECK(open_fd_count() == before);
    ::close(careless);
}

TEST_CASE("run_command resets signals the caller ignores", "[policy][process]") {
    auto* previous = std::signal(SIGPIPE, SIG_IGN);
    auto r = run_command(shell("grep SigIgn /proc/self/status"));
    std::signal(SIGPIPE, previous);
    CHECK(r.output == "SigIgn:\t0000000000000000\n");
}

TEST_CASE("run_command runs from several threads at once", "[policy][process]") {
    constexpr int kThreads = 8;
    std::vector<CommandResult> results(kThreads);
    std::vector<std::thread> threads;
    for (int i = 0; i < kThreads; ++i) {
        threads.emplace_back([i, &results] {
            auto spec = shell("sleep 0.1; echo \"$0\"; exit $1");
            spec.argv.push_back("thread-" + std::to_string(i));
            spec.argv.push_back(std::to_string(i));
            results[static_cast<std::size_t>(i)] = run_command(spec);
        });
    }
    for (auto& t : threads) t.join();
    for (int i = 0; i < kThreads; ++i) {
        const auto& r = results[static_cast<std::size_t>(i)];
        CHECK(r.outcome == Outcome::exited);
        CHECK(r.exit_code == i);
        CHECK(r.output == "thread-" + std::to_string(i) + "\n");
        // Every thread's pipe reached EOF at its own command's end, not at the slowest one's.
        CHECK(r.took < 5s);
    }
}

namespace {

/// A TCP listener on 127.0.0.1 that can tell whether anyone connected.
class Listener {
public:
    Listener() {
        fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd_, 8) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port_ = ntohs(a.sin_port);
    }
    ~Listener() { ::close(fd_); }
    Listener(const Listener&) = delete;
    Listener& operator=(const Listener&) = delete;
    [[nodiscard]] int port() const { return port_; }
    /// Whether a connection is waiting (the command has already exited).
    bool connected() {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 200) != 1) return false;
        const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) ::close(c);
        return c >= 0;
    }

private:
    int fd_ = -1;
    int port_ = 0;
};

}  // namespace

TEST_CASE("run_command without ip_network: Unix sockets only, for the command and its children", "[policy][process]") {
    Listener tcp;
    sluice::test::TempDir dir;
    // Each line: what was tried, then "ok" or the errno name. python3 runs
    // as a child of sh, which proves the filter is inherited.
    std::ofstream(dir / "probe.py") << "import errno, socket\n"
                                       "def t(name, f):\n"
                                       "    try:\n"
                                       "        f(); print(name, 'ok')\n"
                                       "    except OSError as e:\n"
                                       "        print(name, errno.errorcode.get(e.errno, e.errno))\n"
                                       "t('inet', lambda: socket.create_connection(('127.0.0.1', "
                                    << tcp.port()
                                    << "), 2).close())\n"
                                       "t('inet6', lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM).close())\n"
                                       "t('netlink', lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW).close())\n"
                                       "t('unix', lambda: socket.socket(socket.AF_UNIX, socket.SOCK_STREAM).close())\n"
                                       "t('pair', lambda: [s.close() for s in socket.socketpair()])\n";
    auto spec = shell("/usr/bin/python3 -I '" + (dir / "probe.py").string() + "'; exit $?");

    SECTION("cut off") {
        spec.ip_network = false;
        auto r = run_command(spec);
        INFO(r.describe() << "\n" << r.output);
        REQUIRE(r.outcome == Outcome::exited);
        CHECK(r.exit_code == 0);
        CHECK(r.output == "inet EAFNOSUPPORT\ninet6 EAFNOSUPPORT\nnetlink EAFNOSUPPORT\nunix ok\npair ok\n");
        CHECK_FALSE(tcp.connected());
    }
    SECTION("the default keeps the network (so the check above can fail)") {
        auto r = run_command(spec);
        INFO(r.describe() << "\n" << r.output);
        REQUIRE(r.outcome == Outcome::exited);
        CHECK(r.exit_code == 0);
        CHECK_THAT(r.output, Catch::StartsWith("inet ok\n"));
        CHECK(tcp.connected());
    }
}

TEST_CASE("substitute replaces known placeholders only", "[policy][process]") {
    const std::map<std::string, std::string> values{{"path", "/q/bag 1"}, {"name", "{path}"}};
    CHECK(substitute({"/usr/bin/scan", "{path}", "--log={path}/log", "{path}{path}"}, values) ==
          std::vector<std::string>{"/usr/bin/scan", "/q/bag 1", "--log=/q/bag 1/log", "/q/bag 1/q/bag 1"});
    // Unknown or unclosed placeholders stay; values are not scanned again.
    CHECK(substitute({"{other}", "{path", "{name}", "{{path}}", "{}", ""}, values) ==
          std::vector<std::string>{"{other}", "{path", "{path}", "{/q/bag 1}", "{}", ""});
    CHECK(substitute({}, values).empty());
}

TEST_CASE("CommandResult::describe formats each outcome", "[policy][process]") {
    CommandResult r;
    r.outcome = Outcome::timed_out;
    r.took = 30004ms;
    CHECK(r.describe() == "timed out after 30s (process group killed)");
    r.took = 250ms;
    CHECK(r.describe() == "timed out after 250ms (process group killed)");
    r.outcome = Outcome::failed_to_start;
    r.error = "cannot start /x: No such file or directory";
    CHECK(r.describe() == r.error);
    r.outcome = Outcome::signalled;
    r.signal = 9;
    CHECK(r.describe() == "killed by signal 9");
}
