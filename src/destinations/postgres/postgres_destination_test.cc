#include "destinations/postgres/postgres_destination.h"

#include <gtest/gtest.h>

#include <cmath>
#include <future>
#include <limits>

#include "destinations/postgres/test_arrow_arrays.h"
#include "harness/pg_server.h"
#include "io/postgres/pg_connection.h"

namespace sluice {
namespace {

using pgtest::Decimal128;
using pgtest::Fixed;
using pgtest::List;
using pgtest::MakeBatch;
using pgtest::Strings;
using testing::PgServer;

using Rows = std::vector<std::vector<std::optional<std::string>>>;

constexpr const char* kDb = "dest_test";

class PostgresDestinationTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto server = PgServer::Start();
    if (!server.ok()) {
      *start_error_ = server.status().ToString();
      return;
    }
    server_ = std::move(server).value().release();
    Status created = server_->CreateDatabase(kDb);
    if (!created.ok()) *start_error_ = created.ToString();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override {
    ASSERT_NE(server_, nullptr) << "PostgreSQL did not start: " << *start_error_;
    ASSERT_TRUE(start_error_->empty()) << *start_error_;
  }

  static std::string Url() { return server_->Url(kDb); }

  static Rows Query(const std::string& sql) {
    auto rows = server_->Query(kDb, sql);
    EXPECT_TRUE(rows.ok()) << rows.status().ToString();
    return rows.ok() ? *rows : Rows{};
  }
  static std::string Scalar(const std::string& sql) {
    auto v = server_->QueryScalar(kDb, sql);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : "<error>";
  }
  static void Exec(const std::string& sql) {
    Status st = server_->Exec(kDb, sql);
    ASSERT_TRUE(st.ok()) << st.ToString();
  }

  static std::unique_ptr<PostgresDestination> Dest(const std::string& table,
                                                   LoadMode mode = LoadMode::kAppend,
                                                   std::vector<std::string> key = {}, bool create = true) {
    PostgresDestinationOptions options;
    options.url = Url();
    options.table = table;
    options.mode = mode;
    options.key = std::move(key);
    options.create_table = create;
    auto dest = PostgresDestination::Make(options);
    EXPECT_TRUE(dest.ok()) << dest.status().ToString();
    return dest.ok() ? std::move(dest).value() : nullptr;
  }

  static Status Load(PostgresDestination& dest, const Schema& schema,
                     const std::vector<std::shared_ptr<Batch>>& batches) {
    SLUICE_RETURN_IF_ERROR(dest.Begin(schema));
    for (const auto& b : batches) {
      Status st = dest.Write(*b);
      if (!st.ok()) {
        dest.Abort();
        return st;
      }
    }
    return dest.Commit();
  }

