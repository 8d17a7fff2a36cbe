#include "destinations/postgres/copy_encoder.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <thread>

#include "destinations/postgres/test_arrow_arrays.h"

namespace sluice {
namespace {

using pgtest::Decimal128;
using pgtest::Fixed;
using pgtest::List;
using pgtest::MakeBatch;
using pgtest::Strings;
using pgtest::TestArray;

std::string Hex(std::string_view spaced) {
  std::string out;
  int hi = -1;
  for (char c : spaced) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;
    if (hi < 0) {
      hi = v;
    } else {
      out += static_cast<char>(hi * 16 + v);
      hi = -1;
    }
  }
  return out;
}

// "0000 0002" -> "00000002": expected hex with the fields spaced apart.
std::string Spaced(std::string_view spaced) {
  std::string out;
  for (char c : spaced) {
    if (c != ' ') out += c;
  }
  return out;
}

std::string ToHex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

// Big-endian bytes written by hand, for expected values.
struct Wire {
  std::string s;
  Wire& I16(int16_t v) { return Put(static_cast<uint64_t>(static_cast<uint16_t>(v)), 2); }
  Wire& I32(int32_t v) { return Put(static_cast<uint64_t>(static_cast<uint32_t>(v)), 4); }
  Wire& U32(uint32_t v) { return Put(v, 4); }
  Wire& I64(int64_t v) { return Put(static_cast<uint64_t>(v), 8); }
  Wire& Raw(std::string_view v) {
    s.append(v);
    return *this;
  }
  Wire& Null() { return I32(-1); }
  /// A whole field: length, then the bytes.
  Wire& Field(std::string_view v) { return I32(static_cast<int32_t>(v.size())).Raw(v); }
  Wire& Put(uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) s += static_cast<char>((v >> (8 * i)) & 0xff);
    return *this;
  }
};

Result<std::string> EncodeAll(const Batch& batch, const std::vector<std::string>& targets = {}) {
  SLUICE_ASSIGN_OR_RETURN(auto encoder, CopyEncoder::Make(batch.schema(), targets));
  std::string out;
  SLUICE_RETURN_IF_ERROR(encoder->Encode(batch, &out));
  return out;
}

// The bytes of the only field of a one-column, one-row batch.
std::string OnlyField(const Batch& batch, const std::vector<std::string>& targets = {}) {
  auto out = EncodeAll(batch, targets);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  EXPECT_EQ(out->substr(0, 2), Hex("0001"));
  return out->substr(2);
}

// Into an unconstrained numeric column: these tests are about the wire
// format of any 128-bit magnitude, beyond what numeric(38,s) holds.
std::string DecimalField(int scale, __int128 unscaled) {
  auto batch = MakeBatch({{"d", Decimal128(38, scale, {unscaled})}});
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return ToHex(OnlyField(**batch, {"numeric"}));
}

constexpr __int128 Pow10(int n) {
  __int128 v = 1;
  for (int i = 0; i < n; ++i) v *= 10;
  return v;
}

TEST(CopyEncoder, HeaderAndTrailerAreTheBinaryCopyFraming) {
  EXPECT_EQ(CopyEncoder::Header(), std::string("PGCOPY\n\xff\r\n\0", 11) + std::string(8, '\0'));
  EXPECT_EQ(CopyEncoder::Trailer(), Hex("ffff"));
}

// Expected numeric bytes: length, ndigits, weight, sign, dscale, base-10000
// digits; computed independently from the decimal strings.
TEST(CopyEncoder, NumericZeroHasNoDigitsAndKeepsScale) {
  EXPECT_EQ(DecimalField(2, 0), Spaced("00000008 0000 0000 0000 0002"));
}

TEST(CopyEncoder, NumericWithScaleTwo) {
  EXPECT_EQ(DecimalField(2, 1230),
            Spaced("0000000c 0002 0000 0000 0002 000c 0bb8"));  // 12.30
  EXPECT_EQ(DecimalField(2, 100),
            Spaced("0000000a 0001 0000 0000 0002 0001"));  // 1.00
}

TEST(CopyEncoder, NumericNegativeSetsSignBit) {
  EXPECT_EQ(DecimalField(2, -1230), Spaced("0000000c 0002 0000 4000 0002 000c 0bb8"));
  EXPECT_EQ(DecimalField(0, std::numeric_limits<int64_t>::min()),
            Spaced("00000012 0005 0004 4000 0000 039a 0d2c 0170 1565 16b0"));
}

