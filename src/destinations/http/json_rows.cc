#include "destinations/http/json_rows.h"

#include <charconv>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include "core/human_format.h"

namespace sluice::destinations {
namespace {

constexpr char kHex[] = "0123456789abcdef";

struct Bytes16 {
  uint8_t b[16];
};

template <typename T>
T Load(const void* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

void AppendInt(int64_t v, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  out->append(buf, r.ptr);
}

void AppendPadded(int64_t v, int width, std::string* out) {
  char buf[24];
  auto r = std::to_chars(buf, buf + sizeof buf, v);
  for (int k = static_cast<int>(r.ptr - buf); k < width; ++k) out->push_back('0');
  out->append(buf, r.ptr);
}

/// "." and the fraction `units` of `digits` digits without trailing zeros;
/// nothing when zero.
void AppendFraction(int64_t units, int digits, std::string* out) {
  if (units == 0) return;
  while (units % 10 == 0) {
    units /= 10;
    --digits;
  }
  out->push_back('.');
  AppendPadded(units, digits, out);
}

void AppendDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  out->append(buf, r.ptr);
}

void AppendFloat(float f, std::string* out) {
  if (!std::isfinite(f)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, f);
  out->append(buf, r.ptr);
}

// Proleptic Gregorian civil date of `days` since 1970-01-01.
void AppendDate(int64_t days, std::string* out) {
  const auto [y, m, d] = CivilFromDays(days);
  if (y < 0) {
    out->push_back('-');
    AppendPadded(-y, 4, out);
  } else {
    if (y > 9999) out->push_back('+');
    AppendPadded(y, 4, out);
  }
  out->push_back('-');
  AppendPadded(m, 2, out);
  out->push_back('-');
  AppendPadded(d, 2, out);
}

/// "HH:MM:SS[.ffffff]" of microseconds since midnight (24:00:00 allowed).
void AppendTimeOfDay(int64_t micros, std::string* out) {
  int64_t seconds = micros / 1000000;
  AppendPadded(seconds / 3600, 2, out);
  out->push_back(':');
  AppendPadded(seconds / 60 % 60, 2, out);
  out->push_back(':');
  AppendPadded(seconds % 60, 2, out);
  AppendFraction(micros % 1000000, 6, out);
}

void AppendTimestamp(int64_t micros, bool utc, std::string* out) {
  if (micros == INT64_MAX || micros <= -INT64_MAX) {
    out->append(micros > 0 ? "\"infinity\"" : "\"-infinity\"");
    return;
  }
  constexpr int64_t kDay = 86400000000LL;
  int64_t days = micros / kDay;
  int64_t rest = micros % kDay;
  if (rest < 0) {
    rest += kDay;
    --days;
  }
  out->push_back('"');
  AppendDate(days, out);
  out->push_back('T');
  AppendTimeOfDay(rest, out);
  if (utc) out->push_back('Z');
  out->push_back('"');
}

void AppendInterval(int32_t months, int32_t days, int64_t nanos, std::string* out) {
  out->append("\"P");
  size_t start = out->size();
  if (months / 12 != 0) {
    AppendInt(months / 12, out);
    out->push_back('Y');
  }
  if (months % 12 != 0) {
    AppendInt(months % 12, out);
    out->push_back('M');
  }
  if (days != 0) {
    AppendInt(days, out);
    out->push_back('D');
  }
  if (nanos != 0) {
    out->push_back('T');
    constexpr int64_t kSecond = 1000000000LL;
    bool negative = nanos < 0;
    // Magnitudes, so that INT64_MIN and mixed signs print correctly.
    uint64_t mag = negative ? 0 - static_cast<uint64_t>(nanos) : static_cast<uint64_t>(nanos);
    uint64_t hours = mag / (3600 * kSecond);
    uint64_t minutes = mag / (60 * kSecond) % 60;
    uint64_t seconds = mag / kSecond % 60;
    uint64_t fraction = mag % kSecond;
    auto part = [&](uint64_t v, char unit) {
      if (negative) out->push_back('-');
      out->append(std::to_string(v));
      if (unit == 'S') AppendFraction(static_cast<int64_t>(fraction), 9, out);
      out->push_back(unit);
    };
    if (hours != 0) part(hours, 'H');
    if (minutes != 0) part(minutes, 'M');
    if (seconds != 0 || fraction != 0) part(seconds, 'S');
  }
  if (out->size() == start) out->append("T0S");
  out->push_back('"');
}

void AppendUuid(const uint8_t* v, std::string* out) {
  out->push_back('"');
  for (int k = 0; k < 16; ++k) {
    if (k == 4 || k == 6 || k == 8 || k == 10) out->push_back('-');
    out->push_back(kHex[v[k] >> 4]);
    out->push_back(kHex[v[k] & 15]);
  }
  out->push_back('"');
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/// A UUID held as text: canonical when it is one (any case, with or without
/// hyphens or braces), otherwise the text as it is.
void AppendUuidText(std::string_view s, std::string* out) {
  std::string_view t = s;
  if (t.size() >= 2 && t.front() == '{' && t.back() == '}') t = t.substr(1, t.size() - 2);
  bool hyphens = t.size() == 36;
  uint8_t bytes[16];
  bool ok = hyphens || t.size() == 32;
  if (ok && hyphens) ok = t[8] == '-' && t[13] == '-' && t[18] == '-' && t[23] == '-';
  for (size_t pos = 0, k = 0; ok && k < 16; ++k) {
    if (hyphens && (pos == 8 || pos == 13 || pos == 18 || pos == 23)) ++pos;
    int hi = HexDigit(t[pos]), lo = HexDigit(t[pos + 1]);
    ok = hi >= 0 && lo >= 0;
    bytes[k] = static_cast<uint8_t>(hi * 16 + lo);
    pos += 2;
  }
  if (ok) {
    AppendUuid(bytes, out);
  } else {
    AppendJsonString(s, out);
  }
}

void AppendJsonText(std::string_view text, std::string* out) {
  if (!nlohmann::json::accept(text)) {
    AppendJsonString(text, out);
    return;
  }
  // Valid JSON holds raw line breaks only as whitespace between tokens.
  size_t start = out->size();
  out->append(text);
  for (size_t i = start; i < out->size(); ++i) {
    char& c = (*out)[i];
    if (c == '\n' || c == '\r') c = ' ';
  }
}

int DecimalScale(const char* format) {
  // "d:precision,scale[,bits]"
  const char* comma = std::strchr(format, ',');
  return comma ? std::atoi(comma + 1) : 0;
}

bool IsVarFormat(std::string_view f) {
  return f == "u" || f == "U" || f == "vu" || f == "z" || f == "Z" || f == "vz";
}

bool IsTextFormat(std::string_view f) { return f == "u" || f == "U" || f == "vu"; }

Status CheckColumn(const ColumnView& v, const std::string& name) {
  std::string_view f = v.format();
  bool ok = false;
  switch (v.type().id) {
    case TypeId::kBool:
      ok = f == "b";
      break;
    case TypeId::kInt16:
    case TypeId::kInt32:
    case TypeId::kInt64:
      ok = f == "s" || f == "i" || f == "l";
      break;
    case TypeId::kFloat32:
    case TypeId::kFloat64:
      ok = f == "f" || f == "g";
      break;
    case TypeId::kDecimal: {
      int precision = 0, scale = 0, bits = 128;
      ok = f.starts_with("d:") && std::sscanf(v.format(), "d:%d,%d,%d", &precision, &scale, &bits) >= 2 &&
           bits == 128;
      break;
    }
    case TypeId::kString:
    case TypeId::kBinary:
    case TypeId::kJson:
      ok = IsVarFormat(f);
      break;
    case TypeId::kUuid:
      ok = f == "w:16" || IsTextFormat(f);
      break;
    case TypeId::kDate:
      ok = f == "tdD";
      break;
    case TypeId::kTime:
      ok = f == "ttu";
      break;
    case TypeId::kTimestamp:
    case TypeId::kTimestampTz:
      ok = f.starts_with("tsu:");
      break;
    case TypeId::kInterval:
      ok = f == "tin";
      break;
    case TypeId::kList:
      if (f != "+l" && f != "+L") break;
      return CheckColumn(v.ListChild(), name);
  }
  if (ok) return Status::OK();
  return Status::Internal("column '" + name + "': the Arrow layout '" + std::string(f) + "' of a " +
                          v.type().ToString() + " value cannot be written as JSON");
}

void AppendValue(const ColumnView& v, int64_t i, DecimalFormat decimals, std::string* out) {
  if (v.IsNull(i)) {
    out->append("null");
    return;
  }
  const char* f = v.format();
  switch (v.type().id) {
    case TypeId::kBool:
      out->append(v.BoolAt(i) ? "true" : "false");
      return;
    case TypeId::kInt16:
    case TypeId::kInt32:
    case TypeId::kInt64:
      AppendInt(f[0] == 's'   ? v.Values<int16_t>()[i]
                : f[0] == 'i' ? v.Values<int32_t>()[i]
                              : v.Values<int64_t>()[i],
                out);
      return;
    case TypeId::kFloat32:
    case TypeId::kFloat64:
      if (f[0] == 'f') {
        AppendFloat(v.Values<float>()[i], out);
      } else {
        AppendDouble(v.Values<double>()[i], out);
      }
      return;
    case TypeId::kDecimal: {
      const auto* p = (v.Values<Bytes16>() + i)->b;
      auto lo = Load<uint64_t>(p);
      auto hi = Load<int64_t>(p + 8);
      auto value =
          static_cast<__int128>((static_cast<unsigned __int128>(static_cast<uint64_t>(hi)) << 64) | lo);
      if (decimals == DecimalFormat::kString) out->push_back('"');
      out->append(DecimalText(value, DecimalScale(f)));
      if (decimals == DecimalFormat::kString) out->push_back('"');
      return;
    }
    case TypeId::kString:
      AppendJsonString(v.BytesAt(i), out);
      return;
    case TypeId::kBinary:
      out->push_back('"');
      out->append(Base64(v.BytesAt(i)));
      out->push_back('"');
      return;
    case TypeId::kJson:
      AppendJsonText(v.BytesAt(i), out);
      return;
    case TypeId::kUuid:
      if (std::strcmp(f, "w:16") == 0) {
        AppendUuid(reinterpret_cast<const uint8_t*>(v.BytesAt(i).data()), out);
      } else {
        AppendUuidText(v.BytesAt(i), out);
      }
      return;
    case TypeId::kDate: {
      int32_t days = v.Values<int32_t>()[i];
      if (days == INT32_MAX || days <= -INT32_MAX) {
        out->append(days > 0 ? "\"infinity\"" : "\"-infinity\"");
        return;
      }
      out->push_back('"');
      AppendDate(days, out);
      out->push_back('"');
      return;
    }
    case TypeId::kTime:
      out->push_back('"');
      AppendTimeOfDay(v.Values<int64_t>()[i], out);
      out->push_back('"');
      return;
    case TypeId::kTimestamp:
    case TypeId::kTimestampTz:
      AppendTimestamp(v.Values<int64_t>()[i], v.type().id == TypeId::kTimestampTz, out);
      return;
    case TypeId::kInterval: {
      const auto* p = (v.Values<Bytes16>() + i)->b;
      AppendInterval(Load<int32_t>(p), Load<int32_t>(p + 4), Load<int64_t>(p + 8), out);
      return;
    }
    case TypeId::kList: {
      auto [begin, end] = v.ListRange(i);
      ColumnView child = v.ListChild();
      out->push_back('[');
      for (int64_t j = begin; j < end; ++j) {
        if (j != begin) out->push_back(',');
        AppendValue(child, j, decimals, out);
      }
      out->push_back(']');
      return;
    }
  }
  out->append("null");
}

}  // namespace

std::string DecimalText(__int128 unscaled, int scale) {
  bool negative = unscaled < 0;
  unsigned __int128 mag =
      negative ? 0 - static_cast<unsigned __int128>(unscaled) : static_cast<unsigned __int128>(unscaled);
  char digits[48];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + static_cast<int>(mag % 10));
    mag /= 10;
  } while (mag != 0);
  std::string out;
  if (negative) out.push_back('-');
  if (scale <= 0) {
    for (int k = n - 1; k >= 0; --k) out.push_back(digits[k]);
    if (n > 1 || digits[0] != '0') out.append(static_cast<size_t>(-scale), '0');
    return out;
  }
  // Integer part: the digits above the scale, or "0".
  if (n <= scale) {
    out.push_back('0');
  } else {
    for (int k = n - 1; k >= scale; --k) out.push_back(digits[k]);
  }
  out.push_back('.');
  for (int k = scale - 1; k >= 0; --k) out.push_back(k < n ? digits[k] : '0');
  return out;
}

