#include "sluice/transfer/link_monitor.hpp"

namespace sluice::transfer {
namespace {
constexpr std::size_t kRemembered = 4096;  // transfers remembered as seen / reported
}

std::string_view to_string(LinkAlarm::Kind kind) {
    switch (kind) {
        case LinkAlarm::Kind::link_up: return "link_up";
        case LinkAlarm::Kind::link_dead: return "link_dead";
        case LinkAlarm::Kind::sender_restarted: return "sender_restarted";
        case LinkAlarm::Kind::heartbeats_lost: return "heartbeats_lost";
        case LinkAlarm::Kind::transfer_missed: return "transfer_missed";
    }
    return "unknown";
}

void LinkMonitor::on_frame(TimePoint now) {
    state_.last_frame = now;
    if (!state_.up) {
        state_.up = true;
        alarms_.push_back({LinkAlarm::Kind::link_up, state_.session, 0, {}, 0});
    }
}

void LinkMonitor::on_heartbeat(std::uint64_t session, const Heartbeat& hb, TimePoint now) {
    on_frame(now);
    if (state_.heartbeats > 0 && session != state_.session) {
        alarms_.push_back({LinkAlarm::Kind::sender_restarted, session, 0, {}, 0});
    } else if (state_.heartbeats > 0 && hb.sequence > state_.last.sequence + 1) {
        std::uint64_t lost = hb.sequence - state_.last.sequence - 1;
        state_.heartbeats_lost += lost;
        alarms_.push_back({LinkAlarm::Kind::heartbeats_lost, session, 0, {}, lost});
    }
    // The first heartbeat heard from a session lists transfers that may have
    // gone out before this receiver listened (it just started, or restarted
    // after delivering them): they are the baseline, not misses.
    const bool first_of_session = state_.heartbeats == 0 || session != state_.session;
    state_.session = session;
    state_.last = hb;
    state_.last_heartbeat = now;
    ++state_.heartbeats;
    for (const auto& r : hb.recent) {
        const std::uint64_t id = r.transfer;
        if (first_of_session) {
            reported_.insert(id);
            continue;
        }
        if (r.passes_done == 0 || seen_.count(id) || reported_.count(id)) continue;
        // A full pass went out and not one metadata frame of it arrived.
        reported_.insert(id);
        ++state_.transfers_missed;
        alarms_.push_back({LinkAlarm::Kind::transfer_missed, session, r.transfer, r.bundle_id, 0});
    }
    while (reported_.size() > kRemembered) reported_.erase(reported_.begin());  // baselines included
}

void LinkMonitor::on_transfer_seen(std::uint64_t transfer) {
    if (!seen_.insert(transfer).second) return;
    seen_order_.push_back(transfer);
    if (seen_order_.size() > kRemembered) {
        seen_.erase(seen_order_.front());
        seen_order_.pop_front();
    }
}

void LinkMonitor::on_tick(TimePoint now) {
    if (state_.up && state_.last_frame && now - *state_.last_frame >= dead_after_) {
        state_.up = false;
        ++state_.dead_periods;
        alarms_.push_back({LinkAlarm::Kind::link_dead, state_.session, 0, {}, 0});
    }
}

}  // namespace sluice::transfer
