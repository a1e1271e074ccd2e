#include "sluice/daemon/receiver.hpp"

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <fstream>
#include <mutex>

#include "audit_trail.hpp"
#include "fault_injection.hpp"
#include "files.hpp"
#include "sluice/audit/hops.hpp"
#include "import_service.hpp"
#include "media_intake.hpp"
#include "sluice/bundle/bundle.hpp"
#include "sluice/daemon/control.hpp"
#include "sluice/daemon/log.hpp"
#include "sluice/daemon/metrics.hpp"
#include "sluice/diode/endpoint.hpp"
#include "sluice/diode/udp_receiver.hpp"
#include "sluice/transfer/link_monitor.hpp"
#include "sluice/transfer/reassembler.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::daemon {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr auto kTick = std::chrono::milliseconds(200);
constexpr std::size_t kRecentKept = 32;
constexpr std::size_t kMaxStagings = 256;                    // archives partly received at once
constexpr auto kStagingMaxAge = std::chrono::hours(24 * 7);  // unfinished archives kept this long

diode::ReceiverOptions receiver_options(const ReceiverConfig& config) {
    diode::ReceiverOptions o;
    o.lanes = files::parse_lanes(config.link.lanes);
    o.rcvbuf_bytes = config.link.rcvbuf_bytes;
    return o;
}

transfer::ReassemblerLimits limits_of(const ReceiverConfig& config) {
    transfer::ReassemblerLimits l;
    const std::size_t block = std::size_t{config.link.data_symbols + config.link.parity_symbols} * config.link.symbol_bytes;
    l.max_buffered_bytes = config.max_buffered_blocks * block;
    l.transfer_timeout = config.transfer_timeout;
    l.finished_grace = 3 * config.link.heartbeat_interval;
    return l;
}

json ranges_json(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges) {
    json out = json::array();
    for (auto [a, b] : ranges) out.push_back(a == b ? std::to_string(a) : std::to_string(a) + "-" + std::to_string(b));
    return out;
}

}  // namespace

struct ReceiverService::Impl {
    boost::asio::io_context& io;
    ReceiverConfig config;
    std::shared_ptr<const bundle::TrustStore> trust;
    std::optional<transfer::LinkKey> link_key;
    transfer::FileBlockStore store;
    transfer::Reassembler reassembler;
    transfer::LinkMonitor monitor;
    fs::path refused_dir;
    std::unique_ptr<diode::UdpReceiver> udp;
    std::unique_ptr<ControlServer> control;
    std::unique_ptr<AuditTrail> audit;        // before imports: they record into it until they stop
    std::unique_ptr<ImportService> imports;  // with [import]: quarantine, scan, policy, release
    std::unique_ptr<MediaIntake> media;      // removable media: its own store, delivers through finalize()
    boost::asio::thread_pool finalizer{1};
    boost::asio::steady_timer tick_timer{io};
    std::atomic<std::int64_t> alive_ns{SteadyClock::now().time_since_epoch().count()};
    std::uint64_t valid_frames_seen = 0;
    SteadyClock::time_point last_metrics{};
    SteadyClock::time_point last_sweep{};
    SteadyClock::time_point last_import_retry = SteadyClock::now();
    bool stopped = false;

    mutable std::mutex mutex;  // guards `config` parts reloadable from SIGHUP and `delivered`
    std::deque<json> delivered;  // newest last
    std::deque<json> alarms;
    std::uint64_t bundles_delivered = 0, bundles_refused = 0;

