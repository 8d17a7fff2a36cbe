// Change data capture: the interfaces a user implements to receive
// PostgreSQL changes (CdcDestination) and to keep replication state
// (CdcSchemaStore, CdcStateStore, CdcCleanupStore), in the style of
// supabase/etl's Destination / SchemaStore / StateStore / CleanupStore.
//
// Values travel in PostgreSQL's text output form (what pgoutput sends and
// what COPY ... FROM in text format and every type's input function
// accept), so that nothing is lost on the way: a numeric with 1000 digits,
// 'infinity' timestamps, intervals, enums and arrays arrive exactly as the
// source printed them. Rows of a batch live in one flat buffer; an event
// refers to its cells by index. No row becomes a heap object.
//
// Semantics, as a destination sees them:
// - Initial copy: for each table, TruncateTable() (which also creates the
//   table when missing), then WriteTableRows() with inserts, possibly from
//   several copy workers at once. A copy that is interrupted is started
//   again from TruncateTable(), so a destination never has to deduplicate.
// - Streaming: WriteEvents() receives whole source transactions in commit
//   order (never a part of one), and when it returns OK the batch must be
//   durable: sluice then confirms `batch.end_lsn()` to the source, which
//   lets PostgreSQL recycle that WAL. A failed WriteEvents is retried with
//   the same events. Destinations that can run the checkpoint statements in
//   the same transaction as the rows (TransactionDatabase() non-empty and
//   equal to the state store's) apply each batch exactly once; all others
//   see a batch again after a crash between their commit and the
//   checkpoint (at least once), and should make that harmless (upserts,
//   deterministic file names).
// - Unchanged TOAST: an update that did not touch a large (TOASTed) column
//   carries CdcCellKind::kUnchangedToast for it. That is not NULL: keep the
//   value the row has.
//
// Thread-safety: TruncateTable and WriteTableRows may be called from several
// copy workers at once (for different tables or ranges of one table);
// WriteEvents from one apply thread only, never concurrently with itself.
// State store methods may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/destination.h"
#include "sluice/status.h"

namespace sluice {

/// A WAL position (XLogRecPtr) as an integer; 0 is "none".
using CdcLsn = uint64_t;
/// "16/B374D848".
std::string CdcLsnToString(CdcLsn lsn);

enum class CdcIdentity : uint8_t { kDefault, kNothing, kFull, kIndex };

struct CdcColumn {
  std::string name;
  uint32_t type_oid = 0;
  int32_t type_modifier = -1;
  /// format_type() on the source: "integer", "numeric(12,2)", "public.mood[]".
  std::string type_name;
  /// Statements that create the column's user-defined type (an enum, a
  /// domain, or the element type of an array of them) where it is missing;
  /// empty for built-in types. Each statement ends with ";".
  std::string type_definition;
  /// Part of the replica identity (the key updates and deletes are matched by).
  bool key = false;
  friend bool operator==(const CdcColumn&, const CdcColumn&) = default;
};

/// One published table, as the latest Relation message (or the catalog at
/// copy time) described it. Immutable once shared: a schema change makes a
/// new CdcTable, and events keep pointing at the version they were read with.
struct CdcTable {
  uint32_t id = 0;  // relation oid on the source
  std::string schema;
  std::string name;
  CdcIdentity identity = CdcIdentity::kDefault;
  std::vector<CdcColumn> columns;

  /// "schema.name", unquoted, for messages and state keys.
  std::string QualifiedName() const { return schema + "." + name; }
  bool has_key() const;
  friend bool operator==(const CdcTable&, const CdcTable&) = default;
};

enum class CdcCellKind : uint8_t {
  kNull,
  kText,
  /// An unchanged TOASTed value that the source did not send: keep the old one.
  kUnchangedToast,
};

struct CdcCell {
  CdcCellKind kind = CdcCellKind::kNull;
  uint32_t size = 0;
  uint64_t offset = 0;  // into the batch's value buffer
};

enum class ChangeOp : uint8_t { kInsert, kUpdate, kDelete, kTruncate };
const char* ChangeOpName(ChangeOp op);

struct ChangeEvent {
  static constexpr uint32_t kNoRow = UINT32_MAX;
  static constexpr uint8_t kTruncateCascade = 1;
  static constexpr uint8_t kTruncateRestartIdentity = 2;

