// Per-stage counters: rows, bytes and batches through a stage, and the time
// it spent blocked on its channels. Updated by the stage's own threads,
// read by progress reporting and metrics from any thread (relaxed atomics:
// readers see a recent value, never a torn one).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace sluice {

class StageCounters {
 public:
  explicit StageCounters(std::string name) : name_(std::move(name)) {}
  StageCounters(const StageCounters&) = delete;
  StageCounters& operator=(const StageCounters&) = delete;

  void Add(int64_t rows, int64_t bytes) {
    rows_.fetch_add(rows, std::memory_order_relaxed);
    bytes_.fetch_add(bytes, std::memory_order_relaxed);
    batches_.fetch_add(1, std::memory_order_relaxed);
  }
  void AddBlocked(std::chrono::steady_clock::duration d) {
    blocked_ns_.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count(),
                          std::memory_order_relaxed);
  }

  const std::string& name() const { return name_; }
  int64_t rows() const { return rows_.load(std::memory_order_relaxed); }
  int64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  int64_t batches() const { return batches_.load(std::memory_order_relaxed); }
  double blocked_seconds() const { return blocked_ns_.load(std::memory_order_relaxed) / 1e9; }

 private:
  std::string name_;
  std::atomic<int64_t> rows_{0}, bytes_{0}, batches_{0}, blocked_ns_{0};
};

}  // namespace sluice
