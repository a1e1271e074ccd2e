#pragma once
// One daemon's audit log: opened at start (the host key created on first
// start), written by every part of the daemon, checkpointed on a timer and at
// shutdown, and read for `sluice audit` requests on a thread of its own so a
// long verification never stalls the daemon's loop.
//
//   record(Event)   durable before it returns; on failure the event is kept
//                   in the log's backlog, `audit_write_failed` is logged, and
//                   the error returned: the caller does not proceed.
//   tick()          flush the backlog, checkpoint when the interval passed.
//   serve()         {"command":"audit", "op":…} (auditor role), see audit/service.hpp.

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "sluice/audit/log.hpp"
#include "sluice/daemon/config.hpp"
#include "sluice/daemon/control.hpp"

namespace sluice::daemon {

class AuditTrail {
public:
    /// Throws std::runtime_error naming the file when the log or key cannot be opened.
    AuditTrail(const AuditConfig& config, const std::filesystem::path& state_dir, std::string side);
    /// Writes a last checkpoint.
    ~AuditTrail();
    AuditTrail(const AuditTrail&) = delete;
    AuditTrail& operator=(const AuditTrail&) = delete;

    /// An observation (kept and written later if the log cannot take it now).
    Result<audit::Record> record(audit::Event event);
    /// A step about to be taken: written, or dropped with an error, and then the step is not taken.
    Result<audit::Record> record_step(audit::Event event);
    /// For sinks that speak in fields (the importer): "bundle", "channel",
    /// "actor" and "outcome" become columns, the rest details.
    Result<void> record_fields(std::string_view event, const nlohmann::json& fields, bool step);

    /// Flushes the backlog and checkpoints when checkpoint_interval passed with new events.
    void tick();
    /// Signs a checkpoint now (shutdown); failures are logged.
    void checkpoint(std::string_view why);

    /// Answers a `sluice audit` request on the audit thread; `respond` is called once.
    void serve(const nlohmann::json& request, ControlResponder respond);
    /// Stops serving (queued requests are answered with an error).
    void stop_serving();

    [[nodiscard]] audit::Log& log() { return *log_; }
    [[nodiscard]] nlohmann::json status() const;
    [[nodiscard]] const std::string& key_fingerprint() const { return fingerprint_; }

private:
    std::unique_ptr<audit::Log> log_;
    std::filesystem::path db_path_;
    std::string fingerprint_;
    std::chrono::milliseconds interval_;
    mutable std::mutex mutex_;
    std::chrono::steady_clock::time_point last_checkpoint_;
    boost::asio::thread_pool readers_{1};
};

}  // namespace sluice::daemon
