// StateStore: what a pipeline remembers between runs. The file ledger
// (which objects were loaded, by key and ETag), the HTTP validators of the
// URLs it polls (ETag and Last-Modified of the response last loaded) and
// the run log (one row per run, one per file). Implementations: memory
// (tests), embedded SQLite (the default) and PostgreSQL (schema `sluice`); their tables are created and
// upgraded by versioned migrations when the store is opened, safely when two
// processes open the same store at once.
//
// Thread-safety: a StateStore may be called from several threads at once
// (the service's HTTP handlers read the run log while a run writes it);
// implementations serialise internally.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/destination.h"
#include "sluice/status.h"

namespace sluice::state {

/// One object of a source listing: an S3 object or a local file (whose
/// "etag" is derived from size and modification time).
struct ObjectInfo {
  std::string key;   // full name: "s3://bucket/a/b.parquet" or "/data/in/b.csv"
  std::string etag;  // without quotes
  int64_t size = 0;
  int64_t modified_unix_ms = 0;
};

/// What an HTTP server said about the last response of a URL that was loaded:
/// sent back as If-None-Match / If-Modified-Since.
struct HttpValidator {
  std::string url;            // the full URL as requested (may carry secrets: never stored in clear)
  std::string etag;           // as the server sent it, quotes included; "" when none
  std::string last_modified;  // the HTTP date as sent; "" when none
};

/// The error CloseAbandonedRuns gives the runs it closes.
inline constexpr const char* kAbandonedRunError = "interrupted (process ended during the run)";

struct RunRecord {
  int64_t id = 0;
  std::string pipeline;
  int64_t started_unix_ms = 0;
  std::optional<int64_t> finished_unix_ms;  // nullopt while running (or crashed)
  std::string status;                       // running, succeeded, failed, cancelled
  std::string error;
  int64_t files = 0;
  int64_t rows = 0;
  std::string worker;  // "host:pid" of the process that ran it ("" before migration 5)
};

/// A process serving a pipeline, as the PostgreSQL store's workers table
/// knows it (for /status).
struct WorkerInfo {
  std::string worker;  // "host:pid"
  int64_t started_unix_ms = 0;
  int64_t seen_unix_ms = 0;           // last heartbeat
  int64_t expires_unix_ms = 0;        // dead to the others after this
  std::string doing;                  // what it said it was doing ("loading 3 files", "standby")
  std::vector<std::string> leases;    // exclusive leases held ("run")
  int64_t claimed_files = 0;          // files of a per_file tick it holds
  int64_t claimed_since_unix_ms = 0;  // its oldest claim (0: none)
};

/// "host:pid" of this process: how the run log and the leases name it.
std::string ProcessWorkerId();

/// The application_name of a worker's database sessions for a pipeline
/// (at most 63 bytes, as PostgreSQL keeps it), so that another worker can
/// find those it left open (EndSessionsOfOtherWorkers).
std::string WorkerSessionName(const std::string& pipeline, const std::string& worker);

struct FileRecord {
  int64_t run_id = 0;
  std::string pipeline;
  std::string file;  // ObjectInfo::key
  std::string etag;
  int64_t size = 0;
  int64_t rows_in = 0;   // -1: not counted (stored as NULL)
  int64_t rows_out = 0;  // -1: not counted, e.g. one load of several files
  int64_t bytes = 0;
  double seconds = 0;
  std::string status;  // loaded, failed, skipped
  std::string error;
};

class StateStore {
 public:
  StateStore() = default;
  virtual ~StateStore() = default;
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;

  /// "sqlite /path/state.db", "postgres 127.0.0.1:5432/db (schema sluice)": for messages.
  virtual std::string Describe() const = 0;
  /// A cheap round trip, for /ready.
  virtual Status Ping() = 0;

  // --- file ledger ---------------------------------------------------------
  /// The objects of `page` that `pipeline` has not loaded yet: the ledger
  /// has no entry for this key with this ETag. It keeps every version that
  /// was loaded (key, ETag), so an object overwritten with bytes already
  /// loaded once is not loaded again, and a slow run that loaded an older
  /// version can never make a newer one look new. Order is preserved.
  /// Called once per listing page (about 1000 objects), so one query per page.
  virtual Result<std::vector<ObjectInfo>> FilterNew(const std::string& pipeline,
                                                    const std::vector<ObjectInfo>& page) = 0;
  /// Records objects as loaded, in the store's own transaction (used after
  /// the destination committed: at least once).
  virtual Status MarkLoaded(const std::string& pipeline, int64_t run_id,
                            const std::vector<ObjectInfo>& objects) = 0;
  /// When the store is PostgreSQL: the statements that record `objects` as
  /// loaded, for the destination to run in its load transaction: exactly
  /// once when the destination is the same database. One INSERT ... ON
  /// CONFLICT (pipeline, key, etag) DO NOTHING per object into
  /// sluice.file_ledger with expect_rows = 1: it affects 0 rows, and so
  /// fails the load, when the same key and ETag was recorded meanwhile.
  /// The run log's file rows are not among them: record those with
  /// RecordFile. Does not touch the database. Other stores return an error.
  virtual Result<std::vector<CommitStatement>> MarkLoadedStatements(const std::string& pipeline,
                                                                    int64_t run_id,
                                                                    const std::vector<ObjectInfo>& objects) {
    (void)pipeline, (void)run_id, (void)objects;
    return Status::Internal("this state store cannot write into a destination's transaction");
  }
  /// The PostgreSQL database the store lives in, as "host:port/dbname", so
  /// the runner can tell whether it is the destination's database; empty
  /// for other stores.
  virtual std::string PostgresDatabase() const { return ""; }

