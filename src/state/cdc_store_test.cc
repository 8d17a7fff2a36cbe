#include "state/cdc_store.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <vector>

#include "harness/pg_server.h"
#include "harness/temp_dir.h"
#include "state/migrations.h"
#include "state/state_store.h"
#include "state/state_test_support.h"

namespace sluice::state {
namespace {

using testing::PgServer;
using testing::TempDir;

using Kind = sluice::state::test_support::StoreKind;
constexpr auto KindName = sluice::state::test_support::StoreKindName;
using sluice::state::test_support::SharedPostgres;

CdcColumn Column(std::string name, uint32_t oid, int32_t modifier, std::string type, bool key,
                 std::string definition = "") {
  CdcColumn c;
  c.name = std::move(name);
  c.type_oid = oid;
  c.type_modifier = modifier;
  c.type_name = std::move(type);
  c.type_definition = std::move(definition);
  c.key = key;
  return c;
}

CdcTable Orders() {
  CdcTable t;
  t.id = 16384;
  t.schema = "public";
  t.name = "orders";
  t.identity = CdcIdentity::kDefault;
  t.columns = {Column("id", 20, -1, "bigint", true), Column("amount", 1700, 786438, "numeric(12,2)", false),
               Column("mood", 16500, -1, "public.mood[]", false,
                      "CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy');")};
  return t;
}

CdcTable Odd() {
  CdcTable t;
  t.id = 4294967295u;  // the largest oid
  t.schema = "Sales \"EU\"";
  t.name = "ünïcødé, {braces}\\ and 'quotes'";
  t.identity = CdcIdentity::kFull;
  t.columns = {Column("\"quoted\"", 25, -1, "text", false),
               Column("日本語", 1043, 14, "character varying(10)", false)};
  return t;
}

TableSyncStatus SyncStatus(uint32_t id, const std::string& name, TableSyncState state, CdcLsn lsn = 0) {
  TableSyncStatus s;
  s.table_id = id;
  s.table_name = name;
  s.state = state;
  s.lsn = lsn;
  return s;
}

void ExpectSameStatus(const TableSyncStatus& got, const TableSyncStatus& want) {
  EXPECT_EQ(got.table_id, want.table_id);
  EXPECT_EQ(got.table_name, want.table_name);
  EXPECT_EQ(got.state, want.state) << TableSyncStateName(got.state) << " vs "
                                   << TableSyncStateName(want.state);
  EXPECT_EQ(got.lsn, want.lsn);
  EXPECT_EQ(got.attempts, want.attempts);
  EXPECT_EQ(got.error, want.error);
  EXPECT_EQ(got.retry_at_unix_ms, want.retry_at_unix_ms);
}

class CdcStoreTest : public sluice::state::test_support::StoreTest {
 protected:
  std::unique_ptr<CdcStore> Open(const std::string& pipeline = "orders-cdc") {
    auto store = OpenCdcStore(Config(), pipeline);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
};

TEST_P(CdcStoreTest, SchemasRoundTripAndSavingAgainReplacesTheTable) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto empty = store->LoadSchemas();
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->empty());

  ASSERT_TRUE(store->SaveSchema(Orders()).ok());
  ASSERT_TRUE(store->SaveSchema(Odd()).ok());
  auto loaded = store->LoadSchemas();
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0], Orders());
  EXPECT_EQ((*loaded)[1], Odd());

  // A schema change (a column added, the identity changed) replaces the table.
  CdcTable changed = Orders();
  changed.identity = CdcIdentity::kIndex;
  changed.columns.push_back(Column("note", 25, -1, "text", false));
  changed.columns[0].key = false;
  changed.columns[1].key = true;
  ASSERT_TRUE(store->SaveSchema(changed).ok());
  loaded = store->LoadSchemas();
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  ASSERT_EQ(loaded->size(), 2u);
  EXPECT_EQ((*loaded)[0], changed);
  EXPECT_EQ((*loaded)[1], Odd());
}

