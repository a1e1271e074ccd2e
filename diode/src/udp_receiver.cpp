#include "sluice/diode/udp_receiver.hpp"

#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

#include <boost/asio/ip/udp.hpp>

namespace sluice::diode {

namespace {

// Room for the largest UDP payload (65527 bytes over IPv6) and for the largest
// GRO super-packet (the kernel caps those at 64 KiB as well).
constexpr std::size_t kBufferBytes = 64 * 1024;
// recvmmsg calls per readiness notification before yielding to the other
// lanes and handlers on the io_context; readiness stays set, so the re-armed
// wait completes at once if more is queued.
constexpr int kMaxDrainsPerWake = 16;

union Control {
    char buffer[CMSG_SPACE(sizeof(int)) + CMSG_SPACE(sizeof(std::uint32_t)) + 64];
    cmsghdr align;
};

[[noreturn]] void startup_error(const Endpoint& lane, const std::string& what, const std::string& why) {
    throw std::runtime_error("diode receiver: lane " + to_string(lane) + ": " + what + ": " + why);
}

/// SO_RCVBUF the kernel granted, in the units of the request (it books twice that).
std::size_t request_rcvbuf(int fd, std::size_t bytes, bool force) {
    const int value = static_cast<int>(std::min<std::size_t>(bytes, INT_MAX / 2));
    if (!force || ::setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &value, sizeof value) != 0)
        (void)::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &value, sizeof value);
    int granted = 0;
    socklen_t len = sizeof granted;
    if (::getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &len) != 0) return 0;
    return static_cast<std::size_t>(granted) / 2;
}

}  // namespace

std::string rcvbuf_warning(std::size_t requested, std::size_t granted) {
    if (granted >= requested) return {};
    const std::size_t capped_request = std::min<std::size_t>(requested, INT_MAX / 2);
    return "the kernel capped the UDP receive buffer at " + std::to_string(granted) + " bytes (requested " +
           std::to_string(requested) + "); bursts will overflow it and datagrams will be lost. Raise the limit with "
           "`sysctl -w net.core.rmem_max=" + std::to_string(capped_request) +
           "` (persist it in /etc/sysctl.d/) or give the receiver CAP_NET_ADMIN";
}

struct UdpReceiver::State : std::enable_shared_from_this<UdpReceiver::State> {
    struct Lane {
        explicit Lane(boost::asio::io_context& io) : socket(io) {}
        boost::asio::ip::udp::socket socket;
        Endpoint endpoint;
        std::unique_ptr<std::byte[]> buffers;
        std::vector<iovec> iovs;
        std::vector<Control> controls;
        std::vector<mmsghdr> msgs;
        std::vector<std::span<const std::byte>> batch;
        std::atomic<std::uint64_t> kernel_drops{0};  ///< last SO_RXQ_OVFL value (cumulative per socket)
    };

    State(ReceiverOptions o, Handler h) : options(std::move(o)), handler(std::move(h)) {}

    void arm(std::size_t index);
    void on_readable(std::size_t index);

    ReceiverOptions options;
    Handler handler;
    std::vector<std::unique_ptr<Lane>> lanes;
    std::atomic<bool> stopped{false};
    std::size_t effective_rcvbuf = 0;
    std::string warning;
    bool gro = false;

    std::atomic<std::uint64_t> datagrams{0}, bytes{0}, recv_calls{0}, buffers{0}, truncated{0}, handler_errors{0},
        socket_errors{0};
};

void UdpReceiver::State::arm(std::size_t index) {
    if (stopped.load(std::memory_order_relaxed)) return;
    lanes[index]->socket.async_wait(boost::asio::ip::udp::socket::wait_read,
                                    [self = shared_from_this(), index](const boost::system::error_code& ec) {
                                        if (ec || self->stopped.load(std::memory_order_relaxed)) return;
                                        self->on_readable(index);
                                        self->arm(index);
                                    });
}

void UdpReceiver::State::on_readable(std::size_t index) {
    Lane& lane = *lanes[index];
    const int fd = lane.socket.native_handle();
    const std::size_t capacity = lane.msgs.size();
    for (int drain = 0; drain < kMaxDrainsPerWake && !stopped.load(std::memory_order_relaxed); ++drain) {
        for (std::size_t i = 0; i < capacity; ++i) {
            msghdr& h = lane.msgs[i].msg_hdr;
            h.msg_control = lane.controls[i].buffer;
            h.msg_controllen = sizeof lane.controls[i].buffer;
            h.msg_flags = 0;
        }
        const int received = ::recvmmsg(fd, lane.msgs.data(), static_cast<unsigned>(capacity), MSG_DONTWAIT, nullptr);
        if (received < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) socket_errors.fetch_add(1, std::memory_order_relaxed);
            return;
        }
        if (received == 0) return;
        recv_calls.fetch_add(1, std::memory_order_relaxed);
        buffers.fetch_add(static_cast<std::uint64_t>(received), std::memory_order_relaxed);

        lane.batch.clear();
        std::uint64_t batch_bytes = 0;
        for (std::size_t i = 0; i < static_cast<std::size_t>(received); ++i) {
            msghdr& h = lane.msgs[i].msg_hdr;
            if ((h.msg_flags & MSG_TRUNC) != 0) {
                truncated.fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            std::size_t segment = 0;
            for (cmsghdr* c = CMSG_FIRSTHDR(&h); c != nullptr; c = CMSG_NXTHDR(&h, c)) {
                if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
                    int value = 0;
                    std::memcpy(&value, CMSG_DATA(c), sizeof value);
                    if (value > 0) segment = static_cast<std::size_t>(value);
                } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
                    std::uint32_t value = 0;
                    std::memcpy(&value, CMSG_DATA(c), sizeof value);
                    lane.kernel_drops.store(value, std::memory_order_relaxed);
                }
            }
            const std::byte* data = lane.buffers.get() + i * kBufferBytes;
            const std::size_t length = lane.msgs[i].msg_len;
            batch_bytes += length;
            if (segment == 0 || segment >= length) {
                lane.batch.emplace_back(data, length);
                continue;
            }
            for (std::size_t at = 0; at < length; at += segment)
                lane.batch.emplace_back(data + at, std::min(segment, length - at));
        }
        datagrams.fetch_add(lane.batch.size(), std::memory_order_relaxed);
        bytes.fetch_add(batch_bytes, std::memory_order_relaxed);
        if (!lane.batch.empty()) {
            try {
                handler(std::span<const std::span<const std::byte>>(lane.batch));
            } catch (...) {
                handler_errors.fetch_add(1, std::memory_order_relaxed);
            }
        }
        if (static_cast<std::size_t>(received) < capacity) return;  // drained
    }
}

