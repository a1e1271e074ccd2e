#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "sluice/transfer/frame.hpp"

using namespace sluice::transfer;

namespace {

std::vector<std::byte> bytes_of(std::string_view s) {
    std::vector<std::byte> out(s.size());
    std::memcpy(out.data(), s.data(), s.size());
    return out;
}

std::vector<std::byte> make_frame(const FrameHeader& h, std::string_view payload, LinkKey* key) {
    std::vector<std::byte> buf(kMaxFrameBytes);
    auto p = bytes_of(payload);
    auto n = encode_frame(h, p, key, buf);
    REQUIRE(n.ok());
    buf.resize(*n);
    return buf;
}

LinkKey key_from(std::string_view secret) { return LinkKey(bytes_of(secret)); }

const FrameHeader kHeader{FrameType::symbol, 0x0102030405060708ULL, 0xfffffffffffffffeULL, 0xfffffff0U, 300};

}  // namespace

TEST_CASE("frames round-trip with and without a MAC", "[transfer][frame]") {
    for (bool with_key : {false, true}) {
        LinkKey key = key_from("0123456789abcdef0123456789abcdef");
        LinkKey* k = with_key ? &key : nullptr;
        auto frame = make_frame(kHeader, "symbol bytes", k);
        CHECK(frame.size() == frame_size(12, with_key));
        auto parsed = parse_frame(frame, k);
        REQUIRE(parsed.error == FrameError::none);
        CHECK(parsed.frame.header == kHeader);
        CHECK(std::string(reinterpret_cast<const char*>(parsed.frame.payload.data()), parsed.frame.payload.size()) ==
              "symbol bytes");
    }
}

TEST_CASE("the header layout is the documented one", "[transfer][frame]") {
    auto frame = make_frame(kHeader, "xy", nullptr);
    CHECK(std::memcmp(frame.data(), "SLCE", 4) == 0);
    CHECK(frame[4] == std::byte{1});
    CHECK(frame[5] == std::byte{1});
    CHECK(frame[6] == std::byte{0});
    CHECK(frame[8] == std::byte{0x01});   // session, big-endian
    CHECK(frame[15] == std::byte{0x08});
    CHECK(frame[23] == std::byte{0xfe});  // transfer
    CHECK(frame[27] == std::byte{0xf0});  // block
    CHECK(frame[28] == std::byte{0x01});  // symbol 300 = 0x012c
    CHECK(frame[29] == std::byte{0x2c});
    CHECK(frame[31] == std::byte{2});     // length
    CHECK(frame.size() == 42);
}

TEST_CASE("every single-bit flip becomes a dropped frame", "[transfer][frame][corrupt]") {
    LinkKey key = key_from("0123456789abcdef0123456789abcdef");
    for (LinkKey* k : {static_cast<LinkKey*>(nullptr), &key}) {
        auto frame = make_frame(kHeader, "a payload worth protecting", k);
        for (std::size_t bit = 0; bit < frame.size() * 8; ++bit) {
            auto copy = frame;
            copy[bit / 8] ^= std::byte(1U << (bit % 8));
            auto parsed = parse_frame(copy, k);
            INFO("bit " << bit);
            CHECK(parsed.error != FrameError::none);
        }
    }
}

TEST_CASE("malformed datagrams are refused with a reason", "[transfer][frame]") {
    auto frame = make_frame(kHeader, "payload", nullptr);
    CHECK(parse_frame({}, nullptr).error == FrameError::truncated);
    CHECK(parse_frame(std::span(frame).first(39), nullptr).error == FrameError::truncated);
    CHECK(parse_frame(std::span(frame).first(frame.size() - 1), nullptr).error == FrameError::truncated);
    auto longer = frame;
    longer.push_back(std::byte{0});
    CHECK(parse_frame(longer, nullptr).error == FrameError::trailing_bytes);
    auto magic = frame;
    magic[0] = std::byte{'X'};
    CHECK(parse_frame(magic, nullptr).error == FrameError::bad_magic);
    auto version = frame;
    version[4] = std::byte{2};
    CHECK(parse_frame(version, nullptr).error == FrameError::bad_version);
    auto type = frame;
    type[5] = std::byte{9};
    CHECK(parse_frame(type, nullptr).error == FrameError::bad_type);
    auto flags = frame;
    flags[6] = std::byte{0x80};
    CHECK(parse_frame(flags, nullptr).error == FrameError::bad_flags);
    auto length = frame;
    length[31] = std::byte{0xff};
    CHECK(parse_frame(length, nullptr).error == FrameError::truncated);
}

TEST_CASE("the MAC keeps injected frames out", "[transfer][frame][mac]") {
    LinkKey key = key_from("the diode's pre-shared link key!");
    LinkKey other = key_from("an attacker's guess at the key..");
    auto good = make_frame(kHeader, "genuine", &key);
    CHECK(parse_frame(good, &key).error == FrameError::none);
    CHECK(parse_frame(make_frame(kHeader, "forged", &other), &key).error == FrameError::bad_mac);
    CHECK(parse_frame(make_frame(kHeader, "no mac", nullptr), &key).error == FrameError::missing_mac);
    CHECK(parse_frame(good, nullptr).error == FrameError::unexpected_mac);
    CHECK_THROWS_AS(key_from("short"), std::invalid_argument);
    CHECK(describe(FrameError::bad_mac) == "MAC mismatch");
}

TEST_CASE("payload limits", "[transfer][frame]") {
    std::vector<std::byte> big(kMaxFramePayload + 1);
    std::vector<std::byte> out(kMaxFrameBytes + 16);
    CHECK_FALSE(encode_frame(kHeader, big, nullptr, out).ok());
    big.resize(kMaxFramePayload);
    auto n = encode_frame(kHeader, big, nullptr, out);
    REQUIRE(n.ok());
    CHECK(parse_frame(std::span(out).first(*n), nullptr).error == FrameError::none);
    std::vector<std::byte> small(10);
    CHECK_FALSE(encode_frame(kHeader, std::span(big).first(5), nullptr, small).ok());
}
