// One load of a files pipeline: builds the engine, the source and the
// destination (from the registry) and moves the data, and reports what
// happened. Called from one thread; cancellation comes from a
// CancellationSource that signal handlers may set.
//
// A load can start before its files are all there (RunOptions::feed: S3
// objects still downloading). With [source] read_while_downloading (the
// default) a load of Parquet files is read by DuckDB's own scan while the
// files arrive (a file system that waits for each file, see
// engine::ServeArrivingFiles), the transform runs over all of them as one
// `input` and its result streams into the destination; files that a read
// of all of them at once would read differently (not all with the same
// schema) make the load start again once every file is there, before
// anything is committed. Other formats, and loads that must not be tried
// twice, wait for the last file and read them all at once. The engine and
// the destination are opened ahead (RunOptions::prepared).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/backpressure.h"
#include "core/cancellation.h"
#include "io/local_files.h"
#include "sources/files/files_config.h"
#include "sluice/destination.h"
#include "sluice/status.h"

namespace sluice::engine {
class DuckDbEngine;
}

namespace sluice::sources {

/// The files of one load, in load order, as they arrive while it runs (S3
/// objects being downloaded). Thread-safe: the load asks from DuckDB's
/// threads.
class FileFeed {
 public:
  virtual ~FileFeed() = default;
  /// Waits until file `index` arrived and returns it; nullopt when every
  /// file arrived and there is no file `index`; the error that stopped the
  /// files from arriving (a failed download, Ctrl-C).
  virtual Result<std::optional<io::LocalFile>> WaitFor(size_t index) = 0;
  /// How many files were listed for the load: at most this many arrive
  /// (fewer when one turns out to be a version loaded before).
  virtual size_t listed() const = 0;
};

/// What a load opens before it reads anything, opened ahead (while the
/// files are listed and downloaded) and handed to RunLoad.
struct PreparedLoad {
  std::unique_ptr<engine::DuckDbEngine> engine;
  /// From the registry, connected (Destination::Connect), not prepared.
  std::unique_ptr<Destination> destination;
  ~PreparedLoad();
};

/// Opens the engine and the destination of `config`'s loads and connects
/// the destination. Callable from any thread.
Result<std::unique_ptr<PreparedLoad>> PrepareLoadAhead(const FilesPipelineConfig& config);

/// A DuckDB database for the loads of one run to share (each load connects
/// to it, with its own views and temporary tables): opening one costs
/// DuckDB about as much as loading a small file. Null where loads must
/// have a database of their own (a DuckDB destination attaches its file).
Result<std::unique_ptr<engine::DuckDbEngine>> OpenSharedEngine(const FilesPipelineConfig& config);

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
  /// Instead of `files`: files that arrive while the load runs. It waits
  /// for all of them, or with [source] read_while_downloading reads those
  /// that arrived while the others are on their way, unless that could
  /// change its outcome (on_error = "skip", a destination that delivers
  /// while it loads, or DuckDB's own output).
  FileFeed* feed = nullptr;
  /// With `feed`, instead of `checkpoint`: asked for once every file
  /// arrived (only then are the files' versions known).
  std::function<Result<std::vector<CommitStatement>>()> feed_checkpoint;
  /// Engine and destination opened ahead; RunLoad takes them.
  std::shared_ptr<PreparedLoad> prepared;
  /// Without `prepared`: a database (OpenSharedEngine) the load connects
  /// to instead of opening one of its own; the loads of one run share it.
  engine::DuckDbEngine* shared_engine = nullptr;
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
  /// With a feed: when the load started reading files while others were
  /// still arriving; unset when it waited for all of them.
  std::optional<std::chrono::steady_clock::time_point> first_read;
};

Result<RunSummary> RunLoad(const FilesPipelineConfig& config, const RunOptions& options);

/// The destination of one load (options.prepared's, else one from the
/// registry), prepared for `options`.
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
