#include "sources/files/ledger_job.h"

#include <fnmatch.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "core/human_format.h"
#include "core/replace_all.h"
#include "core/retry.h"
#include "engine/duckdb_engine.h"
#include "io/s3/s3_client.h"
#include "io/s3/sigv4.h"
#include "state/memory_state_store.h"
#include "state/register_state_stores.h"

namespace sluice::sources {

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Pages of objects to consider, in key order.
class ObjectLister {
 public:
  virtual ~ObjectLister() = default;
  /// nullopt when the listing is complete.
  virtual Result<std::optional<std::vector<state::ObjectInfo>>> NextPage() = 0;
};

/// An s3:// path: a prefix, or a glob over keys (`*` does not cross `/`).
class S3ObjectLister : public ObjectLister {
 public:
  S3ObjectLister(io::S3Client* client, io::S3Url url, int64_t min_modified_ms)
      : url_(std::move(url)), min_modified_ms_(min_modified_ms) {
    const std::string& key = url_.key;
    size_t glob = key.find_first_of("*?[");
    if (glob != std::string::npos) {
      prefix_ = key.substr(0, glob);
      pattern_ = key;
    } else if (key.empty() || key.back() == '/') {
      prefix_ = key;
    } else {
      // A single object, or a "directory" without its trailing slash.
      prefix_ = key;
      exact_or_dir_ = key;
    }
    lister_ = client->List(url_.bucket, prefix_);
  }

  Result<std::optional<std::vector<state::ObjectInfo>>> NextPage() override {
    while (true) {
      SLUICE_ASSIGN_OR_RETURN(auto page, lister_->NextPage());
      if (!page) return std::optional<std::vector<state::ObjectInfo>>();
      std::vector<state::ObjectInfo> out;
      for (auto& o : *page) {
        if (!o.key.empty() && o.key.back() == '/') continue;  // a "directory" marker
        if (!pattern_.empty() && fnmatch(pattern_.c_str(), o.key.c_str(), FNM_PATHNAME) != 0) continue;
        if (!exact_or_dir_.empty() && o.key != exact_or_dir_ && !o.key.starts_with(exact_or_dir_ + "/"))
          continue;
        if (min_modified_ms_ > 0 && o.last_modified_unix_ms < min_modified_ms_) continue;
        out.push_back({"s3://" + url_.bucket + "/" + o.key, o.etag, o.size, o.last_modified_unix_ms});
      }
      if (!out.empty()) return std::optional(std::move(out));
    }
  }

 private:
  io::S3Url url_;
  int64_t min_modified_ms_;
  std::string prefix_, pattern_, exact_or_dir_;
  std::unique_ptr<io::S3Client::Lister> lister_;
};

/// Size and modification time stand in for a local file's ETag: a
/// rewritten file counts as changed.
std::string LocalEtag(int64_t size, int64_t mtime_ns) {
  char etag[64];
  std::snprintf(etag, sizeof(etag), "%llx-%llx", static_cast<unsigned long long>(size),
                static_cast<unsigned long long>(mtime_ns));
  return etag;
}

class LocalObjectLister : public ObjectLister {
 public:
  LocalObjectLister(std::vector<io::LocalFile> files, int64_t min_modified_ms) {
    for (auto& f : files) {
      int64_t mtime_ms = f.mtime_ns / 1000000;
      if (min_modified_ms > 0 && mtime_ms < min_modified_ms) continue;
      std::error_code ec;
      fs::path abs = fs::absolute(f.path, ec);
      objects_.push_back(
          {ec ? f.path : abs.lexically_normal().string(), LocalEtag(f.size, f.mtime_ns), f.size, mtime_ms});
    }
  }
  Result<std::optional<std::vector<state::ObjectInfo>>> NextPage() override {
    if (next_ >= objects_.size()) return std::optional<std::vector<state::ObjectInfo>>();
    size_t end = std::min(objects_.size(), next_ + 1000);
    std::vector<state::ObjectInfo> page(objects_.begin() + static_cast<std::ptrdiff_t>(next_),
                                        objects_.begin() + static_cast<std::ptrdiff_t>(end));
    next_ = end;
    return std::optional(std::move(page));
  }

 private:
  std::vector<state::ObjectInfo> objects_;
  size_t next_ = 0;
};

/// The file name a spooled object gets: its position and its base name, so
/// the format is still told by the extension.
std::string SpoolName(size_t index, const std::string& key) {
  auto slash = key.find_last_of('/');
  std::string base = slash == std::string::npos ? key : key.substr(slash + 1);
  for (char& c : base) {
    if (c == '\0' || static_cast<unsigned char>(c) < 0x20) c = '_';
  }
  return std::to_string(index) + "-" + base;
}

/// A per-run spool directory `<base>/<pipeline>/run-<pid>`. Directories of
/// runs whose process is gone (a crash) are removed when the next run starts.
///
/// With a byte budget the spool holds at most that many bytes of objects
/// being downloaded or downloaded and not yet loaded: Reserve waits for
/// room. An object larger than the budget is still downloaded, alone. The
/// budget is the spool's, so that every Fetcher of a run shares it.
/// Reserve/Free/Adjust and the counters may be called from any thread.
class Spool {
 public:
  /// `budget_bytes` <= 0: no limit.
  static Result<std::unique_ptr<Spool>> Make(const FilesPipelineConfig& config, int64_t budget_bytes = 0) {
    fs::path base = config.engine.temp_directory.empty()
                        ? fs::temp_directory_path() / "sluice-spool"
                        : fs::path(config.engine.temp_directory) / "sluice-spool";
    std::string name = config.name;
    for (char& c : name) {
      if (c == '/' || c == '\0') c = '_';
    }
    fs::path dir = base / name;
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) return Status::IoError("cannot create spool directory " + dir.string() + ": " + ec.message());
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      std::string n = entry.path().filename().string();
      if (!n.starts_with("run-")) continue;
      pid_t pid = static_cast<pid_t>(std::atoll(n.c_str() + 4));
      if (pid > 0 && pid != getpid() && kill(pid, 0) == 0) continue;  // another live run
      std::error_code rm;
      fs::remove_all(entry.path(), rm);
      if (!rm)
        spdlog::info("pipeline {}: removed spool {} left by an earlier run", config.name,
                     entry.path().string());
    }
    auto spool = std::unique_ptr<Spool>(new Spool());
    spool->budget_ = budget_bytes > 0 ? budget_bytes : 0;
    spool->dir_ = dir / ("run-" + std::to_string(getpid()));
    fs::remove_all(spool->dir_, ec);
    fs::create_directories(spool->dir_, ec);
    if (ec)
      return Status::IoError("cannot create spool directory " + spool->dir_.string() + ": " + ec.message());
    return spool;
  }
  ~Spool() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string PathFor(size_t index, const std::string& key) const {
    return (dir_ / SpoolName(index, key)).string();
  }

  /// Waits until `bytes` more fit the budget, or until the spool holds
  /// nothing, then counts them as held. Returns false, holding nothing, when
  /// `stopped()` turned true first (Wake() makes a waiting call look).
  bool Reserve(int64_t bytes, const std::function<bool()>& stopped) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return stopped() || budget_ == 0 || held_ == 0 || held_ + bytes <= budget_; });
    if (stopped()) return false;
    held_ += bytes;
    peak_ = std::max(peak_, held_);
    return true;
  }
  /// Corrects what an object holds once its size is known (it may differ
  /// from the listing's when the object changed in between).
  void Adjust(int64_t delta) {
    std::lock_guard<std::mutex> lock(mu_);
    held_ += delta;
    peak_ = std::max(peak_, held_);
  }
  void Free(int64_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ -= bytes;
    }
    cv_.notify_all();
  }
  void Wake() {
    { std::lock_guard<std::mutex> lock(mu_); }
    cv_.notify_all();
  }
  /// The most bytes held at once so far.
  int64_t peak_bytes() const {
    std::lock_guard<std::mutex> lock(mu_);
    return peak_;
  }
  int64_t budget_bytes() const { return budget_; }

 private:
  Spool() = default;
  fs::path dir_;
  int64_t budget_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  int64_t held_ = 0;  // guarded by mu_
  int64_t peak_ = 0;  // guarded by mu_
};

