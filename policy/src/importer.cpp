#include "sluice/policy/importer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <fstream>
#include <random>
#include <sstream>

#include "sluice/bundle/bundle.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/policy/process.hpp"
#include "sluice/policy/version.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::policy {
namespace {

std::string now_text() { return bundle::format_rfc3339(static_cast<long long>(std::time(nullptr))); }

std::string short_id(const std::string& id) { return id.substr(0, 12); }

constexpr std::size_t kDiffEntriesKept = 1000;  // per list (added, removed, changed) in a record

/// Writes `bytes` beside `path`, fsyncs, renames over it and fsyncs the directory.
Result<void> write_durably(const fs::path& path, const std::string& bytes) {
    const fs::path tmp = path.string() + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) return fail("cannot write " + tmp.string() + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < bytes.size()) {
        ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int err = errno;
            ::close(fd);
            ::unlink(tmp.c_str());
            return fail("cannot write " + tmp.string() + ": " + std::strerror(err));
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fdatasync(fd) != 0) {
        const int err = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        return fail("cannot write " + tmp.string() + ": " + std::strerror(err));
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return fail("cannot rename " + tmp.string() + ": " + std::strerror(err));
    }
    int dir = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir >= 0) {
        ::fsync(dir);
        ::close(dir);
    }
    return {};
}

Result<json> read_json(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return fail("cannot read " + path.string() + ": " + std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    json j = json::parse(text.str(), nullptr, false);
    if (j.is_discarded()) return fail(path.string() + ": not valid JSON (a damaged state file)");
    return j;
}

/// Quarantine is read-only: files r--r-----, directories r-xr-x---.
void make_read_only(const fs::path& root) {
    std::error_code ec;
    std::vector<fs::path> dirs;
    for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_directory(ec)) dirs.push_back(it->path());
        else ::chmod(it->path().c_str(), 0440);
    }
    for (auto d = dirs.rbegin(); d != dirs.rend(); ++d) ::chmod(d->c_str(), 0550);
    ::chmod(root.c_str(), 0550);
}

void make_writable(const fs::path& root) {
    std::error_code ec;
    ::chmod(root.c_str(), 0750);
    for (fs::recursive_directory_iterator it(root, ec), end; !ec && it != end; it.increment(ec)) {
        if (it->is_directory(ec)) ::chmod(it->path().c_str(), 0750);
    }
}

bool is_hex_id(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

/// Whether the release directory at `dir` holds bundle `id` (its tagmanifest hashes to it).
bool holds_bundle(const fs::path& dir, const std::string& id) {
    std::ifstream in(dir / "tagmanifest-sha256.txt", std::ios::binary);
    if (!in) return false;
    std::stringstream text;
    text << in.rdbuf();
    return bundle::to_hex(bundle::sha256(text.str())) == id;
}

}  // namespace

Importer::Importer(ImporterPaths paths, std::shared_ptr<const Policy> policy, EventSink sink)
    : paths_(std::move(paths)), sink_(std::move(sink)), store_(paths_.releases), policy_(std::move(policy)) {
    for (const auto& d : {paths_.incoming, paths_.quarantine, paths_.state / "imports", paths_.state / "channels", paths_.releases}) {
        std::error_code ec;
        fs::create_directories(d, ec);
        if (ec) throw std::runtime_error("cannot create " + d.string() + ": " + ec.message());
    }
    // 0750, unless it is already: a chmod by the daemon (not a member of the
    // officers' group an installation may give it) would clear the setgid bit
    // that makes every quarantined copy readable by that group (docs/systemd.md).
    if (struct stat st {}; ::stat(paths_.quarantine.c_str(), &st) == 0 && (st.st_mode & 0777) != 0750) {
        ::chmod(paths_.quarantine.c_str(), 0750);
    }
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(paths_.state / "imports", ec)) {
        if (entry.path().extension() != ".json") continue;
        auto j = read_json(entry.path());
        Result<ImportRecord> r = j ? record_from_json(*j) : Result<ImportRecord>(j.error());
        if (!r) {
            // One damaged file must not stop the receiver (and the diode with it):
            // set it aside for the operator and go on.
            const fs::path aside = entry.path().string() + ".damaged";
            std::error_code rename_ec;
            fs::rename(entry.path(), aside, rename_ec);
            if (sink_)
                (void)sink_("import_record_damaged", {{"outcome", "error"}, {"file", entry.path().string()},
                                                {"moved_to", aside.string()}, {"error", r.error().message}},
                            EventKind::observation);
            continue;
        }
        records_.emplace(r->bundle_id, std::move(*r));
    }
    for (const auto& entry : fs::directory_iterator(paths_.state / "channels", ec)) {
        if (entry.path().extension() != ".json") continue;
        auto j = read_json(entry.path());
        if (!j) throw std::runtime_error(j.error().message);
        try {
            ChannelData data;
            if (!(*j)["highest"].is_null()) data.highest = (*j)["highest"].get<std::string>();
            for (const auto& e : (*j)["released"])
                data.released.push_back({e.at("version").get<std::string>(), e.at("bundle").get<std::string>(),
                                         e.at("at").get<std::string>(), e.at("by").get<std::string>()});
            for (const auto& e : (*j)["rollbacks"]) data.rollbacks.push_back(e);
            channels_[entry.path().stem().string()] = std::move(data);
        } catch (const std::exception& e) {
            throw std::runtime_error(entry.path().string() + ": damaged channel history: " + e.what());
        }
    }
    if (auto n = store_.sweep_partials(); n && sink_) (void)sink_("release_partials_removed", {{"count", n}}, EventKind::observation);
}

