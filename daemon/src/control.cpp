#include "sluice/daemon/control.hpp"

#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <list>
#include <stdexcept>
#include <system_error>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

namespace sluice::daemon {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using json = nlohmann::json;
using stream = asio::local::stream_protocol;

// ---------------------------------------------------------------- identity

std::string_view role_name(Role role) {
    switch (role) {
        case Role::operator_: return "operator";
        case Role::officer: return "officer";
        case Role::auditor: return "auditor";
    }
    return "unknown";
}

namespace {

const std::vector<std::string>& groups_for(Role role, const RolesConfig& roles) {
    switch (role) {
        case Role::operator_: return roles.operator_groups;
        case Role::officer: return roles.officer_groups;
        case Role::auditor: break;
    }
    return roles.auditor_groups;
}

std::string group_name(gid_t gid) {
    std::vector<char> buf(4096);
    group gr{};
    group* result = nullptr;
    for (;;) {
        const int rc = ::getgrgid_r(gid, &gr, buf.data(), buf.size(), &result);
        if (rc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);
            continue;
        }
        if (rc == 0 && result != nullptr) return gr.gr_name;
        return std::to_string(gid);
    }
}

}  // namespace

bool has_role(const Peer& peer, Role role, const RolesConfig& roles) {
    if (peer.uid == 0) return true;
    const auto& wanted = groups_for(role, roles);
    return std::any_of(peer.groups.begin(), peer.groups.end(), [&](const std::string& g) {
        return std::find(wanted.begin(), wanted.end(), g) != wanted.end();
    });
}

void require_role(const Peer& peer, Role role, const RolesConfig& roles) {
    if (has_role(peer, role, roles)) return;
    const auto& wanted = groups_for(role, roles);
    std::string groups;
    for (const auto& g : wanted) groups += (groups.empty() ? "" : " or ") + g;
    throw std::runtime_error("permission denied: " + peer.user + " needs the " + std::string(role_name(role)) +
                             " role" + (groups.empty() ? std::string(" (only root holds it)")
                                                       : " (a member of " + groups + ")"));
}

Peer peer_of(int fd) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
        throw std::system_error(errno, std::generic_category(), "SO_PEERCRED");
    Peer peer;
    peer.uid = cred.uid;
    peer.gid = cred.gid;
    peer.pid = cred.pid;

    std::vector<gid_t> gids{cred.gid};
    // The process's own supplementary groups (Linux >= 4.13).
    std::vector<gid_t> process_groups(64);
    socklen_t glen = static_cast<socklen_t>(process_groups.size() * sizeof(gid_t));
    int rc = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, process_groups.data(), &glen);
    if (rc != 0 && errno == ERANGE) {
        process_groups.resize(glen / sizeof(gid_t));
        rc = ::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, process_groups.data(), &glen);
    }
    if (rc == 0) {
        process_groups.resize(glen / sizeof(gid_t));
        gids.insert(gids.end(), process_groups.begin(), process_groups.end());
    }

    // The user's groups in the user database.
    std::vector<char> buf(4096);
    passwd pw{};
    passwd* result = nullptr;
    for (;;) {
        const int prc = ::getpwuid_r(cred.uid, &pw, buf.data(), buf.size(), &result);
        if (prc == ERANGE && buf.size() < (1u << 20)) {
            buf.resize(buf.size() * 2);
            continue;
        }
        break;
    }
    if (result != nullptr) {
        peer.user = pw.pw_name;
        int count = 32;
        std::vector<gid_t> db(static_cast<std::size_t>(count));
        while (::getgrouplist(pw.pw_name, pw.pw_gid, db.data(), &count) == -1 && count < 65536) {
            db.resize(static_cast<std::size_t>(count) + 1);
            count = static_cast<int>(db.size());
        }
        db.resize(static_cast<std::size_t>(std::max(count, 0)));
        gids.push_back(pw.pw_gid);
        gids.insert(gids.end(), db.begin(), db.end());
    } else {
        peer.user = std::to_string(cred.uid);
    }

    std::vector<gid_t> seen;
    for (gid_t g : gids) {
        if (std::find(seen.begin(), seen.end(), g) != seen.end()) continue;
        seen.push_back(g);
        peer.groups.push_back(group_name(g));
    }
    return peer;
}

