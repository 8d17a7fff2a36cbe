// JsonRowEncoder: rows of a Batch as JSON objects keyed by column name, for
// HTTP destinations. It walks the Arrow columns directly (no row becomes a
// heap object) and writes each value as:
//
//   bool                 true / false
//   int16/32/64          a JSON number
//   float32/64           the shortest text that reads back to the same
//                        value; NaN and infinities are null
//   decimal(p,s)         decimals = "number": the exact decimal text as a
//                        JSON number, scale kept ("12.50"); "string": the
//                        same text as a JSON string
//   string               a JSON string; control characters escaped
//                        (\n \r \t, others \u00XX), invalid UTF-8 replaced
//                        by U+FFFD
//   binary               base64 (RFC 4648, padded) in a string
//   date                 "2024-01-02" (years beyond 0000..9999 as "+12345-"
//                        or "-0001-", astronomical numbering)
//   time                 "03:04:05.123456"
//   timestamp            "2024-01-02T03:04:05.123456"
//   timestamptz          "2024-01-02T03:04:05.123456Z" (UTC)
//   interval             an ISO 8601 duration: "P1Y2M3DT4H5M6.5S", "PT0S";
//                        negative parts carry their own sign, as
//                        PostgreSQL's iso_8601 style writes them
//   uuid                 "0f8fad5b-d9cb-469f-a165-70867728950e"
//   json                 embedded as it is (line breaks between tokens
//                        become spaces, so that a row stays on one line);
//                        text that is not valid JSON is sent as a string
//   list                 a JSON array of its elements
//   NULL                 null
//
// Fractions of seconds are written with as many digits as they need and no
// trailing zeros ("05.5", "05.123456"), and not at all when zero ("05"),
// as PostgreSQL and DuckDB print them. DuckDB's infinite dates and
// timestamps are the strings "infinity" and "-infinity".
//
// No row ever contains a raw line break, so rows can be joined as JSON lines.
//
// Thread-safety: immutable after construction; any number of threads may
// encode at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/json_string.h"
#include "sluice/batch.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice::destinations {

enum class DecimalFormat { kNumber, kString };

class JsonRowEncoder {
 public:
  JsonRowEncoder(const Schema& schema, DecimalFormat decimals);

  /// Whether every column of `batch` has an Arrow layout the encoder reads;
  /// otherwise an error naming the column. Call once per batch before
  /// AppendRow.
  Status CheckLayout(const Batch& batch) const;
  /// Appends row `row` of `batch` as one JSON object (no line break).
  void AppendRow(const Batch& batch, int64_t row, std::string* out) const;

 private:
  std::vector<std::string> keys_;  // "\"name\":" per column
  DecimalFormat decimals_;
};

/// The decimal text of unscaled value `unscaled` with `scale` digits after
/// the point: (1250, 2) -> "12.50", (-5, 3) -> "-0.005", (7, -2) -> "700".
std::string DecimalText(__int128 unscaled, int scale);

/// Standard base64 with padding.
std::string Base64(std::string_view bytes);

}  // namespace sluice::destinations
