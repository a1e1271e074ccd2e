#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <locale.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <unordered_map>

#include "bag_dir.hpp"
#include "text.hpp"
#include "sluice/bundle/bundle.hpp"

namespace sluice::bundle {
namespace fs = std::filesystem;
using detail::BagCheck;

namespace {

constexpr std::size_t kSignatureFileLimit = 4096;

/// libarchive converts names through the current locale's character set; a
/// bundle's names are UTF-8 whatever the user's locale. This switches the
/// calling thread (only) to C.UTF-8 for the duration of an archive operation,
/// so the bytes written and the names read never depend on the environment.
class Utf8LocaleScope {
public:
    Utf8LocaleScope() : utf8_(::newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0))) {
        if (utf8_ != static_cast<locale_t>(0)) previous_ = ::uselocale(utf8_);
    }
    ~Utf8LocaleScope() {
        if (utf8_ != static_cast<locale_t>(0)) {
            ::uselocale(previous_);
            ::freelocale(utf8_);
        }
    }
    Utf8LocaleScope(const Utf8LocaleScope&) = delete;
    Utf8LocaleScope& operator=(const Utf8LocaleScope&) = delete;
    [[nodiscard]] Result<void> check() const {
        if (utf8_ == static_cast<locale_t>(0)) return fail("the C.UTF-8 locale is not available (glibc >= 2.35 has it built in)");
        return {};
    }

private:
    locale_t utf8_;
    locale_t previous_ = static_cast<locale_t>(0);
};

using ArchivePtr = std::unique_ptr<struct archive, int (*)(struct archive*)>;
using EntryPtr = std::unique_ptr<struct archive_entry, void (*)(struct archive_entry*)>;

struct Entry {
    std::string path;  // normalised: no "./" prefix, no trailing '/'
    bool directory = false;
    std::uint64_t size = 0;
};

std::string entry_ref(const Entry& e) { return "entry '" + detail::printable(e.path) + "'"; }

/// Reads a tar stream (ustar, pax or GNU; no compression: a bundle archive is
/// never compressed, and refusing filters removes decompression bombs).
class TarReader {
public:
    static Result<TarReader> open(const fs::path& path) {
        auto fd = detail::open_regular_file(path, nullptr, detail::Links::follow);
        if (!fd) return fd.error();
        ArchivePtr a(archive_read_new(), &archive_read_free);
        if (!a || archive_read_support_format_tar(a.get()) != ARCHIVE_OK ||
            archive_read_set_options(a.get(), "tar:hdrcharset=UTF-8") != ARCHIVE_OK) {
            return fail("libarchive: cannot set up a tar reader");
        }
        if (archive_read_open_fd(a.get(), fd->get(), detail::kIoBufferBytes) != ARCHIVE_OK) {
            return fail(path.string() + ": not a tar archive (bundles are uncompressed pax tar): " + error_of(a.get()));
        }
        return TarReader(std::move(a), std::move(*fd), path);
    }

