// Helpers shared by the state store tests: one PostgreSQL server for all
// of them, and a plain libpq connection of the test itself playing the
// destination that runs a store's checkpoint statements (CommitStatement,
// CommitStatement: anything with sql, params and expect_rows) inside its own
// transaction.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "harness/pg_server.h"
#include "harness/temp_dir.h"
#include "state/state_store.h"

namespace sluice::state::test_support {

/// One PostgreSQL server for the state store tests, started on first use
/// and stopped by the suites' TearDownTestSuite (the next Get starts it again).
class SharedPostgres {
 public:
  static sluice::testing::PgServer* Get(std::string* error) {
    if (server_ == nullptr && error_.empty()) {
      auto server = sluice::testing::PgServer::Start();
      if (server.ok()) {
        server_ = std::move(server).value().release();
      } else {
        error_ = server.status().ToString();
      }
    }
    *error = error_;
    return server_;
  }
  static void Stop() {
    delete server_;
    server_ = nullptr;
    error_.clear();
  }
  /// A new, empty database for one test.
  static std::string FreshDatabase() {
    static std::atomic<int> counter{0};
    std::string name = "state_test_" + std::to_string(++counter);
    Status st = server_->CreateDatabase(name);
    EXPECT_TRUE(st.ok()) << st.ToString();
    return name;
  }

 private:
  static inline sluice::testing::PgServer* server_ = nullptr;
  static inline std::string error_;
};

enum class StoreKind { kMemory, kSqlite, kPostgres };

inline std::string StoreKindName(const ::testing::TestParamInfo<StoreKind>& info) {
  switch (info.param) {
    case StoreKind::kMemory:
      return "Memory";
    case StoreKind::kSqlite:
      return "Sqlite";
    case StoreKind::kPostgres:
      return "Postgres";
  }
  return "Unknown";
}

/// A test run once per kind of store: Config() is a fresh location for it.
class StoreTest : public ::testing::TestWithParam<StoreKind> {
 protected:
  static void TearDownTestSuite() { SharedPostgres::Stop(); }

  void SetUp() override {
    if (GetParam() == StoreKind::kPostgres) {
      std::string error;
      server_ = SharedPostgres::Get(&error);
      ASSERT_NE(server_, nullptr) << "PostgreSQL did not start: " << error;
      db_ = SharedPostgres::FreshDatabase();
    }
  }

  StateConfig Config() {
    StateConfig config;
    switch (GetParam()) {
      case StoreKind::kMemory:
        config.memory = true;
        break;
      case StoreKind::kSqlite:
        config.path = dir_.Path("nested/dir/state.db");
        break;
      case StoreKind::kPostgres:
        config.url = server_->Url(db_);
        break;
    }
    return config;
  }

  sluice::testing::PgServer* server_ = nullptr;
  std::string db_;
  sluice::testing::TempDir dir_{"sluice-state-test"};
};

class CheckpointClient {
 public:
  explicit CheckpointClient(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    EXPECT_EQ(PQstatus(conn_), CONNECTION_OK) << PQerrorMessage(conn_);
  }
  ~CheckpointClient() { PQfinish(conn_); }
  CheckpointClient(const CheckpointClient&) = delete;
  CheckpointClient& operator=(const CheckpointClient&) = delete;

  void Exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    EXPECT_EQ(PQresultStatus(r), PGRES_COMMAND_OK) << sql << ": " << PQerrorMessage(conn_);
    PQclear(r);
  }
  /// Rows affected, or -1 on error.
  template <typename Statement>
  int64_t Run(const Statement& st) {
    std::vector<const char*> values;
    for (const auto& p : st.params) values.push_back(p ? p->c_str() : nullptr);
    PGresult* r = PQexecParams(conn_, st.sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                               nullptr, nullptr, 0);
    int64_t affected = -1;
    if (PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK) {
      affected = std::stoll(PQcmdTuples(r));
    } else {
      ADD_FAILURE() << PQresultErrorMessage(r);
    }
    PQclear(r);
    return affected;
  }
  /// Runs the statements in one transaction, committing only if each
  /// affected the rows it expects; returns whether it committed.
  template <typename Statement>
  bool Commit(const std::vector<Statement>& statements) {
    Exec("BEGIN");
    bool ok = true;
    for (const auto& st : statements) {
      int64_t affected = Run(st);
      if (st.expect_rows >= 0 && affected != st.expect_rows) ok = false;
    }
    Exec(ok ? "COMMIT" : "ROLLBACK");
    return ok;
  }

 private:
  PGconn* conn_;
};

}  // namespace sluice::state::test_support
