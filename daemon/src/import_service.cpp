#include "import_service.hpp"

#include <boost/asio/post.hpp>

#include "audit_trail.hpp"
#include "files.hpp"
#include "sluice/daemon/log.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::daemon {
namespace {

/// Import events as log lines; problems are warnings, failures errors.
void log_event(std::string_view event, const json& fields) {
    std::vector<LogField> out;
    out.reserve(fields.size());
    for (const auto& [key, value] : fields.items()) {
        out.emplace_back(key, value.is_string() ? value.get<std::string>()
                                                : value.dump(-1, ' ', false, json::error_handler_t::replace));
    }
    const std::string outcome = fields.value("outcome", "");
    LogLevel level = LogLevel::info;
    if (outcome == "error") level = LogLevel::error;
    else if (outcome == "rejected" || outcome == "held" || outcome == "refused" || outcome == "fail" || outcome == "found")
        level = LogLevel::warning;
    log(level, event, LogFields(out.data(), out.size()));
}

policy::ImporterPaths paths_of(const ImportConfig& config, const fs::path& incoming, const fs::path& state) {
    return {incoming, config.quarantine_dir, state / "import", config.release_dir};
}

std::string text_field(const json& request, const char* key, bool required) {
    auto it = request.find(key);
    if (it == request.end() || it->is_null()) {
        if (required) throw std::runtime_error(std::string("missing \"") + key + "\"");
        return {};
    }
    if (!it->is_string()) throw std::runtime_error(std::string("\"") + key + "\" must be a string");
    return it->get<std::string>();
}

policy::Actor actor_of(const Peer& peer) { return policy::Actor{peer.user, static_cast<std::int64_t>(peer.uid)}; }

/// The one-line view of a record for lists.
json brief(const policy::ImportRecord& r) {
    json approvers = json::array();
    for (const auto& a : r.approvals) approvers.push_back(a.user);
    return {{"bundle", r.bundle_id},          {"channel", r.channel},
            {"version", r.version},           {"state", policy::to_string(r.state)},
            {"reason", r.state_reason},       {"received_at", r.received_at},
            {"approvals", approvers},         {"approvals_required", r.approvals_required},
            {"rollback", r.release && r.release->rollback}, {"payload_bytes", r.payload_bytes},
            {"payload_files", r.payload_files}};
}

}  // namespace

ImportService::ImportService(const ImportConfig& config, const fs::path& incoming_dir, const fs::path& state_dir,
                             AuditTrail& audit)
    : importer_(paths_of(config, incoming_dir, state_dir), config.policy,
                [&audit](std::string_view event, const json& fields, policy::EventKind kind) -> Result<void> {
                    log_event(event, fields);
                    return audit.record_fields(event, fields, kind == policy::EventKind::step);
                }) {}

ImportService::~ImportService() { stop(); }

void ImportService::stop() {
    stopping_ = true;
    intake_.join();
    releaser_.join();
    switcher_.join();
}

void ImportService::set_policy(std::shared_ptr<const policy::Policy> policy) { importer_.set_policy(std::move(policy)); }

void ImportService::queue_admit(const fs::path& archive) {
    const std::string key = "a:" + archive.stem().string();
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || !queued_.insert(key).second) return;
    }
    boost::asio::post(intake_, [this, archive, key] {
        if (!stopping_) {
            try {
                auto r = importer_.admit(archive, stopping_);
                if (!r) log_warning("import_deferred", {{"archive", archive}, {"error", r.error().message}});
            } catch (const std::exception& e) {
                log_error("import_internal_error", {{"archive", archive}, {"error", e.what()}});
            }
        }
        std::lock_guard lock(mutex_);
        queued_.erase(key);
    });
}

void ImportService::queue_release(const std::string& id) {
    const std::string key = "r:" + id;
    {
        std::lock_guard lock(mutex_);
        if (stopping_ || !queued_.insert(key).second) return;
    }
    boost::asio::post(releaser_, [this, id, key] {
        if (!stopping_) {
            try {
                auto r = importer_.release(id);
                if (!r) log_warning("release_deferred", {{"bundle", id}, {"error", r.error().message}});
            } catch (const std::exception& e) {
                log_error("import_internal_error", {{"bundle", id}, {"error", e.what()}});
            }
        }
        std::lock_guard lock(mutex_);
        queued_.erase(key);
    });
}

void ImportService::resume() { retry(); }

