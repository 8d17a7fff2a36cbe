#include "destinations/postgres/postgres_cdc_destination.h"

#include <map>
#include <mutex>
#include <set>
#include <unordered_set>

#include "io/postgres/pg_connection.h"

namespace sluice::destinations {
namespace {

using Q = PgConnection;

void AppendCopyText(std::string_view value, std::string* out) {
  for (char c : value) {
    switch (c) {
      case '\\':
        out->append("\\\\");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      default:
        out->push_back(c);
    }
  }
}

void AppendCell(const ChangeBatch& batch, const CdcCell& cell, std::string* out) {
  if (cell.kind == CdcCellKind::kText) {
    AppendCopyText(batch.value(cell), out);
  } else {
    out->append("\\N");
  }
}

/// Columns that identify a row: the key columns, or all for FULL.
std::vector<size_t> KeyColumns(const CdcTable& table) {
  std::vector<size_t> keys;
  for (size_t i = 0; i < table.columns.size(); ++i) {
    if (table.identity == CdcIdentity::kFull || table.columns[i].key) keys.push_back(i);
  }
  return keys;
}

/// Runs the fence (CdcDestination::SetFence) in `conn`'s open transaction.
Status RunFence(PgConnection& conn, const std::vector<CommitStatement>& fence) {
  for (const auto& statement : fence) {
    SLUICE_ASSIGN_OR_RETURN(int64_t affected, conn.Execute(statement.sql, statement.params));
    if (statement.expect_rows >= 0 && affected != statement.expect_rows) {
      return Status::Cancelled(
          "this process no longer holds the pipeline's lease (another process took over); its transaction "
          "in " +
          conn.where() + " was rolled back");
    }
  }
  return Status::OK();
}

class PgCopyWriter : public CdcCopyWriter {
 public:
  PgCopyWriter(std::unique_ptr<PgConnection> conn, std::vector<CommitStatement> fence)
      : conn_(std::move(conn)), fence_(std::move(fence)) {}
  Status Put(std::string_view bytes) override { return conn_->PutCopyData(bytes); }
  Result<int64_t> Commit() override {
    SLUICE_RETURN_IF_ERROR(conn_->EndCopy());
    int64_t rows = conn_->copied_rows();
    Status fenced = RunFence(*conn_, fence_);
    if (!fenced.ok()) {
      (void)conn_->Exec("ROLLBACK");
      return fenced;
    }
    SLUICE_RETURN_IF_ERROR(conn_->Exec("COMMIT"));
    return rows;
  }
  void Abort() override {
    conn_->CancelCopy("copy aborted");
    (void)conn_->Exec("ROLLBACK");
  }

 private:
  std::unique_ptr<PgConnection> conn_;
  std::vector<CommitStatement> fence_;
};

class PostgresCdcDestination : public CdcDestination {
 public:
  /// Connects and checks the server, as Open does; writes nothing.
  Status Check() override { return Open(); }

  PostgresCdcDestination(std::string url, std::string schema)
      : url_(std::move(url)), schema_(std::move(schema)) {}

  Status Open() override {
    // Also when a process becomes active again: nothing of an earlier
    // session (its temporary staging tables, an open transaction) is left.
    std::lock_guard lock(mu_);
    in_txn_ = false;
    applied_.clear();
    staging_.clear();
    SLUICE_ASSIGN_OR_RETURN(conn_, Connect());
    return conn_->Exec("CREATE SCHEMA IF NOT EXISTS " + Q::QuoteIdent(schema_));
  }

  std::string Describe() const override {
    return "postgres schema " + schema_ + (conn_ ? " at " + conn_->where() : "");
  }
  std::string TransactionDatabase() const override { return conn_ ? conn_->where() : ""; }
  std::optional<uint32_t> FailedTable() const override { return failed_table_; }
  void SetExactlyOnce(bool exactly_once) override { exactly_once_ = exactly_once; }
  void SetFence(std::vector<CommitStatement> fence, std::string session_name) override {
    {
      std::lock_guard lock(fence_mu_);
      fence_ = std::move(fence);
      session_name_ = session_name;
    }
    // The connection Open() made; the others get the name when they connect.
    std::lock_guard lock(mu_);
    if (!session_name.empty() && conn_ && conn_->alive()) {
      (void)conn_->Execute("SELECT set_config('application_name', $1, false)", {session_name});
    }
  }

