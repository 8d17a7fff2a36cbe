// Shared helpers for the end-to-end tests: one PostgreSQL server per test
// binary (started on first use), a fresh database per test, running
// pipelines through the CLI, loading reference data with PostgreSQL's own
// COPY, and comparing tables row for row.
//
// Thread-safety: tests run on gtest's main thread; nothing here is meant to
// be called from several threads at once.
#pragma once

#include <gtest/gtest.h>
#include <httplib.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/duckdb_engine.h"
#include "harness/cli_runner.h"
#include "harness/pg_server.h"
#include "harness/subprocess.h"
#include "harness/temp_dir.h"

namespace sluice::e2e {

using sluice::testing::CliOptions;
using sluice::testing::CliResult;
using sluice::testing::PgRows;
using sluice::testing::PgServer;
using sluice::testing::TempDir;

/// The binary's one PostgreSQL server, started on first use and stopped when
/// the process exits (the harness's watchdog covers crashes).
inline PgServer* SharedPg() {
  static std::unique_ptr<PgServer> server;
  static bool tried = false;
  if (!tried) {
    tried = true;
    auto started = PgServer::Start();
    if (!started.ok()) {
      ADD_FAILURE() << "cannot start PostgreSQL: " << started.status().ToString();
      return nullptr;
    }
    server = std::move(started).value();
  }
  return server.get();
}

/// A database name unique to the running test: suite_name lower-cased.
inline std::string DbNameForCurrentTest() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "_" + info->name();
  std::string out = "t_";
  for (char c : name) {
    out += std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(static_cast<unsigned char>(c)))
                                                       : '_';
  }
  if (out.size() > 60) out = out.substr(0, 50) + "_" + std::to_string(std::hash<std::string>{}(out) % 100000);
  return out;
}

/// Runs `sluice args...` with progress output off unless asked for.
inline CliResult Sluice(const std::vector<std::string>& args, const CliOptions& options = {}) {
  return sluice::testing::RunCli(args, options);
}

/// exit code, stdout and stderr, for assertion messages.
inline std::string Describe(const CliResult& r) {
  return sluice::testing::DescribeExit(r) + "\n--- stdout ---\n" + r.out.substr(0, 4000) + "\n--- stderr ---\n" +
         r.err.substr(0, 4000);
}

/// Writes the pipeline file into dir and runs it once.
inline CliResult RunPipeline(const TempDir& dir, const std::string& toml, const CliOptions& options = {},
                             const std::string& name = "pipeline.toml") {
  std::string file = dir.Write(name, toml);
  return Sluice({"run", file, "--once", "--progress", "never"}, options);
}

inline CliResult ValidatePipeline(const TempDir& dir, const std::string& toml, const CliOptions& options = {},
                                  const std::string& name = "pipeline.toml") {
  std::string file = dir.Write(name, toml);
  return Sluice({"validate", file}, options);
}

/// A [destination] section for a PostgreSQL table.
inline std::string PgDestination(const std::string& url, const std::string& table, const std::string& mode = "append",
                                 const std::string& extra = "") {
  return "[destination]\ntype = \"postgres\"\nurl = '" + url + "'\ntable = '" + table + "'\nmode = \"" + mode + "\"\n" +
         extra + "\n";
}

inline std::string DuckDbDestination(const std::string& path, const std::string& table,
                                     const std::string& mode = "append", const std::string& extra = "") {
  return "[destination]\ntype = \"duckdb\"\npath = '" + path + "'\ntable = '" + table + "'\nmode = \"" + mode + "\"\n" +
         extra + "\n";
}

inline std::string EngineSection() { return "[engine]\nthreads = 2\nmemory_limit = \"512MB\"\n"; }

/// Runs a COPY ... FROM STDIN statement in db and feeds it the file's bytes,
/// so PostgreSQL parses the file itself. Returns "" or the error.
inline std::string PgCopyFromFile(const std::string& conninfo, const std::string& copy_sql, const std::string& file) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  auto close = [&] { PQfinish(conn); };
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string e = PQerrorMessage(conn);
    close();
    return "connect: " + e;
  }
  PGresult* res = PQexec(conn, copy_sql.c_str());
  if (PQresultStatus(res) != PGRES_COPY_IN) {
    std::string e = PQerrorMessage(conn);
    PQclear(res);
    close();
    return "COPY: " + e;
  }
  PQclear(res);
  std::ifstream in(file, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (PQputCopyData(conn, data.data(), static_cast<int>(data.size())) != 1 || PQputCopyEnd(conn, nullptr) != 1) {
    std::string e = PQerrorMessage(conn);
    close();
    return "COPY data: " + e;
  }
  std::string error;
  while ((res = PQgetResult(conn)) != nullptr) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK) error += PQresultErrorMessage(res);
    PQclear(res);
  }
  close();
  return error;
}

