// Round trips: every supported type, from CSV, Parquet and JSON-lines files,
// loaded by sluice into PostgreSQL and compared row for row (each row's text
// form, EXCEPT ALL both ways) with what PostgreSQL's own COPY makes of the
// same CSV, or with what DuckDB itself reads from the same Parquet/JSONL file.
#include <functional>
#include <string>
#include <vector>

#include "e2e/e2e_support.h"

namespace sluice::e2e {
namespace {

// ---------------------------------------------------------------------------
// CSV

const char* const kCsvColumns =
    R"(columns = { id = "BIGINT", b = "BOOLEAN", i2 = "SMALLINT", i4 = "INTEGER", i8 = "BIGINT", )"
    R"~(f4 = "REAL", f8 = "DOUBLE", n38 = "DECIMAL(38,10)", n12 = "DECIMAL(12,2)", t = "VARCHAR", )~"
    R"(d = "DATE", tm = "TIME", ts = "TIMESTAMP", tstz = "TIMESTAMPTZ", iv = "INTERVAL", u = "UUID", )"
    R"(j = "JSON" })";

const char* const kCsvPgDdl =
    "(id bigint, b boolean, i2 smallint, i4 integer, i8 bigint, f4 real, f8 double precision, "
    "n38 numeric(38,10), n12 numeric(12,2), t text, d date, tm time, ts timestamp, tstz timestamptz, "
    "iv interval, u uuid, j jsonb)";

const std::vector<std::pair<std::string, std::string>> kCsvPgTypes = {
    {"id", "bigint"},
    {"b", "boolean"},
    {"i2", "smallint"},
    {"i4", "integer"},
    {"i8", "bigint"},
    {"f4", "real"},
    {"f8", "double precision"},
    {"n38", "numeric(38,10)"},
    {"n12", "numeric(12,2)"},
    {"t", "text"},
    {"d", "date"},
    {"tm", "time without time zone"},
    {"ts", "timestamp without time zone"},
    {"tstz", "timestamp with time zone"},
    {"iv", "interval"},
    {"u", "uuid"},
    {"j", "jsonb"},
};

/// A CSV record of the 17 columns; fields are already CSV-quoted.
std::string Record(const std::vector<std::string>& fields) {
  EXPECT_EQ(fields.size(), 17u) << "fixture bug: record with " << fields.size() << " fields";
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) out += (i ? "," : "") + fields[i];
  return out;
}

/// A record with only id and t set.
std::string TextOnly(const std::string& id, const std::string& t) {
  std::vector<std::string> f(17);
  f[0] = id;
  f[9] = t;
  return Record(f);
}

/// Every type with its edge values; `eol` ends each record.
std::string AllTypesCsv(const std::string& eol) {
  std::vector<std::string> rows = {
      "id,b,i2,i4,i8,f4,f8,n38,n12,t,d,tm,ts,tstz,iv,u,j",
      Record({"1", "true", "-32768", "-2147483648", "-9223372036854775808", "NaN", "NaN",
              "-9999999999999999999999999999.9999999999", "-9999999999.99", R"("")", "0001-01-01", "00:00:00",
              "0001-01-01 00:00:00", "0001-01-01 00:00:00+00", "-1 day", "00000000-0000-0000-0000-000000000000", "{}"}),
      Record({"2", "false", "32767", "2147483647", "9223372036854775807", "Infinity", "Infinity",
              "9999999999999999999999999999.9999999999", "9999999999.99", R"("say ""hi"", then leave")", "9999-12-31",
              "23:59:59.999999", "9999-12-31 23:59:59.999999", "2024-01-02 03:04:05.123456+02",
              "1 year 2 months 3 days 04:05:06.789", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
              R"("{""a"": [1, 2.5, null], ""b"": {""c"": ""d""}}")"}),
      Record({"3", "", "0", "0", "0", "-Infinity", "-Infinity", "0.0000000001", "0.01", "\"line1\nline2\"",
              "1970-01-01", "12:34:56.789", "1969-12-31 23:59:59.999999", "1969-12-31 23:59:59.999999+00",
              "00:00:00.000001", "0123abcd-4567-89ef-0123-456789abcdef", R"("[1, ""two"", true, null]")"}),
      Record({"4", "true", "1", "1", "1", "0.1", "0.1", "-0.0000000001", "-0.01", R"("embedded, comma")", "2024-02-29",
              "00:00:00.000001", "2024-02-29 12:00:00.5", "2024-06-30 23:59:59.999999-07", "-2 years -3 months",
              "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", R"("""just a string""")"}),
      Record({"5", "false", "-1", "-1", "-1", "-0", "-0", "12345678901234567890.1234567890", "100",
              "\"Grüße, 日本語 — ünïcödé\"", "1999-12-31", "01:02:03", "2000-01-01 00:00:00",
              "2000-01-01 00:00:00+05:30", "36:00:00", "123e4567-e89b-12d3-a456-426614174000",
              R"("{""emoji"": ""🎉"", ""esc"": ""tab\there""}")"}),
      Record({"6", "true", "12345", "123456789", "1234567890123", "3.4028235e38", "1.7976931348623157e308", "0", "0.00",
              "👍🏽🎉 emoji only", "2000-02-29", "23:00:00", "2262-04-11 23:47:16.854775",
              "2262-04-11 23:47:16.854775+00", "1 day -01:00:00", "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
              R"("{""n"": 1.0e2, ""s"": ""x,y""}")"}),
      Record(std::vector<std::string>{"7", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", ""}),
      Record({"8", "false", "-12345", "-123456789", "-1234567890123", "1.17549435e-38", "5e-324",
              "-12345678901234567890.1234567890", "-100", "\"crlf\r\ninside\"", "1582-10-10", "06:07:08.5",
              "1900-01-01 00:00:00.000001", "1900-01-01 00:00:00+00", "-00:00:00.000001",
              "ffffffff-0000-ffff-0000-ffffffffffff", "null"}),
      Record({"9", "true", "2", "2", "2", "-1.5", "1e-7", "1.5", "1.5", R"(" padded ")", "2038-01-19", "03:14:07",
              "2038-01-19 03:14:07", "2038-01-19 03:14:07+00", "1 month", "01234567-89ab-cdef-0123-456789abcdef",
              R"("[]")"}),
      Record({"10", "false", "3", "3", "3", "-3.4028235e38", "-1.7976931348623157e308", "-1.5", "-1.5", "NULL",
              "2000-01-01", "00:00:01", "2000-01-01 00:00:00.000001", "2000-01-01 00:00:00.000001+00", "00:00:00",
              "00000000-0000-0000-0000-000000000001", "1"}),
      Record({"11", "true", "4", "4", "4", "", "123456789.123456789", "", "", R"(C:\path\to\file)", "", "", "", "", "",
              "", R"("""\u00e9 escaped""")"}),
      TextOnly("12", R"("""")"),
      TextOnly("13", "\"multi\n\nline with a blank line\""),
      TextOnly("14", "'single quotes' and $$dollars$$"),
      TextOnly("15", R"("\N")"),
  };
  std::string out;
  for (const auto& r : rows) out += r + eol;
  return out;
}

constexpr int64_t kAllTypesCsvRows = 15;

class CsvToPostgres : public PgTest {
 protected:
  /// Loads csv_path with PostgreSQL's COPY into `ref` and with sluice into
  /// `loaded`, then compares them.
  void LoadBothAndCompare(const std::string& csv_path, int64_t expected_rows) {
    Exec(std::string("CREATE TABLE ref ") + kCsvPgDdl);
    std::string copy_error = PgCopyFromFile(url_, "COPY ref FROM STDIN (FORMAT csv, HEADER)", csv_path);
    ASSERT_EQ(copy_error, "") << "PostgreSQL's COPY rejected the fixture";
    ASSERT_EQ(Count("ref"), expected_rows);

    std::string toml = "[source]\ntype = \"files\"\npath = '" + csv_path + "'\nformat = \"csv\"\nheader = true\n" +
                       kCsvColumns + "\n" + PgDestination(url_, "public.loaded") + EngineSection();
    CliResult r = RunPipeline(dir_, toml);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);

    EXPECT_EQ(PgColumnTypes(*pg_, db_, "public.loaded"), kCsvPgTypes);
    EXPECT_EQ(Count("loaded"), expected_rows);
    EXPECT_EQ(PgTableDiff(*pg_, db_, "loaded", "ref"), "");
    // Spelled out, because they are the classic confusions.
    EXPECT_EQ(Scalar("SELECT t IS NULL FROM loaded WHERE id = 7"), "t");
    EXPECT_EQ(Scalar("SELECT t = '' FROM loaded WHERE id = 1"), "t");
    EXPECT_EQ(Scalar("SELECT t FROM loaded WHERE id = 3"), "line1\nline2");
    EXPECT_EQ(Scalar("SELECT t FROM loaded WHERE id = 8"), "crlf\r\ninside");
    EXPECT_EQ(Scalar("SELECT t FROM loaded WHERE id = 12"), "\"");
    EXPECT_EQ(Scalar("SELECT f8::text FROM loaded WHERE id = 1"), "NaN");
    EXPECT_EQ(Scalar("SELECT n38::text FROM loaded WHERE id = 2"), "9999999999999999999999999999.9999999999");
    EXPECT_EQ(Scalar("SELECT ts::text FROM loaded WHERE id = 3"), "1969-12-31 23:59:59.999999");
    EXPECT_EQ(Scalar("SELECT iv::text FROM loaded WHERE id = 2"), "1 year 2 mons 3 days 04:05:06.789");
    EXPECT_EQ(Scalar("SELECT u::text FROM loaded WHERE id = 2"), "ffffffff-ffff-ffff-ffff-ffffffffffff");
  }
};

TEST_F(CsvToPostgres, AllTypesMatchPostgresCopyOfTheSameFile) {
  std::string csv = dir_.Write("all_types.csv", AllTypesCsv("\n"));
  LoadBothAndCompare(csv, kAllTypesCsvRows);
}

TEST_F(CsvToPostgres, CrlfLineEndingsMatchPostgresCopyOfTheSameFile) {
  std::string csv = dir_.Write("all_types_crlf.csv", AllTypesCsv("\r\n"));
  LoadBothAndCompare(csv, kAllTypesCsvRows);
}

TEST_F(CsvToPostgres, DecimalsWithMoreDigitsThanTheScaleRoundLikePostgres) {
  std::string csv = dir_.Write("round.csv",
                               "id,n12,n38\n"
                               "1,2.345,0.00000000005\n"
                               "2,-2.345,-0.00000000005\n"
                               "3,0.005,1.00000000015\n"
                               "4,-0.005,-1.00000000015\n"
                               "5,1.994999,0.12345678904\n"
                               "6,9999999999.994,99.99999999994\n"
                               "7,0.004999,-0.00000000004\n");
  Exec("CREATE TABLE ref (id bigint, n12 numeric(12,2), n38 numeric(38,10))");
  ASSERT_EQ(PgCopyFromFile(url_, "COPY ref FROM STDIN (FORMAT csv, HEADER)", csv), "");
  std::string toml = "[source]\ntype = \"files\"\npath = '" + csv +
                     "'\nheader = true\ncolumns = { id = \"BIGINT\", n12 = \"DECIMAL(12,2)\", n38 = "
                     "\"DECIMAL(38,10)\" }\n" +
                     PgDestination(url_, "loaded") + EngineSection();
  CliResult r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("loaded"), 7);
  EXPECT_EQ(PgTableDiff(*pg_, db_, "loaded", "ref"), "");
}

