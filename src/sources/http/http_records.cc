#include "sources/http/http_records.h"

#include <nlohmann/json.hpp>

#include <cctype>
#include <vector>

namespace sluice::sources {
namespace {

using Json = nlohmann::json;

bool IsOwnColumn(std::string_view key) {
  return key == kUrlColumn || key == kStatusColumn || key == kFetchedAtColumn;
}

std::string Prefix(const ResponseMeta& meta) {
  std::string p = "{\"";
  p += kUrlColumn;
  p += "\":";
  p += Json(meta.url).dump(-1, ' ', false, Json::error_handler_t::replace);
  p += ",\"";
  p += kStatusColumn;
  p += "\":" + std::to_string(meta.status) + ",\"";
  p += kFetchedAtColumn;
  p += "\":\"" + meta.fetched_at + "\"";
  return p;
}

Status AppendObject(const Json& object, const std::string& prefix, std::string* out) {
  out->append(prefix);
  for (auto it = object.begin(); it != object.end(); ++it) {
    if (IsOwnColumn(it.key())) continue;  // ours win: they say where the row came from
    out->append(",");
    out->append(Json(it.key()).dump(-1, ' ', false, Json::error_handler_t::replace));
    out->append(":");
    out->append(it.value().dump(-1, ' ', false, Json::error_handler_t::replace));
  }
  out->append("}\n");
  return Status::OK();
}

std::string ParseErrorText(const Json::parse_error& e) {
  // "[json.exception.parse_error.101] parse error at line 1, column 9: ..." -> after the tag
  std::string what = e.what();
  size_t close = what.find("] ");
  return "invalid JSON: " + (close == std::string::npos ? what : what.substr(close + 2));
}

Result<int64_t> AppendJson(std::string_view body, std::string_view records, const std::string& prefix,
                           std::string* out) {
  Json doc;
  try {
    doc = Json::parse(body.begin(), body.end());
  } catch (const Json::parse_error& e) {
    return Status::DataError(ParseErrorText(e));
  }
  const Json* at = &doc;
  if (!records.empty()) {
    size_t start = 0;
    while (start <= records.size()) {
      size_t dot = records.find('.', start);
      if (dot == std::string_view::npos) dot = records.size();
      std::string part(records.substr(start, dot - start));
      if (!at->is_object() || !at->contains(part)) {
        return Status::DataError("records path \"" + std::string(records) +
                                 "\" not found in the response (no \"" + part + "\")");
      }
      at = &(*at)[part];
      start = dot + 1;
    }
  }
  if (at->is_object()) {
    SLUICE_RETURN_IF_ERROR(AppendObject(*at, prefix, out));
    return 1;
  }
  if (at->is_array()) {
    size_t before = out->size();
    int64_t n = 0;
    for (const Json& record : *at) {
      if (!record.is_object()) {
        out->resize(before);
        return Status::DataError("record " + std::to_string(n + 1) + " of the response is " +
                                 std::string(record.type_name()) + ", not an object");
      }
      SLUICE_RETURN_IF_ERROR(AppendObject(record, prefix, out));
      ++n;
    }
    return n;
  }
  if (at->is_null() && !records.empty()) return 0;
  return Status::DataError("the response is " + std::string(at->type_name()) +
                           ", not an object or an array of objects");
}

Result<int64_t> AppendJsonLines(std::string_view body, const std::string& prefix, std::string* out) {
  size_t before = out->size();
  int64_t n = 0;
  int64_t line_number = 0;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t nl = body.find('\n', pos);
    if (nl == std::string_view::npos) nl = body.size();
    std::string_view line = body.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_number;
    bool blank = true;
    for (char c : line) blank = blank && std::isspace(static_cast<unsigned char>(c));
    if (blank) continue;
    Json record;
    try {
      record = Json::parse(line.begin(), line.end());
    } catch (const Json::parse_error& e) {
      out->resize(before);
      return Status::DataError("line " + std::to_string(line_number) + ": " + ParseErrorText(e));
    }
    if (!record.is_object()) {
      out->resize(before);
      return Status::DataError("line " + std::to_string(line_number) + " is " +
                               std::string(record.type_name()) + ", not an object");
    }
    SLUICE_RETURN_IF_ERROR(AppendObject(record, prefix, out));
    ++n;
  }
  return n;
}

/// One CSV record starting at `pos` (RFC 4180 quoting); advances pos.
Result<std::vector<std::string>> NextCsvRecord(std::string_view body, size_t* pos, int64_t line) {
  std::vector<std::string> fields;
  std::string field;
  bool quoted = false;
  bool was_quoted = false;
  size_t i = *pos;
  for (; i < body.size(); ++i) {
    char c = body[i];
    if (quoted) {
      if (c == '"') {
        if (i + 1 < body.size() && body[i + 1] == '"') {
          field.push_back('"');
          ++i;
        } else {
          quoted = false;
        }
      } else {
        field.push_back(c);
      }
      continue;
    }
    if (c == '"' && field.empty()) {
      quoted = true;
      was_quoted = true;
    } else if (c == ',') {
      fields.push_back(std::move(field));
      field.clear();
    } else if (c == '\n') {
      break;
    } else if (c != '\r') {
      field.push_back(c);
    }
  }
  if (quoted) return Status::DataError("line " + std::to_string(line) + ": unterminated quoted field");
  (void)was_quoted;
  fields.push_back(std::move(field));
  *pos = i + 1;
  return fields;
}

bool LooksNumeric(const std::string& s) {
  if (s.empty()) return false;
  size_t i = s[0] == '-' ? 1 : 0;
  if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) return false;
  if (s[i] == '0' && i + 1 < s.size() && std::isdigit(static_cast<unsigned char>(s[i + 1]))) return false;
  bool dot = false, exp = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (std::isdigit(static_cast<unsigned char>(c))) continue;
    if (c == '.' && !dot && !exp) {
      dot = true;
      if (i + 1 >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i + 1]))) return false;
      continue;
    }
    if ((c == 'e' || c == 'E') && !exp) {
      exp = true;
      if (i + 1 < s.size() && (s[i + 1] == '+' || s[i + 1] == '-')) ++i;
      if (i + 1 >= s.size()) return false;
      continue;
    }
    return false;
  }
  return true;
}

