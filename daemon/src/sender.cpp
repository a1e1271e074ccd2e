#include "sluice/daemon/sender.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "audit_trail.hpp"
#include "fault_injection.hpp"
#include "files.hpp"
#include "sluice/bundle/bundle.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/daemon/control.hpp"
#include "sluice/daemon/log.hpp"
#include "sluice/daemon/metrics.hpp"
#include "sluice/diode/endpoint.hpp"
#include "sluice/diode/udp_sender.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/encoder.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::daemon {
namespace {

using SteadyClock = std::chrono::steady_clock;
constexpr std::size_t kMaxBatchFrames = 256;
/// A batch is paced as a whole by UdpSender::send, so it is sized to take at
/// most this long on the wire: the send thread then checks for SIGTERM, sends
/// heartbeats and proves it is alive at least this often, whatever the rate.
constexpr auto kBatchWireTime = std::chrono::milliseconds(100);
/// While idle, the send thread wakes this often to prove it is alive (the watchdog).
constexpr auto kIdleAliveEvery = std::chrono::seconds(1);

std::size_t batch_frames(std::uint64_t rate_bits_per_s, std::size_t frame_bytes) {
    const double frame_bits = static_cast<double>(diode::wire_bytes(frame_bytes, false)) * 8;
    const double fit = static_cast<double>(rate_bits_per_s) * std::chrono::duration<double>(kBatchWireTime).count() / frame_bits;
    return std::clamp<std::size_t>(static_cast<std::size_t>(fit), 1, kMaxBatchFrames);
}
constexpr std::size_t kRecentKept = transfer::kMaxRecentTransfers;

/// One bundle in the queue, persisted as queue/<id>.json.
struct Job {
    std::uint64_t id = 0;
    std::uint64_t transfer = 0;
    std::string bundle_id;
    fs::path archive;
    std::uint64_t archive_bytes = 0;
    std::string archive_sha256;
    std::string channel;
    std::string version;
    bool high = false;
    unsigned passes = 1;
    unsigned passes_done = 0;
    std::string submitted_by;
    std::string submitted_at;
    std::uint64_t order = 0;  // carousel position within the priority class

    [[nodiscard]] json to_json() const {
        return {{"id", id},
                {"transfer", transfer},
                {"bundle", bundle_id},
                {"archive", archive.string()},
                {"archive_bytes", archive_bytes},
                {"archive_sha256", archive_sha256},
                {"channel", channel},
                {"version", version},
                {"priority", high ? "high" : "normal"},
                {"passes", passes},
                {"passes_done", passes_done},
                {"submitted_by", submitted_by},
                {"submitted_at", submitted_at},
                {"order", order}};
    }
    static Job from_json(const json& j) {  // throws on a malformed file (caught at load)
        Job job;
        job.id = j.at("id").get<std::uint64_t>();
        job.transfer = j.at("transfer").get<std::uint64_t>();
        job.bundle_id = j.at("bundle").get<std::string>();
        job.archive = j.at("archive").get<std::string>();
        job.archive_bytes = j.at("archive_bytes").get<std::uint64_t>();
        job.archive_sha256 = j.at("archive_sha256").get<std::string>();
        job.channel = j.at("channel").get<std::string>();
        job.version = j.at("version").get<std::string>();
        job.high = j.at("priority").get<std::string>() == "high";
        job.passes = j.at("passes").get<unsigned>();
        job.passes_done = j.at("passes_done").get<unsigned>();
        job.submitted_by = j.at("submitted_by").get<std::string>();
        job.submitted_at = j.at("submitted_at").get<std::string>();
        job.order = j.at("order").get<std::uint64_t>();
        if (!transfer::sha256_from_hex(job.bundle_id) || !transfer::sha256_from_hex(job.archive_sha256)) {
            throw std::runtime_error("bundle or archive_sha256 is not a SHA-256");
        }
        if (job.passes == 0 || job.passes_done >= job.passes) throw std::runtime_error("passes out of range");
        return job;
    }
};

struct Sent {
    Job job;
    std::string finished_at;
};

}  // namespace

struct SenderService::Impl {
    boost::asio::io_context& io;
    SenderConfig config;
    std::shared_ptr<const bundle::TrustStore> trust;
    std::uint64_t session = files::random_u64();
    std::optional<transfer::LinkKey> link_key;
    diode::UdpSender sender;
    fs::path queue_dir, outbox_dir, failed_dir;

    mutable std::mutex mutex;
    std::condition_variable wake;
    std::map<std::uint64_t, Job> jobs;
    std::deque<Sent> recent;
    std::uint64_t next_id = 1;
    std::uint64_t next_order = 1;
    bool stopping = false;

    // progress of the pass being sent (send thread writes, others read)
    std::atomic<std::uint64_t> current_job{0};
    std::atomic<std::uint64_t> current_frames{0};
    std::atomic<std::uint64_t> current_total{0};
    std::atomic<std::uint64_t> passes_completed{0};
    std::atomic<std::uint64_t> heartbeats_sent{0};
    std::atomic<std::uint64_t> heartbeat_sequence{0};
    std::atomic<std::int64_t> alive_ns{SteadyClock::now().time_since_epoch().count()};
    std::atomic<std::int64_t> busy_until_ns{0};  // a paced send in progress may last until then

    std::unique_ptr<AuditTrail> audit;
    std::pair<std::uint64_t, std::uint32_t> pass_recorded{0, 0};  // send thread: (job, pass) whose pass_started is logged
    boost::asio::thread_pool intake_pool{1};
    boost::asio::thread_pool media_pool{1};  // media writes: long, one at a time, never in the way of pushes
    std::unique_ptr<ControlServer> control;
    boost::asio::steady_timer tick_timer{io};
    std::thread send_thread;

