// Turning HTTP responses into rows: each response (a JSON document, JSON
// lines or CSV) becomes JSON lines, one per record, with the columns
// _url, _status and _fetched_at in front, ready for DuckDB's read_json.
//
// Pure functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/status.h"

namespace sluice::sources {

enum class HttpBodyFormat { kJson, kJsonl, kCsv };

/// "json", "jsonl" (or "ndjson"), "csv"; an error names the key.
Result<HttpBodyFormat> ParseHttpBodyFormat(std::string_view name);

/// The columns every row of an HTTP source has besides the response's fields.
inline constexpr const char* kUrlColumn = "_url";
inline constexpr const char* kStatusColumn = "_status";
inline constexpr const char* kFetchedAtColumn = "_fetched_at";

struct ResponseMeta {
  std::string url;  // as shown in the data: credentials removed
  long status = 200;
  std::string fetched_at;  // ISO 8601, UTC
};

/// Appends one JSON line per record of `body` to `out` and returns how many.
/// json: an object is one record, an array of objects one record each;
/// `records` ("data.items") says where the array or object sits inside a
/// wrapped document. jsonl: one object per non-blank line. csv: a header
/// line, then one record per line (numbers as numbers, empty fields null,
/// the rest as strings). An error (invalid JSON, a record that is not an
/// object, a missing `records` path) leaves `out` as it was.
Result<int64_t> AppendRecordsAsJsonLines(std::string_view body, HttpBodyFormat format,
                                         std::string_view records, const ResponseMeta& meta,
                                         std::string* out);

}  // namespace sluice::sources
