#include "sources/files/load_runner.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <mutex>
#include <thread>

#include "core/channel.h"
#include "core/human_format.h"
#include "core/ordered_channel.h"
#include "core/pipeline_runtime.h"
#include "core/redact.h"
#include "destinations/native/native_destination.h"
#include "engine/duckdb_engine.h"
#include "io/compressed_input.h"
#include "sources/files/files_source.h"

namespace sluice::sources {

namespace {

using Clock = std::chrono::steady_clock;

FilesSourceOptions SourceOptions(const FilesPipelineConfig& config, const CancellationSource* cancel,
                                 std::vector<io::LocalFile> files) {
  FilesSourceOptions o;
  o.path = config.source.path;
  o.files = std::move(files);
  o.format = config.source.format;
  o.header = config.source.header;
  o.delimiter = config.source.delimiter;
  o.columns = config.source.columns;
  o.max_line_size = config.source.max_line_size;
  o.on_error = config.source.on_error == "skip" ? OnError::kSkip : OnError::kFail;
  o.rejects_path = config.source.rejects;
  o.max_rejects = config.source.max_rejects;
  o.temp_dir = config.engine.temp_directory;
  o.cancel = cancel;
  return o;
}

Result<std::unique_ptr<FilesSource>> MakeSource(const FilesPipelineConfig& config,
                                                const CancellationSource* cancel = nullptr,
                                                std::vector<io::LocalFile> files = {}) {
  return FilesSource::Make(SourceOptions(config, cancel, std::move(files)));
}

Result<std::unique_ptr<engine::DuckDbEngine>> MakeEngine(const FilesPipelineConfig& config) {
  engine::EngineOptions o;
  o.threads = config.engine.threads;
  o.memory_limit = config.engine.memory_limit;
  o.temp_directory = config.engine.temp_directory;
  o.streaming_buffer = config.engine.stream_buffer;
  return engine::DuckDbEngine::Open(o);
}

/// The engine opened ahead for this load, else a new one.
Result<std::unique_ptr<engine::DuckDbEngine>> TakeEngine(const FilesPipelineConfig& config,
                                                         const RunOptions& options) {
  if (options.prepared && options.prepared->engine) return std::move(options.prepared->engine);
  if (options.shared_engine) return options.shared_engine->Connect();
  return MakeEngine(config);
}

std::string SelectSql(const FilesPipelineConfig& config) {
  return config.transform_sql.empty() ? "SELECT * FROM input" : engine::StripSql(config.transform_sql);
}

/// Prints a one-line progress display on a terminal: rows, bytes, rate, ETA.
class ProgressLine {
 public:
  ProgressLine(bool enabled, int64_t total_bytes) : enabled_(enabled), total_bytes_(total_bytes) {}
  void Update(int64_t rows, int64_t bytes, double fraction) {
    if (!enabled_) return;
    double secs = std::chrono::duration<double>(Clock::now() - start_).count();
    std::string line = rows >= 0 ? Thousands(rows) + " rows" : std::string("loading");
    if (bytes > 0) line += "  " + HumanBytes(static_cast<double>(bytes));
    if (secs > 0.2) {
      if (rows >= 0) line += "  " + Thousands(static_cast<int64_t>(rows / secs)) + " rows/s";
      if (bytes > 0) line += "  " + HumanBytes(bytes / secs) + "/s";
    }
    if (total_bytes_ > 0 && fraction > 0.001) {
      char buf[64];
      double eta = secs * (1 - fraction) / fraction;
      std::snprintf(buf, sizeof(buf), "  %.0f%%  ETA %.0fs", fraction * 100, eta);
      line += buf;
    }
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    printed_ = true;
  }
  void Clear() {
    if (printed_) std::fprintf(stderr, "\r\033[K");
    printed_ = false;
  }