TEST(CopyEncoder, NumericScaleLargerThanDigits) {
  EXPECT_EQ(DecimalField(4, 1),
            Spaced("0000000a 0001 ffff 0000 0004 0001"));  // 0.0001
  EXPECT_EQ(DecimalField(5, 1),
            Spaced("0000000a 0001 fffe 0000 0005 03e8"));  // 0.00001
  EXPECT_EQ(DecimalField(1, 5),
            Spaced("0000000a 0001 ffff 0000 0001 1388"));  // 0.5
}

TEST(CopyEncoder, NumericDropsTrailingZeroGroups) {
  EXPECT_EQ(DecimalField(0, 10000), Spaced("0000000a 0001 0001 0000 0000 0001"));
  EXPECT_EQ(DecimalField(1, 1234567895),  // 123456789.5
            Spaced("00000010 0004 0002 0000 0001 0001 0929 1a85 1388"));
}

TEST(CopyEncoder, NumericThirtyEightDigits) {
  EXPECT_EQ(DecimalField(0, Pow10(38) - 1),
            "0000001c000a0009000000000063270f270f270f270f270f270f270f270f270f");
  EXPECT_EQ(DecimalField(0, -(Pow10(38) - 1)),
            "0000001c000a0009400000000063270f270f270f270f270f270f270f270f270f");
  __int128 digits = static_cast<__int128>(1234567890123456789LL) * Pow10(19) + 123456789012345678LL;
  // 12345678901234567890123456789012345678
  ASSERT_EQ(digits % 1000, 678);
  EXPECT_EQ(DecimalField(10, -digits), "0000001c000a00064000000a04d2162e23340d801ed204d2162e23340d801e78");
  EXPECT_EQ(DecimalField(38, digits), "0000001c000affff0000002604d2162e23340d801ed204d2162e23340d801e78");
}

TEST(CopyEncoder, NumericAroundTheSixtyFourBitBoundary) {
  __int128 two64 = static_cast<__int128>(1) << 64;
  EXPECT_EQ(DecimalField(0, -two64), "00000012000500044000000007341a5802e103bb0650");
  EXPECT_EQ(DecimalField(0, two64), "00000012000500040000000007341a5802e103bb0650");
  EXPECT_EQ(DecimalField(3, two64), "000000140006000400000003000120fe1d101cca254f1810");
  __int128 min128 = -(static_cast<__int128>(1) << 126) * 2;
  EXPECT_EQ(DecimalField(5, min128), "0000001e000b0008400000050011008d072a179e240f1c94221a0e832289023c1f40");
}

TEST(CopyEncoder, IntegersIntoNumericColumns) {
  Schema schema({{"a", DataType::Of(TypeId::kInt16)},
                 {"b", DataType::Of(TypeId::kInt32)},
                 {"c", DataType::Of(TypeId::kInt64)}});
  BatchBuilder b(schema);
  b.AppendInt(0, -5);
  b.AppendInt(1, 10000);
  b.AppendInt(2, 0);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch, {"numeric", "numeric(10,0)", "numeric"});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Wire w;
  w.I16(3);
  w.Raw(Hex("0000000a 0001 0000 4000 0000 0005"));
  w.Raw(Hex("0000000a 0001 0001 0000 0000 0001"));
  w.Raw(Hex("00000008 0000 0000 0000 0000"));
  EXPECT_EQ(ToHex(*out), ToHex(w.s));
}

TEST(CopyEncoder, IntegersWidenToTheTargetColumn) {
  Schema schema({{"a", DataType::Of(TypeId::kInt16)},
                 {"b", DataType::Of(TypeId::kInt16)},
                 {"c", DataType::Of(TypeId::kInt32)}});
  BatchBuilder b(schema);
  b.AppendInt(0, -2);
  b.AppendInt(1, 300);
  b.AppendInt(2, -70000);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch, {"integer", "bigint", "int8"});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Wire w;
  w.I16(3).I32(4).I32(-2).I32(8).I64(300).I32(8).I64(-70000);
  EXPECT_EQ(ToHex(*out), ToHex(w.s));
}