/// A fetched object, ready to be read by DuckDB.
struct Fetched {
  io::LocalFile file;
  state::ObjectInfo object;  // ETag as downloaded (it may have changed since listing)
  int64_t downloaded = 0;
};

/// Downloads `objects` in order on `concurrency` threads, as far ahead of
/// the consumer as the spool's byte budget allows (each object holds its
/// size in the spool from the start of its download until Release). Local
/// files pass through. Take and Release come from one consumer thread;
/// Stop from any thread.
class Fetcher {
 public:
  Fetcher(io::S3Client* client, Spool* spool, std::vector<state::ObjectInfo> objects, int concurrency,
          const CancellationSource* cancel)
      : client_(client), spool_(spool), objects_(std::move(objects)), cancel_(cancel) {
    results_.resize(objects_.size());
    held_.resize(objects_.size());
    if (client_ == nullptr) return;
    int threads = static_cast<int>(std::min<size_t>(static_cast<size_t>(concurrency), objects_.size()));
    for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { Work(); });
  }
  ~Fetcher() {
    Stop();
    for (auto& t : workers_) t.join();
    // What the consumer never released (the run ended early) leaves room
    // for the run's other fetchers; the files go with the spool.
    int64_t held = 0;
    for (int64_t h : held_) held += h;
    if (held > 0) spool_->Free(held);
  }

  /// Waits for object i (consumed in order) and returns it.
  Result<Fetched> Take(size_t i) {
    const auto& o = objects_[i];
    if (client_ == nullptr) {
      return Fetched{io::LocalFile{o.key, o.size, o.modified_unix_ms * 1000000}, o, 0};
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return results_[i].has_value() || stop_; });
    if (!results_[i]) return Status::Cancelled("interrupted");
    auto result = std::move(*results_[i]);
    results_[i].reset();
    return result;
  }
  /// The consumer is done with object i: its spool file goes.
  void Release(size_t i) {
    if (client_ == nullptr) return;
    std::error_code ec;
    fs::remove(spool_->PathFor(i, objects_[i].key), ec);
    int64_t held = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::swap(held, held_[i]);
    }
    if (held > 0) spool_->Free(held);
  }
  /// Ends the downloads: those in flight finish, no new one starts, and
  /// Take of an object not downloaded yet returns Cancelled.
  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    stopping_.store(true);
    cv_.notify_all();
    if (spool_) spool_->Wake();
  }

 private:
  void Work() {
    while (true) {
      size_t i;
      {
        std::unique_lock<std::mutex> lock(mu_);
        // One worker at a time takes room in the spool, in object order, so
        // that a later object never holds the room an earlier one waits for.
        cv_.wait(lock, [&] { return stop_ || next_ >= objects_.size() || !reserving_; });
        if (stop_ || next_ >= objects_.size()) return;
        i = next_++;
        reserving_ = true;
      }
      bool room = spool_->Reserve(objects_[i].size, [this] { return stopping_.load(); });
      {
        std::lock_guard<std::mutex> lock(mu_);
        reserving_ = false;
        if (room) held_[i] = objects_[i].size;
      }
      cv_.notify_all();
      Result<Fetched> r = room ? Download(i) : Result<Fetched>(Status::Cancelled("interrupted"));
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (r.ok() && held_[i] != r->downloaded) {
          spool_->Adjust(r->downloaded - held_[i]);
          held_[i] = r->downloaded;
        }
        results_[i] = std::move(r);
      }
      cv_.notify_all();
    }
  }

  Result<Fetched> Download(size_t i) {
    if (cancel_ && cancel_->cancelled()) return Status::Cancelled("interrupted");
    const auto& o = objects_[i];
    SLUICE_ASSIGN_OR_RETURN(io::S3Url url, io::ParseS3Url(o.key));
    std::string path = spool_->PathFor(i, o.key);
    SLUICE_ASSIGN_OR_RETURN(io::S3Object got, client_->Download(url.bucket, url.key, path));
    SLUICE_RETURN_IF_ERROR(io::CheckDownloadedSize(o.key, got, o.size, o.etag));
    Fetched f;
    f.file = io::LocalFile{path, got.size, 0};
    f.object = o;
    if (!got.etag.empty()) f.object.etag = got.etag;
    f.object.size = got.size;
    f.downloaded = got.size;
    return f;
  }

  io::S3Client* client_;
  Spool* spool_;
  std::vector<state::ObjectInfo> objects_;
  const CancellationSource* cancel_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::optional<Result<Fetched>>> results_;
  std::vector<int64_t> held_;  // bytes object i holds in the spool; guarded by mu_
  size_t next_ = 0;
  bool reserving_ = false;
  bool stop_ = false;
  std::atomic<bool> stopping_{false};  // stop_, for Spool::Reserve's wait
  std::vector<std::thread> workers_;
};

/// The objects of one load as they arrive, for RunLoad (RunOptions::feed):
/// filled in order by the thread that takes them from the Fetcher.
class ArrivingObjects : public FileFeed {
 public:
  explicit ArrivingObjects(size_t listed) : listed_(listed) {}
  size_t listed() const override { return listed_; }
  void Add(io::LocalFile file) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      files_.push_back(std::move(file));
    }
    cv_.notify_all();
  }
  /// No more files: all arrived (OK), or `status` stopped them.
  void End(Status status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ended_ = true;
      status_ = std::move(status);
    }
    cv_.notify_all();
  }
  Result<std::optional<io::LocalFile>> WaitFor(size_t index) override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return index < files_.size() || ended_; });
    if (index < files_.size()) return std::optional<io::LocalFile>(files_[index]);
    if (!status_.ok()) return status_;
    return std::optional<io::LocalFile>();
  }

 private:
  const size_t listed_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<io::LocalFile> files_;  // guarded by mu_
  bool ended_ = false;                // guarded by mu_
  Status status_;                     // guarded by mu_
};