  Status TruncateTable(const CdcTable& table) override {
    std::lock_guard lock(mu_);
    SLUICE_RETURN_IF_ERROR(EnsureConnected());
    SLUICE_RETURN_IF_ERROR(conn_->Exec("BEGIN"));
    Status status = EnsureTable(table);
    if (status.ok()) status = conn_->Exec("TRUNCATE " + Target(table));
    if (status.ok()) status = RunFence(*conn_, Fence());
    if (status.ok()) status = conn_->Exec("COMMIT");
    if (!status.ok()) {
      (void)conn_->Exec("ROLLBACK");
      applied_.erase(table.id);
    }
    return status;
  }

  Result<std::unique_ptr<CdcCopyWriter>> OpenCopyWriter(const CdcTable& table, bool binary) override {
    SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
    SLUICE_RETURN_IF_ERROR(conn->Exec("BEGIN"));
    SLUICE_RETURN_IF_ERROR(conn->CopyIn("COPY " + Target(table) + " (" + ColumnList(table) + ") FROM STDIN" +
                                        (binary ? " (FORMAT binary)" : "")));
    return std::unique_ptr<CdcCopyWriter>(new PgCopyWriter(std::move(conn), Fence()));
  }

  Status WriteTableRows(const CdcTable& table, const ChangeBatch& rows) override {
    SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
    std::string data;
    for (const ChangeEvent& event : rows.events()) AppendRow(rows, table, event.new_row, &data);
    SLUICE_RETURN_IF_ERROR(conn->Exec("BEGIN"));
    SLUICE_RETURN_IF_ERROR(conn->CopyIn("COPY " + Target(table) + " (" + ColumnList(table) + ") FROM STDIN"));
    SLUICE_RETURN_IF_ERROR(conn->PutCopyData(data));
    SLUICE_RETURN_IF_ERROR(conn->EndCopy());
    Status fenced = RunFence(*conn, Fence());
    if (!fenced.ok()) {
      (void)conn->Exec("ROLLBACK");
      return fenced;
    }
    return conn->Exec("COMMIT");
  }

  Status WriteEvents(const ChangeBatch& batch, const std::vector<CommitStatement>& checkpoint) override {
    std::lock_guard lock(mu_);
    failed_table_.reset();
    if (in_txn_ && (!conn_ || !conn_->alive())) {
      // The server rolled back the pieces already written: continuing in a
      // new transaction would apply half a source transaction.
      in_txn_ = false;
      applied_.clear();
      return Status::Unavailable("lost the connection to " + Describe() +
                                 " inside a transaction; it is streamed again");
    }
    SLUICE_RETURN_IF_ERROR(EnsureConnected());
    if (!in_txn_) {
      SLUICE_RETURN_IF_ERROR(conn_->Exec("BEGIN"));
      in_txn_ = true;
    }
    Status status = Apply(batch);
    for (size_t i = 0; status.ok() && i < checkpoint.size(); ++i) {
      auto affected = conn_->Execute(checkpoint[i].sql, checkpoint[i].params);
      if (!affected.ok()) {
        status = affected.status();
      } else if (checkpoint[i].expect_rows >= 0 && *affected != checkpoint[i].expect_rows) {
        status = Status::InvalidArgument(
            "the replication checkpoint in " + conn_->where() +
            " is ahead of this batch: another sluice process applied it (is the pipeline running twice?)");
      }
    }
    if (status.ok() && batch.complete()) status = RunFence(*conn_, Fence());
    if (status.ok() && batch.complete()) {
      status = conn_->Exec("COMMIT");
      in_txn_ = false;
      if (!status.ok()) return status;
    }
    if (!status.ok()) DiscardLocked();
    return status;
  }

  void DiscardIncomplete() override {
    std::lock_guard lock(mu_);
    DiscardLocked();
  }

 private:
  std::vector<CommitStatement> Fence() const {
    std::lock_guard lock(fence_mu_);
    return fence_;
  }

  void DiscardLocked() {
    if (conn_ && in_txn_) {
      conn_->CancelCopy("discarded");
      (void)conn_->Exec("ROLLBACK");
    }
    in_txn_ = false;
    // The rolled-back transaction may have altered tables.
    applied_.clear();
  }

