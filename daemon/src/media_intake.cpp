#include "media_intake.hpp"

#include <boost/asio/post.hpp>

#include <fstream>

#include "audit_trail.hpp"
#include "files.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/daemon/log.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::daemon {
namespace {

constexpr std::size_t kRecentKept = 16;

json ranges_json(const std::vector<std::pair<std::uint64_t, std::uint64_t>>& ranges) {
    json out = json::array();
    for (auto [a, b] : ranges) out.push_back(json::array({a, b}));
    return out;
}

std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges_from(const json& j) {
    std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
    for (const auto& r : j) out.emplace_back(r.at(0).get<std::uint64_t>(), r.at(1).get<std::uint64_t>());
    return out;
}

json import_json(const media::VolumeImport& v) {
    json segments = json::array();
    for (const auto& s : v.segments) {
        segments.push_back({{"name", s.name}, {"present", s.present}, {"read", s.records_read}, {"bad", s.records_bad}});
    }
    return {{"volume", v.volume},
            {"volumes", v.volumes},
            {"staging_key", v.staging_key},
            {"already_delivered", v.already_delivered},
            {"blocks", v.blocks},
            {"blocks_held_before", v.blocks_held_before},
            {"blocks_direct", v.blocks_direct},
            {"blocks_repaired", v.blocks_repaired},
            {"unrecoverable", ranges_json(v.unrecoverable)},
            {"segments", segments},
            {"archive_blocks_held", v.archive_blocks_held},
            {"archive_blocks", v.archive_blocks}};
}

media::VolumeImport import_from(const json& j) {
    media::VolumeImport v;
    v.volume = j.at("volume").get<unsigned>();
    v.volumes = j.at("volumes").get<unsigned>();
    v.staging_key = j.at("staging_key").get<std::string>();
    v.already_delivered = j.value("already_delivered", false);
    v.blocks = j.at("blocks").get<std::uint64_t>();
    v.blocks_held_before = j.at("blocks_held_before").get<std::uint64_t>();
    v.blocks_direct = j.at("blocks_direct").get<std::uint64_t>();
    v.blocks_repaired = j.at("blocks_repaired").get<std::uint64_t>();
    v.unrecoverable = ranges_from(j.at("unrecoverable"));
    for (const auto& s : j.at("segments")) {
        v.segments.push_back({s.at("name").get<std::string>(), s.at("present").get<bool>(), s.at("read").get<std::uint64_t>(),
                              s.at("bad").get<std::uint64_t>()});
    }
    v.archive_blocks_held = j.at("archive_blocks_held").get<std::uint64_t>();
    v.archive_blocks = j.at("archive_blocks").get<std::uint64_t>();
    return v;
}

/// Segment names that did not read back whole: missing, short, or with bad records.
json damaged_segments(const media::FoundVolume& fv, const media::VolumeImport& v) {
    json out = json::array();
    for (std::size_t i = 0; i < v.segments.size() && i < fv.index.segments.size(); ++i) {
        const auto& s = v.segments[i];
        const auto expected = fv.index.segments[i].records;
        if (s.intact(expected)) continue;
        out.push_back({{"segment", s.name},
                       {"present", s.present},
                       {"records", expected},
                       {"read", s.records_read},
                       {"bad", s.records_bad}});
    }
    return out;
}

}  // namespace

struct MediaIntake::SetRecord {
    std::string set;
    media::VolumeIndex index;  // of any volume, hop record left out
    std::map<unsigned, media::VolumeImport> imports;
    std::map<unsigned, json> meta;  // volume → {at, from, by}
    json outcome;                   // null until the archive was handed on

    [[nodiscard]] json to_json() const {
        media::VolumeIndex bare = index;
        bare.hops.clear();
        json imp = json::object();
        for (const auto& [v, i] : imports) {
            json e = import_json(i);
            if (auto m = meta.find(v); m != meta.end()) e["meta"] = m->second;
            imp[std::to_string(v)] = e;
        }
        return {{"set", set},
                {"bundle", transfer::to_hex(index.info.bundle_id)},
                {"channel", index.info.channel},
                {"version", index.info.version},
                {"volumes", index.volumes},
                {"encrypted", index.layout.encrypted},
                {"index_volume", index.volume},
                {"index", media::encode_index_body(bare)},
                {"imports", imp},
                {"outcome", outcome}};
    }

