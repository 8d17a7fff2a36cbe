#include "io/postgres/pg_connection.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "core/redact.h"
#include "io/postgres/pg_conninfo.h"

namespace sluice {
namespace {

using ResultPtr = PgConnection::ResultPtr;

// libpq buffers each PQputCopyData call whole before sending it; bounded
// chunks keep that buffer small without costing throughput.
constexpr size_t kCopyChunk = size_t{1} << 20;

bool StartsWith(const char* s, const char* prefix) {
  return s != nullptr && std::strncmp(s, prefix, std::strlen(prefix)) == 0;
}

std::string OneLine(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\n') {
      out += "; ";
      while (i + 1 < s.size() && (s[i + 1] == ' ' || s[i + 1] == '\t')) ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

StatusCode CodeForSqlState(const char* state) {
  if (StartsWith(state, "22") || StartsWith(state, "23")) return StatusCode::kDataError;
  // Connection trouble, lack of resources, serialization failures and
  // deadlocks, lock timeouts, cancellations (statement_timeout) and server
  // shutdowns may all succeed when tried again.
  if (StartsWith(state, "08") || StartsWith(state, "53") || StartsWith(state, "40") ||
      StartsWith(state, "57") || std::strcmp(state, "55P03") == 0) {
    return StatusCode::kUnavailable;
  }
  if (StartsWith(state, "XX")) return StatusCode::kInternal;
  if (StartsWith(state, "58")) return StatusCode::kIoError;
  // 42 (syntax, undefined objects, privileges), 0A, 3F, 28 and the rest
  // need a change of configuration or schema.
  return StatusCode::kInvalidArgument;
}

}  // namespace

Result<std::unique_ptr<PgConnection>> PgConnection::Connect(const std::string& url) {
  return Connect(url, {});
}

Result<std::unique_ptr<PgConnection>> PgConnection::Connect(
    const std::string& url, const std::vector<std::pair<std::string, std::string>>& overrides) {
  // libpq must read the string as written: a raw '@' in a password would
  // make it connect elsewhere and print the rest of the password as a host.
  SLUICE_RETURN_IF_ERROR(CheckPgConnInfo(url).WithContext("invalid PostgreSQL connection string"));
  std::unique_ptr<PgConnection> c(new PgConnection());
  c->secrets_ = PgConnInfoSecrets(url);

  // Keywords before "dbname" are defaults that the URL's own settings
  // override (expand_dbname processes parameters in order).
  // Overrides come after it and win.
  std::vector<const char*> keys = {"connect_timeout",  "keepalives_idle", "keepalives_interval",
                                   "keepalives_count", "client_encoding", "fallback_application_name",
                                   "dbname"};
  std::vector<const char*> values = {"10", "60", "10", "6", "UTF8", "sluice", url.c_str()};
  for (const auto& [key, value] : overrides) {
    keys.push_back(key.c_str());
    values.push_back(value.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  c->conn_ = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (c->conn_ == nullptr) return Status::Unavailable("cannot allocate a PostgreSQL connection");
  PQsetNoticeProcessor(
      c->conn_, [](void*, const char*) {}, nullptr);
  auto text = [](const char* s) { return std::string(s ? s : ""); };
  std::string host = text(PQhost(c->conn_));
  if (host.empty()) host = "localhost";
  c->where_ = host + ":" + text(PQport(c->conn_)) + "/" + text(PQdb(c->conn_));
  // The password may also come from PGPASSWORD or a password file.
  if (const char* pass = PQpass(c->conn_); pass != nullptr) AddPgSecret(&c->secrets_, pass);

  if (PQstatus(c->conn_) != CONNECTION_OK) {
    std::string reason = c->Scrub(OneLine(PQerrorMessage(c->conn_)));
    // The URL is redacted on its own: redacting the whole message could
    // take a '@' in libpq's words for the end of the URL's user info.
    std::string message = HideSecrets(
        "cannot connect to PostgreSQL at " + c->where_ + " (" + RedactUrl(url) + "): " + reason, c->secrets_);
    // Wrong credentials or a missing database need a config change; anything
    // else (refused, timed out, starting up) may pass when tried again.
    if (reason.find("authentication failed") != std::string::npos ||
        reason.find("no pg_hba.conf entry") != std::string::npos ||
        reason.find("does not exist") != std::string::npos) {
      return Status::InvalidArgument(message);
    }
    return Status::Unavailable(message);
  }
  return c;
}

PgConnection::~PgConnection() {
  if (conn_ != nullptr) PQfinish(conn_);
}

bool PgConnection::alive() const { return conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK; }

bool PgConnection::in_transaction() const {
  if (conn_ == nullptr) return false;
  PGTransactionStatusType st = PQtransactionStatus(conn_);
  return st == PQTRANS_INTRANS || st == PQTRANS_INERROR || st == PQTRANS_ACTIVE;
}

Status PgConnection::Reset() {
  if (conn_ == nullptr) return Status::Unavailable("no PostgreSQL connection to reset");
  PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    return Status::Unavailable(
        Scrub("cannot reconnect to PostgreSQL at " + where_ + ": " + OneLine(PQerrorMessage(conn_))));
  }
  return Status::OK();
}

std::string PgConnection::Scrub(std::string text) const { return ScrubPgMessage(std::move(text), secrets_); }

Status PgConnection::ConnectionError(const char* what) const {
  std::string reason = conn_ ? OneLine(PQerrorMessage(conn_)) : "not connected";
  return Status::Unavailable(
      Scrub(std::string(what) + " failed: connection to PostgreSQL at " + where_ + " lost: " + reason));
}

Status PgConnection::ErrorFrom(const PGresult* result, const char* what) const {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  if (state == nullptr || *state == '\0') {
    if (!alive() || result == nullptr) return ConnectionError(what);
    std::string reason = OneLine(PQresultErrorMessage(result));
    if (reason.empty()) reason = OneLine(PQerrorMessage(conn_));
    return Status::Internal(Scrub(std::string(what) + " failed: " + reason));
  }
  auto field = [&](int code) -> std::string {
    const char* v = PQresultErrorField(result, code);
    return v ? OneLine(v) : std::string();
  };
  std::string message = field(PG_DIAG_MESSAGE_PRIMARY);
  if (message.empty()) message = OneLine(PQresultErrorMessage(result));
  message += std::string(" [SQLSTATE ") + state + "]";
  if (std::string detail = field(PG_DIAG_MESSAGE_DETAIL); !detail.empty()) message += "; DETAIL: " + detail;
  if (std::string hint = field(PG_DIAG_MESSAGE_HINT); !hint.empty()) message += "; HINT: " + hint;
  if (std::string context = field(PG_DIAG_CONTEXT); !context.empty()) message += "; CONTEXT: " + context;
  StatusCode code = CodeForSqlState(state);
  return Status(code, Scrub(std::move(message)), code == StatusCode::kUnavailable);
}

Status PgConnection::Exec(const std::string& sql) {
  if (conn_ == nullptr) return ConnectionError("query");
  if (in_copy_) return Status::Internal("PgConnection::Exec called during COPY");
  ResultPtr result(PQexec(conn_, sql.c_str()));
  ExecStatusType st = PQresultStatus(result.get());
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return Status::OK();
  if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
    in_copy_ = st == PGRES_COPY_IN;
    CancelCopy("COPY must go through PgConnection::CopyIn");
    return Status::Internal("PgConnection::Exec cannot run COPY; use CopyIn");
  }
  return ErrorFrom(result.get(), "query");
}

void PgConnection::ResultDeleter::operator()(PGresult* r) const { PQclear(r); }

Result<PgConnection::ResultPtr> PgConnection::ExecParams(
    const std::string& sql, const std::vector<std::optional<std::string>>& params, const char* what) {
  if (conn_ == nullptr) return ConnectionError(what);
  if (in_copy_) return Status::Internal(std::string("PgConnection: ") + what + " during COPY");
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  ResultPtr result(PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                nullptr, nullptr, /*resultFormat=*/0));
  ExecStatusType st = PQresultStatus(result.get());
  if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) return ErrorFrom(result.get(), what);
  return result;
}

