// Input that is damaged or ambiguous fails loudly, or is rejected with its
// line, and never loads wrong data with exit code 0: truncated and corrupt
// compressed files, ragged CSV rows, {file} outputs that would collide,
// empty and header-only files, numbers that would lose digits, a rejects
// path that is an input, values PostgreSQL cannot store, long lines and
// long column names (issue 9, items 1-9 and 11).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "e2e/e2e_support.h"
#include "harness/subprocess.h"

namespace sluice::e2e {
namespace {

using std::string;
namespace fs = std::filesystem;

/// "id,amount" rows 0..n-1 with amount i.25, as in the reproduction.
string AmountsCsv(int64_t n) {
  string data = "id,amount\n";
  for (int64_t i = 0; i < n; ++i) data += std::to_string(i) + "," + std::to_string(i) + ".25\n";
  return data;
}

string AmountsSource(const string& path, const string& extra = "") {
  return "[source]\ntype = \"files\"\npath = '" + path +
         "'\ncolumns = { id = \"BIGINT\", amount = \"DECIMAL(12,2)\" }\n" + extra + "\n";
}

string Compress(const string& tool, const string& plain) {
  string out = plain + (tool == "gzip" ? ".gz" : ".zst");
  auto r = sluice::testing::RunSubprocess(
      {"/bin/sh", "-c", tool == "gzip" ? "gzip -c \"$1\" > \"$2\"" : "zstd -q --check -c \"$1\" > \"$2\"",
       "sh", plain, out});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return out;
}

string ReadAll(const string& path) {
  std::ifstream in(path, std::ios::binary);
  return string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void WriteAll(const string& path, const string& data) { std::ofstream(path, std::ios::binary) << data; }

class Hardening : public PgTest {
 protected:
  bool TableExists(const string& table) { return PgTableExists(*pg_, db_, table); }
};

// --- 1. truncated and corrupt compressed input ------------------------------

TEST_F(Hardening, TruncatedGzipAndZstdFailNamingTheFileWhereverTheCutFalls) {
  string plain = dir_.Write("full.csv", AmountsCsv(100'000));
  for (const string tool : {"gzip", "zstd"}) {
    string whole = ReadAll(Compress(tool, plain));
    // Inside the data, just before the end of the data, and inside the
    // trailer (gzip's CRC and length, zstd's checksum).
    for (size_t cut : {whole.size() / 4, whole.size() / 2, whole.size() - 9, whole.size() - 1}) {
      SCOPED_TRACE(tool + " cut at " + std::to_string(cut) + " of " + std::to_string(whole.size()));
      string path = dir_.Path("cut" + string(tool == "gzip" ? ".csv.gz" : ".csv.zst"));
      WriteAll(path, whole.substr(0, cut));
      CliResult r = RunPipeline(dir_, AmountsSource(path) + PgDestination(url_, "t"));
      EXPECT_EQ(r.exit_code, 1) << Describe(r);
      EXPECT_NE(r.err.find(path + " is truncated"), string::npos) << Describe(r);
      EXPECT_FALSE(TableExists("t"));
    }
  }
}

TEST_F(Hardening, CorruptGzipAndZstdFailAndAMultiMemberGzipLoadsWhole) {
  string plain = dir_.Write("full.csv", AmountsCsv(20'000));
  string gz = ReadAll(Compress("gzip", plain));
  string bad_crc = gz;
  bad_crc[bad_crc.size() - 6] ^= 0x5a;  // inside the CRC-32 of the trailer
  string gz_path = dir_.Path("bad.csv.gz");
  WriteAll(gz_path, bad_crc);
  CliResult r = RunPipeline(dir_, AmountsSource(gz_path) + PgDestination(url_, "t"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find(gz_path + " is corrupt"), string::npos) << Describe(r);
  EXPECT_FALSE(TableExists("t"));

  string zst = ReadAll(Compress("zstd", plain));
  zst[zst.size() - 2] ^= 0x5a;  // inside the frame's content checksum
  string zst_path = dir_.Path("bad.csv.zst");
  WriteAll(zst_path, zst);
  r = RunPipeline(dir_, AmountsSource(zst_path) + PgDestination(url_, "t"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find(zst_path + " is corrupt"), string::npos) << Describe(r);
  EXPECT_FALSE(TableExists("t"));

  // Two gzip members (cat a.gz b.gz) are one valid stream.
  string rows = AmountsCsv(20'000);
  string tail = "20000,1.00\n20001,2.00\n";
  string a = dir_.Write("a.csv", rows);
  string b = dir_.Write("b.csv", tail);
  string multi = dir_.Path("multi.csv.gz");
  WriteAll(multi, ReadAll(Compress("gzip", a)) + ReadAll(Compress("gzip", b)));
  r = RunPipeline(dir_, AmountsSource(multi) + PgDestination(url_, "m"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("m"), 20'002);
  EXPECT_EQ(Scalar("SELECT amount FROM m WHERE id = 19999"), "19999.25");
}

// --- 2. ragged rows -----------------------------------------------------------

TEST_F(Hardening, RaggedRowFailsWithItsLineAndFieldCountsWhateverTheSourceSays) {
  string path = dir_.Write("ragged.csv", "id,name,amount\n1,a,1.5\n2,b\n3,c,3.5\n");
  for (const string& extra : {string(), string("delimiter = \",\""),
                              string("columns = { id = \"BIGINT\", amount = \"DECIMAL(12,2)\" }")}) {
    SCOPED_TRACE(extra);
    string toml =
        "[source]\ntype = \"files\"\npath = '" + path + "'\n" + extra + "\n" + PgDestination(url_, "t");
    CliResult r = RunPipeline(dir_, toml);
    EXPECT_EQ(r.exit_code, 1) << Describe(r);
    EXPECT_NE(r.err.find(path + " line 3"), string::npos) << Describe(r);
    EXPECT_NE(r.err.find("expected 3 fields, found 2 (missing data for column amount)"), string::npos)
        << Describe(r);
    EXPECT_EQ(r.err.find("sniffing"), string::npos) << "no raw dump of DuckDB's sniffer\n" << Describe(r);
    EXPECT_FALSE(TableExists("t"));
  }
  // A row with one field too many, as the last line (which made the sniffer
  // take the first lines for a preamble and load only the last row).
  string wide = dir_.Write("wide.csv", "id,name,amount\n1,a,1.5\n2,b,2.5\n3,c,3.5,9\n");
  CliResult r =
      RunPipeline(dir_, "[source]\ntype = \"files\"\npath = '" + wide + "'\n" + PgDestination(url_, "t"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find(wide + " line 4: expected 3 fields, found 4"), string::npos) << Describe(r);
  EXPECT_FALSE(TableExists("t"));

  // With on_error = "skip" the ragged row is rejected with its line.
  string rejects = dir_.Path("rejects.csv");
  r = RunPipeline(dir_, "[source]\ntype = \"files\"\npath = '" + path +
                            "'\non_error = \"skip\"\nrejects = '" + rejects + "'\n" +
                            PgDestination(url_, "t"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT string_agg(id::text || ':' || amount::text, ',' ORDER BY id) FROM t"),
            "1:1.5,3:3.5");
  string written = ReadAll(rejects);
  EXPECT_NE(written.find(path +
                         ",3,amount,\"expected 3 fields, found 2 (missing data for column amount)\",\"2,b\""),
            string::npos)
      << written;
}

TEST_F(Hardening, PerFileLoadsOfOneRunKeepTheirOwnInputAndRejects) {
  // The per_file loads of a run share one DuckDB database: each still sees
  // only its own file as `input` (columns included) and counts only its
  // own rejected rows against max_rejects.
  fs::create_directories(dir_.Path("pf"));
  dir_.Write("pf/a.csv", "id,name,amount\n1,a,1.5\n2,b\n3,c,3.5\n");
  dir_.Write("pf/b.csv", "id,name,amount\n4,d,4.5\n5,e\n");
  dir_.Write("pf/c.csv", "id,name,amount,extra\n6,f,6.5,x\n7,g\n");
  string toml = "name = \"pf\"\n[source]\ntype = \"files\"\npath = '" + dir_.Path("pf") +
                "/*.csv'\nincremental = true\nbatch = \"per_file\"\non_error = \"skip\"\nmax_rejects = 1\n"
                "[state]\npath = '" + dir_.Path("pf.db") + "'\n[transform]\nsql = \"SELECT id, amount, "
                "(SELECT count(*) FROM input) AS rows_in_input, (SELECT count(*) FROM (DESCRIBE input)) AS "
                "columns_in_input FROM input\"\n" + PgDestination(url_, "t", "append");
  CliResult r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT string_agg(id || ':' || rows_in_input || ':' || columns_in_input, ',' ORDER BY id) "
                   "FROM t"),
            "1:2:3,3:2:3,4:1:3,6:1:4")
      << Describe(r);
}

TEST_F(Hardening, RaggedRowOnStdinFailsWithItsLine) {
  string toml =
      dir_.Write("stdin.toml", "[source]\ntype = \"files\"\npath = \"-\"\n" + PgDestination(url_, "t"));
  CliOptions options;
  options.stdin_data = "id,name,amount\n1,a,1.5\n2,b\n3,c,3.5\n";
  CliResult r = Sluice({"run", toml}, options);
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("stdin line 3: expected 3 fields, found 2 (missing data for column amount)"),
            string::npos)
      << Describe(r);
  EXPECT_FALSE(TableExists("t"));
}

// --- 3. {file} outputs ----------------------------------------------------------

TEST_F(Hardening, FileOutputsKeepTheWholeNameAndNeverReplaceAnotherInputsOutput) {
  fs::create_directories(dir_.Path("d/x"));
  fs::create_directories(dir_.Path("d/y"));
  fs::create_directories(dir_.Path("out"));
  dir_.Write("d/x/2024.01.01.csv", "id\n1\n2\n");
  dir_.Write("d/x/2024.01.02.csv", "id\n3\n");
  dir_.Write("d/y/2024.01.01.csv", "id\n4\n");
  string toml = "name = \"outs\"\n[source]\ntype = \"files\"\npath = '" + dir_.Path("d") +
                "/*/*'\nincremental = true\nbatch = \"per_file\"\n[state]\npath = '" + dir_.Path("state.db") +
                "'\n[destination]\ntype = \"file\"\npath = '" + dir_.Path("out") + "/{file}.csv'\n";
  CliResult r = RunPipeline(dir_, toml);
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(ReadAll(dir_.Path("out/x/2024.01.01.csv")), "id\n1\n2\n");
  EXPECT_EQ(ReadAll(dir_.Path("out/x/2024.01.02.csv")), "id\n3\n");
  EXPECT_EQ(ReadAll(dir_.Path("out/y/2024.01.01.csv")), "id\n4\n");

  // A later input whose name maps onto an output written from another one
  // is refused, and that output keeps its rows.
  string gz = Compress("gzip", dir_.Write("tmp.csv", "id\n99\n"));
  fs::rename(gz, dir_.Path("d/x/2024.01.01.csv.gz"));
  r = RunPipeline(dir_, toml);
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("was written from " + dir_.Path("d/x/2024.01.01.csv")), string::npos) << Describe(r);
  EXPECT_EQ(ReadAll(dir_.Path("out/x/2024.01.01.csv")), "id\n1\n2\n");

  // Two new inputs of one run that map onto one output: nothing is written.
  fs::remove(dir_.Path("d/x/2024.01.01.csv.gz"));
  dir_.Write("d/y/z.csv", "id\n5\n");
  string gz2 = Compress("gzip", dir_.Write("tmp2.csv", "id\n6\n"));
  fs::rename(gz2, dir_.Path("d/y/z.csv.gz"));
  r = RunPipeline(dir_, toml);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("would both be written to " + dir_.Path("out") + "/y/z.csv"), string::npos)
      << Describe(r);
  EXPECT_FALSE(fs::exists(dir_.Path("out/y/z.csv")));
}

TEST_F(Hardening, PerFileOutputsNeedFileAndRunNeedsAnIncrementalSource) {
  string toml = "[source]\ntype = \"files\"\npath = '" + dir_.Path("*.csv") +
                "'\n[destination]\ntype = \"file\"\npath = '" + dir_.Path("out-{run}.csv") + "'\n";
  CliResult r = ValidatePipeline(dir_, toml);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("incremental = true"), string::npos) << Describe(r);
  toml = "[source]\ntype = \"files\"\npath = '" + dir_.Path("*.csv") +
         "'\nincremental = true\n[destination]\ntype = \"file\"\npath = '" + dir_.Path("out-{file}.csv") +
         "'\n";
  r = ValidatePipeline(dir_, toml);
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("per_file"), string::npos) << Describe(r);
}

// --- 4. empty and header-only files ---------------------------------------------

TEST_F(Hardening, EmptyFileLoadsNothingCreatesNothingAndSaysSo) {
  string empty = dir_.Write("empty.csv", "");
  CliResult r =
      RunPipeline(dir_, "[source]\ntype = \"files\"\npath = '" + empty + "'\n" + PgDestination(url_, "t"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find(empty + " is empty"), string::npos) << Describe(r);
  EXPECT_FALSE(TableExists("t"));
  // Among other files it is left out, and the others load.
  dir_.Write("in/a.csv", "id,amount\n1,2.50\n");
  dir_.Write("in/b.csv", "");
  r = RunPipeline(dir_, AmountsSource(dir_.Path("in")) + PgDestination(url_, "t"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(
      Scalar("SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) "
             "FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0"),
      "id bigint, amount numeric(12,2)");
  EXPECT_EQ(Count("t"), 1);
}

TEST_F(Hardening, HeaderOnlyFileEmptiesAnExistingTableButCreatesOneOnlyWithKnownTypes) {
  string header = dir_.Write("header.csv", "id,name\n");
  string source = "[source]\ntype = \"files\"\npath = '" + header + "'\n";
  CliResult r = RunPipeline(dir_, source + PgDestination(url_, "t", "replace"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_FALSE(TableExists("t"));
  EXPECT_NE(r.err.find("not created"), string::npos) << Describe(r);

  Exec("CREATE TABLE t (id bigint, name text); INSERT INTO t VALUES (1, 'old'), (2, 'older')");
  r = RunPipeline(dir_, source + PgDestination(url_, "t", "replace"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("t"), 0);
  EXPECT_NE(r.err.find("emptied"), string::npos) << Describe(r);

  r = RunPipeline(
      dir_, source + "columns = { id = \"BIGINT\", name = \"VARCHAR\" }\n" + PgDestination(url_, "typed"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_TRUE(TableExists("typed"));
  EXPECT_EQ(Count("typed"), 0);
}

// --- 5. numbers keep their digits -----------------------------------------------

TEST_F(Hardening, InferenceKeepsLongIntegersAndLeadingZerosExact) {
  string path =
      dir_.Write("big.csv", "big,code,price\n12345678901234567890,007,1.5\n98765432109876543210,010,2.25\n");
  CliResult r =
      RunPipeline(dir_, "[source]\ntype = \"files\"\npath = '" + path + "'\n" + PgDestination(url_, "t"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT string_agg(big::text || '/' || code, ',' ORDER BY big) FROM t"),
            "12345678901234567890/007,98765432109876543210/010");
  EXPECT_EQ(
      Scalar("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 't'::regclass AND "
             "attname = 'code'"),
      "text");
  // A declared type that cannot hold a value rejects its row with the line.
  r = RunPipeline(dir_, "[source]\ntype = \"files\"\npath = '" + path +
                            "'\ncolumns = { big = \"BIGINT\" }\n" + PgDestination(url_, "u"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find(path + " line 2, column big"), string::npos) << Describe(r);
}

// --- 6. rejects path ------------------------------------------------------------------

TEST_F(Hardening, RejectsPathThatIsOrWouldBecomeAnInputIsRefused) {
  string in = dir_.Write("in/a.csv", "id,amount\n1,1.00\n");
  for (const string& rejects : {in, dir_.Path("in/rejects.csv")}) {
    SCOPED_TRACE(rejects);
    CliResult r =
        RunPipeline(dir_, AmountsSource(dir_.Path("in"), "on_error = \"skip\"\nrejects = '" + rejects + "'") +
                              PgDestination(url_, "t"));
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_NE(r.err.find("[source] rejects"), string::npos) << Describe(r);
    EXPECT_EQ(ReadAll(in), "id,amount\n1,1.00\n");
  }
}

// --- 7. values PostgreSQL cannot store --------------------------------------------------

TEST_F(Hardening, ValuesPostgresCannotStoreAreRejectedWithTheirInputLine) {
  string data = "id,note,day,amount\n";
  for (int i = 1; i <= 6000; ++i) {
    string note = "n" + std::to_string(i);
    string day = "2024-01-01";
    string amount = "1.00";
    if (i == 5000) note = string("nul") + '\0' + "byte";
    if (i == 5200) day = "5874898-01-01";
    if (i == 5400) amount = "123456.00";
    data += std::to_string(i) + "," + note + "," + day + "," + amount + "\n";
  }
  string path = dir_.Write("values.csv", data);
  Exec("CREATE TABLE t (id bigint, note text, day date, amount numeric(5,2))");
  string source =
      "[source]\ntype = \"files\"\npath = '" + path +
      "'\ncolumns = { id = \"BIGINT\", note = \"VARCHAR\", day = \"DATE\", amount = \"DECIMAL(12,2)\" }\n";
  CliResult r = RunPipeline(dir_, source + PgDestination(url_, "t"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find(path + " line "), string::npos) << Describe(r);
  EXPECT_EQ(Count("t"), 0);

  string rejects = dir_.Path("rejects.csv");
  r = RunPipeline(dir_,
                  source + "on_error = \"skip\"\nrejects = '" + rejects + "'\n" + PgDestination(url_, "t"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("t"), 5997);
  EXPECT_EQ(Scalar("SELECT count(*) FROM t WHERE id IN (5000, 5200, 5400)"), "0");
  auto duck = Duck();
  ASSERT_NE(duck, nullptr);
  auto rows =
      DuckQuery(*duck, "SELECT line, \"column\", reason FROM read_csv(" + engine::QuoteLiteral(rejects) +
                           ", header=true, all_varchar=true) ORDER BY line::BIGINT");
  ASSERT_EQ(rows.size(), 3u) << ReadAll(rejects);
  EXPECT_EQ(rows[0][0].value_or(""), "5001");
  EXPECT_EQ(rows[0][1].value_or(""), "note");
  EXPECT_NE(rows[0][2].value_or("").find("NUL"), string::npos);
  EXPECT_EQ(rows[1][0].value_or(""), "5201");
  EXPECT_EQ(rows[1][1].value_or(""), "day");
  EXPECT_NE(rows[1][2].value_or("").find("5874898-01-01"), string::npos);
  EXPECT_EQ(rows[2][0].value_or(""), "5401");
  EXPECT_EQ(rows[2][1].value_or(""), "amount");
  EXPECT_NE(rows[2][2].value_or("").find("numeric(5,2)"), string::npos);
}

TEST_F(Hardening, ConstraintFailuresStayWholeLoadErrorsNamingTheTable) {
  string path = dir_.Write("c.csv", "id,amount\n1,1.00\n2,-5.00\n");
  Exec("CREATE TABLE t (id bigint, amount numeric(12,2) CHECK (amount > 0))");
  CliResult r = RunPipeline(dir_, AmountsSource(path, "on_error = \"skip\"") + PgDestination(url_, "t"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find("public.t"), string::npos) << Describe(r);
  EXPECT_NE(r.err.find("check constraint"), string::npos) << Describe(r);
  // PostgreSQL's "COPY t, line 2" counts the result's rows, not the file's lines.
  EXPECT_EQ(r.err.find("line 2"), string::npos) << Describe(r);
  EXPECT_NE(r.err.find("row 2 of the result"), string::npos) << Describe(r);
  EXPECT_EQ(Count("t"), 0);
}

// --- 8. long lines --------------------------------------------------------------------

TEST_F(Hardening, LongLineNamesItsRealLineAndTheLimitCanBeRaised) {
  string data = "id,txt\n";
  for (int i = 1; i <= 5; ++i) data += std::to_string(i) + ",short\n";
  data += "6," + string(2'100'000, 'x') + "\n7,end\n";
  string path = dir_.Write("long.csv", data);
  string source = "[source]\ntype = \"files\"\npath = '" + path + "'\n";
  CliResult r = RunPipeline(dir_, source + PgDestination(url_, "t"));
  EXPECT_EQ(r.exit_code, 1) << Describe(r);
  EXPECT_NE(r.err.find(path + " line 7"), string::npos) << Describe(r);
  EXPECT_NE(r.err.find("max_line_size"), string::npos) << Describe(r);
  r = RunPipeline(dir_, source + "max_line_size = \"3MB\"\n" + PgDestination(url_, "t"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Count("t"), 7);
  EXPECT_EQ(Scalar("SELECT length(txt) FROM t WHERE id = 6"), "2100000");
}

// --- 9. long column names ---------------------------------------------------------------

TEST_F(Hardening, ColumnNameLongerThanPostgresAllowsSaysHowToRenameIt) {
  string name(70, 'c');
  string path = dir_.Write("names.csv", "id," + name + "\n1,2\n");
  CliResult r =
      RunPipeline(dir_, "[source]\ntype = \"files\"\npath = '" + path + "'\n" + PgDestination(url_, "t"));
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("longer than PostgreSQL's limit of 63"), string::npos) << Describe(r);
  EXPECT_NE(r.err.find("[transform] sql"), string::npos) << Describe(r);
  EXPECT_FALSE(TableExists("t"));
}

// --- 10. validate is as strict as run ------------------------------------------------------

TEST_F(Hardening, ValidateRefusesTheSchedulesRunRefuses) {
  string path = dir_.Write("a.csv", "id,amount\n1,1.00\n");
  for (const string& schedule :
       {string("cron = \"61 * * * *\""), string("cron = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"")}) {
    SCOPED_TRACE(schedule);
    string toml = AmountsSource(path) + PgDestination(url_, "t") + "[schedule]\n" + schedule + "\n";
    CliResult v = ValidatePipeline(dir_, toml);
    EXPECT_EQ(v.exit_code, 2) << Describe(v);
    EXPECT_NE(v.err.find("[schedule]"), string::npos) << Describe(v);
    CliResult r = RunPipeline(dir_, toml);
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
  }
}

// --- 11. engine settings ------------------------------------------------------------------

TEST_F(Hardening, EngineSettingsDuckDbWouldIgnoreAreRefused) {
  string path = dir_.Write("a.csv", "id,amount\n1,1.00\n");
  for (const string& engine : {string("memory_limit = \"banana\""), string("memory_limit = \"\""),
                               string("threads = -1"), string("threads = 100000")}) {
    SCOPED_TRACE(engine);
    CliResult r =
        RunPipeline(dir_, AmountsSource(path) + PgDestination(url_, "t") + "[engine]\n" + engine + "\n");
    EXPECT_EQ(r.exit_code, 2) << Describe(r);
    EXPECT_NE(r.err.find("[engine]"), string::npos) << Describe(r);
  }
  CliResult r = RunPipeline(dir_, AmountsSource(path) + PgDestination(url_, "t") +
                                      "[engine]\nmemory_limit = \"1GiB\"\n[retry]\ninitial = \"250ms\"\n");
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
}

}  // namespace
}  // namespace sluice::e2e