TEST_F(CsvToPostgres, InferredTypesCreateMatchingPostgresColumns) {
  std::string csv = dir_.Write("inferred.csv",
                               "id,price,flag,day,at,clock,name\n"
                               "1,12.50,true,2024-01-02,2024-01-02 03:04:05,12:34:56,alpha\n"
                               "2,-0.25,false,1999-12-31,1999-12-31 23:59:59.5,00:00:01,beta gamma\n"
                               "9000000000,1000000.75,true,2000-02-29,2000-02-29 00:00:00,23:59:59,\n");
  std::string toml =
      "[source]\ntype = \"files\"\npath = '" + csv + "'\n" + PgDestination(url_, "inferred") + EngineSection();
  CliResult r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  auto types = PgColumnTypes(*pg_, db_, "inferred");
  ASSERT_EQ(types.size(), 7u);
  EXPECT_EQ(types[0], std::make_pair(std::string("id"), std::string("bigint")));
  // A decimal point in CSV may become an exact numeric or a double; either
  // way it must be a number, not text.
  EXPECT_TRUE(types[1].second == "double precision" || types[1].second.starts_with("numeric"))
      << "price became " << types[1].second;
  EXPECT_EQ(types[2], std::make_pair(std::string("flag"), std::string("boolean")));
  EXPECT_EQ(types[3], std::make_pair(std::string("day"), std::string("date")));
  EXPECT_EQ(types[4], std::make_pair(std::string("at"), std::string("timestamp without time zone")));
  EXPECT_EQ(types[5], std::make_pair(std::string("clock"), std::string("time without time zone")));
  EXPECT_EQ(types[6], std::make_pair(std::string("name"), std::string("text")));

  EXPECT_EQ(Count("inferred"), 3);
  EXPECT_EQ(Scalar("SELECT sum(id)::text FROM inferred"), "9000000003");
  EXPECT_EQ(Scalar("SELECT sum(price)::numeric(20,2)::text FROM inferred"), "1000013.00");
  EXPECT_EQ(Scalar("SELECT at::text FROM inferred WHERE id = 2"), "1999-12-31 23:59:59.5");
  EXPECT_EQ(Scalar("SELECT (name IS NULL)::text FROM inferred WHERE id = 9000000000"), "true");
}