    /// The next entry, checked: nullopt at the end of the archive.
    Result<std::optional<Entry>> next(const Limits& limits) {
        struct archive_entry* raw = nullptr;
        la_int64_t consumed_before = archive_filter_bytes(a_.get(), 0);
        int rc = archive_read_next_header(a_.get(), &raw);
        std::string where = last_.empty() ? "at the start" : "after entry '" + detail::printable(last_) + "'";
        if (rc == ARCHIVE_EOF) {
            // A tar ends with two zero blocks. Without them, a cut that falls
            // between two entries would pass for a shorter, complete archive.
            // Skipping the last entry's padding consumes < 512 bytes; the end
            // marker adds 1024.
            if (archive_filter_bytes(a_.get(), 0) - consumed_before < 1024) {
                return fail(path_.string() + ": truncated archive " + where + " (no end-of-archive marker)");
            }
            return std::optional<Entry>{};
        }
        if (rc == ARCHIVE_WARN && raw != nullptr && archive_entry_pathname_utf8(raw) == nullptr) {
            // libarchive says "can't be converted from UTF-8 to current locale": the name is not UTF-8.
            return fail("entry " + std::to_string(count_ + 1) + " " + where + ": name is not valid UTF-8");
        }
        if (rc != ARCHIVE_OK) return fail(path_.string() + ": damaged archive " + where + ": " + error_of(a_.get()));
        const char* name = archive_entry_pathname_utf8(raw);
        if (name == nullptr) {
            return fail("entry " + std::to_string(count_ + 1) + " " + where + ": name is not valid UTF-8");
        }
        Entry e;
        e.path = name;
        last_ = e.path;
        if (++count_ > limits.max_entries) {
            return fail(entry_ref(e) + ": more than " + std::to_string(limits.max_entries) + " entries in " +
                        path_.string());
        }
        if (!e.path.empty() && e.path.front() == '/') return fail(entry_ref(e) + ": absolute path");
        while (e.path.rfind("./", 0) == 0) e.path.erase(0, 2);
        if (archive_entry_sparse_count(raw) > 0) {
            // A sparse entry claims a size its bytes do not back: a 20 KB archive
            // could make us hash or write terabytes. Canonical archives never hold one.
            return fail(entry_ref(e) + ": sparse file (bundle archives hold plain files only)");
        }
        if (archive_entry_hardlink(raw) != nullptr) {
            return fail(entry_ref(e) + ": hard link (only regular files and directories are allowed)");
        }
        switch (archive_entry_filetype(raw)) {
            case AE_IFREG: break;
            case AE_IFDIR: e.directory = true; break;
            case AE_IFLNK: return fail(entry_ref(e) + ": symbolic link (only regular files and directories are allowed)");
            case AE_IFCHR:
            case AE_IFBLK: return fail(entry_ref(e) + ": device node (only regular files and directories are allowed)");
            case AE_IFIFO: return fail(entry_ref(e) + ": FIFO (only regular files and directories are allowed)");
            case AE_IFSOCK: return fail(entry_ref(e) + ": socket (only regular files and directories are allowed)");
            default: return fail(entry_ref(e) + ": unknown entry type (only regular files and directories are allowed)");
        }
        if (e.directory) {
            if (!e.path.empty() && e.path.back() == '/') e.path.pop_back();
            if (e.path.empty() || e.path == ".") {  // the archive's own root, "./" or "."
                e.path.clear();
                return std::optional<Entry>{e};
            }
        }
        if (auto ok = check_relative_path(e.path, limits.max_path_bytes); !ok) {
            return fail(entry_ref(e) + ": " + ok.error().message);
        }
        if (!e.directory) {
            if (!archive_entry_size_is_set(raw) || archive_entry_size(raw) < 0) {
                return fail(entry_ref(e) + ": no size in the header");
            }
            e.size = static_cast<std::uint64_t>(archive_entry_size(raw));
            if (e.size > limits.max_file_bytes) {
                return fail(entry_ref(e) + ": " + std::to_string(e.size) + " bytes is over the per-file limit of " +
                            std::to_string(limits.max_file_bytes));
            }
            total_ += e.size;
            if (total_ > limits.max_total_bytes) {
                return fail(entry_ref(e) + ": the archive exceeds the total limit of " +
                            std::to_string(limits.max_total_bytes) + " bytes");
            }
        }
        return std::optional<Entry>{e};
    }

