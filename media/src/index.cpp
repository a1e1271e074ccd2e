// Layout planning, the index envelope and its JSON body, key files, set ids.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <limits>

#include "crypto.hpp"
#include "sluice/bundle/digest.hpp"
#include "sluice/media/media.hpp"
#include "sluice/transfer/frame.hpp"

namespace sluice::media {
namespace {

using nlohmann::json;

constexpr std::array<std::byte, 8> kIndexMagic = {std::byte{'S'}, std::byte{'L'}, std::byte{'U'}, std::byte{'I'},
                                                  std::byte{'C'}, std::byte{'E'}, std::byte{'M'}, std::byte{'I'}};
constexpr std::uint8_t kIndexVersion = 1;
constexpr std::size_t kEnvelopeHeader = 68;  // magic 8, version 1, flags 1, reserved 2, volume 4, length 4, set id 32, key check 16
constexpr std::size_t kDigestBytes = 32;
constexpr unsigned kMaxJsonDepth = 8;

void put32(std::byte* p, std::uint32_t v) {
    for (int i = 3; i >= 0; --i, v >>= 8) p[i] = std::byte(v & 0xff);
}
std::uint32_t get32(const std::byte* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = (v << 8) | std::to_integer<std::uint32_t>(p[i]);
    return v;
}
std::uint64_t get64(const std::byte* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | std::to_integer<std::uint64_t>(p[i]);
    return v;
}
void append64(std::vector<std::byte>& out, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) out.push_back(std::byte((v >> (8 * i)) & 0xff));
}

Sha256 sha256_of(std::span<const std::byte> bytes) {
    bundle::Sha256 h;
    h.update(bytes);
    auto d = h.finish();
    Sha256 out{};
    std::memcpy(out.data(), d.data(), out.size());
    return out;
}

std::string hex(std::span<const std::byte> bytes) {
    return bundle::to_hex(std::span(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
}

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

bool printable(const std::string& s, std::size_t max) {
    if (s.size() > max) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u != 0x7f;  // UTF-8 bytes ≥ 0x80 allowed
    });
}

// Typed field access that never throws past parse_index: each failure names the field.
struct Fields {
    const json& j;
    std::string error;

    const json* at(const char* key, json::value_t type) {
        if (!error.empty()) return nullptr;
        auto it = j.find(key);
        bool ok = it != j.end() &&
                  (it->type() == type || (type == json::value_t::number_unsigned && it->is_number_unsigned()));
        if (!ok) {
            error = std::string("field '") + key + "' is missing or of the wrong type";
            return nullptr;
        }
        return &*it;
    }
    std::uint64_t u64(const char* key, std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
        const json* v = at(key, json::value_t::number_unsigned);
        if (!v) return 0;
        auto n = v->get<std::uint64_t>();
        if (n > max) {
            error = std::string("field '") + key + "' is " + std::to_string(n) + ", over the limit of " + std::to_string(max);
            return 0;
        }
        return n;
    }
    std::string str(const char* key, std::size_t max) {
        const json* v = at(key, json::value_t::string);
        if (!v) return {};
        const auto& s = v->get_ref<const std::string&>();
        if (!printable(s, max)) {
            error = std::string("field '") + key + "' is over " + std::to_string(max) + " bytes or has control characters";
            return {};
        }
        return s;
    }
    std::array<std::byte, 16> hash128(const char* key) {
        auto s = str(key, 32);
        std::array<std::byte, 16> out{};
        if (!error.empty()) return out;
        auto nibble = [](char c) -> int {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            return -1;
        };
        bool ok = s.size() == 32;
        for (std::size_t i = 0; ok && i < 16; ++i) {
            int hi = nibble(s[2 * i]), lo = nibble(s[2 * i + 1]);
            ok = hi >= 0 && lo >= 0;
            out[i] = std::byte(static_cast<unsigned>(hi * 16 + lo));
        }
        if (!ok) error = std::string("field '") + key + "' is not 32 lowercase hex digits";
        return out;
    }
    Sha256 digest(const char* key) {
        auto s = str(key, 64);
        if (!error.empty()) return {};
        auto d = transfer::sha256_from_hex(s);
        if (!d) {
            error = std::string("field '") + key + "' is not a SHA-256";
            return {};
        }
        return *d;
    }
};

}  // namespace