// ---------------------------------------------------------------------------
// Parquet and JSON lines: the reference is what DuckDB reads from the file,
// (Parquet has no negative intervals and stores them in milliseconds.)
// exported as a CSV PostgreSQL can COPY (bytea as \x hex, lists as JSON
// arrays that are turned back into PostgreSQL arrays).

/// The SELECT list that turns DuckDB values into CSV text PostgreSQL parses.
std::string ExportList(bool with_bin) {
  std::string out = "id, b, i2, i4, i8, f4, f8, n38, n12, t, ";
  if (with_bin) out += "CASE WHEN bin IS NULL THEN NULL ELSE '\\x' || lower(hex(bin)) END AS bin, ";
  out += "d, tm, ts, tstz, iv, u, j, to_json(li) AS li, to_json(lt) AS lt";
  return out;
}

/// Builds the PostgreSQL table `ref` from the exported CSV.
void BuildReference(PgTest* t, const std::string& url, const std::string& csv, bool with_bin,
                    const std::function<void(const std::string&)>& exec) {
  (void)t;
  exec(std::string("CREATE TABLE ref_stage (id bigint, b boolean, i2 smallint, i4 integer, i8 bigint, f4 real, "
                   "f8 double precision, n38 numeric(38,10), n12 numeric(12,2), t text, ") +
       (with_bin ? "bin bytea, " : "") +
       "d date, tm time, ts timestamp, tstz timestamptz, iv interval, u uuid, j jsonb, li jsonb, lt jsonb)");
  ASSERT_EQ(PgCopyFromFile(url, "COPY ref_stage FROM STDIN (FORMAT csv, HEADER)", csv), "");
  exec(std::string("CREATE TABLE ref AS SELECT id, b, i2, i4, i8, f4, f8, n38, n12, t, ") + (with_bin ? "bin, " : "") +
       "d, tm, ts, tstz, iv, u, j, "
       "CASE WHEN li IS NULL THEN NULL ELSE ARRAY(SELECT e::integer FROM jsonb_array_elements_text(li) "
       "  WITH ORDINALITY AS x(e, o) ORDER BY o) END AS li, "
       "CASE WHEN lt IS NULL THEN NULL ELSE ARRAY(SELECT e::text FROM jsonb_array_elements_text(lt) "
       "  WITH ORDINALITY AS x(e, o) ORDER BY o) END AS lt "
       "FROM ref_stage");
}

