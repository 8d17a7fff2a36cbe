// The embedded state store: the file ledger, HTTP validators and run log in
// a local SQLite file (".sluice/state.db" by default), times as integer
// unix ms.
//
// The database runs in WAL mode (readers do not block the writer) with a
// 10 s busy timeout, so several sluice processes may share one file. Every
// write transaction starts with BEGIN IMMEDIATE, including the migrations
// applied at open, so processes opening a fresh file at once serialise and
// each migration is applied once. A busy database after the timeout is
// Unavailable (retryable).
//
// The file ledger has one row per version loaded, keyed (pipeline, key,
// etag). A pipeline's run lock is flock(LOCK_EX) on a file next to the
// database, "<db>.<pipeline, reduced to [A-Za-z0-9._-]>.<hash>.lock", held
// through an open descriptor: the kernel releases it when the process ends
// however it ends. Locks belong to the open file, not the process, so two
// store objects of one process exclude each other too. Lock files are left
// in place. flock on a network file system may not exclude other hosts.
//
// Thread-safety: every method may be called from any thread; the store has
// one connection, used under a mutex, with its statements prepared once.
#pragma once

#include <memory>
#include <string>

#include "state/state_store.h"

namespace sluice::state {

/// Opens (creating the file and its parent directories) and migrates.
Result<std::unique_ptr<StateStore>> OpenSqliteStateStore(const std::string& path);

}  // namespace sluice::state
