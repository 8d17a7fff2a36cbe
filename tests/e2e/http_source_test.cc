// The HTTP source and alerts against a real HTTP server (tests/http_server,
// node) and PostgreSQL: thousands of endpoints in one tick with failures,
// conditional requests, on_endpoint_error = "fail", secrets kept out of
// logs and the run log, and webhook alerts for failure, recovery and slow.
#include <signal.h>

#include <functional>
#include <set>
#include <thread>

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "e2e_support.h"
#include "harness/http_test_server.h"
#include "harness/subprocess.h"

namespace sluice::e2e {
namespace {

using sluice::testing::CliProcess;
using sluice::testing::HttpTestServer;

/// The binary's one HTTP test server, started on first use.
HttpTestServer* SharedHttp() {
  static std::unique_ptr<HttpTestServer> server;
  static bool tried = false;
  if (!tried) {
    tried = true;
    auto started = HttpTestServer::Start();
    if (!started.ok()) {
      ADD_FAILURE() << "cannot start the HTTP test server: " << started.status().ToString();
      return nullptr;
    }
    server = std::move(started).value();
  }
  return server.get();
}

class HttpSourceTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    http_ = SharedHttp();
    ASSERT_NE(http_, nullptr);
    // Paths unique to the test, so that versions and counts of other tests
    // on the shared server do not matter.
    prefix_ = "/e/" + db_ + "-";
  }

  std::string Url(const std::string& id, const std::string& query = "") const {
    return http_->Url(prefix_ + id + (query.empty() ? "" : "?" + query));
  }

  std::string Pipeline(const std::string& source_extra, const std::string& dest_extra = "",
                       const std::string& more = "") const {
    return "name = \"stations\"\n[source]\ntype = \"http\"\nurls_file = '" + tmp_.Path("urls.txt") + "'\n" +
           source_extra + "\n[source.retry]\nmax_attempts = 3\ninitial = \"10ms\"\nmax_delay = \"100ms\"\n" +
           PgDestination(url_, "stations", "append", dest_extra) + "[state]\nurl = '" + url_ + "'\n" +
           EngineSection() + more;
  }

  HttpTestServer* http_ = nullptr;
  std::string prefix_;
  TempDir tmp_{"sluice-http-src"};
};

TEST_F(HttpSourceTest, TenThousandEndpointsInOneTickWithFailuresLoadEveryGoodOneOnce) {
  std::string urls = "# stations\n\n";
  std::set<int> permanent, once;
  for (int i = 0; i < 10000; ++i) {
    if (i % 100 == 7) {
      permanent.insert(i);
      urls += Url(std::to_string(i), "fail=500") + "\n";
    } else if (i % 50 == 3) {
      once.insert(i);
      urls += Url(std::to_string(i), i % 100 == 3 ? "fail_once=503&retry_after=0" : "fail_once=429") + "\n";
    } else {
      urls += Url(std::to_string(i)) + "\n";
    }
  }
  tmp_.Write("urls.txt", urls);
  auto r = RunPipeline(tmp_, Pipeline("concurrency = 128\ntimeout = \"10s\""));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(permanent.size(), 100u);
  EXPECT_EQ(once.size(), 200u);
  // Every good endpoint's row once, none of the permanently failing ones.
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations"), "9900");
  EXPECT_EQ(Scalar("SELECT count(DISTINCT _url) FROM stations"), "9900");
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations WHERE _url LIKE '%fail=500%'"), "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations WHERE _url LIKE '%fail_once%'"), "200");
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations WHERE _status <> 200"), "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations WHERE _fetched_at > now() - interval '10 minutes'"),
            "9900");
  EXPECT_EQ(Scalar("SELECT data_type FROM information_schema.columns WHERE table_name = 'stations' AND "
                   "column_name = '_fetched_at'"),
            "timestamp with time zone");
  // The run log names each permanent failure with its status and attempts.
  EXPECT_EQ(Scalar("SELECT status FROM sluice.runs WHERE pipeline = 'stations'"), "succeeded");
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.run_files WHERE status = 'failed'"), "100");
  EXPECT_EQ(
      Scalar("SELECT count(*) FROM sluice.run_files WHERE status = 'failed' AND file LIKE '%fail=500' AND "
             "error LIKE 'HTTP 500%after 3 attempts%'"),
      "100");
  auto count = http_->Count(prefix_ + "7?fail=500");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 3);
}

