// Destination: where the rows of one load go.
//
// A load is Begin(schema), any number of Write/WriteEncoded calls, then
// Commit() or Abort(). What a load's writes may do before Commit depends on
// the destination's declared delivery class (see Delivery):
// - transactional (the default): nothing a load writes becomes visible to
//   others before Commit() returns OK, and after Abort() (or a crash) the
//   target is as it was before Begin();
// - at least once: rows are delivered while the load runs, so a failed or
//   interrupted load may have delivered some of them, and a run that loads
//   the same input again delivers them again, marked so that the receiver
//   can tell (idempotency keys).
// All calls for one load come from one thread, except Encode(), which the
// runtime may call from several worker threads at once and must therefore
// be thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/batch.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice {

/// A statement for a destination to run inside its load transaction, just
/// before COMMIT: how a checkpoint (a file ledger entry, a CDC position)
/// commits atomically with the rows it stands for.
struct CommitStatement {
  std::string sql;                                 // placeholders $1, $2, ...
  std::vector<std::optional<std::string>> params;  // text values; nullopt is NULL
  /// The statement must affect exactly this many rows, or the whole load is
  /// rolled back (e.g. another process recorded the checkpoint first). -1: any.
  int64_t expect_rows = -1;
};

/// Facts about one load that the pipeline knows and the destination's table
/// does not: given to Destination::PrepareLoad before Begin.
struct LoadContext {
  /// The run this load belongs to, for outputs named with {run}; 0 outside
  /// runs that remember their files.
  int64_t run_id = 0;
  /// The input file's name below the source's directory or prefix, without
  /// the extensions read ("x/2024-01-01"), for outputs named with {file};
  /// empty when the load is not one file's.
  std::string input;
  /// The input has no rows and the types of its columns are unknown (a CSV
  /// header without rows): the destination creates nothing, and empties an
  /// existing target in mode replace.
  bool untyped_empty = false;
  /// The pipeline's name ("" outside a named pipeline).
  std::string pipeline;
  /// What identifies the load's input across runs, so that loading the same
  /// input again can be recognised: a file's path or key with its ETag (or
  /// size and modification time); for an HTTP poll tick, the run id. Empty
  /// when unknown. At-least-once destinations derive their idempotency keys
  /// from it.
  std::string input_identity;
};

/// What a destination promises about the rows of a load.
enum class Delivery {
  /// The load is one transaction: all of its rows become visible at
  /// Commit(), none after Abort() or a crash. Combined with a checkpoint in
  /// the same transaction (AddCommitStatements) a load happens exactly once.
  kTransactional,
  /// Rows are delivered while the load runs (an HTTP endpoint). Every piece
  /// sent carries an idempotency key derived from the pipeline, the input's
  /// identity (LoadContext::input_identity) and the piece's position in the
  /// input, never from the clock, so that a run that loads the same input
  /// again after a crash sends the same keys and a receiver that keeps the
  /// keys it has seen can drop the replay. Commit() returns OK only when
  /// every piece was accepted by the receiver or set aside in a dead-letter
  /// file (and that file is durable); only then may the checkpoint follow.
  /// Abort() stops sending, but cannot take back what was delivered.
  kAtLeastOnce,
};

/// A row a destination refused before sending it, because one of its values
/// cannot be stored in its target column (a NUL byte in text, a date beyond
/// the target's range, a number too large for its column).
struct RejectedRow {
  int64_t result_row = 0;  // 1-based, in the order the result produced rows
  std::string column;
  std::string value;  // the value as text, "" when it cannot be shown
  std::string reason;
};

class Destination {
 public:
  Destination() = default;
  virtual ~Destination() = default;
  Destination(const Destination&) = delete;
  Destination& operator=(const Destination&) = delete;