std::string Base64(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(kAlphabet[(v >> 6) & 63]);
    out.push_back(kAlphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (rest == 2) v |= uint32_t{p[i + 1]} << 8;
    out.push_back(kAlphabet[v >> 18]);
    out.push_back(kAlphabet[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kAlphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

JsonRowEncoder::JsonRowEncoder(const Schema& schema, DecimalFormat decimals) : decimals_(decimals) {
  for (const Field& field : schema.fields()) {
    std::string key;
    AppendJsonString(field.name, &key);
    key.push_back(':');
    keys_.push_back(std::move(key));
  }
}

Status JsonRowEncoder::CheckLayout(const Batch& batch) const {
  if (batch.num_columns() != static_cast<int>(keys_.size())) {
    return Status::Internal("a batch of " + std::to_string(batch.num_columns()) +
                            " columns for a JSON encoder of " + std::to_string(keys_.size()));
  }
  for (int c = 0; c < batch.num_columns(); ++c) {
    SLUICE_RETURN_IF_ERROR(CheckColumn(batch.column(c), batch.schema().field(c).name));
  }
  return Status::OK();
}

void JsonRowEncoder::AppendRow(const Batch& batch, int64_t row, std::string* out) const {
  out->push_back('{');
  for (int c = 0; c < static_cast<int>(keys_.size()); ++c) {
    if (c != 0) out->push_back(',');
    out->append(keys_[static_cast<size_t>(c)]);
    AppendValue(batch.column(c), row, decimals_, out);
  }
  out->push_back('}');
}

}  // namespace sluice::destinations
