// One load of a files pipeline: builds the engine, the source and the
// destination (from the registry) and moves the data, and reports what
// happened. Called from one thread; cancellation comes from a
// CancellationSource that signal handlers may set.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/backpressure.h"
#include "core/cancellation.h"
#include "io/local_files.h"
#include "sources/files/files_config.h"
#include "sluice/destination.h"
#include "sluice/status.h"

namespace sluice::sources {

struct RunOptions {
  const CancellationSource* cancel = nullptr;
  ProgressMode progress = ProgressMode::kAuto;
  /// When not empty: read exactly these local files (e.g. objects fetched
  /// from S3) instead of what [source] path matches.
  std::vector<io::LocalFile> files;
  /// A checkpoint to commit in the destination's own transaction when that
  /// transaction runs in `checkpoint_database` ("host:port/dbname"):
  /// exactly once. RunSummary::checkpoint_committed says whether it was.
  std::vector<CommitStatement> checkpoint;
  std::string checkpoint_database;
  /// Called after every row was written and before the destination
  /// commits; an error rolls the load back.
  std::function<Status()> before_commit;
  /// What this load is, for the destination (run id, input name).
  LoadContext load;
  /// Watches the load's channels while it runs (fill, blocked time, the
  /// limiting stage); null: not watched (no metrics).
  BackpressureMonitor* backpressure = nullptr;
};

/// Rows and bytes that passed one stage of the load.
struct StageTotals {
  std::string name;
  int64_t rows = 0;
  int64_t bytes = 0;
  double blocked_seconds = 0;
};

struct RunSummary {
  int64_t rows = 0;
  int64_t rejected = 0;
  int64_t bytes_in = 0;
  double seconds = 0;
  std::string source;
  std::string destination;
  /// Per stage: rows, bytes and time blocked on channels (where the time
  /// went), e.g. "source 5,000,000 rows 1.2 GB blocked 3.1 s; ...".
  std::string stages;
  std::vector<StageTotals> stage_totals;
  /// The checkpoint of RunOptions committed with the rows.
  bool checkpoint_committed = false;
  /// What the user should know besides the counts: empty input files left
  /// out, a table emptied or not created for an input without rows.
  std::vector<std::string> notes;
};

Result<RunSummary> RunLoad(const FilesPipelineConfig& config, const RunOptions& options);

/// The destination of one load, from the registry, prepared for `options`.
Result<std::unique_ptr<Destination>> MakeLoadDestination(const FilesPipelineConfig& config,
                                                         const RunOptions& options, bool untyped_empty);

/// /ready: builds the destination from its table and pings it.
Status PingDestination(const FilesPipelineConfig& config);

/// Checks the file, the destination's reachability and the SQL against the
/// source's schema, loading nothing. Returns a human-readable report.
/// With `files`, the SQL is compiled against those local files instead of
/// what [source] path matches (an object fetched from S3).
Result<std::string> ValidateLoad(const FilesPipelineConfig& config,
                                     const std::vector<io::LocalFile>& files = {});

}  // namespace sluice::sources
