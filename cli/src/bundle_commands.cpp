#include "bundle_commands.hpp"

#include <pwd.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <tuple>

#include <nlohmann/json.hpp>

#include "app.hpp"
#include "output.hpp"
#include "sluice/bundle/bundle.hpp"

namespace sluice::cli {
namespace fs = std::filesystem;
namespace b = sluice::bundle;

namespace {

std::string current_user() {
    if (const passwd* pw = ::getpwuid(::geteuid()); pw != nullptr && pw->pw_name != nullptr) return pw->pw_name;
    return "uid" + std::to_string(::geteuid());
}

/// --created-at, else SOURCE_DATE_EPOCH (reproducible builds), else now.
Result<std::string> creation_time(const std::string& flag) {
    if (!flag.empty()) {
        auto t = b::parse_rfc3339(flag);
        if (!t) return t.error().within("--created-at");
        return b::format_rfc3339(*t);
    }
    if (const char* sde = std::getenv("SOURCE_DATE_EPOCH"); sde != nullptr && *sde != '\0') {
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(sde, &end, 10);
        if (errno != 0 || *end != '\0' || v < 0) return fail("SOURCE_DATE_EPOCH='" + std::string(sde) + "' is not a number of seconds");
        return b::format_rfc3339(v);
    }
    auto now = std::chrono::system_clock::now();
    return b::format_rfc3339(std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
}

Result<nlohmann::json> load_artifacts(const std::string& path) {
    if (path.empty()) return nlohmann::json::object();
    std::error_code ec;
    auto size = fs::file_size(path, ec);
    if (ec) return fail(path + ": " + ec.message());
    if (size > (1 << 20)) return fail(path + ": larger than 1 MiB");
    std::ifstream in(path);
    nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return fail(path + ": --artifacts must be a file holding one JSON object");
    return j;
}

nlohmann::json release_json(const b::Release& r) { return nlohmann::json::parse(b::format_release(r)); }

void print_release(const b::Release& r) {
    std::cout << "channel      " << r.channel << '\n'
              << "version      " << r.version;
    if (r.previous_version) std::cout << " (previous " << *r.previous_version << ")";
    std::cout << '\n'
              << "changes      " << r.changes << '\n'
              << "reason       " << r.reason << '\n'
              << "approved by  " << r.approved_by << '\n'
              << "rollback to  " << r.rollback_to << (r.rollback ? "   (this bundle is a signed rollback)" : "") << '\n'
              << "created      " << r.created_at << " by " << r.created_by << '\n';
}

struct LimitFlags {
    std::uint64_t max_entries = 0;
    std::string max_bytes;
    std::string max_file_bytes;

    void add(CLI::App* cmd) {
        cmd->add_option("--max-entries", max_entries,
                        "Refuse archives with more files and directories (default 1000000)")
            ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1000000000}));
        cmd->add_option("--max-bytes", max_bytes, "Refuse more payload bytes in total (default 4T)");
        cmd->add_option("--max-file-bytes", max_file_bytes, "Refuse a larger single file (default 1T)");
    }
    Result<b::Limits> get() const {
        b::Limits limits;
        if (max_entries != 0) limits.max_entries = max_entries;
        for (auto [text, flag, out] : {std::tuple{&max_bytes, "--max-bytes", &limits.max_total_bytes},
                                       std::tuple{&max_file_bytes, "--max-file-bytes", &limits.max_file_bytes}}) {
            if (text->empty()) continue;
            auto v = parse_size(*text);
            if (!v) return v.error().within(flag);
            *out = *v;
        }
        return limits;
    }
};

}  // namespace