    Impl(boost::asio::io_context& io_, ReceiverConfig cfg)
        : io(io_),
          config(std::move(cfg)),
          trust(std::make_shared<bundle::TrustStore>(files::load_trust(config.trusted_keys))),
          link_key(files::load_link_key(config.link.link_key_file)),
          store(config.state_dir / "transfers", kMaxStagings),
          reassembler(limits_of(config), store, link_key ? &*link_key : nullptr),
          monitor(config.dead_link_after) {
        refused_dir = config.state_dir / "refused";
        std::vector<fs::path> dirs{config.incoming_dir, refused_dir};
        dirs.push_back(config.control_socket.parent_path());
        if (config.metrics_file) dirs.push_back(config.metrics_file->parent_path());
        for (const auto& d : dirs) {
            std::error_code ec;
            fs::create_directories(d, ec);
            if (ec) throw std::runtime_error("cannot create " + d.string() + ": " + ec.message());
        }
        audit = std::make_unique<AuditTrail>(config.audit, config.state_dir, "receiver");
        if (config.import) {
            imports = std::make_unique<ImportService>(*config.import, config.incoming_dir, config.state_dir, *audit);
        }
        media = std::make_unique<MediaIntake>(config.media, config.state_dir, *audit,
                                              [this](const Arrival& a) { return finalize(a); });
    }

    /// An observation for the audit log: kept and written later if the log cannot take it now.
    void note(std::string event, std::string bundle, std::string channel, std::string outcome, json details) {
        audit::Event ev;
        ev.event = std::move(event);
        ev.bundle = std::move(bundle);
        ev.channel = std::move(channel);
        ev.outcome = std::move(outcome);
        ev.details = std::move(details);
        (void)audit->record(std::move(ev));
    }

    /// Records the sender's hop record a transfer carried. A record that does not
    /// parse or is about another bundle is refused and noted (not an error: the
    /// bundle itself was verified on its own); an error means the log could not write.
    Result<void> record_hops(std::string_view text, const std::string& bundle, const std::string& channel,
                             const std::string& carrier) {
        auto hops = audit::parse_hop_record(text);
        if (!hops) {
            note("upstream_events_refused", bundle, channel, "refused", {{"error", hops.error().message}, {"carrier", carrier}});
            return {};
        }
        if (hops->bundle != bundle) {
            note("upstream_events_refused", bundle, channel, "refused",
                 {{"error", "the hop record is about bundle " + hops->bundle}, {"carrier", carrier}});
            return {};
        }
        if (auto rec = audit->log().record_upstream(*hops, channel, carrier); !rec) return rec.error();
        return {};
    }

    static std::string annex_text(const transfer::Event& ev) {
        return std::string(reinterpret_cast<const char*>(ev.annex.data()), ev.annex.size());
    }

    Arrival arrival_of(const transfer::Event& ev) {
        return Arrival{ev.info, ev.key, ev.transfer, annex_text(ev), "diode", &store};
    }

    void remember(std::deque<json>& list, json entry) {
        std::lock_guard lock(mutex);
        list.push_back(std::move(entry));
        if (list.size() > kRecentKept) list.pop_front();
    }

    void on_batch(std::span<const std::span<const std::byte>> datagrams) {
        auto now = SteadyClock::now();
        for (auto d : datagrams) reassembler.on_datagram(d, now);
        const auto& st = reassembler.stats();
        std::uint64_t valid = st.metadata_frames + st.symbol_frames + st.heartbeat_frames + st.annex_frames;
        if (valid != valid_frames_seen) {
            valid_frames_seen = valid;
            monitor.on_frame(now);
        }
        handle_events(now);
    }

