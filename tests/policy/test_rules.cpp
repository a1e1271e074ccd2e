#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sluice/bundle/bundle.hpp"
#include "sluice/policy/policy.hpp"
#include "sluice/policy/rules.hpp"
#include "support/bundle_fixture.hpp"
#include "support/temp_dir.hpp"

namespace fs = std::filesystem;
using namespace sluice;
using namespace sluice::policy;
using sluice::test::TempDir;
using sluice::test::write_file;

namespace {

bool contains(const std::string& text, const std::string& needle) { return text.find(needle) != std::string::npos; }

/// The smallest PNG header libmagic recognises: signature and an IHDR chunk.
std::string png_bytes() {
    static constexpr unsigned char kPng[] = {0x89, 'P',  'N',  'G',  '\r', '\n', 0x1a, '\n', 0x00, 0x00, 0x00,
                                             0x0d, 'I',  'H',  'D',  'R',  0x00, 0x00, 0x00, 0x01, 0x00, 0x00,
                                             0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xde};
    return std::string(reinterpret_cast<const char*>(kPng), sizeof kPng);
}

/// Signing keys (alice, bob, mallory) and a channel trust directory that names
/// alice and bob differently from their key files, so a test can tell the
/// channel's names from the signature file names.
struct SignedBags {
    TempDir dir;
    fs::path keys = dir / "keys";
    fs::path trust_dir = dir / "trust";
    std::shared_ptr<bundle::TrustStore> trust;
    int serial = 0;

    SignedBags() {
        for (const char* name : {"alice", "bob", "mallory"}) REQUIRE(bundle::generate_key_pair(keys, name).ok());
        fs::create_directories(trust_dir);
        fs::copy_file(keys / "alice.pub", trust_dir / "release-alice.pub");
        fs::copy_file(keys / "bob.pub", trust_dir / "release-bob.pub");
        auto loaded = bundle::TrustStore::load(trust_dir);
        REQUIRE(loaded.ok());
        trust = std::make_shared<bundle::TrustStore>(std::move(*loaded));
    }

    [[nodiscard]] ChannelPolicy channel(unsigned min_signers = 1) const {
        ChannelPolicy c;
        c.name = "models";
        c.trusted_keys = {trust_dir / "release-alice.pub", trust_dir / "release-bob.pub"};
        c.trust = trust;
        c.min_signers = min_signers;
        return c;
    }

    /// A bag of `files` (relative path -> bytes) signed by the named keys.
    fs::path make(const std::map<std::string, std::string>& files, std::initializer_list<std::string> signers,
                  std::string* id_out = nullptr) {
        const std::string n = std::to_string(++serial);
        const fs::path src = dir / ("src" + n);
        fs::create_directories(src);
        for (const auto& [rel, bytes] : files) write_file(src / rel, bytes);
        bundle::CreateOptions o;
        o.source = src;
        o.out = dir / ("bag" + n);
        o.release = test::sample_release();
        o.sync = false;
        for (const auto& s : signers) o.signing_keys.push_back(keys / (s + ".key"));
        auto id = bundle::create_bag(o);
        INFO((id.ok() ? std::string() : id.error().message));
        REQUIRE(id.ok());
        if (id_out != nullptr) *id_out = *id;
        return o.out;
    }
};

BundleFacts gather(const fs::path& bag, const ChannelPolicy& channel) {
    auto facts = gather_facts(bag, channel);
    INFO((facts.ok() ? std::string() : facts.error().message));
    REQUIRE(facts.ok());
    return *facts;
}

/// A copy: callers often pass a temporary vector.
RuleResult rule_named(const std::vector<RuleResult>& results, const std::string& name) {
    auto it = std::find_if(results.begin(), results.end(), [&](const RuleResult& r) { return r.rule == name; });
    INFO("rule " << name);
    REQUIRE(it != results.end());
    return *it;
}

std::vector<std::string> rule_names(const std::vector<RuleResult>& results) {
    std::vector<std::string> out;
    for (const auto& r : results) out.push_back(r.rule);
    return out;
}

/// Facts as gather_facts would give them for a clean, signed bag, for the pure rules.
BundleFacts facts_of(std::vector<FileFact> files) {
    BundleFacts f;
    f.bundle_id = std::string(64, 'a');
    f.release = test::sample_release();
    f.signers = {"release-alice"};
    for (const auto& file : files) f.payload_bytes += file.size;
    f.files = std::move(files);
    return f;
}

/// A channel with no limits and nothing but the signers, answers and version rules.
ChannelPolicy plain_channel() {
    ChannelPolicy c;
    c.name = "models";
    return c;
}

}  // namespace

