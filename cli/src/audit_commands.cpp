#include "audit_commands.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "app.hpp"
#include "daemon_commands.hpp"
#include "output.hpp"
#include "sluice/audit/export.hpp"
#include "sluice/audit/log.hpp"
#include "sluice/audit/report.hpp"
#include "sluice/audit/service.hpp"
#include "sluice/bundle/signing.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::cli {
namespace {

constexpr std::int64_t kExportPage = 5000;  // records per request: bounded memory, well under the 64 MiB answer limit

/// Where the records come from: a database file, or a daemon's control socket.
struct Target {
    std::string db;
    std::string socket;
    bool sender = false;

    [[nodiscard]] std::string socket_path() const {
        if (!socket.empty()) return socket;
        return sender ? default_socket("SLUICE_SENDER_SOCKET", "/run/sluice/sender.sock")
                      : default_socket("SLUICE_RECEIVER_SOCKET", "/run/sluice/receiver.sock");
    }
};

void add_target_options(CLI::App* cmd, Target& t) {
    auto* db = cmd->add_option("--db", t.db, "Read this audit database file directly (offline; works on a copy)");
    auto* socket = cmd->add_option("--socket", t.socket,
                                   "Daemon control socket (default $SLUICE_RECEIVER_SOCKET or /run/sluice/receiver.sock)");
    auto* sender = cmd->add_flag("--sender", t.sender, "Ask the sender daemon ($SLUICE_SENDER_SOCKET or /run/sluice/sender.sock)");
    db->excludes(socket)->excludes(sender);
}

/// Answers audit requests (service.hpp) from a database file or a daemon.
class AuditSource {
public:
    explicit AuditSource(Target target) : target_(std::move(target)) {}

    /// The answer; nullopt once the error is printed and exit_code set.
    std::optional<json> ask(json request, int& exit_code) {
        if (target_.db.empty()) {
            request["command"] = "audit";
            auto r = call(target_.socket_path(), request, exit_code);
            if (r) r->erase("ok");
            return r;
        }
        if (!reader_) {
            auto opened = audit::Reader::open(target_.db);
            if (!opened) {
                exit_code = report_error(opened.error());
                return std::nullopt;
            }
            reader_ = std::move(*opened);
        }
        try {
            return audit::serve(*reader_, request);
        } catch (const std::invalid_argument& e) {  // the request: the message speaks for itself
            exit_code = report_error(Error{e.what()});
            return std::nullopt;
        } catch (const std::exception& e) {  // the file could not be read
            exit_code = report_error(Error{e.what()}.within(target_.db));
            return std::nullopt;
        }
    }

private:
    Target target_;
    std::unique_ptr<audit::Reader> reader_;
};

/// The records of an answer; nullopt (error printed) when one is malformed.
std::optional<std::vector<audit::Record>> records_of(const json& answer, int& exit_code) {
    std::vector<audit::Record> out;
    const auto it = answer.find("records");
    if (it == answer.end() || !it->is_array()) {
        exit_code = report_error(Error{"the answer has no \"records\" list (a daemon of another version?)"});
        return std::nullopt;
    }
    out.reserve(it->size());
    for (const auto& j : *it) {
        auto r = audit::Record::from_json(j);
        if (!r) {
            exit_code = report_error(r.error().within("malformed answer"));
            return std::nullopt;
        }
        out.push_back(std::move(*r));
    }
    return out;
}

struct Filters {
    std::string bundle, channel, actor, event, outcome, since, until;
    bool upstream = false;