    /// Streams the current entry's bytes to sink(offset, bytes); holes of sparse
    /// entries are left to the sink. Returns the entry's logical size.
    template <class Sink>
    Result<std::uint64_t> read_data(const Entry& e, Sink&& sink) {
        const void* buf = nullptr;
        std::size_t len = 0;
        la_int64_t offset = 0;
        for (;;) {
            int rc = archive_read_data_block(a_.get(), &buf, &len, &offset);
            if (rc == ARCHIVE_EOF) break;
            if (rc != ARCHIVE_OK) return fail(entry_ref(e) + ": damaged or truncated data: " + error_of(a_.get()));
            if (offset < 0 || static_cast<std::uint64_t>(offset) + len > e.size) {
                return fail(entry_ref(e) + ": data runs past the size in its header");
            }
            if (auto ok = sink(static_cast<std::uint64_t>(offset),
                               std::span(static_cast<const std::byte*>(buf), len));
                !ok) {
                return ok.error();
            }
        }
        return e.size;
    }

    /// The current entry's bytes, refusing more than `limit`.
    Result<std::string> read_small(const Entry& e, std::size_t limit) {
        if (e.size > limit) return fail(entry_ref(e) + ": larger than the " + std::to_string(limit) + "-byte limit");
        // Grown as bytes arrive, not from the header: a truncated archive cannot
        // make us allocate what it does not hold.
        std::string out;
        auto r = read_data(e, [&](std::uint64_t offset, std::span<const std::byte> bytes) -> Result<void> {
            if (offset + bytes.size() > out.size()) out.resize(static_cast<std::size_t>(offset + bytes.size()));
            std::memcpy(out.data() + offset, bytes.data(), bytes.size());
            return {};
        });
        out.resize(static_cast<std::size_t>(e.size));
        if (!r) return r.error();
        return out;
    }

    /// Hashes the current entry (sparse holes hash as zeros).
    Result<detail::FileDigest> hash(const Entry& e) {
        Sha256 hasher;
        std::uint64_t at = 0;
        static const std::array<std::byte, 65536> kZeros{};
        auto zero_fill = [&](std::uint64_t until) {
            while (at < until) {
                std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(until - at, kZeros.size()));
                hasher.update(std::span(kZeros.data(), n));
                at += n;
            }
        };
        auto r = read_data(e, [&](std::uint64_t offset, std::span<const std::byte> bytes) -> Result<void> {
            if (offset < at) return fail(entry_ref(e) + ": overlapping data blocks");
            zero_fill(offset);
            hasher.update(bytes);
            at += bytes.size();
            return {};
        });
        if (!r) return r.error();
        zero_fill(e.size);
        return detail::FileDigest{hasher.finish(), e.size};
    }

private:
    TarReader(ArchivePtr a, detail::Fd fd, fs::path path) : a_(std::move(a)), fd_(std::move(fd)), path_(std::move(path)) {}
    static std::string error_of(struct archive* a) {
        const char* s = archive_error_string(a);
        return s != nullptr ? s : "unknown error";
    }

    ArchivePtr a_;
    detail::Fd fd_;
    fs::path path_;
    std::string last_;
    std::uint64_t count_ = 0;
    std::uint64_t total_ = 0;
};

/// The file tree an archive's entries describe. Refuses what no file system
/// can hold and what an extraction would resolve differently from a reader:
/// an entry twice, a file where a directory is (or is needed), and the reverse.
/// verify_archive and unpack_archive apply the same rules, so an archive that
/// verifies always unpacks, and its unpacked directory verifies the same.
class EntryTree {
public:
    explicit EntryTree(std::uint64_t max_nodes) : max_nodes_(max_nodes) {}

