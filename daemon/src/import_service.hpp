#pragma once
// The receiver's import side: a policy::Importer driven by two worker threads
// and answered on the control socket.
//
//   finalizer ── incoming/<id>.tar ──► intake thread: admit (quarantine, rules, scanners)
//   control: approve / reject ───────► release thread: release (copy, switch, hooks)
//   control: rollback ───────────────► switch thread: rollback (never behind a copy)
//   control: pending / show / releases ──► answered at once (records in memory)
//   every minute: backlog (failed quarantines, interrupted scans, unreleased approvals)

#include <atomic>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "sluice/daemon/config.hpp"
#include "sluice/daemon/control.hpp"
#include "sluice/policy/importer.hpp"

namespace sluice::daemon {
class AuditTrail;
}

namespace sluice::daemon {

class ImportService {
public:
    /// Creates the directories and loads the records. Throws std::runtime_error.
    /// Every import event goes to the log and to `audit`, which must outlive the service.
    ImportService(const ImportConfig& config, const std::filesystem::path& incoming_dir,
                  const std::filesystem::path& state_dir, AuditTrail& audit);
    ~ImportService();

    /// Queues everything left over from before (call once the daemon is up).
    void resume();
    /// A verified archive arrived in incoming/.
    void on_delivered(const std::filesystem::path& archive);
    /// Retries what failed (called every minute).
    void retry();
    void set_policy(std::shared_ptr<const policy::Policy> policy);
    /// Finishes the job in progress (a scan is cut short and resumed on the next start).
    void stop();

    /// Whether `command` is one of the import commands this service answers.
    [[nodiscard]] static bool handles(const std::string& command);
    void handle(const nlohmann::json& request, const Peer& peer, const RolesConfig& roles, ControlResponder respond);

    /// Counts by state, for `sluice status`.
    [[nodiscard]] nlohmann::json summary() const;

private:
    void queue_admit(const std::filesystem::path& archive);
    void queue_release(const std::string& id);

    policy::Importer importer_;
    std::atomic<bool> stopping_{false};
    std::mutex mutex_;
    std::set<std::string> queued_;  // "a:<id>" admits and "r:<id>" releases waiting or running
    boost::asio::thread_pool intake_{1};
    boost::asio::thread_pool releaser_{1};
    boost::asio::thread_pool switcher_{1};  // rollbacks only
};

}  // namespace sluice::daemon
