// udp_impair: a seeded UDP impairment proxy for system tests and benchmarks.
//
//   udp_impair --listen 127.0.0.1:9000 --forward 127.0.0.1:9100 [--listen ... --forward ...]
//              [--seed N] [--drop P] [--burst-every N --burst-len L]
//              [--blackout-after-ms T --blackout-ms B]
//              [--reorder P --reorder-depth D] [--duplicate P] [--corrupt P]
//              [--truncate P] [--stats-file F]
//
// Every --listen is paired with the --forward at the same position: one pair
// is a "lane". Each lane receives datagrams on its listen address and sends
// them, impaired, to its forward address from an ephemeral port. Traffic only
// flows one way (like a data diode); nothing is relayed back.
//
// Impairments, applied to each datagram of a lane in this order:
//   blackout   every datagram received from T ms to T+B ms after the first
//              datagram the proxy received (any lane) is dropped (time-based,
//              so the only impairment that is not reproducible)
//   burst      datagrams whose lane index i (0-based) has i % N >= N - L are
//              dropped: the last L of every N
//   drop       dropped with probability P
//   truncate   with probability P, cut to a random length in [0, len - 1]
//   corrupt    with probability P, 1 to 3 distinct random bytes are XORed with
//              a random non-zero value (the datagram always changes)
//   duplicate  with probability P, sent twice in a row
//   reorder    with probability P, held back and sent after the D-th later
//              datagram of the lane has been handled (or when the lane has
//              been idle for 100 ms)
//
// Determinism: each lane has its own std::mt19937_64 seeded with seed + lane,
// and every received datagram consumes exactly six draws from it, whatever
// happens to the datagram. The fate of the k-th datagram of a lane therefore
// depends only on the seed, the lane and k (and, for truncate/corrupt, the
// datagram's length), never on timing - except for the blackout window.
//
// Counters (per lane and in total): received, forwarded (datagrams sent,
// duplicates included), dropped (= dropped_random + dropped_burst +
// dropped_blackout), corrupted, duplicated, reordered, truncated, send_errors.
// They are written as JSON to --stats-file (atomically: F.tmp then rename)
// every second and on SIGTERM/SIGINT, after which the proxy exits with 0.
//
// Start-up: for each lane a line "udp_impair: lane K listening on A:P,
// forwarding to B:Q" (P is the real port, so --listen 127.0.0.1:0 works),
// then "udp_impair: ready" on stdout once every socket is bound.
//
// Performance: recvmmsg/sendmmsg in batches of 64, no copy except for
// datagrams held back for reordering, 64 MiB socket buffers (SO_RCVBUFFORCE /
// SO_SNDBUFFORCE when permitted, else SO_RCVBUF / SO_SNDBUF, capped by
// net.core.rmem_max / wmem_max). A single thread handles all lanes.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t kBatch = 64;
constexpr std::size_t kMaxDatagram = 65536;
constexpr int kSocketBuffer = 64 << 20;
constexpr auto kIdleRelease = std::chrono::milliseconds(100);
constexpr auto kStatsInterval = std::chrono::seconds(1);

using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_signal(int) { g_stop = 1; }

[[noreturn]] void die(const std::string& msg) {
    std::fprintf(stderr, "udp_impair: %s\n", msg.c_str());
    std::exit(2);
}

[[noreturn]] void die_errno(const std::string& what) {
    die(what + ": " + std::strerror(errno));
}

struct Address {
    sockaddr_storage storage{};
    socklen_t len = 0;
    std::string text;
};

// "1.2.3.4:port" or "[::1]:port", numeric only.
Address parse_address(const std::string& s) {
    Address a;
    a.text = s;
    const auto colon = s.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == s.size()) {
        die("bad address '" + s + "': expected HOST:PORT");
    }
    std::string host = s.substr(0, colon);
    const std::string port_text = s.substr(colon + 1);
    char* end = nullptr;
    const unsigned long port = std::strtoul(port_text.c_str(), &end, 10);
    if (*end != '\0' || port > 65535) {
        die("bad port in '" + s + "'");
    }
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
        host = host.substr(1, host.size() - 2);
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) != 1) {
            die("bad IPv6 address in '" + s + "'");
        }
        a.len = sizeof(sockaddr_in6);
    } else {
        auto* in4 = reinterpret_cast<sockaddr_in*>(&a.storage);
        in4->sin_family = AF_INET;
        in4->sin_port = htons(static_cast<std::uint16_t>(port));
        if (inet_pton(AF_INET, host.c_str(), &in4->sin_addr) != 1) {
            die("bad IPv4 address in '" + s + "' (numeric addresses only)");
        }
        a.len = sizeof(sockaddr_in);
    }
    return a;
}

