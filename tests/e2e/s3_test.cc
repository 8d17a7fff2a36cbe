// Scheduled batch ETL from S3: incremental runs against a real S3 server
// (s3rver) and PostgreSQL, the file ledger and run log in both state
// stores, faults from a flaky server, and kill -9 in the middle of a run.
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <utime.h>

#include <chrono>
#include <fstream>
#include <random>
#include <regex>
#include <set>

#include "e2e_support.h"
#include "harness/fault_proxy.h"
#include "harness/s3_server.h"
#include "harness/subprocess.h"

#include <httplib.h>
#include <unistd.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <regex>

namespace sluice::e2e {
namespace {

using sluice::testing::CliProcess;
using sluice::testing::FaultKind;
using sluice::testing::FaultProxy;
using sluice::testing::FaultProxyOptions;
using sluice::testing::S3Server;

/// The binary's one S3 server, started on first use.
S3Server* SharedS3() {
  static std::unique_ptr<S3Server> server;
  static bool tried = false;
  if (!tried) {
    tried = true;
    auto started = S3Server::Start();
    if (!started.ok()) {
      ADD_FAILURE() << "cannot start the S3 server: " << started.status().ToString();
      return nullptr;
    }
    server = std::move(started).value();
  }
  return server.get();
}

/// A Parquet file holding what `select` returns, in memory.
std::string ParquetOf(const std::string& select) {
  TempDir tmp("sluice-parquet");
  auto engine = engine::DuckDbEngine::Open(engine::EngineOptions{});
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  if (!engine.ok()) return "";
  Status s = (*engine)->Execute("COPY (" + select + ") TO " + engine::QuoteLiteral(tmp.Path("f.parquet")) +
                                " (FORMAT parquet)");
  EXPECT_TRUE(s.ok()) << s.ToString();
  return tmp.Read("f.parquet");
}

/// The rows of SimpleCsv as Parquet: id, name, amount (DECIMAL(12,2)).
std::string SimpleParquet(int64_t first_id, int64_t n) {
  return ParquetOf("SELECT range AS id, 'name_' || range AS name, ((range % 100000) + (range % 100) / 100.0)"
                   "::DECIMAL(12,2) AS amount FROM range(" +
                   std::to_string(first_id) + ", " + std::to_string(first_id + n) + ")");
}

/// The CSV text of WriteSimpleCsv, in memory.
std::string SimpleCsv(int64_t first_id, int64_t n) {
  TempDir tmp("sluice-csv");
  WriteSimpleCsv(tmp.Path("f.csv"), first_id, n);
  return tmp.Read("f.csv");
}

class S3PipelineTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    s3_ = SharedS3();
    ASSERT_NE(s3_, nullptr);
    // Bucket names: lower case, unique per test.
    bucket_ = db_.substr(0, 50);
    for (char& c : bucket_) {
      if (c == '_') c = '-';
    }
    Status s = s3_->CreateBucket(bucket_);
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void Put(const std::string& key, const std::string& body) {
    Status s = s3_->PutObject(bucket_, key, body);
    ASSERT_TRUE(s.ok()) << key << ": " << s.ToString();
  }

  /// [s3] pointing at `endpoint` (the server, or a proxy in front of it).
  std::string S3Section(const std::string& endpoint) const {
    return "[s3]\nendpoint = '" + endpoint +
           "'\nregion = \"us-east-1\"\naccess_key_id = \"S3RVER\"\nsecret_access_key = \"S3RVER\"\n";
  }

  std::string Pipeline(const std::string& pattern, const std::string& extra_source = "",
                       const std::string& state = "", const std::string& endpoint = "") const {
    std::string state_section = state.empty() ? "[state]\nurl = '" + url_ + "'\n" : state;
    return "name = \"orders\"\n[source]\npath = 's3://" + bucket_ + "/" + pattern +
           "'\nformat = \"csv\"\nheader = true\ncolumns = { id = \"BIGINT\", name = \"VARCHAR\", amount = "
           "\"DECIMAL(12,2)\" }\n" +
           extra_source + "\n" + S3Section(endpoint.empty() ? s3_->endpoint() : endpoint) + state_section +
           PgDestination(url_, "public.items") + EngineSection() + "[retry]\nmax_attempts = 1\n";
  }

  /// ids loaded more than once, and the total.
  void ExpectIdsExactly(int64_t expected_rows) {
    EXPECT_EQ(Count("public.items"), expected_rows);
    EXPECT_EQ(Scalar("SELECT count(*) FROM (SELECT id FROM public.items GROUP BY id HAVING count(*) > 1) d"),
              "0");
  }

