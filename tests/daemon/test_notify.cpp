#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "sluice/daemon/notify.hpp"
#include "support/temp_dir.hpp"

using namespace sluice::daemon;
using sluice::test::TempDir;

namespace {

/// Sets an environment variable for one scope, restoring the old value.
class ScopedEnv {
public:
    ScopedEnv(const char* name, std::optional<std::string> value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value) ::setenv(name, value->c_str(), 1);
        else ::unsetenv(name);
    }
    ~ScopedEnv() {
        if (old_) ::setenv(name_, old_->c_str(), 1);
        else ::unsetenv(name_);
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

/// What systemd would be: a datagram socket that collects notifications.
class FakeSystemd {
public:
    explicit FakeSystemd(const std::filesystem::path& path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        REQUIRE(path.native().size() < sizeof addr.sun_path);
        std::strcpy(addr.sun_path, path.c_str());
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    }
    ~FakeSystemd() { ::close(fd_); }
    FakeSystemd(const FakeSystemd&) = delete;
    FakeSystemd& operator=(const FakeSystemd&) = delete;

    std::string receive() {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, 2000) != 1) return "<nothing>";
        char buf[4096];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        return n < 0 ? "<error>" : std::string(buf, static_cast<std::size_t>(n));
    }
    bool quiet() {
        pollfd p{fd_, POLLIN, 0};
        return ::poll(&p, 1, 50) == 0;
    }

private:
    int fd_ = -1;
};

}  // namespace

TEST_CASE("notifier sends the readiness protocol to NOTIFY_SOCKET", "[daemon][notify]") {
    TempDir dir;
    FakeSystemd systemd(dir / "notify");
    ScopedEnv env("NOTIFY_SOCKET", (dir / "notify").string());
    Notifier n;
    CHECK(n.ready());
    CHECK(systemd.receive() == "READY=1");
    CHECK(n.status("sending 2 bundles\nsecond line"));
    CHECK(systemd.receive() == "STATUS=sending 2 bundles second line");
    CHECK(n.watchdog());
    CHECK(systemd.receive() == "WATCHDOG=1");
    CHECK(n.reloading());
    CHECK_THAT(systemd.receive(), Catch::StartsWith("RELOADING=1\nMONOTONIC_USEC="));
    CHECK(n.extend_timeout(std::chrono::seconds(5)));
    CHECK(systemd.receive() == "EXTEND_TIMEOUT_USEC=5000000");
    CHECK(n.stopping());
    CHECK(systemd.receive() == "STOPPING=1");
    CHECK(systemd.quiet());
}

TEST_CASE("notifier is a no-op without NOTIFY_SOCKET", "[daemon][notify]") {
    ScopedEnv env("NOTIFY_SOCKET", std::nullopt);
    Notifier n;
    CHECK_FALSE(n.ready());
    CHECK_FALSE(n.status("x"));
    CHECK_FALSE(n.watchdog());
    CHECK_FALSE(n.stopping());
}

TEST_CASE("notifier reads the watchdog interval for this process only", "[daemon][notify]") {
    Notifier n;
    {
        ScopedEnv usec("WATCHDOG_USEC", std::nullopt);
        CHECK_FALSE(n.watchdog_interval());
    }
    {
        ScopedEnv usec("WATCHDOG_USEC", "2000000");
        ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid()));
        REQUIRE(n.watchdog_interval());
        CHECK(*n.watchdog_interval() == std::chrono::seconds(2));
    }
    {
        ScopedEnv usec("WATCHDOG_USEC", "2000000");
        ScopedEnv pid("WATCHDOG_PID", std::to_string(::getpid() + 1));  // meant for another process
        CHECK_FALSE(n.watchdog_interval());
    }
}