// ---------------------------------------------------------------- server

namespace {

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n"; }

json error_response(std::string_view message) { return json{{"ok", false}, {"error", message}}; }

/// The response as sent: an object with "ok" set.
json normalise(json response) {
    if (!response.is_object()) return error_response("internal error: the daemon built an invalid response");
    if (!response.contains("ok")) response["ok"] = true;
    return response;
}

std::string daemon_hint(const fs::path& socket) {
    const std::string stem = socket.stem().string();
    if (stem == "sender" || stem == "receiver") return "sluice-" + stem;
    return "the daemon";
}

class Session;

}  // namespace

struct ControlServer::State : std::enable_shared_from_this<ControlServer::State> {
    State(asio::io_context& io, fs::path p, AsyncControlHandler h, ControlLimits l)
        : strand(asio::make_strand(io)), acceptor(strand), path(std::move(p)), handler(std::move(h)), limits(l) {}

    void accept();

    asio::strand<asio::io_context::executor_type> strand;
    stream::acceptor acceptor;
    fs::path path;
    AsyncControlHandler handler;
    ControlLimits limits;
    std::list<std::weak_ptr<Session>> sessions;
    bool stopped = false;
    dev_t dev = 0;
    ino_t ino = 0;
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
public:
    Session(std::shared_ptr<ControlServer::State> state, stream::socket socket)
        : state_(std::move(state)), socket_(std::move(socket)) {}

    ~Session() {
        if (registered_) state_->sessions.erase(self_entry_);
    }

    void start(bool over_capacity) {
        self_entry_ = state_->sessions.insert(state_->sessions.end(), weak_from_this());
        registered_ = true;
        if (over_capacity) {
            send(error_response("too many control connections (" + std::to_string(state_->limits.max_clients) +
                                "); try again later"),
                 true);
            return;
        }
        try {
            peer_ = peer_of(socket_.native_handle());
        } catch (const std::exception& e) {
            send(error_response(std::string("cannot identify the caller: ") + e.what()), true);
            return;
        }
        read_next();
    }

    void close() {
        boost::system::error_code ignored;
        socket_.shutdown(stream::socket::shutdown_both, ignored);
        socket_.close(ignored);
    }

private:
    void read_next() {
        asio::async_read_until(socket_, asio::dynamic_buffer(buffer_, state_->limits.max_line_bytes + 1), '\n',
                               [self = shared_from_this()](const boost::system::error_code& ec, std::size_t n) {
                                   self->on_line(ec, n);
                               });
    }

    void on_line(const boost::system::error_code& ec, std::size_t n) {
        if (ec == asio::error::not_found) {
            send(error_response("request line longer than " + std::to_string(state_->limits.max_line_bytes) +
                                " bytes; connection closed"),
                 true);
            return;
        }
        if (ec) return close();  // EOF, reset or stop(): nothing to answer
        std::string line = buffer_.substr(0, n - 1);
        buffer_.erase(0, n);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        dispatch(line);
    }

    void dispatch(const std::string& line) {
        json request = json::parse(line, nullptr, false);
        if (request.is_discarded()) return send(error_response("malformed request: not valid JSON"), false);
        if (!request.is_object() || !request.contains("command") || !request["command"].is_string())
            return send(error_response("malformed request: expected a JSON object with a \"command\" string"), false);

        auto once = std::make_shared<std::atomic<bool>>(false);
        // The responder keeps the session alive until it is called (or dropped).
        auto strand = state_->strand;
        ControlResponder respond = [self = shared_from_this(), once, strand](json response) {
            if (once->exchange(true)) return;
            asio::post(strand, [self, response = std::move(response)]() mutable {
                self->send(normalise(std::move(response)), false);
            });
        };
        try {
            state_->handler(request, peer_, respond);
        } catch (const std::exception& e) {
            respond(error_response(e.what()));
        } catch (...) {
            respond(error_response("internal error"));
        }
    }