std::vector<std::pair<std::string, std::string>> NestedPgTypes(bool with_bin) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& p : kCsvPgTypes) {
    out.push_back(p);
    if (with_bin && p.first == "t") out.emplace_back("bin", "bytea");
  }
  out.emplace_back("li", "integer[]");
  out.emplace_back("lt", "text[]");
  return out;
}

const char* const kParquetSourceTable =
    "CREATE TABLE src (id BIGINT, b BOOLEAN, i2 SMALLINT, i4 INTEGER, i8 BIGINT, f4 FLOAT, f8 DOUBLE, "
    "n38 DECIMAL(38,10), n12 DECIMAL(12,2), t VARCHAR, bin BLOB, d DATE, tm TIME, ts TIMESTAMP, "
    "tstz TIMESTAMPTZ, iv INTERVAL, u UUID, j JSON, li INTEGER[], lt VARCHAR[])";

const char* const kParquetRows = R"SQL(INSERT INTO src VALUES
(1, true, -32768, -2147483648, -9223372036854775808, 'NaN', 'NaN',
 '-9999999999999999999999999999.9999999999', -9999999999.99, '', '\x00\xFF\x10'::BLOB,
 '0001-01-01', '00:00:00', '0001-01-01 00:00:00', '0001-01-01 00:00:00+00', '1 day',
 '00000000-0000-0000-0000-000000000000', '{}', [1, NULL, 3],
 ['a', NULL, 'b,c', 'q"uote', '', 'back\slash', '{braces}', 'x''y']),