namespace {

PgResultRows RowsOf(const PGresult* result) {
  PgResultRows rows;
  int n = PQntuples(result);
  int cols = PQnfields(result);
  rows.reserve(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) {
    auto& row = rows.emplace_back();
    row.reserve(static_cast<size_t>(cols));
    for (int c = 0; c < cols; ++c) {
      if (PQgetisnull(result, r, c)) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(std::string(PQgetvalue(result, r, c), static_cast<size_t>(PQgetlength(result, r, c))));
      }
    }
  }
  return rows;
}

int64_t AffectedRows(const PGresult* result) {
  const char* tuples = PQcmdTuples(const_cast<PGresult*>(result));
  return tuples != nullptr && *tuples != '\0' ? std::stoll(tuples) : 0;
}

}  // namespace

Result<PgResultRows> PgConnection::Query(const std::string& sql,
                                         const std::vector<std::optional<std::string>>& params) {
  SLUICE_ASSIGN_OR_RETURN(ResultPtr result, ExecParams(sql, params, "query"));
  return RowsOf(result.get());
}

Result<PgQueryResult> PgConnection::Statement(const std::string& sql, const PgParams& params) {
  SLUICE_ASSIGN_OR_RETURN(ResultPtr result, ExecParams(sql, params, "statement"));
  return PgQueryResult{RowsOf(result.get()), AffectedRows(result.get())};
}