    void send(const json& response, bool close_after) {
        out_ = dump(response);
        asio::async_write(socket_, asio::buffer(out_),
                          [self = shared_from_this(), close_after](const boost::system::error_code& ec, std::size_t) {
                              if (ec || close_after) return self->close();
                              self->read_next();
                          });
    }

    std::shared_ptr<ControlServer::State> state_;
    stream::socket socket_;
    std::string buffer_;
    std::string out_;
    Peer peer_;
    std::list<std::weak_ptr<Session>>::iterator self_entry_;
    bool registered_ = false;
};

}  // namespace

void ControlServer::State::accept() {
    acceptor.async_accept(strand, [self = shared_from_this()](const boost::system::error_code& ec,
                                                              stream::socket socket) {
        if (self->stopped) return;
        if (!ec) {
            const bool full = self->sessions.size() >= self->limits.max_clients;
            std::make_shared<Session>(self, std::move(socket))->start(full);
        } else if (ec == asio::error::operation_aborted) {
            return;
        }
        // Transient errors (EMFILE, ECONNABORTED) must not end the service.
        self->accept();
    });
}

namespace {

AsyncControlHandler wrap(ControlHandler h) {
    return [h = std::move(h)](const json& request, const Peer& peer, ControlResponder respond) {
        respond(h(request, peer));
    };
}

[[noreturn]] void refuse(const fs::path& path, const std::string& why) {
    throw std::runtime_error("cannot listen on " + path.string() + ": " + why);
}

/// Removes a socket file nobody listens on; refuses when someone does.
void clear_stale_socket(const fs::path& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return;
        refuse(path, std::strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode)) refuse(path, "the path exists and is not a socket; remove it or choose another control_socket");
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) refuse(path, std::strerror(errno));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, path.c_str(), path.native().size() + 1);
    const int rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
    const int err = errno;
    ::close(fd);
    if (rc == 0 || err == EAGAIN)
        refuse(path, "another process is already listening there (is " + daemon_hint(path) +
                         " already running with this configuration?)");
    if (err != ECONNREFUSED) refuse(path, std::string("cannot check the existing socket: ") + std::strerror(err));
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
        refuse(path, std::string("cannot remove the stale socket: ") + std::strerror(errno));
}

constexpr std::size_t kMaxSocketPath = sizeof(sockaddr_un{}.sun_path) - 1;

}  // namespace

ControlServer::ControlServer(asio::io_context& io, fs::path socket_path, ControlHandler handler, ControlLimits limits)
    : ControlServer(io, std::move(socket_path), wrap(std::move(handler)), limits) {}

ControlServer::ControlServer(asio::io_context& io, fs::path socket_path, AsyncControlHandler handler,
                             ControlLimits limits)
    : state_(std::make_shared<State>(io, std::move(socket_path), std::move(handler), limits)) {
    const fs::path& path = state_->path;
    if (path.native().size() > kMaxSocketPath)
        refuse(path, "path too long for a Unix socket (" + std::to_string(path.native().size()) + " bytes, at most " +
                         std::to_string(kMaxSocketPath) + ")");
    clear_stale_socket(path);
    boost::system::error_code ec;
    state_->acceptor.open(stream(), ec);
    if (!ec) state_->acceptor.bind(stream::endpoint(path.native()), ec);
    if (ec) {
        std::string why = ec.message();
        if (ec == boost::system::errc::no_such_file_or_directory)
            why += " (does " + path.parent_path().string() + " exist?)";
        refuse(path, why);
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0) {
        state_->dev = st.st_dev;
        state_->ino = st.st_ino;
    }
    // Any local user may connect: every request is authorised by the caller's
    // kernel credentials (SO_PEERCRED) and roles, and a caller without the role
    // gets an answer that says which group it lacks rather than a bare EACCES.
    // Officers, operators and auditors are in different groups, so no single
    // socket group could admit them all.
    if (::chmod(path.c_str(), 0666) != 0) {
        const int err = errno;
        ::unlink(path.c_str());
        refuse(path, std::string("chmod 0666: ") + std::strerror(err));
    }
    state_->acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        ::unlink(path.c_str());
        refuse(path, ec.message());
    }
    state_->accept();
}