TEST(CopyEncoder, DatesShiftToThePostgresEpoch) {
  Schema schema({{"d", DataType::Of(TypeId::kDate)}});
  BatchBuilder b(schema);
  b.AppendInt(0, 0);                                     // 1970-01-01
  b.AppendInt(0, 10957);                                 // 2000-01-01
  b.AppendInt(0, 19000);                                 // 2022-01-08
  b.AppendInt(0, std::numeric_limits<int32_t>::max());   // DuckDB infinity
  b.AppendInt(0, -std::numeric_limits<int32_t>::max());  // DuckDB -infinity
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Wire w;
  w.I16(1).I32(4).I32(-10957);
  w.I16(1).I32(4).I32(0);
  w.I16(1).I32(4).I32(19000 - 10957);
  w.I16(1).I32(4).I32(std::numeric_limits<int32_t>::max());
  w.I16(1).I32(4).I32(std::numeric_limits<int32_t>::min());
  EXPECT_EQ(ToHex(*out), ToHex(w.s));
}

TEST(CopyEncoder, TimestampsShiftToThePostgresEpoch) {
  Schema schema({{"ts", DataType::Of(TypeId::kTimestamp)},
                 {"tz", DataType::Of(TypeId::kTimestampTz)},
                 {"t", DataType::Of(TypeId::kTime)}});
  BatchBuilder b(schema);
  b.AppendInt(0, 0);
  b.AppendInt(1, 946684800000000LL);
  b.AppendInt(2, 3600000000LL);
  b.AppendInt(0, std::numeric_limits<int64_t>::max());
  b.AppendInt(1, -std::numeric_limits<int64_t>::max());
  b.AppendInt(2, 0);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Wire w;
  w.I16(3).I32(8).I64(-946684800000000LL).I32(8).I64(0).I32(8).I64(3600000000LL);
  w.I16(3).I32(8).I64(std::numeric_limits<int64_t>::max()).I32(8).I64(std::numeric_limits<int64_t>::min());
  w.I32(8).I64(0);
  EXPECT_EQ(ToHex(*out), ToHex(w.s));
}

TEST(CopyEncoder, TimestampOutOfRangeIsADataError) {
  Schema schema({{"ts", DataType::Of(TypeId::kTimestamp)}});
  BatchBuilder b(schema);
  b.AppendInt(0, 1);
  b.AppendInt(0, std::numeric_limits<int64_t>::min() + 5);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kDataError);
  EXPECT_NE(out.status().message().find("column \"ts\", row 2"), std::string::npos) << out.status().message();
  EXPECT_NE(out.status().message().find("out of range"), std::string::npos);
}

TEST(CopyEncoder, ValuesPostgresWouldRefuseFailNamingColumnRowAndValue) {
  struct Case {
    std::string name;
    Schema schema;
    std::vector<std::string> targets;
    std::function<void(BatchBuilder&, bool)> fill;  // the good row, then (if asked) the bad one
    std::string expect;
  };
  std::vector<Case> cases;
  cases.push_back({"nul",
                   Schema({{"s", DataType::Of(TypeId::kString)}}),
                   {"text"},
                   [](BatchBuilder& b, bool bad) {
                     b.AppendBytes(0, "ok");
                     if (bad) b.AppendBytes(0, std::string("a\0b", 3));
                   },
                   "NUL byte"});
  cases.push_back({"date",
                   Schema({{"d", DataType::Of(TypeId::kDate)}}),
                   {"date"},
                   [](BatchBuilder& b, bool bad) {
                     b.AppendInt(0, 19000);
                     // 5874898-01-01: one day past PostgreSQL's last date.
                     if (bad) b.AppendInt(0, 2145031949 + 10957);
                   },
                   "date 5874898-01-01 is out of range for PostgreSQL"});
  cases.push_back({"timestamp",
                   Schema({{"t", DataType::Of(TypeId::kTimestamp)}}),
                   {"timestamp"},
                   [](BatchBuilder& b, bool bad) {
                     b.AppendInt(0, 0);
                     if (bad)
                       b.AppendInt(0, -211813488000000000LL + 946684800000000LL - 1);  // before 4714-11-24 BC
                   },
                   "is out of range for PostgreSQL"});
  cases.push_back({"numeric",
                   Schema({{"n", DataType::Decimal(12, 2)}}),
                   {"numeric(5,2)"},
                   [](BatchBuilder& b, bool bad) {
                     b.AppendInt(0, 99999);            // 999.99 fits
                     if (bad) b.AppendInt(0, 100000);  // 1000.00 does not
                   },
                   "value 1000.00 does not fit numeric(5,2)"});
  cases.push_back({"varchar",
                   Schema({{"v", DataType::Of(TypeId::kString)}}),
                   {"character varying(3)"},
                   [](BatchBuilder& b, bool bad) {
                     b.AppendBytes(0, "abc   ");  // trailing spaces are cut, as PostgreSQL does
                     if (bad) b.AppendBytes(0, "abcd");
                   },
                   "more than the column's 3"});
  for (auto& c : cases) {
    SCOPED_TRACE(c.name);
    BatchBuilder b(c.schema);
    c.fill(b, true);
    auto batch = b.Finish();
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    auto out = EncodeAll(**batch, c.targets);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), StatusCode::kDataError);
    EXPECT_NE(out.status().message().find("row 2 of the result"), std::string::npos)
        << out.status().message();
    EXPECT_NE(out.status().message().find(c.expect), std::string::npos) << out.status().message();

    // Collecting instead: the bad row is left out and reported, the good
    // one encoded exactly as alone.
    auto encoder = CopyEncoder::Make(c.schema, c.targets);
    ASSERT_TRUE(encoder.ok());
    std::string skipped;
    std::vector<RejectedRow> rejected;
    ASSERT_TRUE((*encoder)->Encode(**batch, &skipped, &rejected).ok());
    ASSERT_EQ(rejected.size(), 1u);
    EXPECT_EQ(rejected[0].result_row, 2);
    EXPECT_EQ(rejected[0].column, c.schema.field(0).name);
    EXPECT_NE(rejected[0].reason.find(c.expect), std::string::npos) << rejected[0].reason;
    BatchBuilder first(c.schema);
    c.fill(first, false);
    auto only_first = first.Finish();
    ASSERT_TRUE(only_first.ok());
    std::string full;
    std::vector<RejectedRow> again;
    ASSERT_TRUE((*encoder)->Encode(**only_first, &full, &again).ok());
    EXPECT_EQ(ToHex(skipped), ToHex(full));
  }
}

