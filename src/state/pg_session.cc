#include "state/pg_session.h"

#include <libpq-fe.h>

#include <cctype>
#include <charconv>
#include <cstring>
#include <string_view>

#include "core/redact.h"
#include "io/postgres/pg_conninfo.h"
#include "state/postgres_identity.h"

namespace sluice::state {
namespace {

struct ResultFree {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultHandle = std::unique_ptr<PGresult, ResultFree>;

/// libpq messages end in newlines and spread DETAIL over lines.
std::string Flatten(const char* text) {
  std::string out;
  if (text == nullptr) return out;
  bool pending_space = false;
  for (const char* p = text; *p != '\0'; ++p) {
    if (*p == '\n' || *p == '\r') {
      pending_space = true;
      continue;
    }
    if (pending_space) {
      if (*p == ' ' || *p == '\t') continue;
      if (!out.empty()) out += "; ";
      pending_space = false;
    }
    out += *p;
  }
  return out;
}

bool HasPrefix(std::string_view s, std::string_view prefix) { return s.substr(0, prefix.size()) == prefix; }

/// What the caller can do about an SQLSTATE: retry, fix its input or
/// configuration, or report a bug.
StatusCode CodeOf(std::string_view sqlstate) {
  // Connection exceptions, insufficient resources, serialization failures
  // and deadlocks, operator intervention (shutdown, statement timeout) and
  // lock timeouts pass when tried again.
  if (HasPrefix(sqlstate, "08") || HasPrefix(sqlstate, "53") || HasPrefix(sqlstate, "40") ||
      HasPrefix(sqlstate, "57") || sqlstate == "55P03") {
    return StatusCode::kUnavailable;
  }
  // Syntax, privileges, undefined objects, invalid names, bad values,
  // authorization: the configuration or the database must change.
  if (HasPrefix(sqlstate, "42") || HasPrefix(sqlstate, "28") || HasPrefix(sqlstate, "3D") ||
      HasPrefix(sqlstate, "3F") || HasPrefix(sqlstate, "0A") || HasPrefix(sqlstate, "22")) {
    return StatusCode::kInvalidArgument;
  }
  return StatusCode::kInternal;
}

}  // namespace

Result<std::unique_ptr<PgSession>> PgSession::Connect(const std::string& url) {
  // libpq must read the string as written: a raw '@' in a password would
  // make it connect elsewhere and print the rest of the password as a host.
  SLUICE_RETURN_IF_ERROR(
      CheckPgConnInfo(url).WithContext("invalid PostgreSQL connection string for the state store"));
  std::unique_ptr<PgSession> session(new PgSession());
  session->secrets_ = PgConnInfoSecrets(url);

  // Settings before "dbname" are defaults: the URL, expanded in its place,
  // overrides them.
  const char* keys[] = {"connect_timeout",
                        "keepalives_idle",
                        "keepalives_interval",
                        "keepalives_count",
                        "client_encoding",
                        "fallback_application_name",
                        "dbname",
                        nullptr};
  const char* values[] = {"10", "60", "10", "6", "UTF8", "sluice-state", url.c_str(), nullptr};
  session->conn_ = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (session->conn_ == nullptr) return Status::Unavailable("cannot allocate a PostgreSQL connection");
  PQsetNoticeProcessor(
      session->conn_, [](void*, const char*) {}, nullptr);

  auto text = [](const char* s) { return std::string(s != nullptr ? s : ""); };
  std::string host = text(PQhost(session->conn_));
  if (host.empty()) host = "localhost";
  session->identity_ = host + ":" + text(PQport(session->conn_)) + "/" + text(PQdb(session->conn_));
  // The password may also come from PGPASSWORD or a password file.
  if (const char* pass = PQpass(session->conn_); pass != nullptr) AddPgSecret(&session->secrets_, pass);

  if (PQstatus(session->conn_) != CONNECTION_OK) {
    std::string reason = session->Scrub(Flatten(PQerrorMessage(session->conn_)));
    // The URL is redacted on its own: redacting the whole message could
    // take a '@' in libpq's words for the end of the URL's user info.
    std::string message = HideSecrets("cannot connect to the PostgreSQL state store at " +
                                          session->identity_ + " (" + RedactUrl(url) + "): " + reason,
                                      session->secrets_);
    // Bad credentials, a missing database or an invalid option (sslmode,
    // port, ...) need a config change; anything else may pass later.
    if (reason.rfind("invalid ", 0) == 0 || reason.find("authentication failed") != std::string::npos ||
        reason.find("no pg_hba.conf entry") != std::string::npos ||
        reason.find("does not exist") != std::string::npos) {
      return Status::InvalidArgument(message);
    }
    return Status::Unavailable(message);
  }
  return session;
}

PgSession::~PgSession() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool PgSession::alive() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

bool PgSession::in_transaction() const {
  if (conn_ == nullptr) return false;
  PGTransactionStatusType st = PQtransactionStatus(conn_);
  return st == PQTRANS_INTRANS || st == PQTRANS_INERROR || st == PQTRANS_ACTIVE;
}

Status PgSession::Reset() {
  if (conn_ == nullptr) return Status::Unavailable("no PostgreSQL connection to reset");
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return Status::Unavailable(Scrub("cannot reconnect to the PostgreSQL state store at " + identity_ + ": " +
                                     Flatten(PQerrorMessage(conn_))));
  }
  return Status::OK();
}

std::string PgSession::Scrub(std::string text) const { return ScrubPgMessage(std::move(text), secrets_); }

Status PgSession::ConnectionLost(const std::string& what) const {
  std::string reason = conn_ != nullptr ? Flatten(PQerrorMessage(conn_)) : "not connected";
  return Status::Unavailable(
      Scrub(what + ": connection to the PostgreSQL state store at " + identity_ + " lost: " + reason));
}

Status PgSession::ErrorFrom(const PGresult* result, const std::string& what) const {
  const char* sqlstate = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  if (sqlstate == nullptr || *sqlstate == '\0') {
    if (result == nullptr || !alive()) return ConnectionLost(what);
    std::string reason = Flatten(PQresultErrorMessage(result));
    if (reason.empty()) reason = Flatten(PQerrorMessage(conn_));
    return Status::Internal(
        Scrub(what + " failed in the PostgreSQL state store at " + identity_ + ": " + reason));
  }
  auto field = [&](int code) { return Flatten(PQresultErrorField(result, code)); };
  std::string message = what + " failed in the PostgreSQL state store at " + identity_ + ": " +
                        field(PG_DIAG_MESSAGE_PRIMARY) + " [SQLSTATE " + sqlstate + "]";
  if (std::string detail = field(PG_DIAG_MESSAGE_DETAIL); !detail.empty()) message += "; DETAIL: " + detail;
  if (std::string hint = field(PG_DIAG_MESSAGE_HINT); !hint.empty()) message += "; HINT: " + hint;
  StatusCode code = CodeOf(sqlstate);
  return Status(code, Scrub(std::move(message)), code == StatusCode::kUnavailable);
}

Status PgSession::Exec(const std::string& sql) {
  if (conn_ == nullptr) return ConnectionLost("statement");
  ResultHandle result(PQexec(conn_, sql.c_str()));
  ExecStatusType st = PQresultStatus(result.get());
  if (result != nullptr && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY)) {
    return Status::OK();
  }
  return ErrorFrom(result.get(), "statement");
}

Result<PgQueryResult> PgSession::Query(const std::string& sql, const PgParams& params) {
  if (conn_ == nullptr) return ConnectionLost("query");
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const PgValue& p : params) values.push_back(p ? p->c_str() : nullptr);
  ResultHandle result(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr,
                                   values.data(), nullptr, nullptr, /*resultFormat=*/0));
  ExecStatusType st = PQresultStatus(result.get());
  if (result == nullptr || (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)) {
    return ErrorFrom(result.get(), "query");
  }
  PgQueryResult out;
  const char* affected = PQcmdTuples(result.get());
  if (affected != nullptr && *affected != '\0') {
    std::from_chars(affected, affected + std::strlen(affected), out.affected);
  }
  int n = PQntuples(result.get());
  int columns = PQnfields(result.get());
  out.rows.reserve(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    auto& row = out.rows.emplace_back();
    row.reserve(static_cast<size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(result.get(), r, c)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(result.get(), r, c),
                                     static_cast<size_t>(PQgetlength(result.get(), r, c))));
      }
    }
  }
  return out;
}

Result<std::string> PostgresDatabaseIdentity(const std::string& url) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<PgSession> session, PgSession::Connect(url));
  return session->identity();
}

}  // namespace sluice::state
