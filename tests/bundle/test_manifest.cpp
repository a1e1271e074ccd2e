#include <catch2/catch.hpp>

#include "sluice/bundle/manifest.hpp"

using namespace sluice::bundle;

namespace {
const std::string kHexA = std::string(64, 'a');
const std::string kHexB = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";
}  // namespace

TEST_CASE("manifest lines parse with any line ending and whitespace run", "[bundle][manifest]") {
    std::string text = kHexA + "  data/a.bin\r\n" + kHexB + "\tdata/dir/with space.txt\r" + kHexA + " data/c\n";
    auto entries = parse_manifest(text);
    REQUIRE(entries.ok());
    REQUIRE(entries->size() == 3);
    CHECK((*entries)[0].path == "data/a.bin");
    CHECK((*entries)[1].path == "data/dir/with space.txt");
    CHECK(to_hex((*entries)[1].digest) == "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    CHECK((*entries)[2].path == "data/c");
}

TEST_CASE("manifest round-trips through format_manifest, percent-encoding % CR LF", "[bundle][manifest]") {
    CHECK(encode_manifest_path("data/100%\nx\ry") == "data/100%25%0Ax%0Dy");
    auto decoded = decode_manifest_path("data/100%25%0ax%0Dy");
    REQUIRE(decoded.ok());
    CHECK(*decoded == "data/100%\nx\ry");
    CHECK_FALSE(decode_manifest_path("data/%41").ok());
    CHECK_FALSE(decode_manifest_path("data/%2").ok());

    std::vector<ManifestEntry> entries = {{"data/a b", *sha256_from_hex(kHexA)}, {"data/x%y", *sha256_from_hex(kHexB)}};
    auto back = parse_manifest(format_manifest(entries));
    REQUIRE(back.ok());
    REQUIRE(back->size() == 2);
    CHECK((*back)[0].path == "data/a b");
    CHECK((*back)[1].path == "data/x%y");
    CHECK((*back)[1].digest == entries[1].digest);
}

TEST_CASE("malformed manifests are refused naming the line", "[bundle][manifest]") {
    auto refused = [](const std::string& text, const std::string& needle) {
        auto r = parse_manifest(text);
        REQUIRE_FALSE(r.ok());
        INFO(r.error().message);
        CHECK(r.error().message.find(needle) != std::string::npos);
    };
    refused("nothex  data/a\n", "line 1");
    refused(kHexA + "  data/a\n" + kHexA.substr(1) + "  data/b\n", "line 2");
    refused(kHexA + "\n", "line 1");
    refused(kHexA + "   \n", "missing path");
    refused(kHexA + "  /etc/passwd\n", "absolute");
    refused(kHexA + "  data/../x\n", "'..'");
    refused(kHexA + "  data//x\n", "empty component");
    refused(kHexA + "  data/./x\n", "'.'");
    refused(kHexA + "  data/a\n" + kHexB + "  data/a\n", "listed twice");
    refused(kHexA + "  data/\xff\xfe\n", "UTF-8");
    refused(kHexA + "  data/a%0Ab\n", "control character");
    refused(kHexA + "  data/" + std::string(256, 'x') + "\n", "255");
}

TEST_CASE("manifest entry limit", "[bundle][manifest]") {
    std::string text;
    for (int i = 0; i < 5; ++i) text += kHexA + "  data/f" + std::to_string(i) + "\n";
    CHECK(parse_manifest(text, ManifestLimits{5, 4096}).ok());
    auto r = parse_manifest(text, ManifestLimits{4, 4096});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find("more than 4 entries") != std::string::npos);
}

