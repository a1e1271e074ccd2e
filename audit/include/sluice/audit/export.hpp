#pragma once
// Audit records as text, for terminals, scripts and SIEMs. Pure formatting:
// no clock, no I/O beyond the stream it is given.
//
//   Record ─► table    aligned columns for a terminal (control characters shown as '?')
//          ─► json     one JSON array, one compact Record::to_json() object per line
//          ─► jsonl    one compact Record::to_json() object per line
//          ─► csv      RFC 4180, CRLF; header seq,time,host,side,bundle,channel,event,actor,
//                      outcome,details,prev_hash,hash,upstream; spreadsheet formulas neutralised
//          ─► cef      ArcSight CEF:0|Sluice|sluice|<version>|<event>|<name>|<severity>|<extensions>
//          ─► syslog   RFC 5424: <PRI>1 TIME HOST sluice-<side> - <event> [sluice@32473 …] <details>
//
// CSV keeps every field of the hashed record (details byte for byte), so the
// chain can be recomputed from an export; see csv_row() for the one reversible
// change made against formula injection.

#include <cstdint>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

#include "sluice/audit/log.hpp"
#include "sluice/core/result.hpp"

namespace sluice::audit {

enum class Format { table, json, jsonl, csv, cef, syslog };

/// "table", "json", "jsonl", "csv", "cef", "syslog"; anything else fails naming the value.
[[nodiscard]] Result<Format> parse_format(std::string_view name);
[[nodiscard]] std::string_view to_string(Format format);

/// Writes records in one format, batch after batch (pages of an export), so
/// the whole log never has to be in memory. The CSV header and the JSON
/// array's brackets are written once; table columns are aligned per batch.
class RecordWriter {
public:
    /// `header`: the CSV header line and the table's column titles.
    RecordWriter(std::ostream& out, Format format, bool header = true);
    /// Calls finish().
    ~RecordWriter();
    RecordWriter(const RecordWriter&) = delete;
    RecordWriter& operator=(const RecordWriter&) = delete;

    void write(std::span<const Record> records);
    /// Ends the output (closes the JSON array, even when empty); later calls do nothing.
    void finish();
    [[nodiscard]] std::uint64_t written() const { return written_; }

private:
    std::ostream& out_;
    Format format_;
    bool header_;
    bool started_ = false;
    bool finished_ = false;
    std::uint64_t written_ = 0;
};

/// All of `records` in one format (a RecordWriter written once and finished).
void write_records(std::ostream& out, Format format, std::span<const Record> records, bool header = true);

/// "seq,time,host,side,bundle,channel,event,actor,outcome,details,prev_hash,hash,upstream"
[[nodiscard]] std::string_view csv_header();
/// One RFC 4180 row, without the line break. A field containing , " CR or LF is
/// quoted, its quotes doubled. Against formula injection in spreadsheets, a
/// field starting with = + - @ TAB CR — or with ' itself — gets one leading ',
/// so removing one leading ' from every field that has one gives the stored
/// value back exactly (and spreadsheets display the stored value as text).
/// `upstream` is "true" or "false".
[[nodiscard]] std::string csv_row(const Record& record);

/// One ArcSight CEF:0 line (no line break). Header fields escape \ and |;
/// extension values escape \ = and line breaks (\n, \r). Extensions: rt (epoch
/// ms), dvchost, suser, outcome, cs1 bundle, cs2 channel, cn1 seq, cs3 hash,
/// cs4 side, cs5 prev_hash, cs6 upstream, msg (details JSON).
[[nodiscard]] std::string cef_line(const Record& record);
/// CEF severity 0–10 for an outcome: found 8, error 7, refused/rejected/fail 6, held 5, else 3.
[[nodiscard]] int cef_severity(std::string_view outcome);

/// One RFC 5424 line (no line break); facility 13 (log audit).
[[nodiscard]] std::string syslog_line(const Record& record);
/// Syslog severity: 3 (err) for error; 4 (warning) for refused, rejected,
/// fail, found, held; 5 (notice) otherwise.
[[nodiscard]] int syslog_severity(std::string_view outcome);

/// `text` fit for a terminal: invalid UTF-8, control characters (C0, DEL, C1),
/// line and paragraph separators and bidirectional overrides each become '?',
/// so a hostile value cannot move the cursor, recolour or reorder the screen.
[[nodiscard]] std::string terminal_safe(std::string_view text);

/// A one-line summary of a details object (JSON text): `key=value` for its
/// scalar members (and short arrays of scalars), the telling ones first
/// (reason, error, summary, rule, detail, scanner, version, …), cut to
/// `max_chars` characters with "…". Not JSON: the text itself when it is not an object.
[[nodiscard]] std::string details_summary(std::string_view details, std::size_t max_chars = 80);

/// Milliseconds since the epoch of an RFC 3339 time ("2026-11-29T21:55:01.123Z",
/// fraction and ±HH:MM offset optional); nullopt when it is not one.
[[nodiscard]] std::optional<std::int64_t> epoch_millis(std::string_view rfc3339);

}  // namespace sluice::audit