    void handle_events(SteadyClock::time_point now) {
        for (auto& ev : reassembler.drain()) {
            const std::string bundle = transfer::to_hex(ev.info.bundle_id);
            switch (ev.kind) {
                case transfer::Event::Kind::started:
                    monitor.on_transfer_seen(ev.transfer);
                    log_info("transfer_started", {{"bundle", bundle}, {"transfer", ev.transfer}, {"channel", ev.info.channel},
                                                  {"version", ev.info.version}, {"bytes", ev.info.archive_bytes},
                                                  {"pass", ev.info.pass}, {"blocks_held", ev.blocks_held},
                                                  {"blocks", ev.info.blocks()}});
                    note("transfer_started", bundle, ev.info.channel, "ok",
                         {{"transfer", ev.transfer}, {"version", ev.info.version}, {"bytes", ev.info.archive_bytes},
                          {"pass", ev.info.pass}, {"passes", ev.info.passes}, {"blocks_held", ev.blocks_held},
                          {"session", ev.session}});
                    break;
                case transfer::Event::Kind::delivered_before:
                    monitor.on_transfer_seen(ev.transfer);
                    log_info("transfer_already_delivered", {{"bundle", bundle}, {"transfer", ev.transfer}});
                    break;
                case transfer::Event::Kind::assembled:
                    log_info("transfer_assembled", {{"bundle", bundle}, {"transfer", ev.transfer}, {"bytes", ev.info.archive_bytes}});
                    note("transfer_assembled", bundle, ev.info.channel, "ok",
                         {{"transfer", ev.transfer}, {"version", ev.info.version}, {"bytes", ev.info.archive_bytes}});
                    boost::asio::post(finalizer, [this, a = arrival_of(ev)] { (void)finalize(a); });
                    break;
                case transfer::Event::Kind::incomplete:
                    log_warning("transfer_incomplete", {{"bundle", bundle}, {"transfer", ev.transfer},
                                                        {"blocks_held", ev.blocks_held}, {"blocks", ev.info.blocks()},
                                                        {"missing", ranges_json(ev.missing).dump()}, {"why", ev.message}});
                    remember(alarms, {{"alarm", "transfer_incomplete"}, {"bundle", bundle}, {"transfer", ev.transfer},
                                      {"missing_blocks", ranges_json(ev.missing)}, {"at", files::now_rfc3339()}});
                    note("transfer_incomplete", bundle, ev.info.channel, "error",
                         {{"transfer", ev.transfer}, {"version", ev.info.version}, {"blocks_held", ev.blocks_held},
                          {"blocks", ev.info.blocks()}, {"missing", ranges_json(ev.missing)}, {"why", ev.message}});
                    // What the sender recorded of it so far arrived even if the archive did not (for `sluice audit gaps`).
                    if (!ev.annex.empty()) (void)record_hops(annex_text(ev), bundle, ev.info.channel, "diode");
                    break;
                case transfer::Event::Kind::failed:
                    log_error("transfer_store_failed", {{"bundle", bundle}, {"transfer", ev.transfer}, {"error", ev.message}});
                    remember(alarms, {{"alarm", "store_failed"}, {"bundle", bundle}, {"error", ev.message},
                                      {"at", files::now_rfc3339()}});
                    note("transfer_store_failed", bundle, ev.info.channel, "error",
                         {{"transfer", ev.transfer}, {"error", ev.message}});
                    break;
                case transfer::Event::Kind::heartbeat:
                    monitor.on_heartbeat(ev.session, ev.heartbeat, now);
                    break;
            }
        }
        for (auto& alarm : monitor.drain()) {
            auto kind = std::string(transfer::to_string(alarm.kind));
            json entry{{"alarm", kind}, {"session", alarm.session}, {"at", files::now_rfc3339()}};
            if (alarm.kind == transfer::LinkAlarm::Kind::heartbeats_lost) entry["count"] = alarm.count;
            if (alarm.kind == transfer::LinkAlarm::Kind::transfer_missed) {
                entry["transfer"] = alarm.transfer;
                entry["bundle"] = transfer::to_hex(alarm.bundle_id);
            }
            if (alarm.kind == transfer::LinkAlarm::Kind::link_up) {
                if (alarm.session == 0) entry.erase("session");  // up before any heartbeat named the sender
                log_info("link_up");
            } else {
                log_warning(kind, {{"session", alarm.session}, {"detail", entry.dump()}});
            }
            {
                json details = entry;
                details.erase("alarm");
                details.erase("at");
                std::string about = details.value("bundle", "");
                details.erase("bundle");
                note(kind, about, "", alarm.kind == transfer::LinkAlarm::Kind::link_up ? "ok" : "alarm", details);
            }
            remember(alarms, std::move(entry));
        }
    }

