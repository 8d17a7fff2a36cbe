#include "sources/http/http_job.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>

#include "config/registry_build.h"
#include "core/backpressure.h"
#include "core/cancellation.h"
#include "core/human_format.h"
#include "core/metrics.h"
#include "core/redact.h"
#include "core/retry.h"
#include "io/http/http_client.h"
#include "sources/files/files_config.h"
#include "sources/files/ledger_job.h"
#include "sources/files/load_runner.h"
#include "sources/http/http_records.h"
#include "state/state_store.h"
#include "state/worker_lease.h"

namespace sluice::sources {
namespace {

using SystemClock = std::chrono::system_clock;
using SteadyClock = std::chrono::steady_clock;

int64_t UnixMs(SystemClock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

struct HttpSourceConfig {
  std::vector<std::string> urls;
  std::string urls_file;
  HttpBodyFormat format = HttpBodyFormat::kJson;
  std::string format_name = "json";
  std::string records;
  std::vector<std::pair<std::string, std::string>> columns;
  std::string method = "GET";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  std::chrono::milliseconds timeout{10000};
  int concurrency = 256;
  int per_host_concurrency = 256;
  int64_t max_response_bytes = 16 << 20;
  bool conditional = false;
  std::string on_endpoint_error = "skip";
  io::HttpRetryPolicy retry;
};

/// One endpoint that failed after its retries, for the run log and /status.
struct EndpointFailure {
  std::string url;  // redacted
  long status = 0;
  std::string error;
  int attempts = 0;
  int64_t millis = 0;
};

struct TickReport {
  int64_t run_id = 0;
  Status outcome;
  int64_t endpoints = 0;
  int64_t ok = 0;
  int64_t not_modified = 0;
  int64_t failed = 0;
  int64_t rows = 0;
  int64_t bytes = 0;
  double fetch_seconds = 0;
  double seconds = 0;
  std::vector<EndpointFailure> failures;  // the first kMaxFailuresKept, for /status and the log
  std::vector<EndpointFailure> logged;    // every one, for the run log (then dropped)
  std::vector<std::string> notes;
};

constexpr size_t kMaxFailuresKept = 100;

std::string RandomTickId() {
  std::random_device rd;
  char out[33];
  for (int i = 0; i < 4; ++i) std::snprintf(out + 8 * i, 9, "%08x", static_cast<unsigned>(rd()));
  return std::string(out, 32);
}

struct HttpMetrics {
  HttpMetrics(MetricsRegistry* r, const std::string& p) : registry(r), pipeline(p) {
    latency = &r->Histogram("sluice_http_request_seconds", "Latency of HTTP requests (each attempt)",
                            {{"pipeline", p}}, {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30});
    bytes = &r->Counter("sluice_http_response_bytes_total", "Bytes of HTTP response bodies received",
                        {{"pipeline", p}});
    endpoints_failed = &r->Gauge("sluice_http_endpoints_failed", "Endpoints that failed in the last tick",
                                 {{"pipeline", p}});
    rows = &r->Counter("sluice_rows_out_total", "Rows written to the destination", {{"pipeline", p}});
  }
  /// ok (2xx), not_modified (304), client_error (4xx), server_error (5xx),
  /// timeout, error (no response), other.
  void Attempt(const io::HttpResponse& r) {
    std::string outcome;
    if (r.ok()) {
      outcome = "ok";
    } else if (r.status == 304) {
      outcome = "not_modified";
    } else if (r.status >= 400 && r.status < 500) {
      outcome = "client_error";
    } else if (r.status >= 500) {
      outcome = "server_error";
    } else if (r.timed_out) {
      outcome = "timeout";
    } else if (r.status == 0) {
      outcome = "error";
    } else {
      outcome = "other";
    }
    registry
        ->Counter("sluice_http_requests_total", "HTTP requests by outcome (each attempt)",
                  {{"pipeline", pipeline}, {"outcome", outcome}})
        .Add(1);
    latency->Observe(r.seconds);
    bytes->Add(static_cast<double>(r.body.size()));
  }
  MetricsRegistry* registry;
  std::string pipeline;
  sluice::Histogram* latency;
  sluice::Counter* bytes;
  sluice::Gauge* endpoints_failed;
  sluice::Counter* rows;
};

std::string Excerpt(const std::string& body, size_t max = 200) {
  std::string out;
  for (char c : body.substr(0, max)) out.push_back(c == '\n' || c == '\r' ? ' ' : c);
  if (body.size() > max) out += "...";
  return out;
}

/// A server may echo the request's headers in an error body: keep their
/// values (tokens) out of the log, the run log and /status.
std::string RedactHeaderValuesIn(std::string text,
                                 const std::vector<std::pair<std::string, std::string>>& headers) {
  for (const auto& [name, value] : headers) {
    if (value.size() >= 6) text = RedactSecret(std::move(text), value);
    size_t space = value.rfind(' ');
    if (space != std::string::npos && value.size() - space > 6)
      text = RedactSecret(std::move(text), value.substr(space + 1));
  }
  return text;
}

class HttpJob final : public Job {
 public:
  HttpJob(HttpSourceConfig source, FilesPipelineConfig load, std::string destination,
          MetricsRegistry* metrics)
      : source_(std::move(source)), load_(std::move(load)), destination_(std::move(destination)) {
    if (metrics) {
      metrics_ = std::make_unique<HttpMetrics>(metrics, load_.name);
      backpressure_ = std::make_unique<BackpressureMonitor>(metrics, load_.name);
    }
  }

  bool continuous() const override { return false; }

  std::string Describe() const override {
    std::string what = source_.urls_file.empty() ? std::to_string(source_.urls.size()) + " URLs"
                                                 : "the URLs of " + source_.urls_file;
    return "http " + what + " -> " + destination_;
  }

  Status Open() override {
    Status opened = OpenStore();
    if (!opened.ok() && opened.retryable()) {
      spdlog::warn("pipeline {}: {}; trying again at each run", load_.name, opened.message());
      return Status::OK();
    }
    return opened;
  }

  JobRun Run(const CancellationSource* cancel, ProgressMode progress) override {
    auto start = SystemClock::now();
    Status opened = OpenStore();
    if (!opened.ok()) return Finish(start, Failed(opened));
    state::StateStore* store = store_.get();
    if (lease_) return RunAsWorker(store, cancel, progress, start);
    auto locked = store->TryLockPipeline(load_.name);
    if (!locked.ok()) return Finish(start, Failed(locked.status()));
    if (!*locked) {
      spdlog::warn("pipeline {}: another process is running it; skipping this run", load_.name);
      return JobRun{Status::OK(), true};
    }
    TickReport report = Tick(store, cancel, progress, start);
    store->UnlockPipeline(load_.name);
    return Finish(start, std::move(report));
  }

  /// A tick of one of several workers (a store that shares work): under the
  /// pipeline's run lease, whose fence commits with the load, so that a
  /// worker paused past its lease and then resumed loads nothing.
  JobRun RunAsWorker(state::StateStore* store, const CancellationSource* cancel, ProgressMode progress,
                     SystemClock::time_point start) {
    if (lease_->Lost()) {
      // Paused or cut off since the last renewal: renewed first, or no tick.
      Status renewed = lease_->RenewNow();
      if (!renewed.ok()) return Finish(start, Failed(renewed.WithContext("worker " + lease_->worker())));
    }
    auto epoch = store->TryAcquireLease(load_.name, state::kRunLease);
    if (!epoch.ok()) return Finish(start, Failed(epoch.status().WithContext("state store " + store->Describe())));
    if (!*epoch) {
      spdlog::warn("pipeline {}: another worker holds its run lease ({}); skipping this run", load_.name,
                   store->Describe());
      return JobRun{Status::OK(), true};
    }
    (void)store->CloseAbandonedRuns(load_.name, UnixMs(SystemClock::now()));
    fence_ = store->LeaseFence(load_.name, state::kRunLease, **epoch);
    lease_->SetDoing("polling (run lease epoch " + std::to_string(**epoch) + ")");
    // A worker that can no longer renew its lease stops its tick: another
    // worker may hold the lease by now.
    CancellationSource stop;
    std::atomic<bool> lost{false};
    CancelWatcher forward(cancel, [&stop] { stop.Cancel(); });
    lease_->Watch("", [&] {
      lost = true;
      stop.Cancel();
    });
    TickReport report = Tick(store, &stop, progress, start);
    lease_->Unwatch();
    fence_.clear();
    if (lost && !(cancel && cancel->cancelled())) {
      report.outcome = Status::Unavailable("worker " + lease_->worker() + " could not renew its lease in " +
                                           std::to_string(lease_->lease_ms() / 1000.0) +
                                           " s (state store unreachable); it stopped its tick");
    }
    Status released = store->ReleaseLease(load_.name, state::kRunLease);
    if (!released.ok())
      spdlog::warn("pipeline {}: could not release its run lease ({}); it expires with this worker's", load_.name,
                   released.message());
    lease_->SetDoing("idle");
    return Finish(start, std::move(report));
  }

  Result<std::string> Validate() override {
    SLUICE_ASSIGN_OR_RETURN(auto urls, Urls());
    std::string out = "source: " + std::to_string(urls.size()) + " endpoint" + (urls.size() == 1 ? "" : "s");
    if (urls.empty()) {
      SLUICE_ASSIGN_OR_RETURN(auto destination, load_.registry->MakeDestination(*load_.destination));
      SLUICE_ASSIGN_OR_RETURN(std::string checked, destination->Check(Schema{}));
      return out + "\ndestination: " + checked + "\n";
    }
    // One request to the first endpoint (a GET changes nothing), so that
    // the SQL is compiled against real rows and the destination checked
    // against their columns; the tick's other endpoints are not contacted.
    const std::string shown = io::RedactHttpUrl(urls.front());
    SLUICE_ASSIGN_OR_RETURN(auto client, io::HttpClient::Make({}));
    io::HttpRequest request = MakeRequest(urls.front(), {});
    io::HttpResponse r = client->Send(std::move(request), source_.retry);
    if (!r.ok()) {
      return Status::Unavailable(
          "[source] " + shown + ": " + r.Summary() +
          (r.status != 0 && !r.body.empty() ? ": " + RedactHeaderValues(Excerpt(r.body)) : ""));
    }
    std::string lines;
    ResponseMeta meta{shown, r.status, Iso8601(SystemClock::now())};
    auto rows = AppendRecordsAsJsonLines(r.body, source_.format, source_.records, meta, &lines);
    if (!rows.ok()) return rows.status().WithContext("[source] " + shown);
    if (*rows == 0)
      return Status::InvalidArgument("[source] " + shown +
                                     ": the response has no records to check the SQL against");
    std::string dir = load_.engine.temp_directory.empty() ? std::filesystem::temp_directory_path().string()
                                                          : load_.engine.temp_directory;
    std::string path =
        dir + "/sluice-http-validate-" + std::to_string(::getpid()) + "-" + RandomTickId() + ".jsonl";
    {
      std::ofstream f(path, std::ios::binary);
      f << lines;
      if (!f) return Status::IoError("cannot write " + path);
    }
    io::LocalFile file{path, static_cast<int64_t>(lines.size()), 0};
    auto checked = ValidateLoad(load_, {file});
    std::remove(path.c_str());
    SLUICE_RETURN_IF_ERROR(checked.status());
    return out + " (checked against " + std::to_string(*rows) + " record" + (*rows == 1 ? "" : "s") + " of " +
           shown + ")\n" + *checked;
  }

  Status Ready() override {
    state::StateStore* store = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      store = store_.get();
    }
    if (store == nullptr) return Status::Unavailable("state store not open yet");
    Status s = store->Ping();
    if (!s.ok()) return s.WithContext("state store " + store->Describe());
    return PingDestination(load_);
  }

  std::optional<int64_t> LastSuccessUnixMs() const override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!last_success_) return std::nullopt;
    return UnixMs(*last_success_);
  }