TEST(CopyEncoder, NulIsFineInByteaAndNumbersWithinTheTargetPass) {
  Schema schema({{"b", DataType::Of(TypeId::kBinary)},
                 {"n", DataType::Decimal(38, 4)},
                 {"i", DataType::Of(TypeId::kInt64)}});
  BatchBuilder b(schema);
  b.AppendBytes(0, std::string("\0\0", 2));
  b.AppendInt(1, 99999949);  // 9999.9949 rounds to 9999.99 in numeric(6,2)
  b.AppendInt(2, 9999);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch, {"bytea", "numeric(6,2)", "numeric(4,0)"});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  BatchBuilder over(schema);
  over.AppendBytes(0, "x");
  over.AppendInt(1, 99999950);  // 9999.995 rounds to 10000.00: too large
  over.AppendInt(2, 1);
  auto bad = over.Finish();
  ASSERT_TRUE(bad.ok());
  auto refused = EncodeAll(**bad, {"bytea", "numeric(6,2)", "numeric(4,0)"});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("column \"n\""), std::string::npos) << refused.status().message();
}

TEST(CopyEncoder, NullIsLengthMinusOne) {
  Schema schema({{"a", DataType::Of(TypeId::kInt64)}, {"b", DataType::Of(TypeId::kString)}});
  BatchBuilder b(schema);
  b.AppendNull(0);
  b.AppendBytes(1, "x");
  b.AppendInt(0, 7);
  b.AppendNull(1);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Wire w;
  w.I16(2).Null().Field("x");
  w.I16(2).I32(8).I64(7).Null();
  EXPECT_EQ(ToHex(*out), ToHex(w.s));
}

