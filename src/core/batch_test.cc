#include "sluice/batch.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

Schema TestSchema() {
  return Schema({{"id", DataType::Of(TypeId::kInt64), true},
                 {"name", DataType::Of(TypeId::kString), true},
                 {"amount", DataType::Decimal(12, 2), true},
                 {"ok", DataType::Of(TypeId::kBool), true}});
}

TEST(BatchBuilder, BuildsArrowLayoutReadableThroughColumnViews) {
  BatchBuilder b(TestSchema());
  b.AppendInt(0, 1);
  b.AppendBytes(1, "alpha");
  b.AppendInt(2, -1234);
  b.AppendBool(3, true);
  b.AppendInt(0, 2);
  b.AppendNull(1);
  b.AppendNull(2);
  b.AppendBool(3, false);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  const Batch& bt = **batch;
  EXPECT_EQ(bt.num_rows(), 2);
  EXPECT_EQ(bt.num_columns(), 4);
  EXPECT_EQ(bt.column(0).Values<int64_t>()[1], 2);
  EXPECT_EQ(bt.column(1).BytesAt(0), "alpha");
  EXPECT_TRUE(bt.column(1).IsNull(1));
  EXPECT_FALSE(bt.column(1).IsNull(0));
  // Decimals are 128-bit two's complement: the high word of -1234 is all ones.
  EXPECT_EQ(bt.column(2).Values<int64_t>()[0], -1234);
  EXPECT_EQ(bt.column(2).Values<int64_t>()[1], -1);
  EXPECT_TRUE(bt.column(3).BoolAt(0));
  EXPECT_FALSE(bt.column(3).BoolAt(1));
  EXPECT_EQ(bt.schema().field(2).type.ToString(), "DECIMAL(12,2)");
  EXPECT_GT(bt.byte_size(), 0);
}

TEST(BatchBuilder, RejectsColumnsOfDifferentLengths) {
  BatchBuilder b(TestSchema());
  b.AppendInt(0, 1);
  auto batch = b.Finish();
  ASSERT_FALSE(batch.ok());
  EXPECT_EQ(batch.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(batch.status().message().find("name"), std::string::npos);
}

TEST(Batch, ExportMovesOwnershipAndRoundTripsThroughTheCDataInterface) {
  BatchBuilder b(TestSchema());
  for (int i = 0; i < 100; ++i) {
    b.AppendInt(0, i);
    b.AppendBytes(1, std::to_string(i));
    b.AppendInt(2, i * 100);
    b.AppendBool(3, i % 2 == 0);
  }
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  ArrowArray array{};
  ASSERT_TRUE((*batch)->ExportTo(&array).ok());
  EXPECT_EQ(array.length, 100);
  EXPECT_EQ(array.n_children, 4);
  EXPECT_FALSE((*batch)->ExportTo(&array).ok()) << "a second export must fail";
  auto again = Batch::FromArrow(&array, (*batch)->imported_schema());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(array.release, nullptr) << "import takes ownership";
  EXPECT_EQ((*again)->column(1).BytesAt(42), "42");
}

TEST(DataTypeFromArrow, MapsCanonicalLayoutsAndRejectsOthers) {
  ArrowSchema s{};
  s.format = "d:12,2,128";
  auto t = DataTypeFromArrow(s);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->precision, 12);
  EXPECT_EQ(t->scale, 2);
  s.format = "tsu:UTC";
  EXPECT_EQ(DataTypeFromArrow(s)->id, TypeId::kTimestampTz);
  s.format = "tsu:";
  EXPECT_EQ(DataTypeFromArrow(s)->id, TypeId::kTimestamp);
  s.format = "C";  // uint8: encoders do not read it directly
  s.name = "flags";
  auto bad = DataTypeFromArrow(s);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("flags"), std::string::npos);
}

TEST(ParseTypeName, AcceptsCommonSpellingsAndRejectsUnknown) {
  EXPECT_EQ(ParseTypeName("numeric(12, 2)")->ToString(), "DECIMAL(12,2)");
  EXPECT_EQ(ParseTypeName("int8")->id, TypeId::kInt64);
  EXPECT_EQ(ParseTypeName("text[]")->ToString(), "VARCHAR[]");
  EXPECT_EQ(ParseTypeName("timestamp with time zone")->id, TypeId::kTimestampTz);
  auto bad = ParseTypeName("BIGINT); DROP TABLE x; --");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(ParseTypeName("DECIMAL(40,2)").ok());
}

}  // namespace
}  // namespace sluice