// ------------------------------------------------------------------ gather_facts

TEST_CASE("gather_facts names the signers by the channel's trust store, each once", "[policy][rules]") {
    SignedBags bags;
    std::string id;
    const fs::path bag = bags.make({{"model.json", "{\"layers\": 3}\n"}, {"weights/a.bin", test::random_bytes(3000, 7)}},
                                   {"alice", "bob"}, &id);

    SECTION("two distinct trusted signers") {
        const BundleFacts facts = gather(bag, bags.channel(2));
        CHECK(facts.bundle_id == id);
        CHECK(facts.release == test::sample_release());
        CHECK(facts.signature_error.empty());
        // The trust store's names (release-*.pub), not the signature file names (alice.sig).
        CHECK(facts.signers == std::vector<std::string>{"release-alice", "release-bob"});
        REQUIRE(facts.files.size() == 2);
        CHECK(facts.files[0].path == "data/model.json");
        CHECK(facts.files[0].size == 14);
        CHECK(facts.files[0].type == "application/json");
        CHECK(facts.files[1].path == "data/weights/a.bin");
        CHECK(facts.files[1].size == 3000);
        CHECK(facts.files[1].type == "application/octet-stream");
        CHECK(facts.payload_bytes == 3014);

        const auto results = evaluate_rules(bags.channel(2), facts, {});
        const auto signers = rule_named(results, "signers");
        CHECK(signers.passed);
        CHECK(signers.detail == "2 distinct trusted signers (release-alice, release-bob); 2 required");
    }

    SECTION("the same key signing under a second name counts once") {
        // sign_bag refuses a second signature by one key, so copy the file: the
        // receiver must not count it twice either.
        fs::copy_file(bag / "signatures" / "alice.sig", bag / "signatures" / "alice-again.sig");

        const BundleFacts facts = gather(bag, bags.channel(2));
        CHECK(facts.signature_error.empty());
        CHECK(facts.signers == std::vector<std::string>{"release-alice", "release-bob"});
    }
}

TEST_CASE("gather_facts: a duplicate signature does not make a second signer", "[policy][rules]") {
    SignedBags bags;
    const fs::path bag = bags.make({{"notes.txt", "hello\n"}}, {"alice"});
    fs::copy_file(bag / "signatures" / "alice.sig", bag / "signatures" / "alice-twice.sig");

    SECTION("one required: one signer, named once") {
        const BundleFacts facts = gather(bag, bags.channel(1));
        CHECK(facts.signature_error.empty());
        CHECK(facts.signers == std::vector<std::string>{"release-alice"});
        const auto r = rule_named(evaluate_rules(bags.channel(1), facts, {}), "signers");
        CHECK(r.passed);
        CHECK(r.detail == "1 distinct trusted signer (release-alice); 1 required");
    }
    SECTION("two required: the shortfall is a fact and the rule fails") {
        const BundleFacts facts = gather(bag, bags.channel(2));
        CHECK(facts.signers.empty());
        CHECK(contains(facts.signature_error, "only 1 distinct trusted signer"));
        const auto results = evaluate_rules(bags.channel(2), facts, {});
        const auto r = rule_named(results, "signers");
        CHECK_FALSE(r.passed);
        CHECK(contains(r.detail, "only 1 distinct trusted signer"));
        CHECK(contains(r.detail, "(channel models: 2 required)"));
        CHECK_FALSE(all_passed(results));
    }
}

