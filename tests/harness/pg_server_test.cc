// Tests that PgServer gives a real, private, restartable PostgreSQL 15.
#include "harness/pg_server.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>

namespace sluice::testing {
namespace {

using std::string;

std::unique_ptr<PgServer> StartOrFail(const PgServerOptions& options = {}) {
  auto server = PgServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

pid_t PostmasterPid(const PgServer& server) {
  std::ifstream file(server.data_dir() + "/postmaster.pid");
  long pid = -1;
  file >> pid;
  return static_cast<pid_t>(pid);
}

// Alive and not a zombie: in a container whose init does not reap, a dead
// postmaster can linger as a zombie, which is not a running server.
bool ProcessAlive(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  string line;
  if (!std::getline(stat, line)) return false;
  size_t paren = line.rfind(')');
  return paren != string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

bool EventuallyDead(pid_t pid) {
  for (int i = 0; i < 250 && ProcessAlive(pid); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return !ProcessAlive(pid);
}

TEST(PgServer, StartsPostgres15OnLoopbackWithLogicalWal) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->running());
  EXPECT_GT(server->port(), 0);

  auto version = server->QueryScalar("postgres", "SHOW server_version_num");
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_EQ(version.value().substr(0, 2), "15");
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW wal_level").ValueOr(""), "logical");
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW listen_addresses").ValueOr(""), "127.0.0.1");
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW port").ValueOr(""), std::to_string(server->port()));
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW server_encoding").ValueOr(""), "UTF8");
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW TimeZone").ValueOr(""), "UTC");
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW max_replication_slots").ValueOr(""), "10");
  EXPECT_TRUE(std::filesystem::exists(server->data_dir() + "/PG_VERSION"));
  // PostgreSQL refuses root, so as root the harness must run it as another user.
  struct stat proc_info;
  ASSERT_EQ(stat(("/proc/" + std::to_string(PostmasterPid(*server))).c_str(), &proc_info), 0);
  EXPECT_NE(proc_info.st_uid, 0u);
}

TEST(PgServer, CreateDatabaseThenQueryReturnsTextRowsWithNulls) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->CreateDatabase("Sluice Test").ok());
  ASSERT_TRUE(server
                  ->Exec("Sluice Test",
                         "CREATE TABLE t (id int PRIMARY KEY, name text, score float8);"
                         "INSERT INTO t VALUES (1, 'a', 1.5), (2, NULL, NULL), (3, 'ü''x', -2)")
                  .ok());

  auto rows = server->Query("Sluice Test", "SELECT id, name, score FROM t ORDER BY id");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  PgRows expected = {{"1", "a", "1.5"}, {"2", std::nullopt, std::nullopt}, {"3", "ü'x", "-2"}};
  EXPECT_EQ(rows.value(), expected);
  EXPECT_EQ(server->QueryScalar("Sluice Test", "SELECT count(*) FROM t").ValueOr(""), "3");
  EXPECT_EQ(server->QueryScalar("Sluice Test", "SELECT current_database()").ValueOr(""), "Sluice Test");
  // The table exists only in the database it was created in.
  EXPECT_FALSE(server->Query("postgres", "SELECT * FROM t").ok());
}

TEST(PgServer, ErrorsSayWhatFailed) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);

  auto missing_table = server->Query("postgres", "SELECT * FROM no_such_table");
  ASSERT_FALSE(missing_table.ok());
  EXPECT_EQ(missing_table.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(missing_table.status().message().find("42P01"), string::npos);
  EXPECT_NE(missing_table.status().message().find("no_such_table"), string::npos);

  auto two_rows = server->QueryScalar("postgres", "SELECT 1 UNION ALL SELECT 2");
  ASSERT_FALSE(two_rows.ok());
  EXPECT_NE(two_rows.status().message().find("2 rows"), string::npos);

  auto null_value = server->QueryScalar("postgres", "SELECT NULL");
  ASSERT_FALSE(null_value.ok());
  EXPECT_NE(null_value.status().message().find("NULL"), string::npos);

  auto missing_db = server->Query("no_such_db", "SELECT 1");
  ASSERT_FALSE(missing_db.ok());
  EXPECT_EQ(missing_db.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(missing_db.status().message().find("no_such_db"), string::npos);
}

TEST(PgServer, StopThenStartAgainKeepsDataAndPort) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->CreateDatabase("keep").ok());
  ASSERT_TRUE(server->Exec("keep", "CREATE TABLE k (v text); INSERT INTO k VALUES ('before')").ok());
  const int port = server->port();
  const pid_t first_pid = PostmasterPid(*server);
  ASSERT_GT(first_pid, 0);

  // Immediate stop is a crash as far as PostgreSQL knows: committed rows
  // must come back through WAL recovery.
  ASSERT_TRUE(server->Stop().ok());
  EXPECT_FALSE(server->running());
  EXPECT_TRUE(EventuallyDead(first_pid));
  auto while_down = server->Query("keep", "SELECT 1");
  ASSERT_FALSE(while_down.ok());
  EXPECT_EQ(while_down.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE(server->Stop().ok()) << "stopping a stopped server is a no-op";

  auto started = server->StartAgain();
  ASSERT_TRUE(started.ok()) << started.ToString();
  EXPECT_TRUE(server->running());
  EXPECT_EQ(server->port(), port);
  EXPECT_EQ(server->QueryScalar("keep", "SELECT string_agg(v, ',') FROM k").ValueOr(""), "before");

  ASSERT_TRUE(server->Exec("keep", "INSERT INTO k VALUES ('after')").ok());
  ASSERT_TRUE(server->Stop(PgStopMode::kFast).ok());
  ASSERT_TRUE(server->StartAgain().ok());
  EXPECT_EQ(server->QueryScalar("keep", "SELECT string_agg(v, ',' ORDER BY v) FROM k").ValueOr(""),
            "after,before");
  EXPECT_NE(server->LogTail().find("database system is ready"), string::npos);
}

