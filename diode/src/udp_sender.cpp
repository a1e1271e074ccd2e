#include "sluice/diode/udp_sender.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <stdexcept>
#include <string>

namespace sluice::diode {

namespace {

constexpr std::size_t kMaxSegments = 64;            // UDP_MAX_SEGMENTS on every kernel with UDP_SEGMENT
constexpr std::size_t kMaxPayloadV4 = 65535 - 28;   // IPv4 total length field
constexpr std::size_t kMaxPayloadV6 = 65535 - 8;    // IPv6 payload length field (no jumbograms)
constexpr std::size_t kMaxRunsPerRound = 64;        // bounds the scratch arrays of one round
constexpr unsigned kMaxVlen = 1024;                 // UIO_MAXIOV: the kernel's cap on sendmmsg's vlen
constexpr auto kQueueFullWait = std::chrono::microseconds(50);
constexpr auto kSpinMargin = std::chrono::microseconds(100);

std::string errno_text(int err) { return std::strerror(err); }

[[noreturn]] void startup_error(const Endpoint& lane, const std::string& what, int err) {
    throw std::runtime_error("diode sender: lane " + to_string(lane) + ": " + what + ": " + errno_text(err));
}

/// Waits until `deadline` on CLOCK_MONOTONIC (what steady_clock reads on
/// Linux): an absolute sleep to shortly before it, then a spin for the rest.
/// A plain sleep wakes 50-150 µs late (timer slack, and more on virtual
/// machines); the pacer absorbs lateness only up to the bucket depth, which at
/// 10 Gbit/s and 64 KiB is 52 µs, so a plain sleep would lose rate. The spin
/// costs at most kSpinMargin of CPU per round, on the dedicated send thread.
void sleep_until(Pacer::Clock::time_point deadline) {
    // Tightening the default 50 µs slack makes the coarse sleep land closer to
    // its target and shortens the spin; it applies to the calling thread only.
    thread_local const bool slack_set = [] {
        ::prctl(PR_SET_TIMERSLACK, 1000UL, 0UL, 0UL, 0UL);  // 1 µs
        return true;
    }();
    (void)slack_set;
    const auto coarse = deadline - kSpinMargin;
    if (Pacer::Clock::now() < coarse) {
        const auto since_epoch = coarse.time_since_epoch();
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
        timespec ts{};
        ts.tv_sec = static_cast<time_t>(secs.count());
        ts.tv_nsec = static_cast<long>(std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count());
        while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
        }
    }
    while (Pacer::Clock::now() < deadline) {
    }
}

void set_buffer(int fd, int force_option, int option, std::size_t bytes) {
    const int value = static_cast<int>(std::min<std::size_t>(bytes, static_cast<std::size_t>(INT32_MAX / 2)));
    if (::setsockopt(fd, SOL_SOCKET, force_option, &value, sizeof value) == 0) return;
    (void)::setsockopt(fd, SOL_SOCKET, option, &value, sizeof value);  // capped at wmem_max; read back below
}

/// One message of a lane's sendmmsg batch: a GSO super-packet (segment != 0)
/// or a single datagram.
struct MessagePlan {
    std::size_t round_index = 0;  ///< the run in the round it starts in
    std::size_t offset = 0;       ///< first datagram within that run
    std::size_t count = 0;        ///< datagrams it carries
    std::size_t bytes = 0;
    std::size_t segment = 0;      ///< UDP_SEGMENT value, 0 without GSO
};

union SegmentCmsg {
    char buffer[CMSG_SPACE(sizeof(std::uint16_t))];
    cmsghdr align;
};

}  // namespace

struct UdpSender::Lane {
    Endpoint endpoint;
    int fd = -1;
    bool ipv6 = false;
    std::size_t max_payload = kMaxPayloadV4;

    // Scratch for one sendmmsg batch, reused between rounds.
    std::vector<MessagePlan> plans;
    std::vector<iovec> iovs;
    std::vector<SegmentCmsg> cmsgs;
    std::vector<mmsghdr> msgs;

