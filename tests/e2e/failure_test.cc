// Failures: bad rows (fail / skip with rejects / max_rejects), kill -9 in the
// middle of a load, schema mismatches, configuration errors and credentials
// that must never be printed.
#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "e2e/e2e_support.h"

namespace sluice::e2e {
namespace {

using std::string;

const char* const kItemColumnsToml = R"~(columns = { id = "BIGINT", name = "VARCHAR", amount = "DECIMAL(12,2)" })~";
const char* const kItemsDdl = "(id BIGINT, name VARCHAR, amount DECIMAL(12,2))";

/// "id,name,amount" with n data rows (ids 1..n); bad maps a data row number
/// (1-based, so physical line = row + 1) to the raw text that replaces it.
string ItemsCsv(int64_t n, const std::map<int64_t, string>& bad = {}) {
  string out = "id,name,amount\n";
  out.reserve(static_cast<size_t>(n) * 28);
  char buf[96];
  for (int64_t i = 1; i <= n; ++i) {
    auto it = bad.find(i);
    if (it != bad.end()) {
      out += it->second + "\n";
      continue;
    }
    int len =
        std::snprintf(buf, sizeof(buf), "%lld,name_%lld,%lld.%02lld\n", static_cast<long long>(i),
                      static_cast<long long>(i), static_cast<long long>(i % 100000), static_cast<long long>(i % 100));
    out.append(buf, static_cast<size_t>(len));
  }
  return out;
}

/// Sum of 1..n.
int64_t Triangle(int64_t n) { return n * (n + 1) / 2; }

/// Lines of stderr that are error log lines.
int ErrorLines(const string& err) {
  int n = 0;
  std::istringstream in(err);
  for (string line; std::getline(in, line);) {
    if (line.find(" error ") != string::npos) ++n;
  }
  return n;
}

class CsvFailures : public EachDestination {
 protected:
  string Source(const string& path, const string& extra = "") const {
    return "[source]\ntype = \"files\"\npath = '" + path + "'\nformat = \"csv\"\nheader = true\n" + kItemColumnsToml +
           "\n" + extra + "\n";
  }
  CliResult Run(const string& source_toml) { return RunPipeline(dir_, source_toml + Destination() + EngineSection()); }
};

TEST_P(CsvFailures, MalformedRowFailsNamingFileLineAndColumnAndLeavesTableUnchanged) {
  CreateItems(kItemsDdl, 10'000'001, 100);
  string csv = dir_.Write("big.csv", ItemsCsv(300'000, {{150'000, "150000,name_150000,not_a_number"}}));
  CliResult r = Run(Source(csv));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find(csv), string::npos) << "names the file\n" << Describe(r);
  EXPECT_NE(r.err.find("line 150001"), string::npos) << "physical line, header = line 1\n" << Describe(r);
  EXPECT_NE(r.err.find("amount"), string::npos) << "names the column\n" << Describe(r);
  EXPECT_NE(r.err.find("not_a_number"), string::npos) << "shows the bad value\n" << Describe(r);
  EXPECT_EQ(ErrorLines(r.err), 1) << "one clear message\n" << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "100");
  EXPECT_EQ(Scalar("SELECT min(id)::text || '-' || max(id)::text FROM {T}"), "10000001-10000100");
}

// Line numbers are physical lines of the file: a quoted field spanning
// three lines moves every later record down by two.
TEST_P(CsvFailures, LineNumberCountsNewlinesInsideQuotedFields) {
  string csv = dir_.Write("multiline.csv",
                          "id,name,amount\n"                // line 1
                          "1,\"multi\nline\nname\",1.00\n"  // lines 2-4
                          "2,ok,2.00\n"                     // line 5
                          "3,bad,xx\n");                    // line 6
  CliResult r = Run(Source(csv));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("line 6"), string::npos) << Describe(r);
  EXPECT_NE(r.err.find("amount"), string::npos) << Describe(r);
}

