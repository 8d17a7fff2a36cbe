// Job: one pipeline as the service runs it, whatever its kind (a plain
// batch load, an incremental ledger run, change data capture, an HTTP
// poll). A source's registry entry builds the job from the pipeline file;
// the service only schedules jobs, serves what they report and counts runs.
//
// Thread-safety: Open() and Run() are called from the pipeline's own
// thread, one at a time. Ready(), StatusJson() and LastSuccessUnixMs() may
// be called from the monitoring server's threads at any time, also while
// Run() is running.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "core/cancellation.h"
#include "core/retry.h"
#include "sluice/config_table.h"
#include "sluice/registry.h"
#include "sluice/status.h"

namespace sluice {

class MetricsRegistry;

enum class ProgressMode { kAuto, kAlways, kNever };

/// [engine]: the embedded DuckDB and the pipeline's memory.
struct EngineSettings {
  int threads = 0;
  std::string memory_limit = "268435456B";
  std::string temp_directory;
  std::string stream_buffer = "16000000B";  // DuckDB's streaming_buffer_size
  int64_t buffer_bytes = 16 << 20;          // what the pipeline's channels may hold
  int encode_threads = 0;                   // 0: chosen from the core count
};

/// [retry]: whole-load retries after a retryable failure (connection lost,
/// server unavailable): the failed load was rolled back, so running it
/// again is safe.
struct RetrySettings {
  int64_t max_attempts = 5;  // including the first; 1 disables retries
  int64_t initial_ms = 1000;
  int64_t max_delay_ms = 30000;
  int64_t max_elapsed_ms = 300000;

  RetryPolicy Policy() const {
    RetryPolicy p;
    p.initial = std::chrono::milliseconds(initial_ms);
    p.max_delay = std::chrono::milliseconds(max_delay_ms);
    p.max_elapsed = std::chrono::milliseconds(max_elapsed_ms);
    p.max_attempts = static_cast<int>(max_attempts);
    return p;
  }
};

/// What a source's factory gets to build its job from.
struct JobContext {
  std::string pipeline;  // the pipeline's name
  std::string file;      // the file it was read from ("" when built in code)
  const ConfigTable* source = nullptr;
  /// Another section of the file ([destination], [state], [transform]); an
  /// empty table when absent. A section nobody asks for is an error.
  std::function<const ConfigTable&(std::string_view)> section;
  /// Whether the file has that section (also when it is empty: `[state]`).
  std::function<bool(std::string_view)> has_section;
  /// Where the job builds its destination and state store; outlives the job.
  const Registry* registry = nullptr;
  EngineSettings engine;
  RetrySettings retry;
  /// Where the job counts what it does; outlives the job.
  MetricsRegistry* metrics = nullptr;
};

/// How one run went, beyond its status.
struct JobRun {
  Status status;
  /// The run did not happen (another process holds the pipeline's lock):
  /// not a failure, counted as skipped.
  bool skipped = false;
};

class Job {
 public:
  Job() = default;
  virtual ~Job() = default;
  Job(const Job&) = delete;
  Job& operator=(const Job&) = delete;

  /// Opens what the runs need (a state store). A retryable error lets the
  /// service start anyway and try again at each run.
  virtual Status Open() { return Status::OK(); }
  /// Continuous jobs (CDC) run until cancelled; the others do one run per
  /// call, on the service's schedule.
  virtual bool continuous() const = 0;
  /// One run, or until `cancel` fires for a continuous job (then OK).
  virtual JobRun Run(const CancellationSource* cancel, ProgressMode progress) = 0;
  /// `sluice validate`: checks everything it can reach, changing nothing.
  virtual Result<std::string> Validate() = 0;
  /// /ready: the job's servers answer now.
  virtual Status Ready() = 0;
  /// The job's part of /status: a JSON object ("state", "source",
  /// "destination", counters, the last run).
  virtual std::string StatusJson() const = 0;
  /// When the last successful run ended (also from before a restart).
  virtual std::optional<int64_t> LastSuccessUnixMs() const { return std::nullopt; }
  /// One line: "files s3://b/in/ -> postgres public.orders".
  virtual std::string Describe() const = 0;
};

/// The kind of an error, as metrics label it: config, data, schema,
/// not_found, io, unavailable, cancelled, internal ("" for OK).
std::string ErrorKind(const Status& status);

using JobFactory = std::function<Result<std::unique_ptr<Job>>(const JobContext&)>;

}  // namespace sluice
