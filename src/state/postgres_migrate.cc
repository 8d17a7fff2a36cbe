#include "state/postgres_migrate.h"

#include <charconv>
#include <cstdint>

#include "state/migrations.h"
#include "state/postgres_state_store.h"

namespace sluice::state {
namespace {

std::string Text(const PgValue& v) { return v.value_or(""); }

int64_t ToInt(const PgValue& v) {
  int64_t out = 0;
  if (v) std::from_chars(v->data(), v->data() + v->size(), out);
  return out;
}

Status Apply(PgConnection& s, const std::string& describe) {
  // A process stuck while holding the lock must not hang every other one:
  // after a minute the wait fails as Unavailable (55P03), and the caller
  // may retry.
  SLUICE_RETURN_IF_ERROR(s.Exec("SET LOCAL lock_timeout = '60s'"));
  SLUICE_RETURN_IF_ERROR(
      s.Statement("SELECT pg_advisory_xact_lock($1::bigint)", {std::to_string(kMigrationLockKey)}).status());
  // Existence checks instead of IF NOT EXISTS: a role that may use but not
  // create the schema (an administrator created it) must be able to open an
  // up-to-date store.
  SLUICE_ASSIGN_OR_RETURN(PgQueryResult schema,
                          s.Statement("SELECT to_regnamespace('sluice') IS NOT NULL, "
                                      "to_regclass('sluice.schema_migrations') IS NOT NULL"));
  if (Text(schema.rows.at(0).at(0)) != "t") SLUICE_RETURN_IF_ERROR(s.Exec("CREATE SCHEMA sluice"));
  if (Text(schema.rows.at(0).at(1)) != "t") {
    SLUICE_RETURN_IF_ERROR(
        s.Exec("CREATE TABLE sluice.schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
               "applied_at timestamptz NOT NULL DEFAULT now())"));
  }
  SLUICE_ASSIGN_OR_RETURN(PgQueryResult applied,
                          s.Statement("SELECT coalesce(max(version), 0) FROM sluice.schema_migrations"));
  const int64_t current = ToInt(applied.rows.at(0).at(0));
  const auto migrations = PostgresMigrations();
  const int latest = LatestVersion(migrations);
  if (current > latest) return NewerSchemaError(describe, static_cast<int>(current), latest);
  for (const Migration& m : migrations) {
    if (m.version <= current) continue;
    const std::string version = std::to_string(m.version);
    Status st = s.Exec(std::string(m.sql));
    if (!st.ok()) return st.WithContext("migration " + version + " (" + std::string(m.name) + ")");
    SLUICE_RETURN_IF_ERROR(
        s.Statement("INSERT INTO sluice.schema_migrations (version, name) VALUES ($1::int, $2)",
                    {version, std::string(m.name)})
            .status());
  }
  return Status::OK();
}

}  // namespace

Status MigratePostgresStore(PgConnection& session, const std::string& describe) {
  // READ COMMITTED whatever the database's default: each statement after
  // the lock must see what the previous holder of the lock committed.
  SLUICE_RETURN_IF_ERROR(session.Exec("BEGIN ISOLATION LEVEL READ COMMITTED"));
  Status st = Apply(session, describe);
  if (!st.ok()) {
    if (session.alive()) (void)session.Exec("ROLLBACK");
    return st;
  }
  return session.Exec("COMMIT");
}

}  // namespace sluice::state
