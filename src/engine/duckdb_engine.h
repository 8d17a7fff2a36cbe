// DuckDbEngine: the embedded DuckDB that reads files, runs SQL transforms
// and writes DuckDB-native outputs.
//
// One engine owns one database (in-memory unless a path is given) and one
// connection; Connect() adds engines that are further connections to the
// same database. DuckDB parallelises each query internally, so an engine is
// used from one thread at a time; Interrupt() and Progress() are the
// exceptions and may be called from any thread while a query runs.
//
// ServeArrivingFiles lets DuckDB's own scans read files that are still
// arriving (S3 objects being downloaded): the one place where sluice uses
// DuckDB's C++ API (src/engine/arriving_files.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/batch.h"
#include "sluice/status.h"
#include "sluice/types.h"

namespace sluice::engine {

struct EngineOptions {
  int threads = 0;                  // 0: one per core
  std::string memory_limit = "";    // DuckDB syntax, e.g. "256MB"; empty: DuckDB's default
  std::string temp_directory = "";  // where DuckDB spills; empty: its default
  /// How far DuckDB's threads may run ahead of a streaming result's consumer.
  /// DuckDB's default (about 1 MB) leaves them idle between fetches; more
  /// is faster and costs that much memory.
  std::string streaming_buffer = "16MB";
};

struct QueryProgress {
  double percentage = -1;  // -1 when unknown
  int64_t rows_processed = 0;
  int64_t total_rows = 0;
};

/// A streaming query result: batches are produced as DuckDB computes them.
class QueryStream {
 public:
  virtual ~QueryStream() = default;
  /// The result schema, in sluice types.
  virtual const Schema& schema() const = 0;
  /// The next batch, or nullptr at the end.
  virtual Result<std::shared_ptr<Batch>> Next() = 0;
};

/// A column of a query's result as DuckDB reports it, plus the cast that
/// brings it to one of sluice's types (empty when none is needed).
struct ResultColumn {
  std::string name;
  std::string duckdb_type;
  DataType type;
  std::string cast_to;
};

/// Waits until file `index` of a load is there and returns its local path,
/// or the error that stopped it from arriving. Called from DuckDB's
/// threads, several at once.
using ArrivingFileWaiter = std::function<Result<std::string>(size_t index)>;

/// The path under which DuckDbEngine::ServeArrivingFiles serves file `index`.
std::string ArrivingFilePath(size_t index);

class DuckDbEngine {
 public:
  static Result<std::unique_ptr<DuckDbEngine>> Open(const EngineOptions& options,
                                                    const std::string& path = "");
  ~DuckDbEngine();
  DuckDbEngine(const DuckDbEngine&) = delete;
  DuckDbEngine& operator=(const DuckDbEngine&) = delete;

  /// Runs statements whose results are not needed.
  Status Execute(const std::string& sql);
  /// Runs a query with a small result and returns it as text (NULL -> nullopt).
  Result<std::vector<std::vector<std::optional<std::string>>>> QueryRows(const std::string& sql);
  /// The columns `select_sql` would produce, without running it.
  Result<std::vector<ResultColumn>> Describe(const std::string& select_sql);
  /// Wraps `select_sql` so that every column has a sluice type.
  Result<std::string> Normalize(const std::string& select_sql, Schema* schema_out);
  /// Starts `select_sql` (already normalised) and streams its result.
  Result<std::unique_ptr<QueryStream>> Stream(const std::string& select_sql);

  /// Appends a batch to an existing table through the Arrow C Data
  /// Interface (no row-by-row copy). Takes the batch's data: `batch` is
  /// empty afterwards. The table's column types must match the batch's.
  Status Append(const std::string& table, Batch* batch);

  /// Another connection to this engine's database: its own temp views and
  /// settings, the same tables, functions and threads. The database stays
  /// open while any of its engines lives.
  Result<std::unique_ptr<DuckDbEngine>> Connect();

  /// Serves files that are still arriving (S3 objects being downloaded) to
  /// this engine's queries as ArrivingFilePath(index): DuckDB's own scans
  /// (read_parquet over those paths) open each file when they reach it,
  /// waiting for `wait`, so they read the first files while the others are
  /// on their way. Once per engine (per database).
  Status ServeArrivingFiles(ArrivingFileWaiter wait);

  /// Thread-safe: progress of the running query.
  QueryProgress Progress();
  /// Thread-safe: asks the running query to stop.
  void Interrupt();

 private:
  DuckDbEngine() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Maps a DuckDB type name (as DESCRIBE prints it) to a sluice type and the
/// cast needed to reach that type's canonical Arrow layout.
ResultColumn MapDuckDbType(const std::string& name, const std::string& duckdb_type);

/// Turns a DuckDB error message into a Status of the right kind, rewriting
/// CSV errors as "FILE line N, column C: reason".
Status DuckDbError(const std::string& message);

/// DuckDB's reason for a bad CSV row in the user's terms: "expected 3
/// fields, found 2" for a ragged row, the limit to raise for a long line.
std::string CsvReason(const std::string& reason);

/// Removes trailing white space and semicolons so that the query can be
/// wrapped in a subquery. Wrappers still close on a new line, in case the
/// query ends in a -- comment.
std::string StripSql(std::string sql);

/// SQL literal / identifier quoting for DuckDB.
std::string QuoteLiteral(const std::string& s);
std::string QuoteIdent(const std::string& s);

}  // namespace sluice::engine
