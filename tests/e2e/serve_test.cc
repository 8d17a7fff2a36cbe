// `sluice serve`: scheduled runs and the monitoring endpoints, checked over
// real HTTP against a running process, with PostgreSQL stopped and started
// underneath it.
#include <httplib.h>
#include <signal.h>

#include <functional>
#include <future>
#include <nlohmann/json.hpp>
#include <regex>

#include "e2e_support.h"
#include "harness/http_probe.h"
#include "harness/http_test_server.h"
#include "harness/slow_peers.h"

namespace sluice::e2e {
namespace {

using sluice::testing::TimedAnswer;
using sluice::testing::TimedGet;

using sluice::testing::CliProcess;
using sluice::testing::HttpTestServer;
using sluice::testing::HttpTestServerOptions;
using sluice::testing::SilentListener;
using sluice::testing::SlowLorisClient;
using Clock = std::chrono::steady_clock;

std::chrono::milliseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

class ServeTest : public PgTest {
 protected:
  void TearDown() override {
    if (proc_ && (*proc_).Running()) {
      proc_->Kill(SIGKILL);
      proc_->Wait();
    }
  }

  /// A pipeline over a local directory with two CSV files, on `schedule`,
  /// into PostgreSQL at `destination_url` (default: the test's database).
  std::string WritePipeline(const std::string& schedule, const std::string& state,
                            const std::string& extra = "", const std::string& destination_url = "") {
    std::string in = dir_.Path("in");
    std::filesystem::create_directories(in);
    WriteSimpleCsv(in + "/a.csv", 0, 100);
    WriteSimpleCsv(in + "/b.csv", 1000, 50);
    std::string toml = "name = \"svc\"\n" + SimpleCsvSource(in, "incremental = true") + state +
                       PgDestination(destination_url.empty() ? url_ : destination_url, "public.items") +
                       "[schedule]\n" + schedule + "\n" + "[retry]\nmax_attempts = 1\n" + extra;
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
    if (!std::regex_search(err, m, std::regex("monitoring on http://[^ ]+:([0-9]+)"))) {
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

  /// Sends SIGTERM and returns how long the process took to exit (0), or
  /// fails the test after `limit`; `unblock` runs after the limit or the
  /// exit, so that a process that waits for something still ends.
  std::chrono::milliseconds TerminateWithin(std::chrono::milliseconds limit,
                                            const std::function<void()>& unblock) {
    Clock::time_point start = Clock::now();
    proc_->Kill(SIGTERM);
    auto waited = std::async(std::launch::async, [this] { return proc_->Wait(); });
    bool exited = waited.wait_for(limit) == std::future_status::ready;
    std::chrono::milliseconds took = Since(start);
    unblock();
    auto r = waited.get();
    EXPECT_TRUE(exited) << "SIGTERM: still running after " << limit.count() << " ms\n"
                        << proc_->StderrSoFar();
    EXPECT_EQ(r.exit_code, 0) << Describe(r);
    return took;
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

namespace sluice::e2e {
namespace {

TEST_F(ServeTest, SlowClientsDelayNeitherHealthNorSigterm) {
  std::string file =
      WritePipeline("every = \"1h\"\nrun_on_start = false", "[state]\npath = '" + dir_.Path("s.db") + "'\n");
  int port = Start({"serve", file, "--listen", "127.0.0.1:0"});
  ASSERT_GT(port, 0);
  // Slow clients: each sends one header line a second and never finishes.
  std::vector<std::unique_ptr<SlowLorisClient>> slow;
  for (int i = 0; i < 5; ++i) {
    auto c = SlowLorisClient::Start(port, std::chrono::seconds(1));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    slow.push_back(std::move(c).value());
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(3, 0);
  for (int i = 0; i < 6; ++i) {
    Clock::time_point start = Clock::now();
    auto health = http.Get("/health");
    std::chrono::milliseconds took = Since(start);
    if (!health) {
      ADD_FAILURE() << "/health " << i << ": " << httplib::to_string(health.error());
      break;  // and still check SIGTERM
    }
    EXPECT_EQ(health->status, 200);
    EXPECT_LT(took.count(), 500) << "/health " << i;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // SIGTERM while they are still connected and sending.
  for (auto& c : slow) EXPECT_FALSE(c->closed_after()) << "the head deadline (5 s) is not reached yet";
  std::chrono::milliseconds took = TerminateWithin(std::chrono::seconds(5), [&slow] { slow.clear(); });
  EXPECT_LT(took.count(), 5000);
}

TEST_F(ServeTest, HangingDestinationDelaysNeitherReadyNorHealth) {
  // A "database" that accepts TCP connections and never says a word: each
  // connection attempt hangs until libpq's connect_timeout (10 s).
  auto hole = SilentListener::Start();
  ASSERT_TRUE(hole.ok()) << hole.status().ToString();
  std::string file =
      WritePipeline("every = \"1h\"\nrun_on_start = false", "[state]\npath = '" + dir_.Path("s.db") + "'\n",
                    "", "postgresql://postgres@127.0.0.1:" + std::to_string((*hole)->port()) + "/nowhere");
  int port = Start({"serve", file, "--listen", "127.0.0.1:0"});
  ASSERT_GT(port, 0);

  std::vector<std::future<TimedAnswer>> readies;
  for (int i = 0; i < 6; ++i) {
    readies.push_back(std::async(std::launch::async,
                                 [port] { return TimedGet(port, "/ready", std::chrono::seconds(20)); }));
  }
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);
  for (int i = 0; i < 6; ++i) {
    Clock::time_point start = Clock::now();
    auto health = http.Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    EXPECT_LT(Since(start).count(), 500) << "/health " << i << " waited for the readiness check";
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
  }
  for (auto& r : readies) {
    TimedAnswer a = r.get();
    EXPECT_EQ(a.status, 503) << a.body;
    EXPECT_LT(a.took.count(), 2000) << a.body;
    nlohmann::json body = nlohmann::json::parse(a.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << a.body;
    EXPECT_EQ(body["ready"], false) << a.body;
    EXPECT_TRUE(body.contains("detail")) << a.body;
    EXPECT_TRUE(body.contains("checked_ms_ago")) << a.body;
  }
  // Loopback without a token is fine: no warning.
  EXPECT_EQ(proc_->StderrSoFar().find("without a token"), std::string::npos) << proc_->StderrSoFar();
  // SIGTERM does not wait for the hanging check.
  std::chrono::milliseconds took = TerminateWithin(std::chrono::seconds(5), [] {});
  EXPECT_LT(took.count(), 5000);
}

/// The value of the series `series` (name and labels, exactly as rendered)
/// in a /metrics text; -1 when absent.
double MetricValue(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

TEST_F(ServeTest, ShowsTheBackpressureOfASlowDestinationWhileTheLoadRuns) {
  // An HTTP receiver that answers every request 25 ms late, one request at
  // a time: the destination is by far the slowest stage, so its input
  // channel fills, then encode's, and the stages before it wait.
  HttpTestServerOptions http_options;
  http_options.discard = true;
  auto receiver = HttpTestServer::Start(http_options);
  ASSERT_TRUE(receiver.ok()) << receiver.status().ToString();
  std::string in = dir_.Path("big.csv");
  WriteSimpleCsv(in, 0, 120000);  // 480 requests of 250 rows: about 12 s
  std::string toml = "name = \"bp\"\n" + SimpleCsvSource(in) + "[destination]\ntype = \"http\"\nurl = '" +
                     (*receiver)->Url("/ingest?delay_ms=25") +
                     "'\nmax_rows = 250\nconcurrency = 1\n"
                     "[engine]\nbuffer = \"1MiB\"\nencode_threads = 1\n"
                     "[schedule]\nevery = \"1h\"\n[retry]\nmax_attempts = 1\n";
  std::string file = dir_.Write("bp.toml", toml);
  int port = Start({"serve", file, "--listen", "127.0.0.1:0"});
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  http.set_read_timeout(20, 0);

  const std::string capacity = "sluice_channel_capacity_bytes{channel=\"encoded\",pipeline=\"bp\"}";
  const std::string source_blocked = "sluice_stage_blocked_seconds_total{pipeline=\"bp\",stage=\"source\"}";
  const std::string encode_blocked = "sluice_stage_blocked_seconds_total{pipeline=\"bp\",stage=\"encode\"}";
  const std::string encoded_bytes = "sluice_channel_bytes{channel=\"encoded\",pipeline=\"bp\"}";
  nlohmann::json limiting;      // the limiting stage /status named during the run
  std::string metrics_running;  // /metrics once the run was blocked a while
  std::string last_status;
  auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && (limiting.is_null() || metrics_running.empty())) {
    auto status = http.Get("/status");
    auto metrics = http.Get("/metrics");
    ASSERT_TRUE(status && metrics);
    last_status = status->body;
    auto p = nlohmann::json::parse(status->body)["pipelines"][0];
    if (!p["last_run"].is_null()) break;  // the run ended before it was seen
    if (p["state"] != "running") {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    EXPECT_TRUE(p.contains("limiting_stage")) << status->body;
    if (limiting.is_null() && p["limiting_stage"].is_object()) limiting = p["limiting_stage"];
    if (metrics_running.empty() && MetricValue(metrics->body, source_blocked) > 0.5 &&
        MetricValue(metrics->body, encode_blocked) > 0.5) {
      metrics_running = metrics->body;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_TRUE(limiting.is_object()) << "no limiting stage in /status during the run; last:\n"
                                    << last_status << "\n"
                                    << proc_->StderrSoFar();
  EXPECT_EQ(limiting["stage"], "destination") << limiting.dump();
  EXPECT_EQ(limiting["channel"], "encoded") << limiting.dump();
  EXPECT_GE(limiting["fill"].get<double>(), 0.9) << limiting.dump();
  EXPECT_LE(limiting["fill"].get<double>(), 1.0) << limiting.dump();
  ASSERT_FALSE(metrics_running.empty()) << "the producers were not seen blocked while the run went on";
  // [engine] buffer is split between the two channels.
  EXPECT_EQ(MetricValue(metrics_running, capacity), 524288) << metrics_running;
  EXPECT_EQ(
      MetricValue(metrics_running, "sluice_channel_capacity_bytes{channel=\"batches\",pipeline=\"bp\"}"),
      524288)
      << metrics_running;
  EXPECT_GT(MetricValue(metrics_running, encoded_bytes), 0) << metrics_running;
  EXPECT_NE(metrics_running.find("# TYPE sluice_stage_blocked_seconds_total counter"), std::string::npos);

  // Once the run is over: nothing limits, the channels are empty, and the
  // blocked time is all counted.
  auto done = WaitForLastRun(http, "succeeded", 120);
  const auto& p = done["pipelines"][0];
  EXPECT_EQ(p["last_run"]["rows"], 120000);
  EXPECT_TRUE(p["limiting_stage"].is_null()) << done.dump(2);
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(MetricValue(metrics->body, encoded_bytes), 0) << metrics->body;
  EXPECT_EQ(MetricValue(metrics->body, capacity), 524288) << metrics->body;
  EXPECT_GE(MetricValue(metrics->body, source_blocked), MetricValue(metrics_running, source_blocked));
  EXPECT_GE(MetricValue(metrics->body, encode_blocked), MetricValue(metrics_running, encode_blocked));
  TerminateWithin(std::chrono::seconds(10), [] {});
}

TEST_F(ServeTest, WarnsWhenListeningBeyondLoopbackWithoutAToken) {
  std::string state = "[state]\npath = '" + dir_.Path("s.db") + "'\n";
  std::string file = WritePipeline("every = \"1h\"\nrun_on_start = false", state);
  int port = Start({"serve", file, "--listen", "0.0.0.0:0"});
  ASSERT_GT(port, 0);
  ASSERT_TRUE(proc_->WaitForOutput("without a token", 5000)) << proc_->StderrSoFar();
  std::string err = proc_->StderrSoFar();
  EXPECT_NE(err.find("monitoring on 0.0.0.0:" + std::to_string(port) + " without a token"), std::string::npos)
      << err;
  EXPECT_NE(err.find("[server] token"), std::string::npos) << err;
  TerminateWithin(std::chrono::seconds(5), [] {});

  // With a token: no warning.
  std::string with_token = WritePipeline("every = \"1h\"\nrun_on_start = false", state,
                                         "[server]\nlisten = \"0.0.0.0:0\"\ntoken = \"s3cret-token\"\n");
  port = Start({"serve", with_token});
  ASSERT_GT(port, 0);
  httplib::Client http("127.0.0.1", port);
  EXPECT_EQ(http.Get("/health", {{"Authorization", "Bearer s3cret-token"}})->status, 200);
  EXPECT_EQ(proc_->StderrSoFar().find("without a token"), std::string::npos) << proc_->StderrSoFar();
  TerminateWithin(std::chrono::seconds(5), [] {});
}

}  // namespace
}  // namespace sluice::e2e
