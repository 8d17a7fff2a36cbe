// FilesSource: CSV, Parquet and JSON-lines input from local files, globs,
// directories or stdin, read by DuckDB's own scanners.
//
// The source does not produce batches itself: it defines the view `input`
// in a DuckDbEngine so that the user's SQL transform is pushed into
// DuckDB's scan of the files. stdin is fed to DuckDB through a FIFO by a
// feeder thread, after a sample of it has been used to detect the dialect
// and column types.
//
// CSV files are never read with a guessed layout that contradicts them:
// each file's dialect and column types are detected on a sample (DuckDB's
// sniffer), checked against the file's first line and the declared
// `columns`/`delimiter`, and then read with that layout fixed, so a row with
// too few or too many fields fails (or is rejected) with its line instead of
// turning the file into one text column. Inferred types never lose
// information on the sample (long integers become DECIMAL(38,0), numbers with
// leading zeros stay text). Empty files (0 bytes) are left out; compressed
// files are checked for truncation and corruption on a background thread
// while DuckDB reads them (StartIntegrityChecks / FinishIntegrityChecks).
//
// Used from the pipeline's control thread; counters may be read from any
// thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/cancellation.h"
#include "engine/duckdb_engine.h"
#include "io/local_files.h"
#include "sluice/destination.h"
#include "sluice/status.h"

namespace sluice::sources {

enum class FileFormat { kCsv, kParquet, kJsonl };
enum class OnError { kFail, kSkip };

struct FilesSourceOptions {
  std::string path;  // file, glob, directory, or "-" for stdin
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
  /// Parquet only: `files` are engine::ArrivingFilePath()s of files still
  /// arriving, read by one scan as they come. Without union by name (that
  /// would open every file before reading any): the caller checks that the
  /// files agree once all arrived.
  bool arriving = false;
  /// CSV: the longest line accepted, in bytes.
  int64_t max_line_size = kDefaultMaxLineSize;

  static constexpr int64_t kDefaultMaxLineSize = 2'000'000;
};

Result<FileFormat> ParseFileFormat(const std::string& name);

class FilesSource {
 public:
  static Result<std::unique_ptr<FilesSource>> Make(FilesSourceOptions options);
  ~FilesSource();
  FilesSource(const FilesSource&) = delete;
  FilesSource& operator=(const FilesSource&) = delete;

  /// Defines the temp view `input` in `engine`. For stdin this reads the
  /// sample; the rest flows once StartFeeding() is called. When every file
  /// is empty (see all_empty()) no view is defined.
  Status Attach(engine::DuckDbEngine* engine);
  /// After Attach: every input file is empty (0 bytes, or a compressed file
  /// with no content), so there is nothing to load and nothing to create.
  bool all_empty() const { return !is_stdin() && scanned_.empty(); }
  /// After Attach: the input has no rows and the types of some of its
  /// columns are unknown (CSV files with a header line only, whose columns
  /// are not all declared): a destination must not create a table for it.
  bool untyped_empty() const { return untyped_empty_; }
  /// After Attach: files left out because they are empty, for messages.
  const std::vector<std::string>& empty_files() const { return empty_files_; }

  /// Starts checking the integrity of compressed inputs (.gz, .zst) on a
  /// background thread. No-op when there are none.
  void StartIntegrityChecks();
  /// Waits for the checks started by StartIntegrityChecks; returns the first
  /// damaged file's error (DataError naming it), or OK.
  Status FinishIntegrityChecks();
  /// Ends the checks without waiting for them (the load failed otherwise).
  void StopIntegrityChecks();
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

  /// After the scan finished: writes the rejects file (skip mode) with the
  /// rows DuckDB rejected and the rows the destination refused (`refused`,
  /// located in the input where LocateValues finds them), and fails when
  /// more than max_rejects rows were rejected. Returns the count.
  Result<int64_t> FinishRejects(engine::DuckDbEngine* engine, const std::vector<RejectedRow>& refused = {});

