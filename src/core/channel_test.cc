#include "core/channel.h"

#include <gtest/gtest.h>

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