TEST_P(CsvFailures, SkipWritesEachBadRowToRejectsAndLoadsEveryGoodRow) {
  CreateItems(kItemsDdl, 10'000'001, 100);
  const std::map<int64_t, string> bad = {
      {100, "100,name_100,abc"},            // line 101: not a number
      {5000, "5000,name_5000"},             // line 5001: too few columns
      {9999, "9999,name_9999,1.00,extra"},  // line 10000: too many columns
  };
  string csv = dir_.Write("with_bad_rows.csv", ItemsCsv(10'000, bad));
  string rejects = dir_.Path("rejects.csv");
  CliResult r = Run(Source(csv, "on_error = \"skip\"\nrejects = '" + rejects + "'\nmax_rejects = 10"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), std::to_string(100 + 10'000 - 3));
  EXPECT_EQ(Scalar("SELECT sum(id)::text FROM {T} WHERE id < 10000001"),
            std::to_string(Triangle(10'000) - 100 - 5000 - 9999));
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T} WHERE id IN (100, 5000, 9999)"), "0");

  auto duck = Duck();
  ASSERT_NE(duck, nullptr);
  auto rows =
      DuckQuery(*duck, "SELECT file, line::VARCHAR, \"column\", reason, raw FROM read_csv(" +
                           engine::QuoteLiteral(rejects) + ", header=true, all_varchar=true) ORDER BY line::BIGINT");
  ASSERT_EQ(rows.size(), 3u) << "rejects file:\n" << dir_.Read("rejects.csv");
  const string lines[] = {"101", "5001", "10000"};
  const string raws[] = {"100,name_100,abc", "5000,name_5000", "9999,name_9999,1.00,extra"};
  for (size_t i = 0; i < 3; ++i) {
    SCOPED_TRACE("reject " + std::to_string(i));
    EXPECT_EQ(rows[i][0].value_or(""), csv);
    EXPECT_EQ(rows[i][1].value_or(""), lines[i]);
    EXPECT_FALSE(rows[i][3].value_or("").empty()) << "a reason";
    EXPECT_EQ(rows[i][4].value_or(""), raws[i]);
  }
  EXPECT_EQ(rows[0][2].value_or(""), "amount");
  EXPECT_NE(rows[0][3].value_or("").find("abc"), string::npos);
}

TEST_P(CsvFailures, RejectsNamePhysicalLinesAfterMultilineFields) {
  string csv = dir_.Write("multiline.csv",
                          "id,name,amount\n"                // line 1
                          "1,\"multi\nline\nname\",1.00\n"  // lines 2-4
                          "2,ok,2.00\n"                     // line 5
                          "3,bad,xx\n"                      // line 6
                          "4,\"two\nlines\",4.00\n"         // lines 7-8
                          "5,bad,yy\n");                    // line 9
  string rejects = dir_.Path("rejects.csv");
  CliResult r = Run(Source(csv, "on_error = \"skip\"\nrejects = '" + rejects + "'"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM {T}"), "1,2,4");
  auto duck = Duck();
  ASSERT_NE(duck, nullptr);
  auto rows = DuckQuery(*duck, "SELECT line::VARCHAR, raw FROM read_csv(" + engine::QuoteLiteral(rejects) +
                                   ", header=true, all_varchar=true) ORDER BY line::BIGINT");
  ASSERT_EQ(rows.size(), 2u) << dir_.Read("rejects.csv");
  EXPECT_EQ(rows[0][0].value_or(""), "6") << dir_.Read("rejects.csv");
  EXPECT_EQ(rows[1][0].value_or(""), "9") << dir_.Read("rejects.csv");
  EXPECT_EQ(rows[1][1].value_or(""), "5,bad,yy");
}

TEST_P(CsvFailures, MoreBadRowsThanMaxRejectsFailsAndLeavesTableUnchanged) {
  CreateItems(kItemsDdl, 10'000'001, 100);
  string csv = dir_.Write("too_many_bad.csv", ItemsCsv(5'000, {{10, "10,n,x"}, {20, "20,n,y"}, {30, "30,n,z"}}));
  CliResult r = Run(Source(csv, "on_error = \"skip\"\nrejects = '" + dir_.Path("rejects.csv") + "'\nmax_rejects = 2"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("max_rejects"), string::npos) << Describe(r);
  EXPECT_NE(r.err.find("line 11"), string::npos) << "names the first bad line\n" << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "100");
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T} WHERE id < 10000001"), "0");
}

TEST_P(CsvFailures, ExactlyMaxRejectsBadRowsStillLoads) {
  string csv = dir_.Write("two_bad.csv", ItemsCsv(1'000, {{10, "10,n,x"}, {20, "20,n,y"}}));
  CliResult r = Run(Source(csv, "on_error = \"skip\"\nmax_rejects = 2"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "998");
}

// An existing table whose column cannot take the result's type.
TEST_P(CsvFailures, SchemaMismatchFailsNamingTheColumnAndLeavesTableUnchanged) {
  CreateItems("(id BIGINT, name VARCHAR, amount DATE)", 1'000, 5, "DATE '2020-01-01'");
  string csv = dir_.Write("items.csv", ItemsCsv(10));
  CliResult r = Run(Source(csv));
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("amount"), string::npos) << Describe(r);
  EXPECT_EQ(ErrorLines(r.err), 1) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "5");
}

TEST_P(CsvFailures, ResultColumnMissingFromExistingTableFailsNamingIt) {
  CreateItems("(id BIGINT, name VARCHAR, amount DECIMAL(12,2))", 1'000, 5);
  string csv = dir_.Write("items.csv", ItemsCsv(10));
  CliResult r = RunPipeline(dir_, Source(csv) + "[transform]\nsql = \"SELECT *, 'x' AS surplus_col FROM input\"\n" +
                                      Destination() + EngineSection());
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("surplus_col"), string::npos) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "5");
}

INSTANTIATE_TEST_SUITE_P(Destinations, CsvFailures, AllDestinations());

// ---------------------------------------------------------------------------
// kill -9 in the middle of a load

constexpr int64_t kKillRows = 3'000'000;

class KillDuringLoad : public EachDestination {
 protected:
  string WriteBigCsv() {
    string csv = dir_.Path("big.csv");
    WriteSimpleCsv(csv, 1, kKillRows);
    return csv;
  }
  string PipelineFile(const string& csv) {
    return dir_.Write("pipeline.toml", SimpleCsvSource(csv) + Destination() + EngineSection());
  }
  /// Waits until rows are flowing into the uncommitted load; false if the
  /// process ended first or it took over a minute.
  bool WaitUntilUnderway(sluice::testing::CliProcess& proc) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    if (postgres()) {
      // Rows are arriving in the uncommitted COPY.
      while (proc.Running() && std::chrono::steady_clock::now() < deadline) {
        auto copied =
            pg_->QueryScalar(db_, "SELECT coalesce(max(tuples_processed), 0)::text FROM pg_stat_progress_copy");
        if (copied.ok() && std::stoll(*copied) > 100'000) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return false;
    }
    // The progress line ("... 12% ETA ...") appears once the load has run
    // for a quarter second and DuckDB reports progress; then DuckDB is
    // writing rows.
    if (!proc.WaitForOutput("ETA", 60'000)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return proc.Running();
  }
  void WaitForNoCopy() {
    for (int i = 0; i < 500; ++i) {
      auto active = pg_->QueryScalar(db_, "SELECT count(*) FROM pg_stat_progress_copy");
      if (active.ok() && *active == "0") return;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "a COPY is still running 10 s after the client went away";
  }
  void ExpectPreloadOnly() {
    EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), "1000");
    EXPECT_EQ(Scalar("SELECT min(id)::text || '-' || max(id)::text FROM {T}"), "10000001-10001000");
  }
  void ExpectEverythingOnce() {
    EXPECT_EQ(Scalar("SELECT count(*) FROM {T}"), std::to_string(1000 + kKillRows));
    EXPECT_EQ(Scalar("SELECT count(DISTINCT id) FROM {T}"), std::to_string(1000 + kKillRows));
    EXPECT_EQ(Scalar("SELECT sum(id)::text FROM {T} WHERE id <= " + std::to_string(kKillRows)),
              std::to_string(Triangle(kKillRows)));
  }
};

TEST_P(KillDuringLoad, KillNineLeavesTableUnchangedAndRerunLoadsEverythingOnce) {
  CreateItems(kItemsDdl, 10'000'001, 1000);
  string file = PipelineFile(WriteBigCsv());

  auto started = sluice::testing::CliProcess::Start({"run", file, "--once", "--progress", "always"});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  auto& proc = *started;
  bool underway = WaitUntilUnderway(*proc);
  proc->Kill(SIGKILL);
  CliResult killed = proc->Wait();
  ASSERT_TRUE(underway) << "the load ended before it could be killed; make the file bigger\n" << Describe(killed);
  ASSERT_EQ(killed.term_signal, SIGKILL) << Describe(killed);

  ExpectPreloadOnly();
  if (postgres()) {
    // The server may take a moment to notice the dead client; once it has,
    // the rows it received must have been rolled back, not committed.
    WaitForNoCopy();
    ExpectPreloadOnly();
  }

  CliResult rerun = Sluice({"run", file, "--once", "--progress", "never"});
  ASSERT_EQ(rerun.exit_code, 0) << Describe(rerun);
  ExpectEverythingOnce();
}

TEST_P(KillDuringLoad, InterruptExits130AndLeavesTableUnchanged) {
  CreateItems(kItemsDdl, 10'000'001, 1000);
  string file = PipelineFile(WriteBigCsv());

  auto started = sluice::testing::CliProcess::Start({"run", file, "--once", "--progress", "always"});
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  auto& proc = *started;
  bool underway = WaitUntilUnderway(*proc);
  proc->Kill(SIGINT);
  CliResult interrupted = proc->Wait();
  ASSERT_TRUE(underway) << "the load ended before it could be interrupted\n" << Describe(interrupted);
  EXPECT_EQ(interrupted.exit_code, 130) << Describe(interrupted);
  EXPECT_NE(interrupted.err.find("interrupted"), string::npos) << Describe(interrupted);
  if (postgres()) WaitForNoCopy();
  ExpectPreloadOnly();
}

INSTANTIATE_TEST_SUITE_P(Destinations, KillDuringLoad, AllDestinations());

// ---------------------------------------------------------------------------
// Configuration errors

TEST(ConfigErrors, MissingEnvironmentVariableFailsNamingIt) {
  TempDir dir("sluice-e2e");
  string csv = dir.Write("in.csv", "id\n1\n");
  string toml = "[source]\ntype = \"files\"\npath = '" + csv +
                "'\n[destination]\ntype = \"duckdb\"\npath = '${SLUICE_E2E_SURELY_UNSET_VAR}/out.duckdb'\n"
                "table = \"t\"\n";
  CliResult run = RunPipeline(dir, toml);
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_NE(run.err.find("SLUICE_E2E_SURELY_UNSET_VAR"), string::npos) << Describe(run);
  EXPECT_NE(run.err.find("[destination] path"), string::npos) << "names the key\n" << Describe(run);
  EXPECT_EQ(ErrorLines(run.err), 1) << Describe(run);

  CliResult validate = ValidatePipeline(dir, toml);
  EXPECT_EQ(validate.exit_code, 2) << Describe(validate);
  EXPECT_NE(validate.err.find("SLUICE_E2E_SURELY_UNSET_VAR"), string::npos) << Describe(validate);
}

TEST(ConfigErrors, EnvironmentVariablesAndDefaultsAreInterpolated) {
  TempDir dir("sluice-e2e");
  string csv = dir.Write("in.csv", "id\n1\n2\n");
  string toml =
      "[source]\ntype = \"files\"\npath = '${SLUICE_E2E_IN}'\n"
      "[destination]\ntype = \"duckdb\"\npath = '${SLUICE_E2E_SURELY_UNSET_VAR:-" +
      dir.Path("out.duckdb") + "}'\ntable = \"${SLUICE_E2E_TABLE}\"\n";
  CliOptions options;
  options.env = {{"SLUICE_E2E_IN", csv}, {"SLUICE_E2E_TABLE", "from_env"}};
  CliResult r = RunPipeline(dir, toml, options);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(DuckFileScalar(dir.Path("out.duckdb"), "SELECT sum(id) FROM o.from_env"), "3");
}

// ---------------------------------------------------------------------------
// Credentials never appear in any output

class PostgresCredentials : public PgTest {
 protected:
  /// A role that must give its password (scram), on the shared server.
  void RequirePasswordFor(const string& role, const string& password) {
    string hba_path = pg_->data_dir() + "/pg_hba.conf";
    string hba;
    {
      std::ifstream in(hba_path);
      std::stringstream ss;
      ss << in.rdbuf();
      hba = ss.str();
    }
    ASSERT_FALSE(hba.empty()) << "cannot read " << hba_path;
    string line = "host all " + role + " 127.0.0.1/32 scram-sha-256\n";
    if (hba.find(line) == string::npos) {
      std::ofstream out(hba_path, std::ios::trunc);
      out << line << hba;  // first match wins: only this role is affected
      ASSERT_TRUE(out.good());
    }
    Exec("DO $$ BEGIN CREATE ROLE " + role + " LOGIN SUPERUSER; EXCEPTION WHEN duplicate_object THEN NULL; END $$");
    Exec("ALTER ROLE " + role + " PASSWORD '" + password + "'");
    Exec("SELECT pg_reload_conf()");
    // The server now really checks this role's password.
    bool wrong_rejected = false;
    for (int i = 0; i < 100 && !wrong_rejected; ++i) {
      PGconn* c = PQconnectdb(
          ("postgresql://" + role + ":not-it@127.0.0.1:" + std::to_string(pg_->port()) + "/" + db_).c_str());
      wrong_rejected = PQstatus(c) != CONNECTION_OK;
      PQfinish(c);
      if (!wrong_rejected) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(wrong_rejected) << "pg_hba.conf change did not take effect";
    PGconn* c = PQconnectdb(
        ("postgresql://" + role + ":" + password + "@127.0.0.1:" + std::to_string(pg_->port()) + "/" + db_).c_str());
    bool right_ok = PQstatus(c) == CONNECTION_OK;
    PQfinish(c);
    ASSERT_TRUE(right_ok) << "the right password must work";
  }

  string Toml(const string& url) {
    string csv = dir_.Write("in.csv", "id,name,amount\n1,a,1.00\n");
    return SimpleCsvSource(csv) + PgDestination(url, "public.items") + EngineSection();
  }

  void ExpectNoSecret(const CliResult& r, const string& secret) {
    EXPECT_EQ(r.out.find(secret), string::npos) << "password printed on stdout\n" << Describe(r);
    EXPECT_EQ(r.err.find(secret), string::npos) << "password printed on stderr\n" << Describe(r);
  }
};

TEST_F(PostgresCredentials, WrongPasswordFailsWithoutPrintingThePassword) {
  RequirePasswordFor("sluice_pw", "the-right-one");
  const string secret = "Wr0ng-Secret-XYZZY-42";
  string url = "postgresql://sluice_pw:" + secret + "@127.0.0.1:" + std::to_string(pg_->port()) + "/" + db_;
  string toml = Toml(url);

  CliResult run = RunPipeline(dir_, toml);
  EXPECT_NE(run.exit_code, 0) << Describe(run);
  ExpectNoSecret(run, secret);
  EXPECT_NE(run.err.find("authentication"), string::npos) << "says why\n" << Describe(run);
  EXPECT_NE(run.err.find("sluice_pw"), string::npos) << "names the user\n" << Describe(run);

  CliResult validate = ValidatePipeline(dir_, toml);
  EXPECT_NE(validate.exit_code, 0) << Describe(validate);
  ExpectNoSecret(validate, secret);
  EXPECT_NE(validate.err.find("authentication"), string::npos) << Describe(validate);
  EXPECT_FALSE(PgTableExists(*pg_, db_, "public.items"));
}

TEST_F(PostgresCredentials, PasswordFromEnvironmentIsNotPrintedOnFailure) {
  RequirePasswordFor("sluice_pw", "the-right-one");
  const string secret = "Env-Secret-QWERTY-77";
  string url = "postgresql://sluice_pw:${SLUICE_E2E_PG_PASSWORD}@127.0.0.1:" + std::to_string(pg_->port()) + "/" + db_;
  CliOptions options;
  options.env = {{"SLUICE_E2E_PG_PASSWORD", secret}};
  CliResult run = RunPipeline(dir_, Toml(url), options);
  EXPECT_NE(run.exit_code, 0) << Describe(run);
  ExpectNoSecret(run, secret);
  CliResult validate = ValidatePipeline(dir_, Toml(url), options);
  EXPECT_NE(validate.exit_code, 0) << Describe(validate);
  ExpectNoSecret(validate, secret);
}

TEST_F(PostgresCredentials, RightPasswordLoadsWithoutPrintingThePassword) {
  const string secret = "Right-Secret-ABCDE-13";
  RequirePasswordFor("sluice_pw", secret);
  string url = "postgresql://sluice_pw:" + secret + "@127.0.0.1:" + std::to_string(pg_->port()) + "/" + db_;
  CliResult run = RunPipeline(dir_, Toml(url));
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  ExpectNoSecret(run, secret);
  EXPECT_EQ(Count("public.items"), 1);
  CliResult validate = ValidatePipeline(dir_, Toml(url));
  EXPECT_EQ(validate.exit_code, 0) << Describe(validate);
  ExpectNoSecret(validate, secret);
}

TEST_F(PostgresCredentials, UnreachableServerFailsWithoutPrintingThePassword) {
  const string secret = "Unreach-Secret-XYZZY-99";
  // Nothing listens on port 1.
  string url = "postgresql://postgres:" + secret + "@127.0.0.1:1/" + db_;
  string toml = Toml(url);
  CliResult run = RunPipeline(dir_, toml);
  EXPECT_EQ(run.exit_code, 1) << Describe(run);
  ExpectNoSecret(run, secret);
  EXPECT_NE(run.err.find("127.0.0.1"), string::npos) << "names the server\n" << Describe(run);
  EXPECT_EQ(ErrorLines(run.err), 1) << Describe(run);

  CliResult validate = ValidatePipeline(dir_, toml);
  EXPECT_NE(validate.exit_code, 0) << Describe(validate);
  ExpectNoSecret(validate, secret);
  EXPECT_NE(validate.err.find("127.0.0.1"), string::npos) << Describe(validate);
}

TEST_F(PostgresCredentials, PasswordInKeyValueConnectionStringIsNotPrinted) {
  const string secret = "Kv-Secret-PLUGH-5";
  string url = "host=127.0.0.1 port=1 dbname=" + db_ + " user=postgres password=" + secret;
  CliResult run = RunPipeline(dir_, Toml(url));
  EXPECT_NE(run.exit_code, 0) << Describe(run);
  ExpectNoSecret(run, secret);
  CliResult validate = ValidatePipeline(dir_, Toml(url));
  EXPECT_NE(validate.exit_code, 0) << Describe(validate);
  ExpectNoSecret(validate, secret);
}

}  // namespace
}  // namespace sluice::e2e