// ---- keys ----------------------------------------------------------------------

Result<MediaKey> load_key(const fs::path& file) {
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) return fail("cannot read the key file " + file.string() + ": " + std::strerror(errno));
    struct stat st {};
    MediaKey key;
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return fail("the key file " + file.string() + " is not a regular file");
    }
    if (st.st_size < static_cast<off_t>(kMinKeyBytes) || st.st_size > 4096) {
        ::close(fd);
        return fail("the key file " + file.string() + " holds " + std::to_string(st.st_size) + " bytes; a media key is " +
                    std::to_string(kMinKeyBytes) + " to 4096 bytes of secret (e.g. head -c 32 /dev/urandom)");
    }
    key.secret.resize(static_cast<std::size_t>(st.st_size));
    ssize_t n = ::read(fd, key.secret.data(), key.secret.size());
    ::close(fd);
    if (n != st.st_size) return fail("cannot read the key file " + file.string());
    return key;
}

// ---- layout --------------------------------------------------------------------

std::size_t Layout::record_bytes() const {
    return transfer::frame_size(fec.symbol_bytes, false) + (encrypted ? kTagBytes : 0);
}

unsigned Layout::symbols_in(unsigned stripe) const {
    unsigned total = fec.data_symbols + fec.parity_symbols;
    unsigned first = stripe * run;
    if (first >= total) return 0;
    return std::min(run, total - first);
}

Result<void> Layout::validate() const {
    unsigned total = fec.data_symbols + fec.parity_symbols;
    if (fec.data_symbols == 0 || fec.parity_symbols == 0 || total > 255) {
        return fail("FEC K=" + std::to_string(fec.data_symbols) + " M=" + std::to_string(fec.parity_symbols) +
                    " is outside 1 ≤ K, 1 ≤ M, K + M ≤ 255");
    }
    if (fec.symbol_bytes < 512 || fec.symbol_bytes > transfer::kMaxFramePayload) {
        return fail("symbol size " + std::to_string(fec.symbol_bytes) + " is outside 512.." +
                    std::to_string(transfer::kMaxFramePayload));
    }
    if (run == 0 || run > total) return fail("run " + std::to_string(run) + " is outside 1..K+M");
    if (stripes != ceil_div(total, run)) return fail("stripes " + std::to_string(stripes) + " do not match K+M and run");
    if (blocks_per_set == 0 || blocks_per_volume == 0) return fail("blocks per set or per volume is 0");
    if (blocks_per_set > (std::uint64_t{1} << 32) || blocks_per_volume > (std::uint64_t{1} << 32)) {
        return fail("blocks per set or per volume is absurdly large");
    }
    if (ceil_div(blocks_per_volume, blocks_per_set) > kMaxSetsPerVolume) {
        return fail("a volume would hold more than " + std::to_string(kMaxSetsPerVolume) + " sets");
    }
    return {};
}

