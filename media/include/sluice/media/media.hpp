#pragma once
// sluice::media — the removable-media carrier: a bundle's archive as segment
// files of transfer frames on a mounted medium, and back.
//
//   MOUNTDIR/SLUICE/<dir>/            <dir> = bundle id, or an opaque id when encrypted
//       v0001.index  v0001.index2     the volume's index, two copies
//       v0001-c0000-s000.seg …        segment files: fixed-size records, one symbol frame each
//
// The archive is cut into blocks of K data symbols with M Reed-Solomon parity
// symbols (transfer::BlockCodec), exactly as on the diode. A volume holds a
// contiguous range of blocks; volumes can be imported in any order, days
// apart, because every decoded block is kept in the receiver's persistent
// transfer::BlockStore. Within a volume, blocks are grouped into sets, and the
// K+M symbols of every block of a set are striped over the set's W segment
// files, `run` consecutive symbols per file:
//
//   segment (set c, stripe w) holds, for every block b of the set in order,
//   symbols [w·run, min((w+1)·run, K+M)) of b
//
// so record i of a segment sits at i × record_bytes and its block and symbol
// follow from i. Records are 16 KiB by default, aligned to 4 KiB sectors. run = max(1, ⌊M/2⌋): losing a whole segment costs each block
// at most half its parity, the other half still repairs scattered damage.
// A record is one frame of the transfer format (frame.hpp, type symbol, no
// MAC) — 40-byte header with its XXH3 checksum, then the symbol — so a
// damaged sector turns only the records it overlaps into erasures. Encrypted,
// a record is AES-256-GCM(frame) ‖ 16-byte tag, under a key derived from the
// pre-shared key file; the nonce is the record's position, so records cannot
// be moved either. Details and the index envelope: docs/media.md.

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "sluice/core/result.hpp"
#include "sluice/transfer/block_store.hpp"
#include "sluice/transfer/metadata.hpp"

namespace sluice::media {

namespace fs = std::filesystem;
using transfer::Sha256;

inline constexpr std::string_view kRootDir = "SLUICE";
inline constexpr std::string_view kFormat = "sluice.media/1";
inline constexpr std::size_t kTagBytes = 16;
/// The largest index body accepted (JSON, before encryption).
inline constexpr std::size_t kMaxIndexBody = 1u << 20;
inline constexpr unsigned kMaxVolumes = 9999;
inline constexpr unsigned kMaxSetsPerVolume = 9999;
/// Pre-shared key files hold at least this many bytes of secret.
inline constexpr std::size_t kMinKeyBytes = 32;

/// The pre-shared encryption key (the bytes of a key file).
struct MediaKey {
    std::vector<std::byte> secret;
};

/// Reads a key file: at least kMinKeyBytes, at most 4 KiB; the error names the file.
[[nodiscard]] Result<MediaKey> load_key(const fs::path& file);

/// How a bundle's blocks are laid out on media. Derived from the parameters,
/// so a volume written later (another medium, another day) fits the others.
struct Layout {
    transfer::FecParams fec{64, 7, 16344};
    unsigned run = 3;                     ///< consecutive symbols of a block per segment
    unsigned stripes = 24;                ///< W: segments per set, ⌈(K+M)/run⌉
    std::uint64_t blocks_per_set = 0;     ///< so that a segment stays under the segment size
    std::uint64_t blocks_per_volume = 0;
    bool encrypted = false;

    /// Bytes of one record on the medium (frame, plus the tag when encrypted).
    [[nodiscard]] std::size_t record_bytes() const;
    /// Symbols of each block that segment `stripe` holds.
    [[nodiscard]] unsigned symbols_in(unsigned stripe) const;
    /// Checks the fields against each other and the limits; names the bad one.
    [[nodiscard]] Result<void> validate() const;
    bool operator==(const Layout&) const = default;
};

/// What a writer chooses (sluice media write options).
struct LayoutOptions {
    unsigned parity_percent = 10;                 ///< M = ⌈K × pct / 100⌉; 1 … 200
    unsigned data_symbols = 64;                   ///< K
    /// Bytes of one record on the medium. The default, 16 KiB, is a multiple of
    /// 4 KiB: a damaged sector spoils one record only, and segments are written
    /// and read back with O_DIRECT (no second copy through the page cache).
    std::size_t record_bytes = 16384;
    std::size_t symbol_bytes = 0;                 ///< 0: what fills record_bytes (16344, or 16328 encrypted)
    std::uint64_t max_segment_bytes = 1ULL << 30; ///< keeps every file under FAT32's 4 GiB
    std::uint64_t volume_bytes = 0;               ///< capacity of one volume (required)
    bool encrypted = false;
};

/// Computes the layout of an archive of `archive_bytes`; fails naming the
/// option at fault (parity out of range, a volume too small for one block…).
[[nodiscard]] Result<Layout> plan_layout(std::uint64_t archive_bytes, const LayoutOptions& options);

/// One segment file as the index lists it.
struct SegmentEntry {
    unsigned set = 0;
    unsigned stripe = 0;
    std::uint64_t records = 0;
    std::uint64_t bytes = 0;
    /// XXH3-128 of the file (xxh128sum prints it): catches damage, and lets the
    /// writer check its read-back at disk speed. Not a security measure: the
    /// bundle's SHA-256 and signatures, and on encrypted media every record's
    /// GCM tag, are.
    std::array<std::byte, 16> xxh128{};

