#include "core/redact.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(RedactUrl, HidesThePasswordOfAUrl) {
  EXPECT_EQ(RedactUrl("postgresql://app:s3cr3t@db:5432/x"), "postgresql://app:***@db:5432/x");
  EXPECT_EQ(RedactUrl("postgresql://app@db/x"), "postgresql://app@db/x");
  EXPECT_EQ(RedactUrl("host=db password=s3cr3t user=x"), "host=db password=*** user=x");
}

TEST(RedactUrl, HidesPasswordsWithHashQuestionMarkAndSlash) {
  EXPECT_EQ(RedactUrl("postgresql://app:pa#ss@db/x"), "postgresql://app:***@db/x");
  EXPECT_EQ(RedactUrl("postgresql://app:pa?ss@db/x"), "postgresql://app:***@db/x");
  EXPECT_EQ(RedactUrl("postgresql://app:pa/ss@db/x"), "postgresql://app:***@db/x");
  EXPECT_EQ(UrlPassword("postgresql://app:pa/ss@db/x"), "pa/ss");
  EXPECT_EQ(UrlPassword("postgresql://app@db/x"), "");
}

TEST(RedactSecret, ReplacesEveryOccurrence) {
  EXPECT_EQ(RedactSecret("a pw b pw", "pw"), "a *** b ***");
  EXPECT_EQ(RedactSecret("nothing", ""), "nothing");
}

}  // namespace
}  // namespace sluice
