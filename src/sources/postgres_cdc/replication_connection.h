// ReplicationConnection: a libpq connection in logical replication mode
// (replication=database). It creates slots (optionally exporting a
// snapshot that copy workers import), starts pgoutput streaming and then
// moves CopyData messages in both directions with timeouts, so that the
// caller's loop can answer keepalives, flush batches and notice shutdown.
//
// Thread-safety: one thread at a time; Interrupt() may be called from any.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "io/postgres/pg_connection.h"
#include "sluice/status.h"
#include "sources/postgres_cdc/replication_protocol.h"

namespace sluice::cdc {

struct CreatedSlot {
  Lsn consistent_point;
  std::string snapshot_name;  // empty unless exported
};

class ReplicationConnection {
 public:
  /// `application_name` names the walsender in pg_stat_activity unless the
  /// URL sets one (a fallback_application_name).
  static Result<std::unique_ptr<ReplicationConnection>> Connect(const std::string& url,
                                                                const std::string& application_name = "");

  /// CREATE_REPLICATION_SLOT name [TEMPORARY] LOGICAL pgoutput (SNAPSHOT 'export'|'nothing').
  /// An exported snapshot stays valid until the next command on this connection.
  Result<CreatedSlot> CreateSlot(const std::string& name, bool temporary, bool export_snapshot);
  /// START_REPLICATION SLOT ... LOGICAL start (proto_version '2', streaming on).
  Status StartStreaming(const std::string& slot, Lsn start, const std::string& publication);
  /// The next CopyData payload; nullopt when `timeout_ms` passed without one.
  /// The returned view is valid until the next call.
  Result<std::optional<std::string_view>> Receive(int timeout_ms);
  /// Sends a standby status update.
  Status SendStatus(Lsn written, Lsn flushed, bool reply_requested = false);

  const std::string& where() const { return conn_->where(); }

 private:
  explicit ReplicationConnection(std::unique_ptr<PgConnection> conn) : conn_(std::move(conn)) {}
  /// A failed command: Unavailable when the connection is gone, otherwise
  /// InvalidArgument with the server's message and `hint`.
  Status Failed(const PGresult* result, const std::string& what, const std::string& hint = "") const;
  void FreeBuffer();

  std::unique_ptr<PgConnection> conn_;
  char* buffer_ = nullptr;

 public:
  ~ReplicationConnection();
  ReplicationConnection(const ReplicationConnection&) = delete;
  ReplicationConnection& operator=(const ReplicationConnection&) = delete;
};

}  // namespace sluice::cdc
