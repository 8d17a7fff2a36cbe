#include <algorithm>
#include <cctype>
#include <charconv>

#include "sluice/types.h"

namespace sluice {

std::string DataType::ToString() const {
  switch (id) {
    case TypeId::kBool: return "BOOLEAN";
    case TypeId::kInt16: return "SMALLINT";
    case TypeId::kInt32: return "INTEGER";
    case TypeId::kInt64: return "BIGINT";
    case TypeId::kFloat32: return "FLOAT";
    case TypeId::kFloat64: return "DOUBLE";
    case TypeId::kDecimal:
      return "DECIMAL(" + std::to_string(precision) + "," + std::to_string(scale) + ")";
    case TypeId::kString: return "VARCHAR";
    case TypeId::kBinary: return "BLOB";
    case TypeId::kDate: return "DATE";
    case TypeId::kTime: return "TIME";
    case TypeId::kTimestamp: return "TIMESTAMP";
    case TypeId::kTimestampTz: return "TIMESTAMPTZ";
    case TypeId::kInterval: return "INTERVAL";
    case TypeId::kUuid: return "UUID";
    case TypeId::kJson: return "JSON";
    case TypeId::kList: return (element ? element->ToString() : std::string("VARCHAR")) + "[]";
  }
  return "VARCHAR";
}

bool DataType::operator==(const DataType& other) const {
  if (id != other.id) return false;
  if (id == TypeId::kDecimal) return precision == other.precision && scale == other.scale;
  if (id == TypeId::kList) {
    if (!element || !other.element) return element == other.element;
    return *element == *other.element;
  }
  return true;
}

int Schema::IndexOf(const std::string& name) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (fields_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::string Schema::ToString() const {
  std::string out = "(";
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (i) out += ", ";
    out += fields_[i].name + " " + fields_[i].type.ToString();
  }
  return out + ")";
}

namespace {

std::string Trim(std::string s) {
  auto not_space = [](unsigned char c) { return !std::isspace(c); };
  s.erase(s.begin(), std::find_if(s.begin(), s.end(), not_space));
  s.erase(std::find_if(s.rbegin(), s.rend(), not_space).base(), s.end());
  return s;
}

}  // namespace

Result<DataType> ParseTypeName(const std::string& raw) {
  std::string name = Trim(raw);
  std::string upper;
  for (char c : name) upper += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (upper.size() > 2 && upper.ends_with("[]")) {
    SLUICE_ASSIGN_OR_RETURN(DataType element, ParseTypeName(upper.substr(0, upper.size() - 2)));
    return DataType::List(element);
  }
  auto paren = upper.find('(');
  std::string base = Trim(upper.substr(0, paren));
  if (base == "DECIMAL" || base == "NUMERIC") {
    int p = 18, s = 3;
    if (paren != std::string::npos) {
      auto close = upper.find(')', paren);
      if (close == std::string::npos) return Status::InvalidArgument("bad type '" + raw + "'");
      std::string args = upper.substr(paren + 1, close - paren - 1);
      auto comma = args.find(',');
      std::string ps = Trim(args.substr(0, comma));
      std::string ss = comma == std::string::npos ? "0" : Trim(args.substr(comma + 1));
      auto r1 = std::from_chars(ps.data(), ps.data() + ps.size(), p);
      auto r2 = std::from_chars(ss.data(), ss.data() + ss.size(), s);
      if (r1.ec != std::errc() || r2.ec != std::errc() || p < 1 || p > 38 || s < 0 || s > p) {
        return Status::InvalidArgument("bad decimal type '" + raw +
                                       "': precision must be 1..38 and scale 0..precision");
      }
    }
    return DataType::Decimal(p, s);
  }
  if (paren != std::string::npos && (base == "VARCHAR" || base == "CHAR" || base == "BPCHAR")) {
    return DataType::Of(TypeId::kString);
  }
  struct Alias {
    const char* name;
    TypeId id;
  };
  static const Alias kAliases[] = {
      {"BOOLEAN", TypeId::kBool},       {"BOOL", TypeId::kBool},
      {"SMALLINT", TypeId::kInt16},     {"INT2", TypeId::kInt16},
      {"INT16", TypeId::kInt16},        {"TINYINT", TypeId::kInt16},
      {"INTEGER", TypeId::kInt32},      {"INT", TypeId::kInt32},
      {"INT4", TypeId::kInt32},         {"INT32", TypeId::kInt32},
      {"BIGINT", TypeId::kInt64},       {"INT8", TypeId::kInt64},
      {"INT64", TypeId::kInt64},        {"LONG", TypeId::kInt64},
      {"REAL", TypeId::kFloat32},       {"FLOAT4", TypeId::kFloat32},
      {"FLOAT", TypeId::kFloat32},      {"DOUBLE", TypeId::kFloat64},
      {"FLOAT8", TypeId::kFloat64},     {"DOUBLE PRECISION", TypeId::kFloat64},
      {"VARCHAR", TypeId::kString},     {"TEXT", TypeId::kString},
      {"STRING", TypeId::kString},      {"CHAR", TypeId::kString},
      {"BLOB", TypeId::kBinary},        {"BYTEA", TypeId::kBinary},
      {"BINARY", TypeId::kBinary},      {"DATE", TypeId::kDate},
      {"TIME", TypeId::kTime},          {"TIMESTAMP", TypeId::kTimestamp},
      {"DATETIME", TypeId::kTimestamp}, {"TIMESTAMPTZ", TypeId::kTimestampTz},
      {"TIMESTAMP WITH TIME ZONE", TypeId::kTimestampTz},
      {"INTERVAL", TypeId::kInterval},  {"UUID", TypeId::kUuid},
      {"JSON", TypeId::kJson},          {"JSONB", TypeId::kJson},
  };
  for (const auto& alias : kAliases) {
    if (base == alias.name) return DataType::Of(alias.id);
  }
  return Status::InvalidArgument("unknown type '" + raw + "'");
}

}  // namespace sluice