Result<Layout> plan_layout(std::uint64_t archive_bytes, const LayoutOptions& o) {
    if (o.parity_percent < 1 || o.parity_percent > 200) {
        return fail("parity " + std::to_string(o.parity_percent) + "% is outside 1..200");
    }
    if (o.data_symbols < 1 || o.data_symbols > 254) return fail("data symbols per block must be 1..254");
    Layout l;
    l.encrypted = o.encrypted;
    l.fec.data_symbols = o.data_symbols;
    l.fec.parity_symbols = static_cast<unsigned>(ceil_div(std::uint64_t{o.data_symbols} * o.parity_percent, 100));
    const std::size_t overhead = transfer::frame_size(0, false) + (o.encrypted ? kTagBytes : 0);
    if (o.symbol_bytes == 0) {
        if (o.record_bytes < 512 + overhead || o.record_bytes > transfer::kMaxFramePayload) {
            return fail("record size " + std::to_string(o.record_bytes) + " is outside " + std::to_string(512 + overhead) +
                        ".." + std::to_string(transfer::kMaxFramePayload));
        }
        l.fec.symbol_bytes = o.record_bytes - overhead;
    } else {
        l.fec.symbol_bytes = o.symbol_bytes;
    }
    if (l.fec.data_symbols + l.fec.parity_symbols > 255) {
        return fail("parity " + std::to_string(o.parity_percent) + "% needs " + std::to_string(l.fec.parity_symbols) +
                    " parity symbols per " + std::to_string(o.data_symbols) + ", over the 255 symbols of a block");
    }
    l.run = std::max(1u, l.fec.parity_symbols / 2);
    l.stripes = static_cast<unsigned>(ceil_div(l.fec.data_symbols + l.fec.parity_symbols, l.run));
    const std::uint64_t record = l.record_bytes();
    l.blocks_per_set = std::max<std::uint64_t>(1, o.max_segment_bytes / (std::uint64_t{l.run} * record));
    if (o.volume_bytes == 0) return fail("the volume size is 0");
    // Room for the two index copies, directory entries and each file's last
    // cluster (FAT32/exFAT: up to 128 KiB each): 4 MiB plus 2 %.
    const std::uint64_t reserve = (4ULL << 20) + o.volume_bytes / 50;
    const std::uint64_t per_block = std::uint64_t{l.fec.data_symbols + l.fec.parity_symbols} * record;
    if (o.volume_bytes <= reserve || (o.volume_bytes - reserve) / per_block == 0) {
        // The smallest size V with V - (4 MiB + V/50) ≥ one block.
        auto fits = [&](std::uint64_t v) { return v > (4ULL << 20) + v / 50 && v - ((4ULL << 20) + v / 50) >= per_block; };
        std::uint64_t need = ceil_div(((4ULL << 20) + per_block) * 50, 49);
        while (!fits(need)) ++need;
        while (need > 0 && fits(need - 1)) --need;
        return fail("a volume of " + std::to_string(o.volume_bytes) + " bytes cannot hold one block: it needs at least " +
                    std::to_string(need) + " bytes");
    }
    const std::uint64_t blocks = ceil_div(archive_bytes, std::uint64_t{l.fec.data_symbols} * l.fec.symbol_bytes);
    l.blocks_per_volume = std::min((o.volume_bytes - reserve) / per_block, std::max<std::uint64_t>(blocks, 1));
    l.blocks_per_set = std::min(l.blocks_per_set, l.blocks_per_volume);
    if (auto ok = l.validate(); !ok) return ok.error();
    if (blocks == 0) return fail("the archive is empty");
    if (ceil_div(blocks, l.blocks_per_volume) > kMaxVolumes) {
        return fail("the bundle would need " + std::to_string(ceil_div(blocks, l.blocks_per_volume)) +
                    " volumes of this size, over " + std::to_string(kMaxVolumes));
    }
    return l;
}

// ---- names and ids -------------------------------------------------------------

std::string SegmentEntry::name(unsigned volume) const {
    char buf[48];
    std::snprintf(buf, sizeof buf, "v%04u-c%04u-s%03u.seg", volume, set, stripe);
    return buf;
}

std::uint64_t VolumeIndex::session() const { return get64(set_id.data()); }
std::uint64_t VolumeIndex::transfer() const { return get64(set_id.data() + 8); }

Sha256 set_id_for(const Sha256& bundle_id, const Layout& layout, const MediaKey* key) {
    std::vector<std::byte> m;
    for (char c : std::string_view("sluice.media/1 set")) m.push_back(std::byte(c));
    m.insert(m.end(), bundle_id.begin(), bundle_id.end());
    for (std::uint64_t v : {std::uint64_t{layout.fec.data_symbols}, std::uint64_t{layout.fec.parity_symbols},
                            std::uint64_t{layout.fec.symbol_bytes}, std::uint64_t{layout.run},
                            std::uint64_t{layout.stripes}, layout.blocks_per_set, layout.blocks_per_volume,
                            std::uint64_t{layout.encrypted}}) {
        append64(m, v);
    }
    if (key) return detail::hmac_sha256(key->secret, {m});
    return sha256_of(m);
}