TEST_CASE("gather_facts: min_signers 2 with one signer fails the signers rule", "[policy][rules]") {
    SignedBags bags;
    const fs::path bag = bags.make({{"notes.txt", "one signer only\n"}}, {"bob"});
    const BundleFacts facts = gather(bag, bags.channel(2));
    CHECK(facts.signers.empty());
    CHECK_FALSE(facts.signature_error.empty());
    const auto r = rule_named(evaluate_rules(bags.channel(2), facts, {}), "signers");
    CHECK_FALSE(r.passed);
    CHECK(contains(r.detail, "release-bob"));  // who did sign
    CHECK(contains(r.detail, "2 required"));

    // The same bag on a channel wanting one signer passes.
    const BundleFacts one = gather(bag, bags.channel(1));
    CHECK(one.signers == std::vector<std::string>{"release-bob"});
    CHECK(rule_named(evaluate_rules(bags.channel(1), one, {}), "signers").passed);
}

TEST_CASE("gather_facts: a bag signed by an untrusted key fails the signers rule", "[policy][rules]") {
    SignedBags bags;
    const fs::path bag = bags.make({{"notes.txt", "from mallory\n"}}, {"mallory"});
    const BundleFacts facts = gather(bag, bags.channel(1));
    CHECK(facts.signers.empty());
    CHECK(contains(facts.signature_error, "signatures/mallory.sig"));
    CHECK(contains(facts.signature_error, "does not verify with any trusted key"));
    // The other facts are still gathered: `policy explain` shows them.
    REQUIRE(facts.files.size() == 1);
    CHECK(facts.files[0].type == "text/plain");

    const auto results = evaluate_rules(bags.channel(1), facts, {});
    const auto r = rule_named(results, "signers");
    CHECK_FALSE(r.passed);
    CHECK(contains(r.detail, "signatures/mallory.sig"));
    CHECK(contains(r.detail, "channel models: 1 required"));
    CHECK_FALSE(all_passed(results));
}

TEST_CASE("gather_facts: a channel without a trust store trusts nobody", "[policy][rules]") {
    SignedBags bags;
    const fs::path bag = bags.make({{"notes.txt", "hello\n"}}, {"alice"});
    ChannelPolicy c = bags.channel(1);
    c.trust.reset();
    const BundleFacts facts = gather(bag, c);
    CHECK(facts.signers.empty());
    CHECK(facts.signature_error == "channel models has no trusted keys");
    CHECK_FALSE(rule_named(evaluate_rules(c, facts, {}), "signers").passed);
}

TEST_CASE("gather_facts: a payload changed after signing fails the signers rule naming the file", "[policy][rules]") {
    SignedBags bags;
    const fs::path bag = bags.make({{"notes.txt", "original text\n"}, {"other.txt", "untouched\n"}}, {"alice"});
    write_file(bag / "data" / "notes.txt", "altered text!\n");  // same size, other bytes
    const BundleFacts facts = gather(bag, bags.channel(1));
    CHECK(facts.signers.empty());
    CHECK(contains(facts.signature_error, "data/notes.txt"));
    CHECK_FALSE(rule_named(evaluate_rules(bags.channel(1), facts, {}), "signers").passed);
}

TEST_CASE("gather_facts: what is not a bag is an error, not an exception", "[policy][rules]") {
    SignedBags bags;
    const ChannelPolicy c = bags.channel(1);
    auto missing = gather_facts(bags.dir / "no-such-bag", c);
    CHECK_FALSE(missing.ok());
    fs::create_directories(bags.dir / "plain" / "data");
    write_file(bags.dir / "plain" / "data" / "x.txt", "x\n");
    auto plain = gather_facts(bags.dir / "plain", c);
    REQUIRE_FALSE(plain.ok());
    CHECK_FALSE(plain.error().message.empty());
}

// ------------------------------------------------------------------ content types