/// Renders rows for failure messages.
inline std::string RowsToString(const PgRows& rows, size_t limit = 20) {
  std::string out;
  for (size_t i = 0; i < rows.size() && i < limit; ++i) {
    out += "  (";
    for (size_t c = 0; c < rows[i].size(); ++c) {
      if (c) out += " | ";
      out += rows[i][c] ? *rows[i][c] : "NULL";
    }
    out += ")\n";
  }
  if (rows.size() > limit) out += "  ... " + std::to_string(rows.size() - limit) + " more\n";
  return out;
}

/// Compares two queries' results as multisets in PostgreSQL (EXCEPT ALL both
/// ways). Returns "" when equal, otherwise the rows only one side has.
inline std::string PgDiff(const PgServer& pg, const std::string& db, const std::string& left_sql,
                          const std::string& right_sql) {
  auto only_left = pg.Query(db, "(" + left_sql + ") EXCEPT ALL (" + right_sql + ")");
  auto only_right = pg.Query(db, "(" + right_sql + ") EXCEPT ALL (" + left_sql + ")");
  if (!only_left.ok()) return "query failed: " + only_left.status().ToString();
  if (!only_right.ok()) return "query failed: " + only_right.status().ToString();
  if (only_left->empty() && only_right->empty()) return "";
  return "rows only in [" + left_sql + "]:\n" + RowsToString(*only_left) + "rows only in [" + right_sql + "]:\n" +
         RowsToString(*only_right);
}

/// Compares two tables row for row through each row's text form, which is
/// stricter than `=` (an interval of 1 mon equals one of 30 days, but does
/// not print the same) and works for json, which has no equality.
inline std::string PgTableDiff(const PgServer& pg, const std::string& db, const std::string& left_table,
                               const std::string& right_table) {
  return PgDiff(pg, db, "SELECT l::text FROM " + left_table + " l", "SELECT r::text FROM " + right_table + " r");
}

inline int64_t PgCount(const PgServer& pg, const std::string& db, const std::string& table) {
  auto v = pg.QueryScalar(db, "SELECT count(*) FROM " + table);
  if (!v.ok()) {
    ADD_FAILURE() << "count(*) FROM " << table << ": " << v.status().ToString();
    return -1;
  }
  return std::stoll(*v);
}

/// column name -> format_type(...) for a PostgreSQL table, in column order.
inline std::vector<std::pair<std::string, std::string>> PgColumnTypes(const PgServer& pg, const std::string& db,
                                                                      const std::string& table) {
  std::vector<std::pair<std::string, std::string>> out;
  auto rows = pg.Query(db,
                       "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                       "WHERE attrelid = '" +
                           table + "'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum");
  if (!rows.ok()) {
    ADD_FAILURE() << "column types of " << table << ": " << rows.status().ToString();
    return out;
  }
  for (const auto& r : *rows) out.emplace_back(r[0].value_or(""), r[1].value_or(""));
  return out;
}

inline bool PgTableExists(const PgServer& pg, const std::string& db, const std::string& table) {
  auto v = pg.QueryScalar(db, "SELECT (to_regclass('" + table + "') IS NOT NULL)::text");
  return v.ok() && *v == "true";
}

/// An in-memory DuckDB for reading outputs and writing fixtures.
inline std::unique_ptr<engine::DuckDbEngine> Duck() {
  auto e = engine::DuckDbEngine::Open({});
  if (!e.ok()) {
    ADD_FAILURE() << "cannot open DuckDB: " << e.status().ToString();
    return nullptr;
  }
  return std::move(e).value();
}

using DuckRows = std::vector<std::vector<std::optional<std::string>>>;

inline DuckRows DuckQuery(engine::DuckDbEngine& e, const std::string& sql) {
  auto rows = e.QueryRows(sql);
  if (!rows.ok()) {
    ADD_FAILURE() << "DuckDB query failed: " << sql << "\n" << rows.status().ToString();
    return {};
  }
  return std::move(rows).value();
}

inline void DuckExec(engine::DuckDbEngine& e, const std::string& sql) {
  Status s = e.Execute(sql);
  if (!s.ok()) ADD_FAILURE() << "DuckDB statement failed: " << sql << "\n" << s.ToString();
}