TEST_P(CdcStoreTest, TableStatesRoundTripEveryFieldAndUpsert) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto none = store->LoadTableStates();
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());

  TableSyncStatus errored = SyncStatus(20, "public.items", TableSyncState::kErrored, 0x16B374D848ull);
  errored.attempts = 3;
  errored.error = "COPY failed: column \"a\" of 'items': bad value\nline 2";
  errored.retry_at_unix_ms = 1700000123456;
  TableSyncStatus ready = SyncStatus(10, "public.orders", TableSyncState::kReady, 0x7FFFFFFFFFFFFFFFull);
  ASSERT_TRUE(store->SaveTableState(errored).ok());
  ASSERT_TRUE(store->SaveTableState(ready).ok());
  auto states = store->LoadTableStates();
  ASSERT_TRUE(states.ok()) << states.status().ToString();
  ASSERT_EQ(states->size(), 2u);
  ExpectSameStatus((*states)[0], ready);
  ExpectSameStatus((*states)[1], errored);

  // Saving again replaces every field, including clearing the error.
  TableSyncStatus retried = SyncStatus(20, "public.items_renamed", TableSyncState::kSyncDone, 42);
  ASSERT_TRUE(store->SaveTableState(retried).ok());
  states = store->LoadTableStates();
  ASSERT_TRUE(states.ok()) << states.status().ToString();
  ASSERT_EQ(states->size(), 2u);
  ExpectSameStatus((*states)[1], retried);

  // Every state survives the trip.
  for (int i = 0; i <= static_cast<int>(TableSyncState::kErrored); ++i) {
    auto state = static_cast<TableSyncState>(i);
    ASSERT_TRUE(store->SaveTableState(SyncStatus(30, "public.t", state)).ok());
    states = store->LoadTableStates();
    ASSERT_TRUE(states.ok()) << states.status().ToString();
    ASSERT_EQ(states->size(), 3u);
    EXPECT_EQ((*states)[2].state, state) << TableSyncStateName(state);
  }
}

TEST_P(CdcStoreTest, ConfirmedLsnNeverMovesBackwards) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok()) << lsn.status().ToString();
  EXPECT_EQ(*lsn, 0u);

  ASSERT_TRUE(store->SaveConfirmedLsn(0x16B374D848ull).ok());
  lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0x16B374D848ull);

  ASSERT_TRUE(store->SaveConfirmedLsn(0x100).ok());  // older: ignored
  lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0x16B374D848ull);

  ASSERT_TRUE(store->SaveConfirmedLsn(0x16B374D848ull).ok());  // the same: fine
  ASSERT_TRUE(store->SaveConfirmedLsn(0x7FFFFFFFFFFFFFFFull).ok());
  lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0x7FFFFFFFFFFFFFFFull);
}

TEST_P(CdcStoreTest, PipelinesDoNotSeeEachOthersState) {
  auto a = Open("a");
  auto b = Open("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->SaveSchema(Orders()).ok());
  ASSERT_TRUE(a->SaveTableState(SyncStatus(Orders().id, "public.orders", TableSyncState::kReady, 100)).ok());
  ASSERT_TRUE(a->SaveConfirmedLsn(500).ok());
  // The same table in b, in another state.
  ASSERT_TRUE(b->SaveTableState(SyncStatus(Orders().id, "public.orders", TableSyncState::kDataSync)).ok());
  ASSERT_TRUE(b->SaveConfirmedLsn(7).ok());

  auto schemas = b->LoadSchemas();
  ASSERT_TRUE(schemas.ok());
  EXPECT_TRUE(schemas->empty());
  auto states = b->LoadTableStates();
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ((*states)[0].state, TableSyncState::kDataSync);
  auto lsn = b->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 7u);

  states = a->LoadTableStates();
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ((*states)[0].state, TableSyncState::kReady);
  EXPECT_EQ((*states)[0].lsn, 100u);
  lsn = a->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 500u);

  // Dropping b leaves a alone.
  ASSERT_TRUE(b->DropPipeline().ok());
  schemas = a->LoadSchemas();
  ASSERT_TRUE(schemas.ok());
  EXPECT_EQ(schemas->size(), 1u);
  lsn = a->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 500u);
}