    /// On the finalizer thread (diode) or the media thread: SHA-256, signatures,
    /// the audit log, then into incoming/. Returns what happened.
    json finalize(const Arrival& a) {
        const auto& ev = a;  // info, key, transfer
        auto& from = *a.store;
        const bool diode = a.carrier == "diode";
        const std::string bundle = transfer::to_hex(ev.info.bundle_id);
        const auto started = SteadyClock::now();
        auto path = from.finalize(ev.key, ev.info);
        const auto digested = SteadyClock::now();
        if (!path) {
            if (from.has_staging(ev.key)) {
                // An I/O error, not a mismatch: the archive is still staged; try again later.
                log_error("finalize_failed", {{"bundle", bundle}, {"error", path.error().message}, {"retry_in_seconds", 30}});
                retry_later(a);
                return {{"deferred", path.error().message}};
            }
            log_error("transfer_refused", {{"bundle", bundle}, {"error", path.error().message}});
            note("bundle_refused", bundle, ev.info.channel, "refused",
                 {{"transfer", ev.transfer}, {"version", ev.info.version}, {"error", path.error().message},
                  {"carrier", a.carrier}});
            remember(alarms, {{"alarm", "archive_digest_mismatch"}, {"bundle", bundle}, {"at", files::now_rfc3339()}});
            if (diode) boost::asio::post(io, [this, key = ev.key] { reassembler.on_finalized(key, false); });
            return {{"refused", path.error().message}};
        }
        std::shared_ptr<const bundle::TrustStore> trust_now;
        unsigned min_signers = 0;
        fs::path incoming;
        {
            std::lock_guard lock(mutex);
            trust_now = trust;
            min_signers = config.min_signers;
            incoming = config.incoming_dir;
        }
        bundle::VerifyOptions v;
        v.trust = trust_now.get();
        v.min_signers = min_signers;
        auto report = bundle::verify_archive(*path, v);
        const auto verified = SteadyClock::now();
        auto secs = [](auto t0, auto t1) { return std::chrono::duration<double>(t1 - t0).count(); };
        std::string refusal;
        if (!report) {
            refusal = report.error().message;
        } else if (report->bundle_id != bundle) {
            refusal = "the archive is bundle " + report->bundle_id + " but the transfer announced " + bundle;
        }
        json entry{{"bundle", bundle}, {"channel", ev.info.channel}, {"version", ev.info.version},
                   {"bytes", ev.info.archive_bytes}, {"transfer", ev.transfer}, {"carrier", a.carrier},
                   {"at", files::now_rfc3339()}};
        if (refusal.empty()) {
            // The sender's events for this bundle, and the receipt itself, are in
            // the audit log before the bundle is handed on; if they cannot be
            // written, it waits (still staged) and is retried.
            if (!a.hops.empty()) {
                if (auto rec = record_hops(a.hops, bundle, ev.info.channel, a.carrier); !rec) {
                    log_error("delivery_deferred", {{"bundle", bundle}, {"error", rec.error().message}, {"retry_in_seconds", 30}});
                    retry_later(a);
                    return {{"deferred", rec.error().message}};
                }
            }
            if (auto rec = audit->record_step({"bundle_received", bundle, ev.info.channel, "system", "ok",
                                          {{"transfer", ev.transfer}, {"version", ev.info.version},
                                           {"bytes", ev.info.archive_bytes}, {"signers", report->distinct_signers.size()},
                                           {"archive_sha256", transfer::to_hex(ev.info.archive_sha256)},
                                           {"carrier", a.carrier}}});
                !rec) {
                log_error("delivery_deferred", {{"bundle", bundle}, {"error", rec.error().message}, {"retry_in_seconds", 30}});
                retry_later(a);
                return {{"deferred", rec.error().message}};
            }
            fs::path target = incoming / (bundle + ".tar");
            std::error_code ec;
            if (fs::exists(target, ec)) {
                // Delivered before (a crash between the rename and the delivered
                // marker): archives are canonical, so the same bundle id is the
                // same bytes. Record it and drop the copy.
                log_info("bundle_already_in_incoming", {{"bundle", bundle}, {"path", target}});
                if (imports) imports->on_delivered(target);
            } else if (auto moved = files::move_no_replace(*path, target); !moved) {
                // Still staged and still marked as finalizing: retried later,
                // never re-assembled in a loop.
                log_error("delivery_failed", {{"bundle", bundle}, {"error", moved.error().message}, {"retry_in_seconds", 30}});
                retry_later(a);
                return {{"deferred", moved.error().message}};
            }
            if (auto ok = from.mark_delivered(ev.key); !ok) log_error("delivery_not_recorded", {{"error", ok.error().message}});
            entry["path"] = target.string();
            entry["signers"] = report->distinct_signers.size();
            log_info("bundle_received", {{"bundle", bundle}, {"channel", ev.info.channel}, {"version", ev.info.version},
                                         {"carrier", a.carrier},
                                         {"bytes", ev.info.archive_bytes}, {"path", target},
                                         {"signers", report->distinct_signers.size()},
                                         {"digest_seconds", secs(started, digested)},
                                         {"verify_seconds", secs(digested, verified)},
                                         {"deliver_seconds", secs(verified, SteadyClock::now())}});
            {
                std::lock_guard lock(mutex);
                ++bundles_delivered;
            }
            remember(delivered, entry);
            if (imports) imports->on_delivered(target);
        } else {
            // The archive is exactly what was sent (its SHA-256 matched) and it is
            // refused: keep it for the record and do not assemble it again.
            fs::path target = refused_dir / (bundle + "-" + std::to_string(files::random_u64() % 1000000) + ".tar");
            auto moved = files::move_no_replace(*path, target);
            std::ofstream(target.string() + ".reason") << refusal << "\n";
            if (auto ok = from.mark_delivered(ev.key); !ok) log_error("refusal_not_recorded", {{"error", ok.error().message}});
            entry["refused"] = refusal;
            entry["path"] = moved ? target.string() : std::string{};
            note("bundle_refused", bundle, ev.info.channel, "refused",
                 {{"transfer", ev.transfer}, {"version", ev.info.version}, {"error", refusal}, {"kept_as", entry["path"]},
                  {"carrier", a.carrier}});
            log_error("bundle_refused", {{"bundle", bundle}, {"channel", ev.info.channel}, {"error", refusal},
                                         {"kept_as", target}});
            {
                std::lock_guard lock(mutex);
                ++bundles_refused;
            }
            remember(delivered, entry);
        }
        if (diode) boost::asio::post(io, [this, key = ev.key] { reassembler.on_finalized(key, true); });
        if (entry.contains("refused")) return {{"refused", entry["refused"]}, {"kept_as", entry["path"]}};
        return {{"delivered", entry["path"]}};
    }

