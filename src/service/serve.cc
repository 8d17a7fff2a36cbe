#include "service/serve.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "core/cancellation.h"
#include "core/human_format.h"
#include "core/metrics.h"
#include "service/batch_job.h"
#include "service/cdc_job.h"
#include "service/config.h"
#include "service/destination_factory.h"
#include "service/monitor_server.h"
#include "service/schedule.h"
#include "state/state_store.h"

namespace sluice::service {

namespace {

using SystemClock = std::chrono::system_clock;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;
constexpr int kExitInterrupted = 130;

std::string Iso8601(SystemClock::time_point t) {
  std::time_t secs = SystemClock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

double UnixSeconds(SystemClock::time_point t) {
  return std::chrono::duration<double>(t.time_since_epoch()).count();
}

/// Per-pipeline metric handles, created once.
struct PipelineMetrics {
  PipelineMetrics(MetricsRegistry* r, const std::string& p) : registry(r), pipeline(p) {
    files =
        &r->Counter("sluice_files_processed_total", "Files loaded into the destination", {{"pipeline", p}});
    files_failed = &r->Counter("sluice_files_failed_total", "Files whose load failed", {{"pipeline", p}});
    rows_in = &r->Counter("sluice_rows_in_total", "Rows read from the source (after the transform)",
                          {{"pipeline", p}});
    rows_out = &r->Counter("sluice_rows_out_total", "Rows written to the destination", {{"pipeline", p}});
    bytes_in = &r->Counter("sluice_bytes_in_total", "Bytes of input files read", {{"pipeline", p}});
    bytes_out = &r->Counter("sluice_bytes_out_total", "Bytes sent to the destination", {{"pipeline", p}});
    downloaded = &r->Counter("sluice_s3_downloaded_bytes_total", "Bytes downloaded from object storage",
                             {{"pipeline", p}});
    duration = &r->Histogram("sluice_run_duration_seconds", "Duration of runs", {{"pipeline", p}});
    last_success = &r->Gauge("sluice_last_success_timestamp_seconds",
                             "Unix time when the last successful run finished", {{"pipeline", p}});
    last_run = &r->Gauge("sluice_last_run_timestamp_seconds", "Unix time when the last run finished",
                         {{"pipeline", p}});
    running = &r->Gauge("sluice_pipeline_running", "1 while a run is in progress", {{"pipeline", p}});
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
  sluice::Counter& StageRows(const std::string& stage) {
    return registry->Counter("sluice_stage_rows_total", "Rows that passed a stage",
                             {{"pipeline", pipeline}, {"stage", stage}});
  }
  sluice::Counter& StageBytes(const std::string& stage) {
    return registry->Counter("sluice_stage_bytes_total", "Bytes that passed a stage",
                             {{"pipeline", pipeline}, {"stage", stage}});
  }

  MetricsRegistry* registry;
  std::string pipeline;
  sluice::Counter *files, *files_failed, *rows_in, *rows_out, *bytes_in, *bytes_out, *downloaded;
  sluice::Histogram* duration;
  sluice::Gauge *last_success, *last_run, *running;
};

/// One pipeline: its schedule, its state store and what it last did.
class Worker {
 public:
  Worker(PipelineConfig config, MetricsRegistry* metrics)
      : config_(std::move(config)), metrics_(metrics, config_.name) {}

  Status Open() {
    if (config_.source.is_cdc()) return Status::OK();  // CdcJob opens its own store
    if (config_.schedule) {
      SLUICE_ASSIGN_OR_RETURN(schedule_, MakeSchedule(config_.schedule->every_seconds, config_.schedule->cron,
                                                      config_.schedule->timezone));
    }
    if (config_.uses_state() || config_.source.is_s3()) {
      Status opened = OpenStore();
      // A state store that is down now may be up at the next tick: the
      // service starts anyway, reports not ready, and each run tries again.
      if (!opened.ok() && !opened.retryable()) return opened;
      if (!opened.ok())
        spdlog::warn("pipeline {}: {}; trying again at each run", config_.name, opened.message());
    }
    return Status::OK();
  }

  /// Opens the state store if it is not open yet, and seeds the last
  /// success from the run log, so that a restart does not look stale.
  Status OpenStore() {
    if (store_) return Status::OK();
    state::StateConfig state_config = StateConfigFor(config_);
    // An S3 source without a ledger still needs listing and a run lock,
    // but remembers nothing between runs.
    if (!config_.uses_state()) state_config = state::StateConfig{"", "", true};
    auto store = state::OpenStateStore(state_config);
    if (!store.ok()) return store.status().WithContext("[state]");
    spdlog::info("pipeline {}: state store {}", config_.name, (*store)->Describe());
    auto runs = (*store)->RecentRuns(config_.name, 50);
    std::lock_guard<std::mutex> lock(mu_);
    if (runs.ok()) {
      for (const auto& r : *runs) {
        if (r.status != "succeeded" || !r.finished_unix_ms) continue;
        last_success_ = SystemClock::time_point(std::chrono::milliseconds(*r.finished_unix_ms));
        metrics_.last_success->Set(static_cast<double>(*r.finished_unix_ms) / 1000.0);
        break;
      }
    }
    store_ = std::move(store).value();
    return Status::OK();
  }

  /// Runs until `cancel` fires, or once when `once`. Returns the last run's status.
  Status Loop(const CancellationSource* cancel, bool once, ProgressMode progress) {
    if (config_.source.is_cdc()) return RunCdc(cancel);
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
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      next_run_.reset();
    }
    return last;
  }

  nlohmann::json StatusJson() {
    std::lock_guard<std::mutex> lock(mu_);
    if (config_.source.is_cdc()) return CdcStatusJson();
    nlohmann::json j;
    j["name"] = config_.name;
    j["file"] = config_.file;
    j["state"] = running_                                                           ? "running"
                 : !schedule_error_.empty() || (last_ && last_->status == "failed") ? "failed"
                                                                                    : "idle";
    if (!schedule_error_.empty()) j["error"] = schedule_error_;
    j["source"] = config_.source.path;
    j["destination"] =
        config_.destination.type + (config_.destination.table.empty() ? "" : " " + config_.destination.table);
    if (schedule_) j["schedule"] = schedule_->Describe();
    j["next_run"] = next_run_ ? nlohmann::json(Iso8601(*next_run_)) : nlohmann::json(nullptr);
    if (store_) j["state_store"] = store_->Describe();
    if (running_) j["current_run"] = {{"started", Iso8601(current_start_)}};
    if (last_) {
      j["last_run"] = {
          {"id", last_->run_id},
          {"started", Iso8601(last_start_)},
          {"finished", Iso8601(last_end_)},
          {"status", last_->status},
          {"files", last_->files_loaded},
          {"files_failed", last_->files_failed},
          {"rows", last_->rows},
          {"bytes", last_->bytes_in},
          {"seconds", last_->seconds},
          {"exactly_once", last_->exactly_once},
          {"error", last_->error.empty() ? nlohmann::json(nullptr) : nlohmann::json(last_->error)}};
    } else {
      j["last_run"] = nullptr;
    }
    j["last_success"] = last_success_ ? nlohmann::json(Iso8601(*last_success_)) : nlohmann::json(nullptr);
    j["totals"] = {{"runs", runs_},
                   {"runs_failed", runs_failed_},
                   {"files", files_total_},
                   {"rows", rows_total_},
                   {"bytes", bytes_total_}};
    return j;
  }

  /// The state store and the destination answer.
  bool Ready(std::string* detail) {
    if (config_.source.is_cdc()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (!cdc_error_.empty()) {
        *detail = config_.name + ": " + cdc_error_;
        return false;
      }
      if (!cdc_job_) {
        *detail = config_.name + ": replication not started";
        return false;
      }
      return true;
    }
    state::StateStore* store = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      store = store_.get();
    }
    if (config_.uses_state() && store == nullptr) {
      *detail = config_.name + ": state store not open yet";
      return false;
    }
    if (store) {
      Status s = store->Ping();
      if (!s.ok()) {
        *detail = config_.name + ": state store " + store->Describe() + ": " + s.message();
        return false;
      }
    }
    Status d = PingDestination(config_.destination);
    if (!d.ok()) {
      *detail = config_.name + ": destination: " + d.message();
      return false;
    }
    return true;
  }

  const PipelineConfig& config() const { return config_; }

 private:
  /// A CDC pipeline runs continuously; its counters become metrics once a second.
  Status RunCdc(const CancellationSource* cancel) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = true;
      current_start_ = SystemClock::now();
    }
    metrics_.running->Set(1);
    auto job = CdcJob::Make(config_, cancel->flag());
    Status status = job.status();
    if (job.ok()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        cdc_job_ = std::move(job).value();
      }
      std::atomic<bool> done{false};
      std::thread refresher([&] {
        while (!done) {
          RefreshCdcMetrics();
          for (int i = 0; i < 10 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        }
      });
      status = cdc_job_->Run();
      done = true;
      refresher.join();
      RefreshCdcMetrics();
    }
    metrics_.running->Set(0);
    if (!status.ok()) {
      spdlog::error("pipeline {}: {}", config_.name, status.message());
      metrics_.Errors(ErrorKind(status)).Add(1);
    }
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
    if (!status.ok()) cdc_error_ = status.message();
    return status;
  }

