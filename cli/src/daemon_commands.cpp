#include "daemon_commands.hpp"

#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "app.hpp"
#include "output.hpp"
#include "sluice/daemon/control.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::cli {

constexpr auto kTimeout = std::chrono::seconds(3600);  // a push verifies, an approval releases, the whole bundle

std::string default_socket(const char* env, const char* fallback) {
    const char* v = std::getenv(env);
    return v != nullptr && *v != '\0' ? v : fallback;
}

/// Sends `request`; prints the error and returns nullopt when the daemon refused or is unreachable.
std::optional<json> call(const std::string& socket, const json& request, int& exit_code) {
    try {
        json response = daemon::control_call(socket, request, kTimeout);
        if (!response.value("ok", false)) {
            exit_code = report_error(Error{response.value("error", std::string("the daemon refused the request"))});
            return std::nullopt;
        }
        return response;
    } catch (const std::exception& e) {
        exit_code = report_error(Error{e.what()});
        return std::nullopt;
    }
}

namespace {

std::string mbit(double bits) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(1) << bits / 1e6 << " Mbit/s";
    return out.str();
}

void print_job(const json& j) {
    std::cout << "  " << j.value("bundle", "").substr(0, 16) << "…  " << j.value("channel", "") << " "
              << j.value("version", "") << "  " << human_bytes(j.value("archive_bytes", std::uint64_t{0})) << "  "
              << j.value("priority", "") << "  pass " << j.value("passes_done", 0u) << "/" << j.value("passes", 0u);
    if (j.value("sending", false) && j.value("frames_total", std::uint64_t{0}) > 0) {
        std::cout << "  sending " << j.value("frames_sent", std::uint64_t{0}) * 100 / j["frames_total"].get<std::uint64_t>()
                  << "%";
    }
    std::cout << "  by " << j.value("submitted_by", "") << "\n";
}

void print_sender(const json& s) {
    const auto& link = s["link"];
    const auto& c = s["counters"];
    std::cout << "sender (session " << s.value("session", std::uint64_t{0}) << ")\n"
              << "  link        " << link["lanes"].dump() << " at " << mbit(link.value("rate_bits_per_s", 0.0))
              << (link.value("mac", false) ? ", MAC on" : ", no MAC") << (link.value("gso", false) ? ", GSO" : "") << "\n"
              << "  fec         K=" << link["fec"].value("data_symbols", 0) << " M=" << link["fec"].value("parity_symbols", 0)
              << " symbol=" << link["fec"].value("symbol_bytes", 0) << " interleave=" << link["fec"].value("interleave", 0) << "\n"
              << "  sent        " << c.value("frames_sent", std::uint64_t{0}) << " frames, "
              << human_bytes(c.value("bytes_sent", std::uint64_t{0})) << ", " << c.value("passes_completed", 0)
              << " passes, " << c.value("heartbeats_sent", 0) << " heartbeats\n";
    std::cout << "  queue       " << s["queue"].size() << " bundle(s)\n";
    for (const auto& j : s["queue"]) print_job(j);
    if (!s["sent"].empty()) {
        std::cout << "  sent recently\n";
        for (const auto& j : s["sent"]) {
            std::cout << "    " << j.value("bundle", "").substr(0, 16) << "…  " << j.value("channel", "") << " "
                      << j.value("version", "") << "  " << j.value("finished_at", "") << "\n";
        }
    }
}