TEST(PgServer, UrlConnectsWithPlainLibpqIncludingReplication) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->CreateDatabase("url_db").ok());
  EXPECT_EQ(server->Url("url_db"),
            "postgresql://postgres@127.0.0.1:" + std::to_string(server->port()) + "/url_db");
  EXPECT_EQ(server->Url(), "postgresql://postgres@127.0.0.1:" + std::to_string(server->port()) + "/postgres");

  PGconn* conn = PQconnectdb(server->Url("url_db").c_str());
  ASSERT_EQ(PQstatus(conn), CONNECTION_OK) << PQerrorMessage(conn);
  PGresult* res = PQexec(conn, "SELECT current_database(), current_user");
  ASSERT_EQ(PQresultStatus(res), PGRES_TUPLES_OK) << PQerrorMessage(conn);
  EXPECT_STREQ(PQgetvalue(res, 0, 0), "url_db");
  EXPECT_STREQ(PQgetvalue(res, 0, 1), "postgres");
  PQclear(res);
  PQfinish(conn);

  // What CDC needs: a pgoutput slot, and a walsender connection by URL.
  ASSERT_TRUE(
      server->Exec("url_db", "SELECT pg_create_logical_replication_slot('harness_slot', 'pgoutput')").ok());
  PGconn* repl = PQconnectdb((server->Url("url_db") + "?replication=database").c_str());
  ASSERT_EQ(PQstatus(repl), CONNECTION_OK) << PQerrorMessage(repl);
  PGresult* ident = PQexec(repl, "IDENTIFY_SYSTEM");
  ASSERT_EQ(PQresultStatus(ident), PGRES_TUPLES_OK) << PQerrorMessage(repl);
  EXPECT_STREQ(PQgetvalue(ident, 0, 3), "url_db");
  PQclear(ident);
  PQfinish(repl);
}

TEST(PgServer, TwoServersRunSideBySide) {
  auto a = StartOrFail();
  auto b = StartOrFail();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a->port(), b->port());
  EXPECT_NE(a->data_dir(), b->data_dir());
  ASSERT_TRUE(a->Exec("postgres", "CREATE TABLE only_in_a (x int)").ok());
  EXPECT_EQ(a->QueryScalar("postgres", "SELECT to_regclass('only_in_a') IS NOT NULL").ValueOr(""), "t");
  EXPECT_EQ(b->QueryScalar("postgres", "SELECT to_regclass('only_in_a') IS NOT NULL").ValueOr(""), "f");
}

TEST(PgServer, DestructorStopsServerAndRemovesDirectory) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  const pid_t pid = PostmasterPid(*server);
  const string dir = std::filesystem::path(server->data_dir()).parent_path();
  ASSERT_TRUE(ProcessAlive(pid));
  server.reset();
  EXPECT_TRUE(EventuallyDead(pid));
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(PgServer, OptionsAndExtraSettingsApply) {
  PgServerOptions options;
  options.logical = false;
  options.extra_settings = {"max_connections = 42", "timezone = 'Europe/Paris'"};
  auto server = StartOrFail(options);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW max_connections").ValueOr(""), "42");
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW TimeZone").ValueOr(""), "Europe/Paris");
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW wal_level").ValueOr(""), "replica");
  EXPECT_EQ(server->QueryScalar("postgres", "SHOW fsync").ValueOr(""), "off");
}

TEST(PgServer, FailedStartReportsServerLog) {
  PgServerOptions options;
  options.extra_settings = {"shared_buffers = 'lots'"};
  auto server = PgServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kUnavailable);
  // The reason is only in the server's log, so the message must carry it.
  EXPECT_NE(server.status().message().find("shared_buffers"), string::npos) << server.status().ToString();
}

TEST(PgServer, MissingBinariesAreNotFound) {
  PgServerOptions options;
  options.bin_dir = "/nonexistent/postgresql/bin";
  auto server = PgServer::Start(options);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), StatusCode::kNotFound);
  EXPECT_NE(server.status().message().find("/nonexistent/postgresql/bin/initdb"), string::npos);
}

}  // namespace
}  // namespace sluice::testing