(2, false, 32767, 2147483647, 9223372036854775807, 'Infinity', 'Infinity',
 '9999999999999999999999999999.9999999999', 9999999999.99, 'say "hi", then leave', ''::BLOB,
 '9999-12-31', '23:59:59.999999', '9999-12-31 23:59:59.999999', '2024-01-02 03:04:05.123456+02',
 '1 year 2 months 3 days 04:05:06.789', 'ffffffff-ffff-ffff-ffff-ffffffffffff',
 '{"a": [1, 2.5, null], "b": {"c": "d"}}', [], []),
(3, NULL, 0, 0, 0, '-Infinity', '-Infinity', '0.0000000001', 0.01, 'line1' || chr(10) || 'line2' || chr(13) || chr(10),
 'abc\x00def'::BLOB, '1970-01-01', '12:34:56.789', '1969-12-31 23:59:59.999999',
 '1969-12-31 23:59:59.999999+00', '00:00:00.001', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
 '[1, "two", true, null]', [-2147483648, 2147483647], ['👍🏽🎉', 'Grüße, 日本語']),
(4, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(5, true, 1, 1, 1, 0.1, 0.1, '-0.0000000001', -0.01, 'NULL', '\xDE\xAD\xBE\xEF'::BLOB, '2024-02-29',
 '00:00:00.000001', '2024-02-29 12:00:00.5', '2024-06-30 23:59:59.999999-07', '2 years 3 months',
 '0123abcd-4567-89ef-0123-456789abcdef', '"just a string"', [NULL], [NULL, 'NULL', ' sp ', '\N']),
(6, false, -1, -1, -1, '3.4028235e38', '1.7976931348623157e308', '12345678901234567890.1234567890', 100,
 ' padded ', '\x00'::BLOB, '2000-02-29', '01:02:03', '2000-01-01 00:00:00', '2000-01-01 00:00:00+05:30',
 '36:00:00', '123e4567-e89b-12d3-a456-426614174000', 'null', [0], ['{"json": "in text"}']),
(7, false, 2, 2, 2, '1.17549435e-38', '5e-324', '-12345678901234567890.1234567890', 0, 'C:\path\to\file',
 NULL, '1582-10-10', '06:07:08.5', '1900-01-01 00:00:00.000001', '1900-01-01 00:00:00+00', '1 month',
 '6ba7b810-9dad-11d1-80b4-00c04fd430c8', '[]', NULL, NULL)
)SQL";

constexpr int64_t kParquetRowCount = 7;