/// The single value of a DuckDB query ("<NULL>" for NULL, "<error>" on failure).
inline std::string DuckScalar(engine::DuckDbEngine& e, const std::string& sql) {
  auto rows = DuckQuery(e, sql);
  if (rows.empty() || rows[0].empty()) return "<error>";
  return rows[0][0].value_or("<NULL>");
}

/// Opens a DuckDB database file the way a user would and returns the value
/// of a one-value query on it.
inline std::string DuckFileScalar(const std::string& path, const std::string& sql) {
  auto e = Duck();
  if (!e) return "<error>";
  Status s = e->Execute("ATTACH " + engine::QuoteLiteral(path) + " AS o");
  if (!s.ok()) return "<attach failed: " + s.ToString() + ">";
  std::string v = DuckScalar(*e, sql);
  (void)e->Execute("DETACH o");
  return v;
}

/// A CSV of n rows "id,name,amount" with ids from first_id, written to path.
inline void WriteSimpleCsv(const std::string& path, int64_t first_id, int64_t n) {
  std::string data = "id,name,amount\n";
  data.reserve(static_cast<size_t>(n) * 24 + 16);
  char buf[96];
  for (int64_t i = 0; i < n; ++i) {
    int64_t id = first_id + i;
    int len = std::snprintf(buf, sizeof(buf), "%lld,name_%lld,%lld.%02lld\n", static_cast<long long>(id),
                            static_cast<long long>(id), static_cast<long long>(id % 100000),
                            static_cast<long long>(id % 100));
    data.append(buf, static_cast<size_t>(len));
  }
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) ADD_FAILURE() << "cannot write " << path;
}

inline std::string SimpleCsvSource(const std::string& path, const std::string& extra = "") {
  return "[source]\ntype = \"files\"\npath = '" + path +
         "'\nformat = \"csv\"\nheader = true\ncolumns = { id = \"BIGINT\", name = \"VARCHAR\", amount = "
         "\"DECIMAL(12,2)\" }\n" +
         extra + "\n";
}

/// Base fixture: the shared server and a fresh database for each test.
class PgTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = SharedPg();
    ASSERT_NE(pg_, nullptr);
    db_ = DbNameForCurrentTest();
    (void)pg_->Exec("postgres", "DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)");
    Status s = pg_->CreateDatabase(db_);
    ASSERT_TRUE(s.ok()) << s.ToString();
    url_ = pg_->Url(db_);
  }

  std::string Conninfo() const { return url_; }
  void Exec(const std::string& sql) {
    Status s = pg_->Exec(db_, sql);
    ASSERT_TRUE(s.ok()) << sql << "\n" << s.ToString();
  }
  std::string Scalar(const std::string& sql) {
    auto v = pg_->QueryScalar(db_, sql);
    if (!v.ok()) {
      ADD_FAILURE() << sql << "\n" << v.status().ToString();
      return "<error>";
    }
    return *v;
  }
  int64_t Count(const std::string& table) { return PgCount(*pg_, db_, table); }
  /// A scalar, or "" while the query fails (tables not created yet).
  std::string ScalarOrEmpty(const std::string& sql) {
    auto v = pg_->QueryScalar(db_, sql);
    return v.ok() ? *v : std::string();
  }

  PgServer* pg_ = nullptr;
  std::string db_;
  std::string url_;
  TempDir dir_{"sluice-e2e"};
};

/// A fixture run once per destination kind ("postgres", "duckdb") for
/// behaviour both must share. The destination table is called `items`; in
/// Scalar() queries `{T}` stands for it. PostgreSQL is started only for the
/// postgres instance.
enum class DestinationKind { kPostgres, kDuckDb };

/// Printed in test names: ctest lists `Suite.Test/postgres`.
inline void PrintTo(DestinationKind kind, std::ostream* os) {
  *os << (kind == DestinationKind::kPostgres ? "postgres" : "duckdb");
}

inline auto AllDestinations() { return ::testing::Values(DestinationKind::kPostgres, DestinationKind::kDuckDb); }

class EachDestination : public ::testing::TestWithParam<DestinationKind> {
 protected:
  void SetUp() override {
    if (postgres()) {
      pg_ = SharedPg();
      ASSERT_NE(pg_, nullptr);
      db_ = DbNameForCurrentTest();
      (void)pg_->Exec("postgres", "DROP DATABASE IF EXISTS " + db_ + " WITH (FORCE)");
      Status s = pg_->CreateDatabase(db_);
      ASSERT_TRUE(s.ok()) << s.ToString();
    }
    duck_path_ = dir_.Path("out.duckdb");
  }

