// PgConnection: a small libpq wrapper for the postgres destination.
//
// It turns libpq results into Status values (connection trouble is
// Unavailable and retryable; bad data is DataError; undefined objects,
// syntax and permissions are InvalidArgument), keeps the password out of
// every message, and streams COPY FROM STDIN data.
//
// Thread-safety: one connection is used by one thread at a time. The static
// quoting helpers may be called from anywhere.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/status.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace sluice {

/// Session settings for connections whose values travel as text between
/// two PostgreSQL servers (CDC): every value prints and parses the same way
/// on both sides (ISO dates, UTC, shortest exact floats, hex bytea).
inline constexpr const char* kPortableSessionOptions =
    "-c datestyle=ISO,MDY -c intervalstyle=postgres -c timezone=UTC -c extra_float_digits=3 "
    "-c bytea_output=hex";

/// Rows of a query in text format; SQL NULL is nullopt.
using PgResultRows = std::vector<std::vector<std::optional<std::string>>>;
/// A parameter or value in text form; SQL NULL is nullopt.
using PgValue = std::optional<std::string>;
using PgParams = std::vector<PgValue>;

/// The rows of a statement and the count of rows it changed.
struct PgQueryResult {
  PgResultRows rows;
  /// Rows an INSERT, UPDATE or DELETE affected (PQcmdTuples); 0 otherwise.
  int64_t affected = 0;
};

class PgConnection {
 public:
  /// An owned libpq result.
  struct ResultDeleter {
    void operator()(PGresult* r) const;
  };
  using ResultPtr = std::unique_ptr<PGresult, ResultDeleter>;

  /// Connects to a libpq URL ("postgresql://user:pw@host:port/db?...") or
  /// key/value string. Errors name host, port and database, never the
  /// password; a string libpq would misread (CheckPgConnInfo) is refused
  /// without being echoed. A connect_timeout of 10 s applies unless the URL
  /// sets one.
  static Result<std::unique_ptr<PgConnection>> Connect(const std::string& url);
  /// The same, with connection parameters that override the URL's, e.g.
  /// {"replication", "database"} or {"options", "-c datestyle=ISO"}.
  static Result<std::unique_ptr<PgConnection>> Connect(
      const std::string& url, const std::vector<std::pair<std::string, std::string>>& overrides);

  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  /// Runs one or more statements that return no rows the caller needs.
  Status Exec(const std::string& sql);
  /// Runs one statement with text parameters $1, $2, ... (sent separately
  /// from the SQL, never pasted into it) and returns its rows as text.
  Result<PgResultRows> Query(const std::string& sql,
                             const std::vector<std::optional<std::string>>& params = {});

  /// Runs one statement with text parameters and returns how many rows it
  /// affected (INSERT/UPDATE/DELETE), 0 for other statements.
  Result<int64_t> Execute(const std::string& sql, const std::vector<std::optional<std::string>>& params);

  /// Starts COPY ... FROM STDIN; the connection is then in COPY mode until
  /// EndCopy() or CancelCopy().
  Status CopyIn(const std::string& copy_sql);
  /// Sends COPY data (any split of the stream is fine).
  Status PutCopyData(std::string_view data);
  /// Finishes the COPY and reports the server's verdict, including the
  /// CONTEXT line that names the failing row and column.
  Status EndCopy();
  /// Rows the last successful EndCopy() loaded.
  int64_t copied_rows() const { return copied_rows_; }
  /// Ends an open COPY with an error so that the server discards it. Never
  /// fails; a no-op when no COPY is open.
  void CancelCopy(const std::string& reason);
  bool in_copy() const { return in_copy_; }

  /// One statement with text parameters: its rows and the count of rows it
  /// changed.
  Result<PgQueryResult> Statement(const std::string& sql, const PgParams& params = {});

  /// Whether the connection is still usable.
  bool alive() const;
  /// Whether a transaction is open (or aborted) on the connection.
  bool in_transaction() const;
  /// Reconnects with the same parameters (PQreset); Unavailable if it fails.
  Status Reset();
  /// "host:port/db", for messages.
  const std::string& where() const { return where_; }

  /// Always quotes: "name" with embedded quotes doubled.
  static std::string QuoteIdent(std::string_view name);
  /// 'value' with quotes doubled (E'...' with doubled backslashes when the
  /// value has any), valid whatever standard_conforming_strings is.
  static std::string QuoteLiteral(std::string_view value);

  PGconn* raw() { return conn_; }

  /// Turns a failed result (or, with nullptr, a lost connection) into a
  /// Status: the server's message on one line with SQLSTATE, detail and
  /// hint, password scrubbed; Unavailable when the connection is gone. For
  /// callers that drive libpq through raw() (replication, COPY TO STDOUT).
  Status ErrorFrom(const PGresult* result, const char* what) const;
  Status ConnectionError(const char* what) const;

 private:
  /// PQexecParams with text parameters; a failed result becomes a Status.
  Result<ResultPtr> ExecParams(const std::string& sql, const std::vector<std::optional<std::string>>& params,
                               const char* what);
  PgConnection() = default;
  /// libpq's or the server's text with the password hidden.
  std::string Scrub(std::string text) const;

  PGconn* conn_ = nullptr;
  std::string where_;
  std::vector<std::string> secrets_;  // PgConnInfoSecrets of the URL, and PQpass
  bool in_copy_ = false;
  int64_t copied_rows_ = 0;
};

}  // namespace sluice