std::string directory_name(const VolumeIndex& index) {
    if (index.layout.encrypted) return "x" + hex(std::span(index.set_id).first(16));
    return transfer::to_hex(index.info.bundle_id);
}

// ---- the index -----------------------------------------------------------------

std::string encode_index_body(const VolumeIndex& ix) {
    json segments = json::array();
    for (const auto& s : ix.segments) {
        segments.push_back({{"set", s.set}, {"stripe", s.stripe}, {"records", s.records}, {"bytes", s.bytes},
                            {"xxh128", hex(s.xxh128)}});
    }
    json body = {
        {"format", kFormat},
        {"bundle", transfer::to_hex(ix.info.bundle_id)},
        {"channel", ix.info.channel},
        {"version", ix.info.version},
        {"archive_bytes", ix.info.archive_bytes},
        {"archive_sha256", transfer::to_hex(ix.info.archive_sha256)},
        {"data_symbols", ix.layout.fec.data_symbols},
        {"parity_symbols", ix.layout.fec.parity_symbols},
        {"symbol_bytes", ix.layout.fec.symbol_bytes},
        {"run", ix.layout.run},
        {"stripes", ix.layout.stripes},
        {"blocks_per_set", ix.layout.blocks_per_set},
        {"blocks_per_volume", ix.layout.blocks_per_volume},
        {"volume", ix.volume},
        {"volumes", ix.volumes},
        {"first_block", ix.first_block},
        {"end_block", ix.end_block},
        {"segments", std::move(segments)},
        {"written_at", ix.written_at},
        {"written_by", ix.written_by},
        {"host", ix.host},
        {"hops", ix.hops},
    };
    return body.dump();
}

std::vector<std::byte> encode_index(const VolumeIndex& ix, const MediaKey* key) {
    const std::string text = encode_index_body(ix);
    const bool enc = ix.layout.encrypted && key != nullptr;
    std::vector<std::byte> out(kEnvelopeHeader);
    std::memcpy(out.data(), kIndexMagic.data(), kIndexMagic.size());
    out[8] = std::byte{kIndexVersion};
    out[9] = std::byte{static_cast<std::uint8_t>(enc ? 1 : 0)};
    put32(out.data() + 12, ix.volume);
    put32(out.data() + 16, static_cast<std::uint32_t>(text.size()));
    std::memcpy(out.data() + 20, ix.set_id.data(), 32);
    std::optional<detail::Cipher> cipher;
    if (enc) {
        cipher.emplace(*key, ix.set_id);
        std::memcpy(out.data() + 52, cipher->key_check().data(), 16);
    }
    auto body_at = out.size();
    out.resize(out.size() + text.size() + (enc ? kTagBytes : 0));
    std::memcpy(out.data() + body_at, text.data(), text.size());
    if (enc) {
        cipher->seal(detail::index_nonce(ix.volume), std::span(out.data() + body_at, text.size()),
                     std::span<std::byte, kTagBytes>(out.data() + body_at + text.size(), kTagBytes));
    }
    auto digest = sha256_of(out);
    out.insert(out.end(), digest.begin(), digest.end());
    return out;
}

