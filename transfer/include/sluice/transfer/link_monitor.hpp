#pragma once
// LinkMonitor: what the receiver can know about a link that never answers.
//
//   heartbeat(session, seq, counters, recent transfers) ─┐
//   transfer seen (first metadata)                       ├─► link up / dead / sender restarted,
//   any valid frame                                      │   heartbeats lost, transfers announced
//   tick(now)                                           ─┘   but never received
//
// Sans-IO: time comes in; alarms come out of drain().

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "sluice/transfer/metadata.hpp"
#include "sluice/transfer/reassembler.hpp"

namespace sluice::transfer {

struct LinkAlarm {
    enum class Kind {
        link_up,           ///< first valid frame, or frames again after a dead period
        link_dead,         ///< nothing valid for dead_after
        sender_restarted,  ///< heartbeats from a new session
        heartbeats_lost,   ///< `count` heartbeats missing from the sequence
        transfer_missed,   ///< the sender finished `transfer` (bundle `bundle_id`); none of it arrived
    };
    Kind kind = Kind::link_up;
    std::uint64_t session = 0;
    std::uint64_t transfer = 0;
    Sha256 bundle_id{};
    std::uint64_t count = 0;
};

[[nodiscard]] std::string_view to_string(LinkAlarm::Kind kind);

struct LinkState {
    bool up = false;
    std::optional<TimePoint> last_frame;
    std::optional<TimePoint> last_heartbeat;
    std::uint64_t session = 0;          ///< sender session of the last heartbeat
    Heartbeat last;                     ///< the last heartbeat's contents
    std::uint64_t heartbeats = 0;
    std::uint64_t heartbeats_lost = 0;
    std::uint64_t dead_periods = 0;
    std::uint64_t transfers_missed = 0;
};

class LinkMonitor {
public:
    explicit LinkMonitor(std::chrono::milliseconds dead_after) : dead_after_(dead_after) {}

    void on_frame(TimePoint now);
    void on_heartbeat(std::uint64_t session, const Heartbeat& heartbeat, TimePoint now);
    /// By transfer id alone: a restarted sender keeps the ids of its queued bundles under a new session.
    void on_transfer_seen(std::uint64_t transfer);
    void on_tick(TimePoint now);

    [[nodiscard]] std::vector<LinkAlarm> drain() { return std::exchange(alarms_, {}); }
    [[nodiscard]] const LinkState& state() const { return state_; }

private:
    std::chrono::milliseconds dead_after_;
    LinkState state_;
    std::vector<LinkAlarm> alarms_;
    std::set<std::uint64_t> seen_;  // transfer ids
    std::deque<std::uint64_t> seen_order_;
    std::set<std::uint64_t> reported_;
};

}  // namespace sluice::transfer
