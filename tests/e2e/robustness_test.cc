// Behaviour at the edges: SQL as people write it, stdin read twice, a
// closed stdout, secrets with odd characters, globs of files whose columns
// differ, and JSON logs that stay JSON.
#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <chrono>
#include <csignal>

#include "e2e/e2e_support.h"
#include "harness/subprocess.h"

namespace sluice::e2e {
namespace {

class Robustness : public ::testing::Test {
 protected:
  TempDir dir_;
};

TEST_F(Robustness, TrailingSemicolonAndCommentInTransformWorkForEveryDestination) {
  std::string csv = dir_.Path("rows.csv");
  WriteSimpleCsv(csv, 1, 100);
  std::string sql = "[transform]\nsql = \"\"\"SELECT id, amount FROM input WHERE id <= 10; -- ten rows\n\"\"\"\n";
  CliResult duck = RunPipeline(dir_, SimpleCsvSource(csv) + sql + DuckDbDestination(dir_.Path("o.duckdb"), "t"));
  ASSERT_EQ(duck.exit_code, 0) << Describe(duck);
  EXPECT_EQ(DuckFileScalar(dir_.Path("o.duckdb"), "SELECT count(*) FROM o.t"), "10");
  CliResult out = RunPipeline(dir_, SimpleCsvSource(csv) + sql + "[destination]\ntype = \"stdout\"\n");
  ASSERT_EQ(out.exit_code, 0) << Describe(out);
  EXPECT_EQ(std::count(out.out.begin(), out.out.end(), '\n'), 11) << out.out;  // header + 10 rows
  CliResult null_dest = RunPipeline(dir_, SimpleCsvSource(csv) + sql + "[destination]\ntype = \"null\"\n");
  EXPECT_EQ(null_dest.exit_code, 0) << Describe(null_dest);
}

TEST_F(Robustness, TransformReadingStdinTwiceFailsClearlyInsteadOfHanging) {
  std::string data = "id,name,amount\n";
  for (int i = 0; i < 1000; ++i) data += std::to_string(i) + ",n,1.00\n";
  std::string toml = "[source]\npath = \"-\"\n[transform]\nsql = \"SELECT (SELECT count(*) FROM input) AS a, "
                     "(SELECT count(*) FROM input) AS b\"\n[destination]\ntype = \"stdout\"\n";
  CliOptions options;
  options.stdin_data = data;
  options.timeout_ms = 30'000;
  CliResult r = RunPipeline(dir_, toml, options);
  EXPECT_FALSE(r.timed_out) << "sluice hung on a second scan of stdin";
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("stdin can be read only once"), std::string::npos) << Describe(r);
}

TEST_F(Robustness, ClosedStdoutEndsTheRunInsteadOfHanging) {
  std::string csv = dir_.Path("rows.csv");
  WriteSimpleCsv(csv, 1, 2'000'000);
  std::string toml = dir_.Write("p.toml", SimpleCsvSource(csv) + "[destination]\ntype = \"stdout\"\n");
  sluice::testing::SubprocessOptions options;
  options.timeout_ms = 60'000;
  auto r = sluice::testing::RunSubprocess(
      {"/bin/bash", "-c", "'" + sluice::testing::CliPath() + "' run '" + toml + "' | head -2"}, options);
  EXPECT_FALSE(r.timed_out) << "sluice kept running after its reader went away";
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2) << r.out.substr(0, 200);
}

TEST_F(Robustness, PasswordWithHashQuestionMarkOrSlashIsNeverPrinted) {
  for (std::string pw : {"pa#ss1word", "pa?ss2word", "pa/ss3word"}) {
    std::string csv = dir_.Path("rows.csv");
    WriteSimpleCsv(csv, 1, 10);
    // Nothing listens on port 1: the connection fails and the error names the URL.
    std::string toml = SimpleCsvSource(csv) +
                       PgDestination("postgresql://loader:" + pw + "@127.0.0.1:1/app", "t") +
                       "[retry]\nmax_attempts = 1\n";
    CliResult run = RunPipeline(dir_, toml);
    EXPECT_NE(run.exit_code, 0);
    EXPECT_EQ(run.err.find(pw), std::string::npos) << run.err;
    EXPECT_EQ(run.out.find(pw), std::string::npos) << run.out;
    CliResult validate = ValidatePipeline(dir_, toml);
    EXPECT_NE(validate.exit_code, 0);
    EXPECT_EQ(validate.err.find(pw), std::string::npos) << validate.err;
    EXPECT_EQ(validate.out.find(pw), std::string::npos) << validate.out;
  }
}