Result<int64_t> PgConnection::Execute(const std::string& sql,
                                      const std::vector<std::optional<std::string>>& params) {
  SLUICE_ASSIGN_OR_RETURN(ResultPtr result, ExecParams(sql, params, "statement"));
  return AffectedRows(result.get());
}

Status PgConnection::CopyIn(const std::string& copy_sql) {
  if (conn_ == nullptr) return ConnectionError("COPY");
  if (in_copy_) return Status::Internal("a COPY is already in progress");
  ResultPtr result(PQexec(conn_, copy_sql.c_str()));
  if (PQresultStatus(result.get()) == PGRES_COPY_IN) {
    in_copy_ = true;
    return Status::OK();
  }
  return ErrorFrom(result.get(), "COPY");
}

Status PgConnection::PutCopyData(std::string_view data) {
  if (!in_copy_) return Status::Internal("PutCopyData without an open COPY");
  while (!data.empty()) {
    size_t n = std::min(data.size(), kCopyChunk);
    if (PQputCopyData(conn_, data.data(), static_cast<int>(n)) != 1) return ConnectionError("COPY");
    data.remove_prefix(n);
  }
  return Status::OK();
}

Status PgConnection::EndCopy() {
  if (!in_copy_) return Status::Internal("EndCopy without an open COPY");
  in_copy_ = false;
  copied_rows_ = 0;
  if (PQputCopyEnd(conn_, nullptr) != 1) return ConnectionError("COPY");
  Status status;
  bool got_result = false;
  // The server answers with one result; a bounded drain guards against a
  // confused protocol state turning into an endless loop.
  for (int i = 0; i < 16; ++i) {
    ResultPtr result(PQgetResult(conn_));
    if (!result) break;
    got_result = true;
    ExecStatusType st = PQresultStatus(result.get());
    if (st == PGRES_COMMAND_OK) {
      copied_rows_ = std::strtoll(PQcmdTuples(result.get()), nullptr, 10);
    } else if (status.ok()) {
      status = st == PGRES_COPY_IN ? Status::Internal("server still expects COPY data")
                                   : ErrorFrom(result.get(), "COPY");
    }
    if (st == PGRES_COPY_IN) PQputCopyEnd(conn_, "protocol confusion");
  }
  if (status.ok() && !got_result) return ConnectionError("COPY");
  return status;
}

void PgConnection::CancelCopy(const std::string& reason) {
  if (!in_copy_) return;
  in_copy_ = false;
  if (conn_ == nullptr || PQputCopyEnd(conn_, reason.c_str()) != 1) return;
  for (int i = 0; i < 16; ++i) {
    ResultPtr result(PQgetResult(conn_));
    if (!result) break;
  }
}

std::string PgConnection::QuoteIdent(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out += '"';
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
  return out;
}

std::string PgConnection::QuoteLiteral(std::string_view value) {
  bool backslash = value.find('\\') != std::string_view::npos;
  std::string out;
  out.reserve(value.size() + 3);
  if (backslash) out += 'E';
  out += '\'';
  for (char c : value) {
    if (c == '\'' || c == '\\') out += c;
    out += c;
  }
  out += '\'';
  return out;
}

}  // namespace sluice