TEST_P(CdcStoreTest, DropTableForgetsOnlyThatTable) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->SaveSchema(Orders()).ok());
  ASSERT_TRUE(store->SaveSchema(Odd()).ok());
  ASSERT_TRUE(store->SaveTableState(SyncStatus(Orders().id, "public.orders", TableSyncState::kReady)).ok());
  ASSERT_TRUE(store->SaveTableState(SyncStatus(Odd().id, Odd().QualifiedName(), TableSyncState::kInit)).ok());
  ASSERT_TRUE(store->SaveConfirmedLsn(99).ok());

  ASSERT_TRUE(store->DropTable(Orders().id).ok());
  ASSERT_TRUE(store->DropTable(12345).ok());  // unknown: nothing to do
  auto schemas = store->LoadSchemas();
  ASSERT_TRUE(schemas.ok());
  ASSERT_EQ(schemas->size(), 1u);
  EXPECT_EQ((*schemas)[0], Odd());
  auto states = store->LoadTableStates();
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ((*states)[0].table_id, Odd().id);
  auto lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 99u);
}

TEST_P(CdcStoreTest, DropPipelineForgetsEverythingAndTheStoreStaysUsable) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->SaveSchema(Orders()).ok());
  ASSERT_TRUE(store->SaveTableState(SyncStatus(Orders().id, "public.orders", TableSyncState::kReady)).ok());
  ASSERT_TRUE(store->SaveConfirmedLsn(1000).ok());

  ASSERT_TRUE(store->DropPipeline().ok());
  auto schemas = store->LoadSchemas();
  ASSERT_TRUE(schemas.ok());
  EXPECT_TRUE(schemas->empty());
  auto states = store->LoadTableStates();
  ASSERT_TRUE(states.ok());
  EXPECT_TRUE(states->empty());
  auto lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0u);

  // Starting over from an LSN lower than the forgotten one works.
  ASSERT_TRUE(store->SaveConfirmedLsn(10).ok());
  lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 10u);
}

TEST_P(CdcStoreTest, ReopeningKeepsTheState) {
  if (GetParam() == Kind::kMemory) GTEST_SKIP() << "nothing outlives a memory store";
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->SaveSchema(Odd()).ok());
    ASSERT_TRUE(
        store->SaveTableState(SyncStatus(Odd().id, Odd().QualifiedName(), TableSyncState::kCatchup, 5)).ok());
    ASSERT_TRUE(store->SaveConfirmedLsn(0xABCDEF0123ull).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto schemas = store->LoadSchemas();
  ASSERT_TRUE(schemas.ok()) << schemas.status().ToString();
  ASSERT_EQ(schemas->size(), 1u);
  EXPECT_EQ((*schemas)[0], Odd());
  auto states = store->LoadTableStates();
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 1u);
  EXPECT_EQ((*states)[0].state, TableSyncState::kCatchup);
  EXPECT_EQ((*states)[0].lsn, 5u);
  auto lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0xABCDEF0123ull);
}

TEST_P(CdcStoreTest, SharesTheDatabaseWithTheStateStoreInEitherOpeningOrder) {
  if (GetParam() == Kind::kMemory) GTEST_SKIP() << "memory stores share nothing";
  {
    auto cdc = Open();
    ASSERT_NE(cdc, nullptr);
    ASSERT_TRUE(cdc->SaveConfirmedLsn(77).ok());
  }
  auto files = OpenStateStore(Config());
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  auto run = (*files)->BeginRun("orders-cdc", 1);
  EXPECT_TRUE(run.ok()) << run.status().ToString();
  auto cdc = Open();
  ASSERT_NE(cdc, nullptr);
  auto lsn = cdc->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 77u);
}