  /// Optional: opens ahead of Begin what Begin would open (a connection),
  /// so that it happens while the pipeline does other work (lists and
  /// downloads files). Begin opens it itself when this was not called or
  /// failed, or when what was opened no longer works.
  virtual Status Connect() { return Status::OK(); }
  /// Connects, checks or creates the target for rows shaped like `schema`,
  /// and opens the load's transaction.
  virtual Status Begin(const Schema& schema) = 0;
  /// Adds rows to the open load.
  virtual Status Write(const Batch& batch) = 0;
  /// Makes the whole load durable at once.
  virtual Status Commit() = 0;
  /// Discards the open load. Safe at any time, also twice or before Begin.
  virtual void Abort() = 0;
  /// The destination's delivery class (see Delivery).
  virtual Delivery delivery() const { return Delivery::kTransactional; }

  /// Whether Encode/WriteEncoded are available: the runtime then encodes
  /// batches on worker threads and hands the bytes over in input order.
  virtual bool SupportsEncode() const { return false; }
  /// Thread-safe: turns a batch into the destination's wire format.
  virtual Result<std::string> Encode(const Batch& /*batch*/) {
    return Status::Internal("Encode is not supported by this destination");
  }
  /// Adds bytes produced by Encode to the open load.
  virtual Status WriteEncoded(std::string /*bytes*/, int64_t /*rows*/) {
    return Status::Internal("WriteEncoded is not supported by this destination");
  }
  /// Thread-safe, callable from any thread at any time: asks a blocking
  /// call in progress (a lock wait, a stalled COPY) to give up, because the
  /// run is being cancelled. The interrupted call then fails, and the
  /// runtime calls Abort(). Optional.
  virtual void Interrupt() {}

  /// The database the open load's transaction runs in, as "host:port/dbname"
  /// (valid after Begin); empty when the destination is not a SQL database
  /// that can hold checkpoints. Compared with a state store's database.
  virtual std::string TransactionDatabase() const { return ""; }
  /// Adds statements to run in the load's transaction before COMMIT (after
  /// Begin). Only for destinations with a TransactionDatabase().
  virtual Status AddCommitStatements(std::vector<CommitStatement> /*statements*/) {
    return Status::Internal("this destination cannot run statements in its load transaction");
  }

  /// What the destination is, for messages: "postgres table public.sales".
  virtual std::string Describe() const = 0;
  /// After Commit: what the load did besides writing rows, worth telling
  /// the user ("the table was emptied"), or empty. Optional.
  virtual std::string Note() const { return ""; }

  /// Before Begin: whether rows with a value the destination cannot store
  /// are left out (true, on_error = "skip") or fail the load (false, the
  /// default). Either way the destination checks such values before it
  /// sends them, so that the failure names the row. Optional.
  virtual void SetSkipBadRows(bool skip) { (void)skip; }
  /// Thread-safe: the rows left out so far (skip), or the row that failed
  /// the load; the caller takes them, so a second call returns the newer
  /// ones only. Optional.
  virtual std::vector<RejectedRow> TakeRejectedRows() { return {}; }

  /// Before Begin: what this load is (see LoadContext). Optional.
  virtual Status PrepareLoad(const LoadContext& /*load*/) { return Status::OK(); }
  /// The file or object a load writes, as configured, with its {run} and
  /// {file} placeholders ("s3://b/out/{file}.parquet"); empty for
  /// destinations that do not write named outputs. The pipeline uses it to
  /// check that every load gets an output of its own.
  virtual std::string OutputTemplate() const { return ""; }
  /// After PrepareLoad: the output this load writes (OutputTemplate with
  /// its placeholders filled), or empty.
  virtual std::string OutputName() const { return ""; }
  /// Whether rows must arrive in the input's order (an upsert in which the
  /// last row for a key wins); parallel scans are then kept in order.
  virtual bool NeedsInputOrder() const { return false; }

  /// `sluice validate`: connects and checks that rows shaped like `schema`
  /// (empty when unknown) fit, changing nothing. Returns what was checked.
  virtual Result<std::string> Check(const Schema& /*schema*/) { return Describe(); }
  /// /ready: a cheap check that the destination is reachable now; changes
  /// nothing. Callable from any thread.
  virtual Status Ping() { return Status::OK(); }
};

}  // namespace sluice