std::string format_address(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6->sin6_port));
    }
    const auto* in4 = reinterpret_cast<const sockaddr_in*>(&ss);
    inet_ntop(AF_INET, &in4->sin_addr, buf, sizeof buf);
    return std::string(buf) + ":" + std::to_string(ntohs(in4->sin_port));
}

struct Options {
    std::vector<std::string> listen;
    std::vector<std::string> forward;
    std::uint64_t seed = 0;
    double drop = 0;
    std::uint64_t burst_every = 0;
    std::uint64_t burst_len = 0;
    std::optional<std::int64_t> blackout_after_ms;
    std::int64_t blackout_ms = 0;
    double reorder = 0;
    std::uint64_t reorder_depth = 0;
    double duplicate = 0;
    double corrupt = 0;
    double truncate = 0;
    std::string stats_file;
};

void usage(std::FILE* out) {
    std::fputs(
        "usage: udp_impair --listen ADDR:PORT --forward ADDR:PORT [--listen ... --forward ...]\n"
        "                  [--seed N] [--drop P] [--burst-every N --burst-len L]\n"
        "                  [--blackout-after-ms T --blackout-ms B]\n"
        "                  [--reorder P --reorder-depth D] [--duplicate P] [--corrupt P]\n"
        "                  [--truncate P] [--stats-file F]\n"
        "Probabilities P are in [0, 1]. Lanes are listen/forward pairs in order.\n"
        "Prints 'udp_impair: ready' on stdout when listening; SIGTERM/SIGINT exit 0.\n",
        out);
}

double parse_probability(const std::string& name, const std::string& v) {
    char* end = nullptr;
    const double p = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0' || !(p >= 0.0 && p <= 1.0)) {
        die(name + " '" + v + "': expected a probability in [0, 1]");
    }
    return p;
}

std::uint64_t parse_uint(const std::string& name, const std::string& v) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || v[0] == '-' || *end != '\0' || errno != 0) {
        die(name + " '" + v + "': expected a non-negative integer");
    }
    return static_cast<std::uint64_t>(n);
}

Options parse_options(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "-h" || arg == "--help") {
            usage(stdout);
            std::exit(0);
        }
        if (i + 1 >= argc) {
            usage(stderr);
            die("missing value after " + arg);
        }
        const std::string v = argv[++i];
        if (arg == "--listen") {
            o.listen.push_back(v);
        } else if (arg == "--forward") {
            o.forward.push_back(v);
        } else if (arg == "--seed") {
            o.seed = parse_uint(arg, v);
        } else if (arg == "--drop") {
            o.drop = parse_probability(arg, v);
        } else if (arg == "--burst-every") {
            o.burst_every = parse_uint(arg, v);
        } else if (arg == "--burst-len") {
            o.burst_len = parse_uint(arg, v);
        } else if (arg == "--blackout-after-ms") {
            o.blackout_after_ms = static_cast<std::int64_t>(parse_uint(arg, v));
        } else if (arg == "--blackout-ms") {
            o.blackout_ms = static_cast<std::int64_t>(parse_uint(arg, v));
        } else if (arg == "--reorder") {
            o.reorder = parse_probability(arg, v);
        } else if (arg == "--reorder-depth") {
            o.reorder_depth = parse_uint(arg, v);
        } else if (arg == "--duplicate") {
            o.duplicate = parse_probability(arg, v);
        } else if (arg == "--corrupt") {
            o.corrupt = parse_probability(arg, v);
        } else if (arg == "--truncate") {
            o.truncate = parse_probability(arg, v);
        } else if (arg == "--stats-file") {
            o.stats_file = v;
        } else {
            usage(stderr);
            die("unknown option " + arg);
        }
    }
    if (o.listen.empty()) {
        usage(stderr);
        die("at least one --listen/--forward pair is required");
    }
    if (o.listen.size() != o.forward.size()) {
        die("every --listen needs a matching --forward (got " + std::to_string(o.listen.size()) +
            " --listen, " + std::to_string(o.forward.size()) + " --forward)");
    }
    if ((o.burst_every == 0) != (o.burst_len == 0)) {
        die("--burst-every and --burst-len go together");
    }
    if (o.burst_every != 0 && o.burst_len > o.burst_every) {
        die("--burst-len must not exceed --burst-every");
    }
    if (o.blackout_after_ms.has_value() != (o.blackout_ms != 0)) {
        die("--blackout-after-ms and --blackout-ms go together");
    }
    if (o.reorder > 0 && o.reorder_depth == 0) {
        die("--reorder needs --reorder-depth D (D >= 1)");
    }
    return o;
}