TEST_P(CdcStoreTest, OnlyPostgresWritesIntoADestinationTransaction) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const bool postgres = GetParam() == Kind::kPostgres;
  EXPECT_EQ(store->TransactionDatabase().empty(), !postgres);
  EXPECT_EQ(store->ConfirmedLsnStatements(10).empty(), !postgres);
  EXPECT_EQ(store->TableStateStatements(SyncStatus(1, "public.t", TableSyncState::kReady)).empty(),
            !postgres);
  if (postgres) {
    const std::string where = "127.0.0.1:" + std::to_string(server_->port()) + "/" + db_;
    EXPECT_EQ(store->TransactionDatabase(), where);
    EXPECT_EQ(store->Describe(), "postgres " + where + " (schema sluice)");
  } else if (GetParam() == Kind::kSqlite) {
    EXPECT_EQ(store->Describe(), "sqlite " + Config().path);
  } else {
    EXPECT_EQ(store->Describe(), "memory");
  }
}

INSTANTIATE_TEST_SUITE_P(AllStores, CdcStoreTest,
                         ::testing::Values(Kind::kMemory, Kind::kSqlite, Kind::kPostgres), KindName);

// --- JSON -------------------------------------------------------------------

TEST(CdcTableJson, RoundTripsEveryField) {
  for (const CdcTable& table : {Orders(), Odd(), CdcTable{}}) {
    auto text = CdcTableToJson(table);
    ASSERT_TRUE(text.ok()) << text.status().ToString();
    auto back = CdcTableFromJson(*text);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, table) << *text;
  }
  auto text = CdcTableToJson(Orders());
  ASSERT_TRUE(text.ok());
  EXPECT_NE(text->find("\"identity\":\"default\""), std::string::npos) << *text;
  EXPECT_NE(text->find("\"type_name\":\"numeric(12,2)\""), std::string::npos) << *text;
}

TEST(CdcTableJson, ColumnsWithoutATypeDefinitionLoad) {
  auto table = CdcTableFromJson(
      R"({"id":7,"schema":"s","name":"t","identity":"nothing","columns":[{"name":"a","type_oid":23,)"
      R"("type_modifier":-1,"type_name":"integer","key":true}]})");
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  CdcTable want;
  want.id = 7;
  want.schema = "s";
  want.name = "t";
  want.identity = CdcIdentity::kNothing;
  want.columns = {Column("a", 23, -1, "integer", true)};
  EXPECT_EQ(*table, want);
}

TEST(CdcTableJson, MalformedTextIsADataError) {
  for (const char* text :
       {"", "not json", "[]", "{\"id\": 1}",
        "{\"id\":-1,\"schema\":\"s\",\"name\":\"n\","
        "\"identity\":\"default\",\"columns\":[]}",
        "{\"id\":1,\"schema\":\"s\",\"name\":\"n\",\"identity\":\"sideways\",\"columns\":[]}",
        R"({"id":1,"schema":"s","name":"n","identity":"full","columns":[{"name":"a","type_oid":23,)"
        R"("type_modifier":3000000000,"type_name":"integer","key":true}]})",
        R"({"id":1,"schema":"s","name":"n","identity":"full","columns":[{"name":"a","type_oid":"23",)"
        R"("type_modifier":-1,"type_name":"integer","key":true}]})"}) {
    auto table = CdcTableFromJson(text);
    ASSERT_FALSE(table.ok()) << text;
    EXPECT_EQ(table.status().code(), StatusCode::kDataError) << text << ": " << table.status().ToString();
  }
}