    /// Registers `e`; `created` receives the directories it brings into being
    /// (missing parents, then the entry itself if it is a directory), in order.
    Result<void> add(const Entry& e, std::vector<std::string>* created = nullptr) {
        std::uint32_t parent = 0;  // the root
        std::size_t start = 0;
        for (;;) {
            std::size_t slash = e.path.find('/', start);
            bool last = slash == std::string::npos;
            std::string_view name = std::string_view(e.path).substr(start, last ? std::string::npos : slash - start);
            std::string key = std::to_string(parent) + '/' + std::string(name);
            auto it = nodes_.find(key);
            if (!last) {  // a parent directory
                if (it == nodes_.end()) {
                    if (auto ok = make_room(e); !ok) return ok;
                    it = nodes_.emplace(std::move(key), Node{next_id_++, true, false}).first;
                    if (created != nullptr) created->push_back(e.path.substr(0, slash));
                } else if (!it->second.directory) {
                    return fail(entry_ref(e) + ": its parent '" + detail::printable(e.path.substr(0, slash)) + "' is a file");
                }
                parent = it->second.id;
                start = slash + 1;
                continue;
            }
            if (it == nodes_.end()) {
                if (auto ok = make_room(e); !ok) return ok;
                nodes_.emplace(std::move(key), Node{next_id_++, e.directory, e.directory});
                if (e.directory && created != nullptr) created->push_back(e.path);
                return {};
            }
            Node& node = it->second;
            if (!e.directory || !node.directory) {
                return fail(entry_ref(e) + (node.directory ? ": duplicate entry (already a directory)"
                                                           : ": duplicate entry (the archive holds it twice)"));
            }
            if (node.explicit_dir) return fail(entry_ref(e) + ": duplicate entry (the archive holds it twice)");
            node.explicit_dir = true;  // an implied directory, now named by its own entry
            return {};
        }
    }

private:
    struct Node {
        std::uint32_t id;
        bool directory;
        bool explicit_dir;
    };
    // Implied directories count too: deep paths cannot grow the tree past the entry limit.
    Result<void> make_room(const Entry& e) const {
        if (nodes_.size() >= max_nodes_) {
            return fail(entry_ref(e) + ": more than " + std::to_string(max_nodes_) +
                        " files and directories (the entry limit)");
        }
        return {};
    }

    // Keyed by parent id and one name: memory grows with the names, not with depth squared.
    std::unordered_map<std::string, Node> nodes_;
    std::uint32_t next_id_ = 1;
    std::uint64_t max_nodes_;
};

bool is_payload(const std::string& path) {
    return path.size() > kPayloadDir.size() && path.compare(0, kPayloadDir.size(), kPayloadDir) == 0 &&
           path[kPayloadDir.size()] == '/';
}

/// Reads tag entries into `check` until the first payload entry (returned) or the end.
Result<std::optional<Entry>> read_archive_tags(TarReader& reader, BagCheck& check, EntryTree& tree,
                                               const Limits& limits) {
    for (;;) {
        auto next = reader.next(limits);
        if (!next) return next.error();
        if (!*next) return std::optional<Entry>{};
        Entry& e = **next;
        if (!e.path.empty()) {
            if (auto ok = tree.add(e); !ok) return ok.error();
        }
        if (e.directory) {
            if (e.path.empty() || e.path == kPayloadDir || e.path == kSignaturesDir) continue;
            if (is_payload(e.path)) return next;
            return fail(entry_ref(e) + ": unexpected directory outside data/ (no signature covers it)");
        }
        if (is_payload(e.path)) return next;
        if (!detail::is_tag_path(e.path)) {
            return fail(entry_ref(e) + ": unexpected file outside data/ (no signature covers it)");
        }
        auto bytes = reader.read_small(e, detail::is_signature_path(e.path) ? kSignatureFileLimit : limits.max_tag_file_bytes);
        if (!bytes) return bytes.error();
        if (auto ok = check.add_tag_file(e.path, std::move(*bytes)); !ok) return ok.error();
    }
}

struct ArchiveWriter {
    ArchivePtr a{archive_write_new(), &archive_write_free};
    long long mtime = 0;

    Result<void> open(int fd) {
        if (!a || archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
            archive_write_add_filter_none(a.get()) != ARCHIVE_OK || archive_write_open_fd(a.get(), fd) != ARCHIVE_OK) {
            return fail(std::string("libarchive: cannot start the archive: ") + error());
        }
        return {};
    }