 private:
  bool enabled_;
  int64_t total_bytes_;
  bool printed_ = false;
  Clock::time_point start_ = Clock::now();
};

bool ProgressEnabled(ProgressMode mode) {
  if (mode == ProgressMode::kAlways) return true;
  if (mode == ProgressMode::kNever) return false;
  return isatty(2) != 0;
}

int DefaultEncodeThreads() {
  unsigned cores = std::thread::hardware_concurrency();
  if (cores <= 2) return 1;
  return static_cast<int>(std::min(4u, cores / 2));
}

/// Streams the query's batches into a batch destination.
Status RunBatchLoad(const FilesPipelineConfig& config, engine::DuckDbEngine* engine, FilesSource* source,
                    Destination* dest, const RunOptions& options, RunSummary* summary) {
  PipelineRuntime runtime(options.cancel);
  StageCounters* source_counters = runtime.Counters("source");
  StageCounters* encode_counters = runtime.Counters("encode");
  StageCounters* dest_counters = runtime.Counters("destination");
  ProgressLine progress(ProgressEnabled(options.progress), source->total_bytes());

  source->StartFeeding(options.cancel);
  std::unique_ptr<engine::QueryStream> stream;
  {
    // Starting the query can run a whole aggregation before the first row;
    // Ctrl-C must reach it.
    CancelWatcher watcher(options.cancel, [engine, dest] {
      engine->Interrupt();
      dest->Interrupt();  // e.g. replace mode waiting for a lock on the table
    });
    auto stream_result = engine->Stream(SelectSql(config));
    if (!stream_result.ok()) return stream_result.status();
    stream = std::move(stream_result).value();
    SLUICE_RETURN_IF_ERROR(dest->Begin(stream->schema()));
  }
  if (!options.checkpoint.empty() && !options.checkpoint_database.empty() &&
      dest->TransactionDatabase() == options.checkpoint_database) {
    SLUICE_RETURN_IF_ERROR(dest->AddCommitStatements(options.checkpoint));
    summary->checkpoint_committed = true;
  }
  if (options.cancel && options.cancel->cancelled()) return Status::Cancelled("interrupted");

  int64_t budget = config.engine.buffer_bytes;
  using Item = std::pair<int64_t, std::shared_ptr<Batch>>;
  Channel<Item> batches(budget / 2);
  OrderedChannel<std::pair<std::string, int64_t>> encoded(budget / 2);
  runtime.OnCancel([&] {
    batches.Cancel();
    encoded.Cancel();
    engine->Interrupt();
    dest->Interrupt();
  });
  runtime.AddStage(
      "source", 1,
      [&](int) -> Status {
        int64_t seq = 0;
        while (!runtime.cancelled()) {
          SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<Batch> batch, stream->Next());
          if (!batch) break;
          if (batch->num_rows() == 0) continue;
          source_counters->Add(batch->num_rows(), batch->byte_size());
          int64_t bytes = batch->byte_size();
          if (!batches.Push(Item{seq++, std::move(batch)}, bytes, source_counters)) break;
        }
        return Status::OK();
      },
      [&] { batches.Close(); });

