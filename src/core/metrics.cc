#include "core/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace sluice {

namespace {

enum FamilyType { kCounter = 0, kGauge = 1, kHistogram = 2 };
constexpr const char* kTypeNames[] = {"counter", "gauge", "histogram"};

[[noreturn]] void Misuse(const std::string& what) {
  std::fprintf(stderr, "sluice: metrics registry misuse: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string FormatDouble(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  // Whole numbers (counts, Unix times) print in full rather than as 1.777e+09.
  if (v == std::trunc(v) && std::fabs(v) < 1e15) {
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v));
    return std::string(buf, end);
  }
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  if (ec != std::errc()) return "NaN";
  return std::string(buf, end);
}

void AppendEscaped(std::string* out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '\n') {
      *out += "\\n";
    } else if (c == '"' && quote) {
      *out += "\\\"";
    } else {
      *out += c;
    }
  }
}

// `{a="x",b="y"}` with an optional extra label last (histograms' le); empty
// when there are no labels at all.
void AppendLabels(std::string* out, const MetricLabels& labels, const char* extra_name = nullptr,
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_name == nullptr) return;
  *out += '{';
  bool first = true;
  auto one = [&](std::string_view name, std::string_view value) {
    if (!first) *out += ',';
    first = false;
    *out += name;
    *out += "=\"";
    AppendEscaped(out, value, true);
    *out += '"';
  };
  for (const auto& [name, value] : labels) one(name, value);
  if (extra_name != nullptr) one(extra_name, extra_value);
  *out += '}';
}

}  // namespace

// --- Histogram ---------------------------------------------------------------

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    if (!std::isfinite(bounds_[i]) || (i > 0 && bounds_[i] <= bounds_[i - 1])) {
      Misuse("histogram bounds must be finite and strictly increasing");
    }
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double v) {
  if (std::isnan(v)) return;
  size_t i = static_cast<size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

Histogram::Snapshot Histogram::Read() const {
  Snapshot s;
  s.cumulative.resize(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    s.cumulative[i] = total;
  }
  s.count = total;
  s.sum = sum_.load(std::memory_order_relaxed);
  return s;
}

// --- MetricsRegistry ---------------------------------------------------------

struct MetricsRegistry::Family {
  std::string name;
  std::string help;
  int type = kCounter;
  std::vector<double> bounds;
  // Keyed by labels sorted by name, which also orders the output.
  std::map<MetricLabels, std::unique_ptr<sluice::Counter>> counters;
  std::map<MetricLabels, std::unique_ptr<sluice::Gauge>> gauges;
  std::map<MetricLabels, std::unique_ptr<sluice::Histogram>> histograms;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

bool MetricsRegistry::IsValidMetricName(std::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
              (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool MetricsRegistry::IsValidLabelName(std::string_view name) {
  if (name.empty() || name.substr(0, 2) == "__") return false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

const std::vector<double>& MetricsRegistry::DefaultSecondsBuckets() {
  static const std::vector<double> kBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,    2.5,
                                               5,     10,   30,    60,   120, 300,  600, 1800, 3600};
  return kBuckets;
}

namespace {

MetricLabels CanonicalLabels(std::string_view metric, const MetricLabels& labels, bool histogram) {
  MetricLabels sorted = labels;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    const std::string& name = sorted[i].first;
    if (!MetricsRegistry::IsValidLabelName(name)) {
      Misuse("metric " + std::string(metric) + ": invalid label name \"" + name + "\"");
    }
    if (histogram && name == "le") Misuse("histogram " + std::string(metric) + ": label \"le\" is reserved");
    if (i > 0 && sorted[i - 1].first == name) {
      Misuse("metric " + std::string(metric) + ": label \"" + name + "\" given twice");
    }
  }
  return sorted;
}

}  // namespace

MetricsRegistry::Family& MetricsRegistry::FamilyFor(std::string_view name, std::string_view help, int type,
                                                    const std::vector<double>* bounds) {
  if (!IsValidMetricName(name)) Misuse("invalid metric name \"" + std::string(name) + "\"");
  auto it = families_.find(name);
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->name = std::string(name);
    family->help = std::string(help);
    family->type = type;
    if (bounds != nullptr) family->bounds = *bounds;
    it = families_.emplace(family->name, std::move(family)).first;
  }
  Family& family = *it->second;
  if (family.type != type) {
    Misuse("metric " + std::string(name) + " registered as both " + kTypeNames[family.type] + " and " +
           kTypeNames[type]);
  }
  if (bounds != nullptr && family.bounds != *bounds) {
    Misuse("histogram " + std::string(name) + " registered with two different sets of buckets");
  }
  return family;
}

sluice::Counter& MetricsRegistry::Counter(std::string_view name, std::string_view help,
                                          const MetricLabels& labels) {
  MetricLabels key = CanonicalLabels(name, labels, false);
  std::lock_guard<std::mutex> lock(mu_);
  Family& family = FamilyFor(name, help, kCounter, nullptr);
  std::unique_ptr<sluice::Counter>& series = family.counters[std::move(key)];
  if (!series) series = std::make_unique<sluice::Counter>();
  return *series;
}

sluice::Gauge& MetricsRegistry::Gauge(std::string_view name, std::string_view help,
                                      const MetricLabels& labels) {
  MetricLabels key = CanonicalLabels(name, labels, false);
  std::lock_guard<std::mutex> lock(mu_);
  Family& family = FamilyFor(name, help, kGauge, nullptr);
  std::unique_ptr<sluice::Gauge>& series = family.gauges[std::move(key)];
  if (!series) series = std::make_unique<sluice::Gauge>();
  return *series;
}

sluice::Histogram& MetricsRegistry::Histogram(std::string_view name, std::string_view help,
                                              const MetricLabels& labels, const std::vector<double>& bounds) {
  MetricLabels key = CanonicalLabels(name, labels, true);
  std::lock_guard<std::mutex> lock(mu_);
  Family& family = FamilyFor(name, help, kHistogram, &bounds);
  std::unique_ptr<sluice::Histogram>& series = family.histograms[std::move(key)];
  if (!series) series = std::make_unique<sluice::Histogram>(bounds);
  return *series;
}

std::string MetricsRegistry::RenderPrometheus() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  for (const auto& [name, family] : families_) {
    out += "# HELP ";
    out += name;
    out += ' ';
    AppendEscaped(&out, family->help, false);
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += kTypeNames[family->type];
    out += '\n';
    for (const auto& [labels, counter] : family->counters) {
      out += name;
      AppendLabels(&out, labels);
      out += ' ';
      out += FormatDouble(counter->value());
      out += '\n';
    }
    for (const auto& [labels, gauge] : family->gauges) {
      out += name;
      AppendLabels(&out, labels);
      out += ' ';
      out += FormatDouble(gauge->value());
      out += '\n';
    }
    for (const auto& [labels, histogram] : family->histograms) {
      sluice::Histogram::Snapshot s = histogram->Read();
      for (size_t i = 0; i <= family->bounds.size(); ++i) {
        out += name;
        out += "_bucket";
        AppendLabels(&out, labels, "le",
                     i < family->bounds.size() ? FormatDouble(family->bounds[i]) : "+Inf");
        out += ' ';
        out += std::to_string(s.cumulative[i]);
        out += '\n';
      }
      out += name;
      out += "_sum";
      AppendLabels(&out, labels);
      out += ' ';
      out += FormatDouble(s.sum);
      out += '\n';
      out += name;
      out += "_count";
      AppendLabels(&out, labels);
      out += ' ';
      out += std::to_string(s.count);
      out += '\n';
    }
  }
  return out;
}

}  // namespace sluice
