// Which PostgreSQL database a URL names, in the form the PostgreSQL state
// store reports from StateStore::PostgresDatabase(): "host:port/dbname".
// The runner compares the two to tell whether the state store lives in the
// destination's database (then the ledger is written in the load's own
// transaction: exactly once).
//
// Both come from a live connection (PQhost, PQport, PQdb), so libpq's
// defaults and environment (PGHOST, PGPORT, PGDATABASE, the user name as
// database name) resolve identically. The host is compared as spelled:
// "localhost" and "127.0.0.1" are different identities, which costs the
// exactly-once shortcut, never correctness.
//
// Thread-safety: may be called from any thread.
#pragma once

#include <string>

#include "sluice/status.h"

namespace sluice::state {

/// Connects to `url` and returns "host:port/dbname" of the connection.
/// Errors as for opening a PostgreSQL state store (Unavailable when the
/// server cannot be reached); they never contain the password.
Result<std::string> PostgresDatabaseIdentity(const std::string& url);

}  // namespace sluice::state
