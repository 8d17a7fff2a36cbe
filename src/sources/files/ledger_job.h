// BatchJob: one run of a file pipeline with memory. Lists the source (an
// S3 prefix or local files), keeps the objects the file ledger has not seen
// (new key, or a known key with a new ETag), fetches S3 objects into a
// spool directory with a bounded number of downloads in flight, loads them
// (all together, or one load per file) and records the run and every file
// in the state store's run log.
//
// Delivery: when the state store is the destination's PostgreSQL database,
// the ledger entries commit in the load's own transaction, so a crash at
// any moment followed by a new run loads each object exactly once. With any
// other store they are written right after the destination committed: at
// least once (a crash between the two loads the file again).
//
// Called from one thread per pipeline; the state store may be shared with
// the monitoring service.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "sources/files/files_config.h"
#include "sources/files/load_runner.h"
#include "sluice/status.h"
#include "state/state_store.h"
#include "state/worker_lease.h"

namespace sluice::sources {

struct JobReport {
  int64_t run_id = 0;
  std::string status;  // succeeded, failed, cancelled, skipped (for the run log)
  /// The run's outcome: OK, or the error that ended it (its code says why).
  Status outcome;
  std::string error;
  int64_t files_found = 0;  // new or changed objects this run considered
  int64_t files_loaded = 0;
  int64_t files_failed = 0;
  int64_t rows = 0;      // rows written to the destination
  int64_t bytes_in = 0;  // bytes of the loaded files
  int64_t bytes_downloaded = 0;
  /// The most bytes of downloaded objects the spool held at once.
  int64_t spool_peak_bytes = 0;
  /// Seconds between the start of the load's reading and the end of its
  /// last download: how long reading and downloading overlapped (0 when
  /// the load read nothing before every object was there).
  double overlap_seconds = 0;
  double seconds = 0;
  bool exactly_once = false;        // ledger entries committed with the rows
  std::vector<StageTotals> stages;  // summed over the run's loads
  std::string source;
  std::string destination;
  int64_t rejected = 0;     // rows sent to the rejects file (on_error = "skip")
  std::string stages_text;  // plain loads: where the time went, for the log
  /// The first error's kind, for metrics: data, schema, unavailable, io, config, cancelled, internal.
  std::string error_kind;
  /// Whether the failure is worth running again (a server was unavailable).
  bool retryable = false;
  /// What the user should know besides the counts (RunSummary::notes).
  std::vector<std::string> notes;
  /// Files of this run that another worker loaded first (skipped here).
  int64_t files_elsewhere = 0;
};

struct JobOptions {
  RunOptions run;                      // cancel, progress
  state::StateStore* store = nullptr;  // required by RunBatchJob; optional for RunJob
  /// This process as a worker of the pipeline, when the store is shared
  /// (PostgreSQL): per_file ticks are divided between the workers through
  /// file claims, other runs take the pipeline's "run" lease instead of the
  /// run lock. nullptr: one process, under the run lock.
  state::WorkerLease* lease = nullptr;
};

/// Runs the pipeline once over what is new. Returns an error only when the
/// run could not be recorded or started at all (state store, listing);
/// load failures are in the report (status "failed") and the run log.
Result<JobReport> RunBatchJob(const FilesPipelineConfig& config, const JobOptions& options);

/// One run of any pipeline: RunBatchJob for an incremental source, else
/// one plain load of whatever [source] path names, recorded in the run log
/// when a store is given. Retryable failures (a server unavailable) are
/// retried by the [retry] policy; the failed attempt was rolled back.
Result<JobReport> RunJob(const FilesPipelineConfig& config, const JobOptions& options);

/// `sluice validate` for an incremental source: lists it, asks the state
/// store what is new, compiles the SQL against one fetched object and
/// checks the destination, loading nothing and recording nothing.
Result<std::string> ValidateBatchJob(const FilesPipelineConfig& config);

/// The state store runs use: the one [state] names (the default SQLite
/// file when none) for a pipeline that remembers files, else one in memory
/// (an S3 source without a ledger still lists under a run lock).
Result<std::unique_ptr<state::StateStore>> OpenFilesStateStore(const FilesPipelineConfig& config);

}  // namespace sluice::sources
