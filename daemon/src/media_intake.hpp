#pragma once
// The receiver's removable-media side: reads volumes into a persistent block
// store, remembers what each medium brought, and hands complete archives to
// the same verification and delivery as the diode's.
//
//   control: media_import MOUNTDIR ─┐
//   [media] watch: a medium appears ─┴► media thread: scan ─► import_volume ─► BlockStore (state_dir/media/store)
//                                                  │ catalog (state_dir/media/sets/<set>.json): volumes read, damage
//                                                  └ archive complete ─► Deliver (verify, audit, incoming/)
//   control: media_status ─► what every unfinished archive still needs, from the catalog and the store

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include "sluice/daemon/config.hpp"
#include "sluice/daemon/control.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/block_store.hpp"

namespace sluice::daemon {

class AuditTrail;

/// A reassembled archive, from either carrier, ready to be verified and delivered.
struct Arrival {
    transfer::TransferInfo info;
    std::string key;                         ///< staging key in `store`
    std::uint64_t transfer = 0;              ///< transfer id (diode), or the media set's
    std::string hops;                        ///< the sender's hop record, empty if none came
    std::string carrier;                     ///< "diode" or "media"
    transfer::FileBlockStore* store = nullptr;
};

/// Verifies, records and delivers an arrival; returns what happened
/// ({"delivered": path} | {"refused": why} | {"deferred": why}).
using Deliver = std::function<nlohmann::json(const Arrival&)>;

class MediaIntake {
public:
    /// Creates state_dir/media/. Throws std::runtime_error when it cannot.
    MediaIntake(MediaConfig config, const std::filesystem::path& state_dir, AuditTrail& audit, Deliver deliver);
    ~MediaIntake();
    MediaIntake(const MediaIntake&) = delete;
    MediaIntake& operator=(const MediaIntake&) = delete;

    [[nodiscard]] static bool handles(const std::string& command);
    void handle(const nlohmann::json& request, const Peer& peer, const RolesConfig& roles, ControlResponder respond);
    /// Looks at the watch points every poll_interval (the work runs on the media thread).
    void tick(std::chrono::steady_clock::time_point now);
    void set_config(MediaConfig config);
    /// Removes staging areas of archives whose volumes stopped coming (30 days); returns how many.
    std::size_t sweep();
    /// Finishes the volume being read; queued requests are dropped.
    void stop();
    /// For `sluice status`: unfinished archives, watch points, recent imports.
    [[nodiscard]] nlohmann::json summary() const;

private:
    struct SetRecord;
    nlohmann::json import_mount(const std::filesystem::path& mount, const media::MediaKey* key, const std::string& actor,
                                bool from_watch);
    nlohmann::json import_one(const media::FoundVolume& volume, const std::filesystem::path& mount,
                              const media::MediaKey* key, const std::string& actor);
    nlohmann::json needs_of(const SetRecord& record);
    static nlohmann::json recent_entry(const media::VolumeIndex& index, const std::filesystem::path& mount,
                                       const std::string& actor, bool complete);
    void remember_recent(nlohmann::json entry);
    nlohmann::json status_json();
    void poll_watch_points();
    void save(const SetRecord& record);
    void load_catalog();
    std::optional<media::MediaKey> configured_key(std::string& error) const;

    mutable std::mutex mutex_;  // config_, sets_, recent_, seen_
    MediaConfig config_;
    std::filesystem::path sets_dir_;
    AuditTrail& audit_;
    Deliver deliver_;
    transfer::FileBlockStore store_;
    std::map<std::string, std::unique_ptr<SetRecord>> sets_;         // by set id (hex)
    std::vector<nlohmann::json> recent_;                             // newest last, at most 16
    std::map<std::filesystem::path, std::set<std::string>> seen_;    // watch point → "set/volume" read while mounted
    std::chrono::steady_clock::time_point last_poll_{};
    bool poll_queued_ = false;
    bool stopping_ = false;
    boost::asio::thread_pool pool_{1};
};

}  // namespace sluice::daemon