ControlServer::~ControlServer() {
    stop();
    struct stat st {};
    if (state_->ino != 0 && ::lstat(state_->path.c_str(), &st) == 0 && st.st_dev == state_->dev &&
        st.st_ino == state_->ino)
        ::unlink(state_->path.c_str());
}

void ControlServer::stop() {
    if (state_->stopped) return;
    state_->stopped = true;
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    std::vector<std::shared_ptr<Session>> open;  // closing may end a session, which edits the list
    for (auto& weak : state_->sessions)
        if (auto s = weak.lock()) open.push_back(std::move(s));
    for (auto& s : open) s->close();
}

const fs::path& ControlServer::socket_path() const { return state_->path; }

std::size_t ControlServer::client_count() const { return state_->sessions.size(); }

// ---------------------------------------------------------------- client

namespace {

class ClientFd {
public:
    explicit ClientFd(int fd) : fd_(fd) {}
    ~ClientFd() {
        if (fd_ >= 0) ::close(fd_);
    }
    ClientFd(const ClientFd&) = delete;
    ClientFd& operator=(const ClientFd&) = delete;
    [[nodiscard]] int get() const { return fd_; }

private:
    int fd_;
};

/// Waits for `events` until `deadline`; false on timeout.
bool wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 60'000)));
        if (rc > 0) return true;
        if (rc < 0 && errno != EINTR)
            throw std::runtime_error(std::string("poll on the control socket: ") + std::strerror(errno));
    }
}

constexpr std::size_t kMaxResponseBytes = std::size_t{64} << 20;

}  // namespace

json control_call(const fs::path& socket_path, const json& request, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::string where = socket_path.string();
    if (socket_path.native().size() > kMaxSocketPath)
        throw std::runtime_error("cannot connect to " + where + ": path too long for a Unix socket");

    ClientFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) throw std::runtime_error(std::string("cannot create a Unix socket: ") + std::strerror(errno));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.native().size() + 1);
    for (;;) {
        if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) break;
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN && std::chrono::steady_clock::now() < deadline) {  // backlog full: retry
            ::usleep(10'000);
            continue;
        }
        std::string hint;
        if (err == ENOENT || err == ECONNREFUSED) hint = " — is " + daemon_hint(socket_path) + " running?";
        else if (err == EACCES || err == EPERM)
            hint = " — is your user in one of the groups listed in the daemon's [roles]?";
        else if (err == EAGAIN) hint = " — the daemon is not accepting connections";
        throw std::runtime_error("cannot connect to " + where + ": " + std::strerror(err) + hint);
    }

    const std::string line = dump(request);
    std::size_t sent = 0;
    while (sent < line.size()) {
        const ssize_t n = ::send(fd.get(), line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (n >= 0) {
            sent += static_cast<std::size_t>(n);
            continue;
        }
        if (errno == EINTR) continue;
        if (errno != EAGAIN) throw std::runtime_error("sending to " + where + ": " + std::strerror(errno));
        if (!wait_for(fd.get(), POLLOUT, deadline))
            throw std::runtime_error("timed out after " + std::to_string(timeout.count()) + " ms sending to " + where);
    }

    std::string response;
    char buf[16384];
    for (;;) {
        const auto nl = response.find('\n');
        if (nl != std::string::npos) {
            response.resize(nl);
            break;
        }
        if (response.size() > kMaxResponseBytes)
            throw std::runtime_error("response from " + where + " exceeds " + std::to_string(kMaxResponseBytes) +
                                     " bytes");
        const ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n > 0) {
            response.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n == 0) throw std::runtime_error(where + ": the daemon closed the connection without answering");
        if (errno == EINTR) continue;
        if (errno != EAGAIN) throw std::runtime_error("reading from " + where + ": " + std::strerror(errno));
        if (!wait_for(fd.get(), POLLIN, deadline))
            throw std::runtime_error("timed out after " + std::to_string(timeout.count()) +
                                     " ms waiting for an answer from " + where);
    }
    json parsed = json::parse(response, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object())
        throw std::runtime_error(where + ": the daemon sent an invalid response");
    return parsed;
}

}  // namespace sluice::daemon