  static PgServer* server_;
  static std::string* start_error_;
};

PgServer* PostgresDestinationTest::server_ = nullptr;
std::string* PostgresDestinationTest::start_error_ = new std::string();

// id BIGINT, name VARCHAR rows.
std::shared_ptr<Batch> KeyValueBatch(const std::vector<std::pair<int64_t, std::string>>& rows) {
  Schema schema({{"id", DataType::Of(TypeId::kInt64)}, {"name", DataType::Of(TypeId::kString)}});
  BatchBuilder b(schema);
  for (const auto& [id, name] : rows) {
    b.AppendInt(0, id);
    b.AppendBytes(1, name);
  }
  auto batch = b.Finish();
  EXPECT_TRUE(batch.ok());
  return *batch;
}

Schema KeyValueSchema() {
  return Schema({{"id", DataType::Of(TypeId::kInt64)}, {"name", DataType::Of(TypeId::kString)}});
}

Schema AllTypesSchema() {
  return Schema({{"id", DataType::Of(TypeId::kInt64)},
                 {"b", DataType::Of(TypeId::kBool)},
                 {"i2", DataType::Of(TypeId::kInt16)},
                 {"i4", DataType::Of(TypeId::kInt32)},
                 {"i8", DataType::Of(TypeId::kInt64)},
                 {"f4", DataType::Of(TypeId::kFloat32)},
                 {"f8", DataType::Of(TypeId::kFloat64)},
                 {"dec", DataType::Decimal(12, 2)},
                 {"s", DataType::Of(TypeId::kString)},
                 {"bin", DataType::Of(TypeId::kBinary)},
                 {"d", DataType::Of(TypeId::kDate)},
                 {"t", DataType::Of(TypeId::kTime)},
                 {"ts", DataType::Of(TypeId::kTimestamp)},
                 {"tz", DataType::Of(TypeId::kTimestampTz)},
                 {"iv", DataType::Of(TypeId::kInterval)},
                 {"u", DataType::Of(TypeId::kUuid)},
                 {"j", DataType::Of(TypeId::kJson)},
                 {"l", DataType::List(DataType::Of(TypeId::kString))}});
}

TEST_F(PostgresDestinationTest, RoundTripsEveryScalarType) {
  Schema schema = AllTypesSchema();
  BatchBuilder b(schema);
  // Row 1: ordinary values.
  b.AppendInt(0, 1);
  b.AppendBool(1, true);
  b.AppendInt(2, -32768);
  b.AppendInt(3, 2147483647);
  b.AppendInt(4, std::numeric_limits<int64_t>::min());
  b.AppendDouble(5, 1.5);
  b.AppendDouble(6, 0.1);
  b.AppendInt(7, -123456);
  b.AppendBytes(8, "héllo 'q' \"d\" \\ ,{}");
  b.AppendBytes(9, std::string("\0\xff"
                               "A",
                               3));
  b.AppendInt(10, 19000);
  b.AppendInt(11, 45296789000LL);
  b.AppendInt(12, 1700000000123456LL);
  b.AppendInt(13, 1700000000123456LL);
  b.AppendInterval(14, 14, 3, 4000001);
  b.AppendBytes(15, std::string("\x01\x23\x45\x67\x89\xab\xcd\xef\x00\x11\x22\x33\x44\x55\x66\x77", 16));
  b.AppendBytes(16, R"({"a":[1,2]})");
  b.AppendNull(17);  // BatchBuilder builds only null or empty lists
  // Row 2: edges: NaN and infinities, dates before 1970 and 2000.
  b.AppendInt(0, 2);
  b.AppendBool(1, false);
  b.AppendInt(2, 32767);
  b.AppendInt(3, -1);
  b.AppendInt(4, std::numeric_limits<int64_t>::max());
  b.AppendDouble(5, std::nan(""));
  b.AppendDouble(6, -std::numeric_limits<double>::infinity());
  b.AppendInt(7, 0);
  b.AppendBytes(8, "");
  b.AppendBytes(9, "");
  b.AppendInt(10, -1);
  b.AppendInt(11, 0);
  b.AppendInt(12, -1);
  b.AppendInt(13, 0);
  b.AppendInterval(14, -1, -2, -3);
  b.AppendBytes(15, std::string(16, '\xff'));
  b.AppendBytes(16, "null");
  b.AppendNull(17);
  // Row 3: NULL everywhere but the id.
  b.AppendInt(0, 3);
  for (int c = 1; c < schema.num_fields(); ++c) b.AppendNull(c);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();

  auto dest = Dest("all_types");
  ASSERT_TRUE(dest);
  Status st = Load(*dest, schema, {*batch});
  ASSERT_TRUE(st.ok()) << st.ToString();

  Rows rows = Query(
      "SET TimeZone = 'UTC'; SET IntervalStyle = 'postgres'; "
      "SELECT id::text, b::text, i2::text, i4::text, i8::text, f4::text, f8::text, dec::text, s, "
      "bin::text, d::text, t::text, ts::text, tz::text, iv::text, u::text, j::text, l::text "
      "FROM all_types ORDER BY id");
  ASSERT_EQ(rows.size(), 3u);
  using R = std::vector<std::optional<std::string>>;
  EXPECT_EQ(rows[0], (R{"1", "true", "-32768", "2147483647", "-9223372036854775808", "1.5", "0.1", "-1234.56",
                        "héllo 'q' \"d\" \\ ,{}", "\\x00ff41", "2022-01-08", "12:34:56.789",
                        "2023-11-14 22:13:20.123456", "2023-11-14 22:13:20.123456+00",
                        "1 year 2 mons 3 days 00:00:04.000001", "01234567-89ab-cdef-0011-223344556677",
                        "{\"a\": [1, 2]}", std::nullopt}));
  EXPECT_EQ(rows[1], (R{"2", "false", "32767", "-1", "9223372036854775807", "NaN", "-Infinity", "0.00", "",
                        "\\x", "1969-12-31", "00:00:00", "1969-12-31 23:59:59.999999",
                        "1970-01-01 00:00:00+00", "-1 mons -2 days -00:00:00.000003",
                        "ffffffff-ffff-ffff-ffff-ffffffffffff", "null", std::nullopt}));
  R nulls(18, std::nullopt);
  nulls[0] = "3";
  EXPECT_EQ(rows[2], nulls);
}

TEST_F(PostgresDestinationTest, RoundTripsWideDecimalsTextUuidsAndArrays) {
  __int128 max38 = 1;
  for (int i = 0; i < 38; ++i) max38 *= 10;
  max38 -= 1;
  Schema logical({{"id", DataType::Of(TypeId::kInt32)},
                  {"d10", DataType::Decimal(38, 10)},
                  {"d0", DataType::Decimal(38, 0)},
                  {"u", DataType::Of(TypeId::kUuid)},
                  {"ints", DataType::List(DataType::Of(TypeId::kInt32))},
                  {"texts", DataType::List(DataType::Of(TypeId::kString))},
                  {"docs", DataType::List(DataType::Of(TypeId::kJson))},
                  {"f4", DataType::Of(TypeId::kFloat32)}});
  auto batch = MakeBatch(
      {{"id", Fixed<int32_t>("i", {1, 2, 3, 4})},
       {"d10", Decimal128(38, 10, {max38, -max38, 1, 0})},
       {"d0",
        Decimal128(38, 0,
                   {max38, static_cast<__int128>(1) << 64, -(static_cast<__int128>(1) << 64), std::nullopt})},
       {"u", Strings({"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", std::nullopt,
                      "a0eebc999c0b4ef8bb6d6bb9bd380a12", "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13}"})},
       {"ints", List(Fixed<int32_t>("i", {1, std::nullopt, 3, 7}),
                     {std::make_pair(0, 3), std::make_pair(3, 3), std::nullopt, std::make_pair(3, 4)})},
       {"texts", List(Strings({"a", std::nullopt, "b c", "\"q\""}),
                      {std::make_pair(0, 3), std::make_pair(3, 4), std::make_pair(4, 4), std::nullopt})},
       {"docs", List(Strings({"{\"k\":1}", "[]"}),
                     {std::make_pair(0, 2), std::nullopt, std::nullopt, std::make_pair(2, 2)})},
       {"f4", Fixed<float>("f", {std::numeric_limits<float>::infinity(), -0.0f, std::nanf(""), 3.25f})}},
      &logical);
  ASSERT_TRUE(batch.ok()) << batch.status().ToString();
  auto dest = Dest("wide_values");
  ASSERT_TRUE(dest);
  Status st = Load(*dest, logical, {*batch});
  ASSERT_TRUE(st.ok()) << st.ToString();
  Rows rows = Query(
      "SELECT d10::text, d0::text, u::text, ints::text, texts::text, docs::text, f4::text "
      "FROM wide_values ORDER BY id");
  ASSERT_EQ(rows.size(), 4u);
  using R = std::vector<std::optional<std::string>>;
  EXPECT_EQ(rows[0], (R{"9999999999999999999999999999.9999999999", "99999999999999999999999999999999999999",
                        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "{1,NULL,3}", "{a,NULL,\"b c\"}",
                        "{\"{\\\"k\\\": 1}\",[]}", "Infinity"}));
  EXPECT_EQ(rows[1], (R{"-9999999999999999999999999999.9999999999", "18446744073709551616", std::nullopt,
                        "{}", "{\"\\\"q\\\"\"}", std::nullopt, "-0"}));
  EXPECT_EQ(rows[2], (R{"0.0000000001", "-18446744073709551616", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a12",
                        std::nullopt, "{}", std::nullopt, "NaN"}));
  EXPECT_EQ(rows[3], (R{"0.0000000000", std::nullopt, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a13", "{7}",
                        std::nullopt, "{}", "3.25"}));
}

TEST_F(PostgresDestinationTest, CreatesTheTableWithMappedTypes) {
  Schema schema = AllTypesSchema();
  std::vector<Field> fields = schema.fields();
  fields.push_back({"ints", DataType::List(DataType::Of(TypeId::kInt32)), true});
  fields.push_back({"required", DataType::Of(TypeId::kInt32), false});
  Schema with_more(fields);
  auto dest = Dest("created_types");
  ASSERT_TRUE(dest);
  ASSERT_TRUE(dest->Begin(with_more).ok());
  ASSERT_TRUE(dest->Commit().ok());
  Rows rows = Query(
      "SELECT attname, format_type(atttypid, atttypmod), attnotnull::text FROM pg_attribute "
      "WHERE attrelid = 'public.created_types'::regclass AND attnum > 0 ORDER BY attnum");
  std::vector<std::string> got;
  for (const auto& r : rows) got.push_back(*r[0] + " " + *r[1] + (*r[2] == "true" ? " NOT NULL" : ""));
  EXPECT_EQ(got, (std::vector<std::string>{"id bigint",
                                           "b boolean",
                                           "i2 smallint",
                                           "i4 integer",
                                           "i8 bigint",
                                           "f4 real",
                                           "f8 double precision",
                                           "dec numeric(12,2)",
                                           "s text",
                                           "bin bytea",
                                           "d date",
                                           "t time without time zone",
                                           "ts timestamp without time zone",
                                           "tz timestamp with time zone",
                                           "iv interval",
                                           "u uuid",
                                           "j jsonb",
                                           "l text[]",
                                           "ints integer[]",
                                           "required integer NOT NULL"}));
}

TEST_F(PostgresDestinationTest, AppendsIntoAnExistingTableWithWiderTypesAndDefaults) {
  Exec(
      "CREATE TABLE existing (id bigint, n numeric(10,2), s varchar(20), j json, "
      "created timestamptz NOT NULL DEFAULT now(), note text DEFAULT 'dflt', serial_id bigserial)");
  Schema schema({{"id", DataType::Of(TypeId::kInt32)},
                 {"n", DataType::Of(TypeId::kInt64)},
                 {"s", DataType::Of(TypeId::kString)},
                 {"j", DataType::Of(TypeId::kJson)}});
  BatchBuilder b(schema);
  b.AppendInt(0, 7);
  b.AppendInt(1, 12345678);
  b.AppendBytes(2, "x");
  b.AppendBytes(3, "{\"a\" : 1}");
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto dest = Dest("existing");
  ASSERT_TRUE(dest);
  Status st = Load(*dest, schema, {*batch});
  ASSERT_TRUE(st.ok()) << st.ToString();
  Rows rows = Query(
      "SELECT id::text, n::text, s, j::text, note, (created IS NOT NULL)::text, "
      "serial_id::text FROM existing");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0], (std::vector<std::optional<std::string>>{"7", "12345678.00", "x", "{\"a\" : 1}", "dflt",
                                                              "true", "1"}));
}