  S3Server* s3_ = nullptr;
  std::string bucket_;
};

TEST_F(S3PipelineTest, IncrementalRunsLoadOnlyNewAndChangedObjects) {
  for (int i = 0; i < 5; ++i) Put("in/part-" + std::to_string(i) + ".csv", SimpleCsv(i * 1000, 1000));
  Put("in/ignored.txt", "not a csv");
  Put("other/part-9.csv", SimpleCsv(90000, 10));
  std::string toml = Pipeline("in/*.csv");

  auto first = RunPipeline(dir_, toml);
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  ExpectIdsExactly(5000);
  EXPECT_NE(first.err.find("5 new or changed of 5 files"), std::string::npos) << first.err;
  EXPECT_NE(first.err.find("exactly once"), std::string::npos) << first.err;

  auto second = RunPipeline(dir_, toml);
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_NE(second.err.find("0 new or changed of 5 files"), std::string::npos) << second.err;
  ExpectIdsExactly(5000);

  // Two new objects and one overwritten with other rows.
  Put("in/part-5.csv", SimpleCsv(5000, 1000));
  Put("in/part-6.csv", SimpleCsv(6000, 1000));
  Put("in/part-2.csv", SimpleCsv(7000, 500));
  auto third = RunPipeline(dir_, toml);
  ASSERT_EQ(third.exit_code, 0) << Describe(third);
  EXPECT_NE(third.err.find("3 new or changed of 7 files"), std::string::npos) << third.err;
  ExpectIdsExactly(5000 + 2500);

  // The run log: three runs, the last one with exactly those three files.
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.runs WHERE pipeline = 'orders' AND status = 'succeeded'"),
            "3");
  EXPECT_EQ(Scalar("SELECT string_agg(file, ',' ORDER BY file) FROM sluice.run_files WHERE run_id = "
                   "(SELECT max(id) FROM sluice.runs)"),
            "s3://" + bucket_ + "/in/part-2.csv,s3://" + bucket_ + "/in/part-5.csv,s3://" + bucket_ +
                "/in/part-6.csv");
  // Every version loaded is remembered: part-2.csv twice.
  EXPECT_EQ(
      Scalar(
          "SELECT count(*) || '/' || count(DISTINCT key) FROM sluice.file_ledger WHERE pipeline = 'orders'"),
      "8/7");
  EXPECT_EQ(Scalar("SELECT files || '/' || rows FROM sluice.runs ORDER BY id DESC LIMIT 1"), "3/2500");
}

TEST_F(S3PipelineTest, PerFileWithSqliteStateRecordsEveryFileAndSkipsABadOne) {
  Put("d/a.csv", SimpleCsv(0, 100));
  Put("d/b.csv", "id,name,amount\n1000,x,1.00\nnot-a-number,y,2.00\n");
  Put("d/c.csv", SimpleCsv(2000, 100));
  std::string state_path = dir_.Path("state/ledger.db");
  std::string toml = Pipeline("d/", "batch = \"per_file\"", "[state]\npath = '" + state_path + "'\n");

  auto first = RunPipeline(dir_, toml);
  EXPECT_EQ(first.exit_code, 1) << Describe(first);
  // The bad object is named by its key and line, not by a spool file.
  EXPECT_NE(first.err.find("s3://" + bucket_ + "/d/b.csv"), std::string::npos) << first.err;
  EXPECT_NE(first.err.find("line 3"), std::string::npos) << first.err;
  EXPECT_EQ(first.err.find("sluice-spool"), std::string::npos) << first.err;
  ExpectIdsExactly(200);

  // Fixed upstream: the next run loads only the file that failed.
  Put("d/b.csv", "id,name,amount\n1000,x,1.00\n1001,y,2.00\n");
  auto second = RunPipeline(dir_, toml);
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_NE(second.err.find("1 new or changed of 3 files"), std::string::npos) << second.err;
  ExpectIdsExactly(202);
  EXPECT_NE(second.err.find("at least once"), std::string::npos) << second.err;

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(state_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  auto scalar = [&](const std::string& sql) {
    sqlite3_stmt* st = nullptr;
    std::string out = "<error>";
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      const unsigned char* v = sqlite3_column_text(st, 0);
      out = v ? reinterpret_cast<const char*>(v) : "<NULL>";
    } else {
      out = std::string("<error: ") + sqlite3_errmsg(db) + ">";
    }
    sqlite3_finalize(st);
    return out;
  };
  EXPECT_EQ(scalar("SELECT count(*) FROM runs"), "2");
  EXPECT_EQ(scalar("SELECT group_concat(status, ',') FROM (SELECT status FROM runs ORDER BY id)"),
            "failed,succeeded");
  EXPECT_EQ(scalar("SELECT count(*) FROM run_files WHERE status = 'loaded'"), "3");
  EXPECT_EQ(scalar("SELECT count(*) FROM run_files WHERE status = 'failed' AND file LIKE '%/d/b.csv' "
                   "AND error LIKE '%line 3%'"),
            "1");
  EXPECT_EQ(scalar("SELECT rows_out FROM run_files WHERE file LIKE '%/d/a.csv'"), "100");
  sqlite3_close(db);
}

TEST_F(S3PipelineTest, SurvivesAFlakyServer) {
  for (int i = 0; i < 6; ++i) Put("f/p" + std::to_string(i) + ".csv", SimpleCsv(i * 20000, 20000));
  FaultProxyOptions o;
  o.upstream_port = s3_->port();
  o.probability = {{FaultKind::kInternalError, 0.1},
                   {FaultKind::kSlowDown, 0.1},
                   {FaultKind::kTooManyRequests, 0.05},
                   {FaultKind::kCut, 0.1},
                   {FaultKind::kStall, 0.05}};
  o.stall_duration = std::chrono::milliseconds(4000);
  o.seed = 7;
  auto proxy = FaultProxy::Start(o);
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  std::string toml = Pipeline("f/", "batch = \"per_file\"", "", (*proxy)->endpoint());
  toml.replace(toml.find("[s3]\n"), 5, "[s3]\nstall_timeout = \"2s\"\n");
  auto run = RunPipeline(dir_, toml);
  ASSERT_EQ(run.exit_code, 0) << Describe(run) << "\n" << (*proxy)->Summary();
  ExpectIdsExactly(120000);
  EXPECT_GE((*proxy)->total_faults(), 2) << (*proxy)->Summary();
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_ledger"), "6");
}