    static std::unique_ptr<SetRecord> from_json(const json& j) {
        auto r = std::make_unique<SetRecord>();
        r->set = j.at("set").get<std::string>();
        auto set_id = transfer::sha256_from_hex(r->set);
        if (!set_id) throw std::runtime_error("the set id is not a SHA-256");
        auto parsed = media::parse_index_body(j.at("index").get<std::string>(), *set_id, j.at("index_volume").get<unsigned>(),
                                              j.at("encrypted").get<bool>());
        if (parsed.error != media::IndexError::none) throw std::runtime_error("the index: " + parsed.message);
        r->index = std::move(parsed.index);
        for (const auto& [v, e] : j.at("imports").items()) {
            unsigned volume = static_cast<unsigned>(std::stoul(v));
            r->imports[volume] = import_from(e);
            if (e.contains("meta")) r->meta[volume] = e["meta"];
        }
        r->outcome = j.value("outcome", json());
        return r;
    }
};

MediaIntake::MediaIntake(MediaConfig config, const fs::path& state_dir, AuditTrail& audit, Deliver deliver)
    : config_(std::move(config)),
      sets_dir_(state_dir / "media" / "sets"),
      audit_(audit),
      deliver_(std::move(deliver)),
      store_(state_dir / "media" / "store") {
    std::error_code ec;
    fs::create_directories(sets_dir_, ec);
    if (ec) throw std::runtime_error("cannot create " + sets_dir_.string() + ": " + ec.message());
    load_catalog();
}

MediaIntake::~MediaIntake() { stop(); }

void MediaIntake::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopping_) return;
        stopping_ = true;
    }
    pool_.stop();
    pool_.join();
    store_.flush();
}

std::size_t MediaIntake::sweep() { return store_.sweep(std::chrono::hours(24 * 30)); }

void MediaIntake::set_config(MediaConfig config) {
    std::lock_guard lock(mutex_);
    config_ = std::move(config);
}

void MediaIntake::load_catalog() {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(sets_dir_, ec)) {
        if (entry.path().extension() != ".json") continue;
        try {
            std::ifstream in(entry.path());
            auto record = SetRecord::from_json(json::parse(in));
            std::string set = record->set;
            sets_[set] = std::move(record);
        } catch (const std::exception& e) {
            log_error("media_catalog_unreadable", {{"file", entry.path()}, {"error", e.what()}});
        }
    }
}

void MediaIntake::save(const SetRecord& record) {
    if (auto ok = files::write_durably(sets_dir_ / (record.set + ".json"), record.to_json().dump(2) + "\n"); !ok) {
        log_error("media_catalog_not_saved", {{"set", record.set}, {"error", ok.error().message}});
    }
}

std::optional<media::MediaKey> MediaIntake::configured_key(std::string& error) const {
    std::optional<fs::path> file;
    {
        std::lock_guard lock(mutex_);
        file = config_.key_file;
    }
    if (!file) return std::nullopt;
    auto key = media::load_key(*file);
    if (!key) {
        error = key.error().message;
        return std::nullopt;
    }
    return std::move(*key);
}

bool MediaIntake::handles(const std::string& command) { return command == "media_import" || command == "media_status"; }

void MediaIntake::handle(const json& request, const Peer& peer, const RolesConfig& roles, ControlResponder respond) {
    const std::string command = request.at("command").get<std::string>();
    if (command == "media_status") {
        // Answered at once, also while a volume is being read (from copies and the durable progress).
        files::require_any_role(peer, roles);
        json s = status_json();
        s["ok"] = true;
        respond(s);
        return;
    }
    require_role(peer, Role::operator_, roles);
    if (!request.contains("path") || !request["path"].is_string()) throw std::runtime_error("media_import: \"path\" is required");
    fs::path mount = request["path"].get<std::string>();
    if (!mount.is_absolute()) throw std::runtime_error("media_import: the path must be absolute: " + mount.string());
    std::optional<media::MediaKey> key;
    if (request.contains("key")) {
        auto decoded = bundle::base64_decode(request["key"].get<std::string>());
        if (!decoded || decoded->size() < media::kMinKeyBytes || decoded->size() > 4096) {
            throw std::runtime_error("media_import: the key must be 32 to 4096 bytes");
        }
        const auto* p = reinterpret_cast<const std::byte*>(decoded->data());
        key = media::MediaKey{std::vector<std::byte>(p, p + decoded->size())};
    }
    std::string who = peer.user;
    boost::asio::post(pool_, [this, mount, key = std::move(key), who, respond]() mutable {
        try {
            std::string key_error;
            if (!key) key = configured_key(key_error);
            if (!key_error.empty()) {
                respond(json{{"ok", false}, {"error", key_error}});
                return;
            }
            json r = import_mount(mount, key ? &*key : nullptr, who, false);
            if (r.contains("error")) {
                respond(json{{"ok", false}, {"error", r["error"]}});
            } else {
                respond(json{{"ok", true}, {"media", r}});
            }
        } catch (const std::exception& e) {
            respond(json{{"ok", false}, {"error", e.what()}});
        }
    });
}

