// The PostgreSQL state store: the file ledger, HTTP validators and run log
// as plain tables in schema `sluice` of any database
// (sluice.schema_migrations, sluice.file_ledger, sluice.http_validators,
// sluice.runs, sluice.run_files), times as timestamptz.
//
// Opening connects, then applies missing migrations in one transaction
// that first takes a transaction-level advisory lock (kMigrationLockKey),
// so processes starting at once serialise and each migration is applied
// once. One connection serves the store, under a mutex; a lost connection
// is re-established once per call (and the call repeated when it is
// idempotent), otherwise the error is Unavailable and retryable.
//
// The file ledger has one row per version loaded, keyed (pipeline, key,
// etag). Run locks are session-level advisory locks on the store's
// connection, keyed (hashtext('sluice.pipeline'), hashtext(pipeline)): they
// end with the connection, so when it is lost and re-established the store
// no longer holds them (another process may take them meanwhile; the next
// TryLockPipeline takes the lock again if it is free). The server releases
// a lost connection's locks when it notices the connection is gone, at
// worst after the TCP keepalive gives up (about two minutes).
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
