// RetryPolicy: exponential backoff with jitter, bounded by a maximum
// elapsed time. Pure computation plus an interruptible sleep; a policy
// value may be shared between threads, a RetryState may not.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "core/cancellation.h"

namespace sluice {

struct RetryPolicy {
  std::chrono::milliseconds initial{1000};
  std::chrono::milliseconds max_delay{30000};
  double multiplier = 2.0;
  double jitter = 0.2;  // each delay is scaled by a random factor in [1-jitter, 1+jitter]
  std::chrono::milliseconds max_elapsed{300000};
  int max_attempts = 0;  // 0: bounded by max_elapsed only
};

class RetryState {
 public:
  explicit RetryState(RetryPolicy policy)
      : policy_(policy), start_(std::chrono::steady_clock::now()), rng_(std::random_device{}()) {}

  /// The delay before the next attempt, or a negative duration when the
  /// policy is exhausted (attempts or elapsed time).
  std::chrono::milliseconds NextDelay() {
    ++attempts_;
    if (policy_.max_attempts > 0 && attempts_ >= policy_.max_attempts) return std::chrono::milliseconds(-1);
    double base = static_cast<double>(policy_.initial.count());
    for (int i = 1; i < attempts_; ++i) base *= policy_.multiplier;
    base = std::min(base, static_cast<double>(policy_.max_delay.count()));
    std::uniform_real_distribution<double> dist(1 - policy_.jitter, 1 + policy_.jitter);
    auto delay = std::chrono::milliseconds(static_cast<int64_t>(base * dist(rng_)));
    auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start_);
    if (elapsed + delay > policy_.max_elapsed) return std::chrono::milliseconds(-1);
    return delay;
  }
  int attempts() const { return attempts_; }

 private:
  RetryPolicy policy_;
  std::chrono::steady_clock::time_point start_;
  std::mt19937 rng_;
  int attempts_ = 0;
};

/// Sleeps for `d` unless `cancel` fires first; returns false if cancelled.
bool SleepUnlessCancelled(std::chrono::milliseconds d, const CancellationSource* cancel);

}  // namespace sluice
