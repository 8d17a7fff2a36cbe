#include "destinations/http/json_rows.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "destinations/postgres/test_arrow_arrays.h"

namespace sluice::destinations {
namespace {

using pgtest::Decimal128;
using pgtest::Fixed;
using pgtest::List;
using pgtest::MakeBatch;
using pgtest::Strings;
using pgtest::StringViews;

Schema OneColumn(DataType type, std::string name = "v") {
  return Schema({Field{std::move(name), type, true}});
}

/// The JSON of every row of `batch`, one string per row.
std::vector<std::string> Rows(const Batch& batch, DecimalFormat decimals = DecimalFormat::kNumber) {
  JsonRowEncoder encoder(batch.schema(), decimals);
  Status layout = encoder.CheckLayout(batch);
  EXPECT_TRUE(layout.ok()) << layout.ToString();
  std::vector<std::string> rows;
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    std::string out;
    encoder.AppendRow(batch, r, &out);
    EXPECT_TRUE(nlohmann::json::accept(out)) << out;
    EXPECT_EQ(out.find('\n'), std::string::npos) << out;
    rows.push_back(out);
  }
  return rows;
}

std::shared_ptr<Batch> Finish(BatchBuilder& b) {
  auto batch = b.Finish();
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return std::move(batch).value();
}

TEST(JsonRowEncoder, RowIsAnObjectKeyedByColumnNameInSchemaOrder) {
  BatchBuilder b(Schema({Field{"id", DataType::Of(TypeId::kInt64), false},
                         Field{"name \"q\"", DataType::Of(TypeId::kString), true},
                         Field{"ok", DataType::Of(TypeId::kBool), true}}));
  b.AppendInt(0, 7);
  b.AppendBytes(1, "x");
  b.AppendBool(2, true);
  b.AppendInt(0, -8);
  b.AppendNull(1);
  b.AppendBool(2, false);
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"id":7,"name \"q\"":"x","ok":true})");
  EXPECT_EQ(rows[1], R"({"id":-8,"name \"q\"":null,"ok":false})");
}

TEST(JsonRowEncoder, IntegersOfEveryWidthAreNumbers) {
  BatchBuilder b(
      Schema({Field{"a", DataType::Of(TypeId::kInt16), true}, Field{"b", DataType::Of(TypeId::kInt32), true},
              Field{"c", DataType::Of(TypeId::kInt64), true}}));
  b.AppendInt(0, -32768);
  b.AppendInt(1, 2147483647);
  b.AppendInt(2, std::numeric_limits<int64_t>::min());
  EXPECT_EQ(Rows(*Finish(b))[0], R"({"a":-32768,"b":2147483647,"c":-9223372036854775808})");
}

TEST(JsonRowEncoder, FloatsAreShortestRoundTripAndNonFiniteIsNull) {
  BatchBuilder b(Schema(
      {Field{"d", DataType::Of(TypeId::kFloat64), true}, Field{"f", DataType::Of(TypeId::kFloat32), true}}));
  for (auto [d, f] : std::vector<std::pair<double, double>>{{0.1, 0.1},
                                                            {1e300, 3.5},
                                                            {std::nan(""), std::nan("")},
                                                            {INFINITY, -INFINITY},
                                                            {-0.0, 16777216.0}}) {
    b.AppendDouble(0, d);
    b.AppendDouble(1, f);
  }
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"d":0.1,"f":0.1})");  // float32 0.1 too, not 0.10000000149011612
  EXPECT_EQ(rows[1], R"({"d":1e+300,"f":3.5})");
  EXPECT_EQ(rows[2], R"({"d":null,"f":null})");
  EXPECT_EQ(rows[3], R"({"d":null,"f":null})");
  EXPECT_EQ(rows[4], R"({"d":-0,"f":16777216})");
}

TEST(JsonRowEncoder, DecimalsKeepEveryDigitAndTheirScale) {
  BatchBuilder b(OneColumn(DataType::Decimal(12, 2)));
  b.AppendInt(0, 1250);
  b.AppendInt(0, -5);
  b.AppendInt(0, 0);
  b.AppendInt(0, 100);
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"v":12.50})");
  EXPECT_EQ(rows[1], R"({"v":-0.05})");
  EXPECT_EQ(rows[2], R"({"v":0.00})");
  EXPECT_EQ(rows[3], R"({"v":1.00})");
}

