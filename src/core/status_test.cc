#include "sluice/status.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

Result<int> FromOkStatus() { return Status::OK(); }

Status AssignFromOkStatus(int* out) {
  SLUICE_ASSIGN_OR_RETURN(*out, FromOkStatus());
  return Status::OK();
}

TEST(Result, BuiltFromAnOkStatusIsAnInternalErrorNotASilentSuccess) {
  Result<int> r = FromOkStatus();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  int value = 7;
  Status s = AssignFromOkStatus(&value);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInternal);
  EXPECT_EQ(value, 7);
}

TEST(Result, KeepsAValueOrAnError) {
  Result<std::string> v = std::string("x");
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(*v, "x");
  Result<int> e = Status::NotFound("gone");
  EXPECT_EQ(e.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(e.ValueOr(3), 3);
}

}  // namespace
}  // namespace sluice