    [[nodiscard]] json to_json() const {
        json f = json::object();
        for (auto [key, value] : {std::pair{"bundle", &bundle}, {"channel", &channel}, {"actor", &actor}, {"event", &event},
                                  {"outcome", &outcome}, {"since", &since}, {"until", &until}}) {
            if (!value->empty()) f[key] = *value;
        }
        return f;
    }
};

/// --since/--until: checked here so that a typo is a usage error (exit 2), not a refusal.
const CLI::Validator kTimeBound(
    [](std::string& value) -> std::string {
        auto t = audit::parse_time_bound(value);
        return t ? std::string() : t.error().message;
    },
    "TIME", "RFC 3339 time or YYYY-MM-DD");

void add_filter_options(CLI::App* cmd, Filters& f) {
    cmd->add_option("--bundle", f.bundle, "Bundle id, or a prefix of at least 6 hex digits");
    cmd->add_option("--channel", f.channel, "Release channel");
    cmd->add_option("--actor", f.actor, "Unix user, or system");
    cmd->add_option("--event", f.event, "Event name (bundle_released, approval_recorded, …)");
    cmd->add_option("--outcome", f.outcome, "ok, error, refused, rejected, approved, pass, fail, found, …");
    cmd->add_option("--since", f.since, "From this time on (inclusive): RFC 3339 or YYYY-MM-DD")->check(kTimeBound);
    cmd->add_option("--until", f.until, "Before this time (exclusive): RFC 3339 or YYYY-MM-DD")->check(kTimeBound);
    cmd->add_flag("--upstream", f.upstream, "The sender's events recorded on this receiver instead of its own chain");
}

void add_format_option(CLI::App* cmd, std::string& format, std::vector<std::string> allowed, std::string_view what) {
    cmd->add_option("--format", format, std::string(what))->check(CLI::IsMember(std::move(allowed)));
}

audit::Format format_of(const std::string& name) {
    auto f = audit::parse_format(name);
    return f ? *f : audit::Format::table;  // the option's IsMember check ran first
}

std::string show(const json& v) {
    if (v.is_null()) return "-";
    return audit::terminal_safe(v.is_string() ? v.get<std::string>() : v.dump());
}

// ---- export -----------------------------------------------------------------

/// A file written beside its final name and renamed into place once complete
/// and on disk; removed if anything fails before (nothing is left at the name).
class StagedFile {
public:
    static Result<StagedFile> create(const fs::path& final_path) {
        const fs::path dir = final_path.has_parent_path() ? final_path.parent_path() : fs::path(".");
        std::string templ = (dir / ("." + final_path.filename().string() + ".partial-XXXXXX")).string();
        const int fd = ::mkstemp(templ.data());  // mode 0600: the audit trail is not for everyone
        if (fd < 0) return fail("cannot create a file in " + dir.string() + ": " + std::strerror(errno));
        ::close(fd);
        return StagedFile(final_path, templ);
    }
    StagedFile(StagedFile&& other) noexcept
        : final_(std::move(other.final_)), staged_(std::move(other.staged_)), out_(std::move(other.out_)) {
        other.staged_.clear();
    }
    StagedFile(const StagedFile&) = delete;
    StagedFile& operator=(const StagedFile&) = delete;
    StagedFile& operator=(StagedFile&&) = delete;
    ~StagedFile() {
        if (staged_.empty()) return;
        out_.close();
        std::error_code ec;
        fs::remove(staged_, ec);
    }

    std::ostream& stream() { return out_; }

    /// Flushes, fsyncs, renames over the final name and fsyncs the directory.
    Result<void> commit() {
        out_.close();
        if (out_.fail()) return fail("cannot write " + staged_.string() + " (disk full?)");
        const int fd = ::open(staged_.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ::fsync(fd) != 0) {
            const std::string why = std::strerror(errno);
            if (fd >= 0) ::close(fd);
            return fail("cannot write " + staged_.string() + " to disk: " + why);
        }
        ::close(fd);
        std::error_code ec;
        fs::rename(staged_, final_, ec);
        if (ec) return fail("cannot rename " + staged_.string() + " to " + final_.string() + ": " + ec.message());
        staged_.clear();
        const fs::path dir = final_.has_parent_path() ? final_.parent_path() : fs::path(".");
        const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            ::fsync(dfd);
            ::close(dfd);
        }
        return {};
    }

private:
    StagedFile(fs::path final_path, fs::path staged)
        : final_(std::move(final_path)), staged_(std::move(staged)), out_(staged_, std::ios::binary | std::ios::trunc) {}