  Result<std::unique_ptr<PgConnection>> Connect() const {
    std::string name;
    {
      std::lock_guard lock(fence_mu_);
      name = session_name_;
    }
    SLUICE_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(url_, {{"options", kPortableSessionOptions},
                                                                    {"fallback_application_name", name}}));
    return conn;
  }

  Status EnsureConnected() {
    if (conn_ && conn_->alive()) return Status::OK();
    in_txn_ = false;
    applied_.clear();
    staging_.clear();
    SLUICE_ASSIGN_OR_RETURN(conn_, Connect());
    return Status::OK();
  }

  std::string Target(const CdcTable& table) const {
    return Q::QuoteIdent(schema_) + "." + Q::QuoteIdent(table.name);
  }

  static std::string ColumnList(const CdcTable& table) {
    std::string out;
    for (const CdcColumn& column : table.columns) {
      if (!out.empty()) out += ", ";
      out += Q::QuoteIdent(column.name);
    }
    return out;
  }

  static void AppendRow(const ChangeBatch& batch, const CdcTable& table, uint32_t first, std::string* out) {
    const CdcCell* cells = batch.row(first);
    for (size_t i = 0; i < table.columns.size(); ++i) {
      if (i) out->push_back('\t');
      AppendCell(batch, cells[i], out);
    }
    out->push_back('\n');
  }

  Status CreateTypes(const CdcTable& table) {
    std::set<std::string> done;
    for (const CdcColumn& column : table.columns) {
      if (column.type_definition.empty() || !done.insert(column.type_definition).second) continue;
      // Each statement may already have been run (another table, an earlier run).
      size_t pos = 0;
      const std::string& ddl = column.type_definition;
      while (pos < ddl.size()) {
        size_t end = ddl.find(";", pos);
        // Enum labels may contain ';': statements end at ");" or at the end.
        while (end != std::string::npos && ddl.compare(pos, 6, "CREATE") == 0 && end + 1 < ddl.size() &&
               ddl.compare(end + 1, 6, "CREATE") != 0) {
          end = ddl.find(";", end + 1);
        }
        if (end == std::string::npos) end = ddl.size();
        std::string statement = ddl.substr(pos, end - pos);
        pos = end + 1;
        SLUICE_RETURN_IF_ERROR(conn_->Exec("SAVEPOINT sluice_type"));
        Status created = conn_->Exec(statement);
        if (!created.ok()) {
          SLUICE_RETURN_IF_ERROR(conn_->Exec("ROLLBACK TO SAVEPOINT sluice_type"));
          if (created.message().find("already exists") == std::string::npos) {
            return Status::SchemaMismatch("creating type " + column.type_name + " for " +
                                          table.QualifiedName() + ": " + created.message());
          }
        }
        SLUICE_RETURN_IF_ERROR(conn_->Exec("RELEASE SAVEPOINT sluice_type"));
      }
    }
    return Status::OK();
  }

