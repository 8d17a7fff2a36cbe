#include "sluice/config_table.h"

#include <gtest/gtest.h>

#include <map>

#include "config/config_document.h"

namespace sluice::config {
namespace {

std::unique_ptr<ConfigDocument> Parse(const std::string& toml, std::map<std::string, std::string> vars = {}) {
  auto doc =
      ConfigDocument::Parse(toml, "p.toml", [vars](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
      });
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return std::move(doc).value();
}

TEST(ConfigTable, GettersReadValuesWithUnitsAndInterpolation) {
  auto doc = Parse(R"TOML(
[destination]
url = "postgresql://u:${PW}@h/db"
port = 5432
port_text = "6543"
flag = "true"
tags = ["a", "b"]
one = "c"
size = "8MB"
wait = "250ms"
bare = 30
columns = { zeta = "BIGINT", alpha = "TEXT" }
[destination.retry]
max = 3
)TOML",
                   {{"PW", "pw"}});
  const ConfigTable& t = doc->Section("destination");
  EXPECT_EQ(t.GetString("url"), "postgresql://u:pw@h/db");
  EXPECT_EQ(t.GetInt("port", 0), 5432);
  EXPECT_EQ(t.GetInt("port_text", 0), 6543);
  EXPECT_TRUE(t.GetBool("flag", false));
  EXPECT_EQ(t.GetStringList("tags"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(t.GetStringList("one"), (std::vector<std::string>{"c"}));
  EXPECT_EQ(t.GetBytes("size", 0), 8000000);
  EXPECT_EQ(t.GetMillis("wait", 0), 250);
  EXPECT_EQ(t.GetMillis("bare", 0), 30000);
  auto columns = t.GetStringMap("columns");
  ASSERT_EQ(columns.size(), 2u);
  EXPECT_EQ(columns[0].first, "zeta");  // the order written, not sorted
  EXPECT_EQ(columns[1].first, "alpha");
  EXPECT_EQ(t.Section("retry").GetInt("max", 0), 3);
  EXPECT_EQ(t.GetString("absent", "fallback"), "fallback");
  EXPECT_EQ(t.GetInt("absent", 7), 7);
  EXPECT_TRUE(t.Check().ok()) << t.Check().ToString();
  EXPECT_TRUE(t.CheckAllRead("x").ok()) << t.CheckAllRead("x").ToString();
  EXPECT_EQ(t.Describe(), "[destination] in p.toml");
}

TEST(ConfigTable, TypeErrorsNameTheKeyAndLine) {
  auto doc = Parse("[source]\nname = \"x\"\ncount = \"many\"\n");
  const ConfigTable& t = doc->Section("source");
  EXPECT_EQ(t.GetInt("count", 1), 1);
  Status s = t.Check();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("[source] count must be a whole number"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("line 3"), std::string::npos) << s.message();
}

TEST(ConfigTable, KeysNeverReadAreErrorsListingTheAcceptedOnes) {
  auto doc = Parse("[destination]\ntype = \"counting\"\npath = \"x\"\nfoo = 1\n");
  const ConfigTable& t = doc->Section("destination");
  (void)t.GetString("type");
  (void)t.GetString("path");
  (void)t.GetInt("limit", 0);
  Status s = t.CheckAllRead("counting");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("[destination] unknown key 'foo' for type 'counting' (accepted: limit, path)"),
            std::string::npos)
      << s.message();
}

TEST(ConfigTable, SectionReachesSubTablesAndOtherSectionsOfTheFile) {
  auto doc = Parse("[destination]\npath = \"s3://b/k\"\n[s3]\nregion = \"eu\"\n");
  const ConfigTable& dest = doc->Section("destination");
  EXPECT_EQ(dest.Section("s3").GetString("region"), "eu");
  EXPECT_EQ(&dest.Section("s3"), &doc->Section("s3"));  // one table, shared by its readers
  EXPECT_TRUE(dest.Section("retry").Keys().empty());
  EXPECT_EQ(dest.Section("retry").Name(), "[destination.retry]");
  EXPECT_TRUE(doc->UnreadSections().empty());
}

TEST(ConfigTable, FailRecordsAValueErrorForTheFactory) {
  auto doc = Parse("[engine]\nthreads = -1\n");
  const ConfigTable& t = doc->Section("engine");
  if (t.GetInt("threads", 0) < 0) t.Fail("threads", "must not be negative");
  ASSERT_FALSE(t.Check().ok());
  EXPECT_NE(t.Check().message().find("[engine] threads must not be negative (p.toml line 2)"),
            std::string::npos)
      << t.Check().message();
}

TEST(ConfigTable, ValueErrorsOfInlineTableEntriesNameTheEntry) {
  auto doc = Parse("[source]\ncolumns = { id = 1 }\n");
  const ConfigTable& t = doc->Section("source");
  EXPECT_TRUE(t.GetStringMap("columns").empty());
  ASSERT_FALSE(t.Check().ok());
  EXPECT_NE(t.Check().message().find("[source] columns.id must be a string (p.toml line 2)"),
            std::string::npos)
      << t.Check().message();
}

}  // namespace
}  // namespace sluice::config
