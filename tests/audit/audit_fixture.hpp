#pragma once
// Shared by the audit tests: a key pair, a log in a temporary directory, and
// raw SQL on the database file (what a tamperer with the sqlite3 shell does).

#include <sqlite3.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "sluice/audit/log.hpp"
#include "sluice/bundle/signing.hpp"
#include "support/temp_dir.hpp"

namespace sluice::test {

struct AuditFixture {
    TempDir dir;
    std::filesystem::path db = dir / "audit.db";
    std::shared_ptr<const bundle::Key> key;
    std::shared_ptr<const bundle::Key> pub;

    AuditFixture() {
        if (!bundle::generate_key_pair(dir.path(), "host")) throw std::runtime_error("keygen failed");
        auto k = bundle::load_private_key(dir / "host.key");
        auto p = bundle::load_public_key(dir / "host.pub");
        if (!k || !p) throw std::runtime_error("cannot load the test key");
        key = std::make_shared<const bundle::Key>(std::move(*k));
        pub = std::make_shared<const bundle::Key>(std::move(*p));
    }

    [[nodiscard]] std::unique_ptr<audit::Log> open(std::string side = "receiver", std::int64_t every = 1000) const {
        audit::LogOptions o;
        o.side = std::move(side);
        o.host = "test-host";
        o.key = key;
        o.checkpoint_every = every;
        auto log = audit::Log::open(db, o);
        if (!log) throw std::runtime_error(log.error().message);
        return std::move(*log);
    }

    [[nodiscard]] std::unique_ptr<audit::Reader> reader() const {
        auto r = audit::Reader::open(db);
        if (!r) throw std::runtime_error(r.error().message);
        return std::move(*r);
    }

    /// Runs SQL on the file with its own connection; returns the error text, empty on success.
    [[nodiscard]] std::string raw_sql(const std::string& sql) const {
        sqlite3* h = nullptr;
        sqlite3_open(db.c_str(), &h);
        char* err = nullptr;
        int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
        std::string out = rc == SQLITE_OK ? std::string{} : std::string(err != nullptr ? err : "error");
        sqlite3_free(err);
        sqlite3_close(h);
        return out;
    }
};

inline audit::Event event(std::string name, std::string bundle = {}, std::string actor = "system",
                          std::string outcome = "ok", nlohmann::json details = nlohmann::json::object()) {
    audit::Event e;
    e.event = std::move(name);
    e.bundle = std::move(bundle);
    e.actor = std::move(actor);
    e.outcome = std::move(outcome);
    e.details = std::move(details);
    return e;
}

}  // namespace sluice::test