class ParquetToPostgres : public PgTest {};

TEST_F(ParquetToPostgres, AllTypesMatchWhatDuckDbReadsFromTheFile) {
  std::string parquet = dir_.Path("all_types.parquet");
  std::string ref_csv = dir_.Path("ref.csv");
  {
    auto duck = Duck();
    ASSERT_NE(duck, nullptr);
    DuckExec(*duck, kParquetSourceTable);
    DuckExec(*duck, kParquetRows);
    DuckExec(*duck, "COPY src TO " + engine::QuoteLiteral(parquet) + " (FORMAT parquet)");
    DuckExec(*duck, "COPY (SELECT " + ExportList(true) + " FROM read_parquet(" + engine::QuoteLiteral(parquet) +
                        ")) TO " + engine::QuoteLiteral(ref_csv) + " (FORMAT csv, HEADER)");
    ASSERT_EQ(DuckScalar(*duck, "SELECT count(*) FROM read_parquet(" + engine::QuoteLiteral(parquet) + ")"),
              std::to_string(kParquetRowCount));
  }
  BuildReference(this, url_, ref_csv, true, [&](const std::string& sql) { Exec(sql); });
  ASSERT_EQ(Count("ref"), kParquetRowCount);

  std::string toml =
      "[source]\ntype = \"files\"\npath = '" + parquet + "'\n" + PgDestination(url_, "public.loaded") + EngineSection();
  CliResult r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);

  EXPECT_EQ(PgColumnTypes(*pg_, db_, "public.loaded"), NestedPgTypes(true));
  EXPECT_EQ(Count("loaded"), kParquetRowCount);
  EXPECT_EQ(PgTableDiff(*pg_, db_, "loaded", "ref"), "");
  EXPECT_EQ(Scalar("SELECT encode(bin, 'hex') FROM loaded WHERE id = 3"), "61626300646566");
  EXPECT_EQ(Scalar("SELECT (bin = ''::bytea)::text FROM loaded WHERE id = 2"), "true");
  EXPECT_EQ(Scalar("SELECT li::text FROM loaded WHERE id = 1"), "{1,NULL,3}");
  EXPECT_EQ(Scalar("SELECT cardinality(lt)::text FROM loaded WHERE id = 2"), "0");
  EXPECT_EQ(Scalar("SELECT (lt IS NULL)::text FROM loaded WHERE id = 7"), "true");
  EXPECT_EQ(Scalar("SELECT lt[4] FROM loaded WHERE id = 1"), "q\"uote");
  EXPECT_EQ(Scalar("SELECT (lt[2] IS NULL)::text FROM loaded WHERE id = 1"), "true");
  EXPECT_EQ(Scalar("SELECT lt[4] FROM loaded WHERE id = 5"), "\\N");
}

// JSON lines: a hand-written fixture (tests/data/all_types.jsonl) with
// explicit column types.

const char* const kJsonlColumns =
    R"(columns = { id = "BIGINT", b = "BOOLEAN", i2 = "SMALLINT", i4 = "INTEGER", i8 = "BIGINT", )"
    R"~(f4 = "REAL", f8 = "DOUBLE", n38 = "DECIMAL(38,10)", n12 = "DECIMAL(12,2)", t = "VARCHAR", )~"
    R"(d = "DATE", tm = "TIME", ts = "TIMESTAMP", tstz = "TIMESTAMPTZ", iv = "INTERVAL", u = "UUID", )"
    R"(j = "JSON", li = "INTEGER[]", lt = "TEXT[]" })";

const char* const kJsonlDuckColumns =
    "{'id': 'BIGINT', 'b': 'BOOLEAN', 'i2': 'SMALLINT', 'i4': 'INTEGER', 'i8': 'BIGINT', 'f4': 'FLOAT', "
    "'f8': 'DOUBLE', 'n38': 'DECIMAL(38,10)', 'n12': 'DECIMAL(12,2)', 't': 'VARCHAR', 'd': 'DATE', "
    "'tm': 'TIME', 'ts': 'TIMESTAMP', 'tstz': 'TIMESTAMPTZ', 'iv': 'INTERVAL', 'u': 'UUID', 'j': 'JSON', "
    "'li': 'INTEGER[]', 'lt': 'VARCHAR[]'}";