struct Counters {
    std::uint64_t received = 0;
    std::uint64_t forwarded = 0;
    std::uint64_t dropped_random = 0;
    std::uint64_t dropped_burst = 0;
    std::uint64_t dropped_blackout = 0;
    std::uint64_t corrupted = 0;
    std::uint64_t duplicated = 0;
    std::uint64_t reordered = 0;
    std::uint64_t truncated = 0;
    std::uint64_t send_errors = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t bytes_forwarded = 0;

    [[nodiscard]] std::uint64_t dropped() const { return dropped_random + dropped_burst + dropped_blackout; }

    void add(const Counters& c) {
        received += c.received;
        forwarded += c.forwarded;
        dropped_random += c.dropped_random;
        dropped_burst += c.dropped_burst;
        dropped_blackout += c.dropped_blackout;
        corrupted += c.corrupted;
        duplicated += c.duplicated;
        reordered += c.reordered;
        truncated += c.truncated;
        send_errors += c.send_errors;
        bytes_received += c.bytes_received;
        bytes_forwarded += c.bytes_forwarded;
    }

    [[nodiscard]] std::string json() const {
        std::string s = "{";
        auto field = [&s](const char* name, std::uint64_t v) {
            if (s.size() > 1) {
                s += ", ";
            }
            s += '"';
            s += name;
            s += "\": ";
            s += std::to_string(v);
        };
        field("received", received);
        field("forwarded", forwarded);
        field("dropped", dropped());
        field("dropped_random", dropped_random);
        field("dropped_burst", dropped_burst);
        field("dropped_blackout", dropped_blackout);
        field("corrupted", corrupted);
        field("duplicated", duplicated);
        field("reordered", reordered);
        field("truncated", truncated);
        field("send_errors", send_errors);
        field("bytes_received", bytes_received);
        field("bytes_forwarded", bytes_forwarded);
        s += "}";
        return s;
    }
};

// A datagram held back for reordering (owns its bytes).
struct Held {
    std::vector<std::uint8_t> bytes;
    std::uint64_t release_after = 0;  // lane index of the datagram after which it goes out
    int copies = 1;                   // 2 when it was also duplicated
};

// splitmix64: cheap per-datagram generator for the details (byte positions,
// lengths), seeded from one draw of the lane's mt19937_64.
struct SplitMix {
    std::uint64_t state;
    std::uint64_t next() {
        std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }
    std::size_t below(std::size_t n) { return static_cast<std::size_t>(next() % n); }
};

double unit(std::uint64_t x) { return static_cast<double>(x >> 11) * 0x1.0p-53; }

struct Lane {
    int index = 0;
    int rx = -1;
    int tx = -1;
    Address listen;
    Address forward;
    std::mt19937_64 rng;
    std::uint64_t next_index = 0;  // lane index of the next received datagram
    Counters counters;
    std::deque<Held> held;
    Clock::time_point last_rx{};