  if (dest->SupportsEncode()) {
    int threads = config.engine.encode_threads > 0 ? config.engine.encode_threads : DefaultEncodeThreads();
    runtime.AddStage(
        "encode", threads,
        [&](int) -> Status {
          while (auto item = batches.Pop(encode_counters)) {
            SLUICE_ASSIGN_OR_RETURN(std::string bytes, dest->Encode(*item->second));
            int64_t rows = item->second->num_rows();
            encode_counters->Add(rows, static_cast<int64_t>(bytes.size()));
            int64_t size = static_cast<int64_t>(bytes.size());
            if (!encoded.Push(item->first, {std::move(bytes), rows}, size, encode_counters)) break;
          }
          return Status::OK();
        },
        [&] { encoded.Close(); });
    runtime.AddStage("destination", 1, [&](int) -> Status {
      while (auto item = encoded.Pop(dest_counters)) {
        int64_t size = static_cast<int64_t>(item->first.size());
        SLUICE_RETURN_IF_ERROR(dest->WriteEncoded(std::move(item->first), item->second));
        dest_counters->Add(item->second, size);
      }
      return Status::OK();
    });
  } else {
    runtime.AddStage("destination", 1, [&](int) -> Status {
      while (auto item = batches.Pop(dest_counters)) {
        SLUICE_RETURN_IF_ERROR(dest->Write(*item->second));
        dest_counters->Add(item->second->num_rows(), item->second->byte_size());
      }
      return Status::OK();
    });
  }
  // The channels' fill and blocked time, live; ends before the channels do.
  std::unique_ptr<BackpressureMonitor::Watch> watch;
  if (options.backpressure) {
    std::vector<WatchedChannel> watched = {{"batches", "source",
                                            dest->SupportsEncode() ? "encode" : "destination", 1,
                                            [&] { return batches.Stats(); }}};
    if (dest->SupportsEncode()) {
      int threads = config.engine.encode_threads > 0 ? config.engine.encode_threads : DefaultEncodeThreads();
      watched.push_back({"encoded", "encode", "destination", threads, [&] { return encoded.Stats(); }});
    }
    watch = options.backpressure->Start(std::move(watched));
  }
  runtime.OnTick(250, [&] {
    int64_t bytes = source->is_stdin() ? source->stdin_bytes() : 0;
    double fraction = 0;
    if (!source->is_stdin()) {
      auto p = engine->Progress();
      if (p.percentage > 0) {
        fraction = p.percentage / 100.0;
        bytes = static_cast<int64_t>(fraction * static_cast<double>(source->total_bytes()));
      }
    }
    progress.Update(dest_counters->rows(), bytes, fraction);
  });
  Status status = runtime.Run();
  watch.reset();
  progress.Clear();
  stream.reset();  // closes DuckDB's read end of the stdin FIFO
  Status feed = source->StopFeeding();
  if (status.ok()) status = feed;
  summary->bytes_in = source->is_stdin() ? source->stdin_bytes() : source->total_bytes();
  summary->rows = dest_counters->rows();
  for (const auto& c : runtime.counters()) {
    summary->stage_totals.push_back({c->name(), c->rows(), c->bytes(), c->blocked_seconds()});
    if (c->batches() == 0) continue;
    char blocked[32];
    std::snprintf(blocked, sizeof(blocked), "%.1f s", c->blocked_seconds());
    summary->stages += (summary->stages.empty() ? "" : "; ") + c->name() + " " + Thousands(c->rows()) +
                       " rows " + HumanBytes(static_cast<double>(c->bytes())) + " blocked " + blocked;
  }
  return status;
}

/// Lets DuckDB write the destination itself, in one statement.
Status RunNativeLoad(const FilesPipelineConfig& config, engine::DuckDbEngine* engine, FilesSource* source,
                     destinations::NativeDestination* dest, const RunOptions& options, RunSummary* summary) {
  std::string sql = SelectSql(config);
  {
    CancelWatcher watcher(options.cancel, [engine] { engine->Interrupt(); });
    SLUICE_ASSIGN_OR_RETURN(auto columns, engine->Describe(sql));
    SLUICE_RETURN_IF_ERROR(dest->BeginInEngine(engine, columns));
  }
  if (options.cancel && options.cancel->cancelled()) return Status::Cancelled("interrupted");
  PipelineRuntime runtime(options.cancel);
  ProgressLine progress(ProgressEnabled(options.progress), source->total_bytes());
  runtime.OnCancel([&] { engine->Interrupt(); });
  source->StartFeeding(options.cancel);
  int64_t rows = 0;
  runtime.AddStage("load", 1, [&](int) -> Status {
    SLUICE_ASSIGN_OR_RETURN(rows, dest->LoadInEngine(engine, sql));
    return Status::OK();
  });
  runtime.OnTick(250, [&] {
    auto p = engine->Progress();
    double fraction = p.percentage > 0 ? p.percentage / 100.0 : 0;
    int64_t bytes = source->is_stdin()
                        ? source->stdin_bytes()
                        : static_cast<int64_t>(fraction * static_cast<double>(source->total_bytes()));
    progress.Update(-1, bytes, fraction);  // DuckDB does not count a COPY's rows as it goes
  });
  Status status = runtime.Run();
  progress.Clear();
  Status feed = source->StopFeeding();
  if (status.ok()) status = feed;
  summary->rows = rows;
  summary->bytes_in = source->is_stdin() ? source->stdin_bytes() : source->total_bytes();
  summary->stage_totals.push_back({"source", -1, summary->bytes_in, 0});
  summary->stage_totals.push_back({"destination", rows, 0, 0});
  return status;
}

}  // namespace

