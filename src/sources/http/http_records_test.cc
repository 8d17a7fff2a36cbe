#include "sources/http/http_records.h"

#include <gtest/gtest.h>

namespace sluice::sources {
namespace {

const ResponseMeta kMeta{"http://h/e/1?token=***", 200, "2026-12-06T10:00:00.000Z"};
const std::string kPrefix =
    R"({"_url":"http://h/e/1?token=***","_status":200,"_fetched_at":"2026-12-06T10:00:00.000Z")";

Result<int64_t> Convert(std::string_view body, HttpBodyFormat format, std::string_view records,
                        std::string* out) {
  return AppendRecordsAsJsonLines(body, format, records, kMeta, out);
}

TEST(HttpRecords, AnObjectIsOneRowWithTheSourceColumnsFirst) {
  std::string out;
  auto n = Convert(R"({"id": 7, "temp": 21.5, "tags": ["a"], "x": null})", HttpBodyFormat::kJson, "", &out);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1);
  EXPECT_EQ(out, kPrefix + R"(,"id":7,"tags":["a"],"temp":21.5,"x":null})" + "\n");
}

TEST(HttpRecords, AnArrayOfObjectsIsOneRowEach) {
  std::string out;
  auto n = Convert(R"([{"id": 1}, {"id": 2}, {"id": 3}])", HttpBodyFormat::kJson, "", &out);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 3);
}

TEST(HttpRecords, RecordsPathFindsAWrappedArray) {
  std::string out;
  auto n = Convert(R"({"data": {"items": [{"id": 1}, {"id": 2}]}, "next": null})", HttpBodyFormat::kJson,
                   "data.items", &out);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2);
  auto missing = Convert(R"({"data": {}})", HttpBodyFormat::kJson, "data.items", &out);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("records path \"data.items\" not found"), std::string::npos);
}

TEST(HttpRecords, InvalidJsonIsADataErrorAndWritesNothing) {
  std::string out = "kept\n";
  auto n = Convert(R"({"id": 1,)", HttpBodyFormat::kJson, "", &out);
  ASSERT_FALSE(n.ok());
  EXPECT_EQ(n.status().code(), StatusCode::kDataError);
  EXPECT_NE(n.status().message().find("invalid JSON"), std::string::npos) << n.status().message();
  EXPECT_EQ(out, "kept\n");
  auto scalar = Convert(R"([{"id": 1}, 5])", HttpBodyFormat::kJson, "", &out);
  ASSERT_FALSE(scalar.ok());
  EXPECT_NE(scalar.status().message().find("record 2 of the response is number"), std::string::npos);
  EXPECT_EQ(out, "kept\n");
}

TEST(HttpRecords, OwnColumnsWinOverFieldsOfTheSameName) {
  std::string out;
  ASSERT_TRUE(Convert(R"({"_url": "spoofed", "_status": 1, "id": 1})", HttpBodyFormat::kJson, "", &out).ok());
  EXPECT_EQ(out, kPrefix + R"(,"id":1})" + "\n");
}

TEST(HttpRecords, JsonLinesSkipBlankLinesAndNameTheBadOne) {
  std::string out;
  auto n = Convert("{\"id\":1}\n\n{\"id\":2}\n", HttpBodyFormat::kJsonl, "", &out);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 2);
  auto bad = Convert("{\"id\":1}\n[1]\n", HttpBodyFormat::kJsonl, "", &out);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("line 2"), std::string::npos);
}

TEST(HttpRecords, CsvTypesNumbersAndNullsAndHonoursQuotes) {
  std::string out;
  auto n = Convert("id,temp,name\n1,21.5,\"Oslo, \"\"N\"\"\"\n2,,007\n", HttpBodyFormat::kCsv, "", &out);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 2);
  EXPECT_EQ(out, kPrefix + R"(,"id":1,"temp":21.5,"name":"Oslo, \"N\""})" + "\n" + kPrefix +
                     R"(,"id":2,"temp":null,"name":"007"})" + "\n");
  auto ragged = Convert("a,b\n1\n", HttpBodyFormat::kCsv, "", &out);
  ASSERT_FALSE(ragged.ok());
  EXPECT_NE(ragged.status().message().find("line 2 has 1 fields"), std::string::npos);
}

TEST(HttpRecords, FormatNames) {
  EXPECT_EQ(ParseHttpBodyFormat("ndjson").value(), HttpBodyFormat::kJsonl);
  EXPECT_FALSE(ParseHttpBodyFormat("xml").ok());
}

}  // namespace
}  // namespace sluice::sources
