#include "sources/files/files_job.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <mutex>
#include <nlohmann/json.hpp>

#include "config/registry_build.h"
#include "core/backpressure.h"
#include "core/human_format.h"
#include "core/metrics.h"
#include "sources/files/ledger_job.h"

namespace sluice::sources {

namespace {

using SystemClock = std::chrono::system_clock;

int64_t UnixMs(SystemClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

/// The metric handles of one files pipeline, created once.
struct FilesMetrics {
  FilesMetrics(MetricsRegistry* r, const std::string& p) : registry(r), pipeline(p) {
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
  }
  sluice::Counter& StageRows(const std::string& stage) {
    return registry->Counter("sluice_stage_rows_total", "Rows that passed a stage",
                             {{"pipeline", pipeline}, {"stage", stage}});
  }
  sluice::Counter& StageBytes(const std::string& stage) {
    return registry->Counter("sluice_stage_bytes_total", "Bytes that passed a stage",
                             {{"pipeline", pipeline}, {"stage", stage}});
  }
  void Add(const JobReport& report) {
    files->Add(report.files_loaded);
    files_failed->Add(report.files_failed);
    rows_out->Add(report.rows);
    bytes_in->Add(report.bytes_in);
    downloaded->Add(report.bytes_downloaded);
    for (const auto& stage : report.stages) {
      if (stage.rows >= 0) StageRows(stage.name).Add(stage.rows);
      if (stage.bytes >= 0) StageBytes(stage.name).Add(stage.bytes);
      if (stage.name == "source" && stage.rows >= 0) rows_in->Add(stage.rows);
      if (stage.name == "destination" && stage.bytes >= 0) bytes_out->Add(stage.bytes);
    }
  }

  MetricsRegistry* registry;
  std::string pipeline;
  sluice::Counter *files, *files_failed, *rows_in, *rows_out, *bytes_in, *bytes_out, *downloaded;
};

class FilesJob final : public Job {
 public:
  FilesJob(FilesPipelineConfig config, std::string destination, MetricsRegistry* metrics)
      : config_(std::move(config)), destination_(std::move(destination)) {
    if (metrics) {
      metrics_ = std::make_unique<FilesMetrics>(metrics, config_.name);
      backpressure_ = std::make_unique<BackpressureMonitor>(metrics, config_.name);
    }
  }

  bool continuous() const override { return false; }

  std::string Describe() const override { return "files " + config_.source.path + " -> " + destination_; }

  Status Open() override {
    if (!config_.uses_state() && !config_.source.is_s3()) return Status::OK();
    Status opened = OpenStore();
    // A state store that is down now may be up at the next run.
    if (!opened.ok() && opened.retryable()) {
      spdlog::warn("pipeline {}: {}; trying again at each run", config_.name, opened.message());
      return Status::OK();
    }
    return opened;
  }

  JobRun Run(const CancellationSource* cancel, ProgressMode progress) override {
    const auto start = SystemClock::now();
    JobOptions options;
    options.run.cancel = cancel;
    options.run.progress = progress;
    options.run.backpressure = backpressure_.get();
    Result<JobReport> result = JobReport{};
    if (config_.uses_state() || config_.source.is_s3()) {
      Status opened = OpenStore();
      if (!opened.ok()) result = opened;
    }
    if (result.ok()) {
      options.store = store_.get();
      options.lease = lease_.get();
      if (lease_ && lease_->Lost()) {
        // Paused or cut off since the last renewal: renewed before anything
        // is claimed, or the run fails.
        Status renewed = lease_->RenewNow();
        if (!renewed.ok()) result = renewed.WithContext("worker " + lease_->worker());
      }
      if (result.ok()) result = RunJob(config_, options);
    }
    if (result.ok() && result->status == "skipped") {
      spdlog::warn("pipeline {}: {}; skipping this run", config_.name, result->error);
      return JobRun{Status::OK(), true};
    }
    JobReport report;
    if (result.ok()) {
      report = std::move(result).value();
    } else {
      report.outcome = result.status();
      report.status = result.status().code() == StatusCode::kCancelled ? "cancelled" : "failed";
      report.error = result.status().message();
      report.error_kind = ErrorKind(result.status());
    }
    Log(report);
    if (metrics_) metrics_->Add(report);
    auto end = SystemClock::now();
    std::lock_guard<std::mutex> lock(mu_);
    last_ = report;
    last_start_ = start;
    last_end_ = end;
    ++runs_;
    if (!report.outcome.ok()) ++runs_failed_;
    if (report.outcome.ok()) last_success_ = end;
    files_total_ += report.files_loaded;
    rows_total_ += report.rows;
    bytes_total_ += report.bytes_in;
    return JobRun{report.outcome, false};
  }

  Result<std::string> Validate() override {
    if (config_.source.is_incremental() || config_.source.is_s3()) return ValidateBatchJob(config_);
    return ValidateLoad(config_);
  }

  Status Ready() override {
    state::StateStore* store = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      store = store_.get();
    }
    if (config_.uses_state() && store == nullptr) return Status::Unavailable("state store not open yet");
    if (store) {
      Status s = store->Ping();
      if (!s.ok()) return s.WithContext("state store " + store->Describe());
    }
    return PingDestination(config_);
  }

  std::optional<int64_t> LastSuccessUnixMs() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!last_success_) return std::nullopt;
    return UnixMs(*last_success_);
  }

