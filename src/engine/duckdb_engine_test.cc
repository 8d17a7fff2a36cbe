#include "engine/duckdb_engine.h"

#include <gtest/gtest.h>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <condition_variable>
#include <limits>
#include <mutex>
#include <thread>

namespace sluice::engine {
namespace {

TEST(MapDuckDbType, CastsTypesWithoutACanonicalLayout) {
  EXPECT_EQ(MapDuckDbType("a", "TINYINT").cast_to, "SMALLINT");
  EXPECT_EQ(MapDuckDbType("a", "HUGEINT").type.ToString(), "DECIMAL(38,0)");
  EXPECT_EQ(MapDuckDbType("a", "TIMESTAMP_NS").cast_to, "TIMESTAMP");
  EXPECT_EQ(MapDuckDbType("a", "STRUCT(x INTEGER)").type.id, TypeId::kJson);
  EXPECT_EQ(MapDuckDbType("a", "DECIMAL(12,2)").type.ToString(), "DECIMAL(12,2)");
  EXPECT_TRUE(MapDuckDbType("a", "DECIMAL(12,2)").cast_to.empty());
  EXPECT_EQ(MapDuckDbType("a", "INTEGER[]").type.ToString(), "INTEGER[]");
  EXPECT_EQ(MapDuckDbType("a", "UTINYINT[]").cast_to, "SMALLINT[]");
  EXPECT_EQ(MapDuckDbType("a", "INTEGER[3]").cast_to, "INTEGER[]");
  EXPECT_EQ(MapDuckDbType("a", "TIMESTAMP WITH TIME ZONE").type.id, TypeId::kTimestampTz);
  EXPECT_EQ(MapDuckDbType("a", "UUID").type.id, TypeId::kUuid);
}

TEST(DuckDbError, RewritesCsvErrorsAsFileLineColumnReason) {
  std::string raw =
      "Conversion Error: CSV Error on Line: 150001\nOriginal Line: 7,x,notanumber\n"
      "Error when converting column \"amount\". Could not convert string \"notanumber\" to 'DECIMAL(12,2)'\n\n"
      "Column amount is being converted as type DECIMAL(12,2)\n\n  file = /data/sales.csv\n  delimiter = ,\n";
  Status s = DuckDbError(raw);
  EXPECT_EQ(s.code(), StatusCode::kDataError);
  EXPECT_EQ(s.message(),
            "/data/sales.csv line 150001, column amount: Could not convert string \"notanumber\" to "
            "'DECIMAL(12,2)'");
}

TEST(StripSql, DropsTrailingSemicolonsAndCommentsButNotQuotedText) {
  EXPECT_EQ(StripSql("SELECT 1;  \n"), "SELECT 1");
  EXPECT_EQ(StripSql("SELECT 1; -- done\n"), "SELECT 1");
  EXPECT_EQ(StripSql("SELECT 1 /* x; */ ;"), "SELECT 1");
  EXPECT_EQ(StripSql("SELECT ';' AS s;"), "SELECT ';' AS s");
  EXPECT_EQ(StripSql("SELECT 'it''s -- not a comment'"), "SELECT 'it''s -- not a comment'");
  EXPECT_EQ(StripSql("SELECT 1 -- a\nFROM t"), "SELECT 1 -- a\nFROM t");
}

TEST(DuckDbError, ClassifiesByKind) {
  EXPECT_EQ(DuckDbError("Binder Error: column x not found").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(DuckDbError("IO Error: No files found").code(), StatusCode::kIoError);
  EXPECT_EQ(DuckDbError("Conversion Error: bad").code(), StatusCode::kDataError);
}

TEST(DuckDbEngine, StreamsBatchesInArrowLayoutWithSluiceTypes) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  auto stream = (*engine)->Stream(
      "SELECT (i % 100)::TINYINT AS t, i AS id, (i * 1.25)::DECIMAL(12,2) AS amount, 'r' || i AS name, "
      "uuid() AS u FROM range(5000) r(i)");
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  const Schema& schema = (*stream)->schema();
  ASSERT_EQ(schema.num_fields(), 5);
  EXPECT_EQ(schema.field(0).type.id, TypeId::kInt16);  // TINYINT widened
  EXPECT_EQ(schema.field(1).type.id, TypeId::kInt64);
  EXPECT_EQ(schema.field(2).type.ToString(), "DECIMAL(12,2)");
  EXPECT_EQ(schema.field(4).type.id, TypeId::kUuid);
  int64_t rows = 0;
  int64_t sum = 0;
  while (true) {
    auto batch = (*stream)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (!*batch) break;
    const Batch& b = **batch;
    EXPECT_STREQ(b.column(0).format(), "s");
    for (int64_t i = 0; i < b.num_rows(); ++i) sum += b.column(1).Values<int64_t>()[i];
    EXPECT_EQ(b.column(3).BytesAt(0).substr(0, 1), "r");
    EXPECT_EQ(b.column(4).BytesAt(0).size(), 36u);  // canonical UUID text
    rows += b.num_rows();
  }
  EXPECT_EQ(rows, 5000);
  EXPECT_EQ(sum, 5000LL * 4999 / 2);
}

TEST(DuckDbEngine, ErrorsDuringExecutionSurfaceFromStreamOrNext) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  auto stream = (*engine)->Stream("SELECT CASE WHEN i = 4000 THEN error('boom at 4000') ELSE i END AS x FROM range(10000) r(i)");
  // DuckDB executes ahead of the consumer on its own threads, so the error
  // may already be known when the stream starts.
  Status last = stream.status();
  while (last.ok()) {
    auto batch = (*stream)->Next();
    if (!batch.ok()) {
      last = batch.status();
      break;
    }
    if (!*batch) break;
  }
  EXPECT_FALSE(last.ok());
  EXPECT_NE(last.message().find("boom at 4000"), std::string::npos);
}

TEST(DuckDbEngine, BatchesCrossBackIntoDuckDbThroughArrow) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  Schema schema({{"id", DataType::Of(TypeId::kInt64), true},
                 {"name", DataType::Of(TypeId::kString), true},
                 {"amount", DataType::Decimal(12, 2), true}});
  BatchBuilder builder(schema);
  for (int i = 0; i < 3000; ++i) {
    builder.AppendInt(0, i);
    if (i % 10 == 0) {
      builder.AppendNull(1);
    } else {
      builder.AppendBytes(1, "n" + std::to_string(i));
    }
    builder.AppendInt(2, -i * 100 - 1);
  }
  auto batch = builder.Finish();
  ASSERT_TRUE(batch.ok());
  ASSERT_TRUE((*engine)->Execute("CREATE TABLE t (id BIGINT, name VARCHAR, amount DECIMAL(12,2))").ok());
  Status s = (*engine)->Append("t", batch->get());
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ((*batch)->num_rows(), 0) << "Append takes the batch's data";
  auto rows = (*engine)->QueryRows(
      "SELECT count(*), count(name), sum(id), min(amount)::VARCHAR, max(name) FROM t");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ((*rows)[0][0], "3000");
  EXPECT_EQ((*rows)[0][1], "2700");
  EXPECT_EQ((*rows)[0][2], std::to_string(2999LL * 3000 / 2));
  EXPECT_EQ((*rows)[0][3], "-2999.01");  // unscaled -299901
  EXPECT_EQ((*rows)[0][4], "n999");
}

