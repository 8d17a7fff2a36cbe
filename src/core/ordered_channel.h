// OrderedChannel<T>: where parallel workers hand results back in input order.
//
// Workers push (sequence number, item) in any order; the consumer pops
// strictly in sequence order. Like Channel it is bounded in bytes, but the
// item the consumer waits for next is always admitted, so a slow worker can
// never deadlock the others. Thread-safe for many producers, one consumer;
// Stats() from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>

#include "core/channel_stats.h"
#include "core/stage_counters.h"

namespace sluice {

template <typename T>
class OrderedChannel {
 public:
  explicit OrderedChannel(int64_t budget_bytes) : budget_bytes_(budget_bytes) {}
  OrderedChannel(const OrderedChannel&) = delete;
  OrderedChannel& operator=(const OrderedChannel&) = delete;

  bool Push(int64_t seq, T item, int64_t bytes, StageCounters* counters = nullptr) {
    std::unique_lock lock(mu_);
    auto admissible = [&] { return cancelled_ || seq == next_ || bytes_ + bytes <= budget_bytes_; };
    if (!admissible()) {
      auto start = std::chrono::steady_clock::now();
      waits_.Begin(start);
      cv_.wait(lock, admissible);
      auto end = std::chrono::steady_clock::now();
      waits_.End(start, end);
      if (counters) counters->AddBlocked(end - start);
    }
    if (cancelled_) return false;
    items_.emplace(seq, std::make_pair(std::move(item), bytes));
    bytes_ += bytes;
    cv_.notify_all();
    return true;
  }

  /// The item with the next sequence number; nullopt when closed and
  /// drained, or cancelled.
  std::optional<T> Pop(StageCounters* counters = nullptr) {
    std::unique_lock lock(mu_);
    auto ready = [&] {
      return cancelled_ || (!items_.empty() && items_.begin()->first == next_) || (closed_ && items_.empty());
    };
    if (!ready()) {
      auto start = std::chrono::steady_clock::now();
      cv_.wait(lock, ready);
      if (counters) counters->AddBlocked(std::chrono::steady_clock::now() - start);
    }
    if (cancelled_ || items_.empty()) return std::nullopt;
    auto node = items_.extract(items_.begin());
    bytes_ -= node.mapped().second;
    ++next_;
    cv_.notify_all();
    return std::move(node.mapped().first);
  }

  /// All producers are done.
  void Close() {
    std::lock_guard lock(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  void Cancel() {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    items_.clear();
    bytes_ = 0;
    cv_.notify_all();
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
  std::condition_variable cv_;
  std::map<int64_t, std::pair<T, int64_t>> items_;
  int64_t bytes_ = 0;
  int64_t next_ = 0;
  ProducerWaits waits_;
  bool closed_ = false;
  bool cancelled_ = false;
};

}  // namespace sluice