IndexParse parse_index(std::span<const std::byte> bytes, const MediaKey* key, const IndexLimits& limits) {
    IndexParse r;
    auto refuse = [&](IndexError e, std::string m) {
        r.error = e;
        r.message = std::move(m);
        return r;
    };
    if (bytes.size() < kEnvelopeHeader + kDigestBytes) return refuse(IndexError::damaged, "too short to be an index");
    if (std::memcmp(bytes.data(), kIndexMagic.data(), kIndexMagic.size()) != 0) {
        return refuse(IndexError::damaged, "not a Sluice media index (bad magic)");
    }
    auto content = bytes.first(bytes.size() - kDigestBytes);
    if (sha256_of(content) != [&] {
            Sha256 d{};
            std::memcpy(d.data(), bytes.data() + content.size(), d.size());
            return d;
        }()) {
        return refuse(IndexError::damaged, "checksum mismatch: the index is damaged");
    }
    if (std::to_integer<unsigned>(bytes[8]) != kIndexVersion) {
        return refuse(IndexError::invalid, "index format version " + std::to_string(std::to_integer<unsigned>(bytes[8])) +
                                               " is not one this build reads (1)");
    }
    const unsigned flags = std::to_integer<unsigned>(bytes[9]);
    if ((flags & ~1u) != 0 || bytes[10] != std::byte{0} || bytes[11] != std::byte{0}) {
        return refuse(IndexError::invalid, "unknown flags in the index header");
    }
    const bool enc = (flags & 1u) != 0;
    const std::uint32_t volume = get32(bytes.data() + 12);
    const std::uint32_t length = get32(bytes.data() + 16);
    if (length > limits.max_body_bytes) {
        return refuse(IndexError::invalid, "the index claims " + std::to_string(length) + " bytes, over the limit of " +
                                               std::to_string(limits.max_body_bytes));
    }
    if (content.size() != kEnvelopeHeader + length + (enc ? kTagBytes : 0)) {
        return refuse(IndexError::damaged, "the index length does not match its size");
    }
    Sha256 set_id{};
    std::memcpy(set_id.data(), bytes.data() + 20, 32);
    std::string text(length, '\0');
    std::memcpy(text.data(), bytes.data() + kEnvelopeHeader, length);
    if (enc) {
        if (key == nullptr) return refuse(IndexError::needs_key, "the medium is encrypted: give its key file");
        detail::Cipher cipher(*key, set_id);
        if (std::memcmp(cipher.key_check().data(), bytes.data() + 52, 16) != 0) {
            return refuse(IndexError::wrong_key, "the medium was encrypted with another key");
        }
        auto* body = reinterpret_cast<std::byte*>(text.data());
        if (!cipher.open(detail::index_nonce(volume), std::span(body, length),
                         std::span<const std::byte, kTagBytes>(bytes.data() + kEnvelopeHeader + length, kTagBytes))) {
            return refuse(IndexError::damaged, "the index fails its authentication tag (damaged or forged)");
        }
    }
    return parse_index_body(text, set_id, volume, enc, limits);
}