    // receive side
    std::vector<std::uint8_t> buffers;
    std::array<iovec, kBatch> rx_iov{};
    std::array<mmsghdr, kBatch> rx_msgs{};
    // send side: iovecs point into `buffers` or into `released`
    std::vector<iovec> tx_iov;
    std::vector<mmsghdr> tx_msgs;
    std::vector<std::vector<std::uint8_t>> released;
};

void set_buffer(int fd, int force_opt, int opt, const char* name) {
    const int size = kSocketBuffer;
    if (setsockopt(fd, SOL_SOCKET, force_opt, &size, sizeof size) == 0) {
        return;
    }
    if (setsockopt(fd, SOL_SOCKET, opt, &size, sizeof size) != 0) {
        std::fprintf(stderr, "udp_impair: warning: setsockopt(%s): %s\n", name, std::strerror(errno));
    }
}

int open_socket(int family) {
    const int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        die_errno("socket");
    }
    set_buffer(fd, SO_RCVBUFFORCE, SO_RCVBUF, "SO_RCVBUF");
    set_buffer(fd, SO_SNDBUFFORCE, SO_SNDBUF, "SO_SNDBUF");
    return fd;
}

void queue_send(Lane& lane, std::uint8_t* data, std::size_t len) {
    iovec iov{};
    iov.iov_base = data;
    iov.iov_len = len;
    lane.tx_iov.push_back(iov);
    lane.counters.bytes_forwarded += len;
}

void release_held(Lane& lane, bool all) {
    while (!lane.held.empty()) {
        // The held queue is ordered by release_after: each entry is pushed
        // with index + D and the index only grows.
        Held& h = lane.held.front();
        if (!all && h.release_after >= lane.next_index) {
            break;
        }
        lane.released.push_back(std::move(h.bytes));
        auto& bytes = lane.released.back();
        for (int c = 0; c < h.copies; ++c) {
            queue_send(lane, bytes.data(), bytes.size());
        }
        lane.held.pop_front();
    }
}

void flush(Lane& lane) {
    const std::size_t n = lane.tx_iov.size();
    if (n == 0) {
        return;
    }
    lane.tx_msgs.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        msghdr& h = lane.tx_msgs[i].msg_hdr;
        h = msghdr{};
        h.msg_name = &lane.forward.storage;
        h.msg_namelen = lane.forward.len;
        h.msg_iov = &lane.tx_iov[i];
        h.msg_iovlen = 1;
        lane.tx_msgs[i].msg_len = 0;
    }
    std::size_t done = 0;
    while (done < n) {
        const unsigned int chunk = static_cast<unsigned int>(std::min<std::size_t>(n - done, 1024));
        const int sent = sendmmsg(lane.tx, &lane.tx_msgs[done], chunk, 0);
        if (sent < 0) {
            if (errno == EINTR) {
                continue;
            }
            // The first message of the chunk failed: count it and skip it.
            ++lane.counters.send_errors;
            lane.counters.bytes_forwarded -= lane.tx_iov[done].iov_len;
            ++done;
            continue;
        }
        lane.counters.forwarded += static_cast<std::uint64_t>(sent);
        done += static_cast<std::size_t>(sent);
    }
    lane.tx_iov.clear();
    lane.released.clear();
}

struct Proxy {
    Options opt;
    std::vector<Lane> lanes;
    std::optional<Clock::time_point> first_datagram;

    bool in_blackout(Clock::time_point now) const {
        if (!opt.blackout_after_ms || !first_datagram) {
            return false;
        }
        const auto since = std::chrono::duration_cast<std::chrono::milliseconds>(now - *first_datagram).count();
        return since >= *opt.blackout_after_ms && since < *opt.blackout_after_ms + opt.blackout_ms;
    }

