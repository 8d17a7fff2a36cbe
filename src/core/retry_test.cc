#include "core/retry.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(RetryState, DelaysGrowExponentiallyWithinJitterAndCap) {
  RetryPolicy p;
  p.initial = std::chrono::milliseconds(100);
  p.max_delay = std::chrono::milliseconds(350);
  p.jitter = 0.1;
  p.max_elapsed = std::chrono::milliseconds(100000);
  RetryState s(p);
  auto d1 = s.NextDelay().count();
  auto d2 = s.NextDelay().count();
  auto d3 = s.NextDelay().count();
  EXPECT_GE(d1, 90);
  EXPECT_LE(d1, 110);
  EXPECT_GE(d2, 180);
  EXPECT_LE(d2, 220);
  EXPECT_GE(d3, 315);  // capped at 350 before jitter
  EXPECT_LE(d3, 385);
}

TEST(RetryState, StopsAtMaxAttemptsAndMaxElapsed) {
  RetryPolicy p;
  p.initial = std::chrono::milliseconds(10);
  p.max_attempts = 3;
  RetryState s(p);
  EXPECT_GE(s.NextDelay().count(), 0);
  EXPECT_GE(s.NextDelay().count(), 0);
  EXPECT_LT(s.NextDelay().count(), 0);

  RetryPolicy q;
  q.initial = std::chrono::milliseconds(1000);
  q.max_elapsed = std::chrono::milliseconds(500);
  RetryState t(q);
  EXPECT_LT(t.NextDelay().count(), 0) << "the first delay already exceeds max_elapsed";
}

TEST(SleepUnlessCancelled, ReturnsEarlyWhenCancelled) {
  CancellationSource c;
  c.Cancel();
  auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(SleepUnlessCancelled(std::chrono::milliseconds(5000), &c));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1000));
}

}  // namespace
}  // namespace sluice