TEST_F(PostgresDestinationTest, AbortLeavesTheTableUnchangedInEveryMode) {
  for (auto mode : {LoadMode::kAppend, LoadMode::kReplace, LoadMode::kUpsert}) {
    SCOPED_TRACE(static_cast<int>(mode));
    Exec(
        "DROP TABLE IF EXISTS abort_me; CREATE TABLE abort_me (id bigint PRIMARY KEY, name text); "
        "INSERT INTO abort_me VALUES (1, 'one'), (2, 'two'), (3, 'three')");
    const std::string before = Scalar("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM abort_me");
    auto dest = Dest("abort_me", mode, {"id"});
    ASSERT_TRUE(dest);
    ASSERT_TRUE(dest->Begin(KeyValueSchema()).ok());
    ASSERT_TRUE(dest->Write(*KeyValueBatch({{1, "changed"}, {4, "four"}})).ok());
    dest->Abort();
    dest->Abort();  // twice is fine
    // lock_timeout: a lock left behind (TRUNCATE's) would fail this query.
    EXPECT_EQ(Scalar("SET lock_timeout = '2s'; SELECT count(*) FROM abort_me"), "3");
    EXPECT_EQ(Scalar("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM abort_me"), before);
    // Commit after Abort has nothing to commit.
    EXPECT_EQ(dest->Commit().code(), StatusCode::kInternal);
  }
}