class JsonlToPostgres : public PgTest {
 protected:
  /// Loads jsonl with sluice and compares with DuckDB's own reading of it
  /// with the same declared types.
  void LoadAndCompare(const std::string& jsonl, int64_t rows) {
    std::string ref_csv = dir_.Path("ref.csv");
    {
      auto duck = Duck();
      ASSERT_NE(duck, nullptr);
      std::string read = "read_json(" + engine::QuoteLiteral(jsonl) +
                         ", format='newline_delimited', columns=" + kJsonlDuckColumns + ")";
      ASSERT_EQ(DuckScalar(*duck, "SELECT count(*) FROM " + read), std::to_string(rows));
      DuckExec(*duck, "COPY (SELECT " + ExportList(false) + " FROM " + read + ") TO " + engine::QuoteLiteral(ref_csv) +
                          " (FORMAT csv, HEADER)");
    }
    BuildReference(this, url_, ref_csv, false, [&](const std::string& sql) { Exec(sql); });
    ASSERT_EQ(Count("ref"), rows);

    std::string toml = "[source]\ntype = \"files\"\npath = '" + jsonl + "'\nformat = \"jsonl\"\n" + kJsonlColumns +
                       "\n" + PgDestination(url_, "loaded") + EngineSection();
    CliResult r = RunPipeline(dir_, toml);
    ASSERT_EQ(r.exit_code, 0) << Describe(r);
    EXPECT_EQ(PgColumnTypes(*pg_, db_, "loaded"), NestedPgTypes(false));
    EXPECT_EQ(Count("loaded"), rows);
    EXPECT_EQ(PgTableDiff(*pg_, db_, "loaded", "ref"), "");
  }
};

TEST_F(JsonlToPostgres, AllTypesMatchWhatDuckDbReadsFromTheFile) {
  LoadAndCompare(std::string(SLUICE_TEST_DATA_DIR) + "/all_types.jsonl", 7);
  EXPECT_EQ(Scalar("SELECT t FROM loaded WHERE id = 3"), "line1\nline2\r\nline3");
  EXPECT_EQ(Scalar("SELECT (t IS NULL)::text FROM loaded WHERE id = 4"), "true");
  EXPECT_EQ(Scalar("SELECT t FROM loaded WHERE id = 1"), "");
  EXPECT_EQ(Scalar("SELECT lt::text FROM loaded WHERE id = 5"), R"({NULL,"NULL"," sp ","\\N"})");
  EXPECT_EQ(Scalar("SELECT u::text FROM loaded WHERE id = 2"), "ffffffff-ffff-ffff-ffff-ffffffffffff");
  // The JSON column keeps each row's own document: no keys borrowed from
  // other rows, no nulls added.
  EXPECT_EQ(Scalar("SELECT j::text FROM loaded WHERE id = 2"), R"({"a": [1, 2.5, null], "b": {"c": "d"}})");
  EXPECT_EQ(Scalar("SELECT j::text FROM loaded WHERE id = 7"), R"({"k": "v"})");
}

// DuckDB's JSON reader parses JSON numbers as doubles, so only decimals
// with at most 15 significant digits survive as numbers; larger ones must be
// written as JSON strings, which are parsed straight into the declared
// DECIMAL with every digit (documented in the README).
TEST_F(JsonlToPostgres, DeclaredDecimalsKeepAllDigitsFromStringsAndShortNumbers) {
  std::string jsonl = dir_.Write("decimals.jsonl",
                                 "{\"id\": 1, \"n38\": \"9999999999999999999999999999.9999999999\", \"n12\": 0.1}\n"
                                 "{\"id\": 2, \"n38\": \"-12345678901234567890.1234567891\", \"n12\": 1234567890.12}\n"
                                 "{\"id\": 3, \"n38\": 0.0000000001, \"n12\": -9999999999.99}\n");
  std::string toml = "[source]\ntype = \"files\"\npath = '" + jsonl +
                     "'\ncolumns = { id = \"BIGINT\", n38 = \"DECIMAL(38,10)\", n12 = \"DECIMAL(12,2)\" }\n" +
                     PgDestination(url_, "loaded") + EngineSection();
  CliResult r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT string_agg(n38::text || '/' || n12::text, ' ' ORDER BY id) FROM loaded"),
            "9999999999999999999999999999.9999999999/0.10 -12345678901234567890.1234567891/1234567890.12 "
            "0.0000000001/-9999999999.99");
}