TEST_F(HttpSourceTest, ConditionalRequestsGiveNoRowsForUnchangedEndpoints) {
  std::string urls;
  for (int i = 0; i < 50; ++i) urls += Url(std::to_string(i)) + "\n";
  tmp_.Write("urls.txt", urls);
  std::string toml = Pipeline("conditional = true");
  auto first = RunPipeline(tmp_, toml);
  ASSERT_EQ(first.exit_code, 0) << Describe(first);
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations"), "50");
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(http_->Bump(prefix_ + std::to_string(i)).ok());
  auto second = RunPipeline(tmp_, toml);
  ASSERT_EQ(second.exit_code, 0) << Describe(second);
  // Only the five changed endpoints sent a body; their new version arrived.
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations"), "55");
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations WHERE version = 2"), "5");
  EXPECT_NE(second.err.find("45 not modified"), std::string::npos) << Describe(second);
  auto third = RunPipeline(tmp_, toml);
  ASSERT_EQ(third.exit_code, 0) << Describe(third);
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations"), "55");
  EXPECT_NE(third.err.find("nothing new"), std::string::npos) << Describe(third);
}

TEST_F(HttpSourceTest, OnEndpointErrorFailLoadsNothingAndNamesTheEndpoint) {
  std::string urls;
  for (int i = 0; i < 20; ++i) urls += Url(std::to_string(i), i == 13 ? "fail=404" : "") + "\n";
  tmp_.Write("urls.txt", urls);
  auto r = RunPipeline(tmp_, Pipeline("on_endpoint_error = \"fail\""));
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("1 of 20 endpoints failed"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find(prefix_ + "13?fail=404: HTTP 404"), std::string::npos) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'stations'"), "0");
  // A 404 is not retried.
  auto count = http_->Count(prefix_ + "13?fail=404");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
  EXPECT_EQ(Scalar("SELECT status FROM sluice.runs"), "failed");
}

TEST_F(HttpSourceTest, WrappedArraysCsvAndATransformOverTheWholeTick) {
  tmp_.Write("urls.txt", Url("a", "rows=3&wrap=1") + "\n" + Url("b", "rows=2&wrap=1") + "\n");
  auto r = RunPipeline(tmp_, Pipeline("records = \"data.items\"\ncolumns = { row = \"INTEGER\" }", "",
                                      "[transform]\nsql = \"SELECT count(*) AS n, sum(row) AS rows_sum, "
                                      "count(DISTINCT _url) AS urls FROM input\"\n"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT n || ' ' || rows_sum || ' ' || urls FROM stations"), "5 4 2");

  Exec("DROP TABLE stations");
  tmp_.Write("urls.txt", Url("c", "format=csv&rows=4") + "\n");
  auto csv = RunPipeline(tmp_, Pipeline("format = \"csv\""));
  ASSERT_EQ(csv.exit_code, 0) << Describe(csv);
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations"), "4");
}

TEST_F(HttpSourceTest, InvalidJsonIsAFailedEndpointWithTheParseError) {
  tmp_.Write("urls.txt", Url("good") + "\n" + Url("bad", "bad=1") + "\n");
  auto r = RunPipeline(tmp_, Pipeline(""));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations"), "1");
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.run_files WHERE status = 'failed' AND error LIKE "
                   "'invalid JSON%'"),
            "1");
}

TEST_F(HttpSourceTest, SecretsInUrlsNeverReachLogsTheRunLogOrTheData) {
  const std::string secret = "s3cr3t-Tok3n";
  tmp_.Write("urls.txt",
             Url("1", "api_key=" + secret) + "\n" + Url("2", "api_key=" + secret + "&fail=400") + "\n");
  auto r = RunPipeline(tmp_, Pipeline(""));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(r.err.find(secret), std::string::npos) << Describe(r);
  EXPECT_EQ(r.out.find(secret), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("api_key=***"), std::string::npos) << Describe(r);
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations WHERE _url LIKE '%" + secret + "%'"), "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.run_files WHERE file LIKE '%" + secret +
                   "%' OR error LIKE '%" + secret + "%'"),
            "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.run_files WHERE file LIKE '%api_key=***%'"), "1");
}

