#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <string>

#include "sluice/bundle/signing.hpp"
#include "sluice/daemon/config.hpp"
#include "support/temp_dir.hpp"

using namespace sluice::daemon;
using namespace std::chrono_literals;
using sluice::test::TempDir;
using sluice::test::write_file;
namespace fs = std::filesystem;

namespace {

/// A directory with a trusted key, where each test writes its configuration.
struct ConfigDir {
    TempDir dir;
    ConfigDir() {
        // Real keys: an [import] policy loads its channels' trusted keys.
        REQUIRE(sluice::bundle::generate_key_pair(dir / "keys", "release"));
        REQUIRE(sluice::bundle::generate_key_pair(dir / "keys", "second"));
    }
    fs::path write(const std::string& name, const std::string& text) const {
        write_file(dir / name, text);
        return dir / name;
    }
    [[nodiscard]] std::string file(const std::string& name) const { return (dir / name).string(); }
};

template <class F>
std::string error_of(F&& load) {
    try {
        load();
    } catch (const ConfigError& e) {
        return e.what();
    }
    return "<no error>";
}

std::string sender_error(const ConfigDir& d, const std::string& text) {
    const auto path = d.write("sender.toml", text);
    return error_of([&] { (void)load_sender_config(path); });
}

std::string receiver_error(const ConfigDir& d, const std::string& text) {
    const auto path = d.write("receiver.toml", text);
    return error_of([&] { (void)load_receiver_config(path); });
}

const std::string kSenderHead = "[sender]\ntrusted_keys = [\"keys/release.pub\"]\n";  // lines 1-2
const std::string kReceiverHead = "[receiver]\ntrusted_keys = [\"keys/release.pub\"]\n";
const std::string kLinkSender = "[link]\nlanes = [\"127.0.0.1:47000\"]\nrate = \"1G\"\n";  // lines 3-5

const std::string kLinkSenderKeys =
    "lanes, data_symbols, parity_symbols, interleave, symbol_bytes, key_file, heartbeat_interval, rate";

}  // namespace