    // Decides the fate of one datagram (in place) and queues what goes out.
    void handle(Lane& lane, std::uint8_t* data, std::size_t len, Clock::time_point now) {
        Counters& c = lane.counters;
        const std::uint64_t index = lane.next_index++;
        ++c.received;
        c.bytes_received += len;

        // Always exactly six draws per datagram (see the header comment).
        const double u_drop = unit(lane.rng());
        const double u_truncate = unit(lane.rng());
        const double u_corrupt = unit(lane.rng());
        const double u_duplicate = unit(lane.rng());
        const double u_reorder = unit(lane.rng());
        SplitMix detail{lane.rng()};

        bool dropped = false;
        if (in_blackout(now)) {
            ++c.dropped_blackout;
            dropped = true;
        } else if (opt.burst_every != 0 && index % opt.burst_every >= opt.burst_every - opt.burst_len) {
            ++c.dropped_burst;
            dropped = true;
        } else if (u_drop < opt.drop) {
            ++c.dropped_random;
            dropped = true;
        }
        if (!dropped) {
            if (u_truncate < opt.truncate && len > 0) {
                len = detail.below(len);
                ++c.truncated;
            }
            if (u_corrupt < opt.corrupt && len > 0) {
                const std::size_t flips = std::min<std::size_t>(1 + detail.below(3), len);
                std::array<std::size_t, 3> pos{};
                for (std::size_t k = 0; k < flips; ++k) {
                    std::size_t p = 0;
                    do {
                        p = detail.below(len);
                    } while (std::find(pos.begin(), pos.begin() + static_cast<std::ptrdiff_t>(k), p) !=
                             pos.begin() + static_cast<std::ptrdiff_t>(k));
                    pos[k] = p;
                    data[p] ^= static_cast<std::uint8_t>(1 + detail.below(255));
                }
                ++c.corrupted;
            }
            const int copies = (u_duplicate < opt.duplicate) ? 2 : 1;
            if (copies == 2) {
                ++c.duplicated;
            }
            if (u_reorder < opt.reorder) {
                ++c.reordered;
                lane.held.push_back(Held{std::vector<std::uint8_t>(data, data + len), index + opt.reorder_depth, copies});
            } else {
                for (int k = 0; k < copies; ++k) {
                    queue_send(lane, data, len);
                }
            }
        }
        // Datagrams held back until this one (the D-th later) has gone out.
        release_held(lane, false);
    }