TEST(CdcTableJson, InvalidUtf8IsRefusedWithTheTableName) {
  CdcTable table = Orders();
  table.columns[0].name = "bad\xff";
  auto text = CdcTableToJson(table);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(text.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(text.status().message().find("public.orders"), std::string::npos) << text.status().ToString();
}

// --- SQLite only ------------------------------------------------------------

TEST(SqliteCdcStore, CreatesTheDirectoryAndLsnBeyondInt64IsRefused) {
  TempDir dir("sluice-cdc-sqlite");
  const std::string path = dir.Path("a/b/state.db");
  auto store = OpenCdcStore(StateConfig{"", path, false}, "p");
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE(std::filesystem::exists(path));
  Status st = (*store)->SaveConfirmedLsn(0x8000000000000000ull);
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << st.ToString();
  auto lsn = (*store)->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0u);
}

// --- PostgreSQL only --------------------------------------------------------
using TestConnection = sluice::state::test_support::CheckpointClient;

class PostgresCdcStoreTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { SharedPostgres::Stop(); }
  void SetUp() override {
    std::string error;
    server_ = SharedPostgres::Get(&error);
    ASSERT_NE(server_, nullptr) << "PostgreSQL did not start: " << error;
    db_ = SharedPostgres::FreshDatabase();
  }
  std::unique_ptr<CdcStore> Open(const std::string& pipeline = "p") {
    auto store = OpenCdcStore(StateConfig{server_->Url(db_), "", false}, pipeline);
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
  std::string Scalar(const std::string& sql) {
    auto v = server_->QueryScalar(db_, sql);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : "<error>";
  }

  PgServer* server_ = nullptr;
  std::string db_;
};

TEST_F(PostgresCdcStoreTest, OpeningCreatesTheProgressRowAndAppliesMigrationTwo) {
  auto store = Open("p");
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Scalar("SELECT pipeline || ' ' || confirmed_lsn FROM sluice.cdc_progress"), "p 0");
  EXPECT_EQ(
      Scalar("SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM sluice.schema_migrations"),
      "1:file ledger and run log,2:cdc table states, schemas and progress,3:inputs of per-load output files,"
      "4:http validators of polled urls,5:workers, leases and file claims");
  EXPECT_EQ(Scalar("SELECT max(version) FROM sluice.schema_migrations"),
            std::to_string(LatestVersion(PostgresMigrations())));
  // Reopening neither migrates again nor resets the LSN.
  ASSERT_TRUE(store->SaveConfirmedLsn(5).ok());
  auto again = Open("p");
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(Scalar("SELECT count(*) || ' ' || max(confirmed_lsn) FROM sluice.cdc_progress"), "1 5");
}

TEST_F(PostgresCdcStoreTest, ConfirmedLsnStatementAffectsOneRowWhenNewerAndNoneWhenOlder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  TestConnection dest(server_->Url(db_));

  auto newer = store->ConfirmedLsnStatements(0x16B374D848ull);
  ASSERT_EQ(newer.size(), 1u);
  EXPECT_EQ(newer[0].expect_rows, 1);
  dest.Exec("BEGIN");
  EXPECT_EQ(dest.Run(newer[0]), 1);
  dest.Exec("COMMIT");
  auto lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0x16B374D848ull);

  auto older = store->ConfirmedLsnStatements(0x100);
  dest.Exec("BEGIN");
  EXPECT_EQ(dest.Run(older[0]), 0);
  dest.Exec("ROLLBACK");
  lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0x16B374D848ull);

  // The same LSN again (a retried batch that did commit) is not backwards.
  EXPECT_TRUE(dest.Commit(store->ConfirmedLsnStatements(0x16B374D848ull)));
  // With the table state in the same transaction: all or nothing.
  TableSyncStatus ready = SyncStatus(7, "public.t", TableSyncState::kReady, 0x16B374D848ull);
  std::vector<CommitStatement> batch = store->TableStateStatements(ready);
  ASSERT_EQ(batch.size(), 1u);
  EXPECT_EQ(batch[0].expect_rows, -1);
  auto stale = store->ConfirmedLsnStatements(0x200);
  batch.insert(batch.begin(), stale.begin(), stale.end());
  EXPECT_FALSE(dest.Commit(batch));
  auto states = store->LoadTableStates();
  ASSERT_TRUE(states.ok());
  EXPECT_TRUE(states->empty());

  batch = store->ConfirmedLsnStatements(0x16B374D900ull);
  auto state_statements = store->TableStateStatements(ready);
  batch.insert(batch.end(), state_statements.begin(), state_statements.end());
  EXPECT_TRUE(dest.Commit(batch));
  states = store->LoadTableStates();
  ASSERT_TRUE(states.ok());
  ASSERT_EQ(states->size(), 1u);
  ExpectSameStatus((*states)[0], ready);
  lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 0x16B374D900ull);
}

