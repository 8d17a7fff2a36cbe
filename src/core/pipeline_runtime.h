// PipelineRuntime: runs the stages of one pipeline run on their own threads,
// joined by channels, and stops them all at the first error or on
// cancellation.
//
// Build it on one thread (AddStage, OnCancel), then call Run() once from
// that thread. Stage functions run on their own threads and must return
// promptly once cancelled() is true (the runtime also cancels the channels
// registered with OnCancel, which wakes any stage blocked on them).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cancellation.h"
#include "core/stage_counters.h"
#include "sluice/status.h"

namespace sluice {

class PipelineRuntime {
 public:
  /// `external` (may be null) is polled; when it fires the run is cancelled.
  explicit PipelineRuntime(const CancellationSource* external = nullptr);
  ~PipelineRuntime();
  PipelineRuntime(const PipelineRuntime&) = delete;
  PipelineRuntime& operator=(const PipelineRuntime&) = delete;

  /// Counters owned by the runtime; valid for its lifetime.
  StageCounters* Counters(const std::string& stage);
  const std::vector<std::unique_ptr<StageCounters>>& counters() const { return counters_; }

  /// A stage run by `threads` threads; fn receives the worker index. When
  /// the last thread of a stage returns OK, `on_done` runs (e.g. closing
  /// the stage's output channel).
  void AddStage(std::string name, int threads, std::function<Status(int)> fn,
                std::function<void()> on_done = {});
  /// Called once when the run is cancelled or a stage fails.
  void OnCancel(std::function<void()> fn);
  /// Called about every `period_ms` on the Run() thread while stages run.
  void OnTick(int period_ms, std::function<void()> fn);

  /// Runs every stage and waits for all of them. Returns the first error
  /// (with the stage name as context), Cancelled if cancelled externally.
  Status Run();

  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  /// Fails the run from outside a stage.
  void Fail(Status status);

 private:
  struct Stage;
  void Cancel();

  const CancellationSource* external_;
  std::vector<std::unique_ptr<StageCounters>> counters_;
  std::vector<std::unique_ptr<Stage>> stages_;
  std::vector<std::function<void()>> on_cancel_;
  std::function<void()> on_tick_;
  int tick_ms_ = 200;
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  Status first_error_;
};

}  // namespace sluice
