// Real sockets on 127.0.0.1: UdpSender → UdpReceiver.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "sluice/diode/diode.hpp"

using namespace std::chrono_literals;
namespace diode = sluice::diode;
using Datagrams = std::span<const std::span<const std::byte>>;

namespace {

diode::Endpoint loopback(std::uint16_t port) { return *diode::parse_endpoint("127.0.0.1:" + std::to_string(port)); }

/// Deterministic contents: an 8-byte sequence number, then bytes derived
/// from it, so a datagram that arrives corrupted, cut or swapped is noticed.
std::byte pattern_byte(std::uint64_t seq, std::size_t j) { return static_cast<std::byte>((seq * 131 + j * 7) & 0xff); }

struct Payload {
    std::vector<std::byte> storage;
    std::vector<std::span<const std::byte>> datagrams;

    explicit Payload(const std::vector<std::size_t>& sizes) {
        std::size_t total = 0;
        for (auto s : sizes) total += s;
        storage.resize(total);
        std::size_t at = 0;
        for (std::uint64_t seq = 0; seq < sizes.size(); ++seq) {
            std::byte* d = storage.data() + at;
            for (std::size_t j = 0; j < sizes[seq]; ++j) d[j] = pattern_byte(seq, j);
            if (sizes[seq] >= 8) std::memcpy(d, &seq, 8);
            datagrams.emplace_back(d, sizes[seq]);
            at += sizes[seq];
        }
    }
    Payload(std::size_t count, std::size_t size) : Payload(std::vector<std::size_t>(count, size)) {}
};

/// Sequence number of a received datagram, or nullopt if its contents are not
/// what the sender put in.
std::optional<std::uint64_t> check(std::span<const std::byte> d, std::size_t expected_size) {
    if (d.size() != expected_size || d.size() < 8) return std::nullopt;
    std::uint64_t seq = 0;
    std::memcpy(&seq, d.data(), 8);
    for (std::size_t j = 8; j < d.size(); ++j)
        if (d[j] != pattern_byte(seq, j)) return std::nullopt;
    return seq;
}

/// An io_context on its own thread, stopped before anything else is torn down.
struct IoThread {
    boost::asio::io_context io;
    std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> guard;
    std::thread thread;

    void start() {
        guard.emplace(io.get_executor());
        thread = std::thread([this] { io.run(); });
    }
    void stop() {
        if (!thread.joinable()) return;
        guard.reset();
        io.stop();
        thread.join();
    }
    ~IoThread() { stop(); }
};

/// Receivers on an io thread. The destructor stops the thread first, so the
/// receivers are closed while nothing runs them.
struct Rig {
    IoThread io;
    std::vector<std::unique_ptr<diode::UdpReceiver>> receivers;

    diode::UdpReceiver& add(diode::ReceiverOptions options, diode::UdpReceiver::Handler handler) {
        receivers.push_back(std::make_unique<diode::UdpReceiver>(io.io, std::move(options), std::move(handler)));
        return *receivers.back();
    }
    ~Rig() { io.stop(); }
};

diode::ReceiverOptions one_lane(bool gro = true) {
    diode::ReceiverOptions o;
    o.lanes = {loopback(0)};
    o.gro = gro;
    return o;
}

/// Waits until `done` holds, for at most `timeout`.
bool wait_for(const std::function<bool()>& done, std::chrono::seconds timeout = 20s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(1ms);
    }
    return true;
}

/// Handler state: sequence numbers in arrival order, and bad datagrams.
struct Arrivals {
    std::size_t size = 0;
    std::vector<std::uint64_t> seqs;
    std::uint64_t bad = 0;

    diode::UdpReceiver::Handler handler() {
        return [this](Datagrams batch) {
            for (const auto& d : batch) {
                if (auto seq = check(d, size)) {
                    seqs.push_back(*seq);
                } else {
                    ++bad;
                }
            }
        };
    }
};

bool strictly_increasing(const std::vector<std::uint64_t>& v) {
    return std::adjacent_find(v.begin(), v.end(), [](auto a, auto b) { return a >= b; }) == v.end();
}

std::size_t rmem_max() {
    std::ifstream in("/proc/sys/net/core/rmem_max");
    std::size_t value = 0;
    in >> value;
    return value;
}

}  // namespace

