// Destinations that DuckDB writes itself: an embedded DuckDB database file,
// Parquet/CSV/JSON-lines files, and stdout.
//
// For these the whole load is one DuckDB statement over the transform's
// query (`INSERT INTO ... SELECT`, `COPY (...) TO`), so rows never leave
// DuckDB's vectors. Used from the pipeline's control thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/cancellation.h"
#include "core/load_mode.h"
#include "engine/duckdb_engine.h"
#include "io/s3/s3_options.h"
#include "sluice/destination.h"
#include "sluice/registry.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice::destinations {


/// A Destination that DuckDB writes: the pipeline runs the load through
/// the *InEngine methods instead of Begin/Write/Commit, which fail.
class NativeDestination : public Destination {
 public:
  Status Begin(const Schema&) override { return NotRowByRow(); }
  Status Write(const Batch&) override { return NotRowByRow(); }
  Status Commit() override { return NotRowByRow(); }
  void Abort() override {}
  /// An S3 upload in progress gives up when `cancel` fires.
  virtual void SetCancel(const CancellationSource* /*cancel*/) {}

  /// Prepares the target for the result `columns` (DuckDB's own types, so
  /// nothing is narrowed on the way) and opens the load.
  virtual Status BeginInEngine(engine::DuckDbEngine* engine, const std::vector<engine::ResultColumn>& columns) = 0;
  /// Runs the load of `select_sql`'s rows; returns how many were written.
  virtual Result<int64_t> LoadInEngine(engine::DuckDbEngine* engine, const std::string& select_sql) = 0;
  /// Makes the load visible at once.
  virtual Status CommitInEngine(engine::DuckDbEngine* engine) = 0;
  /// Leaves the target as it was. Safe at any time, also twice.
  virtual void AbortInEngine(engine::DuckDbEngine* engine) = 0;
  /// Checks that the target can be opened, without changing it.
  virtual Status CheckInEngine(engine::DuckDbEngine* engine) = 0;

 private:
  Status NotRowByRow() const {
    return Status::Internal(Describe() + " is written by DuckDB, not row by row");
  }
};

struct DuckDbDestinationOptions {
  std::string path;   // the database file
  std::string table;  // "t" or "schema.t"
  LoadMode mode = LoadMode::kAppend;
  std::vector<std::string> key;  // upsert only
  /// The load has no rows and its column types are unknown (a CSV file with
  /// a header line only): a missing table (or database file) is not
  /// created, replace empties an existing table.
  bool untyped_empty = false;
};
Result<std::unique_ptr<NativeDestination>> MakeDuckDbDestination(DuckDbDestinationOptions options);

struct FileDestinationOptions {
  std::string path;    // output file, "s3://bucket/key", or "-" / "/dev/stdout" for stdout
  std::string format;  // parquet | csv | jsonl; empty: from the extension (csv for stdout)
  /// For an s3:// path (resolved credentials and endpoint): the file is
  /// written locally, then uploaded at Commit (multipart when large).
  io::S3Options s3;  // as written in [s3]; completed from the environment when first needed
  /// Where an s3:// output is written before the upload; empty: the system's.
  std::string temp_dir;
  /// The load has no rows and its column types are unknown: nothing is written.
  bool untyped_empty = false;
};
Result<std::unique_ptr<NativeDestination>> MakeFileDestination(FileDestinationOptions options);

/// Registers duckdb, file and stdout.
Status RegisterNativeDestinations(Registry& registry);

/// Splits "schema.table" (quotes allowed) into its parts; schema may be empty.
Result<std::pair<std::string, std::string>> SplitTableName(const std::string& name);

}  // namespace sluice::destinations
