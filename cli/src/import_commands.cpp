#include "import_commands.hpp"

#include <unistd.h>

#include <fstream>
#include <iostream>
#include <memory>

#include "app.hpp"
#include "daemon_commands.hpp"
#include "output.hpp"
#include "sluice/bundle/bundle.hpp"
#include "sluice/daemon/config.hpp"
#include "sluice/daemon/policy_config.hpp"
#include "sluice/policy/release_store.hpp"
#include "sluice/policy/rules.hpp"
#include "sluice/policy/version.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::cli {
namespace {

std::string receiver_socket() { return default_socket("SLUICE_RECEIVER_SOCKET", "/run/sluice/receiver.sock"); }

std::string str(const json& j, const char* key) {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? std::string{} : it->is_string() ? it->get<std::string>() : it->dump();
}

std::string approvals_text(const json& r) {
    const auto& a = r["approvals"];
    std::string users;
    for (const auto& u : a) users += (users.empty() ? "" : ", ") + (u.is_string() ? u.get<std::string>() : str(u, "user"));
    return std::to_string(a.size()) + " of " + std::to_string(r.value("approvals_required", 0u)) + " approval(s)" +
           (users.empty() ? "" : " (" + users + ")");
}

void print_brief(const json& r) {
    std::cout << r.value("bundle", "").substr(0, 16) << "  " << r.value("channel", "") << " " << r.value("version", "")
              << (r.value("rollback", false) ? " (rollback)" : "") << "  " << r.value("state", "");
    if (r.value("state", "") == "pending_approval") std::cout << "  " << approvals_text(r);
    std::cout << "  " << human_bytes(r.value("payload_bytes", std::uint64_t{0})) << " in "
              << r.value("payload_files", 0u) << " file(s)  received " << r.value("received_at", "") << "\n";
    if (!str(r, "reason").empty()) std::cout << "    " << str(r, "reason") << "\n";
}

void print_record(const json& r) {
    const json& rel = r["release"];
    std::cout << "bundle      " << str(r, "bundle") << "\n"
              << "channel     " << str(r, "channel") << "  version " << str(r, "version")
              << (rel.is_object() && rel.value("rollback", false) ? "  (a signed rollback)" : "") << "\n"
              << "state       " << str(r, "state");
    if (str(r, "state") == "pending_approval") std::cout << ": " << approvals_text(r) << " (" << str(r, "approval_mode") << ")";
    std::cout << "\n";
    if (!str(r, "state_reason").empty()) std::cout << "            " << str(r, "state_reason") << "\n";
    std::cout << "received    " << str(r, "received_at") << ", " << human_bytes(r.value("payload_bytes", std::uint64_t{0}))
              << " in " << r.value("payload_files", 0u) << " file(s)\n";
    if (rel.is_object()) {
        std::cout << "\nwhat changed   " << str(rel, "changes") << "\n"
                  << "why            " << str(rel, "reason") << "\n"
                  << "approved by    " << str(rel, "approved_by") << " (upstream)\n"
                  << "roll back to   " << str(rel, "rollback_to") << "\n"
                  << "created        " << str(rel, "created_at") << " by " << str(rel, "created_by") << "\n";
    }
    std::string signers;
    for (const auto& s : r["signers"]) signers += (signers.empty() ? "" : ", ") + s.get<std::string>();
    std::cout << "signers        " << (signers.empty() ? "(none trusted by this channel)" : signers) << "\n";
    if (!r["rules"].empty()) {
        std::cout << "\nrules\n";
        for (const auto& x : r["rules"])
            std::cout << "  " << (x.value("passed", false) ? "pass " : "FAIL ") << str(x, "rule") << ": " << str(x, "detail") << "\n";
    }
    if (!r["scans"].empty()) {
        std::cout << "\nscanners\n";
        for (const auto& s : r["scans"]) {
            std::cout << "  " << str(s, "verdict") << "  " << str(s, "scanner") << ": " << str(s, "summary") << " ("
                      << s.value("attempts", 0u) << " attempt(s), " << s.value("took_ms", 0) << " ms)\n";
            for (const auto& f : s["findings"]) std::cout << "      " << str(f, "path") << ": " << str(f, "signature") << "\n";
        }
    }
    if (r["diff"].is_object()) {
        const auto& d = r["diff"];
        std::cout << "\nchanges against " << (r["diff_against"].is_null() ? "nothing released yet" : "current " + str(r, "diff_against"))
                  << ": " << d["added"].size() << " added, " << d["removed"].size() << " removed, " << d["changed"].size()
                  << " changed, " << d.value("unchanged", 0u) << " unchanged"
                  << (d.value("omitted", 0u) > 0 ? " (lists truncated)" : "") << "\n";
        std::size_t shown = 0;
        auto limit = [&] { return ++shown > 50; };
        for (const auto& e : d["added"]) {
            if (limit()) break;
            std::cout << "  + " << str(e, "path") << " (" << human_bytes(e.value("size", std::uint64_t{0})) << ")\n";
        }
        for (const auto& e : d["removed"]) {
            if (limit()) break;
            std::cout << "  - " << str(e, "path") << " (" << human_bytes(e.value("size", std::uint64_t{0})) << ")\n";
        }
        for (const auto& e : d["changed"]) {
            if (limit()) break;
            std::cout << "  ~ " << str(e, "path") << " " << human_bytes(e.value("old_size", std::uint64_t{0})) << " -> "
                      << human_bytes(e.value("new_size", std::uint64_t{0})) << "\n";
        }
        const auto total = d["added"].size() + d["removed"].size() + d["changed"].size();
        const auto omitted = d.value("omitted", std::uint64_t{0});
        if (total > 50) std::cout << "  … " << total - 50 << " more (--json lists them)\n";
        if (omitted > 0) std::cout << "  (" << omitted << " further changes not recorded: the record keeps 1000 per kind)\n";
    }
    if (!r["approvals"].empty() || r["rejection"].is_object()) {
        std::cout << "\ndecisions\n";
        for (const auto& a : r["approvals"])
            std::cout << "  approved by " << str(a, "user") << " at " << str(a, "at") << ": " << str(a, "reason") << "\n";
        if (r["rejection"].is_object())
            std::cout << "  rejected by " << str(r["rejection"], "user") << " at " << str(r["rejection"], "at") << ": "
                      << str(r["rejection"], "reason") << "\n";
    }
    if (!str(r, "release_path").empty()) std::cout << "\nreleased    " << str(r, "released_at") << " to " << str(r, "release_path") << "\n";
    for (const auto& h : r["hooks"])
        std::cout << "  hook " << str(h, "name") << ": " << (h.value("ok", false) ? "ok" : "FAILED") << " (" << str(h, "result") << ")\n";
    std::cout << "\nhistory\n";
    for (const auto& t : r["history"]) {
        std::cout << "  " << str(t, "at") << "  " << (str(t, "from").empty() ? "" : str(t, "from") + " -> ") << str(t, "to")
                  << "  by " << str(t, "actor") << (str(t, "note").empty() ? "" : ": " + str(t, "note")) << "\n";
    }
}

/// Where `policy explain` learns what the channel released so far.
policy::ChannelHistory read_history(const daemon::ReceiverConfig& cfg, const std::string& channel) {
    policy::ChannelHistory h;
    policy::ReleaseStore store(cfg.import->release_dir);
    h.current = store.current(channel);
    h.kept = store.versions(channel);
    std::ifstream in(cfg.state_dir / "import" / "channels" / (channel + ".json"));
    json j = in ? json::parse(in, nullptr, false) : json(nullptr);
    if (!j.is_object()) j = json::object();
    if (j.contains("highest") && j["highest"].is_string()) h.highest_released = j["highest"].get<std::string>();
    for (const auto& e : j.value("released", json::array())) h.released.push_back(e.value("version", ""));
    policy::apply_kept_floor(h);  // as the receiver decides
    return h;
}

int explain(const std::string& bundle_path, const std::string& config_file, const std::string& policy_file, bool json_out) {
    std::optional<daemon::ReceiverConfig> cfg;
    std::shared_ptr<const policy::Policy> pol;
    try {
        if (!config_file.empty()) {
            cfg = daemon::load_receiver_config(config_file);
            if (!cfg->import) return report_error(Error{config_file + " has no [import] section: give --policy FILE"});
            pol = cfg->import->policy;
        } else {
            pol = std::make_shared<const policy::Policy>(daemon::load_policy(policy_file));
        }
    } catch (const daemon::ConfigError& e) {
        return report_error(Error{e.what()});
    }
    // Rules look at a bag directory; an archive is unpacked (as hostile input) into a scratch directory.
    fs::path bag = bundle_path;
    struct Scratch {
        fs::path dir;
        ~Scratch() {
            if (dir.empty()) return;
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } scratch;
    std::error_code ec;
    if (!fs::is_directory(bag, ec)) {
        std::string templ = (fs::temp_directory_path() / "sluice-explain-XXXXXX").string();
        if (::mkdtemp(templ.data()) == nullptr) return report_error(Error{"cannot create a scratch directory in " + fs::temp_directory_path().string()});
        scratch.dir = templ;
        bag = scratch.dir / "bag";
        auto unpacked = bundle::unpack_archive(bundle_path, bag, {}, false);
        if (!unpacked) return report_error(unpacked.error().within(bundle_path));
    }
    auto summary = bundle::inspect_bundle(bag);
    if (!summary) return report_error(summary.error());
    if (!summary->release) return report_error(Error{"release.json: " + summary->release_error});
    const std::string channel_name = summary->release->channel;
    const policy::ChannelPolicy* channel = pol->channel(channel_name);
    json out{{"bundle", summary->bundle_id}, {"channel", channel_name}, {"version", summary->release->version}};
    if (channel == nullptr) {
        out["decision"] = "rejected";
        out["why"] = "no import policy for channel " + channel_name + " in " + pol->file.string();
        if (json_out) std::cout << out.dump(2) << "\n";
        else std::cout << "bundle  " << summary->bundle_id << "\nchannel " << channel_name << "\n\nwould be REJECTED: " << str(out, "why") << "\n";
        return kExitFailed;
    }
    auto facts = policy::gather_facts(bag, *channel);
    if (!facts) return report_error(facts.error());
    policy::ChannelHistory history = cfg ? read_history(*cfg, channel_name) : policy::ChannelHistory{};
    auto rules = policy::evaluate_rules(*channel, *facts, history);
    const bool passed = policy::all_passed(rules);
    json jr = json::array();
    for (const auto& r : rules) jr.push_back({{"rule", r.rule}, {"passed", r.passed}, {"detail", r.detail}});
    out["rules"] = jr;
    out["scanners"] = channel->scanners;
    out["approval"] = policy::to_string(channel->approval);
    out["approvers"] = channel->approvers;
    out["history_known"] = cfg.has_value();
    std::string decision;
    if (!passed) decision = "rejected by the rules above";
    else if (summary->release->rollback && history.highest_released &&
             policy::compare_versions(summary->release->version, *history.highest_released) <= 0)
        decision = "scanned, then held for one officer's approval (a signed rollback)";
    else if (channel->approval == policy::ApprovalMode::automatic) decision = "scanned, then released automatically if every scanner passes";
    else decision = "scanned, then held for " + std::to_string(channel->approvers) + " officer approval(s)";
    out["decision"] = passed ? "pass" : "rejected";
    out["next"] = decision;
    if (json_out) {
        std::cout << out.dump(2) << "\n";
    } else {
        std::cout << "bundle   " << summary->bundle_id << "\nchannel  " << channel_name << "  version "
                  << summary->release->version << "\npolicy   " << pol->file.string() << "\n\n";
        for (const auto& r : rules) std::cout << (r.passed ? "pass " : "FAIL ") << r.rule << ": " << r.detail << "\n";
        std::string scanners;
        for (const auto& s : channel->scanners) scanners += (scanners.empty() ? "" : ", ") + s;
        std::cout << "\nscanners " << (scanners.empty() ? "(none)" : scanners) << " (not run by explain)\n"
                  << "approval " << policy::to_string(channel->approval) << "\n";
        if (!cfg) std::cout << "(no --config: version checks assume nothing was released on this channel yet)\n";
        std::cout << "\nwould be: " << decision << "\n";
    }
    return passed ? kExitOk : kExitFailed;
}

}  // namespace

void add_import_commands(CLI::App& app, int& exit_code) {
    {
        struct Opts {
            std::string socket = receiver_socket();
            bool all = false, json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = app.add_subcommand("pending", "Bundles waiting for an officer, held or failed on the receiver");
        cmd->add_flag("--all", o->all, "Every import this receiver recorded, released and rejected too");
        cmd->add_option("--socket", o->socket, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "JSON output");
        cmd->callback([o, &exit_code] {
            auto r = call(o->socket, {{"command", "pending"}, {"all", o->all}}, exit_code);
            if (!r) return;
            if (o->json_out) {
                std::cout << (*r)["imports"].dump(2) << "\n";
                return;
            }
            if ((*r)["imports"].empty()) std::cout << (o->all ? "no imports recorded\n" : "nothing waits\n");
            for (const auto& x : (*r)["imports"]) print_brief(x);
        });
    }
    {
        struct Opts {
            std::string id, socket = receiver_socket();
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = app.add_subcommand("show", "One import: the four answers, signers, rules, scanners, changes, decisions");
        cmd->add_option("ID", o->id, "Bundle id, or a unique prefix of at least 6 hex digits")->required();
        cmd->add_option("--socket", o->socket, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "JSON output");
        cmd->callback([o, &exit_code] {
            auto r = call(o->socket, {{"command", "show"}, {"bundle", o->id}}, exit_code);
            if (!r) return;
            if (o->json_out) std::cout << (*r)["import"].dump(2) << "\n";
            else print_record((*r)["import"]);
        });
    }
    for (const char* verb : {"approve", "reject"}) {
        struct Opts {
            std::string id, reason, socket = receiver_socket();
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        const bool approving = std::string(verb) == "approve";
        auto* cmd = app.add_subcommand(verb, approving ? "Approve a pending bundle (officer); the last approval releases it"
                                                       : "Reject a pending or held bundle (officer)");
        cmd->add_option("ID", o->id, "Bundle id, or a unique prefix of at least 6 hex digits")->required();
        cmd->add_option("--reason", o->reason, "Why (recorded with your user name)")->required();
        cmd->add_option("--socket", o->socket, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "JSON output");
        cmd->callback([o, &exit_code, approving, verb] {
            auto r = call(o->socket, {{"command", verb}, {"bundle", o->id}, {"reason", o->reason}}, exit_code);
            if (!r) return;
            const json& x = (*r)["import"];
            if (o->json_out) {
                std::cout << x.dump(2) << "\n";
                return;
            }
            const std::string state = x.value("state", "");
            if (!approving) std::cout << "rejected " << x.value("bundle", "") << "\n";
            else if (state == "released") std::cout << "approved and released " << x.value("channel", "") << " " << x.value("version", "") << " to " << str(x, "release_path") << "\n";
            else if (state == "pending_approval") std::cout << "approval recorded: " << approvals_text(x) << "; waiting for another officer\n";
            else std::cout << "approved; " << state << (str(x, "reason").empty() ? "" : ": " + str(x, "reason")) << "\n";
            if (approving && state != "released" && state != "pending_approval") exit_code = kExitFailed;
        });
    }
    {
        struct Opts {
            std::string id, socket = receiver_socket();
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = app.add_subcommand("rescan", "Run the scanners again on a held bundle (officer)");
        cmd->add_option("ID", o->id, "Bundle id, or a unique prefix of at least 6 hex digits")->required();
        cmd->add_option("--socket", o->socket, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->callback([o, &exit_code] {
            auto r = call(o->socket, {{"command", "rescan"}, {"bundle", o->id}}, exit_code);
            if (!r) return;
            print_brief((*r)["import"]);
        });
    }
    {
        struct Opts {
            std::string channel, socket = receiver_socket();
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = app.add_subcommand("releases", "Versions of a channel kept on the receiver, newest first, and which is current");
        cmd->add_option("CHANNEL", o->channel, "Release channel")->required();
        cmd->add_option("--socket", o->socket, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "JSON output");
        cmd->callback([o, &exit_code] {
            auto r = call(o->socket, {{"command", "releases"}, {"channel", o->channel}}, exit_code);
            if (!r) return;
            if (o->json_out) {
                std::cout << (*r)["releases"].dump(2) << "\n";
                return;
            }
            for (const auto& e : (*r)["releases"]) {
                std::cout << (e.value("current", false) ? "* " : "  ") << str(e, "version");
                if (!str(e, "bundle").empty())
                    std::cout << "  " << str(e, "bundle").substr(0, 16) << "  released " << str(e, "released_at") << " (" << str(e, "released_by") << ")";
                std::cout << "\n";
            }
        });
    }
    {
        struct Opts {
            std::string channel, to, reason, socket = receiver_socket();
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = app.add_subcommand("rollback", "Switch a channel's current release back to a kept version (officer)");
        cmd->add_option("CHANNEL", o->channel, "Release channel")->required();
        cmd->add_option("--to", o->to, "Version to switch to (default: the current release's rollback_to, else the next older kept)");
        cmd->add_option("--reason", o->reason, "Why (recorded with your user name)")->required();
        cmd->add_option("--socket", o->socket, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->callback([o, &exit_code] {
            json request{{"command", "rollback"}, {"channel", o->channel}, {"reason", o->reason}};
            if (!o->to.empty()) request["to"] = o->to;
            auto r = call(o->socket, request, exit_code);
            if (!r) return;
            std::cout << "rolled back " << str(*r, "channel") << ": current " << str(*r, "from") << " -> " << str(*r, "to") << "\n";
        });
    }
    {
        auto* pol = app.add_subcommand("policy", "Check an import policy file, or explain what it would decide for a bundle");
        pol->require_subcommand(1);
        auto file = std::make_shared<std::string>();
        auto* check = pol->add_subcommand("check", "Check a policy file; errors name file, line and key");
        check->add_option("FILE", *file, "Policy file (TOML)")->required();
        check->callback([file, &exit_code] {
            try {
                auto p = daemon::load_policy(*file);
                std::cout << *file << ": ok\n";
                for (const auto& [name, c] : p.channels) {
                    std::string scanners;
                    for (const auto& s : c.scanners) scanners += (scanners.empty() ? "" : ", ") + s;
                    std::cout << "  channel " << name << ": approval " << policy::to_string(c.approval)
                              << (c.approval == policy::ApprovalMode::two_person ? " (" + std::to_string(c.approvers) + " officers)" : "")
                              << ", " << c.min_signers << " of " << c.trusted_keys.size() << " trusted signer(s), scanners: "
                              << (scanners.empty() ? "none" : scanners) << ", keeps " << c.keep_releases << " releases\n";
                }
            } catch (const daemon::ConfigError& e) {
                exit_code = report_error(Error{e.what()});
            }
        });
        struct Opts {
            std::string bundle, config, policy;
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* ex = pol->add_subcommand("explain", "What each rule of the policy decides for a bundle (nothing is imported)");
        ex->add_option("BUNDLE", o->bundle, "Bundle archive (.tar) or bag directory")->required();
        auto* cfg = ex->add_option("--config", o->config, "Receiver configuration: its [import] policy, and what was released so far");
        ex->add_option("--policy", o->policy, "Policy file (instead of --config)")->excludes(cfg);
        ex->add_flag("--json", o->json_out, "JSON output");
        ex->callback([o, &exit_code] {
            if (o->config.empty() && o->policy.empty()) {
                o->config = "/etc/sluice/receiver.toml";
            }
            exit_code = explain(o->bundle, o->config, o->policy, o->json_out);
        });
    }
}

}  // namespace sluice::cli
