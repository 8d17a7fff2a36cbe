// The PostgreSQL state store: the file ledger and run log as plain tables
// in schema `sluice` of any database (sluice.schema_migrations,
// sluice.file_ledger, sluice.runs, sluice.run_files), times as timestamptz.
//
// Opening connects, then applies missing migrations in one transaction
// that first takes a transaction-level advisory lock (kMigrationLockKey),
// so processes starting at once serialise and each migration is applied
// once. One connection serves the store, under a mutex; a lost connection
// is re-established once per call (and the call repeated when it is
// idempotent), otherwise the error is Unavailable and retryable.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "state/state_store.h"

namespace sluice::state {

/// The pg_advisory_xact_lock key that serialises migrations ("sluice" in
/// ASCII, then the lock's number).
inline constexpr int64_t kMigrationLockKey = 0x736c75696365'0001;

Result<std::unique_ptr<StateStore>> OpenPostgresStateStore(const std::string& url);

}  // namespace sluice::state