TEST(CopyEncoder, WholeBatchMatchesHandComputedBytes) {
  Schema schema({{"b", DataType::Of(TypeId::kBool)},
                 {"i2", DataType::Of(TypeId::kInt16)},
                 {"i4", DataType::Of(TypeId::kInt32)},
                 {"i8", DataType::Of(TypeId::kInt64)},
                 {"f4", DataType::Of(TypeId::kFloat32)},
                 {"f8", DataType::Of(TypeId::kFloat64)},
                 {"dec", DataType::Decimal(12, 2)},
                 {"s", DataType::Of(TypeId::kString)},
                 {"bin", DataType::Of(TypeId::kBinary)},
                 {"d", DataType::Of(TypeId::kDate)},
                 {"t", DataType::Of(TypeId::kTime)},
                 {"ts", DataType::Of(TypeId::kTimestamp)},
                 {"tz", DataType::Of(TypeId::kTimestampTz)},
                 {"iv", DataType::Of(TypeId::kInterval)},
                 {"u", DataType::Of(TypeId::kUuid)},
                 {"j", DataType::Of(TypeId::kJson)}});
  const std::string uuid = Hex("0123456789abcdef fedcba9876543210");
  BatchBuilder b(schema);
  b.AppendBool(0, true);
  b.AppendInt(1, -1);
  b.AppendInt(2, 123456);
  b.AppendInt(3, -9876543210LL);
  b.AppendDouble(4, 1.5);
  b.AppendDouble(5, -0.25);
  b.AppendInt(6, -123456);  // -1234.56
  b.AppendBytes(7, "héllo");
  b.AppendBytes(8, std::string("\0\x01\xff", 3));
  b.AppendInt(9, 10958);           // 2000-01-02
  b.AppendInt(10, 45296789000LL);  // 12:34:56.789
  b.AppendInt(11, 946684800000001LL);
  b.AppendInt(12, 946684799999999LL);
  b.AppendInterval(13, 14, 3, 4000001LL);
  b.AppendBytes(14, uuid);
  b.AppendBytes(15, R"({"a":1})");
  for (int c = 0; c < schema.num_fields(); ++c) {
    if (c == 0) {
      b.AppendBool(0, false);
    } else {
      b.AppendNull(c);
    }
  }
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();

  Wire w;
  w.I16(16);
  w.I32(1).Raw(Hex("01"));
  w.I32(2).I16(-1);
  w.I32(4).I32(123456);
  w.I32(8).I64(-9876543210LL);
  w.I32(4).U32(0x3fc00000);                                   // 1.5f
  w.I32(8).I64(static_cast<int64_t>(0xbfd0000000000000ULL));  // -0.25
  w.Raw(Hex("0000000c 0002 0000 4000 0002 04d2 15e0"));       // -1234.56: 1234, 5600
  w.Field("héllo");
  w.Field(std::string("\0\x01\xff", 3));
  w.I32(4).I32(1);
  w.I32(8).I64(45296789000LL);
  w.I32(8).I64(1);
  w.I32(8).I64(-1);
  w.I32(16).I64(4000001LL).I32(3).I32(14);
  w.Field(uuid);
  w.I32(8).Raw("\x01").Raw(R"({"a":1})");  // JSON goes to jsonb by default: version 1, text
  std::string expected = w.s;
  Wire nulls;
  nulls.I16(16).I32(1).Raw(Hex("00"));
  for (int c = 1; c < 16; ++c) nulls.Null();
  expected += nulls.s;
  EXPECT_EQ(ToHex(*out), ToHex(expected));
}

TEST(CopyEncoder, JsonTextIntoJsonAndJsonb) {
  Schema schema({{"j", DataType::Of(TypeId::kJson)}, {"s", DataType::Of(TypeId::kString)}});
  BatchBuilder b(schema);
  b.AppendBytes(0, "[1]");
  b.AppendBytes(1, "{}");
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto as_json = EncodeAll(**batch, {"json", "jsonb"});
  ASSERT_TRUE(as_json.ok()) << as_json.status().ToString();
  EXPECT_EQ(ToHex(*as_json), ToHex(Wire().I16(2).Field("[1]").Field("\x01{}").s));
  auto as_text = EncodeAll(**batch, {"text", "json"});
  ASSERT_TRUE(as_text.ok());
  EXPECT_EQ(ToHex(*as_text), ToHex(Wire().I16(2).Field("[1]").Field("{}").s));
}

TEST(CopyEncoder, FloatsKeepNanAndInfinityBitPatterns) {
  Schema schema({{"f4", DataType::Of(TypeId::kFloat32)}, {"f8", DataType::Of(TypeId::kFloat64)}});
  BatchBuilder b(schema);
  b.AppendDouble(0, std::numeric_limits<double>::infinity());
  b.AppendDouble(1, -std::numeric_limits<double>::infinity());
  b.AppendDouble(0, std::nan(""));
  b.AppendDouble(1, std::nan(""));
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok());
  Wire w;
  w.I16(2).I32(4).U32(0x7f800000).I32(8).I64(static_cast<int64_t>(0xfff0000000000000ULL));
  w.I16(2).I32(4).U32(0x7fc00000).I32(8).I64(0x7ff8000000000000LL);
  EXPECT_EQ(ToHex(*out), ToHex(w.s));
  // real into double precision widens the value, NaN included.
  auto widened = EncodeAll(**batch, {"double precision", "float8"});
  ASSERT_TRUE(widened.ok());
  EXPECT_EQ(ToHex(widened->substr(2, 12)), ToHex(Wire().I32(8).I64(0x7ff0000000000000LL).s));
}

