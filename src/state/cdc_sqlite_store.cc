// The SQLite CDC store: tables cdc_table_states, cdc_table_schemas and
// cdc_progress of the state store's file, times as integer unix ms.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "state/cdc_store.h"
#include "state/sqlite_db.h"

namespace sluice::state {
namespace {

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

constexpr const char* kUpsertState =
    "INSERT INTO cdc_table_states (pipeline, table_id, table_name, state, lsn, attempts, error, "
    "retry_at_unix_ms, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
    "ON CONFLICT (pipeline, table_id) DO UPDATE SET table_name = excluded.table_name, "
    "state = excluded.state, lsn = excluded.lsn, attempts = excluded.attempts, error = excluded.error, "
    "retry_at_unix_ms = excluded.retry_at_unix_ms, updated_at = excluded.updated_at";

constexpr const char* kUpsertSchema =
    "INSERT INTO cdc_table_schemas (pipeline, table_id, table_name, schema_json, updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (pipeline, table_id) DO UPDATE SET "
    "table_name = excluded.table_name, schema_json = excluded.schema_json, updated_at = excluded.updated_at";

// Never backwards: a smaller LSN leaves the row as it is.
constexpr const char* kUpsertConfirmedLsn =
    "INSERT INTO cdc_progress (pipeline, confirmed_lsn, updated_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT (pipeline) DO UPDATE SET confirmed_lsn = excluded.confirmed_lsn, "
    "updated_at = excluded.updated_at WHERE cdc_progress.confirmed_lsn < excluded.confirmed_lsn";

/// LSNs are stored as signed 64-bit integers.
Status CheckLsn(CdcLsn lsn, const std::string& what) {
  if (lsn > static_cast<CdcLsn>(std::numeric_limits<int64_t>::max())) {
    return Status::InvalidArgument(what + ": LSN " + CdcLsnToString(lsn) + " is beyond what the store keeps");
  }
  return Status::OK();
}

class SqliteCdcStore final : public CdcStore {
 public:
  SqliteCdcStore(std::unique_ptr<SqliteDb> db, std::string pipeline)
      : db_(std::move(db)), pipeline_(std::move(pipeline)) {}

  std::string Describe() const override { return "sqlite " + db_->path(); }

  Result<std::vector<CdcTable>> LoadSchemas() override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                            db_->Prepare("SELECT table_id, table_name, schema_json FROM cdc_table_schemas "
                                         "WHERE pipeline = ?1 ORDER BY table_id"));
    SqliteStatement use(stmt);
    use.Text(1, pipeline_);
    std::vector<CdcTable> out;
    for (;;) {
      SLUICE_ASSIGN_OR_RETURN(bool row, db_->StepRowOrDone(use, "read table schemas"));
      if (!row) break;
      auto table = CdcTableFromJson(use.ColumnText(2));
      if (!table.ok()) {
        return table.status().WithContext(Describe() + ": schema of table " + use.ColumnText(1) + " (id " +
                                          std::to_string(use.ColumnInt(0)) + ") of pipeline " + pipeline_);
      }
      out.push_back(std::move(table).value());
    }
    return out;
  }

