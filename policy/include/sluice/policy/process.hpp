#pragma once
// Running an outside command (exec scanners, post-release hooks) the way an
// appliance must: its own process group, a minimal environment, a hard
// timeout that kills the whole group, and its output kept (bounded) for the record.
//
//   run_command(spec) ── fork ─► child: setpgid(0,0), stdin </dev/null, stdout+stderr -> pipe,
//        │                        chdir(working_dir), [no-network seccomp filter], execve(argv[0], argv, env)
//        │                        (no PATH search)
//        └─ parent: poll(pipe) until EOF and exit, or timeout ─► kill(-pgid, SIGKILL), waitpid
//
// Never throws; a command that cannot start is an outcome, not an exception.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::policy {

struct CommandSpec {
    std::vector<std::string> argv;             ///< argv[0] is an absolute path (no PATH lookup)
    std::chrono::milliseconds timeout{60000};  ///< whole run, output drained included
    std::vector<std::string> env;              ///< "KEY=value": the child's entire environment
    std::filesystem::path working_dir{"/"};
    std::size_t output_cap = 64 * 1024;        ///< bytes of stdout+stderr kept; the rest counted, not kept
    /// false: the command and everything it starts can open Unix sockets only
    /// (a seccomp filter installed just before exec; IP, netlink, packet and
    /// every other family fail with EAFNOSUPPORT, io_uring with ENOSYS).
    /// Scanners run so; post-release hooks keep the network.
    bool ip_network = true;
};

struct CommandResult {
    enum class Outcome { exited, signalled, timed_out, failed_to_start };
    Outcome outcome = Outcome::failed_to_start;
    int exit_code = -1;                 ///< when exited
    int signal = 0;                     ///< when signalled
    std::string output;                 ///< stdout and stderr interleaved, at most output_cap bytes
    std::size_t output_bytes = 0;       ///< produced in all (> output.size() when truncated)
    std::chrono::milliseconds took{0};
    std::string error;                  ///< failed_to_start: why (errno text, naming argv[0])

    /// One line for logs and records: "exit 0", "exit 3", "killed by signal 9",
    /// "timed out after 30s (process group killed)", "cannot start /x: No such file or directory".
    [[nodiscard]] std::string describe() const;
};

/// Runs the command to completion or timeout. Never throws.
[[nodiscard]] CommandResult run_command(const CommandSpec& spec);

/// PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin, LANG=C.UTF-8, HOME=/nonexistent,
/// plus `extra` ("KEY=value"). Nothing inherited from the daemon.
[[nodiscard]] std::vector<std::string> minimal_environment(const std::vector<std::string>& extra = {});

/// Replaces every "{name}" in every argument by values.at(name); unknown
/// placeholders are left as they are. Arguments are never split or quoted (no shell).
[[nodiscard]] std::vector<std::string> substitute(const std::vector<std::string>& argv,
                                                  const std::map<std::string, std::string>& values);

}  // namespace sluice::policy