TEST(JsonRowEncoder, DecimalsAsStringsWhenAsked) {
  BatchBuilder b(OneColumn(DataType::Decimal(12, 2)));
  b.AppendInt(0, 1250);
  b.AppendNull(0);
  auto rows = Rows(*Finish(b), DecimalFormat::kString);
  EXPECT_EQ(rows[0], R"({"v":"12.50"})");
  EXPECT_EQ(rows[1], R"({"v":null})");
}

TEST(JsonRowEncoder, Decimal128BeyondSixtyFourBits) {
  __int128 big = static_cast<__int128>(1) << 100;  // 1267650600228229401496703205376
  auto batch = MakeBatch({{"v", Decimal128(38, 10, {big, -big, std::nullopt})}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  auto rows = Rows(**batch);
  EXPECT_EQ(rows[0], R"({"v":126765060022822940149.6703205376})");
  EXPECT_EQ(rows[1], R"({"v":-126765060022822940149.6703205376})");
  EXPECT_EQ(rows[2], R"({"v":null})");
}

TEST(JsonRowEncoder, DecimalTextHandlesScalesAroundTheDigits) {
  EXPECT_EQ(DecimalText(1250, 2), "12.50");
  EXPECT_EQ(DecimalText(-5, 3), "-0.005");
  EXPECT_EQ(DecimalText(5, 1), "0.5");
  EXPECT_EQ(DecimalText(0, 0), "0");
  EXPECT_EQ(DecimalText(7, -2), "700");
  EXPECT_EQ(DecimalText(0, -2), "0");
  __int128 min = static_cast<__int128>(static_cast<unsigned __int128>(1) << 127);
  EXPECT_EQ(DecimalText(min, 0), "-170141183460469231731687303715884105728");
}

TEST(JsonRowEncoder, StringsAreEscapedAndInvalidUtf8Replaced) {
  BatchBuilder b(OneColumn(DataType::Of(TypeId::kString)));
  b.AppendBytes(0, "a\"b\\c\nd\re\tf");
  b.AppendBytes(0, std::string("\x01\x1f\x7f", 3));
  b.AppendBytes(0, std::string("nul\0x", 5));
  b.AppendBytes(0, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");  // valid: é € 😀
  b.AppendBytes(0,
                "a\xFF"
                "b");                // invalid byte
  b.AppendBytes(0, "\xE2\x82");      // truncated sequence
  b.AppendBytes(0, "\xED\xA0\x80");  // a surrogate
  b.AppendBytes(0, "\xC0\xAF");      // overlong
  b.AppendBytes(0, "");
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"v":"a\"b\\c\nd\re\tf"})");
  EXPECT_EQ(rows[1], "{\"v\":\"\\u0001\\u001f\x7f\"}");
  EXPECT_EQ(rows[2], R"({"v":"nul\u0000x"})");
  EXPECT_EQ(rows[3], "{\"v\":\"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\"}");
  EXPECT_EQ(rows[4],
            "{\"v\":\"a\xEF\xBF\xBD"
            "b\"}");
  EXPECT_EQ(rows[5], "{\"v\":\"\xEF\xBF\xBD\"}");  // one maximal subpart, one U+FFFD
  EXPECT_EQ(rows[6], "{\"v\":\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\"}");
  EXPECT_EQ(rows[7], "{\"v\":\"\xEF\xBF\xBD\xEF\xBF\xBD\"}");
  EXPECT_EQ(rows[8], R"({"v":""})");
  // What a JSON parser reads back is the original text.
  EXPECT_EQ(nlohmann::json::parse(rows[0])["v"], "a\"b\\c\nd\re\tf");
}

TEST(JsonRowEncoder, StringLayoutsWithLargeOffsetsAndViews) {
  auto batch = MakeBatch({{"wide", Strings({"a", std::nullopt, "ccc"}, "U")},
                          {"view", StringViews({"short", "a string longer than twelve", std::nullopt})}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  auto rows = Rows(**batch);
  EXPECT_EQ(rows[0], R"({"wide":"a","view":"short"})");
  EXPECT_EQ(rows[1], R"({"wide":null,"view":"a string longer than twelve"})");
  EXPECT_EQ(rows[2], R"({"wide":"ccc","view":null})");
}

TEST(JsonRowEncoder, BinaryIsBase64) {
  BatchBuilder b(OneColumn(DataType::Of(TypeId::kBinary)));
  for (std::string v : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) b.AppendBytes(0, v);
  b.AppendBytes(0, std::string("\0\xff\xfe", 3));
  auto rows = Rows(*Finish(b));
  std::vector<std::string> expected = {"",         "Zg==",     "Zm8=",     "Zm9v",
                                       "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy", "AP/+"};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(rows[i], "{\"v\":\"" + expected[i] + "\"}");
}

TEST(JsonRowEncoder, DatesAreIso8601IncludingFarYearsAndInfinity) {
  BatchBuilder b(OneColumn(DataType::Of(TypeId::kDate)));
  b.AppendInt(0, 19724);        // 2024-01-02
  b.AppendInt(0, 0);            // 1970-01-01
  b.AppendInt(0, -719528);      // 0000-01-01
  b.AppendInt(0, -719529);      // -0001-12-31
  b.AppendInt(0, 2932897);      // 10000-01-01
  b.AppendInt(0, 2147483647);   // infinity
  b.AppendInt(0, -2147483647);  // -infinity
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"v":"2024-01-02"})");
  EXPECT_EQ(rows[1], R"({"v":"1970-01-01"})");
  EXPECT_EQ(rows[2], R"({"v":"0000-01-01"})");
  EXPECT_EQ(rows[3], R"({"v":"-0001-12-31"})");
  EXPECT_EQ(rows[4], R"({"v":"+10000-01-01"})");
  EXPECT_EQ(rows[5], R"({"v":"infinity"})");
  EXPECT_EQ(rows[6], R"({"v":"-infinity"})");
}

TEST(JsonRowEncoder, TimesTrimTrailingZerosOfTheFraction) {
  BatchBuilder b(OneColumn(DataType::Of(TypeId::kTime)));
  constexpr int64_t kS = 1000000;
  b.AppendInt(0, (3 * 3600 + 4 * 60 + 5) * kS + 123456);
  b.AppendInt(0, (3 * 3600 + 4 * 60 + 5) * kS + 500000);
  b.AppendInt(0, (3 * 3600 + 4 * 60 + 5) * kS);
  b.AppendInt(0, 1);
  b.AppendInt(0, 24 * 3600 * kS);
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"v":"03:04:05.123456"})");
  EXPECT_EQ(rows[1], R"({"v":"03:04:05.5"})");
  EXPECT_EQ(rows[2], R"({"v":"03:04:05"})");
  EXPECT_EQ(rows[3], R"({"v":"00:00:00.000001"})");
  EXPECT_EQ(rows[4], R"({"v":"24:00:00"})");
}

