// Batch: a columnar chunk of rows in the Arrow memory layout.
//
// A Batch owns one Arrow struct array (one child per column) received
// through the Arrow C Data Interface, plus the sluice Schema describing it.
// Encoders walk columns through ColumnView without copying. A Batch is
// immutable after construction: any number of threads may read it at once.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/arrow_c.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

/// Read-only view of one Arrow array (a column or a list's child values).
class ColumnView {
 public:
  ColumnView(const ArrowArray* array, const ArrowSchema* schema, const DataType* type)
      : array_(array), schema_(schema), type_(type) {}

  int64_t length() const { return array_->length; }
  const DataType& type() const { return *type_; }
  /// The Arrow format string of the physical layout ("l", "u", "d:12,2"...).
  const char* format() const { return schema_->format; }

  bool IsNull(int64_t i) const {
    const auto* validity = static_cast<const uint8_t*>(array_->buffers[0]);
    if (validity == nullptr || array_->null_count == 0) return false;
    int64_t j = i + array_->offset;
    return (validity[j >> 3] & (1u << (j & 7))) == 0;
  }
  /// Fixed-width values, already adjusted for the array offset.
  template <typename T>
  const T* Values() const {
    return static_cast<const T*>(array_->buffers[1]) + array_->offset;
  }
  bool BoolAt(int64_t i) const {
    const auto* bits = static_cast<const uint8_t*>(array_->buffers[1]);
    int64_t j = i + array_->offset;
    return (bits[j >> 3] & (1u << (j & 7))) != 0;
  }
  /// Variable-length value (utf8, binary; 32- or 64-bit offsets, or views).
  std::string_view BytesAt(int64_t i) const;
  /// Start and end of list element i within the child array.
  std::pair<int64_t, int64_t> ListRange(int64_t i) const;
  ColumnView ListChild() const;

 private:
  const ArrowArray* array_;
  const ArrowSchema* schema_;
  const DataType* type_;
};

/// An Arrow struct schema together with the sluice Schema parsed from it.
struct ImportedSchema {
  ArrowSchema arrow{};
  Schema schema;
  ImportedSchema() = default;
  ImportedSchema(const ImportedSchema&) = delete;
  ImportedSchema& operator=(const ImportedSchema&) = delete;
  ~ImportedSchema();
  /// Takes ownership of `schema` (moved from) and parses its fields. When
  /// `logical` is given, its field types replace the ones read from Arrow
  /// (e.g. a UUID or JSON column that travels as utf8 text).
  static Result<std::shared_ptr<const ImportedSchema>> Make(ArrowSchema* schema,
                                                            const Schema* logical = nullptr);
};

class Batch {
 public:
  /// Takes ownership of `array` (a struct array, one child per column) and
  /// `schema` (its matching struct schema); both are moved from (their
  /// release callbacks are cleared in the caller's structs).
  static Result<std::shared_ptr<Batch>> FromArrow(ArrowArray* array, ArrowSchema* schema);
  /// Same, sharing an already imported schema across many batches.
  static Result<std::shared_ptr<Batch>> FromArrow(ArrowArray* array,
                                                  std::shared_ptr<const ImportedSchema> schema);

  ~Batch();
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  int64_t num_rows() const { return array_.length; }
  int num_columns() const { return schema_->schema.num_fields(); }
  const Schema& schema() const { return schema_->schema; }
  const std::shared_ptr<const ImportedSchema>& imported_schema() const { return schema_; }
  ColumnView column(int i) const;
  /// Bytes held by the batch's buffers (what budgets count).
  int64_t byte_size() const { return byte_size_; }
  /// Position of the batch's first row in the stream it came from (0-based),
  /// so that errors can name "row N of the result"; 0 when unknown.
  int64_t first_row() const { return first_row_; }
  void set_first_row(int64_t row) { first_row_ = row; }

  /// Moves the data out as an Arrow struct array; the batch is empty after.
  Status ExportTo(ArrowArray* out);

 private:
  Batch() = default;
  ArrowArray array_{};
  std::shared_ptr<const ImportedSchema> schema_;
  int64_t byte_size_ = 0;
  int64_t first_row_ = 0;
};

/// Maps one Arrow field (format + extension metadata) to a sluice type.
Result<DataType> DataTypeFromArrow(const ArrowSchema& field);

/// Builds small batches row by row: for tests, fixtures and custom sources.
/// Values are appended column by column; every column must end with the
/// same length before Finish().
class BatchBuilder {
 public:
  explicit BatchBuilder(Schema schema);
  ~BatchBuilder();
  BatchBuilder(const BatchBuilder&) = delete;
  BatchBuilder& operator=(const BatchBuilder&) = delete;

  void AppendNull(int col);
  void AppendBool(int col, bool v);
  /// int16/int32/int64, date (days since epoch), time (micros), timestamps
  /// (micros since epoch) and decimals (unscaled value).
  void AppendInt(int col, int64_t v);
  void AppendDouble(int col, double v);
  /// string, binary, json, uuid (16 raw bytes).
  void AppendBytes(int col, std::string_view v);
  /// interval: months, days, microseconds.
  void AppendInterval(int col, int32_t months, int32_t days, int64_t micros);

  Result<std::shared_ptr<Batch>> Finish();

 private:
  struct Column;
  Schema schema_;
  std::vector<std::unique_ptr<Column>> columns_;
};

}  // namespace sluice