Result<std::unique_ptr<io::S3Client>> MakeS3Client(const FilesPipelineConfig& config,
                                                   const CancellationSource* cancel) {
  SLUICE_ASSIGN_OR_RETURN(io::S3Options o, io::ResolveS3OptionsForUse(config.s3, cancel));
  return io::S3Client::Make(std::move(o));
}

/// Where {file} names start: the directory part of the source path before
/// any glob ("s3://b/in/" for "s3://b/in/*.csv", "/abs/d/" for "d" when it is
/// a directory), so that a key's name relative to it tells the inputs apart.
std::string InputBase(const std::string& source_path) {
  std::string path = source_path;
  bool s3 = path.starts_with("s3://");
  if (!s3) {
    std::error_code ec;
    fs::path abs = fs::absolute(path, ec);
    if (!ec) path = abs.lexically_normal().string();
  }
  size_t glob = path.find_first_of("*?[");
  if (glob != std::string::npos) {
    size_t slash = path.rfind('/', glob);
    return slash == std::string::npos ? std::string() : path.substr(0, slash + 1);
  }
  if (!path.empty() && path.back() == '/') return path;
  std::error_code ec;
  if (!s3 && fs::is_directory(path, ec)) return path + "/";
  // A single file, or (S3) a prefix written without its trailing slash: a
  // key below "path/" is named relative to it.
  return path + "/";
}

/// What {file} stands for: the key relative to `base` (or its base name),
/// without the extensions that were read (".csv", ".csv.gz", ".parquet"):
/// "d/2024.01.01.csv" -> "2024.01.01", "s3://b/in/x/2024.csv" -> "x/2024".
std::string FileStem(const std::string& key, const std::string& base) {
  std::string rel;
  if (!base.empty() && key.starts_with(base) && key.size() > base.size()) {
    rel = key.substr(base.size());
  } else {
    rel = key.substr(key.find_last_of('/') + 1);
  }
  auto strip = [&](std::initializer_list<const char*> suffixes) {
    std::string lower = rel;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* suffix : suffixes) {
      std::string_view sv(suffix);
      size_t name_start = rel.find_last_of('/') + 1;
      if (lower.ends_with(sv) && rel.size() - sv.size() > name_start) {
        rel.resize(rel.size() - sv.size());
        return;
      }
    }
  };
  strip({".gz", ".zst", ".zstd"});
  strip({".csv", ".tsv", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json"});
  return rel;
}

/// What one load is for its destination: the run, and for a load of one
/// file its name for {file} (see FileStem; `input_base` is InputBase of the
/// source path), so that each load writes its own output and a replay
/// overwrites it.
LoadContext LoadFor(int64_t run_id, const std::vector<std::string>& keys, const std::string& input_base) {
  LoadContext load;
  load.run_id = run_id;
  if (keys.size() == 1) load.input = FileStem(keys[0], input_base);
  return load;
}

/// The output a load writes, as its destination names it ("" when the
/// destination writes no named outputs).
Result<std::string> OutputOf(const FilesPipelineConfig& config, const LoadContext& load) {
  SLUICE_ASSIGN_OR_RETURN(auto dest, config.registry->MakeDestination(*config.destination));
  SLUICE_RETURN_IF_ERROR(dest->PrepareLoad(load));
  return dest->OutputName();
}

/// Whether loads write outputs of their own ({run} or {file} in a file
/// destination's path), which must never replace each other.
bool WritesPerLoadOutputs(const FilesPipelineConfig& config) {
  const std::string& path = config.output_template;
  return path.find("{file}") != std::string::npos || path.find("{run}") != std::string::npos;
}

/// Before a load writes `output`: refuses when another input wrote it (the
/// state store remembers which input each output was written from) or when
/// it exists and this pipeline did not write it, then claims it for `input`.
/// `s3` gives the client for an s3:// output (made once per run).
Status ClaimOutput(state::StateStore* store, const FilesPipelineConfig& config, const std::string& output,
                   const std::string& input, int64_t run_id,
                   const std::function<Result<io::S3Client*>()>& s3) {
  SLUICE_ASSIGN_OR_RETURN(auto claim, store->OutputClaim(config.name, output));
  if (claim && *claim != input) {
    return Status::DataError("[destination] path: " + output + " was written from " + *claim +
                             "; refusing to replace it with the output of " + input +
                             " (make the path tell the inputs apart)");
  }
  if (!claim) {
    // Unclaimed but present: written by something else, or before the state
    // store was reset. Either way not ours to replace.
    bool exists = false;
    if (output.starts_with("s3://")) {
      SLUICE_ASSIGN_OR_RETURN(io::S3Url url, io::ParseS3Url(output));
      SLUICE_ASSIGN_OR_RETURN(io::S3Client * client, s3());
      auto head = client->Head(url.bucket, url.key);
      if (!head.ok() && head.status().code() != StatusCode::kNotFound) return head.status();
      exists = head.ok();
    } else {
      std::error_code ec;
      exists = fs::exists(output, ec);
    }
    if (exists) {
      return Status::DataError("[destination] path: " + output +
                               " exists and this pipeline did not write it from " + input +
                               "; refusing to replace it (move it away, or change the path)");
    }
    SLUICE_RETURN_IF_ERROR(store->ClaimOutput(config.name, output, input, run_id));
  }
  // {file} may name a sub-directory (an S3 key below the source prefix):
  // created below the directory the path names before {file}, when that exists.
  const std::string& path = config.output_template;
  size_t at = path.find("{file}");
  if (!output.starts_with("s3://") && at != std::string::npos) {
    std::error_code ec;
    fs::path fixed = fs::path(path.substr(0, at)).parent_path();
    if (fixed.empty() || fs::is_directory(fixed, ec))
      fs::create_directories(fs::path(output).parent_path(), ec);
  }
  return Status::OK();
}

/// What a run holds of its pipeline until it ends: the run lock (one
/// process), the "run" lease (several workers; `epoch` for the fence), or
/// nothing (a per_file tick shared through file claims).
class PipelineLock {
 public:
  enum class Kind { kRunLock, kLease, kShared };
  PipelineLock(state::StateStore* store, std::string name, Kind kind, int64_t epoch = 0)
      : store_(store), name_(std::move(name)), kind_(kind), epoch_(epoch) {}
  ~PipelineLock() {
    if (kind_ == Kind::kRunLock) store_->UnlockPipeline(name_);
    if (kind_ == Kind::kLease) {
      Status released = store_->ReleaseLease(name_, state::kRunLease);
      if (!released.ok())
        spdlog::warn("pipeline {}: could not release its run lease ({}); it expires with this worker's",
                     name_, released.message());
    }
  }
  PipelineLock(const PipelineLock&) = delete;
  PipelineLock& operator=(const PipelineLock&) = delete;

  /// Statements for the load's transaction that let it commit only while
  /// this worker holds the run lease (empty without one).
  std::vector<CommitStatement> Fence() const {
    return kind_ == Kind::kLease ? store_->LeaseFence(name_, state::kRunLease, epoch_)
                                 : std::vector<CommitStatement>{};
  }

 private:
  state::StateStore* store_;
  std::string name_;
  Kind kind_;
  int64_t epoch_;
};

/// Starts a run in the run log: under the pipeline's run lock (one run of a
/// pipeline at a time, also across processes, so a second `serve` or a
/// manual `run` skips its turn instead of racing this one), or, for a worker
/// of a shared store, under the pipeline's run lease (`exclusive`) or
/// alongside the other workers (a per_file tick: files are claimed one by
/// one). Returns nullptr (and a "skipped" report) when another process
/// holds the lock or lease.
Result<std::unique_ptr<PipelineLock>> StartRun(const FilesPipelineConfig& config, state::StateStore* store,
                                               state::WorkerLease* lease, bool exclusive, JobReport* report) {
  std::unique_ptr<PipelineLock> lock;
  if (lease == nullptr) {
    SLUICE_ASSIGN_OR_RETURN(bool locked, store->TryLockPipeline(config.name));
    if (locked) lock = std::make_unique<PipelineLock>(store, config.name, PipelineLock::Kind::kRunLock);
  } else if (exclusive) {
    SLUICE_ASSIGN_OR_RETURN(auto epoch, store->TryAcquireLease(config.name, state::kRunLease));
    if (epoch) lock = std::make_unique<PipelineLock>(store, config.name, PipelineLock::Kind::kLease, *epoch);
  } else {
    lock = std::make_unique<PipelineLock>(store, config.name, PipelineLock::Kind::kShared);
  }
  if (!lock) {
    report->status = "skipped";
    report->error =
        lease
            ? "another worker holds the run lease of pipeline " + config.name + " (" + store->Describe() + ")"
            : "another process is running pipeline " + config.name + " (" + store->Describe() + ")";
    return std::unique_ptr<PipelineLock>();
  }
  SLUICE_RETURN_IF_ERROR(store->CloseAbandonedRuns(config.name, NowUnixMs()));
  SLUICE_ASSIGN_OR_RETURN(report->run_id, store->BeginRun(config.name, NowUnixMs()));
  return lock;
}

/// A load that failed because another worker recorded the same files
/// first: not a failure of this run.
bool LoadedElsewhere(const Status& status) {
  return status.code() == StatusCode::kDataError &&
         status.message().find("checkpoint already recorded by another run") != std::string::npos;
}

/// Errors name the object, not the spool file it was read from.
Status Rename(const Status& status, const std::vector<std::pair<std::string, std::string>>& names) {
  if (status.ok()) return status;
  std::string msg = status.message();
  for (const auto& [from, to] : names) msg = ReplaceAll(std::move(msg), from, to);
  return Status(status.code(), msg, status.retryable());
}

void AddStages(std::vector<StageTotals>* into, const std::vector<StageTotals>& stages) {
  for (const auto& s : stages) {
    auto it =
        std::find_if(into->begin(), into->end(), [&](const StageTotals& t) { return t.name == s.name; });
    if (it == into->end()) {
      into->push_back(s);
    } else {
      it->rows += s.rows;
      it->bytes += s.bytes;
      it->blocked_seconds += s.blocked_seconds;
    }
  }
}

}  // namespace

