// PgSession: the libpq connection of the PostgreSQL state store.
//
// A thin layer over libpq that turns results into Status values: connection
// trouble (refused, lost, server shutting down, serialization failures) is
// Unavailable and retryable; SQL errors carry the server's message and
// SQLSTATE. No message ever contains the URL's password. Parameters are
// always sent as text, separately from the SQL.
//
// Thread-safety: none; the state store uses a session under its mutex.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "sluice/status.h"

typedef struct pg_conn PGconn;
typedef struct pg_result PGresult;

namespace sluice::state {

/// A parameter or value in text form; SQL NULL is nullopt.
using PgValue = std::optional<std::string>;
using PgParams = std::vector<PgValue>;

struct PgQueryResult {
  std::vector<std::vector<PgValue>> rows;
  /// Rows an INSERT, UPDATE or DELETE affected (PQcmdTuples); 0 otherwise.
  int64_t affected = 0;
};

class PgSession {
 public:
  /// Connects to a libpq URL or key/value string; a string libpq would
  /// misread (CheckPgConnInfo) is refused without being echoed. A connect_timeout of
  /// 10 s and client_encoding UTF8 apply unless the URL sets them. Refused
  /// or timed-out connections are Unavailable; bad credentials and missing
  /// databases InvalidArgument.
  static Result<std::unique_ptr<PgSession>> Connect(const std::string& url);

  ~PgSession();
  PgSession(const PgSession&) = delete;
  PgSession& operator=(const PgSession&) = delete;

  /// "host:port/dbname" of the live connection: PQhost (or "localhost"),
  /// PQport and PQdb, so libpq's defaults (PGHOST, PGPORT, the user name as
  /// database, ...) are resolved the same way for every URL.
  const std::string& identity() const { return identity_; }

  /// Whether the connection is usable as far as libpq knows (a server that
  /// went away is noticed by the next statement).
  bool alive() const;
  /// Whether a transaction is open (or aborted) on the connection.
  bool in_transaction() const;
  /// Reconnects with the same parameters (PQreset); Unavailable if it fails.
  Status Reset();

  /// Runs one or more statements without parameters (PQexec).
  Status Exec(const std::string& sql);
  /// Runs one statement with text parameters $1, $2, ... (PQexecParams).
  Result<PgQueryResult> Query(const std::string& sql, const PgParams& params = {});

 private:
  PgSession() = default;
  Status ConnectionLost(const std::string& what) const;
  Status ErrorFrom(const PGresult* result, const std::string& what) const;
  std::string Scrub(std::string text) const;

  PGconn* conn_ = nullptr;
  std::string identity_;
  std::vector<std::string> secrets_;  // PgConnInfoSecrets of the URL, and PQpass
};

namespace pg_session_detail {
template <typename R>
const Status& StatusOf(const R& r) {
  if constexpr (std::is_same_v<R, Status>) {
    return r;
  } else {
    return r.status();
  }
}
}  // namespace pg_session_detail

/// Runs fn(session) for a store that holds the session under its mutex
/// (the caller locks it). A connection libpq knows to be broken is reset
/// first (with `reset`, which may also clear what the caller tied to the old
/// connection), a transaction left open by an earlier failure is rolled
/// back, and when the connection breaks during fn it is reset and, if
/// `idempotent`, fn runs once more.
template <typename Fn, typename ResetFn>
auto RunOnSession(PgSession& session, bool idempotent, ResetFn&& reset, Fn&& fn) -> decltype(fn(session)) {
  if (!session.alive()) SLUICE_RETURN_IF_ERROR(reset());
  if (session.in_transaction()) (void)session.Exec("ROLLBACK");
  auto result = fn(session);
  if (pg_session_detail::StatusOf(result).ok() || session.alive()) return result;
  Status reset_status = reset();
  if (!idempotent || !reset_status.ok()) return result;
  return fn(session);
}

/// `begin`; fn; COMMIT, or ROLLBACK when fn fails.
template <typename Fn>
Status RunTransaction(PgSession& session, const char* begin, Fn&& fn) {
  SLUICE_RETURN_IF_ERROR(session.Exec(begin));
  Status st = fn(session);
  if (!st.ok()) {
    if (session.alive()) (void)session.Exec("ROLLBACK");
    return st;
  }
  return session.Exec("COMMIT");
}

}  // namespace sluice::state