    Lane(const Lane&) = delete;
    Lane& operator=(const Lane&) = delete;
    explicit Lane(Endpoint e) : endpoint(e), ipv6(e.address().is_v6()), max_payload(ipv6 ? kMaxPayloadV6 : kMaxPayloadV4) {}
    Lane(Lane&& other) noexcept
        : endpoint(other.endpoint), fd(std::exchange(other.fd, -1)), ipv6(other.ipv6), max_payload(other.max_payload) {}
    ~Lane() {
        if (fd >= 0) ::close(fd);
    }
};

UdpSender::UdpSender(SenderOptions options)
    : options_(std::move(options)), pacer_(options_.rate_bits_per_s, options_.burst_bytes) {
    if (options_.lanes.empty()) throw std::runtime_error("diode sender: no lanes configured (need at least one host:port)");
    lanes_.reserve(options_.lanes.size());
    bool gso = options_.gso;
    for (const auto& endpoint : options_.lanes) {
        if (endpoint.port() == 0)
            throw std::runtime_error("diode sender: lane " + to_string(endpoint) + ": port 0 is not a destination");
        Lane& lane = lanes_.emplace_back(endpoint);
        const int family = lane.ipv6 ? AF_INET6 : AF_INET;
        lane.fd = ::socket(family, SOCK_DGRAM | SOCK_CLOEXEC, IPPROTO_UDP);
        if (lane.fd < 0) startup_error(endpoint, "socket", errno);
        set_buffer(lane.fd, SO_SNDBUFFORCE, SO_SNDBUF, options_.sndbuf_bytes);
        if (effective_sndbuf_ == 0) {
            int granted = 0;
            socklen_t len = sizeof granted;
            if (::getsockopt(lane.fd, SOL_SOCKET, SO_SNDBUF, &granted, &len) == 0)
                effective_sndbuf_ = static_cast<std::size_t>(granted) / 2;  // the kernel books twice the request
        }
        // Without IP_RECVERR, Linux reports a full device queue (ENOBUFS) as
        // success and drops the datagram silently; with it, send() fails and
        // we wait and retry instead.
        const int on = 1;
        if (lane.ipv6) {
            (void)::setsockopt(lane.fd, IPPROTO_IPV6, IPV6_RECVERR, &on, sizeof on);
        } else {
            (void)::setsockopt(lane.fd, IPPROTO_IP, IP_RECVERR, &on, sizeof on);
        }
        // Connected: the route is looked up once, not per datagram.
        if (::connect(lane.fd, endpoint.data(), static_cast<socklen_t>(endpoint.size())) != 0)
            startup_error(endpoint, "connect", errno);
        if (gso) {
            int segment = 0;
            socklen_t len = sizeof segment;
            gso = ::getsockopt(lane.fd, SOL_UDP, UDP_SEGMENT, &segment, &len) == 0;  // kernel ≥ 4.18
        }
    }
    gso_active_.store(gso, std::memory_order_relaxed);
}

UdpSender::~UdpSender() = default;

SenderStats UdpSender::stats() const {
    SenderStats s;
    s.datagrams = counters_.datagrams.load(std::memory_order_relaxed);
    s.bytes = counters_.bytes.load(std::memory_order_relaxed);
    s.wire_bytes = counters_.wire_bytes.load(std::memory_order_relaxed);
    s.send_calls = counters_.send_calls.load(std::memory_order_relaxed);
    s.enobufs_retries = counters_.enobufs_retries.load(std::memory_order_relaxed);
    s.refused_retries = counters_.refused_retries.load(std::memory_order_relaxed);
    s.gso_fallbacks = counters_.gso_fallbacks.load(std::memory_order_relaxed);
    return s;
}