Result<std::unique_ptr<state::StateStore>> OpenFilesStateStore(const FilesPipelineConfig& config) {
  // An S3 source without a ledger still needs listing and a run lock, but
  // remembers nothing between runs.
  if (!config.uses_state()) return state::MakeMemoryStateStore();
  return state::MakeStateStore(*config.registry, *config.state);
}

namespace {

/// The lister for config's source; `client` receives the S3 client, if any.
Result<std::unique_ptr<ObjectLister>> MakeLister(const FilesPipelineConfig& config,
                                                 const CancellationSource* cancel,
                                                 std::unique_ptr<io::S3Client>* client) {
  int64_t min_modified = config.source.modified_within_seconds > 0
                             ? NowUnixMs() - config.source.modified_within_seconds * 1000
                             : 0;
  if (config.source.is_s3()) {
    auto url = io::ParseS3Url(config.source.path);
    if (!url.ok()) return url.status().WithContext("[source] path");
    SLUICE_ASSIGN_OR_RETURN(*client, MakeS3Client(config, cancel));
    return std::unique_ptr<ObjectLister>(std::make_unique<S3ObjectLister>(client->get(), *url, min_modified));
  }
  auto files = io::ListLocalFiles(config.source.path);
  if (!files.ok()) {
    // An empty directory or a glob without matches is not an error for an
    // incremental source: nothing arrived yet.
    if (files.status().code() != StatusCode::kNotFound) return files.status();
    files = std::vector<io::LocalFile>{};
  }
  return std::unique_ptr<ObjectLister>(
      std::make_unique<LocalObjectLister>(std::move(files).value(), min_modified));
}

}  // namespace

Result<std::string> ValidateBatchJob(const FilesPipelineConfig& config) {
  std::unique_ptr<io::S3Client> client;
  SLUICE_ASSIGN_OR_RETURN(auto lister, MakeLister(config, nullptr, &client));
  auto store = OpenFilesStateStore(config);
  if (!store.ok()) return store.status();
  int64_t listed = 0, fresh = 0, bytes = 0;
  std::optional<state::ObjectInfo> sample;
  while (true) {
    auto page = lister->NextPage();
    if (!page.ok()) return page.status().WithContext("listing " + config.source.path);
    if (!*page) break;
    listed += static_cast<int64_t>((*page)->size());
    for (const auto& o : **page) bytes += o.size;
    if (!sample && !(*page)->empty()) sample = (*page)->front();
    SLUICE_ASSIGN_OR_RETURN(auto news, (*store)->FilterNew(config.name, **page));
    fresh += static_cast<int64_t>(news.size());
  }
  std::string head = "source:      " + config.source.path + " (" + Thousands(listed) + " files, " +
                     HumanBytes(static_cast<double>(bytes)) + "; " + Thousands(fresh) +
                     " not loaded yet)\nstate:       " + (*store)->Describe() + "\n";
  if (!sample) {
    return head + "transform:   not compiled (no file to read yet)\n";
  }
  std::vector<io::LocalFile> files;
  std::unique_ptr<Spool> spool;
  if (client) {
    SLUICE_ASSIGN_OR_RETURN(spool, Spool::Make(config));
    SLUICE_ASSIGN_OR_RETURN(io::S3Url url, io::ParseS3Url(sample->key));
    std::string path = spool->PathFor(0, sample->key);
    SLUICE_ASSIGN_OR_RETURN(io::S3Object got, client->Download(url.bucket, url.key, path));
    files.push_back({path, got.size, 0});
  } else {
    files.push_back({sample->key, sample->size, sample->modified_unix_ms * 1000000});
  }
  auto report = ValidateLoad(config, files);
  if (!report.ok()) return Rename(report.status(), {{files[0].path, sample->key}});
  // The per-file report's first line names the sample; keep the listing's.
  std::string rest = *report;
  if (rest.starts_with("source:")) rest = rest.substr(rest.find('\n') + 1);
  return head + "sample:      " + sample->key + "\n" + rest;
}

