// What a bounded channel (Channel, OrderedChannel) reports about itself for
// monitoring: the bytes it holds, its capacity, and how long its producers
// have waited for room, waits still in progress included, so that a
// producer blocked for a minute shows up while it waits, not only after.
//
// ProducerWaits is not thread-safe: a channel updates and reads it under
// its own lock, and only on the slow path (a producer about to wait), so
// the accounting costs nothing per item.
#pragma once

#include <chrono>
#include <cstdint>

namespace sluice {

struct ChannelStats {
  int64_t bytes = 0;     // held now
  int64_t capacity = 0;  // the byte budget
  /// Total time producers spent waiting for room, summed over producer
  /// threads, including the waits in progress.
  double producer_blocked_seconds = 0;
  /// Producers waiting for room right now.
  int producers_waiting = 0;
};

/// The time producers spend waiting for room in one channel.
class ProducerWaits {
 public:
  using Clock = std::chrono::steady_clock;

  void Begin(Clock::time_point start) {
    ++waiting_;
    start_sum_ns_ += Ns(start);
  }
  void End(Clock::time_point start, Clock::time_point end) {
    --waiting_;
    start_sum_ns_ -= Ns(start);
    done_ns_ += Ns(end) - Ns(start);
  }
  /// Finished waits plus, for each wait in progress, the time since it began.
  int64_t TotalNs(Clock::time_point now) const { return done_ns_ + waiting_ * Ns(now) - start_sum_ns_; }
  int waiting() const { return static_cast<int>(waiting_); }
  /// A channel's stats: `bytes` of `capacity` held, and these waits.
  ChannelStats StatsWith(int64_t bytes, int64_t capacity) const {
    ChannelStats s;
    s.bytes = bytes;
    s.capacity = capacity;
    s.producer_blocked_seconds = static_cast<double>(TotalNs(Clock::now())) / 1e9;
    s.producers_waiting = waiting();
    return s;
  }

 private:
  static int64_t Ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  }

  int64_t waiting_ = 0;
  int64_t start_sum_ns_ = 0;  // sum of the start times of the waits in progress
  int64_t done_ns_ = 0;
};

}  // namespace sluice