Result<int64_t> AppendCsv(std::string_view body, const std::string& prefix, std::string* out) {
  size_t pos = 0;
  int64_t line = 1;
  while (pos < body.size() && (body[pos] == '\n' || body[pos] == '\r')) ++pos;
  if (pos >= body.size()) return 0;
  SLUICE_ASSIGN_OR_RETURN(auto header, NextCsvRecord(body, &pos, line));
  std::vector<std::string> keys;
  for (const auto& h : header) keys.push_back(Json(h).dump(-1, ' ', false, Json::error_handler_t::replace));
  size_t before = out->size();
  int64_t n = 0;
  while (pos < body.size()) {
    ++line;
    size_t start = pos;
    auto fields = NextCsvRecord(body, &pos, line);
    if (!fields.ok()) {
      out->resize(before);
      return fields.status();
    }
    if (fields->size() == 1 && (*fields)[0].empty() && (pos - start) <= 2) continue;  // a blank line
    if (fields->size() != keys.size()) {
      out->resize(before);
      return Status::DataError("line " + std::to_string(line) + " has " + std::to_string(fields->size()) +
                               " fields, the header " + std::to_string(keys.size()));
    }
    out->append(prefix);
    for (size_t i = 0; i < keys.size(); ++i) {
      if (IsOwnColumn(header[i])) continue;
      out->append(",").append(keys[i]).append(":");
      const std::string& v = (*fields)[i];
      if (v.empty()) {
        out->append("null");
      } else if (LooksNumeric(v)) {
        out->append(v);
      } else {
        out->append(Json(v).dump(-1, ' ', false, Json::error_handler_t::replace));
      }
    }
    out->append("}\n");
    ++n;
  }
  return n;
}

}  // namespace

Result<HttpBodyFormat> ParseHttpBodyFormat(std::string_view name) {
  if (name == "json" || name.empty()) return HttpBodyFormat::kJson;
  if (name == "jsonl" || name == "ndjson") return HttpBodyFormat::kJsonl;
  if (name == "csv") return HttpBodyFormat::kCsv;
  return Status::InvalidArgument("[source] format must be \"json\", \"jsonl\" or \"csv\", not \"" +
                                 std::string(name) + "\"");
}

Result<int64_t> AppendRecordsAsJsonLines(std::string_view body, HttpBodyFormat format,
                                         std::string_view records, const ResponseMeta& meta,
                                         std::string* out) {
  std::string prefix = Prefix(meta);
  switch (format) {
    case HttpBodyFormat::kJson:
      return AppendJson(body, records, prefix, out);
    case HttpBodyFormat::kJsonl:
      return AppendJsonLines(body, prefix, out);
    case HttpBodyFormat::kCsv:
      return AppendCsv(body, prefix, out);
  }
  return Status::Internal("unknown format");
}

}  // namespace sluice::sources