Result<void> UdpSender::send(std::span<const std::span<const std::byte>> datagrams) {
    std::size_t max_payload = kMaxPayloadV6;
    for (const auto& lane : lanes_) max_payload = std::min(max_payload, lane.max_payload);
    for (std::size_t i = 0; i < datagrams.size(); ++i) {
        if (datagrams[i].size() > max_payload) {
            return fail("diode sender: datagram " + std::to_string(i) + " is " + std::to_string(datagrams[i].size()) +
                        " bytes, over the UDP maximum of " + std::to_string(max_payload));
        }
    }

    const std::size_t budget = std::max<std::size_t>(options_.burst_bytes, 1);
    std::size_t next = 0;
    while (next < datagrams.size()) {
        // One round: runs striped over the lanes until the burst budget is
        // reached (at least one run, so a run larger than the burst still goes).
        round_.clear();
        std::size_t round_wire = 0;
        while (next < datagrams.size() && round_.size() < kMaxRunsPerRound) {
            Run run;
            run.lane = next_lane_;
            run.first = next;
            run.segment = datagrams[next].size();
            run.count = 1;
            run.bytes = run.segment;
            const std::size_t lane_max = lanes_[run.lane].max_payload;
            while (run.segment != 0 && run.count < kMaxSegments && run.first + run.count < datagrams.size()) {
                const std::size_t size = datagrams[run.first + run.count].size();
                if (size == 0 || size > run.segment || run.bytes + size > lane_max) break;
                run.bytes += size;
                ++run.count;
                if (size < run.segment) break;  // a shorter datagram may only end a GSO run
            }
            const std::size_t overhead = wire_bytes(0, lanes_[run.lane].ipv6);
            const std::size_t run_wire = run.bytes + run.count * overhead;
            if (!round_.empty() && round_wire + run_wire > budget) break;
            round_.push_back(run);
            round_wire += run_wire;
            next += run.count;
            next_lane_ = (next_lane_ + 1) % lanes_.size();
        }

        const auto now = Pacer::Clock::now();
        const auto delay = pacer_.delay_before(round_wire, now);
        if (delay.count() > 0) sleep_until(now + delay);

        for (std::size_t lane = 0; lane < lanes_.size(); ++lane) {
            auto sent = send_lane(lane, round_, datagrams);
            if (!sent) return sent;
        }
    }
    return {};
}