  /// Creates the table or aligns its columns with `table`; in the open transaction.
  Status EnsureTable(const CdcTable& table) {
    auto it = applied_.find(table.id);
    if (it != applied_.end() && it->second == table) return Status::OK();
    for (const auto& [id, other] : applied_) {
      if (id != table.id && other.name == table.name) {
        return Status::SchemaMismatch("tables " + other.QualifiedName() + " and " + table.QualifiedName() +
                                      " would both be mirrored as " + schema_ + "." + table.name);
      }
    }
    SLUICE_RETURN_IF_ERROR(CreateTypes(table));
    SLUICE_ASSIGN_OR_RETURN(
        auto existing,
        conn_->Query(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a WHERE a.attrelid = "
            "to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            {Target(table)}));
    if (existing.empty()) {
      std::string ddl = "CREATE TABLE " + Target(table) + " (";
      std::string keys;
      for (size_t i = 0; i < table.columns.size(); ++i) {
        const CdcColumn& column = table.columns[i];
        if (i) ddl += ", ";
        ddl += Q::QuoteIdent(column.name) + " " + column.type_name;
        if (column.key && table.identity != CdcIdentity::kFull) {
          keys += (keys.empty() ? "" : ", ") + Q::QuoteIdent(column.name);
        }
      }
      if (!keys.empty()) ddl += ", PRIMARY KEY (" + keys + ")";
      ddl += ")";
      Status created = conn_->Exec(ddl);
      if (!created.ok()) {
        return Status::SchemaMismatch("creating " + Target(table) + " for " + table.QualifiedName() + ": " +
                                      created.message());
      }
    } else {
      SLUICE_RETURN_IF_ERROR(AlignColumns(table, existing));
    }
    applied_[table.id] = table;
    return Status::OK();
  }

  Status AlignColumns(const CdcTable& table, const PgResultRows& existing) {
    std::map<std::string, std::string> have;  // name -> type
    for (const auto& row : existing) have[row[0].value_or("")] = row[1].value_or("");
    std::map<std::string, std::string> want;
    for (const CdcColumn& column : table.columns) want[column.name] = column.type_name;
    std::vector<std::string> removed, added;
    for (const auto& [name, type] : have) {
      if (!want.contains(name)) removed.push_back(name);
    }
    for (const CdcColumn& column : table.columns) {
      if (!have.contains(column.name)) added.push_back(column.name);
    }
    std::vector<std::string> statements;
    const std::string target = Target(table);
    if (removed.size() == 1 && added.size() == 1 && have[removed[0]] == want[added[0]]) {
      // Relation messages carry no column numbers: one column gone and one
      // of the same type new is a rename.
      statements.push_back("ALTER TABLE " + target + " RENAME COLUMN " + Q::QuoteIdent(removed[0]) + " TO " +
                           Q::QuoteIdent(added[0]));
    } else {
      for (const std::string& name : removed) {
        statements.push_back("ALTER TABLE " + target + " DROP COLUMN " + Q::QuoteIdent(name));
      }
      for (const std::string& name : added) {
        statements.push_back("ALTER TABLE " + target + " ADD COLUMN " + Q::QuoteIdent(name) + " " +
                             want[name]);
      }
    }
    for (const auto& [name, type] : want) {
      auto it = have.find(name);
      if (it != have.end() && it->second != type) {
        statements.push_back("ALTER TABLE " + target + " ALTER COLUMN " + Q::QuoteIdent(name) + " TYPE " +
                             type + " USING " + Q::QuoteIdent(name) + "::text::" + type);
      }
    }
    for (const std::string& statement : statements) {
      Status altered = conn_->Exec(statement);
      if (!altered.ok()) {
        return Status::SchemaMismatch("cannot apply the schema change of " + table.QualifiedName() + " to " +
                                      target + " (" + statement + "): " + altered.message());
      }
    }
    return Status::OK();
  }

  /// The staging table for updates/deletes of this shape: text columns for
  /// the new row and the old key, plus the indexes of unchanged TOAST columns.
  Result<std::string> Staging(const CdcTable& table) {
    std::string ddl = "(seq int8";
    for (size_t i = 0; i < table.columns.size(); ++i) ddl += ", n" + std::to_string(i) + " text";
    for (size_t k : KeyColumns(table)) ddl += ", o" + std::to_string(k) + " text";
    ddl += ", u int4[])";
    auto it = staging_.find(ddl);
    if (it != staging_.end()) return it->second;
    std::string name = "sluice_stage_" + std::to_string(staging_.size());
    SLUICE_RETURN_IF_ERROR(conn_->Exec("CREATE TEMP TABLE " + name + " " + ddl));
    staging_[ddl] = name;
    return name;
  }

  Status ApplyInserts(const ChangeBatch& batch, std::span<const ChangeEvent> run) {
    const CdcTable& table = *run.front().table;
    // At least once: a replayed insert must not fail on its own earlier copy.
    if (!exactly_once_ && table.identity != CdcIdentity::kFull && !KeyColumns(table).empty()) {
      return UpsertInserts(batch, run);
    }
    std::string data;
    for (const ChangeEvent& event : run) AppendRow(batch, table, event.new_row, &data);
    return CopyRows("COPY " + Target(table) + " (" + ColumnList(table) + ") FROM STDIN", data);
  }

  /// Inserts through the staging table, updating rows whose key exists.
  Status UpsertInserts(const ChangeBatch& batch, std::span<const ChangeEvent> run) {
    const CdcTable& table = *run.front().table;
    const std::vector<size_t> keys = KeyColumns(table);
    SLUICE_ASSIGN_OR_RETURN(std::string stage, Staging(table));
    std::string data;
    int64_t seq = 0;
    for (const ChangeEvent& event : run) {
      data += std::to_string(seq++);
      const CdcCell* cells = batch.row(event.new_row);
      for (size_t i = 0; i < table.columns.size(); ++i) {
        data.push_back('\t');
        AppendCell(batch, cells[i], &data);
      }
      for (size_t k = 0; k < keys.size(); ++k) data += "\t\\N";
      data += "\t\\N\n";
    }
    SLUICE_RETURN_IF_ERROR(FillStaging(stage, data));
    std::string values, keys_sql, updates;
    for (size_t i = 0; i < table.columns.size(); ++i) {
      const CdcColumn& column = table.columns[i];
      if (i) values += ", ";
      values += "s.n" + std::to_string(i) + "::" + column.type_name;
      if (column.key) {
        keys_sql += (keys_sql.empty() ? "" : ", ") + Q::QuoteIdent(column.name);
      } else {
        updates += (updates.empty() ? "" : ", ") + Q::QuoteIdent(column.name) + " = EXCLUDED." +
                   Q::QuoteIdent(column.name);
      }
    }
    std::string sql = "INSERT INTO " + Target(table) + " (" + ColumnList(table) + ") SELECT " + values +
                      " FROM " + stage + " s ORDER BY s.seq ON CONFLICT (" + keys_sql + ") DO " +
                      (updates.empty() ? "NOTHING" : "UPDATE SET " + updates);
    SLUICE_ASSIGN_OR_RETURN(int64_t affected, conn_->Execute(sql, {}));
    (void)affected;
    return Status::OK();
  }

  Status FillStaging(const std::string& stage, const std::string& data) {
    SLUICE_RETURN_IF_ERROR(conn_->Exec("TRUNCATE " + stage));
    return CopyRows("COPY " + stage + " FROM STDIN", data);
  }

  /// Runs `copy_sql` (COPY ... FROM STDIN) with `data` in COPY's text format.
  Status CopyRows(const std::string& copy_sql, const std::string& data) {
    SLUICE_RETURN_IF_ERROR(conn_->CopyIn(copy_sql));
    Status put = conn_->PutCopyData(data);
    if (!put.ok()) {
      conn_->CancelCopy("failed");
      return put;
    }
    return conn_->EndCopy();
  }

  Status ApplyKeyed(const ChangeBatch& batch, std::span<const ChangeEvent> run, bool is_update) {
    const CdcTable& table = *run.front().table;
    const std::vector<size_t> keys = KeyColumns(table);
    SLUICE_ASSIGN_OR_RETURN(std::string stage, Staging(table));
    std::string data;
    int64_t seq = 0;
    for (const ChangeEvent& event : run) {
      data += std::to_string(seq++);
      const CdcCell* fresh = event.new_row != ChangeEvent::kNoRow ? batch.row(event.new_row) : nullptr;
      const CdcCell* old = event.old_row != ChangeEvent::kNoRow ? batch.row(event.old_row) : fresh;
      std::string unchanged;
      for (size_t i = 0; i < table.columns.size(); ++i) {
        data.push_back('\t');
        if (fresh) {
          AppendCell(batch, fresh[i], &data);
          if (fresh[i].kind == CdcCellKind::kUnchangedToast) {
            unchanged += (unchanged.empty() ? "" : ",") + std::to_string(i + 1);
          }
        } else {
          data += "\\N";
        }
      }
      for (size_t k : keys) {
        data.push_back('\t');
        // An unchanged key column of the new row is the old value too.
        const CdcCell& cell = old[k].kind == CdcCellKind::kUnchangedToast && fresh ? fresh[k] : old[k];
        AppendCell(batch, cell, &data);
      }
      data.push_back('\t');
      data += unchanged.empty() ? "\\N" : "{" + unchanged + "}";
      data.push_back('\n');
    }
    SLUICE_RETURN_IF_ERROR(FillStaging(stage, data));
    std::string match;
    for (size_t k : keys) {
      const CdcColumn& column = table.columns[k];
      if (!match.empty()) match += " AND ";
      std::string target = "t." + Q::QuoteIdent(column.name);
      if (table.identity == CdcIdentity::kFull) {
        match += target + "::text IS NOT DISTINCT FROM s.o" + std::to_string(k);
      } else {
        match += target + " = s.o" + std::to_string(k) + "::" + column.type_name;
      }
    }
    std::string sql;
    if (is_update) {
      sql = "UPDATE " + Target(table) + " t SET ";
      for (size_t i = 0; i < table.columns.size(); ++i) {
        const CdcColumn& column = table.columns[i];
        if (i) sql += ", ";
        std::string n = "s.n" + std::to_string(i) + "::" + column.type_name;
        sql += Q::QuoteIdent(column.name) + " = CASE WHEN s.u IS NOT NULL AND " + std::to_string(i + 1) +
               " = ANY (s.u) THEN t." + Q::QuoteIdent(column.name) + " ELSE " + n + " END";
      }
      sql += " FROM " + stage + " s WHERE " + match;
    } else {
      sql = "DELETE FROM " + Target(table) + " t USING " + stage + " s WHERE " + match;
    }
    SLUICE_ASSIGN_OR_RETURN(int64_t affected, conn_->Execute(sql, {}));
    (void)affected;
    return Status::OK();
  }

  static std::string KeyText(const ChangeBatch& batch, const std::vector<size_t>& keys, uint32_t first) {
    std::string out;
    const CdcCell* cells = batch.row(first);
    for (size_t k : keys) {
      out += cells[k].kind == CdcCellKind::kNull ? "\\N" : std::string(batch.value(cells[k]));
      out.push_back('\x1f');
    }
    return out;
  }

  Status Apply(const ChangeBatch& batch) {
    auto events = batch.events();
    size_t i = 0;
    while (i < events.size()) {
      const ChangeEvent& head = events[i];
      const CdcTable& table = *head.table;
      Status ensured = EnsureTable(table);
      if (!ensured.ok()) {
        if (ensured.code() == StatusCode::kSchemaMismatch) failed_table_ = table.id;
        return ensured;
      }
      if (head.op == ChangeOp::kTruncate) {
        SLUICE_RETURN_IF_ERROR(conn_->Exec("TRUNCATE " + Target(table)));
        ++i;
        continue;
      }
      // A run: same table version, same operation; updates and deletes stop
      // before a key repeats, so that one set-based statement applies them.
      size_t j = i + 1;
      std::unordered_set<std::string> seen;
      const std::vector<size_t> keys = KeyColumns(table);
      auto remember = [&](const ChangeEvent& event) {
        if (head.op == ChangeOp::kInsert) return true;
        bool fresh = true;
        if (event.old_row != ChangeEvent::kNoRow)
          fresh = seen.insert(KeyText(batch, keys, event.old_row)).second;
        if (event.new_row != ChangeEvent::kNoRow) {
          std::string key = KeyText(batch, keys, event.new_row);
          if (event.old_row == ChangeEvent::kNoRow)
            fresh = seen.insert(key).second && fresh;
          else
            seen.insert(key);
        }
        return fresh;
      };
      remember(head);
      while (j < events.size() && events[j].op == head.op && events[j].table == head.table && j - i < 50000 &&
             remember(events[j])) {
        ++j;
      }
      auto run = events.subspan(i, j - i);
      Status applied = head.op == ChangeOp::kInsert ? ApplyInserts(batch, run)
                                                    : ApplyKeyed(batch, run, head.op == ChangeOp::kUpdate);
      if (!applied.ok())
        return applied.WithContext("applying " + std::to_string(run.size()) + " " + ChangeOpName(head.op) +
                                   "s to " + Target(table) + " (from " + table.QualifiedName() +
                                   ", transaction ending " + CdcLsnToString(run.front().commit_lsn) + ")");
      i = j;
    }
    return Status::OK();
  }

  const std::string url_;
  const std::string schema_;
  std::mutex mu_;
  mutable std::mutex fence_mu_;
  std::vector<CommitStatement> fence_;  // SetFence; guarded by fence_mu_ (copy workers read it)
  std::string session_name_;            // SetFence; guarded by fence_mu_
  std::unique_ptr<PgConnection> conn_;
  bool in_txn_ = false;
  std::map<uint32_t, CdcTable> applied_;
  std::map<std::string, std::string> staging_;
  std::optional<uint32_t> failed_table_;
  bool exactly_once_ = true;
};

}  // namespace

std::unique_ptr<CdcDestination> MakePostgresCdcDestination(const std::string& url,
                                                           const std::string& schema) {
  return std::make_unique<PostgresCdcDestination>(url, schema);
}

}  // namespace sluice::destinations
