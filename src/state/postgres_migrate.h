// The migration step of every PostgreSQL-backed state store: applies the
// missing migrations of PostgresMigrations() to schema `sluice` in one
// transaction that first takes the transaction-level advisory lock
// kMigrationLockKey, so processes (and the StateStore and CdcStore of one
// process) opening a database at once serialise and each migration is
// applied once.
//
// Thread-safety: none; call with the session's owner holding its mutex.
#pragma once

#include <string>

#include "sluice/status.h"
#include "state/pg_session.h"

namespace sluice::state {

/// Creates schema `sluice` and sluice.schema_migrations when missing, then
/// applies the missing migrations. A database that has a migration this
/// build does not know is refused (NewerSchemaError naming `describe`).
Status MigratePostgresStore(PgConnection& session, const std::string& describe);

}  // namespace sluice::state
