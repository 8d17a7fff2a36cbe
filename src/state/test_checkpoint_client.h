// Test helper for the state store tests: a plain libpq connection of the
// test itself, playing the destination that runs a store's checkpoint
// statements (CheckpointStatement, CommitStatement: anything with sql,
// params and expect_rows) inside its own transaction.
#pragma once

#include <gtest/gtest.h>
#include <libpq-fe.h>

#include <cstdint>
#include <string>
#include <vector>

namespace sluice::state::test_support {

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
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
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
