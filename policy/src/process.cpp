#include "sluice/policy/process.hpp"

#include "posix_io.hpp"

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstring>
#include <utility>

namespace sluice::policy {
namespace {

using detail::Fd;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

/// After the command itself has exited and its group was killed, how long to
/// wait for the output pipe to reach end-of-file. Killed processes close their
/// ends at once; only one that left the group (setsid) could hold it longer,
/// and we do not wait for that one.
constexpr milliseconds kDrainGrace{500};

/// Output is read in slices of this size whatever output_cap is.
constexpr std::size_t kReadBytes = 64 * 1024;


/// A pipe whose two ends are close-on-exec, so that a child forked by another
/// thread at the same moment does not carry them past its own exec.
struct Pipe {
    Fd read_end;
    Fd write_end;
};

bool make_pipe(Pipe& p) {
    std::array<int, 2> fds{-1, -1};
    if (::pipe2(fds.data(), O_CLOEXEC) != 0) return false;
    p.read_end = Fd(fds[0]);
    p.write_end = Fd(fds[1]);
    return true;
}

std::string errno_text(int err) {
    // strerror_r (GNU flavour) is thread-safe, unlike strerror.
    std::array<char, 256> buf{};
    return ::strerror_r(err, buf.data(), buf.size());
}

/// Why the child could not exec, sent back over the error pipe.
struct ChildFailure {
    int stage;  // kStageSetup, kStageChdir, kStageExec or kStageNetwork
    int err;
};
constexpr int kStageSetup = 0;
constexpr int kStageChdir = 1;
constexpr int kStageExec = 2;
constexpr int kStageNetwork = 3;

// ---- no IP network for the command (CommandSpec::ip_network = false) ----------
//
// A seccomp filter, installed in the child just before exec and inherited by
// everything it starts (filters can be added, never removed): socket() and
// socketpair() succeed only for AF_UNIX (a scanner may still talk to a local
// daemon such as clamd), everything else fails with EAFNOSUPPORT; io_uring
// (which can open sockets itself) is refused with ENOSYS; a system call made
// through another architecture's entry (int 0x80, x32), which this filter
// could not read correctly, kills the process.
#if defined(__x86_64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_X86_64;
constexpr std::uint32_t kForeignSyscallBit = 0x40000000;  // __X32_SYSCALL_BIT
#elif defined(__aarch64__)
constexpr std::uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
constexpr std::uint32_t kForeignSyscallBit = 0;
#else
#error "no seccomp network filter for this architecture: add its AUDIT_ARCH here"
#endif

constexpr sock_filter stmt(std::uint16_t code, std::uint32_t k) { return {code, 0, 0, k}; }
constexpr sock_filter jump(std::uint16_t code, std::uint32_t k, std::uint8_t jt, std::uint8_t jf) {
    return {code, jt, jf, k};
}
constexpr std::uint32_t errno_action(int err) {
    return SECCOMP_RET_ERRNO | (static_cast<std::uint32_t>(err) & SECCOMP_RET_DATA);
}

// Offsets into struct seccomp_data; args[0]'s low 32 bits hold the family on
// little-endian machines (both architectures above).
constexpr std::uint32_t kNr = offsetof(seccomp_data, nr);
constexpr std::uint32_t kArch = offsetof(seccomp_data, arch);
constexpr std::uint32_t kArg0 = offsetof(seccomp_data, args);

constexpr std::array<sock_filter, 15> kNoNetworkFilter{{
    /*  0 */ stmt(BPF_LD | BPF_W | BPF_ABS, kArch),
    /*  1 */ jump(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 1, 0),             // native: 3
    /*  2 */ stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
    /*  3 */ stmt(BPF_LD | BPF_W | BPF_ABS, kNr),
    /*  4 */ jump(BPF_JMP | BPF_JSET | BPF_K, kForeignSyscallBit, 9, 0),    // x32: 14 (never with 0)
    /*  5 */ jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_socket, 3, 0),             // 9
    /*  6 */ jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_socketpair, 2, 0),         // 9
    /*  7 */ jump(BPF_JMP | BPF_JEQ | BPF_K, SYS_io_uring_setup, 5, 0),     // 13
    /*  8 */ stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    /*  9 */ stmt(BPF_LD | BPF_W | BPF_ABS, kArg0),
    /* 10 */ jump(BPF_JMP | BPF_JEQ | BPF_K, AF_UNIX, 1, 0),                // 12
    /* 11 */ stmt(BPF_RET | BPF_K, errno_action(EAFNOSUPPORT)),
    /* 12 */ stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    /* 13 */ stmt(BPF_RET | BPF_K, errno_action(ENOSYS)),
    /* 14 */ stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
}};