  std::string StatusJson() const override {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json j;
    j["state"] = running_ ? "running" : (last_ && !last_->outcome.ok() ? "failed" : "idle");
    j["source"] = Describe();
    j["destination"] = destination_;
    if (store_) j["state_store"] = store_->Describe();
    if (lease_) {
      j["worker"] = lease_->worker();
      j["workers"] = state::WorkersJson(lease_->Peers());
    }
    if (last_) {
      nlohmann::json failures = nlohmann::json::array();
      for (size_t i = 0; i < last_->failures.size() && i < 20; ++i) {
        const auto& f = last_->failures[i];
        failures.push_back({{"url", f.url},
                            {"status", f.status == 0 ? nlohmann::json(nullptr) : nlohmann::json(f.status)},
                            {"error", f.error},
                            {"attempts", f.attempts},
                            {"ms", f.millis}});
      }
      j["last_run"] = {{"id", last_->run_id},
                       {"started", Iso8601(last_start_)},
                       {"finished", Iso8601(last_end_)},
                       {"status", last_->outcome.ok() ? "succeeded" : "failed"},
                       {"endpoints", last_->endpoints},
                       {"endpoints_ok", last_->ok},
                       {"endpoints_not_modified", last_->not_modified},
                       {"endpoints_failed", last_->failed},
                       {"rows", last_->rows},
                       {"bytes", last_->bytes},
                       {"fetch_seconds", last_->fetch_seconds},
                       {"seconds", last_->seconds},
                       {"failures", failures},
                       {"error", last_->outcome.ok() ? nlohmann::json(nullptr)
                                                     : nlohmann::json(last_->outcome.message())}};
    } else {
      j["last_run"] = nullptr;
    }
    j["last_success"] = last_success_ ? nlohmann::json(Iso8601(*last_success_)) : nlohmann::json(nullptr);
    // The stage whose input channel stays full while the tick's load runs.
    j["limiting_stage"] =
        backpressure_ ? nlohmann::json::parse(backpressure_->LimitingJson()) : nlohmann::json(nullptr);
    j["totals"] = {{"runs", runs_}, {"runs_failed", runs_failed_}, {"rows", rows_total_}};
    return j.dump();
  }