TEST_F(S3PipelineTest, AccessDeniedFailsFastNamingBucketAndKey) {
  Put("x/secret.csv", SimpleCsv(0, 10));
  FaultProxyOptions o;
  o.upstream_port = s3_->port();
  o.deny_path_substring = "secret.csv";
  auto proxy = FaultProxy::Start(o);
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  std::string toml = Pipeline("x/", "", "", (*proxy)->endpoint());
  auto start = std::chrono::steady_clock::now();
  auto run = RunPipeline(dir_, toml);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // A permission problem is fixed in the configuration: exit code 2.
  EXPECT_EQ(run.exit_code, 2) << Describe(run);
  EXPECT_LT(secs, 20) << "a 403 must not be retried";
  EXPECT_NE(run.err.find(bucket_), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("x/secret.csv"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("403"), std::string::npos) << run.err;
  EXPECT_EQ(run.err.find("S3RVER\n"), std::string::npos);
  EXPECT_FALSE(PgTableExists(*pg_, db_, "public.items"));
  EXPECT_EQ(Scalar("SELECT status || ': ' || error FROM sluice.runs"),
            "failed: s3://" + bucket_ + "/x/secret.csv: 403 AccessDenied: Access Denied");
  EXPECT_EQ((*proxy)->faults(FaultKind::kAccessDenied), 1) << (*proxy)->Summary();
}

TEST_F(S3PipelineTest, KillNineMidRunThenRerunLoadsEveryFileExactlyOnce) {
  constexpr int kFiles = 8;
  constexpr int64_t kRows = 150000;
  for (int i = 0; i < kFiles; ++i) Put("k/p" + std::to_string(i) + ".csv", SimpleCsv(i * kRows, kRows));
  std::string toml = Pipeline("k/", "batch = \"per_file\"\nconcurrency = 2");
  std::string spool_base = dir_.Path("tmp");
  std::filesystem::create_directories(spool_base);
  toml.replace(toml.find("[engine]\n"), 9, "[engine]\ntemp_directory = '" + spool_base + "'\n");
  std::string file = dir_.Write("kill.toml", toml);
  std::mt19937 rng(std::random_device{}());
  // Kill after a random number of files was loaded, twice, then finish.
  for (int round = 0; round < 2; ++round) {
    auto proc = CliProcess::Start({"run", file, "--once", "--progress", "never"});
    ASSERT_TRUE(proc.ok()) << proc.status().ToString();
    int files_before_kill = 1 + static_cast<int>(rng() % 3);
    for (int f = 0; f < files_before_kill; ++f) {
      // Each loaded file logs one "loaded ... rows from s3://" line.
      std::string marker = "loaded 150,000 rows from s3://";
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      size_t seen = 0;
      while (std::chrono::steady_clock::now() < deadline) {
        std::string err = (*proc)->StderrSoFar();
        seen = 0;
        for (size_t pos = 0; (pos = err.find(marker, pos)) != std::string::npos; pos += marker.size()) ++seen;
        if (static_cast<int>(seen) > f || !(*proc)->Running()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 300));
    (*proc)->Kill(SIGKILL);
    auto r = (*proc)->Wait();
    if (r.exit_code == 0) break;  // it finished before the kill
  }
  auto last = Sluice({"run", file, "--once", "--progress", "never"});
  ASSERT_EQ(last.exit_code, 0) << Describe(last);
  ExpectIdsExactly(kFiles * kRows);
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_ledger"), std::to_string(kFiles));
  // The killed runs were closed as interrupted by the next start.
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.runs WHERE status = 'running'"), "0");
  // The spools of the killed runs were removed by the next start, and the
  // last run removed its own.
  size_t left = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(spool_base + "/sluice-spool", ec)) {
    if (e.is_regular_file()) ++left;
  }
  EXPECT_EQ(left, 0u);
}

/// A number the run's log printed with thousands separators after `marker`
/// ("... at most 243,512 bytes"); -1 when the marker is not there.
int64_t LoggedNumberAfter(const std::string& log, const std::string& marker) {
  size_t at = log.find(marker);
  if (at == std::string::npos) return -1;
  std::string digits;
  for (size_t i = at + marker.size();
       i < log.size() && (std::isdigit(static_cast<unsigned char>(log[i])) || log[i] == ','); ++i) {
    if (log[i] != ',') digits += log[i];
  }
  return digits.empty() ? -1 : std::stoll(digits);
}

TEST_F(S3PipelineTest, ReadWhileDownloadingReadsTheObjectsWhileTheLastIsStillDownloading) {
  // The last object is slow to come (held back by a proxy): DuckDB's scan
  // reads the others, and the COPY into PostgreSQL runs, while it is on its
  // way. (The COPY begins once DuckDB's first results fill its stream
  // buffer, made small here so that the first five objects fill it.)
  constexpr int kFiles = 6;
  constexpr int64_t kRows = 20000;
  for (int i = 0; i < kFiles; ++i)
    Put("o/part-" + std::to_string(i) + ".parquet", SimpleParquet(i * kRows, kRows));
  FaultProxyOptions o;
  o.upstream_port = s3_->port();
  o.delay_path_substring = "part-5.parquet";
  o.delay = std::chrono::milliseconds(4000);
  auto proxy = FaultProxy::Start(o);
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  // Runs the pipeline `name` into `table`; whether a COPY into it was seen
  // while the last object was still held back.
  auto run = [&](const std::string& name, const std::string& table, const std::string& source_keys,
                 CliResult* result) -> bool {
    std::string toml = Pipeline("o/", "concurrency = 2\n" + source_keys, "", (*proxy)->endpoint());
    toml.replace(toml.find("format = \"csv\"\nheader = true\n"), 29, "format = \"parquet\"\n");
    toml.replace(toml.find("[engine]\n"), 9, "[engine]\nstream_buffer = \"64KiB\"\n");
    toml = std::regex_replace(toml, std::regex("public\\.items"), "public." + table);
    toml.replace(toml.find("name = \"orders\""), 15, "name = \"" + name + "\"");
    std::string file = dir_.Write(name + ".toml", toml);
    int64_t delayed_before = (*proxy)->delayed();
    auto process = CliProcess::Start({"run", file, "--once", "--progress", "never"});
    EXPECT_TRUE(process.ok()) << process.status().ToString();
    if (!process.ok()) return false;
    bool copying_early = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline && (*process)->Running()) {
      if (Scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
                 "pg_backend_pid() AND query LIKE 'COPY %" +
                 table + "%FROM STDIN%'") != "0") {
        copying_early = (*proxy)->delayed() == delayed_before;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    *result = (*process)->Wait();
    return copying_early;
  };

  CliResult r;
  EXPECT_TRUE(run("overlap", "items", "", &r))
      << "no COPY began while the last object was held back\n"
      << r.err;
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ((*proxy)->delayed(), 1) << (*proxy)->Summary();
  ExpectIdsExactly(kFiles * kRows);
  EXPECT_NE(r.err.find("exactly once"), std::string::npos) << r.err;
  // The run's probe: how long reading and the last download overlapped.
  std::smatch m;
  ASSERT_TRUE(
      std::regex_search(r.err, m, std::regex(R"(reading began ([0-9.]+) s before the last of 6 downloads)")))
      << r.err;
  EXPECT_GE(std::stod(m[1].str()), 2.0) << r.err;
  EXPECT_EQ(Scalar("SELECT files || '/' || rows FROM sluice.runs WHERE pipeline = 'overlap'"), "6/120000");

  // Asked not to, the load waits for the last object before it reads any.
  EXPECT_FALSE(run("wait", "items_wait", "read_while_downloading = false", &r)) << r.err;
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("public.items_wait"), kFiles * kRows);
  EXPECT_EQ(r.err.find("reading began"), std::string::npos) << r.err;

  // Ctrl-C while DuckDB's scan waits for the held-back object: the run ends
  // (130) with nothing committed and nothing recorded as loaded.
  std::string toml = Pipeline("o/", "concurrency = 2", "", (*proxy)->endpoint());
  toml.replace(toml.find("format = \"csv\"\nheader = true\n"), 29, "format = \"parquet\"\n");
  toml.replace(toml.find("[engine]\n"), 9, "[engine]\nstream_buffer = \"64KiB\"\n");
  toml = std::regex_replace(toml, std::regex("public\\.items"), "public.items_stopped");
  toml.replace(toml.find("name = \"orders\""), 15, "name = \"stopped\"");
  auto process = CliProcess::Start({"run", dir_.Write("stopped.toml", toml), "--once", "--progress", "never"});
  ASSERT_TRUE(process.ok()) << process.status().ToString();
  int64_t delayed_before = (*proxy)->delayed();
  ASSERT_TRUE(WaitUntil(
      [&] {
        return Scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
                      "pg_backend_pid() AND query LIKE 'COPY %items_stopped%FROM STDIN%'") != "0";
      },
      20))
      << (*process)->StderrSoFar();
  EXPECT_EQ((*proxy)->delayed(), delayed_before) << "the last object is still held back";
  auto stopped_at = std::chrono::steady_clock::now();
  (*process)->Kill(SIGINT);
  r = (*process)->Wait();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count();
  EXPECT_EQ(r.exit_code, 130) << Describe(r);
  EXPECT_LT(seconds, 10.0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_ledger WHERE pipeline = 'stopped'"), "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'items_stopped'") == "0" ||
                Scalar("SELECT count(*) FROM public.items_stopped") == "0",
            true);
}

