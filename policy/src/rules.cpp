#include "sluice/policy/rules.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <set>

#include "sluice/bundle/bundle.hpp"
#include "sluice/policy/version.hpp"

namespace fs = std::filesystem;

namespace sluice::policy {
namespace {

constexpr std::size_t kNamedAtMost = 5;  // offending files named in a rule's detail

std::string join(const std::vector<std::string>& items, std::string_view sep = ", ") {
    std::string out;
    for (const auto& s : items) {
        if (!out.empty()) out += sep;
        out += s;
    }
    return out;
}

/// "a, b, c and 4 more"
std::string name_some(const std::vector<std::string>& items) {
    std::vector<std::string> shown(items.begin(), items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), kNamedAtMost)));
    std::string out = join(shown);
    if (items.size() > shown.size()) out += " and " + std::to_string(items.size() - shown.size()) + " more";
    return out;
}

bool blank(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; });
}

const std::string* answer(const bundle::Release& r, std::string_view name) {
    if (name == "changes") return &r.changes;
    if (name == "reason") return &r.reason;
    if (name == "approved_by") return &r.approved_by;
    if (name == "rollback_to") return &r.rollback_to;
    return nullptr;
}

std::string bytes_text(std::uint64_t n) {
    static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(n);
    std::size_t u = 0;
    while (v >= 1024.0 && u + 1 < std::size(kUnits)) {
        v /= 1024.0;
        ++u;
    }
    char buf[48];
    if (u == 0) std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(n));
    else std::snprintf(buf, sizeof buf, "%.1f %s", v, kUnits[u]);
    return buf;
}

/// " (1025 > 1024 bytes)" when the rounded sizes read alike ("1.0 KiB" both), else "".
std::string exact(std::uint64_t value, std::uint64_t limit) {
    if (bytes_text(value) != bytes_text(limit)) return {};
    return " (" + std::to_string(value) + " > " + std::to_string(limit) + " bytes)";
}

}  // namespace

std::string_view to_string(ApprovalMode mode) {
    switch (mode) {
        case ApprovalMode::automatic: return "auto";
        case ApprovalMode::manual: return "manual";
        case ApprovalMode::two_person: return "two-person";
    }
    return "?";
}