TEST_CASE("20 000 datagrams cross loopback intact and in order", "[diode]") {
    const bool gso = GENERATE(true, false);
    const bool gro = GENERATE(true, false);
    CAPTURE(gso, gro);
    const std::size_t n = 20'000, size = 1390;
    const Payload payload(n, size);

    Rig rig;
    Arrivals arrivals{size, {}, 0};
    auto& rx = rig.add(one_lane(gro), arrivals.handler());
    rig.io.start();

    diode::SenderOptions so;
    so.lanes = {loopback(rx.local_port(0))};
    so.rate_bits_per_s = 200'000'000;
    so.gso = gso;
    diode::UdpSender tx(so);
    if (gso) CHECK(tx.gso_active());  // every kernel this targets (≥ 4.18) has UDP_SEGMENT
    if (!gso) CHECK_FALSE(tx.gso_active());

    REQUIRE(tx.send(payload.datagrams));
    const bool all = wait_for([&] { return rx.stats().datagrams >= n; });
    rig.io.stop();

    const auto rs = rx.stats();
    const auto ss = tx.stats();
    INFO("received " << rs.datagrams << " in " << rs.buffers << " buffers, " << rs.recv_calls << " recvmmsg calls, kernel drops " << rs.kernel_drops
                     << "; rcvbuf " << rx.effective_rcvbuf() << " " << rx.warning());
    CHECK(all);
    CHECK(ss.datagrams == n);
    CHECK(ss.bytes == n * size);
    CHECK(ss.wire_bytes == n * (size + 28));
    CHECK(ss.enobufs_retries == 0);
    CHECK(ss.gso_fallbacks == 0);
    CHECK(rs.truncated == 0);
    CHECK(rs.kernel_drops == 0);
    CHECK(rs.bytes == n * size);
    CHECK(arrivals.bad == 0);
    CHECK(arrivals.seqs.size() == n);
    CHECK(strictly_increasing(arrivals.seqs));
    if (gso && gro && rx.gro_active()) {
        // Loopback hands GSO super-packets to a GRO socket whole: far fewer
        // buffers than datagrams (and the handler still saw them one by one).
        CHECK(rs.buffers * 10 < n);
    }
}

TEST_CASE("two lanes: runs are striped round-robin and each lane keeps its order", "[diode]") {
    const bool gso = GENERATE(true, false);
    CAPTURE(gso);
    const std::size_t n = 20'000, size = 1390;
    const Payload payload(n, size);

    Rig rig;
    Arrivals lane0{size, {}, 0}, lane1{size, {}, 0};
    auto& rx0 = rig.add(one_lane(), lane0.handler());
    auto& rx1 = rig.add(one_lane(), lane1.handler());
    rig.io.start();

    diode::SenderOptions so;
    so.lanes = {loopback(rx0.local_port(0)), loopback(rx1.local_port(0))};
    so.rate_bits_per_s = 200'000'000;
    so.gso = gso;
    diode::UdpSender tx(so);
    REQUIRE(tx.send(payload.datagrams));
    CHECK(wait_for([&] { return rx0.stats().datagrams + rx1.stats().datagrams >= n; }));
    rig.io.stop();

    CHECK(lane0.bad + lane1.bad == 0);
    CHECK(lane0.seqs.size() + lane1.seqs.size() == n);
    CHECK(strictly_increasing(lane0.seqs));
    CHECK(strictly_increasing(lane1.seqs));
    // Runs: 47 datagrams of 1390 bytes fit one 65507-byte UDP maximum.
    const std::size_t run = 65507 / size;
    for (auto seq : lane0.seqs) REQUIRE((seq / run) % 2 == 0);
    for (auto seq : lane1.seqs) REQUIRE((seq / run) % 2 == 1);
}

TEST_CASE("one receiver with two lanes gets the datagrams of both", "[diode]") {
    const std::size_t n = 5'000, size = 1390;
    const Payload payload(n, size);
    Rig rig;
    Arrivals all{size, {}, 0};
    diode::ReceiverOptions ro;
    ro.lanes = {loopback(0), loopback(0)};
    auto& rx = rig.add(ro, all.handler());
    REQUIRE(rx.local_port(0) != rx.local_port(1));
    rig.io.start();

    diode::SenderOptions so;
    so.lanes = {loopback(rx.local_port(0)), loopback(rx.local_port(1))};
    so.rate_bits_per_s = 200'000'000;
    diode::UdpSender tx(so);
    REQUIRE(tx.send(payload.datagrams));
    CHECK(wait_for([&] { return rx.stats().datagrams >= n; }));
    rig.io.stop();

    CHECK(all.bad == 0);
    std::sort(all.seqs.begin(), all.seqs.end());
    REQUIRE(all.seqs.size() == n);
    for (std::uint64_t i = 0; i < n; ++i) REQUIRE(all.seqs[i] == i);
}

