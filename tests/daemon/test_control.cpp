#include <catch2/catch.hpp>

#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <thread>

#include <boost/asio/io_context.hpp>

#include "sluice/daemon/control.hpp"
#include "support/temp_dir.hpp"

using namespace sluice::daemon;
using namespace std::chrono_literals;
using json = nlohmann::json;
using sluice::test::TempDir;
namespace fs = std::filesystem;

namespace {

/// A ControlServer running on its own io_context thread.
class Harness {
public:
    template <class Handler>
    Harness(const fs::path& path, Handler handler, ControlLimits limits = {}) {
        server.emplace(io, path, std::move(handler), limits);
        thread_ = std::thread([this] { io.run(); });
    }
    ~Harness() {
        io.stop();
        thread_.join();
        server.reset();
    }
    Harness(const Harness&) = delete;
    Harness& operator=(const Harness&) = delete;

    boost::asio::io_context io;
    std::optional<ControlServer> server;

private:
    std::thread thread_;
};

/// A bare client for what control_call never sends.
class RawClient {
public:
    explicit RawClient(const fs::path& path) {
        fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strcpy(addr.sun_path, path.c_str());
        REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~RawClient() { ::close(fd_); }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    void send(const std::string& bytes) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
            if (n <= 0) return;  // the server may close early; the reply says why
            done += static_cast<std::size_t>(n);
        }
    }
    /// The next line (without newline); "<eof>" at end of stream, "<timeout>".
    std::string line() {
        for (;;) {
            const auto nl = buffer_.find('\n');
            if (nl != std::string::npos) {
                std::string l = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return l;
            }
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 5000) != 1) return "<timeout>";
            char buf[4096];
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) return "<eof>";
            buffer_.append(buf, static_cast<std::size_t>(n));
        }
    }
    json reply() { return json::parse(line()); }

private:
    int fd_ = -1;
    std::string buffer_;
};

json echo(const json& request, const Peer& peer) {
    if (request["command"] == "fail") throw std::runtime_error("the queue is full; try later");
    if (request["command"] == "weird") throw 42;
    if (request["command"] == "refuse") return json{{"ok", false}, {"error", "refused on purpose"}};
    if (request["command"] == "not-object") return json::array({1, 2});
    return json{{"command", request["command"]}, {"uid", peer.uid}, {"gid", peer.gid}, {"pid", peer.pid},
                {"user", peer.user}, {"groups", peer.groups}};
}

std::string current_user() {
    passwd* pw = ::getpwuid(::getuid());
    return pw != nullptr ? pw->pw_name : std::to_string(::getuid());
}

}  // namespace

