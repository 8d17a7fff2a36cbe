// Logical types, fields and schemas shared by every source, transform and
// destination. Values are immutable once built and safe to share between
// threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sluice/status.h"

namespace sluice {

enum class TypeId {
  kBool,
  kInt16,
  kInt32,
  kInt64,
  kFloat32,
  kFloat64,
  kDecimal,
  kString,
  kBinary,
  kDate,
  kTime,
  kTimestamp,    // without time zone, microseconds
  kTimestampTz,  // an instant, microseconds since the Unix epoch in UTC
  kInterval,
  kUuid,
  kJson,
  kList,
};

struct DataType {
  TypeId id = TypeId::kString;
  int precision = 0;  // decimal only
  int scale = 0;      // decimal only
  std::shared_ptr<const DataType> element;  // list only

  static DataType Of(TypeId id) { return DataType{id, 0, 0, nullptr}; }
  static DataType Decimal(int precision, int scale) {
    return DataType{TypeId::kDecimal, precision, scale, nullptr};
  }
  static DataType List(DataType element) {
    return DataType{TypeId::kList, 0, 0, std::make_shared<const DataType>(std::move(element))};
  }
  /// The DuckDB/SQL spelling, e.g. "DECIMAL(12,2)", "VARCHAR[]".
  std::string ToString() const;
  bool operator==(const DataType& other) const;
};

struct Field {
  std::string name;
  DataType type;
  bool nullable = true;
};

class Schema {
 public:
  Schema() = default;
  explicit Schema(std::vector<Field> fields) : fields_(std::move(fields)) {}

  int num_fields() const { return static_cast<int>(fields_.size()); }
  const Field& field(int i) const { return fields_[static_cast<size_t>(i)]; }
  const std::vector<Field>& fields() const { return fields_; }
  /// Index of the field with this exact name, or -1.
  int IndexOf(const std::string& name) const;
  std::string ToString() const;

 private:
  std::vector<Field> fields_;
};

/// Parses a SQL type name as written in configs ("BIGINT", "DECIMAL(12,2)",
/// "TIMESTAMPTZ", "TEXT[]") into a DataType.
Result<DataType> ParseTypeName(const std::string& name);

}  // namespace sluice