TEST_F(HttpSourceTest, TwoWorkersTakeTurnsUnderTheRunLeaseAndAPausedOneLoadsNothing) {
  // Two `serve` processes of one http pipeline with a PostgreSQL state
  // store: one tick at a time under the run lease. A worker paused (SIGSTOP)
  // in a slow tick past its lease is taken over; resumed, it commits nothing.
  tmp_.Write("urls.txt", Url("slow", "delay_ms=1500") + "\n");
  std::string toml = Pipeline("timeout = \"20s\"", "",
                              "[schedule]\nevery = \"1s\"\n");
  toml.replace(toml.find("[state]\nurl = '" + url_ + "'\n"), std::string("[state]\nurl = '" + url_ + "'\n").size(),
               "[state]\nurl = '" + url_ + "'\nlease = \"2s\"\n");
  std::string file = tmp_.Write("workers.toml", toml);
  std::vector<std::unique_ptr<CliProcess>> workers;
  for (int i = 0; i < 2; ++i) {
    auto proc = CliProcess::Start({"serve", file, "--listen", "127.0.0.1:0"});
    ASSERT_TRUE(proc.ok()) << proc.status().ToString();
    workers.push_back(std::move(proc).value());
  }
  auto count = [&](const std::string& sql) {
    std::string n = ScalarOrEmpty(sql);
    return n.empty() ? int64_t{-1} : std::stoll(n);
  };
  auto logs = [&] { return workers[0]->StderrSoFar() + "\n---\n" + workers[1]->StderrSoFar(); };
  // Both are workers of the pipeline, and both skip turns the other holds.
  nlohmann::json pipeline = WaitForWorkers(workers[0].get(), 2, 30);
  ASSERT_EQ(pipeline.value("workers", nlohmann::json::array()).size(), 2u) << pipeline.dump(2) << logs();
  EXPECT_EQ(pipeline["worker"], HostPrefix() + std::to_string(workers[0]->pid()));
  ASSERT_TRUE(WaitUntil([&] { return count("SELECT count(*) FROM sluice.runs WHERE status = 'succeeded'") >= 3; }, 60))
      << logs();

  // Pause the holder in the middle of a tick (its request takes 1.5 s).
  std::string holder;
  ASSERT_TRUE(WaitUntil(
      [&] {
        holder = ScalarOrEmpty("SELECT l.holder FROM sluice.leases l JOIN sluice.workers w ON w.pipeline = l.pipeline "
                       "AND w.worker = l.holder WHERE l.name = 'run' AND w.expires_at > now()");
        return !holder.empty();
      },
      30))
      << logs();
  size_t paused = holder == HostPrefix() + std::to_string(workers[0]->pid()) ? 0 : 1;
  ASSERT_EQ(holder, HostPrefix() + std::to_string(workers[paused]->pid()));
  const std::string other = HostPrefix() + std::to_string(workers[1 - paused]->pid());
  ASSERT_EQ(kill(workers[paused]->pid(), SIGSTOP), 0);
  const std::string succeeded_by_other =
      "SELECT count(*) FROM sluice.runs WHERE status = 'succeeded' AND worker = '" + other + "'";
  int64_t before = count(succeeded_by_other);
  // The other one takes the lease over (the paused one's expired) and loads.
  EXPECT_TRUE(WaitUntil([&] { return count(succeeded_by_other) >= before + 2; }, 30))
      << logs();
  ASSERT_EQ(kill(workers[paused]->pid(), SIGCONT), 0);
  // Resumed, its tick ends without loading (lease lost, or its fence
  // refused), and it goes on as a worker that takes turns again.
  EXPECT_TRUE(WaitUntil(
      [&] {
        return ScalarOrEmpty("SELECT count(*) FROM sluice.runs WHERE worker = '" + holder +
                     "' AND status IN ('failed', 'cancelled') AND started_at < (SELECT max(started_at) FROM "
                     "sluice.runs WHERE worker = '" + other + "')") != "0";
      },
      30))
      << logs();
  std::this_thread::sleep_for(std::chrono::seconds(3));
  for (auto& w : workers) {
    w->Kill(SIGTERM);
    auto r = w->Wait();
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
  }
  // Every row comes from a tick that succeeded, one row per tick, and no
  // two succeeded ticks overlapped.
  EXPECT_EQ(Scalar("SELECT count(*) FROM stations"),
            Scalar("SELECT count(*) FROM sluice.runs WHERE status = 'succeeded'"))
      << logs();
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.runs a JOIN sluice.runs b ON a.id < b.id WHERE a.status = "
                   "'succeeded' AND b.status = 'succeeded' AND a.started_at < b.finished_at AND b.started_at < "
                   "a.finished_at"),
            "0");
  EXPECT_NE(Scalar("SELECT count(DISTINCT worker) FROM sluice.runs WHERE status = 'succeeded'"), "1");
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.workers WHERE expires_at > now()"), "0");
}

