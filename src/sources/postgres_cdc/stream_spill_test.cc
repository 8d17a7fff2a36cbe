#include "sources/postgres_cdc/stream_spill.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "harness/temp_dir.h"

namespace sluice::cdc {
namespace {

std::vector<std::string> ReplayAll(StreamSpill& spill, uint32_t xid) {
  std::vector<std::string> out;
  Status status = spill.Replay(xid, [&](std::string_view m) {
    out.emplace_back(m);
    return Status::OK();
  });
  EXPECT_TRUE(status.ok()) << status.ToString();
  return out;
}

TEST(StreamSpill, KeepsMessagesInOrderWithinTheBudget) {
  testing::TempDir dir;
  StreamSpill spill(dir.path(), 1 << 20);
  ASSERT_TRUE(spill.Append(7, 7, "a").ok());
  ASSERT_TRUE(spill.Append(8, 8, "other").ok());
  ASSERT_TRUE(spill.Append(7, 7, "b").ok());
  EXPECT_EQ(spill.spilled_bytes(), 0);
  EXPECT_EQ(ReplayAll(spill, 7), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(ReplayAll(spill, 8), (std::vector<std::string>{"other"}));
  EXPECT_TRUE(spill.empty());
  EXPECT_EQ(spill.memory_bytes(), 0);
}

TEST(StreamSpill, SpillsBeyondTheBudgetAndReplaysFromDiskThenMemory) {
  testing::TempDir dir;
  StreamSpill spill(dir.path(), 64 << 10);
  std::vector<std::string> expected;
  for (int i = 0; i < 20000; ++i) {
    std::string message = "message " + std::to_string(i) + std::string(static_cast<size_t>(i % 50), 'x');
    expected.push_back(message);
    ASSERT_TRUE(spill.Append(42, 42, message).ok());
    EXPECT_LE(spill.memory_bytes(), 64 << 10);
  }
  EXPECT_GT(spill.spilled_bytes(), 0);
  // Spill files are unlinked at once: nothing is left in the directory.
  EXPECT_TRUE(std::filesystem::is_empty(dir.path()));
  EXPECT_EQ(ReplayAll(spill, 42), expected);
}

TEST(StreamSpill, SubtransactionAbortDropsOnlyItsMessages) {
  testing::TempDir dir;
  StreamSpill spill(dir.path(), 16);  // everything spills
  ASSERT_TRUE(spill.Append(1, 1, "top-1").ok());
  ASSERT_TRUE(spill.Append(1, 2, "sub-2").ok());
  ASSERT_TRUE(spill.Append(1, 3, "sub-3").ok());
  ASSERT_TRUE(spill.Append(1, 1, "top-2").ok());
  spill.Abort(1, 2);
  EXPECT_EQ(ReplayAll(spill, 1), (std::vector<std::string>{"top-1", "sub-3", "top-2"}));
}

TEST(StreamSpill, WholeAbortForgetsTheTransaction) {
  testing::TempDir dir;
  StreamSpill spill(dir.path(), 1 << 20);
  ASSERT_TRUE(spill.Append(5, 5, "gone").ok());
  spill.Abort(5, 5);
  EXPECT_TRUE(spill.empty());
  EXPECT_EQ(spill.memory_bytes(), 0);
  EXPECT_TRUE(ReplayAll(spill, 5).empty());
}

TEST(StreamSpill, UnwritableDirectoryIsAnIoErrorNamingIt) {
  StreamSpill spill("/proc/sluice-cannot-write-here", 8);
  Status status = spill.Append(1, 1, "0123456789");
  EXPECT_EQ(status.code(), StatusCode::kIoError);
  EXPECT_NE(status.message().find("/proc/sluice-cannot-write-here"), std::string::npos) << status.ToString();
}

}  // namespace
}  // namespace sluice::cdc