TEST_CASE("content_type goes by the bytes, not the name", "[policy][rules]") {
    TempDir dir;
    write_file(dir / "a.json", "{\"accuracy\": 0.91, \"labels\": [\"cat\", \"dog\"]}\n");
    write_file(dir / "random.bin", test::random_bytes(4096, 42));
    write_file(dir / "notes.txt", "Plain words for a person to read.\nA second line.\n");
    write_file(dir / "image.txt", png_bytes());
    fs::copy_file("/bin/true", dir / "tool.txt");

    auto type = [&](const char* name) {
        auto t = content_type(dir / name);
        INFO(name << ": " << (t.ok() ? *t : t.error().message));
        REQUIRE(t.ok());
        return *t;
    };
    CHECK(type("a.json") == "application/json");
    CHECK(type("random.bin") == "application/octet-stream");
    CHECK(type("notes.txt") == "text/plain");
    CHECK(type("image.txt") == "image/png");
    const std::string elf = type("tool.txt");
    CHECK((elf == "application/x-pie-executable" || elf == "application/x-sharedlib" || elf == "application/x-executable"));

    // libmagic's name for an empty file: a channel with an allowlist must list it
    // to accept empty payload files (reported to the policy owner).
    write_file(dir / "empty.txt", "");
    CHECK(type("empty.txt") == "inode/x-empty");

    auto missing = content_type(dir / "missing.bin");
    REQUIRE_FALSE(missing.ok());
    CHECK(contains(missing.error().message, "missing.bin"));
}

TEST_CASE("type_matches: exact types, families and everything", "[policy][rules]") {
    CHECK(type_matches("application/json", "application/json"));
    CHECK_FALSE(type_matches("application/json", "application/json5"));
    CHECK_FALSE(type_matches("application/json", "text/plain"));
    CHECK(type_matches("text/*", "text/plain"));
    CHECK(type_matches("text/*", "text/x-script.python"));
    CHECK_FALSE(type_matches("text/*", "textual/plain"));
    CHECK_FALSE(type_matches("text/*", "text"));
    CHECK_FALSE(type_matches("text/*", "application/text"));
    CHECK_FALSE(type_matches("image/*", "text/plain"));
    CHECK(type_matches("*/*", "application/x-pie-executable"));
    CHECK(type_matches("*", "image/png"));
    CHECK_FALSE(type_matches("text/plain", "text/plain; charset=us-ascii"));
}

TEST_CASE("file_types on a real bag: a renamed PNG or ELF is still refused", "[policy][rules]") {
    SignedBags bags;
    TempDir elf_dir;
    fs::copy_file("/bin/true", elf_dir / "true");
    const fs::path bag = bags.make({{"model.json", "{\"layers\": 3}\n"},
                                    {"notes.txt", "Plain words for a person to read.\n"},
                                    {"picture.txt", png_bytes()},
                                    {"tool.txt", test::read_file(elf_dir / "true")}},
                                   {"alice"});
    const BundleFacts facts = gather(bag, bags.channel(1));
    REQUIRE(facts.files.size() == 4);
    CHECK(facts.files[0].path == "data/model.json");
    CHECK(facts.files[1].path == "data/notes.txt");
    CHECK(facts.files[2].path == "data/picture.txt");
    CHECK(facts.files[2].type == "image/png");
    CHECK(facts.files[3].path == "data/tool.txt");
    const std::string elf = facts.files[3].type;

    SECTION("only text is allowed") {
        ChannelPolicy c = bags.channel(1);
        c.allowed_types = {"text/*"};
        const auto results = evaluate_rules(c, facts, {});
        const auto r = rule_named(results, "file_types");
        CHECK_FALSE(r.passed);
        CHECK(contains(r.detail, "data/picture.txt is image/png"));
        CHECK(contains(r.detail, "data/tool.txt is " + elf));
        CHECK(contains(r.detail, "data/model.json is application/json"));
        CHECK_FALSE(contains(r.detail, "data/notes.txt"));
        CHECK(contains(r.detail, "; allowed: text/*"));
        CHECK_FALSE(all_passed(results));
    }
    SECTION("text and JSON allowed: the image and the program are still refused") {
        ChannelPolicy c = bags.channel(1);
        c.allowed_types = {"text/*", "application/json"};
        const auto r = rule_named(evaluate_rules(c, facts, {}), "file_types");
        CHECK_FALSE(r.passed);
        CHECK(r.detail == "not allowed by content: data/picture.txt is image/png, data/tool.txt is " + elf +
                              "; allowed: text/*, application/json");
    }
    SECTION("every type allowed") {
        ChannelPolicy c = bags.channel(1);
        c.allowed_types = {"text/plain", "application/json", "image/*", elf};
        const auto results = evaluate_rules(c, facts, {});
        const auto r = rule_named(results, "file_types");
        CHECK(r.passed);
        CHECK(contains(r.detail, "every file's content is an allowed type ("));
        CHECK(contains(r.detail, "image/png"));
        CHECK(all_passed(results));
    }
}