TEST_F(PostgresCdcStoreTest, ConfirmedLsnStatementsOnlyTouchTheirPipeline) {
  auto a = Open("a");
  auto b = Open("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(b->SaveConfirmedLsn(1000).ok());
  TestConnection dest(server_->Url(db_));
  EXPECT_TRUE(dest.Commit(a->ConfirmedLsnStatements(10)));
  auto lsn = b->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 1000u);
  lsn = a->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok());
  EXPECT_EQ(*lsn, 10u);
}

TEST_F(PostgresCdcStoreTest, ASecondWriterOfAnOlderBatchAffectsNoRowAfterTheFirstCommits) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  TestConnection first(server_->Url(db_));
  TestConnection second(server_->Url(db_));
  first.Exec("BEGIN");
  EXPECT_EQ(first.Run(store->ConfirmedLsnStatements(2000)[0]), 1);
  first.Exec("COMMIT");
  second.Exec("BEGIN");
  EXPECT_EQ(second.Run(store->ConfirmedLsnStatements(1500)[0]), 0);
  second.Exec("ROLLBACK");
  EXPECT_EQ(Scalar("SELECT confirmed_lsn FROM sluice.cdc_progress WHERE pipeline = 'p'"), "2000");
}

TEST_F(PostgresCdcStoreTest, TablesArePlainWithReadableColumns) {
  auto store = Open("nightly");
  ASSERT_NE(store, nullptr);
  TableSyncStatus errored = SyncStatus(Orders().id, "public.orders", TableSyncState::kErrored, 77);
  errored.attempts = 2;
  errored.error = "boom";
  errored.retry_at_unix_ms = 1700000000000;
  ASSERT_TRUE(store->SaveTableState(errored).ok());
  ASSERT_TRUE(store->SaveSchema(Orders()).ok());
  EXPECT_EQ(
      Scalar(
          "SELECT pipeline || ' ' || table_id || ' ' || table_name || ' ' || state || ' ' || lsn || ' ' || "
          "attempts || ' ' || error || ' ' || retry_at_unix_ms FROM sluice.cdc_table_states"),
      "nightly 16384 public.orders errored 77 2 boom 1700000000000");
  EXPECT_EQ(Scalar("SELECT table_name || ' ' || (schema_json::jsonb -> 'columns' -> 1 ->> 'type_name') "
                   "FROM sluice.cdc_table_schemas"),
            "public.orders numeric(12,2)");
  // An empty error is NULL, as in the run log.
  ASSERT_TRUE(store->SaveTableState(SyncStatus(Orders().id, "public.orders", TableSyncState::kReady)).ok());
  EXPECT_EQ(Scalar("SELECT (error IS NULL)::text FROM sluice.cdc_table_states"), "true");
}

TEST_F(PostgresCdcStoreTest, ReconnectsAfterTheServerRestarted) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->SaveConfirmedLsn(5).ok());
  ASSERT_TRUE(server_->Stop(testing::PgStopMode::kImmediate).ok());
  ASSERT_TRUE(server_->StartAgain().ok());
  EXPECT_TRUE(store->SaveConfirmedLsn(6).ok());
  auto lsn = store->LoadConfirmedLsn();
  ASSERT_TRUE(lsn.ok()) << lsn.status().ToString();
  EXPECT_EQ(*lsn, 6u);
}

}  // namespace
}  // namespace sluice::state