TEST(JsonRowEncoder, TimestampsAreIso8601AndTimestamptzEndsInZ) {
  BatchBuilder b(Schema({Field{"ts", DataType::Of(TypeId::kTimestamp), true},
                         Field{"tz", DataType::Of(TypeId::kTimestampTz), true}}));
  int64_t t = 1704164645123456;  // 2024-01-02T03:04:05.123456Z
  b.AppendInt(0, t);
  b.AppendInt(1, t);
  b.AppendInt(0, -1);  // one microsecond before the epoch
  b.AppendInt(1, 1704164645000000);
  b.AppendInt(0, std::numeric_limits<int64_t>::max());
  b.AppendInt(1, -std::numeric_limits<int64_t>::max());
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"ts":"2024-01-02T03:04:05.123456","tz":"2024-01-02T03:04:05.123456Z"})");
  EXPECT_EQ(rows[1], R"({"ts":"1969-12-31T23:59:59.999999","tz":"2024-01-02T03:04:05Z"})");
  EXPECT_EQ(rows[2], R"({"ts":"infinity","tz":"-infinity"})");
}

TEST(JsonRowEncoder, IntervalsAreIso8601Durations) {
  BatchBuilder b(OneColumn(DataType::Of(TypeId::kInterval)));
  b.AppendInterval(0, 1, 2, 3500000);  // P1M2DT3.5S
  b.AppendInterval(0, 14, 0, 0);       // P1Y2M
  b.AppendInterval(0, 0, 0, 0);        // PT0S
  b.AppendInterval(0, 0, 0, (4 * 3600 + 5 * 60 + 6) * 1000000LL);
  b.AppendInterval(0, -1, -2, -3500000);        // each part negative
  b.AppendInterval(0, 0, 0, 500000);            // PT0.5S
  b.AppendInterval(0, 0, 0, 3600 * 1000000LL);  // PT1H
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"v":"P1M2DT3.5S"})");
  EXPECT_EQ(rows[1], R"({"v":"P1Y2M"})");
  EXPECT_EQ(rows[2], R"({"v":"PT0S"})");
  EXPECT_EQ(rows[3], R"({"v":"PT4H5M6S"})");
  EXPECT_EQ(rows[4], R"({"v":"P-1M-2DT-3.5S"})");
  EXPECT_EQ(rows[5], R"({"v":"PT0.5S"})");
  EXPECT_EQ(rows[6], R"({"v":"PT1H"})");
}

