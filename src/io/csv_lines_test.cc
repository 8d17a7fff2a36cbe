#include "io/csv_lines.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace sluice::io {
namespace {

std::string WriteTemp(const std::string& contents) {
  char name[] = "/tmp/sluice-csvlines-XXXXXX";
  int fd = mkstemp(name);
  EXPECT_GE(fd, 0);
  FILE* f = fdopen(fd, "wb");
  std::fwrite(contents.data(), 1, contents.size(), f);
  std::fclose(f);
  return name;
}

TEST(PhysicalLineOfRecord, CountsNewlinesInsideQuotedFields) {
  std::string path = WriteTemp("a,b\n1,\"x\ny\nz\"\n2,\"say \"\"hi\"\"\"\n3,bad\n");
  EXPECT_EQ(*PhysicalLineOfRecord(path, 1), 1);
  EXPECT_EQ(*PhysicalLineOfRecord(path, 2), 2);
  EXPECT_EQ(*PhysicalLineOfRecord(path, 3), 5);
  EXPECT_EQ(*PhysicalLineOfRecord(path, 4), 6);
  EXPECT_FALSE(PhysicalLineOfRecord(path, 9).ok());
  std::remove(path.c_str());
}

TEST(PhysicalLinesOfOffsets, MapsSortedOffsetsToLines) {
  std::string path = WriteTemp("ab\ncd\n\nef\n");
  auto lines = PhysicalLinesOfOffsets(path, {0, 3, 6, 7});
  ASSERT_TRUE(lines.ok());
  EXPECT_EQ(*lines, (std::vector<int64_t>{1, 2, 3, 4}));
  std::remove(path.c_str());
}

}  // namespace
}  // namespace sluice::io