  Status SaveSchema(const CdcTable& table) override {
    SLUICE_ASSIGN_OR_RETURN(std::string text, CdcTableToJson(table));
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare(kUpsertSchema));
    SqliteStatement use(stmt);
    use.Text(1, pipeline_);
    use.Int(2, table.id);
    use.Text(3, table.QualifiedName());
    use.Text(4, text);
    use.Int(5, NowUnixMs());
    return db_->StepDone(use, "save the schema of table " + table.QualifiedName());
  }

  Result<std::vector<TableSyncStatus>> LoadTableStates() override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                            db_->Prepare("SELECT table_id, table_name, state, lsn, attempts, error, "
                                         "retry_at_unix_ms FROM cdc_table_states WHERE pipeline = ?1 "
                                         "ORDER BY table_id"));
    SqliteStatement use(stmt);
    use.Text(1, pipeline_);
    std::vector<TableSyncStatus> out;
    for (;;) {
      SLUICE_ASSIGN_OR_RETURN(bool row, db_->StepRowOrDone(use, "read table states"));
      if (!row) break;
      TableSyncStatus status;
      status.table_id = static_cast<uint32_t>(use.ColumnInt(0));
      status.table_name = use.ColumnText(1);
      auto state = ParseTableSyncState(use.ColumnText(2));
      if (!state.ok()) {
        return state.status().WithContext(Describe() + ": state of table " + status.table_name +
                                          " of pipeline " + pipeline_);
      }
      status.state = *state;
      status.lsn = static_cast<CdcLsn>(use.ColumnInt(3));
      status.attempts = static_cast<int>(use.ColumnInt(4));
      status.error = use.ColumnText(5);
      status.retry_at_unix_ms = use.ColumnInt(6);
      out.push_back(std::move(status));
    }
    return out;
  }

  Status SaveTableState(const TableSyncStatus& status) override {
    SLUICE_RETURN_IF_ERROR(CheckLsn(status.lsn, "state of table " + status.table_name));
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare(kUpsertState));
    SqliteStatement use(stmt);
    use.Text(1, pipeline_);
    use.Int(2, status.table_id);
    use.Text(3, status.table_name);
    use.Text(4, TableSyncStateName(status.state));
    use.Int(5, static_cast<int64_t>(status.lsn));
    use.Int(6, status.attempts);
    use.TextOrNull(7, status.error);
    use.Int(8, status.retry_at_unix_ms);
    use.Int(9, NowUnixMs());
    return db_->StepDone(use, "save the state of table " + status.table_name);
  }

  Result<CdcLsn> LoadConfirmedLsn() override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                            db_->Prepare("SELECT confirmed_lsn FROM cdc_progress WHERE pipeline = ?1"));
    SqliteStatement use(stmt);
    use.Text(1, pipeline_);
    SLUICE_ASSIGN_OR_RETURN(bool row, db_->StepRowOrDone(use, "read the confirmed LSN"));
    return row ? static_cast<CdcLsn>(use.ColumnInt(0)) : CdcLsn{0};
  }

  Status SaveConfirmedLsn(CdcLsn lsn) override {
    SLUICE_RETURN_IF_ERROR(CheckLsn(lsn, "confirmed LSN of pipeline " + pipeline_));
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare(kUpsertConfirmedLsn));
    SqliteStatement use(stmt);
    use.Text(1, pipeline_);
    use.Int(2, static_cast<int64_t>(lsn));
    use.Int(3, NowUnixMs());
    return db_->StepDone(use, "save the confirmed LSN");
  }

  Status DropTable(uint32_t table_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string what = "forget table " + std::to_string(table_id) + " of pipeline " + pipeline_;
    return db_->WriteTransaction(what, [&]() -> Status {
      for (const char* sql : {"DELETE FROM cdc_table_states WHERE pipeline = ?1 AND table_id = ?2",
                              "DELETE FROM cdc_table_schemas WHERE pipeline = ?1 AND table_id = ?2"}) {
        SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare(sql));
        SqliteStatement use(stmt);
        use.Text(1, pipeline_);
        use.Int(2, table_id);
        SLUICE_RETURN_IF_ERROR(db_->StepDone(use, what));
      }
      return Status::OK();
    });
  }

  Status DropPipeline() override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string what = "forget the CDC state of pipeline " + pipeline_;
    return db_->WriteTransaction(what, [&]() -> Status {
      for (const char* sql : {"DELETE FROM cdc_table_states WHERE pipeline = ?1",
                              "DELETE FROM cdc_table_schemas WHERE pipeline = ?1",
                              "DELETE FROM cdc_progress WHERE pipeline = ?1"}) {
        SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare(sql));
        SqliteStatement use(stmt);
        use.Text(1, pipeline_);
        SLUICE_RETURN_IF_ERROR(db_->StepDone(use, what));
      }
      return Status::OK();
    });
  }

 private:
  std::mutex mu_;
  const std::unique_ptr<SqliteDb> db_;
  const std::string pipeline_;
};

}  // namespace

Result<std::unique_ptr<CdcStore>> OpenSqliteCdcStore(const std::string& path, const std::string& pipeline) {
  std::error_code ec;
  std::filesystem::path absolute =
      std::filesystem::absolute(path.empty() ? std::string(kDefaultStatePath) : path, ec);
  if (ec) return Status::IoError("cannot resolve the state store path " + path + ": " + ec.message());
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(absolute.lexically_normal().string()));
  return std::unique_ptr<CdcStore>(std::make_unique<SqliteCdcStore>(std::move(db), pipeline));
}

}  // namespace sluice::state