TEST(CopyEncoder, UuidTextIsParsedAndRawUuidFormatsAsText) {
  Schema logical({{"u", DataType::Of(TypeId::kUuid)}});
  auto batch = MakeBatch({{"u", Strings({"0123ABCD-4567-89ab-cdef-0123456789AB", std::nullopt,
                                         "{00000000000000000000000000000001}"})}},
                         &logical);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Wire w;
  w.I16(1).Field(Hex("0123abcd456789abcdef0123456789ab"));
  w.I16(1).Null();
  w.I16(1).Field(Hex("00000000000000000000000000000001"));
  EXPECT_EQ(ToHex(*out), ToHex(w.s));

  BatchBuilder b(logical);
  b.AppendBytes(0, Hex("0123456789abcdef0011223344556677"));
  auto raw = b.Finish();
  ASSERT_TRUE(raw.ok());
  EXPECT_EQ(OnlyField(**raw, {"text"}), Wire().Field("01234567-89ab-cdef-0011-223344556677").s);
}

TEST(CopyEncoder, MalformedUuidTextIsADataErrorNamingTheValue) {
  Schema logical({{"id", DataType::Of(TypeId::kUuid)}});
  auto batch = MakeBatch({{"id", Strings({"00000000-0000-0000-0000-000000000001", "not-a-uuid"})}}, &logical);
  ASSERT_TRUE(batch.ok());
  auto encoder = CopyEncoder::Make(logical);
  ASSERT_TRUE(encoder.ok());
  std::string out = "keep";
  Status st = (*encoder)->Encode(**batch, &out);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kDataError);
  EXPECT_NE(st.message().find("'not-a-uuid'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("column \"id\", row 2"), std::string::npos) << st.message();
  EXPECT_EQ(out, "keep");  // nothing half-written is left behind
}

TEST(CopyEncoder, StringIntoUuidColumnIsParsed) {
  Schema schema({{"s", DataType::Of(TypeId::kString)}});
  BatchBuilder b(schema);
  b.AppendBytes(0, "ffffffff-ffff-ffff-ffff-ffffffffffff");
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(OnlyField(**batch, {"uuid"}), Wire().Field(std::string(16, '\xff')).s);
}

TEST(CopyEncoder, IntervalIsMicrosDaysMonths) {
  Schema schema({{"iv", DataType::Of(TypeId::kInterval)}});
  BatchBuilder b(schema);
  b.AppendInterval(0, -1, 2, -3500000LL);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  EXPECT_EQ(ToHex(OnlyField(**batch)), ToHex(Wire().I32(16).I64(-3500000).I32(2).I32(-1).s));
}

