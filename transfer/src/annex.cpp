#include "sluice/transfer/annex.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "sluice/transfer/frame.hpp"
#include "wire.hpp"

namespace sluice::transfer {

Sha256 annex_sha256(std::span<const std::byte> bytes) {
    Sha256 out{};
    unsigned len = 0;
    if (EVP_Digest(bytes.data(), bytes.size(), reinterpret_cast<unsigned char*>(out.data()), &len, EVP_sha256(),
                   nullptr) != 1 ||
        len != out.size()) {
        // Only an OpenSSL without SHA-256 (or out of memory) gets here.
        throw std::runtime_error("annex: SHA-256 is not available");
    }
    return out;
}

Result<std::vector<std::vector<std::byte>>> encode_annex_chunks(std::span<const std::byte> annex,
                                                                std::size_t max_payload_bytes) {
    if (annex.empty()) return fail("annex: empty (send no annex frames instead)");
    if (annex.size() > kMaxAnnexBytes) {
        return fail("annex: " + std::to_string(annex.size()) + " bytes, over the limit of " +
                    std::to_string(kMaxAnnexBytes));
    }
    const std::size_t payload = std::min(max_payload_bytes, kMaxFramePayload);
    if (payload <= kAnnexHeaderBytes) {
        return fail("annex: frames of " + std::to_string(max_payload_bytes) + " payload bytes leave no room after the " +
                    std::to_string(kAnnexHeaderBytes) + "-byte chunk header");
    }
    const std::size_t chunk = payload - kAnnexHeaderBytes;
    const std::size_t count = (annex.size() + chunk - 1) / chunk;
    if (count > kMaxAnnexChunks) {
        return fail("annex: " + std::to_string(annex.size()) + " bytes in chunks of " + std::to_string(chunk) +
                    " need " + std::to_string(count) + " chunks, over " + std::to_string(kMaxAnnexChunks));
    }
    const Sha256 digest = annex_sha256(annex);
    std::vector<std::vector<std::byte>> out;
    out.reserve(count);
    for (std::size_t i = 0; i < count; ++i) {
        const auto part = annex.subspan(i * chunk, std::min(chunk, annex.size() - i * chunk));
        wire::Writer w;
        w.u8(kAnnexVersion);
        w.u32(static_cast<std::uint32_t>(annex.size()));
        w.bytes(digest);
        w.u16(static_cast<std::uint16_t>(i));
        w.u16(static_cast<std::uint16_t>(count));
        w.bytes(part);
        out.push_back(w.take());
    }
    return out;
}

Result<AnnexChunk> parse_annex_chunk(std::span<const std::byte> payload) {
    wire::Reader r(payload);
    const std::uint8_t version = r.u8();
    if (!r.ok()) return fail("annex chunk: truncated");
    if (version != kAnnexVersion) return fail("annex chunk: unknown version " + std::to_string(version));
    AnnexChunk c;
    c.total = r.u32();
    auto digest = r.bytes(c.sha256.size());
    if (digest.size() == c.sha256.size()) std::copy(digest.begin(), digest.end(), c.sha256.begin());
    c.index = r.u16();
    c.count = r.u16();
    if (!r.ok()) return fail("annex chunk: truncated");
    c.data = payload.subspan(kAnnexHeaderBytes);
    const std::uint64_t total = c.total;
    const std::uint64_t length = c.data.size();
    if (total == 0 || total > kMaxAnnexBytes) {
        return fail("annex chunk: annex length " + std::to_string(total) + " is outside 1.." +
                    std::to_string(kMaxAnnexBytes));
    }
    if (c.count == 0 || c.index >= c.count) {
        return fail("annex chunk: index " + std::to_string(c.index) + " of " + std::to_string(c.count));
    }
    if (length == 0) return fail("annex chunk: no data");
    std::uint64_t chunk = 0;
    if (c.index + 1 < c.count) {
        chunk = length;  // every chunk but the last has the chunk size
    } else if (c.count == 1) {
        if (length != total) {
            return fail("annex chunk: the only chunk has " + std::to_string(length) + " bytes of a " +
                        std::to_string(total) + "-byte annex");
        }
        chunk = length;
    } else {
        // The last chunk is the remainder: (count-1)·c + length = total, 1 ≤ length ≤ c.
        if (length >= total || (total - length) % (c.count - 1u) != 0) {
            return fail("annex chunk: a last chunk of " + std::to_string(length) + " bytes does not complete " +
                        std::to_string(c.count) + " chunks of a " + std::to_string(total) + "-byte annex");
        }
        chunk = (total - length) / (c.count - 1u);
        if (length > chunk) {
            return fail("annex chunk: the last chunk (" + std::to_string(length) + " bytes) is longer than the others (" +
                        std::to_string(chunk) + ")");
        }
    }
    if (chunk + kAnnexHeaderBytes > kMaxFramePayload) return fail("annex chunk: chunks would not fit a frame");
    if ((total + chunk - 1) / chunk != c.count) {
        return fail("annex chunk: " + std::to_string(c.count) + " chunks of " + std::to_string(chunk) +
                    " bytes do not make a " + std::to_string(total) + "-byte annex");
    }
    c.chunk_bytes = static_cast<std::size_t>(chunk);
    return c;
}

std::size_t AnnexCollector::memory_bytes() const {
    return buffer_.capacity() + present_.capacity() / 8 + (complete_ ? complete_->capacity() : 0);
}

void AnnexCollector::reset() {
    collecting_ = false;
    buffer_ = {};
    present_ = {};
    held_ = 0;
}

void AnnexCollector::start(const AnnexChunk& chunk) {
    reset();
    collecting_ = true;
    sha256_ = chunk.sha256;
    total_ = chunk.total;
    count_ = chunk.count;
    chunk_bytes_ = chunk.chunk_bytes;
    buffer_.assign(chunk.total, std::byte{0});
    present_.assign(chunk.count, false);
}

Result<AnnexCollector::Outcome> AnnexCollector::add(const AnnexChunk& chunk) {
    if (complete_ && chunk.sha256 == complete_sha256_) {
        if (chunk.total != complete_->size()) return fail("annex chunk: the complete annex's SHA-256 with another length");
        return Outcome::duplicate;
    }
    if (!collecting_ || chunk.sha256 != sha256_) {
        start(chunk);
    } else if (chunk.total != total_ || chunk.count != count_ || chunk.chunk_bytes != chunk_bytes_) {
        return fail("annex chunk: " + std::to_string(chunk.total) + " bytes in " + std::to_string(chunk.count) +
                    " chunks of " + std::to_string(chunk.chunk_bytes) + " contradicts the annex being collected (" +
                    std::to_string(total_) + " bytes in " + std::to_string(count_) + " chunks of " +
                    std::to_string(chunk_bytes_) + ")");
    }
    if (present_[chunk.index]) return Outcome::duplicate;
    // parse_annex_chunk guarantees index·c + length ≤ total.
    std::memcpy(buffer_.data() + std::size_t{chunk.index} * chunk_bytes_, chunk.data.data(), chunk.data.size());
    present_[chunk.index] = true;
    if (++held_ < count_) return Outcome::stored;
    if (annex_sha256(buffer_) != sha256_) {
        reset();
        return fail("annex: the assembled chunks do not have the announced SHA-256; collecting again");
    }
    complete_ = std::make_shared<const std::vector<std::byte>>(std::move(buffer_));
    complete_sha256_ = sha256_;
    reset();
    return Outcome::completed;
}

}  // namespace sluice::transfer
