// The PostgreSQL CDC store: tables sluice.cdc_table_states,
// sluice.cdc_table_schemas and sluice.cdc_progress. One connection under a
// mutex; every statement is idempotent, so a call that loses the connection
// is repeated once on a new one.
#include <charconv>
#include <cstdint>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include "state/cdc_store.h"
#include "state/pg_session.h"
#include "state/postgres_migrate.h"

namespace sluice::state {
namespace {

constexpr const char* kUpsertState =
    "INSERT INTO sluice.cdc_table_states (pipeline, table_id, table_name, state, lsn, attempts, error, "
    "retry_at_unix_ms, updated_at) VALUES ($1, $2::bigint, $3, $4, $5::bigint, $6::int, nullif($7, ''), "
    "$8::bigint, now()) "
    "ON CONFLICT (pipeline, table_id) DO UPDATE SET table_name = excluded.table_name, "
    "state = excluded.state, lsn = excluded.lsn, attempts = excluded.attempts, error = excluded.error, "
    "retry_at_unix_ms = excluded.retry_at_unix_ms, updated_at = now()";

constexpr const char* kUpsertSchema =
    "INSERT INTO sluice.cdc_table_schemas (pipeline, table_id, table_name, schema_json, updated_at) "
    "VALUES ($1, $2::bigint, $3, $4, now()) ON CONFLICT (pipeline, table_id) DO UPDATE SET "
    "table_name = excluded.table_name, schema_json = excluded.schema_json, updated_at = now()";

// Affects one row when the LSN does not go backwards (the row is inserted
// or moved forward) and none when a newer one is stored: in a destination's
// transaction, that rolls the transaction back. A concurrent writer of the
// same pipeline waits on the row, then compares with what the first one
// committed. The row is created at open, but an upsert does not depend on
// it (DropPipeline removes it).
constexpr const char* kUpsertConfirmedLsn =
    "INSERT INTO sluice.cdc_progress (pipeline, confirmed_lsn, updated_at) VALUES ($1, $2::bigint, now()) "
    "ON CONFLICT (pipeline) DO UPDATE SET confirmed_lsn = excluded.confirmed_lsn, updated_at = now() "
    "WHERE sluice.cdc_progress.confirmed_lsn <= excluded.confirmed_lsn";

int64_t ToInt(const PgValue& v) {
  int64_t out = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), out);
  return out;
}

std::string Text(const PgValue& v) { return v.value_or(""); }

PgParams StateParams(const std::string& pipeline, const TableSyncStatus& s) {
  return {pipeline,
          std::to_string(s.table_id),
          s.table_name,
          std::string(TableSyncStateName(s.state)),
          std::to_string(s.lsn),
          std::to_string(s.attempts),
          s.error,
          std::to_string(s.retry_at_unix_ms)};
}

std::vector<CommitStatement> ToCommitStatements(const char* sql, PgParams params, int64_t expect_rows) {
  CommitStatement st;
  st.sql = sql;
  st.params = std::move(params);
  st.expect_rows = expect_rows;
  return {std::move(st)};
}

class PostgresCdcStore final : public CdcStore {
 public:
  PostgresCdcStore(std::unique_ptr<PgConnection> session, std::string pipeline)
      : session_(std::move(session)), pipeline_(std::move(pipeline)) {}

  /// Migrates and creates the pipeline's progress row.
  Status Open() {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_RETURN_IF_ERROR(MigratePostgresStore(*session_, Describe()));
    return session_
        ->Statement(
            "INSERT INTO sluice.cdc_progress (pipeline, confirmed_lsn) VALUES ($1, 0) "
            "ON CONFLICT (pipeline) DO NOTHING",
            {pipeline_})
        .status();
  }

  std::string Describe() const override { return "postgres " + session_->where() + " (schema sluice)"; }
  std::string TransactionDatabase() const override { return session_->where(); }

  std::vector<CommitStatement> ConfirmedLsnStatements(CdcLsn lsn) const override {
    return ToCommitStatements(kUpsertConfirmedLsn, {pipeline_, std::to_string(lsn)}, 1);
  }

  std::vector<CommitStatement> TableStateStatements(const TableSyncStatus& status) const override {
    return ToCommitStatements(kUpsertState, StateParams(pipeline_, status), -1);
  }

  Result<std::vector<CdcTable>> LoadSchemas() override {
    auto r = Locked([&](PgConnection& s) {
      return s.Statement(
          "SELECT table_id, table_name, schema_json FROM sluice.cdc_table_schemas WHERE pipeline = $1 "
          "ORDER BY table_id",
          {pipeline_});
    });
    if (!r.ok()) return r.status();
    std::vector<CdcTable> out;
    out.reserve(r->rows.size());
    for (const auto& row : r->rows) {
      auto table = CdcTableFromJson(Text(row[2]));
      if (!table.ok()) {
        return table.status().WithContext(Describe() + ": schema of table " + Text(row[1]) + " (id " +
                                          Text(row[0]) + ") of pipeline " + pipeline_);
      }
      out.push_back(std::move(table).value());
    }
    return out;
  }