  void RefreshCdcMetrics() {
    CdcJob* job = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      job = cdc_job_.get();
    }
    if (job == nullptr) return;
    const auto& stats = job->stats();
    auto& r = *metrics_.registry;
    const std::vector<std::pair<std::string, std::string>> labels = {{"pipeline", config_.name}};
    auto advance = [&](const char* name, const char* help, int64_t now, int64_t* seen) {
      if (now > *seen) r.Counter(name, help, labels).Add(static_cast<uint64_t>(now - *seen));
      *seen = std::max(*seen, now);
    };
    advance("sluice_cdc_events_total", "Changes (rows inserted, updated, deleted; truncates) applied",
            stats.events.load(), &cdc_seen_.events);
    advance("sluice_cdc_transactions_total", "Source transactions applied", stats.transactions.load(),
            &cdc_seen_.transactions);
    advance("sluice_cdc_batches_total", "Destination writes", stats.batches.load(), &cdc_seen_.batches);
    advance("sluice_cdc_copied_rows_total", "Rows of initial table copies", stats.copied_rows.load(),
            &cdc_seen_.copied_rows);
    advance("sluice_cdc_reconnects_total", "Reconnections after a lost connection", stats.reconnects.load(),
            &cdc_seen_.reconnects);
    advance("sluice_cdc_spilled_bytes_total", "Bytes of streamed transactions spilled to disk",
            stats.spilled_bytes.load(), &cdc_seen_.spilled);
    r.Gauge("sluice_cdc_confirmed_lsn", "WAL position confirmed to the source (durable in the destination)",
            labels)
        .Set(static_cast<double>(stats.confirmed_lsn.load()));
    r.Gauge("sluice_cdc_last_commit_timestamp_seconds",
            "Source commit time of the last transaction handed to the destination", labels)
        .Set(static_cast<double>(stats.last_commit_time_us.load()) / 1e6);
  }

  nlohmann::json CdcStatusJson() {
    nlohmann::json j;
    j["name"] = config_.name;
    j["file"] = config_.file;
    j["state"] = running_ ? "streaming" : cdc_error_.empty() ? "stopped" : "failed";
    if (!cdc_error_.empty()) j["error"] = cdc_error_;
    j["source"] = "postgres_cdc publication " + config_.source.publication + " slot " + config_.source.slot;
    j["destination"] = cdc_job_ ? cdc_job_->DestinationDescription() : config_.destination.type;
    j["started"] = Iso8601(current_start_);
    if (cdc_job_) {
      const auto& stats = cdc_job_->stats();
      int64_t commit_us = stats.last_commit_time_us.load();
      j["cdc"] = {{"confirmed_lsn", CdcLsnToString(stats.confirmed_lsn.load())},
                  {"events", stats.events.load()},
                  {"transactions", stats.transactions.load()},
                  {"batches", stats.batches.load()},
                  {"copied_rows", stats.copied_rows.load()},
                  {"reconnects", stats.reconnects.load()},
                  {"spilled_bytes", stats.spilled_bytes.load()},
                  {"last_commit", commit_us > 0 ? nlohmann::json(Iso8601(SystemClock::time_point(
                                                      std::chrono::microseconds(commit_us))))
                                                : nlohmann::json(nullptr)}};
      nlohmann::json tables = nlohmann::json::array();
      for (const TableSyncStatus& t : cdc_job_->TableStates()) {
        nlohmann::json table = {{"table", t.table_name}, {"state", TableSyncStateName(t.state)}};
        if (t.lsn != 0) table["lsn"] = CdcLsnToString(t.lsn);
        if (t.state == TableSyncState::kErrored) {
          table["error"] = t.error;
          table["attempts"] = t.attempts;
          table["retry_at"] = t.retry_at_unix_ms != 0 ? nlohmann::json(Iso8601(SystemClock::time_point(
                                                            std::chrono::milliseconds(t.retry_at_unix_ms))))
                                                      : nlohmann::json(nullptr);
        }
        tables.push_back(std::move(table));
      }
      j["tables"] = std::move(tables);
    }
    return j;
  }

  Status RunOnce(const CancellationSource* cancel, ProgressMode progress) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = true;
      current_start_ = SystemClock::now();
      next_run_.reset();
    }
    metrics_.running->Set(1);
    spdlog::info("pipeline {}: starting", config_.name);
    JobOptions options;
    options.run.cancel = cancel;
    options.run.progress = progress;
    Result<JobReport> result = JobReport{};
    if (config_.uses_state() || config_.source.is_s3()) {
      Status opened = OpenStore();
      if (!opened.ok()) result = opened;
    }
    if (result.ok()) {
      options.store = store_.get();
      result = RunJob(config_, options);
    }
    if (result.ok() && result->status == "skipped") {
      spdlog::warn("pipeline {}: {}; skipping this run", config_.name, result->error);
      metrics_.running->Set(0);
      metrics_.Runs("skipped").Add(1);
      std::lock_guard<std::mutex> lock(mu_);
      running_ = false;
      return Status::OK();
    }
    JobReport report;
    Status status;
    if (result.ok()) {
      report = std::move(result).value();
      if (report.status != "succeeded") {
        status = Status(report.status == "cancelled"    ? StatusCode::kCancelled
                        : report.error_kind == "config" ? StatusCode::kInvalidArgument
                                                        : StatusCode::kDataError,
                        report.error);
      }
    } else {
      status = result.status();
      report.status = status.code() == StatusCode::kCancelled ? "cancelled" : "failed";
      report.error = status.message();
      report.error_kind = ErrorKind(status);
    }
    auto end = SystemClock::now();
    if (status.ok()) {
      double rate = report.seconds > 0 ? report.rows / report.seconds : 0;
      if (config_.source.is_incremental()) {
        spdlog::info("pipeline {}: run {} succeeded: {} files, {} rows in {:.2f} s{}", config_.name,
                     report.run_id, report.files_loaded, Thousands(report.rows), report.seconds,
                     report.files_loaded == 0 ? " (nothing new)"
                     : report.exactly_once    ? " (exactly once)"
                                              : " (at least once)");
      } else {
        std::string rejected =
            report.rejected > 0
                ? "; " + Thousands(report.rejected) + " rows rejected" +
                      (config_.source.rejects.empty() ? "" : " (see " + config_.source.rejects + ")")
                : "";
        spdlog::info("pipeline {}: loaded {} rows from {} into {} in {:.2f} s ({} rows/s){}", config_.name,
                     Thousands(report.rows), report.source, report.destination, report.seconds,
                     Thousands(static_cast<int64_t>(rate)), rejected);
        for (const auto& note : report.notes) spdlog::info("pipeline {}: {}", config_.name, note);
        if (!report.stages_text.empty())
          spdlog::info("pipeline {}: stages: {}", config_.name, report.stages_text);
      }
    } else {
      spdlog::error("pipeline {}: {}", config_.name, status.message());
    }
    metrics_.running->Set(0);
    metrics_.Runs(report.status).Add(1);
    if (!report.error_kind.empty()) metrics_.Errors(report.error_kind).Add(1);
    metrics_.files->Add(report.files_loaded);
    metrics_.files_failed->Add(report.files_failed);
    metrics_.rows_out->Add(report.rows);
    metrics_.bytes_in->Add(report.bytes_in);
    metrics_.downloaded->Add(report.bytes_downloaded);
    for (const auto& stage : report.stages) {
      if (stage.rows >= 0) metrics_.StageRows(stage.name).Add(stage.rows);
      if (stage.bytes >= 0) metrics_.StageBytes(stage.name).Add(stage.bytes);
      if (stage.name == "source" && stage.rows >= 0) metrics_.rows_in->Add(stage.rows);
      if (stage.name == "destination" && stage.bytes >= 0) metrics_.bytes_out->Add(stage.bytes);
    }
    metrics_.duration->Observe(std::chrono::duration<double>(end - current_start_).count());
    metrics_.last_run->Set(UnixSeconds(end));
    if (status.ok()) metrics_.last_success->Set(UnixSeconds(end));
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
    last_ = report;
    last_start_ = current_start_;
    last_end_ = end;
    ++runs_;
    if (!status.ok()) ++runs_failed_;
    if (status.ok()) last_success_ = end;
    files_total_ += report.files_loaded;
    rows_total_ += report.rows;
    bytes_total_ += report.bytes_in;
    return status;
  }

  PipelineConfig config_;
  PipelineMetrics metrics_;
  std::unique_ptr<Schedule> schedule_;
  std::unique_ptr<state::StateStore> store_;

  std::mutex mu_;  // guards what follows: read by the monitoring threads
  bool running_ = false;
  SystemClock::time_point current_start_{};
  std::optional<SystemClock::time_point> next_run_;
  std::optional<JobReport> last_;
  SystemClock::time_point last_start_{}, last_end_{};
  std::optional<SystemClock::time_point> last_success_;
  std::string schedule_error_;
  std::unique_ptr<CdcJob> cdc_job_;
  std::string cdc_error_;
  struct {
    int64_t events = 0, transactions = 0, batches = 0, copied_rows = 0, reconnects = 0, spilled = 0;
  } cdc_seen_;
  int64_t runs_ = 0, runs_failed_ = 0, files_total_ = 0, rows_total_ = 0, bytes_total_ = 0;
};

}  // namespace

