// FilesSource: CSV, Parquet and JSON-lines input from local files, globs,
// directories or stdin, read by DuckDB's own scanners.
//
// The source does not produce batches itself: it defines the view `input`
// in a DuckDbEngine so that the user's SQL transform is pushed into
// DuckDB's scan of the files. stdin is fed to DuckDB through a FIFO by a
// feeder thread, after a sample of it has been used to detect the dialect
// and column types. Used from the pipeline's control thread; counters may
// be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/cancellation.h"
#include "engine/duckdb_engine.h"
#include "io/local_files.h"
#include "sluice/status.h"

namespace sluice::sources {

enum class FileFormat { kCsv, kParquet, kJsonl };
enum class OnError { kFail, kSkip };

struct FilesSourceOptions {
  std::string path;    // file, glob, directory, or "-" for stdin
  /// When not empty, exactly these local files are read (e.g. objects
  /// downloaded from S3) and `path` only names them in messages.
  std::vector<io::LocalFile> files;
  std::string format;  // csv | parquet | jsonl; empty: from the extension
  std::optional<bool> header;
  std::string delimiter;
  /// Explicit column types, in config order (name, SQL type).
  std::vector<std::pair<std::string, std::string>> columns;
  OnError on_error = OnError::kFail;
  std::string rejects_path;
  int64_t max_rejects = 1000;
  /// How much of stdin is read up front to detect the CSV dialect and types.
  int64_t stdin_sample_bytes = 4 << 20;
  /// Directory for the stdin FIFO and sample.
  std::string temp_dir;
  /// Interrupts reading the stdin sample (Ctrl-C before any data arrived).
  const CancellationSource* cancel = nullptr;
};

Result<FileFormat> ParseFileFormat(const std::string& name);

class FilesSource {
 public:
  static Result<std::unique_ptr<FilesSource>> Make(FilesSourceOptions options);
  ~FilesSource();
  FilesSource(const FilesSource&) = delete;
  FilesSource& operator=(const FilesSource&) = delete;

  /// Defines the temp view `input` in `engine`. For stdin this reads the
  /// sample; the rest flows once StartFeeding() is called.
  Status Attach(engine::DuckDbEngine* engine);
  /// stdin only: starts the thread that feeds the FIFO. No-op for files.
  void StartFeeding(const CancellationSource* cancel);
  /// Waits for the feeder; returns its error, if any.
  Status StopFeeding();

  bool is_stdin() const { return options_.path == "-"; }
  FileFormat format() const { return format_; }
  const std::vector<io::LocalFile>& files() const { return files_; }
  /// Sum of input sizes (compressed), or 0 when unknown (stdin).
  int64_t total_bytes() const;
  /// Bytes of stdin handed to DuckDB so far (0 for files).
  int64_t stdin_bytes() const { return stdin_bytes_.load(std::memory_order_relaxed); }

  /// Makes an error from the scan speak the user's terms: "stdin" instead
  /// of the FIFO's path, physical line numbers instead of CSV record numbers.
  Status Explain(const Status& status) const;

  /// After the scan finished: writes the rejects file (skip mode) and fails
  /// when more than max_rejects rows were rejected. Returns the count.
  Result<int64_t> FinishRejects(engine::DuckDbEngine* engine);
  std::string Describe() const;

 private:
  explicit FilesSource(FilesSourceOptions options) : options_(std::move(options)) {}
  Result<std::string> ScanSql(engine::DuckDbEngine* engine);
  Result<std::string> StdinScanSql(engine::DuckDbEngine* engine);
  std::string CsvOptions() const;
  std::string ReplaceCasts(const std::string& scan) const;
  /// JSON lines: the columns DuckDB infers from `read_json_args`, with the
  /// configured types replacing inferred ones, so values are parsed straight
  /// into the declared type instead of through an inferred one.
  Result<std::vector<std::pair<std::string, std::string>>> JsonColumns(engine::DuckDbEngine* engine,
                                                                       const std::string& read_json_args) const;
  bool IsCompressed(const std::string& path) const;
  void Feed(const CancellationSource* cancel);

  FilesSourceOptions options_;
  FileFormat format_ = FileFormat::kCsv;
  std::vector<io::LocalFile> files_;
  std::string temp_dir_;
  std::string fifo_path_;
  std::string sample_;
  std::thread feeder_;
  Status feeder_status_;
  std::atomic<int64_t> stdin_bytes_{0};
  std::atomic<bool> stop_feeding_{false};
};

}  // namespace sluice::sources