    Impl(boost::asio::io_context& io_, SenderConfig cfg)
        : io(io_),
          config(std::move(cfg)),
          trust(std::make_shared<bundle::TrustStore>(files::load_trust(config.trusted_keys))),
          link_key(files::load_link_key(config.link.link_key_file)),
          sender(diode::SenderOptions{files::parse_lanes(config.link.lanes), config.link.rate_bits_per_s, 256 * 1024, true,
                                      4u << 20}) {
        queue_dir = config.state_dir / "queue";
        outbox_dir = config.state_dir / "outbox";
        failed_dir = config.state_dir / "failed";
        std::vector<fs::path> dirs{config.state_dir, queue_dir, outbox_dir, failed_dir, config.spool_dir};
        dirs.push_back(config.control_socket.parent_path());
        if (config.metrics_file) dirs.push_back(config.metrics_file->parent_path());
        for (const auto& d : dirs) {
            std::error_code ec;
            fs::create_directories(d, ec);
            if (ec) throw std::runtime_error("cannot create " + d.string() + ": " + ec.message());
        }
        audit = std::make_unique<AuditTrail>(config.audit, config.state_dir, "sender");
        load_queue();
    }

    void load_queue() {
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(outbox_dir, ec)) {
            if (entry.path().filename().string().starts_with(".intake-")) fs::remove(entry.path(), ec);
        }
        for (const auto& entry : fs::directory_iterator(queue_dir, ec)) {
            if (entry.path().extension() != ".json") continue;
            try {
                std::ifstream in(entry.path());
                Job job = Job::from_json(json::parse(in));
                if (!fs::exists(job.archive)) throw std::runtime_error("its archive " + job.archive.string() + " is gone");
                next_id = std::max(next_id, job.id + 1);
                next_order = std::max(next_order, job.order + 1);
                jobs.emplace(job.id, std::move(job));
            } catch (const std::exception& e) {
                fs::path aside = failed_dir / entry.path().filename();
                fs::rename(entry.path(), aside, ec);
                log_error("queue_entry_unreadable", {{"file", entry.path()}, {"error", e.what()}, {"moved_to", aside}});
            }
        }
        log_info("queue_loaded", {{"jobs", jobs.size()}});
    }

    Result<void> persist(const Job& job) {
        return files::write_durably(queue_dir / (std::to_string(job.id) + ".json"), job.to_json().dump(2) + "\n");
    }

    void forget(const Job& job) {
        std::error_code ec;
        fs::remove(queue_dir / (std::to_string(job.id) + ".json"), ec);
        fs::remove(job.archive, ec);
        files::sync_dir(queue_dir);
    }

    /// An observation for the audit log: kept and written later if the log cannot take it now.
    void note(std::string event, const Job& job, std::string outcome, json details, std::string actor = "system") {
        (void)audit->record({std::move(event), job.bundle_id, job.channel, std::move(actor), std::move(outcome),
                             std::move(details)});
    }

    // ---- intake (intake thread) -------------------------------------------------

    /// A bundle copied (or packed) into the daemon's own file and verified.
    struct Prepared {
        files::Copied digest;
        bundle::VerifyReport report;
    };

    /// Copies (or packs) `source` to `tmp` and verifies the copy with the
    /// current trust store; errors name the caller's file, not the copy.
    Result<Prepared> prepare(const fs::path& source, const fs::path& tmp) {
        std::error_code ec;
        auto st = fs::symlink_status(source, ec);
        if (ec) return fail("cannot read " + source.string() + ": " + ec.message());
        Result<files::Copied> digest = fail("not read");
        if (fs::is_directory(st)) {
            auto packed = bundle::pack_bag(source, tmp, bundle::Limits{}, true);
            if (!packed) return packed.error().within(source.string());
            digest = files::hash_file(tmp);
        } else if (!fs::is_regular_file(st)) {
            return fail(source.string() + " is neither a bundle archive nor a bag directory");
        } else {
            // Copy first, then verify the copy: the caller's file may change afterwards.
            digest = files::copy_hashed(source, tmp);
        }
        if (!digest) return digest.error();
        std::shared_ptr<const bundle::TrustStore> trust_now;
        unsigned min_signers = 0;
        {
            std::lock_guard lock(mutex);
            trust_now = trust;
            min_signers = config.min_signers;
        }
        bundle::VerifyOptions v;
        v.trust = trust_now.get();
        v.min_signers = min_signers;
        auto report = bundle::verify_archive(tmp, v);
        if (!report) {
            std::string message = report.error().message;
            for (auto at = message.find(tmp.string()); at != std::string::npos; at = message.find(tmp.string())) {
                message.replace(at, tmp.string().size(), source.string());
            }
            return fail("refused " + source.string() + ": " + message);
        }
        return Prepared{*digest, std::move(*report)};
    }

    /// bundle_submitted and bundle_verified, as both carriers record them.
    std::vector<audit::Event> intake_events(const bundle::VerifyReport& report, const files::Copied& digest,
                                            const fs::path& source, const std::string& who, const std::string& carrier) {
        const std::string bundle = report.bundle_id;
        const std::string& channel = report.release.channel;
        // release.json as the receiver will record it at quarantine: the same canonical form.
        json release = json::parse(bundle::format_release(report.release));
        json signer_names = json::array();
        json signer_keys = json::array();
        for (const auto& sgn : report.signatures) {
            signer_names.push_back(sgn.trusted_key);
            signer_keys.push_back(sgn.fingerprint);
        }
        std::vector<audit::Event> events;
        events.push_back({"bundle_submitted", bundle, channel, who, "ok",
                          {{"version", report.release.version}, {"path", source.string()}, {"release", release},
                           {"signers", signer_names}, {"carrier", carrier}}});
        events.push_back({"bundle_verified", bundle, channel, "system", "ok",
                          {{"version", report.release.version}, {"signers", signer_names}, {"signer_keys", signer_keys},
                           {"archive_sha256", transfer::to_hex(digest.sha256)},
                           {"bytes", digest.bytes}}});
        return events;
    }

    /// For a push with "once" (a release train): the answer when the bundle at
    /// `source` is in the queue or was sent before, found without copying or
    /// verifying it again; nullopt to go ahead with the intake. A bundle that
    /// was queued but never sent (its sending failed) goes ahead again.
    std::optional<Result<json>> pushed_before(const fs::path& source, bool high, const std::string& who) {
        auto summary = bundle::inspect_bundle(source);
        if (!summary) return std::nullopt;  // the intake names what is wrong with it
        const std::string& id = summary->bundle_id;
        {
            std::lock_guard lock(mutex);
            if (auto queued = answer_if_queued(id, high, who)) return queued;
        }
        (void)audit->log().flush();  // a bundle_sent still in the backlog counts too
        auto events = audit->log().bundle_events(id);
        if (!events) return std::nullopt;  // sending twice is the safe side
        const audit::Record* sent = nullptr;
        for (const auto& r : *events) {
            if (r.event == "bundle_sent") sent = &r;
        }
        if (sent == nullptr) return std::nullopt;
        json out{{"bundle", id},     {"channel", sent->channel}, {"already_queued", false},
                 {"already_sent", true}, {"sent_at", sent->time}};
        if (summary->release) out["version"] = summary->release->version;
        log_info("bundle_already_sent", {{"bundle", id}, {"sent_at", sent->time}, {"by", who}});
        return Result<json>(std::move(out));
    }

    /// With `mutex` held: the answer to a push of `bundle` when it is already
    /// queued (raised to high priority if the push asks for it), else nullopt.
    std::optional<Result<json>> answer_if_queued(const std::string& bundle, bool high, const std::string& who) {
        for (auto& [id, job] : jobs) {
            if (job.bundle_id != bundle) continue;
            if (high && !job.high) {
                job.high = true;
                if (auto ok = persist(job); !ok) return Result<json>(ok.error());
            }
            log_info("bundle_already_queued", {{"bundle", job.bundle_id}, {"job", job.id}, {"by", who}});
            json out = job.to_json();
            out["already_queued"] = true;
            return Result<json>(std::move(out));
        }
        return std::nullopt;
    }

    /// Copies (or packs) `source` into the outbox, verifies it, queues it.
    Result<json> intake(const fs::path& source, bool high, const std::string& who) {
        fs::path tmp = outbox_dir / (".intake-" + std::to_string(files::random_u64()) + ".tar");
        files::RemoveOnExit cleanup{tmp};
        std::error_code ec;
        auto prepared = prepare(source, tmp);
        if (!prepared) return prepared.error();
        auto* report = &prepared->report;
        auto* digest = &prepared->digest;

        std::lock_guard lock(mutex);
        if (auto queued = answer_if_queued(report->bundle_id, high, who)) return std::move(*queued);
        Job job;
        job.id = next_id;
        job.transfer = files::random_u64();
        job.bundle_id = report->bundle_id;
        job.archive = outbox_dir / (report->bundle_id + ".tar");
        job.archive_bytes = digest->bytes;
        job.archive_sha256 = transfer::to_hex(digest->sha256);
        job.channel = report->release.channel;
        job.version = report->release.version;
        job.high = high;
        job.passes = config.passes;
        job.submitted_by = who;
        job.submitted_at = files::now_rfc3339();
        job.order = next_order;
        // Submitted, verified and queued are in the audit log before the job
        // exists: if the log cannot take them, the push is refused.
        auto events = intake_events(*report, *digest, source, who, "diode");
        events.push_back({"bundle_queued", job.bundle_id, job.channel, "system", "ok",
                          {{"job", job.id}, {"transfer", job.transfer}, {"priority", high ? "high" : "normal"},
                           {"passes", job.passes}}});
        if (auto ok = audit->log().append_all(std::move(events)); !ok) {
            log_critical("audit_write_failed", {{"event", "bundle_submitted"}, {"bundle", job.bundle_id}, {"error", ok.error().message}});
            return fail("push refused: it could not be recorded in the audit log (" + ok.error().message + ")");
        }
        ++next_id;
        ++next_order;
        fs::rename(tmp, job.archive, ec);
        if (ec) {
            note("bundle_queue_failed", job, "error", {{"error", ec.message()}});
            return fail("cannot move the archive into " + job.archive.string() + ": " + ec.message());
        }
        cleanup.p.clear();
        if (auto ok = persist(job); !ok) {
            fs::remove(job.archive, ec);
            note("bundle_queue_failed", job, "error", {{"error", ok.error().message}});
            return ok.error();
        }
        log_info("bundle_queued", {{"bundle", job.bundle_id},
                                   {"channel", job.channel},
                                   {"version", job.version},
                                   {"bytes", job.archive_bytes},
                                   {"priority", high ? "high" : "normal"},
                                   {"passes", job.passes},
                                   {"by", who},
                                   {"signers", report->distinct_signers.size()}});
        json out = job.to_json();
        out["already_queued"] = false;
        jobs.emplace(job.id, job);
        wake.notify_all();
        return out;
    }

    // ---- removable media (media thread) --------------------------------------------

    struct MediaRequest {
        fs::path source;
        std::vector<fs::path> targets;
        std::uint64_t volume_bytes = 0;  // 0: the first target's free space
        unsigned parity = 0;             // 0: [media] parity
        unsigned first_volume = 1;
        std::optional<media::MediaKey> key;  // given with the request; else [media] key
    };

    /// Verifies the bundle like a push, records it, writes the volumes (each
    /// read back and checked) and records every volume written.
    Result<json> write_media(const MediaRequest& m, const std::string& who) {
        fs::path tmp = outbox_dir / (".media-" + std::to_string(files::random_u64()) + ".tar");
        files::RemoveOnExit cleanup{tmp};
        json targets = json::array();
        for (const auto& t : m.targets) targets.push_back(t.string());
        auto refuse = [&](const Error& e) -> Error {
            log_warning("media_write_refused", {{"path", m.source}, {"by", who}, {"error", e.message}});
            (void)audit->record({"media_write_refused", "", "", who, "refused",
                                 {{"path", m.source.string()}, {"targets", targets}, {"error", e.message}}});
            return e;
        };
        // A mistyped mount point is refused before anything is recorded as started.
        for (const auto& t : m.targets) {
            std::error_code ec;
            if (!fs::is_directory(t, ec)) {
                return refuse(Error{t.string() + " is not a directory (mount the medium and name its mount point)"});
            }
        }
        auto prepared = prepare(m.source, tmp);
        if (!prepared) return refuse(prepared.error());
        const auto& report = prepared->report;
        std::optional<media::MediaKey> key = m.key;
        unsigned parity = m.parity;
        {
            std::lock_guard lock(mutex);
            if (!key && config.media.key_file) {
                auto loaded = media::load_key(*config.media.key_file);
                if (!loaded) return refuse(loaded.error());
                key = std::move(*loaded);
            }
            if (parity == 0) parity = config.media.parity_percent;
        }
        media::WriteRequest req;
        req.archive = tmp;
        req.info.bundle_id = transfer::sha256_from_hex(report.bundle_id).value();
        req.info.archive_bytes = prepared->digest.bytes;
        req.info.archive_sha256 = prepared->digest.sha256;
        req.info.channel = report.release.channel;
        req.info.version = report.release.version;
        req.layout.parity_percent = parity;
        req.layout.volume_bytes = m.volume_bytes;
        req.key = key;
        req.targets = m.targets;
        req.first_volume = m.first_volume;
        req.written_at = files::now_rfc3339();
        req.written_by = who;
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        req.host = host;
        const std::string& bundle_id = report.bundle_id;
        const std::string& channel = report.release.channel;

        // Submitted, verified and the write itself are in the audit log before
        // anything touches the medium; the medium then carries them (hop record).
        auto events = intake_events(report, prepared->digest, m.source, who, "media");
        events.push_back({"media_write_started", bundle_id, channel, who, "ok",
                          {{"version", report.release.version}, {"targets", targets}, {"first_volume", m.first_volume},
                           {"volume_bytes", m.volume_bytes}, {"parity_percent", parity}, {"encrypted", key.has_value()}}});
        if (auto ok = audit->log().append_all(std::move(events)); !ok) {
            log_critical("audit_write_failed", {{"event", "media_write_started"}, {"bundle", bundle_id}, {"error", ok.error().message}});
            return fail("media write refused: it could not be recorded in the audit log (" + ok.error().message + ")");
        }
        if (auto hops = audit->log().hop_record(bundle_id); hops) {
            req.hops = std::move(*hops);
        } else {
            log_warning("hop_record_not_written", {{"bundle", bundle_id}, {"error", hops.error().message}});
        }
        auto written = media::write_volumes(req);
        if (!written) {
            log_error("media_write_failed", {{"bundle", bundle_id}, {"error", written.error().message}});
            (void)audit->record({"media_write_failed", bundle_id, channel, who, "error",
                                 {{"targets", targets}, {"error", written.error().message}}});
            return written.error();
        }
        const auto& layout = written->layout;
        json out{{"bundle", bundle_id},
                 {"channel", channel},
                 {"version", report.release.version},
                 {"archive_bytes", prepared->digest.bytes},
                 {"set", transfer::to_hex(written->set_id)},
                 {"volumes", written->volumes},
                 {"volume_bytes", written->volume_bytes},
                 {"encrypted", key.has_value()},
                 {"layout", {{"data_symbols", layout.fec.data_symbols}, {"parity_symbols", layout.fec.parity_symbols},
                             {"symbol_bytes", layout.fec.symbol_bytes}, {"stripes", layout.stripes}, {"run", layout.run},
                             {"parity_percent", parity}}},
                 {"written", json::array()}};
        for (const auto& v : written->written) {
            json entry{{"volume", v.volume},
                       {"directory", v.directory.string()},
                       {"blocks", json::array({v.first_block, v.end_block})},
                       {"bytes", v.bytes},
                       {"segments", v.segments},
                       {"write_seconds", v.write_seconds},
                       {"verify_seconds", v.verify_seconds}};
            (void)audit->record({"media_written", bundle_id, channel, who, "ok",
                                 {{"volume", v.volume}, {"volumes", written->volumes}, {"directory", v.directory.string()},
                                  {"set", transfer::to_hex(written->set_id)}, {"bytes", v.bytes}, {"segments", v.segments},
                                  {"encrypted", key.has_value()}, {"verified", true}}});
            log_info("media_written", {{"bundle", bundle_id}, {"volume", v.volume}, {"volumes", written->volumes},
                                       {"directory", v.directory}, {"bytes", v.bytes},
                                       {"write_seconds", v.write_seconds}, {"verify_seconds", v.verify_seconds}});
            out["written"].push_back(entry);
        }
        return out;
    }

    void scan_spool() {
        {
            std::lock_guard lock(mutex);
            if (stopping) return;
        }
        std::error_code ec;
        std::vector<fs::path> found;
        for (const auto& entry : fs::directory_iterator(config.spool_dir, ec)) {
            auto name = entry.path().filename().string();
            if (name.starts_with(".") || !entry.is_regular_file(ec) || entry.is_symlink(ec)) continue;
            found.push_back(entry.path());
        }
        std::sort(found.begin(), found.end());
        for (const auto& path : found) {
            struct stat st {};
            std::string owner = "spool";
            if (::lstat(path.c_str(), &st) == 0) owner = "spool(uid " + std::to_string(st.st_uid) + ")";
            auto result = intake(path, false, owner);
            if (result) {
                fs::remove(path, ec);
                continue;
            }
            fs::path rejected = config.spool_dir / ".rejected";
            fs::create_directories(rejected, ec);
            fs::rename(path, rejected / path.filename(), ec);
            std::ofstream(rejected / (path.filename().string() + ".reason")) << result.error().message << "\n";
            log_error("spool_refused", {{"file", path}, {"error", result.error().message}, {"moved_to", rejected}});
            (void)audit->record({"push_refused", "", "", owner, "refused",
                                 {{"path", path.string()}, {"error", result.error().message}, {"moved_to", rejected.string()}}});
        }
    }

    // ---- control (io thread) ------------------------------------------------------

    void handle(const json& request, const Peer& peer, ControlResponder respond) {
        const std::string command = request.at("command").get<std::string>();
        RolesConfig roles;
        {
            std::lock_guard lock(mutex);
            roles = config.roles;
        }
        if (command == "push") {
            require_role(peer, Role::operator_, roles);
            if (!request.contains("path") || !request["path"].is_string()) throw std::runtime_error("push: \"path\" is required");
            fs::path path = request["path"].get<std::string>();
            if (!path.is_absolute()) throw std::runtime_error("push: the path must be absolute: " + path.string());
            std::string priority = request.value("priority", "normal");
            if (priority != "high" && priority != "normal") {
                throw std::runtime_error("push: priority must be high or normal, not " + priority);
            }
            if (request.contains("once") && !request["once"].is_boolean()) {
                throw std::runtime_error("push: \"once\" must be true or false");
            }
            const bool once = request.value("once", false);
            std::string who = peer.user;
            boost::asio::post(intake_pool, [this, path, priority, once, who, respond] {
                try {
                    const bool high = priority == "high";
                    std::optional<Result<json>> seen;
                    if (once) seen = pushed_before(path, high, who);
                    auto r = seen ? std::move(*seen) : intake(path, high, who);
                    if (r) {
                        respond(json{{"ok", true}, {"job", *r}});
                    } else {
                        log_warning("push_refused", {{"path", path}, {"by", who}, {"error", r.error().message}});
                        (void)audit->record({"push_refused", "", "", who, "refused",
                                             {{"path", path.string()}, {"error", r.error().message}}});
                        respond(json{{"ok", false}, {"error", r.error().message}});
                    }
                } catch (const std::exception& e) {
                    respond(json{{"ok", false}, {"error", e.what()}});
                }
            });
            return;
        }
        if (command == "media_write") {
            require_role(peer, Role::operator_, roles);
            MediaRequest m;
            auto path_of = [](const json& v, const char* what) {
                if (!v.is_string()) throw std::runtime_error(std::string("media_write: \"") + what + "\" must be a path");
                fs::path p = v.get<std::string>();
                if (!p.is_absolute()) throw std::runtime_error(std::string("media_write: ") + what + " must be absolute: " + p.string());
                return p;
            };
            m.source = path_of(request.value("path", json()), "path");
            if (!request.contains("to") || !request["to"].is_array() || request["to"].empty() || request["to"].size() > 64) {
                throw std::runtime_error("media_write: \"to\" lists 1 to 64 mount directories");
            }
            for (const auto& t : request["to"]) m.targets.push_back(path_of(t, "to"));
            m.volume_bytes = request.value("volume_bytes", std::uint64_t{0});
            m.parity = request.value("parity", 0u);
            m.first_volume = request.value("volume", 1u);
            if (m.parity > 200) throw std::runtime_error("media_write: parity is 1..200 %");
            if (m.first_volume == 0) throw std::runtime_error("media_write: volumes are numbered from 1");
            if (request.contains("key")) {
                auto decoded = bundle::base64_decode(request["key"].get<std::string>());
                if (!decoded || decoded->size() < media::kMinKeyBytes || decoded->size() > 4096) {
                    throw std::runtime_error("media_write: the key must be 32 to 4096 bytes");
                }
                m.key = media::MediaKey{std::vector<std::byte>(reinterpret_cast<const std::byte*>(decoded->data()),
                                                               reinterpret_cast<const std::byte*>(decoded->data()) + decoded->size())};
            }
            std::string who = peer.user;
            boost::asio::post(media_pool, [this, m = std::move(m), who, respond] {
                try {
                    auto r = write_media(m, who);
                    if (r) {
                        respond(json{{"ok", true}, {"media", *r}});
                    } else {
                        respond(json{{"ok", false}, {"error", r.error().message}});
                    }
                } catch (const std::exception& e) {
                    respond(json{{"ok", false}, {"error", e.what()}});
                }
            });
            return;
        }
        if (command == "queue") {
            files::require_any_role(peer, roles);
            respond(json{{"ok", true}, {"queue", queue_json()}});
            return;
        }
        if (command == "audit") {
            require_role(peer, Role::auditor, roles);
            audit->serve(request, std::move(respond));
            return;
        }
        if (command == "status") {
            files::require_any_role(peer, roles);
            json s = status_json();
            s["ok"] = true;
            respond(s);
            return;
        }
        throw std::runtime_error("unknown command \"" + command + "\" (the sender daemon answers push, media_write, queue, status, audit)");
    }

    // ---- sending (send thread) ----------------------------------------------------

    std::optional<Job> pick() {
        const Job* best = nullptr;
        for (const auto& [id, job] : jobs) {
            if (best == nullptr || job.high > best->high || (job.high == best->high && job.order < best->order)) best = &job;
        }
        return best ? std::optional<Job>(*best) : std::nullopt;
    }

    std::vector<transfer::RecentTransfer> recent_transfers() {
        std::vector<transfer::RecentTransfer> out;
        auto add = [&](const Job& job) {
            if (out.size() >= kRecentKept) return;
            transfer::RecentTransfer r;
            r.transfer = job.transfer;
            if (auto id = transfer::sha256_from_hex(job.bundle_id)) r.bundle_id = *id;
            r.archive_bytes = job.archive_bytes;
            r.passes_done = job.passes_done;
            r.passes = job.passes;
            out.push_back(r);
        };
        std::lock_guard lock(mutex);
        if (auto it = jobs.find(current_job.load()); it != jobs.end()) add(it->second);
        for (auto it = recent.rbegin(); it != recent.rend(); ++it) add(it->job);
        for (const auto& [id, job] : jobs) {
            if (job.passes_done > 0 && id != current_job.load()) add(job);
        }
        return out;
    }

    void send_heartbeat() {
        transfer::Heartbeat hb;
        hb.sequence = ++heartbeat_sequence;
        hb.interval_ms = static_cast<std::uint32_t>(config.link.heartbeat_interval.count());
        hb.rate_bits_per_s = config.link.rate_bits_per_s;
        auto st = sender.stats();
        hb.frames_sent = st.datagrams;
        hb.bytes_sent = st.bytes;
        hb.transfers_sent = passes_completed.load();
        {
            std::lock_guard lock(mutex);
            hb.queue_length = static_cast<std::uint32_t>(jobs.size());
        }
        hb.recent = recent_transfers();
        auto payload = transfer::encode_heartbeat(hb);
        std::vector<std::byte> frame(transfer::kMaxFrameBytes);
        auto n = transfer::encode_frame({transfer::FrameType::heartbeat, session, 0, 0, 0}, payload,
                                        link_key ? &*link_key : nullptr, frame);
        if (!n) return;
        std::span<const std::byte> one(frame.data(), *n);
        if (auto ok = sender.send(std::span(&one, 1)); !ok) {
            log_warning("heartbeat_not_sent", {{"error", ok.error().message}});
            return;
        }
        ++heartbeats_sent;
    }

    void mark_alive() {
        fault::stall_point();  // tests only (SLUICE_FAULT_STALL_AFTER); never called with `mutex` held
        alive_ns = SteadyClock::now().time_since_epoch().count();
    }

    /// Sends one pass of `job`. Returns false when it was interrupted.
    bool run_pass(const Job& job, SteadyClock::time_point& next_heartbeat) {
        int fd = ::open(job.archive.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != job.archive_bytes) {
            if (fd >= 0) ::close(fd);
            fail_job(job, "its archive " + job.archive.string() + " is missing or changed size");
            return true;
        }
        struct Closer {
            int fd;
            ~Closer() { ::close(fd); }
        } closer{fd};
        transfer::TransferInfo info;
        info.bundle_id = transfer::sha256_from_hex(job.bundle_id).value();
        info.archive_bytes = job.archive_bytes;
        info.archive_sha256 = transfer::sha256_from_hex(job.archive_sha256).value();
        info.fec = {config.link.data_symbols, config.link.parity_symbols, config.link.symbol_bytes};
        info.interleave = config.link.interleave;
        info.channel = job.channel;
        info.version = job.version;
        info.pass = job.passes_done + 1;
        info.passes = job.passes;
        if (auto ok = info.validate(); !ok) {
            fail_job(job, ok.error().message);
            return true;
        }
        auto reader = [fd](std::uint64_t offset, std::span<std::byte> out) -> Result<std::size_t> {
            for (;;) {
                ssize_t n = ::pread(fd, out.data(), out.size(), static_cast<off_t>(offset));
                if (n >= 0) return static_cast<std::size_t>(n);
                if (errno != EINTR) return fail(std::string("reading the archive: ") + std::strerror(errno));
            }
        };
        // The pass is in the audit log before it starts (else it waits), and the
        // bundle's events so far travel with it as a signed hop record.
        // (Once per pass: a pass restarted after a send error is the same pass.)
        if (pass_recorded != std::pair{job.id, info.pass}) {
            if (auto ok = audit->record_step({"pass_started", job.bundle_id, job.channel, "system", "ok",
                                              {{"transfer", job.transfer}, {"pass", info.pass}, {"passes", info.passes},
                                               {"version", job.version}}});
                !ok) {
                std::this_thread::sleep_for(std::chrono::seconds(1));
                return false;
            }
            pass_recorded = {job.id, info.pass};
        }
        std::vector<std::byte> annex;
        if (auto hops = audit->log().hop_record(job.bundle_id); hops) {
            const auto* p = reinterpret_cast<const std::byte*>(hops->data());
            annex.assign(p, p + hops->size());
        } else {
            log_warning("hop_record_not_sent", {{"bundle", job.bundle_id}, {"error", hops.error().message}});
        }
        transfer::Encoder encoder(info, session, job.transfer, reader, link_key ? &*link_key : nullptr, std::move(annex));
        const std::size_t per_batch = batch_frames(config.link.rate_bits_per_s, encoder.max_frame_bytes());
        transfer::FrameBatch batch(per_batch, encoder.max_frame_bytes());
        // How long one batch may legitimately keep the thread in a paced send
        // (the watchdog must not mistake a slow link for a stalled daemon).
        const auto batch_time = std::chrono::nanoseconds(static_cast<std::int64_t>(
            static_cast<double>(diode::wire_bytes(encoder.max_frame_bytes(), false) * 8 * per_batch) * 1e9 /
            static_cast<double>(config.link.rate_bits_per_s)));
        current_job = job.id;
        current_frames = 0;
        current_total = encoder.frames_total();
        log_info("pass_started", {{"bundle", job.bundle_id}, {"transfer", job.transfer}, {"pass", info.pass},
                                  {"passes", info.passes}, {"frames", encoder.frames_total()}});
        auto started = SteadyClock::now();
        for (bool more = true; more;) {
            batch.clear();
            auto filled = encoder.fill(batch);
            if (!filled) {
                fail_job(job, filled.error().message);
                return true;
            }
            more = *filled;
            busy_until_ns = (SteadyClock::now() + batch_time).time_since_epoch().count();
            if (auto ok = sender.send(batch.frames()); !ok) {
                log_error("send_failed", {{"bundle", job.bundle_id}, {"error", ok.error().message}});
                std::this_thread::sleep_for(std::chrono::seconds(1));
                return false;
            }
            current_frames = encoder.frames_emitted();
            mark_alive();
            if (SteadyClock::now() >= next_heartbeat) {
                send_heartbeat();
                next_heartbeat = SteadyClock::now() + config.link.heartbeat_interval;
            }
            std::lock_guard lock(mutex);
            if (stopping) {
                log_info("pass_interrupted", {{"bundle", job.bundle_id}, {"pass", info.pass}});
                note("pass_interrupted", job, "error", {{"transfer", job.transfer}, {"pass", info.pass}, {"why", "shutdown"}});
                return false;
            }
        }
        double seconds = std::chrono::duration<double>(SteadyClock::now() - started).count();
        ++passes_completed;
        std::lock_guard lock(mutex);
        current_job = 0;
        auto it = jobs.find(job.id);
        if (it == jobs.end()) return true;
        Job& j = it->second;
        ++j.passes_done;
        j.order = next_order++;
        log_info("pass_finished", {{"bundle", j.bundle_id}, {"transfer", j.transfer}, {"pass", j.passes_done},
                                   {"passes", j.passes}, {"seconds", seconds},
                                   {"goodput_mbps", seconds > 0 ? static_cast<double>(j.archive_bytes) * 8 / seconds / 1e6 : 0.0}});
        note("pass_finished", j, "ok", {{"transfer", j.transfer}, {"pass", j.passes_done}, {"passes", j.passes},
                                        {"seconds", seconds}, {"frames", encoder.frames_total()}});
        if (j.passes_done >= j.passes) {
            log_info("bundle_sent", {{"bundle", j.bundle_id}, {"channel", j.channel}, {"version", j.version},
                                     {"passes", j.passes}});
            note("bundle_sent", j, "ok", {{"transfer", j.transfer}, {"passes", j.passes}, {"version", j.version}});
            recent.push_back({j, files::now_rfc3339()});
            if (recent.size() > kRecentKept) recent.pop_front();
            forget(j);
            jobs.erase(it);
        } else if (auto ok = persist(j); !ok) {
            log_error("queue_write_failed", {{"bundle", j.bundle_id}, {"error", ok.error().message}});
        }
        return true;
    }

    void fail_job(const Job& job, const std::string& why) {
        log_error("bundle_send_failed", {{"bundle", job.bundle_id}, {"error", why}});
        note("bundle_send_failed", job, "error", {{"transfer", job.transfer}, {"error", why}});
        std::lock_guard lock(mutex);
        std::error_code ec;
        fs::rename(queue_dir / (std::to_string(job.id) + ".json"),
                   failed_dir / (std::to_string(job.id) + "-" + job.bundle_id.substr(0, 16) + ".json"), ec);
        fs::remove(job.archive, ec);
        jobs.erase(job.id);
        current_job = 0;
    }

    void send_loop() {
        auto next_heartbeat = SteadyClock::now();
        for (;;) {
            mark_alive();
            if (SteadyClock::now() >= next_heartbeat) {
                send_heartbeat();
                next_heartbeat = SteadyClock::now() + config.link.heartbeat_interval;
            }
            std::optional<Job> job;
            {
                std::unique_lock lock(mutex);
                if (stopping) return;
                job = pick();
                if (!job) {
                    // Idle, it still proves it is alive every second: a heartbeat
                    // interval longer than the unit's WatchdogSec must not get it killed.
                    wake.wait_until(lock, std::min(next_heartbeat, SteadyClock::now() + kIdleAliveEvery),
                                    [&] { return stopping || !jobs.empty(); });
                    continue;
                }
            }
            try {
                run_pass(*job, next_heartbeat);
            } catch (const std::exception& e) {
                // A bug or out of memory: this job is set aside, the daemon keeps sending others.
                fail_job(*job, std::string("internal error: ") + e.what());
            }
        }
    }

    // ---- status -------------------------------------------------------------------

    json queue_json() const {
        std::vector<const Job*> order;
        std::lock_guard lock(mutex);
        for (const auto& [id, job] : jobs) order.push_back(&job);
        std::sort(order.begin(), order.end(), [](const Job* a, const Job* b) {
            return a->high != b->high ? a->high : a->order < b->order;
        });
        json out = json::array();
        for (const Job* job : order) {
            json j = job->to_json();
            j["sending"] = job->id == current_job.load();
            if (j["sending"]) {
                j["frames_sent"] = current_frames.load();
                j["frames_total"] = current_total.load();
            }
            out.push_back(j);
        }
        return out;
    }

    json status_json() const {
        auto st = sender.stats();
        json s;
        s["daemon"] = "sender";
        s["session"] = session;
        s["link"] = {{"lanes", config.link.lanes},
                     {"rate_bits_per_s", config.link.rate_bits_per_s},
                     {"fec", {{"data_symbols", config.link.data_symbols},
                              {"parity_symbols", config.link.parity_symbols},
                              {"symbol_bytes", config.link.symbol_bytes},
                              {"interleave", config.link.interleave}}},
                     {"mac", link_key.has_value()},
                     {"gso", sender.gso_active()}};
        s["counters"] = {{"frames_sent", st.datagrams},       {"bytes_sent", st.bytes},
                         {"wire_bytes", st.wire_bytes},       {"send_calls", st.send_calls},
                         {"enobufs_retries", st.enobufs_retries}, {"passes_completed", passes_completed.load()},
                         {"heartbeats_sent", heartbeats_sent.load()}};
        s["queue"] = queue_json();
        json recent_json = json::array();
        {
            std::lock_guard lock(mutex);
            for (auto it = recent.rbegin(); it != recent.rend(); ++it) {
                json j = it->job.to_json();
                j["finished_at"] = it->finished_at;
                recent_json.push_back(j);
            }
        }
        s["sent"] = recent_json;
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
        auto st = sender.stats();
        std::size_t queued = 0;
        {
            std::lock_guard lock(mutex);
            queued = jobs.size();
        }
        std::vector<MetricSample> samples = {
            {"sluice_sender_frames_sent_total", "Frames handed to the kernel.", MetricType::counter, {}, double(st.datagrams)},
            {"sluice_sender_bytes_sent_total", "Frame bytes handed to the kernel.", MetricType::counter, {}, double(st.bytes)},
            {"sluice_sender_wire_bytes_total", "Bytes on the wire, IP and UDP headers included.", MetricType::counter, {}, double(st.wire_bytes)},
            {"sluice_sender_enobufs_retries_total", "Sends retried because the kernel queue was full.", MetricType::counter, {}, double(st.enobufs_retries)},
            {"sluice_sender_passes_total", "Carousel passes completed.", MetricType::counter, {}, double(passes_completed.load())},
            {"sluice_sender_heartbeats_total", "Heartbeats sent.", MetricType::counter, {}, double(heartbeats_sent.load())},
            {"sluice_sender_queue_length", "Bundles queued.", MetricType::gauge, {}, double(queued)},
            {"sluice_sender_rate_bits_per_second", "Configured pacing rate.", MetricType::gauge, {}, double(config.link.rate_bits_per_s)},
        };
        files::write_metrics(path, samples);
    }

    void schedule_tick() {
        tick_timer.expires_after(std::chrono::seconds(1));
        tick_timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec) return;
            boost::asio::post(intake_pool, [this] { scan_spool(); });
            audit->tick();
            write_metrics();
            schedule_tick();
        });
    }
};

