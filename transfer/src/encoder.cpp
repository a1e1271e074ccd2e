#include "sluice/transfer/encoder.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace sluice::transfer {

FrameBatch::FrameBatch(std::size_t max_frames, std::size_t max_frame_bytes)
    : max_frames_(max_frames), slot_bytes_(max_frame_bytes), storage_(max_frames * max_frame_bytes) {
    frames_.reserve(max_frames);
}

void FrameBatch::clear() { frames_.clear(); }

std::span<std::byte> FrameBatch::next_slot() {
    return std::span<std::byte>(storage_.data() + frames_.size() * slot_bytes_, slot_bytes_);
}

void FrameBatch::commit(std::size_t frame_bytes) {
    frames_.emplace_back(storage_.data() + frames_.size() * slot_bytes_, frame_bytes);
}

Encoder::Encoder(TransferInfo info, std::uint64_t session, std::uint64_t transfer, ArchiveReader reader, LinkKey* key,
                 std::vector<std::byte> annex)
    : info_(std::move(info)),
      session_(session),
      transfer_(transfer),
      reader_(std::move(reader)),
      key_(key),
      codec_(info_.fec, 1) {
    if (auto ok = info_.validate(); !ok) throw std::invalid_argument("encoder: " + ok.error().message);
    metadata_ = encode_transfer_info(info_);
    blocks_ = info_.blocks();
    groups_ = (blocks_ + info_.interleave - 1) / info_.interleave;
    symbols_.resize(std::size_t{info_.interleave} * (info_.fec.data_symbols + info_.fec.parity_symbols) *
                    info_.fec.symbol_bytes);
    // leading copies + one per group + closing copy + every symbol of every block
    frames_total_ = leading_metadata_ + groups_ + 1 + blocks_ * (info_.fec.data_symbols + info_.fec.parity_symbols);
    if (!annex.empty()) {
        auto chunks = encode_annex_chunks(annex, info_.fec.symbol_bytes);
        if (!chunks) throw std::invalid_argument("encoder: " + chunks.error().message);
        annex_chunks_ = std::move(*chunks);
        const std::uint64_t n = annex_chunks_.size();
        // Two rounds lead the pass, two more are spread over the groups (at
        // least one chunk per group), one closes it: see the header.
        annex_per_group_ = std::max<std::uint64_t>(1, (2 * n + groups_ - 1) / groups_);
        annex_due_ = 2 * n;
        annex_frames_total_ = 2 * n + groups_ * annex_per_group_ + n;
        frames_total_ += annex_frames_total_;
    }
}

std::size_t Encoder::max_frame_bytes() const {
    return frame_size(std::max(info_.fec.symbol_bytes, metadata_.size()), key_ != nullptr);
}

Result<void> Encoder::load_group() {
    const auto& fec = info_.fec;
    const std::size_t s = fec.symbol_bytes;
    const std::size_t per_block = std::size_t{fec.data_symbols + fec.parity_symbols} * s;
    std::uint64_t first = group_ * info_.interleave;
    group_blocks_ = static_cast<unsigned>(std::min<std::uint64_t>(info_.interleave, blocks_ - first));
    std::vector<const std::byte*> data(fec.data_symbols);
    std::vector<std::byte*> parity(fec.parity_symbols);
    for (unsigned j = 0; j < group_blocks_; ++j) {
        std::byte* block = symbols_.data() + j * per_block;
        std::uint64_t offset = (first + j) * info_.block_bytes();
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(info_.block_bytes(), info_.archive_bytes - offset));
        std::size_t got = 0;
        while (got < want) {
            auto n = reader_(offset + got, std::span<std::byte>(block + got, want - got));
            if (!n) return n.error();
            if (*n == 0) {
                return fail("archive is shorter than announced (" + std::to_string(offset + got) + " of " +
                            std::to_string(info_.archive_bytes) + " bytes): it changed while being sent");
            }
            got += *n;
        }
        std::memset(block + want, 0, info_.block_bytes() - want);  // the last block is zero-padded
        for (unsigned i = 0; i < fec.data_symbols; ++i) data[i] = block + i * s;
        for (unsigned i = 0; i < fec.parity_symbols; ++i) parity[i] = block + (fec.data_symbols + i) * s;
        codec_.encode(data, parity);
    }
    group_loaded_ = true;
    group_metadata_sent_ = false;
    symbol_ = 0;
    block_in_group_ = 0;
    return {};
}

void Encoder::emit(FrameBatch& batch, FrameType type, std::uint32_t block, std::uint16_t symbol,
                   std::span<const std::byte> payload) {
    FrameHeader h{type, session_, transfer_, block, symbol};
    auto n = encode_frame(h, payload, key_, batch.next_slot());
    // The slot is sized by max_frame_bytes() and payloads are bounded at construction.
    if (!n) throw std::logic_error("encoder: " + n.error().message);
    batch.commit(*n);
    ++frames_emitted_;
}

void Encoder::emit_annex_chunk(FrameBatch& batch) {
    emit(batch, FrameType::annex, 0, 0, annex_chunks_[annex_next_]);
    annex_next_ = (annex_next_ + 1) % annex_chunks_.size();
    --annex_due_;
}

Result<bool> Encoder::fill(FrameBatch& batch) {
    const auto& fec = info_.fec;
    const unsigned n_symbols = fec.data_symbols + fec.parity_symbols;
    const std::size_t per_block = std::size_t{n_symbols} * fec.symbol_bytes;
    while (!batch.full()) {
        if (leading_metadata_ > 0) {
            emit(batch, FrameType::metadata, 0, 0, metadata_);
            --leading_metadata_;
            continue;
        }
        if (annex_due_ > 0) {
            emit_annex_chunk(batch);
            continue;
        }
        if (group_ == groups_) {
            if (!closing_annex_queued_) {
                closing_annex_queued_ = true;
                annex_due_ = annex_chunks_.size();
                continue;
            }
            if (closing_metadata_sent_) return false;
            emit(batch, FrameType::metadata, 0, 0, metadata_);
            closing_metadata_sent_ = true;
            return false;
        }
        if (!group_loaded_) {
            if (auto ok = load_group(); !ok) return ok.error();
        }
        if (!group_metadata_sent_) {
            emit(batch, FrameType::metadata, 0, 0, metadata_);
            group_metadata_sent_ = true;
            annex_due_ = annex_per_group_;
            continue;
        }
        const std::byte* sym = symbols_.data() + block_in_group_ * per_block + std::size_t{symbol_} * fec.symbol_bytes;
        emit(batch, FrameType::symbol, static_cast<std::uint32_t>(group_ * info_.interleave + block_in_group_),
             static_cast<std::uint16_t>(symbol_), std::span<const std::byte>(sym, fec.symbol_bytes));
        if (++block_in_group_ == group_blocks_) {
            block_in_group_ = 0;
            if (++symbol_ == n_symbols) {
                ++group_;
                group_loaded_ = false;
            }
        }
    }
    return !(group_ == groups_ && closing_metadata_sent_);
}

}  // namespace sluice::transfer