  // --- outputs ---------------------------------------------------------------
  /// The input that `output` (a file a load of `pipeline` writes, e.g.
  /// "out/2024-01-01.csv") was claimed for, or nullopt when none was.
  virtual Result<std::optional<std::string>> OutputClaim(const std::string& pipeline,
                                                         const std::string& output) = 0;
  /// Records that `output` is written from `input`, before it is written, so
  /// that a load from another input never replaces it. Keeps an existing
  /// claim (check OutputClaim first).
  virtual Status ClaimOutput(const std::string& pipeline, const std::string& output, const std::string& input,
                             int64_t run_id) = 0;

  // --- HTTP validators -------------------------------------------------------
  // Kept per pipeline and URL. The SQLite and PostgreSQL stores file a URL
  // under its SHA-256 (url_hash) and keep only a redacted copy for people
  // to read (no password, no api_key, token, signature, ... values), so a
  // secret in a polled URL never reaches the state database.

  /// The validators recorded for `pipeline`, for the given URLs only
  /// (unknown ones are left out), in the order of `urls` (a URL given twice
  /// is returned once), with `url` as given. Efficient for 100,000 URLs.
  virtual Result<std::vector<HttpValidator>> HttpValidators(const std::string& pipeline,
                                                            const std::vector<std::string>& urls) = 0;
  /// Upserts validators in one transaction; a validator with both fields
  /// empty removes the URL's entry. When a URL appears more than once, the
  /// last one wins.
  virtual Status SaveHttpValidators(const std::string& pipeline,
                                    const std::vector<HttpValidator>& validators) = 0;

  // --- one run at a time -----------------------------------------------------
  /// Takes the pipeline's run lock, so that two processes (two `serve`s, a
  /// `serve` and a `run`) never run the same pipeline at once. Returns
  /// false at once when another process (or another store object) holds it.
  /// Held until UnlockPipeline, the end of the process, or (PostgreSQL) the
  /// end of the store's connection.
  virtual Result<bool> TryLockPipeline(const std::string& pipeline) = 0;
  virtual void UnlockPipeline(const std::string& pipeline) = 0;

  // --- run log ---------------------------------------------------------------
  /// Starts a run (status "running") and returns its id.
  virtual Result<int64_t> BeginRun(const std::string& pipeline, int64_t started_unix_ms) = 0;
  /// Sets the final status of a run; NotFound when no run has that id.
  virtual Status FinishRun(int64_t run_id, const std::string& status, const std::string& error, int64_t files,
                           int64_t rows, int64_t finished_unix_ms) = 0;
  virtual Status RecordFile(const FileRecord& file) = 0;
  /// At most `limit` runs (none when limit <= 0), newest first (by start
  /// time, then id).
  virtual Result<std::vector<RunRecord>> RecentRuns(const std::string& pipeline, int limit) = 0;
  /// The files RecordFile recorded for the run, in the order it recorded them.
  virtual Result<std::vector<FileRecord>> FilesOfRun(int64_t run_id) = 0;
  /// Marks runs of `pipeline` still "running" (left by a crash) as failed
  /// with error kAbandonedRunError, finished at now_unix_ms; called at start.
  /// A store shared by several workers closes only the runs of workers
  /// whose lease expired, never those of a live one.
  virtual Status CloseAbandonedRuns(const std::string& pipeline, int64_t now_unix_ms) = 0;

  // --- several processes (PostgreSQL) ---------------------------------------
  // A store that SharesWork() lets several processes serve one pipeline:
  // each keeps a worker row alive with Heartbeat (a lease of `lease_ms`);
  // what it holds (exclusive leases, file claims) is its own while that row
  // lives and free for the others once it expired. Other stores serve one
  // process (the run lock) and return Unimplemented-like errors here.

  /// The name BeginRun records as the run's worker, and the holder of this
  /// store's leases and claims: ProcessWorkerId() unless set (tests run
  /// several workers in one process).
  const std::string& worker() const { return worker_; }
  void set_worker(std::string worker) { worker_ = std::move(worker); }

