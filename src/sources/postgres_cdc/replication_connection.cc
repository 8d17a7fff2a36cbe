#include "sources/postgres_cdc/replication_connection.h"

#include <libpq-fe.h>
#include <poll.h>

#include <chrono>
#include <cstring>

#include "sources/postgres_cdc/catalog.h"

namespace sluice::cdc {

Result<std::unique_ptr<ReplicationConnection>> ReplicationConnection::Connect(
    const std::string& url, const std::string& application_name) {
  SLUICE_ASSIGN_OR_RETURN(auto conn,
                          PgConnection::Connect(url, {{"replication", "database"},
                                                      {"options", kCdcSessionOptions},
                                                      {"fallback_application_name", application_name}}));
  return std::unique_ptr<ReplicationConnection>(new ReplicationConnection(std::move(conn)));
}

ReplicationConnection::~ReplicationConnection() { FreeBuffer(); }

void ReplicationConnection::FreeBuffer() {
  if (buffer_ != nullptr) PQfreemem(buffer_);
  buffer_ = nullptr;
}

Status ReplicationConnection::Failed(const PGresult* result, const std::string& what,
                                     const std::string& hint) const {
  Status server = conn_->ErrorFrom(result, what.c_str());
  std::string message =
      "replication connection to " + conn_->where() + ": " + what + ": " + server.message() + hint;
  if (server.retryable() || !conn_->alive()) return Status::Unavailable(message);
  return Status::InvalidArgument(message);
}

Result<CreatedSlot> ReplicationConnection::CreateSlot(const std::string& name, bool temporary,
                                                      bool export_snapshot) {
  std::string sql = "CREATE_REPLICATION_SLOT " + PgConnection::QuoteIdent(name) +
                    (temporary ? " TEMPORARY" : "") + " LOGICAL pgoutput (SNAPSHOT '" +
                    (export_snapshot ? "export" : "nothing") + "')";
  PgConnection::ResultPtr result(PQexec(conn_->raw(), sql.c_str()));
  if (!result || PQresultStatus(result.get()) != PGRES_TUPLES_OK || PQntuples(result.get()) != 1) {
    return Failed(result.get(), "creating replication slot " + name);
  }
  CreatedSlot slot;
  SLUICE_ASSIGN_OR_RETURN(slot.consistent_point, Lsn::Parse(PQgetvalue(result.get(), 0, 1)));
  if (!PQgetisnull(result.get(), 0, 2)) slot.snapshot_name = PQgetvalue(result.get(), 0, 2);
  return slot;
}

Status ReplicationConnection::StartStreaming(const std::string& slot, Lsn start,
                                             const std::string& publication) {
  std::string sql = "START_REPLICATION SLOT " + PgConnection::QuoteIdent(slot) + " LOGICAL " +
                    start.ToString() + " (proto_version '2', publication_names " +
                    PgConnection::QuoteLiteral(PgConnection::QuoteIdent(publication)) +
                    ", streaming 'on', messages 'true')";
  PgConnection::ResultPtr result(PQexec(conn_->raw(), sql.c_str()));
  if (!result || PQresultStatus(result.get()) != PGRES_COPY_BOTH) {
    const char* detail = result ? PQresultErrorMessage(result.get()) : "";
    std::string hint;
    if (std::strstr(detail, "is active for PID") != nullptr) {
      hint = " (another process is streaming from this slot; stop it, or give this pipeline its own slot)";
    } else if (std::strstr(detail, "can no longer get changes") != nullptr ||
               std::strstr(detail, "invalidated") != nullptr) {
      hint =
          " (the slot was invalidated because the WAL it needed was removed; drop the slot and the "
          "pipeline's state to start over with a new initial copy)";
    }
    return Failed(result.get(), "starting replication from slot " + slot, hint);
  }
  return Status::OK();
}

Result<std::optional<std::string_view>> ReplicationConnection::Receive(int timeout_ms) {
  FreeBuffer();
  PGconn* raw = conn_->raw();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (true) {
    int n = PQgetCopyData(raw, &buffer_, /*async=*/1);
    if (n > 0) return std::optional<std::string_view>(std::string_view(buffer_, static_cast<size_t>(n)));
    if (n == -1) {
      // The server ended the stream (shutdown, or an error it reports).
      PgConnection::ResultPtr result(PQgetResult(raw));
      std::string detail;
      if (result && PQresultStatus(result.get()) == PGRES_FATAL_ERROR) {
        detail = ": " + conn_->ErrorFrom(result.get(), "replication").message();
      }
      return Status::Unavailable("replication stream from " + conn_->where() + " ended" + detail);
    }
    if (n == -2) return Failed(nullptr, "reading the replication stream");
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::optional<std::string_view>();
    pollfd fd{PQsocket(raw), POLLIN, 0};
    int ready = poll(&fd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno != EINTR) return Status::Unavailable("poll on the replication connection failed");
    if (ready > 0 && PQconsumeInput(raw) == 0) return Failed(nullptr, "reading the replication stream");
  }
}

Status ReplicationConnection::SendStatus(Lsn written, Lsn flushed, bool reply_requested) {
  StandbyStatusUpdate update;
  update.written = written;
  update.flushed = flushed;
  update.applied = flushed;
  update.client_time = TimePointToPgTimestamp(std::chrono::system_clock::now());
  update.reply_requested = reply_requested;
  std::string payload = EncodeStandbyStatusUpdate(update);
  if (PQputCopyData(conn_->raw(), payload.data(), static_cast<int>(payload.size())) != 1 ||
      PQflush(conn_->raw()) != 0) {
    return Failed(nullptr, "sending a standby status update");
  }
  return Status::OK();
}

}  // namespace sluice::cdc
