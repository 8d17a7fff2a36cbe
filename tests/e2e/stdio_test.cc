// Standard input as a source (path = "-") and standard output as a
// destination.
#include <string>

#include "e2e/e2e_support.h"
#include "harness/subprocess.h"

namespace sluice::e2e {
namespace {

using std::string;

/// More than the 4 MB stdin sample, so rows also flow after type detection.
constexpr int64_t kStdinRows = 300'000;

string StdinCsv(int64_t n) {
  string out = "id,name,amount\n";
  out.reserve(static_cast<size_t>(n) * 28);
  for (int64_t i = 1; i <= n; ++i) {
    out += std::to_string(i) + ",name_" + std::to_string(i) + "," + std::to_string(i % 1000) + ".25\n";
  }
  return out;
}

string StdinJsonl(int64_t n) {
  string out;
  out.reserve(static_cast<size_t>(n) * 64);
  for (int64_t i = 1; i <= n; ++i) {
    out += "{\"id\": " + std::to_string(i) + ", \"name\": \"n\\\"" + std::to_string(i) +
           "\", \"tags\": [\"a\", \"b\"], \"at\": \"2024-01-02 03:04:05\"}\n";
  }
  return out;
}

const char* const kTransform =
    "[transform]\nsql = \"SELECT id, upper(name) AS name, amount * 2 AS doubled FROM input WHERE id % 2 = 0\"\n";

string StdinCsvSource() {
  return "[source]\ntype = \"files\"\npath = \"-\"\nformat = \"csv\"\nheader = true\n"
         "columns = { id = \"BIGINT\", name = \"VARCHAR\", amount = \"DECIMAL(12,2)\" }\n";
}

/// sum over even i of 2 * (i % 1000 + 0.25), as PostgreSQL/DuckDB print a DECIMAL(.., 2).
string ExpectedDoubledSum(int64_t n) {
  int64_t cents = 0;
  for (int64_t i = 2; i <= n; i += 2) cents += 2 * ((i % 1000) * 100 + 25);
  return std::to_string(cents / 100) + "." + (cents % 100 < 10 ? "0" : "") + std::to_string(cents % 100);
}

class StdinToPostgres : public PgTest {};

TEST_F(StdinToPostgres, CsvThroughTransformLoadsEveryRow) {
  CliOptions options;
  options.stdin_data = StdinCsv(kStdinRows);
  CliResult r =
      RunPipeline(dir_, StdinCsvSource() + kTransform + PgDestination(url_, "public.evens") + EngineSection(), options);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("evens"), kStdinRows / 2);
  EXPECT_EQ(Scalar("SELECT sum(id)::text FROM evens"), std::to_string(2 * (kStdinRows / 2) * (kStdinRows / 2 + 1) / 2));
  EXPECT_EQ(Scalar("SELECT sum(doubled)::text FROM evens"), ExpectedDoubledSum(kStdinRows));
  EXPECT_EQ(Scalar("SELECT name FROM evens WHERE id = 299998"), "NAME_299998");
}

TEST_F(StdinToPostgres, JsonlFromStdinLoadsEveryRow) {
  string jsonl = dir_.Write("in.jsonl", StdinJsonl(100'000));
  CliOptions options;
  options.stdin_file = jsonl;
  string toml = "[source]\ntype = \"files\"\npath = \"-\"\nformat = \"jsonl\"\n" +
                PgDestination(url_, "public.events") + EngineSection();
  CliResult r = RunPipeline(dir_, toml, options);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("events"), 100'000);
  EXPECT_EQ(Scalar("SELECT sum(id)::text FROM events"), std::to_string(100'000LL * 100'001 / 2));
  EXPECT_EQ(Scalar("SELECT name FROM events WHERE id = 77777"), "n\"77777");
  EXPECT_EQ(Scalar("SELECT tags::text FROM events WHERE id = 1"), "{a,b}");
}

class StdinToDuckDb : public ::testing::Test {
 protected:
  TempDir dir_{"sluice-e2e"};
};

TEST_F(StdinToDuckDb, CsvThroughTransformLoadsEveryRow) {
  string out = dir_.Path("out.duckdb");
  CliOptions options;
  options.stdin_data = StdinCsv(kStdinRows);
  CliResult r =
      RunPipeline(dir_, StdinCsvSource() + kTransform + DuckDbDestination(out, "evens") + EngineSection(), options);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(DuckFileScalar(out, "SELECT count(*) FROM o.evens"), std::to_string(kStdinRows / 2));
  EXPECT_EQ(DuckFileScalar(out, "SELECT sum(doubled)::VARCHAR FROM o.evens"), ExpectedDoubledSum(kStdinRows));
  EXPECT_EQ(DuckFileScalar(out, "SELECT name FROM o.evens WHERE id = 299998"), "NAME_299998");
}

TEST_F(StdinToDuckDb, JsonlFromStdinLoadsEveryRow) {
  string out = dir_.Path("out.duckdb");
  CliOptions options;
  options.stdin_file = dir_.Write("in.jsonl", StdinJsonl(100'000));
  string toml = "[source]\ntype = \"files\"\npath = \"-\"\nformat = \"jsonl\"\n" + DuckDbDestination(out, "events") +
                EngineSection();
  CliResult r = RunPipeline(dir_, toml, options);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(DuckFileScalar(out, "SELECT count(*) FROM o.events"), "100000");
  EXPECT_EQ(DuckFileScalar(out, "SELECT name FROM o.events WHERE id = 77777"), "n\"77777");
  EXPECT_EQ(DuckFileScalar(out, "SELECT len(tags) FROM o.events WHERE id = 5"), "2");
}

TEST_F(StdinToDuckDb, EmptyStdinFailsClearly) {
  string out = dir_.Path("out.duckdb");
  CliResult r = RunPipeline(dir_, StdinCsvSource() + DuckDbDestination(out, "t"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("stdin"), string::npos) << Describe(r);
}

// A bad row on stdin is reported by line, and names stdin rather than the
// temporary FIFO sluice reads it through.
TEST_F(StdinToDuckDb, MalformedRowOnStdinNamesStdinAndLine) {
  string out = dir_.Path("out.duckdb");
  CliOptions options;
  options.stdin_data = StdinCsv(1000) + "1001,x,not_a_number\n";
  CliResult r = RunPipeline(dir_, StdinCsvSource() + DuckDbDestination(out, "t"), options);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("stdin line 1002"), string::npos) << Describe(r);
  EXPECT_EQ(r.err.find(".fifo"), string::npos) << "a temp path the user cannot act on\n" << Describe(r);
}

// ---------------------------------------------------------------------------
// stdout

TEST(StdoutDestination, WritesCsvWithHeaderToStdout) {
  TempDir dir("sluice-e2e");
  string csv = dir.Write("in.csv", "id,name\n2,b\n1,\"a, with comma\"\n");
  string toml = "[source]\ntype = \"files\"\npath = '" + csv +
                "'\n[transform]\nsql = \"SELECT * FROM input ORDER BY id\"\n[destination]\ntype = \"stdout\"\n";
  CliResult r = RunPipeline(dir, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.out, "id,name\n1,\"a, with comma\"\n2,b\n");
}

// `sluice run p.toml >> log.csv` must append, not overwrite what the file
// already held.
TEST(StdoutDestination, RedirectedStdoutKeepsEarlierContent) {
  TempDir dir("sluice-e2e");
  string csv = dir.Write("in.csv", "id\n1\n2\n");
  string pipeline = dir.Write("p.toml", "[source]\ntype = \"files\"\npath = '" + csv +
                                            "'\n[transform]\nsql = \"SELECT * FROM input ORDER BY id\"\n"
                                            "[destination]\ntype = \"stdout\"\n");
  string out = dir.Path("out.txt");
  auto r = sluice::testing::RunSubprocess(
      {"/bin/sh", "-c",
       "echo before > \"$2\" && \"$1\" -q run \"$3\" --once --progress never >> \"$2\" && echo after >> \"$2\"", "sh",
       sluice::testing::CliPath(), out, pipeline});
  ASSERT_EQ(r.exit_code, 0) << sluice::testing::DescribeExit(r) << r.err;
  EXPECT_EQ(dir.Read("out.txt"), "before\nid\n1\n2\nafter\n");
}

}  // namespace
}  // namespace sluice::e2e