  /// Where a value of the result came from in the input.
  struct ValueSource {
    std::string file;
    int64_t line = 0;  // physical, 1-based
    std::string raw;   // the input line(s) of the record
  };
  /// For each (column, value): the input record whose field `column` holds
  /// exactly `value` (as text; numbers compared by value), or nullopt. Only
  /// CSV files can be searched; distinct records are returned for equal
  /// values. Reads the inputs once more; for error paths only.
  std::vector<std::optional<ValueSource>> LocateValues(
      const std::vector<std::pair<std::string, std::string>>& wanted) const;
  std::string Describe() const;

 private:
  explicit FilesSource(FilesSourceOptions options) : options_(std::move(options)) {}
  /// One CSV file's layout: the read_csv options that fix its dialect, and
  /// its columns with their DuckDB types.
  struct CsvLayout {
    std::string options;  // ", auto_detect=false, delim=..., header=..." without columns
    std::vector<std::pair<std::string, std::string>> columns;
    bool header_only = false;  // a header line and no rows
    bool types_known = true;   // false: header_only with undeclared columns
  };
  /// Refuses a rejects path that is an input or would become one.
  Status CheckRejectsPath() const;
  Result<std::string> ScanSql(engine::DuckDbEngine* engine);
  Result<std::string> CsvScanSql(engine::DuckDbEngine* engine);
  /// nullopt when the file has no content (0 bytes, or only blank lines).
  Result<std::optional<CsvLayout>> SniffCsv(engine::DuckDbEngine* engine, const std::string& path);
  /// Inferred DOUBLE columns whose sampled values would lose digits become
  /// DECIMAL(38,s) or VARCHAR.
  Status KeepInferredNumbersExact(engine::DuckDbEngine* engine, const std::string& path, CsvLayout* layout);
  Result<std::string> StdinScanSql(engine::DuckDbEngine* engine);
  /// The CSV dialect options the user set (header, delimiter, line size),
  /// as read_csv / sniff_csv arguments.
  std::string CsvDialectOptions() const;
  /// A read_csv over `files` (SQL: a literal or a list) with a fixed layout.
  std::string ReadCsvSql(const std::string& files, const std::string& layout_options,
                         const std::vector<std::pair<std::string, std::string>>& columns) const;
  /// " (missing data for column x)" for a "expected N fields, found M"
  /// reason in `path`; empty otherwise.
  std::string FieldCountDetail(const std::string& path, const std::string& reason) const;
  /// The declared type of `name` in [source] columns, or empty.
  std::string DeclaredType(const std::string& name) const;
  std::string ReplaceCasts(const std::string& scan) const;
  /// JSON lines: the columns DuckDB infers from `read_json_args`, with the
  /// configured types replacing inferred ones, so values are parsed straight
  /// into the declared type instead of through an inferred one.
  Result<std::vector<std::pair<std::string, std::string>>> JsonColumns(
      engine::DuckDbEngine* engine, const std::string& read_json_args) const;
  void Feed(const CancellationSource* cancel);

  FilesSourceOptions options_;
  FileFormat format_ = FileFormat::kCsv;
  std::vector<io::LocalFile> files_;
  std::vector<io::LocalFile> scanned_;  // files_ without the empty ones
  std::vector<std::string> empty_files_;
  bool untyped_empty_ = false;
  /// CSV layouts by file path, for messages (field counts, column names).
  std::map<std::string, CsvLayout> layouts_;
  std::thread checker_;
  std::atomic<bool> stop_checks_{false};
  Status checks_status_;
  std::string temp_dir_;
  std::string fifo_path_;
  std::string sample_path_;  // stdin: the sample the layout was detected on
  std::string sample_;
  std::thread feeder_;
  Status feeder_status_;
  std::atomic<int64_t> stdin_bytes_{0};
  std::atomic<bool> stop_feeding_{false};
};

}  // namespace sluice::sources
