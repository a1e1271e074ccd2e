#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <thread>
#include <vector>

#include "sluice/daemon/log.hpp"

using namespace sluice::daemon;

TEST_CASE("log lines carry the sd-daemon priority and key=value pairs", "[daemon][log]") {
    const std::string id = "3f2a9c";
    CHECK(format_log_line(LogLevel::info, "bundle_queued", {{"bundle", id}, {"priority", "high"}}) ==
          "<6>event=bundle_queued bundle=3f2a9c priority=high\n");
    CHECK(format_log_line(LogLevel::error, "x", {{"n", 42}, {"neg", -3}, {"ok", true}, {"ratio", 0.5}}) ==
          "<3>event=x n=42 neg=-3 ok=true ratio=0.5\n");
    CHECK(format_log_line(LogLevel::warning, "x", {}) == "<4>event=x\n");
    CHECK(format_log_line(LogLevel::debug, "x", {{"path", std::filesystem::path("/a/b")}}) ==
          "<7>event=x path=/a/b\n");
}

TEST_CASE("log values are quoted and escaped when needed", "[daemon][log]") {
    CHECK(log_quote("plain-value_1.2:3/4") == "plain-value_1.2:3/4");
    CHECK(log_quote("") == "\"\"");
    CHECK(log_quote("two words") == "\"two words\"");
    CHECK(log_quote("a=b") == "\"a=b\"");
    CHECK(log_quote("say \"hi\"") == "\"say \\\"hi\\\"\"");
    CHECK(log_quote("back\\slash") == "\"back\\\\slash\"");
    CHECK(log_quote("line\nbreak\r\t") == "\"line\\nbreak\\r\\t\"");
    CHECK(log_quote(std::string("nul\0bell\x07", 9)) == "\"nul\\x00bell\\x07\"");
    CHECK(log_quote("caf\xc3\xa9") == "caf\xc3\xa9");                 // valid UTF-8 stays bare
    CHECK(log_quote("bad\xff\xc3") == "\"bad\\xff\\xc3\"");           // invalid UTF-8 is escaped
    CHECK(log_quote("\xed\xa0\x80") == "\"\\xed\\xa0\\x80\"");        // a UTF-16 surrogate is not UTF-8
    // A hostile file name cannot forge a second event or field.
    const auto line = format_log_line(LogLevel::info, "received", {{"file", "x\n<3>event=forged y=1"}});
    CHECK(line == "<6>event=received file=\"x\\n<3>event=forged y=1\"\n");
    CHECK(std::count(line.begin(), line.end(), '\n') == 1);
}

TEST_CASE("log writes whole lines to stderr from many threads", "[daemon][log]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const int saved = ::dup(STDERR_FILENO);
    REQUIRE(::dup2(fds[1], STDERR_FILENO) == STDERR_FILENO);
    ::close(fds[1]);

    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
        threads.emplace_back([t] {
            for (int i = 0; i < 50; ++i) log_info("tick", {{"thread", t}, {"i", i}, {"pad", std::string(100, 'x')}});
        });
    log_debug("hidden");  // below the default threshold
    for (auto& th : threads) th.join();
    ::dup2(saved, STDERR_FILENO);
    ::close(saved);

    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);

    std::size_t lines = 0;
    std::size_t start = 0;
    for (std::size_t nl; (nl = out.find('\n', start)) != std::string::npos; start = nl + 1) {
        const std::string line = out.substr(start, nl - start);
        INFO(line);
        CHECK(line.rfind("<6>event=tick thread=", 0) == 0);
        CHECK(line.size() == line.find("pad=") + 4 + 100);
        ++lines;
    }
    CHECK(lines == 200);
    CHECK(start == out.size());
}
