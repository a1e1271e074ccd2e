#pragma once
// A thin RAII layer over the SQLite C API for the audit module: a connection,
// prepared statements with bound parameters, and errors as Result.

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/core/result.hpp"

namespace sluice::audit::sql {

class Db;

class Statement {
public:
    Statement() = default;
    Statement(sqlite3_stmt* stmt, sqlite3* db) : stmt_(stmt), db_(db) {}

    Statement& bind(int index, std::string_view text);
    Statement& bind(int index, std::int64_t value);
    /// SQLITE_ROW → true, SQLITE_DONE → false, anything else → error.
    Result<bool> step();
    /// Steps to completion (a statement without rows).
    Result<void> run();
    void reset();

    [[nodiscard]] std::int64_t integer(int column) const;
    [[nodiscard]] std::string text(int column) const;
    [[nodiscard]] bool is_null(int column) const;

private:
    struct Finalize { void operator()(sqlite3_stmt* s) const { sqlite3_finalize(s); } };
    std::unique_ptr<sqlite3_stmt, Finalize> stmt_;
    sqlite3* db_ = nullptr;
};

class Db {
public:
    /// Opens `path`; read_only opens an existing file only (no creation, no writes).
    static Result<Db> open(const std::filesystem::path& path, bool read_only);

    Result<Statement> prepare(std::string_view sql);
    /// Runs one or more statements without results.
    Result<void> exec(const std::string& sql);
    /// The single integer the query returns (e.g. SELECT count(*)).
    Result<std::int64_t> scalar(std::string_view sql);
    [[nodiscard]] sqlite3* get() const { return db_.get(); }
    [[nodiscard]] std::string message() const;

private:
    struct Close { void operator()(sqlite3* db) const { sqlite3_close_v2(db); } };
    std::unique_ptr<sqlite3, Close> db_;
    std::filesystem::path path_;
};

}  // namespace sluice::audit::sql