    // Drains the lane's socket: returns when it would block (or after a
    // bounded number of batches, so other lanes get their turn).
    void service(Lane& lane) {
        for (int round = 0; round < 16 && !g_stop; ++round) {
            for (std::size_t i = 0; i < kBatch; ++i) {
                lane.rx_iov[i].iov_base = lane.buffers.data() + i * kMaxDatagram;
                lane.rx_iov[i].iov_len = kMaxDatagram;
                lane.rx_msgs[i].msg_hdr = msghdr{};
                lane.rx_msgs[i].msg_hdr.msg_iov = &lane.rx_iov[i];
                lane.rx_msgs[i].msg_hdr.msg_iovlen = 1;
                lane.rx_msgs[i].msg_len = 0;
            }
            const int n = recvmmsg(lane.rx, lane.rx_msgs.data(), kBatch, MSG_DONTWAIT, nullptr);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
                    return;
                }
                die_errno("recvmmsg on lane " + std::to_string(lane.index));
            }
            if (n == 0) {
                return;
            }
            const auto now = Clock::now();
            if (!first_datagram) {
                first_datagram = now;
            }
            lane.last_rx = now;
            for (int i = 0; i < n; ++i) {
                auto* data = static_cast<std::uint8_t*>(lane.rx_iov[static_cast<std::size_t>(i)].iov_base);
                std::size_t len = lane.rx_msgs[static_cast<std::size_t>(i)].msg_len;
                if ((lane.rx_msgs[static_cast<std::size_t>(i)].msg_hdr.msg_flags & MSG_TRUNC) != 0) {
                    len = std::min(len, kMaxDatagram);
                }
                handle(lane, data, len, now);
            }
            flush(lane);  // before the buffers are reused
            if (static_cast<std::size_t>(n) < kBatch) {
                return;
            }
        }
    }

    void write_stats() const {
        Counters total;
        std::string lanes_json;
        for (const Lane& lane : lanes) {
            total.add(lane.counters);
            if (!lanes_json.empty()) {
                lanes_json += ",\n    ";
            }
            std::string c = lane.counters.json();
            c.erase(0, 1);  // reopen the object to prepend the lane fields
            lanes_json += "{\"lane\": " + std::to_string(lane.index) + ", \"listen\": \"" +
                          format_address(lane.listen.storage) + "\", \"forward\": \"" + lane.forward.text +
                          "\", " + c;
        }
        std::string doc = total.json();
        doc.pop_back();
        doc += ", \"seed\": " + std::to_string(opt.seed) + ",\n  \"lanes\": [\n    " + lanes_json + "\n  ]}\n";
        if (opt.stats_file.empty()) {
            return;
        }
        const std::string tmp = opt.stats_file + ".tmp";
        std::FILE* f = std::fopen(tmp.c_str(), "w");
        if (f == nullptr) {
            std::fprintf(stderr, "udp_impair: cannot write %s: %s\n", tmp.c_str(), std::strerror(errno));
            return;
        }
        const bool ok = std::fwrite(doc.data(), 1, doc.size(), f) == doc.size();
        if (std::fclose(f) != 0 || !ok || std::rename(tmp.c_str(), opt.stats_file.c_str()) != 0) {
            std::fprintf(stderr, "udp_impair: cannot write %s: %s\n", opt.stats_file.c_str(), std::strerror(errno));
        }
    }

    void summary() const {
        Counters total;
        for (const Lane& lane : lanes) {
            total.add(lane.counters);
        }
        std::fprintf(stderr, "udp_impair: %s\n", total.json().c_str());
    }

    int run() {
        std::vector<pollfd> fds(lanes.size());
        for (std::size_t i = 0; i < lanes.size(); ++i) {
            fds[i].fd = lanes[i].rx;
            fds[i].events = POLLIN;
        }
        auto next_stats = Clock::now() + kStatsInterval;
        write_stats();
        while (!g_stop) {
            const int r = poll(fds.data(), fds.size(), 50);
            if (r < 0 && errno != EINTR) {
                die_errno("poll");
            }
            const auto now = Clock::now();
            for (std::size_t i = 0; i < lanes.size(); ++i) {
                Lane& lane = lanes[i];
                if (r > 0 && (fds[i].revents & (POLLIN | POLLERR)) != 0) {
                    service(lane);
                }
                if (!lane.held.empty() && now - lane.last_rx >= kIdleRelease) {
                    release_held(lane, true);
                    flush(lane);
                }
            }
            if (now >= next_stats) {
                write_stats();
                next_stats = now + kStatsInterval;
            }
        }
        write_stats();
        summary();
        return 0;
    }
};

}  // namespace

int main(int argc, char** argv) {
    Proxy proxy;
    proxy.opt = parse_options(argc, argv);

    struct sigaction sa{};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;  // no SA_RESTART: poll returns EINTR
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);

    proxy.lanes.resize(proxy.opt.listen.size());
    for (std::size_t i = 0; i < proxy.lanes.size(); ++i) {
        Lane& lane = proxy.lanes[i];
        lane.index = static_cast<int>(i);
        lane.listen = parse_address(proxy.opt.listen[i]);
        lane.forward = parse_address(proxy.opt.forward[i]);
        lane.rng.seed(proxy.opt.seed + i);
        lane.buffers.resize(kBatch * kMaxDatagram);
        lane.rx = open_socket(lane.listen.storage.ss_family);
        if (bind(lane.rx, reinterpret_cast<const sockaddr*>(&lane.listen.storage), lane.listen.len) != 0) {
            die_errno("bind " + lane.listen.text);
        }
        socklen_t len = sizeof lane.listen.storage;
        if (getsockname(lane.rx, reinterpret_cast<sockaddr*>(&lane.listen.storage), &len) != 0) {
            die_errno("getsockname");
        }
        lane.tx = open_socket(lane.forward.storage.ss_family);
        std::printf("udp_impair: lane %d listening on %s, forwarding to %s\n", lane.index,
                    format_address(lane.listen.storage).c_str(), lane.forward.text.c_str());
    }
    std::printf("udp_impair: ready\n");
    std::fflush(stdout);
    const int rc = proxy.run();
    for (Lane& lane : proxy.lanes) {
        close(lane.rx);
        close(lane.tx);
    }
    return rc;
}
