// `sluice train CHANNEL --from DIR`: one run of a release train. Picks the
// newest bundle of CHANNEL in DIR (release.json's version, in release-train
// order) and pushes it to the sender, unless the sender has it queued or has
// sent it already. sluice-release@CHANNEL.timer runs it on a fixed cadence;
// emergency pushes (`sluice push --priority high`) go ahead of what it queues.

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "app.hpp"
#include "daemon_commands.hpp"
#include "output.hpp"
#include "sluice/bundle/bundle.hpp"
#include "sluice/policy/version.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::cli {
namespace {

struct Candidate {
    fs::path path;
    std::string bundle_id;
    std::string version;
};

struct Survey {
    std::vector<Candidate> newest;     ///< the bundles with the highest version (more than one: ambiguous)
    std::vector<std::string> skipped;  ///< "NAME: why", for entries that should have been bundles
    std::vector<std::string> ignored;  ///< "NAME: why", for entries that are plainly not bundles
};

/// Reads what every entry of `dir` says about itself (release.json), without
/// verifying it: the sender verifies the one it is given.
Result<Survey> survey(const fs::path& dir, const std::string& channel) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return fail(dir.string() + ": not a directory");
    std::vector<fs::directory_entry> entries;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) entries.push_back(*it);
    if (ec) return fail("cannot list " + dir.string() + ": " + ec.message());
    std::sort(entries.begin(), entries.end(),
              [](const auto& a, const auto& b) { return a.path().filename() < b.path().filename(); });

    Survey s;
    for (const auto& e : entries) {
        const std::string name = e.path().filename().string();
        // Dot names are copies in progress, by convention: copy as .NAME, then rename.
        if (name.starts_with('.')) continue;
        const auto type = e.symlink_status(ec).type();
        if (type == fs::file_type::symlink) {
            s.ignored.push_back(name + ": a symbolic link (not followed; put the bundle itself here)");
            continue;
        }
        const bool archive = type == fs::file_type::regular && e.path().extension() == ".tar";
        if (!archive && type != fs::file_type::directory) {
            s.ignored.push_back(name + ": neither a bundle archive (.tar) nor a bag directory");
            continue;
        }
        auto summary = bundle::inspect_bundle(e.path());
        if (!summary) {
            s.skipped.push_back(name + ": " + summary.error().message);
            continue;
        }
        if (!summary->release) {
            s.skipped.push_back(name + ": no valid release.json (" + summary->release_error + ")");
            continue;
        }
        if (summary->release->channel != channel) {
            s.skipped.push_back(name + ": belongs to channel " + summary->release->channel + ", not " + channel);
            continue;
        }
        Candidate c{e.path(), summary->bundle_id, summary->release->version};
        const int order = s.newest.empty() ? 1 : policy::compare_versions(c.version, s.newest.front().version);
        if (order > 0) s.newest.assign(1, std::move(c));
        else if (order == 0 && std::none_of(s.newest.begin(), s.newest.end(),
                                            [&](const Candidate& n) { return n.bundle_id == c.bundle_id; })) {
            s.newest.push_back(std::move(c));
        }
    }
    return s;
}

struct TrainOptions {
    std::string channel;
    std::string from;
    std::string priority = "normal";
    std::string socket;
    bool dry_run = false;
    bool json_out = false;
};

int run_train(const TrainOptions& o) {
    auto s = survey(fs::absolute(o.from), o.channel);
    if (!s) return report_error(Error{"train " + o.channel + ": " + s.error().message});
    const bool had_problems = !s->skipped.empty();
    for (const auto& why : s->skipped) std::cerr << "sluice: train " << o.channel << ": skipped " << why << "\n";
    for (const auto& why : s->ignored) std::cerr << "sluice: train " << o.channel << ": ignored " << why << "\n";

    json out{{"channel", o.channel}, {"from", fs::absolute(o.from).string()}, {"skipped", s->skipped},
             {"ignored", s->ignored}};
    if (s->newest.size() > 1) {
        std::string names;
        for (const auto& c : s->newest) names += (names.empty() ? "" : ", ") + c.path.filename().string();
        return report_error(Error{"train " + o.channel + ": " + std::to_string(s->newest.size()) +
                                  " different bundles claim version " + s->newest.front().version + " (" + names +
                                  "); remove all but one"});
    }
    if (s->newest.empty()) {
        if (o.json_out) std::cout << out.dump(2) << "\n";
        else std::cout << "train " << o.channel << ": no bundle of this channel in " << o.from << "\n";
        return had_problems ? kExitFailed : 0;
    }
    const Candidate& pick = s->newest.front();
    out["chosen"] = {{"path", pick.path.string()}, {"bundle", pick.bundle_id}, {"version", pick.version}};
    if (o.dry_run) {
        if (o.json_out) std::cout << out.dump(2) << "\n";
        else std::cout << "train " << o.channel << ": would push " << o.channel << " " << pick.version << " ("
                       << pick.path.filename().string() << ")\n";
        return had_problems ? kExitFailed : 0;
    }
    int exit_code = 0;
    auto r = call(o.socket,
                  {{"command", "push"}, {"path", pick.path.string()}, {"priority", o.priority}, {"once", true}},
                  exit_code);
    if (!r) return exit_code;
    const json& job = (*r)["job"];
    out["job"] = job;
    if (o.json_out) {
        std::cout << out.dump(2) << "\n";
    } else if (job.value("already_sent", false)) {
        std::cout << "train " << o.channel << ": " << o.channel << " " << pick.version << " was sent at "
                  << job.value("sent_at", "") << "; nothing to push\n";
    } else if (job.value("already_queued", false)) {
        std::cout << "train " << o.channel << ": " << o.channel << " " << pick.version << " is already queued (priority "
                  << job.value("priority", "") << ")\n";
    } else {
        std::cout << "train " << o.channel << ": queued " << o.channel << " " << pick.version << " ("
                  << pick.path.filename().string() << ", " << human_bytes(job.value("archive_bytes", std::uint64_t{0}))
                  << ", priority " << job.value("priority", "") << ")\n";
    }
    return had_problems ? kExitFailed : 0;
}

}  // namespace

void add_train_command(CLI::App& app, int& exit_code) {
    auto o = std::make_shared<TrainOptions>();
    o->socket = default_socket("SLUICE_SENDER_SOCKET", "/run/sluice/sender.sock");
    auto* cmd = app.add_subcommand(
        "train", "Push the newest bundle of a channel from a directory, unless it was sent already (a release train)");
    cmd->add_option("channel", o->channel, "Release channel (release.json's channel)")->required();
    cmd->add_option("--from", o->from, "Directory holding the channel's bundles (archives or bag directories)")
        ->required();
    cmd->add_option("--priority", o->priority, "normal for scheduled trains; high goes ahead (emergency)")
        ->check(CLI::IsMember({"high", "normal"}));
    cmd->add_option("--socket", o->socket, "Sender control socket ($SLUICE_SENDER_SOCKET)");
    cmd->add_flag("--dry-run", o->dry_run, "Say which bundle would be pushed, without asking the sender");
    cmd->add_flag("--json", o->json_out, "Print the outcome as JSON");
    cmd->callback([o, &exit_code] { exit_code = run_train(*o); });
}

}  // namespace sluice::cli