TEST_F(PostgresDestinationTest, AbortBeforeBeginAndDestroyingAnOpenLoadAreSafe) {
  auto dest = Dest("never_begun");
  ASSERT_TRUE(dest);
  dest->Abort();
  {
    auto open = Dest("abandoned");
    ASSERT_TRUE(open);
    ASSERT_TRUE(open->Begin(KeyValueSchema()).ok());
    ASSERT_TRUE(open->Write(*KeyValueBatch({{1, "a"}})).ok());
  }  // destroyed mid-load: rolled back, the table it created is gone
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_class WHERE relname = 'abandoned'"), "0");
}

TEST_F(PostgresDestinationTest, AppendedRowsAreInvisibleUntilCommit) {
  Exec("CREATE TABLE visible (id bigint, name text); INSERT INTO visible VALUES (0, 'zero')");
  auto dest = Dest("visible");
  ASSERT_TRUE(dest);
  ASSERT_TRUE(dest->Begin(KeyValueSchema()).ok());
  ASSERT_TRUE(dest->Write(*KeyValueBatch({{1, "a"}, {2, "b"}})).ok());
  EXPECT_EQ(Scalar("SET lock_timeout = '2s'; SELECT count(*) FROM visible"), "1");
  ASSERT_TRUE(dest->Commit().ok());
  EXPECT_EQ(Scalar("SELECT count(*) FROM visible"), "3");
  EXPECT_EQ(dest->rows_written(), 2);
}