// ------------------------------------------------------------------ the rules, pure

TEST_CASE("evaluate_rules: the fixed order, and only the rules the channel sets", "[policy][rules]") {
    const BundleFacts facts = facts_of({{"data/a.txt", 10, "text/plain"}});
    CHECK(rule_names(evaluate_rules(plain_channel(), facts, {})) ==
          std::vector<std::string>{"signers", "bag_layout", "required_answers", "version"});

    ChannelPolicy c = plain_channel();
    c.max_bundle_bytes = 1000;
    c.max_files = 10;
    c.max_file_bytes = 100;
    c.allowed_types = {"text/*"};
    c.forbidden_paths = {"*.exe"};
    const auto results = evaluate_rules(c, facts, {});
    CHECK(rule_names(results) == std::vector<std::string>{"signers", "bag_layout", "required_answers", "max_bundle_bytes", "max_files",
                                                          "max_file_bytes", "file_types", "forbidden_paths", "version"});
    CHECK(all_passed(results));
    // Pure: the same facts give the same decisions.
    const auto again = evaluate_rules(c, facts, {});
    REQUIRE(again.size() == results.size());
    for (std::size_t i = 0; i < again.size(); ++i) {
        CHECK(again[i].passed == results[i].passed);
        CHECK(again[i].detail == results[i].detail);
    }
}

TEST_CASE("rule signers: counted from the facts", "[policy][rules]") {
    ChannelPolicy c = plain_channel();
    c.min_signers = 2;
    BundleFacts facts = facts_of({});
    facts.signers = {"release-alice", "release-bob"};
    auto r = rule_named(evaluate_rules(c, facts, {}), "signers");
    CHECK(r.passed);
    facts.signers = {"release-alice"};
    r = rule_named(evaluate_rules(c, facts, {}), "signers");
    CHECK_FALSE(r.passed);
    CHECK(r.detail == "1 distinct trusted signer (release-alice); 2 required");
    facts.signers.clear();
    r = rule_named(evaluate_rules(c, facts, {}), "signers");
    CHECK_FALSE(r.passed);
    CHECK(r.detail == "0 distinct trusted signers (); 2 required");
}

TEST_CASE("rule max_bundle_bytes", "[policy][rules]") {
    ChannelPolicy c = plain_channel();
    const BundleFacts facts = facts_of({{"data/a.bin", 400, "application/octet-stream"},
                                        {"data/b.bin", 200, "application/octet-stream"}});
    c.max_bundle_bytes = 600;  // the limit itself is allowed
    auto r = rule_named(evaluate_rules(c, facts, {}), "max_bundle_bytes");
    CHECK(r.passed);
    CHECK(r.detail == "600 B of payload; at most 600 B allowed");
    c.max_bundle_bytes = 599;
    r = rule_named(evaluate_rules(c, facts, {}), "max_bundle_bytes");
    CHECK_FALSE(r.passed);
    CHECK(r.detail == "600 B of payload; at most 599 B allowed");

    BundleFacts big = facts_of({{"data/w.bin", 3u * 1024 * 1024, "application/octet-stream"}});
    c.max_bundle_bytes = 2u * 1024 * 1024;
    r = rule_named(evaluate_rules(c, big, {}), "max_bundle_bytes");
    CHECK_FALSE(r.passed);
    CHECK(r.detail == "3.0 MiB of payload; at most 2.0 MiB allowed");
}