TEST_CASE("mixed sizes up to the UDP maximum arrive exactly as sent", "[diode]") {
    const bool gso = GENERATE(true, false);
    const bool gro = GENERATE(true, false);
    CAPTURE(gso, gro);
    // Runs of equal sizes, runs ending in a shorter datagram (GSO allows it),
    // jumbo datagrams, the IPv4 maximum, and empty datagrams.
    std::vector<std::size_t> sizes;
    for (int round = 0; round < 40; ++round) {
        for (int i = 0; i < 10; ++i) sizes.push_back(1390);
        sizes.push_back(700);
        for (int i = 0; i < 5; ++i) sizes.push_back(9000);
        sizes.push_back(65507);
        sizes.push_back(0);
        sizes.push_back(100);
        for (int i = 0; i < 70; ++i) sizes.push_back(1472);
        sizes.push_back(1473);
    }
    const Payload payload(sizes);

    Rig rig;
    std::vector<std::vector<std::byte>> received;
    auto& rx = rig.add(one_lane(gro), [&](Datagrams batch) {
        for (const auto& d : batch) received.emplace_back(d.begin(), d.end());
    });
    rig.io.start();
    diode::SenderOptions so;
    so.lanes = {loopback(rx.local_port(0))};
    so.rate_bits_per_s = 500'000'000;
    so.gso = gso;
    diode::UdpSender tx(so);
    REQUIRE(tx.send(payload.datagrams));
    CHECK(wait_for([&] { return rx.stats().datagrams >= sizes.size(); }));
    rig.io.stop();

    CHECK(tx.stats().gso_fallbacks == 0);
    CHECK(rx.stats().truncated == 0);
    REQUIRE(received.size() == sizes.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        CAPTURE(i, sizes[i]);
        REQUIRE(std::equal(received[i].begin(), received[i].end(), payload.datagrams[i].begin(),
                           payload.datagrams[i].end()));
    }
}

TEST_CASE("a datagram over the UDP maximum is refused, not truncated", "[diode]") {
    Rig rig;
    auto& rx = rig.add(one_lane(), [](Datagrams) {});
    diode::SenderOptions so;
    so.lanes = {loopback(rx.local_port(0))};
    so.rate_bits_per_s = 100'000'000;
    diode::UdpSender tx(so);
    const Payload payload(std::vector<std::size_t>{100, 65508});
    auto r = tx.send(payload.datagrams);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("65508 bytes") && Catch::Contains("UDP maximum of 65507"));
}

TEST_CASE("a paced send takes at least its wire bytes over the rate", "[diode]") {
    Rig rig;
    auto& rx = rig.add(one_lane(), [](Datagrams) {});
    rig.io.start();
    const bool gso = GENERATE(true, false);
    CAPTURE(gso);
    diode::SenderOptions so;
    so.lanes = {loopback(rx.local_port(0))};
    so.rate_bits_per_s = 50'000'000;
    so.burst_bytes = 64 * 1024;
    so.gso = gso;
    diode::UdpSender tx(so);
    const std::size_t n = 2000, size = 1390;
    const Payload payload(n, size);

    const auto start = std::chrono::steady_clock::now();
    REQUIRE(tx.send(payload.datagrams));
    const auto elapsed = std::chrono::steady_clock::now() - start;

    // The first bucket leaves at once; everything after it waits for the rate.
    const std::size_t wire = n * diode::wire_bytes(size, false);
    CHECK(tx.stats().wire_bytes == wire);
    const double lower_bound_s = static_cast<double>(wire - so.burst_bytes) * 8 / static_cast<double>(so.rate_bits_per_s);
    const double elapsed_s = std::chrono::duration<double>(elapsed).count();
    INFO("elapsed " << elapsed_s << " s, lower bound " << lower_bound_s << " s");
    CHECK(elapsed_s >= lower_bound_s);
}