TEST_F(S3PipelineTest, ObjectsWithOtherColumnsReadWhileDownloadingGiveWhatOneReadOfAllGives) {
  // Files whose columns differ are read by name, all at once (union by
  // name): a read as they arrive (the first file's columns) is rolled back
  // before its commit, and the load reads them again once all are there.
  Put("u/a.parquet", ParquetOf("SELECT * FROM (VALUES (1, 'x'), (2, 'y')) t(id, name)"));
  Put("u/b.parquet", ParquetOf("SELECT 3 AS id, 1.50::DECIMAL(12,2) AS amount"));
  Put("u/c.parquet", ParquetOf("SELECT 4 AS id, 'z' AS name, 2.25::DECIMAL(12,2) AS amount"));
  // Same columns in another order, and one column of another type.
  Put("v/a.parquet", ParquetOf("SELECT 1 AS id, 'x' AS name"));
  Put("v/b.parquet", ParquetOf("SELECT 'y' AS name, 2 AS id"));
  Put("w/a.parquet", ParquetOf("SELECT 1 AS id, 'x' AS name"));
  Put("w/b.parquet", ParquetOf("SELECT 2::BIGINT AS id, 'y' AS name"));
  std::string toml = "name = \"orders\"\n[source]\npath = 's3://" + bucket_ +
                     "/u/'\n" + S3Section(s3_->endpoint()) +
                     "[state]\nurl = '" + url_ + "'\n" + PgDestination(url_, "public.items") +
                     EngineSection() + "[retry]\nmax_attempts = 1\n";
  auto r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(
      Scalar("SELECT string_agg(id || ':' || coalesce(name, '-') || ':' || coalesce(amount::text, '-'), "
             "' ' ORDER BY id) FROM public.items"),
      "1:x:- 2:y:- 3:-:1.50 4:z:2.25");
  EXPECT_EQ(r.err.find("reading began"), std::string::npos) << r.err;
  for (const std::string prefix : {"v", "w"}) {
    std::string other = std::regex_replace(toml, std::regex("/u/'"), "/" + prefix + "/'");
    other = std::regex_replace(other, std::regex("public\\.items"), "public.items_" + prefix);
    other = std::regex_replace(other, std::regex("name = \"orders\""), "name = \"orders_" + prefix + "\"");
    r = RunPipeline(dir_, other);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(Scalar("SELECT string_agg(id || ':' || name, ' ' ORDER BY id) FROM public.items_" + prefix),
              "1:x 2:y")
        << prefix;
  }
  // An id that is INTEGER in one file and BIGINT in another is a BIGINT, as
  // a read of both at once makes it.
  EXPECT_EQ(Scalar("SELECT data_type FROM information_schema.columns WHERE table_name = 'items_w' AND "
                   "column_name = 'id'"),
            "bigint");
}

