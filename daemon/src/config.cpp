#include "sluice/daemon/config.hpp"
#include "sluice/bundle/signing.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <limits>
#include <set>
#include <span>
#include <sstream>
#include <string_view>

#include <toml++/toml.h>

#include "sluice/daemon/policy_config.hpp"
#include "toml_reader.hpp"

#include "sluice/daemon/values.hpp"

namespace sluice::daemon {
namespace fs = std::filesystem;

namespace {

std::string location(const fs::path& file, int line, int column) {
    std::string out = file.string() + ":" + std::to_string(line);
    if (column > 0) out += ":" + std::to_string(column);
    return out;
}

std::string compose(const fs::path& file, int line, const std::string& key, const std::string& problem,
                    int column) {
    std::string out = location(file, line, column) + ": ";
    if (!key.empty()) out += key + ": ";
    return out + problem;
}

}  // namespace

ConfigError::ConfigError(fs::path file_, int line_, std::string key_, std::string problem_, int column_)
    : std::runtime_error(compose(file_, line_, key_, problem_, column_)),
      file(file_.string()),
      line(line_),
      key(std::move(key_)),
      problem(std::move(problem_)),
      column(column_) {}

namespace {
using namespace toml_reading;


constexpr std::string_view kRolesKeys[] = {"operator_groups", "officer_groups", "auditor_groups"};

RolesConfig read_roles(const Document& doc) {
    RolesConfig roles;
    const toml::table* t = doc.table("roles", false);
    if (t == nullptr) return roles;
    TableReader r(doc.file, doc.base_dir, *t, "roles");
    r.refuse_unknown(kRolesKeys, {}, "");
    const auto take = [&](std::string_view key, std::vector<std::string>& out) {
        if (auto v = r.strings(key)) {
            out.clear();
            for (auto& [name, line] : *v) {
                (void)line;
                out.push_back(name);
            }
        }
    };
    take("operator_groups", roles.operator_groups);
    take("officer_groups", roles.officer_groups);
    take("auditor_groups", roles.auditor_groups);
    return roles;
}

void check_key_file(const TableReader& r, std::string_view key, const fs::path& p, std::int64_t min_bytes = 16) {
    const int line = r.line(key);
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) {
        const int err = errno;
        r.fail_at(line, key, "cannot use " + p.string() + ": " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) r.fail_at(line, key, p.string() + " is not a regular file");
    if (st.st_size < min_bytes)
        r.fail_at(line, key,
                  p.string() + " holds " + std::to_string(st.st_size) + " bytes; a key needs at least " +
                      std::to_string(min_bytes) + " (e.g. head -c 32 /dev/urandom > FILE)");
    if (st.st_size > 4096) r.fail_at(line, key, p.string() + " holds more than 4096 bytes: not a key file");
    if ((st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        r.fail_at(line, key,
                  p.string() + " is accessible by group or others (mode " + mode + "); run chmod 600 " + p.string());
    }
}

enum class Side { sender, receiver };

constexpr std::string_view kLinkSender[] = {"lanes",        "data_symbols", "parity_symbols",    "interleave",
                                            "symbol_bytes", "key_file",     "heartbeat_interval", "rate"};
constexpr std::string_view kLinkReceiver[] = {"lanes",        "data_symbols", "parity_symbols",     "interleave",
                                              "symbol_bytes", "key_file",     "heartbeat_interval", "receive_buffer"};
constexpr std::string_view kOnlyReceiver[] = {"receive_buffer"};
constexpr std::string_view kOnlySender[] = {"rate"};

LinkConfig read_link(const Document& doc, Side side) {
    LinkConfig link;
    const toml::table* t = doc.table("link", true);
    TableReader r(doc.file, doc.base_dir, *t, "link");
    if (side == Side::sender)
        r.refuse_unknown(kLinkSender, kOnlyReceiver, "receive_buffer is a receiver setting");
    else
        r.refuse_unknown(kLinkReceiver, kOnlySender, "rate is a sender setting (the receiver takes what arrives)");

    const auto lanes = r.strings("lanes");
    if (!lanes) r.missing("lanes", "lanes = [\"127.0.0.1:47000\"]");
    if (lanes->empty()) r.fail_at(r.line("lanes"), "lanes", "list at least one lane, e.g. [\"127.0.0.1:47000\"]");
    std::set<std::pair<std::string, std::uint16_t>> seen;
    for (const auto& [text, line] : *lanes) {
        auto lane = parse_lane(text);
        if (!lane) r.fail_at(line, "lanes", lane.error().message);
        if (!seen.emplace(lane->address, lane->port).second)
            r.fail_at(line, "lanes", "\"" + text + "\" is listed twice");
        link.lanes.push_back(text);
    }

    if (side == Side::sender) {
        auto rate = r.bit_rate("rate", 1'000, 400'000'000'000, "1k and 400G");
        if (!rate) r.missing("rate", "rate = \"800M\" (bits per second on the wire)");
        link.rate_bits_per_s = *rate;
    } else if (auto buf = r.byte_size("receive_buffer", std::uint64_t{64} << 10, std::uint64_t{2} << 30, "64K",
                                      "2G")) {
        link.rcvbuf_bytes = static_cast<std::size_t>(*buf);
    }

    if (auto v = r.integer<unsigned>("data_symbols", 1, 254)) link.data_symbols = *v;
    if (auto v = r.integer<unsigned>("parity_symbols", 1, 254)) link.parity_symbols = *v;
    if (link.data_symbols + link.parity_symbols > 255) {
        const std::string_view at = r.find("parity_symbols") != nullptr ? "parity_symbols" : "data_symbols";
        r.fail_at(r.line(at), at,
                  "data_symbols + parity_symbols must be at most 255 (got " + std::to_string(link.data_symbols) +
                      " + " + std::to_string(link.parity_symbols) + " = " +
                      std::to_string(link.data_symbols + link.parity_symbols) + ")");
    }
    if (auto v = r.integer<unsigned>("interleave", 1, 256)) link.interleave = *v;
    if (auto v = r.integer<std::size_t>("symbol_bytes", 64, 8900)) link.symbol_bytes = *v;
    if (auto p = r.path("key_file")) {
        check_key_file(r, "key_file", *p);
        link.link_key_file = *p;
    }
    if (auto d = r.duration("heartbeat_interval", std::chrono::milliseconds(10), std::chrono::minutes(10)))
        link.heartbeat_interval = *d;
    return link;
}


constexpr std::string_view kTablesSender[] = {"sender", "link", "roles", "audit", "media"};
constexpr std::string_view kTablesReceiver[] = {"receiver", "link", "roles", "import", "audit", "media"};
constexpr std::string_view kMediaSender[] = {"key", "parity"};
constexpr std::string_view kMediaReceiver[] = {"key", "watch", "poll_interval"};
constexpr std::string_view kMediaOnlyReceiver[] = {"watch", "poll_interval"};
constexpr std::string_view kMediaOnlySender[] = {"parity"};

MediaConfig read_media(const Document& doc, Side side) {
    MediaConfig media;
    const toml::table* t = doc.table("media", false);
    if (t == nullptr) return media;
    TableReader r(doc.file, doc.base_dir, *t, "media");
    if (side == Side::sender)
        r.refuse_unknown(kMediaSender, kMediaOnlyReceiver, "watch and poll_interval are receiver settings");
    else
        r.refuse_unknown(kMediaReceiver, kMediaOnlySender, "parity is a sender setting (the medium says what it used)");
    if (auto p = r.path("key")) {
        check_key_file(r, "key", *p, 32);
        media.key_file = *p;
    }
    if (auto v = r.integer<unsigned>("parity", 1, 200)) media.parity_percent = *v;
    if (auto list = r.strings("watch")) {
        for (const auto& [text, line] : *list) {
            fs::path p = text;
            if (!p.is_absolute()) r.fail_at(line, "watch", "\"" + text + "\" is not an absolute path (a mount point)");
            media.watch.push_back(p.lexically_normal());
        }
    }
    if (auto d = r.duration("poll_interval", std::chrono::seconds(1), std::chrono::hours(1))) media.poll_interval = *d;
    return media;
}
constexpr std::string_view kAuditKeys[] = {"database", "key", "checkpoint_interval", "checkpoint_events"};

AuditConfig read_audit(const Document& doc) {
    AuditConfig audit;
    const toml::table* t = doc.table("audit", false);
    if (t == nullptr) return audit;
    TableReader r(doc.file, doc.base_dir, *t, "audit");
    r.refuse_unknown(kAuditKeys, {}, "");
    if (auto p = r.path("database")) audit.database = *p;
    if (auto p = r.path("key")) {
        if (auto key = bundle::load_private_key(*p); !key) {
            r.fail_at(r.line("key"), "key", key.error().message + " (create one with: sluice keygen --out DIR NAME)");
        }
        struct stat st {};
        if (::stat(p->c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
            r.fail_at(r.line("key"), "key", p->string() + " is readable by group or others; run chmod 600 " + p->string());
        }
        audit.key_file = *p;
    }
    if (auto d = r.duration("checkpoint_interval", std::chrono::seconds(1), std::chrono::hours(24)))
        audit.checkpoint_interval = *d;
    if (auto v = r.integer<std::int64_t>("checkpoint_events", 1, 1000000)) audit.checkpoint_events = *v;
    return audit;
}
constexpr std::string_view kImportKeys[] = {"policy", "quarantine_dir", "release_dir"};
constexpr std::string_view kSenderKeys[] = {"state_dir",  "spool_dir",    "control_socket", "metrics_file",
                                            "passes",     "trusted_keys", "min_signers"};
constexpr std::string_view kReceiverKeys[] = {"state_dir",        "incoming_dir",    "control_socket",
                                              "metrics_file",     "trusted_keys",    "min_signers",
                                              "transfer_timeout", "dead_link_after", "max_buffered_blocks"};


}  // namespace

SenderConfig load_sender_config(const fs::path& file) {
    return guarded(file, [&] {
        const Document doc = read_document(file);
        doc.refuse_unknown_tables(kTablesSender, "receiver", "receiver");
        SenderConfig cfg;
        cfg.config_file = absolute_or_given(file);

        const toml::table* t = doc.table("sender", true);
        TableReader r(doc.file, doc.base_dir, *t, "sender");
        r.refuse_unknown(kSenderKeys, {}, "");
        if (auto p = r.path("state_dir")) cfg.state_dir = *p;
        if (auto p = r.path("spool_dir")) cfg.spool_dir = *p;
        if (auto p = r.path("control_socket")) cfg.control_socket = *p;
        if (auto p = r.path("metrics_file")) cfg.metrics_file = *p;
        if (auto v = r.integer<unsigned>("passes", 1, 100)) cfg.passes = *v;
        read_trust(r, cfg.trusted_keys, cfg.min_signers);

        cfg.link = read_link(doc, Side::sender);
        cfg.roles = read_roles(doc);
        cfg.audit = read_audit(doc);
        cfg.media = read_media(doc, Side::sender);
        return cfg;
    });
}

ReceiverConfig load_receiver_config(const fs::path& file) {
    return guarded(file, [&] {
        const Document doc = read_document(file);
        doc.refuse_unknown_tables(kTablesReceiver, "sender", "sender");
        ReceiverConfig cfg;
        cfg.config_file = absolute_or_given(file);

        const toml::table* t = doc.table("receiver", true);
        TableReader r(doc.file, doc.base_dir, *t, "receiver");
        r.refuse_unknown(kReceiverKeys, {}, "");
        if (auto p = r.path("state_dir")) cfg.state_dir = *p;
        if (auto p = r.path("incoming_dir")) cfg.incoming_dir = *p;
        if (auto p = r.path("control_socket")) cfg.control_socket = *p;
        if (auto p = r.path("metrics_file")) cfg.metrics_file = *p;
        read_trust(r, cfg.trusted_keys, cfg.min_signers);
        if (auto d = r.duration("transfer_timeout", std::chrono::seconds(1), std::chrono::hours(24 * 7)))
            cfg.transfer_timeout = *d;
        if (auto d = r.duration("dead_link_after", std::chrono::milliseconds(100), std::chrono::hours(1)))
            cfg.dead_link_after = *d;
        if (auto v = r.integer<std::size_t>("max_buffered_blocks", 1, 65536)) cfg.max_buffered_blocks = *v;

        cfg.link = read_link(doc, Side::receiver);
        cfg.roles = read_roles(doc);
        cfg.audit = read_audit(doc);
        cfg.media = read_media(doc, Side::receiver);
        if (const toml::table* it = doc.table("import", false)) {
            TableReader ir(doc.file, doc.base_dir, *it, "import");
            ir.refuse_unknown(kImportKeys, {}, "");
            ImportConfig import;
            auto policy_file = ir.path("policy");
            if (!policy_file) ir.missing("policy", "policy = \"policy.toml\"");
            import.policy_file = *policy_file;
            if (auto p = ir.path("quarantine_dir")) import.quarantine_dir = *p;
            if (auto p = ir.path("release_dir")) import.release_dir = *p;
            import.policy = std::make_shared<const policy::Policy>(load_policy(import.policy_file));
            cfg.import = std::move(import);
        }
        if (cfg.dead_link_after <= cfg.link.heartbeat_interval)
            r.fail_at(r.line("dead_link_after"), "dead_link_after",
                      "must be longer than link.heartbeat_interval (" + format_duration(cfg.link.heartbeat_interval) +
                          "), or every gap between heartbeats is a dead link");
        return cfg;
    });
}

}  // namespace sluice::daemon