TEST(CopyEncoder, ListsBecomeOneDimensionalArrays) {
  // [1, NULL, 3], [], NULL, [42]
  TestArray child = Fixed<int32_t>("i", {1, std::nullopt, 3, 42});
  auto batch = MakeBatch(
      {{"a", List(child, {std::make_pair(0, 3), std::make_pair(3, 3), std::nullopt, std::make_pair(3, 4)})}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Wire first;
  first.I32(1).I32(1).U32(23).I32(3).I32(1);  // ndim, has nulls, int4, length, lower bound
  first.I32(4).I32(1).Null().I32(4).I32(3);
  Wire empty;
  empty.I32(0).I32(0).U32(23);
  Wire last;
  last.I32(1).I32(0).U32(23).I32(1).I32(1).I32(4).I32(42);
  Wire w;
  w.I16(1).Field(first.s);
  w.I16(1).Field(empty.s);
  w.I16(1).Null();
  w.I16(1).Field(last.s);
  EXPECT_EQ(ToHex(*out), ToHex(w.s));
}

TEST(CopyEncoder, ArrayElementOidFollowsTheTargetColumn) {
  TestArray child = Strings({"a", std::nullopt});
  auto batch = MakeBatch({{"a", List(child, {std::make_pair(0, 2)})}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  Wire array;
  array.I32(1).I32(1).U32(1043).I32(2).I32(1).Field("a").Null();
  EXPECT_EQ(ToHex(OnlyField(**batch, {"character varying(10)[]"})), ToHex(Wire().Field(array.s).s));
  Wire as_text;
  as_text.I32(1).I32(1).U32(25).I32(2).I32(1).Field("a").Null();
  EXPECT_EQ(ToHex(OnlyField(**batch)), ToHex(Wire().Field(as_text.s).s));
}

TEST(CopyEncoder, ListOfJsonIntoJsonbArrayAddsVersionBytes) {
  Schema logical({{"j", DataType::List(DataType::Of(TypeId::kJson))}});
  auto batch = MakeBatch({{"j", List(Strings({"1"}), {std::make_pair(0, 1)})}}, &logical);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  Wire array;
  array.I32(1).I32(0).U32(3802).I32(1).I32(1).Field(
      "\x01"
      "1");
  EXPECT_EQ(ToHex(OnlyField(**batch, {"jsonb[]"})), ToHex(Wire().Field(array.s).s));
}

TEST(CopyEncoder, ReadsSlicedArraysAndOtherStringLayouts) {
  TestArray ints = Fixed<int64_t>("l", {1, 2, 3});
  ints.offset = 1;
  TestArray wide = Strings({"skip", "bb", "ccc"}, "U");
  wide.offset = 1;
  TestArray views = pgtest::StringViews({"x", "short", "a string longer than twelve"});
  views.offset = 1;
  TestArray narrow = Strings({"0", "1", std::nullopt});
  narrow.offset = 1;
  auto batch = MakeBatch({{"i", ints}, {"w", wide}, {"v", views}, {"n", narrow}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  ASSERT_EQ((*batch)->num_rows(), 2);
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  Wire w;
  w.I16(4).I32(8).I64(2).Field("bb").Field("short").Field("1");
  w.I16(4).I32(8).I64(3).Field("ccc").Field("a string longer than twelve").Null();
  EXPECT_EQ(ToHex(*out), ToHex(w.s));
}

TEST(CopyEncoder, CopiesStringsOfEveryLength) {
  Schema schema({{"s", DataType::Of(TypeId::kString)}, {"j", DataType::Of(TypeId::kJson)}});
  BatchBuilder b(schema);
  Wire w;
  for (int n = 0; n <= 100; ++n) {
    std::string v;
    for (int i = 0; i < n; ++i) v += static_cast<char>('a' + (i * 7 + n) % 26);
    b.AppendBytes(0, v);
    b.AppendBytes(1, v);
    w.I16(2).Field(v).Field("\x01" + v);
  }
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto out = EncodeAll(**batch);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(*out == w.s);
}

TEST(CopyEncoder, EncodeAppendsToTheOutput) {
  Schema schema({{"a", DataType::Of(TypeId::kInt32)}});
  BatchBuilder b(schema);
  b.AppendInt(0, 1);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto encoder = CopyEncoder::Make(schema);
  ASSERT_TRUE(encoder.ok());
  std::string out = CopyEncoder::Header();
  ASSERT_TRUE((*encoder)->Encode(**batch, &out).ok());
  ASSERT_TRUE((*encoder)->Encode(**batch, &out).ok());
  Wire tuple;
  tuple.I16(1).I32(4).I32(1);
  EXPECT_EQ(out, CopyEncoder::Header() + tuple.s + tuple.s);
}

TEST(CopyEncoder, RejectsTargetsTheResultCannotBeLoadedInto) {
  Schema schema({{"name", DataType::Of(TypeId::kString)}});
  auto encoder = CopyEncoder::Make(schema, {"integer"});
  ASSERT_FALSE(encoder.ok());
  EXPECT_EQ(encoder.status().code(), StatusCode::kSchemaMismatch);
  EXPECT_NE(encoder.status().message().find("\"name\""), std::string::npos);
  EXPECT_NE(encoder.status().message().find("integer"), std::string::npos);

  Schema ts({{"t", DataType::Of(TypeId::kTimestamp)}});
  EXPECT_FALSE(CopyEncoder::Make(ts, {"timestamp with time zone"}).ok());
  EXPECT_TRUE(CopyEncoder::Make(ts, {"timestamp(3) without time zone"}).ok());
  Schema wide({{"n", DataType::Of(TypeId::kInt64)}});
  EXPECT_FALSE(CopyEncoder::Make(wide, {"integer"}).ok());
  Schema nested({{"n", DataType::List(DataType::List(DataType::Of(TypeId::kInt32)))}});
  EXPECT_FALSE(CopyEncoder::Make(nested).ok());
}

TEST(CopyEncoder, RejectsABatchWhoseLayoutDiffersFromTheSchema) {
  Schema schema({{"a", DataType::Of(TypeId::kInt64)}});
  auto encoder = CopyEncoder::Make(schema);
  ASSERT_TRUE(encoder.ok());
  Schema other({{"a", DataType::Of(TypeId::kInt32)}});
  BatchBuilder b(other);
  b.AppendInt(0, 1);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  std::string out;
  Status st = (*encoder)->Encode(**batch, &out);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("'i'"), std::string::npos) << st.message();
}

TEST(CopyEncoder, EncodesTheSameBytesFromManyThreads) {
  Schema schema({{"a", DataType::Of(TypeId::kInt64)},
                 {"s", DataType::Of(TypeId::kString)},
                 {"d", DataType::Decimal(12, 2)}});
  BatchBuilder b(schema);
  for (int i = 0; i < 5000; ++i) {
    b.AppendInt(0, i);
    b.AppendBytes(1, "row " + std::to_string(i));
    if (i % 7 == 0) {
      b.AppendNull(2);
    } else {
      b.AppendInt(2, i * 101 - 7000);
    }
  }
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto encoder = CopyEncoder::Make(schema);
  ASSERT_TRUE(encoder.ok());
  std::string expected;
  ASSERT_TRUE((*encoder)->Encode(**batch, &expected).ok());
  std::vector<std::string> outs(4);
  std::vector<std::thread> threads;
  for (auto& out : outs) {
    threads.emplace_back([&] {
      for (int k = 0; k < 20; ++k) {
        out.clear();
        if (!(*encoder)->Encode(**batch, &out).ok()) out = "error";
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& out : outs) EXPECT_TRUE(out == expected);
}

TEST(PgTypes, CreateTableNamesForEveryType) {
  auto name = [](const DataType& t) { return PgTypeNameFor(t).ValueOr("error"); };
  EXPECT_EQ(name(DataType::Of(TypeId::kBool)), "boolean");
  EXPECT_EQ(name(DataType::Of(TypeId::kInt16)), "smallint");
  EXPECT_EQ(name(DataType::Of(TypeId::kInt32)), "integer");
  EXPECT_EQ(name(DataType::Of(TypeId::kInt64)), "bigint");
  EXPECT_EQ(name(DataType::Of(TypeId::kFloat32)), "real");
  EXPECT_EQ(name(DataType::Of(TypeId::kFloat64)), "double precision");
  EXPECT_EQ(name(DataType::Decimal(12, 2)), "numeric(12,2)");
  EXPECT_EQ(name(DataType::Of(TypeId::kString)), "text");
  EXPECT_EQ(name(DataType::Of(TypeId::kBinary)), "bytea");
  EXPECT_EQ(name(DataType::Of(TypeId::kDate)), "date");
  EXPECT_EQ(name(DataType::Of(TypeId::kTime)), "time");
  EXPECT_EQ(name(DataType::Of(TypeId::kTimestamp)), "timestamp");
  EXPECT_EQ(name(DataType::Of(TypeId::kTimestampTz)), "timestamptz");
  EXPECT_EQ(name(DataType::Of(TypeId::kInterval)), "interval");
  EXPECT_EQ(name(DataType::Of(TypeId::kUuid)), "uuid");
  EXPECT_EQ(name(DataType::Of(TypeId::kJson)), "jsonb");
  EXPECT_EQ(name(DataType::List(DataType::Of(TypeId::kInt64))), "bigint[]");
  EXPECT_EQ(name(DataType::List(DataType::List(DataType::Of(TypeId::kInt64)))), "error");
}

TEST(PgTypes, ParsesFormatTypeSpellings) {
  EXPECT_EQ(ParsePgTypeName("character varying(20)").kind, PgKind::kVarchar);
  EXPECT_EQ(ParsePgTypeName("timestamp(3) with time zone").kind, PgKind::kTimestampTz);
  EXPECT_EQ(ParsePgTypeName("time without time zone").kind, PgKind::kTime);
  EXPECT_EQ(ParsePgTypeName("interval day to second").kind, PgKind::kInterval);
  EXPECT_EQ(ParsePgTypeName("NUMERIC(38, 0)").kind, PgKind::kNumeric);
  EXPECT_EQ(ParsePgTypeName("\"char\"").kind, PgKind::kOther);
  PgType arr = ParsePgTypeName("character varying(5)[]");
  EXPECT_TRUE(arr.array);
  EXPECT_EQ(arr.kind, PgKind::kVarchar);
  EXPECT_EQ(arr.element_oid, 1043u);
}

}  // namespace
}  // namespace sluice
