#include "state/pg_session.h"

#include "state/postgres_identity.h"

namespace sluice::state {

Result<std::unique_ptr<PgConnection>> ConnectStateStore(const std::string& url) {
  auto conn = PgConnection::Connect(url, {{"fallback_application_name", "sluice-state"}});
  if (!conn.ok()) return conn.status().WithContext("PostgreSQL state store");
  return conn;
}

Result<std::string> PostgresDatabaseIdentity(const std::string& url) {
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<PgConnection> conn, ConnectStateStore(url));
  return conn->where();
}

}  // namespace sluice::state