    /// Runs finalize(a) again in 30 s (an I/O error or a full disk in incoming/).
    void retry_later(const Arrival& a) {
        boost::asio::post(io, [this, a] {
            if (stopped) return;
            auto timer = std::make_shared<boost::asio::steady_timer>(io, std::chrono::seconds(30));
            timer->async_wait([this, timer, a](const boost::system::error_code& ec) {
                if (ec || stopped) return;
                boost::asio::post(finalizer, [this, a] { (void)finalize(a); });
            });
        });
    }

    void schedule_tick() {
        tick_timer.expires_after(kTick);
        tick_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec || stopped) return;
            fault::stall_point();  // tests only (SLUICE_FAULT_STALL_AFTER): blocks the io thread
            auto now = SteadyClock::now();
            alive_ns = now.time_since_epoch().count();
            reassembler.on_tick(now);
            monitor.on_tick(now);
            handle_events(now);
            if (now - last_sweep >= std::chrono::hours(1)) {
                last_sweep = now;
                boost::asio::post(finalizer, [this] {
                    if (auto n = store.sweep(kStagingMaxAge)) log_notice("staging_expired", {{"archives", n}});
                    if (auto n = media->sweep()) log_notice("media_staging_expired", {{"archives", n}});
                });
            }
            audit->tick();
            media->tick(now);
            if (imports && now - last_import_retry >= std::chrono::minutes(1)) {
                last_import_retry = now;
                imports->retry();
            }
            if (now - last_metrics >= std::chrono::seconds(1)) {
                last_metrics = now;
                write_metrics();
            }
            schedule_tick();
        });
    }

    json status_json() const {
        const auto& st = reassembler.stats();
        auto udp_stats = udp->stats();
        const auto& link = monitor.state();
        auto now = SteadyClock::now();
        json s;
        s["daemon"] = "receiver";
        auto age = [&](const std::optional<SteadyClock::time_point>& t) -> json {
            if (!t) return nullptr;
            return std::chrono::duration<double>(now - *t).count();
        };
        s["link"] = {{"up", link.up},
                     {"lanes", config.link.lanes},
                     {"mac", link_key.has_value()},
                     {"gro", udp->gro_active()},
                     {"receive_buffer", udp->effective_rcvbuf()},
                     {"receive_buffer_warning", udp->warning()},
                     {"seconds_since_frame", age(link.last_frame)},
                     {"seconds_since_heartbeat", age(link.last_heartbeat)},
                     {"sender_session", link.session},
                     {"sender_frames_sent", link.last.frames_sent},
                     {"sender_queue_length", link.last.queue_length},
                     {"sender_rate_bits_per_s", link.last.rate_bits_per_s},
                     {"heartbeats", link.heartbeats},
                     {"heartbeats_lost", link.heartbeats_lost},
                     {"dead_periods", link.dead_periods},
                     {"transfers_missed", link.transfers_missed}};
        json errors = json::object();
        for (int e = 1; e <= static_cast<int>(transfer::FrameError::unexpected_mac); ++e) {
            auto fe = static_cast<transfer::FrameError>(e);
            errors[std::string(transfer::describe(fe))] = st.frame_error(fe);
        }
        s["counters"] = {{"datagrams", udp_stats.datagrams},
                         {"bytes", udp_stats.bytes},
                         {"kernel_drops", udp_stats.kernel_drops},
                         {"frame_errors", errors},
                         {"checksum_failures", st.frame_error(transfer::FrameError::bad_checksum)},
                         {"mac_failures", st.mac_failures()},
                         {"symbols", st.symbol_frames},
                         {"symbols_rebuilt", st.symbols_rebuilt},
                         {"symbols_missing", st.symbols_missing},
                         {"blocks_direct", st.blocks_direct},
                         {"blocks_recovered", st.blocks_recovered},
                         {"blocks_abandoned", st.blocks_abandoned},
                         {"transfers_started", st.transfers_started},
                         {"transfers_assembled", st.transfers_assembled},
                         {"transfers_incomplete", st.transfers_incomplete},
                         {"store_errors", st.store_errors},
                         {"buffered_bytes", reassembler.buffered_bytes()}};
        json flight = json::array();
        for (const auto& t : reassembler.in_flight()) {
            flight.push_back({{"bundle", transfer::to_hex(t.info.bundle_id)},
                              {"transfer", t.transfer},
                              {"channel", t.info.channel},
                              {"version", t.info.version},
                              {"bytes", t.info.archive_bytes},
                              {"pass", t.info.pass},
                              {"passes", t.info.passes},
                              {"blocks_held", t.blocks_held},
                              {"blocks", t.blocks_total},
                              {"progress", t.blocks_total ? double(t.blocks_held) / double(t.blocks_total) : 0.0}});
        }
        s["transfers"] = flight;
        std::lock_guard lock(mutex);
        s["counters"]["bundles_delivered"] = bundles_delivered;
        s["counters"]["bundles_refused"] = bundles_refused;
        s["received"] = json(std::vector<json>(delivered.rbegin(), delivered.rend()));
        s["alarms"] = json(std::vector<json>(alarms.rbegin(), alarms.rend()));
        s["imports"] = imports ? imports->summary() : json(nullptr);
        s["media"] = media->summary();
        s["audit"] = audit->status();
        return s;
    }

    void write_metrics() {
        std::optional<fs::path> path;
        {
            std::lock_guard lock(mutex);
            path = config.metrics_file;
        }
        if (!path) return;
        const auto& st = reassembler.stats();
        auto u = udp->stats();
        const auto& link = monitor.state();
        std::uint64_t delivered_n = 0, refused_n = 0;
        {
            std::lock_guard lock(mutex);
            delivered_n = bundles_delivered;
            refused_n = bundles_refused;
        }
        using MT = MetricType;
        std::vector<MetricSample> samples = {
            {"sluice_receiver_datagrams_total", "Datagrams received.", MT::counter, {}, double(u.datagrams)},
            {"sluice_receiver_bytes_total", "Datagram bytes received.", MT::counter, {}, double(u.bytes)},
            {"sluice_receiver_kernel_drops_total", "Datagrams the kernel dropped on a full receive buffer.", MT::counter, {}, double(u.kernel_drops)},
            {"sluice_receiver_checksum_failures_total", "Frames dropped for a checksum mismatch.", MT::counter, {}, double(st.frame_error(transfer::FrameError::bad_checksum))},
            {"sluice_receiver_mac_failures_total", "Frames dropped for a missing, wrong or unexpected MAC.", MT::counter, {}, double(st.mac_failures())},
            {"sluice_receiver_symbols_rebuilt_total", "Data symbols rebuilt from parity.", MT::counter, {}, double(st.symbols_rebuilt)},
            {"sluice_receiver_symbols_missing_total", "Symbols short in blocks given up for a pass.", MT::counter, {}, double(st.symbols_missing)},
            {"sluice_receiver_blocks_recovered_total", "Blocks rebuilt with parity.", MT::counter, {}, double(st.blocks_recovered)},
            {"sluice_receiver_transfers_incomplete_total", "Transfers that stopped short.", MT::counter, {}, double(st.transfers_incomplete)},
            {"sluice_receiver_bundles_delivered_total", "Bundles verified and delivered to incoming.", MT::counter, {}, double(delivered_n)},
            {"sluice_receiver_bundles_refused_total", "Bundles assembled and refused.", MT::counter, {}, double(refused_n)},
            {"sluice_receiver_heartbeats_lost_total", "Sender heartbeats missing from the sequence.", MT::counter, {}, double(link.heartbeats_lost)},
            {"sluice_receiver_transfers_missed_total", "Transfers the sender announced and none of which arrived.", MT::counter, {}, double(link.transfers_missed)},
            {"sluice_receiver_link_up", "1 while frames arrive, 0 after dead_link_after of silence.", MT::gauge, {}, link.up ? 1.0 : 0.0},
            {"sluice_receiver_transfers_in_flight", "Transfers being reassembled.", MT::gauge, {}, double(reassembler.in_flight().size())},
        };
        files::write_metrics(path, samples);
    }
};