int ExitCodeFor(const Status& status) {
  if (status.code() == StatusCode::kCancelled) return kExitInterrupted;
  if (status.code() == StatusCode::kInvalidArgument) return kExitUsage;
  return kExitFailure;
}

int ServePipelines(const std::vector<std::string>& files, const ServeOptions& options) {
  std::vector<PipelineConfig> configs;
  for (const auto& file : files) {
    auto config = LoadPipelineConfig(file);
    if (!config.ok()) {
      spdlog::error("{}", config.status().message());
      return ExitCodeFor(config.status());
    }
    for (const auto& other : configs) {
      if (other.name == config->name) {
        spdlog::error("{}: pipeline name '{}' is also used by {}; set name = \"...\" in one of them", file,
                      config->name, other.file);
        return kExitUsage;
      }
    }
    configs.push_back(std::move(config).value());
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
  MetricsRegistry metrics;
  // Shared: a readiness check that outlives the server's Stop() (a hanging
  // database) keeps the workers it checks alive.
  std::vector<std::shared_ptr<Worker>> workers;
  for (auto& c : configs) {
    auto worker = std::make_shared<Worker>(c, &metrics);
    Status opened = worker->Open();
    if (!opened.ok()) {
      spdlog::error("pipeline {}: {}", c.name, opened.message());
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
    return options.once ? kExitInterrupted : 0;
  }
  for (const auto& r : results) {
    if (!r.ok()) return ExitCodeFor(r);
  }
  return 0;
}

}  // namespace sluice::service
