// The embedded state store: the file ledger and run log in a local SQLite
// file (".sluice/state.db" by default), times as integer unix ms.
//
// The database runs in WAL mode (readers do not block the writer) with a
// 10 s busy timeout, so several sluice processes may share one file. Every
// write transaction starts with BEGIN IMMEDIATE, including the migrations
// applied at open, so processes opening a fresh file at once serialise and
// each migration is applied once. A busy database after the timeout is
// Unavailable (retryable).
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