  ChangeOp op = ChangeOp::kInsert;
  std::shared_ptr<const CdcTable> table;
  uint32_t xid = 0;
  CdcLsn commit_lsn = 0;       // LSN of the transaction's commit record
  CdcLsn end_lsn = 0;          // end of the transaction: what gets confirmed
  int64_t commit_time_us = 0;  // unix microseconds
  /// First cell of the new row (insert, update); table->columns.size() cells.
  uint32_t new_row = kNoRow;
  /// First cell of the old row (update with a changed key or FULL identity,
  /// delete). With old_is_full false only key columns are set.
  uint32_t old_row = kNoRow;
  bool old_is_full = false;
  uint8_t truncate_options = 0;
};

/// A batch of change events (or of copied rows) and the values they refer to.
class ChangeBatch {
 public:
  std::span<const ChangeEvent> events() const { return events_; }
  bool empty() const { return events_.empty(); }
  /// The cells of a row that starts at `first` (ChangeEvent::new_row/old_row).
  const CdcCell* row(uint32_t first) const { return cells_.data() + first; }
  std::string_view value(const CdcCell& cell) const {
    return std::string_view(values_).substr(cell.offset, cell.size);
  }
  /// Bytes held (values and bookkeeping), for batch budgets.
  size_t bytes() const {
    return values_.size() + cells_.size() * sizeof(CdcCell) + events_.size() * sizeof(ChangeEvent);
  }
  /// End LSN of the last whole transaction in the batch; 0 for copied rows
  /// and for a piece that holds no complete transaction.
  CdcLsn end_lsn() const { return end_lsn_; }
  /// Whether the batch ends at a transaction boundary. A transaction larger
  /// than the batch budget arrives in several pieces: every piece but the
  /// last is incomplete, and a transactional destination keeps one
  /// transaction open until a complete batch arrives.
  bool complete() const { return complete_; }
  /// Transactions (commits) the batch holds.
  int64_t transactions() const { return transactions_; }

  // Building.
  /// Appends a row of `cells` cells and returns its first cell index; fill
  /// each with AppendCell.
  uint32_t BeginRow() const { return static_cast<uint32_t>(cells_.size()); }
  void AppendCell(CdcCellKind kind, std::string_view text = {}) {
    cells_.push_back(CdcCell{kind, static_cast<uint32_t>(text.size()), values_.size()});
    values_.append(text);
  }
  void AppendEvent(ChangeEvent event) { events_.push_back(std::move(event)); }
  /// Closes the transaction whose events start at `first_event`: sets their
  /// end_lsn and makes the batch complete.
  void FinishTransaction(size_t first_event, CdcLsn end_lsn) {
    for (size_t i = first_event; i < events_.size(); ++i) events_[i].end_lsn = end_lsn;
    end_lsn_ = end_lsn;
    complete_ = true;
    ++transactions_;
  }
  void set_complete(bool complete) { complete_ = complete; }
  void Clear() {
    values_.clear();
    cells_.clear();
    events_.clear();
    end_lsn_ = 0;
    transactions_ = 0;
    complete_ = true;
  }

