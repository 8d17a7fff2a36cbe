// `sluice serve`: scheduled runs and the monitoring endpoints, checked over
// real HTTP against a running process, with PostgreSQL stopped and started
// underneath it.
#include <httplib.h>
#include <signal.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "e2e_support.h"

namespace sluice::e2e {
namespace {

using sluice::testing::CliProcess;

class ServeTest : public PgTest {
 protected:
  void TearDown() override {
    if (proc_ && (*proc_).Running()) {
      proc_->Kill(SIGKILL);
      proc_->Wait();
    }
  }

  /// A pipeline over a local directory with two CSV files, on `schedule`.
  std::string WritePipeline(const std::string& schedule, const std::string& state,
                            const std::string& extra = "") {
    std::string in = dir_.Path("in");
    std::filesystem::create_directories(in);
    WriteSimpleCsv(in + "/a.csv", 0, 100);
    WriteSimpleCsv(in + "/b.csv", 1000, 50);
    std::string toml = "name = \"svc\"\n" + SimpleCsvSource(in, "incremental = true") + state +
                       PgDestination(url_, "public.items") + "[schedule]\n" + schedule + "\n" +
                       "[retry]\nmax_attempts = 1\n" + extra;
    return dir_.Write("svc.toml", toml);
  }

  /// Starts `sluice serve` and returns the monitoring port it logged.
  int Start(const std::vector<std::string>& args) {
    auto p = CliProcess::Start(args);
    if (!p.ok()) {
      ADD_FAILURE() << p.status().ToString();
      return 0;
    }
    proc_ = std::move(p).value();
    if (!proc_->WaitForOutput("monitoring on http://", 30000)) {
      ADD_FAILURE() << "no monitoring line:\n" << proc_->StderrSoFar();
      return 0;
    }
    std::smatch m;
    std::string err = proc_->StderrSoFar();
    if (!std::regex_search(err, m, std::regex("monitoring on http://127\\.0\\.0\\.1:([0-9]+)"))) {
      ADD_FAILURE() << err;
      return 0;
    }
    return std::stoi(m[1]);
  }

  /// Polls /status until the pipeline's last run has `status`.
  nlohmann::json WaitForLastRun(httplib::Client& http, const std::string& status, int timeout_s,
                                const httplib::Headers& headers = {}) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    nlohmann::json last;
    while (std::chrono::steady_clock::now() < deadline) {
      auto res = http.Get("/status", headers);
      if (res && res->status == 200) {
        last = nlohmann::json::parse(res->body);
        const auto& p = last["pipelines"][0];
        if (!p["last_run"].is_null() && p["last_run"]["status"] == status) return last;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << "no run with status " << status << " in " << timeout_s << " s; last /status:\n"
                  << last.dump(2) << "\n"
                  << proc_->StderrSoFar();
    return last;
  }

  std::unique_ptr<CliProcess> proc_;
};

TEST_F(ServeTest, ServesHealthStatusMetricsAndReadinessAndStopsOnSigterm) {
  std::string file = WritePipeline("every = \"1h\"", "[state]\nurl = '" + url_ + "'\n");
  int port = Start({"serve", file, "--listen", "127.0.0.1:0"});
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);

  auto status = WaitForLastRun(http, "succeeded", 60);
  const auto& p = status["pipelines"][0];
  EXPECT_EQ(p["name"], "svc");
  EXPECT_EQ(p["state"], "idle");
  EXPECT_EQ(p["last_run"]["files"], 2);
  EXPECT_EQ(p["last_run"]["rows"], 150);
  EXPECT_EQ(p["last_run"]["exactly_once"], true);
  EXPECT_FALSE(p["next_run"].is_null()) << status.dump(2);
  EXPECT_EQ(p["totals"]["runs"], 1);
  EXPECT_EQ(Count("public.items"), 150);

  auto health = http.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto ready = http.Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200) << ready->body;

  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->get_header_value("Content-Type").find("text/plain"), std::string::npos);
  const std::string& m = metrics->body;
  for (const char* line :
       {"sluice_runs_total{pipeline=\"svc\",status=\"succeeded\"} 1",
        "sluice_runs_total{pipeline=\"svc\",status=\"failed\"} 0",
        "sluice_files_processed_total{pipeline=\"svc\"} 2", "sluice_rows_out_total{pipeline=\"svc\"} 150",
        "# TYPE sluice_run_duration_seconds histogram",
        "sluice_run_duration_seconds_count{pipeline=\"svc\"} 1",
        "# TYPE sluice_last_success_timestamp_seconds gauge",
        "sluice_stage_rows_total{pipeline=\"svc\",stage=\"destination\"} 150"}) {
    EXPECT_NE(m.find(line), std::string::npos) << "missing " << line << " in\n" << m;
  }

