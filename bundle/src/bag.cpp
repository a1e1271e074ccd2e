#include <sys/stat.h>

#include <algorithm>
#include <set>

#include "bag_dir.hpp"
#include "text.hpp"
#include "sluice/core/version.hpp"
#include "sluice/bundle/bundle.hpp"

namespace sluice::bundle {
namespace fs = std::filesystem;
using detail::BagCheck;
using detail::PayloadListing;

namespace detail {

namespace {

std::string generic_relative(const fs::path& p, const fs::path& base) {
    return p.lexically_relative(base).generic_string();
}

/// Walks `root` (sorted), refusing anything but regular files and directories.
/// `prefix` is prepended to the reported relative paths.
Result<PayloadListing> walk_regular_files(const fs::path& root, const std::string& prefix, const Limits& limits,
                                          bool refuse_hard_links) {
    PayloadListing out;
    std::error_code ec;
    auto it = fs::recursive_directory_iterator(root, fs::directory_options::none, ec);
    if (ec) return fail(root.string() + ": cannot list: " + ec.message());
    for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (ec) return fail(root.string() + ": cannot list: " + ec.message());
        std::string rel = prefix + generic_relative(it->path(), root);
        auto status = it->symlink_status(ec);
        if (ec) return fail(rel + ": cannot stat: " + ec.message());
        if (out.size() >= limits.max_entries) {
            return fail(root.string() + ": more than " + std::to_string(limits.max_entries) + " files");
        }
        if (auto ok = check_relative_path(rel, limits.max_path_bytes); !ok) return ok.error().within(printable(rel));
        if (fs::is_symlink(status)) return fail(rel + ": symbolic link (bundles carry regular files only)");
        if (fs::is_directory(status)) continue;
        if (!fs::is_regular_file(status)) return fail(rel + ": special file (bundles carry regular files only)");
        auto size = it->file_size(ec);
        if (ec) return fail(rel + ": cannot stat: " + ec.message());
        if (refuse_hard_links && it->hard_link_count(ec) > 1) {
            // Another name for the same inode could change the bag's content from outside it.
            return fail(rel + ": has other hard links (a bag's files must not be shared with files outside it)");
        }
        if (size > limits.max_file_bytes) {
            return fail(rel + ": " + std::to_string(size) + " bytes is over the per-file limit of " +
                        std::to_string(limits.max_file_bytes));
        }
        out.emplace_back(std::move(rel), size);
    }
    if (ec) return fail(root.string() + ": cannot list: " + ec.message());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

Result<void> read_bag_tags(const fs::path& bag_dir, BagCheck& check, const Limits& limits) {
    std::error_code ec;
    if (!fs::is_directory(bag_dir, ec)) return fail(bag_dir.string() + ": not a directory");
    std::vector<fs::directory_entry> entries;
    constexpr std::size_t kMaxRootEntries = 256;  // a bag root holds about six
    for (auto it = fs::directory_iterator(bag_dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (entries.size() == kMaxRootEntries) {
            return fail(bag_dir.string() + ": more than " + std::to_string(kMaxRootEntries) +
                        " entries in the bag root (this is not a bag)");
        }
        entries.push_back(*it);
    }
    if (ec) return fail(bag_dir.string() + ": cannot list: " + ec.message());
    std::sort(entries.begin(), entries.end());
    for (const auto& entry : entries) {
        std::string name = entry.path().filename().string();
        if (auto ok = check_relative_path(name, limits.max_path_bytes); !ok) return ok.error().within(printable(name));
        auto status = entry.symlink_status(ec);
        if (fs::is_symlink(status)) return fail(name + ": symbolic link (bags carry regular files only)");
        if (fs::is_directory(status)) {
            if (name == kPayloadDir) continue;
            if (name != kSignaturesDir) return fail(name + "/: unexpected directory in the bag (no signature covers it)");
            auto sigs = walk_regular_files(entry.path(), std::string(kSignaturesDir) + "/", limits, true);
            if (!sigs) return sigs.error();
            for (const auto& [path, size] : *sigs) {
                if (!is_tag_path(path)) return fail(path + ": unexpected file in signatures/");
                auto bytes = read_small_file(bag_dir / path, 4096);
                if (!bytes) return bytes.error();
                if (auto ok = check.add_tag_file(path, std::move(*bytes)); !ok) return ok;
            }
            continue;
        }
        if (!fs::is_regular_file(status)) return fail(name + ": special file (bags carry regular files only)");
        auto bytes = read_small_file(entry.path(), limits.max_tag_file_bytes);
        if (!bytes) return bytes.error();
        if (auto ok = check.add_tag_file(name, std::move(*bytes)); !ok) return ok;
    }
    return {};
}

Result<PayloadListing> list_payload(const fs::path& bag_dir, const Limits& limits) {
    std::error_code ec;
    fs::path data = bag_dir / kPayloadDir;
    auto status = fs::symlink_status(data, ec);
    if (!fs::exists(status)) return PayloadListing{};
    if (!fs::is_directory(status)) return fail("data: not a directory");
    return walk_regular_files(data, std::string(kPayloadDir) + "/", limits, true);
}

}  // namespace detail

namespace {

struct SourceFile {
    fs::path source;
    std::string bag_path;  // "data/…"
    std::uint64_t size;
};

std::string bag_info_for(const Release& release, std::uint64_t bytes, std::size_t files) {
    BagInfo info = {
        {"Bag-Software-Agent", std::string("sluice ") + kVersion},
        {"Bagging-Date", release.created_at.substr(0, 10)},
        {"Bag-Group-Identifier", release.channel},
        {"External-Identifier", release.channel + "/" + release.version},
        {"Payload-Oxum", std::to_string(bytes) + "." + std::to_string(files)},
    };
    return format_bag_info(info);
}

Result<void> write_signature(const fs::path& bag_dir, const std::string& signer, const Key& key,
                             std::string_view tagmanifest, bool sync) {
    auto sig = sign_message(key, tagmanifest);
    if (!sig) return sig.error();
    fs::path dir = bag_dir / kSignaturesDir;
    std::error_code ec;
    fs::create_directory(dir, ec);
    if (ec) return fail(dir.string() + ": cannot create: " + ec.message());
    fs::path final_path = dir / (signer + ".sig");
    auto staging = detail::StagingFile::create_beside(final_path);
    if (!staging) return staging.error();
    std::string text = base64_encode(*sig) + "\n";
    if (auto ok = detail::write_all(staging->fd(), std::as_bytes(std::span(text.data(), text.size())), final_path.string());
        !ok) {
        return ok;
    }
    return staging->commit(sync);
}

}  // namespace

Result<std::string> create_bag(const CreateOptions& options) {
    if (auto ok = validate_release(options.release); !ok) return ok.error();
    // What we write must be what every reader accepts (size and nesting limits included).
    if (auto reread = parse_release(format_release(options.release)); !reread) {
        return reread.error().within("the release description would be refused by verify");
    }
    if (options.signing_keys.empty()) return fail("no signing key given: a bundle must be signed (--sign KEY)");
    std::error_code ec;
    if (!fs::is_directory(options.source, ec)) return fail(options.source.string() + ": not a directory");

    // Load every key before touching any data: a bad key fails in a second, not after copying 100 GiB.
    std::vector<std::pair<std::string, Key>> signers;
    std::set<std::string> fingerprints;
    for (const auto& key_path : options.signing_keys) {
        std::string name = key_path.stem().string();
        if (!is_valid_signer_name(name)) return fail(key_path.string() + ": key file name does not give a valid signer name");
        auto key = load_private_key(key_path);
        if (!key) return key.error();
        for (const auto& [other, k] : signers) {
            if (other == name) return fail(key_path.string() + ": two keys named '" + name + "'");
        }
        if (!fingerprints.insert(key->fingerprint()).second) return fail(key_path.string() + ": the same key is given twice");
        signers.emplace_back(name, std::move(*key));
    }

    Limits limits;
    auto listing = detail::walk_regular_files(options.source, std::string(kPayloadDir) + "/", limits, false);
    if (!listing) return listing.error().within(options.source.string());
    std::vector<SourceFile> files;
    files.reserve(listing->size());
    std::set<fs::path> dirs;
    for (auto& [bag_path, size] : *listing) {
        fs::path source = options.source / fs::path(bag_path.substr(kPayloadDir.size() + 1));
        files.push_back(SourceFile{source, bag_path, size});
        for (fs::path p = fs::path(bag_path).parent_path(); !p.empty(); p = p.parent_path()) dirs.insert(p);
    }

    auto staging = detail::StagingDir::create_beside(options.out);
    if (!staging) return staging.error();
    const fs::path& root = staging->path();
    dirs.insert(fs::path(kPayloadDir));
    for (const auto& d : dirs) {  // std::set orders parents before children
        if (::mkdir((root / d).c_str(), 0755) != 0) {
            return fail((root / d).string() + ": cannot create: " + detail::errno_text(errno));
        }
    }

    std::vector<detail::FileDigest> digests(files.size());
    std::vector<std::uint64_t> sizes;
    for (const auto& f : files) sizes.push_back(f.size);
    auto copied = detail::parallel_for(detail::largest_first(sizes), detail::worker_count(options.parallelism.threads),
                                       [&](std::size_t i, std::span<std::byte> buffer) -> Result<void> {
                                           auto d = detail::copy_and_hash(files[i].source, root / files[i].bag_path,
                                                                          buffer, options.sync);
                                           if (!d) return d.error();
                                           digests[i] = *d;
                                           return {};
                                       });
    if (!copied) return copied.error();

    std::vector<ManifestEntry> manifest;
    manifest.reserve(files.size());
    std::uint64_t total = 0;
    for (std::size_t i = 0; i < files.size(); ++i) {
        if (digests[i].size != files[i].size) {
            return fail(files[i].source.string() + ": changed size while being copied; nothing was created");
        }
        manifest.push_back(ManifestEntry{files[i].bag_path, digests[i].digest});
        total += digests[i].size;
    }

    // Tag files, then the tag manifest over them (sorted by name), then signatures.
    std::vector<std::pair<std::string, std::string>> tags = {
        {std::string(kBagInfoTxt), bag_info_for(options.release, total, files.size())},
        {std::string(kBagitTxt), format_bagit_txt()},
        {std::string(kManifest), format_manifest(manifest)},
        {std::string(kReleaseJson), format_release(options.release)},
    };
    std::vector<ManifestEntry> tag_manifest;
    for (const auto& [name, bytes] : tags) {
        if (auto ok = detail::write_new_file(root / name, bytes, 0644, false); !ok) return ok.error();
        tag_manifest.push_back(ManifestEntry{name, sha256(bytes)});
    }
    std::string tagmanifest = format_manifest(tag_manifest);
    if (auto ok = detail::write_new_file(root / kTagManifest, tagmanifest, 0644, false); !ok) return ok.error();
    for (const auto& [name, key] : signers) {
        if (auto ok = write_signature(root, name, key, tagmanifest, false); !ok) return ok.error();
    }
    if (auto ok = staging->commit(options.sync); !ok) return ok.error();
    return to_hex(sha256(tagmanifest));
}

namespace {

/// Full verification of a bag directory; `check` keeps the tag files for the caller.
Result<VerifyReport> verify_dir_with(const fs::path& bag_dir, const VerifyOptions& options, BagCheck& check) {
    if (auto ok = detail::read_bag_tags(bag_dir, check, options.limits); !ok) return ok.error();
    if (auto ok = check.check_tags(options.trust, options.min_signers); !ok) return ok.error();
    auto listing = detail::list_payload(bag_dir, options.limits);
    if (!listing) return listing.error();
    // Extra, missing and mis-sized payload is refused before a single byte is hashed.
    if (auto ok = check.check_listing(*listing); !ok) return ok.error();

    std::vector<detail::FileDigest> digests(listing->size());
    std::vector<std::uint64_t> sizes;
    for (const auto& entry : *listing) sizes.push_back(entry.second);
    auto hashed = detail::parallel_for(detail::largest_first(sizes), detail::worker_count(options.parallelism.threads),
                                       [&](std::size_t i, std::span<std::byte> buffer) -> Result<void> {
                                           auto d = detail::hash_file(bag_dir / (*listing)[i].first, buffer);
                                           if (!d) return d.error();
                                           digests[i] = *d;
                                           return {};
                                       });
    if (!hashed) return hashed.error();
    for (std::size_t i = 0; i < listing->size(); ++i) {  // in path order: the first bad file is named
        if (auto ok = check.on_payload((*listing)[i].first, digests[i]); !ok) return ok.error();
    }
    return check.finish();
}

}  // namespace

Result<VerifyReport> verify_bag_dir(const fs::path& bag_dir, const VerifyOptions& options) {
    BagCheck check(options.limits);
    return verify_dir_with(bag_dir, options, check);
}

Result<VerifyReport> verify_bundle(const fs::path& path, const VerifyOptions& options) {
    std::error_code ec;
    auto status = fs::status(path, ec);
    if (fs::is_directory(status)) return verify_bag_dir(path, options);
    if (fs::is_regular_file(status)) return verify_archive(path, options);
    if (!fs::exists(status)) return fail(path.string() + ": no such file or directory");
    return fail(path.string() + ": neither a bag directory nor an archive file");
}

Result<std::string> sign_bag(const fs::path& bag_dir, const fs::path& key_path, std::optional<std::string> signer_name,
                             Parallelism parallelism) {
    std::string name = signer_name.value_or(key_path.stem().string());
    if (!is_valid_signer_name(name)) {
        return fail("signer name '" + name + "' is not valid: use 1-64 of A-Z a-z 0-9 . _ - starting with a letter or digit");
    }
    auto key = load_private_key(key_path);
    if (!key) return key.error();
    // Never sign what does not verify: check structure and fixity of every byte first.
    VerifyOptions options;
    options.parallelism = parallelism;
    BagCheck check(options.limits);
    auto report = verify_dir_with(bag_dir, options, check);
    if (!report) return report.error().within("refusing to sign " + bag_dir.string());
    fs::path target = bag_dir / kSignaturesDir / (name + ".sig");
    std::error_code ec;
    if (fs::exists(fs::symlink_status(target, ec))) {
        return fail(target.string() + ": already exists (signer '" + name + "' has signed this bag)");
    }
    const std::string& tagmanifest = check.tag_files().at(std::string(kTagManifest));
    for (const auto& [path, bytes] : check.tag_files()) {
        if (!detail::is_signature_path(path)) continue;
        auto der = base64_decode(bytes);
        if (der && verify_message(*key, tagmanifest, *der)) {
            return fail(path + ": this key has already signed the bag; a second signature by one key counts once");
        }
    }
    if (auto ok = write_signature(bag_dir, name, *key, tagmanifest, true); !ok) return ok.error();
    return name;
}

}  // namespace sluice::bundle