Result<JobReport> RunBatchJob(const FilesPipelineConfig& config, const JobOptions& options) {
  auto start = Clock::now();
  const CancellationSource* cancel = options.run.cancel;
  state::StateStore* store = options.store;
  // Without the ledger (incremental = false) every matching object is
  // loaded on every run.
  const bool incremental = config.source.is_incremental();
  JobReport report;
  const bool per_file = config.source.batch == "per_file";
  // Workers of a shared store divide a per_file tick's files through claims;
  // any other run is one worker's, under the run lease.
  state::WorkerLease* lease = options.lease;
  const bool claims = lease != nullptr && per_file && incremental;
  SLUICE_ASSIGN_OR_RETURN(auto lock, StartRun(config, store, lease, !claims, &report));
  if (!lock) return report;  // skipped
  std::unique_ptr<Spool> spool;  // S3 objects downloaded for this run

  auto finish = [&](Status status) -> Result<JobReport> {
    report.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    if (spool) {
      report.spool_peak_bytes = spool->peak_bytes();
      spdlog::info(
          "pipeline {}: run {}: the spool held at most {} bytes of downloaded objects{}", config.name,
          report.run_id, Thousands(report.spool_peak_bytes),
          spool->budget_bytes() > 0 ? " (spool_bytes " + Thousands(spool->budget_bytes()) + ")" : "");
    }
    if (status.ok() && report.files_failed > 0) {
      status =
          Status::DataError(std::to_string(report.files_failed) + " of " +
                            std::to_string(report.files_found) + " files failed; the first: " + report.error);
    }
    if (status.ok()) {
      report.status = "succeeded";
    } else {
      report.status = status.code() == StatusCode::kCancelled ? "cancelled" : "failed";
      report.error = status.message();
      if (report.error_kind.empty()) report.error_kind = ErrorKind(status);
    }
    report.retryable = !status.ok() && status.retryable();
    report.outcome = status;
    Status logged = store->FinishRun(report.run_id, report.status, report.error, report.files_loaded,
                                     report.rows, NowUnixMs());
    if (!logged.ok())
      spdlog::warn("pipeline {}: could not record the end of run {}: {}", config.name, report.run_id,
                   logged.message());
    return report;
  };

  // 1. What is new: the listing, page by page, through the ledger.
  std::unique_ptr<io::S3Client> client;
  auto made_lister = MakeLister(config, cancel, &client);
  if (!made_lister.ok()) return finish(made_lister.status());
  std::unique_ptr<ObjectLister> lister = std::move(made_lister).value();
  std::vector<state::ObjectInfo> todo;
  int64_t listed = 0;
  // One load of several S3 objects reads them as they arrive (see
  // load_all_arriving below): its engine and destination connection open
  // while the listing goes on, once there is more than one object to load.
  const bool load_arriving = !per_file && client && !WritesPerLoadOutputs(config);
  std::future<Result<std::unique_ptr<PreparedLoad>>> ahead;
  while (true) {
    if (load_arriving && !ahead.valid() && todo.size() > 1)
      ahead = std::async(std::launch::async, [&config] { return PrepareLoadAhead(config); });
    if (cancel && cancel->cancelled()) return finish(Status::Cancelled("interrupted while listing"));
    auto page = lister->NextPage();
    if (!page.ok()) return finish(page.status().WithContext("listing " + config.source.path));
    if (!*page) break;
    listed += static_cast<int64_t>((*page)->size());
    if (!incremental) {
      for (auto& o : **page) todo.push_back(std::move(o));
      continue;
    }
    auto fresh = store->FilterNew(config.name, **page);
    if (!fresh.ok()) return finish(fresh.status().WithContext("state store " + store->Describe()));
    for (auto& o : *fresh) todo.push_back(std::move(o));
  }
  report.files_found = static_cast<int64_t>(todo.size());
  spdlog::info("pipeline {}: run {}: {} new or changed of {} files under {}", config.name, report.run_id,
               Thousands(report.files_found), Thousands(listed), config.source.path);
  if (todo.empty()) return finish(Status::OK());

  // Two inputs of this run that would write one output: refuse before
  // anything is written.
  const std::string input_base = InputBase(config.source.path);
  if (WritesPerLoadOutputs(config) && config.source.batch == "per_file") {
    std::map<std::string, std::string> writer;
    for (const auto& o : todo) {
      auto made = OutputOf(config, LoadFor(report.run_id, {o.key}, input_base));
      if (!made.ok()) return finish(made.status());
      const std::string& output = *made;
      auto [it, fresh] = writer.emplace(output, o.key);
      if (!fresh) {
        return finish(Status::InvalidArgument("[destination] path: " + it->second + " and " + o.key +
                                              " would both be written to " + output +
                                              "; nothing was loaded (make the path tell them apart)"));
      }
    }
  }

  // 2. Fetch and load.
  if (client) {
    // One load per file: the spool holds at most spool_bytes of objects not
    // loaded yet. One load of everything needs every object at once.
    auto made = Spool::Make(config, per_file ? config.source.spool_bytes : 0);
    if (!made.ok()) return finish(made.status());
    spool = std::move(made).value();
  }
  std::string ledger_db = incremental ? store->PostgresDatabase() : "";
  const std::vector<CommitStatement> fence = lock->Fence();
  std::unique_ptr<Fetcher> fetcher;
  if (!claims) {
    fetcher = std::make_unique<Fetcher>(client.get(), spool.get(), todo,
                                        static_cast<int>(config.source.concurrency), cancel);
  }
  // An s3:// output is checked with the source's client ([s3] is shared),
  // or one made on first use.
  std::unique_ptr<io::S3Client> output_client;
  auto output_s3 = [&]() -> Result<io::S3Client*> {
    if (client) return client.get();
    if (!output_client) {
      SLUICE_ASSIGN_OR_RETURN(output_client, MakeS3Client(config, cancel));
    }
    return output_client.get();
  };

  // After a load: with the ledger outside the load's transaction (at least
  // once), records its files as loaded now.
  auto mark_loaded = [&](Status status, const RunSummary& summary,
                         const std::vector<state::ObjectInfo>& objects) -> Status {
    if (!status.ok() || !incremental || summary.checkpoint_committed) return status;
    // The rows are committed; a crash before this line loads these files
    // again on the next run.
    status = store->MarkLoaded(config.name, report.run_id, objects);
    if (!status.ok()) {
      status = status.WithContext(
          "the rows were committed, but recording the files as loaded failed "
          "(they will be loaded again by the next run)");
    }
    return status;
  };
  // The run log's line for one file of a load that ended with `status`.
  auto record_file = [&](const state::ObjectInfo& o, int64_t rows_out, double seconds, const Status& status) {
    state::FileRecord rec;
    rec.run_id = report.run_id;
    rec.pipeline = config.name;
    rec.file = o.key;
    rec.etag = o.etag;
    rec.size = o.size;
    rec.rows_in = -1;  // not counted separately from the transform's result
    rec.rows_out = rows_out;
    rec.bytes = o.size;
    rec.seconds = seconds;
    rec.status = status.ok() ? "loaded" : LoadedElsewhere(status) ? "skipped" : "failed";
    rec.error = status.ok() ? "" : LoadedElsewhere(status) ? "loaded by another worker" : status.message();
    Status logged = store->RecordFile(rec);
    if (!logged.ok())
      spdlog::warn("pipeline {}: could not record file {}: {}", config.name, o.key, logged.message());
  };
  // A committed load's counts and notes, into the run's report.
  auto count_loaded = [&](const RunSummary& summary, size_t files) {
    report.files_loaded += static_cast<int64_t>(files);
    report.rows += summary.rows;
    report.bytes_in += summary.bytes_in;
    report.destination = summary.destination;
    AddStages(&report.stages, summary.stage_totals);
    for (const auto& note : summary.notes) {
      spdlog::info("pipeline {}: {}", config.name, note);
      report.notes.push_back(note);
    }
  };
  // Object `i` once downloaded (its bytes added to `*downloaded`), or
  // nullopt when what arrived is a version loaded before (overwritten
  // between the listing and the download).
  auto take = [&](size_t i, int64_t* downloaded) -> Result<std::optional<Fetched>> {
    SLUICE_ASSIGN_OR_RETURN(Fetched f, fetcher->Take(i));
    *downloaded += f.downloaded;
    if (incremental && f.object.etag != todo[i].etag) {
      SLUICE_ASSIGN_OR_RETURN(auto fresh, store->FilterNew(config.name, {f.object}));
      if (fresh.empty()) {
        spdlog::info("pipeline {}: {} changed back to a version already loaded; skipped", config.name,
                     f.object.key);
        return std::optional<Fetched>();
      }
    }
    return std::optional<Fetched>(std::move(f));
  };
  // The DuckDB database that per_file loads connect to, opened by the
  // first (each load opens its own where that fails, and says why).
  std::unique_ptr<engine::DuckDbEngine> shared_engine;
  bool shared_engine_tried = false;
  // Loads `group` (indexes into todo) as one transaction with its ledger entries.
  auto load = [&](const std::vector<size_t>& group) -> Status {
    auto group_start = Clock::now();
    std::vector<Fetched> fetched;
    std::vector<std::pair<std::string, std::string>> names;
    Status status;
    std::vector<size_t> skipped;
    for (size_t i : group) {
      auto f = take(i, &report.bytes_downloaded);
      if (!f.ok()) {
        status = f.status();
        break;
      }
      if (!*f) {
        skipped.push_back(i);
        continue;
      }
      names.emplace_back((*f)->file.path, (*f)->object.key);
      fetched.push_back(std::move(**f));
    }
    RunSummary summary;
    std::vector<state::ObjectInfo> objects;
    for (const auto& f : fetched) objects.push_back(f.object);
    if (status.ok() && fetched.empty()) {
      for (size_t i : group) fetcher->Release(i);
      return Status::OK();
    }
    if (status.ok()) {
      RunOptions run = options.run;
      for (const auto& f : fetched) run.files.push_back(f.file);
      if (per_file) {
        if (!shared_engine_tried) {
          shared_engine_tried = true;
          if (auto opened = OpenSharedEngine(config); opened.ok()) shared_engine = std::move(opened).value();
        }
        run.shared_engine = shared_engine.get();
      }
      if (!client) {
        // A local file still being written would be loaded in part and then
        // again in full: check it did not change while it was read, before
        // the commit.
        run.before_commit = [&fetched]() -> Status {
          for (const auto& f : fetched) {
            struct stat st;
            bool same = stat(f.file.path.c_str(), &st) == 0 &&
                        LocalEtag(st.st_size, static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 +
                                                  st.st_mtim.tv_nsec) == f.object.etag;
            if (!same) {
              return Status::Unavailable(f.file.path +
                                         " changed while it was loaded; rolled back, it is loaded by a "
                                         "later run once it stops changing");
            }
          }
          return Status::OK();
        };
      }
      if (!ledger_db.empty()) {
        auto statements = store->MarkLoadedStatements(config.name, report.run_id, objects);
        if (!statements.ok()) {
          status = statements.status();
        } else {
          run.checkpoint = std::move(statements).value();
          run.checkpoint_database = ledger_db;
          // The claims go with the rows; one taken over by another worker
          // (this one's lease expired) rolls the load back.
          if (claims) {
            for (auto& c : store->EndClaimStatements(config.name, objects))
              run.checkpoint.push_back(std::move(c));
          }
        }
      }
      if (!fence.empty()) {
        // Commits only while this worker holds the run lease.
        run.checkpoint.insert(run.checkpoint.end(), fence.begin(), fence.end());
        run.checkpoint_database = store->PostgresDatabase();
      }
      std::vector<std::string> keys;
      for (const auto& f : fetched) keys.push_back(f.object.key);
      run.load = LoadFor(report.run_id, keys, input_base);
      run.load.pipeline = config.name;
      // The files with their versions (ETag, or size and modification time):
      // a run that loads the same versions again names the same input.
      std::string versions;
      for (const auto& f : fetched) versions += f.object.key + "\n" + f.object.etag + "\n";
      run.load.input_identity = fetched.size() == 1
                                    ? fetched[0].object.key + " " + fetched[0].object.etag
                                    : std::to_string(fetched.size()) + " files " + io::Sha256Hex(versions);
      if (status.ok() && WritesPerLoadOutputs(config)) {
        std::string input = keys.size() == 1 ? keys[0] : "run " + std::to_string(report.run_id);
        auto output = OutputOf(config, run.load);
        status = output.ok() ? ClaimOutput(store, config, *output, input, report.run_id, output_s3)
                             : output.status();
      }
      if (status.ok()) {
        auto result = RunLoad(config, run);
        if (result.ok()) {
          summary = std::move(result).value();
        } else {
          status = result.status();
        }
      }
    }
    status = Rename(mark_loaded(status, summary, objects), names);
    if (status.ok()) report.exactly_once = summary.checkpoint_committed;
    double seconds = std::chrono::duration<double>(Clock::now() - group_start).count();
    for (size_t k = 0; k < group.size(); ++k) {
      if (std::find(skipped.begin(), skipped.end(), group[k]) != skipped.end()) continue;
      const auto& o = k < fetched.size() ? fetched[k].object : todo[group[k]];
      record_file(o, group.size() == 1 ? summary.rows : -1, seconds, status);
    }
    for (size_t i : group) fetcher->Release(i);
    if (status.ok()) {
      count_loaded(summary, fetched.size());
      spdlog::info("pipeline {}: loaded {} rows from {} into {} in {:.2f} s{}", config.name,
                   Thousands(summary.rows),
                   fetched.size() == 1 ? fetched[0].object.key : std::to_string(fetched.size()) + " files",
                   summary.destination, seconds,
                   summary.checkpoint_committed ? " (ledger in the same transaction)" : "");
    }
    return status;
  };

  // Loads every object of the run as one transaction, reading each one as
  // it arrives: downloads, DuckDB's reading and the destination's writing
  // run at the same time (RunLoad with a FileFeed; the transform still sees
  // all objects as one `input`).
  auto load_all_arriving = [&]() -> Status {
    auto load_start = Clock::now();
    std::shared_ptr<PreparedLoad> prepared;
    if (ahead.valid()) {
      auto made = ahead.get();
      // Not opened ahead: the load opens them itself and reports what fails.
      if (made.ok()) prepared = std::move(made).value();
    }
    ArrivingObjects arriving(todo.size());
    // Filled by the taker, read once it ended (arriving.End happens after).
    std::vector<std::optional<Fetched>> fetched(todo.size());
    std::vector<std::pair<std::string, std::string>> names;
    int64_t downloaded = 0;
    Clock::time_point last_arrival;
    std::thread taker([&] {
      Status status;
      for (size_t i = 0; i < todo.size() && status.ok(); ++i) {
        auto f = take(i, &downloaded);
        if (!f.ok()) {
          status = f.status();
          break;
        }
        if (!*f) continue;
        names.emplace_back((*f)->file.path, (*f)->object.key);
        arriving.Add((*f)->file);
        fetched[i] = std::move(*f);
      }
      last_arrival = Clock::now();
      arriving.End(status);
    });
    auto loaded_objects = [&] {
      std::vector<state::ObjectInfo> objects;
      for (const auto& f : fetched) {
        if (f) objects.push_back(f->object);
      }
      return objects;
    };

    RunOptions run = options.run;
    run.feed = &arriving;
    run.prepared = prepared;
    if (!ledger_db.empty() || !fence.empty()) {
      // The ledger's entries, and while this worker holds the run lease
      // (several workers) its fence, commit with the rows.
      run.checkpoint_database = ledger_db.empty() ? store->PostgresDatabase() : ledger_db;
      run.feed_checkpoint = [&]() -> Result<std::vector<CommitStatement>> {
        std::vector<CommitStatement> statements;
        if (!ledger_db.empty()) {
          SLUICE_ASSIGN_OR_RETURN(statements,
                                  store->MarkLoadedStatements(config.name, report.run_id, loaded_objects()));
        }
        statements.insert(statements.end(), fence.begin(), fence.end());
        return statements;
      };
    }
    // As listed: the versions downloaded are known only once all arrived.
    // Only destinations that deliver at their commit load this way, and
    // those do not use the identity (idempotency keys are for the others).
    std::vector<std::string> keys;
    std::string versions;
    for (const auto& o : todo) {
      keys.push_back(o.key);
      versions += o.key + "\n" + o.etag + "\n";
    }
    run.load = LoadFor(report.run_id, keys, input_base);
    run.load.pipeline = config.name;
    run.load.input_identity = std::to_string(todo.size()) + " files " + io::Sha256Hex(versions);
    auto result = RunLoad(config, run);
    if (!result.ok()) fetcher->Stop();  // the downloads still running are of no use
    taker.join();

    report.bytes_downloaded += downloaded;
    Status status = result.ok() ? Status::OK() : result.status();
    RunSummary summary = result.ok() ? std::move(result).value() : RunSummary{};
    std::vector<state::ObjectInfo> objects = loaded_objects();
    if (status.ok() && objects.empty()) {
      for (size_t i = 0; i < todo.size(); ++i) fetcher->Release(i);
      return Status::OK();  // every object changed back to a version already loaded
    }
    status = Rename(mark_loaded(status, summary, objects), names);
    if (status.ok()) report.exactly_once = summary.checkpoint_committed;
    double seconds = std::chrono::duration<double>(Clock::now() - load_start).count();
    for (size_t i = 0; i < todo.size(); ++i) {
      if (!fetched[i] && status.ok()) continue;  // skipped: a version loaded before
      record_file(fetched[i] ? fetched[i]->object : todo[i], -1, seconds, status);
    }
    for (size_t i = 0; i < todo.size(); ++i) fetcher->Release(i);
    if (!status.ok()) return status;
    count_loaded(summary, objects.size());
    if (summary.first_read && *summary.first_read < last_arrival) {
      report.overlap_seconds = std::chrono::duration<double>(last_arrival - *summary.first_read).count();
      spdlog::info(
          "pipeline {}: read the objects as they arrived: reading began {:.2f} s before the last of "
          "{} downloads ended",
          config.name, report.overlap_seconds, todo.size());
    }
    spdlog::info("pipeline {}: loaded {} rows from {} files into {} in {:.2f} s{}", config.name,
                 Thousands(summary.rows), objects.size(), summary.destination, seconds,
                 summary.checkpoint_committed ? " (ledger in the same transaction)" : "");
    return Status::OK();
  };

  if (!per_file) {
    std::vector<size_t> all(todo.size());
    for (size_t i = 0; i < all.size(); ++i) all[i] = i;
    // Destinations that deliver while they load (HTTP) key what they send
    // by the versions downloaded: they load once every object is there.
    auto delivers_at_commit = [&] {
      auto dest = config.registry->MakeDestination(*config.destination);
      return dest.ok() && (*dest)->delivery() == Delivery::kTransactional;
    };
    Status status =
        load_arriving && todo.size() > 1 && delivers_at_commit() ? load_all_arriving() : load(all);
    if (!status.ok()) report.files_failed = static_cast<int64_t>(todo.size());
    return finish(status);
  }
  // A per_file load that failed on its file (bad data, a schema the
  // destination cannot take, gone): counted and logged, and the run goes on
  // with the other files. Other failures end the run.
  auto file_failed = [&](const Status& status) {
    if (status.code() != StatusCode::kDataError && status.code() != StatusCode::kSchemaMismatch &&
        status.code() != StatusCode::kNotFound) {
      return false;
    }
    spdlog::error("pipeline {}: {}", config.name, status.message());
    if (report.files_failed++ == 0) {
      report.error = status.message();
      report.error_kind = ErrorKind(status);
    }
    return true;
  };
  if (claims) {
    // Every worker offers what its listing found; each then loads the files
    // it claims, `concurrency` at a time, until none is left unclaimed.
    Status offered = store->OfferFiles(config.name, todo);
    if (!offered.ok()) return finish(offered.WithContext("state store " + store->Describe()));
    report.files_found = 0;
    todo.clear();
    while (true) {
      if (cancel && cancel->cancelled())
        return finish(Status::Cancelled("interrupted; the remaining files are left for the next run"));
      auto claimed = store->ClaimFiles(config.name, static_cast<int>(config.source.concurrency));
      if (!claimed.ok()) return finish(claimed.status().WithContext("state store " + store->Describe()));
      if (claimed->empty()) break;
      fetcher.reset();
      todo = std::move(claimed).value();
      report.files_found += static_cast<int64_t>(todo.size());
      lease->SetDoing("loading " + std::to_string(todo.size()) + " claimed file(s) in run " +
                      std::to_string(report.run_id));
      fetcher = std::make_unique<Fetcher>(client.get(), spool.get(), todo,
                                          static_cast<int>(config.source.concurrency), cancel);
      for (size_t i = 0; i < todo.size(); ++i) {
        Status status = cancel && cancel->cancelled()
                            ? Status::Cancelled("interrupted; the remaining files are left for the next run")
                            : load({i});
        if (status.ok()) {
          // Exactly once, the claim went with the rows (this removes nothing);
          // at least once (the store is not the destination's database) or
          // when nothing was loaded (a version loaded before), it goes now.
          (void)store->EndClaims(config.name, {todo[i]}, /*retry=*/false);
          continue;
        }
        if (LoadedElsewhere(status)) {
          spdlog::info("pipeline {}: {} was loaded by another worker; skipped", config.name, todo[i].key);
          ++report.files_elsewhere;
          (void)store->EndClaims(config.name, {todo[i]}, /*retry=*/false);
          continue;
        }
        if (file_failed(status)) {
          // Failed here: the next tick offers it again (not this one, so
          // the other workers do not fail on it too).
          (void)store->EndClaims(config.name, {todo[i]}, /*retry=*/false);
          continue;
        }
        // The destination or the store is unavailable, or a stop: what is
        // left goes back to the others at once.
        std::vector<state::ObjectInfo> rest(todo.begin() + static_cast<std::ptrdiff_t>(i), todo.end());
        Status given = store->EndClaims(config.name, rest, /*retry=*/true);
        if (!given.ok())
          spdlog::warn(
              "pipeline {}: could not give back {} claimed file(s) ({}); they are free when this "
              "worker's lease expires",
              config.name, rest.size(), given.message());
        return finish(status);
      }
    }
    lease->SetDoing("idle");
    return finish(Status::OK());
  }
  for (size_t i = 0; i < todo.size(); ++i) {
    if (cancel && cancel->cancelled())
      return finish(Status::Cancelled("interrupted; the remaining files are left for the next run"));
    Status status = load({i});
    if (status.ok()) continue;
    // A bad file does not hold back the others: it is recorded as failed
    // and tried again by the next run. Anything else (the destination or
    // the store unavailable, Ctrl-C) ends the run.
    if (file_failed(status)) continue;
    return finish(status);
  }
  return finish(Status::OK());
}

