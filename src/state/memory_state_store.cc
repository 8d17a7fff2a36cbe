#include "state/memory_state_store.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <tuple>
#include <utility>

#include "state/http_url_key.h"

namespace sluice::state {
namespace {

/// The run locks held by every memory store of the process, so that two
/// stores exclude each other as two processes sharing a database would.
class ProcessRunLocks {
 public:
  static ProcessRunLocks& Get() {
    static ProcessRunLocks locks;
    return locks;
  }
  bool TryLock(const std::string& pipeline) {
    std::lock_guard<std::mutex> lock(mu_);
    return held_.insert(pipeline).second;
  }
  void Unlock(const std::string& pipeline) {
    std::lock_guard<std::mutex> lock(mu_);
    held_.erase(pipeline);
  }

 private:
  std::mutex mu_;
  std::set<std::string> held_;
};

class MemoryStateStore final : public StateStore {
 public:
  ~MemoryStateStore() override {
    for (const std::string& pipeline : held_) ProcessRunLocks::Get().Unlock(pipeline);
  }

  std::string Describe() const override { return "memory"; }
  Status Ping() override { return Status::OK(); }

  Result<std::vector<ObjectInfo>> FilterNew(const std::string& pipeline,
                                            const std::vector<ObjectInfo>& page) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<ObjectInfo> out;
    for (const ObjectInfo& object : page) {
      if (!ledger_.contains({pipeline, object.key, object.etag})) out.push_back(object);
    }
    return out;
  }

  Status MarkLoaded(const std::string& pipeline, int64_t run_id,
                    const std::vector<ObjectInfo>& objects) override {
    std::lock_guard<std::mutex> lock(mu_);
    // The first run to record a version keeps it, as ON CONFLICT DO NOTHING.
    for (const ObjectInfo& object : objects) {
      ledger_.emplace(LedgerKey{pipeline, object.key, object.etag}, run_id);
    }
    return Status::OK();
  }

  Result<std::vector<HttpValidator>> HttpValidators(const std::string& pipeline,
                                                    const std::vector<std::string>& urls) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<HttpValidator> out;
    for (const std::string& url : DistinctUrls(urls)) {
      auto it = validators_.find({pipeline, url});
      if (it != validators_.end()) out.push_back(it->second);
    }
    return out;
  }

  Status SaveHttpValidators(const std::string& pipeline,
                            const std::vector<HttpValidator>& validators) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (const HttpValidator& v : validators) {
      auto key = std::make_pair(pipeline, v.url);
      if (v.etag.empty() && v.last_modified.empty()) {
        validators_.erase(key);
      } else {
        validators_.insert_or_assign(std::move(key), v);
      }
    }
    return Status::OK();
  }

  Result<bool> TryLockPipeline(const std::string& pipeline) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_.contains(pipeline)) return true;
    if (!ProcessRunLocks::Get().TryLock(pipeline)) return false;
    held_.insert(pipeline);
    return true;
  }

  void UnlockPipeline(const std::string& pipeline) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (held_.erase(pipeline) > 0) ProcessRunLocks::Get().Unlock(pipeline);
  }

  Result<int64_t> BeginRun(const std::string& pipeline, int64_t started_unix_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    RunRecord run;
    run.id = ++last_run_id_;
    run.pipeline = pipeline;
    run.started_unix_ms = started_unix_ms;
    run.status = "running";
    run.worker = worker();
    runs_.emplace(run.id, std::move(run));
    return last_run_id_;
  }

  Status FinishRun(int64_t run_id, const std::string& status, const std::string& error, int64_t files,
                   int64_t rows, int64_t finished_unix_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = runs_.find(run_id);
    if (it == runs_.end()) {
      return Status::NotFound("run " + std::to_string(run_id) + " is not in the run log");
    }
    RunRecord& run = it->second;
    run.status = status;
    run.error = error;
    run.files = files;
    run.rows = rows;
    run.finished_unix_ms = finished_unix_ms;
    return Status::OK();
  }

  Status RecordFile(const FileRecord& file) override {
    std::lock_guard<std::mutex> lock(mu_);
    files_.push_back(file);
    return Status::OK();
  }

  Result<std::optional<std::string>> OutputClaim(const std::string& pipeline,
                                                 const std::string& output) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = outputs_.find({pipeline, output});
    if (it == outputs_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }

  Status ClaimOutput(const std::string& pipeline, const std::string& output, const std::string& input,
                     int64_t /*run_id*/) override {
    std::lock_guard<std::mutex> lock(mu_);
    outputs_.emplace(std::make_pair(pipeline, output), input);
    return Status::OK();
  }

  Result<std::vector<RunRecord>> RecentRuns(const std::string& pipeline, int limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<RunRecord> out;
    for (const auto& [id, run] : runs_) {
      if (run.pipeline == pipeline) out.push_back(run);
    }
    std::sort(out.begin(), out.end(), [](const RunRecord& a, const RunRecord& b) {
      return a.started_unix_ms != b.started_unix_ms ? a.started_unix_ms > b.started_unix_ms : a.id > b.id;
    });
    out.resize(std::min(out.size(), static_cast<size_t>(std::max(limit, 0))));
    return out;
  }

  Result<std::vector<FileRecord>> FilesOfRun(int64_t run_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<FileRecord> out;
    for (const FileRecord& file : files_) {
      if (file.run_id == run_id) out.push_back(file);
    }
    return out;
  }

  Status CloseAbandonedRuns(const std::string& pipeline, int64_t now_unix_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [id, run] : runs_) {
      if (run.pipeline != pipeline || run.status != "running") continue;
      run.status = "failed";
      run.error = kAbandonedRunError;
      run.finished_unix_ms = now_unix_ms;
    }
    return Status::OK();
  }

 private:
  // (pipeline, key, etag): every version loaded.
  using LedgerKey = std::tuple<std::string, std::string, std::string>;

  std::mutex mu_;
  std::map<LedgerKey, int64_t> ledger_;  // the run that recorded the version
  std::set<std::string> held_;           // run locks this store holds
  std::map<int64_t, RunRecord> runs_;
  std::vector<FileRecord> files_;
  std::map<std::pair<std::string, std::string>, std::string> outputs_;       // (pipeline, output) -> input
  std::map<std::pair<std::string, std::string>, HttpValidator> validators_;  // (pipeline, url)
  int64_t last_run_id_ = 0;
};

}  // namespace

std::unique_ptr<StateStore> MakeMemoryStateStore() { return std::make_unique<MemoryStateStore>(); }

}  // namespace sluice::state