    /// A canonical header: regular file, mode 0644, owner 0:0 without names, fixed mtime.
    Result<void> header(const std::string& path, std::uint64_t size) {
        EntryPtr e(archive_entry_new(), &archive_entry_free);
        archive_entry_set_pathname_utf8(e.get(), path.c_str());
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_perm(e.get(), 0644);
        archive_entry_set_uid(e.get(), 0);
        archive_entry_set_gid(e.get(), 0);
        archive_entry_set_mtime(e.get(), static_cast<time_t>(mtime), 0);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(size));
        if (archive_write_header(a.get(), e.get()) != ARCHIVE_OK) {
            return fail(path + ": cannot write the archive header: " + error());
        }
        return {};
    }

    Result<void> data(const std::string& path, std::span<const std::byte> bytes) {
        while (!bytes.empty()) {
            la_ssize_t n = archive_write_data(a.get(), bytes.data(), bytes.size());
            if (n <= 0) return fail(path + ": cannot write to the archive: " + error());
            bytes = bytes.subspan(static_cast<std::size_t>(n));
        }
        return {};
    }

    Result<void> close() {
        if (archive_write_close(a.get()) != ARCHIVE_OK) return fail(std::string("cannot finish the archive: ") + error());
        return {};
    }

    const char* error() {
        const char* s = archive_error_string(a.get());
        return s != nullptr ? s : "unknown error";
    }
};

/// Order of tag files in the canonical archive: the BagIt declaration first,
/// then the files the tag manifest covers, the tag manifest, the signatures.
int tag_rank(const std::string& path) {
    if (path == kBagitTxt) return 0;
    if (path == kBagInfoTxt) return 1;
    if (path == kManifest) return 2;
    if (path == kReleaseJson) return 3;
    if (path == kTagManifest) return 5;
    if (detail::is_signature_path(path)) return 6;
    return 4;
}

}  // namespace

Result<VerifyReport> verify_archive(const fs::path& archive, const VerifyOptions& options) {
    Utf8LocaleScope utf8;
    if (auto ok = utf8.check(); !ok) return ok.error();
    auto reader = TarReader::open(archive);
    if (!reader) return reader.error();
    BagCheck check(options.limits);
    EntryTree tree(options.limits.max_entries);
    auto first_payload = read_archive_tags(*reader, check, tree, options.limits);
    if (!first_payload) return first_payload.error();
    if (*first_payload && !check.has_tag_file(std::string(kBagitTxt))) {
        return fail(entry_ref(**first_payload) +
                    ": payload before the tag files; only archives made by `sluice bundle pack` can be verified "
                    "as they stream (unpack it and verify the directory instead)");
    }
    if (auto ok = check.check_tags(options.trust, options.min_signers); !ok) return ok.error();

    std::optional<Entry> entry = std::move(*first_payload);
    while (entry) {
        if (!entry->directory) {
            if (!is_payload(entry->path)) {
                return fail(entry_ref(*entry) + ": tag file after the payload (not a canonical bundle archive)");
            }
            // Listed, not seen before, within Payload-Oxum: decided before a byte is hashed.
            if (auto ok = check.expect_payload(entry->path, entry->size); !ok) return ok.error();
            auto digest = reader->hash(*entry);
            if (!digest) return digest.error();
            if (auto ok = check.on_payload(entry->path, *digest); !ok) return ok.error();
        } else if (!entry->path.empty() && !is_payload(entry->path) && entry->path != kPayloadDir) {
            return fail(entry_ref(*entry) + ": unexpected directory outside data/");
        }
        auto next = reader->next(options.limits);
        if (!next) return next.error();
        entry = std::move(*next);
        if (entry && !entry->path.empty()) {
            if (auto ok = tree.add(*entry); !ok) return ok.error();
        }
    }
    return check.finish();
}