TEST_F(Robustness, GlobOfFilesWithDifferentColumnsKeepsEveryColumnByName) {
  dir_.Write("in/1.csv", "id,name\n1,a\n");
  dir_.Write("in/2.csv", "id,amount,name\n2,2.50,b\n");
  dir_.Write("in/3.csv", "name,id\nc,3\n");
  std::string toml = "[source]\npath = '" + dir_.Path("in") + "/*.csv'\n" +
                     DuckDbDestination(dir_.Path("o.duckdb"), "t");
  CliResult r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(DuckFileScalar(dir_.Path("o.duckdb"),
                           "SELECT string_agg(id || ':' || name || ':' || coalesce(amount::VARCHAR, '-'), ' ' "
                           "ORDER BY id) FROM o.t"),
            "1:a:- 2:b:2.5 3:c:-");
}

TEST_F(Robustness, JsonLogLinesStayJsonWhenMessagesHaveNewlinesAndQuotes) {
  std::string csv = dir_.Write("bad.csv", "id,name,amount\n1,\"x\ny\",1.00\n2,\"q\"\"q\",notanumber\n");
  std::string toml = dir_.Write("p.toml", SimpleCsvSource(csv) + DuckDbDestination(dir_.Path("o.duckdb"), "t"));
  CliResult r = Sluice({"--log-format", "json", "run", toml});
  EXPECT_NE(r.exit_code, 0);
  ASSERT_FALSE(r.err.empty());
  std::istringstream lines(r.err);
  std::string line;
  int n = 0;
  while (std::getline(lines, line)) {
    ++n;
    EXPECT_EQ(line.front(), '{') << line;
    EXPECT_EQ(line.back(), '}') << line;
    EXPECT_NE(line.find("\"message\":\""), std::string::npos) << line;
  }
  EXPECT_GE(n, 2);
  EXPECT_NE(r.err.find("line 4"), std::string::npos) << r.err;  // physical line, after the 2-line field
}

class InterruptPostgres : public PgTest {
 protected:
  TempDir dir_;
};

TEST_F(InterruptPostgres, CtrlCWhileReplaceWaitsForATableLockExitsPromptlyAndChangesNothing) {
  Exec("CREATE TABLE items (id bigint, name text, amount numeric(12,2))");
  Exec("INSERT INTO items VALUES (1, 'kept', 1.00)");
  // Another session holds a lock that TRUNCATE must wait for.
  PGconn* holder = PQconnectdb(url_.c_str());
  ASSERT_EQ(PQstatus(holder), CONNECTION_OK);
  PQclear(PQexec(holder, "BEGIN; LOCK TABLE items IN ACCESS SHARE MODE"));
  std::string csv = dir_.Path("rows.csv");
  WriteSimpleCsv(csv, 100, 1000);
  std::string file = dir_.Write("p.toml", SimpleCsvSource(csv) + PgDestination(url_, "items", "replace"));
  auto proc = sluice::testing::CliProcess::Start({"run", file, "--once", "--progress", "never"});
  ASSERT_TRUE(proc.ok());
  // Wait until sluice's TRUNCATE is blocked on the lock.
  bool waiting = false;
  for (int i = 0; i < 500 && !waiting; ++i) {
    auto n = pg_->QueryScalar(db_, "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'");
    waiting = n.ok() && *n != "0";
    if (!waiting) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(waiting) << (*proc)->StderrSoFar();
  auto start = std::chrono::steady_clock::now();
  (*proc)->Kill(SIGINT);
  auto r = (*proc)->Wait();
  auto took = std::chrono::steady_clock::now() - start;
  PQclear(PQexec(holder, "ROLLBACK"));
  PQfinish(holder);
  EXPECT_EQ(r.exit_code, 130) << Describe(r);
  EXPECT_LT(took, std::chrono::seconds(5)) << "Ctrl-C did not reach the blocked statement";
  EXPECT_EQ(Scalar("SELECT string_agg(name, ',') FROM items"), "kept");
}

}  // namespace
}  // namespace sluice::e2e
