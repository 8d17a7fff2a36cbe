// MetricsRegistry: named counters, gauges and histograms with labels, and
// their rendering in the Prometheus text exposition format (0.0.4) for
// /metrics. Core knows nothing about HTTP; the service serves the text.
//
// Thread safety: everything is safe to call from any thread. Registering
// (Counter(), Gauge(), Histogram()) takes a lock and is meant for set-up;
// it returns a reference that stays valid for the registry's lifetime, so
// hot paths keep the reference and update it with relaxed atomics only.
// Rendering takes the same lock and reads each value atomically (a
// histogram's sum may lag its buckets by in-flight observations).
//
// Misuse is a programmer error and aborts with a message: an invalid
// metric or label name, a duplicate label, the reserved label "le" on a
// histogram, or one name registered as two types or with two sets of
// buckets. The first help text registered for a name is the one rendered.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sluice {

/// Label names and values, e.g. {{"pipeline", "daily"}, {"stage", "source"}}.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

/// A value that only goes up: rows, bytes, runs, errors, seconds spent
/// blocked. A float, as in Prometheus: whole counts are exact up to 2^53.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  /// Adds `n`; a negative or NaN `n` is ignored (a counter never goes down).
  void Add(double n = 1) {
    if (n > 0) value_.fetch_add(n, std::memory_order_relaxed);
  }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// A value that goes up and down: bytes buffered, last success time.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double d) { value_.fetch_add(d, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

/// Observations counted in fixed buckets (upper bounds, inclusive), e.g.
/// run durations in seconds.
class Histogram {
 public:
  /// `bounds` strictly increasing and finite; +Inf is implied.
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  /// Counts `v` in the first bucket whose bound is >= v. NaN is ignored.
  void Observe(double v);

  struct Snapshot {
    std::vector<uint64_t> cumulative;  // per bound, then +Inf (== count)
    double sum = 0;
    uint64_t count = 0;
  };
  Snapshot Read() const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0};
};

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  /// The series `name{labels}`, created on first use. The same name and
  /// labels (in any order) always return the same object.
  sluice::Counter& Counter(std::string_view name, std::string_view help, const MetricLabels& labels = {});
  sluice::Gauge& Gauge(std::string_view name, std::string_view help, const MetricLabels& labels = {});
  sluice::Histogram& Histogram(std::string_view name, std::string_view help, const MetricLabels& labels = {},
                               const std::vector<double>& bounds = DefaultSecondsBuckets());

  /// Every series in the text exposition format 0.0.4: families sorted by
  /// name, each with one # HELP and # TYPE line, series sorted by labels
  /// (which are rendered sorted by name).
  std::string RenderPrometheus() const;

  /// [a-zA-Z_:][a-zA-Z0-9_:]*
  static bool IsValidMetricName(std::string_view name);
  /// [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__" (reserved).
  static bool IsValidLabelName(std::string_view name);
  /// 5 ms to 1 hour: covers both a quick HTTP poll and a long batch load.
  static const std::vector<double>& DefaultSecondsBuckets();

 private:
  struct Family;
  Family& FamilyFor(std::string_view name, std::string_view help, int type,
                    const std::vector<double>* bounds);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;
};

}  // namespace sluice