Result<std::string> pack_bag(const fs::path& bag_dir, const fs::path& out_file, const Limits& limits, bool sync) {
    Utf8LocaleScope utf8;
    if (auto ok = utf8.check(); !ok) return ok.error();
    {
        std::error_code ec;
        auto bag = fs::weakly_canonical(bag_dir, ec);
        auto out = fs::weakly_canonical(out_file, ec);
        auto rel = out.lexically_relative(bag);
        if (!ec && !rel.empty() && *rel.begin() != "..") {
            return fail(out_file.string() + ": inside the bag being packed; write the archive somewhere else");
        }
    }
    BagCheck check(limits);
    if (auto ok = detail::read_bag_tags(bag_dir, check, limits); !ok) return ok.error();
    if (auto ok = check.check_tags(nullptr, 0); !ok) return ok.error().within("refusing to pack " + bag_dir.string());
    auto listing = detail::list_payload(bag_dir, limits);
    if (!listing) return listing.error();
    if (auto ok = check.check_listing(*listing); !ok) return ok.error().within("refusing to pack " + bag_dir.string());

    auto when = parse_rfc3339(check.report().release.created_at);
    auto staging = detail::StagingFile::create_beside(out_file);
    if (!staging) return staging.error();
    ArchiveWriter writer;
    writer.mtime = when ? *when : 0;
    if (auto ok = writer.open(staging->fd()); !ok) return ok.error();

    std::vector<const std::pair<const std::string, std::string>*> tags;
    for (const auto& t : check.tag_files()) tags.push_back(&t);
    std::stable_sort(tags.begin(), tags.end(), [](auto* a, auto* b) {
        return tag_rank(a->first) != tag_rank(b->first) ? tag_rank(a->first) < tag_rank(b->first) : a->first < b->first;
    });
    for (const auto* t : tags) {
        if (auto ok = writer.header(t->first, t->second.size()); !ok) return ok.error();
        if (auto ok = writer.data(t->first, std::as_bytes(std::span(t->second.data(), t->second.size()))); !ok) {
            return ok.error();
        }
    }

    // Payload in byte order of its paths (the listing is sorted), hashed as it
    // streams: a bag whose payload no longer matches its manifest is not packed.
    auto buffer = std::make_unique<std::byte[]>(detail::kIoBufferBytes);
    std::span<std::byte> span(buffer.get(), detail::kIoBufferBytes);
    for (const auto& [path, size] : *listing) {
        std::uint64_t actual = 0;
        auto fd = detail::open_regular_file(bag_dir / path, &actual);
        if (!fd) return fd.error();
        if (actual != size) return fail(path + ": changed while the bag was being packed");
        ::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
        if (auto ok = writer.header(path, size); !ok) return ok.error();
        Sha256 hasher;
        std::uint64_t done = 0;
        while (done < size) {
            ssize_t n = ::read(fd->get(), span.data(), static_cast<std::size_t>(std::min<std::uint64_t>(span.size(), size - done)));
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) return fail(path + ": read failed: " + detail::errno_text(errno));
            if (n == 0) return fail(path + ": shrank while the bag was being packed");
            auto chunk = span.first(static_cast<std::size_t>(n));
            hasher.update(chunk);
            if (auto ok = writer.data(path, chunk); !ok) return ok.error();
            done += static_cast<std::uint64_t>(n);
        }
        auto digest = hasher.finish();
        if (auto ok = check.on_payload(path, detail::FileDigest{digest, done}); !ok) {
            return ok.error().within("refusing to pack " + bag_dir.string());
        }
    }
    if (auto ok = check.finish(); !ok) return ok.error();
    if (auto ok = writer.close(); !ok) return ok.error();
    if (auto ok = staging->commit(sync); !ok) return ok.error();
    return check.bundle_id();
}