namespace {

/// "a.csv is empty (0 bytes)" or "3 files are empty (a.csv, b.csv, ...)".
std::string EmptyFilesNote(const std::vector<std::string>& files) {
  if (files.size() == 1) return files[0] + " is empty: nothing to load from it";
  std::string list;
  for (size_t i = 0; i < files.size() && i < 5; ++i) list += (i ? ", " : "") + files[i];
  if (files.size() > 5) list += ", ...";
  return std::to_string(files.size()) + " files are empty (" + list + "): nothing to load from them";
}

/// An input without rows and with unknown column types must stay without
/// rows: an aggregate over it (count(*)) would need types it does not have.
Status CheckUntypedResultIsEmpty(const FilesPipelineConfig& config, engine::DuckDbEngine* engine) {
  SLUICE_ASSIGN_OR_RETURN(
      auto rows, engine->QueryRows("SELECT count(*) FROM (" + SelectSql(config) + "\n) AS sluice_untyped"));
  if (!rows.empty() && rows[0][0] && *rows[0][0] != "0") {
    return Status::InvalidArgument(
        "the input has a header line and no rows, so the types of its columns are unknown, yet [transform] "
        "sql makes " +
        *rows[0][0] + " rows of it; declare the column types in [source] columns");
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<Destination>> MakeLoadDestination(const FilesPipelineConfig& config,
                                                         const RunOptions& options, bool untyped_empty) {
  std::unique_ptr<Destination> dest;
  if (options.prepared && options.prepared->destination) {
    dest = std::move(options.prepared->destination);
  } else {
    SLUICE_ASSIGN_OR_RETURN(dest, config.registry->MakeDestination(*config.destination));
  }
  if (auto* native = dynamic_cast<destinations::NativeDestination*>(dest.get())) native->SetCancel(options.cancel);
  LoadContext load = options.load;
  if (load.pipeline.empty()) load.pipeline = config.name;
  load.untyped_empty = untyped_empty;
  SLUICE_RETURN_IF_ERROR(dest->PrepareLoad(load));
  return dest;
}

Status PingDestination(const FilesPipelineConfig& config) {
  auto dest = config.registry->MakeDestination(*config.destination);
  Status d = dest.ok() ? (*dest)->Ping() : dest.status();
  return d.ok() ? d : d.WithContext("destination");
}

namespace {

Result<RunSummary> RunFedLoad(const FilesPipelineConfig& config, const RunOptions& options);

}  // namespace

Result<RunSummary> RunLoad(const FilesPipelineConfig& config, const RunOptions& options) {
  if (options.feed) return RunFedLoad(config, options);
  auto start = Clock::now();
  RunSummary summary;
  SLUICE_ASSIGN_OR_RETURN(auto source, MakeSource(config, options.cancel, options.files));
  SLUICE_ASSIGN_OR_RETURN(auto engine, TakeEngine(config, options));
  summary.source = source->Describe();
  SLUICE_RETURN_IF_ERROR(source->Explain(source->Attach(engine.get())));
  if (!source->empty_files().empty()) summary.notes.push_back(EmptyFilesNote(source->empty_files()));
  if (source->all_empty()) {
    // Nothing to load and nothing to create: the destination is not touched.
    SLUICE_ASSIGN_OR_RETURN(auto dest, MakeLoadDestination(config, options, false));
    summary.destination = dest->Describe();
    summary.notes.push_back(summary.destination + " was not touched");
    summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    return summary;
  }
  SLUICE_ASSIGN_OR_RETURN(auto dest, MakeLoadDestination(config, options, source->untyped_empty()));
  auto* native = dynamic_cast<destinations::NativeDestination*>(dest.get());
  summary.destination = dest->Describe();
  if (dest->NeedsInputOrder()) {
    // "The last row for a key wins" needs the input's order; other modes
    // let DuckDB's parallel scan deliver rows in any order, which is faster.
    SLUICE_RETURN_IF_ERROR(engine->Execute("SET preserve_insertion_order = true"));
  }

  Status status;
  if (!native) dest->SetSkipBadRows(config.source.on_error == "skip");
  if (source->untyped_empty()) status = CheckUntypedResultIsEmpty(config, engine.get());
  // Compressed inputs are checked for truncation while DuckDB reads them.
  source->StartIntegrityChecks();
  if (status.ok()) {
    status = native ? RunNativeLoad(config, engine.get(), source.get(), native, options, &summary)
                    : RunBatchLoad(config, engine.get(), source.get(), dest.get(), options, &summary);
  }
  if (status.ok()) {
    // Rejected rows are checked before the commit, so that too many of them
    // leave the destination untouched. Rows the destination refused (values
    // it cannot store) count as rejected too.
    std::vector<RejectedRow> refused;
    if (!native) refused = dest->TakeRejectedRows();
    summary.rows -= static_cast<int64_t>(refused.size());
    auto rejected = source->FinishRejects(engine.get(), refused);
    if (rejected.ok()) {
      summary.rejected = *rejected;
    } else {
      status = rejected.status();
    }
  } else if (status.code() == StatusCode::kDataError && !native) {
    // A value the destination cannot store: name the input line it came
    // from when the transform kept input rows.
    auto refused = dest->TakeRejectedRows();
    if (!refused.empty()) {
      const RejectedRow& bad = refused.front();
      auto found = source->LocateValues({{bad.column, bad.value}});
      if (found[0]) {
        status =
            Status::DataError(summary.destination + ": " + found[0]->file + " line " +
                              std::to_string(found[0]->line) + ", column " + bad.column + ": " + bad.reason +
                              " (row " + std::to_string(bad.result_row) + " of the result)");
      }
    }
  }
  if (status.ok()) {
    status = source->FinishIntegrityChecks();
  } else if (status.code() == StatusCode::kDataError || status.code() == StatusCode::kIoError) {
    // A file cut short usually ends in a malformed last line, a damaged one
    // in a decoding error: say why.
    Status integrity = source->FinishIntegrityChecks();
    if (!integrity.ok()) status = integrity;
  } else {
    source->StopIntegrityChecks();
  }
  if (status.ok() && options.before_commit) status = options.before_commit();
  if (status.ok()) {
    status = native ? native->CommitInEngine(engine.get()) : dest->Commit();
  }
  if (!status.ok()) summary.checkpoint_committed = false;
  if (!status.ok()) {
    status = source->Explain(status);
    if (native) {
      native->AbortInEngine(engine.get());
    } else {
      dest->Abort();
    }
    const bool at_least_once = dest->delivery() == Delivery::kAtLeastOnce;
    if (options.cancel && options.cancel->cancelled()) {
      return Status::Cancelled(at_least_once ? "interrupted; what " + summary.destination +
                                                   " accepted so far stays delivered (at least once: a rerun sends "
                                                   "it again with the same Idempotency-Keys)"
                                             : "interrupted; " + summary.destination + " left unchanged");
    }
    return status;
  }
  std::string note = dest->Note();
  if (!note.empty()) summary.notes.push_back(summary.destination + ": " + note);
  if (dest->delivery() == Delivery::kAtLeastOnce) {
    summary.notes.push_back(summary.destination +
                            ": delivered at least once (every request carries an Idempotency-Key)");
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return summary;
}

PreparedLoad::~PreparedLoad() = default;

Result<std::unique_ptr<PreparedLoad>> PrepareLoadAhead(const FilesPipelineConfig& config) {
  auto prepared = std::make_unique<PreparedLoad>();
  SLUICE_ASSIGN_OR_RETURN(prepared->engine, MakeEngine(config));
  SLUICE_ASSIGN_OR_RETURN(prepared->destination, config.registry->MakeDestination(*config.destination));
  SLUICE_RETURN_IF_ERROR(prepared->destination->Connect());
  return prepared;
}

Result<std::unique_ptr<engine::DuckDbEngine>> OpenSharedEngine(const FilesPipelineConfig& config) {
  SLUICE_ASSIGN_OR_RETURN(auto dest, config.registry->MakeDestination(*config.destination));
  if (dynamic_cast<destinations::NativeDestination*>(dest.get())) return nullptr;
  return MakeEngine(config);
}

namespace {

/// "3 files from 's3://b/in/*.parquet'", as FilesSource::Describe says it.
std::string DescribeFiles(const FilesPipelineConfig& config, const std::vector<io::LocalFile>& files) {
  if (files.size() == 1) return config.source.path;
  return std::to_string(files.size()) + " files from '" + config.source.path + "'";
}

/// Whether to read a fed load's files as they arrive: when asked to
/// ([source] read_while_downloading), and where that changes nothing but
/// the time it takes: not for a destination that delivers rows before its
/// commit or that DuckDB writes itself (a failed attempt could not be
/// taken back).
bool ReadWhileArriving(const FilesPipelineConfig& config, const Destination& dest) {
  return config.source.read_while_downloading && dest.delivery() == Delivery::kTransactional &&
         dynamic_cast<const destinations::NativeDestination*>(&dest) == nullptr;
}

/// One element of a Parquet file's schema, as text (parquet_schema()).
constexpr char kSchemaElement[] =
    "coalesce(name::VARCHAR, '') || '|' || "
    "coalesce(type::VARCHAR, '') || '|' || "
    "coalesce(type_length::VARCHAR, '') || '|' || "
    "coalesce(repetition_type::VARCHAR, '') || '|' || "
    "coalesce(num_children::VARCHAR, '') || '|' || "
    "coalesce(converted_type::VARCHAR, '') || '|' || "
    "coalesce(scale::VARCHAR, '') || '|' || "
    "coalesce(precision::VARCHAR, '') || '|' || "
    "coalesce(field_id::VARCHAR, '') || '|' || "
    "coalesce(logical_type::VARCHAR, '')";

/// After a scan of Parquet files as they arrived (without union by name):
/// whether a scan of all of them at once, by name, would have read them
/// alike, which holds when every file has the same schema (the same
/// columns with the same types, in any order) and is a plain Parquet file
/// (not empty, not compressed). Reads the files' footers only.
Status CheckArrivedAlike(engine::DuckDbEngine* engine, const std::vector<io::LocalFile>& files) {
  std::string list;
  for (const auto& f : files) {
    if (f.size == 0 || io::CompressionOfPath(f.path) != io::Compression::kNone)
      return Status::SchemaMismatch(f.path + " is empty or compressed");
    list += (list.empty() ? "" : ", ") + engine::QuoteLiteral(f.path);
  }
  SLUICE_ASSIGN_OR_RETURN(
      auto rows,
      engine->QueryRows(
          std::string("SELECT count(*), count(DISTINCT schema) FROM (SELECT file_name, string_agg(element, "
                      "';' ORDER BY element) AS schema FROM (SELECT file_name, ") +
          kSchemaElement + " AS element FROM parquet_schema([" + list + "])) GROUP BY file_name)"));
  if (rows.size() != 1 || !rows[0][0] || !rows[0][1] || *rows[0][0] != std::to_string(files.size()) ||
      *rows[0][1] != "1") {
    return Status::SchemaMismatch("the files do not all have the same columns and types");
  }
  return Status::OK();
}

/// A fed load of Parquet files that DuckDB's own scan reads as they arrive
/// (a file system that waits for each file, engine::ServeArrivingFiles),
/// while the transform runs over all of them as one `input` and its result
/// streams into the destination. nullopt when it did not work out before
/// anything was committed (other formats, files unlike the first, an
/// object skipped as a version loaded before, an error): the caller loads
/// again once every file is there, which gives the outcome a load of all
/// files gives. An error only for what a second attempt must not repeat:
/// a failed commit, Ctrl-C.
Result<std::optional<RunSummary>> LoadWhileArriving(const FilesPipelineConfig& config,
                                                    const RunOptions& options) {
  auto start = Clock::now();
  std::optional<RunSummary> again;
  // Declared before the engine: DuckDB threads still waiting for a file
  // when a failed query ends use them until the engine is closed.
  std::mutex mu;
  std::optional<Clock::time_point> first_read;  // guarded by mu
  const size_t listed = options.feed->listed();
  if (!config.source.read_while_downloading || listed < 2) return again;
  // The first file decides the format, as in a read of all files. CSV and
  // JSON lines are sniffed across all files before they are read.
  auto first = options.feed->WaitFor(0);
  if (!first.ok() || !*first) return again;
  {
    auto first_source = MakeSource(config, options.cancel, {**first});
    if (!first_source.ok() || (*first_source)->format() != FileFormat::kParquet) return again;
  }
  if ((*first)->size == 0 || io::CompressionOfPath((*first)->path) != io::Compression::kNone) return again;

  auto made = MakeLoadDestination(config, options, false);
  if (!made.ok()) return again;
  std::unique_ptr<Destination> dest = std::move(made).value();
  if (!ReadWhileArriving(config, *dest)) {
    // The next attempt uses the destination (and its connection) after all.
    if (options.prepared) options.prepared->destination = std::move(dest);
    return again;
  }
  auto engine = TakeEngine(config, options);
  if (!engine.ok()) return again;

  std::vector<io::LocalFile> arriving;
  for (size_t i = 0; i < listed; ++i) arriving.push_back({engine::ArrivingFilePath(i), 0, 0});
  Status status = (*engine)->ServeArrivingFiles([&](size_t index) -> Result<std::string> {
    SLUICE_ASSIGN_OR_RETURN(auto file, options.feed->WaitFor(index));
    // Fewer than listed arrive when one was skipped: not this scan's files.
    if (!file) return Status::SchemaMismatch("an object was skipped while it was read");
    std::lock_guard<std::mutex> lock(mu);
    if (!first_read) first_read = Clock::now();
    return file->path;
  });
  std::unique_ptr<FilesSource> source;
  if (status.ok()) {
    FilesSourceOptions o = SourceOptions(config, options.cancel, arriving);
    o.format = "parquet";
    o.arriving = true;
    auto made_source = FilesSource::Make(std::move(o));
    status = made_source.ok() ? (*made_source)->Attach(engine->get()) : made_source.status();
    if (made_source.ok()) source = std::move(made_source).value();
  }
  if (status.ok() && dest->NeedsInputOrder())
    status = (*engine)->Execute("SET preserve_insertion_order = true");
  if (!status.ok()) return again;

  RunSummary summary;
  summary.destination = dest->Describe();
  dest->SetSkipBadRows(false);
  RunOptions run = options;
  run.checkpoint.clear();  // added below, once the files' versions are known
  status = RunBatchLoad(config, engine->get(), source.get(), dest.get(), run, &summary);
  // Every file, also those the query did not get to (it may stop early).
  std::vector<io::LocalFile> files;
  for (size_t index = 0; status.ok(); ++index) {
    auto file = options.feed->WaitFor(index);
    if (!file.ok()) {
      status = file.status();
    } else if (*file) {
      files.push_back(**file);
    } else {
      if (files.size() != listed) status = Status::SchemaMismatch("an object was skipped while it was read");
      break;
    }
  }
  if (status.ok()) status = CheckArrivedAlike(engine->get(), files);
  if (status.ok() && options.before_commit) status = options.before_commit();
  if (status.ok() && options.feed_checkpoint) {
    auto statements = options.feed_checkpoint();
    if (!statements.ok()) {
      dest->Abort();
      return statements.status();
    }
    if (!statements->empty() && !options.checkpoint_database.empty() &&
        dest->TransactionDatabase() == options.checkpoint_database) {
      status = dest->AddCommitStatements(std::move(statements).value());
      summary.checkpoint_committed = status.ok();
    }
  }
  if (!status.ok()) {
    dest->Abort();
    if (options.cancel && options.cancel->cancelled())
      return Status::Cancelled("interrupted; " + summary.destination + " left unchanged");
    spdlog::debug(
        "reading the files as they arrived did not work out ({}); reading them again once all are "
        "there",
        status.message());
    return again;
  }
  status = dest->Commit();
  if (!status.ok()) {
    dest->Abort();
    return status;
  }
  summary.source = DescribeFiles(config, files);
  summary.bytes_in = 0;
  for (const auto& f : files) summary.bytes_in += f.size;
  std::string note = dest->Note();
  if (!note.empty()) summary.notes.push_back(summary.destination + ": " + note);
  {
    std::lock_guard<std::mutex> lock(mu);
    summary.first_read = first_read;
  }
  summary.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return std::optional<RunSummary>(std::move(summary));
}

Result<RunSummary> RunFedLoad(const FilesPipelineConfig& config, const RunOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto done, LoadWhileArriving(config, options));
  if (done) return std::move(done).value();
  // Once every file is there: the load of all files at once.
  RunOptions all = options;
  all.feed = nullptr;
  for (size_t index = 0;; ++index) {
    SLUICE_ASSIGN_OR_RETURN(auto file, options.feed->WaitFor(index));
    if (!file) break;
    all.files.push_back(*file);
  }
  if (all.files.empty()) return RunSummary{};  // nothing arrived: nothing to load
  if (options.feed_checkpoint) {
    SLUICE_ASSIGN_OR_RETURN(all.checkpoint, options.feed_checkpoint());
  }
  return RunLoad(config, all);
}

}  // namespace

Result<std::string> ValidateLoad(const FilesPipelineConfig& config, const std::vector<io::LocalFile>& files) {
  std::string report;
  SLUICE_ASSIGN_OR_RETURN(auto source, MakeSource(config, nullptr, files));
  SLUICE_ASSIGN_OR_RETURN(auto dest, MakeLoadDestination(config, RunOptions{}, false));
  SLUICE_ASSIGN_OR_RETURN(auto engine, MakeEngine(config));
  report += "source:      " + source->Describe();
  if (!source->is_stdin()) report += " (" + HumanBytes(static_cast<double>(source->total_bytes())) + ")";
  report += "\n";
  Schema schema;
  if (source->is_stdin()) {
    report += "transform:   not compiled (stdin is only read by `sluice run`)\n";
  } else {
    SLUICE_RETURN_IF_ERROR(source->Explain(source->Attach(engine.get())));
    if (source->all_empty()) {
      report += "transform:   not compiled (every input file is empty)\n";
      return report;
    }
    auto normalized = engine->Normalize(SelectSql(config), &schema);
    if (!normalized.ok()) return normalized.status().WithContext("[transform] sql");
    report += "result:      " + schema.ToString() + "\n";
    if (source->untyped_empty()) {
      report += "note:        the input has a header line and no rows; its column types are unknown\n";
    }
  }
  std::string checked;
  if (auto* native = dynamic_cast<destinations::NativeDestination*>(dest.get())) {
    SLUICE_RETURN_IF_ERROR(native->CheckInEngine(engine.get()));
    checked = native->Describe() + " (reachable)";
  } else {
    SLUICE_ASSIGN_OR_RETURN(checked, dest->Check(schema));
  }
  report += "destination: " + checked + "\n";
  return report;
}

}  // namespace sluice::sources
