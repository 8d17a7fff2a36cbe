#include "core/backpressure.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/json_string.h"
#include "core/metrics.h"

namespace sluice {

std::string LimitingStage::Json() const {
  std::string out = "{\"stage\":";
  AppendJsonString(stage, &out);
  out += ",\"channel\":";
  AppendJsonString(channel, &out);
  char buf[32];
  std::snprintf(buf, sizeof(buf), ",\"fill\":%.2f}", std::clamp(fill, 0.0, 1.0));
  out += buf;
  return out;
}

BackpressureMonitor::BackpressureMonitor(MetricsRegistry* metrics, std::string pipeline,
                                         std::chrono::milliseconds period)
    : metrics_(metrics), pipeline_(std::move(pipeline)), period_(period) {}

BackpressureMonitor::~BackpressureMonitor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (sampler_.joinable()) sampler_.join();
}

BackpressureMonitor::Watch::~Watch() { monitor_->Unwatch(id_); }

std::unique_ptr<BackpressureMonitor::Watch> BackpressureMonitor::Start(std::vector<WatchedChannel> channels) {
  WatchState watch;
  watch.last_look = Clock::now();
  for (auto& c : channels) {
    ChannelState state;
    state.channel = std::move(c);
    if (state.channel.producer_threads < 1) state.channel.producer_threads = 1;
    if (metrics_) {
      // Registering takes the registry's lock: once per run, never per item.
      MetricLabels channel_labels = {{"pipeline", pipeline_}, {"channel", state.channel.name}};
      state.bytes_gauge = &metrics_->Gauge("sluice_channel_bytes",
                                           "Bytes held in a channel between two stages", channel_labels);
      state.capacity_gauge = &metrics_->Gauge(
          "sluice_channel_capacity_bytes", "Byte capacity of a channel between two stages", channel_labels);
      state.blocked_counter = &metrics_->Counter(
          "sluice_stage_blocked_seconds_total",
          "Seconds a stage spent blocked because its output channel was full (summed over its threads)",
          {{"pipeline", pipeline_}, {"stage", state.channel.producer}});
    }
    state.last = state.channel.stats();
    // Time blocked before the watch began still belongs to this run.
    if (state.blocked_counter) state.blocked_counter->Add(state.last.producer_blocked_seconds);
    state.blocked_counted = state.last.producer_blocked_seconds;
    watch.channels.push_back(std::move(state));
  }
  std::unique_lock lock(mu_);
  uint64_t id = next_id_++;
  for (const auto& c : watch.channels) {
    if (c.bytes_gauge) gauges_[c.channel.name] = {c.bytes_gauge, c.capacity_gauge};
  }
  watches_.emplace(id, std::move(watch));
  PublishLocked();
  if (period_.count() > 0 && !sampler_.joinable()) sampler_ = std::thread([this] { SamplerLoop(); });
  lock.unlock();
  cv_.notify_all();
  return std::unique_ptr<Watch>(new Watch(this, id));
}

void BackpressureMonitor::Unwatch(uint64_t id) {
  std::lock_guard lock(mu_);
  SampleLocked(Clock::now());
  watches_.erase(id);
  PublishLocked();
}

void BackpressureMonitor::Sample(Clock::time_point now) {
  std::lock_guard lock(mu_);
  SampleLocked(now);
  PublishLocked();
}

void BackpressureMonitor::SampleLocked(Clock::time_point now) {
  for (auto& [id, watch] : watches_) {
    // A look older than the last one still counts blocked time, but has no
    // interval to smooth over.
    double dt = std::max(0.0, std::chrono::duration<double>(now - watch.last_look).count());
    double alpha = 1 - std::exp(-dt / kSmoothingSeconds);
    for (auto& c : watch.channels) {
      c.last = c.channel.stats();
      double blocked = c.last.producer_blocked_seconds - c.blocked_counted;
      if (blocked > 0) {
        if (c.blocked_counter) c.blocked_counter->Add(blocked);
        c.blocked_counted = c.last.producer_blocked_seconds;
      } else {
        blocked = 0;
      }
      if (dt <= 0) continue;
      double fullness = c.last.capacity > 0 ? static_cast<double>(c.last.bytes) / c.last.capacity : 0;
      fullness = std::max(fullness, blocked / (dt * c.channel.producer_threads));
      fullness = std::clamp(fullness, 0.0, 1.0);
      c.smoothed += alpha * (fullness - c.smoothed);
      if (c.smoothed >= kFullAt) {
        c.full = true;
      } else if (c.smoothed < kFullUntil) {
        c.full = false;
      }
    }
    if (dt > 0) watch.last_look = now;
  }
}

void BackpressureMonitor::PublishLocked() {
  std::map<std::string, std::pair<double, double>> held;  // bytes and capacity by channel name
  std::optional<LimitingStage> limiting;
  for (const auto& [id, watch] : watches_) {
    for (const auto& c : watch.channels) {
      held[c.channel.name].first += static_cast<double>(c.last.bytes);
      held[c.channel.name].second += static_cast<double>(c.last.capacity);
    }
    for (auto it = watch.channels.rbegin(); it != watch.channels.rend(); ++it) {
      if (!it->full) continue;
      if (!limiting || it->smoothed > limiting->fill) {
        limiting = LimitingStage{it->channel.consumer, it->channel.name, std::min(1.0, it->smoothed)};
      }
      break;  // the downstream-most full channel of this run
    }
  }
  for (const auto& [name, gauges] : gauges_) {
    auto it = held.find(name);
    gauges.first->Set(it == held.end() ? 0 : it->second.first);
    // A channel not watched now keeps the capacity it last had.
    if (it != held.end()) gauges.second->Set(it->second.second);
  }
  limiting_ = std::move(limiting);
}

void BackpressureMonitor::SamplerLoop() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (watches_.empty()) {
      cv_.wait(lock, [&] { return stop_ || !watches_.empty(); });
      continue;
    }
    cv_.wait_for(lock, period_, [&] { return stop_; });
    if (stop_) break;
    SampleLocked(Clock::now());
    PublishLocked();
  }
}

std::optional<LimitingStage> BackpressureMonitor::Limiting() const {
  std::lock_guard lock(mu_);
  return limiting_;
}

std::string BackpressureMonitor::LimitingJson() const {
  auto limiting = Limiting();
  return limiting ? limiting->Json() : "null";
}

}  // namespace sluice