TEST_CASE("rule max_files", "[policy][rules]") {
    ChannelPolicy c = plain_channel();
    const BundleFacts facts = facts_of({{"data/a", 1, "text/plain"}, {"data/b", 1, "text/plain"}, {"data/c", 1, "text/plain"}});
    c.max_files = 3;
    auto r = rule_named(evaluate_rules(c, facts, {}), "max_files");
    CHECK(r.passed);
    CHECK(r.detail == "3 payload files; at most 3 allowed");
    c.max_files = 2;
    r = rule_named(evaluate_rules(c, facts, {}), "max_files");
    CHECK_FALSE(r.passed);
    CHECK(r.detail == "3 payload files; at most 2 allowed");
}

TEST_CASE("rule max_file_bytes", "[policy][rules]") {
    ChannelPolicy c = plain_channel();
    c.max_file_bytes = 500;
    SECTION("every file within") {
        const BundleFacts facts = facts_of({{"data/a.bin", 400, "application/octet-stream"}, {"data/b.bin", 500, "application/octet-stream"}});
        const auto r = rule_named(evaluate_rules(c, facts, {}), "max_file_bytes");
        CHECK(r.passed);
        CHECK(r.detail == "largest file 500 B; at most 500 B allowed");
    }
    SECTION("one over, named") {
        const BundleFacts facts = facts_of({{"data/a.bin", 400, "application/octet-stream"}, {"data/big.bin", 501, "application/octet-stream"}});
        const auto r = rule_named(evaluate_rules(c, facts, {}), "max_file_bytes");
        CHECK_FALSE(r.passed);
        CHECK(r.detail == "over 500 B: data/big.bin (501 B)");
    }
    SECTION("many over: five named, the rest counted") {
        std::vector<FileFact> files;
        for (int i = 0; i < 7; ++i) files.push_back({"data/f" + std::to_string(i), 600, "application/octet-stream"});
        const auto r = rule_named(evaluate_rules(c, facts_of(files), {}), "max_file_bytes");
        CHECK_FALSE(r.passed);
        CHECK(contains(r.detail, "data/f4 (600 B)"));
        CHECK_FALSE(contains(r.detail, "data/f5"));
        CHECK(contains(r.detail, " and 2 more"));
    }
}

TEST_CASE("rule file_types on facts", "[policy][rules]") {
    ChannelPolicy c = plain_channel();
    c.allowed_types = {"application/json", "text/*"};
    BundleFacts facts = facts_of({{"data/a.json", 10, "application/json"}, {"data/b.txt", 10, "text/plain"}});
    auto r = rule_named(evaluate_rules(c, facts, {}), "file_types");
    CHECK(r.passed);
    CHECK(r.detail == "every file's content is an allowed type (application/json, text/plain)");
    facts.files.push_back({"data/c.bin", 10, "application/x-pie-executable"});
    r = rule_named(evaluate_rules(c, facts, {}), "file_types");
    CHECK_FALSE(r.passed);
    CHECK(r.detail == "not allowed by content: data/c.bin is application/x-pie-executable; allowed: application/json, text/*");
}

TEST_CASE("rule file_types: an empty file needs no allowlist entry", "[policy][rules]") {
    ChannelPolicy c = plain_channel();
    c.allowed_types = {"application/json"};
    BundleFacts facts = facts_of({{"data/a.json", 10, "application/json"}, {"data/pkg/__init__.py", 0, "inode/x-empty"}});
    CHECK(rule_named(evaluate_rules(c, facts, {}), "file_types").passed);
    // A non-empty file libmagic cannot type is still refused.
    facts.files.push_back({"data/odd", 5, "inode/x-empty"});
    CHECK_FALSE(rule_named(evaluate_rules(c, facts, {}), "file_types").passed);
}

