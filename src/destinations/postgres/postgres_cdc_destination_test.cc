#include "destinations/postgres/postgres_cdc_destination.h"

#include <gtest/gtest.h>

#include <memory>

#include "harness/pg_server.h"

namespace sluice {
namespace {

using testing::PgServer;

/// The fence of CdcDestination::SetFence: a transaction whose fence
/// statement does not affect the rows it expects is rolled back, whatever
/// it was (a truncate that creates the table, a change batch, a copy).
class PostgresCdcFenceTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = PgServer::Start();
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value().release();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    dest_ = destinations::MakePostgresCdcDestination(server_->Url("postgres"),
                                                     "replica_" + std::to_string(++counter_));
    schema_ = "replica_" + std::to_string(counter_);
    ASSERT_TRUE(dest_->Open().ok());
    table_ = std::make_shared<CdcTable>();
    table_->id = 1;
    table_->schema = "public";
    table_->name = "t";
    table_->columns = {CdcColumn{"id", 23, -1, "integer", "", true}};
  }
  std::string Scalar(const std::string& sql) {
    auto v = server_->QueryScalar("postgres", sql);
    return v.ok() ? *v : "ERROR " + v.status().message();
  }
  ChangeBatch Insert(int id, CdcLsn lsn) {
    ChangeBatch batch;
    ChangeEvent e;
    e.op = ChangeOp::kInsert;
    e.table = table_;
    e.new_row = batch.BeginRow();
    batch.AppendCell(CdcCellKind::kText, std::to_string(id));
    batch.AppendEvent(e);
    batch.FinishTransaction(0, lsn);
    return batch;
  }
  static std::vector<CommitStatement> Holds(bool held) {
    return {CommitStatement{held ? "SELECT 1" : "SELECT 1 WHERE false", {}, 1}};
  }

  static inline PgServer* server_ = nullptr;
  static inline int counter_ = 0;
  std::unique_ptr<CdcDestination> dest_;
  std::string schema_;
  std::shared_ptr<CdcTable> table_;
};

TEST_F(PostgresCdcFenceTest, AFencedProcessAppliesNothing) {
  dest_->SetFence(Holds(false), "");
  Status truncated = dest_->TruncateTable(*table_);
  EXPECT_EQ(truncated.code(), StatusCode::kCancelled) << truncated.ToString();
  EXPECT_NE(truncated.message().find("no longer holds the pipeline's lease"), std::string::npos);
  EXPECT_EQ(Scalar("SELECT to_regclass('" + schema_ + ".t') IS NULL"), "t") << "the CREATE was rolled back";

  dest_->SetFence(Holds(true), "");
  ASSERT_TRUE(dest_->TruncateTable(*table_).ok());
  ASSERT_TRUE(dest_->WriteEvents(Insert(1, 100), {}).ok());
  EXPECT_EQ(Scalar("SELECT string_agg(id::text, ',') FROM " + schema_ + ".t"), "1");

  dest_->SetFence(Holds(false), "");
  Status written = dest_->WriteEvents(Insert(2, 200), {});
  EXPECT_EQ(written.code(), StatusCode::kCancelled) << written.ToString();
  auto writer = dest_->OpenCopyWriter(*table_, /*binary=*/false);
  ASSERT_TRUE(writer.ok() && *writer);
  ASSERT_TRUE((*writer)->Put("3\n").ok());
  auto committed = (*writer)->Commit();
  EXPECT_EQ(committed.status().code(), StatusCode::kCancelled);
  Status rows = dest_->WriteTableRows(*table_, Insert(4, 0));
  EXPECT_EQ(rows.code(), StatusCode::kCancelled);
  EXPECT_EQ(Scalar("SELECT string_agg(id::text, ',') FROM " + schema_ + ".t"), "1");

  // Fencing off again (an empty fence): writes go through.
  dest_->SetFence({}, "");
  ASSERT_TRUE(dest_->WriteEvents(Insert(5, 300), {}).ok());
  EXPECT_EQ(Scalar("SELECT string_agg(id::text, ',' ORDER BY id) FROM " + schema_ + ".t"), "1,5");
}

}  // namespace
}  // namespace sluice
