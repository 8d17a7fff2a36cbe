// The versioned schema migrations of the SQLite and PostgreSQL state stores.
//
// Each store keeps the versions it applied in a `schema_migrations` table
// and, when opened, applies the missing ones in order inside one
// transaction that also serialises concurrent openers (BEGIN IMMEDIATE in
// SQLite, an advisory lock in PostgreSQL). To change a schema, append a
// migration with the next version to the list of each store; never edit
// one that has been released, because databases in the field have already
// applied it.
//
// Thread-safety: the lists are immutable; call from anywhere.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "sluice/status.h"

namespace sluice::state {

struct Migration {
  int version = 0;        // 1, 2, 3, ...: contiguous, in order
  std::string_view name;  // recorded in schema_migrations.name
  std::string_view sql;   // one or more statements
};

/// Tables in schema `sluice`, times as timestamptz.
std::span<const Migration> PostgresMigrations();
/// Tables in the main database of the file, times as integer unix ms.
std::span<const Migration> SqliteMigrations();

/// The version of the last migration of `migrations` (0 when empty).
int LatestVersion(std::span<const Migration> migrations);

/// The error for a store whose schema_migrations has a version this build
/// does not know: a newer sluice wrote it, and this one must not touch it.
Status NewerSchemaError(const std::string& describe, int version, int latest_known);

}  // namespace sluice::state