IndexParse parse_index_body(std::string_view text, const Sha256& set_id, unsigned volume, bool enc,
                            const IndexLimits& limits) {
    IndexParse r;
    auto refuse = [&](IndexError e, std::string m) {
        r.error = e;
        r.message = std::move(m);
        return r;
    };
    if (text.size() > limits.max_body_bytes) {
        return refuse(IndexError::invalid, "the index body is " + std::to_string(text.size()) +
                                               " bytes, over the limit of " + std::to_string(limits.max_body_bytes));
    }
    bool too_deep = false;
    json body = json::parse(
        text,
        [&](int depth, json::parse_event_t, json&) {
            if (depth > static_cast<int>(kMaxJsonDepth)) too_deep = true;
            return !too_deep;
        },
        false);
    if (too_deep) return refuse(IndexError::invalid, "the index nests deeper than " + std::to_string(kMaxJsonDepth));
    if (body.is_discarded() || !body.is_object()) return refuse(IndexError::invalid, "the index body is not a JSON object");

    Fields f{body, {}};
    VolumeIndex& ix = r.index;
    if (f.str("format", 64) != kFormat && f.error.empty()) {
        return refuse(IndexError::invalid, "the index format is not " + std::string(kFormat));
    }
    ix.info.bundle_id = f.digest("bundle");
    ix.info.channel = f.str("channel", 64);
    ix.info.version = f.str("version", 64);
    ix.info.archive_bytes = f.u64("archive_bytes");
    ix.info.archive_sha256 = f.digest("archive_sha256");
    ix.layout.fec.data_symbols = static_cast<unsigned>(f.u64("data_symbols", 255));
    ix.layout.fec.parity_symbols = static_cast<unsigned>(f.u64("parity_symbols", 255));
    ix.layout.fec.symbol_bytes = f.u64("symbol_bytes", limits.info.max_symbol_bytes);
    ix.layout.run = static_cast<unsigned>(f.u64("run", 255));
    ix.layout.stripes = static_cast<unsigned>(f.u64("stripes", 255));
    ix.layout.blocks_per_set = f.u64("blocks_per_set", std::uint64_t{1} << 32);
    ix.layout.blocks_per_volume = f.u64("blocks_per_volume", std::uint64_t{1} << 32);
    ix.layout.encrypted = enc;
    ix.volume = static_cast<unsigned>(f.u64("volume", kMaxVolumes));
    ix.volumes = static_cast<unsigned>(f.u64("volumes", kMaxVolumes));
    ix.first_block = f.u64("first_block", std::uint64_t{1} << 32);
    ix.end_block = f.u64("end_block", std::uint64_t{1} << 32);
    ix.written_at = f.str("written_at", 64);
    ix.written_by = f.str("written_by", 256);
    ix.host = f.str("host", 256);
    const json* hops = f.at("hops", json::value_t::string);
    const json* segments = f.at("segments", json::value_t::array);
    if (!f.error.empty()) return refuse(IndexError::invalid, f.error);
    ix.hops = hops->get<std::string>();
    if (ix.hops.size() > limits.max_hops_bytes) {
        return refuse(IndexError::invalid, "the hop record is " + std::to_string(ix.hops.size()) +
                                               " bytes, over the limit of " + std::to_string(limits.max_hops_bytes));
    }
    ix.set_id = set_id;
    ix.info.fec = ix.layout.fec;
    ix.info.interleave = 1;
    if (auto ok = ix.layout.validate(); !ok) return refuse(IndexError::invalid, ok.error().message);
    if (auto ok = ix.info.validate(limits.info); !ok) return refuse(IndexError::invalid, ok.error().message);
    const std::uint64_t blocks = ix.info.blocks();
    if (ix.volume == 0 || ix.volume != volume || ix.volume > ix.volumes ||
        ix.volumes != ceil_div(blocks, ix.layout.blocks_per_volume)) {
        return refuse(IndexError::invalid, "volume " + std::to_string(ix.volume) + " of " + std::to_string(ix.volumes) +
                                               " does not match the header or the archive size");
    }
    if (ix.first_block != std::uint64_t{ix.volume - 1} * ix.layout.blocks_per_volume ||
        ix.end_block != std::min(blocks, std::uint64_t{ix.volume} * ix.layout.blocks_per_volume)) {
        return refuse(IndexError::invalid, "the block range does not match the volume number");
    }
    const std::uint64_t sets = ceil_div(ix.end_block - ix.first_block, ix.layout.blocks_per_set);
    if (segments->size() > limits.max_segments) {
        return refuse(IndexError::invalid, "the index lists " + std::to_string(segments->size()) +
                                               " segments, over the limit of " + std::to_string(limits.max_segments));
    }
    if (segments->size() != sets * ix.layout.stripes) {
        return refuse(IndexError::invalid, "the index lists " + std::to_string(segments->size()) + " segments where " +
                                               std::to_string(sets * ix.layout.stripes) + " are expected");
    }
    const std::uint64_t record = ix.layout.record_bytes();
    std::size_t i = 0;
    for (const auto& s : *segments) {
        if (!s.is_object()) return refuse(IndexError::invalid, "segment " + std::to_string(i) + " is not an object");
        Fields g{s, {}};
        SegmentEntry e;
        e.set = static_cast<unsigned>(g.u64("set", kMaxSetsPerVolume));
        e.stripe = static_cast<unsigned>(g.u64("stripe", 255));
        e.records = g.u64("records", std::uint64_t{1} << 40);
        e.bytes = g.u64("bytes", limits.max_segment_bytes);
        e.xxh128 = g.hash128("xxh128");
        if (!g.error.empty()) return refuse(IndexError::invalid, "segment " + std::to_string(i) + ": " + g.error);
        const std::uint64_t set = i / ix.layout.stripes;
        const std::uint64_t first = ix.first_block + set * ix.layout.blocks_per_set;
        const std::uint64_t in_set = std::min(ix.layout.blocks_per_set, ix.end_block - first);
        if (e.set != set || e.stripe != i % ix.layout.stripes ||
            e.records != in_set * ix.layout.symbols_in(e.stripe) || e.bytes != e.records * record) {
            return refuse(IndexError::invalid, "segment " + std::to_string(i) + " (" + e.name(ix.volume) +
                                                   ") does not match the layout");
        }
        ix.segments.push_back(e);
        ++i;
    }
    return r;
}

