#include "state/sqlite_db.h"

#include <chrono>
#include <filesystem>
#include <system_error>
#include <thread>
#include <utility>

#include "state/migrations.h"

namespace sluice::state {
namespace {

constexpr int kBusyTimeoutMs = 10000;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<SqliteDb>> SqliteDb::Open(const std::string& path) {
  std::unique_ptr<SqliteDb> db(new SqliteDb(path));
  SLUICE_RETURN_IF_ERROR(db->OpenAndMigrate());
  return db;
}

SqliteDb::~SqliteDb() {
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Status SqliteDb::OpenAndMigrate() {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path_).parent_path();
  if (!parent.empty()) {
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return Status::IoError("cannot create the directory of the state store " + path_ + ": " + ec.message());
    }
  }
  int rc = sqlite3_open_v2(path_.c_str(), &db_,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "open");
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  // WAL is persistent, so this only writes when the file is new. While
  // another process converts a new file, SQLite can answer BUSY at once
  // instead of calling the busy handler, so retry for the busy timeout.
  for (int waited_ms = 0;; waited_ms += 20) {
    rc = sqlite3_exec(db_, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) break;
    int primary = rc & 0xff;
    if ((primary != SQLITE_BUSY && primary != SQLITE_LOCKED) || waited_ms >= kBusyTimeoutMs) {
      return Error(rc, "enable WAL");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  // FULL: a commit survives power loss.
  SLUICE_RETURN_IF_ERROR(Exec("PRAGMA synchronous = FULL", "set synchronous"));
  return Migrate();
}

Status SqliteDb::Migrate() {
  return WriteTransaction("migrate", [&]() -> Status {
    SLUICE_RETURN_IF_ERROR(
        Exec("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
             "name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
             "create schema_migrations"));
    int64_t current = 0;
    {
      SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                              Prepare("SELECT coalesce(max(version), 0) FROM schema_migrations"));
      SqliteStatement use(stmt);
      SLUICE_ASSIGN_OR_RETURN(bool row, StepRowOrDone(use, "read schema_migrations"));
      if (row) current = use.ColumnInt(0);
    }
    const auto migrations = SqliteMigrations();
    const int latest = LatestVersion(migrations);
    if (current > latest) return NewerSchemaError("sqlite " + path_, static_cast<int>(current), latest);
    for (const Migration& m : migrations) {
      if (m.version <= current) continue;
      const std::string what =
          "apply migration " + std::to_string(m.version) + " (" + std::string(m.name) + ")";
      SLUICE_RETURN_IF_ERROR(Exec(std::string(m.sql), what));
      SLUICE_ASSIGN_OR_RETURN(
          sqlite3_stmt * stmt,
          Prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)"));
      SqliteStatement use(stmt);
      use.Int(1, m.version);
      use.Text(2, std::string(m.name));
      use.Int(3, NowUnixMs());
      SLUICE_RETURN_IF_ERROR(StepDone(use, what));
    }
    return Status::OK();
  });
}

Status SqliteDb::Error(int rc, const std::string& what) const {
  std::string message = "SQLite state store " + path_ + ": " + what + ": " +
                        (db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable(message + " (another process holds the database longer than " +
                                 std::to_string(kBusyTimeoutMs / 1000) + " s)");
    case SQLITE_CANTOPEN:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_CORRUPT:
      return Status::IoError(message);
    case SQLITE_NOTADB:
      return Status::InvalidArgument(message);
    default:
      return Status::Internal(message);
  }
}

Status SqliteDb::Exec(const std::string& sql, const std::string& what) {
  int rc = sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::OK() : Error(rc, what);
}

Result<sqlite3_stmt*> SqliteDb::Prepare(const std::string& sql) {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                              &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, "prepare");
  statements_.emplace(sql, stmt);
  return stmt;
}

Result<bool> SqliteDb::StepRowOrDone(SqliteStatement& stmt, const std::string& what) {
  int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return Error(rc, what);
}

Status SqliteDb::StepDone(SqliteStatement& stmt, const std::string& what) {
  int rc = sqlite3_step(stmt.get());
  return rc == SQLITE_DONE ? Status::OK() : Error(rc, what);
}

}  // namespace sluice::state
