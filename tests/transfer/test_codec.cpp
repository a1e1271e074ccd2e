// Encoder → seeded lossy link → Reassembler, end to end and deterministic.
#include <catch2/catch.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <random>

#include "codec_rig.hpp"
#include "lossy_link.hpp"
#include "sluice/transfer/encoder.hpp"
#include "sluice/transfer/link_monitor.hpp"
#include "sluice/transfer/reassembler.hpp"
#include "support/temp_dir.hpp"

using namespace sluice::transfer;
using sluice::Result;
using sluice::test::Impairments;
using sluice::test::LossyLink;

namespace {

using sluice::test::Bytes;
using sluice::test::frames_of;
using sluice::test::info_for;
using sluice::test::kSmall;
using sluice::test::MemoryStore;
using sluice::test::random_archive;
using sluice::test::Rig;
using sluice::test::send;

}  // namespace

TEST_CASE("metadata and heartbeat payloads round-trip and refuse damage", "[transfer][metadata]") {
    auto archive = random_archive(100'000, 1);
    auto info = info_for(archive, kSmall, 4, 2, 3);
    auto bytes = encode_transfer_info(info);
    auto back = parse_transfer_info(bytes);
    REQUIRE(back);
    CHECK(*back == info);
    for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
        CHECK_FALSE(parse_transfer_info(std::span(bytes).first(cut)));
    }
    auto longer = bytes;
    longer.push_back(std::byte{0});
    CHECK(parse_transfer_info(longer).error().message == "metadata: trailing bytes");

    auto bad = info;
    bad.fec.parity_symbols = 250;
    CHECK_THAT(parse_transfer_info(encode_transfer_info(bad)).error().message, Catch::Contains("K + M ≤ 255"));
    bad = info;
    bad.channel = "has space";
    CHECK_FALSE(parse_transfer_info(encode_transfer_info(bad)));
    bad = info;
    bad.pass = 4;
    CHECK_FALSE(parse_transfer_info(encode_transfer_info(bad)));
    InfoLimits small;
    small.max_archive_bytes = 1000;
    CHECK_THAT(parse_transfer_info(bytes, small).error().message, Catch::Contains("over the limit"));

    Heartbeat hb;
    hb.sequence = 7;
    hb.frames_sent = 1234;
    hb.recent.push_back(RecentTransfer{42, info.bundle_id, 100'000, 1, 2});
    auto hbytes = encode_heartbeat(hb);
    auto hback = parse_heartbeat(hbytes);
    REQUIRE(hback);
    CHECK(*hback == hb);
    for (std::size_t cut = 0; cut < hbytes.size(); ++cut) CHECK_FALSE(parse_heartbeat(std::span(hbytes).first(cut)));

    CHECK(sha256_from_hex(to_hex(info.archive_sha256)).value() == info.archive_sha256);
    CHECK_FALSE(sha256_from_hex(std::string(64, 'g')));
}

TEST_CASE("a clean pass reassembles the archive exactly", "[transfer][codec]") {
    for (std::size_t size : {1u, 4095u, 4096u, 4097u, 300'001u}) {
        auto archive = random_archive(size, static_cast<unsigned>(size));
        auto info = info_for(archive, kSmall, 4);
        Rig rig;
        LossyLink link({}, 1);
        send(rig, frames_of(info, archive, 1, 1), link);
        REQUIRE(rig.count(Event::Kind::assembled) == 1);
        CHECK(rig.store.areas.at(staging_key(info)).bytes == archive);
        CHECK(rig.rx->stats().blocks_recovered == 0);
        CHECK(rig.rx->buffered_bytes() == 0);
    }
}

TEST_CASE("random loss, reordering, duplication and corruption within the FEC budget", "[transfer][loss]") {
    auto archive = random_archive(2'000'000, 2);
    auto info = info_for(archive, kSmall, 8);
    Rig rig;
    Impairments imp;
    imp.drop = 0.08;
    imp.reorder = 0.05;
    imp.duplicate = 0.02;
    imp.corrupt = 0.02;
    imp.truncate = 0.01;
    LossyLink link(imp, 3);
    send(rig, frames_of(info, archive, 1, 1), link);
    REQUIRE(rig.count(Event::Kind::assembled) == 1);
    CHECK(rig.store.areas.at(staging_key(info)).bytes == archive);
    const auto& st = rig.rx->stats();
    CHECK(st.blocks_recovered > 0);
    CHECK(st.symbols_duplicate > 0);
    CHECK(st.frame_error(FrameError::bad_checksum) + st.frame_error(FrameError::truncated) +
              st.frame_error(FrameError::bad_magic) + st.frame_error(FrameError::bad_version) +
              st.frame_error(FrameError::bad_type) + st.frame_error(FrameError::bad_flags) >
          0);
    CHECK(st.blocks_abandoned == 0);
}

TEST_CASE("interleaving spreads a burst thin enough to recover", "[transfer][loss]") {
    auto archive = random_archive(1'500'000, 4);
    Impairments burst;
    burst.burst_every = 400;
    burst.burst_len = 48;  // 48 frames in a row: 3 × M for one block if not interleaved
    SECTION("D = 8 recovers") {
        auto info = info_for(archive, kSmall, 8);
        Rig rig;
        LossyLink link(burst, 5);
        send(rig, frames_of(info, archive, 1, 1), link);
        CHECK(rig.count(Event::Kind::assembled) == 1);
    }
    SECTION("D = 1 loses blocks to the same bursts") {
        auto info = info_for(archive, kSmall, 1);
        Rig rig;
        LossyLink link(burst, 5);
        send(rig, frames_of(info, archive, 1, 1), link);
        CHECK(rig.count(Event::Kind::assembled) == 0);
        rig.tick(std::chrono::milliseconds(31'000));
        rig.take();
        REQUIRE(rig.count(Event::Kind::incomplete) == 1);
        CHECK_FALSE(rig.events.back().missing.empty());
    }
}

TEST_CASE("an unrecoverable block makes only its own transfer incomplete; a later pass fills it", "[transfer][loss]") {
    auto a = random_archive(700'000, 6);
    auto b = random_archive(500'000, 7);
    auto info_a = info_for(a, kSmall, 4, 1, 2);
    auto info_b = info_for(b, kSmall, 4);
    auto fa = frames_of(info_a, a, 9, 100);
    auto fb = frames_of(info_b, b, 9, 101);
    Rig rig;
    // Transfer 100 loses every symbol of block 5; both transfers interleave on the link.
    std::size_t i = 0, j = 0;
    while (i < fa.size() || j < fb.size()) {
        if (i < fa.size()) {
            auto parsed = parse_frame(fa[i], nullptr);
            bool lost = parsed.frame.header.type == FrameType::symbol && parsed.frame.header.block == 5;
            if (!lost) rig.feed(fa[i]);
            ++i;
        }
        if (j < fb.size()) rig.feed(fb[j++]);
    }
    rig.take();
    CHECK(rig.count(Event::Kind::assembled) == 1);  // b
    CHECK(rig.store.areas.at(staging_key(info_b)).bytes == b);
    rig.tick(std::chrono::milliseconds(31'000));
    rig.take();
    REQUIRE(rig.count(Event::Kind::incomplete) == 1);
    const auto& inc = rig.events.back();
    CHECK(inc.transfer == 100);
    CHECK(inc.missing == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{5, 5}});
    CHECK(inc.blocks_held == info_a.blocks() - 1);

    // Pass 2 of the same transfer, with heavy loss, fills the one gap.
    auto info_a2 = info_a;
    info_a2.pass = 2;
    Impairments heavy;
    heavy.drop = 0.2;
    LossyLink link(heavy, 8);
    send(rig, frames_of(info_a2, a, 9, 100), link);
    REQUIRE(rig.count(Event::Kind::assembled) == 2);
    CHECK(rig.store.areas.at(staging_key(info_a)).bytes == a);
}

TEST_CASE("passes and re-sends of one archive merge into one staging area", "[transfer][loss]") {
    auto archive = random_archive(1'000'000, 10);
    auto info = info_for(archive, kSmall, 8);
    Impairments heavy;
    heavy.drop = 0.28;  // near M/(K+M): a single pass leaves holes
    Rig rig;
    int sends = 0;
    for (std::uint64_t transfer = 1; rig.count(Event::Kind::assembled) == 0 && transfer <= 8; ++transfer) {
        LossyLink link(heavy, static_cast<unsigned>(transfer));
        send(rig, frames_of(info, archive, transfer, transfer), link);  // new session and transfer id each time
        ++sends;
    }
    REQUIRE(rig.count(Event::Kind::assembled) == 1);
    CHECK(sends >= 2);
    CHECK(rig.store.areas.at(staging_key(info)).bytes == archive);
    CHECK(rig.store.areas.size() == 1);
}

TEST_CASE("frames with a wrong MAC are dropped and counted, genuine ones still assemble", "[transfer][mac]") {
    auto archive = random_archive(200'000, 11);
    auto info = info_for(archive, kSmall, 4);
    std::vector<std::byte> secret(32, std::byte{7}), other(32, std::byte{8});
    LinkKey good(secret), bad(other), rx_key(secret);
    auto genuine = frames_of(info, archive, 1, 1, &good);
    auto forged = frames_of(info, random_archive(200'000, 12), 1, 1, &bad);
    auto unauthenticated = frames_of(info, archive, 1, 1, nullptr);
    MemoryStore store;
    Reassembler rx({}, store, &rx_key);
    TimePoint now{};
    for (std::size_t i = 0; i < genuine.size(); ++i) {
        rx.on_datagram(forged[i % forged.size()], now);
        rx.on_datagram(unauthenticated[i % unauthenticated.size()], now);
        rx.on_datagram(genuine[i], now);
    }
    auto events = rx.drain();
    CHECK(std::count_if(events.begin(), events.end(), [](auto& e) { return e.kind == Event::Kind::assembled; }) == 1);
    CHECK(store.areas.at(staging_key(info)).bytes == archive);
    CHECK(rx.stats().frame_error(FrameError::bad_mac) == genuine.size());
    CHECK(rx.stats().frame_error(FrameError::missing_mac) == genuine.size());
}

TEST_CASE("memory stays within the buffer budget whatever the number of transfers", "[transfer][memory]") {
    ReassemblerLimits limits;
    limits.max_buffered_bytes = 40 * (16 + 8) * 256;  // 40 partial blocks
    Rig rig(limits);
    std::vector<std::vector<Bytes>> all;
    std::vector<Bytes> archives;
    for (unsigned t = 0; t < 6; ++t) {
        archives.push_back(random_archive(400'000, 20 + t));
        all.push_back(frames_of(info_for(archives.back(), kSmall, 16), archives.back(), 1, t + 1));
    }
    std::size_t peak = 0;
    Impairments imp;
    imp.drop = 0.05;
    LossyLink link(imp, 13);
    for (std::size_t i = 0;; ++i) {
        bool any = false;
        for (auto& frames : all) {
            if (i >= frames.size()) continue;
            any = true;
            for (auto& f : link.pass(frames[i])) rig.feed(f);
            peak = std::max(peak, rig.rx->buffered_bytes());
        }
        if (!any) break;
    }
    rig.take();
    CHECK(peak <= limits.max_buffered_bytes);
    CHECK(rig.rx->stats().blocks_abandoned > 0);  // the budget did bite
    // A second pass with no loss completes everything the budget cut short.
    for (unsigned t = 0; t < 6; ++t) {
        auto info = info_for(archives[t], kSmall, 16);
        for (auto& f : all[t]) rig.feed(f);
    }
    rig.take();
    CHECK(rig.count(Event::Kind::assembled) == 6);
}

TEST_CASE("a failed write stops only that transfer and the next pass retries", "[transfer][failure]") {
    auto archive = random_archive(300'000, 14);
    auto info = info_for(archive, kSmall, 4);
    auto frames = frames_of(info, archive, 1, 1);
    Rig rig;
    rig.store.fail_write_at = 10;
    for (auto& f : frames) rig.feed(f);
    rig.take();
    REQUIRE(rig.count(Event::Kind::failed) == 1);
    auto failed = std::find_if(rig.events.begin(), rig.events.end(), [](auto& e) { return e.kind == Event::Kind::failed; });
    CHECK_THAT(failed->message, Catch::Contains("No space left"));
    CHECK(rig.count(Event::Kind::assembled) == 0);
    for (auto& f : frames) rig.feed(f);
    rig.take();
    REQUIRE(rig.count(Event::Kind::assembled) == 1);
    CHECK(rig.store.areas.at(staging_key(info)).bytes == archive);
}

TEST_CASE("the sender's heartbeat ends a short transfer before the idle timeout", "[transfer][heartbeat]") {
    auto archive = random_archive(300'000, 15);
    auto info = info_for(archive, kSmall, 4);
    auto frames = frames_of(info, archive, 3, 33);
    Rig rig;
    for (std::size_t i = 0; i < frames.size() / 2; ++i) rig.feed(frames[i]);
    Heartbeat hb;
    hb.sequence = 1;
    hb.recent.push_back(RecentTransfer{33, info.bundle_id, info.archive_bytes, 1, 1});
    auto payload = encode_heartbeat(hb);
    Bytes frame(kMaxFrameBytes);
    auto n = encode_frame(FrameHeader{FrameType::heartbeat, 3, 0, 0, 0}, payload, nullptr, frame);
    REQUIRE(n);
    frame.resize(*n);
    rig.feed(frame);
    rig.take();
    CHECK(rig.count(Event::Kind::heartbeat) == 1);
    rig.tick(std::chrono::milliseconds(1000));
    rig.take();
    CHECK(rig.count(Event::Kind::incomplete) == 0);
    rig.tick(std::chrono::milliseconds(3000));
    rig.take();
    CHECK(rig.count(Event::Kind::incomplete) == 1);
}

TEST_CASE("a receiver rebuilt from its persisted state finishes the job", "[transfer][persist]") {
    sluice::test::TempDir dir;
    auto archive = random_archive(3'000'000, 16);
    auto info = info_for(archive, kSmall, 8, 1, 2);
    auto frames = frames_of(info, archive, 1, 7);
    const std::string key = staging_key(info);
    std::uint64_t held_before = 0;
    {
        FileBlockStore store(dir.path());
        Reassembler rx({}, store, nullptr);
        TimePoint now{};
        for (std::size_t i = 0; i < frames.size() * 2 / 3; ++i) rx.on_datagram(frames[i], now);
        now += std::chrono::seconds(2);
        rx.on_tick(now);  // checkpoint
        store.flush();
        auto events = rx.drain();
        REQUIRE_FALSE(events.empty());
        held_before = rx.in_flight().at(0).blocks_held;
        CHECK(held_before > 0);
        // Frames after the checkpoint are lost with the process (no second tick).
        for (std::size_t i = frames.size() * 2 / 3; i < frames.size() * 3 / 4; ++i) rx.on_datagram(frames[i], now);
    }
    FileBlockStore store(dir.path());
    Reassembler rx({}, store, nullptr);
    TimePoint now{};
    auto info2 = info;
    info2.pass = 2;
    auto pass2 = frames_of(info2, archive, 1, 7);
    std::vector<Event> events;
    for (auto& f : pass2) {
        rx.on_datagram(f, now);
        for (auto& e : rx.drain()) events.push_back(e);
    }
    REQUIRE(events.size() == 2);
    CHECK(events[0].kind == Event::Kind::started);
    CHECK(events[0].blocks_held == held_before);  // resumed, not restarted
    CHECK(events[1].kind == Event::Kind::assembled);
    CHECK(rx.stats().symbols_unneeded > 0);
    auto path = store.finalize(key, info);
    REQUIRE(path);
    CHECK(sluice::test::read_file(*path) == std::string(reinterpret_cast<const char*>(archive.data()), archive.size()));
    REQUIRE(store.mark_delivered(key));
    rx.on_finalized(key, true);
    CHECK_FALSE(std::filesystem::exists(dir.path() / "staging" / key));

    // A later re-send of the same archive is recognised and ignored.
    Reassembler rx2({}, store, nullptr);
    for (auto& f : frames_of(info, archive, 2, 8)) rx2.on_datagram(f, now);
    auto later = rx2.drain();
    REQUIRE(later.size() == 1);
    CHECK(later[0].kind == Event::Kind::delivered_before);
}

TEST_CASE("an archive that does not match its announced SHA-256 is discarded, not delivered", "[transfer][persist]") {
    sluice::test::TempDir dir;
    auto archive = random_archive(200'000, 17);
    auto info = info_for(archive, kSmall, 4);
    info.archive_sha256[0] ^= std::byte{1};  // what a sender whose file changed mid-pass would announce
    FileBlockStore store(dir.path());
    Reassembler rx({}, store, nullptr);
    for (auto& f : frames_of(info, archive, 1, 1)) rx.on_datagram(f, TimePoint{});
    auto events = rx.drain();
    REQUIRE(events.back().kind == Event::Kind::assembled);
    auto key = staging_key(info);
    auto r = store.finalize(key, info);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("does not match the transfer's SHA-256"));
    CHECK_FALSE(std::filesystem::exists(dir.path() / "staging" / key));
    rx.on_finalized(key, false);
    // The next pass starts from nothing (and is refused again for the same reason).
    for (auto& f : frames_of(info, archive, 1, 1)) rx.on_datagram(f, TimePoint{});
    events = rx.drain();
    REQUIRE(events.front().kind == Event::Kind::started);
    CHECK(events.front().blocks_held == 0);
    REQUIRE(events.back().kind == Event::Kind::assembled);
    CHECK_FALSE(store.finalize(key, info));
    // The honest description assembles and matches.
    auto good = info_for(archive, kSmall, 4);
    for (auto& f : frames_of(good, archive, 1, 2)) rx.on_datagram(f, TimePoint{});
    events = rx.drain();
    REQUIRE(events.back().kind == Event::Kind::assembled);
    auto path = store.finalize(staging_key(good), good);
    REQUIRE(path);
    CHECK(sluice::test::read_file(*path) == std::string(reinterpret_cast<const char*>(archive.data()), archive.size()));
}

TEST_CASE("the link monitor reports dead links, lost heartbeats, restarts and missed transfers", "[transfer][link]") {
    LinkMonitor mon(std::chrono::milliseconds(5000));
    TimePoint t{};
    auto kinds = [&] {
        std::vector<LinkAlarm::Kind> out;
        for (auto& a : mon.drain()) out.push_back(a.kind);
        return out;
    };
    Heartbeat hb;
    hb.sequence = 1;
    mon.on_heartbeat(1, hb, t);
    CHECK(kinds() == std::vector{LinkAlarm::Kind::link_up});
    hb.sequence = 4;
    mon.on_heartbeat(1, hb, t += std::chrono::seconds(1));
    auto alarms = mon.drain();
    REQUIRE(alarms.size() == 1);
    CHECK(alarms[0].kind == LinkAlarm::Kind::heartbeats_lost);
    CHECK(alarms[0].count == 2);
    mon.on_tick(t += std::chrono::seconds(4));
    CHECK(kinds().empty());
    mon.on_tick(t += std::chrono::seconds(1));
    CHECK(kinds() == std::vector{LinkAlarm::Kind::link_dead});
    mon.on_transfer_seen(10);
    hb.sequence = 1;
    // The first heartbeat of a session is the baseline: 9 finished before this
    // receiver was listening (or was delivered before a restart), not a miss.
    hb.recent = {RecentTransfer{9, {}, 100, 2, 2}, RecentTransfer{10, {}, 100, 0, 2}};
    mon.on_heartbeat(2, hb, t += std::chrono::seconds(1));
    CHECK(kinds() == std::vector{LinkAlarm::Kind::link_up, LinkAlarm::Kind::sender_restarted});
    hb.sequence = 2;
    hb.recent = {RecentTransfer{9, {}, 100, 2, 2}, RecentTransfer{10, {}, 100, 1, 2}, RecentTransfer{11, {}, 100, 1, 2},
                 RecentTransfer{12, {}, 100, 0, 2}};
    mon.on_heartbeat(2, hb, t += std::chrono::seconds(1));
    alarms = mon.drain();
    REQUIRE(alarms.size() == 1);
    CHECK(alarms[0].kind == LinkAlarm::Kind::transfer_missed);
    CHECK(alarms[0].transfer == 11);  // 10 was seen, 12 has not finished a pass yet
    hb.sequence = 3;
    mon.on_heartbeat(2, hb, t += std::chrono::seconds(1));
    CHECK(kinds().empty());  // reported once
    CHECK(mon.state().transfers_missed == 1);
}

TEST_CASE("hostile announcements: same digest with another size, absurd sizes, tiny orphans", "[transfer][hostile]") {
    auto archive = random_archive(5000, 30);
    auto small = info_for(archive, FecParams{1, 1, 64}, 1);
    auto big = small;
    big.archive_bytes = 64'000'000;  // same SHA-256, K and S: must not share the small staging
    Rig rig;
    std::vector<std::byte> frame(kMaxFrameBytes);
    auto send_meta = [&](const TransferInfo& info, std::uint64_t transfer) {
        auto n = encode_frame({FrameType::metadata, 1, transfer, 0, 0}, encode_transfer_info(info), nullptr, frame);
        rig.feed(std::span(frame.data(), *n));
    };
    send_meta(small, 1);
    send_meta(big, 2);
    std::vector<std::byte> sym(64, std::byte{1});
    auto n = encode_frame({FrameType::symbol, 1, 2, 999'999, 0}, sym, nullptr, frame);
    rig.feed(std::span(frame.data(), *n));  // used to index the small staging's bitmap
    rig.take();
    CHECK(rig.store.areas.size() == 2);
    CHECK(rig.rx->stats().internal_errors == 0);

    auto huge = small;
    huge.archive_bytes = (std::uint64_t{1} << 30);  // 2^24 blocks of 64 bytes: the bitmap bound
    huge.archive_bytes += 64;
    send_meta(huge, 3);
    CHECK(rig.rx->stats().bad_payloads >= 1);
    CHECK(rig.store.areas.size() == 2);

    // Orphans of impossible sizes are refused; valid ones stay within the budget.
    auto before = rig.rx->stats().bad_payloads;
    for (int i = 0; i < 1000; ++i) {
        auto m = encode_frame({FrameType::symbol, 7, 7, 0, 0}, std::span<const std::byte>{}, nullptr, frame);
        rig.feed(std::span(frame.data(), *m));
    }
    CHECK(rig.rx->stats().bad_payloads == before + 1000);
}

TEST_CASE("a transfer left over from a delivered archive does not break a new one", "[transfer][hostile]") {
    auto archive = random_archive(100'000, 31);
    auto info = info_for(archive, kSmall, 4);
    Rig rig;
    for (auto& f : frames_of(info, archive, 1, 1)) rig.feed(f);
    rig.take();
    REQUIRE(rig.count(Event::Kind::assembled) == 1);
    rig.rx->on_finalized(staging_key(info), true);  // the store was not told (its marker write failed)
    // A re-send opens a fresh staging; the old transfer then idles out.
    auto frames = frames_of(info, archive, 2, 2);
    for (std::size_t i = 0; i < frames.size() / 2; ++i) rig.feed(frames[i]);
    rig.tick(std::chrono::milliseconds(20'000));
    for (std::size_t i = 0; i < frames.size() / 2; ++i) rig.feed(frames[i]);
    rig.tick(std::chrono::milliseconds(15'000));  // the first transfer expires, the second is active
    for (std::size_t i = frames.size() / 2; i < frames.size(); ++i) rig.feed(frames[i]);
    rig.take();
    CHECK(rig.rx->stats().internal_errors == 0);
    CHECK(rig.count(Event::Kind::assembled) == 2);
}

TEST_CASE("a blackout mid-pass loses only its own blocks; the next pass fills them", "[transfer][loss]") {
    auto archive = random_archive(3'000'000, 32);
    auto info = info_for(archive, kSmall, 8, 1, 2);
    auto frames = frames_of(info, archive, 1, 1);
    Rig rig;
    const std::size_t from = frames.size() / 3, to = from + 3000;  // the link is dark for 3000 frames
    for (std::size_t i = 0; i < frames.size(); ++i) {
        if (i < from || i >= to) rig.feed(frames[i]);
    }
    rig.tick(std::chrono::milliseconds(31'000));
    rig.take();
    REQUIRE(rig.count(Event::Kind::incomplete) == 1);
    const auto& inc = rig.events.back();
    REQUIRE_FALSE(inc.missing.empty());
    // The holes are one contiguous stretch of groups around the blackout.
    CHECK(inc.missing.size() == 1);
    const std::uint64_t lost = inc.missing[0].second - inc.missing[0].first + 1;
    CHECK(lost % 8 == 0);                 // whole interleave groups
    CHECK(lost <= 3000 / (16 + 8) + 16);  // about the frames lost, spread over groups
    auto pass2 = info;
    pass2.pass = 2;
    Impairments light;
    light.drop = 0.05;
    LossyLink link(light, 33);
    send(rig, frames_of(pass2, archive, 1, 1), link);
    REQUIRE(rig.count(Event::Kind::assembled) == 1);
    CHECK(rig.store.areas.at(staging_key(info)).bytes == archive);
}
