// PostgresDestination: loads a result into a PostgreSQL table with binary
// COPY, all in one transaction.
//
// Modes:
//  - append: COPY into the table.
//  - replace: TRUNCATE, then COPY, in the same transaction: other sessions
//    see the old rows until COMMIT and the new ones after it. TRUNCATE takes
//    an ACCESS EXCLUSIVE lock, so readers of the table wait (they do not see
//    an empty table) until the load commits or aborts.
//  - upsert: COPY into a temporary staging table, then at Commit merge it
//    with INSERT ... ON CONFLICT (key) DO UPDATE; when the result has several
//    rows for one key the last one wins. The table needs a unique constraint
//    or index on exactly the key columns.
// A missing table is created (create_table) with columns typed by
// PgTypeNameFor, and for upsert a PRIMARY KEY on the key. An existing table
// must have a column for every result column, of a type the result can be
// loaded into; its other columns get their defaults. Rows loaded into a
// table created or truncated by the same load are written frozen (COPY
// FREEZE), which spares a later VACUUM.
//
// Identifiers are always quoted; values only ever travel as parameters or
// COPY data. The table name follows SQL rules: "schema.table" or "table"
// (schema public), split on the first dot outside double quotes, unquoted
// parts folded to lower case.
//
// Thread-safety: as for every Destination, one thread drives a load; Encode()
// may run on several threads at once, also while Write/WriteEncoded run.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "destinations/postgres/pg_types.h"
#include "core/load_mode.h"
#include "sluice/destination.h"
#include "sluice/registry.h"

namespace sluice {

class CopyEncoder;
class PgConnection;

/// A schema-qualified table name, unquoted.
struct PgTableName {
  std::string schema = "public";
  std::string table;
  /// "\"schema\".\"table\"", for SQL.
  std::string Quoted() const;
  /// schema.table, quoting only the parts that need it, for messages.
  std::string Display() const;
};

/// Parses "table", "schema.table", "\"My Schema\".\"My.Table\"".
Result<PgTableName> ParsePgTableName(const std::string& text);

struct PostgresDestinationOptions {
  std::string url;    // libpq URL or key/value string; may hold a password
  std::string table;  // "schema.table" or "table"
  LoadMode mode = LoadMode::kAppend;
  std::vector<std::string> key;  // upsert: the result columns that identify a row
  bool create_table = true;
  /// The load has no rows and the types of its columns are unknown (a CSV
  /// file with a header line only): a missing table is not created, an
  /// existing one is checked by column names only, replace empties it, and
  /// rows written are an error.
  bool untyped_empty = false;
};

/// Registers the batch destination "postgres" and the CDC destination
/// "postgres".
Status RegisterPostgresDestinations(Registry& registry);

class PostgresDestination : public Destination {
 public:
  /// Checks the options (table name, key for upsert); connects only in Begin.
  static Result<std::unique_ptr<PostgresDestination>> Make(PostgresDestinationOptions options);
  ~PostgresDestination() override;

  /// Opens the connection Begin uses.
  Status Connect() override;
  Status Begin(const Schema& schema) override;
  Status Write(const Batch& batch) override;
  Status Commit() override;
  void Abort() override;

  bool SupportsEncode() const override { return true; }
  Result<std::string> Encode(const Batch& batch) override;
  Status WriteEncoded(std::string bytes, int64_t rows) override;
  std::string Describe() const override;
  /// Cancels the statement in progress on the server (PQcancel).
  void Interrupt() override;
  std::string TransactionDatabase() const override;
  Status AddCommitStatements(std::vector<CommitStatement> statements) override;

  /// Rows sent in the current load (or the last committed one).
  int64_t rows_written() const { return rows_; }
  /// What an untyped_empty load did ("the table was emptied"), or empty.
  std::string Note() const override { return note_; }
  void SetSkipBadRows(bool skip) override { skip_bad_rows_ = skip; }
  std::vector<RejectedRow> TakeRejectedRows() override;
  Status PrepareLoad(const LoadContext& load) override {
    options_.untyped_empty = load.untyped_empty;
    return Status::OK();
  }
  bool NeedsInputOrder() const override { return options_.mode == LoadMode::kUpsert; }
  /// Connects and checks the table: it exists and fits `schema`, or it may
  /// be created.
  Result<std::string> Check(const Schema& schema) override;
  /// Connects and runs SELECT 1.
  Status Ping() override;

 private:
  explicit PostgresDestination(PostgresDestinationOptions options, PgTableName name);
  Status BeginLoad(const Schema& schema);
  Status BeginUntypedEmpty(const std::optional<PgTable>& table, const Schema& schema);
  Status UntypedRowsError() const;
  /// Encodes `batch` into `out`, keeping the rows it refused (skip) or
  /// failing with the first of them.
  Status EncodeChecked(const CopyEncoder& encoder, const Batch& batch, std::string* out);
  Status CheckUpsertKey(uint32_t table_oid);
  Status FinishLoad();
  std::shared_ptr<const CopyEncoder> encoder() const;

  PostgresDestinationOptions options_;
  PgTableName name_;
  std::unique_ptr<PgConnection> conn_;
  std::unique_ptr<PgConnection> ahead_;             // opened by Connect, taken by Begin
  bool loading_ = false;                            // between a successful Begin and Commit/Abort
  bool copying_ = false;                            // a COPY is open (not in untyped_empty mode)
  std::string merge_sql_;                           // upsert: run at Commit
  std::vector<CommitStatement> commit_statements_;  // checkpoints: run just before COMMIT
  std::string buffer_;                              // Write's encode buffer, reused across batches
  int64_t rows_ = 0;
  std::string note_;

  std::mutex cancel_mu_;    // guards cancel_ against Interrupt() from another thread
  void* cancel_ = nullptr;  // PGcancel* for conn_ while it is open
  std::atomic<bool> interrupted_{false};

  bool skip_bad_rows_ = false;
  std::mutex rejected_mu_;  // Encode runs on several threads
  std::vector<RejectedRow> rejected_;

  mutable std::mutex encoder_mu_;  // guards the pointer, not the encoder
  std::shared_ptr<const CopyEncoder> encoder_;
};

}  // namespace sluice
