// The annex: bytes that travel with a transfer (chunk format, encoder schedule,
// reassembler collection), deterministic like the other codec tests.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <map>
#include <string>

#include "codec_rig.hpp"
#include "lossy_link.hpp"
#include "sluice/transfer/annex.hpp"
#include "sluice/transfer/encoder.hpp"
#include "sluice/transfer/reassembler.hpp"

using namespace sluice::transfer;
using sluice::test::Bytes;
using sluice::test::frames_of;
using sluice::test::Impairments;
using sluice::test::info_for;
using sluice::test::kSmall;
using sluice::test::LossyLink;
using sluice::test::random_archive;
using sluice::test::Rig;
using sluice::test::send;

namespace {

/// An audit-like annex: JSON lines, `n` bytes.
Bytes hop_record(std::size_t n, unsigned seed) {
    std::string text;
    for (unsigned i = 0; text.size() < n; ++i) {
        text += R"({"event":"bundle_queued","seq":)" + std::to_string(seed * 1000 + i) + R"(,"host":"upper-)" +
                std::to_string(seed) + R"("})" + "\n";
    }
    text.resize(n);
    Bytes out(n);
    std::memcpy(out.data(), text.data(), n);
    return out;
}

/// A chunk payload with every field chosen by the test (big-endian, as on the wire).
Bytes raw_chunk(std::uint8_t version, std::uint32_t total, const Sha256& digest, std::uint16_t index,
                std::uint16_t count, std::size_t data_bytes) {
    Bytes out;
    out.push_back(std::byte{version});
    for (int shift = 24; shift >= 0; shift -= 8) out.push_back(std::byte((total >> shift) & 0xff));
    out.insert(out.end(), digest.begin(), digest.end());
    out.push_back(std::byte(index >> 8));
    out.push_back(std::byte(index & 0xff));
    out.push_back(std::byte(count >> 8));
    out.push_back(std::byte(count & 0xff));
    out.insert(out.end(), data_bytes, std::byte{'x'});
    return out;
}

FrameType type_of(const Bytes& frame) {
    auto parsed = parse_frame(frame, nullptr);
    REQUIRE(parsed.error == FrameError::none);
    return parsed.frame.header.type;
}

AnnexChunk chunk_of(const Bytes& frame) {
    auto parsed = parse_frame(frame, nullptr);
    REQUIRE(parsed.error == FrameError::none);
    auto chunk = parse_annex_chunk(parsed.frame.payload);
    REQUIRE(chunk);
    return *chunk;
}

Bytes frame_with(FrameHeader h, const Bytes& payload) {
    Bytes frame(kMaxFrameBytes);
    auto n = encode_frame(h, payload, nullptr, frame);
    REQUIRE(n);
    frame.resize(*n);
    return frame;
}

const Event* find_event(const Rig& rig, Event::Kind kind) {
    auto it = std::find_if(rig.events.begin(), rig.events.end(), [&](const Event& e) { return e.kind == kind; });
    return it == rig.events.end() ? nullptr : &*it;
}

}  // namespace

TEST_CASE("annex chunks round-trip in any order", "[transfer][annex]") {
    const std::size_t payload = 256, chunk = payload - kAnnexHeaderBytes;  // 215
    for (std::size_t size : {std::size_t{1}, chunk - 1, chunk, chunk + 1, std::size_t{4096}, kMaxAnnexBytes}) {
        INFO("annex of " << size << " bytes");
        auto annex = hop_record(size, 1);
        auto chunks = encode_annex_chunks(annex, payload);
        REQUIRE(chunks);
        REQUIRE(chunks->size() == (size + chunk - 1) / chunk);
        Bytes joined;
        for (std::size_t i = 0; i < chunks->size(); ++i) {
            const auto& p = (*chunks)[i];
            CHECK(p.size() <= payload);
            auto c = parse_annex_chunk(p);
            REQUIRE(c);
            CHECK(c->total == size);
            CHECK(c->sha256 == annex_sha256(annex));
            CHECK(c->index == i);
            CHECK(c->count == chunks->size());
            CHECK(c->chunk_bytes == std::min(size, chunk));
            joined.insert(joined.end(), c->data.begin(), c->data.end());
        }
        CHECK(joined == annex);

        // Backwards, each chunk twice: one completion, with exactly the bytes.
        AnnexCollector collector;
        int completed = 0;
        for (std::size_t i = chunks->size(); i-- > 0;) {
            for (int copy = 0; copy < 2; ++copy) {
                auto outcome = collector.add(*parse_annex_chunk((*chunks)[i]));
                REQUIRE(outcome);
                if (*outcome == AnnexCollector::Outcome::completed) ++completed;
                if (copy == 1) CHECK(*outcome == AnnexCollector::Outcome::duplicate);
            }
        }
        CHECK(completed == 1);
        REQUIRE(collector.complete());
        CHECK(*collector.complete() == annex);
        CHECK(collector.chunks_held() == 0);
        CHECK(collector.memory_bytes() <= kMaxAnnexBytes + 64);
    }
}