void ImportService::retry() {
    auto backlog = importer_.backlog();
    for (const auto& a : backlog.to_admit) queue_admit(a);
    for (const auto& id : backlog.to_release) queue_release(id);
}

void ImportService::on_delivered(const fs::path& archive) { queue_admit(archive); }

bool ImportService::handles(const std::string& command) {
    static const std::set<std::string> kCommands{"pending", "show", "approve", "reject", "rescan", "releases", "rollback"};
    return kCommands.count(command) != 0;
}

json ImportService::summary() const {
    json counts = json::object();
    for (const auto& [state, n] : importer_.counts()) counts[std::string(policy::to_string(state))] = n;
    return counts;
}

void ImportService::handle(const json& request, const Peer& peer, const RolesConfig& roles, ControlResponder respond) {
    const std::string command = request.at("command").get<std::string>();
    auto fail_with = [&](const Error& e) { respond({{"ok", false}, {"error", e.message}}); };

    if (command == "pending") {
        files::require_any_role(peer, roles);
        std::set<policy::ImportState> states;
        if (!request.value("all", false)) {
            states = {policy::ImportState::pending_approval, policy::ImportState::held, policy::ImportState::failed,
                      policy::ImportState::quarantined, policy::ImportState::scanning, policy::ImportState::approved};
        }
        json list = json::array();
        for (const auto& r : importer_.list(states)) list.push_back(brief(r));
        return respond({{"imports", list}});
    }
    if (command == "show") {
        files::require_any_role(peer, roles);
        auto r = importer_.find(text_field(request, "bundle", true));
        if (!r) return fail_with(r.error());
        json out = policy::to_json(*r);
        out.erase("schema");
        return respond({{"import", out}});
    }
    if (command == "releases") {
        files::require_any_role(peer, roles);
        auto list = importer_.releases(text_field(request, "channel", true));
        if (!list) return fail_with(list.error());
        json out = json::array();
        for (const auto& e : *list) {
            out.push_back({{"version", e.version}, {"current", e.current},
                           {"bundle", e.bundle_id ? json(*e.bundle_id) : json(nullptr)},
                           {"released_at", e.released_at ? json(*e.released_at) : json(nullptr)},
                           {"released_by", e.released_by ? json(*e.released_by) : json(nullptr)}});
        }
        return respond({{"channel", request.at("channel")}, {"releases", out}});
    }

    // Officer commands: the identity is the kernel's, never a field of the request.
    require_role(peer, Role::officer, roles);
    const policy::Actor actor = actor_of(peer);
    const std::string reason = text_field(request, "reason", command != "rescan");
    auto job = [this, request, actor, reason, command, respond] {
        try {
            if (stopping_) return respond({{"ok", false}, {"error", "the receiver is stopping; try again once it is back"}});
            if (command == "reject") {
                auto r = importer_.reject(text_field(request, "bundle", true), actor, reason);
                if (!r) return respond({{"ok", false}, {"error", r.error().message}});
                return respond({{"import", brief(*r)}});
            }
            if (command == "approve") {
                auto r = importer_.approve(text_field(request, "bundle", true), actor, reason);
                if (!r) return respond({{"ok", false}, {"error", r.error().message}});
                json out = brief(*r);
                if (r->release_path) out["release_path"] = *r->release_path;
                return respond({{"import", out}});
            }
            if (command == "rescan") {
                auto r = importer_.rescan(text_field(request, "bundle", true), actor, stopping_);
                if (!r) return respond({{"ok", false}, {"error", r.error().message}});
                return respond({{"import", brief(*r)}});
            }
            // rollback
            std::optional<std::string> to;
            if (auto v = text_field(request, "to", false); !v.empty()) to = v;
            auto r = importer_.rollback(text_field(request, "channel", true), to, actor, reason);
            if (!r) return respond({{"ok", false}, {"error", r.error().message}});
            return respond({{"channel", r->channel}, {"from", r->from}, {"to", r->to}});
        } catch (const std::exception& e) {
            respond({{"ok", false}, {"error", e.what()}});
        }
    };
    // Scans are long: a rescan waits behind other intake. Approvals (which copy
    // a release) and rejections go to the release thread; rollbacks have their
    // own, so an emergency switch never waits behind a copy or a hook.
    // Nothing here blocks the io thread, which also drives the diode.
    auto& pool = command == "rescan" ? intake_ : command == "rollback" ? switcher_ : releaser_;
    boost::asio::post(pool, std::move(job));
}

}  // namespace sluice::daemon