void add_keygen_command(CLI::App& app, int& exit_code) {
    auto* cmd = app.add_subcommand("keygen", "Create an ECDSA P-256 signing key pair (NAME.key, NAME.pub)");
    auto name = std::make_shared<std::string>();
    auto dir = std::make_shared<std::string>();
    cmd->add_option("NAME", *name, "Signer name; also the file stem")->required();
    cmd->add_option("--dir", *dir, "Directory for the key files")->required();
    cmd->callback([=, &exit_code] {
        auto fp = b::generate_key_pair(*dir, *name);
        if (!fp) {
            exit_code = report_error(fp.error());
            return;
        }
        fs::path base = fs::path(*dir) / *name;
        std::cout << "private key  " << base.string() << ".key (mode 0600: keep it secret)\n"
                  << "public key   " << base.string() << ".pub (copy it into verifiers' trust directories)\n"
                  << "fingerprint  sha256:" << *fp << '\n';
    });
}

void add_bundle_commands(CLI::App& app, int& exit_code) {
    auto* bundle = app.add_subcommand("bundle", "Create, sign, verify, pack, unpack and inspect bundles");
    bundle->require_subcommand(1);

    // create
    {
        struct Opts {
            std::string src, out, channel, version, previous, changes, reason, approved_by, rollback_to, created_at,
                created_by, artifacts;
            std::vector<std::string> keys;
            unsigned threads = 0;
            bool sync = false;
            bool rollback = false;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = bundle->add_subcommand("create", "Package a directory of release artifacts as a signed bundle");
        cmd->add_option("SRC", o->src, "Directory whose contents become the payload (SRC/a/b -> data/a/b)")->required();
        cmd->add_option("--out", o->out, "Bag directory to create (must not exist)")->required();
        cmd->add_option("--channel", o->channel, "Release channel (release train), e.g. models")->required();
        cmd->add_option("--version", o->version, "Version of this release")->required();
        cmd->add_option("--previous", o->previous, "Version this release follows");
        cmd->add_option("--changes", o->changes, "What changed")->required();
        cmd->add_option("--reason", o->reason, "Why")->required();
        cmd->add_option("--approved-by", o->approved_by, "Who approved the release upstream")->required();
        cmd->add_option("--rollback-to", o->rollback_to, "Version to return to if this release misbehaves")->required();
        cmd->add_option("--created-at", o->created_at, "RFC 3339 time (default: SOURCE_DATE_EPOCH or now)");
        cmd->add_option("--created-by", o->created_by, "Creator (default: the current user)");
        cmd->add_option("--artifacts", o->artifacts, "JSON file with a free-form object describing the payload");
        cmd->add_option("--sign", o->keys, "Private key to sign with (repeat for several signers)")->required();
        cmd->add_option("--threads", o->threads, "Hashing threads, 1-64 (default: one per CPU, at most 8)")
            ->check(CLI::Range(1U, 64U));
        cmd->add_flag("--sync", o->sync, "Wait until the bag is on disk before returning (see docs/cli.md)");
        cmd->add_flag("--rollback", o->rollback,
                      "Mark this bundle as a signed rollback: it re-ships a version older than the channel's newest");
        cmd->callback([o, &exit_code] {
            b::CreateOptions c;
            c.release.rollback = o->rollback;
            c.source = o->src;
            c.out = o->out;
            c.release.channel = o->channel;
            c.release.version = o->version;
            if (!o->previous.empty()) c.release.previous_version = o->previous;
            c.release.changes = o->changes;
            c.release.reason = o->reason;
            c.release.approved_by = o->approved_by;
            c.release.rollback_to = o->rollback_to;
            c.release.created_by = o->created_by.empty() ? current_user() : o->created_by;
            auto when = creation_time(o->created_at);
            if (!when) {
                exit_code = report_error(when.error());
                return;
            }
            c.release.created_at = *when;
            auto artifacts = load_artifacts(o->artifacts);
            if (!artifacts) {
                exit_code = report_error(artifacts.error());
                return;
            }
            c.release.artifacts = std::move(*artifacts);
            for (const auto& k : o->keys) c.signing_keys.emplace_back(k);
            c.parallelism.threads = o->threads;
            c.sync = o->sync;
            auto id = b::create_bag(c);
            if (!id) {
                exit_code = report_error(id.error());
                return;
            }
            std::cout << "created " << o->out << " (" << o->channel << " " << o->version << ", "
                      << c.signing_keys.size() << " signature(s))\n"
                      << *id << '\n';
        });
    }

    // sign
    {
        auto bag = std::make_shared<std::string>();
        auto key = std::make_shared<std::string>();
        auto name = std::make_shared<std::string>();
        auto* cmd = bundle->add_subcommand("sign", "Add a signature to a bag (after checking its fixity)");
        cmd->add_option("BAGDIR", *bag, "Bag directory")->required();
        cmd->add_option("--key", *key, "Private key (PEM)")->required();
        cmd->add_option("--name", *name, "Signer name (default: the key file's stem)");
        cmd->callback([=, &exit_code] {
            auto signer = b::sign_bag(*bag, *key, name->empty() ? std::nullopt : std::optional(*name));
            if (!signer) {
                exit_code = report_error(signer.error());
                return;
            }
            std::cout << "signed " << *bag << " as signatures/" << *signer << ".sig\n";
        });
    }

    // verify
    {
        struct Opts {
            std::string path, trust;
            unsigned min_signers = 1;
            unsigned threads = 0;
            bool json = false;
            LimitFlags limits;
        };
        auto o = std::make_shared<Opts>();
        auto* cmd = bundle->add_subcommand("verify", "Verify a bag directory or archive: fixity, completeness, signatures");
        cmd->add_option("PATH", o->path, "Bag directory or .tar archive")->required();
        cmd->add_option("--trust", o->trust, "Directory of trusted public keys (*.pub)")->required();
        cmd->add_option("--min-signers", o->min_signers, "Distinct trusted keys that must have signed (default 1)")
            ->check(CLI::Range(1U, 64U));
        cmd->add_option("--threads", o->threads, "Hashing threads, 1-64 (default: one per CPU, at most 8)")
            ->check(CLI::Range(1U, 64U));
        cmd->add_flag("--json", o->json, "Print the verification report as JSON");
        o->limits.add(cmd);
        cmd->callback([o, &exit_code] {
            auto trust = b::TrustStore::load(o->trust);
            if (!trust) {
                exit_code = report_error(trust.error());
                return;
            }
            auto limits = o->limits.get();
            if (!limits) {
                exit_code = report_error(limits.error());
                return;
            }
            b::VerifyOptions v;
            v.trust = &*trust;
            v.min_signers = o->min_signers;
            v.limits = *limits;
            v.parallelism.threads = o->threads;
            auto report = b::verify_bundle(o->path, v);
            if (!report) {
                exit_code = report_error(report.error().within("verification failed"));
                return;
            }
            if (o->json) {
                nlohmann::json j;
                j["bundle_id"] = report->bundle_id;
                j["verified"] = true;
                j["release"] = release_json(report->release);
                j["payload_files"] = report->payload_files;
                j["payload_bytes"] = report->payload_bytes;
                j["signatures"] = nlohmann::json::array();
                for (const auto& s : report->signatures) {
                    j["signatures"].push_back({{"file", s.file}, {"key", s.trusted_key}, {"fingerprint", s.fingerprint}});
                }
                j["distinct_signers"] = report->distinct_signers.size();
                std::cout << j.dump(2) << '\n';
                return;
            }
            std::cout << "verified " << o->path << ": " << report->release.channel << " " << report->release.version
                      << ", " << report->payload_files << " files, " << human_bytes(report->payload_bytes) << '\n';
            for (const auto& s : report->signatures) {
                std::cout << "  " << s.file << ": good signature by trusted key '" << s.trusted_key << "' (sha256:"
                          << s.fingerprint.substr(0, 16) << "…)\n";
            }
            std::cout << report->bundle_id << '\n';
        });
    }

    // pack
    {
        auto bag = std::make_shared<std::string>();
        auto out = std::make_shared<std::string>();
        auto sync = std::make_shared<bool>(false);
        auto* cmd = bundle->add_subcommand("pack", "Write a bag as one canonical pax tar (same bag, same bytes)");
        cmd->add_option("BAGDIR", *bag, "Bag directory")->required();
        cmd->add_option("--out", *out, "Archive file to create (must not exist)")->required();
        cmd->add_flag("--sync", *sync, "Wait until the archive is on disk before returning");
        cmd->callback([=, &exit_code] {
            auto id = b::pack_bag(*bag, *out, {}, *sync);
            if (!id) {
                exit_code = report_error(id.error());
                return;
            }
            std::error_code ec;
            std::cout << "packed " << *bag << " into " << *out << " (" << human_bytes(fs::file_size(*out, ec)) << ")\n"
                      << *id << '\n';
        });
    }

    // unpack
    {
        auto archive = std::make_shared<std::string>();
        auto out = std::make_shared<std::string>();
        auto flags = std::make_shared<LimitFlags>();
        auto sync = std::make_shared<bool>(false);
        auto* cmd = bundle->add_subcommand("unpack", "Extract an untrusted archive (regular files and directories only)");
        cmd->add_option("FILE", *archive, "Archive (.tar)")->required();
        cmd->add_option("--out", *out, "Directory to create (must not exist)")->required();
        cmd->add_flag("--sync", *sync, "Wait until the extracted files are on disk before returning");
        flags->add(cmd);
        cmd->callback([=, &exit_code] {
            auto limits = flags->get();
            if (!limits) {
                exit_code = report_error(limits.error());
                return;
            }
            auto report = b::unpack_archive(*archive, *out, *limits, *sync);
            if (!report) {
                exit_code = report_error(report.error().within("refused " + *archive));
                return;
            }
            std::cout << "unpacked " << report->files << " files (" << human_bytes(report->bytes) << ") into " << *out
                      << "\nnot yet verified: run `sluice bundle verify " << *out << " --trust DIR`\n";
        });
    }

    // inspect
    {
        auto path = std::make_shared<std::string>();
        auto json = std::make_shared<bool>(false);
        auto* cmd = bundle->add_subcommand("inspect", "Show what a bundle says about itself (without verifying it)");
        cmd->add_option("PATH", *path, "Bag directory or .tar archive")->required();
        cmd->add_flag("--json", *json, "Print JSON");
        cmd->callback([=, &exit_code] {
            auto s = b::inspect_bundle(*path);
            if (!s) {
                exit_code = report_error(s.error());
                return;
            }
            std::string oxum = b::bag_info_value(s->bag_info, "Payload-Oxum");
            if (*json) {
                nlohmann::json j;
                j["bundle_id"] = s->bundle_id;
                j["verified"] = false;
                j["release"] = s->release ? release_json(*s->release) : nlohmann::json(nullptr);
                if (!s->release_error.empty()) j["release_error"] = s->release_error;
                nlohmann::json info = nlohmann::json::object();
                for (const auto& [k, v] : s->bag_info) info[k] = v;
                j["bag_info"] = info;
                j["manifest_files"] = s->manifest_files;
                j["signatures"] = s->signature_files;
                std::cout << j.dump(2) << '\n';
                return;
            }
            std::cout << "bundle       " << s->bundle_id << '\n';
            if (s->release) print_release(*s->release);
            else std::cout << "release      unreadable: " << s->release_error << '\n';
            std::cout << "payload      " << s->manifest_files << " files in the manifest";
            if (auto ox = b::parse_payload_oxum(oxum)) std::cout << ", " << human_bytes(ox->octets);
            std::cout << '\n';
            std::cout << "signatures   ";
            if (s->signature_files.empty()) std::cout << "none";
            for (std::size_t i = 0; i < s->signature_files.size(); ++i) {
                std::cout << (i ? ", " : "") << s->signature_files[i];
            }
            std::cout << "\nstatus       NOT VERIFIED: run `sluice bundle verify " << *path << " --trust DIR`\n";
        });
    }
}

}  // namespace sluice::cli
