// Load modes (append, replace, upsert) against PostgreSQL and DuckDB
// destinations: the same behaviour is expected of both.
#include <string>

#include "e2e/e2e_support.h"

namespace sluice::e2e {
namespace {

class LoadModes : public EachDestination {
 protected:
  /// Loads csv (id,name) with the given mode; key_toml is e.g. `key = ["id"]`.
  CliResult Load(const std::string& csv, const std::string& mode, const std::string& key_toml = "") {
    std::string file = dir_.Write("in" + std::to_string(++loads_) + ".csv", csv);
    std::string toml = "[source]\ntype = \"files\"\npath = '" + file +
                       "'\nheader = true\ncolumns = { id = \"BIGINT\", name = \"VARCHAR\" }\n" +
                       Destination(mode, key_toml) + EngineSection();
    return RunPipeline(dir_, toml);
  }

  static std::string Csv(int64_t first, int64_t n, const std::string& prefix) {
    std::string out = "id,name\n";
    for (int64_t i = first; i < first + n; ++i) out += std::to_string(i) + "," + prefix + std::to_string(i) + "\n";
    return out;
  }

  int loads_ = 0;
};

TEST_P(LoadModes, AppendTwiceDoublesRows) {
  std::string csv = Csv(1, 1000, "n");
  CliResult first = Load(csv, "append");
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "1000");
  CliResult second = Load(csv, "append");
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "2000");
  EXPECT_EQ(Scalar("SELECT count(DISTINCT id) FROM {T}"), "1000");
  EXPECT_EQ(Scalar("SELECT count(*) FROM (SELECT id FROM {T} GROUP BY id HAVING count(*) <> 2) x"), "0");
}

TEST_P(LoadModes, ReplaceSwapsContents) {
  CliResult first = Load(Csv(1, 100, "old"), "replace");
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "100");
  CliResult second = Load(Csv(501, 50, "new"), "replace");
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "50");
  EXPECT_EQ(Scalar("SELECT min(id)::text || '-' || max(id)::text FROM {T}"), "501-550");
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T} WHERE name LIKE 'old%'"), "0");
}

TEST_P(LoadModes, ReplaceWithEmptyInputEmptiesTheTable) {
  ASSERT_EQ(Load(Csv(1, 10, "old"), "replace").exit_code, 0);
  CliResult r = Load("id,name\n", "replace");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "0");
}

TEST_P(LoadModes, UpsertUpdatesExistingKeysAndInsertsNewOnes) {
  CliResult first = Load(Csv(1, 5, "v1-"), "upsert", "key = [\"id\"]");
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  CliResult second = Load("id,name\n4,four-new\n5,five-new\n6,six\n7,seven\n", "upsert", "key = [\"id\"]");
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "7");
  EXPECT_EQ(Scalar("SELECT string_agg(id::text || '=' || name, ',' ORDER BY id) FROM {T}"),
            "1=v1-1,2=v1-2,3=v1-3,4=four-new,5=five-new,6=six,7=seven");
}

TEST_P(LoadModes, UpsertLastOfDuplicateKeysInOneLoadWins) {
  ASSERT_EQ(Load("id,name\n1,one\n3,three\n", "upsert", "key = [\"id\"]").exit_code, 0);
  CliResult r = Load("id,name\n1,first\n2,x\n1,second\n2,y\n1,third\n", "upsert", "key = [\"id\"]");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT string_agg(id::text || '=' || name, ',' ORDER BY id) FROM {T}"), "1=third,2=y,3=three");
}

// The same rule across a file big enough to be read by several threads:
// the row that comes last in the file wins, whatever order batches finish in.
TEST_P(LoadModes, UpsertLastOfDuplicateKeysWinsAcrossALargeFile) {
  ASSERT_EQ(Load("id,name\n0,seed\n", "upsert", "key = [\"id\"]").exit_code, 0);
  std::string csv = "id,name\n";
  const int64_t kRows = 400000, kKeys = 1000;
  csv.reserve(static_cast<size_t>(kRows) * 16);
  for (int64_t i = 0; i < kRows; ++i) csv += std::to_string(i % kKeys) + ",v" + std::to_string(i) + "\n";
  CliResult r = Load(csv, "upsert", "key = [\"id\"]");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), std::to_string(kKeys));
  // Key k's last row is v(kRows - kKeys + k).
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T} WHERE name <> 'v' || (" + std::to_string(kRows - kKeys) + " + id)::text"),
            "0");
}

TEST_P(LoadModes, UpsertWithoutKeyIsAConfigErrorAndCreatesNothing) {
  CliResult r = Load(Csv(1, 3, "n"), "upsert");
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("key"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("upsert"), std::string::npos) << Describe(r);
  EXPECT_FALSE(TableExists());
}

TEST_P(LoadModes, UnknownModeIsAConfigError) {
  CliResult r = Load(Csv(1, 3, "n"), "merge");
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("merge"), std::string::npos) << Describe(r);
  EXPECT_FALSE(TableExists());
}

INSTANTIATE_TEST_SUITE_P(Destinations, LoadModes, AllDestinations());

}  // namespace
}  // namespace sluice::e2e
