// How the PostgreSQL state stores use their connection (a PgConnection of
// io/postgres, the same class the destinations use, so that both report one
// "host:port/dbname" identity and classify errors alike): a broken
// connection is reset, an aborted transaction rolled back, an idempotent
// call run again after a reconnection.
//
// Thread-safety: none; a store uses its connection under its mutex.
#pragma once

#include <memory>
#include <string>
#include <type_traits>

#include "io/postgres/pg_connection.h"
#include "sluice/status.h"

namespace sluice::state {

/// Connects for a state store: errors say so; the application name is
/// sluice-state unless the URL sets one.
Result<std::unique_ptr<PgConnection>> ConnectStateStore(const std::string& url);

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
auto RunOnSession(PgConnection& session, bool idempotent, ResetFn&& reset, Fn&& fn) -> decltype(fn(session)) {
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
Status RunTransaction(PgConnection& session, const char* begin, Fn&& fn) {
  SLUICE_RETURN_IF_ERROR(session.Exec(begin));
  Status st = fn(session);
  if (!st.ok()) {
    if (session.alive()) (void)session.Exec("ROLLBACK");
    return st;
  }
  return session.Exec("COMMIT");
}

}  // namespace sluice::state
