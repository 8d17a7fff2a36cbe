#include "sources/postgres_cdc/replicator.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <thread>

#include "sources/postgres_cdc/catalog.h"
#include "sources/postgres_cdc/pgoutput_decoder.h"
#include "sources/postgres_cdc/replication_connection.h"
#include "sources/postgres_cdc/stream_spill.h"
#include "sources/postgres_cdc/table_copier.h"

namespace sluice::cdc {
namespace {

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t UnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

CdcCellKind CellKind(TupleValueKind kind) {
  switch (kind) {
    case TupleValueKind::kNull:
      return CdcCellKind::kNull;
    case TupleValueKind::kUnchangedToast:
      return CdcCellKind::kUnchangedToast;
    default:
      return CdcCellKind::kText;
  }
}

}  // namespace

class Replicator::Session {
 public:
  explicit Session(Replicator* owner)
      : r_(*owner), o_(owner->options_), spill_(o_.spill_directory, o_.stream_memory_bytes) {}

  /// OK when cancelled or when a new session should start at once
  /// (restart() tells which); an error otherwise.
  Status Run();
  bool restart() const { return restart_; }

 private:
  bool cancelled() const { return o_.cancel != nullptr && o_.cancel->cancelled(); }
  Status Prepare();
  Status WaitForSlot(bool* exists);
  /// Whether the backend `pid` is a walsender of this pipeline (its application_name).
  bool HeldByThisPipeline(const std::string& pid);
  Status CopyWithSnapshot(const std::vector<std::shared_ptr<const CdcTable>>& tables,
                          const std::string& snapshot, Lsn point);
  Status SyncWithTemporarySlot(const std::vector<std::shared_ptr<const CdcTable>>& tables);
  Status SaveState(const TableSyncStatus& status);
  /// Puts a table into the errored state with its retry time.
  Status MarkErrored(uint32_t table_id, const Status& error);
  Status Stream();
  Status HandleCopyData(std::string_view data);
  Status HandleMessage(std::string_view raw, const PgoutputMessage& message);
  Status HandleRelation(const RelationMessage& relation);
  Status AppendTuple(const TupleData& tuple, const CdcTable& table, uint32_t* first);
  /// Whether a change of `table_id` in the current transaction is applied;
  /// may ask for a restart (a table the session does not know).
  bool Applies(uint32_t table_id);
  Status AddChange(const PgoutputMessage& message);
  Status BeginTxn(Lsn commit_lsn, PgTimestamp time, Xid xid);
  Status CommitTxn(Lsn end_lsn);
  Status Flush(bool complete);
  Status SendStatus(bool reply_requested = false);
  Status CheckPublication();
  void DueErrored(std::vector<uint32_t>* due) const;