Result<void> UdpSender::send_lane(std::size_t lane_index, std::span<const Run> runs,
                                  std::span<const std::span<const std::byte>> datagrams) {
    Lane& lane = lanes_[lane_index];
    const std::size_t overhead = wire_bytes(0, lane.ipv6);

    // Lays out the messages for this lane's runs from (round_index, offset) on.
    auto build = [&](std::size_t from_round, std::size_t from_offset) {
        const bool gso = gso_active_.load(std::memory_order_relaxed);
        lane.plans.clear();
        lane.iovs.clear();
        for (std::size_t r = from_round; r < runs.size(); ++r) {
            const Run& run = runs[r];
            if (run.lane != lane_index) continue;
            const std::size_t offset = r == from_round ? from_offset : 0;
            if (gso && run.count - offset > 1) {
                MessagePlan plan{r, offset, run.count - offset, 0, run.segment};
                for (std::size_t k = offset; k < run.count; ++k) plan.bytes += datagrams[run.first + k].size();
                lane.plans.push_back(plan);
            } else {
                for (std::size_t k = offset; k < run.count; ++k)
                    lane.plans.push_back({r, k, 1, datagrams[run.first + k].size(), 0});
            }
            for (std::size_t k = offset; k < run.count; ++k) {
                const auto& d = datagrams[run.first + k];
                lane.iovs.push_back({const_cast<std::byte*>(d.data()), d.size()});  // sendmsg never writes
            }
        }
        lane.msgs.assign(lane.plans.size(), mmsghdr{});
        lane.cmsgs.resize(std::max(lane.cmsgs.size(), lane.plans.size()));
        std::size_t iov = 0;
        for (std::size_t m = 0; m < lane.plans.size(); ++m) {
            const MessagePlan& plan = lane.plans[m];
            msghdr& h = lane.msgs[m].msg_hdr;
            h.msg_iov = &lane.iovs[iov];
            h.msg_iovlen = plan.count;
            iov += plan.count;
            if (plan.segment != 0) {
                std::memset(lane.cmsgs[m].buffer, 0, sizeof lane.cmsgs[m].buffer);
                h.msg_control = lane.cmsgs[m].buffer;
                h.msg_controllen = sizeof lane.cmsgs[m].buffer;
                cmsghdr* c = CMSG_FIRSTHDR(&h);
                c->cmsg_level = SOL_UDP;
                c->cmsg_type = UDP_SEGMENT;
                c->cmsg_len = CMSG_LEN(sizeof(std::uint16_t));
                const auto segment = static_cast<std::uint16_t>(plan.segment);
                std::memcpy(CMSG_DATA(c), &segment, sizeof segment);
            }
        }
    };

    build(0, 0);
    std::size_t done = 0;
    while (done < lane.msgs.size()) {
        const auto vlen = static_cast<unsigned>(std::min<std::size_t>(lane.msgs.size() - done, kMaxVlen));
        const int sent = ::sendmmsg(lane.fd, lane.msgs.data() + done, vlen, 0);
        if (sent > 0) {
            std::uint64_t count = 0, bytes = 0;
            for (std::size_t m = done; m < done + static_cast<std::size_t>(sent); ++m) {
                count += lane.plans[m].count;
                bytes += lane.plans[m].bytes;
            }
            counters_.datagrams.fetch_add(count, std::memory_order_relaxed);
            counters_.bytes.fetch_add(bytes, std::memory_order_relaxed);
            counters_.wire_bytes.fetch_add(bytes + count * overhead, std::memory_order_relaxed);
            counters_.send_calls.fetch_add(1, std::memory_order_relaxed);
            done += static_cast<std::size_t>(sent);
            continue;
        }
        const int err = sent < 0 ? errno : EAGAIN;
        switch (err) {
        case EINTR:
            continue;
        case ENOBUFS:
        case EAGAIN:
            // The device or socket queue is full: the datagram was not sent.
            counters_.enobufs_retries.fetch_add(1, std::memory_order_relaxed);
            sleep_until(Pacer::Clock::now() + kQueueFullWait);
            continue;
        case ECONNREFUSED: {
            // An ICMP port-unreachable came back (only possible on a test
            // loopback: a diode has no return path). The error was reported
            // instead of sending this message; drop the queued ICMP reports and
            // send it again.
            counters_.refused_retries.fetch_add(1, std::memory_order_relaxed);
            char scratch[512];
            iovec iov{scratch, sizeof scratch};
            msghdr h{};
            h.msg_iov = &iov;
            h.msg_iovlen = 1;
            char control[512];
            for (int i = 0; i < 64; ++i) {
                h.msg_control = control;
                h.msg_controllen = sizeof control;
                if (::recvmsg(lane.fd, &h, MSG_ERRQUEUE | MSG_DONTWAIT) < 0) break;
            }
            continue;
        }
        case EIO:
        case EINVAL:
        case EMSGSIZE:
            if (lane.plans[done].segment != 0) {
                // The kernel or the device refuses GSO (no checksum offload:
                // EIO; segment above the MTU: EINVAL). Send the rest plainly,
                // and keep doing so: it would refuse again.
                gso_active_.store(false, std::memory_order_relaxed);
                counters_.gso_fallbacks.store(1, std::memory_order_relaxed);
                const MessagePlan failed = lane.plans[done];
                build(failed.round_index, failed.offset);
                done = 0;
                continue;
            }
            [[fallthrough]];
        default:
            return fail("diode sender: lane " + to_string(lane.endpoint) + ": sendmmsg: " + errno_text(err));
        }
    }
    return {};
}

}  // namespace sluice::diode