TEST_F(PostgresDestinationTest, ReplaceSwapsTheContentsAtCommitAndReadersWait) {
  Exec("CREATE TABLE replaced (id bigint, name text); INSERT INTO replaced VALUES (1, 'old'), (2, 'old')");
  auto dest = Dest("replaced", LoadMode::kReplace);
  ASSERT_TRUE(dest);
  ASSERT_TRUE(dest->Begin(KeyValueSchema()).ok());
  ASSERT_TRUE(dest->Write(*KeyValueBatch({{5, "new"}})).ok());
  // Readers neither see an empty table nor the new rows: they wait.
  auto waiting = server_->Query(kDb, "SET lock_timeout = '200ms'; SELECT count(*) FROM replaced");
  ASSERT_FALSE(waiting.ok());
  EXPECT_NE(waiting.status().message().find("55P03"), std::string::npos) << waiting.status().message();
  ASSERT_TRUE(dest->Commit().ok());
  EXPECT_EQ(Scalar("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM replaced"), "5=new");
}

TEST_F(PostgresDestinationTest, UpsertLastRowForAKeyWins) {
  auto dest = Dest("upserted", LoadMode::kUpsert, {"id"});
  ASSERT_TRUE(dest);
  Status st = Load(*dest, KeyValueSchema(), {KeyValueBatch({{1, "a"}, {2, "b"}})});
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(
      Scalar("SELECT count(*) FROM pg_constraint WHERE conrelid = 'upserted'::regclass AND contype = 'p'"),
      "1");
  st = Load(*dest, KeyValueSchema(),
            {KeyValueBatch({{1, "x"}, {3, "c"}, {1, "y"}}), KeyValueBatch({{3, "z"}, {4, "d"}})});
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Scalar("SELECT string_agg(id || '=' || name, ',' ORDER BY id) FROM upserted"), "1=y,2=b,3=z,4=d");
}