TEST_F(HttpSourceTest, AlertsPostFailureThenRecoveryThenSlow) {
  ASSERT_TRUE(http_->Reset().ok());
  tmp_.Write("urls.txt", Url("1", "fail=404") + "\n");
  std::string hook = http_->Url("/hook/" + db_);
  std::string toml = Pipeline("on_endpoint_error = \"fail\"", "",
                              "[schedule]\nevery = \"1s\"\n[alert]\nurl = '" + hook +
                                  "'\non = [\"failure\", \"recovery\", \"slow\"]\nslow_after = \"1500ms\"\n");
  std::string file = tmp_.Write("pipeline.toml", toml);
  auto proc = CliProcess::Start({"serve", file, "--listen", "off"});
  ASSERT_TRUE(proc.ok()) << proc.status().ToString();
  auto hooks_with = [&](size_t n) {
    for (int i = 0; i < 200; ++i) {
      auto hooks = http_->Hooks();
      if (hooks.ok() && hooks->size() >= n) return *hooks;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return http_->Hooks().ValueOr(nlohmann::json::array());
  };
  auto first = hooks_with(1);
  ASSERT_GE(first.size(), 1u) << (*proc)->StderrSoFar();
  EXPECT_EQ(first[0]["event"], "failure");
  EXPECT_EQ(first[0]["pipeline"], "stations");
  EXPECT_EQ(first[0]["status"], "failed");
  EXPECT_NE(first[0]["error"].get<std::string>().find("HTTP 404"), std::string::npos) << first.dump();
  // Fixed, and slow: the next run succeeds (recovery) after 3 s (slow).
  tmp_.Write("urls.txt", Url("1", "delay_ms=3000") + "\n");
  auto all = hooks_with(3);
  (*proc)->Kill(SIGTERM);
  (void)(*proc)->Wait();
  std::vector<std::string> events;
  for (const auto& h : all) events.push_back(h["event"]);
  // Failures may repeat until the file changes; then slow comes before the recovery.
  auto slow = std::find(events.begin(), events.end(), "slow");
  auto recovery = std::find(events.begin(), events.end(), "recovery");
  ASSERT_NE(slow, events.end()) << all.dump();
  ASSERT_NE(recovery, events.end()) << all.dump();
  EXPECT_LT(slow - events.begin(), recovery - events.begin()) << all.dump();
  EXPECT_EQ(all[recovery - events.begin()]["status"], "succeeded");
}

TEST_F(HttpSourceTest, AOneShotRunThatFailsStillPostsItsAlertBeforeExiting) {
  ASSERT_TRUE(http_->Reset().ok());
  tmp_.Write("urls.txt", Url("1", "fail=404") + "\n");
  std::string hook = http_->Url("/hook/" + db_ + "?fail_once=503&retry_after=0");
  auto r = RunPipeline(tmp_, Pipeline("on_endpoint_error = \"fail\"", "", "[alert]\nurl = '" + hook + "'\n"));
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  // The process waited for the alert (sent again after a 503) before it exited.
  auto hooks = http_->Hooks();
  ASSERT_TRUE(hooks.ok());
  ASSERT_EQ(hooks->size(), 1u) << hooks->dump() << Describe(r);
  EXPECT_EQ((*hooks)[0]["event"], "failure");
  EXPECT_GT((*hooks)[0]["run_id"].get<int64_t>(), 0);
}

TEST_F(HttpSourceTest, ValidateCompilesTheSqlAgainstTheFirstEndpointOnly) {
  tmp_.Write("urls.txt", Url("v1") + "\n" + Url("v2") + "\n");
  auto ok = ValidatePipeline(tmp_, Pipeline("", "", "[transform]\nsql = \"SELECT id, temp FROM input\"\n"));
  ASSERT_EQ(ok.exit_code, 0) << Describe(ok);
  EXPECT_NE(ok.out.find("2 endpoints (checked against 1 record"), std::string::npos) << Describe(ok);
  EXPECT_NE(ok.out.find("result:      (id VARCHAR, temp"), std::string::npos) << Describe(ok);
  auto bad = ValidatePipeline(tmp_, Pipeline("", "", "[transform]\nsql = \"SELECT nosuch FROM input\"\n"));
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_NE(bad.err.find("nosuch"), std::string::npos) << Describe(bad);
  auto count = http_->Count(prefix_ + "v2");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 0);  // validate contacts the first endpoint only
  EXPECT_EQ(Scalar("SELECT count(*) FROM information_schema.tables WHERE table_name = 'stations'"), "0");
}

}  // namespace
}  // namespace sluice::e2e
