#include "bag_check.hpp"
#include "text.hpp"

#include <algorithm>
#include <set>

namespace sluice::bundle::detail {
namespace {

constexpr std::string_view kRequiredTags[] = {kBagitTxt, kBagInfoTxt, kManifest, kReleaseJson};
constexpr std::size_t kMaxSignatureFileBytes = 4096;

std::string sig_prefix() { return std::string(kSignaturesDir) + "/"; }

}  // namespace

bool is_signature_path(std::string_view path) {
    return path.size() > kSignaturesDir.size() && path.substr(0, kSignaturesDir.size()) == kSignaturesDir &&
           path[kSignaturesDir.size()] == '/';
}

bool is_tag_path(std::string_view path) {
    // "data" and "signatures" name directories of every bag: never tag files.
    if (path == kPayloadDir || path == kSignaturesDir) return false;
    if (path.find('/') == std::string_view::npos) return true;
    std::string prefix = sig_prefix();
    return path.size() > prefix.size() && path.substr(0, prefix.size()) == prefix &&
           path.find('/', prefix.size()) == std::string_view::npos;
}

Result<void> BagCheck::add_tag_file(const std::string& path, std::string bytes) {
    if (!is_tag_path(path)) return fail(path + ": not a place for a tag file");
    bool signature = is_signature_path(path);
    std::size_t limit = signature ? kMaxSignatureFileBytes : limits_.max_tag_file_bytes;
    if (bytes.size() > limit) return fail(path + ": larger than the " + std::to_string(limit) + "-byte limit");
    tag_bytes_ += bytes.size();
    if (tag_bytes_ > 2 * static_cast<std::uint64_t>(limits_.max_tag_file_bytes)) {
        return fail(path + ": tag files together exceed " + std::to_string(2 * limits_.max_tag_file_bytes) + " bytes");
    }
    if (!tags_.emplace(path, std::move(bytes)).second) return fail(path + ": appears twice");
    return {};
}

Result<void> BagCheck::check_tags(const TrustStore* trust, unsigned min_signers) {
    // 1. It is a BagIt bag at all.
    auto bagit = tags_.find(std::string(kBagitTxt));
    if (bagit == tags_.end()) return fail("bagit.txt: missing (this is not a BagIt bag)");
    if (auto ok = parse_bagit_txt(bagit->second); !ok) return ok;

    // 2. The tag manifest covers every tag file, and every tag file matches it.
    auto tagmanifest = tags_.find(std::string(kTagManifest));
    if (tagmanifest == tags_.end()) return fail("tagmanifest-sha256.txt: missing (the bag cannot be signed or verified)");
    ManifestLimits mlimits{limits_.max_entries, limits_.max_path_bytes};
    auto tag_entries = parse_manifest(tagmanifest->second, mlimits);
    if (!tag_entries) return tag_entries.error().within("tagmanifest-sha256.txt");
    std::set<std::string> listed;
    for (const auto& e : *tag_entries) {
        if (e.path == kTagManifest || is_signature_path(e.path) || !is_tag_path(e.path)) {
            return fail("tagmanifest-sha256.txt: must not list '" + e.path + "'");
        }
        auto it = tags_.find(e.path);
        if (it == tags_.end()) return fail(e.path + ": listed in tagmanifest-sha256.txt but missing");
        if (sha256(it->second) != e.digest) {
            return fail(e.path + ": SHA-256 does not match tagmanifest-sha256.txt (the file was changed)");
        }
        listed.insert(e.path);
    }
    for (auto required : kRequiredTags) {
        if (!listed.count(std::string(required))) {
            if (!tags_.count(std::string(required))) return fail(std::string(required) + ": missing");
            return fail(std::string(required) + ": not listed in tagmanifest-sha256.txt");
        }
    }
    for (const auto& [path, bytes] : tags_) {
        if (path == kTagManifest || is_signature_path(path)) continue;
        if (path == "fetch.txt") {
            return fail("fetch.txt: a bundle must carry its whole payload; fetching files from elsewhere is refused");
        }
        bool manifest = path.rfind("manifest-", 0) == 0 || path.rfind("tagmanifest-", 0) == 0;
        if (manifest && path != kManifest) {
            return fail(path + ": only SHA-256 manifests are checked; a bag carrying other manifests would be "
                        "only partly checked (remove it before signing)");
        }
        if (!listed.count(path)) {
            return fail(path + ": not listed in tagmanifest-sha256.txt, so no signature covers it");
        }
    }
    report_.bundle_id = to_hex(sha256(tagmanifest->second));

    // 3. Signatures, before any payload byte is read: an untrusted bag fails fast.
    if (auto ok = check_signatures(trust, min_signers); !ok) return ok;

    // 4. What the bag says about itself.
    auto release = parse_release(tags_.at(std::string(kReleaseJson)));
    if (!release) return release.error();
    report_.release = std::move(*release);
    auto info = parse_bag_info(tags_.at(std::string(kBagInfoTxt)));
    if (!info) return info.error().within("bag-info.txt");
    report_.bag_info = std::move(*info);
    std::string group = bag_info_value(report_.bag_info, "Bag-Group-Identifier");
    if (group != report_.release.channel) {
        return fail("bag-info.txt: Bag-Group-Identifier '" + printable(group, 80) + "' does not match the channel '" +
                    report_.release.channel + "' in release.json");
    }
    std::string oxum_text = bag_info_value(report_.bag_info, "Payload-Oxum");
    if (oxum_text.empty()) return fail("bag-info.txt: Payload-Oxum missing");
    auto oxum = parse_payload_oxum(oxum_text);
    if (!oxum) return oxum.error().within("bag-info.txt");
    oxum_ = *oxum;

    // 5. The payload manifest.
    auto entries = parse_manifest(tags_.at(std::string(kManifest)), mlimits);
    if (!entries) return entries.error().within("manifest-sha256.txt");
    std::string data_prefix = std::string(kPayloadDir) + "/";
    for (const auto& e : *entries) {
        if (e.path.rfind(data_prefix, 0) != 0) {
            return fail("manifest-sha256.txt: '" + e.path + "' is outside data/");
        }
    }
    manifest_ = std::move(*entries);
    index_.reserve(manifest_.size());
    for (std::size_t i = 0; i < manifest_.size(); ++i) index_.emplace(manifest_[i].path, i);
    seen_.assign(manifest_.size(), false);
    tags_checked_ = true;
    return {};
}

Result<void> BagCheck::check_signatures(const TrustStore* trust, unsigned min_signers) {
    if (trust != nullptr && min_signers == 0) {
        return fail("at least one trusted signer must be required when checking signatures (min_signers = 0)");
    }
    const std::string& message = tags_.at(std::string(kTagManifest));
    std::size_t count = 0;
    std::set<std::string> distinct;
    for (const auto& [path, bytes] : tags_) {
        if (!is_signature_path(path)) continue;
        if (++count > limits_.max_signatures) {
            return fail(std::string(kSignaturesDir) + "/: more than " + std::to_string(limits_.max_signatures) + " signatures");
        }
        std::string name = path.substr(sig_prefix().size());
        if (name.size() <= 4 || name.substr(name.size() - 4) != ".sig" ||
            !is_valid_signer_name(name.substr(0, name.size() - 4))) {
            return fail(path + ": not a signature file (expected signatures/<signer>.sig)");
        }
        auto der = base64_decode(bytes);
        if (!der || der->empty()) return fail(path + ": not a base64 signature");
        SignatureCheck check{path, {}, {}};
        if (trust != nullptr) {
            const TrustedKey* key = trust->find_signer(message, *der);
            if (key == nullptr) {
                return fail(path + ": does not verify with any trusted key (unknown signer, or the bag was altered)");
            }
            check.trusted_key = key->name;
            check.fingerprint = key->fingerprint;
            if (distinct.insert(key->fingerprint).second) report_.distinct_signers.push_back(key->fingerprint);
        }
        report_.signatures.push_back(std::move(check));
    }
    if (trust != nullptr && distinct.size() < min_signers) {
        if (count == 0) return fail("signatures/: the bag is not signed (" + std::to_string(min_signers) + " signer(s) required)");
        std::string names;
        std::set<std::string> named;
        for (const auto& s : report_.signatures) {
            if (named.insert(s.fingerprint).second) names += (names.empty() ? "" : ", ") + s.trusted_key;
        }
        return fail("signatures/: only " + std::to_string(distinct.size()) + " distinct trusted signer(s) (" + names +
                    "), " + std::to_string(min_signers) + " required");
    }
    return {};
}

const Sha256Digest* BagCheck::expected(const std::string& path) const {
    auto it = index_.find(path);
    return it == index_.end() ? nullptr : &manifest_[it->second].digest;
}

Result<void> BagCheck::check_oxum(std::uint64_t bytes, std::uint64_t files) const {
    if (bytes != oxum_.octets || files != oxum_.streams) {
        return fail("data/: the payload has " + std::to_string(bytes) + " bytes in " + std::to_string(files) +
                    " files, bag-info.txt's Payload-Oxum says " + std::to_string(oxum_.octets) + " bytes in " +
                    std::to_string(oxum_.streams) + " files (a payload file was changed, added or removed)");
    }
    return {};
}

Result<void> BagCheck::check_listing(const std::vector<std::pair<std::string, std::uint64_t>>& files) {
    std::vector<bool> present(manifest_.size(), false);
    std::uint64_t bytes = 0;
    for (const auto& [path, size] : files) {
        auto it = index_.find(path);
        if (it == index_.end()) return fail(path + ": not listed in manifest-sha256.txt (extra file in the payload)");
        present[it->second] = true;
        bytes += size;
    }
    for (std::size_t i = 0; i < manifest_.size(); ++i) {
        if (!present[i]) return fail(manifest_[i].path + ": listed in manifest-sha256.txt but missing");
    }
    return check_oxum(bytes, files.size());
}

Result<void> BagCheck::expect_payload(const std::string& path, std::uint64_t size) {
    if (!tags_checked_) return fail(path + ": payload before the tag files");
    auto it = index_.find(path);
    if (it == index_.end()) return fail(path + ": not listed in manifest-sha256.txt (extra file in the payload)");
    if (seen_[it->second]) return fail(path + ": appears twice");
    expected_files_ += 1;
    expected_bytes_ += size;
    if (expected_bytes_ > oxum_.octets || expected_files_ > oxum_.streams) {
        return fail(path + ": the payload grows past what bag-info.txt announces (Payload-Oxum " +
                    std::to_string(oxum_.octets) + " bytes in " + std::to_string(oxum_.streams) + " files)");
    }
    return {};
}

Result<void> BagCheck::on_payload(const std::string& path, const FileDigest& digest) {
    if (!tags_checked_) return fail(path + ": payload before the tag files");
    auto it = index_.find(path);
    if (it == index_.end()) return fail(path + ": not listed in manifest-sha256.txt (extra file in the payload)");
    if (seen_[it->second]) return fail(path + ": appears twice");
    seen_[it->second] = true;
    const auto& want = manifest_[it->second].digest;
    if (want != digest.digest) {
        return fail(path + ": SHA-256 mismatch (manifest " + to_hex(want) + ", file " + to_hex(digest.digest) + ")");
    }
    report_.payload_files += 1;
    report_.payload_bytes += digest.size;
    return {};
}

Result<VerifyReport> BagCheck::finish() {
    if (!tags_checked_) return fail("the tag files were never checked");
    for (std::size_t i = 0; i < manifest_.size(); ++i) {
        if (!seen_[i]) return fail(manifest_[i].path + ": listed in manifest-sha256.txt but missing");
    }
    if (auto ok = check_oxum(report_.payload_bytes, report_.payload_files); !ok) return ok.error();
    return report_;
}

}  // namespace sluice::bundle::detail
