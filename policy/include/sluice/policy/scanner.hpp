#pragma once
// Scanning hooks: independent filters a quarantined bundle must all pass.
// Fail closed: anything but a clear "clean" is a finding or an error, and an
// error never lets a bundle through (the importer holds or rejects it).
//
//   exec   command with "{path}" (the quarantined bag directory), run by
//          run_command(): exit 0 = clean, 1 = found, anything else = error.
//   clamd  Unix or TCP socket; one zINSTREAM per regular file under the root:
//            "zINSTREAM\0" ─► [u32 big-endian length][chunk]… [u32 0] ─► "stream: OK\0"
//                                                               or "stream: <Sig> FOUND\0"
//                                                               or "… ERROR\0" (size limit, etc.)
//          files over max_stream_bytes are an error (clamd would cut them short).

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "sluice/core/result.hpp"

namespace sluice::policy {

struct ExecScanner {
    std::vector<std::string> command;  ///< argv; "{path}" replaced by the root scanned
};

struct ClamdScanner {
    std::optional<std::filesystem::path> socket;  ///< Unix socket (LocalSocket), or
    std::string host;                             ///< TCP numeric address (TCPAddr) ...
    std::uint16_t port = 0;                       ///< ... and port (TCPSocket)
    std::uint64_t max_stream_bytes = 25ull << 20; ///< clamd's StreamMaxLength; larger files are an error
    std::size_t chunk_bytes = 64 * 1024;
};

enum class OnScannerError { hold, reject };

struct ScannerSpec {
    std::string name;                                ///< from the policy file: [scanners.<name>]
    std::variant<ExecScanner, ClamdScanner> kind;
    std::chrono::milliseconds timeout{300000};       ///< exec: whole run; clamd: each file's request and reply
    unsigned attempts = 3;                           ///< >= 1; only errors are retried
    std::chrono::milliseconds retry_delay{5000};
    OnScannerError on_error = OnScannerError::hold;
};

enum class Verdict { clean, found, error };
[[nodiscard]] std::string_view to_string(Verdict v);  // "clean", "found", "error"

struct Finding {
    std::string path;       ///< relative to the root scanned ("data/model.bin"); empty if the scanner did not say
    std::string signature;  ///< "Sluice.Test.Hash", or the exec scanner's line
};

struct ScanResult {
    std::string scanner;
    Verdict verdict = Verdict::error;
    std::string summary;            ///< one line: "clean (12 files)", "data/x: Eicar FOUND", "timed out after 30s"
    std::vector<Finding> findings;
    std::string output;             ///< exec: the command's output (capped); clamd: replies that were not OK
    unsigned attempts = 0;
    std::chrono::milliseconds took{0};
    std::uint64_t files_scanned = 0;
};

/// One attempt over every regular file under `root` (clamd) or the command on
/// `root` (exec). A clamd pass ends (as an error, "stopped") between two files
/// once `stop` is set. Never throws.
[[nodiscard]] ScanResult scan_once(const ScannerSpec& spec, const std::filesystem::path& root,
                                   const std::atomic<bool>* stop = nullptr);

/// scan_once, retried on `error` up to spec.attempts times with retry_delay
/// between, returning the last result (attempts filled). Returns early (as an
/// error "stopped") when `stop` becomes true. Never throws.
[[nodiscard]] ScanResult scan(const ScannerSpec& spec, const std::filesystem::path& root,
                              const std::atomic<bool>& stop);

/// zPING ─► "PONG". Error names the socket and what went wrong.
[[nodiscard]] Result<void> clamd_ping(const ClamdScanner& clamd, std::chrono::milliseconds timeout);

}  // namespace sluice::policy