  virtual bool SharesWork() const { return false; }
  /// Creates or renews this worker's row of `pipeline` until now + lease_ms,
  /// with what it is doing. Returns the exclusive leases it still holds.
  virtual Result<std::vector<std::string>> Heartbeat(const std::string& pipeline, int64_t lease_ms,
                                                     const std::string& doing) {
    (void)pipeline, (void)lease_ms, (void)doing;
    return NotShared();
  }
  /// Releases everything this worker holds for `pipeline` (claims, leases)
  /// and removes its row: on shutdown, so others need not wait for expiry.
  virtual Status LeaveWork(const std::string& pipeline) {
    (void)pipeline;
    return NotShared();
  }
  /// Takes the exclusive lease `name` of `pipeline` when it is free, its
  /// holder's row expired, or this worker holds it already. Returns its
  /// epoch (incremented on every change of holder), or nullopt when another
  /// live worker holds it.
  virtual Result<std::optional<int64_t>> TryAcquireLease(const std::string& pipeline,
                                                         const std::string& name) {
    (void)pipeline, (void)name;
    return NotShared();
  }
  virtual Status ReleaseLease(const std::string& pipeline, const std::string& name) {
    (void)pipeline, (void)name;
    return NotShared();
  }
  /// For a destination transaction in the store's database: affects one row
  /// only while this worker holds lease `name` at `epoch`, and locks that row
  /// until the transaction ends, so a new holder takes over only after it.
  virtual std::vector<CommitStatement> LeaseFence(const std::string& pipeline, const std::string& name,
                                                  int64_t epoch) const {
    (void)pipeline, (void)name, (void)epoch;
    return {};
  }
  /// Offers the files a per_file tick found new for claiming (kept when
  /// already offered).
  virtual Status OfferFiles(const std::string& pipeline, const std::vector<ObjectInfo>& objects) {
    (void)pipeline, (void)objects;
    return NotShared();
  }
  /// Claims up to `limit` offered files that no live worker holds and the
  /// ledger does not have, in key order, skipping rows other workers are
  /// claiming at this moment (FOR UPDATE SKIP LOCKED).
  virtual Result<std::vector<ObjectInfo>> ClaimFiles(const std::string& pipeline, int limit) {
    (void)pipeline, (void)limit;
    return NotShared();
  }
  /// Gives claimed files back (the load did not happen: another worker may
  /// take them) when `retry`, or forgets them (loaded, or failed: the next
  /// tick lists them again) otherwise.
  virtual Status EndClaims(const std::string& pipeline, const std::vector<ObjectInfo>& objects, bool retry) {
    (void)pipeline, (void)objects, (void)retry;
    return NotShared();
  }
  /// For the load's transaction: removes this worker's claims of `objects`,
  /// each expected to affect one row (a claim taken over by another worker
  /// after this one's lease expired rolls the load back).
  virtual std::vector<CommitStatement> EndClaimStatements(const std::string& pipeline,
                                                          const std::vector<ObjectInfo>& objects) const {
    (void)pipeline, (void)objects;
    return {};
  }
  /// Ends `worker`'s row at once (a process known to be gone): what it held
  /// is free now instead of when its lease runs out.
  virtual Status ExpireWorker(const std::string& pipeline, const std::string& worker) {
    (void)pipeline, (void)worker;
    return NotShared();
  }
  /// Ends the database sessions that the other workers of `pipeline` (live
  /// or expired) opened under WorkerSessionName: a process paused in the
  /// middle of a transaction holds its row locks until it is ended.
  virtual Status EndSessionsOfOtherWorkers(const std::string& pipeline) {
    (void)pipeline;
    return NotShared();
  }
  /// The live workers of `pipeline` and what they hold.
  virtual Result<std::vector<WorkerInfo>> Workers(const std::string& pipeline) {
    (void)pipeline;
    return NotShared();
  }

 private:
  Status NotShared() const {
    return Status::InvalidArgument("state store " + Describe() +
                                   " serves one process; several workers need a PostgreSQL state store");
  }
  std::string worker_ = ProcessWorkerId();
};

/// Where the SQLite store lives when [state] names no path.
inline constexpr const char* kDefaultStatePath = ".sluice/state.db";

struct StateConfig {
  std::string url;   // postgresql://...  (schema `sluice`)
  std::string path;  // SQLite file; default ".sluice/state.db"
  bool memory = false;
};

/// Opens (and migrates) the store the config names: PostgreSQL when `url`
/// is set, memory when `memory`, else SQLite at `path`, creating its
/// directory. A store written by a newer sluice (a migration this build does
/// not know) is an InvalidArgument error; an unreachable PostgreSQL is
/// Unavailable (retryable).
Result<std::unique_ptr<StateStore>> OpenStateStore(const StateConfig& config);

}  // namespace sluice::state