Result<UnpackReport> unpack_archive(const fs::path& archive, const fs::path& out_dir, const Limits& limits, bool sync) {
    Utf8LocaleScope utf8;
    if (auto ok = utf8.check(); !ok) return ok.error();
    auto reader = TarReader::open(archive);
    if (!reader) return reader.error();
    auto staging = detail::StagingDir::create_beside(out_dir);
    if (!staging) return staging.error();
    const fs::path& root = staging->path();

    UnpackReport report;
    EntryTree tree(limits.max_entries);
    std::vector<std::string> created;
    for (;;) {
        auto next = reader->next(limits);
        if (!next) return next.error();
        if (!*next) break;
        const Entry& e = **next;
        if (e.path.empty()) continue;  // "./"
        created.clear();
        if (auto ok = tree.add(e, &created); !ok) return ok.error();
        for (const auto& dir : created) {
            if (::mkdir((root / dir).c_str(), 0755) != 0) {
                return fail(entry_ref(e) + ": cannot create directory '" + detail::printable(dir) +
                            "': " + detail::errno_text(errno));
            }
        }
        if (e.directory) continue;
        fs::path target = root / e.path;
        detail::Fd fd(::open(target.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
        if (!fd.valid()) return fail(entry_ref(e) + ": cannot create: " + detail::errno_text(errno));
        auto written = reader->read_data(e, [&](std::uint64_t offset, std::span<const std::byte> bytes) -> Result<void> {
            while (!bytes.empty()) {
                ssize_t n = ::pwrite(fd.get(), bytes.data(), bytes.size(), static_cast<off_t>(offset));
                if (n < 0 && errno == EINTR) continue;
                if (n < 0) return fail(entry_ref(e) + ": write failed: " + detail::errno_text(errno));
                bytes = bytes.subspan(static_cast<std::size_t>(n));
                offset += static_cast<std::uint64_t>(n);
            }
            return {};
        });
        if (!written) return written.error();
        if (::ftruncate(fd.get(), static_cast<off_t>(e.size)) != 0) {
            return fail(entry_ref(e) + ": cannot set size: " + detail::errno_text(errno));
        }
        report.files += 1;
        report.bytes += e.size;
    }
    if (auto ok = staging->commit(sync); !ok) return ok.error();
    return report;
}

Result<BundleSummary> inspect_bundle(const fs::path& path, const Limits& limits) {
    Utf8LocaleScope utf8;
    if (auto ok = utf8.check(); !ok) return ok.error();
    BagCheck check(limits);
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        if (auto ok = detail::read_bag_tags(path, check, limits); !ok) return ok.error();
    } else {
        auto reader = TarReader::open(path);
        if (!reader) return reader.error();
        EntryTree tree(limits.max_entries);
        auto first = read_archive_tags(*reader, check, tree, limits);
        if (!first) return first.error();
    }
    BundleSummary summary;
    const auto& tags = check.tag_files();
    if (auto it = tags.find(std::string(kTagManifest)); it != tags.end()) summary.bundle_id = to_hex(sha256(it->second));
    if (auto it = tags.find(std::string(kReleaseJson)); it != tags.end()) {
        auto release = parse_release(it->second);
        if (release) summary.release = std::move(*release);
        else summary.release_error = release.error().message;
    } else {
        summary.release_error = "release.json: missing";
    }
    if (auto it = tags.find(std::string(kBagInfoTxt)); it != tags.end()) {
        if (auto info = parse_bag_info(it->second)) summary.bag_info = std::move(*info);
    }
    if (auto it = tags.find(std::string(kManifest)); it != tags.end()) {
        if (auto entries = parse_manifest(it->second, ManifestLimits{limits.max_entries, limits.max_path_bytes})) {
            summary.manifest_files = entries->size();
        }
    }
    for (const auto& [p, bytes] : tags) {
        if (detail::is_signature_path(p)) summary.signature_files.push_back(p);
    }
    if (summary.bundle_id.empty() && !tags.count(std::string(kBagitTxt))) {
        return fail(path.string() + ": not a bundle (no bagit.txt or tagmanifest-sha256.txt)");
    }
    return summary;
}

}  // namespace sluice::bundle