TEST_CASE("the example configurations load", "[daemon][config]") {
    ConfigDir d;
    fs::copy_file(fs::path(SLUICE_EXAMPLES_DIR) / "sender.toml", d.dir / "sender.toml");
    fs::copy_file(fs::path(SLUICE_EXAMPLES_DIR) / "receiver.toml", d.dir / "receiver.toml");
    fs::copy_file(fs::path(SLUICE_EXAMPLES_DIR) / "policy.toml", d.dir / "policy.toml");

    const SenderConfig s = load_sender_config(d.dir / "sender.toml");
    CHECK(s.config_file == d.dir / "sender.toml");
    CHECK(s.state_dir == d.dir / "state/sender");
    CHECK(s.spool_dir == d.dir / "spool");
    CHECK(s.control_socket == d.dir / "run/sender.sock");
    CHECK(s.metrics_file == d.dir / "metrics/sluice_sender.prom");
    CHECK(s.passes == 2);
    CHECK(s.trusted_keys == std::vector<fs::path>{d.dir / "keys/release.pub"});
    CHECK(s.min_signers == 1);
    CHECK(s.link.lanes == std::vector<std::string>{"127.0.0.1:47000"});
    CHECK(s.link.rate_bits_per_s == 2'000'000'000);
    CHECK(s.link.data_symbols == 64);
    CHECK(s.link.parity_symbols == 16);
    CHECK(s.link.interleave == 16);
    CHECK(s.link.symbol_bytes == 1350);
    CHECK_FALSE(s.link.link_key_file);
    CHECK(s.link.heartbeat_interval == 1s);
    CHECK(s.roles.officer_groups == std::vector<std::string>{"sluice-officers"});

    const ReceiverConfig r = load_receiver_config(d.dir / "receiver.toml");
    CHECK(r.state_dir == d.dir / "state/receiver");
    CHECK(r.incoming_dir == d.dir / "incoming");
    CHECK(r.control_socket == d.dir / "run/receiver.sock");
    CHECK(r.link.lanes == std::vector<std::string>{"127.0.0.1:47000"});
    CHECK(r.link.rcvbuf_bytes == 64u << 20);
    CHECK(r.transfer_timeout == 30s);
    CHECK(r.dead_link_after == 5s);
    CHECK(r.max_buffered_blocks == 256);
    REQUIRE(r.import);
    CHECK(r.import->quarantine_dir == d.dir / "quarantine");
    CHECK(r.import->release_dir == d.dir / "releases");
    const auto& models = r.import->policy->channels.at("models");
    CHECK(models.approval == sluice::policy::ApprovalMode::two_person);
    CHECK(models.approvers == 2);
    CHECK(models.scanners == std::vector<std::string>{"clamav"});
    CHECK(models.trust->keys().size() == 1);
}

TEST_CASE("a full configuration sets every field", "[daemon][config]") {
    ConfigDir d;
    write_file(d.dir / "keys/link.key", std::string(32, 'k'));
    ::chmod((d.dir / "keys/link.key").c_str(), 0600);
    const auto path = d.write("conf/sender.toml",
                              "[sender]\n"
                              "state_dir = \"/var/tmp/sluice-state\"\n"
                              "spool_dir = \"../spool\"\n"
                              "control_socket = \"run/s.sock\"\n"
                              "passes = 5\n"
                              "trusted_keys = [\"../keys/release.pub\", \"../keys/second.pub\"]\n"
                              "min_signers = 2\n"
                              "[link]\n"
                              "lanes = [\"127.0.0.1:47000\", \"[::1]:47001\"]\n"
                              "rate = 100000000\n"
                              "data_symbols = 100\n"
                              "parity_symbols = 155\n"
                              "interleave = 256\n"
                              "symbol_bytes = 8900\n"
                              "key_file = \"../keys/link.key\"\n"
                              "heartbeat_interval = \"250ms\"\n"
                              "[roles]\n"
                              "operator_groups = [\"ci\", \"release\"]\n"
                              "officer_groups = []\n");
    const SenderConfig s = load_sender_config(path);
    CHECK(s.state_dir == "/var/tmp/sluice-state");
    CHECK(s.spool_dir == d.dir / "spool");
    CHECK(s.control_socket == d.dir / "conf/run/s.sock");
    CHECK_FALSE(s.metrics_file);
    CHECK(s.passes == 5);
    CHECK(s.trusted_keys.size() == 2);
    CHECK(s.min_signers == 2);
    CHECK(s.link.lanes.size() == 2);
    CHECK(s.link.rate_bits_per_s == 100'000'000);
    CHECK(s.link.data_symbols + s.link.parity_symbols == 255);
    CHECK(s.link.interleave == 256);
    CHECK(s.link.symbol_bytes == 8900);
    CHECK(s.link.link_key_file == d.dir / "keys/link.key");
    CHECK(s.link.heartbeat_interval == 250ms);
    CHECK(s.roles.operator_groups == std::vector<std::string>{"ci", "release"});
    CHECK(s.roles.officer_groups.empty());
    CHECK(s.roles.auditor_groups == std::vector<std::string>{"sluice-auditors"});
}

TEST_CASE("config errors name file, line and key", "[daemon][config]") {
    ConfigDir d;
    const std::string f = d.file("sender.toml");

    SECTION("unknown key, with its line and a suggestion") {
        CHECK(sender_error(d, kSenderHead + "[link]\nlanes = [\"127.0.0.1:47000\"]\nrat = \"1G\"\n") ==
              f + ":5: link.rat: unknown key (did you mean \"rate\"?); allowed keys: " + kLinkSenderKeys);
    }
    SECTION("unknown key without a close match") {
        CHECK(sender_error(d, kSenderHead + kLinkSender + "colour = \"blue\"\n") ==
              f + ":6: link.colour: unknown key; allowed keys: " + kLinkSenderKeys);
    }
    SECTION("unknown table") {
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[rolse]\n") ==
              f + ":6: rolse: unknown table (did you mean \"roles\"?); allowed tables: sender, link, roles, audit, media");
    }
    SECTION("a receiver table in a sender file") {
        CHECK(sender_error(d, "[receiver]\n") ==
              f + ":1: receiver: this table belongs in a receiver configuration; is this the right file?");
    }
    SECTION("a receiver-only key in a sender file") {
        CHECK(sender_error(d, kSenderHead + kLinkSender + "receive_buffer = \"64M\"\n") ==
              f + ":6: link.receive_buffer: not allowed here: receive_buffer is a receiver setting");
    }
    SECTION("wrong type") {
        CHECK(sender_error(d, kSenderHead + "passes = \"2\"\n" + kLinkSender) ==
              f + ":3: sender.passes: expected an integer, got a string");
        CHECK(sender_error(d, kSenderHead + "[link]\nlanes = \"127.0.0.1:47000\"\nrate = \"1G\"\n") ==
              f + ":4: link.lanes: expected an array of strings, got a string (write [\"…\"] even for one value)");
        CHECK(sender_error(d, "sender = 1\n") == f + ":1: sender: expected a table [sender], got an integer");
    }
    SECTION("bad rate") {
        CHECK(sender_error(d, kSenderHead + "[link]\nlanes = [\"127.0.0.1:47000\"]\nrate = \"fast\"\n") ==
              f + ":5: link.rate: \"fast\" is not a bit rate: expected a number (examples: \"800M\", \"1.5G\", "
                  "\"100000k\"; bits per second, k/M/G = 10^3/10^6/10^9)");
        CHECK(sender_error(d, kSenderHead + "[link]\nlanes = [\"127.0.0.1:47000\"]\nrate = 0\n") ==
              f + ":5: link.rate: must be between 1k and 400G (got 0 bits/s)");
    }
    SECTION("K + M over 255") {
        CHECK(sender_error(d, kSenderHead + kLinkSender + "data_symbols = 200\nparity_symbols = 100\n") ==
              f + ":7: link.parity_symbols: data_symbols + parity_symbols must be at most 255 (got 200 + 100 = 300)");
    }
    SECTION("value out of range") {
        CHECK(sender_error(d, kSenderHead + kLinkSender + "symbol_bytes = 9000\n") ==
              f + ":6: link.symbol_bytes: must be between 64 and 8900 (got 9000)");
        CHECK(sender_error(d, kSenderHead + "passes = -1\n" + kLinkSender) ==
              f + ":3: sender.passes: must be between 1 and 100 (got -1)");
    }
    SECTION("missing lanes points at the table") {
        CHECK(sender_error(d, kSenderHead + "[link]\nrate = \"1G\"\n") ==
              f + ":3: link.lanes: missing required key; add it to [link], e.g. lanes = [\"127.0.0.1:47000\"]");
        CHECK(sender_error(d, kSenderHead + "[link]\nlanes = []\nrate = \"1G\"\n") ==
              f + ":4: link.lanes: list at least one lane, e.g. [\"127.0.0.1:47000\"]");
    }
    SECTION("missing rate and missing table") {
        CHECK(sender_error(d, kSenderHead + "\n[link]\nlanes = [\"127.0.0.1:47000\"]\n") ==
              f + ":4: link.rate: missing required key; add it to [link], e.g. rate = \"800M\" (bits per second on "
                  "the wire)");
        CHECK(sender_error(d, kSenderHead) == f + ":0: link: missing table; add a [link] section");
    }
    SECTION("bad lanes") {
        CHECK(sender_error(d, kSenderHead + "[link]\nlanes = [\"127.0.0.1:47000\",\n  \"localhost:47001\"]\n") ==
              f + ":5: link.lanes: \"localhost:47001\" is not a lane address: \"localhost\" is not a numeric IPv4 "
                  "address (examples: \"127.0.0.1:47000\", \"[::1]:47000\"; numeric addresses only)");
        CHECK(sender_error(d, kSenderHead + "[link]\nlanes = [\"127.0.0.1:47000\", \"127.0.0.1:47000\"]\n") ==
              f + ":4: link.lanes: \"127.0.0.1:47000\" is listed twice");
    }
    SECTION("link key file readable by others") {
        write_file(d.dir / "link.key", std::string(32, 'k'));
        ::chmod((d.dir / "link.key").c_str(), 0644);
        const std::string key = (d.dir / "link.key").string();
        CHECK(sender_error(d, kSenderHead + kLinkSender + "key_file = \"link.key\"\n") ==
              f + ":6: link.key_file: " + key + " is accessible by group or others (mode 0644); run chmod 600 " + key);
        ::chmod((d.dir / "link.key").c_str(), 0600);
        write_file(d.dir / "link.key", "short");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "key_file = \"link.key\"\n") ==
              f + ":6: link.key_file: " + key +
                  " holds 5 bytes; a key needs at least 16 (e.g. head -c 32 /dev/urandom > FILE)");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "key_file = \"nope.key\"\n") ==
              f + ":6: link.key_file: cannot use " + (d.dir / "nope.key").string() + ": No such file or directory");
    }
    SECTION("trusted keys") {
        CHECK(sender_error(d, "[sender]\ntrusted_keys = [\"keys/missing.pub\"]\n" + kLinkSender) ==
              f + ":2: sender.trusted_keys: " + (d.dir / "keys/missing.pub").string() + " does not exist");
        CHECK(sender_error(d, "[sender]\n" + kLinkSender) ==
              f + ":1: sender.trusted_keys: missing required key; add it to [sender], e.g. trusted_keys = "
                  "[\"keys/release.pub\"]");
        CHECK(sender_error(d, kSenderHead + "min_signers = 2\n" + kLinkSender) ==
              f + ":3: sender.min_signers: requires 2 signers but trusted_keys lists only 1");
    }
    SECTION("TOML syntax error reports line and column") {
        const std::string e = sender_error(d, kSenderHead + "passes = = 2\n");
        CHECK_THAT(e, Catch::StartsWith(f + ":3:"));
        CHECK_THAT(e, Catch::Contains("TOML syntax error: "));
        CHECK_THAT(sender_error(d, kSenderHead + "[sender]\n"), Catch::StartsWith(f + ":3:"));  // table redefined
    }
    SECTION("unreadable file") {
        CHECK(error_of([&] { (void)load_sender_config(d.dir / "absent.toml"); }) ==
              d.file("absent.toml") + ":0: cannot read the configuration file: No such file or directory");
        CHECK(error_of([&] { (void)load_sender_config(d.dir.path()); }) ==
              d.dir.path().string() + ":0: is a directory, not a configuration file");
    }
}