/// Async-signal-safe: two prctl calls on a constant program.
bool cut_off_network() {
    sock_fprog prog{static_cast<unsigned short>(kNoNetworkFilter.size()), const_cast<sock_filter*>(kNoNetworkFilter.data())};
    // Needed to install a filter without CAP_SYS_ADMIN; the packaged units set it anyway.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
    return ::prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) == 0;
}

/// Everything the child needs, laid out before fork: after fork the child may
/// only make async-signal-safe calls (no allocation), because another thread
/// may have held the malloc lock at the moment of the fork.
struct ChildPlan {
    std::vector<char*> argv;
    std::vector<char*> envp;
    const char* path = nullptr;
    const char* working_dir = nullptr;
    int stdin_fd = -1;
    int output_fd = -1;
    int error_fd = -1;
    int max_fd = 1024;  ///< above the highest descriptor the daemon can hold (RLIMIT_NOFILE)
    bool ip_network = true;
};

[[noreturn]] void report_and_exit(int error_fd, int stage, int err) {
    const ChildFailure failure{stage, err};
    const char* p = reinterpret_cast<const char*>(&failure);
    std::size_t left = sizeof failure;
    while (left > 0) {
        const ssize_t n = ::write(error_fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    ::_exit(127);
}

int dup2_retry(int from, int to) {
    int r;
    do {
        r = ::dup2(from, to);
    } while (r < 0 && errno == EINTR);
    return r;
}

/// Runs in the child between fork and exec: async-signal-safe calls only.
[[noreturn]] void child_exec(const ChildPlan& plan) {
    // Its own process group, so that a timeout can kill everything it started.
    ::setpgid(0, 0);

    // Handlers are reset by exec, but ignored signals and the blocked mask are
    // inherited: a daemon that ignores SIGPIPE or blocks SIGTERM in its threads
    // must not hand that to the scanner.
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        struct sigaction dfl {};
        dfl.sa_handler = SIG_DFL;
        ::sigaction(sig, &dfl, nullptr);  // fails harmlessly for the libc-reserved ones
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    if (dup2_retry(plan.stdin_fd, STDIN_FILENO) < 0 || dup2_retry(plan.output_fd, STDOUT_FILENO) < 0 ||
        dup2_retry(plan.output_fd, STDERR_FILENO) < 0) {
        report_and_exit(plan.error_fd, kStageSetup, errno);
    }
    // Any descriptor the daemon opened without O_CLOEXEC must not reach the
    // command either (Asio opens the link's UDP sockets without it: a scanner
    // must not inherit a bound IP socket, filter or not). Kernels before 5.11
    // lack CLOSE_RANGE_CLOEXEC: then one descriptor at a time.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
        for (int fd = 3; fd < plan.max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }

    if (::chdir(plan.working_dir) != 0) report_and_exit(plan.error_fd, kStageChdir, errno);
    // Last, so that nothing above runs under the filter.
    if (!plan.ip_network && !cut_off_network()) report_and_exit(plan.error_fd, kStageNetwork, errno);
    ::execve(plan.path, plan.argv.data(), plan.envp.data());
    report_and_exit(plan.error_fd, kStageExec, errno);
}

/// Reads the error pipe to its end: nothing means exec succeeded.
bool read_child_failure(int fd, ChildFailure& failure) {
    char* p = reinterpret_cast<char*>(&failure);
    std::size_t got = 0;
    while (got < sizeof failure) {
        const ssize_t n = ::read(fd, p + got, sizeof failure - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    return got == sizeof failure;
}

pid_t waitpid_retry(pid_t pid, int& status, int flags) {
    pid_t r;
    do {
        r = ::waitpid(pid, &status, flags);
    } while (r < 0 && errno == EINTR);
    return r;
}

/// True once the child has exited, without reaping it: while it is a zombie
/// its pid, and so its process group id, cannot be reused, so killing the
/// group afterwards cannot hit a stranger.
bool child_has_exited(pid_t pid) {
    siginfo_t info{};
    int r;
    do {
        r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return true;  // ECHILD: nothing left to wait for
    return info.si_pid == pid;
}

void kill_group(pid_t pid) {
    // The child made itself leader of group `pid`; if that failed somehow,
    // at least the child itself dies.
    if (::kill(-pid, SIGKILL) != 0) ::kill(pid, SIGKILL);
}

/// A descriptor that becomes readable when the child exits, so that poll()
/// wakes at once; empty when the kernel has no pidfd (then we poll in slices).
/// The kernel always sets close-on-exec on a pidfd.
Fd open_pidfd(pid_t pid) {
#ifdef SYS_pidfd_open
    const long fd = ::syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) return Fd(static_cast<int>(fd));
#endif
    (void)pid;
    return Fd();
}

milliseconds remaining(Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    return left.count() > 0 ? left : milliseconds{0};
}

int poll_timeout(milliseconds left, bool have_pidfd) {
    // Without a pidfd the child's exit is only noticed between polls.
    const milliseconds slice = have_pidfd ? left : std::min(left, milliseconds{20});
    // +1 so that a poll never returns just before the deadline and spins.
    return static_cast<int>(std::min<long long>(slice.count() + (slice.count() > 0 ? 1 : 0), 1 << 30));
}

std::string format_duration(milliseconds d) {
    const auto ms = d.count();
    if (ms < 1000) return std::to_string(ms) + "ms";
    const auto tenths = (ms + 50) / 100;
    std::string s = std::to_string(tenths / 10);
    if (tenths % 10 != 0) s += "." + std::to_string(tenths % 10);
    return s + "s";
}

CommandResult cannot_start(const CommandSpec& spec, std::string why, Clock::time_point start) {
    CommandResult r;
    r.outcome = CommandResult::Outcome::failed_to_start;
    r.error = "cannot start " + (spec.argv.empty() ? std::string("(empty command)") : spec.argv[0]) + ": " +
              std::move(why);
    r.took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
    return r;
}

bool contains_nul(const std::string& s) { return s.find('\0') != std::string::npos; }

}  // namespace

std::string CommandResult::describe() const {
    switch (outcome) {
        case Outcome::exited:
            return "exit " + std::to_string(exit_code);
        case Outcome::signalled:
            if (signal == 0) return error.empty() ? std::string("exit status unknown") : error;
            return "killed by signal " + std::to_string(signal);
        case Outcome::timed_out:
            return "timed out after " + format_duration(took) + " (process group killed)";
        case Outcome::failed_to_start:
            return error.empty() ? std::string("cannot start") : error;
    }
    return "unknown outcome";
}

CommandResult run_command(const CommandSpec& spec) {
    const auto start = Clock::now();
    const auto deadline = start + spec.timeout;

    if (spec.argv.empty()) return cannot_start(spec, "no command given", start);
    if (spec.argv[0].empty() || spec.argv[0].front() != '/') {
        return cannot_start(spec, "not an absolute path (commands are not searched in PATH)", start);
    }
    for (const auto& a : spec.argv) {
        if (contains_nul(a)) return cannot_start(spec, "an argument contains a NUL byte", start);
    }
    for (const auto& e : spec.env) {
        if (contains_nul(e)) return cannot_start(spec, "an environment entry contains a NUL byte", start);
    }
    if (contains_nul(spec.working_dir.native())) {
        return cannot_start(spec, "the working directory contains a NUL byte", start);
    }

    Fd dev_null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (!dev_null.valid()) return cannot_start(spec, "cannot open /dev/null: " + errno_text(errno), start);
    Pipe output;
    Pipe failure_pipe;
    if (!make_pipe(output) || !make_pipe(failure_pipe)) {
        return cannot_start(spec, "cannot create a pipe: " + errno_text(errno), start);
    }

    // execve takes char* const[]; the strings themselves are never written.
    ChildPlan plan;
    plan.argv.reserve(spec.argv.size() + 1);
    for (const auto& a : spec.argv) plan.argv.push_back(const_cast<char*>(a.c_str()));
    plan.argv.push_back(nullptr);
    plan.envp.reserve(spec.env.size() + 1);
    for (const auto& e : spec.env) plan.envp.push_back(const_cast<char*>(e.c_str()));
    plan.envp.push_back(nullptr);
    plan.path = spec.argv[0].c_str();
    plan.working_dir = spec.working_dir.c_str();
    plan.stdin_fd = dev_null.get();
    plan.output_fd = output.write_end.get();
    plan.error_fd = failure_pipe.write_end.get();
    plan.ip_network = spec.ip_network;
    if (rlimit nofile{}; ::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
        plan.max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20));
    } else {
        plan.max_fd = 1 << 20;
    }

    const pid_t pid = ::fork();
    if (pid < 0) return cannot_start(spec, "fork failed: " + errno_text(errno), start);
    if (pid == 0) child_exec(plan);

    // Also from the parent, so that the group exists before we might kill it
    // (whichever of the two runs first wins; the loser's EACCES is harmless).
    ::setpgid(pid, pid);
    Fd pidfd = open_pidfd(pid);

    // Our copies of the child's ends: the output pipe must reach EOF when the
    // child's side closes, and the error pipe when exec succeeds.
    dev_null.reset();
    output.write_end.reset();
    failure_pipe.write_end.reset();

    ChildFailure failure{};
    const bool exec_failed = read_child_failure(failure_pipe.read_end.get(), failure);
    failure_pipe.read_end.reset();
    if (exec_failed) {
        int status = 0;
        waitpid_retry(pid, status, 0);
        std::string why = errno_text(failure.err);
        if (failure.stage == kStageChdir) {
            why = "cannot change to working directory " + spec.working_dir.string() + ": " + why;
        } else if (failure.stage == kStageNetwork) {
            why = "cannot cut the command off the network (seccomp): " + why;
        } else if (failure.stage == kStageSetup) {
            why = "cannot set up standard input and output: " + why;
        }
        return cannot_start(spec, std::move(why), start);
    }

    CommandResult result;
    std::string buffer(kReadBytes, '\0');
    bool output_open = true;
    bool exited = false;
    bool timed_out = false;
    // Once the command has exited, the rest of its output gets only a short grace.
    Clock::time_point drain_deadline = deadline;

    while (output_open || !exited) {
        if (!exited && child_has_exited(pid)) {
            exited = true;
            // Nothing it left behind in its group may outlive it.
            kill_group(pid);
            drain_deadline = std::min(deadline, Clock::now() + kDrainGrace);
            continue;
        }
        const auto left = remaining(exited ? drain_deadline : deadline);
        if (left.count() == 0) {
            if (!exited) timed_out = true;
            break;
        }

        std::array<pollfd, 2> fds{};
        nfds_t count = 0;
        if (output_open) fds[count++] = pollfd{output.read_end.get(), POLLIN, 0};
        if (!exited && pidfd.valid()) fds[count++] = pollfd{pidfd.get(), POLLIN, 0};
        const int ready = ::poll(fds.data(), count, poll_timeout(left, pidfd.valid() || exited));
        if (ready < 0) {
            if (errno == EINTR) continue;
            break;  // cannot happen with valid descriptors; treat as the end of the output
        }
        if (output_open && fds[0].revents != 0) {
            const ssize_t n = ::read(output.read_end.get(), buffer.data(), buffer.size());
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                output_open = false;
                output.read_end.reset();
                continue;
            }
            const auto got = static_cast<std::size_t>(n);
            result.output_bytes += got;
            // Past the cap the output is still read, or the command would block on a full pipe.
            if (result.output.size() < spec.output_cap) {
                result.output.append(buffer.data(), std::min(got, spec.output_cap - result.output.size()));
            }
        }
    }

    if (!exited) kill_group(pid);
    int status = 0;
    const pid_t reaped = waitpid_retry(pid, status, 0);
    result.took = std::chrono::duration_cast<milliseconds>(Clock::now() - start);

    if (timed_out) {
        result.outcome = CommandResult::Outcome::timed_out;
    } else if (reaped == pid && WIFEXITED(status)) {
        result.outcome = CommandResult::Outcome::exited;
        result.exit_code = WEXITSTATUS(status);
    } else if (reaped == pid && WIFSIGNALED(status)) {
        result.outcome = CommandResult::Outcome::signalled;
        result.signal = WTERMSIG(status);
    } else {
        // Reaped by someone else: SIGCHLD set to SIG_IGN (children are then
        // reaped by the kernel) or a waitpid(-1) elsewhere in the process.
        // Reported as a failure, never as success.
        result.outcome = CommandResult::Outcome::signalled;
        result.error = "exit status unknown (reaped elsewhere: is SIGCHLD ignored in this process?)";
    }
    return result;
}

