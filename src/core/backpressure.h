// BackpressureMonitor: makes the backpressure of one pipeline visible.
//
// A run hands the monitor its bounded channels for as long as they live
// (Start(), upstream first). While any are watched, a sampler thread looks
// at them every 250 ms and
// - sets sluice_channel_bytes{pipeline,channel} (bytes held now) and
//   sluice_channel_capacity_bytes{pipeline,channel} (the byte budget),
// - advances sluice_stage_blocked_seconds_total{pipeline,stage} of the
//   stage that feeds the channel by the time it spent waiting for room
//   since the last look (waits in progress included: a stage blocked for a
//   minute is seen while it waits, not after),
// - tells which stage limits the pipeline (Limiting()): the consumer of the
//   downstream-most channel that stays full.
//
// "Stays full": at each look a channel's fullness is the larger of
// bytes / capacity and the share of the time since the previous look that
// its producers spent waiting for room (an item is admitted only whole, so
// a producer may wait while the bytes held are below the capacity; waiting
// is what being full means). The fullness is smoothed exponentially with a
// time constant of 1 s. A channel starts to stay full when its smoothed
// fullness reaches 0.9 (after about 2.3 s of a full channel) and stops when
// it falls below 0.5 (about 0.7 s after it drains), so that a channel that
// is full most of the time does not flicker in and out of /status. The
// downstream-most full channel names the limit because a slow stage fills
// its input, after which the stage before it waits too and its own input
// fills in turn.
//
// Two runs may watch channels of the same name at once (parallel loads):
// the gauges then show the sum of their bytes and of their capacities.
//
// Thread-safety: every method may be called from any thread. Stats of the
// watched channels are read under the monitor's lock, so a Watch must end
// (be destroyed) before its channels are.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/channel_stats.h"

namespace sluice {

class Counter;
class Gauge;
class MetricsRegistry;

/// One bounded channel of a run, as the monitor sees it.
struct WatchedChannel {
  std::string name;      // the metric's channel label, e.g. "batches"
  std::string producer;  // the stage that pushes into it
  std::string consumer;  // the stage that pops from it
  int producer_threads = 1;
  /// Reads the channel's stats; called from the monitor's threads while watched.
  std::function<ChannelStats()> stats;
};

/// The stage that limits the pipeline now.
struct LimitingStage {
  std::string stage;    // the consumer of `channel`
  std::string channel;  // its input channel, which stays full
  double fill = 0;      // the channel's smoothed fullness, 0..1

  /// {"stage": "...", "channel": "...", "fill": 0.97}
  std::string Json() const;
};

class BackpressureMonitor {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kDefaultPeriod{250};
  static constexpr double kSmoothingSeconds = 1.0;
  static constexpr double kFullAt = 0.9;     // smoothed fullness that starts "stays full"
  static constexpr double kFullUntil = 0.5;  // and below which it ends

  /// `metrics` may be null: then only Limiting() is kept. With `period`
  /// zero there is no sampler thread and Sample() is called by hand (tests).
  BackpressureMonitor(MetricsRegistry* metrics, std::string pipeline,
                      std::chrono::milliseconds period = kDefaultPeriod);
  ~BackpressureMonitor();
  BackpressureMonitor(const BackpressureMonitor&) = delete;
  BackpressureMonitor& operator=(const BackpressureMonitor&) = delete;

  /// While it lives, the monitor watches a run's channels. Its destructor
  /// takes a last look (so the blocked counters hold the whole run), sets
  /// the channels' byte gauges back to 0 and forgets them.
  class Watch {
   public:
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    friend class BackpressureMonitor;
    Watch(BackpressureMonitor* monitor, uint64_t id) : monitor_(monitor), id_(id) {}
    BackpressureMonitor* monitor_;
    uint64_t id_;
  };

  /// Watches `channels`, listed upstream first, until the Watch is destroyed.
  [[nodiscard]] std::unique_ptr<Watch> Start(std::vector<WatchedChannel> channels);

  /// Looks at every watched channel as of `now`; the sampler thread calls it.
  void Sample(Clock::time_point now = Clock::now());

  /// The stage that limits the pipeline; nullopt when nothing is watched
  /// or no channel stays full.
  std::optional<LimitingStage> Limiting() const;
  /// Limiting() as JSON: an object, or null.
  std::string LimitingJson() const;

 private:
  struct ChannelState {
    WatchedChannel channel;
    sluice::Gauge* bytes_gauge = nullptr;
    sluice::Gauge* capacity_gauge = nullptr;
    sluice::Counter* blocked_counter = nullptr;
    ChannelStats last;
    double blocked_counted = 0;  // of last.producer_blocked_seconds, already in the counter
    double smoothed = 0;
    bool full = false;  // stays full
  };
  struct WatchState {
    std::vector<ChannelState> channels;
    Clock::time_point last_look;
  };

  void Unwatch(uint64_t id);
  void SampleLocked(Clock::time_point now);
  /// Sets the byte gauges and the limiting stage from the last looks.
  void PublishLocked();
  void SamplerLoop();

  MetricsRegistry* const metrics_;
  const std::string pipeline_;
  const std::chrono::milliseconds period_;

  mutable std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  std::map<uint64_t, WatchState> watches_;
  uint64_t next_id_ = 1;
  /// Bytes and capacity gauges of every channel name ever watched.
  std::map<std::string, std::pair<sluice::Gauge*, sluice::Gauge*>> gauges_;
  std::optional<LimitingStage> limiting_;
  bool stop_ = false;
  std::thread sampler_;  // started with the first watch
};

}  // namespace sluice