    [[nodiscard]] std::string name(unsigned volume) const;
    bool operator==(const SegmentEntry&) const = default;
};

/// A volume's index: what it carries and where.
struct VolumeIndex {
    transfer::TransferInfo info;        ///< bundle id, archive size and SHA-256, FEC, channel, version
    Layout layout;
    Sha256 set_id{};                    ///< identifies the write (all volumes share it)
    unsigned volume = 1;                ///< 1-based
    unsigned volumes = 1;
    std::uint64_t first_block = 0;      ///< blocks [first_block, end_block) are on this volume
    std::uint64_t end_block = 0;
    std::vector<SegmentEntry> segments; ///< every segment of the volume, by set then stripe
    std::string written_at;             ///< RFC 3339
    std::string written_by;
    std::string host;
    std::string hops;                   ///< the sender's hop record (sluice.hops/1), empty if none

    /// The frame header's session and transfer ids (from the set id).
    [[nodiscard]] std::uint64_t session() const;
    [[nodiscard]] std::uint64_t transfer() const;
    bool operator==(const VolumeIndex&) const = default;
};

/// Bounds applied to an index read from a medium.
struct IndexLimits {
    transfer::InfoLimits info{.max_archive_bytes = 4ULL << 40, .min_symbol_bytes = 512, .max_symbol_bytes = 65536 - 64,
                              .max_interleave = 256, .max_blocks = std::uint64_t{1} << 26};
    std::size_t max_body_bytes = kMaxIndexBody;
    std::size_t max_hops_bytes = 64u << 10;
    std::size_t max_segments = 65536;
    std::uint64_t max_segment_bytes = 4ULL << 30;
};

/// Why an index could not be read.
enum class IndexError {
    none,
    damaged,     ///< checksum mismatch, truncated, or not an index at all
    needs_key,   ///< encrypted, and no key was given
    wrong_key,   ///< encrypted with another key
    invalid,     ///< well-formed envelope, contents refused (the message names the field)
};

struct IndexParse {
    IndexError error = IndexError::none;
    std::string message;       ///< what was wrong (error != none)
    VolumeIndex index;         ///< valid when error == none
};

/// The index file bytes: envelope (magic, version, volume, set id, key check),
/// JSON body (encrypted under `key` when given), SHA-256 of the whole.
[[nodiscard]] std::vector<std::byte> encode_index(const VolumeIndex& index, const MediaKey* key);
/// Parses untrusted index bytes. Never throws; checks every field and bound.
[[nodiscard]] IndexParse parse_index(std::span<const std::byte> bytes, const MediaKey* key, const IndexLimits& limits = {});
/// The index body alone (JSON), and its parser: what the envelope carries, for
/// a receiver that keeps an index it read (decrypted) in its own records.
/// `set_id`, `volume` and `encrypted` are the envelope's.
[[nodiscard]] std::string encode_index_body(const VolumeIndex& index);
[[nodiscard]] IndexParse parse_index_body(std::string_view text, const Sha256& set_id, unsigned volume, bool encrypted,
                                          const IndexLimits& limits = {});

/// The set id of a write (deterministic: the same bundle, layout and key give
/// the same id, so volumes written separately belong together). Encrypted, it
/// is keyed, so it reveals nothing about the bundle.
[[nodiscard]] Sha256 set_id_for(const Sha256& bundle_id, const Layout& layout, const MediaKey* key);
/// The directory name under SLUICE/ for a write.
[[nodiscard]] std::string directory_name(const VolumeIndex& index);

// ---- writing -------------------------------------------------------------------

/// Reads archive bytes at `offset` into `out`; returns how many (fewer only at the end).
using ArchiveReader = std::function<Result<std::size_t>(std::uint64_t offset, std::span<std::byte> out)>;

struct WriteRequest {
    fs::path archive;                   ///< the bundle archive (verified by the caller)
    transfer::TransferInfo info;        ///< bundle id, channel, version, archive bytes and SHA-256
    LayoutOptions layout;               ///< volume_bytes 0: the free space of the first target
    std::optional<MediaKey> key;
    std::vector<fs::path> targets;      ///< mount directories, one per volume, in order
    unsigned first_volume = 1;          ///< the volume the first target receives
    std::string written_at;             ///< RFC 3339, recorded in the index
    std::string written_by;
    std::string host;
    std::string hops;                   ///< hop record to carry (may be empty)
};

struct VolumeWritten {
    unsigned volume = 0;
    unsigned volumes = 0;
    fs::path directory;                 ///< MOUNTDIR/SLUICE/<dir>
    std::uint64_t first_block = 0, end_block = 0;
    std::uint64_t bytes = 0;            ///< segment and index bytes written
    std::size_t segments = 0;
    double write_seconds = 0;           ///< encode, write and fsync
    double verify_seconds = 0;          ///< read back (page cache dropped first) and check
};

struct WriteReport {
    Layout layout;
    std::uint64_t volume_bytes = 0;     ///< the volume size used (given, or the first target's free space)
    Sha256 set_id{};
    unsigned volumes = 0;
    std::vector<VolumeWritten> written;
};

/// Progress for long writes: (volume, bytes of archive encoded so far in it).
using WriteProgress = std::function<void(unsigned volume, std::uint64_t bytes)>;

/// Writes the requested volumes. For each: segments and index beside their
/// final names, fsynced, renamed, the directory fsynced; then everything is
/// read back from the medium (O_DIRECT, or with the page cache dropped) and
/// each segment's XXH3-128 compared with the one of the bytes written. A volume that fails is removed again and the error
/// names the file. Files of the same volume from an earlier write are replaced.
/// Two threads: one encodes, one hashes and writes (and both read back).
[[nodiscard]] Result<WriteReport> write_volumes(const WriteRequest& request, const WriteProgress& progress = {});

// ---- reading -------------------------------------------------------------------

/// One volume found on a medium.
struct FoundVolume {
    fs::path directory;
    VolumeIndex index;
    std::vector<std::string> notes;     ///< e.g. "v0001.index is damaged; read v0001.index2"
};

/// What a medium holds: volumes whose index could be read, and everything else.
struct MediumScan {
    std::vector<FoundVolume> volumes;
    std::vector<std::string> problems;  ///< indexes that failed (named, with why)
    std::vector<std::string> ignored;   ///< unexpected files, symlinks, special files: reported, never followed
};

/// Scans MOUNTDIR/SLUICE/. Fails only when the medium cannot be read at all
/// (no SLUICE directory, or it is a symlink). Every index is parsed with `limits`.
[[nodiscard]] Result<MediumScan> scan_medium(const fs::path& mountdir, const MediaKey* key, const IndexLimits& limits = {});

/// One segment as found when importing.
struct SegmentState {
    std::string name;
    bool present = false;               ///< a regular file was there
    std::uint64_t records_read = 0;     ///< records found in the file (a short file has fewer)
    std::uint64_t records_bad = 0;      ///< failed their checksum or tag, or sat in the wrong place
    [[nodiscard]] bool intact(std::uint64_t expected) const { return present && records_read == expected && records_bad == 0; }
};

struct VolumeImport {
    unsigned volume = 0;
    unsigned volumes = 0;
    std::string staging_key;            ///< the BlockStore key of the archive
    bool already_delivered = false;     ///< the archive was delivered before; nothing was read
    std::uint64_t blocks = 0;           ///< blocks on this volume
    std::uint64_t blocks_held_before = 0;
    std::uint64_t blocks_direct = 0;    ///< every data symbol intact
    std::uint64_t blocks_repaired = 0;  ///< rebuilt with parity
    std::vector<std::pair<std::uint64_t, std::uint64_t>> unrecoverable;  ///< [first, last] block ranges
    std::vector<SegmentState> segments;
    std::uint64_t archive_blocks_held = 0;  ///< of the whole archive, after this volume
    std::uint64_t archive_blocks = 0;
    [[nodiscard]] bool archive_complete() const { return archive_blocks_held == archive_blocks && archive_blocks > 0; }
};

/// Reads one volume into `store` (the same persistent store and staging keys
/// as the diode's reassembler): every record is an erasure unless it decrypts,
/// passes its checksum and is the symbol its position says; each block is
/// written when K symbols are intact. Blocks held already are skipped, so a
/// volume can be imported again after a damaged segment was restored.
/// An error means the store failed (disk full, I/O): the volume can be re-read.
[[nodiscard]] Result<VolumeImport> import_volume(const FoundVolume& volume, transfer::BlockStore& store,
                                                 const MediaKey* key);

/// What a partly imported archive still needs, from the volumes' index and the
/// blocks held: one line per volume that is missing blocks, e.g.
/// "volume 2 of 3: blocks 2048–4095 (not yet imported)" or
/// "volume 1 of 3: blocks 17–17 unrecoverable; bring segments v0001-c0000-s003, v0001-c0000-s007 intact".
struct Needed {
    unsigned volume = 0;
    std::uint64_t blocks_missing = 0;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  ///< at most 32
    bool imported = false;              ///< the volume was read at least once
    std::vector<std::string> segments;  ///< imported: the segments that were missing or damaged where blocks are short
};
/// `last_imports` holds the last import of each volume read so far (by volume number).
[[nodiscard]] std::vector<Needed> still_needed(const VolumeIndex& any_volume, const transfer::BlockSet& held,
                                               const std::map<unsigned, VolumeImport>& last_imports);
/// One line per Needed, as above.
[[nodiscard]] std::string describe(const Needed& needed, unsigned volumes);

}  // namespace sluice::media