  // PostgreSQL (state store and destination) stopped: not ready; back: ready.
  ASSERT_TRUE(pg_->Stop().ok());
  auto down = http.Get("/ready");
  ASSERT_TRUE(down);
  EXPECT_EQ(down->status, 503) << down->body;
  EXPECT_NE(down->body.find("svc"), std::string::npos) << down->body;
  EXPECT_EQ(http.Get("/health")->status, 200);
  ASSERT_TRUE(pg_->StartAgain().ok());
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  int code = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = http.Get("/ready");
    code = r ? r->status : 0;
    if (code == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(code, 200);

  auto start = std::chrono::steady_clock::now();
  proc_->Kill(SIGTERM);
  auto r = proc_->Wait();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10);
}

TEST_F(ServeTest, TokenIsRequiredWhenSet) {
  std::string file =
      WritePipeline("every = \"1h\"\nrun_on_start = false", "[state]\npath = '" + dir_.Path("s.db") + "'\n",
                    "[server]\nlisten = \"127.0.0.1:0\"\ntoken = \"s3cret-token\"\n");
  int port = Start({"serve", file});
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  for (const char* path : {"/health", "/ready", "/status", "/metrics"}) {
    auto none = http.Get(path);
    ASSERT_TRUE(none) << path;
    EXPECT_EQ(none->status, 401) << path;
    auto wrong = http.Get(path, {{"Authorization", "Bearer nope"}});
    ASSERT_TRUE(wrong);
    EXPECT_EQ(wrong->status, 401) << path;
    auto right = http.Get(path, {{"Authorization", "Bearer s3cret-token"}});
    ASSERT_TRUE(right);
    EXPECT_EQ(right->status, 200) << path << ": " << right->body;
  }
  // run_on_start = false: nothing ran, the next run is scheduled.
  auto status = nlohmann::json::parse(http.Get("/status", {{"Authorization", "Bearer s3cret-token"}})->body);
  EXPECT_TRUE(status["pipelines"][0]["last_run"].is_null()) << status.dump(2);
  EXPECT_FALSE(status["pipelines"][0]["next_run"].is_null()) << status.dump(2);
  EXPECT_EQ(proc_->StderrSoFar().find("s3cret-token"), std::string::npos);
}

TEST_F(ServeTest, AFailedRunIsReportedAndRetriedOnTheNextTick) {
  std::string file = WritePipeline("every = \"2s\"", "[state]\npath = '" + dir_.Path("s.db") + "'\n");
  ASSERT_TRUE(pg_->Stop().ok());
  int port = Start({"serve", file, "--listen", "127.0.0.1:0"});
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);
  auto failed = WaitForLastRun(http, "failed", 60);
  EXPECT_EQ(failed["pipelines"][0]["state"], "failed");
  EXPECT_FALSE(failed["pipelines"][0]["last_run"]["error"].is_null());
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find("sluice_errors_total{kind=\"unavailable\",pipeline=\"svc\"}"),
            std::string::npos)
      << metrics->body;

  ASSERT_TRUE(pg_->StartAgain().ok());
  auto ok = WaitForLastRun(http, "succeeded", 60);
  EXPECT_EQ(ok["pipelines"][0]["state"], "idle");
  EXPECT_EQ(Count("public.items"), 150);
  // Later ticks find nothing new: still 150 rows.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  EXPECT_EQ(Count("public.items"), 150);
  proc_->Kill(SIGTERM);
  auto r = proc_->Wait();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

TEST_F(ServeTest, StartsWhileTheStateStoreIsDownAndCatchesUpWhenItComesBack) {
  std::string file = WritePipeline("every = \"2s\"", "[state]\nurl = '" + url_ + "'\n");
  ASSERT_TRUE(pg_->Stop().ok());
  int port = Start({"serve", file, "--listen", "127.0.0.1:0"});
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);
  auto ready = http.Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503) << ready->body;
  EXPECT_NE(ready->body.find("state store"), std::string::npos) << ready->body;
  WaitForLastRun(http, "failed", 60);
  ASSERT_TRUE(pg_->StartAgain().ok());
  auto ok = WaitForLastRun(http, "succeeded", 60);
  EXPECT_EQ(ok["pipelines"][0]["last_run"]["exactly_once"], true) << ok.dump(2);
  EXPECT_EQ(Count("public.items"), 150);
  EXPECT_EQ(http.Get("/ready")->status, 200);
  proc_->Kill(SIGTERM);
  auto r = proc_->Wait();
  EXPECT_EQ(r.exit_code, 0) << Describe(r);
}

}  // namespace
}  // namespace sluice::e2e
