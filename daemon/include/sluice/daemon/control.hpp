#pragma once
// The control protocol between `sluice` and a daemon: JSON lines over a Unix
// stream socket, any number of requests per connection, answered in order.
//
//   client                                   daemon (ControlServer)
//   {"command":"push","path":"/x"}\n  --->   SO_PEERCRED -> Peer{uid,gid,pid,user,groups}
//                                            handler(request, peer) on the io_context thread
//   {"ok":true,"bundle":"3f2a…"}\n    <---   or {"ok":false,"error":"message"}
//
// A request is a JSON object with a string "command"; anything else, a line
// over 64 KiB (the connection is then closed), or an exception thrown by the
// handler is answered with {"ok":false,"error":…}. Identity comes from the
// kernel only; roles are Unix groups mapped by [roles] (uid 0 has every role).

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "sluice/daemon/config.hpp"

namespace sluice::daemon {

/// Who is on the other end of a control connection, as the kernel says.
struct Peer {
    uid_t uid = 0;
    gid_t gid = 0;
    pid_t pid = 0;
    std::string user;                 ///< login name, or the uid in decimal when unknown
    std::vector<std::string> groups;  ///< names: primary, supplementary (user database and process)
};

enum class Role { operator_, officer, auditor };

/// "operator", "officer", "auditor".
[[nodiscard]] std::string_view role_name(Role role);

/// True when `peer` is uid 0 or belongs to one of the groups `roles` maps to `role`.
[[nodiscard]] bool has_role(const Peer& peer, Role role, const RolesConfig& roles);

/// Throws std::runtime_error("permission denied: alice needs the officer role
/// (a member of sluice-officers)") unless has_role(); for handlers to call.
void require_role(const Peer& peer, Role role, const RolesConfig& roles);

/// The peer of a connected Unix socket: SO_PEERCRED, then the user database
/// (getpwuid_r, getgrouplist) and SO_PEERGROUPS. Throws std::system_error when
/// the kernel gives no credentials.
[[nodiscard]] Peer peer_of(int unix_socket_fd);

/// Answers a request synchronously. Whatever object it returns is sent with
/// "ok": true added unless it sets "ok" itself; throwing sends
/// {"ok":false,"error":what()}.
using ControlHandler = std::function<nlohmann::json(const nlohmann::json& request, const Peer& peer)>;

/// Answers a request later (work on another thread): call `respond` exactly
/// once, from any thread. Later calls are ignored.
using ControlResponder = std::function<void(nlohmann::json response)>;
using AsyncControlHandler =
    std::function<void(const nlohmann::json& request, const Peer& peer, ControlResponder respond)>;

struct ControlLimits {
    std::size_t max_line_bytes = 64 * 1024;  ///< request line, newline excluded
    std::size_t max_clients = 256;           ///< further connections get an error and are closed
};

/// Listens on a Unix socket and dispatches requests to a handler. All its
/// work runs on one strand of `io`; call stop(), client_count() and the
/// destructor from the io_context's thread or after it has stopped running.
class ControlServer {
public:
    /// Binds `socket_path` (mode 0666: roles, not file modes, decide) and starts accepting on `io`. A stale
    /// socket file nobody listens on is replaced. Throws std::runtime_error if
    /// another process listens there, the path is not a socket, or bind fails.
    ControlServer(boost::asio::io_context& io, std::filesystem::path socket_path, ControlHandler handler,
                  ControlLimits limits = {});
    ControlServer(boost::asio::io_context& io, std::filesystem::path socket_path, AsyncControlHandler handler,
                  ControlLimits limits = {});
    /// Stops, and removes the socket file if it is still ours.
    ~ControlServer();
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    /// Stops accepting and closes every connection (answers in flight are dropped).
    void stop();

    [[nodiscard]] const std::filesystem::path& socket_path() const;
    [[nodiscard]] std::size_t client_count() const;

    struct State;

private:
    std::shared_ptr<State> state_;
};

/// Sends one request and waits for its response, for at most `timeout` in all.
/// Throws std::runtime_error with an actionable message: cannot connect
/// (daemon not running? permissions?), timeout, connection closed, invalid JSON.
[[nodiscard]] nlohmann::json control_call(const std::filesystem::path& socket, const nlohmann::json& request,
                                          std::chrono::milliseconds timeout);

}  // namespace sluice::daemon
