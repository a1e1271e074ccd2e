#include "audit_trail.hpp"

#include <boost/asio/post.hpp>

#include "sluice/audit/service.hpp"
#include "sluice/bundle/signing.hpp"
#include "sluice/daemon/log.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::daemon {
namespace {

/// The host key: the configured one, or <state_dir>/audit.key made on first start.
std::shared_ptr<const bundle::Key> host_key(const AuditConfig& config, const fs::path& state_dir) {
    const fs::path key_path = config.key_or(state_dir);
    std::error_code ec;
    if (!config.key_file && !fs::exists(key_path, ec)) {
        fs::create_directories(key_path.parent_path(), ec);
        auto fp = bundle::generate_key_pair(key_path.parent_path(), key_path.stem().string());
        if (!fp) throw std::runtime_error("cannot create the audit key " + key_path.string() + ": " + fp.error().message);
        log_notice("audit_key_created", {{"key", key_path}, {"public_key", fs::path(key_path).replace_extension(".pub")},
                                         {"fingerprint", *fp}});
    }
    auto key = bundle::load_private_key(key_path);
    if (!key) throw std::runtime_error("audit key " + key_path.string() + ": " + key.error().message);
    return std::make_shared<const bundle::Key>(std::move(*key));
}

}  // namespace

AuditTrail::AuditTrail(const AuditConfig& config, const fs::path& state_dir, std::string side)
    : db_path_(config.database_or(state_dir)), interval_(config.checkpoint_interval) {
    std::error_code ec;
    fs::create_directories(db_path_.parent_path(), ec);
    audit::LogOptions options;
    options.side = std::move(side);
    options.key = host_key(config, state_dir);
    options.checkpoint_every = config.checkpoint_events;
    // Every checkpoint, automatic ones too, is a journal line: an anchor kept apart from the
    // database against truncation (docs/audit.md).
    options.on_checkpoint = [](const audit::Checkpoint& c, std::string_view why) {
        log_info("audit_checkpoint", {{"seq", c.seq}, {"hash", c.hash}, {"why", why}});
    };
    fingerprint_ = options.key->fingerprint();
    auto log = audit::Log::open(db_path_, options);
    if (!log) throw std::runtime_error(log.error().message);
    log_ = std::move(*log);
    last_checkpoint_ = std::chrono::steady_clock::now();
    log_info("audit_log_opened", {{"database", db_path_}, {"head_seq", log_->head_seq()}, {"key", fingerprint_}});
    // A log a daemon has opened always has a checkpoint: `verify --key` treats none at all as removal.
    checkpoint("start");
}

AuditTrail::~AuditTrail() {
    stop_serving();
    checkpoint("shutdown");
}

Result<audit::Record> AuditTrail::record(audit::Event event) {
    const std::string name = event.event;
    const std::string bundle = event.bundle;
    auto r = log_->append(std::move(event));
    if (!r) {
        log_critical("audit_write_failed", {{"event", name}, {"bundle", bundle}, {"error", r.error().message},
                                            {"backlog", log_->backlog()}, {"kept", true}});
    }
    return r;
}

Result<audit::Record> AuditTrail::record_step(audit::Event event) {
    const std::string name = event.event;
    const std::string bundle = event.bundle;
    auto r = log_->append_step(std::move(event));
    if (!r) {
        log_critical("audit_write_failed", {{"event", name}, {"bundle", bundle}, {"error", r.error().message},
                                            {"backlog", log_->backlog()}, {"kept", false}, {"step", "not taken"}});
    }
    return r;
}

Result<void> AuditTrail::record_fields(std::string_view event, const json& fields, bool step) {
    audit::Event ev;
    ev.event = std::string(event);
    json details = json::object();
    for (const auto& [key, value] : fields.items()) {
        if (key == "bundle" && value.is_string()) {
            ev.bundle = value.get<std::string>();
        } else if (key == "channel" && value.is_string()) {
            ev.channel = value.get<std::string>();
        } else if (key == "actor" && value.is_string()) {
            ev.actor = value.get<std::string>();
        } else if (key == "outcome" && value.is_string()) {
            ev.outcome = value.get<std::string>();
        } else {
            details[key] = value;
        }
    }
    ev.details = std::move(details);
    auto r = step ? record_step(std::move(ev)) : record(std::move(ev));
    if (!r) return r.error();
    return {};
}

void AuditTrail::tick() {
    if (log_->backlog() > 0) {
        if (auto ok = log_->flush(); ok) {
            log_notice("audit_backlog_written", {{"database", db_path_}});
        } else {
            log_critical("audit_write_failed", {{"error", ok.error().message}, {"backlog", log_->backlog()}});
        }
    }
    bool due = false;
    {
        std::lock_guard lock(mutex_);
        due = std::chrono::steady_clock::now() - last_checkpoint_ >= interval_;
    }
    if (due) checkpoint("interval");
}

void AuditTrail::checkpoint(std::string_view why) {
    std::lock_guard lock(mutex_);
    last_checkpoint_ = std::chrono::steady_clock::now();
    if (log_->last_checkpoint_seq() == log_->head_seq() && log_->backlog() == 0) return;  // nothing new to vouch for
    if (auto c = log_->checkpoint(why); !c) {
        log_error("audit_checkpoint_failed", {{"why", why}, {"error", c.error().message}});
    }
}

void AuditTrail::serve(const json& request, ControlResponder respond) {
    boost::asio::post(readers_, [this, request, respond] {
        try {
            auto reader = audit::Reader::open(db_path_);
            if (!reader) throw std::runtime_error(reader.error().message);
            json answer = audit::serve(**reader, request);
            answer["ok"] = true;
            respond(std::move(answer));
        } catch (const std::exception& e) {
            respond(json{{"ok", false}, {"error", e.what()}});
        }
    });
}

void AuditTrail::stop_serving() {
    readers_.stop();
    readers_.join();
}

json AuditTrail::status() const {
    // From the log itself: it also checkpoints on its own every checkpoint_events events.
    const auto checkpointed = log_->last_checkpoint_seq();
    return {{"database", db_path_.string()},
            {"head_seq", log_->head_seq()},
            {"backlog", log_->backlog()},
            {"key_fingerprint", fingerprint_},
            {"last_checkpoint_seq", checkpointed ? json(*checkpointed) : json(nullptr)}};
}

}  // namespace sluice::daemon