TEST_CASE("the annex chunk layout is the documented one", "[transfer][annex]") {
    auto annex = hop_record(300, 2);
    auto chunks = encode_annex_chunks(annex, 256);
    REQUIRE(chunks);
    REQUIRE(chunks->size() == 2);
    const auto& last = (*chunks)[1];
    CHECK(last.size() == kAnnexHeaderBytes + 300 - 215);
    CHECK(last[0] == std::byte{1});                                       // version
    CHECK(last[1] == std::byte{0});                                       // total 300 = 0x0000012c
    CHECK(last[3] == std::byte{0x01});
    CHECK(last[4] == std::byte{0x2c});
    auto digest = annex_sha256(annex);
    CHECK(std::memcmp(last.data() + 5, digest.data(), 32) == 0);          // SHA-256
    CHECK(last[37] == std::byte{0});                                      // index 1
    CHECK(last[38] == std::byte{1});
    CHECK(last[39] == std::byte{0});                                      // count 2
    CHECK(last[40] == std::byte{2});
    CHECK(std::memcmp(last.data() + 41, annex.data() + 215, 85) == 0);    // the remainder
    CHECK(describe(FrameType::annex) == "annex");
    auto frame = frame_with({FrameType::annex, 1, 2, 0, 0}, last);
    CHECK(frame[5] == std::byte{4});
    CHECK(type_of(frame) == FrameType::annex);
}

TEST_CASE("encode_annex_chunks refuses what cannot be sent", "[transfer][annex]") {
    CHECK_THAT(encode_annex_chunks({}, 256).error().message, Catch::Contains("empty"));
    CHECK_THAT(encode_annex_chunks(Bytes(kMaxAnnexBytes + 1), 256).error().message, Catch::Contains("over the limit"));
    CHECK_THAT(encode_annex_chunks(Bytes(10), kAnnexHeaderBytes).error().message, Catch::Contains("no room"));
    CHECK(encode_annex_chunks(Bytes(10), kAnnexHeaderBytes + 1));  // one byte per chunk: 10 chunks
    // 64 KiB in 1-byte chunks would need 65536 chunks, one more than a u16 counts.
    CHECK_THAT(encode_annex_chunks(Bytes(kMaxAnnexBytes), kAnnexHeaderBytes + 1).error().message,
               Catch::Contains("chunks, over"));
    // Payload sizes over a frame's are capped, not refused.
    auto big = encode_annex_chunks(Bytes(kMaxAnnexBytes), 1u << 20);
    REQUIRE(big);
    CHECK(big->size() == 2);
    CHECK(big->front().size() == kMaxFramePayload);
}