TEST_CASE("size rules show exact bytes when rounding hides the excess", "[policy][rules]") {
    ChannelPolicy c = plain_channel();
    c.max_bundle_bytes = 1024;
    c.max_file_bytes = 1024;
    const BundleFacts facts = facts_of({{"data/a.bin", 1025, "application/octet-stream"}});
    const auto total = rule_named(evaluate_rules(c, facts, {}), "max_bundle_bytes");
    CHECK_FALSE(total.passed);
    CHECK(total.detail == "1.0 KiB of payload; at most 1.0 KiB allowed (1025 > 1024 bytes)");
    const auto one = rule_named(evaluate_rules(c, facts, {}), "max_file_bytes");
    CHECK(one.detail == "over 1.0 KiB: data/a.bin (1.0 KiB) (1025 > 1024 bytes)");
}

TEST_CASE("rule forbidden_paths: fnmatch where * also crosses '/'", "[policy][rules]") {
    ChannelPolicy c = plain_channel();
    c.forbidden_paths = {"*.exe", "*/.git/*"};
    SECTION("nothing matches") {
        const BundleFacts facts = facts_of({{"data/model.bin", 1, "x/y"}, {"data/git/notes.txt", 1, "x/y"}});
        const auto r = rule_named(evaluate_rules(c, facts, {}), "forbidden_paths");
        CHECK(r.passed);
        CHECK(r.detail == "no path matches *.exe, */.git/*");
    }
    SECTION("deep paths match, each file named once") {
        const BundleFacts facts = facts_of({{"data/bin/win/tool.exe", 1, "x/y"},
                                            {"data/repo/.git/config", 1, "x/y"},
                                            {"data/ok.txt", 1, "x/y"},
                                            {"data/repo/.git/x.exe", 1, "x/y"}});
        const auto r = rule_named(evaluate_rules(c, facts, {}), "forbidden_paths");
        CHECK_FALSE(r.passed);
        CHECK(r.detail ==
              "forbidden: data/bin/win/tool.exe matches \"*.exe\", data/repo/.git/config matches \"*/.git/*\", "
              "data/repo/.git/x.exe matches \"*.exe\"");
    }
    SECTION("a pattern anchored at data/ still crosses directories") {
        c.forbidden_paths = {"data/*.so"};
        const BundleFacts facts = facts_of({{"data/lib/x86_64/libx.so", 1, "x/y"}});
        CHECK_FALSE(rule_named(evaluate_rules(c, facts, {}), "forbidden_paths").passed);
    }
}

TEST_CASE("rule required_answers: blank answers are missing", "[policy][rules]") {
    // validate_release refuses empty answers, so a bag cannot carry one; the
    // rule still guards against a whitespace-only answer from other tools.
    ChannelPolicy c = plain_channel();
    BundleFacts facts = facts_of({});
    auto r = rule_named(evaluate_rules(c, facts, {}), "required_answers");
    CHECK(r.passed);
    CHECK(r.detail == "release.json answers changes, reason, approved_by, rollback_to");

    facts.release.reason = " \t\r\n ";
    facts.release.approved_by = "";
    r = rule_named(evaluate_rules(c, facts, {}), "required_answers");
    CHECK_FALSE(r.passed);
    CHECK(r.detail == "release.json leaves empty: reason, approved_by");

    SECTION("a channel requiring fewer answers") {
        c.required_answers = {"changes", "rollback_to"};
        r = rule_named(evaluate_rules(c, facts, {}), "required_answers");
        CHECK(r.passed);
        CHECK(r.detail == "release.json answers changes, rollback_to");
    }
    SECTION("an answer release.json cannot give is never answered") {
        c.required_answers = {"changes", "colour"};
        r = rule_named(evaluate_rules(c, facts, {}), "required_answers");
        CHECK_FALSE(r.passed);
        CHECK(r.detail == "release.json leaves empty: colour");
    }
}

