#pragma once
// Daemon configuration: one TOML file per daemon, read once at start-up (and
// again on SIGHUP), checked completely before anything starts.
//
//   sender.toml                      receiver.toml
//   [sender]   paths, passes, keys   [receiver]  paths, keys, timeouts
//   [link]     lanes, rate, FEC      [link]      lanes, FEC, receive buffer
//   [roles]    Unix groups -> roles  [roles]     Unix groups -> roles
//
// Every refusal is a ConfigError that reads `FILE:LINE: KEY: problem`, where
// KEY is dotted ("link.rate") and LINE the line of the key at fault (for a
// missing key, the line of its table; 0 when there is none). Relative paths
// are resolved against the directory of the configuration file. Every key is
// documented in docs/configuration.md; examples/ holds commented examples.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "sluice/policy/policy.hpp"

namespace sluice::daemon {

/// A configuration file was refused. what() reads `FILE:LINE: KEY: problem`
/// (`FILE:LINE:COLUMN: problem` for TOML syntax errors, which have no key).
struct ConfigError : std::runtime_error {
    ConfigError(std::filesystem::path file_, int line_, std::string key_, std::string problem_, int column_ = 0);

    std::string file;     ///< the configuration file as given
    int line = 0;         ///< 1-based; 0 when unknown
    std::string key;      ///< dotted key ("link.rate"), or a table name; empty for syntax errors
    std::string problem;  ///< the message without the location
    int column = 0;       ///< 1-based, syntax errors only
};

/// `[link]`: the one-way UDP link. TOML key names in brackets where they differ.
struct LinkConfig {
    /// [lanes] "host:port", numeric IPv4 or [IPv6]; at least one, no duplicates.
    /// Sender: destinations. Receiver: local bind addresses.
    std::vector<std::string> lanes;
    /// [rate] Sender only, required: bits per second on the wire, headers included.
    std::uint64_t rate_bits_per_s = 0;
    unsigned data_symbols = 64;    ///< K, 1..254
    unsigned parity_symbols = 16;  ///< M, 1..254, K + M <= 255
    unsigned interleave = 16;      ///< D, 1..256 blocks
    std::size_t symbol_bytes = 1350;  ///< 64..8900 bytes of payload per frame
    /// [key_file] pre-shared key for frame MACs: exists, >= 16 bytes, mode 0600 or stricter.
    std::optional<std::filesystem::path> link_key_file;
    /// [receive_buffer] Receiver only: SO_RCVBUF to ask for (64 KiB..2 GiB).
    std::size_t rcvbuf_bytes = std::size_t{64} << 20;
    /// [heartbeat_interval] sender: how often it sends one; receiver: how often it expects one.
    std::chrono::milliseconds heartbeat_interval{1000};
};

/// `[roles]`: which Unix groups hold which role on the control socket (uid 0 holds all).
struct RolesConfig {
    std::vector<std::string> operator_groups{"sluice-operators"};
    std::vector<std::string> officer_groups{"sluice-officers"};
    std::vector<std::string> auditor_groups{"sluice-auditors"};
};

/// `[audit]` (both daemons): the tamper-evident event log (docs/audit.md).
struct AuditConfig {
    /// [database] SQLite file; default <state_dir>/audit.db.
    std::optional<std::filesystem::path> database;
    /// [key] ECDSA P-256 private key (PEM) signing checkpoints and hop records; default
    /// <state_dir>/audit.key, created with audit.pub beside it on first start.
    std::optional<std::filesystem::path> key_file;
    std::chrono::milliseconds checkpoint_interval{std::chrono::minutes(10)};  ///< [checkpoint_interval] 1s..1d
    std::int64_t checkpoint_events = 1000;  ///< [checkpoint_events] 1..1000000 events between checkpoints

    [[nodiscard]] std::filesystem::path database_or(const std::filesystem::path& state_dir) const {
        return database ? *database : state_dir / "audit.db";
    }
    [[nodiscard]] std::filesystem::path key_or(const std::filesystem::path& state_dir) const {
        return key_file ? *key_file : state_dir / "audit.key";
    }
};

/// `[media]` (both daemons): removable media (docs/media.md).
struct MediaConfig {
    /// [key] pre-shared AES key file (32..4096 bytes, mode 0600). Sender: every
    /// medium is encrypted with it (a request may name another key). Receiver:
    /// the key encrypted media are read with.
    std::optional<std::filesystem::path> key_file;
    unsigned parity_percent = 10;  ///< [parity] sender: Reed-Solomon parity per block, 1..200 %
    /// [watch] receiver: mount points whose media are imported when they appear (absolute paths).
    std::vector<std::filesystem::path> watch;
    std::chrono::milliseconds poll_interval{5000};  ///< [poll_interval] receiver: how often watch points are looked at, 1s..1h
};

struct SenderConfig {
    std::filesystem::path config_file;  ///< absolute path of the file read
    std::filesystem::path state_dir{"/var/lib/sluice/sender"};
    std::filesystem::path spool_dir{"/var/spool/sluice/sender"};
    std::filesystem::path control_socket{"/run/sluice/sender.sock"};
    std::optional<std::filesystem::path> metrics_file;
    unsigned passes = 2;  ///< 1..100 carousel passes per bundle
    std::vector<std::filesystem::path> trusted_keys;  ///< >= 1, each exists
    unsigned min_signers = 1;  ///< 1..64, <= trusted_keys.size()
    LinkConfig link;
    RolesConfig roles;
    AuditConfig audit;
    MediaConfig media;
};

/// `[import]` (receiver): quarantine, scanning, policy, approval and release of
/// what arrives. Without it the receiver only delivers verified archives to incoming_dir.
struct ImportConfig {
    std::filesystem::path policy_file;  ///< [policy] required: the import policy (docs/policy.md)
    std::filesystem::path quarantine_dir{"/var/lib/sluice/quarantine"};
    std::filesystem::path release_dir{"/srv/sluice/releases"};  ///< <channel>/<version>/ and <channel>/current
    std::shared_ptr<const policy::Policy> policy;  ///< policy_file, read and checked
};

struct ReceiverConfig {
    std::filesystem::path config_file;  ///< absolute path of the file read
    std::filesystem::path state_dir{"/var/lib/sluice/receiver"};
    std::filesystem::path incoming_dir{"/var/lib/sluice/incoming"};
    std::filesystem::path control_socket{"/run/sluice/receiver.sock"};
    std::optional<std::filesystem::path> metrics_file;
    std::vector<std::filesystem::path> trusted_keys;  ///< >= 1, each exists
    unsigned min_signers = 1;  ///< 1..64, <= trusted_keys.size()
    std::chrono::milliseconds transfer_timeout{30000};  ///< silence before a transfer is reported incomplete
    std::chrono::milliseconds dead_link_after{5000};    ///< no frame nor heartbeat for this long: dead link
    std::size_t max_buffered_blocks = 256;              ///< 1..65536 blocks held in memory for decoding
    std::optional<ImportConfig> import;
    LinkConfig link;
    RolesConfig roles;
    AuditConfig audit;
    MediaConfig media;
};

/// Reads and checks a sender configuration. Throws ConfigError, and nothing else.
[[nodiscard]] SenderConfig load_sender_config(const std::filesystem::path& file);

/// Reads and checks a receiver configuration. Throws ConfigError, and nothing else.
[[nodiscard]] ReceiverConfig load_receiver_config(const std::filesystem::path& file);

}  // namespace sluice::daemon
