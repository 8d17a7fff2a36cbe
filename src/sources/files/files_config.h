// What a files pipeline is made of, read from its file: the [source]
// table of type "files", [transform], [s3], and where its destination and
// state store come from (the registry, by their tables). Plain data; read
// by the pipeline's thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/job.h"
#include "io/s3/s3_options.h"
#include "sluice/config_table.h"
#include "sluice/registry.h"

namespace sluice::sources {

struct FilesSourceConfig {
  std::string path;
  std::string format;
  std::optional<bool> header;
  std::string delimiter;
  std::vector<std::pair<std::string, std::string>> columns;
  std::string on_error = "fail";
  std::string rejects;
  int64_t max_rejects = 1000;
  /// "all": every new file of a run in one load; "per_file": one load
  /// (one transaction, one ledger entry) per file.
  std::string batch = "all";
  /// Remember loaded files in the state store's ledger and load only new
  /// or changed ones. Default: on for s3:// paths, off for local paths.
  std::optional<bool> incremental;
  /// Only consider files modified this recently ("24h"); 0: no limit.
  int64_t modified_within_seconds = 0;
  /// S3 downloads in flight at once.
  int64_t concurrency = 4;
  /// batch = "per_file": the most bytes of S3 objects downloaded (or being
  /// downloaded) and not loaded yet; an object larger than this is still
  /// downloaded, alone.
  int64_t spool_bytes = 256'000'000;
  /// batch = "all" from S3: DuckDB reads each object as soon as it is
  /// downloaded, while the others download, instead of once all are there.
  bool read_while_downloading = true;
  /// CSV: the longest line accepted, in bytes.
  int64_t max_line_size = 2'000'000;

  bool is_s3() const { return path.starts_with("s3://"); }
  bool is_incremental() const { return incremental.value_or(is_s3()); }
};

struct FilesPipelineConfig {
  std::string name;
  std::string file;  // where it was read from
  FilesSourceConfig source;
  std::string transform_sql;
  EngineSettings engine;
  RetrySettings retry;
  io::S3Options s3;  // [s3] as written
  /// Builds the destination (once per load) and the state store; owned by
  /// the pipeline, outlive this config.
  const Registry* registry = nullptr;
  const ConfigTable* destination = nullptr;
  const ConfigTable* state = nullptr;
  /// The destination's output name with its {run}/{file} placeholders
  /// (Destination::OutputTemplate); empty when it writes no named outputs.
  std::string output_template;
  /// A [state] section was written.
  bool state_configured = false;
  /// [state] lease: how long a worker's hold (claims, the run lease) lasts
  /// without a renewal, when the store is shared (PostgreSQL).
  int64_t lease_ms = 60000;
  /// Whether runs use a state store (ledger, run log).
  bool uses_state() const { return state_configured || source.is_incremental(); }
};

/// Reads [source] (type files), [transform] and [s3]; errors are recorded
/// in the tables.
FilesPipelineConfig ReadFilesPipelineConfig(const JobContext& context);

}  // namespace sluice::sources