    fs::path final_;
    fs::path staged_;
    std::ofstream out_;
};

/// Pages through every matching event (after_seq/next_after_seq), writing each page as it comes.
int run_export(AuditSource& source, const Filters& filters, audit::Format format, const std::string& output) {
    int exit_code = kExitOk;
    std::optional<StagedFile> file;
    if (!output.empty()) {
        auto f = StagedFile::create(output);
        if (!f) return report_error(f.error());
        file.emplace(std::move(*f));
    }
    std::ostream& out = file ? file->stream() : std::cout;
    audit::RecordWriter writer(out, format);
    std::int64_t after = 0;
    for (;;) {
        json request{{"op", "query"}, {"filter", filters.to_json()}, {"after_seq", after}, {"limit", kExportPage},
                     {"upstream", filters.upstream}};
        auto answer = source.ask(std::move(request), exit_code);
        if (!answer) return exit_code;
        auto records = records_of(*answer, exit_code);
        if (!records) return exit_code;
        writer.write(*records);
        if (!out) return report_error(Error{file ? "cannot write " + output : std::string("cannot write to standard output")});
        const json next = answer->value("next_after_seq", json(nullptr));
        if (next.is_null()) break;
        if (!next.is_number_integer() || next.get<std::int64_t>() <= after) {
            return report_error(Error{"the answer's next_after_seq does not move forward (" + next.dump() + " after " +
                                      std::to_string(after) + "): stopping"});
        }
        after = next.get<std::int64_t>();
    }
    writer.finish();
    if (file) {
        if (auto r = file->commit(); !r) return report_error(r.error());
        std::cerr << "exported " << writer.written() << " event(s) to " << output << "\n";
    } else if (!std::cout.flush()) {
        return report_error(Error{"cannot write to standard output"});
    }
    return kExitOk;
}

// ---- verify -----------------------------------------------------------------

int print_verify(const json& v, bool json_out) {
    const bool ok = v.value("ok", false);
    if (json_out) {
        std::cout << v.dump(2) << "\n";
        return ok ? kExitOk : kExitFailed;
    }
    if (ok) {
        std::cout << "OK: the audit log verifies\n";
    } else {
        std::cout << "FAILED: " << show(v.value("problem", json(""))) << "\n";
        if (v.contains("first_bad_seq") && !v["first_bad_seq"].is_null())
            std::cout << "  first bad seq  " << show(v["first_bad_seq"]) << "\n";
    }
    std::cout << "  events         " << show(v.value("events", json(0))) << " (head seq " << show(v.value("head_seq", json(0))) << ")\n"
              << "  checkpoints    ";
    if (v.value("checkpoints", 0) > 0) {
        std::cout << show(v.value("checkpoints", json(0))) << ", the last at seq " << show(v.value("last_checkpoint_seq", json(0)))
                  << "; " << show(v.value("unsealed", json(0))) << " event(s) after it, not yet signed\n";
    } else {
        std::cout << "none: no event is signed yet\n";
    }
    std::cout
              << "  upstream       " << show(v.value("upstream_events", json(0))) << " sender event(s) recorded here\n";
    const std::string fpr = v.value("key_fingerprint", std::string());
    std::cout << "  signed by      " << (fpr.empty() ? std::string("no checkpoint key") : show(json(fpr))) << "\n";
    if (v.value("key_pinned", false)) {
        std::cout << "  key            pinned: the checkpoints were checked against the key given with --key\n";
    } else {
        std::cout << "  key            NOT PINNED: checked only against the key stored in the log itself (which\n"
                     "                 whoever rewrites the file can replace); --key PUBFILE pins the expected key\n";
    }
    for (const auto& w : v.value("warnings", json::array())) std::cout << "  warning        " << show(w) << "\n";
    if (!ok) {
        return report_error(Error{"the audit log does not verify: " + v.value("problem", std::string("(no reason given)"))});
    }
    return kExitOk;
}