void Importer::set_policy(std::shared_ptr<const Policy> policy) {
    std::lock_guard lock(mutex_);
    policy_ = std::move(policy);
}

std::shared_ptr<const Policy> Importer::policy() const {
    std::lock_guard lock(mutex_);
    return policy_;
}

void Importer::emit(std::string_view event, const ImportRecord& r, json fields) const {
    (void)gate(event, r, std::move(fields), EventKind::observation);
}

Result<void> Importer::gate(std::string_view event, const ImportRecord& r, json fields, EventKind kind) const {
    fields["bundle"] = r.bundle_id;
    if (!r.channel.empty()) fields["channel"] = r.channel;
    if (!r.version.empty()) fields["version"] = r.version;
    if (!fields.contains("state")) fields["state"] = to_string(r.state);
    if (!sink_) return {};
    if (auto ok = sink_(event, fields, kind); !ok) return ok.error().within("not recorded in the audit log, so not done");
    return {};
}

Result<void> Importer::commit(const ImportRecord& r, std::string_view event, json fields) {
    if (auto ok = gate(event, r, std::move(fields)); !ok) return ok;
    return save(r);
}

Result<void> Importer::save(const ImportRecord& r) {
    // Scanner and hook output is arbitrary bytes: invalid UTF-8 is replaced, never a throw.
    auto ok = write_durably(paths_.state / "imports" / (r.bundle_id + ".json"),
                            to_json(r).dump(2, ' ', false, json::error_handler_t::replace) + "\n");
    std::lock_guard lock(mutex_);
    // Memory follows even when the disk did not: the daemon must not redo what
    // was done (a release switched); the error is reported by the caller.
    records_[r.bundle_id] = r;
    return ok;
}