TEST_CASE("control round trip carries the caller's kernel credentials", "[daemon][control]") {
    TempDir dir;
    const auto sock = dir / "sender.sock";
    Harness h(sock, ControlHandler(echo));

    struct stat st {};
    REQUIRE(::stat(sock.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0666);

    const json r = control_call(sock, {{"command", "status"}, {"json", true}}, 5s);
    CHECK(r["ok"] == true);
    CHECK(r["command"] == "status");
    CHECK(r["uid"] == ::getuid());
    CHECK(r["gid"] == ::getgid());
    CHECK(r["pid"] == ::getpid());
    CHECK(r["user"] == current_user());
    REQUIRE(r["groups"].is_array());
    CHECK_FALSE(r["groups"].empty());

    const json refused = control_call(sock, {{"command", "refuse"}}, 5s);
    CHECK(refused == json{{"ok", false}, {"error", "refused on purpose"}});
}

TEST_CASE("control answers bad requests with errors and keeps the connection", "[daemon][control]") {
    TempDir dir;
    const auto sock = dir / "c.sock";
    Harness h(sock, ControlHandler(echo));
    RawClient c(sock);

    c.send("{not json\n");
    CHECK(c.reply() == json{{"ok", false}, {"error", "malformed request: not valid JSON"}});
    c.send("[1,2]\n{\"cmd\":\"x\"}\n{\"command\":7}\n");
    for (int i = 0; i < 3; ++i)
        CHECK(c.reply() ==
              json{{"ok", false}, {"error", "malformed request: expected a JSON object with a \"command\" string"}});
    c.send("{\"command\":\"fail\"}\n");
    CHECK(c.reply() == json{{"ok", false}, {"error", "the queue is full; try later"}});
    c.send("{\"command\":\"weird\"}\n");
    CHECK(c.reply() == json{{"ok", false}, {"error", "internal error"}});
    c.send("{\"command\":\"not-object\"}\n");
    CHECK(c.reply()["ok"] == false);
    // Pipelined requests are answered in order, and \r\n is accepted.
    c.send("{\"command\":\"a\"}\r\n{\"command\":\"b\"}\n{\"command\":");
    CHECK(c.reply()["command"] == "a");
    CHECK(c.reply()["command"] == "b");
    c.send("\"c\"}\n");
    CHECK(c.reply()["command"] == "c");
}

TEST_CASE("control limits request lines to 64 KiB", "[daemon][control]") {
    TempDir dir;
    const auto sock = dir / "c.sock";
    Harness h(sock, ControlHandler(echo));

    // Exactly 65536 bytes before the newline is allowed.
    const std::string head = R"({"command":"big","pad":")";
    const std::string tail = R"("})";
    const std::string max_line = head + std::string(65536 - head.size() - tail.size(), 'a') + tail;
    REQUIRE(max_line.size() == 65536);
    {
        RawClient c(sock);
        c.send(max_line + "\n");
        CHECK(c.reply()["command"] == "big");
    }
    {
        RawClient c(sock);
        c.send(std::string(65537, 'x'));
        CHECK(c.reply() ==
              json{{"ok", false}, {"error", "request line longer than 65536 bytes; connection closed"}});
        CHECK(c.line() == "<eof>");
    }
    // The server still serves others.
    CHECK(control_call(sock, {{"command", "after"}}, 5s)["ok"] == true);
}

TEST_CASE("control serves many concurrent clients", "[daemon][control]") {
    TempDir dir;
    const auto sock = dir / "c.sock";
    Harness h(sock, ControlHandler(echo));
    std::atomic<int> good{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 16; ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 20; ++i) {
                const std::string command = "c" + std::to_string(t) + "-" + std::to_string(i);
                try {
                    const json r = control_call(sock, {{"command", command}}, 10s);
                    if (r["ok"] == true && r["command"] == command) ++good;
                } catch (const std::exception&) {
                }
            }
        });
    // Idle connections held open meanwhile do not block anyone.
    RawClient idle1(sock);
    RawClient idle2(sock);
    for (auto& th : threads) th.join();
    CHECK(good == 16 * 20);
}

TEST_CASE("control refuses clients over the limit", "[daemon][control]") {
    TempDir dir;
    const auto sock = dir / "c.sock";
    Harness h(sock, ControlHandler(echo), ControlLimits{.max_line_bytes = 1024, .max_clients = 1});
    RawClient first(sock);
    first.send("{\"command\":\"x\"}\n");
    CHECK(first.reply()["ok"] == true);
    RawClient second(sock);
    CHECK(second.reply() == json{{"ok", false}, {"error", "too many control connections (1); try again later"}});
    CHECK(second.line() == "<eof>");
}

TEST_CASE("control async handlers answer from another thread", "[daemon][control]") {
    TempDir dir;
    const auto sock = dir / "c.sock";
    std::vector<std::thread> workers;
    std::mutex mutex;
    {
        Harness h(sock, AsyncControlHandler([&](const json& request, const Peer&, ControlResponder respond) {
                      if (request["command"] == "never") return;  // dropped responder: connection closes
                      if (request["command"] == "hold") {
                          std::lock_guard lock(mutex);
                          workers.emplace_back([respond] {
                              std::this_thread::sleep_for(1500ms);
                              respond({{"late", true}});
                          });
                          return;
                      }
                      std::lock_guard lock(mutex);
                      workers.emplace_back([respond, request] {
                          std::this_thread::sleep_for(20ms);
                          respond({{"echo", request["command"]}});
                          respond({{"echo", "twice"}});  // ignored
                      });
                  }));
        const json r = control_call(sock, {{"command", "verify"}}, 5s);
        CHECK(r == json{{"echo", "verify"}, {"ok", true}});

        try {
            (void)control_call(sock, {{"command", "never"}}, 5s);
            FAIL("no exception");
        } catch (const std::runtime_error& e) {
            CHECK_THAT(e.what(), Catch::Contains("closed the connection without answering"));
        }
        try {
            (void)control_call(sock, {{"command", "hold"}}, 200ms);
            FAIL("no exception");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "timed out after 200 ms waiting for an answer from " + sock.string());
        }
        std::lock_guard lock(mutex);
        for (auto& w : workers) w.join();
    }
}

