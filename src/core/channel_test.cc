#include "core/channel.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include "core/ordered_channel.h"
#include "core/pipeline_runtime.h"

namespace sluice {
namespace {

TEST(Channel, FullChannelBlocksTheProducerUntilTheConsumerTakes) {
  Channel<int> ch(100);
  ASSERT_TRUE(ch.Push(1, 60));
  std::atomic<bool> pushed{false};
  std::thread producer([&] {
    ch.Push(2, 60);  // 120 > 100: must wait
    pushed = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(pushed.load()) << "the second push must block on the byte budget";
  EXPECT_EQ(ch.bytes(), 60);
  EXPECT_EQ(ch.Pop().value(), 1);
  producer.join();
  EXPECT_TRUE(pushed.load());
  EXPECT_EQ(ch.Pop().value(), 2);
  EXPECT_LE(ch.peak_bytes(), 100);
}

TEST(Channel, OversizedItemIsAdmittedIntoAnEmptyChannel) {
  Channel<int> ch(10);
  EXPECT_TRUE(ch.Push(7, 1000));
  EXPECT_EQ(ch.Pop().value(), 7);
}

TEST(Channel, CloseDrainsThenEnds) {
  Channel<int> ch(100);
  ch.Push(1, 1);
  ch.Close();
  EXPECT_EQ(ch.Pop().value(), 1);
  EXPECT_FALSE(ch.Pop().has_value());
}

TEST(Channel, CancelWakesBlockedProducer) {
  Channel<int> ch(1);
  ch.Push(1, 1);
  std::thread producer([&] { EXPECT_FALSE(ch.Push(2, 1)); });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ch.Cancel();
  producer.join();
  EXPECT_FALSE(ch.Pop().has_value());
}

TEST(Channel, StatsShowTheBytesHeldAndAProducerBlockedWhileItStillWaits) {
  Channel<int> ch(100);
  ASSERT_TRUE(ch.Push(1, 60));
  ChannelStats before = ch.Stats();
  EXPECT_EQ(before.bytes, 60);
  EXPECT_EQ(before.capacity, 100);
  EXPECT_EQ(before.producer_blocked_seconds, 0);
  EXPECT_EQ(before.producers_waiting, 0);
  StageCounters counters("source");
  std::thread producer([&] { ch.Push(2, 60, &counters); });  // 120 > 100: waits
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ChannelStats waiting = ch.Stats();
  EXPECT_EQ(waiting.producers_waiting, 1);
  EXPECT_EQ(waiting.bytes, 60);
  // The wait is counted while it lasts, not only once it ends.
  EXPECT_GE(waiting.producer_blocked_seconds, 0.15);
  EXPECT_EQ(counters.blocked_seconds(), 0) << "the stage's counters learn of a wait when it ends";
  EXPECT_EQ(ch.Pop().value(), 1);
  producer.join();
  ChannelStats after = ch.Stats();
  EXPECT_EQ(after.producers_waiting, 0);
  EXPECT_EQ(after.bytes, 60);
  EXPECT_GE(after.producer_blocked_seconds, waiting.producer_blocked_seconds);
  EXPECT_NEAR(after.producer_blocked_seconds, counters.blocked_seconds(), 1e-6);
  // A consumer waiting on an empty channel is not a blocked producer.
  EXPECT_EQ(ch.Pop().value(), 2);
  std::thread consumer([&] { EXPECT_FALSE(ch.Pop().has_value()); });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ch.Close();
  consumer.join();
  EXPECT_EQ(ch.Stats().bytes, 0);
  EXPECT_NEAR(ch.Stats().producer_blocked_seconds, after.producer_blocked_seconds, 1e-6);
}

TEST(Channel, ASlowConsumerKeepsTheChannelFullAndTheProducerBlocked) {
  Channel<int> ch(100);
  StageCounters counters("source");
  constexpr int kItems = 30;
  std::thread producer([&] {
    for (int i = 0; i < kItems; ++i) ASSERT_TRUE(ch.Push(i, 40, &counters));
    ch.Close();
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  int64_t max_seen = 0;
  int popped = 0;
  while (auto item = ch.Pop()) {
    EXPECT_EQ(*item, popped++);
    max_seen = std::max(max_seen, ch.Stats().bytes);
    std::this_thread::sleep_for(std::chrono::milliseconds(10));  // the slow consumer
  }
  producer.join();
  EXPECT_EQ(popped, kItems);
  ChannelStats s = ch.Stats();
  EXPECT_EQ(s.bytes, 0);
  EXPECT_EQ(s.capacity, 100);
  EXPECT_GE(max_seen, 40) << "the slow consumer always finds items waiting";
  EXPECT_LE(max_seen, 100);
  EXPECT_LE(ch.peak_bytes(), 100);
  // About 28 pops of 10 ms each were waited for.
  EXPECT_GE(s.producer_blocked_seconds, 0.2);
  EXPECT_LE(s.producer_blocked_seconds, 5.0);
  EXPECT_NEAR(s.producer_blocked_seconds, counters.blocked_seconds(), 1e-6);
}

TEST(OrderedChannel, ReturnsItemsInSequenceOrderWhateverThePushOrder) {
  OrderedChannel<int> ch(1000);
  ch.Push(2, 20, 1);
  ch.Push(0, 0, 1);
  ch.Push(1, 10, 1);
  ch.Close();
  EXPECT_EQ(ch.Pop().value(), 0);
  EXPECT_EQ(ch.Pop().value(), 10);
  EXPECT_EQ(ch.Pop().value(), 20);
  EXPECT_FALSE(ch.Pop().has_value());
}

TEST(OrderedChannel, NextExpectedItemIsAdmittedEvenWhenFull) {
  OrderedChannel<int> ch(10);
  ch.Push(1, 1, 10);  // fills the budget while 0 is still missing
  std::thread late([&] { EXPECT_TRUE(ch.Push(0, 0, 10)); });
  late.join();
  EXPECT_EQ(ch.Pop().value(), 0);
  EXPECT_EQ(ch.Pop().value(), 1);
}

TEST(OrderedChannel, StatsCountTheTimeWorkersWaitForRoom) {
  OrderedChannel<int> ch(10);
  ASSERT_TRUE(ch.Push(1, 1, 10));                              // fills the budget while 0 is still missing
  std::thread worker([&] { EXPECT_TRUE(ch.Push(2, 2, 5)); });  // neither next nor room: waits
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  ChannelStats waiting = ch.Stats();
  EXPECT_EQ(waiting.bytes, 10);
  EXPECT_EQ(waiting.capacity, 10);
  EXPECT_EQ(waiting.producers_waiting, 1);
  EXPECT_GE(waiting.producer_blocked_seconds, 0.1);
  ASSERT_TRUE(ch.Push(0, 0, 1));  // the next one is always admitted
  EXPECT_EQ(ch.Pop().value(), 0);
  EXPECT_EQ(ch.Pop().value(), 1);
  worker.join();
  EXPECT_EQ(ch.Stats().producers_waiting, 0);
  EXPECT_EQ(ch.Stats().bytes, 5);
  ch.Cancel();
  EXPECT_EQ(ch.Stats().bytes, 0) << "a cancelled channel holds nothing";
}

TEST(PipelineRuntime, FirstErrorCancelsOtherStagesAndIsReportedWithTheStageName) {
  PipelineRuntime rt;
  Channel<int> ch(10);
  rt.OnCancel([&] { ch.Cancel(); });
  rt.AddStage("producer", 1, [&](int) -> Status {
    for (int i = 0;; ++i) {
      if (!ch.Push(i, 1)) return Status::Cancelled("stopped");
    }
  });
  rt.AddStage("consumer", 1, [&](int) -> Status {
    ch.Pop();
    return Status::DataError("bad row at line 7");
  });
  Status s = rt.Run();
  EXPECT_EQ(s.code(), StatusCode::kDataError);
  EXPECT_EQ(s.message(), "consumer: bad row at line 7");
}

TEST(PipelineRuntime, ExternalCancellationStopsTheRun) {
  CancellationSource cancel;
  PipelineRuntime rt(&cancel);
  rt.OnTick(10, [] {});
  rt.AddStage("loop", 2, [&](int) -> Status {
    while (!rt.cancelled()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    return Status::OK();
  });
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    cancel.Cancel();
  });
  Status s = rt.Run();
  stopper.join();
  EXPECT_EQ(s.code(), StatusCode::kCancelled);
}

TEST(PipelineRuntime, OnDoneRunsWhenTheLastThreadOfAStageFinishes) {
  PipelineRuntime rt;
  std::atomic<int> done{0};
  std::atomic<int> ran{0};
  rt.AddStage("workers", 3, [&](int) -> Status {
    ++ran;
    return Status::OK();
  }, [&] { EXPECT_EQ(ran.load(), 3); ++done; });
  EXPECT_TRUE(rt.Run().ok());
  EXPECT_EQ(done.load(), 1);
}

}  // namespace
}  // namespace sluice