 private:
  std::string values_;
  std::vector<CdcCell> cells_;
  std::vector<ChangeEvent> events_;
  CdcLsn end_lsn_ = 0;
  int64_t transactions_ = 0;
  bool complete_ = true;
};

/// Writes the binary COPY stream of one table's initial copy (or of one
/// range of it) straight into the destination: a fast path for destinations
/// that speak PostgreSQL's COPY binary format. Used by one copy worker.
class CdcCopyWriter {
 public:
  virtual ~CdcCopyWriter() = default;
  /// Bytes of `COPY ... TO STDOUT` in the format the writer was opened
  /// with, in order, split anywhere.
  virtual Status Put(std::string_view bytes) = 0;
  /// Makes the rows durable; returns how many were written, or -1 when the
  /// writer does not count them.
  virtual Result<int64_t> Commit() = 0;
  virtual void Abort() = 0;
};

class CdcDestination {
 public:
  CdcDestination() = default;
  virtual ~CdcDestination() = default;
  CdcDestination(const CdcDestination&) = delete;
  CdcDestination& operator=(const CdcDestination&) = delete;

  /// Connects and checks the destination (called once before anything else).
  virtual Status Open() { return Status::OK(); }
  /// Empties the table's copy in the destination, creating it (shaped like
  /// `table`) when missing. Called before a table's initial copy.
  virtual Status TruncateTable(const CdcTable& table) = 0;
  /// Rows of the initial copy: every event is an insert.
  virtual Status WriteTableRows(const CdcTable& table, const ChangeBatch& rows) = 0;
  /// Whole transactions in commit order. `checkpoint` must run in the same
  /// transaction as the changes when TransactionDatabase() is not empty
  /// (exactly once); other destinations receive it empty.
  virtual Status WriteEvents(const ChangeBatch& events, const std::vector<CommitStatement>& checkpoint) = 0;