  std::string StatusJson() const override {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json j;
    j["state"] =
        last_ && !last_->outcome.ok() && last_->outcome.code() != StatusCode::kCancelled ? "failed" : "idle";
    j["source"] = config_.source.path;
    j["destination"] = destination_;
    if (store_) j["state_store"] = store_->Describe();
    if (lease_) {
      j["worker"] = lease_->worker();
      j["workers"] = state::WorkersJson(lease_->Peers());
    }
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
          {"spool_peak_bytes", last_->spool_peak_bytes},
          {"overlap_seconds", last_->overlap_seconds},
          {"error", last_->error.empty() ? nlohmann::json(nullptr) : nlohmann::json(last_->error)}};
    } else {
      j["last_run"] = nullptr;
    }
    j["last_success"] = last_success_ ? nlohmann::json(Iso8601(*last_success_)) : nlohmann::json(nullptr);
    // The stage whose input channel stays full while a load runs.
    j["limiting_stage"] =
        backpressure_ ? nlohmann::json::parse(backpressure_->LimitingJson()) : nlohmann::json(nullptr);
    j["totals"] = {{"runs", runs_},
                   {"runs_failed", runs_failed_},
                   {"files", files_total_},
                   {"rows", rows_total_},
                   {"bytes", bytes_total_}};
    return j.dump();
  }

 private:
  /// Opens the state store if it is not open yet, and seeds the last
  /// success from the run log, so that a restart does not look stale.
  Status OpenStore() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (store_) return Status::OK();
    }
    auto store = OpenFilesStateStore(config_);
    if (!store.ok()) return store.status();
    spdlog::info("pipeline {}: state store {}", config_.name, (*store)->Describe());
    auto runs = (*store)->RecentRuns(config_.name, 50);
    std::lock_guard<std::mutex> lock(mu_);
    if (runs.ok()) {
      for (const auto& r : *runs) {
        if (r.status != "succeeded" || !r.finished_unix_ms) continue;
        last_success_ = SystemClock::time_point(std::chrono::milliseconds(*r.finished_unix_ms));
        break;
      }
    }
    store_ = std::move(store).value();
    if (store_->SharesWork()) {
      // Several processes may serve this pipeline: this one is a worker.
      auto lease = state::WorkerLease::Start(store_.get(), config_.name, config_.lease_ms);
      if (!lease.ok()) {
        store_.reset();
        return lease.status();
      }
      lease_ = std::move(lease).value();
      lease_->SetDoing("idle");
      spdlog::info("pipeline {}: worker {} (lease {:.1f} s)", config_.name, lease_->worker(),
                   config_.lease_ms / 1000.0);
    }
    return Status::OK();
  }

  void Log(const JobReport& report) const {
    if (!report.outcome.ok()) {
      spdlog::error("pipeline {}: {}", config_.name, report.outcome.message());
      return;
    }
    if (config_.source.is_incremental()) {
      spdlog::info("pipeline {}: run {} succeeded: {} files, {} rows in {:.2f} s{}", config_.name,
                   report.run_id, report.files_loaded, Thousands(report.rows), report.seconds,
                   report.files_loaded == 0 ? " (nothing new)"
                   : report.exactly_once    ? " (exactly once)"
                                            : " (at least once)");
      return;
    }
    double rate = report.seconds > 0 ? report.rows / report.seconds : 0;
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

  const FilesPipelineConfig config_;
  const std::string destination_;
  std::unique_ptr<FilesMetrics> metrics_;
  std::unique_ptr<BackpressureMonitor> backpressure_;  // with metrics only

  mutable std::mutex mu_;  // guards what follows: read by the monitoring threads
  // The lease is destroyed first: its destructor releases, through the
  // store, what the worker holds.
  std::unique_ptr<state::StateStore> store_;
  std::unique_ptr<state::WorkerLease> lease_;
  std::optional<JobReport> last_;
  SystemClock::time_point last_start_{}, last_end_{};
  std::optional<SystemClock::time_point> last_success_;
  int64_t runs_ = 0, runs_failed_ = 0, files_total_ = 0, rows_total_ = 0, bytes_total_ = 0;
};