void print_receiver(const json& s) {
    const auto& link = s["link"];
    const auto& c = s["counters"];
    auto age = [](const json& v) { return v.is_null() ? std::string("never") : std::to_string(v.get<double>()).substr(0, 5) + " s ago"; };
    std::cout << "receiver\n"
              << "  link        " << (link.value("up", false) ? "UP" : "DOWN") << "  " << link["lanes"].dump()
              << (link.value("mac", false) ? ", MAC on" : ", no MAC") << "; last frame " << age(link["seconds_since_frame"])
              << ", last heartbeat " << age(link["seconds_since_heartbeat"]) << "\n";
    if (!link.value("receive_buffer_warning", std::string{}).empty()) {
        std::cout << "  WARNING     " << link["receive_buffer_warning"].get<std::string>() << "\n";
    }
    std::cout << "  heartbeats  " << link.value("heartbeats", 0) << " received, " << link.value("heartbeats_lost", 0)
              << " lost; " << link.value("transfers_missed", 0) << " transfer(s) announced but never received\n"
              << "  frames      " << c.value("datagrams", std::uint64_t{0}) << " datagrams ("
              << human_bytes(c.value("bytes", std::uint64_t{0})) << "), " << c.value("checksum_failures", 0)
              << " checksum failures, " << c.value("mac_failures", 0) << " MAC failures, " << c.value("kernel_drops", 0)
              << " dropped by the kernel\n"
              << "  fec         " << c.value("blocks_recovered", 0) << " blocks recovered (" << c.value("symbols_rebuilt", 0)
              << " symbols rebuilt), " << c.value("blocks_abandoned", 0) << " blocks short this pass\n"
              << "  bundles     " << c.value("bundles_delivered", 0) << " delivered, " << c.value("bundles_refused", 0)
              << " refused, " << c.value("transfers_incomplete", 0) << " transfers incomplete\n";
    std::cout << "  in flight   " << s["transfers"].size() << "\n";
    for (const auto& t : s["transfers"]) {
        std::cout << "    " << t.value("bundle", "").substr(0, 16) << "…  " << t.value("channel", "") << " "
                  << t.value("version", "") << "  " << human_bytes(t.value("bytes", std::uint64_t{0})) << "  pass "
                  << t.value("pass", 0) << "/" << t.value("passes", 0) << "  "
                  << static_cast<int>(t.value("progress", 0.0) * 100) << "%\n";
    }
    if (!s["received"].empty()) {
        std::cout << "  received recently\n";
        for (const auto& r : s["received"]) {
            std::cout << "    " << r.value("bundle", "").substr(0, 16) << "…  " << r.value("channel", "") << " "
                      << r.value("version", "") << "  " << r.value("at", "") << "  "
                      << (r.contains("refused") ? "REFUSED: " + r["refused"].get<std::string>() : r.value("path", "")) << "\n";
        }
    }
    if (s.contains("imports") && s["imports"].is_object()) {
        std::string counts;
        for (const auto& [state, n] : s["imports"].items()) counts += (counts.empty() ? "" : ", ") + n.dump() + " " + state;
        std::cout << "  imports     " << (counts.empty() ? "none yet" : counts) << " (sluice pending)\n";
    }
    if (s.contains("media") && s["media"].is_object()) {
        const auto& m = s["media"];
        std::cout << "  media       " << m.value("unfinished", 0) << " bundle(s) waiting for more volumes, "
                  << m.value("sets", 0) - m.value("unfinished", 0) << " complete (sluice media status)";
        if (!m["watch"].empty()) std::cout << "; watching " << m["watch"].dump();
        std::cout << "\n";
    }
    if (!s["alarms"].empty()) {
        std::cout << "  alarms (newest first)\n";
        for (const auto& a : s["alarms"]) std::cout << "    " << a.dump() << "\n";
    }
}

}  // namespace