TEST_CASE("malformed annex chunks are refused whole", "[transfer][annex][hostile]") {
    auto annex = hop_record(500, 3);
    const Sha256 digest = annex_sha256(annex);
    auto chunks = encode_annex_chunks(annex, 256).value();  // 215 + 215 + 70
    REQUIRE(chunks.size() == 3);

    SECTION("truncated headers and empty chunks") {
        for (std::size_t cut = 0; cut <= kAnnexHeaderBytes; ++cut) {
            INFO("cut at " << cut);
            CHECK_FALSE(parse_annex_chunk(std::span(chunks[0]).first(cut)));
        }
        CHECK_THAT(parse_annex_chunk(std::span(chunks[0]).first(kAnnexHeaderBytes)).error().message,
                   Catch::Contains("no data"));
        // A cut into the data of a chunk breaks the arithmetic (⌈500 / length⌉ ≠ 3),
        // or, where a shorter chunk size still makes 3 chunks (167..214 bytes),
        // contradicts the chunk size of the others.
        AnnexCollector collector;
        REQUIRE(collector.add(*parse_annex_chunk(chunks[1])));
        int parsed_alone = 0;
        for (std::size_t cut = kAnnexHeaderBytes + 1; cut < chunks[0].size(); ++cut) {
            INFO("cut at " << cut);
            auto c = parse_annex_chunk(std::span(chunks[0]).first(cut));
            if (!c) continue;
            ++parsed_alone;
            CHECK(c->data.size() >= 167);
            CHECK_FALSE(collector.add(*c));
        }
        CHECK(parsed_alone == 215 - 167);
        CHECK(collector.chunks_held() == 1);
    }
    SECTION("other versions") {
        for (unsigned v : {0u, 2u, 255u}) {
            auto bad = chunks[1];
            bad[0] = static_cast<std::byte>(v);
            CHECK_THAT(parse_annex_chunk(bad).error().message, Catch::Contains("unknown version"));
        }
    }
    SECTION("index and count") {
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 500, digest, 3, 3, 70)));       // index = count
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 500, digest, 0xffff, 3, 215)));  // index > count
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 500, digest, 0, 0, 215)));       // no chunks
        CHECK(parse_annex_chunk(raw_chunk(1, 500, digest, 2, 3, 70)));              // the control
    }
    SECTION("annex lengths") {
        CHECK_THAT(parse_annex_chunk(raw_chunk(1, 0, digest, 0, 1, 1)).error().message, Catch::Contains("outside 1.."));
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, kMaxAnnexBytes + 1, digest, 0, 2, 32769)));
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 0xffffffff, digest, 0, 2, 200)));
        CHECK(parse_annex_chunk(raw_chunk(1, kMaxAnnexBytes, digest, 0, 2, 32768)));
    }
    SECTION("chunk lengths that fit no chunk size") {
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 500, digest, 0, 3, 100)));  // ⌈500/100⌉ = 5, not 3
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 500, digest, 0, 3, 250)));  // ⌈500/250⌉ = 2
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 100, digest, 1, 2, 60)));   // last longer than the others (40)
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 101, digest, 2, 3, 2)));    // 99 bytes are not 2 equal chunks
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 100, digest, 1, 2, 100)));  // last chunk is the whole annex
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 100, digest, 0, 1, 99)));   // the only chunk, short
        CHECK_FALSE(parse_annex_chunk(raw_chunk(1, 100, digest, 0, 1, 101)));  // the only chunk, long
        // A 1-byte last chunk of 2 makes the first 65535 bytes: no frame carries that.
        CHECK_THAT(parse_annex_chunk(raw_chunk(1, kMaxAnnexBytes, digest, 1, 2, 1)).error().message,
                   Catch::Contains("would not fit a frame"));
        auto last = parse_annex_chunk(raw_chunk(1, 101, digest, 2, 3, 1));  // 50 + 50 + 1
        REQUIRE(last);
        CHECK(last->chunk_bytes == 50);
    }
    SECTION("chunks that contradict the annex they name") {
        AnnexCollector collector;
        REQUIRE(collector.add(*parse_annex_chunk(chunks[0])).value() == AnnexCollector::Outcome::stored);
        // Same SHA-256, chunk size 216: a valid chunk on its own, not of this annex.
        auto other = raw_chunk(1, 500, digest, 1, 3, 216);
        REQUIRE(parse_annex_chunk(other));
        CHECK_THAT(collector.add(*parse_annex_chunk(other)).error().message, Catch::Contains("contradicts"));
        // A truncated last chunk is valid alone (chunks of 216 and 215 bytes), not here.
        auto cut = parse_annex_chunk(std::span(chunks[2]).first(chunks[2].size() - 2));
        REQUIRE(cut);
        CHECK_FALSE(collector.add(*cut));
        CHECK(collector.chunks_held() == 1);  // the refusals left the collection alone
        REQUIRE(collector.add(*parse_annex_chunk(chunks[1])));
        REQUIRE(collector.add(*parse_annex_chunk(chunks[2])).value() == AnnexCollector::Outcome::completed);
        CHECK(*collector.complete() == annex);
        // The complete annex's SHA-256 with another length.
        CHECK_FALSE(collector.add(*parse_annex_chunk(raw_chunk(1, 100, digest, 0, 1, 100))));
    }
    SECTION("a SHA-256 mismatch on completion refuses the annex and starts over") {
        auto forged = annex_sha256(hop_record(500, 4));
        AnnexCollector collector;
        std::vector<Bytes> lying = chunks;
        for (auto& c : lying) std::memcpy(c.data() + 5, forged.data(), 32);
        REQUIRE(collector.add(*parse_annex_chunk(lying[0])));
        REQUIRE(collector.add(*parse_annex_chunk(lying[1])));
        auto last = collector.add(*parse_annex_chunk(lying[2]));
        REQUIRE_FALSE(last);
        CHECK_THAT(last.error().message, Catch::Contains("SHA-256"));
        CHECK_FALSE(collector.complete());
        CHECK(collector.chunks_held() == 0);
        for (const auto& c : chunks) REQUIRE(collector.add(*parse_annex_chunk(c)));
        REQUIRE(collector.complete());
        CHECK(*collector.complete() == annex);
    }
}