/// The checks that need the source and the destination together.
Status CheckOutputs(const FilesPipelineConfig& cfg, const ConfigTable& destination) {
  const std::string& out = cfg.output_template;
  bool has_run = out.find("{run}") != std::string::npos;
  bool has_file = out.find("{file}") != std::string::npos;
  bool batch_job = cfg.source.is_incremental() || cfg.source.is_s3();
  const std::string where = destination.Name() + " path: ";
  if ((has_run || has_file) && !batch_job) {
    return Status::InvalidArgument(where +
                                   "{run} and {file} name the outputs of runs that remember their files; set "
                                   "[source] incremental = true, or write a fixed path");
  }
  if (has_file && cfg.source.batch != "per_file") {
    return Status::InvalidArgument(
        where +
        "{file} names the output of one input file; it needs [source] batch = \"per_file\" (with batch = "
        "\"all\" a run writes one output: use {run})");
  }
  if (out.empty()) return Status::OK();
  if (cfg.source.batch == "per_file" && batch_job && !has_file) {
    return Status::InvalidArgument(
        where +
        "with batch = \"per_file\" every file is a load of its own and needs its own output; put {file} (the "
        "input's name) in the path, e.g. \"out/{file}.parquet\" ({run} alone would give every file of a run "
        "the same output)");
  }
  if (cfg.source.is_incremental() && !has_run && !has_file) {
    return Status::InvalidArgument(
        where +
        "an incremental source writes one output per load; put {run} (the run id) or, with batch = "
        "\"per_file\", {file} (the input's name) in the path, e.g. \"out/orders-{run}.parquet\"");
  }
  return Status::OK();
}

