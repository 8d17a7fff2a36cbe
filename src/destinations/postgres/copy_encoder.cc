#include "destinations/postgres/copy_encoder.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <deque>
#include <optional>
#include "core/human_format.h"

namespace sluice {
namespace {

// How one value is written: decided by the result type and the target
// column type when the encoder is made. The Arrow layout (e.g. UUID as
// text or as 16 bytes, strings with 32- or 64-bit offsets) is resolved per
// batch on top of it.
enum class Enc : uint8_t {
  kBool,
  kInt16,
  kInt16To32,
  kInt16To64,
  kInt16ToNumeric,
  kInt32,
  kInt32To64,
  kInt32ToNumeric,
  kInt64,
  kInt64ToNumeric,
  kFloat32,
  kFloat32To64,
  kFloat64,
  kDecimal,
  kBytes,     // text, varchar, char, json, enum, bytea: the raw bytes
  kJsonb,     // version byte 1, then the JSON text
  kUuid,      // 16 bytes, from either layout
  kUuidText,  // a UUID into a text column
  kDate,
  kTime,
  kTimestamp,  // both with and without time zone: micros since 2000-01-01
  kInterval,
  kList,
};

// Days and microseconds between 1970-01-01 and PostgreSQL's 2000-01-01.
constexpr int32_t kPgEpochDays = 10957;
constexpr int64_t kPgEpochMicros = 946684800000000LL;
// PostgreSQL's ranges (IS_VALID_DATE, IS_VALID_TIMESTAMP), from its epoch:
// 4714-11-24 BC up to 5874897-12-31 for dates, up to 294276-12-31 for
// timestamps. Its receive functions refuse anything outside.
constexpr int32_t kPgMinDate = -2451545;
constexpr int32_t kPgEndDate = 2145031949;  // exclusive
constexpr int64_t kPgMinTimestamp = -211813488000000000LL;
constexpr int64_t kPgEndTimestamp = 9223371331200000000LL;  // exclusive
// Base-10000 groups of a 128-bit magnitude (39 digits) plus one group for
// aligning the scale: at most 11.
constexpr int kMaxNumericGroups = 12;
constexpr int64_t kMaxNumericBytes = 4 + 8 + 2 * kMaxNumericGroups;
constexpr int64_t kArrayHeaderBytes = 20;
constexpr int64_t kRowsPerChunk = 1024;

inline char* Put16(char* p, uint16_t v) {
  v = __builtin_bswap16(v);
  std::memcpy(p, &v, 2);
  return p + 2;
}
inline char* Put32(char* p, uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
  return p + 4;
}
inline char* Put64(char* p, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
  return p + 8;
}
template <typename T>
inline T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

enum class Layout : uint8_t {
  kFixed,      // fixed-width values (including bit-packed bools)
  kOffsets32,  // "u", "z"
  kOffsets64,  // "U", "Z"
  kView,       // "vu", "vz"
  kFixed16,    // "w:16"
  kList,
};

struct Cursor;
using WriteFn = char* (*)(const Cursor&, int64_t, char*);

// One column (or list child) of one batch, with the pointers its writer
// needs. Built once per batch; the row loop only reads it.
struct Cursor {
  explicit Cursor(ColumnView v) : view(v) {}
  ColumnView view;
  WriteFn fn = nullptr;
  Enc enc = Enc::kBytes;
  Layout layout = Layout::kFixed;
  const uint8_t* values = nullptr;   // fixed-width values, array offset applied
  const int32_t* offsets = nullptr;  // kOffsets32, array offset applied
  const char* data = nullptr;        // kOffsets32 character data
  int scale = 0;
  uint32_t element_oid = 0;
  const Cursor* child = nullptr;
  // Limits of the target column, checked before a value is written:
  // magnitudes (in units of the value's own scale) at or above
  // numeric_limit overflow a numeric(p,s) target (0: no limit); text longer
  // than max_chars characters does not fit varchar(n)/char(n) (0: no limit);
  // check_nul: text targets refuse NUL bytes.
  unsigned __int128 numeric_limit = 0;
  int target_precision = 0;
  int target_scale = 0;
  int max_chars = 0;
  bool check_nul = false;
  // Whether any value is NULL. Checked first in the row loop: IsNull itself
  // reloads the array's buffers after every store to the output.
  bool has_nulls = true;
};

bool AnyNull(const ColumnView& view) {
  const int64_t n = view.length();
  for (int64_t i = 0; i < n; ++i) {
    if (view.IsNull(i)) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// numeric

constexpr uint64_t kPow10[] = {1, 10, 100, 1000, 10000};

// `g` holds `n` base-10000 groups, least significant first, of which the
// lowest (scale + 3) / 4 are fractional.
inline char* FinishNumeric(char* p, bool negative, const uint16_t* g, int n, int scale) {
  int start = 0;
  while (start < n && g[start] == 0) ++start;
  if (start == n) {
    p = Put32(p, 8);
    p = Put16(p, 0);  // ndigits
    p = Put16(p, 0);  // weight
    p = Put16(p, 0);  // sign
    return Put16(p, static_cast<uint16_t>(scale));
  }
  int ndigits = n - start;
  int weight = n - 1 - (scale + 3) / 4;
  p = Put32(p, static_cast<uint32_t>(8 + 2 * ndigits));
  p = Put16(p, static_cast<uint16_t>(ndigits));
  p = Put16(p, static_cast<uint16_t>(static_cast<int16_t>(weight)));
  p = Put16(p, negative ? 0x4000 : 0x0000);
  p = Put16(p, static_cast<uint16_t>(scale));
  for (int k = n - 1; k >= start; --k) p = Put16(p, g[k]);
  return p;
}

// The common case: a magnitude that fits 64 bits. R = scale % 4, a
// template argument so that every division is by a constant.
template <int R>
inline char* Numeric64(char* p, bool negative, uint64_t mag, int scale) {
  uint16_t g[kMaxNumericGroups];
  int n = 0;
  if constexpr (R != 0) {
    g[n++] = static_cast<uint16_t>((mag % kPow10[R]) * kPow10[4 - R]);
    mag /= kPow10[R];
  }
  while (mag != 0) {
    g[n++] = static_cast<uint16_t>(mag % 10000);
    mag /= 10000;
  }
  return FinishNumeric(p, negative, g, n, scale);
}

char* Numeric128(char* p, bool negative, unsigned __int128 mag, int scale) {
  uint16_t g[kMaxNumericGroups + 4];
  int n = 0;
  int r = scale & 3;
  if (r != 0) {
    g[n++] = static_cast<uint16_t>(static_cast<uint64_t>(mag % kPow10[r]) * kPow10[4 - r]);
    mag /= kPow10[r];
  }
  // Peel 16 digits at a time with one 128-bit division until the rest fits
  // 64 bits; each chunk is exactly four groups.
  constexpr uint64_t k1e16 = 10000000000000000ULL;
  while (mag > UINT64_MAX) {
    auto chunk = static_cast<uint64_t>(mag % k1e16);
    mag /= k1e16;
    for (int k = 0; k < 4; ++k) {
      g[n++] = static_cast<uint16_t>(chunk % 10000);
      chunk /= 10000;
    }
  }
  auto m = static_cast<uint64_t>(mag);
  while (m != 0) {
    g[n++] = static_cast<uint16_t>(m % 10000);
    m /= 10000;
  }
  return FinishNumeric(p, negative, g, n, scale);
}

template <int R>
char* WriteDecimal(const Cursor& c, int64_t i, char* p) {
  const uint8_t* v = c.values + 16 * i;
  auto lo = Load<uint64_t>(v);
  auto hi = Load<int64_t>(v + 8);
  if (hi == 0) {
    if (__builtin_expect(c.numeric_limit != 0 && lo >= c.numeric_limit, 0)) return nullptr;
    return Numeric64<R>(p, false, lo, c.scale);
  }
  if (hi == -1 && lo != 0) {
    if (__builtin_expect(c.numeric_limit != 0 && (0 - lo) >= c.numeric_limit, 0)) return nullptr;
    return Numeric64<R>(p, true, 0 - lo, c.scale);
  }
  unsigned __int128 u = (static_cast<unsigned __int128>(static_cast<uint64_t>(hi)) << 64) | lo;
  bool negative = hi < 0;
  unsigned __int128 mag = negative ? 0 - u : u;
  if (c.numeric_limit != 0 && mag >= c.numeric_limit) return nullptr;
  return Numeric128(p, negative, mag, c.scale);
}

template <typename From>
char* WriteIntNumeric(const Cursor& c, int64_t i, char* p) {
  int64_t v = Load<From>(c.values + sizeof(From) * i);
  bool negative = v < 0;
  uint64_t mag = negative ? 0 - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  if (__builtin_expect(c.numeric_limit != 0 && mag >= c.numeric_limit, 0)) return nullptr;
  return Numeric64<0>(p, negative, mag, 0);
}

/// 10^n for n <= 38; 0 (no limit) beyond what 128 bits hold.
unsigned __int128 Pow10_128(int n) {
  if (n < 0 || n > 38) return 0;
  unsigned __int128 v = 1;
  for (int k = 0; k < n; ++k) v *= 10;
  return v;
}

/// The smallest magnitude, in units of 10^-value_scale, that PostgreSQL
/// rounds to more than numeric(precision, scale) holds; 0: none can.
unsigned __int128 NumericLimit(int precision, int scale, int value_scale) {
  if (precision <= 0) return 0;
  unsigned __int128 limit = Pow10_128(precision - scale + value_scale);
  if (limit == 0) return 0;
  // A value with more decimals is rounded to the column's scale first.
  if (value_scale > scale) limit -= 5 * Pow10_128(value_scale - scale - 1);
  return limit;
}

// ---------------------------------------------------------------------------
// fixed-width writers

char* WriteBool(const Cursor& c, int64_t i, char* p) {
  p = Put32(p, 1);
  *p = c.view.BoolAt(i) ? 1 : 0;
  return p + 1;
}

template <typename From, typename To>
char* WriteInt(const Cursor& c, int64_t i, char* p) {
  auto v = static_cast<To>(Load<From>(c.values + sizeof(From) * i));
  p = Put32(p, sizeof(To));
  if constexpr (sizeof(To) == 2) {
    return Put16(p, static_cast<uint16_t>(v));
  } else if constexpr (sizeof(To) == 4) {
    return Put32(p, static_cast<uint32_t>(v));
  } else {
    return Put64(p, static_cast<uint64_t>(v));
  }
}

char* WriteFloat32(const Cursor& c, int64_t i, char* p) {
  p = Put32(p, 4);
  return Put32(p, Load<uint32_t>(c.values + 4 * i));
}

char* WriteFloat32To64(const Cursor& c, int64_t i, char* p) {
  double d = Load<float>(c.values + 4 * i);
  uint64_t bits;
  std::memcpy(&bits, &d, 8);
  p = Put32(p, 8);
  return Put64(p, bits);
}

char* WriteFloat64(const Cursor& c, int64_t i, char* p) {
  p = Put32(p, 8);
  return Put64(p, Load<uint64_t>(c.values + 8 * i));
}

// DuckDB's infinite dates and timestamps (+-max) become PostgreSQL's; other
// values outside PostgreSQL's range are refused (nullptr).
char* WriteDate(const Cursor& c, int64_t i, char* p) {
  auto v = Load<int32_t>(c.values + 4 * i);
  int32_t out;
  if (__builtin_expect(v > -INT32_MAX && v != INT32_MAX, 1)) {
    int64_t d = static_cast<int64_t>(v) - kPgEpochDays;
    if (__builtin_expect(d < kPgMinDate || d >= kPgEndDate, 0)) return nullptr;
    out = static_cast<int32_t>(d);
  } else if (v == INT32_MAX) {
    out = INT32_MAX;
  } else {
    out = INT32_MIN;
  }
  p = Put32(p, 4);
  return Put32(p, static_cast<uint32_t>(out));
}

char* WriteTime(const Cursor& c, int64_t i, char* p) {
  p = Put32(p, 8);
  return Put64(p, Load<uint64_t>(c.values + 8 * i));
}

char* WriteTimestamp(const Cursor& c, int64_t i, char* p) {
  auto v = Load<int64_t>(c.values + 8 * i);
  int64_t out;
  if (__builtin_expect(v > -INT64_MAX && v != INT64_MAX, 1)) {
    if (__builtin_expect(v < kPgMinTimestamp + kPgEpochMicros, 0)) return nullptr;
    out = v - kPgEpochMicros;
    if (__builtin_expect(out >= kPgEndTimestamp, 0)) return nullptr;
  } else if (v == INT64_MAX) {
    out = INT64_MAX;
  } else {
    out = INT64_MIN;
  }
  p = Put32(p, 8);
  return Put64(p, static_cast<uint64_t>(out));
}

// Arrow month_day_nano -> PostgreSQL (micros, days, months).
char* WriteInterval(const Cursor& c, int64_t i, char* p) {
  const uint8_t* v = c.values + 16 * i;
  auto months = Load<int32_t>(v);
  auto days = Load<int32_t>(v + 4);
  auto nanos = Load<int64_t>(v + 8);
  p = Put32(p, 16);
  p = Put64(p, static_cast<uint64_t>(nanos / 1000));
  p = Put32(p, static_cast<uint32_t>(days));
  return Put32(p, static_cast<uint32_t>(months));
}

// ---------------------------------------------------------------------------
// variable-length writers

// memcpy with a run-time length is a library call; most values are short,
// and two overlapping fixed-size moves copy them without one.
inline void CopyBytes(char* dst, const char* src, size_t n) {
  if (n <= 16) {
    if (n >= 8) {
      std::memcpy(dst, src, 8);
      std::memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4) {
      std::memcpy(dst, src, 4);
      std::memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n > 0) {
      dst[0] = src[0];
      dst[n / 2] = src[n / 2];
      dst[n - 1] = src[n - 1];
    }
  } else if (n <= 32) {
    std::memcpy(dst, src, 16);
    std::memcpy(dst + n - 16, src + n - 16, 16);
  } else if (n <= 64) {
    std::memcpy(dst, src, 32);
    std::memcpy(dst + n - 32, src + n - 32, 32);
  } else {
    std::memcpy(dst, src, n);
  }
}

template <bool kJsonb>
char* WriteBytes32(const Cursor& c, int64_t i, char* p) {
  int32_t b = c.offsets[i];
  auto len = static_cast<uint32_t>(c.offsets[i + 1] - b);
  p = Put32(p, len + (kJsonb ? 1 : 0));
  if constexpr (kJsonb) *p++ = 1;
  CopyBytes(p, c.data + b, len);
  return p + len;
}

template <bool kJsonb>
char* WriteBytesAny(const Cursor& c, int64_t i, char* p) {
  std::string_view v = c.view.BytesAt(i);
  p = Put32(p, static_cast<uint32_t>(v.size() + (kJsonb ? 1 : 0)));
  if constexpr (kJsonb) *p++ = 1;
  CopyBytes(p, v.data(), v.size());
  return p + v.size();
}

/// Characters of UTF-8 text (bytes that do not continue a sequence).
int64_t Utf8Chars(std::string_view v) {
  int64_t n = 0;
  for (char ch : v) n += (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
  return n;
}

/// Whether text `v` fits a target whose values may hold no NUL byte
/// (check_nul) and at most max_chars characters. Trailing spaces beyond the
/// limit are dropped by PostgreSQL, as for varchar(n) and char(n).
bool TextFits(const Cursor& c, std::string_view v) {
  if (c.check_nul && std::memchr(v.data(), 0, v.size()) != nullptr) return false;
  if (c.max_chars > 0 && static_cast<int64_t>(v.size()) > c.max_chars) {
    size_t end = v.find_last_not_of(' ');
    std::string_view kept = end == std::string_view::npos ? std::string_view() : v.substr(0, end + 1);
    if (Utf8Chars(kept) > c.max_chars) return false;
  }
  return true;
}

// Text whose batch holds a NUL byte, or whose target has a length limit:
// each value is checked before it is written.
template <bool kJsonb>
char* WriteBytesChecked(const Cursor& c, int64_t i, char* p) {
  std::string_view v = c.view.BytesAt(i);
  if (!TextFits(c, v)) return nullptr;
  p = Put32(p, static_cast<uint32_t>(v.size() + (kJsonb ? 1 : 0)));
  if constexpr (kJsonb) *p++ = 1;
  CopyBytes(p, v.data(), v.size());
  return p + v.size();
}

constexpr int8_t HexValue(char ch) {
  return ch >= '0' && ch <= '9'   ? static_cast<int8_t>(ch - '0')
         : ch >= 'a' && ch <= 'f' ? static_cast<int8_t>(ch - 'a' + 10)
         : ch >= 'A' && ch <= 'F' ? static_cast<int8_t>(ch - 'A' + 10)
                                  : int8_t{-1};
}

// Canonical 8-4-4-4-12 text, also without hyphens or inside braces.
bool ParseUuid(std::string_view s, uint8_t* out) {
  if (s.size() >= 2 && s.front() == '{' && s.back() == '}') s = s.substr(1, s.size() - 2);
  bool hyphens = s.size() == 36;
  if (!hyphens && s.size() != 32) return false;
  if (hyphens && (s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-')) return false;
  size_t pos = 0;
  for (int k = 0; k < 16; ++k) {
    if (hyphens && (pos == 8 || pos == 13 || pos == 18 || pos == 23)) ++pos;
    int8_t hi = HexValue(s[pos]);
    int8_t lo = HexValue(s[pos + 1]);
    if ((hi | lo) < 0) return false;
    out[k] = static_cast<uint8_t>((hi << 4) | lo);
    pos += 2;
  }
  return true;
}

char* WriteUuidRaw(const Cursor& c, int64_t i, char* p) {
  p = Put32(p, 16);
  std::memcpy(p, c.values + 16 * i, 16);
  return p + 16;
}

char* WriteUuidFromText(const Cursor& c, int64_t i, char* p) {
  p = Put32(p, 16);
  if (!ParseUuid(c.view.BytesAt(i), reinterpret_cast<uint8_t*>(p))) return nullptr;
  return p + 16;
}

char* WriteUuidRawAsText(const Cursor& c, int64_t i, char* p) {
  static constexpr char kHex[] = "0123456789abcdef";
  const uint8_t* v = c.values + 16 * i;
  p = Put32(p, 36);
  for (int k = 0; k < 16; ++k) {
    if (k == 4 || k == 6 || k == 8 || k == 10) *p++ = '-';
    *p++ = kHex[v[k] >> 4];
    *p++ = kHex[v[k] & 15];
  }
  return p;
}

// One-dimensional array: ndim, has-null flag, element OID, length, lower
// bound 1, then each element as a field. Empty lists are sent as PostgreSQL
// sends them: ndim 0 and no dimensions.
char* WriteList(const Cursor& c, int64_t i, char* p) {
  auto [b, e] = c.view.ListRange(i);
  char* length_at = p;
  p += 4;
  char* start = p;
  if (b == e) {
    p = Put32(p, 0);
    p = Put32(p, 0);
    p = Put32(p, c.element_oid);
  } else {
    const Cursor& child = *c.child;
    p = Put32(p, 1);
    char* flags_at = p;
    p = Put32(p, 0);
    p = Put32(p, c.element_oid);
    p = Put32(p, static_cast<uint32_t>(e - b));
    p = Put32(p, 1);
    bool has_null = false;
    for (int64_t j = b; j < e; ++j) {
      if (child.has_nulls && child.view.IsNull(j)) {
        p = Put32(p, UINT32_MAX);
        has_null = true;
        continue;
      }
      p = child.fn(child, j, p);
      if (p == nullptr) return nullptr;
    }
    if (has_null) Put32(flags_at, 1);
  }
  Put32(length_at, static_cast<uint32_t>(p - start));
  return p;
}

// Grows `out` to n bytes whose contents the caller overwrites.
inline void GrowForOverwrite(std::string* out, size_t n) {
#if defined(__cpp_lib_string_resize_and_overwrite)
  out->resize_and_overwrite(n, [](char*, size_t size) { return size; });
#else
  out->resize(n);  // zero-fills: the chunked encoding keeps that in cache
#endif
}

// ---------------------------------------------------------------------------
// per-batch resolution

bool IsFormat(const char* f, std::initializer_list<const char*> options) {
  for (const char* o : options) {
    if (std::strcmp(f, o) == 0) return true;
  }
  return false;
}

int64_t DataBytes(const Cursor& c, int64_t b, int64_t e) {
  switch (c.layout) {
    case Layout::kOffsets32:
      return c.offsets[e] - c.offsets[b];
    case Layout::kOffsets64: {
      const auto* offsets = c.view.Values<int64_t>();
      return offsets[e] - offsets[b];
    }
    case Layout::kView: {
      int64_t total = 0;
      for (int64_t i = b; i < e; ++i) total += static_cast<int64_t>(c.view.BytesAt(i).size());
      return total;
    }
    case Layout::kFixed16:
      return 16 * (e - b);
    case Layout::kFixed:
    case Layout::kList:
      return 0;
  }
  return 0;
}

// An upper bound of the bytes rows [b, e) of a cursor encode to.
int64_t Bound(const Cursor& c, int64_t b, int64_t e) {
  int64_t n = e - b;
  if (n <= 0) return 0;
  switch (c.enc) {
    case Enc::kBool:
      return n * 5;
    case Enc::kInt16:
      return n * 6;
    case Enc::kInt16To32:
    case Enc::kInt32:
    case Enc::kFloat32:
    case Enc::kDate:
      return n * 8;
    case Enc::kInt16To64:
    case Enc::kInt32To64:
    case Enc::kInt64:
    case Enc::kFloat32To64:
    case Enc::kFloat64:
    case Enc::kTime:
    case Enc::kTimestamp:
      return n * 12;
    case Enc::kInt16ToNumeric:
    case Enc::kInt32ToNumeric:
    case Enc::kInt64ToNumeric:
    case Enc::kDecimal:
      return n * kMaxNumericBytes;
    case Enc::kInterval:
    case Enc::kUuid:
      return n * 20;
    case Enc::kUuidText:
      return c.layout == Layout::kFixed16 ? n * 40 : n * 4 + DataBytes(c, b, e);
    case Enc::kBytes:
    case Enc::kJsonb:
      return n * 5 + DataBytes(c, b, e);
    case Enc::kList: {
      int64_t child_begin = c.view.ListRange(b).first;
      int64_t child_end = c.view.ListRange(e - 1).second;
      // Element bounds include their own length words.
      return n * (4 + kArrayHeaderBytes) + Bound(*c.child, child_begin, child_end);
    }
  }
  return 0;
}

}  // namespace

struct CopyEncoder::Column {
  std::string name;
  DataType type;
  Enc enc = Enc::kBytes;
  // Lists: how elements are written and the element type OID.
  Enc element_enc = Enc::kBytes;
  uint32_t element_oid = 0;
  // The target column's limits (see Cursor).
  int target_precision = 0;
  int target_scale = 0;
  int max_chars = 0;
  bool check_nul = false;
};

namespace {

Result<Enc> ChooseEnc(const DataType& from, PgKind to) {
  switch (from.id) {
    case TypeId::kBool:
      return Enc::kBool;
    case TypeId::kInt16:
      return to == PgKind::kInt2   ? Enc::kInt16
             : to == PgKind::kInt4 ? Enc::kInt16To32
             : to == PgKind::kInt8 ? Enc::kInt16To64
                                   : Enc::kInt16ToNumeric;
    case TypeId::kInt32:
      return to == PgKind::kInt4 ? Enc::kInt32 : to == PgKind::kInt8 ? Enc::kInt32To64 : Enc::kInt32ToNumeric;
    case TypeId::kInt64:
      return to == PgKind::kInt8 ? Enc::kInt64 : Enc::kInt64ToNumeric;
    case TypeId::kFloat32:
      return to == PgKind::kFloat4 ? Enc::kFloat32 : Enc::kFloat32To64;
    case TypeId::kFloat64:
      return Enc::kFloat64;
    case TypeId::kDecimal:
      return Enc::kDecimal;
    case TypeId::kString:
      return to == PgKind::kJsonb ? Enc::kJsonb : to == PgKind::kUuid ? Enc::kUuid : Enc::kBytes;
    case TypeId::kJson:
      return to == PgKind::kJsonb ? Enc::kJsonb : Enc::kBytes;
    case TypeId::kBinary:
      return Enc::kBytes;
    case TypeId::kDate:
      return Enc::kDate;
    case TypeId::kTime:
      return Enc::kTime;
    case TypeId::kTimestamp:
    case TypeId::kTimestampTz:
      return Enc::kTimestamp;
    case TypeId::kInterval:
      return Enc::kInterval;
    case TypeId::kUuid:
      return to == PgKind::kUuid ? Enc::kUuid : Enc::kUuidText;
    case TypeId::kList:
      return Enc::kList;
  }
  return Status::Internal("unknown type");
}

const char* ExpectedFormats(Enc enc) {
  switch (enc) {
    case Enc::kBool:
      return "b";
    case Enc::kInt16:
    case Enc::kInt16To32:
    case Enc::kInt16To64:
    case Enc::kInt16ToNumeric:
      return "s";
    case Enc::kInt32:
    case Enc::kInt32To64:
    case Enc::kInt32ToNumeric:
      return "i";
    case Enc::kInt64:
    case Enc::kInt64ToNumeric:
      return "l";
    case Enc::kFloat32:
    case Enc::kFloat32To64:
      return "f";
    case Enc::kFloat64:
      return "g";
    case Enc::kDecimal:
      return "d:P,S[,128]";
    case Enc::kBytes:
    case Enc::kJsonb:
      return "u, U, vu, z, Z or vz";
    case Enc::kUuid:
    case Enc::kUuidText:
      return "w:16, u, U or vu";
    case Enc::kDate:
      return "tdD";
    case Enc::kTime:
      return "ttu";
    case Enc::kTimestamp:
      return "tsu:[zone]";
    case Enc::kInterval:
      return "tin";
    case Enc::kList:
      return "+l or +L";
  }
  return "?";
}

Layout VarLayout(const char* f) {
  if (IsFormat(f, {"u", "z"})) return Layout::kOffsets32;
  if (IsFormat(f, {"U", "Z"})) return Layout::kOffsets64;
  return Layout::kView;
}

// Picks the writer for `enc` and the batch's layout of the column, or
// returns false when the layout is not one the encoding reads.
bool Resolve(Enc enc, Enc element_enc, uint32_t element_oid, Cursor* c, std::deque<Cursor>* children) {
  const char* f = c->view.format();
  c->enc = enc;
  c->layout = Layout::kFixed;
  c->values = nullptr;
  // Values<T>() applies the array offset in units of T, so fixed-width
  // pointers are taken with the element's own width.
  auto take = [&](int width) {
    switch (width) {
      case 2:
        c->values = reinterpret_cast<const uint8_t*>(c->view.Values<int16_t>());
        break;
      case 4:
        c->values = reinterpret_cast<const uint8_t*>(c->view.Values<int32_t>());
        break;
      case 8:
        c->values = reinterpret_cast<const uint8_t*>(c->view.Values<int64_t>());
        break;
      case 16: {
        struct Bytes16 {
          uint8_t b[16];
        };
        c->values = reinterpret_cast<const uint8_t*>(c->view.Values<Bytes16>());
        break;
      }
      default:
        c->values = nullptr;
    }
  };
  auto is_var = [&] { return IsFormat(f, {"u", "U", "vu", "z", "Z", "vz"}); };
  auto is_text = [&] { return IsFormat(f, {"u", "U", "vu"}); };
  switch (enc) {
    case Enc::kBool:
      if (std::strcmp(f, "b") != 0) return false;
      c->fn = &WriteBool;
      return true;
#define SLUICE_FIXED_CASE(E, FORMAT, WIDTH, FN)                               \
  case Enc::E:                                                                \
    if (std::strcmp(f, FORMAT) != 0) return false;                            \
    take(WIDTH);                                                              \
    c->fn = FN;                                                               \
    c->numeric_limit = NumericLimit(c->target_precision, c->target_scale, 0); \
    return true;
      SLUICE_FIXED_CASE(kInt16, "s", 2, (&WriteInt<int16_t, int16_t>))
      SLUICE_FIXED_CASE(kInt16To32, "s", 2, (&WriteInt<int16_t, int32_t>))
      SLUICE_FIXED_CASE(kInt16To64, "s", 2, (&WriteInt<int16_t, int64_t>))
      SLUICE_FIXED_CASE(kInt16ToNumeric, "s", 2, &WriteIntNumeric<int16_t>)
      SLUICE_FIXED_CASE(kInt32, "i", 4, (&WriteInt<int32_t, int32_t>))
      SLUICE_FIXED_CASE(kInt32To64, "i", 4, (&WriteInt<int32_t, int64_t>))
      SLUICE_FIXED_CASE(kInt32ToNumeric, "i", 4, &WriteIntNumeric<int32_t>)
      SLUICE_FIXED_CASE(kInt64, "l", 8, (&WriteInt<int64_t, int64_t>))
      SLUICE_FIXED_CASE(kInt64ToNumeric, "l", 8, &WriteIntNumeric<int64_t>)
      SLUICE_FIXED_CASE(kFloat32, "f", 4, &WriteFloat32)
      SLUICE_FIXED_CASE(kFloat32To64, "f", 4, &WriteFloat32To64)
      SLUICE_FIXED_CASE(kFloat64, "g", 8, &WriteFloat64)
      SLUICE_FIXED_CASE(kDate, "tdD", 4, &WriteDate)
      SLUICE_FIXED_CASE(kTime, "ttu", 8, &WriteTime)
      SLUICE_FIXED_CASE(kInterval, "tin", 16, &WriteInterval)
#undef SLUICE_FIXED_CASE
    case Enc::kTimestamp:
      if (std::strncmp(f, "tsu:", 4) != 0) return false;
      take(8);
      c->fn = &WriteTimestamp;
      return true;
    case Enc::kDecimal: {
      int precision = 0, scale = 0, bits = 128;
      if (std::strncmp(f, "d:", 2) != 0 || std::sscanf(f, "d:%d,%d,%d", &precision, &scale, &bits) < 2 ||
          bits != 128 || scale < 0) {
        return false;
      }
      take(16);
      c->scale = scale;
      c->numeric_limit = NumericLimit(c->target_precision, c->target_scale, scale);
      switch (scale & 3) {
        case 0:
          c->fn = &WriteDecimal<0>;
          break;
        case 1:
          c->fn = &WriteDecimal<1>;
          break;
        case 2:
          c->fn = &WriteDecimal<2>;
          break;
        default:
          c->fn = &WriteDecimal<3>;
          break;
      }
      return true;
    }
    case Enc::kBytes:
    case Enc::kJsonb: {
      if (!is_var()) return false;
      bool jsonb = enc == Enc::kJsonb;
      c->layout = VarLayout(f);
      bool checked = c->max_chars > 0;
      if (c->layout == Layout::kOffsets32) {
        c->offsets = c->view.Values<int32_t>();
        // The data buffer is not exposed; recover its start from a value.
        c->data = c->view.length() > 0 ? c->view.BytesAt(0).data() - c->offsets[0] : nullptr;
        c->fn = jsonb ? &WriteBytes32<true> : &WriteBytes32<false>;
        // One scan of the batch's characters finds a NUL byte; only then is
        // every value checked on its own.
        if (c->check_nul && c->data != nullptr) {
          int64_t n = c->view.length();
          checked = checked || std::memchr(c->data + c->offsets[0], 0,
                                           static_cast<size_t>(c->offsets[n] - c->offsets[0])) != nullptr;
        }
      } else {
        c->fn = jsonb ? &WriteBytesAny<true> : &WriteBytesAny<false>;
        checked = checked || c->check_nul;
      }
      if (checked) c->fn = jsonb ? &WriteBytesChecked<true> : &WriteBytesChecked<false>;
      return true;
    }
    case Enc::kUuid:
    case Enc::kUuidText:
      if (std::strcmp(f, "w:16") == 0) {
        take(16);
        c->layout = Layout::kFixed16;
        c->fn = enc == Enc::kUuid ? &WriteUuidRaw : &WriteUuidRawAsText;
        return true;
      }
      if (!is_text()) return false;
      c->layout = VarLayout(f);
      if (c->layout == Layout::kOffsets32) c->offsets = c->view.Values<int32_t>();
      c->fn = enc == Enc::kUuid ? &WriteUuidFromText : &WriteBytesAny<false>;
      return true;
    case Enc::kList: {
      if (!IsFormat(f, {"+l", "+L"})) return false;
      c->layout = Layout::kList;
      c->element_oid = element_oid;
      Cursor& child = children->emplace_back(c->view.ListChild());
      child.has_nulls = AnyNull(child.view);
      child.target_precision = c->target_precision;
      child.target_scale = c->target_scale;
      child.max_chars = c->max_chars;
      child.check_nul = c->check_nul;
      if (!Resolve(element_enc, Enc::kBytes, 0, &child, children)) return false;
      c->child = &child;
      c->fn = &WriteList;
      return true;
    }
  }
  return false;
}

std::string Printable(std::string_view v) {
  constexpr size_t kMax = 80;
  std::string out;
  for (char ch : v.substr(0, kMax)) {
    auto u = static_cast<unsigned char>(ch);
    if (u < 0x20 || u == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", u);
      out += buf;
    } else {
      out += ch;
    }
  }
  if (v.size() > kMax) out += "...";
  return out;
}

// Proleptic Gregorian date of `days` since 1970-01-01, as PostgreSQL
// prints it ("2024-01-31", "5874898-01-01", "4714-11-23 BC").
std::string DateText(int64_t days) {
  auto [y, m, d] = CivilFromDays(days);
  bool bc = y <= 0;
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld%s", static_cast<long long>(bc ? 1 - y : y),
                static_cast<long long>(m), static_cast<long long>(d), bc ? " BC" : "");
  return buf;
}

std::string TimestampText(int64_t micros) {
  int64_t days = micros / 86400000000LL;
  int64_t rest = micros % 86400000000LL;
  if (rest < 0) {
    rest += 86400000000LL;
    --days;
  }
  std::string date = DateText(days);
  std::string bc;
  if (date.ends_with(" BC")) {
    bc = " BC";
    date.resize(date.size() - 3);
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, " %02lld:%02lld:%02lld", static_cast<long long>(rest / 3600000000LL),
                static_cast<long long>(rest / 60000000LL % 60),
                static_cast<long long>(rest / 1000000LL % 60));
  std::string out = date + buf;
  if (rest % 1000000 != 0) {
    std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(rest % 1000000));
    out += buf;
  }
  return out + bc;
}

std::string DecimalText(bool negative, unsigned __int128 mag, int scale) {
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(mag % 10)));
    mag /= 10;
  } while (mag != 0);
  if (scale > 0) {
    if (static_cast<int>(digits.size()) <= scale)
      digits.insert(0, static_cast<size_t>(scale) + 1 - digits.size(), '0');
    digits.insert(digits.size() - static_cast<size_t>(scale), ".");
  }
  return (negative ? "-" : "") + digits;
}

// Value i of a cursor as text, for rejects and messages ("" when not
// rendered). Only called for values that were refused, so it may be slow.
std::string ValueText(const Cursor& c, int64_t i) {
  switch (c.enc) {
    case Enc::kBytes:
    case Enc::kJsonb:
      return std::string(c.view.BytesAt(i));
    case Enc::kDate:
      return DateText(c.view.Values<int32_t>()[i]);
    case Enc::kTimestamp:
      return TimestampText(c.view.Values<int64_t>()[i]);
    case Enc::kDecimal: {
      const uint8_t* v = c.values + 16 * i;
      auto lo = Load<uint64_t>(v);
      auto hi = Load<int64_t>(v + 8);
      unsigned __int128 u = (static_cast<unsigned __int128>(static_cast<uint64_t>(hi)) << 64) | lo;
      bool negative = hi < 0;
      return DecimalText(negative, negative ? 0 - u : u, c.scale);
    }
    case Enc::kInt16ToNumeric:
      return std::to_string(c.view.Values<int16_t>()[i]);
    case Enc::kInt32ToNumeric:
      return std::to_string(c.view.Values<int32_t>()[i]);
    case Enc::kInt64ToNumeric:
      return std::to_string(c.view.Values<int64_t>()[i]);
    case Enc::kUuid:
    case Enc::kUuidText:
      if (c.layout == Layout::kFixed16) return "";
      return std::string(c.view.BytesAt(i));
    default:
      return "";
  }
}

// Why value i of a cursor cannot be written, or nullopt if it can. Only
// called after a writer failed, so it may be slow.
std::optional<std::string> Problem(const Cursor& c, int64_t i) {
  switch (c.enc) {
    case Enc::kUuid: {
      if (c.layout == Layout::kFixed16) return std::nullopt;
      std::string_view v = c.view.BytesAt(i);
      uint8_t scratch[16];
      if (ParseUuid(v, scratch)) return std::nullopt;
      return "invalid UUID '" + Printable(v) + "'";
    }
    case Enc::kBytes:
    case Enc::kJsonb: {
      std::string_view v = c.view.BytesAt(i);
      if (c.check_nul && std::memchr(v.data(), 0, v.size()) != nullptr) {
        return "the text contains a NUL byte (0x00), which PostgreSQL cannot store: '" + Printable(v) + "'";
      }
      if (!TextFits(c, v)) {
        return "the text has " + std::to_string(Utf8Chars(v)) + " characters, more than the column's " +
               std::to_string(c.max_chars) + ": '" + Printable(v) + "'";
      }
      return std::nullopt;
    }
    case Enc::kDate: {
      auto v = c.view.Values<int32_t>()[i];
      if (v <= -INT32_MAX || v == INT32_MAX) return std::nullopt;
      int64_t d = static_cast<int64_t>(v) - kPgEpochDays;
      if (d >= kPgMinDate && d < kPgEndDate) return std::nullopt;
      return "date " + DateText(v) + " is out of range for PostgreSQL (4714-11-24 BC to 5874897-12-31)";
    }
    case Enc::kTimestamp: {
      auto v = c.view.Values<int64_t>()[i];
      if (v <= -INT64_MAX || v == INT64_MAX) return std::nullopt;
      if (v >= kPgMinTimestamp + kPgEpochMicros && v - kPgEpochMicros < kPgEndTimestamp) return std::nullopt;
      return "timestamp " + TimestampText(v) +
             " is out of range for PostgreSQL (4714-11-24 00:00:00 BC to 294276-12-31 23:59:59.999999)";
    }
    case Enc::kDecimal:
    case Enc::kInt16ToNumeric:
    case Enc::kInt32ToNumeric:
    case Enc::kInt64ToNumeric: {
      if (c.numeric_limit == 0) return std::nullopt;
      return "value " + ValueText(c, i) + " does not fit numeric(" + std::to_string(c.target_precision) +
             "," + std::to_string(c.target_scale) + "), which holds " +
             std::to_string(c.target_precision - c.target_scale) + " digits before the decimal point";
    }
    case Enc::kList: {
      auto [b, e] = c.view.ListRange(i);
      for (int64_t j = b; j < e; ++j) {
        if (c.child->view.IsNull(j)) continue;
        if (auto problem = Problem(*c.child, j)) {
          return "element " + std::to_string(j - b + 1) + ": " + *problem;
        }
      }
      return std::nullopt;
    }
    default:
      return std::nullopt;
  }
}

}  // namespace

CopyEncoder::~CopyEncoder() = default;

Status CopyEncoder::RefusedValueError(const RejectedRow& bad) {
  return Status::DataError("column \"" + bad.column + "\", row " + std::to_string(bad.result_row) +
                           " of the result: " + bad.reason);
}

void CopyEncoder::SetTargetLimits(const PgType& target, Column* col) {
  // The type modifier as format_type() prints it: numeric(12,2),
  // character varying(20), character(5), possibly followed by [].
  const std::string& name = target.name;
  size_t open = name.find('(');
  int a = 0, b = 0;
  int parsed = open == std::string::npos ? 0 : std::sscanf(name.c_str() + open, "(%d,%d)", &a, &b);
  switch (target.kind) {
    case PgKind::kNumeric:
      if (parsed >= 1 && a > 0) {
        col->target_precision = a;
        col->target_scale = parsed == 2 ? b : 0;
      }
      break;
    case PgKind::kVarchar:
    case PgKind::kChar:
      if (parsed >= 1 && a > 0) col->max_chars = a;
      col->check_nul = true;
      break;
    case PgKind::kText:
    case PgKind::kJson:
    case PgKind::kJsonb:
    case PgKind::kEnum:
      col->check_nul = true;
      break;
    default:
      break;
  }
}

Result<std::unique_ptr<CopyEncoder>> CopyEncoder::Make(const Schema& schema,
                                                       const std::vector<std::string>& target_types) {
  std::vector<PgType> targets;
  if (target_types.empty()) {
    for (const auto& field : schema.fields()) {
      auto target = PgTypeFor(field.type);
      if (!target.ok()) return target.status().WithContext("column \"" + field.name + "\"");
      targets.push_back(std::move(target).value());
    }
  } else {
    if (static_cast<int>(target_types.size()) != schema.num_fields()) {
      return Status::InvalidArgument("CopyEncoder: " + std::to_string(target_types.size()) +
                                     " target types for " + std::to_string(schema.num_fields()) + " columns");
    }
    for (const auto& name : target_types) targets.push_back(ParsePgTypeName(name));
  }
  return MakeForTargets(schema, targets);
}

Result<std::unique_ptr<CopyEncoder>> CopyEncoder::MakeForTargets(const Schema& schema,
                                                                 const std::vector<PgType>& targets) {
  if (static_cast<int>(targets.size()) != schema.num_fields()) {
    return Status::InvalidArgument("CopyEncoder: " + std::to_string(targets.size()) + " target types for " +
                                   std::to_string(schema.num_fields()) + " columns");
  }
  if (schema.num_fields() > 1664) {
    return Status::InvalidArgument("PostgreSQL tables have at most 1664 columns, the result has " +
                                   std::to_string(schema.num_fields()));
  }
  std::unique_ptr<CopyEncoder> encoder(new CopyEncoder());
  for (int i = 0; i < schema.num_fields(); ++i) {
    const Field& field = schema.field(i);
    const PgType& target = targets[static_cast<size_t>(i)];
    if (!CanLoad(field.type, target)) {
      return Status::SchemaMismatch("column \"" + field.name + "\": " + field.type.ToString() +
                                    " values cannot be loaded into a column of type " +
                                    (target.name.empty() ? std::string("unknown") : target.name));
    }
    Column col;
    col.name = field.name;
    col.type = field.type;
    SetTargetLimits(target, &col);
    SLUICE_ASSIGN_OR_RETURN(col.enc, ChooseEnc(field.type, target.kind));
    if (field.type.id == TypeId::kList) {
      DataType element = field.type.element ? *field.type.element : DataType::Of(TypeId::kString);
      SLUICE_ASSIGN_OR_RETURN(col.element_enc, ChooseEnc(element, target.kind));
      col.element_oid = target.element_oid;
    }
    encoder->columns_.push_back(std::move(col));
  }
  return encoder;
}

Status CopyEncoder::Encode(const Batch& batch, std::string* out, std::vector<RejectedRow>* rejected) const {
  const int ncols = static_cast<int>(columns_.size());
  if (batch.num_columns() != ncols) {
    return Status::InvalidArgument("batch has " + std::to_string(batch.num_columns()) +
                                   " columns, the COPY expects " + std::to_string(ncols));
  }
  const int64_t rows = batch.num_rows();
  if (rows == 0) return Status::OK();

  std::vector<Cursor> cursors;
  cursors.reserve(static_cast<size_t>(ncols));
  std::deque<Cursor> children;
  int64_t bound = 2 * rows;
  for (int c = 0; c < ncols; ++c) {
    const Column& col = columns_[static_cast<size_t>(c)];
    Cursor& cursor = cursors.emplace_back(batch.column(c));
    cursor.has_nulls = AnyNull(cursor.view);
    cursor.target_precision = col.target_precision;
    cursor.target_scale = col.target_scale;
    cursor.max_chars = col.max_chars;
    cursor.check_nul = col.check_nul;
    if (!Resolve(col.enc, col.element_enc, col.element_oid, &cursor, &children)) {
      return Status::InvalidArgument("column \"" + col.name + "\" (" + col.type.ToString() +
                                     ") arrived in Arrow format '" + cursor.view.format() +
                                     "'; the COPY encoder reads " + ExpectedFormats(col.enc));
    }
    bound += Bound(cursor, 0, rows);
  }

  // std::string::resize zero-fills. Growing the string one chunk of rows
  // at a time keeps the zeroed bytes in cache for the writes that follow,
  // instead of streaming the whole batch's bound through memory twice.
  const size_t old_size = out->size();
  out->reserve(old_size + static_cast<size_t>(bound));
  const auto field_count = static_cast<uint16_t>(ncols);
  const Cursor* const cols = cursors.data();
  size_t used = old_size;
  for (int64_t chunk_begin = 0; chunk_begin < rows; chunk_begin += kRowsPerChunk) {
    const int64_t chunk_end = std::min(rows, chunk_begin + kRowsPerChunk);
    int64_t chunk_bound = 2 * (chunk_end - chunk_begin);
    for (const Cursor& cursor : cursors) chunk_bound += Bound(cursor, chunk_begin, chunk_end);
    GrowForOverwrite(out, used + static_cast<size_t>(chunk_bound));
    char* const begin = out->data() + used;
    char* p = begin;
    for (int64_t r = chunk_begin; r < chunk_end; ++r) {
      char* const row_start = p;
      p = Put16(p, field_count);
      for (int c = 0; c < ncols; ++c) {
        const Cursor& cursor = cols[c];
        if (cursor.has_nulls && cursor.view.IsNull(r)) {
          p = Put32(p, UINT32_MAX);
          continue;
        }
        char* next = cursor.fn(cursor, r, p);
        if (__builtin_expect(next == nullptr, 0)) {
          RejectedRow bad{batch.first_row() + r + 1, columns_[static_cast<size_t>(c)].name,
                          ValueText(cursor, r), Problem(cursor, r).value_or("the value cannot be encoded")};
          if (rejected == nullptr) {
            out->resize(old_size);
            return RefusedValueError(bad);
          }
          // The row is left out: what was written of it is overwritten.
          rejected->push_back(std::move(bad));
          p = row_start;
          break;
        }
        p = next;
      }
    }
    used += static_cast<size_t>(p - begin);
    out->resize(used);
  }
  return Status::OK();
}

std::string CopyEncoder::Header() {
  static constexpr char kSignature[] = "PGCOPY\n\377\r\n";  // + its terminating NUL
  std::string out(kSignature, sizeof kSignature);
  out.append(8, '\0');  // flags (no OIDs), header extension length
  return out;
}

std::string CopyEncoder::Trailer() { return std::string("\xff\xff", 2); }

}  // namespace sluice