  bool postgres() const { return GetParam() == DestinationKind::kPostgres; }

  std::string Destination(const std::string& mode = "append", const std::string& extra = "") const {
    return postgres() ? PgDestination(pg_->Url(db_), "public.items", mode, extra)
                      : DuckDbDestination(duck_path_, "items", mode, extra);
  }

  /// A one-value query; {T} stands for the destination table.
  std::string Scalar(std::string sql) const {
    std::string table = postgres() ? "public.items" : "o.items";
    for (size_t pos; (pos = sql.find("{T}")) != std::string::npos;) sql.replace(pos, 3, table);
    if (!postgres()) return DuckFileScalar(duck_path_, sql);
    auto v = pg_->QueryScalar(db_, sql);
    return v.ok() ? *v : "<error: " + v.status().ToString() + ">";
  }

  bool TableExists() const {
    if (postgres()) return PgTableExists(*pg_, db_, "public.items");
    if (!std::filesystem::exists(duck_path_)) return false;
    return DuckFileScalar(duck_path_,
                          "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'o' AND "
                          "table_name = 'items'") == "1";
  }

  /// Creates `items` outside sluice (column list in SQL common to both) and
  /// fills it with n rows (ids from first_id, name 'pre', amount amount_sql).
  void CreateItems(const std::string& columns_sql, int64_t first_id, int64_t n,
                   const std::string& amount_sql = "1.00") {
    std::string fill = "INSERT INTO {T} (id, name, amount) SELECT g, 'pre', " + amount_sql + " FROM generate_series(" +
                       std::to_string(first_id) + ", " + std::to_string(first_id + n - 1) + ") AS s(g)";
    if (postgres()) {
      ASSERT_TRUE(pg_->Exec(db_, "CREATE TABLE public.items " + columns_sql).ok());
      std::string sql = fill;
      sql.replace(sql.find("{T}"), 3, "public.items");
      Status s = pg_->Exec(db_, sql);
      ASSERT_TRUE(s.ok()) << s.ToString();
      return;
    }
    auto e = Duck();
    ASSERT_NE(e, nullptr);
    DuckExec(*e, "ATTACH " + engine::QuoteLiteral(duck_path_) + " AS o");
    DuckExec(*e, "CREATE TABLE o.items " + columns_sql);
    std::string sql = fill;
    sql.replace(sql.find("{T}"), 3, "o.items");
    DuckExec(*e, sql);
    DuckExec(*e, "DETACH o");
  }

  PgServer* pg_ = nullptr;
  std::string db_;
  TempDir dir_{"sluice-e2e"};
  std::string duck_path_;
};

/// Polls `done` every 50 ms for up to `seconds`; its last answer.
inline bool WaitUntil(const std::function<bool()>& done, int seconds) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline && !done()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

/// "host:" of this machine, as worker names start.
inline std::string HostPrefix() {
  char host[256] = {};
  gethostname(host, sizeof(host) - 1);
  return std::string(host) + ":";
}

/// The monitoring port a `sluice serve` logged; 0 when it did not.
inline int MonitoringPort(sluice::testing::CliProcess* proc) {
  if (!proc->WaitForOutput("monitoring on http://", 30000)) return 0;
  std::smatch m;
  std::string err = proc->StderrSoFar();
  if (!std::regex_search(err, m, std::regex("monitoring on http://[^ ]+:([0-9]+)"))) return 0;
  return std::stoi(m[1]);
}

/// Waits up to `seconds` until the /status of the `serve` process `proc`
/// lists `n` live workers for its first pipeline; that pipeline's status
/// (whatever it was last, on a timeout).
inline nlohmann::json WaitForWorkers(sluice::testing::CliProcess* proc, size_t n, int seconds) {
  nlohmann::json pipeline;
  int port = MonitoringPort(proc);
  if (port == 0) return pipeline;
  httplib::Client http("127.0.0.1", port);
  WaitUntil(
      [&] {
        auto res = http.Get("/status");
        if (!res || res->status != 200) return false;
        pipeline = nlohmann::json::parse(res->body)["pipelines"][0];
        return pipeline.contains("workers") && pipeline["workers"].size() == n;
      },
      seconds);
  return pipeline;
}

}  // namespace sluice::e2e