TEST_CASE("receiver config errors", "[daemon][config]") {
    ConfigDir d;
    const std::string f = d.file("receiver.toml");
    const std::string link = "[link]\nlanes = [\"127.0.0.1:47000\"]\n";  // lines 3-4

    CHECK(receiver_error(d, kReceiverHead + link + "rate = \"1G\"\n") ==
          f + ":5: link.rate: not allowed here: rate is a sender setting (the receiver takes what arrives)");
    CHECK(receiver_error(d, kReceiverHead + link + "receive_buffer = \"1K\"\n") ==
          f + ":5: link.receive_buffer: must be between 64K and 2G (got 1024 bytes)");
    CHECK(receiver_error(d, kReceiverHead + link + "receive_buffer = \"64Q\"\n") ==
          f + ":5: link.receive_buffer: \"64Q\" is not a size: unknown suffix \"Q\" (use K, M, G or T) (examples: "
              "\"65536\", \"256K\", \"64M\", \"1G\"; K = 1024)");
    CHECK(receiver_error(d, kReceiverHead + "transfer_timeout = 30\n" + link) ==
          f + ":3: receiver.transfer_timeout: expected a duration string with a unit, e.g. \"1s\" or \"500ms\"");
    CHECK(receiver_error(d, kReceiverHead + "transfer_timeout = \"30\"\n" + link) ==
          f + ":3: receiver.transfer_timeout: \"30\" is not a duration: missing unit (ms, s, m or h) (examples: "
              "\"500ms\", \"1s\", \"2m\", \"1m30s\")");
    CHECK(receiver_error(d, kReceiverHead + "dead_link_after = \"1s\"\n" + link) ==
          f + ":3: receiver.dead_link_after: must be longer than link.heartbeat_interval (1s), or every gap between "
              "heartbeats is a dead link");
    CHECK(receiver_error(d, kReceiverHead + "spool_dir = \"x\"\n" + link) ==
          f + ":3: receiver.spool_dir: unknown key; allowed keys: state_dir, incoming_dir, control_socket, "
              "metrics_file, trusted_keys, min_signers, transfer_timeout, dead_link_after, max_buffered_blocks");
    CHECK(receiver_error(d, "[sender]\n") ==
          f + ":1: sender: this table belongs in a sender configuration; is this the right file?");

    const auto ok = d.write("ok.toml", kReceiverHead + "max_buffered_blocks = 1024\n" + link +
                                           "receive_buffer = 268435456\nheartbeat_interval = \"500ms\"\n");
    const ReceiverConfig r = load_receiver_config(ok);
    CHECK(r.max_buffered_blocks == 1024);
    CHECK(r.link.rcvbuf_bytes == 256u << 20);
    CHECK(r.link.heartbeat_interval == 500ms);
    CHECK(r.link.rate_bits_per_s == 0);
}