SenderService::SenderService(boost::asio::io_context& io, SenderConfig config)
    : impl_(std::make_unique<Impl>(io, std::move(config))) {
    auto* impl = impl_.get();
    impl->control = std::make_unique<ControlServer>(
        io, impl->config.control_socket,
        AsyncControlHandler([impl](const json& request, const Peer& peer, ControlResponder respond) {
            impl->handle(request, peer, std::move(respond));
        }));
    impl->send_thread = std::thread([impl] { impl->send_loop(); });
    impl->schedule_tick();
    log_info("sender_started", {{"session", impl->session},
                                {"lanes", impl->config.link.lanes.size()},
                                {"rate_bits_per_s", impl->config.link.rate_bits_per_s},
                                {"mac", impl->link_key.has_value()},
                                {"control_socket", impl->config.control_socket}});
}

SenderService::~SenderService() { stop(); }

void SenderService::stop() {
    {
        std::lock_guard lock(impl_->mutex);
        if (impl_->stopping && !impl_->send_thread.joinable()) return;
        impl_->stopping = true;
    }
    impl_->wake.notify_all();
    impl_->tick_timer.cancel();
    if (impl_->control) impl_->control->stop();
    impl_->intake_pool.stop();  // queued intakes are dropped (their callers get no answer and retry); one in progress finishes
    impl_->intake_pool.join();
    impl_->media_pool.stop();  // a media write in progress finishes (it removes what it left unfinished on failure)
    impl_->media_pool.join();
    if (impl_->send_thread.joinable()) impl_->send_thread.join();
    impl_->write_metrics();
    impl_->audit->stop_serving();
    impl_->audit->checkpoint("shutdown");
}