// ---- gaps -------------------------------------------------------------------

void print_gaps(const json& gaps) {
    if (gaps.empty()) {
        std::cout << "no gaps: every transfer announced to this receiver arrived\n";
        return;
    }
    std::cout << gaps.size() << " transfer(s) announced but not received\n";
    for (const auto& g : gaps) {
        std::cout << "  " << show(g.value("bundle", json(""))).substr(0, 16) << "  " << show(g.value("channel", json("")))
                  << " " << show(g.value("version", json(""))) << "  " << show(g.value("status", json(nullptr)))
                  << "  (announced by " << show(g.value("announced_by", json(nullptr))) << ", first seen "
                  << show(g.value("first_seen", json(nullptr))) << ")\n";
        if (g.contains("last_event") && !g["last_event"].is_null())
            std::cout << "      last " << show(g["last_event"]) << " " << show(g.value("last_event_time", json(nullptr))) << "\n";
        if (g.contains("detail") && g["detail"].is_string() && !g["detail"].get<std::string>().empty())
            std::cout << "      " << show(g["detail"]) << "\n";
    }
}

}  // namespace

void add_audit_commands(CLI::App& app, int& exit_code) {
    auto* audit_cmd = app.add_subcommand("audit", "Query, trace, report, export and verify the tamper-evident audit log");
    audit_cmd->require_subcommand(1);
    {
        struct Opts {
            Target target;
            Filters filters;
            std::int64_t limit = 1000, after = 0;
            std::string format = "table";
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = audit_cmd->add_subcommand("query", "Events matching filters, in order");
        add_filter_options(cmd, o->filters);
        cmd->add_option("--limit", o->limit, "At most N events (1-100000, default 1000)")->check(CLI::Range(std::int64_t{1}, std::int64_t{100000}));
        cmd->add_option("--after", o->after, "Only events after this sequence number (paging)")->check(CLI::NonNegativeNumber);
        add_format_option(cmd, o->format, {"table", "json", "csv"}, "table (default), json or csv");
        add_target_options(cmd, o->target);
        cmd->callback([o, &exit_code] {
            AuditSource source(o->target);
            auto answer = source.ask({{"op", "query"}, {"filter", o->filters.to_json()}, {"after_seq", o->after},
                                      {"limit", o->limit}, {"upstream", o->filters.upstream}},
                                     exit_code);
            if (!answer) return;
            auto records = records_of(*answer, exit_code);
            if (!records) return;
            const auto format = format_of(o->format);
            if (records->empty() && format == audit::Format::table) std::cout << "no matching events\n";
            else audit::write_records(std::cout, format, *records);
            const json next = answer->value("next_after_seq", json(nullptr));
            if (!next.is_null()) {
                std::cerr << "(more events: continue with --after " << show(next) << ", or use sluice audit export)\n";
            }
        });
    }
    {
        struct Opts {
            Target target;
            std::string bundle, format = "table";
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = audit_cmd->add_subcommand("trace", "Every event of one bundle, both sides, in order");
        cmd->add_option("BUNDLE", o->bundle, "Bundle id, or a unique prefix of at least 6 hex digits")->required();
        add_format_option(cmd, o->format, {"table", "json", "csv"}, "table (default), json or csv");
        add_target_options(cmd, o->target);
        cmd->callback([o, &exit_code] {
            AuditSource source(o->target);
            auto answer = source.ask({{"op", "trace"}, {"bundle", o->bundle}}, exit_code);
            if (!answer) return;
            auto records = records_of(*answer, exit_code);
            if (!records) return;
            audit::write_records(std::cout, format_of(o->format), *records);
        });
    }
    {
        struct Opts {
            Target target;
            std::string bundle;
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = audit_cmd->add_subcommand(
            "report", "One bundle: what changed, why, who approved, how to roll back; scans, rules, decisions, hops");
        cmd->add_option("BUNDLE", o->bundle, "Bundle id, or a unique prefix of at least 6 hex digits")->required();
        cmd->add_flag("--json", o->json_out, "JSON output");
        add_target_options(cmd, o->target);
        cmd->callback([o, &exit_code] {
            AuditSource source(o->target);
            auto answer = source.ask({{"op", "report"}, {"bundle", o->bundle}}, exit_code);
            if (!answer) return;
            json report = answer->value("report", json(nullptr));
            if (!report.is_object()) {  // an answer without the report: build it from the records
                auto records = records_of(*answer, exit_code);
                if (!records) return;
                report = audit::build_report(answer->value("bundle", o->bundle), *records);
            }
            if (o->json_out) std::cout << report.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
            else audit::write_report(std::cout, report);
        });
    }
    {
        struct Opts {
            Target target;
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = audit_cmd->add_subcommand("gaps", "Transfers the sender announced that this receiver never completed");
        cmd->add_flag("--json", o->json_out, "JSON output");
        add_target_options(cmd, o->target);
        cmd->callback([o, &exit_code] {
            AuditSource source(o->target);
            auto answer = source.ask({{"op", "gaps"}}, exit_code);
            if (!answer) return;
            const json gaps = answer->value("gaps", json::array());
            if (o->json_out) std::cout << gaps.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
            else print_gaps(gaps);
        });
    }
    {
        struct Opts {
            Target target;
            Filters filters;
            std::string format, output;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = audit_cmd->add_subcommand("export", "Every matching event for a SIEM or an archive, streamed page by page");
        add_format_option(cmd, o->format, {"jsonl", "csv", "cef", "syslog"}, "jsonl, csv, cef or syslog (RFC 5424)");
        cmd->get_option("--format")->required();
        add_filter_options(cmd, o->filters);
        cmd->add_option("--output", o->output, "Write to FILE (beside it first, then renamed; mode 0600) instead of standard output");
        add_target_options(cmd, o->target);
        cmd->callback([o, &exit_code] {
            AuditSource source(o->target);
            exit_code = run_export(source, o->filters, format_of(o->format), o->output);
        });
    }
    {
        struct Opts {
            Target target;
            std::string key;
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = audit_cmd->add_subcommand("verify", "Recompute the hash chain and check the signed checkpoints (exit 1 if not intact)");
        cmd->add_option("--key", o->key, "The audit public key (PEM) the checkpoints must be signed with: pins it");
        cmd->add_flag("--json", o->json_out, "JSON output");
        add_target_options(cmd, o->target);
        cmd->callback([o, &exit_code] {
            json request{{"op", "verify"}};
            if (!o->key.empty()) {
                constexpr std::size_t kMaxKeyBytes = 16 * 1024;  // a PEM public key is a few hundred bytes
                std::ifstream in(o->key, std::ios::binary);
                std::string pem(kMaxKeyBytes + 1, '\0');
                in.read(pem.data(), static_cast<std::streamsize>(pem.size()));
                pem.resize(static_cast<std::size_t>(in.gcount()));
                if (!in.eof() || in.bad()) {
                    exit_code = report_error(Error{o->key + (pem.size() > kMaxKeyBytes ? ": too large for a public key" : ": cannot read (no such file, or no permission?)")});
                    return;
                }
                if (auto key = bundle::parse_public_key_pem(pem); !key) {  // a clear error here rather than from the daemon
                    exit_code = report_error(key.error().within(o->key));
                    return;
                }
                request["key"] = std::move(pem);
            }
            AuditSource source(o->target);
            auto answer = source.ask(std::move(request), exit_code);
            if (!answer) return;
            const auto it = answer->find("verify");
            if (it == answer->end() || !it->is_object()) {
                exit_code = report_error(Error{"the answer has no verification report (a daemon of another version?)"});
                return;
            }
            exit_code = print_verify(*it, o->json_out);
        });
    }
}

}  // namespace sluice::cli