namespace {

Result<JobReport> RunPlainJob(const FilesPipelineConfig& config, const JobOptions& options) {
  JobReport report;
  state::StateStore* store = options.store;
  std::unique_ptr<PipelineLock> lock;
  if (store) {
    SLUICE_ASSIGN_OR_RETURN(lock, StartRun(config, store, options.lease, /*exclusive=*/true, &report));
    if (!lock) return report;  // skipped
  }
  RunOptions run = options.run;
  if (lock) {
    if (auto fence = lock->Fence(); !fence.empty()) {
      run.checkpoint = std::move(fence);
      run.checkpoint_database = store->PostgresDatabase();
    }
  }
  if (run.load.input_identity.empty() && config.source.path != "-" && !config.source.is_s3()) {
    // What the load reads, for destinations that key what they deliver by
    // their input (HTTP): every file's path, size and modification time,
    // so that a [retry] or a rerun of the same files sends the same keys.
    if (auto files = io::ListLocalFiles(config.source.path); files.ok()) {
      for (const auto& f : *files) {
        run.load.input_identity +=
            f.path + " " + std::to_string(f.size) + " " + std::to_string(f.mtime_ns) + "\n";
      }
    }
  }
  auto summary = RunLoad(config, run);
  if (summary.ok()) {
    report.status = "succeeded";
    report.files_loaded = report.files_found = 1;
    report.rows = summary->rows;
    report.bytes_in = summary->bytes_in;
    report.seconds = summary->seconds;
    report.stages = summary->stage_totals;
    report.source = summary->source;
    report.destination = summary->destination;
    report.rejected = summary->rejected;
    report.stages_text = summary->stages;
    report.notes = summary->notes;
  } else {
    report.status = summary.status().code() == StatusCode::kCancelled ? "cancelled" : "failed";
    report.error = summary.status().message();
    report.error_kind = ErrorKind(summary.status());
  }
  if (store) {
    Status logged = store->FinishRun(report.run_id, report.status, report.error, report.files_loaded,
                                     report.rows, NowUnixMs());
    if (!logged.ok())
      spdlog::warn("pipeline {}: could not record run {}: {}", config.name, report.run_id, logged.message());
  }
  report.retryable = summary.ok() ? false : summary.status().retryable();
  report.outcome = summary.ok() ? Status::OK() : summary.status();
  return report;
}

}  // namespace