Result<BundleFacts> gather_facts(const fs::path& bag_dir, const ChannelPolicy& channel) {
    auto summary = bundle::inspect_bundle(bag_dir);
    if (!summary) return summary.error();
    if (!summary->release) return fail("release.json: " + summary->release_error);
    BundleFacts facts;
    facts.bundle_id = summary->bundle_id;
    facts.release = *summary->release;

    bundle::VerifyOptions v;
    v.trust = channel.trust.get();
    v.min_signers = channel.min_signers;
    if (v.trust == nullptr) {
        facts.signature_error = "channel " + channel.name + " has no trusted keys";
    } else if (auto report = bundle::verify_bag_dir(bag_dir, v); report) {
        std::set<std::string> fingerprints;
        for (const auto& sig : report->signatures) {
            if (fingerprints.insert(sig.fingerprint).second) facts.signers.push_back(sig.trusted_key);
        }
        std::sort(facts.signers.begin(), facts.signers.end());
    } else {
        facts.signature_error = report.error().message;
    }

    std::error_code ec;
    // Only the bag's own tag files may sit beside data/: anything else would be
    // released without the type, path and size rules having looked at it.
    static constexpr std::string_view kTagFiles[] = {bundle::kBagitTxt, bundle::kBagInfoTxt, bundle::kReleaseJson,
                                                     bundle::kManifest, bundle::kTagManifest};
    for (fs::directory_iterator it(bag_dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        const bool is_dir = it->is_directory(ec) && !it->is_symlink(ec);
        if (is_dir && name == "data") continue;
        if (!is_dir && std::find(std::begin(kTagFiles), std::end(kTagFiles), name) != std::end(kTagFiles)) continue;
        if (is_dir && name == "signatures") {
            for (fs::directory_iterator sig(it->path(), ec); !ec && sig != end; sig.increment(ec)) {
                if (sig->path().extension() != ".sig" || !sig->is_regular_file(ec))
                    facts.extra_entries.push_back("signatures/" + sig->path().filename().string());
            }
            continue;
        }
        facts.extra_entries.push_back(name + (is_dir ? "/" : ""));
    }
    if (ec) return fail(bag_dir.string() + ": " + ec.message());
    std::sort(facts.extra_entries.begin(), facts.extra_entries.end());

    const fs::path data = bag_dir / "data";
    for (fs::recursive_directory_iterator it(data, ec), end; !ec && it != end; it.increment(ec)) {
        if (!it->is_regular_file(ec)) continue;
        FileFact f;
        f.path = it->path().lexically_relative(bag_dir).generic_string();
        f.size = it->file_size(ec);
        if (ec) return fail(it->path().string() + ": " + ec.message());
        auto type = content_type(it->path());
        if (!type) return type.error();
        f.type = *type;
        facts.payload_bytes += f.size;
        facts.files.push_back(std::move(f));
    }
    if (ec) return fail(data.string() + ": " + ec.message());
    std::sort(facts.files.begin(), facts.files.end(), [](const FileFact& a, const FileFact& b) { return a.path < b.path; });
    return facts;
}

std::vector<RuleResult> evaluate_rules(const ChannelPolicy& channel, const BundleFacts& facts,
                                       const ChannelHistory& history) {
    std::vector<RuleResult> out;
    auto add = [&](std::string rule, bool passed, std::string detail) {
        out.push_back(RuleResult{std::move(rule), passed, std::move(detail)});
    };

    // signatures: the channel's own trusted keys, not the link's.
    {
        const std::string need = std::to_string(channel.min_signers) + " required";
        if (!facts.signature_error.empty()) {
            add("signers", false, facts.signature_error + " (channel " + channel.name + ": " + need + ")");
        } else {
            add("signers", facts.signers.size() >= channel.min_signers,
                std::to_string(facts.signers.size()) + " distinct trusted signer" +
                    (facts.signers.size() == 1 ? "" : "s") + " (" + join(facts.signers) + "); " + need);
        }
    }

    add("bag_layout", facts.extra_entries.empty(),
        facts.extra_entries.empty() ? "only data/ and the bag's own tag files"
                                    : "not a payload file nor one of the bag's own tag files: " + name_some(facts.extra_entries) +
                                          " (put release content under data/)");

    {
        std::vector<std::string> missing;
        for (const auto& name : channel.required_answers) {
            const std::string* a = answer(facts.release, name);
            if (a == nullptr || blank(*a)) missing.push_back(name);
        }
        add("required_answers", missing.empty(),
            missing.empty() ? "release.json answers " + join(channel.required_answers)
                            : "release.json leaves empty: " + join(missing));
    }

    if (channel.max_bundle_bytes) {
        const bool ok = facts.payload_bytes <= *channel.max_bundle_bytes;
        add("max_bundle_bytes", ok,
            bytes_text(facts.payload_bytes) + " of payload; at most " + bytes_text(*channel.max_bundle_bytes) + " allowed" +
                (ok ? "" : exact(facts.payload_bytes, *channel.max_bundle_bytes)));
    }
    if (channel.max_files) {
        const bool ok = facts.files.size() <= *channel.max_files;
        add("max_files", ok,
            std::to_string(facts.files.size()) + " payload files; at most " + std::to_string(*channel.max_files) + " allowed");
    }
    if (channel.max_file_bytes) {
        std::vector<std::string> over;
        std::uint64_t largest = 0;
        for (const auto& f : facts.files) {
            largest = std::max(largest, f.size);
            if (f.size > *channel.max_file_bytes) over.push_back(f.path + " (" + bytes_text(f.size) + ")" + exact(f.size, *channel.max_file_bytes));
        }
        add("max_file_bytes", over.empty(),
            over.empty() ? "largest file " + bytes_text(largest) + "; at most " + bytes_text(*channel.max_file_bytes) + " allowed"
                         : "over " + bytes_text(*channel.max_file_bytes) + ": " + name_some(over));
    }
    if (!channel.allowed_types.empty()) {
        std::vector<std::string> refused;
        std::set<std::string> seen;
        for (const auto& f : facts.files) {
            // An empty file has no content to type (libmagic: inode/x-empty) and
            // none to fear; an empty __init__.py must not need an allowlist entry.
            const bool ok = f.size == 0 ||
                            std::any_of(channel.allowed_types.begin(), channel.allowed_types.end(),
                                        [&](const std::string& p) { return type_matches(p, f.type); });
            if (!ok) refused.push_back(f.path + " is " + f.type);
            seen.insert(f.type);
        }
        add("file_types", refused.empty(),
            refused.empty() ? "every file's content is an allowed type (" + join({seen.begin(), seen.end()}) + ")"
                            : "not allowed by content: " + name_some(refused) + "; allowed: " + join(channel.allowed_types));
    }
    if (!channel.forbidden_paths.empty()) {
        std::vector<std::string> hits;
        for (const auto& f : facts.files) {
            for (const auto& pattern : channel.forbidden_paths) {
                // Case-insensitive: "*.exe" must catch SETUP.EXE too.
                if (fnmatch(pattern.c_str(), f.path.c_str(), FNM_CASEFOLD) == 0) {
                    hits.push_back(f.path + " matches \"" + pattern + "\"");
                    break;
                }
            }
        }
        add("forbidden_paths", hits.empty(),
            hits.empty() ? "no path matches " + join(channel.forbidden_paths) : "forbidden: " + name_some(hits));
    }

    // version monotonicity: never the same version twice, never backwards unless a signed rollback.
    {
        const auto& v = facts.release.version;
        const bool reused = std::find(history.released.begin(), history.released.end(), v) != history.released.end();
        const bool kept = std::find(history.kept.begin(), history.kept.end(), v) != history.kept.end();
        if (reused && facts.release.rollback && kept) {
            add("version", false,
                "version " + v + " is still kept here; switch to it with `sluice rollback " + channel.name + " --to " + v +
                    "` instead of sending it again");
        } else if (reused && facts.release.rollback) {
            add("version", true,
                "signed rollback re-ships " + v + " (released before, no longer kept here); an officer must approve it");
        } else if (reused) {
            add("version", false,
                "version " + v + " was already released on channel " + channel.name +
                    " (a replay, or a version number used twice)");
        } else if (!history.highest_released) {
            add("version", true, "first release of " + v + " on channel " + channel.name);
        } else if (compare_versions(v, *history.highest_released) > 0) {
            add("version", true, v + " is newer than " + *history.highest_released + ", the newest released");
        } else if (facts.release.rollback) {
            add("version", true,
                "signed rollback to " + v + " (newest released: " + *history.highest_released + "); an officer must approve it");
        } else {
            add("version", false,
                v + " is not newer than " + *history.highest_released +
                    ", the newest released on channel " + channel.name +
                    "; an older version is accepted only as a signed rollback (sluice bundle create --rollback)");
        }
    }
    return out;
}

void apply_kept_floor(ChannelHistory& h) {
    if (!h.kept.empty() && (!h.highest_released || compare_versions(h.kept.back(), *h.highest_released) > 0))
        h.highest_released = h.kept.back();
}

bool all_passed(const std::vector<RuleResult>& results) {
    return std::all_of(results.begin(), results.end(), [](const RuleResult& r) { return r.passed; });
}

}  // namespace sluice::policy