  Replicator& r_;
  const ReplicatorOptions& o_;
  std::unique_ptr<SourceCatalog> catalog_;
  std::unique_ptr<ReplicationConnection> repl_;
  std::map<uint32_t, TableSyncStatus> states_;
  std::map<uint32_t, std::shared_ptr<const CdcTable>> relations_;
  PgoutputDecoder decoder_;
  PgoutputMessage message_;
  StreamSpill spill_;
  ChangeBatch batch_;
  int64_t batch_started_ms_ = 0;
  bool in_txn_ = false;
  bool skip_txn_ = false;
  Lsn txn_commit_;
  PgTimestamp txn_time_ = 0;
  Xid txn_xid_ = 0;
  size_t txn_first_event_ = 0;
  Lsn confirmed_;
  Lsn received_;
  Lsn start_;
  Lsn slot_confirmed_;
  bool wrote_incomplete_ = false;
  bool restart_ = false;
  std::optional<Xid> stream_xid_;
};

Status Replicator::Session::SaveState(const TableSyncStatus& status) {
  states_[status.table_id] = status;
  r_.PublishStates(states_);
  return r_.store_->SaveTableState(status);
}

Status Replicator::Session::MarkErrored(uint32_t table_id, const Status& error) {
  TableSyncStatus status = states_[table_id];
  status.table_id = table_id;
  status.state = TableSyncState::kErrored;
  status.attempts += 1;
  status.error = error.message();
  status.retry_at_unix_ms =
      status.attempts < o_.table_error_retry_max_attempts ? UnixMs() + o_.table_error_retry_delay_ms : 0;
  if (status.retry_at_unix_ms != 0) {
    spdlog::error("pipeline {}: table {} errored (attempt {} of {}; retry in {} ms): {}", o_.pipeline,
                  status.table_name, status.attempts, o_.table_error_retry_max_attempts,
                  o_.table_error_retry_delay_ms, error.message());
  } else {
    spdlog::error(
        "pipeline {}: table {} errored after {} attempts; no more retries (set its state to 'init' in "
        "the state store to try again): {}",
        o_.pipeline, status.table_name, status.attempts, error.message());
  }
  return SaveState(status);
}

/// What the pipeline's walsender is called in pg_stat_activity
/// (application_name, at most 63 bytes).
static std::string WalsenderName(const std::string& pipeline) { return ("sluice " + pipeline).substr(0, 63); }

bool Replicator::Session::HeldByThisPipeline(const std::string& pid) {
  auto rows = catalog_->connection()->Query(
      "SELECT application_name FROM pg_stat_activity WHERE pid = $1::int", {pid});
  return rows.ok() && !rows->empty() && (*rows)[0][0].value_or("") == WalsenderName(o_.pipeline);
}

Status Replicator::Session::WaitForSlot(bool* exists) {
  // A walsender of a process that just died may hold the slot for a moment.
  const int64_t give_up = SteadyMs() + 15000;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(
        auto rows, catalog_->connection()->Query(
                       "SELECT active_pid, wal_status, plugin, database = current_database(), slot_type, "
                       "confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = $1",
                       {o_.slot}));
    if (rows.empty()) {
      *exists = false;
      return Status::OK();
    }
    const auto& row = rows[0];
    if (row[4].value_or("") != "logical" || row[2].value_or("") != "pgoutput" ||
        row[3].value_or("f") != "t") {
      return Status::InvalidArgument("replication slot " + o_.slot +
                                     " exists but is not a pgoutput slot of this "
                                     "database; choose another [source] slot");
    }
    if (row[1].value_or("") == "lost") {
      return Status::InvalidArgument("replication slot " + o_.slot +
                                     " was invalidated: the server removed WAL it still needed "
                                     "(max_slot_wal_keep_size). Drop the slot (SELECT "
                                     "pg_drop_replication_slot('" +
                                     o_.slot + "')) and start again for a new initial copy");
    }
    if (!row[0]) {
      *exists = true;
      if (row[5]) {
        auto confirmed = Lsn::Parse(*row[5]);
        if (confirmed.ok()) slot_confirmed_ = *confirmed;
      }
      return Status::OK();
    }
    if (o_.may_take_slot && HeldByThisPipeline(*row[0]) && o_.may_take_slot()) {
      // This process holds the pipeline's lease: the slot's holder is this
      // pipeline's walsender for a process that lost it (stopped, cut off),
      // which would keep the slot until wal_sender_timeout. A slot held by
      // anything else (another pipeline given the same slot) is waited for.
      spdlog::info("pipeline {}: slot {} is held by PID {} (a previous active process); ending that backend",
                   o_.pipeline, o_.slot, *row[0]);
      (void)catalog_->connection()->Query("SELECT pg_terminate_backend($1::int)", {*row[0]});
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (SteadyMs() > give_up || cancelled()) {
      return Status::InvalidArgument("replication slot " + o_.slot + " is in use by another process (PID " +
                                     *row[0] + "); stop it, or give this pipeline its own [source] slot");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
}

Status Replicator::Session::CopyWithSnapshot(const std::vector<std::shared_ptr<const CdcTable>>& tables,
                                             const std::string& snapshot, Lsn point) {
  for (const auto& table : tables) {
    TableSyncStatus status = states_[table->id];
    status.table_id = table->id;
    status.table_name = table->QualifiedName();
    status.state = TableSyncState::kDataSync;
    status.lsn = 0;
    SLUICE_RETURN_IF_ERROR(SaveState(status));
    SLUICE_RETURN_IF_ERROR(r_.store_->SaveSchema(*table));
  }
  CopyOptions copy;
  copy.url = o_.url;
  copy.snapshot = snapshot;
  copy.workers = o_.max_table_sync_workers;
  copy.batch_bytes = o_.batch_max_bytes;
  copy.cancel = o_.cancel;
  std::mutex mu;
  auto started = SteadyMs();
  uint32_t failed_table = 0;
  Status copied = CopyTables(
      copy, tables, r_.destination_,
      [&](const CdcTable& table, int64_t rows) -> Status {
        std::lock_guard lock(mu);
        r_.stats_.copied_rows += rows;
        spdlog::info("pipeline {}: copied {} rows of {} (snapshot at {})", o_.pipeline, rows,
                     table.QualifiedName(), point.ToString());
        TableSyncStatus status = states_[table.id];
        status.state = TableSyncState::kFinishedCopy;
        SLUICE_RETURN_IF_ERROR(SaveState(status));
        // The stream, which starts at or before `point`, catches the table up.
        status.state = TableSyncState::kSyncDone;
        status.lsn = point.value();
        status.attempts = 0;
        status.error.clear();
        status.retry_at_unix_ms = 0;
        return SaveState(status);
      },
      &failed_table);
  if (!copied.ok() && !copied.retryable() && !cancelled() && copied.code() != StatusCode::kCancelled &&
      failed_table != 0 && states_.contains(failed_table)) {
    // One table's problem (its destination cannot take it): that table
    // errors and waits for its retry; the others go on.
    restart_ = true;
    return MarkErrored(failed_table, copied);
  }
  if (copied.ok()) {
    spdlog::info("pipeline {}: initial copy of {} table(s) done in {:.1f} s", o_.pipeline, tables.size(),
                 (SteadyMs() - started) / 1000.0);
  }
  return copied;
}

Status Replicator::Session::SyncWithTemporarySlot(
    const std::vector<std::shared_ptr<const CdcTable>>& tables) {
  static std::atomic<int> counter{0};
  SLUICE_ASSIGN_OR_RETURN(auto sync_conn, ReplicationConnection::Connect(o_.url));
  std::string name = "sluice_sync_" + std::to_string(getpid()) + "_" + std::to_string(++counter);
  SLUICE_ASSIGN_OR_RETURN(CreatedSlot slot, sync_conn->CreateSlot(name, /*temporary=*/true, /*export=*/true));
  std::string names;
  for (const auto& table : tables) names += (names.empty() ? "" : ", ") + table->QualifiedName();
  spdlog::info("pipeline {}: copying {} from a new snapshot at {}", o_.pipeline, names,
               slot.consistent_point.ToString());
  return CopyWithSnapshot(tables, slot.snapshot_name, slot.consistent_point);
}

void Replicator::Session::DueErrored(std::vector<uint32_t>* due) const {
  const int64_t now = UnixMs();
  for (const auto& [id, status] : states_) {
    if (status.state == TableSyncState::kErrored && status.retry_at_unix_ms != 0 &&
        status.retry_at_unix_ms <= now && status.attempts < o_.table_error_retry_max_attempts) {
      due->push_back(id);
    }
  }
}

Status Replicator::Session::Prepare() {
  SLUICE_ASSIGN_OR_RETURN(catalog_, SourceCatalog::Connect(o_.url));
  SLUICE_RETURN_IF_ERROR(catalog_->CheckServer());
  bool created_publication = false;
  SLUICE_RETURN_IF_ERROR(catalog_->EnsurePublication(o_.publication, o_.tables, true, &created_publication));
  // A start that fails before its slot exists leaves nothing behind: the
  // publication it created goes again.
  bool slot_exists = false;
  struct DropUnlessStarted {
    SourceCatalog* catalog;
    const std::string& publication;
    const bool& created;
    const bool& slot_exists;
    ~DropUnlessStarted() {
      if (created && !slot_exists) (void)catalog->DropPublication(publication);
    }
  } cleanup{catalog_.get(), o_.publication, created_publication, slot_exists};
  SLUICE_ASSIGN_OR_RETURN(auto stored_states, r_.store_->LoadTableStates());
  for (auto& status : stored_states) states_[status.table_id] = std::move(status);
  SLUICE_ASSIGN_OR_RETURN(CdcLsn stored, r_.store_->LoadConfirmedLsn());
  confirmed_ = Lsn(stored);

  bool exists = false;
  SLUICE_RETURN_IF_ERROR(WaitForSlot(&exists));
  slot_exists = exists;
  SLUICE_ASSIGN_OR_RETURN(repl_, ReplicationConnection::Connect(o_.url, WalsenderName(o_.pipeline)));
  SLUICE_ASSIGN_OR_RETURN(auto published, catalog_->PublicationTables(o_.publication));
  std::set<uint32_t> published_ids;
  for (const auto& table : published) published_ids.insert(table.id);
  for (auto it = states_.begin(); it != states_.end();) {
    if (!published_ids.contains(it->first)) {
      spdlog::info("pipeline {}: {} left the publication; no longer replicated", o_.pipeline,
                   it->second.table_name);
      SLUICE_RETURN_IF_ERROR(r_.store_->DropTable(it->first));
      it = states_.erase(it);
    } else {
      ++it;
    }
  }

  r_.PublishStates(states_);
  std::vector<uint32_t> due;
  DueErrored(&due);
  std::vector<std::shared_ptr<const CdcTable>> to_copy;
  for (const auto& table : published) {
    auto it = states_.find(table.id);
    if (exists && it == states_.end() && !states_.empty()) {
      spdlog::info("pipeline {}: {} joined the publication", o_.pipeline, table.QualifiedName());
    }
    bool copy = !exists || it == states_.end();
    if (!copy) {
      TableSyncState state = it->second.state;
      copy = state != TableSyncState::kSyncDone && state != TableSyncState::kReady &&
             state != TableSyncState::kErrored;
      copy = copy || std::find(due.begin(), due.end(), table.id) != due.end();
    }
    if (!copy) continue;
    auto described = catalog_->DescribeTable(table.id);
    if (!described.ok()) {
      // At the first start a bad table stops everything (fix the config);
      // one that joins a running pipeline errors alone.
      if (!exists || states_.empty() || described.status().retryable()) return described.status();
      states_[table.id].table_name = table.QualifiedName();
      SLUICE_RETURN_IF_ERROR(MarkErrored(table.id, described.status()));
      continue;
    }
    to_copy.push_back(*described);
  }

  if (!exists) {
    SLUICE_ASSIGN_OR_RETURN(CreatedSlot slot,
                            repl_->CreateSlot(o_.slot, /*temporary=*/false, /*export=*/true));
    slot_exists = true;
    spdlog::info("pipeline {}: created replication slot {} at {}; copying {} table(s) with {} worker(s)",
                 o_.pipeline, o_.slot, slot.consistent_point.ToString(), to_copy.size(),
                 o_.max_table_sync_workers);
    SLUICE_RETURN_IF_ERROR(CopyWithSnapshot(to_copy, slot.snapshot_name, slot.consistent_point));
    if (restart_) return Status::OK();
    start_ = slot.consistent_point;
    if (confirmed_ > start_) confirmed_ = Lsn();  // from an earlier slot of another cluster
  } else {
    if (!to_copy.empty()) SLUICE_RETURN_IF_ERROR(SyncWithTemporarySlot(to_copy));
    // The server starts at the later of the two anyway.
    start_ = std::max(confirmed_, slot_confirmed_);
    if (restart_) return Status::OK();
  }
  return Status::OK();
}

Status Replicator::Session::Run() {
  Status prepared = Prepare();
  if (!prepared.ok()) return prepared;
  if (cancelled() || restart_) return Status::OK();
  SLUICE_RETURN_IF_ERROR(repl_->StartStreaming(o_.slot, start_, o_.publication));
  spdlog::info("pipeline {}: streaming from slot {} at {} ({} table(s))", o_.pipeline, o_.slot,
               start_.ToString(), states_.size());
  Status streamed = Stream();
  if (!streamed.ok() || restart_ || cancelled()) {
    // Whatever was not complete is streamed again by the next session.
    if (wrote_incomplete_) r_.destination_->DiscardIncomplete();
  }
  return streamed;
}

Status Replicator::Session::SendStatus(bool reply_requested) {
  r_.stats_.confirmed_lsn = confirmed_.value();
  return repl_->SendStatus(std::max(received_, confirmed_), confirmed_, reply_requested);
}

Status Replicator::Session::CheckPublication() {
  SLUICE_ASSIGN_OR_RETURN(auto published, catalog_->PublicationTables(o_.publication));
  std::set<uint32_t> ids;
  for (const auto& table : published) {
    ids.insert(table.id);
    if (!states_.contains(table.id)) restart_ = true;
  }
  for (const auto& [id, status] : states_) {
    if (!ids.contains(id)) restart_ = true;
  }
  std::vector<uint32_t> due;
  DueErrored(&due);
  if (!due.empty()) restart_ = true;
  return Status::OK();
}

Status Replicator::Session::Stream() {
  int64_t last_status = SteadyMs();
  int64_t last_refresh = SteadyMs();
  while (true) {
    if (cancelled()) {
      if (!in_txn_) SLUICE_RETURN_IF_ERROR(Flush(true));
      (void)SendStatus();
      return Status::OK();
    }
    if (restart_) {
      // Nothing more may be received (or confirmed) in this session: what
      // is not complete is streamed again by the next one.
      if (!in_txn_ && !stream_xid_ && spill_.empty()) SLUICE_RETURN_IF_ERROR(Flush(true));
      return Status::OK();
    }
    int timeout = batch_.transactions() > 0 ? 50 : 500;
    SLUICE_ASSIGN_OR_RETURN(auto data, repl_->Receive(timeout));
    if (data) SLUICE_RETURN_IF_ERROR(HandleCopyData(*data));
    if (restart_) continue;
    const int64_t now = SteadyMs();
    if (!in_txn_ && batch_.transactions() > 0 && now - batch_started_ms_ >= o_.batch_max_fill_ms) {
      SLUICE_RETURN_IF_ERROR(Flush(true));
    }
    if (now - last_status >= o_.status_interval_ms) {
      SLUICE_RETURN_IF_ERROR(SendStatus());
      last_status = now;
    }
    if (now - last_refresh >= o_.publication_refresh_ms && !in_txn_ && spill_.empty()) {
      SLUICE_RETURN_IF_ERROR(CheckPublication());
      last_refresh = now;
    }
  }
}

Status Replicator::Session::HandleCopyData(std::string_view data) {
  SLUICE_ASSIGN_OR_RETURN(ReplicationMessage message, ParseReplicationMessage(data));
  if (auto* keepalive = std::get_if<PrimaryKeepalive>(&message)) {
    received_ = std::max(received_, keepalive->wal_end);
    // Idle: nothing received is waiting for the destination, so the server
    // may forget everything up to its WAL end (unpublished tables' WAL).
    if (!restart_ && !in_txn_ && batch_.transactions() == 0 && batch_.empty() && !wrote_incomplete_ &&
        spill_.empty() && !stream_xid_ && keepalive->wal_end > confirmed_) {
      confirmed_ = keepalive->wal_end;
      return SendStatus();
    }
    if (keepalive->reply_requested) return SendStatus();
    return Status::OK();
  }
  const XLogData& xlog = std::get<XLogData>(message);
  received_ = std::max(received_, xlog.wal_start);
  SLUICE_RETURN_IF_ERROR(decoder_.Decode(xlog.data, &message_));
  return HandleMessage(xlog.data, message_);
}

Status Replicator::Session::BeginTxn(Lsn commit_lsn, PgTimestamp time, Xid xid) {
  in_txn_ = true;
  txn_commit_ = commit_lsn;
  txn_time_ = time;
  txn_xid_ = xid;
  // Already applied before a restart: the destination has it.
  skip_txn_ = confirmed_.valid() && commit_lsn < confirmed_;
  txn_first_event_ = batch_.events().size();
  return Status::OK();
}

Status Replicator::Session::CommitTxn(Lsn end_lsn) {
  in_txn_ = false;
  if (skip_txn_) return Status::OK();
  // The fill time counts from the batch's first complete transaction.
  if (batch_.transactions() == 0 && !wrote_incomplete_) batch_started_ms_ = SteadyMs();
  batch_.FinishTransaction(txn_first_event_, end_lsn.value());
  r_.stats_.transactions++;
  r_.stats_.last_commit_time_us =
      PgTimestampToTimePoint(txn_time_).time_since_epoch() / std::chrono::microseconds(1);
  if (static_cast<int64_t>(batch_.events().size()) >= o_.batch_max_rows ||
      static_cast<int64_t>(batch_.bytes()) >= o_.batch_max_bytes) {
    return Flush(true);
  }
  return Status::OK();
}

Status Replicator::Session::HandleMessage(std::string_view raw, const PgoutputMessage& message) {
  if (const auto* start = std::get_if<StreamStartMessage>(&message)) {
    stream_xid_ = start->xid;
    return Status::OK();
  }
  if (std::holds_alternative<StreamStopMessage>(message)) {
    stream_xid_.reset();
    return Status::OK();
  }
  if (const auto* abort = std::get_if<StreamAbortMessage>(&message)) {
    spill_.Abort(abort->xid, abort->subxid);
    return Status::OK();
  }
  if (const auto* commit = std::get_if<StreamCommitMessage>(&message)) {
    SLUICE_RETURN_IF_ERROR(BeginTxn(commit->commit_lsn, commit->commit_time, commit->xid));
    PgoutputDecoder replay;
    replay.EnterStream(commit->xid);
    PgoutputMessage replayed;
    Status status = spill_.Replay(commit->xid, [&](std::string_view stored) -> Status {
      // A long replay still stops promptly; the transaction is streamed again.
      if (cancelled()) return Status::Cancelled("stopped while applying a streamed transaction");
      SLUICE_RETURN_IF_ERROR(replay.Decode(stored, &replayed));
      if (const auto* relation = std::get_if<RelationMessage>(&replayed)) return HandleRelation(*relation);
      if (skip_txn_) return Status::OK();
      return AddChange(replayed);
    });
    r_.stats_.spilled_bytes = spill_.spilled_bytes();
    SLUICE_RETURN_IF_ERROR(status);
    if (restart_) return Status::OK();
    return CommitTxn(commit->end_lsn);
  }
  if (stream_xid_) {
    // Inside a stream block: keep it until its transaction commits.
    std::optional<Xid> subxid;
    std::visit(
        [&](const auto& m) {
          if constexpr (requires { m.stream_xid; }) subxid = m.stream_xid;
        },
        message);
    return spill_.Append(*stream_xid_, subxid.value_or(*stream_xid_), raw);
  }
  if (const auto* begin = std::get_if<BeginMessage>(&message))
    return BeginTxn(begin->final_lsn, begin->commit_time, begin->xid);
  if (const auto* commit = std::get_if<CommitMessage>(&message)) return CommitTxn(commit->end_lsn);
  if (const auto* relation = std::get_if<RelationMessage>(&message)) return HandleRelation(*relation);
  if (skip_txn_ || !in_txn_) return Status::OK();
  return AddChange(message);
}

Status Replicator::Session::HandleRelation(const RelationMessage& relation) {
  auto table = std::make_shared<CdcTable>();
  table->id = relation.relation_id;
  table->schema = relation.namespace_name.empty() ? "pg_catalog" : std::string(relation.namespace_name);
  table->name = std::string(relation.relation_name);
  switch (relation.replica_identity) {
    case ReplicaIdentity::kFull:
      table->identity = CdcIdentity::kFull;
      break;
    case ReplicaIdentity::kIndex:
      table->identity = CdcIdentity::kIndex;
      break;
    case ReplicaIdentity::kNothing:
      table->identity = CdcIdentity::kNothing;
      break;
    default:
      table->identity = CdcIdentity::kDefault;
  }
  for (const RelationColumn& rc : relation.columns) {
    CdcColumn column;
    column.name = std::string(rc.name);
    column.type_oid = rc.type_oid;
    column.type_modifier = rc.type_modifier;
    column.key = rc.is_key();
    SLUICE_RETURN_IF_ERROR(catalog_->NameColumnType(&column));
    table->columns.push_back(std::move(column));
  }
  auto& current = relations_[table->id];
  if (current && *current == *table) return Status::OK();
  if (current) {
    spdlog::info("pipeline {}: schema of {} changed ({} -> {} columns)", o_.pipeline, table->QualifiedName(),
                 current->columns.size(), table->columns.size());
  }
  current = std::move(table);
  return r_.store_->SaveSchema(*current);
}

bool Replicator::Session::Applies(uint32_t table_id) {
  auto it = states_.find(table_id);
  if (it == states_.end()) {
    restart_ = true;  // joined the publication: copy it first
    return false;
  }
  const TableSyncStatus& status = it->second;
  switch (status.state) {
    case TableSyncState::kReady:
      return true;
    case TableSyncState::kSyncDone:
      return txn_commit_.value() >= status.lsn;
    case TableSyncState::kErrored:
      return false;
    default:
      restart_ = true;
      return false;
  }
}

Status Replicator::Session::AppendTuple(const TupleData& tuple, const CdcTable& table, uint32_t* first) {
  if (tuple.values.size() != table.columns.size()) {
    return Status::DataError("change for " + table.QualifiedName() + " at " + txn_commit_.ToString() +
                             " has " + std::to_string(tuple.values.size()) + " values but the table has " +
                             std::to_string(table.columns.size()) + " columns");
  }
  *first = batch_.BeginRow();
  for (const TupleValue& value : tuple.values) batch_.AppendCell(CellKind(value.kind), value.data);
  return Status::OK();
}

Status Replicator::Session::AddChange(const PgoutputMessage& message) {
  auto event_for = [&](uint32_t relation_id, ChangeOp op, ChangeEvent* event) -> Result<bool> {
    if (!Applies(relation_id)) return false;
    auto it = relations_.find(relation_id);
    if (it == relations_.end()) {
      return Status::Internal("change for relation " + std::to_string(relation_id) +
                              " arrived before its Relation message");
    }
    event->op = op;
    event->table = it->second;
    event->xid = txn_xid_;
    event->commit_lsn = txn_commit_.value();
    event->commit_time_us =
        PgTimestampToTimePoint(txn_time_).time_since_epoch() / std::chrono::microseconds(1);
    return true;
  };
  ChangeEvent event;
  if (const auto* insert = std::get_if<InsertMessage>(&message)) {
    SLUICE_ASSIGN_OR_RETURN(bool applies, event_for(insert->relation_id, ChangeOp::kInsert, &event));
    if (!applies) return Status::OK();
    SLUICE_RETURN_IF_ERROR(AppendTuple(insert->new_tuple, *event.table, &event.new_row));
  } else if (const auto* update = std::get_if<UpdateMessage>(&message)) {
    SLUICE_ASSIGN_OR_RETURN(bool applies, event_for(update->relation_id, ChangeOp::kUpdate, &event));
    if (!applies) return Status::OK();
    if (update->old_kind != OldTupleKind::kNone) {
      SLUICE_RETURN_IF_ERROR(AppendTuple(update->old_tuple, *event.table, &event.old_row));
      event.old_is_full = update->old_kind == OldTupleKind::kFull;
    }
    SLUICE_RETURN_IF_ERROR(AppendTuple(update->new_tuple, *event.table, &event.new_row));
  } else if (const auto* del = std::get_if<DeleteMessage>(&message)) {
    SLUICE_ASSIGN_OR_RETURN(bool applies, event_for(del->relation_id, ChangeOp::kDelete, &event));
    if (!applies) return Status::OK();
    SLUICE_RETURN_IF_ERROR(AppendTuple(del->old_tuple, *event.table, &event.old_row));
    event.old_is_full = del->old_kind == OldTupleKind::kFull;
  } else if (const auto* truncate = std::get_if<TruncateMessage>(&message)) {
    for (Oid id : truncate->relation_ids) {
      ChangeEvent one;
      SLUICE_ASSIGN_OR_RETURN(bool applies, event_for(id, ChangeOp::kTruncate, &one));
      if (!applies) continue;
      one.truncate_options = truncate->options;
      batch_.AppendEvent(std::move(one));
      r_.stats_.events++;
    }
    return Status::OK();
  } else {
    return Status::OK();  // Origin, Type, logical messages
  }
  batch_.AppendEvent(std::move(event));
  r_.stats_.events++;
  if (static_cast<int64_t>(batch_.bytes()) >= o_.batch_max_bytes) {
    // A transaction larger than a batch: hand over a piece, keep the
    // destination's transaction open.
    SLUICE_RETURN_IF_ERROR(Flush(false));
    txn_first_event_ = 0;
  }
  return Status::OK();
}

Status Replicator::Session::Flush(bool complete) {
  if (batch_.empty() && (!complete || (batch_.transactions() == 0 && !wrote_incomplete_)))
    return Status::OK();
  const Lsn end(batch_.end_lsn());
  if (complete && batch_.empty() && !wrote_incomplete_) {
    // Only transactions of filtered changes: nothing to write.
    if (end > confirmed_) confirmed_ = end;
    batch_.Clear();
    return SendStatus();
  }
  batch_.set_complete(complete);
  std::vector<CommitStatement> checkpoint;
  if (complete && r_.exactly_once_) checkpoint = r_.store_->ConfirmedLsnStatements(end.value());
  Status written = r_.destination_->WriteEvents(batch_, checkpoint);
  if (!written.ok()) {
    // A change the destination cannot apply to one table (a schema change,
    // a request the receiver refused): that table goes to errored.
    if (written.code() == StatusCode::kSchemaMismatch || written.code() == StatusCode::kDataError) {
      if (auto table = r_.destination_->FailedTable(); table && states_.contains(*table)) {
        r_.destination_->DiscardIncomplete();
        wrote_incomplete_ = false;
        batch_.Clear();
        SLUICE_RETURN_IF_ERROR(MarkErrored(*table, written));
        restart_ = true;
        return Status::OK();
      }
    }
    return written;
  }
  r_.stats_.batches++;
  if (!complete) {
    wrote_incomplete_ = true;
    batch_.Clear();
    return Status::OK();
  }
  if (!r_.exactly_once_) SLUICE_RETURN_IF_ERROR(r_.store_->SaveConfirmedLsn(end.value()));
  wrote_incomplete_ = false;
  batch_.Clear();
  if (end > confirmed_) confirmed_ = end;
  for (auto& [id, status] : states_) {
    if (status.state == TableSyncState::kSyncDone && status.lsn <= confirmed_.value()) {
      TableSyncStatus ready = status;
      ready.state = TableSyncState::kReady;
      SLUICE_RETURN_IF_ERROR(r_.store_->SaveTableState(ready));
      status = ready;
      r_.PublishStates(states_);
    }
  }
  return SendStatus();
}

Replicator::Replicator(ReplicatorOptions options, CdcDestination* destination, CdcStore* store)
    : options_(std::move(options)), destination_(destination), store_(store) {}

Replicator::~Replicator() = default;

void Replicator::PublishStates(const std::map<uint32_t, TableSyncStatus>& states) {
  std::lock_guard lock(states_mu_);
  states_.clear();
  for (const auto& [id, status] : states) states_.push_back(status);
}

std::vector<TableSyncStatus> Replicator::TableStates() const {
  std::lock_guard lock(states_mu_);
  return states_;
}

Status Replicator::Run() {
  SLUICE_RETURN_IF_ERROR(destination_->Open());
  const std::string dest_db = destination_->TransactionDatabase();
  exactly_once_ = !dest_db.empty() && dest_db == store_->TransactionDatabase();
  destination_->SetExactlyOnce(exactly_once_);
  if (!options_.fence.empty()) {
    if (dest_db == options_.fence_database) {
      destination_->SetFence(options_.fence, options_.session_name);
    } else {
      destination_->SetFence({}, "");
      spdlog::warn(
          "pipeline {}: the state store is not the destination's database, so a process that lost its lease "
          "cannot be fenced inside the destination's transactions (see the README, Several processes)",
          options_.pipeline);
    }
  }
  spdlog::info("pipeline {}: replicating publication {} into {} ({}; state in {})", options_.pipeline,
               options_.publication, destination_->Describe(),
               exactly_once_ ? "exactly once" : "at least once", store_->Describe());
  // Reconnects until stopped: only the policy's delays are used.
  RetryPolicy policy = options_.reconnect;
  policy.max_attempts = 0;
  policy.max_elapsed = std::chrono::hours(24 * 365 * 100);
  auto backoff = std::make_unique<RetryState>(policy);
  auto cancelled = [&] { return options_.cancel != nullptr && options_.cancel->cancelled(); };
  while (!cancelled()) {
    Session session(this);
    Status status = session.Run();
    if (cancelled()) return Status::OK();
    if (status.ok()) {
      backoff = std::make_unique<RetryState>(policy);
      // A table joined, left or errored: start over (almost) at once.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    if (!status.retryable()) return status;
    stats_.reconnects++;
    std::chrono::milliseconds wait = backoff->NextDelay();
    if (wait.count() < 0) wait = policy.max_delay;
    spdlog::warn("pipeline {}: {}; reconnecting in {:.1f} s", options_.pipeline, status.message(),
                 wait.count() / 1000.0);
    if (!SleepUnlessCancelled(wait, options_.cancel)) return Status::OK();
  }
  return Status::OK();
}

}  // namespace sluice::cdc