json MediaIntake::import_mount(const fs::path& mount, const media::MediaKey* key, const std::string& actor, bool from_watch) {
    auto scan = media::scan_medium(mount, key);
    if (!scan) {
        if (!from_watch) {
            (void)audit_.record({"media_refused", "", "", actor, "refused", {{"path", mount.string()}, {"error", scan.error().message}}});
        }
        return json{{"error", scan.error().message}};
    }
    json out{{"path", mount.string()}, {"volumes", json::array()}, {"problems", scan->problems}, {"ignored", scan->ignored}};
    for (const auto& problem : scan->problems) {
        log_warning("media_volume_refused", {{"path", mount}, {"problem", problem}});
        (void)audit_.record({"media_volume_refused", "", "", actor, "refused", {{"path", mount.string()}, {"problem", problem}}});
    }
    if (!scan->ignored.empty()) {
        log_warning("media_files_ignored", {{"path", mount}, {"files", json(scan->ignored).dump()}});
        (void)audit_.record({"media_files_ignored", "", "", actor, "ok", {{"path", mount.string()}, {"files", scan->ignored}}});
    }
    for (const auto& fv : scan->volumes) {
        const std::string seen_key = transfer::to_hex(fv.index.set_id) + "/" + std::to_string(fv.index.volume);
        if (from_watch) {
            std::lock_guard lock(mutex_);
            if (!seen_[mount].insert(seen_key).second) continue;
        }
        json entry = import_one(fv, mount, key, actor);
        if (from_watch && entry.contains("error")) {
            std::lock_guard lock(mutex_);
            seen_[mount].erase(seen_key);  // the store failed (disk full): the next poll tries again
        }
        out["volumes"].push_back(std::move(entry));
    }
    if (scan->volumes.empty() && scan->problems.empty()) out["note"] = "no Sluice volume on " + mount.string();
    return out;
}

/// One line of `recent` (media status, sluice status).
json MediaIntake::recent_entry(const media::VolumeIndex& ix, const fs::path& mount, const std::string& actor, bool complete) {
    return {{"bundle", transfer::to_hex(ix.info.bundle_id)}, {"channel", ix.info.channel}, {"version", ix.info.version},
            {"volume", ix.volume}, {"volumes", ix.volumes}, {"at", files::now_rfc3339()},
            {"from", mount.string()}, {"by", actor}, {"complete", complete}};
}

/// Keeps the newest kRecentKept; the caller holds mutex_.
void MediaIntake::remember_recent(json entry) {
    recent_.push_back(std::move(entry));
    if (recent_.size() > kRecentKept) recent_.erase(recent_.begin());
}

