// Compressed inputs: .csv.gz and .csv.zst (made with the gzip and zstd
// tools) load exactly the rows of the plain file.
#include <string>

#include "e2e/e2e_support.h"
#include "harness/subprocess.h"

namespace sluice::e2e {
namespace {

using std::string;

/// Writes data.csv and its .csv.gz and .csv.zst copies; returns the plain path.
string WriteCompressedTrio(const TempDir& dir, int64_t rows) {
  string plain = dir.Path("data.csv");
  string data = "id,name,amount,note\n";
  for (int64_t i = 1; i <= rows; ++i) {
    data += std::to_string(i) + ",name_" + std::to_string(i) + "," + std::to_string(i % 977) + ".5," +
            (i % 10 == 0 ? "\"multi\nline, ünïcödé\"" : (i % 7 == 0 ? "" : "plain")) + "\n";
  }
  dir.Write("data.csv", data);
  auto gz = sluice::testing::RunSubprocess({"/bin/sh", "-c", "gzip -c \"$1\" > \"$1.gz\"", "sh", plain});
  EXPECT_EQ(gz.exit_code, 0) << gz.err;
  auto zst = sluice::testing::RunSubprocess({"zstd", "-q", "-f", plain, "-o", plain + ".zst"});
  EXPECT_EQ(zst.exit_code, 0) << zst.err;
  return plain;
}

string Source(const string& path) {
  return "[source]\ntype = \"files\"\npath = '" + path +
         "'\ncolumns = { id = \"BIGINT\", name = \"VARCHAR\", amount = \"DECIMAL(12,2)\", note = \"VARCHAR\" }\n";
}

constexpr int64_t kRows = 50'000;

class CompressedCsvToPostgres : public PgTest {};

TEST_F(CompressedCsvToPostgres, GzipAndZstdLoadTheSameRowsAsThePlainFile) {
  string plain = WriteCompressedTrio(dir_, kRows);
  for (const auto& [table, path] :
       std::vector<std::pair<string, string>>{{"plain", plain}, {"gz", plain + ".gz"}, {"zst", plain + ".zst"}}) {
    SCOPED_TRACE(path);
    CliResult r = RunPipeline(dir_, Source(path) + PgDestination(url_, table) + EngineSection());
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Count(table), kRows);
  }
  EXPECT_EQ(PgTableDiff(*pg_, db_, "gz", "plain"), "");
  EXPECT_EQ(PgTableDiff(*pg_, db_, "zst", "plain"), "");
  EXPECT_EQ(Scalar("SELECT note FROM zst WHERE id = 10"), "multi\nline, ünïcödé");
  EXPECT_EQ(Scalar("SELECT (note IS NULL)::text FROM gz WHERE id = 7"), "true");
}

TEST(CompressedCsvToDuckDb, GzipAndZstdLoadTheSameRowsAsThePlainFile) {
  TempDir dir("sluice-e2e");
  string plain = WriteCompressedTrio(dir, kRows);
  string out = dir.Path("out.duckdb");
  for (const auto& [table, path] :
       std::vector<std::pair<string, string>>{{"plain", plain}, {"gz", plain + ".gz"}, {"zst", plain + ".zst"}}) {
    SCOPED_TRACE(path);
    CliResult r = RunPipeline(dir, Source(path) + DuckDbDestination(out, table) + EngineSection());
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
  }
  auto e = Duck();
  ASSERT_NE(e, nullptr);
  DuckExec(*e, "ATTACH " + engine::QuoteLiteral(out) + " AS o (READ_ONLY)");
  for (const char* t : {"plain", "gz", "zst"}) {
    EXPECT_EQ(DuckScalar(*e, std::string("SELECT count(*) FROM o.") + t), std::to_string(kRows)) << t;
  }
  for (const char* t : {"gz", "zst"}) {
    string a = std::string("o.") + t;
    EXPECT_EQ(DuckScalar(*e, "SELECT count(*) FROM (SELECT * FROM " + a + " EXCEPT ALL SELECT * FROM o.plain)"), "0")
        << t;
    EXPECT_EQ(DuckScalar(*e, "SELECT count(*) FROM (SELECT * FROM o.plain EXCEPT ALL SELECT * FROM " + a + ")"), "0")
        << t;
  }
}

}  // namespace
}  // namespace sluice::e2e
