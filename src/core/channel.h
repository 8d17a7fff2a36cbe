// Channel<T>: a bounded, byte-budgeted queue between two pipeline stages.
//
// Push blocks while the items already queued hold `budget_bytes` or more:
// that is the backpressure that keeps memory flat when a consumer is slower
// than its producer. One item is always admitted into an empty channel, so
// an item larger than the budget cannot deadlock. Any number of producers
// and consumers may use a channel from any threads. Stats() reports the fill
// and the producers' waiting time for monitoring (BackpressureMonitor).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "core/channel_stats.h"
#include "core/stage_counters.h"

namespace sluice {

template <typename T>
class Channel {
 public:
  explicit Channel(int64_t budget_bytes) : budget_bytes_(budget_bytes) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;

  /// Queues `item` of `bytes`, blocking while the channel is full. Returns
  /// false if the channel was cancelled (the item is dropped). `counters`
  /// receives the time spent waiting, for the producer's counters.
  bool Push(T item, int64_t bytes, StageCounters* counters = nullptr) {
    std::unique_lock lock(mu_);
    if (!cancelled_ && !items_.empty() && bytes_ + bytes > budget_bytes_) {
      auto start = std::chrono::steady_clock::now();
      waits_.Begin(start);
      not_full_.wait(lock, [&] { return cancelled_ || items_.empty() || bytes_ + bytes <= budget_bytes_; });
      auto end = std::chrono::steady_clock::now();
      waits_.End(start, end);
      if (counters) counters->AddBlocked(end - start);
    }
    if (cancelled_) return false;
    items_.emplace_back(std::move(item), bytes);
    bytes_ += bytes;
    if (bytes_ > peak_bytes_) peak_bytes_ = bytes_;
    not_empty_.notify_one();
    return true;
  }

  /// Takes the next item, blocking while the channel is empty. Returns
  /// nullopt once the channel is closed and drained, or cancelled.
  std::optional<T> Pop(StageCounters* counters = nullptr) {
    std::unique_lock lock(mu_);
    if (!cancelled_ && !closed_ && items_.empty()) {
      auto start = std::chrono::steady_clock::now();
      not_empty_.wait(lock, [&] { return cancelled_ || closed_ || !items_.empty(); });
      if (counters) counters->AddBlocked(std::chrono::steady_clock::now() - start);
    }
    if (cancelled_ || items_.empty()) return std::nullopt;
    auto [item, bytes] = std::move(items_.front());
    items_.pop_front();
    bytes_ -= bytes;
    not_full_.notify_all();
    return std::move(item);
  }

  /// No more items will be pushed; consumers drain what is queued.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    not_empty_.notify_all();
  }

  /// Drops everything and wakes every waiter; used when a stage fails.
  void Cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    items_.clear();
    bytes_ = 0;
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  int64_t bytes() const {
    std::lock_guard lock(mu_);
    return bytes_;
  }
  int64_t peak_bytes() const {
    std::lock_guard lock(mu_);
    return peak_bytes_;
  }
  int64_t budget_bytes() const { return budget_bytes_; }

  /// The fill and the producers' waiting time, now; any thread.
  ChannelStats Stats() const {
    std::lock_guard lock(mu_);
    return waits_.StatsWith(bytes_, budget_bytes_);
  }

 private:
  const int64_t budget_bytes_;
  mutable std::mutex mu_;
  std::condition_variable not_empty_, not_full_;
  std::deque<std::pair<T, int64_t>> items_;
  int64_t bytes_ = 0;
  int64_t peak_bytes_ = 0;
  ProducerWaits waits_;
  bool closed_ = false;
  bool cancelled_ = false;
};

}  // namespace sluice