json MediaIntake::import_one(const media::FoundVolume& fv, const fs::path& mount, const media::MediaKey* key,
                             const std::string& actor) {
    const auto& ix = fv.index;
    const std::string bundle = transfer::to_hex(ix.info.bundle_id);
    const std::string set = transfer::to_hex(ix.set_id);
    json entry{{"bundle", bundle},    {"channel", ix.info.channel}, {"version", ix.info.version},
               {"volume", ix.volume}, {"volumes", ix.volumes},      {"directory", fv.directory.string()},
               {"notes", fv.notes},   {"encrypted", ix.layout.encrypted}};
    auto imported = media::import_volume(fv, store_, key);
    if (!imported) {
        log_error("media_import_failed", {{"bundle", bundle}, {"volume", ix.volume}, {"error", imported.error().message}});
        (void)audit_.record({"media_import_failed", bundle, ix.info.channel, actor, "error",
                             {{"volume", ix.volume}, {"path", mount.string()}, {"error", imported.error().message}}});
        entry["error"] = imported.error().message;
        return entry;
    }
    store_.flush(imported->staging_key);
    const auto& v = *imported;
    if (v.already_delivered) {
        // Nothing was read: the archive came before (on this or another medium, or the diode).
        entry["already_delivered"] = true;
        entry["outcome"] = {{"already_delivered", true}};
        (void)audit_.record({"media_volume_imported", bundle, ix.info.channel, actor, "ok",
                             {{"version", ix.info.version}, {"volume", ix.volume}, {"volumes", ix.volumes},
                              {"path", mount.string()}, {"set", set}, {"already_delivered", true}}});
        log_info("media_volume_already_delivered", {{"bundle", bundle}, {"volume", ix.volume}, {"path", mount}});
        std::unique_ptr<SetRecord> snapshot;
        {
            std::lock_guard lock(mutex_);
            auto& slot = sets_[set];
            if (!slot) {
                slot = std::make_unique<SetRecord>();
                slot->set = set;
                slot->index = ix;
                slot->index.hops.clear();
            }
            if (slot->outcome.is_null()) slot->outcome = {{"already_delivered", true}, {"at", files::now_rfc3339()}};
            snapshot = std::make_unique<SetRecord>(*slot);
            json r = recent_entry(ix, mount, actor, true);
            r["already_delivered"] = true;
            remember_recent(std::move(r));
        }
        save(*snapshot);
        return entry;
    }
    json damaged = damaged_segments(fv, v);
    entry["already_delivered"] = v.already_delivered;
    entry["blocks"] = v.blocks;
    entry["blocks_held_before"] = v.blocks_held_before;
    entry["blocks_direct"] = v.blocks_direct;
    entry["blocks_repaired"] = v.blocks_repaired;
    entry["unrecoverable"] = ranges_json(v.unrecoverable);
    entry["damaged_segments"] = damaged;
    entry["archive_blocks_held"] = v.archive_blocks_held;
    entry["archive_blocks"] = v.archive_blocks;

    SetRecord* record = nullptr;
    {
        std::lock_guard lock(mutex_);
        auto& slot = sets_[set];
        if (!slot) {
            slot = std::make_unique<SetRecord>();
            slot->set = set;
        }
        record = slot.get();
        record->index = ix;
        record->index.hops.clear();
        record->imports[ix.volume] = v;
        record->meta[ix.volume] = {{"at", files::now_rfc3339()}, {"from", mount.string()}, {"by", actor}};
    }
    (void)audit_.record({"media_volume_imported", bundle, ix.info.channel, actor, v.unrecoverable.empty() ? "ok" : "incomplete",
                         {{"version", ix.info.version},
                          {"volume", ix.volume},
                          {"volumes", ix.volumes},
                          {"path", mount.string()},
                          {"set", set},
                          {"encrypted", ix.layout.encrypted},
                          {"blocks", v.blocks},
                          {"blocks_direct", v.blocks_direct},
                          {"blocks_repaired", v.blocks_repaired},
                          {"blocks_held_before", v.blocks_held_before},
                          {"unrecoverable", ranges_json(v.unrecoverable)},
                          {"damaged_segments", damaged},
                          {"written_by", ix.written_by},
                          {"written_at", ix.written_at},
                          {"host", ix.host}}});
    log_info("media_volume_imported", {{"bundle", bundle}, {"volume", ix.volume}, {"volumes", ix.volumes},
                                       {"repaired", v.blocks_repaired}, {"unrecoverable", v.unrecoverable.size()},
                                       {"held", v.archive_blocks_held}, {"of", v.archive_blocks}});
    if (v.archive_complete()) {
        Arrival a;
        a.info = ix.info;
        a.key = v.staging_key;
        a.transfer = ix.transfer();
        a.hops = ix.hops;
        a.carrier = "media";
        a.store = &store_;
        entry["outcome"] = deliver_(a);
        std::lock_guard lock(mutex_);
        record->outcome = entry["outcome"];
        record->outcome["at"] = files::now_rfc3339();
    }
    std::unique_ptr<SetRecord> snapshot;
    {
        std::lock_guard lock(mutex_);
        snapshot = std::make_unique<SetRecord>(*record);
    }
    if (!v.archive_complete()) entry["needed"] = needs_of(*snapshot);
    save(*snapshot);
    {
        std::lock_guard lock(mutex_);
        remember_recent(recent_entry(ix, mount, actor, v.archive_complete()));
    }
    return entry;
}