TEST_CASE("a newer annex replaces the complete one only once it is complete", "[transfer][annex]") {
    auto a = hop_record(500, 5), b = hop_record(600, 6);
    auto ca = encode_annex_chunks(a, 256).value(), cb = encode_annex_chunks(b, 256).value();
    AnnexCollector collector;
    for (const auto& c : ca) REQUIRE(collector.add(*parse_annex_chunk(c)));
    REQUIRE(collector.complete());
    REQUIRE(collector.add(*parse_annex_chunk(cb[0])).value() == AnnexCollector::Outcome::stored);
    CHECK(*collector.complete() == a);
    // A late chunk of the complete annex does not disturb the new collection.
    CHECK(collector.add(*parse_annex_chunk(ca[1])).value() == AnnexCollector::Outcome::duplicate);
    CHECK(collector.chunks_held() == 1);
    REQUIRE(collector.add(*parse_annex_chunk(cb[1])));
    REQUIRE(collector.add(*parse_annex_chunk(cb[2])).value() == AnnexCollector::Outcome::completed);
    CHECK(*collector.complete() == b);
    CHECK(collector.memory_bytes() <= kMaxAnnexBytes);
}

TEST_CASE("without an annex the encoder sends exactly what it sent before", "[transfer][annex][encoder]") {
    auto archive = random_archive(300'001, 40);
    auto info = info_for(archive, kSmall, 4);
    Encoder plain(info, 1, 1, sluice::test::reader_of(archive), nullptr);
    const std::uint64_t blocks = info.blocks(), groups = (blocks + 3) / 4;
    CHECK(plain.frames_total() == 3 + groups + 1 + blocks * 24);
    CHECK(plain.annex_chunks() == 0);
    CHECK(plain.annex_frames_total() == 0);
    auto before = frames_of(info, archive, 1, 1);
    auto with_empty = frames_of(info, archive, 1, 1, nullptr, Bytes{});
    CHECK(before.size() == plain.frames_total());
    CHECK(with_empty == before);
    CHECK(std::none_of(before.begin(), before.end(), [](const Bytes& f) { return type_of(f) == FrameType::annex; }));
    CHECK_THROWS_AS(Encoder(info, 1, 1, sluice::test::reader_of(archive), nullptr, Bytes(kMaxAnnexBytes + 1)),
                    std::invalid_argument);
}

TEST_CASE("the encoder's annex schedule", "[transfer][annex][encoder]") {
    auto annex = hop_record(4096, 7);
    for (std::size_t size : {std::size_t{5000}, std::size_t{100'000}, std::size_t{2'000'000}}) {
        INFO("archive of " << size << " bytes");
        auto archive = random_archive(size, 41);
        auto info = info_for(archive, kSmall, 8);
        Encoder enc(info, 1, 1, sluice::test::reader_of(archive), nullptr, annex);
        const std::uint64_t n = enc.annex_chunks(), groups = (info.blocks() + 7) / 8;
        REQUIRE(n == 20);  // ⌈4096 / 215⌉
        const std::uint64_t t = std::max<std::uint64_t>(1, (2 * n + groups - 1) / groups);
        CHECK(enc.annex_frames_total() == 2 * n + groups * t + n);
        auto frames = frames_of(info, archive, 1, 1, nullptr, annex);  // checks frames_total()
        REQUIRE(frames.size() == enc.frames_total());

        // Two full rounds right after the three leading metadata copies.
        for (std::size_t i = 0; i < 3; ++i) CHECK(type_of(frames[i]) == FrameType::metadata);
        for (std::size_t i = 0; i < 2 * n; ++i) {
            REQUIRE(type_of(frames[3 + i]) == FrameType::annex);
            CHECK(chunk_of(frames[3 + i]).index == i % n);
        }
        // One round just before the closing metadata.
        CHECK(type_of(frames.back()) == FrameType::metadata);
        for (std::size_t i = frames.size() - 1 - n; i + 1 < frames.size(); ++i) CHECK(type_of(frames[i]) == FrameType::annex);
        // At least 4 copies of every chunk before the symbols of the last group,
        // copies spread evenly, annex frames never larger than symbol frames.
        const auto last_group_block = static_cast<std::uint32_t>((groups - 1) * 8);
        std::map<std::uint16_t, int> before_last, copies;
        bool in_last_group = false;
        std::size_t symbol_frame = 0, largest_annex = 0;
        for (const auto& f : frames) {
            auto parsed = parse_frame(f, nullptr);
            if (parsed.frame.header.type == FrameType::symbol) {
                symbol_frame = f.size();
                in_last_group = in_last_group || parsed.frame.header.block >= last_group_block;
            }
            if (parsed.frame.header.type != FrameType::annex) continue;
            largest_annex = std::max(largest_annex, f.size());
            auto c = chunk_of(f);
            ++copies[c.index];
            if (!in_last_group) ++before_last[c.index];
        }
        REQUIRE(before_last.size() == n);
        for (const auto& entry : before_last) CHECK(entry.second >= 4);
        auto [fewest, most] = std::minmax_element(copies.begin(), copies.end(),
                                                  [](auto& x, auto& y) { return x.second < y.second; });
        CHECK(most->second - fewest->second <= 1);
        CHECK(largest_annex == symbol_frame);
    }
}

TEST_CASE("annex cost for a 1 GiB archive with the default parameters", "[transfer][annex][encoder]") {
    TransferInfo info;
    info.archive_bytes = std::uint64_t{1} << 30;
    info.fec = FecParams{64, 16, 1350};
    info.interleave = 16;
    info.channel = "models";
    info.version = "1.4.0";
    auto unread = [](std::uint64_t, std::span<std::byte>) -> sluice::Result<std::size_t> { return std::size_t{0}; };
    Encoder plain(info, 1, 1, unread, nullptr);
    Encoder with(info, 1, 1, unread, nullptr, hop_record(4096, 8));
    CHECK(info.blocks() == 12'428);
    CHECK(plain.frames_total() == 3 + 777 + 1 + 12'428 * 80);  // 995'021
    CHECK(with.annex_chunks() == 4);                          // ⌈4096 / 1309⌉
    CHECK(with.annex_frames_total() == 2 * 4 + 777 + 4);      // 789: 0.08 % more frames
    CHECK(with.frames_total() == plain.frames_total() + 789);
    CHECK(with.max_frame_bytes() == plain.max_frame_bytes());
}

TEST_CASE("the annex arrives with the assembled archive over a lossy link", "[transfer][annex][loss]") {
    auto archive = random_archive(2'000'000, 42);
    auto info = info_for(archive, kSmall, 8);
    auto annex = hop_record(4096, 9);
    Rig rig;
    Impairments imp;
    imp.drop = 0.10;
    imp.reorder = 0.03;
    imp.duplicate = 0.02;
    imp.corrupt = 0.01;
    LossyLink link(imp, 43);
    send(rig, frames_of(info, archive, 1, 1, nullptr, annex), link);
    auto assembled = find_event(rig, Event::Kind::assembled);
    REQUIRE(assembled);
    CHECK(rig.store.areas.at(staging_key(info)).bytes == archive);
    CHECK(assembled->annex == annex);
    const auto& st = rig.rx->stats();
    CHECK(st.annex_frames > 0);
    CHECK(st.annexes_completed == 1);
    CHECK(st.bad_annex_chunks == 0);
    CHECK(st.internal_errors == 0);
    auto started = find_event(rig, Event::Kind::started);
    REQUIRE(started);
    CHECK(started->annex.empty());
}

TEST_CASE("a one-group archive gets a 16 KiB annex through 15 % loss in one pass", "[transfer][annex][loss]") {
    auto archive = random_archive(20'000, 44);  // 5 blocks: one group
    auto info = info_for(archive, kSmall, 8);
    auto annex = hop_record(16'384, 10);      // 77 chunks
    auto frames = frames_of(info, archive, 1, 1, nullptr, annex);
    int assembled = 0, with_annex = 0;
    for (unsigned seed = 0; seed < 20; ++seed) {
        Rig rig;
        Impairments imp;
        imp.drop = 0.15;
        LossyLink link(imp, 100 + seed);
        send(rig, frames, link);
        if (auto ev = find_event(rig, Event::Kind::assembled)) {
            ++assembled;
            if (ev->annex == annex) ++with_annex;
            CHECK((ev->annex.empty() || ev->annex == annex));
        }
    }
    // Each chunk goes 4 times before the symbols: missing with 0.15^4 = 0.05 %,
    // the annex with about 4 %.
    CHECK(assembled >= 18);
    CHECK(with_annex >= assembled - 2);
}

TEST_CASE("the newest complete annex wins between passes", "[transfer][annex]") {
    auto archive = random_archive(400'000, 45);
    auto info1 = info_for(archive, kSmall, 4, 1, 2), info2 = info_for(archive, kSmall, 4, 2, 2);
    auto a = hop_record(1000, 11), b = hop_record(1200, 12);
    auto block5 = [](const Bytes& f) {
        auto p = parse_frame(f, nullptr);
        return p.frame.header.type == FrameType::symbol && p.frame.header.block == 5;
    };

    SECTION("a newer annex that completes replaces the older one") {
        Rig rig;
        for (auto& f : frames_of(info1, archive, 1, 100, nullptr, a)) {
            if (!block5(f)) rig.feed(f);
        }
        rig.tick(std::chrono::milliseconds(31'000));
        rig.take();
        auto incomplete = find_event(rig, Event::Kind::incomplete);
        REQUIRE(incomplete);
        CHECK(incomplete->annex == a);  // the incomplete report carries what it had
        Impairments imp;
        imp.drop = 0.1;
        LossyLink link(imp, 46);
        send(rig, frames_of(info2, archive, 1, 100, nullptr, b), link);
        auto assembled = find_event(rig, Event::Kind::assembled);
        REQUIRE(assembled);
        CHECK(assembled->annex == b);
    }
    SECTION("a newer annex that never completes leaves the older one in place") {
        Rig rig;
        for (auto& f : frames_of(info1, archive, 1, 100, nullptr, a)) {
            if (!block5(f)) rig.feed(f);
        }
        rig.take();
        REQUIRE(rig.rx->stats().annexes_completed == 1);
        for (auto& f : frames_of(info2, archive, 1, 100, nullptr, b)) {
            if (type_of(f) == FrameType::annex && chunk_of(f).index == 1) continue;  // b's chunk 1 never arrives
            rig.feed(f);
        }
        rig.take();
        auto assembled = find_event(rig, Event::Kind::assembled);
        REQUIRE(assembled);
        CHECK(assembled->annex == a);
        CHECK(rig.rx->stats().annexes_completed == 1);
    }
}

TEST_CASE("an annex completed by one transfer of an archive serves another", "[transfer][annex]") {
    auto archive = random_archive(400'000, 47);
    auto info = info_for(archive, kSmall, 4);
    auto a = hop_record(3000, 13), b = hop_record(2000, 14);
    Rig rig;
    // Transfer 1 (session 1) brings annex a, but never block 5: it stays in flight.
    for (auto& f : frames_of(info, archive, 1, 1, nullptr, a)) {
        auto p = parse_frame(f, nullptr);
        if (!(p.frame.header.type == FrameType::symbol && p.frame.header.block == 5)) rig.feed(f);
    }
    rig.take();
    REQUIRE(find_event(rig, Event::Kind::assembled) == nullptr);

    SECTION("a re-send without an annex gets the other transfer's") {
        for (auto& f : frames_of(info, archive, 2, 2)) rig.feed(f);
        rig.take();
        auto assembled = find_event(rig, Event::Kind::assembled);
        REQUIRE(assembled);
        CHECK(assembled->transfer == 2);
        CHECK(assembled->annex == a);
    }
    SECTION("a re-send with its own annex keeps its own") {
        for (auto& f : frames_of(info, archive, 2, 2, nullptr, b)) rig.feed(f);
        rig.take();
        auto assembled = find_event(rig, Event::Kind::assembled);
        REQUIRE(assembled);
        CHECK(assembled->annex == b);
    }
}

TEST_CASE("annex chunks before their metadata wait as orphans", "[transfer][annex]") {
    auto archive = random_archive(200'000, 48);
    auto info = info_for(archive, kSmall, 4);
    auto annex = hop_record(2000, 15);  // 10 chunks
    auto frames = frames_of(info, archive, 1, 1, nullptr, annex);
    Rig rig;
    // One round of chunks, then the pass with every other annex frame lost.
    for (std::size_t i = 3; i < 3 + 10; ++i) rig.feed(frames[i]);
    CHECK(rig.rx->stats().annex_frames == 10);
    for (auto& f : frames) {
        if (type_of(f) != FrameType::annex) rig.feed(f);
    }
    rig.take();
    auto assembled = find_event(rig, Event::Kind::assembled);
    REQUIRE(assembled);
    CHECK(assembled->annex == annex);
    CHECK(rig.rx->stats().orphans_dropped == 0);
}

TEST_CASE("bad annex frames are counted, never thrown, never delivered", "[transfer][annex][hostile]") {
    auto archive = random_archive(100'000, 49);
    auto info = info_for(archive, kSmall, 4);
    auto annex = hop_record(700, 16);
    Rig rig;
    auto frames = frames_of(info, archive, 1, 1);
    rig.feed(frames[0]);  // the transfer is known
    const FrameHeader h{FrameType::annex, 1, 1, 0, 0};
    auto chunks = encode_annex_chunks(annex, 256).value();

    rig.feed(frame_with(h, raw_chunk(2, 700, annex_sha256(annex), 0, 4, 215)));  // version
    rig.feed(frame_with(h, Bytes(10)));                                         // truncated
    rig.feed(frame_with({FrameType::annex, 1, 1, 3, 0}, chunks[0]));            // block ≠ 0
    rig.feed(frame_with({FrameType::annex, 1, 1, 0, 1}, chunks[0]));            // symbol ≠ 0
    auto wide = encode_annex_chunks(annex, 512).value();                        // larger than this transfer's symbols
    rig.feed(frame_with(h, wide[0]));
    rig.feed(frame_with({FrameType::annex, 1, 1, 0, 0}, Bytes(9000)));          // larger than any symbol (orphan check)
    CHECK(rig.rx->stats().bad_annex_chunks == 6);
    CHECK(rig.rx->stats().annex_frames == 6);

    // Every chunk claims the SHA-256 of other bytes: refused on completion.
    auto forged = annex_sha256(hop_record(700, 17));
    for (auto c : chunks) {
        std::memcpy(c.data() + 5, forged.data(), 32);
        rig.feed(frame_with(h, c));
    }
    CHECK(rig.rx->stats().bad_annex_chunks == 7);
    CHECK(rig.rx->stats().annexes_completed == 0);
    for (std::size_t i = 1; i < frames.size(); ++i) rig.feed(frames[i]);
    rig.take();
    auto assembled = find_event(rig, Event::Kind::assembled);
    REQUIRE(assembled);
    CHECK(assembled->annex.empty());
    CHECK(rig.rx->stats().internal_errors == 0);
    CHECK(rig.rx->stats().bad_payloads == 0);
}