TEST_CASE("[audit]: defaults under state_dir, every key checked", "[daemon][config]") {
    ConfigDir d;
    const auto defaults = load_sender_config(d.write("sender.toml", kSenderHead + kLinkSender));
    CHECK_FALSE(defaults.audit.database);
    CHECK_FALSE(defaults.audit.key_file);
    CHECK(defaults.audit.database_or(defaults.state_dir) == defaults.state_dir / "audit.db");
    CHECK(defaults.audit.key_or(defaults.state_dir) == defaults.state_dir / "audit.key");
    CHECK(defaults.audit.checkpoint_interval == 10min);
    CHECK(defaults.audit.checkpoint_events == 1000);

    ::chmod((d.dir / "keys/release.key").c_str(), 0600);
    const auto set = load_sender_config(d.write(
        "sender.toml", kSenderHead + kLinkSender +
                           "[audit]\ndatabase = \"audit/log.db\"\nkey = \"keys/release.key\"\n"
                           "checkpoint_interval = \"30s\"\ncheckpoint_events = 50\n"));
    CHECK(set.audit.database == d.dir / "audit/log.db");
    CHECK(set.audit.key_file == d.dir / "keys/release.key");
    CHECK(set.audit.checkpoint_interval == 30s);
    CHECK(set.audit.checkpoint_events == 50);

    const std::string f = d.file("sender.toml");
    CHECK(sender_error(d, kSenderHead + kLinkSender + "[audit]\ndatabse = \"x.db\"\n") ==
          f + ":7: audit.databse: unknown key (did you mean \"database\"?); allowed keys: database, key, "
              "checkpoint_interval, checkpoint_events");
    CHECK_THAT(sender_error(d, kSenderHead + kLinkSender + "[audit]\nkey = \"keys/missing.key\"\n"),
               Catch::StartsWith(f + ":7: audit.key: ") && Catch::Contains("sluice keygen"));
    CHECK_THAT(sender_error(d, kSenderHead + kLinkSender + "[audit]\nkey = \"keys/release.pub\"\n"),
               Catch::StartsWith(f + ":7: audit.key: "));
    ::chmod((d.dir / "keys/release.key").c_str(), 0644);
    CHECK_THAT(sender_error(d, kSenderHead + kLinkSender + "[audit]\nkey = \"keys/release.key\"\n"),
               Catch::StartsWith(f + ":7: audit.key: ") && Catch::Contains("chmod 600"));
    CHECK_THAT(sender_error(d, kSenderHead + kLinkSender + "[audit]\ncheckpoint_events = 0\n"),
               Catch::StartsWith(f + ":7: audit.checkpoint_events: "));
    CHECK_THAT(receiver_error(d, kReceiverHead + "[link]\nlanes = [\"127.0.0.1:47000\"]\n[audit]\ncheckpoint_interval = \"0s\"\n"),
               Catch::Contains("audit.checkpoint_interval"));
}