TEST_CASE("control socket lifecycle: second server refused, stale socket replaced", "[daemon][control]") {
    TempDir dir;
    const auto sock = dir / "sender.sock";
    boost::asio::io_context io;

    SECTION("a second server on a live socket is refused") {
        ControlServer first(io, sock, ControlHandler(echo));
        try {
            ControlServer second(io, sock, ControlHandler(echo));
            FAIL("second server started");
        } catch (const std::runtime_error& e) {
            CHECK(std::string(e.what()) == "cannot listen on " + sock.string() +
                                               ": another process is already listening there (is sluice-sender "
                                               "already running with this configuration?)");
        }
        CHECK(fs::exists(sock));  // the first server's socket survives
    }
    SECTION("a stale socket file is replaced, and removed on shutdown") {
        {
            const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
            sockaddr_un addr{};
            addr.sun_family = AF_UNIX;
            std::strcpy(addr.sun_path, sock.c_str());
            REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
            ::close(fd);  // a crashed daemon leaves this file behind
        }
        REQUIRE(fs::exists(sock));
        {
            ControlServer server(io, sock, ControlHandler(echo));
            CHECK(fs::is_socket(sock));
        }
        CHECK_FALSE(fs::exists(sock));
    }
    SECTION("a path that is not a socket is left alone") {
        sluice::test::write_file(sock, "precious");
        CHECK_THROWS_WITH(ControlServer(io, sock, ControlHandler(echo)),
                          Catch::Contains("exists and is not a socket"));
        CHECK(sluice::test::read_file(sock) == "precious");
    }
    SECTION("a missing directory is named") {
        CHECK_THROWS_WITH(ControlServer(io, dir / "no/such/dir.sock", ControlHandler(echo)),
                          Catch::Contains("(does " + (dir / "no/such").string() + " exist?)"));
    }
}

TEST_CASE("control_call explains connection failures", "[daemon][control]") {
    TempDir dir;
    try {
        (void)control_call(dir / "sender.sock", {{"command", "status"}}, 1s);
        FAIL("no exception");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "cannot connect to " + (dir / "sender.sock").string() +
                                           ": No such file or directory — is sluice-sender running?");
    }
    CHECK_THROWS_WITH(control_call(dir / "other.sock", {{"command", "status"}}, 1s),
                      Catch::EndsWith("is the daemon running?"));
}

TEST_CASE("roles come from uid 0 or group membership", "[daemon][control]") {
    RolesConfig roles;
    roles.officer_groups = {"sec", "sluice-officers"};
    Peer root{0, 0, 1, "root", {"root"}};
    Peer alice{1000, 1000, 2, "alice", {"alice", "sluice-operators"}};
    Peer bob{1001, 1001, 3, "bob", {"bob", "sec"}};
    CHECK(has_role(root, Role::officer, roles));
    CHECK(has_role(alice, Role::operator_, roles));
    CHECK_FALSE(has_role(alice, Role::officer, roles));
    CHECK_FALSE(has_role(alice, Role::auditor, roles));
    CHECK(has_role(bob, Role::officer, roles));
    CHECK_NOTHROW(require_role(bob, Role::officer, roles));
    CHECK_THROWS_WITH(require_role(alice, Role::officer, roles),
                      "permission denied: alice needs the officer role (a member of sec or sluice-officers)");
    roles.auditor_groups.clear();
    CHECK_THROWS_WITH(require_role(bob, Role::auditor, roles),
                      "permission denied: bob needs the auditor role (only root holds it)");
}
