#include "service/serve.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/cancellation.h"
#include "core/human_format.h"
#include "core/job.h"
#include "core/metrics.h"
#include "service/alerts.h"
#include "service/config.h"
#include "service/monitor_server.h"
#include "service/schedule.h"

namespace sluice::service {

namespace {

using SystemClock = std::chrono::system_clock;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

double UnixSeconds(SystemClock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

/// The metric handles every pipeline has, whatever its job.
struct PipelineMetrics {
  PipelineMetrics(MetricsRegistry* r, const std::string& p) : registry(r), pipeline(p) {
    duration = &r->Histogram("sluice_run_duration_seconds", "Duration of runs", {{"pipeline", p}});
    last_success = &r->Gauge("sluice_last_success_timestamp_seconds",
                             "Unix time when the last successful run finished", {{"pipeline", p}});
    last_run = &r->Gauge("sluice_last_run_timestamp_seconds", "Unix time when the last run finished",
                         {{"pipeline", p}});
    running = &r->Gauge("sluice_pipeline_running", "1 while a run is in progress", {{"pipeline", p}});
    overruns = &r->Counter("sluice_run_overruns_total",
                           "Runs that took longer than their schedule's interval", {{"pipeline", p}});
    // Families that must exist before the first run, so dashboards and
    // alerts see zeros rather than nothing.
    for (const char* status : {"succeeded", "failed", "cancelled", "skipped"}) Runs(status);
  }
  sluice::Counter& Runs(const std::string& status) {
    return registry->Counter("sluice_runs_total", "Runs by outcome",
                             {{"pipeline", pipeline}, {"status", status}});
  }
  sluice::Counter& Errors(const std::string& kind) {
    return registry->Counter("sluice_errors_total", "Failed runs and files by error kind",
                             {{"pipeline", pipeline}, {"kind", kind}});
  }

  MetricsRegistry* registry;
  std::string pipeline;
  sluice::Histogram* duration;
  sluice::Gauge *last_success, *last_run, *running;
  sluice::Counter* overruns;
};

/// One pipeline: its schedule and its job. The worker only schedules; the
/// job runs, and reports what it did.
class Worker {
 public:
  Worker(std::unique_ptr<LoadedPipeline> pipeline, MetricsRegistry* metrics)
      : pipeline_(std::move(pipeline)),
        config_(pipeline_->config),
        job_(pipeline_->job.get()),
        metrics_(metrics, config_.name) {}

  Status Open() {
    if (config_.schedule && !job_->continuous()) {
      SLUICE_ASSIGN_OR_RETURN(schedule_, MakeSchedule(config_.schedule->every_seconds, config_.schedule->cron,
                                                      config_.schedule->timezone));
    }
    if (config_.alert.configured) {
      SLUICE_ASSIGN_OR_RETURN(alerter_, Alerter::Make(config_.alert, config_.name, metrics_.registry));
    }
    SLUICE_RETURN_IF_ERROR(job_->Open());
    if (auto ms = job_->LastSuccessUnixMs()) metrics_.last_success->Set(static_cast<double>(*ms) / 1000.0);
    return Status::OK();
  }

  /// Runs until `cancel` fires, or once when `once`. Returns the last run's status.
  Status Loop(const CancellationSource* cancel, bool once, ProgressMode progress) {
    if (job_->continuous()) return RunOnce(cancel, progress);
    bool first = true;
    SystemClock::time_point last_start{};
    Status last = Status::OK();
    while (!cancel->cancelled()) {
      bool run_now = once || !schedule_ || (first && config_.schedule->run_on_start);
      if (!run_now) {
        auto from = dynamic_cast<const IntervalSchedule*>(schedule_.get()) != nullptr &&
                            last_start != SystemClock::time_point{}
                        ? last_start
                        : SystemClock::now();
        auto next = schedule_->Next(from);
        if (!next.ok()) {
          Status failed = next.status().WithContext("[schedule]");
          spdlog::error("pipeline {}: {}; no further runs", config_.name, failed.message());
          std::lock_guard<std::mutex> lock(mu_);
          schedule_error_ = failed.message();
          return failed;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          next_run_ = *next;
        }
        spdlog::info("pipeline {}: next run at {}", config_.name, Iso8601(*next));
        while (SystemClock::now() < *next && !cancel->cancelled()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
        if (cancel->cancelled()) break;
      }
      first = false;
      last_start = SystemClock::now();
      last = RunOnce(cancel, progress);
      if (once || !schedule_) break;
      // A run longer than its interval: the next one starts now (runs never
      // overlap), and the overrun is logged and counted.
      if (dynamic_cast<const IntervalSchedule*>(schedule_.get()) != nullptr) {
        auto due = schedule_->Next(last_start);
        if (due.ok() && *due < SystemClock::now() && !cancel->cancelled()) {
          spdlog::warn("pipeline {}: the run took longer than its interval ({}); the next one starts now",
                       config_.name, schedule_->Describe());
          metrics_.overruns->Add(1);
        }
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      next_run_.reset();
    }
    return last;
  }

  nlohmann::json StatusJson() {
    nlohmann::json j = nlohmann::json::parse(job_->StatusJson());
    j["name"] = config_.name;
    j["file"] = config_.file;
    std::lock_guard<std::mutex> lock(mu_);
    if (!job_->continuous()) {
      if (running_) {
        j["state"] = "running";
        j["current_run"] = {{"started", Iso8601(current_start_)}};
      }
      if (schedule_) j["schedule"] = schedule_->Describe();
      j["next_run"] = next_run_ ? nlohmann::json(Iso8601(*next_run_)) : nlohmann::json(nullptr);
    }
    if (!schedule_error_.empty()) {
      j["state"] = "failed";
      j["error"] = schedule_error_;
    }
    return j;
  }

  /// The job's servers answer.
  bool Ready(std::string* detail) {
    Status ready = job_->Ready();
    if (!ready.ok()) *detail = config_.name + ": " + ready.message();
    return ready.ok();
  }

  const PipelineConfig& config() const { return config_; }
  bool continuous() const { return job_->continuous(); }

 private:
  Status RunOnce(const CancellationSource* cancel, ProgressMode progress) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = true;
      current_start_ = SystemClock::now();
      next_run_.reset();
    }
    metrics_.running->Set(1);
    if (!job_->continuous()) spdlog::info("pipeline {}: starting", config_.name);
    const auto start = SystemClock::now();
    JobRun run;
    {
      // Watches the run for alerts: slow runs, and CDC tables that errored.
      RunWatcher watcher(this, start);
      run = job_->Run(cancel, progress);
    }
    auto end = SystemClock::now();
    metrics_.running->Set(0);
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
    }
    if (run.skipped) {
      metrics_.Runs("skipped").Add(1);
      return Status::OK();
    }
    const Status& status = run.status;
    metrics_
        .Runs(status.ok()                               ? "succeeded"
              : status.code() == StatusCode::kCancelled ? "cancelled"
                                                        : "failed")
        .Add(1);
    if (!status.ok()) metrics_.Errors(ErrorKind(status)).Add(1);
    metrics_.duration->Observe(std::chrono::duration<double>(end - current_start_).count());
    metrics_.last_run->Set(UnixSeconds(end));
    if (status.ok()) metrics_.last_success->Set(UnixSeconds(end));
    if (alerter_ && status.code() != StatusCode::kCancelled) {
      AlertEvent event;
      event.run_id = LastRunId();
      event.started = start;
      event.seconds = std::chrono::duration<double>(end - start).count();
      if (!status.ok()) {
        event.event = "failure";
        event.status = "failed";
        event.error = status.message();
        alerter_->Post(event);
        failed_before_ = true;
      } else if (failed_before_) {
        event.event = "recovery";
        event.status = "succeeded";
        alerter_->Post(event);
        failed_before_ = false;
      }
    }
    return status;
  }

  /// The id of the job's last run, from its status (0 when it has none).
  int64_t LastRunId() const {
    auto j = nlohmann::json::parse(job_->StatusJson(), nullptr, false);
    if (j.is_object() && j.contains("last_run") && j["last_run"].is_object() &&
        j["last_run"].contains("id") && j["last_run"]["id"].is_number_integer()) {
      return j["last_run"]["id"].get<int64_t>();
    }
    return 0;
  }

  /// While a run lasts: posts "slow" once the run passes [alert]
  /// slow_after, and for a continuous job a "failure" for every table that
  /// turns errored (once per error).
  class RunWatcher {
   public:
    RunWatcher(Worker* worker, SystemClock::time_point start) : worker_(worker), start_(start) {
      if (!worker_->alerter_) return;
      thread_ = std::thread([this] { Watch(); });
    }
    ~RunWatcher() {
      {
        std::lock_guard<std::mutex> lock(mu_);
        done_ = true;
      }
      cv_.notify_all();
      if (thread_.joinable()) thread_.join();
    }

   private:
    void Watch() {
      const AlertConfig& alert = worker_->alerter_->config();
      bool slow_sent = false;
      std::map<std::string, std::string> errored;  // table -> error already alerted
      std::unique_lock<std::mutex> lock(mu_);
      while (!done_) {
        cv_.wait_for(lock, std::chrono::milliseconds(500));
        if (done_) break;
        auto now = SystemClock::now();
        if (alert.on_slow && !slow_sent && !worker_->job_->continuous() &&
            now - start_ >= std::chrono::milliseconds(alert.slow_after_ms)) {
          AlertEvent e;
          e.event = "slow";
          e.status = "running";
          e.started = start_;
          e.seconds = std::chrono::duration<double>(now - start_).count();
          worker_->alerter_->Post(e);
          slow_sent = true;
        }
        if (alert.on_failure && worker_->job_->continuous()) {
          auto j = nlohmann::json::parse(worker_->job_->StatusJson(), nullptr, false);
          if (!j.is_object() || !j.contains("tables") || !j["tables"].is_array()) continue;
          for (const auto& t : j["tables"]) {
            std::string name = t.value("table", "");
            if (t.value("state", "") != "errored") {
              errored.erase(name);
              continue;
            }
            std::string error = t.value("error", "");
            auto known = errored.find(name);
            if (known != errored.end() && known->second == error) continue;
            errored[name] = error;
            AlertEvent e;
            e.event = "failure";
            e.status = "errored";
            e.error = error;
            e.table = name;
            e.started = start_;
            e.seconds = std::chrono::duration<double>(now - start_).count();
            worker_->alerter_->Post(e);
          }
        }
      }
    }

    Worker* worker_;
    SystemClock::time_point start_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
  };

  std::unique_ptr<LoadedPipeline> pipeline_;
  const PipelineConfig& config_;
  Job* job_;
  PipelineMetrics metrics_;
  std::unique_ptr<Schedule> schedule_;
  std::unique_ptr<Alerter> alerter_;
  bool failed_before_ = false;  // the last finished run failed: the next success is a recovery

  std::mutex mu_;  // guards what follows: read by the monitoring threads
  bool running_ = false;
  SystemClock::time_point current_start_{};
  std::optional<SystemClock::time_point> next_run_;
  std::string schedule_error_;
};

}  // namespace

int ExitCodeFor(const Status& status) {
  if (status.code() == StatusCode::kCancelled) return kExitInterrupted;
  if (status.code() == StatusCode::kInvalidArgument) return kExitUsage;
  return kExitFailure;
}

int ServePipelines(const std::vector<std::string>& files, const ServeOptions& options) {
  MetricsRegistry metrics;
  Registry registry = Registry::WithBuiltins();
  std::vector<std::unique_ptr<LoadedPipeline>> loaded;
  std::vector<PipelineConfig> configs;
  for (const auto& file : files) {
    auto pipeline = LoadPipelineFile(file, registry, &metrics);
    if (!pipeline.ok()) {
      spdlog::error("{}", pipeline.status().message());
      return ExitCodeFor(pipeline.status());
    }
    const PipelineConfig& config = (*pipeline)->config;
    for (const auto& other : configs) {
      if (other.name == config.name) {
        spdlog::error("{}: pipeline name '{}' is also used by {}; set name = \"...\" in one of them", file,
                      config.name, other.file);
        return kExitUsage;
      }
    }
    configs.push_back(config);
    loaded.push_back(std::move(pipeline).value());
  }
  // The monitoring address: the command line, else the [server] section
  // of the files (they must agree), else the default.
  std::string listen = options.listen;
  std::string token;
  const PipelineConfig* server_from = nullptr;
  for (const auto& c : configs) {
    if (!c.server.configured) continue;
    if (server_from &&
        (c.server.listen != server_from->server.listen || c.server.token != server_from->server.token)) {
      spdlog::error("[server] differs between {} and {}: one process serves one address", server_from->file,
                    c.file);
      return kExitUsage;
    }
    server_from = &c;
  }
  if (listen.empty())
    listen = server_from ? server_from->server.listen : (options.once ? "off" : "127.0.0.1:9187");
  if (server_from) token = server_from->server.token;

  InstallSignalHandlers();
  const CancellationSource* cancel = &ProcessCancellation();
  // Shared: a readiness check that outlives the server's Stop() (a hanging
  // database) keeps the workers it checks alive.
  std::vector<std::shared_ptr<Worker>> workers;
  for (auto& pipeline : loaded) {
    auto worker = std::make_shared<Worker>(std::move(pipeline), &metrics);
    Status opened = worker->Open();
    if (!opened.ok()) {
      spdlog::error("pipeline {}: {}", worker->config().name, opened.message());
      return ExitCodeFor(opened);
    }
    workers.push_back(std::move(worker));
  }

  std::unique_ptr<MonitorServer> server;
  if (listen != "off") {
    MonitorHandlers handlers;
    handlers.ready = [workers](std::string* detail) {
      for (const auto& w : workers) {
        if (!w->Ready(detail)) return false;
      }
      return true;
    };
    handlers.status_json = [&workers] {
      nlohmann::json j;
      j["pipelines"] = nlohmann::json::array();
      for (auto& w : workers) j["pipelines"].push_back(w->StatusJson());
      return j.dump(2);
    };
    handlers.metrics_text = [&metrics] { return metrics.RenderPrometheus(); };
    MonitorOptions mo;
    mo.listen = listen;
    mo.token = token;
    auto started = MonitorServer::Start(mo, std::move(handlers));
    if (!started.ok()) {
      spdlog::error("[server] listen: {}", started.status().message());
      return ExitCodeFor(started.status());
    }
    server = std::move(started).value();
    spdlog::info("monitoring on http://{} (/health /ready /status /metrics{})", server->address(),
                 token.empty() ? "" : ", bearer token required");
    Result<ListenAddress> address = ParseListenAddress(listen);
    if (token.empty() && address.ok() && !IsLoopbackHost(address->host)) {
      spdlog::warn(
          "monitoring on {} without a token: anyone who can reach this address can read /status and "
          "/metrics; set [server] token, or listen on 127.0.0.1",
          server->address());
    }
  }

  std::vector<Status> results(workers.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < workers.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = workers[i]->Loop(cancel, options.once, options.progress); });
  }
  for (auto& t : threads) t.join();
  if (!options.once) {
    // Pipelines without a schedule ran once; the service stays up, so their
    // outcome can still be read, until it is told to stop.
    while (!cancel->cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (server) server->Stop();
  if (cancel->cancelled()) {
    spdlog::info("stopped");
    // A scheduled service stopped by SIGTERM/Ctrl-C has done its job; a
    // single run that was interrupted has not.
    // A continuous pipeline (CDC) stopped cleanly has done its job too.
    bool all_continuous = true;
    for (const auto& w : workers) all_continuous = all_continuous && w->continuous();
    return options.once && !all_continuous ? kExitInterrupted : 0;
  }
  for (const auto& r : results) {
    if (!r.ok()) return ExitCodeFor(r);
  }
  return 0;
}

}  // namespace sluice::service