UdpReceiver::UdpReceiver(boost::asio::io_context& io, ReceiverOptions options, Handler handler)
    : state_(std::make_shared<State>(std::move(options), std::move(handler))) {
    State& s = *state_;
    if (s.options.lanes.empty()) throw std::runtime_error("diode receiver: no lanes configured (need at least one host:port)");
    if (!s.handler) throw std::invalid_argument("diode receiver: no handler");
    const std::size_t batch = std::clamp<std::size_t>(s.options.batch, 1, 1024);
    s.gro = s.options.gro;
    s.effective_rcvbuf = SIZE_MAX;
    for (const auto& endpoint : s.options.lanes) {
        auto lane = std::make_unique<State::Lane>(io);
        lane->endpoint = endpoint;
        boost::system::error_code ec;
        lane->socket.open(endpoint.protocol(), ec);
        if (ec) startup_error(endpoint, "socket", ec.message());
        const int fd = lane->socket.native_handle();
        s.effective_rcvbuf = std::min(s.effective_rcvbuf, request_rcvbuf(fd, s.options.rcvbuf_bytes, s.options.force_rcvbuf));
        const int on = 1;
        (void)::setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &on, sizeof on);  // drop counter; optional
        if (s.gro && ::setsockopt(fd, SOL_UDP, UDP_GRO, &on, sizeof on) != 0) s.gro = false;  // kernel < 5.0
        lane->socket.bind(endpoint, ec);
        if (ec) startup_error(endpoint, "bind", ec.message());
        lane->socket.non_blocking(true, ec);
        if (ec) startup_error(endpoint, "non-blocking mode", ec.message());

        lane->buffers = std::make_unique_for_overwrite<std::byte[]>(batch * kBufferBytes);
        lane->iovs.resize(batch);
        lane->controls.resize(batch);
        lane->msgs.assign(batch, mmsghdr{});
        lane->batch.reserve(batch * 64);
        for (std::size_t i = 0; i < batch; ++i) {
            lane->iovs[i] = {lane->buffers.get() + i * kBufferBytes, kBufferBytes};
            lane->msgs[i].msg_hdr.msg_iov = &lane->iovs[i];
            lane->msgs[i].msg_hdr.msg_iovlen = 1;
        }
        s.lanes.push_back(std::move(lane));
    }
    s.warning = rcvbuf_warning(s.options.rcvbuf_bytes, s.effective_rcvbuf);
    for (std::size_t i = 0; i < s.lanes.size(); ++i) s.arm(i);
}

UdpReceiver::~UdpReceiver() { stop(); }

void UdpReceiver::stop() {
    state_->stopped.store(true, std::memory_order_relaxed);
    for (auto& lane : state_->lanes) {
        boost::system::error_code ec;
        lane->socket.close(ec);
    }
}

std::uint16_t UdpReceiver::local_port(std::size_t lane) const {
    boost::system::error_code ec;
    const auto endpoint = state_->lanes.at(lane)->socket.local_endpoint(ec);
    return ec ? 0 : endpoint.port();
}

std::size_t UdpReceiver::effective_rcvbuf() const noexcept { return state_->effective_rcvbuf; }
const std::string& UdpReceiver::warning() const noexcept { return state_->warning; }
bool UdpReceiver::gro_active() const noexcept { return state_->gro; }

ReceiverStats UdpReceiver::stats() const {
    const State& s = *state_;
    ReceiverStats r;
    r.datagrams = s.datagrams.load(std::memory_order_relaxed);
    r.bytes = s.bytes.load(std::memory_order_relaxed);
    r.recv_calls = s.recv_calls.load(std::memory_order_relaxed);
    r.buffers = s.buffers.load(std::memory_order_relaxed);
    r.truncated = s.truncated.load(std::memory_order_relaxed);
    r.handler_errors = s.handler_errors.load(std::memory_order_relaxed);
    r.socket_errors = s.socket_errors.load(std::memory_order_relaxed);
    for (const auto& lane : s.lanes) r.kernel_drops += lane->kernel_drops.load(std::memory_order_relaxed);
    return r;
}

}  // namespace sluice::diode