std::vector<std::string> minimal_environment(const std::vector<std::string>& extra) {
    std::vector<std::string> env{
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "LANG=C.UTF-8",
        "HOME=/nonexistent",
    };
    env.insert(env.end(), extra.begin(), extra.end());
    return env;
}

std::vector<std::string> substitute(const std::vector<std::string>& argv,
                                    const std::map<std::string, std::string>& values) {
    std::vector<std::string> out;
    out.reserve(argv.size());
    for (const auto& arg : argv) {
        std::string s;
        s.reserve(arg.size());
        std::size_t i = 0;
        while (i < arg.size()) {
            const auto open = arg.find('{', i);
            if (open == std::string::npos) {
                s.append(arg, i, std::string::npos);
                break;
            }
            s.append(arg, i, open - i);
            const auto close = arg.find('}', open + 1);
            if (close == std::string::npos) {
                s.append(arg, open, std::string::npos);
                break;
            }
            const auto it = values.find(arg.substr(open + 1, close - open - 1));
            if (it == values.end()) {
                // Not ours: keep the brace and look for a placeholder right after it ("{{path}").
                s.push_back('{');
                i = open + 1;
                continue;
            }
            // The value is inserted as is and never rescanned.
            s += it->second;
            i = close + 1;
        }
        out.push_back(std::move(s));
    }
    return out;
}

}  // namespace sluice::policy