// PostgreSQL's COPY rejects "2.5" for an integer column; sluice must not
// quietly round it.
// KNOWN GAP, disabled: DuckDB's string-to-integer cast rounds "2.5" to 3
// (in read_csv as everywhere), where PostgreSQL's COPY rejects the row.
// sluice inherits DuckDB's behaviour; the README says so. Enable this test
// when sluice checks integer columns itself.
TEST_F(CsvToPostgres, DISABLED_FractionalValueInIntegerColumnFailsLikePostgresCopy) {
  std::string csv = dir_.Write("fraction.csv", "id,n\n1,2\n2,2.5\n3,4\n");
  Exec("CREATE TABLE ref (id bigint, n integer)");
  EXPECT_NE(PgCopyFromFile(url_, "COPY ref FROM STDIN (FORMAT csv, HEADER)", csv), "");
  std::string toml = "[source]\ntype = \"files\"\npath = '" + csv +
                     "'\ncolumns = { id = \"BIGINT\", n = \"INTEGER\" }\n" + PgDestination(url_, "loaded") +
                     EngineSection();
  CliResult r = RunPipeline(dir_, toml);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("line 3"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("2.5"), std::string::npos) << Describe(r);
  EXPECT_FALSE(PgTableExists(*pg_, db_, "loaded") && Count("loaded") > 0)
      << "loaded: " << Scalar("SELECT string_agg(n::text, ',' ORDER BY id) FROM loaded");
}

// Pre-created tables may use json, varchar, bigint for an integer, and so on:
// sluice loads into the table's own types.
TEST_F(CsvToPostgres, LoadsIntoPrecreatedTableWithCompatibleWiderTypes) {
  std::string csv = dir_.Write("wide.csv",
                               "id,small,j,u,name\n"
                               "1,7,\"{\"\"b\"\": 1,  \"\"a\"\": [2]}\",a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11,x\n"
                               "2,-7,\"[true, null]\",00000000-0000-0000-0000-000000000000,\"y, z\"\n"
                               "3,,,,\n");
  Exec(
      "CREATE TABLE wide (id numeric(20,0), small bigint, j json, jb jsonb, u text, name varchar(10), "
      "extra text DEFAULT 'dflt')");
  Exec("CREATE TABLE ref (id numeric(20,0), small bigint, j json, u text, name varchar(10))");
  ASSERT_EQ(PgCopyFromFile(url_, "COPY ref FROM STDIN (FORMAT csv, HEADER)", csv), "");
  std::string toml = "[source]\ntype = \"files\"\npath = '" + csv +
                     "'\ncolumns = { id = \"INTEGER\", small = \"SMALLINT\", j = \"JSON\", u = \"UUID\", "
                     "name = \"VARCHAR\" }\n[transform]\nsql = \"SELECT *, j AS jb FROM input\"\n" +
                     PgDestination(url_, "wide") + EngineSection();
  CliResult r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("wide"), 3);
  EXPECT_EQ(
      PgDiff(*pg_, db_, "SELECT id, small, j::text, u, name FROM wide", "SELECT id, small, j::text, u, name FROM ref"),
      "");
  EXPECT_EQ(Scalar("SELECT jb::text FROM wide WHERE id = 1"), R"({"a": [2], "b": 1})");
  EXPECT_EQ(Scalar("SELECT j::text FROM wide WHERE id = 1"), R"({"b": 1,  "a": [2]})");
  EXPECT_EQ(Scalar("SELECT string_agg(extra, ',') FROM wide"), "dflt,dflt,dflt");
}

}  // namespace
}  // namespace sluice::e2e