ReceiverService::ReceiverService(boost::asio::io_context& io, ReceiverConfig config)
    : impl_(std::make_unique<Impl>(io, std::move(config))) {
    auto* impl = impl_.get();
    impl->udp = std::make_unique<diode::UdpReceiver>(
        io, receiver_options(impl->config),
        [impl](std::span<const std::span<const std::byte>> datagrams) { impl->on_batch(datagrams); });
    if (!impl->udp->warning().empty()) log_warning("receive_buffer_capped", {{"detail", impl->udp->warning()}});
    impl->control = std::make_unique<ControlServer>(
        io, impl->config.control_socket,
        AsyncControlHandler([impl](const json& request, const Peer& peer, ControlResponder respond) {
            const std::string command = request.at("command").get<std::string>();
            RolesConfig roles;
            {
                std::lock_guard lock(impl->mutex);
                roles = impl->config.roles;
            }
            if (command == "status") {
                files::require_any_role(peer, roles);
                return respond(impl->status_json());
            }
            if (command == "audit") {
                require_role(peer, Role::auditor, roles);
                return impl->audit->serve(request, std::move(respond));
            }
            if (MediaIntake::handles(command)) return impl->media->handle(request, peer, roles, std::move(respond));
            if (ImportService::handles(command)) {
                if (!impl->imports)
                    throw std::runtime_error("this receiver does not import (no [import] section in " +
                                             impl->config.config_file.string() + "); see docs/import.md");
                return impl->imports->handle(request, peer, roles, std::move(respond));
            }
            throw std::runtime_error("unknown command \"" + command +
                                     "\" (the receiver daemon answers status, pending, show, approve, reject, "
                                     "rescan, releases, rollback, audit, media_import, media_status)");
        }));
    impl->schedule_tick();
    if (impl->imports) impl->imports->resume();
    log_info("receiver_started", {{"lanes", impl->config.link.lanes.size()},
                                  {"port", impl->udp->local_port(0)},
                                  {"receive_buffer", impl->udp->effective_rcvbuf()},
                                  {"mac", impl->link_key.has_value()},
                                  {"import", impl->imports != nullptr},
                                  {"control_socket", impl->config.control_socket}});
}

