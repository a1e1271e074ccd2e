#include "sluice/daemon/policy_config.hpp"

#include <unistd.h>

#include "sluice/bundle/release.hpp"
#include "sluice/bundle/signing.hpp"
#include "toml_reader.hpp"

namespace sluice::daemon {
namespace {

using namespace toml_reading;
using policy::ApprovalMode;

constexpr std::string_view kTables[] = {"scanners", "channels"};
constexpr std::string_view kScannerKeys[] = {"type", "command", "socket", "address", "max_stream_bytes",
                                             "timeout", "attempts", "retry_delay", "on_error"};
constexpr std::string_view kChannelKeys[] = {"trusted_keys",     "min_signers",     "max_bundle_bytes", "max_files",
                                             "max_file_bytes",   "allowed_types",   "forbidden_paths",  "required_answers",
                                             "scanners",         "approval",        "approvers",        "keep_releases",
                                             "post_release"};
constexpr std::string_view kHookKeys[] = {"name", "command", "timeout"};
constexpr std::uint64_t kMaxBytes = std::uint64_t{1} << 50;

/// A command: an array of strings whose first is an absolute path to an executable file.
std::vector<std::string> read_command(const TableReader& r, std::string_view key) {
    auto list = r.strings(key);
    if (!list) r.missing(key, "command = [\"/usr/bin/clamdscan\", \"--fdpass\", \"{path}\"]");
    if (list->empty()) r.fail_at(r.line(key), key, "give at least the program to run");
    const auto& [program, line] = list->front();
    if (program.front() != '/')
        r.fail_at(line, key, "the program must be an absolute path (there is no PATH search): \"" + program + "\"");
    if (::access(program.c_str(), X_OK) != 0)
        r.fail_at(line, key, program + " is not an executable file: " + std::strerror(errno));
    std::vector<std::string> argv;
    for (const auto& [arg, l] : *list) argv.push_back(arg);
    return argv;
}

std::string required_string(const TableReader& r, std::string_view key, std::string_view example) {
    auto v = r.string(key);
    if (!v) r.missing(key, example);
    return *v;
}

policy::ScannerSpec read_scanner(const Document& doc, const std::string& name, const toml::table& t) {
    TableReader r(doc.file, doc.base_dir, t, "scanners." + name);
    r.refuse_unknown(kScannerKeys, {}, "");
    policy::ScannerSpec spec;
    spec.name = name;
    const std::string type = required_string(r, "type", "type = \"clamd\"");
    if (type == "exec") {
        for (auto k : {"socket", "address", "max_stream_bytes"})
            if (r.find(k)) r.fail_at(r.line(k), k, "only a clamd scanner has this key");
        auto command = read_command(r, "command");
        if (std::none_of(command.begin() + 1, command.end(),
                         [](const std::string& a) { return a.find("{path}") != std::string::npos; }))
            r.fail_at(r.line("command"), "command",
                      "no argument holds {path}: the scanner would not be told what to scan "
                      "(e.g. [\"/usr/bin/yara\", \"-r\", \"rules.yar\", \"{path}\"])");
        spec.kind = policy::ExecScanner{std::move(command)};
    } else if (type == "clamd") {
        if (r.find("command")) r.fail_at(r.line("command"), "command", "only an exec scanner has this key");
        policy::ClamdScanner clamd;
        auto socket = r.path("socket");
        auto address = r.string("address");
        if (socket && address) r.fail_at(r.line("address"), "address", "give socket or address, not both");
        if (!socket && !address)
            r.missing("socket", "socket = \"/run/clamav/clamd.ctl\" (or address = \"127.0.0.1:3310\")");
        if (socket) clamd.socket = *socket;
        if (address) {
            auto lane = parse_lane(*address);
            if (!lane) r.fail_at(r.line("address"), "address", lane.error().message);
            clamd.host = lane->address;
            clamd.port = lane->port;
        }
        if (auto v = r.byte_size("max_stream_bytes", 1024, kMaxBytes, "1K", "1P")) clamd.max_stream_bytes = *v;
        spec.kind = clamd;
    } else {
        r.fail_at(r.line("type"), "type", "must be \"clamd\" or \"exec\" (got \"" + type + "\")");
    }
    if (auto d = r.duration("timeout", std::chrono::seconds(1), std::chrono::hours(24))) spec.timeout = *d;
    if (auto v = r.integer<unsigned>("attempts", 1, 100)) spec.attempts = *v;
    if (auto d = r.duration("retry_delay", std::chrono::milliseconds(0), std::chrono::hours(1))) spec.retry_delay = *d;
    if (auto v = r.string("on_error")) {
        if (*v == "hold") spec.on_error = policy::OnScannerError::hold;
        else if (*v == "reject") spec.on_error = policy::OnScannerError::reject;
        else r.fail_at(r.line("on_error"), "on_error", "must be \"hold\" or \"reject\" (got \"" + *v + "\")");
    }
    return spec;
}

std::vector<std::string> plain_strings(const TableReader& r, std::string_view key) {
    std::vector<std::string> out;
    if (auto list = r.strings(key)) {
        for (auto& [s, line] : *list) out.push_back(s);
    }
    return out;
}

policy::PostReleaseHook read_hook(const Document& doc, const std::string& where, const toml::table& t) {
    TableReader r(doc.file, doc.base_dir, t, where);
    r.refuse_unknown(kHookKeys, {}, "");
    policy::PostReleaseHook hook;
    hook.command = read_command(r, "command");
    hook.name = r.string("name").value_or(std::filesystem::path(hook.command.front()).filename().string());
    if (auto d = r.duration("timeout", std::chrono::seconds(1), std::chrono::hours(24))) hook.timeout = *d;
    return hook;
}

policy::ChannelPolicy read_channel(const Document& doc, const std::string& name, const toml::table& t,
                                   const policy::Policy& p) {
    const std::string table = "channels." + name;
    TableReader r(doc.file, doc.base_dir, t, table);
    if (!bundle::is_valid_channel(name))
        r.fail_at(r.table_line(), "", "\"" + name + "\" is not a channel name: use 1-64 of a-z 0-9 . _ - starting with a letter or digit");
    r.refuse_unknown(kChannelKeys, {}, "");
    policy::ChannelPolicy c;
    c.name = name;
    read_trust(r, c.trusted_keys, c.min_signers);
    auto trust = std::make_shared<bundle::TrustStore>();
    for (const auto& key : c.trusted_keys) {
        auto loaded = bundle::load_public_key(key);
        if (!loaded) r.fail_at(r.line("trusted_keys"), "trusted_keys", key.string() + ": " + loaded.error().message);
        std::string fingerprint = loaded->fingerprint();
        trust->add(bundle::TrustedKey{key.stem().string(), fingerprint, std::move(*loaded)});
    }
    c.trust = trust;
    c.max_bundle_bytes = r.byte_size("max_bundle_bytes", 1, kMaxBytes, "1", "1P");
    c.max_files = r.integer<std::uint64_t>("max_files", 1, 100'000'000);
    c.max_file_bytes = r.byte_size("max_file_bytes", 1, kMaxBytes, "1", "1P");
    if (auto list = r.strings("allowed_types")) {
        for (auto& [type, line] : *list) {
            const auto slash = type.find('/');
            if (type != "*" && (slash == std::string::npos || slash == 0 || slash + 1 == type.size()))
                r.fail_at(line, "allowed_types", "\"" + type + "\" is not a MIME type like \"text/plain\" or \"text/*\"");
            c.allowed_types.push_back(type);
        }
    }
    c.forbidden_paths = plain_strings(r, "forbidden_paths");
    if (auto list = r.strings("required_answers")) {
        c.required_answers.clear();
        for (auto& [answer, line] : *list) {
            if (std::find(std::begin(policy::kReleaseAnswers), std::end(policy::kReleaseAnswers), answer) ==
                std::end(policy::kReleaseAnswers))
                r.fail_at(line, "required_answers",
                          "\"" + answer + "\" is not a release.json answer (changes, reason, approved_by, rollback_to)");
            c.required_answers.push_back(answer);
        }
    }
    if (auto list = r.strings("scanners")) {
        for (auto& [scanner, line] : *list) {
            if (p.scanners.find(scanner) == p.scanners.end())
                r.fail_at(line, "scanners", "no [scanners." + scanner + "] table defines scanner \"" + scanner + "\"");
            if (std::find(c.scanners.begin(), c.scanners.end(), scanner) != c.scanners.end())
                r.fail_at(line, "scanners", "scanner \"" + scanner + "\" is listed twice");
            c.scanners.push_back(scanner);
        }
    }
    const std::string approval = required_string(r, "approval", "approval = \"manual\"");
    if (approval == "auto") c.approval = ApprovalMode::automatic;
    else if (approval == "manual") c.approval = ApprovalMode::manual;
    else if (approval == "two-person") c.approval = ApprovalMode::two_person;
    else r.fail_at(r.line("approval"), "approval", "must be \"auto\", \"manual\" or \"two-person\" (got \"" + approval + "\")");
    auto approvers = r.integer<unsigned>("approvers", 1, 16);
    switch (c.approval) {
        case ApprovalMode::automatic:
            if (approvers) r.fail_at(r.line("approvers"), "approvers", "an \"auto\" channel has no approvers; remove the key");
            c.approvers = 0;
            break;
        case ApprovalMode::manual:
            if (approvers && *approvers != 1)
                r.fail_at(r.line("approvers"), "approvers", "\"manual\" is one officer; use approval = \"two-person\" for more");
            c.approvers = 1;
            break;
        case ApprovalMode::two_person:
            c.approvers = approvers.value_or(2);
            if (c.approvers < 2) r.fail_at(r.line("approvers"), "approvers", "\"two-person\" needs at least 2 distinct officers");
            break;
    }
    if (auto v = r.integer<unsigned>("keep_releases", 2, 1000)) c.keep_releases = *v;
    if (const toml::node* hooks = r.find("post_release")) {
        const auto* arr = hooks->as_array();
        if (arr == nullptr || !arr->is_array_of_tables())
            r.fail_at(r.line("post_release"), "post_release",
                      "expected [[" + table + ".post_release]] tables, each with a command");
        std::size_t i = 0;
        for (const toml::node& element : *arr) {
            c.post_release.push_back(read_hook(doc, table + ".post_release[" + std::to_string(++i) + "]", *element.as_table()));
        }
    }
    return c;
}

}  // namespace

policy::Policy load_policy(const std::filesystem::path& file) {
    return guarded(file, [&] {
        const Document doc = read_document(file);
        doc.refuse_unknown_tables(kTables, "receiver", "receiver");
        policy::Policy p;
        p.file = absolute_or_given(file);
        if (const toml::table* scanners = doc.table("scanners", false)) {
            for (auto&& [k, v] : *scanners) {
                const std::string name(k.str());
                if (!v.is_table())
                    doc.fail_at(line_of(k.source()), "scanners." + name, "expected a table [scanners." + name + "]");
                p.scanners.emplace(name, read_scanner(doc, name, *v.as_table()));
            }
        }
        const toml::table* channels = doc.table("channels", false);
        if (channels == nullptr || channels->empty())
            doc.fail_at(0, "channels", "no channel is allowed in: add a [channels.<name>] table per release channel");
        for (auto&& [k, v] : *channels) {
            const std::string name(k.str());
            if (!v.is_table())
                doc.fail_at(line_of(k.source()), "channels." + name, "expected a table [channels." + name + "]");
            p.channels.emplace(name, read_channel(doc, name, *v.as_table(), p));
        }
        return p;
    });
}

}  // namespace sluice::daemon