TEST_F(S3PipelineTest, UpsertOfObjectsReadWhileDownloadingKeepsTheLastRowOfEachKeyInObjectOrder) {
  // The last row for a key wins, in the order of the objects and their rows.
  Put("up/a.parquet", ParquetOf("SELECT * FROM (VALUES (1, 'a'), (2, 'a'), (3, 'a')) t(id, name)"));
  Put("up/b.parquet", ParquetOf("SELECT * FROM (VALUES (1, 'b'), (2, 'b')) t(id, name)"));
  Put("up/c.parquet", ParquetOf("SELECT * FROM (VALUES (2, 'c'), (4, 'c')) t(id, name)"));
  std::string toml = "name = \"orders\"\n[source]\npath = 's3://" + bucket_ +
                     "/up/'\ncolumns = { id = \"BIGINT\", "
                     "name = \"VARCHAR\" }\n" +
                     S3Section(s3_->endpoint()) + "[state]\nurl = '" + url_ + "'\n" +
                     PgDestination(url_, "public.items", "upsert", "key = [\"id\"]\n") + EngineSection() +
                     "[retry]\nmax_attempts = 1\n";
  auto r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT string_agg(id || name, ' ' ORDER BY id) FROM public.items"), "1b 2c 3a 4c");
}

TEST_F(S3PipelineTest, PerFileSpoolHoldsAtMostSpoolBytesOfABacklogBiggerThanThat) {
  // Ten objects of ~100 KB, 250 KB of spool: never more than two at once,
  // where four downloads in flight would hold four.
  constexpr int kFiles = 10;
  constexpr int64_t kRows = 4000;
  int64_t backlog = 0, largest = 0;
  for (int i = 0; i < kFiles; ++i) {
    std::string body = SimpleCsv(i * kRows, kRows);
    backlog += static_cast<int64_t>(body.size());
    largest = std::max<int64_t>(largest, static_cast<int64_t>(body.size()));
    Put("s/p" + std::to_string(i) + ".csv", body);
  }
  ASSERT_GT(backlog, 3 * 250000);
  ASSERT_LT(largest, 125000);
  std::string file = dir_.Write(
      "spool.toml", Pipeline("s/", "batch = \"per_file\"\nconcurrency = 4\nspool_bytes = \"250KB\""));
  auto r = Sluice({"run", file, "--once", "--progress", "never"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ExpectIdsExactly(kFiles * kRows);
  int64_t peak = LoggedNumberAfter(r.err, "the spool held at most ");
  EXPECT_GE(peak, largest) << r.err;
  EXPECT_LE(peak, 250000) << r.err;
  EXPECT_NE(r.err.find("(spool_bytes 250,000)"), std::string::npos) << r.err;

  // An object bigger than the budget is still loaded, downloaded alone.
  std::string big = SimpleCsv(100 * kRows, 30000);
  ASSERT_GT(static_cast<int64_t>(big.size()), 250000);
  Put("s/p-big.csv", big);
  for (int i = 0; i < 3; ++i) Put("s/q" + std::to_string(i) + ".csv", SimpleCsv((200 + i) * kRows, kRows));
  r = Sluice({"run", file, "--once", "--progress", "never"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ExpectIdsExactly(kFiles * kRows + 30000 + 3 * kRows);
  EXPECT_EQ(LoggedNumberAfter(r.err, "the spool held at most "), static_cast<int64_t>(big.size())) << r.err;
}

TEST_F(S3PipelineTest, WithTheSqliteStoreASecondProcessSkipsItsTurnInsteadOfRacingTheFirst) {
  for (int i = 0; i < 4; ++i) Put("r/p" + std::to_string(i) + ".csv", SimpleCsv(i * 150000, 150000));
  std::string file = dir_.Write("race.toml", Pipeline("r/", "batch = \"per_file\"\nconcurrency = 1",
                                                      "[state]\npath = '" + dir_.Path("s.db") + "'\n"));
  auto first = CliProcess::Start({"run", file, "--once", "--progress", "never"});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_TRUE((*first)->WaitForOutput("new or changed", 30000)) << (*first)->StderrSoFar();
  auto second = Sluice({"run", file, "--once", "--progress", "never"});
  auto r = (*first)->Wait();
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_NE(second.err.find("another process is running pipeline orders"), std::string::npos) << second.err;
  ExpectIdsExactly(600000);
}


TEST_F(S3PipelineTest, ThreeWorkersShareEachTickAndTheOthersLoadAKilledWorkersClaims) {
  constexpr int kFiles = 60;
  constexpr int64_t kRows = 20000;
  for (int i = 0; i < kFiles; ++i) {
    char key[32];
    std::snprintf(key, sizeof(key), "w/p%02d.csv", i);
    Put(key, SimpleCsv(i * kRows, kRows));
  }
  std::string state = "[state]\nurl = '" + url_ + "'\nlease = \"3s\"\n[schedule]\nevery = \"1s\"\n";
  std::string file = dir_.Write("w.toml", Pipeline("w/", "batch = \"per_file\"\nconcurrency = 2", state));
  std::vector<std::unique_ptr<CliProcess>> workers;
  for (int i = 0; i < 3; ++i) {
    auto proc = CliProcess::Start({"serve", file, "--listen", "127.0.0.1:0"});
    ASSERT_TRUE(proc.ok()) << proc.status().ToString();
    workers.push_back(std::move(proc).value());
  }
  // Until the first worker created the store's tables, queries fail: "".
  auto loaded = [&] {
    std::string n = ScalarOrEmpty("SELECT count(*) FROM sluice.file_ledger");
    return n.empty() ? int64_t{-1} : std::stoll(n);
  };
  // Kill the second worker while it holds claims, once a fifth is loaded.
  const std::string victim = HostPrefix() + std::to_string(workers[1]->pid());
  ASSERT_TRUE(WaitUntil(
      [&] {
        return loaded() >= kFiles / 5 &&
               ScalarOrEmpty(
                   "SELECT count(*) FROM sluice.file_ledger l JOIN sluice.runs r ON r.id = l.run_id WHERE "
                   "r.worker = '" +
                   victim + "'") != "0" &&
               ScalarOrEmpty("SELECT count(*) FROM sluice.file_claims WHERE holder = '" + victim + "'") != "0";
      },
      60))
      << "loaded " << loaded() << "\n"
      << workers[1]->StderrSoFar();
  workers[1]->Kill(SIGKILL);
  (void)workers[1]->Wait();
  std::string orphaned = Scalar(
      "SELECT string_agg(key, ',' ORDER BY key) FROM sluice.file_claims WHERE holder = '" + victim + "'");
  ASSERT_NE(orphaned, "");
  ASSERT_TRUE(WaitUntil([&] { return loaded() == kFiles; }, 120))
      << "loaded " << loaded() << "\n"
      << workers[0]->StderrSoFar() << workers[2]->StderrSoFar();

  // /status of a survivor lists the workers of the pipeline.
  nlohmann::json pipeline = WaitForWorkers(workers[0].get(), 2, 20);
  ASSERT_EQ(pipeline.value("workers", nlohmann::json::array()).size(), 2u) << pipeline.dump(2);
  EXPECT_EQ(pipeline["worker"], HostPrefix() + std::to_string(workers[0]->pid()));
  // The killed worker's run is closed by the others' next tick.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return Scalar("SELECT count(*) FROM sluice.runs WHERE worker = '" + victim +
                      "' AND status = 'running'") == "0";
      },
      20));
  for (int i : {0, 2}) {
    workers[i]->Kill(SIGTERM);
    auto r = workers[i]->Wait();
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
  }
  ExpectIdsExactly(kFiles * kRows);
  // Every file once in the ledger, nothing left claimed or running, and the
  // files the killed worker held were loaded by the others.
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_claims"), "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.workers WHERE expires_at > now()"), "0")
      << "SIGTERM leaves the pipeline at once";
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.runs WHERE status = 'running'"), "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_ledger l JOIN sluice.runs r ON r.id = l.run_id "
                   "WHERE r.worker <> '" +
                   victim + "' AND l.key = ANY(string_to_array('" + orphaned + "', ','))"),
            std::to_string(std::count(orphaned.begin(), orphaned.end(), ',') + 1));
  // Each worker loaded some.
  EXPECT_EQ(
      Scalar(
          "SELECT count(DISTINCT r.worker) FROM sluice.file_ledger l JOIN sluice.runs r ON r.id = l.run_id"),
      "3");
}

