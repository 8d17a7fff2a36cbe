// Several input files: a glob or a directory loads every matching file
// exactly once, whatever its compression, and errors name the file at fault.
#include <string>

#include "e2e/e2e_support.h"
#include "harness/subprocess.h"

namespace sluice::e2e {
namespace {

using std::string;

class FilesToPostgres : public PgTest {
 protected:
  /// in/part-N.csv with ids (N-1)*1000+1 .. N*1000.
  string WritePart(int n, const string& extra_row = "") {
    string data = "id,name,amount\n";
    for (int i = (n - 1) * 1000 + 1; i <= n * 1000; ++i) {
      data += std::to_string(i) + ",p" + std::to_string(n) + "," + std::to_string(i % 100) + ".00\n";
      if (i == (n - 1) * 1000 + 2 && !extra_row.empty()) data += extra_row + "\n";
    }
    return dir_.Write("in/part-" + std::to_string(n) + ".csv", data);
  }
  CliResult Load(const string& path) {
    return RunPipeline(dir_, SimpleCsvSource(path) + PgDestination(url_, "items") + EngineSection());
  }
};

TEST_F(FilesToPostgres, GlobLoadsEveryMatchingFileOnceWhateverItsCompression) {
  WritePart(1);
  string p2 = WritePart(2);
  string p3 = WritePart(3);
  ASSERT_EQ(sluice::testing::RunSubprocess({"gzip", p2}).exit_code, 0);
  ASSERT_EQ(sluice::testing::RunSubprocess({"zstd", "-q", "--rm", p3}).exit_code, 0);
  dir_.Write("in/other.txt", "not,a,match\n");
  CliResult r = Load(dir_.Path("in/part-*.csv*"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("items"), 3000);
  EXPECT_EQ(Scalar("SELECT count(DISTINCT id)::text || ' ' || min(id)::text || ' ' || max(id)::text FROM items"),
            "3000 1 3000");
  EXPECT_EQ(Scalar("SELECT string_agg(name || ':' || n::text, ',' ORDER BY name) FROM "
                   "(SELECT name, count(*) AS n FROM items GROUP BY name) x"),
            "p1:1000,p2:1000,p3:1000");
}

TEST_F(FilesToPostgres, DirectoryLoadsEveryFileButHiddenOnes) {
  WritePart(1);
  WritePart(2);
  dir_.Write("in/.part-9.csv.partial", "id,name,amount\n9999,hidden,1.00\n");
  CliResult r = Load(dir_.Path("in"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("items"), 2000);
  EXPECT_EQ(Scalar("SELECT count(*) FROM items WHERE name = 'hidden'"), "0");
}

TEST_F(FilesToPostgres, BadRowInOneOfSeveralFilesNamesThatFileAndLine) {
  WritePart(1);
  string bad = WritePart(2, "oops,oops,1.00");  // line 4 of part-2.csv
  WritePart(3);
  Exec("CREATE TABLE items (id bigint, name text, amount numeric(12,2))");
  CliResult r = Load(dir_.Path("in/part-*.csv"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find(bad + " line 4"), string::npos) << Describe(r);
  EXPECT_EQ(Count("items"), 0);
}

TEST_F(FilesToPostgres, GlobMatchingNothingFailsNamingThePattern) {
  string pattern = dir_.Path("in/nothing-*.csv");
  CliResult r = Load(pattern);
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find(pattern), string::npos) << Describe(r);
  EXPECT_FALSE(PgTableExists(*pg_, db_, "items"));
}

}  // namespace
}  // namespace sluice::e2e
