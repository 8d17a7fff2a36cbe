#include "core/human_format.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(HumanFormat, GroupsThousandsAndScalesBytes) {
  EXPECT_EQ(Thousands(0), "0");
  EXPECT_EQ(Thousands(999), "999");
  EXPECT_EQ(Thousands(5000000), "5,000,000");
  EXPECT_EQ(Thousands(-1234), "-1,234");
  EXPECT_EQ(HumanBytes(512), "512 B");
  EXPECT_EQ(HumanBytes(327831309), "327.8 MB");
}

}  // namespace
}  // namespace sluice