TEST_CASE("relative path rules", "[bundle][manifest]") {
    CHECK(check_relative_path("data/a/b.c").ok());
    CHECK(check_relative_path("data/mod\xc3\xa8le").ok());
    CHECK_FALSE(check_relative_path("").ok());
    CHECK_FALSE(check_relative_path("data/").ok());
    CHECK_FALSE(check_relative_path("..").ok());
    CHECK_FALSE(check_relative_path("data/\x7f").ok());
    CHECK_FALSE(check_relative_path("data/\xc0\xaf").ok());  // overlong '/'
    CHECK_FALSE(check_relative_path(std::string(5000, 'a')).ok());
    CHECK(check_relative_path("a/b", 3).ok());
    CHECK_FALSE(check_relative_path("a/bc", 3).ok());
}

TEST_CASE("bag-info parsing folds continuation lines and keeps order", "[bundle][manifest]") {
    auto info = parse_bag_info("Source-Organization: Example\nExternal-Description: first\n  second line\nPayload-Oxum: 10.2\n");
    REQUIRE(info.ok());
    REQUIRE(info->size() == 3);
    CHECK(bag_info_value(*info, "external-description") == "first second line");
    CHECK(bag_info_value(*info, "Payload-Oxum") == "10.2");
    CHECK(bag_info_value(*info, "Missing").empty());
    CHECK_FALSE(parse_bag_info("  leading continuation\n").ok());
    CHECK_FALSE(parse_bag_info("no colon here\n").ok());
    CHECK_FALSE(parse_bag_info(": no label\n").ok());
    CHECK(format_bag_info(*info).find("External-Description: first second line\n") != std::string::npos);
}

TEST_CASE("bagit.txt declares version and encoding", "[bundle][manifest]") {
    CHECK(parse_bagit_txt(format_bagit_txt()).ok());
    CHECK(parse_bagit_txt("BagIt-Version: 0.97\r\nTag-File-Character-Encoding: utf-8\r\n").ok());
    CHECK_FALSE(parse_bagit_txt("BagIt-Version: 2.0\nTag-File-Character-Encoding: UTF-8\n").ok());
    CHECK_FALSE(parse_bagit_txt("BagIt-Version: 1.0\nTag-File-Character-Encoding: ISO-8859-1\n").ok());
    CHECK_FALSE(parse_bagit_txt("Tag-File-Character-Encoding: UTF-8\n").ok());
}

TEST_CASE("Payload-Oxum", "[bundle][manifest]") {
    auto ox = parse_payload_oxum("123456.7");
    REQUIRE(ox.ok());
    CHECK(ox->octets == 123456);
    CHECK(ox->streams == 7);
    CHECK_FALSE(parse_payload_oxum("12").ok());
    CHECK_FALSE(parse_payload_oxum("a.1").ok());
    CHECK_FALSE(parse_payload_oxum("1.").ok());
    CHECK_FALSE(parse_payload_oxum("99999999999999999999999.1").ok());
}

TEST_CASE("hex and base64 are strict", "[bundle][manifest]") {
    CHECK(sha256_from_hex(kHexB).has_value());
    CHECK_FALSE(sha256_from_hex(kHexB + "0").has_value());
    CHECK_FALSE(sha256_from_hex(std::string(63, 'a') + "g").has_value());
    const std::vector<std::uint8_t> bytes = {0x00, 0xff, 0x10, 0x80, 0x7f};
    for (std::size_t n = 0; n <= bytes.size(); ++n) {
        std::vector<std::uint8_t> part(bytes.begin(), bytes.begin() + static_cast<long>(n));
        auto text = base64_encode(part);
        auto back = base64_decode(text);
        REQUIRE(back.has_value());
        CHECK(*back == part);
    }
    CHECK(base64_encode(std::vector<std::uint8_t>{'M', 'a', 'n'}) == "TWFu");
    CHECK(base64_decode("TW\nFu\n").has_value());
    CHECK_FALSE(base64_decode("TWF").has_value());
    CHECK_FALSE(base64_decode("TW=u").has_value());
    CHECK_FALSE(base64_decode("TW!u").has_value());
    CHECK_FALSE(base64_decode("TR==").has_value());  // non-zero trailing bits
}
