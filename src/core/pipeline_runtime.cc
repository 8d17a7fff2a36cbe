#include "core/pipeline_runtime.h"

#include <chrono>
#include <condition_variable>
#include <thread>

namespace sluice {

struct PipelineRuntime::Stage {
  std::string name;
  int threads;
  std::function<Status(int)> fn;
  std::function<void()> on_done;
  std::atomic<int> running{0};
};

PipelineRuntime::PipelineRuntime(const CancellationSource* external) : external_(external) {}
PipelineRuntime::~PipelineRuntime() = default;

StageCounters* PipelineRuntime::Counters(const std::string& stage) {
  for (auto& c : counters_) {
    if (c->name() == stage) return c.get();
  }
  counters_.push_back(std::make_unique<StageCounters>(stage));
  return counters_.back().get();
}

void PipelineRuntime::AddStage(std::string name, int threads, std::function<Status(int)> fn,
                               std::function<void()> on_done) {
  auto stage = std::make_unique<Stage>();
  stage->name = std::move(name);
  stage->threads = threads < 1 ? 1 : threads;
  stage->fn = std::move(fn);
  stage->on_done = std::move(on_done);
  stages_.push_back(std::move(stage));
}

void PipelineRuntime::OnCancel(std::function<void()> fn) { on_cancel_.push_back(std::move(fn)); }

void PipelineRuntime::OnTick(int period_ms, std::function<void()> fn) {
  tick_ms_ = period_ms;
  on_tick_ = std::move(fn);
}

void PipelineRuntime::Cancel() {
  if (cancelled_.exchange(true)) return;
  for (auto& fn : on_cancel_) fn();
}

void PipelineRuntime::Fail(Status status) {
  {
    std::lock_guard lock(mu_);
    // A Cancelled status is usually the echo of another stage's failure:
    // keep the real cause.
    if (first_error_.ok() || (first_error_.code() == StatusCode::kCancelled &&
                              status.code() != StatusCode::kCancelled)) {
      first_error_ = std::move(status);
    }
  }
  Cancel();
}

Status PipelineRuntime::Run() {
  std::vector<std::thread> threads;
  std::mutex done_mu;
  std::condition_variable done_cv;
  int live = 0;
  for (auto& stage_ptr : stages_) live += stage_ptr->threads;
  for (auto& stage_ptr : stages_) {
    Stage* stage = stage_ptr.get();
    stage->running = stage->threads;
    for (int i = 0; i < stage->threads; ++i) {
      threads.emplace_back([this, stage, i, &done_mu, &done_cv, &live] {
        Status status;
        try {
          status = stage->fn(i);
        } catch (const std::exception& e) {
          status = Status::Internal(std::string("unexpected exception: ") + e.what());
        }
        if (!status.ok()) {
          Fail(status.code() == StatusCode::kCancelled ? status : status.WithContext(stage->name));
        } else if (stage->running.fetch_sub(1) == 1 && stage->on_done) {
          stage->on_done();
        }
        std::lock_guard lock(done_mu);
        --live;
        done_cv.notify_all();
      });
    }
  }
  {
    std::unique_lock lock(done_mu);
    while (live > 0) {
      done_cv.wait_for(lock, std::chrono::milliseconds(tick_ms_));
      if (external_ && external_->cancelled() && !cancelled()) {
        lock.unlock();
        Fail(Status::Cancelled("interrupted"));
        lock.lock();
      }
      if (on_tick_ && live > 0) {
        lock.unlock();
        on_tick_();
        lock.lock();
      }
    }
  }
  for (auto& t : threads) t.join();
  std::lock_guard lock(mu_);
  return first_error_;
}

}  // namespace sluice