 private:
  std::string RedactHeaderValues(std::string text) const {
    return RedactHeaderValuesIn(std::move(text), source_.headers);
  }

  /// The request for `url`, conditional on `known` when given.
  io::HttpRequest MakeRequest(const std::string& url, const state::HttpValidator* known) const {
    io::HttpRequest request;
    request.method = source_.method;
    request.url = url;
    request.body = source_.body;
    request.timeout = source_.timeout;
    request.max_response_bytes = source_.max_response_bytes;
    for (const auto& [name, value] : source_.headers) request.headers.push_back(name + ": " + value);
    if (known != nullptr) {
      if (!known->etag.empty()) request.headers.push_back("If-None-Match: " + known->etag);
      if (!known->last_modified.empty())
        request.headers.push_back("If-Modified-Since: " + known->last_modified);
    }
    return request;
  }

  static TickReport Failed(Status status) {
    TickReport r;
    r.outcome = std::move(status);
    return r;
  }

  JobRun Finish(SystemClock::time_point start, TickReport report) {
    auto end = SystemClock::now();
    report.seconds = std::chrono::duration<double>(end - start).count();
    if (report.outcome.ok()) {
      spdlog::info(
          "pipeline {}: run {} succeeded: {} endpoints ({} ok, {} not modified, {} failed), {} rows in "
          "{:.2f} s",
          load_.name, report.run_id, report.endpoints, report.ok, report.not_modified, report.failed,
          Thousands(report.rows), report.seconds);
    } else {
      spdlog::error("pipeline {}: {}", load_.name, report.outcome.message());
    }
    for (const auto& note : report.notes) spdlog::info("pipeline {}: {}", load_.name, note);
    if (metrics_) {
      metrics_->endpoints_failed->Set(static_cast<double>(report.failed));
      metrics_->rows->Add(static_cast<double>(report.rows));
    }
    Status outcome = report.outcome;
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
    ++runs_;
    if (!outcome.ok()) ++runs_failed_;
    if (outcome.ok()) last_success_ = end;
    rows_total_ += report.rows;
    last_start_ = start;
    last_end_ = end;
    last_ = std::move(report);
    return JobRun{outcome, false};
  }