void add_daemon_commands(CLI::App& app, int& exit_code) {
    {
        struct Opts {
            std::string path, priority = "normal", socket = default_socket("SLUICE_SENDER_SOCKET", "/run/sluice/sender.sock");
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = app.add_subcommand("push", "Queue a bundle (archive or bag directory) on the sender daemon");
        cmd->add_option("path", o->path, "Bundle archive (.tar) or bag directory")->required();
        cmd->add_option("--priority", o->priority, "high goes ahead of normal (emergency pushes)")
            ->check(CLI::IsMember({"high", "normal"}));
        cmd->add_option("--socket", o->socket, "Sender control socket ($SLUICE_SENDER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "Print the daemon's answer as JSON");
        cmd->callback([o, &exit_code] {
            std::error_code ec;
            fs::path abs = fs::absolute(o->path, ec);
            auto r = call(o->socket, {{"command", "push"}, {"path", abs.string()}, {"priority", o->priority}}, exit_code);
            if (!r) {
                // The daemon opens the path itself; under its unit it has a /tmp of its own.
                if (abs.native().starts_with("/tmp/") || abs.native().starts_with("/var/tmp/")) {
                    std::cerr << "sluice: note: a sender started by systemd has a /tmp of its own (PrivateTmp=yes) and "
                                 "cannot see files in yours; push from a directory it can read, such as /var/spool/sluice\n";
                }
                return;
            }
            const auto& job = (*r)["job"];
            if (o->json_out) {
                std::cout << job.dump(2) << "\n";
            } else if (job.value("already_queued", false)) {
                std::cout << "already queued: " << job.value("bundle", "") << " (" << job.value("channel", "") << " "
                          << job.value("version", "") << ", priority " << job.value("priority", "") << ")\n";
            } else {
                std::cout << "queued " << job.value("bundle", "") << "\n  " << job.value("channel", "") << " "
                          << job.value("version", "") << ", " << human_bytes(job.value("archive_bytes", std::uint64_t{0}))
                          << ", priority " << job.value("priority", "") << ", " << job.value("passes", 0) << " pass(es)\n";
            }
        });
    }
    {
        struct Opts {
            std::string socket = default_socket("SLUICE_SENDER_SOCKET", "/run/sluice/sender.sock");
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = app.add_subcommand("queue", "List the sender daemon's queue, in sending order");
        cmd->add_option("--socket", o->socket, "Sender control socket ($SLUICE_SENDER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "JSON output");
        cmd->callback([o, &exit_code] {
            auto r = call(o->socket, {{"command", "queue"}}, exit_code);
            if (!r) return;
            if (o->json_out) {
                std::cout << (*r)["queue"].dump(2) << "\n";
                return;
            }
            std::cout << (*r)["queue"].size() << " bundle(s) queued\n";
            for (const auto& j : (*r)["queue"]) print_job(j);
        });
    }
    {
        struct Opts {
            std::string sender = default_socket("SLUICE_SENDER_SOCKET", "/run/sluice/sender.sock");
            std::string receiver = default_socket("SLUICE_RECEIVER_SOCKET", "/run/sluice/receiver.sock");
            bool only_sender = false, only_receiver = false, json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = app.add_subcommand("status", "Link health, queue, transfers in flight and counters of the daemons");
        cmd->add_flag("--sender", o->only_sender, "Only the sender daemon");
        cmd->add_flag("--receiver", o->only_receiver, "Only the receiver daemon");
        cmd->add_option("--sender-socket", o->sender, "Sender control socket ($SLUICE_SENDER_SOCKET)");
        cmd->add_option("--receiver-socket", o->receiver, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "JSON output");
        cmd->callback([o, &exit_code] {
            bool want_sender = o->only_sender || !o->only_receiver;
            bool want_receiver = o->only_receiver || !o->only_sender;
            // Without --sender/--receiver, ask whichever daemon runs on this host.
            if (!o->only_sender && !o->only_receiver) {
                want_sender = fs::exists(o->sender);
                want_receiver = fs::exists(o->receiver);
                if (!want_sender && !want_receiver) {
                    exit_code = report_error(Error{"no daemon found: neither " + o->sender + " nor " + o->receiver +
                                                   " exists (is sluice-sender or sluice-receiver running? see --sender-socket)"});
                    return;
                }
            }
            json all = json::object();
            if (want_sender) {
                auto r = call(o->sender, {{"command", "status"}}, exit_code);
                if (!r) return;
                r->erase("ok");
                all["sender"] = *r;
            }
            if (want_receiver) {
                auto r = call(o->receiver, {{"command", "status"}}, exit_code);
                if (!r) return;
                r->erase("ok");
                all["receiver"] = *r;
            }
            if (o->json_out) {
                std::cout << all.dump(2) << "\n";
                return;
            }
            if (all.contains("sender")) print_sender(all["sender"]);
            if (all.contains("receiver")) print_receiver(all["receiver"]);
        });
    }
}

}  // namespace sluice::cli