json MediaIntake::needs_of(const SetRecord& record) {
    json out = json::array();
    // What is durable, read without opening the staging area (an import may be writing it).
    auto held = store_.durable_blocks(transfer::staging_key(record.index.info), record.index.info);
    if (!held) return out;  // delivered
    for (const auto& n : media::still_needed(record.index, *held, record.imports)) {
        out.push_back({{"volume", n.volume},
                       {"blocks_missing", n.blocks_missing},
                       {"ranges", ranges_json(n.ranges)},
                       {"imported", n.imported},
                       {"segments", n.segments},
                       {"text", media::describe(n, record.index.volumes)}});
    }
    return out;
}

json MediaIntake::status_json() {
    json sets = json::array();
    std::vector<std::unique_ptr<SetRecord>> records;  // copies: the media thread may update the originals
    {
        std::lock_guard lock(mutex_);
        for (auto& [id, r] : sets_) records.push_back(std::make_unique<SetRecord>(*r));
    }
    for (auto& r : records) {
        json e{{"set", r->set},
               {"bundle", transfer::to_hex(r->index.info.bundle_id)},
               {"channel", r->index.info.channel},
               {"version", r->index.info.version},
               {"volumes", r->index.volumes},
               {"encrypted", r->index.layout.encrypted},
               {"volumes_read", json::array()},
               {"outcome", r->outcome}};
        for (const auto& [v, m] : r->meta) e["volumes_read"].push_back({{"volume", v}, {"at", m.value("at", "")}, {"from", m.value("from", "")}, {"by", m.value("by", "")}});
        if (r->outcome.is_null()) e["needed"] = needs_of(*r);
        sets.push_back(e);
    }
    std::lock_guard lock(mutex_);
    json watch = json::array();
    for (const auto& w : config_.watch) watch.push_back(w.string());
    return {{"sets", sets}, {"watch", watch}, {"recent", recent_}};
}

json MediaIntake::summary() const {
    std::lock_guard lock(mutex_);
    std::size_t unfinished = 0;
    for (const auto& [id, r] : sets_) unfinished += r->outcome.is_null() ? 1 : 0;
    json watch = json::array();
    for (const auto& w : config_.watch) watch.push_back(w.string());
    return {{"unfinished", unfinished}, {"sets", sets_.size()}, {"watch", watch}, {"recent", recent_}};
}

void MediaIntake::tick(std::chrono::steady_clock::time_point now) {
    std::lock_guard lock(mutex_);
    if (stopping_ || config_.watch.empty() || poll_queued_ || now - last_poll_ < config_.poll_interval) return;
    last_poll_ = now;
    poll_queued_ = true;
    boost::asio::post(pool_, [this] { poll_watch_points(); });
}

void MediaIntake::poll_watch_points() {
    std::vector<fs::path> watch;
    {
        std::lock_guard lock(mutex_);
        poll_queued_ = false;
        watch = config_.watch;
    }
    for (const auto& mount : watch) {
        std::error_code ec;
        if (!fs::exists(mount / media::kRootDir, ec)) {
            std::lock_guard lock(mutex_);
            seen_.erase(mount);  // removed: the next medium there is read afresh
            continue;
        }
        {
            std::lock_guard lock(mutex_);
            if (seen_.count(mount) && seen_[mount].count("*problems*")) continue;
        }
        std::string key_error;
        auto key = configured_key(key_error);
        if (!key_error.empty()) {
            log_error("media_key_unreadable", {{"error", key_error}});
            continue;
        }
        try {
            json r = import_mount(mount, key ? &*key : nullptr, "watch(" + mount.string() + ")", true);
            // A medium whose indexes cannot be read is reported once while it stays mounted.
            if (r.contains("error") || !r["problems"].empty()) {
                std::lock_guard lock(mutex_);
                seen_[mount].insert("*problems*");
                if (r.contains("error")) log_warning("media_unreadable", {{"path", mount}, {"error", r["error"].get<std::string>()}});
            }
        } catch (const std::exception& e) {
            log_error("media_watch_failed", {{"path", mount}, {"error", e.what()}});
        }
    }
}

}  // namespace sluice::daemon
