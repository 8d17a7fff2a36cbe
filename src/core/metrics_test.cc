#include "core/metrics.h"

#include <limits>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(MetricsRegistry, RendersTheTextFormatExactly) {
  MetricsRegistry registry;
  registry
      .Counter("sluice_rows_in_total", "Rows read by a stage.", {{"pipeline", "daily"}, {"stage", "source"}})
      .Add(1500);
  registry
      .Counter("sluice_rows_in_total", "Rows read by a stage.", {{"stage", "load"}, {"pipeline", "daily"}})
      .Add(7);
  registry.Gauge("sluice_buffered_bytes", "Bytes held in channels.").Set(2.5);
  Histogram& h = registry.Histogram("sluice_run_seconds", "Run duration.", {{"pipeline", "daily"}}, {1, 10});
  h.Observe(0.5);
  h.Observe(1);
  h.Observe(3);
  h.Observe(60);
  registry.Counter("sluice_errors_total", "Errors.");

  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP sluice_buffered_bytes Bytes held in channels.\n"
            "# TYPE sluice_buffered_bytes gauge\n"
            "sluice_buffered_bytes 2.5\n"
            "# HELP sluice_errors_total Errors.\n"
            "# TYPE sluice_errors_total counter\n"
            "sluice_errors_total 0\n"
            "# HELP sluice_rows_in_total Rows read by a stage.\n"
            "# TYPE sluice_rows_in_total counter\n"
            "sluice_rows_in_total{pipeline=\"daily\",stage=\"load\"} 7\n"
            "sluice_rows_in_total{pipeline=\"daily\",stage=\"source\"} 1500\n"
            "# HELP sluice_run_seconds Run duration.\n"
            "# TYPE sluice_run_seconds histogram\n"
            "sluice_run_seconds_bucket{pipeline=\"daily\",le=\"1\"} 2\n"
            "sluice_run_seconds_bucket{pipeline=\"daily\",le=\"10\"} 3\n"
            "sluice_run_seconds_bucket{pipeline=\"daily\",le=\"+Inf\"} 4\n"
            "sluice_run_seconds_sum{pipeline=\"daily\"} 64.5\n"
            "sluice_run_seconds_count{pipeline=\"daily\"} 4\n");
}