TEST_F(PostgresDestinationTest, UpsertWithOnlyKeyColumnsIgnoresExistingRows) {
  Exec(
      "CREATE TABLE key_only (id bigint, other text, PRIMARY KEY (id)); INSERT INTO key_only VALUES (1, "
      "'keep')");
  Schema schema({{"id", DataType::Of(TypeId::kInt64)}});
  BatchBuilder b(schema);
  b.AppendInt(0, 1);
  b.AppendInt(0, 2);
  b.AppendInt(0, 2);
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto dest = Dest("key_only", LoadMode::kUpsert, {"id"});
  ASSERT_TRUE(dest);
  Status st = Load(*dest, schema, {*batch});
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Scalar("SELECT string_agg(id || '=' || coalesce(other, '-'), ',' ORDER BY id) FROM key_only"),
            "1=keep,2=-");
}

TEST_F(PostgresDestinationTest, UpsertWithoutAUniqueConstraintAsksForOne) {
  Exec("CREATE TABLE no_key (id bigint, name text)");
  auto dest = Dest("no_key", LoadMode::kUpsert, {"id"});
  ASSERT_TRUE(dest);
  Status st = dest->Begin(KeyValueSchema());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kSchemaMismatch);
  EXPECT_NE(st.message().find("postgres table public.no_key"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("unique constraint"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("ADD PRIMARY KEY (\"id\")"), std::string::npos) << st.message();
}

TEST_F(PostgresDestinationTest, UpsertKeyMustBeAResultColumn) {
  auto dest = Dest("bad_key", LoadMode::kUpsert, {"missing"});
  ASSERT_TRUE(dest);
  Status st = dest->Begin(KeyValueSchema());
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("\"missing\""), std::string::npos) << st.message();
  PostgresDestinationOptions options{Url(), "t", LoadMode::kUpsert, {}, true};
  EXPECT_EQ(PostgresDestination::Make(options).status().code(), StatusCode::kInvalidArgument);
}

TEST_F(PostgresDestinationTest, SchemaMismatchNamesTableColumnAndBothTypes) {
  Exec("CREATE TABLE mismatch (id bigint, amount integer)");
  Schema schema({{"id", DataType::Of(TypeId::kInt64)}, {"amount", DataType::Of(TypeId::kString)}});
  auto dest = Dest("mismatch");
  ASSERT_TRUE(dest);
  Status st = dest->Begin(schema);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kSchemaMismatch);
  for (const char* part : {"public.mismatch", "\"amount\"", "integer", "VARCHAR"}) {
    EXPECT_NE(st.message().find(part), std::string::npos) << part << " not in: " << st.message();
  }
  Schema extra({{"id", DataType::Of(TypeId::kInt64)}, {"extra", DataType::Of(TypeId::kInt64)}});
  st = dest->Begin(extra);
  EXPECT_EQ(st.code(), StatusCode::kSchemaMismatch);
  EXPECT_NE(st.message().find("has no column \"extra\""), std::string::npos) << st.message();
  Schema tz({{"id", DataType::Of(TypeId::kTimestampTz)}});
  EXPECT_EQ(dest->Begin(tz).code(), StatusCode::kSchemaMismatch);
}

TEST_F(PostgresDestinationTest, MissingRequiredColumnIsASchemaMismatch) {
  Exec("CREATE TABLE required_col (id bigint, must text NOT NULL)");
  Schema schema({{"id", DataType::Of(TypeId::kInt64)}});
  auto dest = Dest("required_col");
  ASSERT_TRUE(dest);
  Status st = dest->Begin(schema);
  EXPECT_EQ(st.code(), StatusCode::kSchemaMismatch);
  EXPECT_NE(st.message().find("\"must\""), std::string::npos) << st.message();
}

TEST_F(PostgresDestinationTest, ValueTooLongForItsColumnIsFoundBeforeItIsSent) {
  Exec("CREATE TABLE short_text (id bigint, name varchar(3))");
  auto dest = Dest("short_text");
  ASSERT_TRUE(dest);
  Status st = Load(*dest, KeyValueSchema(), {KeyValueBatch({{1, "abc"}, {2, "toolong"}})});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kDataError) << st.ToString();
  EXPECT_FALSE(st.retryable());
  for (const char* part :
       {"postgres table public.short_text", "column \"name\", row 2 of the result", "more than the column's 3"}) {
    EXPECT_NE(st.message().find(part), std::string::npos) << part << " not in: " << st.message();
  }
  EXPECT_EQ(Scalar("SELECT count(*) FROM short_text"), "0");
  auto refused = dest->TakeRejectedRows();
  ASSERT_EQ(refused.size(), 1u);
  EXPECT_EQ(refused[0].value, "toolong");
}