ReceiverService::~ReceiverService() { stop(); }

void ReceiverService::stop() {
    if (impl_->stopped) return;
    impl_->stopped = true;
    impl_->tick_timer.cancel();
    if (impl_->udp) impl_->udp->stop();
    if (impl_->control) impl_->control->stop();
    impl_->media->stop();     // a volume being read finishes (and is delivered if it completes the archive)
    impl_->finalizer.join();  // a delivery in flight completes
    if (impl_->imports) impl_->imports->stop();  // a scan in flight is cut short and resumed on the next start
    // Checkpoint everything held so far (as if every transfer went idle now).
    impl_->reassembler.on_tick(SteadyClock::now() + std::chrono::hours(24 * 365));
    for (auto& ev : impl_->reassembler.drain()) (void)ev;  // incomplete reports of a shutdown are not news
    impl_->store.flush();
    impl_->write_metrics();
    impl_->audit->stop_serving();
    impl_->audit->checkpoint("shutdown");
}

void ReceiverService::reload() {
    ReceiverConfig fresh = load_receiver_config(impl_->config.config_file);
    auto trust = std::make_shared<bundle::TrustStore>(files::load_trust(fresh.trusted_keys));
    {
        std::lock_guard lock(impl_->mutex);
        impl_->trust = std::move(trust);
        impl_->config.trusted_keys = fresh.trusted_keys;
        impl_->config.min_signers = fresh.min_signers;
        impl_->config.roles = fresh.roles;
        impl_->config.metrics_file = fresh.metrics_file;
    }
    impl_->media->set_config(fresh.media);
    if (impl_->imports && fresh.import) {
        impl_->imports->set_policy(fresh.import->policy);
        log_info("policy_reloaded", {{"file", fresh.import->policy_file}, {"channels", fresh.import->policy->channels.size()}});
    }
    if (fresh.import.has_value() != (impl_->imports != nullptr)) {
        log_warning("config_change_needs_restart", {{"section", "import"}});
    }
    log_info("config_reloaded", {{"file", impl_->config.config_file}});
    if (fresh.link.lanes != impl_->config.link.lanes || fresh.state_dir != impl_->config.state_dir) {
        log_warning("config_change_needs_restart", {{"section", "link or paths"}});
    }
}

bool ReceiverService::healthy(std::chrono::milliseconds within) const {
    auto alive = SteadyClock::time_point(SteadyClock::duration(impl_->alive_ns.load()));
    return SteadyClock::now() - alive < within;
}

json ReceiverService::status() const { return impl_->status_json(); }

std::string ReceiverService::status_line() const {
    const auto& link = impl_->monitor.state();
    std::lock_guard lock(impl_->mutex);
    return std::string(link.up ? "link up" : "link down") + ", " + std::to_string(impl_->reassembler.in_flight().size()) +
           " in flight, " + std::to_string(impl_->bundles_delivered) + " received";
}

std::uint16_t ReceiverService::local_port(std::size_t lane) const { return impl_->udp->local_port(lane); }

}  // namespace sluice::daemon