  Status OpenStore() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (store_) return Status::OK();
    }
    SLUICE_ASSIGN_OR_RETURN(auto store, OpenFilesStateStore(load_));
    (void)store->CloseAbandonedRuns(load_.name, UnixMs(SystemClock::now()));
    std::optional<SystemClock::time_point> last_success;
    if (auto runs = store->RecentRuns(load_.name, 50); runs.ok()) {
      for (const auto& r : *runs) {
        if (r.status != "succeeded" || !r.finished_unix_ms) continue;
        last_success = SystemClock::time_point(std::chrono::milliseconds(*r.finished_unix_ms));
        break;
      }
    }
    spdlog::info("pipeline {}: state store {}", load_.name, store->Describe());
    std::unique_ptr<state::WorkerLease> lease;
    if (store->SharesWork()) {
      // Several processes may serve this pipeline: this one is a worker.
      SLUICE_ASSIGN_OR_RETURN(lease, state::WorkerLease::Start(store.get(), load_.name, load_.lease_ms));
      lease->SetDoing("idle");
      spdlog::info("pipeline {}: worker {} (lease {:.1f} s)", load_.name, lease->worker(),
                   load_.lease_ms / 1000.0);
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!last_success_) last_success_ = last_success;
    store_ = std::move(store);
    lease_ = std::move(lease);
    return Status::OK();
  }

  /// The URLs of this tick: `urls`, or the lines of urls_file read now.
  Result<std::vector<std::string>> Urls() const {
    if (source_.urls_file.empty()) return source_.urls;
    std::ifstream in(source_.urls_file);
    if (!in) {
      return Status::NotFound("[source] urls_file " + source_.urls_file + ": cannot read it (" +
                              std::string(std::strerror(errno)) + ")");
    }
    std::vector<std::string> urls;
    std::string line;
    int64_t number = 0;
    while (std::getline(in, line)) {
      ++number;
      size_t a = line.find_first_not_of(" \t\r");
      if (a == std::string::npos || line[a] == '#') continue;
      size_t b = line.find_last_not_of(" \t\r");
      std::string url = line.substr(a, b - a + 1);
      if (!url.starts_with("http://") && !url.starts_with("https://")) {
        return Status::InvalidArgument(source_.urls_file + " line " + std::to_string(number) +
                                       ": not an http:// or https:// URL: " + io::RedactHttpUrl(url));
      }
      urls.push_back(std::move(url));
    }
    return urls;
  }

  TickReport Tick(state::StateStore* store, const CancellationSource* cancel, ProgressMode progress,
                  SystemClock::time_point start) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = true;
    }
    TickReport report;
    // Names this tick for the spool file and the destination's keys: drawn
    // per tick (run ids repeat across state stores), kept across the
    // load's [retry] attempts so that those resend under the same keys.
    tick_id_ = RandomTickId();
    auto run_id = store->BeginRun(load_.name, UnixMs(start));
    if (!run_id.ok()) return Failed(run_id.status().WithContext("run log"));
    report.run_id = *run_id;
    Status status = TickBody(store, cancel, progress, &report);
    report.outcome = status;
    for (const auto& f : report.logged) {
      state::FileRecord rec;
      rec.run_id = report.run_id;
      rec.pipeline = load_.name;
      rec.file = f.url;
      rec.rows_in = -1;
      rec.rows_out = -1;
      rec.seconds = static_cast<double>(f.millis) / 1000.0;
      rec.status = "failed";
      rec.error = f.error;
      (void)store->RecordFile(rec);
    }
    report.logged.clear();
    report.logged.shrink_to_fit();
    std::string final_status = status.ok()                               ? "succeeded"
                               : status.code() == StatusCode::kCancelled ? "cancelled"
                                                                         : "failed";
    Status logged = store->FinishRun(report.run_id, final_status, status.ok() ? "" : status.message(),
                                     report.ok, report.rows, UnixMs(SystemClock::now()));
    if (!logged.ok()) spdlog::warn("pipeline {}: run log: {}", load_.name, logged.message());
    return report;
  }

  Status TickBody(state::StateStore* store, const CancellationSource* cancel, ProgressMode progress,
                  TickReport* report) {
    SLUICE_ASSIGN_OR_RETURN(auto urls, Urls());
    report->endpoints = static_cast<int64_t>(urls.size());
    std::unordered_map<std::string, state::HttpValidator> validators;
    if (source_.conditional && !urls.empty()) {
      SLUICE_ASSIGN_OR_RETURN(auto known, store->HttpValidators(load_.name, urls));
      for (auto& v : known) validators[v.url] = std::move(v);
    }
    // The spool: every row of the tick as a JSON line, read by DuckDB.
    std::string dir = load_.engine.temp_directory.empty() ? std::filesystem::temp_directory_path().string()
                                                          : load_.engine.temp_directory;
    std::string spool_path = dir + "/sluice-http-" + std::to_string(::getpid()) + "-" + tick_id_ + ".jsonl";
    // Declared before the guard, which flushes the file through it.
    std::vector<char> spool_buffer(1 << 20);
    std::FILE* spool = std::fopen(spool_path.c_str(), "wb");
    if (spool == nullptr) {
      return Status::IoError("cannot create the spool file " + spool_path + ": " + std::strerror(errno));
    }
    struct SpoolGuard {
      std::string path;
      std::FILE** file;
      ~SpoolGuard() {
        if (*file != nullptr) std::fclose(*file);
        std::remove(path.c_str());
      }
    } guard{spool_path, &spool};
    std::setvbuf(spool, spool_buffer.data(), _IOFBF, spool_buffer.size());

    std::vector<state::HttpValidator> fresh_validators;
    std::mutex mu;  // guards what the callbacks write
    std::condition_variable cv;
    int64_t in_flight = 0;
    bool write_failed = false;
    std::string line_buffer;

    io::HttpClientOptions options;
    options.max_in_flight = source_.concurrency;
    options.max_per_host = source_.per_host_concurrency;
    options.cancel = cancel;
    if (metrics_)
      options.on_attempt = [m = metrics_.get()](const io::HttpRequest&, const io::HttpResponse& r) {
        m->Attempt(r);
      };
    SLUICE_ASSIGN_OR_RETURN(auto client, io::HttpClient::Make(std::move(options)));

    auto fetch_start = SteadyClock::now();
    auto on_done = [&](const std::string& url, io::HttpResponse r) {
      EndpointFailure failure;
      bool failed = false;
      int64_t rows = 0;
      line_buffer.clear();
      if (r.cancelled) {
        failed = false;  // the run is cancelled as a whole
      } else if (r.status == 304 && source_.conditional) {
      } else if (!r.ok()) {
        failed = true;
        failure.status = r.status;
        failure.error = r.Summary();
        if (r.status != 0 && !r.body.empty()) failure.error += ": " + RedactHeaderValues(Excerpt(r.body));
        if (r.attempts > 1) failure.error += " (after " + std::to_string(r.attempts) + " attempts)";
      } else {
        ResponseMeta meta{io::RedactHttpUrl(url), r.status, Iso8601(SystemClock::now())};
        auto appended = AppendRecordsAsJsonLines(r.body, source_.format, source_.records, meta, &line_buffer);
        if (!appended.ok()) {
          failed = true;
          failure.status = r.status;
          failure.error = appended.status().message();
        } else {
          rows = *appended;
        }
      }
      std::lock_guard<std::mutex> lock(mu);
      --in_flight;
      report->bytes += static_cast<int64_t>(r.body.size());
      if (failed) {
        failure.url = io::RedactHttpUrl(url);
        failure.attempts = r.attempts;
        failure.millis = static_cast<int64_t>(r.total_seconds * 1000);
        ++report->failed;
        if (report->failures.size() < kMaxFailuresKept) report->failures.push_back(failure);
        report->logged.push_back(std::move(failure));
      } else if (r.status == 304 && !r.cancelled) {
        ++report->not_modified;
      } else if (!r.cancelled) {
        ++report->ok;
        report->rows += rows;
        if (!line_buffer.empty() &&
            std::fwrite(line_buffer.data(), 1, line_buffer.size(), spool) != line_buffer.size()) {
          write_failed = true;
        }
        if (source_.conditional) {
          state::HttpValidator v{url, r.Header("etag").value_or(""), r.Header("last-modified").value_or("")};
          auto known = validators.find(url);
          bool changed = known == validators.end() || known->second.etag != v.etag ||
                         known->second.last_modified != v.last_modified;
          if (changed) fresh_validators.push_back(std::move(v));
        }
      }
      cv.notify_all();
    };

    // Submit in a window, so that 100,000 URLs are not all queued at once.
    const int64_t window = static_cast<int64_t>(source_.concurrency) * 4;
    for (const std::string& url : urls) {
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return in_flight < window; });
        ++in_flight;
      }
      if (cancel && cancel->cancelled()) {
        std::lock_guard<std::mutex> lock(mu);
        --in_flight;
        break;
      }
      const state::HttpValidator* known = nullptr;
      if (source_.conditional) {
        if (auto v = validators.find(url); v != validators.end()) known = &v->second;
      }
      io::HttpRequest request = MakeRequest(url, known);
      client->Submit(std::move(request), source_.retry,
                     [&on_done, url](io::HttpResponse r) { on_done(url, std::move(r)); });
    }
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return in_flight == 0; });
    }
    client.reset();
    report->fetch_seconds = std::chrono::duration<double>(SteadyClock::now() - fetch_start).count();
    bool closed = std::fclose(spool) == 0;
    spool = nullptr;
    if (cancel && cancel->cancelled()) return Status::Cancelled("cancelled");
    if (write_failed || !closed) return Status::IoError("writing the spool file " + spool_path + " failed");

    for (const auto& f : report->failures) {
      spdlog::warn("pipeline {}: endpoint {} failed: {} ({} ms)", load_.name, f.url, f.error, f.millis);
    }
    if (report->failed > static_cast<int64_t>(report->failures.size())) {
      spdlog::warn("pipeline {}: ... and {} more failed endpoints", load_.name,
                   report->failed - static_cast<int64_t>(report->failures.size()));
    }
    if (report->failed > 0 && source_.on_endpoint_error == "fail") {
      const auto& f = report->failures.front();
      return Status(StatusCode::kUnavailable,
                    std::to_string(report->failed) + " of " + std::to_string(report->endpoints) +
                        " endpoints failed (on_endpoint_error = \"fail\": nothing loaded); first: " + f.url +
                        ": " + f.error,
                    /*retryable=*/false);
    }
    if (report->rows == 0) {
      report->notes.push_back(report->endpoints == 0 ? "no endpoints to poll"
                                                     : "no rows this tick (nothing new); the destination is "
                                                       "unchanged");
    } else {
      SLUICE_RETURN_IF_ERROR(Load(spool_path, report, cancel, progress));
    }
    if (!fresh_validators.empty()) {
      Status saved = store->SaveHttpValidators(load_.name, fresh_validators);
      if (!saved.ok())
        spdlog::warn("pipeline {}: saving ETag/Last-Modified: {}", load_.name, saved.message());
    }
    return Status::OK();
  }

  Status Load(const std::string& spool_path, TickReport* report, const CancellationSource* cancel,
              ProgressMode progress) {
    RunOptions options;
    options.cancel = cancel;
    options.progress = progress;
    options.backpressure = backpressure_.get();
    std::error_code ec;
    io::LocalFile file{spool_path, static_cast<int64_t>(std::filesystem::file_size(spool_path, ec)), 0};
    options.files = {file};
    options.load.run_id = report->run_id;
    options.load.input = "tick";
    // A tick has no identity beyond its run: a [retry] of the load sends
    // the same requests under the same keys, a new tick new ones.
    options.load.pipeline = load_.name;
    options.load.input_identity = "tick " + tick_id_ + " run " + std::to_string(report->run_id);
    if (!fence_.empty()) {
      // Commits only while this worker holds the run lease.
      options.checkpoint = fence_;
      options.checkpoint_database = store_->PostgresDatabase();
    }
    RetryState retry(load_.retry.Policy());
    while (true) {
      auto summary = RunLoad(load_, options);
      if (summary.ok()) {
        report->rows = summary->rows;
        for (auto& note : summary->notes) report->notes.push_back(std::move(note));
        return Status::OK();
      }
      if (!summary.status().retryable() || (cancel && cancel->cancelled())) return summary.status();
      auto delay = retry.NextDelay();
      if (delay.count() < 0) return summary.status();
      spdlog::warn("pipeline {}: {}; retrying the load in {:.1f} s", load_.name, summary.status().message(),
                   delay.count() / 1000.0);
      if (!SleepUnlessCancelled(delay, cancel)) return summary.status();
    }
  }

  const HttpSourceConfig source_;
  const FilesPipelineConfig load_;
  std::string tick_id_;  // the pipeline's thread only
  /// While a worker's tick holds the run lease: its fence (pipeline thread only).
  std::vector<CommitStatement> fence_;
  const std::string destination_;
  std::unique_ptr<HttpMetrics> metrics_;
  std::unique_ptr<BackpressureMonitor> backpressure_;  // with metrics only

  mutable std::mutex mu_;  // guards what follows: read by the monitoring threads
  std::unique_ptr<state::StateStore> store_;
  /// With a store that shares work (destroyed before the store it uses).
  std::unique_ptr<state::WorkerLease> lease_;
  bool running_ = false;
  std::optional<TickReport> last_;
  SystemClock::time_point last_start_{}, last_end_{};
  std::optional<SystemClock::time_point> last_success_;
  int64_t runs_ = 0, runs_failed_ = 0, rows_total_ = 0;
};