TEST_F(PostgresDestinationTest, ServerSideRefusalNamesTheRowOfTheResultNotALine) {
  Exec("CREATE TABLE checked (id bigint CHECK (id < 2), name text)");
  auto dest = Dest("checked");
  ASSERT_TRUE(dest);
  Status st = Load(*dest, KeyValueSchema(), {KeyValueBatch({{1, "a"}, {2, "b"}})});
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kDataError) << st.ToString();
  for (const char* part : {"postgres table public.checked", "23514", "COPY checked: row 2 of the result"}) {
    EXPECT_NE(st.message().find(part), std::string::npos) << part << " not in: " << st.message();
  }
  EXPECT_EQ(st.message().find("line 2"), std::string::npos) << st.message();
  EXPECT_EQ(Scalar("SELECT count(*) FROM checked"), "0");
}

TEST_F(PostgresDestinationTest, WithSkipBadRowsTheRowIsLeftOutAndKept) {
  Exec("CREATE TABLE skipped_text (id bigint, name varchar(3))");
  auto dest = Dest("skipped_text");
  ASSERT_TRUE(dest);
  dest->SetSkipBadRows(true);
  Status st = Load(*dest, KeyValueSchema(), {KeyValueBatch({{1, "abc"}, {2, "toolong"}, {3, std::string("n\0l", 3)}})});
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Scalar("SELECT string_agg(id::text || name, ',') FROM skipped_text"), "1abc");
  auto refused = dest->TakeRejectedRows();
  ASSERT_EQ(refused.size(), 2u);
  EXPECT_EQ(refused[0].result_row, 2);
  EXPECT_EQ(refused[1].result_row, 3);
  EXPECT_NE(refused[1].reason.find("NUL"), std::string::npos) << refused[1].reason;
}

TEST_F(PostgresDestinationTest, MissingTableWithoutCreateTableIsNotFound) {
  auto dest = Dest("absent", LoadMode::kAppend, {}, /*create=*/false);
  ASSERT_TRUE(dest);
  Status st = dest->Begin(KeyValueSchema());
  EXPECT_EQ(st.code(), StatusCode::kNotFound);
  EXPECT_NE(st.message().find("public.absent"), std::string::npos) << st.message();
}

TEST_F(PostgresDestinationTest, QuotesEveryIdentifier) {
  Exec("CREATE SCHEMA \"Odd Schema\"");
  Schema schema({{"Id", DataType::Of(TypeId::kInt64)}, {"we\"ird col", DataType::Of(TypeId::kString)}});
  BatchBuilder b(schema);
  b.AppendInt(0, 1);
  b.AppendBytes(1, "v");
  auto batch = b.Finish();
  ASSERT_TRUE(batch.ok());
  auto dest = Dest("\"Odd Schema\".\"Tab.le\"", LoadMode::kUpsert, {"Id"});
  ASSERT_TRUE(dest);
  EXPECT_EQ(dest->Describe(), "postgres table \"Odd Schema\".\"Tab.le\"");
  Status st = Load(*dest, schema, {*batch});
  ASSERT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(Scalar("SELECT \"we\"\"ird col\" FROM \"Odd Schema\".\"Tab.le\" WHERE \"Id\" = 1"), "v");
}