Result<void> Importer::save_channel(const std::string& channel) {
    json j;
    {
        std::lock_guard lock(mutex_);
        const auto& data = channels_[channel];
        j["highest"] = data.highest ? json(*data.highest) : json(nullptr);
        j["released"] = json::array();
        for (const auto& e : data.released)
            j["released"].push_back({{"version", e.version}, {"bundle", e.bundle_id}, {"at", e.released_at}, {"by", e.released_by}});
        j["rollbacks"] = data.rollbacks;
    }
    return write_durably(paths_.state / "channels" / (channel + ".json"),
                         j.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
}

Result<std::string> Importer::resolve_locked(const std::string& id_or_prefix) const {
    std::string p = id_or_prefix;
    std::transform(p.begin(), p.end(), p.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (!is_hex_id(p) || p.size() > 64) return fail("\"" + id_or_prefix + "\" is not a bundle id (hex digits, as `sluice pending` shows)");
    if (p.size() < 6) return fail("bundle id prefix \"" + id_or_prefix + "\" is too short: give at least 6 hex digits");
    std::vector<std::string> hits;
    for (auto it = records_.lower_bound(p); it != records_.end() && it->first.compare(0, p.size(), p) == 0; ++it)
        hits.push_back(it->first);
    if (hits.empty()) return fail("no bundle " + id_or_prefix + " here (see `sluice pending` or `sluice show`)");
    if (hits.size() > 1) return fail("bundle id prefix " + id_or_prefix + " is ambiguous: give more digits");
    return hits.front();
}

Result<ImportRecord> Importer::find(const std::string& id_or_prefix) const {
    std::lock_guard lock(mutex_);
    auto id = resolve_locked(id_or_prefix);
    if (!id) return id.error();
    return records_.at(*id);
}

Result<ImportRecord> Importer::claim(const std::string& id_or_prefix) {
    std::lock_guard lock(mutex_);
    auto id = resolve_locked(id_or_prefix);
    if (!id) return id.error();
    if (busy_.count(*id) != 0)
        return fail("bundle " + short_id(*id) + " is being worked on (scanning or releasing); try again in a moment");
    busy_.insert(*id);
    return records_.at(*id);
}

void Importer::unclaim(const std::string& id) {
    std::lock_guard lock(mutex_);
    busy_.erase(id);
}

std::vector<ImportRecord> Importer::list(const std::set<ImportState>& states) const {
    std::lock_guard lock(mutex_);
    std::vector<ImportRecord> out;
    for (const auto& [id, r] : records_) {
        if (states.empty() || states.count(r.state) != 0) out.push_back(r);
    }
    std::sort(out.begin(), out.end(), [](const ImportRecord& a, const ImportRecord& b) {
        return a.received_at != b.received_at ? a.received_at > b.received_at : a.bundle_id < b.bundle_id;
    });
    return out;
}

std::map<ImportState, std::size_t> Importer::counts() const {
    std::lock_guard lock(mutex_);
    std::map<ImportState, std::size_t> out;
    for (const auto& [id, r] : records_) ++out[r.state];
    return out;
}

ChannelHistory Importer::history(const std::string& channel, std::string_view installing) const {
    ChannelHistory h;
    {
        std::lock_guard lock(mutex_);
        if (auto it = channels_.find(channel); it != channels_.end()) {
            h.highest_released = it->second.highest;
            for (const auto& e : it->second.released) h.released.push_back(e.version);
        }
    }
    h.current = store_.current(channel);
    h.kept = store_.versions(channel);
    std::erase(h.kept, installing);  // a bundle's own fresh copy is no floor for itself
    apply_kept_floor(h);
    return h;
}

Importer::Backlog Importer::backlog() const {
    Backlog b;
    std::lock_guard lock(mutex_);
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(paths_.incoming, ec)) {
        const auto& p = entry.path();
        if (p.extension() != ".tar" || !is_hex_id(p.stem().string())) continue;
        b.to_admit.push_back(p);
    }
    for (const auto& [id, r] : records_) {
        if (busy_.count(id) != 0) continue;  // being worked on (a rescan, a release)
        const bool redo = r.state == ImportState::failed || r.state == ImportState::quarantined || r.state == ImportState::scanning;
        const fs::path archive = paths_.incoming / (id + ".tar");
        if (redo && std::find(b.to_admit.begin(), b.to_admit.end(), archive) == b.to_admit.end()) b.to_admit.push_back(archive);
        if (r.state == ImportState::approved) b.to_release.push_back(id);
    }
    std::sort(b.to_admit.begin(), b.to_admit.end());
    return b;
}

void Importer::remove_quarantine(const std::string& id) {
    const fs::path q = paths_.quarantine / id;
    make_writable(q);
    std::error_code ec;
    fs::remove_all(q, ec);
}

Result<ImportRecord> Importer::admit(const fs::path& archive, const std::atomic<bool>& stop) {
    const std::string id = archive.stem().string();
    if (!is_hex_id(id) || id.size() != 64) return fail(archive.string() + ": not named <bundle-id>.tar");
    std::optional<ImportRecord> existing;
    {
        std::lock_guard lock(mutex_);
        if (busy_.count(id) != 0) return fail("bundle " + short_id(id) + " is already being imported");
        if (auto it = records_.find(id); it != records_.end()) existing = it->second;
        const bool redo = existing && (existing->state == ImportState::failed || existing->state == ImportState::quarantined ||
                                       existing->state == ImportState::scanning);
        if (existing && !redo) {
            // The same bundle again: a replay (or a re-send after a lost delivery
            // marker). The first record stands; this copy goes.
            std::error_code ec;
            if (!fs::exists(archive, ec)) return *existing;  // nothing arrived: a stale backlog entry
            fs::remove(archive, ec);
            emit("bundle_replayed", *existing,
                 {{"outcome", "refused"}, {"reason", "bundle " + short_id(id) + " was imported before (now " +
                                                         std::string(to_string(existing->state)) + "); the copy is discarded"}});
            return *existing;
        }
        busy_.insert(id);
    }
    struct Unclaim {
        Importer* self;
        std::string id;
        ~Unclaim() { self->unclaim(id); }
    } guard{this, id};  // the claim was taken above, under the lock

    ImportRecord rec;
    if (existing) {
        rec = *existing;
    } else {
        rec.bundle_id = id;
        rec.received_at = now_text();
        rec.history.push_back({"", "received", rec.received_at, "system", archive.string()});
    }
    const fs::path qdir = paths_.quarantine / id;
    std::error_code ec;
    if (!fs::exists(qdir, ec)) {
        if (!fs::exists(archive, ec)) {
            rec.state_reason = "the archive " + archive.string() + " is gone and nothing is in quarantine";
            if (rec.state != ImportState::failed) rec.transition(ImportState::failed, Actor::system(), now_text(), rec.state_reason);
            if (auto ok = save(rec); !ok) return ok.error();
            emit("quarantine_failed", rec, {{"outcome", "error"}, {"error", rec.state_reason}});
            return rec;
        }
        auto unpacked = bundle::unpack_archive(archive, qdir);
        if (!unpacked) {
            // The archive verified on arrival, so this is the disk (full, I/O): keep
            // it in incoming/ and try again later.
            ++rec.attempts;
            rec.state_reason = "cannot quarantine: " + unpacked.error().message + " (retried every minute; attempt " +
                               std::to_string(rec.attempts) + ")";
            if (rec.state != ImportState::failed) rec.transition(ImportState::failed, Actor::system(), now_text(), unpacked.error().message);
            if (auto ok = save(rec); !ok) return ok.error().within("cannot record a failed quarantine");
            emit("quarantine_failed", rec, {{"outcome", "error"}, {"error", unpacked.error().message}, {"attempt", rec.attempts}});
            return rec;
        }
        make_read_only(qdir);
        rec.payload_files = unpacked->files;
        rec.payload_bytes = unpacked->bytes;
    } else {
        make_read_only(qdir);  // idempotent: a crash may have come between unpack and chmod
    }
    if (rec.state != ImportState::quarantined) {
        rec.state_reason.clear();
        rec.transition(ImportState::quarantined, Actor::system(), now_text(), qdir.string());
    }
    // What the bundle says about itself, for the audit log's four answers (checked again by evaluate()).
    // Unpacked counts are the whole bag (tag files too); the payload's own are on approval_pending.
    json quarantined{{"path", qdir.string()}, {"outcome", "ok"}, {"unpacked_bytes", rec.payload_bytes},
                     {"unpacked_files", rec.payload_files}};
    if (auto summary = bundle::inspect_bundle(qdir); summary && summary->release) {
        quarantined["release"] = json::parse(bundle::format_release(*summary->release));
        quarantined["channel"] = summary->release->channel;
        quarantined["version"] = summary->release->version;
    }
    if (auto ok = gate("bundle_quarantined", rec, std::move(quarantined)); !ok) return ok.error();
    if (auto ok = save(rec); !ok) return ok.error().within("cannot record the quarantine");
    fs::remove(archive, ec);  // quarantine and its record are durable; the archive is no longer needed
    return evaluate(std::move(rec), stop);
}

Result<ImportRecord> Importer::evaluate(ImportRecord rec, const std::atomic<bool>& stop) {
    const fs::path qdir = paths_.quarantine / rec.bundle_id;
    auto policy = this->policy();
    auto end_rejected = [&](std::string why) -> Result<ImportRecord> {
        rec.state_reason = std::move(why);
        rec.transition(ImportState::rejected, Actor::system(), now_text(), rec.state_reason);
        if (auto ok = commit(rec, "bundle_rejected", {{"outcome", "rejected"}, {"reason", rec.state_reason}, {"actor", "system"}});
            !ok) {
            return ok.error();
        }
        return rec;
    };

    auto summary = bundle::inspect_bundle(qdir);
    if (!summary || !summary->release) {
        return end_rejected("release.json cannot be read: " + (summary ? summary->release_error : summary.error().message));
    }
    rec.release = *summary->release;
    rec.channel = rec.release->channel;
    rec.version = rec.release->version;
    const ChannelPolicy* channel = policy->channel(rec.channel);
    if (channel == nullptr) {
        // Held, not rejected: once the policy names the channel (SIGHUP), `sluice
        // rescan` takes it on; a rejection would make the bundle id unusable.
        rec.state_reason = "no import policy for channel " + rec.channel + ": add [channels." + rec.channel + "] to " +
                           policy->file.string() + ", reload (SIGHUP) and `sluice rescan " + short_id(rec.bundle_id) +
                           "`, or reject it";
        rec.transition(ImportState::held, Actor::system(), now_text(), rec.state_reason);
        if (auto ok = commit(rec, "bundle_held", {{"outcome", "held"}, {"reason", rec.state_reason}}); !ok) return ok.error();
        return rec;
    }
    auto facts = gather_facts(qdir, *channel);
    if (!facts) {
        ++rec.attempts;
        rec.state_reason = "cannot evaluate: " + facts.error().message;
        if (rec.state != ImportState::failed) rec.transition(ImportState::failed, Actor::system(), now_text(), rec.state_reason);
        if (auto ok = save(rec); !ok) return ok.error();
        emit("evaluation_failed", rec, {{"outcome", "error"}, {"error", facts.error().message}});
        return rec;
    }
    if (facts->bundle_id != rec.bundle_id) {
        return end_rejected("the quarantined bag is bundle " + facts->bundle_id + ", not " + rec.bundle_id);
    }
    rec.signers = facts->signers;
    rec.payload_files = facts->files.size();
    rec.payload_bytes = facts->payload_bytes;

    ChannelHistory hist = history(rec.channel);
    rec.rules = evaluate_rules(*channel, *facts, hist);
    rec.diff.reset();
    rec.diff_against.reset();
    if (hist.current) {
        auto before = read_bag_payload(store_.path_of(rec.channel, *hist.current));
        auto after = read_bag_payload(qdir);
        if (before && after) {
            rec.diff = diff_trees(*before, *after);
            rec.diff_against = *hist.current;
        }
    } else if (auto after = read_bag_payload(qdir)) {
        rec.diff = diff_trees({}, *after);  // everything is new
    }
    if (rec.diff) rec.diff->truncate(kDiffEntriesKept);
    for (const auto& rule : rec.rules) {
        emit("rule_result", rec, {{"rule", rule.rule}, {"outcome", rule.passed ? "pass" : "fail"}, {"detail", rule.detail}});
    }
    if (!all_passed(rec.rules)) {
        std::string failed;
        for (const auto& rule : rec.rules) {
            if (!rule.passed) failed += (failed.empty() ? "" : "; ") + rule.rule + ": " + rule.detail;
        }
        return end_rejected("policy refused it: " + failed);
    }

    if (rec.state != ImportState::scanning) rec.transition(ImportState::scanning, Actor::system(), now_text());
    rec.scans.clear();
    if (auto ok = save(rec); !ok) return ok.error();
    for (const auto& name : channel->scanners) {
        auto it = policy->scanners.find(name);
        if (it == policy->scanners.end()) {
            ScanResult missing;
            missing.scanner = name;
            missing.summary = "scanner " + name + " is not defined in " + policy->file.string();
            rec.scans.push_back(missing);
            rec.state_reason = missing.summary;
            rec.transition(ImportState::held, Actor::system(), now_text(), rec.state_reason);
            if (auto ok = commit(rec, "bundle_held", {{"outcome", "held"}, {"reason", rec.state_reason}}); !ok) {
                return ok.error();
            }
            return rec;
        }
        emit("scan_started", rec, {{"scanner", name}});
        ScanResult result = scan(it->second, qdir, stop);
        rec.scans.push_back(result);
        emit("scan_result", rec, {{"scanner", name}, {"outcome", to_string(result.verdict)}, {"summary", result.summary},
                                  {"attempts", result.attempts}, {"took_ms", result.took.count()}});
        if (result.verdict == Verdict::found) return end_rejected("scanner " + name + " found: " + result.summary);
        if (result.verdict == Verdict::error) {
            if (stop) {
                // Shutting down: leave it in `scanning`; the next start scans again.
                if (auto ok = save(rec); !ok) return ok.error();
                return fail("stopped while scanning bundle " + short_id(rec.bundle_id));
            }
            const std::string why = "scanner " + name + " failed after " + std::to_string(result.attempts) +
                                    " attempt(s): " + result.summary;
            if (it->second.on_error == OnScannerError::reject) return end_rejected(why);
            rec.state_reason = why + "; run `sluice rescan " + short_id(rec.bundle_id) + "` once it works, or reject it";
            rec.transition(ImportState::held, Actor::system(), now_text(), why);
            if (auto ok = commit(rec, "bundle_held", {{"outcome", "held"}, {"reason", why}}); !ok) return ok.error();
            return rec;
        }
    }

    ApprovalMode mode = channel->approval;
    const bool rollback = rec.release->rollback && hist.highest_released &&
                          compare_versions(rec.version, *hist.highest_released) <= 0;  // equal by order ("2.0+b"): a rollback too
    rec.approvals.clear();
    if (mode == ApprovalMode::automatic && !rollback) {
        rec.approval_mode = "auto";
        rec.approvals_required = 0;
        rec.transition(ImportState::approved, Actor::system(), now_text(), "every rule and scanner passed; channel approval is auto");
        if (auto ok = commit(rec, "bundle_approved",
                             {{"actor", "system"}, {"outcome", "approved"}, {"reason", "auto"}, {"signers", rec.signers},
                              {"payload_files", rec.payload_files}, {"payload_bytes", rec.payload_bytes}});
            !ok) {
            return ok.error();
        }
        return do_release(std::move(rec));
    }
    rec.approval_mode = std::string(to_string(mode == ApprovalMode::automatic ? ApprovalMode::manual : mode));
    rec.approvals_required = mode == ApprovalMode::automatic ? 1 : std::max(1u, channel->approvers);
    rec.state_reason.clear();
    rec.transition(ImportState::pending_approval, Actor::system(), now_text(),
                   rollback ? "a signed rollback needs an officer's approval"
                            : std::to_string(rec.approvals_required) + " officer approval(s) needed");
    json pending{{"outcome", "pending"}, {"approvals_required", rec.approvals_required}, {"mode", rec.approval_mode},
                 {"signers", rec.signers}, {"diff_against", rec.diff_against ? json(*rec.diff_against) : json(nullptr)},
                 {"payload_files", rec.payload_files}, {"payload_bytes", rec.payload_bytes}};
    if (rec.diff) {
        pending["diff"] = {{"added", rec.diff->added.size()}, {"removed", rec.diff->removed.size()},
                           {"changed", rec.diff->changed.size()}, {"omitted", rec.diff->omitted}};
    }
    if (auto ok = commit(rec, "approval_pending", std::move(pending)); !ok) return ok.error();
    return rec;
}

std::mutex& Importer::channel_lock(const std::string& channel) {
    std::lock_guard lock(mutex_);
    auto& m = channel_locks_[channel];
    if (!m) m = std::make_unique<std::mutex>();
    return *m;
}

Result<ImportRecord> Importer::do_release(ImportRecord rec) {
    auto policy = this->policy();
    const ChannelPolicy* channel = policy->channel(rec.channel);
    const fs::path qdir = paths_.quarantine / rec.bundle_id;
    const fs::path target = store_.path_of(rec.channel, rec.version);
    auto release_failed = [&](const std::string& why) -> Result<ImportRecord> {
        ++rec.attempts;
        rec.state_reason = "release failed: " + why + " (retried every minute; attempt " + std::to_string(rec.attempts) +
                           "; `sluice reject` gives up on it)";
        if (auto ok = save(rec); !ok) return ok.error();
        emit("release_failed", rec, {{"outcome", "error"}, {"error", why}, {"attempt", rec.attempts}});
        return rec;
    };
    // Refused at the last step: what was installed for it goes (it was never current).
    auto refuse = [&](const std::string& why, bool remove_installed) -> Result<ImportRecord> {
        if (remove_installed && store_.current(rec.channel) != rec.version) (void)store_.remove(rec.channel, rec.version);
        rec.state_reason = why;
        rec.transition(ImportState::rejected, Actor::system(), now_text(), why);
        if (auto ok = commit(rec, "bundle_rejected", {{"outcome", "rejected"}, {"reason", why}, {"actor", "system"}}); !ok) {
            return ok.error();
        }
        return rec;
    };
    if (channel == nullptr) {
        return refuse("channel " + rec.channel + " is no longer in the import policy " + policy->file.string(), false);
    }
    bool switched_before = false;  // a crash came after the switch, before the record said so
    {
        std::lock_guard lock(mutex_);
        if (auto it = channels_.find(rec.channel); it != channels_.end()) {
            for (const auto& e : it->second.released) switched_before = switched_before || e.bundle_id == rec.bundle_id;
        }
    }
    std::string by = "auto";
    if (!rec.approvals.empty()) {
        by.clear();
        for (const auto& a : rec.approvals) by += (by.empty() ? "" : ", ") + a.user;
    }
    std::optional<std::string> previous;
    std::string at = now_text();
    if (!switched_before) {
        std::error_code ec;
        if (fs::exists(target, ec)) {
            if (!holds_bundle(target, rec.bundle_id)) {
                return refuse("version " + rec.version + " of channel " + rec.channel +
                                  " was released meanwhile by another bundle",
                              false);
            }
            // Installed before a crash or a failed switch: carry on from there.
        } else {
            // The copy runs without the channel lock: a rollback must not wait behind it.
            if (!fs::exists(qdir, ec)) {
                return release_failed("quarantine/" + rec.bundle_id +
                                      " is missing; the bundle must be sent again");
            }
            auto installed = store_.install(rec.channel, rec.version, qdir);
            if (!installed) return release_failed(installed.error().message);
        }
        // What production will read is checked, not what quarantine held: the
        // copy must be this bundle, signed as the channel requires *now*.
        bundle::VerifyOptions v;
        v.trust = channel->trust.get();
        v.min_signers = channel->min_signers;
        auto report = bundle::verify_bag_dir(target, v);
        if (!report) return refuse("the release copy does not verify: " + report.error().message, true);
        if (report->bundle_id != rec.bundle_id) {
            return refuse("the release copy is bundle " + report->bundle_id + ", not " + rec.bundle_id +
                              " (quarantine was altered)",
                          true);
        }

        std::lock_guard channel_guard(channel_lock(rec.channel));
        // Versions only go forward: another bundle may have been released since
        // this one was evaluated (two pending, approved out of order).
        const std::optional<std::string> floor = history(rec.channel, rec.version).highest_released;
        const bool forward = !floor || compare_versions(rec.version, *floor) > 0;
        if (!forward && !(rec.release && rec.release->rollback)) {
            return refuse(rec.version + " is no longer newer than " + *floor +
                              ", released on channel " + rec.channel +
                              " since it was checked; send it again as a signed rollback if it is meant to go back",
                          true);
        }
        previous = store_.current(rec.channel);
        if (auto ok = gate("release_started", rec, {{"previous", previous ? json(*previous) : json(nullptr)},
                                                    {"approved_by", by}, {"path", target.string()}});
            !ok) {
            return release_failed(ok.error().message);
        }
        if (auto ok = store_.set_current(rec.channel, rec.version); !ok) return release_failed(ok.error().message);
        // The switch is the point of no return: what follows is bookkeeping,
        // and a failure of it must never undo or redo the switch.
        at = now_text();
        {
            std::lock_guard lock(mutex_);
            auto& data = channels_[rec.channel];
            if (!data.highest || compare_versions(rec.version, *data.highest) > 0) data.highest = rec.version;
            data.released.push_back({rec.version, rec.bundle_id, at, by});
        }
        if (auto ok = save_channel(rec.channel); !ok) {
            emit("release_not_recorded", rec, {{"outcome", "error"}, {"error", ok.error().message}});
        }
    }
    rec.released_at = at;
    rec.release_path = target.string();
    rec.state_reason.clear();
    rec.transition(ImportState::released, Actor::system(), at, "current -> " + rec.version);
    auto saved = save(rec);
    emit("bundle_released", rec, {{"outcome", "released"}, {"path", target.string()},
                                  {"previous", previous ? json(*previous) : json(nullptr)}, {"approved_by", by}});
    if (!saved) emit("release_not_recorded", rec, {{"outcome", "error"}, {"error", saved.error().message}});
    {
        std::lock_guard channel_guard(channel_lock(rec.channel));
        if (auto pruned = store_.prune(rec.channel, channel->keep_releases); pruned && !pruned->empty()) {
            emit("releases_pruned", rec, {{"removed", *pruned}, {"keep", channel->keep_releases}});
        } else if (!pruned) {
            emit("prune_failed", rec, {{"outcome", "error"}, {"error", pruned.error().message}});
        }
    }
    remove_quarantine(rec.bundle_id);

    for (const auto& hook : channel->post_release) {
        CommandSpec spec;
        spec.argv = substitute(hook.command, {{"path", target.string()}, {"channel", rec.channel},
                                              {"version", rec.version}, {"bundle", rec.bundle_id}});
        spec.timeout = hook.timeout;
        spec.env = minimal_environment({"SLUICE_CHANNEL=" + rec.channel, "SLUICE_VERSION=" + rec.version,
                                        "SLUICE_BUNDLE=" + rec.bundle_id, "SLUICE_RELEASE_PATH=" + target.string()});
        CommandResult result = run_command(spec);
        HookRun run{hook.name, result.outcome == CommandResult::Outcome::exited && result.exit_code == 0,
                    result.describe(), result.output, now_text()};
        rec.hooks.push_back(run);
        if (auto ok = save(rec); !ok) {
            emit("release_not_recorded", rec, {{"outcome", "error"}, {"error", ok.error().message}});
        }
        emit(run.ok ? "post_release_hook" : "post_release_hook_failed", rec,
             {{"hook", hook.name}, {"outcome", run.ok ? "ok" : "error"}, {"result", run.result}});
    }
    return rec;
}

Result<ImportRecord> Importer::with_claim(const std::string& id_or_prefix,
                                          const std::function<Result<ImportRecord>(ImportRecord&)>& body) {
    auto rec = claim(id_or_prefix);
    if (!rec) return rec.error();
    struct Unclaim {
        Importer* self;
        std::string id;
        ~Unclaim() { self->unclaim(id); }
    } guard{this, rec->bundle_id};
    return body(*rec);
}

Result<ImportRecord> Importer::release(const std::string& bundle_id) {
    return with_claim(bundle_id, [&](ImportRecord& rec) -> Result<ImportRecord> {
        if (rec.state != ImportState::approved) return fail("bundle " + short_id(rec.bundle_id) + " is not approved");
        return do_release(std::move(rec));
    });
}

Result<ImportRecord> Importer::approve(const std::string& id_or_prefix, const Actor& officer, const std::string& reason) {
    return with_claim(id_or_prefix, [&](ImportRecord& rec) -> Result<ImportRecord> {
        // A policy tightened since evaluation (SIGHUP) applies: more officers, never fewer.
        if (const ChannelPolicy* ch = policy()->channel(rec.channel);
            ch != nullptr && ch->approval != ApprovalMode::automatic && rec.state == ImportState::pending_approval) {
            rec.approvals_required = std::max(rec.approvals_required, ch->approvers);
        }
        auto done = policy::approve(rec, officer, reason, now_text());
        if (!done) return done.error();
        if (auto ok = commit(rec, *done ? "bundle_approved" : "approval_recorded",
                             {{"actor", officer.user}, {"uid", officer.uid}, {"reason", reason}, {"outcome", "approved"},
                              {"approvals", rec.approvals.size()}, {"approvals_required", rec.approvals_required}});
            !ok) {
            return ok.error();
        }
        if (!*done) return std::move(rec);
        return do_release(std::move(rec));
    });
}

Result<ImportRecord> Importer::reject(const std::string& id_or_prefix, const Actor& officer, const std::string& reason) {
    return with_claim(id_or_prefix, [&](ImportRecord& rec) -> Result<ImportRecord> {
        if (rec.state == ImportState::approved) {
            // Approved but not (known to be) released: if it is installed, it must
            // not stay where a rollback could reach it; if it is live, it is released.
            std::lock_guard channel_guard(channel_lock(rec.channel));
            const fs::path target = store_.path_of(rec.channel, rec.version);
            if (holds_bundle(target, rec.bundle_id)) {
                if (store_.current(rec.channel) == rec.version)
                    return fail("bundle " + short_id(rec.bundle_id) + " is live as " + rec.channel + " " + rec.version +
                                "; use `sluice rollback " + rec.channel + "` instead");
                if (auto removed = store_.remove(rec.channel, rec.version); !removed) return removed.error();
            }
        }
        if (auto ok = policy::reject(rec, officer, reason, now_text()); !ok) return ok.error();
        if (auto ok = commit(rec, "bundle_rejected",
                             {{"actor", officer.user}, {"uid", officer.uid}, {"reason", reason}, {"outcome", "rejected"}});
            !ok) {
            return ok.error();
        }
        return std::move(rec);
    });
}

Result<ImportRecord> Importer::rescan(const std::string& id_or_prefix, const Actor& officer, const std::atomic<bool>& stop) {
    return with_claim(id_or_prefix, [&](ImportRecord& rec) -> Result<ImportRecord> {
        if (rec.state != ImportState::held)
            return fail("bundle " + short_id(rec.bundle_id) + " is " + std::string(to_string(rec.state)) +
                        "; only a held bundle is scanned again");
        rec.history.push_back({"held", "held", now_text(), officer.user, "rescan requested"});
        if (auto ok = gate("rescan_requested", rec, {{"actor", officer.user}, {"uid", officer.uid}}); !ok) return ok.error();
        return evaluate(std::move(rec), stop);
    });
}

Result<std::vector<ReleaseEntry>> Importer::releases(const std::string& channel) const {
    auto versions = store_.versions(channel);
    std::lock_guard lock(mutex_);
    auto data = channels_.find(channel);
    if (versions.empty() && data == channels_.end()) {
        std::string known;
        for (const auto& c : store_.channels()) known += (known.empty() ? "" : ", ") + c;
        return fail("no releases on channel " + channel + (known.empty() ? " (nothing released yet)" : " (channels: " + known + ")"));
    }
    const auto current = store_.current(channel);
    std::vector<ReleaseEntry> out;
    for (auto it = versions.rbegin(); it != versions.rend(); ++it) {
        ReleaseEntry e;
        e.version = *it;
        e.current = current && *current == *it;
        if (const ChannelEntry* r = released_as(channel, *it)) {
            e.bundle_id = r->bundle_id;
            e.released_at = r->released_at;
            e.released_by = r->released_by;
        }
        out.push_back(std::move(e));
    }
    return out;
}

const Importer::ChannelEntry* Importer::released_as(const std::string& channel, std::string_view version) const {
    auto it = channels_.find(channel);
    if (it == channels_.end()) return nullptr;
    const auto& released = it->second.released;
    auto r = std::find_if(released.rbegin(), released.rend(), [&](const ChannelEntry& e) { return e.version == version; });
    return r == released.rend() ? nullptr : &*r;
}

Result<RollbackOutcome> Importer::rollback(const std::string& channel, const std::optional<std::string>& to,
                                           const Actor& officer, const std::string& reason) {
    if (std::all_of(reason.begin(), reason.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }))
        return fail("a rollback needs a reason: --reason \"what went wrong\"");
    std::lock_guard channel_guard(channel_lock(channel));
    const auto current = store_.current(channel);
    if (!current) return fail("channel " + channel + " has no current release to roll back");
    const auto kept = store_.versions(channel);
    std::string target;
    if (to) {
        if (std::find(kept.begin(), kept.end(), *to) == kept.end()) {
            std::string list;
            for (const auto& v : kept) list += (list.empty() ? "" : ", ") + v;
            return fail("version " + *to + " of channel " + channel + " is not kept here (kept: " + list +
                        "); it must be sent again as a signed rollback bundle");
        }
        if (*to == *current) return fail(*to + " is already the current release of channel " + channel);
        target = *to;
    } else {
        // The current release's own answer to "how to roll it back", when kept.
        std::ifstream in(store_.path_of(channel, *current) / "release.json", std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        if (auto rel = bundle::parse_release(text.str());
            rel && rel->rollback_to != *current && std::find(kept.begin(), kept.end(), rel->rollback_to) != kept.end()) {
            target = rel->rollback_to;
        } else {
            for (auto it = kept.rbegin(); it != kept.rend(); ++it) {
                if (compare_versions(*it, *current) < 0) {
                    target = *it;
                    break;
                }
            }
        }
        if (target.empty()) return fail("no older version of channel " + channel + " is kept here to roll back to");
    }
    if (sink_) {
        json intent{{"channel", channel}, {"from", *current}, {"to", target}, {"actor", officer.user},
                    {"uid", officer.uid}, {"reason", reason}, {"outcome", "ok"}};
        {
            // The bundle taken out of production: its trace shows the rollback.
            std::lock_guard lock(mutex_);
            if (const ChannelEntry* r = released_as(channel, *current)) intent["bundle"] = r->bundle_id;
        }
        if (auto ok = sink_("rollback_started", intent, EventKind::step); !ok) return ok.error().within("not recorded in the audit log, so not done");
    }
    if (auto ok = store_.set_current(channel, target); !ok) {
        if (sink_) {
            (void)sink_("rollback_failed", {{"channel", channel}, {"from", *current}, {"to", target},
                                            {"outcome", "error"}, {"error", ok.error().message}},
                        EventKind::observation);
        }
        return ok.error();
    }
    const std::string at = now_text();
    std::string target_bundle;  // the bundle now current again, for the audit log
    {
        std::lock_guard lock(mutex_);
        if (const ChannelEntry* r = released_as(channel, target)) target_bundle = r->bundle_id;
        channels_[channel].rollbacks.push_back({{"from", *current}, {"to", target}, {"at", at}, {"by", officer.user}, {"reason", reason}});
    }
    auto saved = save_channel(channel);
    json fields{{"channel", channel}, {"from", *current}, {"to", target}, {"actor", officer.user}, {"uid", officer.uid},
                {"reason", reason}, {"outcome", "ok"}};
    if (!target_bundle.empty()) fields["bundle"] = target_bundle;
    if (!saved) fields["warning"] = "rollback done but not recorded in the channel history: " + saved.error().message;
    if (sink_) (void)sink_("channel_rolled_back", fields, EventKind::observation);
    return RollbackOutcome{channel, *current, target};
}

}  // namespace sluice::policy
