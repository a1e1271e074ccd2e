#include "sluice/transfer/reassembler.hpp"

#include <algorithm>
#include <cstring>

namespace sluice::transfer {

struct Reassembler::Partial {
    std::vector<std::byte> buffer;  // K+M symbols
    std::vector<bool> present;
    unsigned count = 0;
    std::uint64_t touch = 0;
};

struct Reassembler::Staging {
    TransferInfo info;
    BlockSet held;
    int users = 0;
    bool dirty = false;
    bool finalizing = false;  // every block held; the owner is checking the SHA-256
    TimePoint last_checkpoint{};
    std::shared_ptr<const std::vector<std::byte>> annex;  // newest annex completed by any of its transfers
};

struct Reassembler::Transfer {
    TransferId id;
    TransferInfo info;
    std::string key;
    TimePoint last_seen{};
    bool done = false;  // assembled, being finalized, or delivered before: frames are ignored
    bool holds_staging = false;  // counted in its Staging's users
    std::map<std::uint32_t, std::unique_ptr<Partial>> partials;
    AnnexCollector annex;
};

namespace {
constexpr std::size_t kMaxReportedRanges = 32;
constexpr std::size_t kMaxFinishedAnnouncements = 256;
constexpr std::size_t kMaxFreePartials = 16;
}  // namespace

std::string_view to_string(Event::Kind kind) {
    switch (kind) {
        case Event::Kind::started: return "started";
        case Event::Kind::assembled: return "assembled";
        case Event::Kind::incomplete: return "incomplete";
        case Event::Kind::delivered_before: return "delivered_before";
        case Event::Kind::failed: return "failed";
        case Event::Kind::heartbeat: return "heartbeat";
    }
    return "unknown";
}

Reassembler::Reassembler(ReassemblerLimits limits, BlockStore& store, LinkKey* key)
    : limits_(limits), store_(store), key_(key) {}

Reassembler::~Reassembler() = default;

std::vector<Event> Reassembler::drain() { return std::exchange(events_, {}); }

void Reassembler::on_datagram(std::span<const std::byte> datagram, TimePoint now) {
    try {
        handle_datagram(datagram, now);
    } catch (const std::exception&) {
        // Out of memory or a broken invariant: drop this datagram, count it,
        // keep receiving (the receive loop must not die on one frame).
        ++stats_.internal_errors;
    }
}

void Reassembler::handle_datagram(std::span<const std::byte> datagram, TimePoint now) {
    ++stats_.datagrams;
    stats_.bytes += datagram.size();
    auto parsed = parse_frame(datagram, key_);
    if (parsed.error != FrameError::none) {
        ++stats_.frame_errors[static_cast<int>(parsed.error)];
        return;
    }
    switch (parsed.frame.header.type) {
        case FrameType::metadata: on_metadata(parsed.frame, now); break;
        case FrameType::symbol: on_symbol(parsed.frame, now); break;
        case FrameType::heartbeat: on_heartbeat(parsed.frame, now); break;
        case FrameType::annex: on_annex(parsed.frame, now); break;
    }
}

void Reassembler::on_metadata(const FrameView& frame, TimePoint now) {
    ++stats_.metadata_frames;
    auto info = parse_transfer_info(frame.payload, limits_.info);
    if (!info) {
        ++stats_.bad_payloads;
        return;
    }
    TransferId id{frame.header.session, frame.header.transfer};
    if (auto it = transfers_.find(id); it != transfers_.end()) {
        auto& t = it->second;
        TransferInfo same = *info;
        same.pass = t.info.pass;
        same.passes = t.info.passes;
        if (!(same == t.info)) {  // one transfer id, two descriptions: keep the first
            ++stats_.bad_payloads;
            return;
        }
        t.info.pass = info->pass;
        t.info.passes = info->passes;
        t.last_seen = now;
        return;
    }
    if (transfers_.size() >= limits_.max_transfers) {
        auto oldest = std::min_element(transfers_.begin(), transfers_.end(), [](const auto& a, const auto& b) {
            return a.second.last_seen < b.second.last_seen;
        });
        ++stats_.transfers_evicted;
        end_transfer(oldest, Event::Kind::incomplete,
                     "evicted: more than " + std::to_string(limits_.max_transfers) + " transfers at once");
    }
    Transfer t;
    t.id = id;
    t.info = *info;
    t.key = staging_key(*info);
    t.last_seen = now;
    Event ev;
    ev.session = id.first;
    ev.transfer = id.second;
    ev.info = *info;
    ev.key = t.key;
    Staging* staging = staging_for(*info, t, now);
    if (staging == nullptr) return;  // store refused; the event is out, the next metadata retries
    ++stats_.transfers_started;
    ev.blocks_held = staging->held.count();
    ev.kind = t.done && !staging->finalizing ? Event::Kind::delivered_before : Event::Kind::started;
    events_.push_back(ev);
    bool assemble_now = !t.done && staging->held.complete();
    transfers_.emplace(id, std::move(t));
    if (assemble_now) {
        // Every block was staged before (a crash between the last block and
        // delivery): go straight to finalization.
        staging->finalizing = true;
        for (auto& [tid, other] : transfers_) {
            if (other.key == ev.key) other.done = true;
        }
        ev.kind = Event::Kind::assembled;
        ev.annex = annex_of(transfers_.at(id));  // another live transfer of the archive may have one
        ++stats_.transfers_assembled;
        events_.push_back(ev);
    }
    adopt_orphans(id);
}

Reassembler::Staging* Reassembler::staging_for(const TransferInfo& info, Transfer& t, TimePoint now) {
    if (auto it = stagings_.find(t.key); it != stagings_.end()) {
        if (it->second.held.size() != info.blocks()) {
            ++stats_.bad_payloads;  // the key names size and layout, so this is a forgery or a bug
            return nullptr;
        }
        ++it->second.users;
        t.holds_staging = true;
        t.done = it->second.finalizing;
        return &it->second;
    }
    auto opened = store_.open(t.key, info);
    if (opened && !opened->already_delivered && opened->held.size() != info.blocks()) {
        opened = fail("staging area " + t.key + " has " + std::to_string(opened->held.size()) + " blocks, the transfer " +
                      std::to_string(info.blocks()));
    }
    if (!opened) {
        ++stats_.store_errors;
        Event ev;
        ev.kind = Event::Kind::failed;
        ev.info = info;
        ev.key = t.key;
        ev.message = opened.error().message;
        events_.push_back(std::move(ev));
        return nullptr;
    }
    Staging s;
    s.info = info;
    s.users = 1;
    t.holds_staging = true;
    s.last_checkpoint = now;
    if (opened->already_delivered) {
        t.done = true;
        s.held = BlockSet(info.blocks());
    } else {
        s.held = std::move(opened->held);
    }
    return &stagings_.emplace(t.key, std::move(s)).first->second;
}

void Reassembler::release_staging(const std::string& key) {
    auto it = stagings_.find(key);
    if (it == stagings_.end()) return;
    auto& s = it->second;
    if (--s.users > 0 || s.finalizing) return;
    if (s.dirty) {
        if (auto ok = store_.checkpoint(key, s.held); !ok) ++stats_.store_errors;
    }
    store_.release(key);
    stagings_.erase(it);
}

BlockCodec& Reassembler::codec_for(const FecParams& params) {
    for (auto& [p, codec] : codecs_) {
        if (p == params) return *codec;
    }
    if (codecs_.size() >= 4) codecs_.erase(codecs_.begin());
    codecs_.emplace_back(params, std::make_unique<BlockCodec>(params));
    return *codecs_.back().second;
}

std::unique_ptr<Reassembler::Partial> Reassembler::new_partial(std::size_t bytes, unsigned symbols) {
    std::unique_ptr<Partial> p;
    for (auto it = free_partials_.begin(); it != free_partials_.end(); ++it) {
        if ((*it)->buffer.size() == bytes) {
            p = std::move(*it);
            free_partials_.erase(it);
            break;
        }
    }
    if (!p) {
        p = std::make_unique<Partial>();
        p->buffer.resize(bytes);
    }
    p->present.assign(symbols, false);
    p->count = 0;
    buffered_bytes_ += bytes;
    return p;
}

void Reassembler::abandon(Transfer& t, std::map<std::uint32_t, std::unique_ptr<Partial>>::iterator it) {
    ++stats_.blocks_abandoned;
    stats_.symbols_missing += t.info.fec.data_symbols - std::min(it->second->count, t.info.fec.data_symbols);
    drop_partial(t, it);
}

void Reassembler::drop_partial(Transfer& t, std::map<std::uint32_t, std::unique_ptr<Partial>>::iterator it) {
    auto& p = it->second;
    buffered_bytes_ -= p->buffer.size();
    if (free_partials_.size() < kMaxFreePartials) free_partials_.push_back(std::move(p));
    t.partials.erase(it);
}

bool Reassembler::evict_oldest_partial() {
    Transfer* owner = nullptr;
    std::map<std::uint32_t, std::unique_ptr<Partial>>::iterator oldest;
    for (auto& [id, t] : transfers_) {
        for (auto it = t.partials.begin(); it != t.partials.end(); ++it) {
            if (owner == nullptr || it->second->touch < oldest->second->touch) {
                owner = &t;
                oldest = it;
            }
        }
    }
    if (owner == nullptr) return false;
    abandon(*owner, oldest);
    return true;
}

Reassembler::Partial* Reassembler::partial_for(Transfer& t, std::uint32_t block) {
    if (auto it = t.partials.find(block); it != t.partials.end()) return it->second.get();
    // Blocks well behind this one will get no more symbols in this pass: their
    // slots go back to the pool (a later pass brings them again).
    const std::uint64_t window = std::uint64_t{limits_.window_groups} * t.info.interleave;
    while (!t.partials.empty() && t.partials.begin()->first + window < block) abandon(t, t.partials.begin());
    const unsigned n = t.info.fec.data_symbols + t.info.fec.parity_symbols;
    const std::size_t bytes = std::size_t{n} * t.info.fec.symbol_bytes;
    while (buffered_bytes_ + bytes > limits_.max_buffered_bytes && evict_oldest_partial()) {
    }
    auto [it, inserted] = t.partials.emplace(block, new_partial(bytes, n));
    return it->second.get();
}

void Reassembler::on_symbol(const FrameView& frame, TimePoint now) {
    ++stats_.symbol_frames;
    auto it = transfers_.find({frame.header.session, frame.header.transfer});
    if (it == transfers_.end()) {
        // The metadata may have been lost or not sent yet (a receiver starting
        // mid-transfer): keep a bounded number of symbols until it comes.
        ++stats_.symbols_before_metadata;
        keep_orphan(frame);
        return;
    }
    it->second.last_seen = now;
    symbol_for(it->second, frame.header.block, frame.header.symbol, frame.payload);
}

namespace {
constexpr std::size_t kOrphanOverhead = 96;  // the Orphan itself and its allocation
}

void Reassembler::keep_orphan(const FrameView& frame) {
    const std::size_t size = frame.payload.size();
    if (size < limits_.info.min_symbol_bytes || size > limits_.info.max_symbol_bytes ||
        size + kOrphanOverhead > limits_.max_orphan_bytes) {
        ++stats_.bad_payloads;  // no valid transfer has symbols of this size
        return;
    }
    hold_orphan(frame);
}

void Reassembler::hold_orphan(const FrameView& frame) {
    const std::size_t size = frame.payload.size();
    if (size + kOrphanOverhead > limits_.max_orphan_bytes) {
        ++stats_.orphans_dropped;
        return;
    }
    while (!orphans_.empty() && orphan_bytes_ + size + kOrphanOverhead > limits_.max_orphan_bytes) {
        orphan_bytes_ -= orphans_.front().payload.size() + kOrphanOverhead;
        orphans_.pop_front();
        ++stats_.orphans_dropped;
    }
    orphans_.push_back(Orphan{{frame.header.session, frame.header.transfer}, frame.header.type, frame.header.block,
                              frame.header.symbol, std::vector<std::byte>(frame.payload.begin(), frame.payload.end())});
    orphan_bytes_ += size + kOrphanOverhead;
}

void Reassembler::adopt_orphans(const TransferId& id) {
    std::deque<Orphan> keep;
    std::vector<Orphan> mine;
    for (auto& o : orphans_) {
        if (o.id == id) {
            orphan_bytes_ -= o.payload.size() + kOrphanOverhead;
            mine.push_back(std::move(o));
        } else {
            keep.push_back(std::move(o));
        }
    }
    orphans_ = std::move(keep);
    for (auto& o : mine) {
        auto it = transfers_.find(id);
        if (it == transfers_.end()) break;  // ended (a store failure) while adopting
        if (o.type == FrameType::annex) {
            annex_chunk_for(it->second, o.payload);
        } else {
            symbol_for(it->second, o.block, o.symbol, o.payload);
        }
    }
}

void Reassembler::symbol_for(Transfer& t, std::uint32_t block, std::uint16_t symbol, std::span<const std::byte> payload) {
    const auto& fec = t.info.fec;
    if (symbol >= fec.data_symbols + fec.parity_symbols || payload.size() != fec.symbol_bytes || block >= t.info.blocks()) {
        ++stats_.bad_payloads;
        return;
    }
    if (t.done) {
        ++stats_.symbols_unneeded;
        return;
    }
    auto sit = stagings_.find(t.key);
    if (sit == stagings_.end() || block >= sit->second.held.size()) {
        ++stats_.bad_payloads;  // cannot happen: a live transfer holds its staging of its own size
        return;
    }
    auto& staging = sit->second;
    if (staging.held.test(block)) {
        ++stats_.symbols_unneeded;
        return;
    }
    Partial* p = partial_for(t, block);
    p->touch = ++touch_;
    if (p->present[symbol]) {
        ++stats_.symbols_duplicate;
        return;
    }
    std::memcpy(p->buffer.data() + std::size_t{symbol} * fec.symbol_bytes, payload.data(), fec.symbol_bytes);
    p->present[symbol] = true;
    if (++p->count == fec.data_symbols) complete_block(t, block, *p);
}

void Reassembler::complete_block(Transfer& t, std::uint32_t block, Partial& p) {
    const auto& fec = t.info.fec;
    unsigned missing = 0;
    for (unsigned i = 0; i < fec.data_symbols; ++i) missing += p.present[i] ? 0 : 1;
    if (missing > 0) {
        std::vector<std::byte*> symbols(fec.data_symbols + fec.parity_symbols);
        for (std::size_t i = 0; i < symbols.size(); ++i) symbols[i] = p.buffer.data() + i * fec.symbol_bytes;
        if (!codec_for(fec).decode(symbols, p.present)) return;  // cannot happen with K present; keep collecting
        ++stats_.blocks_recovered;
        stats_.symbols_rebuilt += missing;
    } else {
        ++stats_.blocks_direct;
    }
    const std::uint64_t offset = std::uint64_t{block} * t.info.block_bytes();
    const auto length = static_cast<std::size_t>(std::min<std::uint64_t>(t.info.block_bytes(), t.info.archive_bytes - offset));
    const std::string key = t.key;
    auto written = store_.write(key, offset, std::span<const std::byte>(p.buffer.data(), length));
    drop_partial(t, t.partials.find(block));
    if (!written) {
        // Disk full or an I/O error: this transfer stops here, its staging and
        // progress stay consistent (the block is not marked held), and the next
        // pass retries. Other transfers go on.
        ++stats_.store_errors;
        end_transfer(transfers_.find(t.id), Event::Kind::failed, written.error().message);
        return;
    }
    auto sit = stagings_.find(key);
    if (sit == stagings_.end()) return;
    auto& staging = sit->second;
    staging.held.set(block);
    staging.dirty = true;
    if (!staging.held.complete()) return;
    if (auto ok = store_.checkpoint(key, staging.held); !ok) ++stats_.store_errors;
    staging.dirty = false;
    staging.finalizing = true;
    for (auto& [id, other] : transfers_) {
        if (other.key != key) continue;
        other.done = true;
        while (!other.partials.empty()) drop_partial(other, other.partials.begin());
    }
    ++stats_.transfers_assembled;
    Event ev;
    ev.kind = Event::Kind::assembled;
    ev.session = t.id.first;
    ev.transfer = t.id.second;
    ev.info = t.info;
    ev.key = key;
    ev.blocks_held = staging.held.count();
    ev.annex = annex_of(t);
    events_.push_back(std::move(ev));
}

void Reassembler::on_annex(const FrameView& frame, TimePoint now) {
    ++stats_.annex_frames;
    // Checked here once, so that an orphan only waits if it can be used.
    if (frame.header.block != 0 || frame.header.symbol != 0 || frame.payload.size() > limits_.info.max_symbol_bytes ||
        !parse_annex_chunk(frame.payload)) {
        ++stats_.bad_annex_chunks;
        return;
    }
    auto it = transfers_.find({frame.header.session, frame.header.transfer});
    if (it == transfers_.end()) {
        hold_orphan(frame);  // its metadata may come next (lost, or a receiver starting mid-pass)
        return;
    }
    it->second.last_seen = now;
    annex_chunk_for(it->second, frame.payload);
}

void Reassembler::annex_chunk_for(Transfer& t, std::span<const std::byte> payload) {
    auto chunk = parse_annex_chunk(payload);
    // The encoder never makes annex frames larger than symbol frames.
    if (!chunk || payload.size() > t.info.fec.symbol_bytes) {
        ++stats_.bad_annex_chunks;
        return;
    }
    if (t.done) return;  // assembled, or delivered before: its events are out
    auto added = t.annex.add(*chunk);
    if (!added) {
        ++stats_.bad_annex_chunks;
        return;
    }
    if (*added != AnnexCollector::Outcome::completed) return;
    ++stats_.annexes_completed;
    if (auto s = stagings_.find(t.key); s != stagings_.end()) s->second.annex = t.annex.complete();
}

std::vector<std::byte> Reassembler::annex_of(const Transfer& t) const {
    if (const auto& own = t.annex.complete()) return *own;
    if (auto s = stagings_.find(t.key); s != stagings_.end() && s->second.annex) return *s->second.annex;
    return {};
}

void Reassembler::on_heartbeat(const FrameView& frame, TimePoint now) {
    ++stats_.heartbeat_frames;
    auto hb = parse_heartbeat(frame.payload);
    if (!hb) {
        ++stats_.bad_payloads;
        return;
    }
    for (const auto& r : hb->recent) {
        if (r.passes == 0 || r.passes_done < r.passes) continue;
        sender_finished_.try_emplace({frame.header.session, r.transfer}, now);
    }
    while (sender_finished_.size() > kMaxFinishedAnnouncements) sender_finished_.erase(sender_finished_.begin());
    Event ev;
    ev.kind = Event::Kind::heartbeat;
    ev.session = frame.header.session;
    ev.heartbeat = std::move(*hb);
    events_.push_back(std::move(ev));
}

void Reassembler::end_transfer(std::map<TransferId, Transfer>::iterator it, Event::Kind kind, std::string message) {
    Transfer& t = it->second;
    while (!t.partials.empty()) abandon(t, t.partials.begin());
    if (!t.done && (kind == Event::Kind::incomplete || kind == Event::Kind::failed)) {
        Event ev;
        ev.kind = kind;
        ev.session = t.id.first;
        ev.transfer = t.id.second;
        ev.info = t.info;
        ev.key = t.key;
        ev.message = std::move(message);
        if (auto s = stagings_.find(t.key); s != stagings_.end()) {
            ev.blocks_held = s->second.held.count();
            ev.missing = s->second.held.missing_ranges(kMaxReportedRanges);
        }
        if (kind == Event::Kind::incomplete) {
            ++stats_.transfers_incomplete;
            ev.annex = annex_of(t);
        }
        events_.push_back(std::move(ev));
    }
    std::string key = t.key;
    const bool holds = t.holds_staging;
    sender_finished_.erase(t.id);
    transfers_.erase(it);
    if (holds) release_staging(key);
}

void Reassembler::on_tick(TimePoint now) {
    for (auto& [key, s] : stagings_) {
        if (!s.dirty || now - s.last_checkpoint < limits_.checkpoint_interval) continue;
        if (auto ok = store_.checkpoint(key, s.held); !ok) {
            ++stats_.store_errors;
            Event ev;
            ev.kind = Event::Kind::failed;
            ev.info = s.info;
            ev.key = key;
            ev.message = ok.error().message;
            events_.push_back(std::move(ev));
        }
        s.dirty = false;
        s.last_checkpoint = now;
    }
    for (auto it = transfers_.begin(); it != transfers_.end();) {
        auto next = std::next(it);
        const Transfer& t = it->second;
        const auto idle = now - t.last_seen;
        bool expired = idle >= limits_.transfer_timeout;
        if (auto f = sender_finished_.find(t.id); f != sender_finished_.end()) {
            expired = expired || (now - f->second >= limits_.finished_grace && idle >= limits_.finished_grace);
        }
        if (expired) {
            end_transfer(it, Event::Kind::incomplete,
                         t.done ? std::string{} : "no frames for " + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(idle).count()) + " s");
        }
        it = next;
    }
}

void Reassembler::on_finalized(const std::string& key, bool delivered) {
    stagings_.erase(key);
    for (auto it = transfers_.begin(); it != transfers_.end();) {
        if (it->second.key != key) {
            ++it;
        } else if (delivered) {
            it->second.done = true;  // later frames are ignored until the transfer goes idle
            it->second.holds_staging = false;  // its Staging is gone
            ++it;
        } else {
            // Refused (SHA-256 mismatch): forget it, so the next metadata starts afresh.
            sender_finished_.erase(it->first);
            it = transfers_.erase(it);
        }
    }
}

std::vector<TransferProgress> Reassembler::in_flight() const {
    std::vector<TransferProgress> out;
    for (const auto& [id, t] : transfers_) {
        if (t.done) continue;
        TransferProgress p;
        p.session = id.first;
        p.transfer = id.second;
        p.info = t.info;
        p.blocks_total = t.info.blocks();
        if (auto s = stagings_.find(t.key); s != stagings_.end()) p.blocks_held = s->second.held.count();
        p.partial_blocks = t.partials.size();
        out.push_back(std::move(p));
    }
    return out;
}

}  // namespace sluice::transfer
