// SqliteDb: one connection to a state store's SQLite file, opened the way
// every SQLite-backed store opens it: parent directories created, WAL mode
// (retried while another process converts a new file), synchronous = FULL,
// a 10 s busy timeout, and the versioned migrations of migrations.h applied
// in one BEGIN IMMEDIATE transaction. Errors name the file; a database that
// stays busy past the timeout is Unavailable (retryable).
//
// Thread-safety: none; the owning store uses it under its own mutex.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include "sluice/status.h"

namespace sluice::state {

/// Resets a prepared statement (and drops its bindings) when it goes out of
/// scope, so that no statement stays active across COMMIT.
class SqliteStatement {
 public:
  explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~SqliteStatement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  sqlite3_stmt* get() const { return stmt_; }
  void Text(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  /// Empty text as NULL, as the PostgreSQL store keeps it.
  void TextOrNull(int i, const std::string& v) {
    if (v.empty()) {
      sqlite3_bind_null(stmt_, i);
    } else {
      Text(i, v);
    }
  }
  void Int(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void Double(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  void Null(int i) { sqlite3_bind_null(stmt_, i); }

  std::string ColumnText(int c) const {
    const unsigned char* text = sqlite3_column_text(stmt_, c);
    if (text == nullptr) return "";
    return std::string(reinterpret_cast<const char*>(text),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, c)));
  }
  int64_t ColumnInt(int c) const { return sqlite3_column_int64(stmt_, c); }
  double ColumnDouble(int c) const { return sqlite3_column_double(stmt_, c); }
  bool ColumnIsNull(int c) const { return sqlite3_column_type(stmt_, c) == SQLITE_NULL; }

 private:
  sqlite3_stmt* stmt_;
};

class SqliteDb {
 public:
  /// Opens `path` (absolute, normalised), creating it and its directories,
  /// and applies missing migrations.
  static Result<std::unique_ptr<SqliteDb>> Open(const std::string& path);

  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  const std::string& path() const { return path_; }
  sqlite3* handle() const { return db_; }

  /// Runs statements without parameters.
  Status Exec(const std::string& sql, const std::string& what);
  /// A statement prepared once and cached for the connection's lifetime.
  Result<sqlite3_stmt*> Prepare(const std::string& sql);
  /// true with a row, false when done.
  Result<bool> StepRowOrDone(SqliteStatement& stmt, const std::string& what);
  Status StepDone(SqliteStatement& stmt, const std::string& what);
  /// Rows the last INSERT, UPDATE or DELETE changed.
  int64_t Changes() const { return sqlite3_changes(db_); }

  /// BEGIN IMMEDIATE (waiting up to the busy timeout for other writers);
  /// fn; COMMIT, or ROLLBACK when anything failed.
  template <typename Fn>
  Status WriteTransaction(const std::string& what, Fn&& fn) {
    SLUICE_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE", what + ": begin"));
    Status st = fn();
    if (st.ok()) st = Exec("COMMIT", what + ": commit");
    if (!st.ok() && !sqlite3_get_autocommit(db_)) (void)Exec("ROLLBACK", what + ": roll back");
    return st;
  }

  /// The Status for SQLite result code `rc` while doing `what`.
  Status Error(int rc, const std::string& what) const;

 private:
  explicit SqliteDb(std::string path) : path_(std::move(path)) {}
  Status OpenAndMigrate();
  Status Migrate();

  const std::string path_;
  sqlite3* db_ = nullptr;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

}  // namespace sluice::state