Result<std::unique_ptr<Job>> MakeFilesJob(const JobContext& context) {
  FilesPipelineConfig cfg = ReadFilesPipelineConfig(context);
  // [state] lease belongs to the stores that share work (the key check
  // refuses it for the others).
  if (cfg.registry->TypeOf(ComponentKind::kStateStore, *cfg.state) == "postgres") {
    SLUICE_ASSIGN_OR_RETURN(cfg.lease_ms, state::ReadLeaseMs(*cfg.state));
  }
  const ConfigTable& src = *context.source;
  SLUICE_RETURN_IF_ERROR(src.Check());
  const FilesSourceConfig& s = cfg.source;
  if (s.path.empty()) return Status::InvalidArgument(src.Name() + " path is required for type files");
  if (s.on_error != "fail" && s.on_error != "skip") {
    return Status::InvalidArgument(src.Name() + " on_error must be \"fail\" or \"skip\"");
  }
  if (s.batch != "all" && s.batch != "per_file") {
    return Status::InvalidArgument(src.Name() + " batch must be \"all\" or \"per_file\"");
  }
  if (s.concurrency < 1 || s.concurrency > 64) {
    return Status::InvalidArgument(src.Name() + " concurrency must be between 1 and 64");
  }
  if (s.spool_bytes < 1) return Status::InvalidArgument(src.Name() + " spool_bytes must be positive");
  if (s.path == "-" && s.is_incremental()) {
    return Status::InvalidArgument(src.Name() +
                                   " incremental needs files; stdin cannot be remembered in a ledger");
  }
  // The destination and the state store are built here once, so that their
  // keys are checked before anything runs; each load builds its own.
  SLUICE_ASSIGN_OR_RETURN(auto destination, context.registry->MakeDestination(*cfg.destination));
  cfg.output_template = destination->OutputTemplate();
  SLUICE_RETURN_IF_ERROR(CheckOutputs(cfg, *cfg.destination));
  // The store opens when the first run starts; its keys are checked now.
  if (cfg.uses_state()) {
    SLUICE_RETURN_IF_ERROR(
        config::CheckComponentKeys(*context.registry, ComponentKind::kStateStore, *cfg.state));
  }
  return std::unique_ptr<Job>(
      std::make_unique<FilesJob>(std::move(cfg), destination->Describe(), context.metrics));
}

}  // namespace

FilesPipelineConfig ReadFilesPipelineConfig(const JobContext& context) {
  const ConfigTable& t = *context.source;
  FilesPipelineConfig cfg;
  cfg.name = context.pipeline;
  cfg.file = context.file;
  cfg.engine = context.engine;
  cfg.retry = context.retry;
  cfg.registry = context.registry;
  FilesSourceConfig& s = cfg.source;
  s.path = t.GetString("path");
  s.format = t.GetString("format");
  if (t.Has("header")) s.header = t.GetBool("header", true);
  s.delimiter = t.GetString("delimiter");
  s.columns = t.GetStringMap("columns");
  s.on_error = t.GetString("on_error", "fail");
  s.rejects = t.GetString("rejects");
  s.max_rejects = t.GetInt("max_rejects", s.max_rejects);
  s.batch = t.GetString("batch", "all");
  if (t.Has("incremental")) s.incremental = t.GetBool("incremental", false);
  s.concurrency = t.GetInt("concurrency", s.concurrency);
  s.spool_bytes = t.GetBytes("spool_bytes", s.spool_bytes);
  s.read_while_downloading = t.GetBool("read_while_downloading", true);
  s.max_line_size = t.GetBytes("max_line_size", s.max_line_size);
  s.modified_within_seconds = (t.GetMillis("modified_within", 0) + 999) / 1000;
  // Keys read even when unset, so that messages list them as accepted.
  (void)t.GetBool("header", true);
  (void)t.GetBool("incremental", false);
  cfg.transform_sql = context.section("transform").GetString("sql");
  cfg.s3 = io::ReadS3Section(context.section("s3"));
  cfg.destination = &context.section("destination");
  cfg.state = &context.section("state");
  cfg.state_configured = context.has_section("state");
  return cfg;
}

Status RegisterFilesSource(Registry& registry) {
  // A [source] that names no type reads files.
  registry.SetDefaultType(ComponentKind::kSource, [](const ConfigTable&) { return std::string("files"); });
  auto factory = std::make_shared<const JobFactory>(MakeFilesJob);
  return registry.AddInternal(
      ComponentKind::kSource, "files", factory,
      {"CSV, TSV, Parquet and JSON-lines files: a path, a glob, a directory, s3://bucket/prefix or - "
       "(stdin); incremental runs load each new file once",
       {"path", "format", "header", "delimiter", "columns", "on_error", "rejects", "max_rejects", "batch",
        "incremental", "modified_within", "concurrency", "spool_bytes", "read_while_downloading",
        "max_line_size"}});
}

}  // namespace sluice::sources