TEST_F(S3PipelineTest, WithoutTheLedgerEveryRunLoadsEveryObject) {
  Put("n/a.csv", SimpleCsv(0, 10));
  Put("n/b.csv", SimpleCsv(10, 10));
  std::string toml =
      "[source]\npath = 's3://" + bucket_ +
      "/n/*.csv'\nincremental = false\ncolumns = { id = \"BIGINT\", name = \"VARCHAR\", amount = "
      "\"DECIMAL(12,2)\" }\n" +
      S3Section(s3_->endpoint()) + PgDestination(url_, "public.items", "replace");
  for (int i = 0; i < 2; ++i) {
    auto run = RunPipeline(dir_, toml);
    ASSERT_EQ(run.exit_code, 0) << Describe(run);
    EXPECT_NE(run.err.find("2 new or changed of 2 files"), std::string::npos) << run.err;
    EXPECT_EQ(Count("public.items"), 20);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_.Path(".sluice")));
  EXPECT_FALSE(PgTableExists(*pg_, db_, "sluice.runs"));
}

TEST_F(S3PipelineTest, ValidateListsTheBucketAndCompilesTheSqlAgainstOneObject) {
  for (int i = 0; i < 3; ++i) Put("v/p" + std::to_string(i) + ".csv", SimpleCsv(i * 10, 10));
  std::string toml = Pipeline("v/*.csv");
  auto ok = ValidatePipeline(dir_, toml);
  ASSERT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_NE(ok.out.find("3 files"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("3 not loaded yet"), std::string::npos) << ok.out;
  EXPECT_NE(ok.out.find("id BIGINT"), std::string::npos) << ok.out;
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.runs"), "0");  // validate records nothing

  std::string bad = toml;
  bad.replace(bad.find("[destination]"), 0, "[transform]\nsql = \"SELECT no_such_column FROM input\"\n");
  auto fails = ValidatePipeline(dir_, bad);
  EXPECT_EQ(fails.exit_code, 2) << Describe(fails);
  EXPECT_NE(fails.err.find("no_such_column"), std::string::npos) << fails.err;
  EXPECT_EQ(fails.err.find("sluice-spool"), std::string::npos) << fails.err;
}

TEST_F(S3PipelineTest, FileDestinationUploadsToS3AsOneObject) {
  // Big enough for a multipart upload (parts of 8 MiB).
  std::string csv = dir_.Path("big.csv");
  WriteSimpleCsv(csv, 0, 600000);
  std::string toml = SimpleCsvSource(csv) + S3Section(s3_->endpoint()) +
                     "[destination]\ntype = \"file\"\npath = 's3://" + bucket_ + "/out/items.csv'\n" +
                     EngineSection();
  auto run = RunPipeline(dir_, toml);
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  auto body = s3_->GetObject(bucket_, "out/items.csv");
  ASSERT_TRUE(body.ok()) << body.status().ToString();
  EXPECT_GT(body->size(), 9u << 20);
  std::string local = dir_.Path("back.csv");
  {
    std::ofstream out(local, std::ios::binary);
    out << *body;
  }
  auto duck = Duck();
  ASSERT_NE(duck, nullptr);
  EXPECT_EQ(
      DuckScalar(*duck, "SELECT count(*) || '/' || count(DISTINCT id) || '/' || sum(id) FROM read_csv(" +
                            engine::QuoteLiteral(local) + ")"),
      "600000/600000/179999700000");
  // Nothing is left behind locally.
  EXPECT_EQ(run.err.find("error"), std::string::npos) << run.err;
}

TEST_F(S3PipelineTest, IncrementalSourceWritesOneOutputObjectPerFile) {
  // {file} is the key below the source prefix: x/... and y/... never collide.
  Put("o/x/2024.01.01.csv", SimpleCsv(0, 10));
  Put("o/y/2024.01.01.csv", SimpleCsv(10, 20));
  std::string toml = "name = \"objects\"\n[source]\npath = 's3://" + bucket_ +
                     "/o/'\nbatch = \"per_file\"\ncolumns = { id = \"BIGINT\" }\n" +
                     S3Section(s3_->endpoint()) + "[state]\npath = '" + dir_.Path("s.db") +
                     "'\n[destination]\ntype = \"file\"\npath = 's3://" + bucket_ + "/out/{file}.parquet'\n";
  auto run = RunPipeline(dir_, toml);
  ASSERT_EQ(run.exit_code, 0) << Describe(run);
  for (auto [name, rows] : {std::pair{"x/2024.01.01", 10}, std::pair{"y/2024.01.01", 20}}) {
    auto body = s3_->GetObject(bucket_, std::string("out/") + name + ".parquet");
    ASSERT_TRUE(body.ok()) << name << ": " << body.status().ToString();
    std::string local = dir_.Path("got.parquet");
    std::ofstream(local, std::ios::binary) << *body;
    auto duck = Duck();
    EXPECT_EQ(DuckScalar(*duck, "SELECT count(*) FROM read_parquet(" + engine::QuoteLiteral(local) + ")"),
              std::to_string(rows))
        << name;
  }
  // An object this pipeline did not write is not replaced.
  Put("out/x/other.parquet", "someone else's");
  Put("o/x/other.csv", SimpleCsv(30, 5));
  auto refused_run = RunPipeline(dir_, toml);
  EXPECT_NE(refused_run.exit_code, 0) << Describe(refused_run);
  EXPECT_NE(refused_run.err.find("out/x/other.parquet exists and this pipeline did not write it"),
            std::string::npos)
      << Describe(refused_run);
  auto kept = s3_->GetObject(bucket_, "out/x/other.parquet");
  ASSERT_TRUE(kept.ok());
  EXPECT_EQ(*kept, "someone else's");
  // Without a placeholder every load would overwrite the same object.
  std::string fixed = toml;
  fixed.replace(fixed.find("{file}"), 6, "all");
  auto refused = ValidatePipeline(dir_, fixed);
  EXPECT_EQ(refused.exit_code, 2) << Describe(refused);
  EXPECT_NE(refused.err.find("{run}"), std::string::npos) << refused.err;
}

TEST_F(S3PipelineTest, TruncatedCompressedObjectFailsNamingItsKeyAndLoadsNothing) {
  TempDir tmp("sluice-gz");
  WriteSimpleCsv(tmp.Path("f.csv"), 0, 50'000);
  auto gz = sluice::testing::RunSubprocess({"gzip", "-k", tmp.Path("f.csv")});
  ASSERT_EQ(gz.exit_code, 0) << gz.err;
  std::string whole = tmp.Read("f.csv.gz");
  Put("in/part.csv.gz", whole.substr(0, whole.size() / 2));
  auto r = RunPipeline(dir_, Pipeline("in/"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("s3://" + bucket_ + "/in/part.csv.gz is truncated"), std::string::npos) << Describe(r);
  EXPECT_FALSE(PgTableExists(*pg_, db_, "public.items"));
  // Not recorded as loaded: the whole object, uploaded again, loads.
  Put("in/part.csv.gz", whole);
  r = RunPipeline(dir_, Pipeline("in/"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  ExpectIdsExactly(50'000);
}

TEST_F(S3PipelineTest, ASpentS3RetryBudgetIsNotRetriedAgainByTheLoadRetry) {
  FaultProxyOptions faults;
  faults.upstream_port = s3_->port();
  faults.probability = {{FaultKind::kInternalError, 1.0}};
  auto proxy = FaultProxy::Start(faults);
  ASSERT_TRUE(proxy.ok()) << proxy.status().ToString();
  std::string toml = Pipeline("in/", "", "", (*proxy)->endpoint());
  toml.replace(toml.find("[retry]\nmax_attempts = 1\n"), std::string("[retry]\nmax_attempts = 1\n").size(),
               "[retry]\nmax_attempts = 5\ninitial = \"1s\"\n");
  toml.replace(toml.find("[s3]\n"), 5, "[s3]\nretry_max_elapsed = \"3s\"\n");
  auto start = std::chrono::steady_clock::now();
  auto r = RunPipeline(dir_, toml);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("gave up after"), std::string::npos) << Describe(r);
  EXPECT_EQ(r.err.find("retrying in"), std::string::npos) << Describe(r);
  EXPECT_LT(seconds, 10) << Describe(r);
}

TEST_F(PgTest, LocalDirectoryIsIncrementalWhenAskedAndHonoursModifiedWithin) {
  std::string in = dir_.Path("in");
  std::filesystem::create_directories(in);
  WriteSimpleCsv(in + "/a.csv", 0, 10);
  WriteSimpleCsv(in + "/old.csv", 100, 10);
  // old.csv was last modified three days ago.
  struct utimbuf times;
  times.actime = times.modtime = time(nullptr) - 3 * 86400;
  ASSERT_EQ(utime((in + "/old.csv").c_str(), &times), 0);
  std::string toml =
      "name = \"local\"\n" + SimpleCsvSource(in, "incremental = true\nmodified_within = \"24h\"") +
      "[state]\npath = '" + dir_.Path("state.db") + "'\n" + PgDestination(url_, "public.items");
  auto first = RunPipeline(dir_, toml);
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(Count("public.items"), 10);
  auto second = RunPipeline(dir_, toml);
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  EXPECT_EQ(Count("public.items"), 10);
  // Rewriting a file makes it new again.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  WriteSimpleCsv(in + "/a.csv", 200, 5);
  auto third = RunPipeline(dir_, toml);
  ASSERT_EQ(third.exit_code, 0) << Describe(third);
  EXPECT_EQ(Count("public.items"), 15);
}

}  // namespace
}  // namespace sluice::e2e