  Status SaveSchema(const CdcTable& table) override {
    SLUICE_ASSIGN_OR_RETURN(std::string text, CdcTableToJson(table));
    const PgParams params = {pipeline_, std::to_string(table.id), table.QualifiedName(), text};
    return Locked([&](PgConnection& s) { return s.Statement(kUpsertSchema, params).status(); });
  }

  Result<std::vector<TableSyncStatus>> LoadTableStates() override {
    auto r = Locked([&](PgConnection& s) {
      return s.Statement(
          "SELECT table_id, table_name, state, lsn, attempts, coalesce(error, ''), retry_at_unix_ms "
          "FROM sluice.cdc_table_states WHERE pipeline = $1 ORDER BY table_id",
          {pipeline_});
    });
    if (!r.ok()) return r.status();
    std::vector<TableSyncStatus> out;
    out.reserve(r->rows.size());
    for (const auto& row : r->rows) {
      TableSyncStatus status;
      status.table_id = static_cast<uint32_t>(ToInt(row[0]));
      status.table_name = Text(row[1]);
      auto state = ParseTableSyncState(Text(row[2]));
      if (!state.ok()) {
        return state.status().WithContext(Describe() + ": state of table " + status.table_name +
                                          " of pipeline " + pipeline_);
      }
      status.state = *state;
      status.lsn = static_cast<CdcLsn>(ToInt(row[3]));
      status.attempts = static_cast<int>(ToInt(row[4]));
      status.error = Text(row[5]);
      status.retry_at_unix_ms = ToInt(row[6]);
      out.push_back(std::move(status));
    }
    return out;
  }

  Status SaveTableState(const TableSyncStatus& status) override {
    const PgParams params = StateParams(pipeline_, status);
    Status st = Locked([&](PgConnection& s) { return s.Statement(kUpsertState, params).status(); });
    return st.ok() ? st : st.WithContext("state of table " + status.table_name);
  }

  Result<CdcLsn> LoadConfirmedLsn() override {
    auto r = Locked([&](PgConnection& s) {
      return s.Statement("SELECT confirmed_lsn FROM sluice.cdc_progress WHERE pipeline = $1", {pipeline_});
    });
    if (!r.ok()) return r.status();
    if (r->rows.empty()) return CdcLsn{0};
    return static_cast<CdcLsn>(ToInt(r->rows[0][0]));
  }

  Status SaveConfirmedLsn(CdcLsn lsn) override {
    const PgParams params = {pipeline_, std::to_string(lsn)};
    Status st = Locked([&](PgConnection& s) { return s.Statement(kUpsertConfirmedLsn, params).status(); });
    return st.ok() ? st
                   : st.WithContext("confirmed LSN " + CdcLsnToString(lsn) + " of pipeline " + pipeline_);
  }

  Status DropTable(uint32_t table_id) override {
    const PgParams params = {pipeline_, std::to_string(table_id)};
    return Locked([&](PgConnection& s) {
      return Transaction(s, [&](PgConnection& t) -> Status {
        SLUICE_RETURN_IF_ERROR(
            t.Statement("DELETE FROM sluice.cdc_table_states WHERE pipeline = $1 AND table_id = $2::bigint",
                        params)
                .status());
        return t
            .Statement("DELETE FROM sluice.cdc_table_schemas WHERE pipeline = $1 AND table_id = $2::bigint",
                       params)
            .status();
      });
    });
  }

  Status DropPipeline() override {
    const PgParams params = {pipeline_};
    return Locked([&](PgConnection& s) {
      return Transaction(s, [&](PgConnection& t) -> Status {
        for (const char* sql : {"DELETE FROM sluice.cdc_table_states WHERE pipeline = $1",
                                "DELETE FROM sluice.cdc_table_schemas WHERE pipeline = $1",
                                "DELETE FROM sluice.cdc_progress WHERE pipeline = $1"}) {
          SLUICE_RETURN_IF_ERROR(t.Statement(sql, params).status());
        }
        return Status::OK();
      });
    });
  }

 private:
  /// Runs fn on the session under the mutex; every statement of this store
  /// is idempotent, so a connection that breaks during fn is reset and fn
  /// runs once more.
  template <typename Fn>
  auto Locked(Fn&& fn) -> decltype(fn(std::declval<PgConnection&>())) {
    std::lock_guard<std::mutex> lock(mu_);
    return RunOnSession(
        *session_, /*idempotent=*/true, [&] { return session_->Reset(); }, fn);
  }

  template <typename Fn>
  static Status Transaction(PgConnection& s, Fn&& fn) {
    return RunTransaction(s, "BEGIN", fn);
  }

  std::mutex mu_;
  const std::unique_ptr<PgConnection> session_;
  const std::string pipeline_;
};

}  // namespace

Result<std::unique_ptr<CdcStore>> OpenPostgresCdcStore(const std::string& url, const std::string& pipeline) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> session, ConnectStateStore(url));
  auto store = std::make_unique<PostgresCdcStore>(std::move(session), pipeline);
  SLUICE_RETURN_IF_ERROR(store->Open());
  return std::unique_ptr<CdcStore>(std::move(store));
}

}  // namespace sluice::state
