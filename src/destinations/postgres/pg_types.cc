#include "destinations/postgres/pg_types.h"

#include <cctype>
#include <unordered_map>

#include "io/postgres/pg_connection.h"

namespace sluice {
namespace {

std::string Normalize(std::string_view name, bool* array) {
  std::string s;
  s.reserve(name.size());
  for (char c : name) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto trim = [](std::string& t) {
    while (!t.empty() && std::isspace(static_cast<unsigned char>(t.back()))) t.pop_back();
    size_t b = 0;
    while (b < t.size() && std::isspace(static_cast<unsigned char>(t[b]))) ++b;
    t.erase(0, b);
  };
  trim(s);
  *array = false;
  while (!s.empty() && s.back() == ']') {
    size_t open = s.rfind('[');
    if (open == std::string::npos) break;
    s.erase(open);
    trim(s);
    *array = true;
  }
  // Drop type modifiers: "numeric(12,2)", "time(3) with time zone".
  std::string out;
  int depth = 0;
  for (char c : s) {
    if (c == '(') {
      ++depth;
    } else if (c == ')') {
      if (depth > 0) --depth;
    } else if (depth == 0) {
      if (std::isspace(static_cast<unsigned char>(c))) {
        if (!out.empty() && out.back() != ' ') out += ' ';
      } else {
        out += c;
      }
    }
  }
  trim(out);
  if (out.starts_with("pg_catalog.")) out.erase(0, 11);
  return out;
}

PgKind KindOfName(const std::string& n) {
  static const std::unordered_map<std::string, PgKind> kNames = {
      {"boolean", PgKind::kBool},
      {"bool", PgKind::kBool},
      {"smallint", PgKind::kInt2},
      {"int2", PgKind::kInt2},
      {"integer", PgKind::kInt4},
      {"int", PgKind::kInt4},
      {"int4", PgKind::kInt4},
      {"bigint", PgKind::kInt8},
      {"int8", PgKind::kInt8},
      {"real", PgKind::kFloat4},
      {"float4", PgKind::kFloat4},
      {"double precision", PgKind::kFloat8},
      {"float8", PgKind::kFloat8},
      {"numeric", PgKind::kNumeric},
      {"decimal", PgKind::kNumeric},
      {"text", PgKind::kText},
      {"character varying", PgKind::kVarchar},
      {"varchar", PgKind::kVarchar},
      {"character", PgKind::kChar},
      {"char", PgKind::kChar},
      {"bpchar", PgKind::kChar},
      {"bytea", PgKind::kBytea},
      {"date", PgKind::kDate},
      {"time", PgKind::kTime},
      {"time without time zone", PgKind::kTime},
      {"timestamp", PgKind::kTimestamp},
      {"timestamp without time zone", PgKind::kTimestamp},
      {"timestamptz", PgKind::kTimestampTz},
      {"timestamp with time zone", PgKind::kTimestampTz},
      {"interval", PgKind::kInterval},
      {"uuid", PgKind::kUuid},
      {"json", PgKind::kJson},
      {"jsonb", PgKind::kJsonb},
  };
  auto it = kNames.find(n);
  if (it != kNames.end()) return it->second;
  // "interval year to month", "interval day to second"...
  if (n.starts_with("interval ")) return PgKind::kInterval;
  return PgKind::kOther;
}

bool OneOf(PgKind k, std::initializer_list<PgKind> kinds) {
  for (PgKind x : kinds) {
    if (k == x) return true;
  }
  return false;
}

bool CanLoadScalar(const DataType& from, PgKind to) {
  switch (from.id) {
    case TypeId::kBool:
      return to == PgKind::kBool;
    case TypeId::kInt16:
      return OneOf(to, {PgKind::kInt2, PgKind::kInt4, PgKind::kInt8, PgKind::kNumeric});
    case TypeId::kInt32:
      return OneOf(to, {PgKind::kInt4, PgKind::kInt8, PgKind::kNumeric});
    case TypeId::kInt64:
      return OneOf(to, {PgKind::kInt8, PgKind::kNumeric});
    case TypeId::kFloat32:
      return OneOf(to, {PgKind::kFloat4, PgKind::kFloat8});
    case TypeId::kFloat64:
      return to == PgKind::kFloat8;
    case TypeId::kDecimal:
      return to == PgKind::kNumeric && from.scale >= 0;
    case TypeId::kString:
      return OneOf(to, {PgKind::kText, PgKind::kVarchar, PgKind::kChar, PgKind::kJson, PgKind::kJsonb,
                        PgKind::kEnum, PgKind::kUuid});
    case TypeId::kJson:
      return OneOf(to, {PgKind::kJson, PgKind::kJsonb, PgKind::kText, PgKind::kVarchar});
    case TypeId::kBinary:
      return to == PgKind::kBytea;
    case TypeId::kDate:
      return to == PgKind::kDate;
    case TypeId::kTime:
      return to == PgKind::kTime;
    case TypeId::kTimestamp:
      return to == PgKind::kTimestamp;
    case TypeId::kTimestampTz:
      return to == PgKind::kTimestampTz;
    case TypeId::kInterval:
      return to == PgKind::kInterval;
    case TypeId::kUuid:
      return OneOf(to, {PgKind::kUuid, PgKind::kText, PgKind::kVarchar});
    case TypeId::kList:
      return false;
  }
  return false;
}

std::string Quoted(const std::string& name) { return "\"" + name + "\""; }

}  // namespace

PgType ParsePgTypeName(std::string_view name) {
  PgType t;
  t.name = std::string(name);
  std::string n = Normalize(name, &t.array);
  t.kind = KindOfName(n);
  if (t.array) t.element_oid = PgOidOf(t.kind);
  return t;
}

uint32_t PgOidOf(PgKind kind) {
  switch (kind) {
    case PgKind::kBool:
      return 16;
    case PgKind::kInt2:
      return 21;
    case PgKind::kInt4:
      return 23;
    case PgKind::kInt8:
      return 20;
    case PgKind::kFloat4:
      return 700;
    case PgKind::kFloat8:
      return 701;
    case PgKind::kNumeric:
      return 1700;
    case PgKind::kText:
      return 25;
    case PgKind::kVarchar:
      return 1043;
    case PgKind::kChar:
      return 1042;
    case PgKind::kBytea:
      return 17;
    case PgKind::kDate:
      return 1082;
    case PgKind::kTime:
      return 1083;
    case PgKind::kTimestamp:
      return 1114;
    case PgKind::kTimestampTz:
      return 1184;
    case PgKind::kInterval:
      return 1186;
    case PgKind::kUuid:
      return 2950;
    case PgKind::kJson:
      return 114;
    case PgKind::kJsonb:
      return 3802;
    case PgKind::kEnum:
    case PgKind::kOther:
      return 0;
  }
  return 0;
}

Result<std::string> PgTypeNameFor(const DataType& type) {
  switch (type.id) {
    case TypeId::kBool:
      return std::string("boolean");
    case TypeId::kInt16:
      return std::string("smallint");
    case TypeId::kInt32:
      return std::string("integer");
    case TypeId::kInt64:
      return std::string("bigint");
    case TypeId::kFloat32:
      return std::string("real");
    case TypeId::kFloat64:
      return std::string("double precision");
    case TypeId::kDecimal:
      if (type.scale < 0) {
        return Status::InvalidArgument("decimal with negative scale " + type.ToString() +
                                       " cannot be stored in PostgreSQL");
      }
      if (type.precision <= 0) return std::string("numeric");
      return "numeric(" + std::to_string(type.precision) + "," + std::to_string(type.scale) + ")";
    case TypeId::kString:
      return std::string("text");
    case TypeId::kBinary:
      return std::string("bytea");
    case TypeId::kDate:
      return std::string("date");
    case TypeId::kTime:
      return std::string("time");
    case TypeId::kTimestamp:
      return std::string("timestamp");
    case TypeId::kTimestampTz:
      return std::string("timestamptz");
    case TypeId::kInterval:
      return std::string("interval");
    case TypeId::kUuid:
      return std::string("uuid");
    case TypeId::kJson:
      return std::string("jsonb");
    case TypeId::kList: {
      DataType element = type.element ? *type.element : DataType::Of(TypeId::kString);
      if (element.id == TypeId::kList) {
        return Status::InvalidArgument("nested list " + type.ToString() +
                                       " cannot be stored in a PostgreSQL array column");
      }
      SLUICE_ASSIGN_OR_RETURN(std::string element_name, PgTypeNameFor(element));
      return element_name + "[]";
    }
  }
  return Status::Internal("unknown type");
}

Result<PgType> PgTypeFor(const DataType& type) {
  SLUICE_ASSIGN_OR_RETURN(std::string name, PgTypeNameFor(type));
  return ParsePgTypeName(name);
}

bool CanLoad(const DataType& from, const PgType& to) {
  if (from.id == TypeId::kList) {
    if (!to.array) return false;
    DataType element = from.element ? *from.element : DataType::Of(TypeId::kString);
    if (element.id == TypeId::kList) return false;
    // Enum arrays and the like need the element OID from the catalog.
    if (to.element_oid == 0) return false;
    return CanLoadScalar(element, to.kind);
  }
  return !to.array && CanLoadScalar(from, to.kind);
}

Result<std::optional<PgTable>> ReadPgTable(PgConnection& conn, const std::string& quoted_name) {
  SLUICE_ASSIGN_OR_RETURN(PgResultRows rel, conn.Query("SELECT c.oid, c.relkind FROM pg_catalog.pg_class c "
                                                       "WHERE c.oid = pg_catalog.to_regclass($1)",
                                                       {quoted_name}));
  if (rel.empty()) return std::optional<PgTable>();
  PgTable table;
  table.oid = static_cast<uint32_t>(std::stoul(rel[0][0].value_or("0")));
  table.relkind = rel[0][1].value_or("r").c_str()[0];
  // Domains are resolved to their base type, whose binary input the server
  // uses; arrays carry the element type OID the server checks.
  SLUICE_ASSIGN_OR_RETURN(
      PgResultRows cols,
      conn.Query("SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), "
                 "  pg_catalog.format_type(bt.oid, NULL), bt.typtype, "
                 "  et.oid IS NOT NULL, et.oid, pg_catalog.format_type(ebt.oid, NULL), ebt.typtype, "
                 "  a.attnotnull, a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> '', "
                 "  a.attgenerated <> '' "
                 "FROM pg_catalog.pg_attribute a "
                 "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
                 "JOIN pg_catalog.pg_type bt "
                 "  ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END "
                 "LEFT JOIN pg_catalog.pg_type et ON bt.typcategory = 'A' AND et.oid = bt.typelem "
                 "LEFT JOIN pg_catalog.pg_type ebt "
                 "  ON ebt.oid = CASE WHEN et.typtype = 'd' THEN et.typbasetype ELSE et.oid END "
                 "WHERE a.attrelid = $1::pg_catalog.oid AND a.attnum > 0 AND NOT a.attisdropped "
                 "ORDER BY a.attnum",
                 {std::to_string(table.oid)}));
  for (const auto& row : cols) {
    auto text = [&](size_t i) { return row[i].value_or(""); };
    PgColumn col;
    col.name = text(0);
    bool is_array = text(4) == "t";
    if (is_array) {
      col.type = ParsePgTypeName(text(6));
      col.type.kind = text(7) == "e" ? PgKind::kEnum : col.type.kind;
      col.type.array = true;
      col.type.element_oid = static_cast<uint32_t>(std::stoul(text(5).empty() ? "0" : text(5)));
    } else {
      col.type = ParsePgTypeName(text(2));
      if (text(3) == "e") col.type.kind = PgKind::kEnum;
    }
    col.type.name = text(1);
    col.not_null = text(8) == "t";
    col.has_default = text(9) == "t";
    col.generated = text(10) == "t";
    table.columns.push_back(std::move(col));
  }
  return std::optional<PgTable>(std::move(table));
}

Result<std::vector<PgType>> MatchPgColumns(const std::string& table_display, const PgTable& table,
                                           const Schema& schema) {
  std::unordered_map<std::string, const PgColumn*> by_name;
  for (const auto& col : table.columns) by_name.emplace(col.name, &col);
  std::vector<PgType> out;
  out.reserve(static_cast<size_t>(schema.num_fields()));
  for (const auto& field : schema.fields()) {
    auto it = by_name.find(field.name);
    if (it == by_name.end()) {
      std::string names;
      for (size_t i = 0; i < table.columns.size() && i < 30; ++i) {
        names += (i ? ", " : "") + table.columns[i].name;
      }
      if (table.columns.size() > 30) names += ", ...";
      return Status::SchemaMismatch("table " + table_display + ": the table has no column " +
                                    Quoted(field.name) + " (the result's column " + Quoted(field.name) +
                                    " is " + field.type.ToString() + "); its columns are: " + names);
    }
    const PgColumn& col = *it->second;
    if (col.generated) {
      return Status::SchemaMismatch("table " + table_display + ": column " + Quoted(field.name) +
                                    " is a generated column and cannot be loaded; drop it from the "
                                    "result");
    }
    if (!CanLoad(field.type, col.type)) {
      return Status::SchemaMismatch("table " + table_display + ": column " + Quoted(field.name) + " is " +
                                    col.type.name + " in the table but " + field.type.ToString() +
                                    " in the result, which cannot be loaded "
                                    "into it; give the column its type in [source] columns (e.g. " +
                                    field.name + " = \"" + col.type.name +
                                    "\") or cast it in [transform] sql" +
                                    (field.type.id == TypeId::kString
                                         ? " (type detection reads text when a column is empty or all NULL)"
                                         : ""));
    }
    out.push_back(col.type);
  }
  for (const auto& col : table.columns) {
    if (col.not_null && !col.has_default && schema.IndexOf(col.name) < 0) {
      return Status::SchemaMismatch("table " + table_display + ": column " + Quoted(col.name) + " (" +
                                    col.type.name +
                                    ") is NOT NULL without a default but the result has no such "
                                    "column");
    }
  }
  return out;
}

}  // namespace sluice
