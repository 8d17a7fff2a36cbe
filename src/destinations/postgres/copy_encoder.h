// CopyEncoder: turns Batches into PostgreSQL binary COPY data.
//
// The stream a COPY ... FROM STDIN (FORMAT binary) expects is Header(), the
// tuples of every batch (Encode), then Trailer(). Each tuple is an int16
// field count, then per field an int32 byte length (-1 for NULL) and the
// value in the type's binary "send" format, all in network byte order.
// How a value is written depends on both the result's type and the target
// column's PostgreSQL type (int32 into bigint, text into jsonb, ...), so
// the encoder is made for one result schema and one set of target types;
// per-column dispatch is decided once per batch, outside the row loop.
//
// Thread-safety: immutable after Make(); Encode() may run on any number of
// threads at once.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "destinations/postgres/pg_types.h"
#include "sluice/batch.h"
#include "sluice/destination.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

class CopyEncoder {
 public:
  /// An encoder for rows shaped like `schema` going to columns whose
  /// PostgreSQL types are named by `target_types` (in schema order, as
  /// format_type() or SQL spells them: "jsonb", "uuid", "varchar[]"). Empty:
  /// the types PgTypeNameFor chooses. SchemaMismatch when a column cannot be
  /// loaded into its target.
  static Result<std::unique_ptr<CopyEncoder>> Make(const Schema& schema,
                                                   const std::vector<std::string>& target_types = {});
  /// Same with already classified targets (as ReadPgTable returns them:
  /// they carry the element OIDs of enum and domain arrays).
  static Result<std::unique_ptr<CopyEncoder>> MakeForTargets(const Schema& schema,
                                                             const std::vector<PgType>& targets);

  ~CopyEncoder();
  CopyEncoder(const CopyEncoder&) = delete;
  CopyEncoder& operator=(const CopyEncoder&) = delete;

  /// Appends the tuples of every row of `batch` to `*out`. Values the
  /// target column cannot hold (a NUL byte in text, a date or timestamp
  /// outside PostgreSQL's range, a number too large for numeric(p,s), text
  /// too long for varchar(n), a malformed UUID) are found before they are
  /// sent. Without `rejected`, the first one fails the call: `*out` is left
  /// as it was and the DataError names the column, the row of the result,
  /// the value and why. With `rejected`, such rows are left out and
  /// appended there, and the call succeeds.
  Status Encode(const Batch& batch, std::string* out, std::vector<RejectedRow>* rejected = nullptr) const;

  /// The DataError for a refused value: column, row of the result, reason.
  static Status RefusedValueError(const RejectedRow& bad);

  /// The binary COPY signature, flags and header extension.
  static std::string Header();
  /// The end-of-data marker (a field count of -1).
  static std::string Trailer();

  struct Column;

 private:
  CopyEncoder() = default;
  static void SetTargetLimits(const PgType& target, Column* col);
  std::vector<Column> columns_;
};

}  // namespace sluice
