#include "sources/files/load_runner.h"

#include <unistd.h>

#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <thread>

#include "core/channel.h"
#include "core/human_format.h"
#include "core/ordered_channel.h"
#include "core/pipeline_runtime.h"
#include "core/redact.h"
#include "engine/duckdb_engine.h"
#include "destinations/native/native_destination.h"
#include "sources/files/files_source.h"

namespace sluice::sources {

namespace {

using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<FilesSource>> MakeSource(const FilesPipelineConfig& config,
                                                         const CancellationSource* cancel = nullptr,
                                                         std::vector<io::LocalFile> files = {}) {
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
  return FilesSource::Make(std::move(o));
}

Result<std::unique_ptr<engine::DuckDbEngine>> MakeEngine(const FilesPipelineConfig& config) {
  engine::EngineOptions o;
  o.threads = config.engine.threads;
  o.memory_limit = config.engine.memory_limit;
  o.temp_directory = config.engine.temp_directory;
  o.streaming_buffer = config.engine.stream_buffer;
  return engine::DuckDbEngine::Open(o);
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
  SLUICE_ASSIGN_OR_RETURN(auto dest, config.registry->MakeDestination(*config.destination));
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

Result<RunSummary> RunLoad(const FilesPipelineConfig& config, const RunOptions& options) {
  auto start = Clock::now();
  RunSummary summary;
  SLUICE_ASSIGN_OR_RETURN(auto source, MakeSource(config, options.cancel, options.files));
  SLUICE_ASSIGN_OR_RETURN(auto engine, MakeEngine(config));
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