TEST_CASE("[media]: defaults, every key, its bounds and its side", "[daemon][config]") {
    ConfigDir d;
    const std::string link = "[link]\nlanes = [\"127.0.0.1:47000\"]\n";  // receiver: lines 3-4
    const auto key_file = [&](const std::string& name, std::size_t bytes, unsigned mode) {
        write_file(d.dir / name, std::string(bytes, 'k'));
        ::chmod((d.dir / name).c_str(), mode);
        return (d.dir / name).string();
    };

    SECTION("defaults, without the table and with an empty one") {
        for (const std::string& extra : {std::string(), std::string("[media]\n")}) {
            const SenderConfig s = load_sender_config(d.write("sender.toml", kSenderHead + kLinkSender + extra));
            CHECK_FALSE(s.media.key_file);
            CHECK(s.media.parity_percent == 10);
            CHECK(s.media.watch.empty());
            CHECK(s.media.poll_interval == 5s);
            const ReceiverConfig r = load_receiver_config(d.write("receiver.toml", kReceiverHead + link + extra));
            CHECK_FALSE(r.media.key_file);
            CHECK(r.media.parity_percent == 10);
            CHECK(r.media.watch.empty());
            CHECK(r.media.poll_interval == 5s);
        }
    }

    SECTION("every key set: paths resolved, watch points normalised, the bounds themselves accepted") {
        key_file("keys/media.key", 32, 0600);
        const SenderConfig s = load_sender_config(
            d.write("sender.toml", kSenderHead + kLinkSender + "[media]\nkey = \"keys/media.key\"\nparity = 25\n"));
        CHECK(s.media.key_file == d.dir / "keys/media.key");
        CHECK(s.media.parity_percent == 25);
        for (unsigned p : {1u, 200u}) {
            CHECK(load_sender_config(d.write("sender.toml", kSenderHead + kLinkSender + "[media]\nparity = " +
                                                                std::to_string(p) + "\n"))
                      .media.parity_percent == p);
        }
        key_file("big.key", 4096, 0400);
        const ReceiverConfig r = load_receiver_config(
            d.write("receiver.toml", kReceiverHead + link +
                                         "[media]\nkey = \"big.key\"\nwatch = [\"/mnt/usb\", \"/media/sluice/../disk\"]\n"
                                         "poll_interval = \"2s\"\n"));
        CHECK(r.media.key_file == d.dir / "big.key");
        CHECK(r.media.watch == std::vector<fs::path>{"/mnt/usb", "/media/disk"});
        CHECK(r.media.poll_interval == 2s);
        CHECK(r.media.parity_percent == 10);
        for (const char* bound : {"1s", "1h"}) {
            CHECK_NOTHROW(load_receiver_config(d.write(
                "receiver.toml", kReceiverHead + link + "[media]\npoll_interval = \"" + bound + "\"\n")));
        }
        CHECK(load_receiver_config(d.write("receiver.toml", kReceiverHead + link + "[media]\nwatch = []\n"))
                  .media.watch.empty());
    }

    SECTION("parity outside 1..200, or not an integer") {
        const std::string f = d.file("sender.toml");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nparity = 0\n") ==
              f + ":7: media.parity: must be between 1 and 200 (got 0)");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nparity = 201\n") ==
              f + ":7: media.parity: must be between 1 and 200 (got 201)");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nparity = -5\n") ==
              f + ":7: media.parity: must be between 1 and 200 (got -5)");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nparity = \"10%\"\n") ==
              f + ":7: media.parity: expected an integer, got a string");
    }

    SECTION("the key file: too small, too large, readable by others, missing, not a file") {
        const std::string f = d.file("sender.toml");
        const std::string media = kSenderHead + kLinkSender + "[media]\nparity = 10\nkey = \"media.key\"\n";  // key: line 8
        const std::string key = key_file("media.key", 31, 0600);
        CHECK(sender_error(d, media) ==
              f + ":8: media.key: " + key + " holds 31 bytes; a key needs at least 32 (e.g. head -c 32 /dev/urandom > FILE)");
        key_file("media.key", 16, 0600);  // enough for a link key, not for a media key
        CHECK(sender_error(d, media) ==
              f + ":8: media.key: " + key + " holds 16 bytes; a key needs at least 32 (e.g. head -c 32 /dev/urandom > FILE)");
        key_file("media.key", 4097, 0600);
        CHECK(sender_error(d, media) == f + ":8: media.key: " + key + " holds more than 4096 bytes: not a key file");
        key_file("media.key", 32, 0644);
        CHECK(sender_error(d, media) ==
              f + ":8: media.key: " + key + " is accessible by group or others (mode 0644); run chmod 600 " + key);
        key_file("media.key", 32, 0640);
        CHECK(sender_error(d, media) ==
              f + ":8: media.key: " + key + " is accessible by group or others (mode 0640); run chmod 600 " + key);
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nkey = \"nope.key\"\n") ==
              f + ":7: media.key: cannot use " + (d.dir / "nope.key").string() + ": No such file or directory");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nkey = \"keys\"\n") ==
              f + ":7: media.key: " + (d.dir / "keys").string() + " is not a regular file");
        // The receiver checks its key the same way.
        key_file("media.key", 8, 0600);
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\nkey = \"media.key\"\n") ==
              d.file("receiver.toml") + ":6: media.key: " + key +
                  " holds 8 bytes; a key needs at least 32 (e.g. head -c 32 /dev/urandom > FILE)");
    }

    SECTION("watch: absolute paths only, the line of the element at fault") {
        const std::string f = d.file("receiver.toml");
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\nwatch = [\"mnt/usb\"]\n") ==
              f + ":6: media.watch: \"mnt/usb\" is not an absolute path (a mount point)");
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\nwatch = [\n  \"/mnt/a\",\n  \"./b\",\n]\n") ==
              f + ":8: media.watch: \"./b\" is not an absolute path (a mount point)");
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\nwatch = \"/mnt/usb\"\n") ==
              f + ":6: media.watch: expected an array of strings, got a string (write [\"…\"] even for one value)");
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\nwatch = [\"\"]\n") ==
              f + ":6: media.watch: empty string in the list");
    }

    SECTION("poll_interval: 1s..1h, a duration string") {
        const std::string f = d.file("receiver.toml");
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\npoll_interval = \"500ms\"\n") ==
              f + ":6: media.poll_interval: must be between 1s and 1h (got 500ms)");
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\npoll_interval = \"1h1s\"\n") ==
              f + ":6: media.poll_interval: must be between 1s and 1h (got 1h1s)");
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\npoll_interval = 5\n") ==
              f + ":6: media.poll_interval: expected a duration string with a unit, e.g. \"1s\" or \"500ms\"");
    }

    SECTION("a key of the other daemon is refused with the hint; an unknown key with the allowed ones") {
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\nparity = 10\n") ==
              d.file("receiver.toml") +
                  ":6: media.parity: not allowed here: parity is a sender setting (the medium says what it used)");
        const std::string f = d.file("sender.toml");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nwatch = [\"/mnt/usb\"]\n") ==
              f + ":7: media.watch: not allowed here: watch and poll_interval are receiver settings");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\npoll_interval = \"5s\"\n") ==
              f + ":7: media.poll_interval: not allowed here: watch and poll_interval are receiver settings");
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nkye = \"media.key\"\n") ==
              f + ":7: media.kye: unknown key (did you mean \"key\"?); allowed keys: key, parity");
        // [link] calls its key key_file; too far from "key" for a suggestion, but the allowed keys are listed.
        CHECK(sender_error(d, kSenderHead + kLinkSender + "[media]\nkey_file = \"media.key\"\n") ==
              f + ":7: media.key_file: unknown key; allowed keys: key, parity");
        CHECK(receiver_error(d, kReceiverHead + link + "[media]\nwatches = [\"/mnt\"]\n") ==
              d.file("receiver.toml") +
                  ":6: media.watches: unknown key (did you mean \"watch\"?); allowed keys: key, watch, poll_interval");
    }
}