TEST(DuckDbEngine, AppendToAMismatchedTableFailsClearly) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  BatchBuilder builder(Schema({{"id", DataType::Of(TypeId::kInt64), true}}));
  builder.AppendInt(0, 1);
  auto batch = builder.Finish();
  ASSERT_TRUE((*engine)->Execute("CREATE TABLE t (a INTEGER, b INTEGER)").ok());
  Status s = (*engine)->Append("t", batch->get());
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'t'"), std::string::npos) << s.message();
}

/// Parts given as SELECTs, each defined as a view on the reader that opens
/// it ("" for a part without rows). Parts from `released()` on are held back
/// until Release() lets them go: files still downloading.
/// Files that arrive one by one when the test says so.
class Arrivals {
 public:
  explicit Arrivals(std::vector<std::string> paths) : paths_(std::move(paths)) {}
  Result<std::string> WaitFor(size_t index) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return index < arrived_ || !error_.ok(); });
    if (index < arrived_) {
      ++opened_;
      return paths_.at(index);
    }
    return error_;
  }
  void Arrive(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    arrived_ = n;
    cv_.notify_all();
  }
  void Fail(Status error) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::move(error);
    cv_.notify_all();
  }
  int opened() {
    std::lock_guard<std::mutex> lock(mu_);
    return opened_;
  }

 private:
  std::vector<std::string> paths_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t arrived_ = 0;  // guarded by mu_
  Status error_;        // guarded by mu_
  int opened_ = 0;      // guarded by mu_
};

