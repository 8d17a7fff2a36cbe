// PostgreSQL column types as the postgres destination sees them: the type
// CREATE TABLE uses for a sluice type, how an existing column's type is
// classified, and which result types may be loaded (in binary COPY format)
// into which column types.
//
// Everything here is a plain function or value type; ReadPgTableColumns
// uses the connection it is given, from the caller's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

class PgConnection;

/// The PostgreSQL base types the COPY encoder can write.
enum class PgKind {
  kOther,  // anything else: not loadable
  kBool,
  kInt2,
  kInt4,
  kInt8,
  kFloat4,
  kFloat8,
  kNumeric,
  kText,
  kVarchar,
  kChar,  // bpchar
  kBytea,
  kDate,
  kTime,  // without time zone
  kTimestamp,
  kTimestampTz,
  kInterval,
  kUuid,
  kJson,
  kJsonb,
  kEnum,  // a user enum: its binary form is its label's text
};

/// A column type: its kind (for arrays, the element's kind), whether it is
/// a one-dimensional array, and for arrays the element type OID that the
/// server checks in binary array input.
struct PgType {
  PgKind kind = PgKind::kOther;
  bool array = false;
  uint32_t element_oid = 0;
  std::string name;  // as declared, for messages: "character varying(20)[]"
};

/// Classifies a type name as format_type() or SQL spells it: "numeric(12,2)",
/// "varchar[]", "timestamp(3) with time zone", "int8", "jsonb". Domains and
/// enums cannot be recognised by name (they come out as kOther); the catalog
/// reader resolves those.
PgType ParsePgTypeName(std::string_view name);

/// The built-in OID of a kind (16 for kBool ...); 0 for kOther and kEnum.
uint32_t PgOidOf(PgKind kind);

/// The column type CREATE TABLE uses for a sluice type: "bigint",
/// "numeric(12,2)", "timestamp with time zone", "text[]"...
Result<std::string> PgTypeNameFor(const DataType& type);

/// The PgType of the column CREATE TABLE would make for `type`.
Result<PgType> PgTypeFor(const DataType& type);

/// Whether result values of type `from` can be loaded into a column of
/// type `to`: same type, integer widening, integers and decimals into
/// numeric, text into text-like, json and enum columns, json into text.
/// timestamp and timestamptz are never interchangeable.
bool CanLoad(const DataType& from, const PgType& to);

/// One column of an existing table.
struct PgColumn {
  std::string name;
  PgType type;  // domains resolved to their base type
  bool not_null = false;
  bool has_default = false;  // a default, identity or generated value
  bool generated = false;    // GENERATED ALWAYS AS (...) STORED: not writable
};

/// An existing table: its OID, relkind and columns.
struct PgTable {
  uint32_t oid = 0;
  char relkind = 'r';
  std::vector<PgColumn> columns;
};

/// Reads the table named by `quoted_name` ("\"public\".\"sales\""), or
/// nullopt when there is no such relation. Uses parameters, never pastes
/// the name into SQL.
Result<std::optional<PgTable>> ReadPgTable(PgConnection& conn, const std::string& quoted_name);

/// Matches every field of `schema` to the table column of the same name
/// and returns their types in schema order. SchemaMismatch, naming the
/// table (`table_display`), the column and both types, when a field has no
/// column or cannot be loaded into it, when it names a generated column,
/// or when a NOT NULL column without a default is missing from the result.
Result<std::vector<PgType>> MatchPgColumns(const std::string& table_display, const PgTable& table,
                                           const Schema& schema);

}  // namespace sluice
