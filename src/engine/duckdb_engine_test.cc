#include "engine/duckdb_engine.h"

#include <gtest/gtest.h>

#include <chrono>
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
class HeldParts : public ScanParts {
 public:
  explicit HeldParts(std::vector<std::string> selects) : selects_(std::move(selects)) {}

  Result<std::optional<std::string>> Open(size_t index, DuckDbEngine* reader) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      asked_ = std::max(asked_, index + 1);
      cv_.notify_all();
      cv_.wait(lock, [&] { return index < released_ || released_ >= selects_.size(); });
    }
    if (index >= selects_.size()) return std::optional<std::string>();
    if (selects_[index].empty()) return std::optional<std::string>("");
    if (selects_[index].starts_with("error:")) return Status::DataError(selects_[index].substr(6));
    SLUICE_RETURN_IF_ERROR(reader->Execute("CREATE OR REPLACE TEMP VIEW part AS " + selects_[index]));
    return std::optional<std::string>("SELECT * FROM part");
  }
  /// Parts below `n` may be opened.
  void Release(size_t n) {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = n;
    cv_.notify_all();
  }
  /// Waits until part `index` was asked for.
  bool WaitAsked(size_t index) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(30), [&] { return asked_ > index; });
  }

 private:
  std::vector<std::string> selects_;
  std::mutex mu_;
  std::condition_variable cv_;
  size_t released_ = std::numeric_limits<size_t>::max();
  size_t asked_ = 0;
};

/// A parts scan `parts`() over `held`, its columns from the first part.
void Register(DuckDbEngine* engine, HeldParts* held, const std::string& first, bool ordered) {
  auto reader = engine->Connect();
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  ASSERT_TRUE((*reader)->Execute("CREATE TEMP VIEW part AS " + first).ok());
  Status s = engine->RegisterPartsScan("parts", held, reader->get(), "SELECT * FROM part", ordered);
  ASSERT_TRUE(s.ok()) << s.ToString();
}

TEST(DuckDbEngine, PartsScanReadsEveryPartOnceWithProjectionsAndEmptyParts) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  auto part = [](int from, int to) {
    return "SELECT i AS id, 'n' || i AS name, (i * 0.5)::DECIMAL(12,2) AS amount FROM range(" +
           std::to_string(from) + ", " + std::to_string(to) + ") r(i)";
  };
  HeldParts held({part(0, 10000), "", part(10000, 10001), part(10001, 50000)});
  Register(engine->get(), &held, part(0, 0), false);
  auto rows = (*engine)->QueryRows(
      "SELECT count(*), count(DISTINCT id), sum(id), max(name), sum(amount)::VARCHAR FROM parts()");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ((*rows)[0][0], "50000");
  EXPECT_EQ((*rows)[0][1], "50000");
  EXPECT_EQ((*rows)[0][2], std::to_string(49999LL * 50000 / 2));
  EXPECT_EQ((*rows)[0][3], "n9999");
  EXPECT_EQ((*rows)[0][4], "624987500.00");
  // Only some columns, none, and the scan used twice in one query.
  rows = (*engine)->QueryRows(
      "SELECT (SELECT count(*) FROM parts()), (SELECT max(name) FROM parts() WHERE id < 5), "
      "(SELECT count(*) FROM parts() a JOIN parts() b USING (id))");
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ((*rows)[0][0], "50000");
  EXPECT_EQ((*rows)[0][1], "n4");
  EXPECT_EQ((*rows)[0][2], "50000");
}

TEST(DuckDbEngine, OrderedPartsScanKeepsThePartsOrder) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  ASSERT_TRUE((*engine)->Execute("SET preserve_insertion_order = true").ok());
  std::vector<std::string> selects;
  for (int k = 5; k >= 0; --k) {
    selects.push_back("SELECT i AS id FROM range(" + std::to_string(k * 30000) + ", " +
                      std::to_string(k * 30000 + 30000) + ") r(i) ORDER BY i DESC");
  }
  HeldParts held(selects);
  Register(engine->get(), &held, selects[0], true);
  auto stream = (*engine)->Stream("SELECT id FROM parts()");
  ASSERT_TRUE(stream.ok()) << stream.status().ToString();
  int64_t expected = 6 * 30000 - 1, rows = 0;
  bool in_order = true;
  while (true) {
    auto batch = (*stream)->Next();
    ASSERT_TRUE(batch.ok()) << batch.status().ToString();
    if (!*batch) break;
    for (int64_t i = 0; i < (*batch)->num_rows(); ++i) {
      in_order = in_order && (*batch)->column(0).Values<int64_t>()[i] == expected;
      --expected;
      ++rows;
    }
  }
  EXPECT_EQ(rows, 6 * 30000);
  EXPECT_TRUE(in_order);
}

TEST(DuckDbEngine, PartsScanReadsThePartsThatArrivedWhileTheLastIsHeldBack) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  HeldParts held({"SELECT 1 AS x", "SELECT 2 AS x", "SELECT 3 AS x"});
  held.Release(2);
  Register(engine->get(), &held, "SELECT 1 AS x", true);
  Result<std::vector<std::vector<std::optional<std::string>>>> rows = Status::Internal("not run");
  std::thread query([&] { rows = (*engine)->QueryRows("SELECT sum(x) FROM parts()"); });
  // In order: part 2 is asked for only once parts 0 and 1 were read.
  EXPECT_TRUE(held.WaitAsked(2));
  held.Release(3);
  query.join();
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ((*rows)[0][0], "6");
}

TEST(DuckDbEngine, PartsScanFailsOnAPartWithOtherColumnsOrAnError) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  HeldParts other({"SELECT 1 AS x, 'a' AS y", "SELECT 2 AS x, 3 AS y"});
  Register(engine->get(), &other, "SELECT 1 AS x, 'a' AS y", false);
  auto rows = (*engine)->QueryRows("SELECT max(y) FROM parts()");
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.status().message().find("part 1 does not have the columns of the scan"), std::string::npos)
      << rows.status().message();

  auto engine2 = DuckDbEngine::Open({});
  ASSERT_TRUE(engine2.ok());
  HeldParts failing({"SELECT 1 AS x", "error:s3://b/k.parquet: download failed"});
  Register(engine2->get(), &failing, "SELECT 1 AS x", false);
  rows = (*engine2)->QueryRows("SELECT sum(x) FROM parts()");
  ASSERT_FALSE(rows.ok());
  EXPECT_NE(rows.status().message().find("s3://b/k.parquet: download failed"), std::string::npos)
      << rows.status().message();
}

TEST(DuckDbEngine, InterruptReachesAPartsScanWaitingForItsReader) {
  auto engine = DuckDbEngine::Open({});
  ASSERT_TRUE(engine.ok());
  HeldParts held({"SELECT i AS x FROM range(100000000) r(i)"});
  Register(engine->get(), &held, "SELECT 1::BIGINT AS x", false);
  std::thread stopper([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    (*engine)->Interrupt();
  });
  auto start = std::chrono::steady_clock::now();
  auto rows = (*engine)->QueryRows("SELECT sum(x * x % 7) FROM parts()");
  stopper.join();
  EXPECT_FALSE(rows.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

}  // namespace
}  // namespace sluice::engine