TEST_CASE("the receive buffer warning names the sysctl and the value to set", "[diode]") {
    CHECK(diode::rcvbuf_warning(64 << 20, 64 << 20).empty());
    CHECK(diode::rcvbuf_warning(64 << 20, 128 << 20).empty());
    const auto text = diode::rcvbuf_warning(64 << 20, 4 << 20);
    CHECK_THAT(text, Catch::Contains("net.core.rmem_max=67108864"));
    CHECK_THAT(text, Catch::Contains("4194304"));
}

TEST_CASE("a receive buffer above rmem_max without force is capped and warned about", "[diode]") {
    const std::size_t limit = rmem_max();
    REQUIRE(limit > 0);
    boost::asio::io_context io;
    auto o = one_lane();
    o.rcvbuf_bytes = limit * 2 + 4096;
    o.force_rcvbuf = false;
    diode::UdpReceiver rx(io, o, [](Datagrams) {});
    CHECK(rx.effective_rcvbuf() == limit);
    CHECK_THAT(rx.warning(), Catch::Contains("net.core.rmem_max=" + std::to_string(o.rcvbuf_bytes)));

    // With force (CAP_NET_ADMIN) the request is granted whole; without the
    // capability the kernel caps it and the receiver must say so.
    auto forced = one_lane();
    forced.rcvbuf_bytes = limit * 2 + 4096;
    diode::UdpReceiver rx2(io, forced, [](Datagrams) {});
    if (rx2.effective_rcvbuf() >= forced.rcvbuf_bytes) {
        CHECK(rx2.warning().empty());
    } else {
        CHECK_FALSE(rx2.warning().empty());
    }
}

TEST_CASE("a throwing handler is counted and receiving goes on", "[diode]") {
    Rig rig;
    std::size_t seen = 0;
    auto& rx = rig.add(one_lane(), [&](Datagrams batch) {
        seen += batch.size();
        if (seen == batch.size()) throw std::runtime_error("first batch");
    });
    rig.io.start();
    diode::SenderOptions so;
    so.lanes = {loopback(rx.local_port(0))};
    so.rate_bits_per_s = 100'000'000;
    diode::UdpSender tx(so);
    const Payload payload(10, 100);
    REQUIRE(tx.send(std::span(payload.datagrams).first(5)));
    REQUIRE(wait_for([&] { return rx.stats().handler_errors == 1; }));
    REQUIRE(tx.send(std::span(payload.datagrams).subspan(5)));
    REQUIRE(wait_for([&] { return rx.stats().datagrams == 10; }));
    rig.io.stop();
    CHECK(seen == 10);
}

TEST_CASE("after stop() the handler is not called again", "[diode]") {
    boost::asio::io_context io;
    std::size_t seen = 0;
    diode::UdpReceiver rx(io, one_lane(), [&](Datagrams batch) { seen += batch.size(); });
    diode::SenderOptions so;
    so.lanes = {loopback(rx.local_port(0))};
    so.rate_bits_per_s = 100'000'000;
    diode::UdpSender tx(so);
    const Payload payload(10, 100);
    REQUIRE(tx.send(payload.datagrams));
    while (seen < 10) REQUIRE(io.run_one_for(5s) > 0);
    rx.stop();
    REQUIRE(tx.send(payload.datagrams));
    io.run_for(50ms);
    CHECK(seen == 10);
}

TEST_CASE("sending with nobody listening completes: ICMP errors are retried, not fatal", "[diode]") {
    // A diode has no return path; on loopback the kernel answers a closed port
    // with ICMP, which a connected socket reports on the next send.
    std::uint16_t closed_port = 0;
    {
        boost::asio::io_context io;
        diode::UdpReceiver probe(io, one_lane(), [](Datagrams) {});
        closed_port = probe.local_port(0);
    }
    diode::SenderOptions so;
    so.lanes = {loopback(closed_port)};
    so.rate_bits_per_s = 100'000'000;
    so.gso = GENERATE(true, false);
    CAPTURE(so.gso);
    diode::UdpSender tx(so);
    const Payload payload(500, 1000);
    REQUIRE(tx.send(payload.datagrams));
    CHECK(tx.stats().datagrams == 500);
    CHECK(tx.stats().refused_retries > 0);
}