TEST_CASE("rule version: monotonic per channel, older only as a signed rollback", "[policy][rules]") {
    const ChannelPolicy c = plain_channel();
    BundleFacts facts = facts_of({});
    ChannelHistory history;
    history.highest_released = "1.4.0";
    history.current = "1.4.0";
    history.released = {"1.3.0", "1.3.2", "1.4.0"};
    history.kept = {"1.3.2", "1.4.0"};  // 1.3.0 pruned

    SECTION("first release") {
        facts.release.version = "0.1.0";
        const auto r = rule_named(evaluate_rules(c, facts, ChannelHistory{}), "version");
        CHECK(r.passed);
        CHECK(r.detail == "first release of 0.1.0 on channel models");
    }
    SECTION("newer") {
        facts.release.version = "1.10.0";  // numerically, not as text
        const auto r = rule_named(evaluate_rules(c, facts, history), "version");
        CHECK(r.passed);
        CHECK(r.detail == "1.10.0 is newer than 1.4.0, the newest released");
    }
    SECTION("the same version again") {
        facts.release.version = "1.4.0";
        const auto r = rule_named(evaluate_rules(c, facts, history), "version");
        CHECK_FALSE(r.passed);
        CHECK(r.detail == "version 1.4.0 was already released on channel models (a replay, or a version number used twice)");
    }
    SECTION("an older version released before, sent again") {
        facts.release.version = "1.3.0";
        const auto r = rule_named(evaluate_rules(c, facts, history), "version");
        CHECK_FALSE(r.passed);
        CHECK(contains(r.detail, "already released"));
    }
    SECTION("older, never released, not a rollback") {
        facts.release.version = "1.3.1";
        const auto r = rule_named(evaluate_rules(c, facts, history), "version");
        CHECK_FALSE(r.passed);
        CHECK(contains(r.detail, "1.3.1 is not newer than 1.4.0, the newest released on channel models"));
        CHECK(contains(r.detail, "--rollback"));
    }
    SECTION("the same version by order, spelled differently") {
        facts.release.version = "1.4";
        const auto r = rule_named(evaluate_rules(c, facts, history), "version");
        CHECK_FALSE(r.passed);
        CHECK(contains(r.detail, "1.4 is not newer than 1.4.0"));
    }
    SECTION("older as a signed rollback") {
        facts.release.version = "1.3.1";
        facts.release.rollback = true;
        const auto results = evaluate_rules(c, facts, history);
        const auto r = rule_named(results, "version");
        CHECK(r.passed);
        CHECK(r.detail == "signed rollback to 1.3.1 (newest released: 1.4.0); an officer must approve it");
        CHECK(all_passed(results));
    }
    SECTION("a signed rollback to a version still kept points at sluice rollback") {
        history.kept = {"1.3.2", "1.4.0"};
        facts.release.version = "1.3.2";
        facts.release.rollback = true;
        const auto r = rule_named(evaluate_rules(c, facts, history), "version");
        INFO(r.detail);
        CHECK_FALSE(r.passed);
        CHECK(contains(r.detail, "sluice rollback models --to 1.3.2"));
    }
    SECTION("a signed rollback re-ships a released version no longer kept") {
        history.kept = {"1.3.2", "1.4.0"};
        facts.release.version = "1.3.0";
        facts.release.rollback = true;
        const auto results = evaluate_rules(c, facts, history);
        const auto r = rule_named(results, "version");
        INFO(r.detail);
        CHECK(r.passed);
        CHECK(contains(r.detail, "1.3.0"));
        CHECK(contains(r.detail, "no longer kept"));
        CHECK(contains(r.detail, "an officer must approve it"));
        CHECK(all_passed(results));
    }
    SECTION("a newer version flagged as rollback is simply newer") {
        facts.release.version = "2.0.0";
        facts.release.rollback = true;
        const auto r = rule_named(evaluate_rules(c, facts, history), "version");
        CHECK(r.passed);
        CHECK(r.detail == "2.0.0 is newer than 1.4.0, the newest released");
    }
}

TEST_CASE("all_passed", "[policy][rules]") {
    CHECK(all_passed({}));
    CHECK(all_passed({{"signers", true, ""}, {"version", true, ""}}));
    CHECK_FALSE(all_passed({{"signers", true, ""}, {"version", false, ""}}));
    CHECK_FALSE(all_passed({{"signers", false, ""}}));
}