TEST(MetricsRegistry, SameNameAndLabelsInAnyOrderIsTheSameSeries) {
  MetricsRegistry registry;
  Counter& a = registry.Counter("c_total", "h", {{"a", "1"}, {"b", "2"}});
  Counter& b = registry.Counter("c_total", "h", {{"b", "2"}, {"a", "1"}});
  Counter& other = registry.Counter("c_total", "h", {{"a", "1"}, {"b", "3"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &other);
  a.Add();
  b.Add(2);
  EXPECT_EQ(a.value(), 3.0);
  EXPECT_EQ(other.value(), 0.0);
  Gauge& g = registry.Gauge("g", "h");
  g.Set(10);
  g.Add(-2.5);
  EXPECT_EQ(registry.Gauge("g", "h").value(), 7.5);
}

TEST(MetricsRegistry, CountersTakeFractionsAndNeverGoDown) {
  MetricsRegistry registry;
  Counter& c = registry.Counter("sluice_stage_blocked_seconds_total", "h", {{"stage", "source"}});
  c.Add(0.25);
  c.Add(1.5);
  c.Add(-1);                                        // ignored
  c.Add(std::numeric_limits<double>::quiet_NaN());  // ignored
  EXPECT_EQ(c.value(), 1.75);
  EXPECT_NE(registry.RenderPrometheus().find("sluice_stage_blocked_seconds_total{stage=\"source\"} 1.75\n"),
            std::string::npos)
      << registry.RenderPrometheus();
}

TEST(MetricsRegistry, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry.Gauge("g", "Help with \\ and\nnewline and \"quotes\".", {{"path", "C:\\data\\\"x\"\nnext"}})
      .Set(1);
  EXPECT_EQ(registry.RenderPrometheus(),
            "# HELP g Help with \\\\ and\\nnewline and \"quotes\".\n"
            "# TYPE g gauge\n"
            "g{path=\"C:\\\\data\\\\\\\"x\\\"\\nnext\"} 1\n");
}

TEST(MetricsRegistry, FormatsSpecialGaugeValues) {
  MetricsRegistry registry;
  registry.Gauge("a", "h").Set(std::numeric_limits<double>::infinity());
  registry.Gauge("b", "h").Set(-std::numeric_limits<double>::infinity());
  registry.Gauge("c", "h").Set(std::numeric_limits<double>::quiet_NaN());
  registry.Gauge("d", "h").Set(1777000000);
  registry.Gauge("e", "h").Set(-0.125);
  std::string text = registry.RenderPrometheus();
  EXPECT_NE(text.find("\na +Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nb -Inf\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nc NaN\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\nd 1777000000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("\ne -0.125\n"), std::string::npos) << text;
}

TEST(MetricsRegistry, ConcurrentIncrementsAllCount) {
  MetricsRegistry registry;
  constexpr int kThreads = 4;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&registry, i] {
      // Half the threads look the series up themselves, racing the registration.
      Counter& c = registry.Counter("rows_total", "h", {{"stage", "source"}});
      Gauge& g = registry.Gauge("level", "h");
      Histogram& h = registry.Histogram("seconds", "h", {}, {0.5});
      for (int n = 0; n < kPerThread; ++n) {
        c.Add(1);
        g.Add(1);
        h.Observe(n % 2 == 0 ? 0.25 : 1.0);
      }
      (void)i;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(registry.Counter("rows_total", "h", {{"stage", "source"}}).value(),
            double{kThreads} * kPerThread);
  EXPECT_EQ(registry.Gauge("level", "h").value(), double{kThreads} * kPerThread);
  Histogram::Snapshot s = registry.Histogram("seconds", "h", {}, {0.5}).Read();
  EXPECT_EQ(s.count, uint64_t{kThreads} * kPerThread);
  EXPECT_EQ(s.cumulative[0], uint64_t{kThreads} * kPerThread / 2);
  EXPECT_DOUBLE_EQ(s.sum, kThreads * (kPerThread / 2 * 0.25 + kPerThread / 2 * 1.0));
}

TEST(Histogram, BucketsAreCumulativeAndBoundsInclusive) {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.1, 0.2, 1.0, 5.0, 10.0, 11.0, 1e9}) h.Observe(v);
  h.Observe(std::numeric_limits<double>::quiet_NaN());  // ignored
  Histogram::Snapshot s = h.Read();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 4, 6, 8}));
  EXPECT_EQ(s.count, 8u);
  EXPECT_DOUBLE_EQ(s.sum, 0.05 + 0.1 + 0.2 + 1 + 5 + 10 + 11 + 1e9);

  MetricsRegistry registry;
  registry.Histogram("d", "h", {}, {0.005, 0.25, 2.5});
  EXPECT_NE(registry.RenderPrometheus().find(
                "d_bucket{le=\"0.005\"} 0\nd_bucket{le=\"0.25\"} 0\n"
                "d_bucket{le=\"2.5\"} 0\nd_bucket{le=\"+Inf\"} 0\nd_sum 0\nd_count 0\n"),
            std::string::npos)
      << registry.RenderPrometheus();
}

TEST(MetricsRegistry, ValidatesNames) {
  EXPECT_TRUE(MetricsRegistry::IsValidMetricName("sluice_rows_in_total"));
  EXPECT_TRUE(MetricsRegistry::IsValidMetricName("job:rate5m"));
  EXPECT_FALSE(MetricsRegistry::IsValidMetricName(""));
  EXPECT_FALSE(MetricsRegistry::IsValidMetricName("9lives"));
  EXPECT_FALSE(MetricsRegistry::IsValidMetricName("rows-in"));
  EXPECT_TRUE(MetricsRegistry::IsValidLabelName("pipeline"));
  EXPECT_FALSE(MetricsRegistry::IsValidLabelName("__name__"));
  EXPECT_FALSE(MetricsRegistry::IsValidLabelName("a:b"));
  EXPECT_FALSE(MetricsRegistry::IsValidLabelName("1a"));
}

TEST(MetricsRegistryDeathTest, MisuseAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  MetricsRegistry registry;
  registry.Counter("c_total", "h");
  EXPECT_DEATH(registry.Gauge("c_total", "h"), "registered as both counter and gauge");
  EXPECT_DEATH(registry.Counter("bad-name", "h"), "invalid metric name \"bad-name\"");
  EXPECT_DEATH(registry.Counter("c_total", "h", {{"__x", "1"}}), "invalid label name \"__x\"");
  EXPECT_DEATH(registry.Counter("c_total", "h", {{"a", "1"}, {"a", "2"}}), "label \"a\" given twice");
  EXPECT_DEATH(registry.Histogram("h_seconds", "h", {{"le", "1"}}), "label \"le\" is reserved");
  registry.Histogram("h_seconds", "h", {}, {1, 2});
  EXPECT_DEATH(registry.Histogram("h_seconds", "h", {}, {1, 3}), "two different sets of buckets");
  EXPECT_DEATH(Histogram({2, 1}), "strictly increasing");
}

}  // namespace
}  // namespace sluice
