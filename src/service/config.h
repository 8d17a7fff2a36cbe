// Pipeline configuration: one TOML file per pipeline, with ${VAR} and
// ${VAR:-default} interpolation in every string value. Parsing is pure:
// it reads the file and the environment, and touches nothing else.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/status.h"

namespace sluice::service {

struct SourceConfig {
  std::string type = "files";
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
  /// CSV: the longest line accepted, in bytes.
  int64_t max_line_size = 2'000'000;

  // type = "postgres_cdc"
  std::string url;
  std::string publication;
  std::vector<std::string> tables;  // create the publication for these when missing
  std::string slot;                 // default: sluice_<pipeline name>
  int64_t max_table_sync_workers = 4;
  int64_t table_error_retry_delay_ms = 10000;
  int64_t table_error_retry_max_attempts = 5;
  int64_t publication_refresh_ms = 10000;  // how often added/removed tables are noticed
  int64_t stream_memory_bytes = 64 << 20;  // streamed transactions in memory before spilling

  bool is_cdc() const { return type == "postgres_cdc"; }

  bool is_s3() const { return path.starts_with("s3://"); }
  bool is_incremental() const { return incremental.value_or(is_s3()); }
};

/// Where the file ledger and run log live.
struct StateStoreConfig {
  std::string url;          // postgresql://... (schema sluice)
  std::string path;         // SQLite file
  bool configured = false;  // a [state] section was written
};

/// The monitoring HTTP service of `sluice serve`.
struct ServerConfig {
  std::string listen = "127.0.0.1:9187";
  std::string token;
  bool configured = false;
};

/// Object storage access, shared by an s3:// source and an s3:// file
/// destination. Empty values come from the environment or ~/.aws.
struct S3Config {
  std::string endpoint;
  std::string region;
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;
  std::string addressing;            // "path" | "virtual" | "" (path with a custom endpoint)
  int64_t stall_timeout_ms = 30000;  // a transfer without progress this long is retried
  /// How long one S3 request is retried before the load fails (and is not
  /// run again by [retry]: the client already spent the retry budget).
  int64_t retry_max_elapsed_ms = 300000;
};

/// [batch]: how CDC changes are grouped into destination transactions.
struct CdcBatchConfig {
  int64_t max_rows = 10000;
  int64_t max_bytes = 8 << 20;
  int64_t max_fill_ms = 1000;
};

struct DestinationConfig {
  std::string type;
  std::string schema = "public";  // CDC into postgres: where mirrored tables go
  std::string url;
  std::string table;
  std::string mode = "append";
  std::vector<std::string> key;
  std::string path;
  std::string format;
  bool create_table = true;
  S3Config s3;                 // a copy of [s3], for an s3:// path
  std::string temp_directory;  // a copy of [engine] temp_directory
  /// Set by the runner, not the file: the load has no rows and the types of
  /// its columns are unknown (see FilesSource::untyped_empty).
  bool untyped_empty = false;
};

struct EngineConfig {
  int threads = 0;
  std::string memory_limit = "256MB";
  std::string temp_directory;
  std::string stream_buffer = "16MB";  // DuckDB's streaming_buffer_size
  int64_t buffer_bytes = 16 << 20;     // what the pipeline's channels may hold
  int encode_threads = 0;              // 0: chosen from the core count
};

struct ScheduleConfig {
  std::string every;  // "30s", "5m", "24h"
  std::string cron;
  std::string timezone;  // IANA name for cron; empty: UTC
  bool run_on_start = true;
  int64_t every_seconds = 0;
};

/// Whole-load retries after a retryable failure (connection lost, server
/// unavailable): the failed load was rolled back, so running it again is safe.
struct RetryConfig {
  int64_t max_attempts = 5;  // including the first; 1 disables retries
  int64_t initial_ms = 1000;
  int64_t max_delay_ms = 30000;
  int64_t max_elapsed_ms = 300000;
};

struct PipelineConfig {
  std::string name;
  std::string file;  // where it was read from
  SourceConfig source;
  std::string transform_sql;
  DestinationConfig destination;
  EngineConfig engine;
  RetryConfig retry;
  CdcBatchConfig batch;
  std::optional<ScheduleConfig> schedule;
  S3Config s3;
  StateStoreConfig state;
  ServerConfig server;
  /// Whether this pipeline uses a state store (ledger, run log).
  bool uses_state() const { return state.configured || source.is_incremental() || source.is_cdc(); }
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
/// The process environment.
std::optional<std::string> GetEnv(const std::string& name);

/// Expands ${VAR} and ${VAR:-default}; "$$" is a literal "$". `where`
/// names the key for the error when a variable is missing.
Result<std::string> Interpolate(const std::string& text, const EnvLookup& env, const std::string& where);

Result<PipelineConfig> ParsePipelineConfig(const std::string& toml_text, const std::string& file_name,
                                           const EnvLookup& env = GetEnv);
Result<PipelineConfig> LoadPipelineConfig(const std::string& path, const EnvLookup& env = GetEnv);

/// Parses "250ms", "90s", "5m", "24h", "1d" (a whole number and a unit; a
/// bare number is seconds) into milliseconds. Zero and negative are errors.
Result<int64_t> ParseDurationMillis(const std::string& text);
/// ParseDurationMillis, in whole seconds (rounded up: "1500ms" is 2).
Result<int64_t> ParseDurationSeconds(const std::string& text);
/// Parses "8MB", "512KiB", "1GB", "1024" into bytes.
Result<int64_t> ParseBytes(const std::string& text);

}  // namespace sluice::service