// ---- what is still needed ------------------------------------------------------

std::vector<Needed> still_needed(const VolumeIndex& any, const transfer::BlockSet& held,
                                 const std::map<unsigned, VolumeImport>& last_imports) {
    std::vector<Needed> out;
    const std::uint64_t blocks = any.info.blocks();
    const std::uint64_t bpv = any.layout.blocks_per_volume;
    for (unsigned v = 1; v <= any.volumes; ++v) {
        Needed n;
        n.volume = v;
        const std::uint64_t first = std::uint64_t{v - 1} * bpv;
        const std::uint64_t end = std::min(blocks, std::uint64_t{v} * bpv);
        for (std::uint64_t b = first; b < end; ++b) {
            if (held.size() == blocks && held.test(b)) continue;
            ++n.blocks_missing;
            if (!n.ranges.empty() && n.ranges.back().second + 1 == b) {
                n.ranges.back().second = b;
            } else if (n.ranges.size() < 32) {
                n.ranges.emplace_back(b, b);
            }
        }
        if (n.blocks_missing == 0) continue;
        auto it = last_imports.find(v);
        if (it != last_imports.end()) {
            n.imported = true;
            for (const auto& s : it->second.segments) {
                std::uint64_t expected = 0;
                // The segment's set decides whether it holds a missing block.
                unsigned set = 0, stripe = 0;
                if (std::sscanf(s.name.c_str(), "v%*4u-c%4u-s%3u.seg", &set, &stripe) != 2) continue;
                const std::uint64_t set_first = first + std::uint64_t{set} * any.layout.blocks_per_set;
                const std::uint64_t set_end = std::min(end, set_first + any.layout.blocks_per_set);
                expected = (set_end - set_first) * any.layout.symbols_in(stripe);
                bool short_here = false;
                for (const auto& [a, z] : n.ranges) short_here |= a < set_end && z >= set_first;
                if (short_here && !s.intact(expected)) n.segments.push_back(s.name.substr(0, s.name.size() - 4));
            }
        }
        out.push_back(std::move(n));
    }
    return out;
}

std::string describe(const Needed& n, unsigned volumes) {
    std::string s = "volume " + std::to_string(n.volume) + " of " + std::to_string(volumes) + ": ";
    s += std::to_string(n.blocks_missing) + (n.blocks_missing == 1 ? " block" : " blocks") + " (";
    for (std::size_t i = 0; i < n.ranges.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(n.ranges[i].first);
        if (n.ranges[i].second != n.ranges[i].first) s += "-" + std::to_string(n.ranges[i].second);
    }
    s += ")";
    if (!n.imported) return s + " not yet imported";
    s += " unrecoverable from what was read";
    if (!n.segments.empty()) {
        s += "; bring these segments intact: ";
        for (std::size_t i = 0; i < n.segments.size(); ++i) s += (i ? ", " : "") + n.segments[i];
    }
    return s;
}

}  // namespace sluice::media