Result<JobReport> RunJob(const FilesPipelineConfig& config, const JobOptions& given) {
  bool batch_job = (config.source.is_incremental() || config.source.is_s3()) && given.store != nullptr;
  // A worker that can no longer renew its lease stops: what it holds may
  // be another worker's by now (its commits would be refused anyway).
  JobOptions options = given;
  CancellationSource stop;
  std::atomic<bool> lost{false};
  std::optional<CancelWatcher> forward;
  if (options.lease) {
    forward.emplace(given.run.cancel, [&stop] { stop.Cancel(); });
    options.run.cancel = &stop;
    options.lease->Watch("", [&] {
      lost = true;
      stop.Cancel();
    });
  }
  struct Unwatch {
    state::WorkerLease* lease;
    ~Unwatch() {
      if (lease) lease->Unwatch();
    }
  } unwatch{options.lease};
  auto once = [&]() -> Result<JobReport> {
    auto report = batch_job ? RunBatchJob(config, options) : RunPlainJob(config, options);
    if (lost && report.ok() && report->status == "cancelled" &&
        !(given.run.cancel && given.run.cancel->cancelled())) {
      report->status = "failed";
      report->error =
          "worker " + options.lease->worker() + " could not renew its lease in " +
          std::to_string(options.lease->lease_ms() / 1000.0) +
          " s (state store unreachable); it stopped, and the other workers take over what it held";
      report->outcome = Status::Unavailable(report->error);
      report->error_kind = "unavailable";
    }
    return report;
  };
  RetryState retry(config.retry.Policy());
  const CancellationSource* cancel = options.run.cancel;
  while (true) {
    auto report = once();
    // A retryable failure (connection lost, server unavailable) left the
    // destination as it was, so the run can go again. Not for stdin: what
    // was read from it is gone.
    bool retryable = report.ok() ? report->retryable : report.status().retryable();
    if (!retryable || config.source.path == "-" || (cancel && cancel->cancelled())) return report;
    auto delay = retry.NextDelay();
    if (delay.count() < 0) return report;
    std::string error = report.ok() ? report->error : report.status().message();
    spdlog::warn("pipeline {}: {}; retrying in {:.1f} s (attempt {} of {})", config.name, error,
                 delay.count() / 1000.0, retry.attempts() + 1, config.retry.max_attempts);
    if (!SleepUnlessCancelled(delay, cancel)) return report;
  }
}

}  // namespace sluice::sources
