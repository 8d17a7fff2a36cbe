#include "core/backpressure.h"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "core/channel.h"
#include "core/metrics.h"

namespace sluice {
namespace {

using Clock = BackpressureMonitor::Clock;
using std::chrono::milliseconds;

/// A channel whose stats the test sets.
struct FakeChannel {
  std::mutex mu;
  ChannelStats stats;

  void Set(int64_t bytes, double blocked_seconds) {
    std::lock_guard lock(mu);
    stats.bytes = bytes;
    stats.producer_blocked_seconds = blocked_seconds;
  }
  std::function<ChannelStats()> Reader() {
    return [this] {
      std::lock_guard lock(mu);
      return stats;
    };
  }
};

double GaugeValue(MetricsRegistry& r, const char* name, const std::string& channel) {
  return r.Gauge(name, "h", {{"pipeline", "p"}, {"channel", channel}}).value();
}
double Blocked(MetricsRegistry& r, const std::string& stage) {
  return r.Counter("sluice_stage_blocked_seconds_total", "h", {{"pipeline", "p"}, {"stage", stage}}).value();
}

class BackpressureMonitorTest : public ::testing::Test {
 protected:
  BackpressureMonitorTest() : monitor_(&registry_, "p", milliseconds(0)) {
    batches_.stats.capacity = 1000;
    encoded_.stats.capacity = 500;
  }

  std::unique_ptr<BackpressureMonitor::Watch> WatchBoth() {
    return monitor_.Start({{"batches", "source", "encode", 1, batches_.Reader()},
                           {"encoded", "encode", "destination", 2, encoded_.Reader()}});
  }

  /// `n` looks, 250 ms apart, after `*t`.
  void Looks(int n, Clock::time_point* t) {
    for (int i = 0; i < n; ++i) {
      *t += milliseconds(250);
      monitor_.Sample(*t);
    }
  }

  MetricsRegistry registry_;
  BackpressureMonitor monitor_;
  FakeChannel batches_, encoded_;
};

TEST_F(BackpressureMonitorTest, ExportsBytesCapacityAndBlockedSecondsWhileWatched) {
  auto watch = WatchBoth();
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_capacity_bytes", "batches"), 1000);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_capacity_bytes", "encoded"), 500);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "batches"), 0);

  Clock::time_point t = Clock::now();
  batches_.Set(700, 0.5);
  encoded_.Set(120, 0);
  Looks(1, &t);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "batches"), 700);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "encoded"), 120);
  EXPECT_DOUBLE_EQ(Blocked(registry_, "source"), 0.5);
  EXPECT_EQ(Blocked(registry_, "encode"), 0);

  // The counter advances by what was added since the last look.
  batches_.Set(300, 0.75);
  encoded_.Set(500, 1.25);
  Looks(1, &t);
  EXPECT_DOUBLE_EQ(Blocked(registry_, "source"), 0.75);
  EXPECT_DOUBLE_EQ(Blocked(registry_, "encode"), 1.25);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "batches"), 300);

  // The last look happens when the watch ends; the channels are then empty.
  batches_.Set(1000, 2.0);
  watch.reset();
  EXPECT_DOUBLE_EQ(Blocked(registry_, "source"), 2.0);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "batches"), 0);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "encoded"), 0);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_capacity_bytes", "batches"), 1000);

  // A second run's channels start from zero; the counters keep adding up.
  batches_.Set(0, 0.0);
  encoded_.Set(0, 0.0);
  auto again = WatchBoth();
  batches_.Set(10, 0.25);
  Looks(1, &t);
  EXPECT_DOUBLE_EQ(Blocked(registry_, "source"), 2.25);
  std::string text = registry_.RenderPrometheus();
  for (const char* line : {"# TYPE sluice_channel_bytes gauge", "# TYPE sluice_channel_capacity_bytes gauge",
                           "# TYPE sluice_stage_blocked_seconds_total counter",
                           "sluice_channel_capacity_bytes{channel=\"encoded\",pipeline=\"p\"} 500\n",
                           "sluice_stage_blocked_seconds_total{pipeline=\"p\",stage=\"source\"} 2.25\n"}) {
    EXPECT_NE(text.find(line), std::string::npos) << "missing " << line << " in\n" << text;
  }
}

TEST_F(BackpressureMonitorTest, NamesTheConsumerOfTheDownstreamMostChannelThatStaysFull) {
  EXPECT_FALSE(monitor_.Limiting());
  EXPECT_EQ(monitor_.LimitingJson(), "null");
  auto watch = WatchBoth();
  Clock::time_point t = Clock::now();

  // Only the first channel fills: encode is the slow stage.
  batches_.Set(1000, 0);
  Looks(2, &t);
  EXPECT_FALSE(monitor_.Limiting()) << "half a second of a full channel is not yet \"stays full\"";
  Looks(10, &t);
  auto limiting = monitor_.Limiting();
  ASSERT_TRUE(limiting);
  EXPECT_EQ(limiting->stage, "encode");
  EXPECT_EQ(limiting->channel, "batches");
  EXPECT_GE(limiting->fill, 0.9);
  EXPECT_LE(limiting->fill, 1.0);

  // Then the second fills too: the destination limits, encode only waits for it.
  encoded_.Set(500, 0);
  Looks(12, &t);
  limiting = monitor_.Limiting();
  ASSERT_TRUE(limiting);
  EXPECT_EQ(limiting->stage, "destination");
  EXPECT_EQ(limiting->channel, "encoded");
  // 12 looks of a full channel: 1 - exp(-3) = 0.95.
  EXPECT_EQ(monitor_.LimitingJson(), "{\"stage\":\"destination\",\"channel\":\"encoded\",\"fill\":0.95}");

  // Both drain: nothing limits but the source, which shows within a second.
  batches_.Set(0, 0);
  encoded_.Set(0, 0);
  Looks(1, &t);
  EXPECT_TRUE(monitor_.Limiting()) << "one empty look does not undo seconds of full ones";
  Looks(3, &t);
  EXPECT_FALSE(monitor_.Limiting());

  watch.reset();
  EXPECT_FALSE(monitor_.Limiting());
}