Result<io::HttpRetryPolicy> ReadRetry(const ConfigTable& t, io::HttpRetryPolicy policy) {
  policy.max_attempts = static_cast<int>(t.GetInt("max_attempts", policy.max_attempts));
  policy.initial = std::chrono::milliseconds(t.GetMillis("initial", policy.initial.count()));
  policy.max_delay = std::chrono::milliseconds(t.GetMillis("max_delay", policy.max_delay.count()));
  policy.max_elapsed = std::chrono::milliseconds(t.GetMillis("max_elapsed", policy.max_elapsed.count()));
  if (policy.max_attempts < 1) return Status::InvalidArgument(t.Name() + " max_attempts must be at least 1");
  return policy;
}

Result<std::unique_ptr<Job>> MakeHttpJob(const JobContext& context) {
  const ConfigTable& t = *context.source;
  HttpSourceConfig s;
  s.urls = t.GetStringList("urls");
  s.urls_file = t.GetString("urls_file");
  s.format_name = t.GetString("format", "json");
  s.records = t.GetString("records");
  s.columns = t.GetStringMap("columns");
  s.method = t.GetString("method", "GET");
  s.body = t.GetString("body");
  s.headers = t.GetStringMap("headers");
  s.timeout = std::chrono::milliseconds(t.GetMillis("timeout", 10000));
  s.concurrency = static_cast<int>(t.GetInt("concurrency", 256));
  s.per_host_concurrency = static_cast<int>(t.GetInt("per_host_concurrency", s.concurrency));
  s.max_response_bytes = t.GetBytes("max_response_bytes", s.max_response_bytes);
  s.conditional = t.GetBool("conditional", false);
  s.on_endpoint_error = t.GetString("on_endpoint_error", "skip");
  // on_error is what a files source calls its bad-row policy; here it is
  // accepted as another name for on_endpoint_error.
  if (t.Has("on_error")) {
    if (t.Has("on_endpoint_error")) {
      return Status::InvalidArgument(t.Name() +
                                     " set on_endpoint_error or on_error (the same key), not both");
    }
    s.on_endpoint_error = t.GetString("on_error", "skip");
  }
  (void)t.GetString("on_error");
  io::HttpRetryPolicy retry;
  retry.max_attempts = 3;
  retry.initial = std::chrono::milliseconds(200);
  retry.max_delay = std::chrono::milliseconds(30000);
  retry.max_elapsed = std::chrono::milliseconds(120000);
  SLUICE_ASSIGN_OR_RETURN(s.retry, ReadRetry(t.Section("retry"), retry));
  SLUICE_RETURN_IF_ERROR(t.Check());
  const std::string where = t.Name() + " ";
  if (s.urls.empty() == s.urls_file.empty()) {
    return Status::InvalidArgument(where +
                                   "needs either urls (a list) or urls_file (a file, one URL per line)");
  }
  for (const auto& url : s.urls) {
    if (!url.starts_with("http://") && !url.starts_with("https://")) {
      return Status::InvalidArgument(where +
                                     "urls: not an http:// or https:// URL: " + io::RedactHttpUrl(url));
    }
  }
  SLUICE_ASSIGN_OR_RETURN(s.format, ParseHttpBodyFormat(s.format_name));
  if (s.method != "GET" && s.method != "POST") {
    return Status::InvalidArgument(where + "method must be \"GET\" or \"POST\", not \"" + s.method + "\"");
  }
  if (!s.body.empty() && s.method != "POST") {
    return Status::InvalidArgument(where + "body needs method = \"POST\"");
  }
  if (s.concurrency < 1 || s.concurrency > 10000) {
    return Status::InvalidArgument(where + "concurrency must be between 1 and 10000");
  }
  if (s.per_host_concurrency < 1)
    return Status::InvalidArgument(where + "per_host_concurrency must be at least 1");
  if (s.timeout.count() < 1) return Status::InvalidArgument(where + "timeout must be positive");
  if (s.max_response_bytes < 1) return Status::InvalidArgument(where + "max_response_bytes must be positive");
  if (s.on_endpoint_error != "skip" && s.on_endpoint_error != "fail") {
    return Status::InvalidArgument(where + "on_endpoint_error must be \"skip\" or \"fail\"");
  }

  // The load: the tick's spool file read as JSON lines, through [transform],
  // into the destination.
  FilesPipelineConfig load;
  load.name = context.pipeline;
  load.file = context.file;
  load.engine = context.engine;
  load.retry = context.retry;
  load.registry = context.registry;
  load.source.path = "http";
  load.source.format = "jsonl";
  load.source.columns = {
      {kUrlColumn, "VARCHAR"}, {kStatusColumn, "INTEGER"}, {kFetchedAtColumn, "TIMESTAMPTZ"}};
  for (const auto& c : s.columns) load.source.columns.push_back(c);
  load.source.incremental = false;
  load.transform_sql = context.section("transform").GetString("sql");
  load.destination = &context.section("destination");
  load.state = &context.section("state");
  // [state] lease belongs to the stores that share work (the key check
  // refuses it for the others).
  if (context.registry->TypeOf(ComponentKind::kStateStore, *load.state) == "postgres") {
    SLUICE_ASSIGN_OR_RETURN(load.lease_ms, state::ReadLeaseMs(*load.state));
  }
  // Runs are always logged (each failed endpoint) and ETags kept: the
  // default store is the SQLite file, as for incremental file sources.
  load.state_configured = true;
  SLUICE_ASSIGN_OR_RETURN(auto destination, context.registry->MakeDestination(*load.destination));
  if (!destination->OutputTemplate().empty() &&
      destination->OutputTemplate().find("{run}") == std::string::npos) {
    return Status::InvalidArgument(
        load.destination->Name() +
        " path: every tick writes a new output; put {run} (the run id) in the path");
  }
  load.output_template = destination->OutputTemplate();
  SLUICE_RETURN_IF_ERROR(
      config::CheckComponentKeys(*context.registry, ComponentKind::kStateStore, *load.state));
  return std::unique_ptr<Job>(
      std::make_unique<HttpJob>(std::move(s), std::move(load), destination->Describe(), context.metrics));
}

}  // namespace

Status RegisterHttpSource(Registry& registry) {
  auto factory = std::make_shared<const JobFactory>(MakeHttpJob);
  return registry.AddInternal(
      ComponentKind::kSource, "http", factory,
      {"HTTP endpoints polled once per run (thousands at once): JSON, JSON lines or "
       "CSV responses become rows "
       "with _url, _status and _fetched_at",
       {"urls", "urls_file", "format", "records", "columns", "method", "body", "headers", "timeout",
        "concurrency", "per_host_concurrency", "max_response_bytes", "conditional", "on_endpoint_error",
        "on_error", "retry"}});
}

}  // namespace sluice::sources
