// `sluice validate`: checks the file, connects to the destination and
// compiles the SQL, printing the result schema and loading nothing.
#include <string>

#include "e2e/e2e_support.h"

namespace sluice::e2e {
namespace {

using std::string;

const char* const kGoodTransform =
    "[transform]\nsql = \"SELECT id, upper(name) AS name_upper, amount * 2 AS doubled FROM input\"\n";
const char* const kBadTransform = "[transform]\nsql = \"SELECT id, no_such_column FROM input\"\n";

class ValidatePostgres : public PgTest {
 protected:
  string Source() {
    string csv = dir_.Write("in.csv", "id,name,amount\n1,a,1.50\n2,b,2.50\n");
    return SimpleCsvSource(csv);
  }
};

TEST_F(ValidatePostgres, GoodFilePrintsOkAndResultColumnsAndLoadsNothing) {
  CliResult r =
      ValidatePipeline(dir_, Source() + kGoodTransform + PgDestination(url_, "public.items") + EngineSection());
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("OK"), string::npos) << Describe(r);
  for (const char* column : {"id", "name_upper", "doubled"}) {
    EXPECT_NE(r.out.find(column), string::npos) << column << "\n" << Describe(r);
  }
  EXPECT_NE(r.out.find("BIGINT"), string::npos) << Describe(r);
  EXPECT_NE(r.out.find("public.items"), string::npos) << "names the destination\n" << Describe(r);
  EXPECT_FALSE(PgTableExists(*pg_, db_, "public.items"));
}

TEST_F(ValidatePostgres, ExistingTableIsLeftUntouched) {
  Exec("CREATE TABLE items (id bigint, name_upper text, doubled numeric(18,2))");
  Exec("INSERT INTO items VALUES (7, 'x', 1.00)");
  CliResult r =
      ValidatePipeline(dir_, Source() + kGoodTransform + PgDestination(url_, "items", "replace") + EngineSection());
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_EQ(Scalar("SELECT string_agg(id::text, ',') FROM items"), "7");
}

TEST_F(ValidatePostgres, BadSqlFailsNamingTheProblemAndLoadsNothing) {
  CliResult r =
      ValidatePipeline(dir_, Source() + kBadTransform + PgDestination(url_, "public.items") + EngineSection());
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("no_such_column"), string::npos) << Describe(r);
  EXPECT_NE(r.err.find("[transform]"), string::npos) << "names the section\n" << Describe(r);
  EXPECT_EQ(r.out.find("OK"), string::npos) << Describe(r);
  EXPECT_FALSE(PgTableExists(*pg_, db_, "public.items"));
}

TEST_F(ValidatePostgres, MissingDatabaseFailsNamingIt) {
  string url = pg_->Url("no_such_database_here");
  CliResult r = ValidatePipeline(dir_, Source() + PgDestination(url, "items") + EngineSection());
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("no_such_database_here"), string::npos) << Describe(r);
}

class ValidateDuckDb : public ::testing::Test {
 protected:
  string Source() {
    string csv = dir_.Write("in.csv", "id,name,amount\n1,a,1.50\n2,b,2.50\n");
    return SimpleCsvSource(csv);
  }
  bool HasTable(const string& path, const string& table) {
    if (!std::filesystem::exists(path)) return false;
    return DuckFileScalar(path, "SELECT count(*) FROM duckdb_tables() WHERE database_name = 'o' AND table_name = '" +
                                    table + "'") == "1";
  }
  TempDir dir_{"sluice-e2e"};
};

TEST_F(ValidateDuckDb, GoodFilePrintsOkAndResultColumnsAndLoadsNothing) {
  string out = dir_.Path("out.duckdb");
  CliResult r = ValidatePipeline(dir_, Source() + kGoodTransform + DuckDbDestination(out, "items"));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("OK"), string::npos) << Describe(r);
  for (const char* column : {"id BIGINT", "name_upper VARCHAR", "doubled DECIMAL"}) {
    EXPECT_NE(r.out.find(column), string::npos) << column << "\n" << Describe(r);
  }
  EXPECT_FALSE(HasTable(out, "items"));
}

TEST_F(ValidateDuckDb, BadSqlFailsNamingTheProblemAndLoadsNothing) {
  string out = dir_.Path("out.duckdb");
  CliResult r = ValidatePipeline(dir_, Source() + kBadTransform + DuckDbDestination(out, "items"));
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("no_such_column"), string::npos) << Describe(r);
  EXPECT_NE(r.err.find("[transform]"), string::npos) << Describe(r);
  EXPECT_FALSE(HasTable(out, "items"));
}

TEST(Validate, MissingInputFileFailsNamingIt) {
  TempDir dir("sluice-e2e");
  string missing = dir.Path("not_there.csv");
  CliResult r = ValidatePipeline(dir, SimpleCsvSource(missing) + DuckDbDestination(dir.Path("o.duckdb"), "t"));
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find(missing), string::npos) << Describe(r);
}

TEST(Validate, UnknownKeyIsAConfigErrorNamingIt) {
  TempDir dir("sluice-e2e");
  string csv = dir.Write("in.csv", "id\n1\n");
  CliResult r = ValidatePipeline(dir, "[source]\ntype = \"files\"\npath = '" + csv + "'\ndelimeter = \";\"\n" +
                                          DuckDbDestination(dir.Path("o.duckdb"), "t"));
  EXPECT_EQ(r.exit_code, 2) << Describe(r);
  EXPECT_NE(r.err.find("delimeter"), string::npos) << Describe(r);
}

}  // namespace
}  // namespace sluice::e2e

namespace sluice::e2e {
namespace {

TEST(CommandLine, VersionNamesSluiceDuckDbAndLibpq) {
  CliResult r = Sluice({"version"});
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.out.find("sluice 0.1.0"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("DuckDB v1.4.4"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("libpq"), std::string::npos) << r.out;
}

TEST(CommandLine, HelpListsTheCommandsAndUnknownCommandsFail) {
  CliResult help = Sluice({"--help"});
  EXPECT_EQ(help.exit_code, 0);
  for (const char* word : {"run", "serve", "validate", "version", "--log-format"}) {
    EXPECT_NE(help.out.find(word), std::string::npos) << help.out;
  }
  CliResult run_help = Sluice({"run", "--help"});
  EXPECT_NE(run_help.out.find("--once"), std::string::npos) << run_help.out;
  CliResult serve_help = Sluice({"serve", "--help"});
  EXPECT_NE(serve_help.out.find("--listen"), std::string::npos) << serve_help.out;
  CliResult bad = Sluice({"frobnicate"});
  EXPECT_NE(bad.exit_code, 0);
}

}  // namespace
}  // namespace sluice::e2e