  /// The fast path of the initial copy; nullptr (the default) means rows
  /// come through WriteTableRows.
  /// `binary`: the stream is COPY's binary format, else its text format
  /// (used for arrays of user-defined types, whose binary form carries
  /// source type oids).
  virtual Result<std::unique_ptr<CdcCopyWriter>> OpenCopyWriter(const CdcTable& /*table*/, bool /*binary*/) {
    return std::unique_ptr<CdcCopyWriter>();
  }
  /// Called once before any write: whether sluice runs the checkpoint in
  /// the destination's transaction (exactly once) or after it (at least
  /// once, when the state store is elsewhere). In the second case a batch
  /// may arrive again after a crash, and the destination should apply it
  /// idempotently (the PostgreSQL destination then upserts inserts).
  virtual void SetExactlyOnce(bool /*exactly_once*/) {}
  /// Forgets pieces of an incomplete transaction written since the last
  /// complete batch (the stream restarts and will send them again).
  virtual void DiscardIncomplete() {}
  /// Several processes serve the pipeline (a hot standby): statements to
  /// run in every transaction the destination commits (truncates, copies,
  /// change batches, schema changes), just before COMMIT, when
  /// TransactionDatabase() is the state store's. Each must affect
  /// `expect_rows` rows, or the transaction rolls back and the call fails
  /// with StatusCode::kCancelled: this process lost its lease, and another
  /// one is active. `session_name` names the destination's database
  /// sessions (application_name), so that the next active process can end
  /// the ones a paused process left open, holding row locks. Called before
  /// any write, and again with an empty list when fencing is off.
  /// Destinations without transactions ignore it.
  virtual void SetFence(std::vector<CommitStatement> /*fence*/, std::string /*session_name*/) {}
  /// After WriteEvents failed with SchemaMismatch or DataError: the source
  /// table whose changes could not be applied (a schema change it cannot
  /// make, a request the receiver refused); it is then marked errored and
  /// the other tables go on.
  virtual std::optional<uint32_t> FailedTable() const { return std::nullopt; }
  /// "host:port/dbname" when WriteEvents can run checkpoint statements in
  /// its transaction; empty otherwise.
  virtual std::string TransactionDatabase() const { return ""; }
  /// Asks blocking calls to give up (shutdown); thread-safe, optional.
  virtual void Interrupt() {}
  virtual std::string Describe() const = 0;
  /// `sluice validate`: checks that the destination can be reached, without
  /// writing anything (called instead of Open). Optional.
  virtual Status Check() { return Status::OK(); }
  /// /ready: a cheap check that the destination answers now; callable from
  /// any thread while replication runs. Optional.
  virtual Status Ping() { return Status::OK(); }
};

// ---------------------------------------------------------------------------
// State

/// PostgreSQL's table synchronisation states (pg_subscription_rel.srsubstate)
/// plus sluice's errored state.
enum class TableSyncState : uint8_t {
  kInit,          // known, nothing copied yet
  kDataSync,      // initial copy running
  kFinishedCopy,  // copy done, not yet handed to the stream
  kSyncWait,      // waiting for the apply stream to reach the copy's snapshot
  kCatchup,       // the apply stream is catching up to the copy's snapshot
  kSyncDone,      // copy complete up to `lsn`; changes after it come from the stream
  kReady,         // streaming normally
  kErrored,       // failed; retried after a delay, then left for an operator
};
const char* TableSyncStateName(TableSyncState state);
Result<TableSyncState> ParseTableSyncState(std::string_view name);

struct TableSyncStatus {
  uint32_t table_id = 0;
  std::string table_name;  // "schema.name"
  TableSyncState state = TableSyncState::kInit;
  /// kSyncDone/kReady: the copy's snapshot point; the stream applies
  /// transactions that commit at or after it.
  CdcLsn lsn = 0;
  int attempts = 0;              // failed attempts so far (errored)
  std::string error;             // last error, for operators
  int64_t retry_at_unix_ms = 0;  // errored: when to try again; 0 = manual
};

/// Table schemas as last applied, so that a restart knows what the
/// destination looks like before the first Relation message arrives.
class CdcSchemaStore {
 public:
  virtual ~CdcSchemaStore() = default;
  virtual Result<std::vector<CdcTable>> LoadSchemas() = 0;
  virtual Status SaveSchema(const CdcTable& table) = 0;
};

/// Table states and the confirmed LSN of one pipeline.
class CdcStateStore {
 public:
  virtual ~CdcStateStore() = default;
  virtual Result<std::vector<TableSyncStatus>> LoadTableStates() = 0;
  virtual Status SaveTableState(const TableSyncStatus& status) = 0;
  /// The end of the last transaction the destination made durable; 0 when none.
  virtual Result<CdcLsn> LoadConfirmedLsn() = 0;
  /// Never moves backwards: a smaller value than the stored one is ignored.
  virtual Status SaveConfirmedLsn(CdcLsn lsn) = 0;

  /// "host:port/dbname" when the store is a PostgreSQL database that a
  /// destination transaction can write to; empty otherwise.
  virtual std::string TransactionDatabase() const { return ""; }
  /// Statements that do SaveConfirmedLsn / SaveTableState inside a
  /// destination transaction (only when TransactionDatabase() is set).
  /// The LSN statement affects no row if a newer LSN is stored, which rolls
  /// the destination transaction back: a second writer cannot apply twice.
  virtual std::vector<CommitStatement> ConfirmedLsnStatements(CdcLsn /*lsn*/) const { return {}; }
  virtual std::vector<CommitStatement> TableStateStatements(const TableSyncStatus& /*status*/) const {
    return {};
  }
};

/// Removes what a pipeline left behind.
class CdcCleanupStore {
 public:
  virtual ~CdcCleanupStore() = default;
  /// Forgets one table (it left the publication).
  virtual Status DropTable(uint32_t table_id) = 0;
  /// Forgets the whole pipeline: states, schemas, LSN.
  virtual Status DropPipeline() = 0;
};

/// The three together, as the built-in stores implement them.
class CdcStore : public CdcSchemaStore, public CdcStateStore, public CdcCleanupStore {
 public:
  virtual std::string Describe() const = 0;
};

}  // namespace sluice