TEST(JsonRowEncoder, UuidsAreCanonicalTextFromEitherLayout) {
  BatchBuilder b(OneColumn(DataType::Of(TypeId::kUuid)));
  b.AppendBytes(0, std::string("\x0f\x8f\xad\x5b\xd9\xcb\x46\x9f\xa1\x65\x70\x86\x77\x28\x95\x0e", 16));
  b.AppendNull(0);
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"v":"0f8fad5b-d9cb-469f-a165-70867728950e"})");
  EXPECT_EQ(rows[1], R"({"v":null})");

  Schema logical = OneColumn(DataType::Of(TypeId::kUuid));
  auto text = MakeBatch({{"v", Strings({"0F8FAD5B-D9CB-469F-A165-70867728950E",
                                        "{0f8fad5bd9cb469fa16570867728950e}", "not-a-uuid"})}},
                        &logical);
  ASSERT_TRUE(text.ok()) << text.status().ToString();
  auto text_rows = Rows(**text);
  EXPECT_EQ(text_rows[0], R"({"v":"0f8fad5b-d9cb-469f-a165-70867728950e"})");
  EXPECT_EQ(text_rows[1], R"({"v":"0f8fad5b-d9cb-469f-a165-70867728950e"})");
  EXPECT_EQ(text_rows[2], R"({"v":"not-a-uuid"})");
}

TEST(JsonRowEncoder, JsonIsEmbeddedOnOneLineAndInvalidJsonBecomesAString) {
  BatchBuilder b(OneColumn(DataType::Of(TypeId::kJson)));
  b.AppendBytes(0, R"({"a":[1,2.50,"x\ny"],"b":null})");
  b.AppendBytes(0, "{\n  \"a\": 1\r\n}");
  b.AppendBytes(0, "42");
  b.AppendBytes(0, "{not json");
  b.AppendBytes(0, "");
  auto rows = Rows(*Finish(b));
  EXPECT_EQ(rows[0], R"({"v":{"a":[1,2.50,"x\ny"],"b":null}})");
  EXPECT_EQ(rows[1], R"({"v":{   "a": 1  }})");
  EXPECT_EQ(rows[2], R"({"v":42})");
  EXPECT_EQ(rows[3], R"({"v":"{not json"})");
  EXPECT_EQ(rows[4], R"({"v":""})");
}

TEST(JsonRowEncoder, ListsAreArraysWithNullElements) {
  auto child = Fixed<int64_t>("l", {1, std::nullopt, 3, 4});
  auto batch = MakeBatch(
      {{"v", List(child, {std::make_pair(0, 3), std::make_pair(3, 3), std::nullopt, std::make_pair(3, 4)})}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  auto rows = Rows(**batch);
  EXPECT_EQ(rows[0], R"({"v":[1,null,3]})");
  EXPECT_EQ(rows[1], R"({"v":[]})");
  EXPECT_EQ(rows[2], R"({"v":null})");
  EXPECT_EQ(rows[3], R"({"v":[4]})");
}

TEST(JsonRowEncoder, ListsOfStringsAndDecimals) {
  auto strings = MakeBatch({{"s", List(Strings({"a\"", std::nullopt}), {std::make_pair(0, 2)})},
                            {"d", List(Decimal128(10, 3, {1500, -1}), {std::make_pair(0, 2)})}});
  ASSERT_TRUE(strings.ok()) << strings.status().ToString();
  EXPECT_EQ(Rows(**strings)[0], R"({"s":["a\"",null],"d":[1.500,-0.001]})");
  EXPECT_EQ(Rows(**strings, DecimalFormat::kString)[0], R"({"s":["a\"",null],"d":["1.500","-0.001"]})");
}

TEST(JsonRowEncoder, SlicedArraysRespectTheirOffset) {
  auto column = Fixed<int32_t>("i", {10, 20, 30});
  column.offset = 1;
  auto batch = MakeBatch({{"v", column}});
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  auto rows = Rows(**batch);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0], R"({"v":20})");
  EXPECT_EQ(rows[1], R"({"v":30})");
}

TEST(JsonRowEncoder, UnsupportedLayoutIsReportedWithTheColumn) {
  Schema logical = OneColumn(DataType::Of(TypeId::kDate), "day");
  auto batch = MakeBatch({{"day", Fixed<int64_t>("tdm", {1})}}, &logical);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  JsonRowEncoder encoder((*batch)->schema(), DecimalFormat::kNumber);
  Status s = encoder.CheckLayout(**batch);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("column 'day'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'tdm'"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace sluice::destinations