TEST_F(PostgresDestinationTest, EncodedBatchesFromWorkerThreadsLoadInOrder) {
  auto dest = Dest("encoded");
  ASSERT_TRUE(dest);
  ASSERT_TRUE(dest->SupportsEncode());
  ASSERT_TRUE(dest->Begin(KeyValueSchema()).ok());
  std::vector<std::shared_ptr<Batch>> batches;
  for (int k = 0; k < 8; ++k) {
    std::vector<std::pair<int64_t, std::string>> rows;
    for (int i = 0; i < 1000; ++i) rows.emplace_back(k * 1000 + i, "row " + std::to_string(k * 1000 + i));
    batches.push_back(KeyValueBatch(rows));
  }
  std::vector<std::future<Result<std::string>>> encoded;
  for (const auto& batch : batches) {
    encoded.push_back(std::async(std::launch::async, [&dest, batch] { return dest->Encode(*batch); }));
  }
  for (size_t k = 0; k < encoded.size(); ++k) {
    auto bytes = encoded[k].get();
    ASSERT_TRUE(bytes.ok()) << bytes.status().ToString();
    ASSERT_TRUE(dest->WriteEncoded(std::move(bytes).value(), batches[k]->num_rows()).ok());
  }
  ASSERT_TRUE(dest->Commit().ok());
  EXPECT_EQ(Scalar("SELECT count(*) || ' ' || sum(id) || ' ' || max(name) FROM encoded"),
            "8000 31996000 row 999");
}

TEST_F(PostgresDestinationTest, ConnectionFailureIsRetryableAndHidesThePassword) {
  PostgresDestinationOptions options;
  options.url = "postgresql://postgres:s3cretPassw0rd@127.0.0.1:1/nowhere?connect_timeout=3";
  options.table = "t";
  auto dest = PostgresDestination::Make(options);
  ASSERT_TRUE(dest.ok());
  Status st = (*dest)->Begin(KeyValueSchema());
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.code(), StatusCode::kUnavailable);
  EXPECT_TRUE(st.retryable());
  EXPECT_NE(st.message().find("127.0.0.1:1/nowhere"), std::string::npos) << st.message();
  EXPECT_EQ(st.message().find("s3cretPassw0rd"), std::string::npos) << st.message();
}

TEST_F(PostgresDestinationTest, ServerErrorsMapToStatusCodes) {
  auto conn = PgConnection::Connect(Url());
  ASSERT_TRUE(conn.ok()) << conn.status().ToString();
  Status st = (*conn)->Exec("SELECT * FROM no_such_table");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("42P01"), std::string::npos) << st.message();
  st = (*conn)->Exec("SELECT 1/0");
  EXPECT_EQ(st.code(), StatusCode::kDataError);
  auto rows = (*conn)->Query("SELECT $1::text || $2::text, $3::text IS NULL",
                             {"it's ", "a \"test\"; DROP TABLE x", std::nullopt});
  ASSERT_TRUE(rows.ok()) << rows.status().ToString();
  EXPECT_EQ(*(*rows)[0][0], "it's a \"test\"; DROP TABLE x");
  EXPECT_EQ(*(*rows)[0][1], "t");
  auto literal = (*conn)->Query("SELECT " + PgConnection::QuoteLiteral("a'b\\c"));
  ASSERT_TRUE(literal.ok()) << literal.status().ToString();
  EXPECT_EQ(*(*literal)[0][0], "a'b\\c");
  EXPECT_EQ(PgConnection::QuoteIdent("a\"b"), "\"a\"\"b\"");
}

TEST(PgTableName, SplitsOnTheFirstUnquotedDotAndFoldsUnquotedParts) {
  auto parse = [](const std::string& s) {
    auto n = ParsePgTableName(s);
    return n.ok() ? n->schema + "|" + n->table : "error: " + n.status().message();
  };
  EXPECT_EQ(parse("sales"), "public|sales");
  EXPECT_EQ(parse("Mart.Sales"), "mart|sales");
  EXPECT_EQ(parse("\"Mart\".\"Sales.2024\""), "Mart|Sales.2024");
  EXPECT_EQ(parse("\"a\"\"b\".c"), "a\"b|c");
  EXPECT_EQ(parse(" s . t "), "s|t");
  EXPECT_NE(parse("a.b.c").find("error"), std::string::npos);
  EXPECT_NE(parse("\"open").find("error"), std::string::npos);
  EXPECT_NE(parse(".t").find("error"), std::string::npos);
  EXPECT_EQ((PgTableName{"public", "Sales"}.Display()), "public.\"Sales\"");
}

TEST(LoadMode, ParsesTheConfigSpelling) {
  EXPECT_EQ(ParseLoadMode("upsert").ValueOr(LoadMode::kAppend), LoadMode::kUpsert);
  EXPECT_EQ(ParseLoadMode("merge").status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice
