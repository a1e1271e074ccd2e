#include "media_commands.hpp"

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <memory>
#include <sstream>

#include "app.hpp"
#include "daemon_commands.hpp"
#include "output.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/metadata.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace sluice::cli {
namespace {

std::string seconds(double s) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(1) << s << " s";
    return out.str();
}

/// Puts the key file's bytes (base64) in the request: the daemon never opens
/// a key path a caller names. False, with the error reported, when unreadable.
bool add_key(json& request, const std::string& file, int& exit_code) {
    if (file.empty()) return true;
    auto key = media::load_key(file);
    if (!key) {
        exit_code = report_error(key.error());
        return false;
    }
    request["key"] = bundle::base64_encode(std::span(reinterpret_cast<const std::uint8_t*>(key->secret.data()), key->secret.size()));
    return true;
}

std::string ranges_text(const json& ranges) {
    std::string out;
    for (const auto& r : ranges) {
        if (!out.empty()) out += ", ";
        auto a = r.at(0).get<std::uint64_t>(), b = r.at(1).get<std::uint64_t>();
        out += std::to_string(a) + (a == b ? "" : "-" + std::to_string(b));
    }
    return out;
}

void print_needed(const json& needed, const std::string& indent) {
    if (needed.empty()) return;
    std::cout << indent << "still needed:\n";
    for (const auto& n : needed) std::cout << indent << "  " << n.value("text", "") << "\n";
}

/// Exit status of an import: 0 read (even if more volumes are needed), 1 when
/// nothing could be read, a volume failed, or the completed bundle was refused.
int print_import(const json& r) {
    int rc = kExitOk;
    std::cout << r.value("path", "") << "\n";
    for (const auto& v : r["volumes"]) {
        std::cout << "  volume " << v.value("volume", 0u) << " of " << v.value("volumes", 0u) << ": bundle "
                  << v.value("bundle", "") << "\n    " << v.value("channel", "") << " " << v.value("version", "")
                  << (v.value("encrypted", false) ? ", encrypted" : "") << "\n";
        for (const auto& n : v["notes"]) std::cout << "    note: " << n.get<std::string>() << "\n";
        if (v.contains("error")) {
            std::cout << "    FAILED: " << v["error"].get<std::string>() << "\n";
            rc = kExitFailed;
            continue;
        }
        if (v.value("already_delivered", false)) {
            std::cout << "    already received earlier; nothing to do\n";
            continue;
        }
        const auto blocks = v.value("blocks", std::uint64_t{0});
        std::cout << "    blocks " << blocks << ": " << v.value("blocks_direct", std::uint64_t{0}) << " intact, "
                  << v.value("blocks_repaired", std::uint64_t{0}) << " repaired with parity, "
                  << v.value("blocks_held_before", std::uint64_t{0}) << " held already";
        if (!v["unrecoverable"].empty()) std::cout << ", UNRECOVERABLE: " << ranges_text(v["unrecoverable"]);
        std::cout << "\n";
        for (const auto& d : v["damaged_segments"]) {
            std::cout << "    damaged: " << d.value("segment", "") << " ("
                      << (d.value("present", false)
                              ? std::to_string(d.value("bad", std::uint64_t{0})) + " bad, " +
                                    std::to_string(d.value("records", std::uint64_t{0}) - d.value("read", std::uint64_t{0})) +
                                    " missing of " + std::to_string(d.value("records", std::uint64_t{0})) + " records"
                              : std::string("missing"))
                      << ")\n";
        }
        std::cout << "    archive: " << v.value("archive_blocks_held", std::uint64_t{0}) << " of "
                  << v.value("archive_blocks", std::uint64_t{0}) << " blocks held\n";
        if (v.contains("outcome")) {
            const auto& o = v["outcome"];
            if (o.contains("delivered")) {
                std::cout << "    complete: verified and delivered to " << o["delivered"].get<std::string>() << "\n";
            } else if (o.contains("refused")) {
                std::cout << "    complete but REFUSED: " << o["refused"].get<std::string>() << "\n";
                rc = kExitFailed;
            } else if (o.contains("deferred")) {
                std::cout << "    complete; delivery deferred (retried every 30 s): " << o["deferred"].get<std::string>() << "\n";
            }
        }
        if (v.contains("needed")) print_needed(v["needed"], "    ");
    }
    for (const auto& p : r["problems"]) {
        std::cout << "  NOT READ: " << p.get<std::string>() << "\n";
        rc = kExitFailed;
    }
    for (const auto& i : r["ignored"]) std::cout << "  ignored: " << i.get<std::string>() << "\n";
    if (r.contains("note")) std::cout << "  " << r["note"].get<std::string>() << "\n";
    if (r["volumes"].empty() && rc == kExitOk) rc = kExitFailed;
    return rc;
}

}  // namespace

void add_media_commands(CLI::App& app, int& exit_code) {
    auto* media_cmd = app.add_subcommand("media", "Write bundles to removable media and import them");
    media_cmd->require_subcommand(1);
    {
        struct Opts {
            std::string bundle, volume_size, key_file;
            std::vector<std::string> targets;
            unsigned parity = 0, volume = 1;
            std::string socket = default_socket("SLUICE_SENDER_SOCKET", "/run/sluice/sender.sock");
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = media_cmd->add_subcommand(
            "write", "Verify a bundle and write it to mounted media through the sender daemon (recorded in its audit log)");
        cmd->add_option("bundle", o->bundle, "Bundle archive (.tar) or bag directory")->required();
        cmd->add_option("--to", o->targets, "Mount directory of a medium; repeat for volumes 2, 3, …")->required();
        cmd->add_option("--volume-size", o->volume_size,
                        "Capacity of one volume (e.g. 32G); default: the free space of the first --to");
        cmd->add_option("--parity", o->parity, "Reed-Solomon parity per block in % (default: the sender's [media] parity, 10)")
            ->check(CLI::Range(1u, 200u));
        cmd->add_option("--encrypt-key", o->key_file,
                        "Pre-shared key file (32+ bytes): AES-256-GCM; default: the sender's [media] key, if any");
        cmd->add_option("--volume", o->volume, "Number of the volume the first --to receives (default 1)")
            ->check(CLI::Range(1u, media::kMaxVolumes));
        cmd->add_option("--socket", o->socket, "Sender control socket ($SLUICE_SENDER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "Print the daemon's answer as JSON");
        cmd->callback([o, &exit_code] {
            json request{{"command", "media_write"}, {"volume", o->volume}};
            std::error_code ec;
            request["path"] = fs::absolute(o->bundle, ec).string();
            request["to"] = json::array();
            for (const auto& t : o->targets) request["to"].push_back(fs::absolute(t, ec).lexically_normal().string());
            if (!o->volume_size.empty()) {
                auto size = parse_size(o->volume_size);
                if (!size) {
                    exit_code = report_error(size.error().within("--volume-size"));
                    return;
                }
                request["volume_bytes"] = *size;
            }
            if (o->parity != 0) request["parity"] = o->parity;
            if (!add_key(request, o->key_file, exit_code)) return;
            auto r = call(o->socket, request, exit_code);
            if (!r) return;
            const auto& m = (*r)["media"];
            if (o->json_out) {
                std::cout << m.dump(2) << "\n";
                return;
            }
            const auto& l = m["layout"];
            std::cout << "bundle " << m.value("bundle", "") << "\n  " << m.value("channel", "") << " "
                      << m.value("version", "") << ", " << human_bytes(m.value("archive_bytes", std::uint64_t{0}))
                      << (m.value("encrypted", false) ? ", encrypted (AES-256-GCM)" : ", not encrypted") << "\n"
                      << "  layout: K=" << l.value("data_symbols", 0) << " M=" << l.value("parity_symbols", 0)
                      << " symbol=" << l.value("symbol_bytes", 0) << " (" << l.value("parity_percent", 0)
                      << " % parity), " << l.value("stripes", 0) << " segments per set, " << l.value("run", 0)
                      << " symbols of each block per segment\n";
            const unsigned volumes = m.value("volumes", 0u);
            unsigned last = 0;
            for (const auto& w : m["written"]) {
                last = w.value("volume", 0u);
                std::cout << "wrote volume " << last << " of " << volumes << " to " << w.value("directory", "") << "\n  "
                          << human_bytes(w.value("bytes", std::uint64_t{0})) << " in " << w.value("segments", 0)
                          << " segments; written and synced in " << seconds(w.value("write_seconds", 0.0))
                          << ", read back and checked in " << seconds(w.value("verify_seconds", 0.0)) << "\n";
            }
            if (last < volumes) {
                std::cout << "next: volume " << last + 1 << " of " << volumes << "; insert the next medium and run\n"
                          << "  sluice media write " << o->bundle << " --to MOUNTDIR --volume " << last + 1
                          << " --volume-size " << m.value("volume_bytes", std::uint64_t{0})
                          << (o->parity != 0 ? " --parity " + std::to_string(o->parity) : std::string())
                          << (o->key_file.empty() ? std::string() : " --encrypt-key " + o->key_file) << "\n";
            } else {
                std::cout << "the last volume (" << volumes << " of " << volumes << ") is written\n";
            }
        });
    }
    {
        struct Opts {
            std::string mount, key_file;
            std::string socket = default_socket("SLUICE_RECEIVER_SOCKET", "/run/sluice/receiver.sock");
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = media_cmd->add_subcommand(
            "import", "Read a medium's volumes into the receiver daemon; a complete bundle goes on to verification and import");
        cmd->add_option("mountdir", o->mount, "Mount directory of the medium")->required();
        cmd->add_option("--key", o->key_file, "Key file of an encrypted medium (default: the receiver's [media] key)");
        cmd->add_option("--socket", o->socket, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "Print the daemon's answer as JSON");
        cmd->callback([o, &exit_code] {
            std::error_code ec;
            json request{{"command", "media_import"}, {"path", fs::absolute(o->mount, ec).lexically_normal().string()}};
            if (!add_key(request, o->key_file, exit_code)) return;
            auto r = call(o->socket, request, exit_code);
            if (!r) return;
            if (o->json_out) {
                std::cout << (*r)["media"].dump(2) << "\n";
                return;
            }
            exit_code = print_import((*r)["media"]);
        });
    }
    {
        struct Opts {
            std::string socket = default_socket("SLUICE_RECEIVER_SOCKET", "/run/sluice/receiver.sock");
            bool json_out = false, all = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = media_cmd->add_subcommand("status", "Bundles arriving on media: volumes read, and what is still needed");
        cmd->add_flag("--all", o->all, "Also bundles already complete");
        cmd->add_option("--socket", o->socket, "Receiver control socket ($SLUICE_RECEIVER_SOCKET)");
        cmd->add_flag("--json", o->json_out, "JSON output");
        cmd->callback([o, &exit_code] {
            auto r = call(o->socket, {{"command", "media_status"}}, exit_code);
            if (!r) return;
            if (o->json_out) {
                r->erase("ok");
                std::cout << r->dump(2) << "\n";
                return;
            }
            std::size_t shown = 0;
            for (const auto& s : (*r)["sets"]) {
                const bool done = !s["outcome"].is_null();
                if (done && !o->all) continue;
                ++shown;
                std::cout << s.value("bundle", "") << "\n  " << s.value("channel", "") << " " << s.value("version", "") << ", "
                          << s.value("volumes", 0u) << " volume(s)" << (s.value("encrypted", false) ? ", encrypted" : "")
                          << "\n";
                for (const auto& v : s["volumes_read"]) {
                    std::cout << "  volume " << v.value("volume", 0u) << " read " << v.value("at", "") << " from "
                              << v.value("from", "") << " by " << v.value("by", "") << "\n";
                }
                if (done) {
                    std::cout << "  complete: " << s["outcome"].dump() << "\n";
                } else if (s.contains("needed")) {
                    print_needed(s["needed"], "  ");
                }
            }
            if (shown == 0) std::cout << "no bundle is waiting for media" << (o->all ? "" : " (--all shows completed ones)") << "\n";
            const auto& watch = (*r)["watch"];
            if (!watch.empty()) std::cout << "watching: " << watch.dump() << "\n";
        });
    }
    {
        struct Opts {
            std::string mount, key_file;
            bool json_out = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = media_cmd->add_subcommand("show", "Describe a medium without importing it (no daemon needed)");
        cmd->add_option("mountdir", o->mount, "Mount directory of the medium")->required();
        cmd->add_option("--key", o->key_file, "Key file of an encrypted medium");
        cmd->add_flag("--json", o->json_out, "JSON output");
        cmd->callback([o, &exit_code] {
            std::optional<media::MediaKey> key;
            if (!o->key_file.empty()) {
                auto loaded = media::load_key(o->key_file);
                if (!loaded) {
                    exit_code = report_error(loaded.error());
                    return;
                }
                key = std::move(*loaded);
            }
            auto scan = media::scan_medium(o->mount, key ? &*key : nullptr);
            if (!scan) {
                exit_code = report_error(scan.error());
                return;
            }
            json out{{"volumes", json::array()}, {"problems", scan->problems}, {"ignored", scan->ignored}};
            for (const auto& fv : scan->volumes) {
                const auto& ix = fv.index;
                json segs = json::array();
                for (const auto& e : ix.segments) {
                    std::error_code ec;
                    auto size = fs::file_size(fv.directory / e.name(ix.volume), ec);
                    segs.push_back({{"name", e.name(ix.volume)}, {"bytes", e.bytes}, {"xxh128", bundle::to_hex(std::span(reinterpret_cast<const std::uint8_t*>(e.xxh128.data()), e.xxh128.size()))},
                                    {"found_bytes", ec ? json(nullptr) : json(size)}});
                }
                out["volumes"].push_back({{"directory", fv.directory.string()},
                                          {"bundle", transfer::to_hex(ix.info.bundle_id)},
                                          {"channel", ix.info.channel},
                                          {"version", ix.info.version},
                                          {"volume", ix.volume},
                                          {"volumes", ix.volumes},
                                          {"blocks", json::array({ix.first_block, ix.end_block})},
                                          {"archive_bytes", ix.info.archive_bytes},
                                          {"archive_sha256", transfer::to_hex(ix.info.archive_sha256)},
                                          {"data_symbols", ix.layout.fec.data_symbols},
                                          {"parity_symbols", ix.layout.fec.parity_symbols},
                                          {"symbol_bytes", ix.layout.fec.symbol_bytes},
                                          {"encrypted", ix.layout.encrypted},
                                          {"written_at", ix.written_at},
                                          {"written_by", ix.written_by},
                                          {"host", ix.host},
                                          {"hop_record", !ix.hops.empty()},
                                          {"notes", fv.notes},
                                          {"segments", segs}});
            }
            if (o->json_out) {
                std::cout << out.dump(2) << "\n";
            } else {
                for (const auto& v : out["volumes"]) {
                    std::cout << v.value("directory", "") << "\n  volume " << v.value("volume", 0u) << " of "
                              << v.value("volumes", 0u) << ": bundle " << v.value("bundle", "") << "\n  "
                              << v.value("channel", "") << " " << v.value("version", "") << ", "
                              << human_bytes(v.value("archive_bytes", std::uint64_t{0})) << ", blocks "
                              << v["blocks"][0].get<std::uint64_t>() << "-" << v["blocks"][1].get<std::uint64_t>() - 1
                              << (v.value("encrypted", false) ? ", encrypted" : "") << "\n  written "
                              << v.value("written_at", "") << " by " << v.value("written_by", "") << " on "
                              << v.value("host", "") << (v.value("hop_record", false) ? ", with the sender's audit events" : "")
                              << "\n";
                    std::size_t short_ = 0;
                    for (const auto& sgm : v["segments"]) {
                        if (sgm["found_bytes"].is_null() || sgm["found_bytes"].get<std::uint64_t>() != sgm["bytes"].get<std::uint64_t>()) {
                            ++short_;
                            std::cout << "  segment " << sgm.value("name", "") << ": "
                                      << (sgm["found_bytes"].is_null() ? std::string("missing")
                                                                        : "size " + sgm["found_bytes"].dump() + ", expected " + sgm["bytes"].dump())
                                      << "\n";
                        }
                    }
                    std::cout << "  " << v["segments"].size() << " segments, " << short_ << " missing or of the wrong size\n";
                    for (const auto& n : v["notes"]) std::cout << "  note: " << n.get<std::string>() << "\n";
                }
                for (const auto& p : out["problems"]) std::cout << "NOT READABLE: " << p.get<std::string>() << "\n";
                for (const auto& i : out["ignored"]) std::cout << "ignored: " << i.get<std::string>() << "\n";
                if (out["volumes"].empty() && out["problems"].empty()) std::cout << "no Sluice volume on " << o->mount << "\n";
            }
            if (!scan->problems.empty() || scan->volumes.empty()) exit_code = kExitFailed;
        });
    }
}

}  // namespace sluice::cli