/// Three Parquet files of 1000 rows each (ids 0..2999), and their paths.
std::vector<std::string> WriteParquetFiles(DuckDbEngine* engine, const std::string& dir) {
  std::vector<std::string> paths;
  for (int i = 0; i < 3; ++i) {
    paths.push_back(dir + "/part" + std::to_string(i) + ".parquet");
    EXPECT_TRUE(engine
                    ->Execute("COPY (SELECT range + " + std::to_string(i * 1000) +
                              " AS id, 'x' || range AS name FROM range(1000)) TO " + QuoteLiteral(paths.back()) +
                              " (FORMAT parquet)")
                    .ok());
  }
  return paths;
}

std::string ArrivingList(size_t n) {
  std::string list;
  for (size_t i = 0; i < n; ++i) list += (i ? ", " : "") + QuoteLiteral(ArrivingFilePath(i));
  return "[" + list + "]";
}

/// An engine serving three Parquet files that arrive when the test says so.
class ArrivingFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto opened = DuckDbEngine::Open(EngineOptions{});
    ASSERT_TRUE(opened.ok()) << opened.status().ToString();
    engine_ = std::move(opened).value();
    dir_ = ::testing::TempDir() + "arriving-" + std::to_string(::getpid()) + "-" +
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::create_directories(dir_);
    arrivals_ = std::make_unique<Arrivals>(WriteParquetFiles(engine_.get(), dir_));
    ASSERT_TRUE(engine_->ServeArrivingFiles([this](size_t i) { return arrivals_->WaitFor(i); }).ok());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<DuckDbEngine> engine_;
  std::string dir_;
  std::unique_ptr<Arrivals> arrivals_;
};

TEST_F(ArrivingFilesTest, DuckDbsOwnScanReadsFilesThatArriveWhileItRuns) {
  arrivals_->Arrive(1);  // binding the scan opens the first file
  std::atomic<bool> done{false};
  Result<std::vector<std::vector<std::optional<std::string>>>> rows = Status::Internal("not run");
  std::thread query([&] {
    rows = engine_->QueryRows("SELECT count(*), sum(id), count(DISTINCT name) FROM read_parquet(" +
                              ArrivingList(3) + ")");
    done = true;
  });
  // The query waits for the files that have not arrived, reading the others.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(done);
  EXPECT_GE(arrivals_->opened(), 1);
  arrivals_->Arrive(2);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(done);
  arrivals_->Arrive(3);
  query.join();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(*(*rows)[0][0], "3000");
  EXPECT_EQ(*(*rows)[0][1], "4498500");
  EXPECT_EQ(*(*rows)[0][2], "1000");
}

TEST_F(ArrivingFilesTest, AFileThatNeverArrivesFailsTheScanWithWhatStoppedIt) {
  arrivals_->Arrive(2);
  std::thread failer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    arrivals_->Fail(Status::IoError("s3://b/part2.parquet: connection reset"));
  });
  auto rows = engine_->QueryRows("SELECT count(*) FROM read_parquet(" + ArrivingList(3) + ")");
  failer.join();
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.status().message().find("s3://b/part2.parquet: connection reset"), std::string::npos)
      << rows.status().ToString();
  // A path that is not one of the load's files.
  auto other = engine_->QueryRows("SELECT count(*) FROM read_parquet('sluice-arriving://x')");
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("not a file of this load"), std::string::npos)
      << other.status().ToString();
}

}  // namespace
}  // namespace sluice::engine
