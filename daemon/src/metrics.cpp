#include "sluice/daemon/metrics.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace sluice::daemon {
namespace {

bool valid_name(std::string_view s, bool allow_colon) {
    if (s.empty()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
        const bool digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && i > 0)) return false;
    }
    return true;
}

std::string family_name(const MetricSample& s) {
    if (s.type == MetricType::counter && !s.name.ends_with("_total")) return s.name + "_total";
    return s.name;
}

std::string escape_help(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string escape_label_value(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    if (ec != std::errc()) return "NaN";
    return std::string(buf, end);
}

std::string errno_text(int err) { return std::strerror(err); }

class Fd {
public:
    explicit Fd(int fd) : fd_(fd) {}
    ~Fd() {
        if (fd_ >= 0) ::close(fd_);
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return fd_; }
    int release_and_close() {
        const int rc = ::close(fd_);
        fd_ = -1;
        return rc;
    }

private:
    int fd_;
};

}  // namespace

Result<std::string> render_metrics(std::span<const MetricSample> samples) {
    // Families in order of first appearance; each family's samples together.
    std::vector<std::string> order;
    std::vector<std::vector<const MetricSample*>> families;
    for (const auto& s : samples) {
        if (!valid_name(s.name, true)) return fail("metric name \"" + s.name + "\" is not valid");
        for (const auto& [label, value] : s.labels) {
            (void)value;
            if (!valid_name(label, false) || label.starts_with("__"))
                return fail("label name \"" + label + "\" of " + s.name + " is not valid");
        }
        const std::string name = family_name(s);
        std::size_t i = 0;
        while (i < order.size() && order[i] != name) ++i;
        if (i == order.size()) {
            order.push_back(name);
            families.emplace_back();
        } else if (families[i].front()->type != s.type) {
            return fail("metric " + name + " is used both as a counter and as a gauge");
        }
        families[i].push_back(&s);
    }

    std::string out;
    for (std::size_t i = 0; i < order.size(); ++i) {
        const MetricSample& first = *families[i].front();
        out += "# HELP " + order[i] + " " + escape_help(first.help) + "\n";
        out += "# TYPE " + order[i] + (first.type == MetricType::counter ? " counter\n" : " gauge\n");
        for (const MetricSample* s : families[i]) {
            out += order[i];
            if (!s->labels.empty()) {
                out += '{';
                bool comma = false;
                for (const auto& [label, value] : s->labels) {
                    if (comma) out += ',';
                    comma = true;
                    out += label + "=\"" + escape_label_value(value) + "\"";
                }
                out += '}';
            }
            out += ' ' + format_value(s->value) + '\n';
        }
    }
    return out;
}

Result<void> MetricsFile::write(std::span<const MetricSample> samples) const {
    auto text = render_metrics(samples);
    if (!text) return text.error();

    const std::filesystem::path tmp = path_.string() + ".tmp." + std::to_string(::getpid());
    const auto failed = [&](std::string_view what, int err) {
        ::unlink(tmp.c_str());
        return fail(tmp.string() + ": " + std::string(what) + ": " + errno_text(err));
    };

    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) return fail("cannot write metrics to " + tmp.string() + ": " + errno_text(errno));
    // node_exporter reads it as another user, whatever umask the daemon runs
    // with (the packaged receiver unit uses 0077).
    if (::fchmod(fd.get(), 0644) != 0) return failed("fchmod", errno);
    const std::string& body = *text;
    std::size_t done = 0;
    while (done < body.size()) {
        const ssize_t n = ::write(fd.get(), body.data() + done, body.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return failed("write", errno);
        done += static_cast<std::size_t>(n);
    }
    if (::fsync(fd.get()) != 0) return failed("fsync", errno);
    if (fd.release_and_close() != 0) return failed("close", errno);
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return fail("cannot replace " + path_.string() + ": " + errno_text(err));
    }
    return {};
}

}  // namespace sluice::daemon
