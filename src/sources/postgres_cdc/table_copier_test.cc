#include "sources/postgres_cdc/table_copier.h"

#include <gtest/gtest.h>

namespace sluice::cdc {
namespace {

TEST(CopyTextRow, DecodesEscapesNullsAndEmptyStrings) {
  ChangeBatch batch;
  std::string scratch;
  ASSERT_TRUE(AppendCopyTextRow("1\t\\N\t\ttab\\there\\nnl \\\\ back\t\\101\\x42", 5, &batch, &scratch).ok());
  ASSERT_EQ(batch.events().size(), 1u);
  const CdcCell* cells = batch.row(batch.events()[0].new_row);
  EXPECT_EQ(batch.value(cells[0]), "1");
  EXPECT_EQ(cells[1].kind, CdcCellKind::kNull);
  EXPECT_EQ(cells[2].kind, CdcCellKind::kText);
  EXPECT_EQ(batch.value(cells[2]), "");
  EXPECT_EQ(batch.value(cells[3]), "tab\there\nnl \\ back");
  EXPECT_EQ(batch.value(cells[4]), "AB");
  EXPECT_EQ(batch.events()[0].op, ChangeOp::kInsert);
}

TEST(CopyTextRow, WrongFieldCountIsADataError) {
  ChangeBatch batch;
  std::string scratch;
  EXPECT_EQ(AppendCopyTextRow("1\t2", 3, &batch, &scratch).code(), StatusCode::kDataError);
  EXPECT_EQ(AppendCopyTextRow("1\t2\t3", 2, &batch, &scratch).code(), StatusCode::kDataError);
}

}  // namespace
}  // namespace sluice::cdc