void SenderService::reload() {
    SenderConfig fresh = load_sender_config(impl_->config.config_file);  // ConfigError propagates to main's handler
    auto trust = std::make_shared<bundle::TrustStore>(files::load_trust(fresh.trusted_keys));
    std::vector<std::string> restart;
    const auto& old = impl_->config;
    if (fresh.link.lanes != old.link.lanes || fresh.link.rate_bits_per_s != old.link.rate_bits_per_s ||
        fresh.link.link_key_file != old.link.link_key_file) {
        restart.push_back("link");
    }
    if (fresh.state_dir != old.state_dir || fresh.spool_dir != old.spool_dir || fresh.control_socket != old.control_socket) {
        restart.push_back("paths");
    }
    {
        std::lock_guard lock(impl_->mutex);
        impl_->trust = std::move(trust);
        impl_->config.trusted_keys = fresh.trusted_keys;
        impl_->config.min_signers = fresh.min_signers;
        impl_->config.passes = fresh.passes;
        impl_->config.roles = fresh.roles;
        impl_->config.metrics_file = fresh.metrics_file;
        impl_->config.media = fresh.media;
    }
    log_info("config_reloaded", {{"file", impl_->config.config_file}});
    for (const auto& what : restart) log_warning("config_change_needs_restart", {{"section", what}});
}

bool SenderService::healthy(std::chrono::milliseconds within) const {
    const auto now = SteadyClock::now();
    auto alive = SteadyClock::time_point(SteadyClock::duration(impl_->alive_ns.load()));
    auto busy_until = SteadyClock::time_point(SteadyClock::duration(impl_->busy_until_ns.load()));
    // Alive recently, or inside a paced send that may still be running at this rate.
    return now - alive < within || now < busy_until + within;
}

json SenderService::status() const { return impl_->status_json(); }

std::string SenderService::status_line() const {
    std::size_t queued = 0;
    {
        std::lock_guard lock(impl_->mutex);
        queued = impl_->jobs.size();
    }
    std::string line = std::to_string(queued) + " queued";
    if (impl_->current_job.load() != 0 && impl_->current_total.load() > 0) {
        line += ", sending " + std::to_string(impl_->current_frames.load() * 100 / impl_->current_total.load()) + "%";
    }
    line += ", " + std::to_string(impl_->passes_completed.load()) + " passes sent";
    return line;
}

}  // namespace sluice::daemon