TEST_CASE("start-up errors name the lane and what is wrong", "[diode]") {
    diode::SenderOptions none;
    CHECK_THROWS_WITH(diode::UdpSender(none), Catch::Contains("no lanes"));

    diode::SenderOptions zero;
    zero.lanes = {loopback(0)};
    CHECK_THROWS_WITH(diode::UdpSender(zero), Catch::Contains("127.0.0.1:0") && Catch::Contains("port 0"));

    boost::asio::io_context io;
    diode::UdpReceiver first(io, one_lane(), [](Datagrams) {});
    diode::ReceiverOptions same;
    same.lanes = {loopback(first.local_port(0))};
    const std::string lane = "127.0.0.1:" + std::to_string(first.local_port(0));
    CHECK_THROWS_WITH(diode::UdpReceiver(io, same, [](Datagrams) {}),
                      Catch::Contains(lane) && Catch::Contains("bind"));
}

TEST_CASE("IPv6 loopback lanes carry datagrams with 48 bytes of headers", "[diode]") {
    Rig rig;
    Arrivals arrivals{1390, {}, 0};
    diode::ReceiverOptions ro;
    ro.lanes = {*diode::parse_endpoint("[::1]:0")};
    diode::UdpReceiver* rx = nullptr;
    try {
        rx = &rig.add(ro, arrivals.handler());
    } catch (const std::runtime_error& e) {
        WARN("no IPv6 loopback here: " << e.what());
        return;
    }
    rig.io.start();
    diode::SenderOptions so;
    so.lanes = {*diode::parse_endpoint("[::1]:" + std::to_string(rx->local_port(0)))};
    so.rate_bits_per_s = 200'000'000;
    diode::UdpSender tx(so);
    const Payload payload(2000, 1390);
    REQUIRE(tx.send(payload.datagrams));
    CHECK(wait_for([&] { return rx->stats().datagrams >= 2000; }));
    rig.io.stop();
    CHECK(arrivals.bad == 0);
    CHECK(arrivals.seqs.size() == 2000);
    CHECK(strictly_increasing(arrivals.seqs));
    CHECK(tx.stats().wire_bytes == 2000 * diode::wire_bytes(1390, true));
}

// Throughput on loopback; run by hand:
//   test_diode "[.bench]" -s        (SLUICE_BENCH_RATE=bits/s to pace; default unpaced)
TEST_CASE("loopback throughput", "[.bench][diode]") {
    const bool gso = GENERATE(true, false);
    const bool gro = GENERATE(true, false);
    const std::size_t size = 1400;
    const char* rate_env = std::getenv("SLUICE_BENCH_RATE");
    const std::uint64_t rate = rate_env ? std::strtoull(rate_env, nullptr, 10) : 0;
    const Payload payload(4096, size);

    Rig rig;
    auto& rx = rig.add(one_lane(gro), [](Datagrams) {});
    rig.io.start();
    diode::SenderOptions so;
    so.lanes = {loopback(rx.local_port(0))};
    so.rate_bits_per_s = rate;
    so.burst_bytes = 256 * 1024;
    so.gso = gso;
    diode::UdpSender tx(so);

    const auto start = std::chrono::steady_clock::now();
    while (std::chrono::steady_clock::now() - start < 3s) REQUIRE(tx.send(payload.datagrams));
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::this_thread::sleep_for(200ms);
    rig.io.stop();
    const auto ss = tx.stats();
    const auto rs = rx.stats();
    const double sent_gbps = static_cast<double>(ss.bytes) * 8 / seconds / 1e9;
    const double recv_gbps = static_cast<double>(rs.bytes) * 8 / seconds / 1e9;
    const double loss = 100.0 * (1.0 - static_cast<double>(rs.datagrams) / static_cast<double>(ss.datagrams));
    std::cout << "bench gso=" << gso << "(" << tx.gso_active() << ") gro=" << gro << "(" << rx.gro_active()
              << ") rate=" << rate << " sent=" << sent_gbps << " Gbit/s received=" << recv_gbps
              << " Gbit/s payload, loss=" << loss << "% (kernel drops " << rs.kernel_drops << "), "
              << static_cast<double>(ss.datagrams) / seconds / 1e6 << " Mpps sent, send_calls=" << ss.send_calls
              << " recv_calls=" << rs.recv_calls << " buffers=" << rs.buffers << " rcvbuf=" << rx.effective_rcvbuf() << "\n";
    SUCCEED();
}