TEST_F(BackpressureMonitorTest, AProducerWaitingForRoomCountsAsFullBelowTheCapacity) {
  // Items of 400 bytes in a 1000-byte channel: two fit, the third waits.
  auto watch = WatchBoth();
  Clock::time_point t = Clock::now();
  double blocked = 0;
  for (int i = 0; i < 12; ++i) {
    blocked += 0.25;  // blocked the whole interval
    batches_.Set(800, blocked);
    Looks(1, &t);
  }
  auto limiting = monitor_.Limiting();
  ASSERT_TRUE(limiting);
  EXPECT_EQ(limiting->stage, "encode");

  // Two encode threads, one of them blocked all the time: half full.
  double encode_blocked = 0;
  for (int i = 0; i < 12; ++i) {
    blocked += 0.25;
    batches_.Set(800, blocked);
    encode_blocked += 0.25;
    encoded_.Set(100, encode_blocked);
    Looks(1, &t);
  }
  limiting = monitor_.Limiting();
  ASSERT_TRUE(limiting);
  EXPECT_EQ(limiting->stage, "encode") << "encoded is not full with one of its two producers waiting";
}

TEST_F(BackpressureMonitorTest, ParallelRunsShowTheSumOfTheirChannels) {
  FakeChannel other;
  other.stats.capacity = 1000;
  auto first = monitor_.Start({{"batches", "source", "destination", 1, batches_.Reader()}});
  auto second = monitor_.Start({{"batches", "source", "destination", 1, other.Reader()}});
  Clock::time_point t = Clock::now();
  batches_.Set(100, 0.5);
  other.Set(250, 0.25);
  Looks(1, &t);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "batches"), 350);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_capacity_bytes", "batches"), 2000);
  EXPECT_DOUBLE_EQ(Blocked(registry_, "source"), 0.75);
  first.reset();
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "batches"), 250);
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_capacity_bytes", "batches"), 1000);
  second.reset();
  EXPECT_EQ(GaugeValue(registry_, "sluice_channel_bytes", "batches"), 0);
}

TEST(BackpressureMonitor, WithoutARegistryStillNamesTheLimitingStage) {
  BackpressureMonitor monitor(nullptr, "p", milliseconds(0));
  FakeChannel ch;
  ch.stats.capacity = 10;
  ch.Set(10, 0);
  auto watch = monitor.Start({{"batches", "source", "destination", 1, ch.Reader()}});
  Clock::time_point t = Clock::now();
  for (int i = 0; i < 12; ++i) monitor.Sample(t += milliseconds(250));
  ASSERT_TRUE(monitor.Limiting());
  EXPECT_EQ(monitor.Limiting()->stage, "destination");
}

TEST(BackpressureMonitor, TheSamplerShowsAProducerBlockedOnARealChannelWhileItWaits) {
  MetricsRegistry registry;
  BackpressureMonitor monitor(&registry, "p", milliseconds(20));
  Channel<int> ch(100);
  auto watch = monitor.Start({{"batches", "source", "destination", 1, [&] { return ch.Stats(); }}});
  ASSERT_TRUE(ch.Push(1, 90));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    ch.Push(2, 90);  // waits until the consumer takes the first
    pushed = true;
  });
  // Live: the counter and the limiting stage appear while the producer is
  // still blocked, from the sampler thread alone.
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (Clock::now() < deadline && !(Blocked(registry, "source") >= 1.0 && monitor.Limiting())) {
    std::this_thread::sleep_for(milliseconds(20));
  }
  EXPECT_FALSE(pushed.load());
  EXPECT_GE(Blocked(registry, "source"), 1.0);
  EXPECT_EQ(GaugeValue(registry, "sluice_channel_bytes", "batches"), 90);
  EXPECT_EQ(GaugeValue(registry, "sluice_channel_capacity_bytes", "batches"), 100);
  auto limiting = monitor.Limiting();
  ASSERT_TRUE(limiting);
  EXPECT_EQ(limiting->stage, "destination");
  EXPECT_EQ(limiting->channel, "batches");
  EXPECT_EQ(ch.Pop().value(), 1);
  producer.join();
  EXPECT_EQ(ch.Pop().value(), 2);
  watch.reset();
  EXPECT_FALSE(monitor.Limiting());
  EXPECT_EQ(GaugeValue(registry, "sluice_channel_bytes", "batches"), 0);
}

}  // namespace
}  // namespace sluice
