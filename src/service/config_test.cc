#include "service/config.h"

#include <gtest/gtest.h>

#include <map>

namespace sluice::service {
namespace {

EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(Interpolate, ExpandsVariablesDefaultsAndEscapes) {
  auto env = Env({{"HOST", "db1"}, {"EMPTY", ""}});
  EXPECT_EQ(*Interpolate("pg://${HOST}:5432", env, "k"), "pg://db1:5432");
  EXPECT_EQ(*Interpolate("${PORT:-5432}", env, "k"), "5432");
  EXPECT_EQ(*Interpolate("${EMPTY:-x}", env, "k"), "x");
  EXPECT_EQ(*Interpolate("cost $$5 $x", env, "k"), "cost $5 $x");
}

TEST(Interpolate, MissingVariableIsAnErrorNamingItAndTheKey) {
  auto r = Interpolate("${DB_PASSWORD}", Env({}), "[destination] url");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("DB_PASSWORD"), std::string::npos);
  EXPECT_NE(r.status().message().find("[destination] url"), std::string::npos);
}

TEST(ParsePipelineConfig, ReadsTheContractKeys) {
  auto cfg = ParsePipelineConfig(R"TOML(
[source]
type = "files"
path = "data/*.csv"
format = "csv"
header = true
delimiter = ";"
columns = { zeta = "BIGINT", amount = "DECIMAL(12,2)", alpha = "TEXT" }
on_error = "skip"
rejects = "rejects.csv"
max_rejects = 5
[transform]
sql = "SELECT 1"
[destination]
type = "postgres"
url = "postgresql://u:${PW}@h/db"
table = "public.sales"
mode = "upsert"
key = ["id"]
)TOML",
                                 "daily.toml", Env({{"PW", "pw"}}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->name, "daily");
  EXPECT_EQ(cfg->source.delimiter, ";");
  ASSERT_EQ(cfg->source.columns.size(), 3u);
  // The order written, not toml++'s sorted order: header-less CSV needs it.
  EXPECT_EQ(cfg->source.columns[0].first, "zeta");
  EXPECT_EQ(cfg->source.columns[2].first, "alpha");
  EXPECT_EQ(cfg->source.max_rejects, 5);
  EXPECT_EQ(cfg->destination.url, "postgresql://u:pw@h/db");
  EXPECT_EQ(cfg->destination.key, std::vector<std::string>{"id"});
  EXPECT_EQ(cfg->destination.mode, "upsert");
}

TEST(ParsePipelineConfig, UnknownKeyIsAnError) {
  auto cfg =
      ParsePipelineConfig("[source]\npth = \"x\"\n[destination]\ntype = \"null\"\n", "p.toml", Env({}));
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("[source] pth"), std::string::npos);
}

TEST(ParsePipelineConfig, SyntaxErrorNamesTheLine) {
  auto cfg = ParsePipelineConfig("[source]\npath = \n", "p.toml", Env({}));
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("p.toml line 2"), std::string::npos) << cfg.status().message();
}

TEST(ParsePipelineConfig, BadOnErrorValueIsRejected) {
  auto cfg = ParsePipelineConfig(
      "[source]\npath = \"x\"\non_error = \"ignore\"\n[destination]\ntype = \"null\"\n", "p.toml", Env({}));
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("on_error"), std::string::npos);
}

TEST(ParseBytesAndDurations, UnderstandUnits) {
  EXPECT_EQ(*ParseBytes("8MB"), 8000000);
  EXPECT_EQ(*ParseBytes("1 GiB"), 1073741824);
  EXPECT_EQ(*ParseBytes("1.5KiB"), 1536);
  EXPECT_EQ(*ParseDurationSeconds("24h"), 86400);
  EXPECT_EQ(*ParseDurationSeconds("90s"), 90);
  EXPECT_EQ(*ParseDurationMillis("500ms"), 500);
  EXPECT_EQ(*ParseDurationMillis("2m"), 120000);
  EXPECT_EQ(*ParseDurationSeconds("1500ms"), 2);
  for (const char* bad : {"soon", "", "-5s", "0s", "1.5s", "5 s", "99999999999999999d"}) {
    EXPECT_FALSE(ParseDurationMillis(bad).ok()) << bad;
  }
  for (const char* bad : {"banana", "", "-1MB", "inf", "nan", "1e3", "1.2.3MB", "99999999999TB"}) {
    EXPECT_FALSE(ParseBytes(bad).ok()) << bad;
  }
}

// Values that must be refused, each naming its key (issue 9: [engine]
// values DuckDB would silently replace by its defaults, keys that belong to
// another component, formats a destination cannot write, schedules that
// run would refuse).
TEST(ParsePipelineConfig, RefusesWhatTheComponentCannotTake) {
  const std::string files = "[source]\ntype = \"files\"\npath = \"x.csv\"\n";
  const std::string null_dest = "[destination]\ntype = \"null\"\n";
  const std::string cdc =
      "[source]\ntype = \"postgres_cdc\"\nurl = \"postgresql://u@h/db\"\npublication = \"p\"\n";
  struct Case {
    std::string toml;
    std::string expect;
  };
  const Case cases[] = {
      {files + null_dest + "[engine]\nmemory_limit = \"banana\"\n", "[engine] memory_limit"},
      {files + null_dest + "[engine]\nmemory_limit = \"\"\n", "[engine] memory_limit"},
      {files + null_dest + "[engine]\nmemory_limit = \"1MB\"\n", "[engine] memory_limit"},
      {files + null_dest + "[engine]\nthreads = -1\n", "[engine] threads"},
      {files + null_dest + "[engine]\nthreads = 5000\n", "[engine] threads"},
      {files + null_dest + "[engine]\nencode_threads = -2\n", "[engine] encode_threads"},
      {files + null_dest + "[engine]\nbuffer = \"10KB\"\n", "[engine] buffer"},
      {files + null_dest + "[retry]\ninitial = \"soon\"\n", "[retry] initial"},
      {files + null_dest + "[schedule]\ncron = \"61 * * * *\"\n", "[schedule]"},
      {files + null_dest + "[schedule]\ncron = \"0 3 * * *\"\ntimezone = \"Mars/Olympus\"\n", "Mars/Olympus"},
      {files + null_dest + "[schedule]\nevery = \"500ms\"\n", "[schedule] every"},
      {files + "publication = \"p\"\n" + null_dest,
       "[source] key 'publication' does not apply to type \"files\""},
      {files + "[destination]\ntype = \"postgres\"\nurl = \"postgresql://u@h/db\"\ntable = \"t\"\nschema = "
               "\"s\"\n",
       "[destination] key 'schema' does not apply to type \"postgres\""},
      {files + null_dest + "[batch]\nmax_rows = 5\n", "[batch] applies to postgres_cdc"},
      {cdc + "[destination]\ntype = \"file\"\npath = \"out.parquet\"\nformat = \"parquet\"\n",
       "writes change events as JSON lines only"},
      {cdc + "[destination]\ntype = \"file\"\npath = \"out.parquet\"\n", "plain JSON lines"},
      {cdc + "[destination]\ntype = \"postgres\"\nurl = \"postgresql://u@h/db\"\nmode = \"upsert\"\n",
       "[destination] key 'mode' does not apply to type \"postgres (changes)\""},
      {cdc + "[destination]\ntype = \"postgres\"\nurl = \"postgresql://u@h/db\"\ntable = \"t\"\n",
       "[destination] key 'table' does not apply"},
      {cdc + "path = \"x.csv\"\n" + null_dest, "[source] key 'path' does not apply to type \"postgres_cdc\""},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.toml);
    auto cfg = ParsePipelineConfig(c.toml, "p.toml", Env({}));
    ASSERT_FALSE(cfg.ok());
    EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(cfg.status().message().find(c.expect), std::string::npos) << cfg.status().message();
  }
}

TEST(ParsePipelineConfig, DurationsAndSizesInMillisecondsAndBytes) {
  auto cfg = ParsePipelineConfig(
      "[source]\npath = \"x.csv\"\nmax_line_size = \"4MB\"\n[destination]\ntype = \"null\"\n"
      "[engine]\nmemory_limit = \"1GiB\"\nthreads = 0\n[retry]\ninitial = \"250ms\"\nmax_delay = \"2s\"\n"
      "[s3]\nstall_timeout = \"1500ms\"\nretry_max_elapsed = \"20s\"\n",
      "p.toml", Env({}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->source.max_line_size, 4000000);
  EXPECT_EQ(cfg->engine.memory_limit, "1073741824B");
  EXPECT_EQ(cfg->retry.initial_ms, 250);
  EXPECT_EQ(cfg->retry.max_delay_ms, 2000);
  EXPECT_EQ(cfg->s3.stall_timeout_ms, 1500);
  EXPECT_EQ(cfg->s3.retry_max_elapsed_ms, 20000);
}

TEST(ParseBytesAndDurations, SizesBeyondInt64AreErrors) {
  // Found by fuzz/config_fuzz.cc: converting these doubles to int64_t was
  // undefined behaviour (in practice a negative size).
  for (const char* text : {"53e081", "1e300GB", "9.3e18", "inf", "nan", "-nan MB"}) {
    Result<int64_t> bytes = ParseBytes(text);
    ASSERT_FALSE(bytes.ok()) << text << " -> " << *bytes;
    EXPECT_EQ(bytes.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bytes.status().message().find("bad size"), std::string::npos);
  }
  EXPECT_EQ(*ParseBytes("9000000000000000000"), int64_t{9'000'000'000'000'000'000});
}

TEST(ParseBytesAndDurations, DurationsLongerThanAHundredYearsAreErrors) {
  // Found by fuzz/config_fuzz.cc: "every" this long overflowed the clock's
  // nanoseconds when the next run was computed, and n * 86400 overflowed.
  for (const char* text : {"999989999999919", "200000d", "106751991167301d", "9223372036854775807m"}) {
    Result<int64_t> seconds = ParseDurationSeconds(text);
    ASSERT_FALSE(seconds.ok()) << text << " -> " << *seconds;
    EXPECT_EQ(seconds.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(seconds.status().message().find("longer than 100 years"), std::string::npos);
  }
  EXPECT_EQ(*ParseDurationSeconds("36600d"), int64_t{36600} * 86400);
}

TEST(ParsePipelineConfig, ReadsTheS3ExampleShippedInTheRepository) {
  auto cfg = LoadPipelineConfig(std::string(SLUICE_SOURCE_DIR) + "/examples/s3_daily/daily.toml",
                                Env({{"PGPASSWORD", "pw"}}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->name, "daily_orders");
  EXPECT_TRUE(cfg->source.is_s3());
  EXPECT_TRUE(cfg->source.is_incremental());
  EXPECT_EQ(cfg->source.concurrency, 8);
  EXPECT_EQ(cfg->s3.region, "eu-central-1");
  EXPECT_EQ(cfg->s3.endpoint, "");
  EXPECT_EQ(cfg->state.url, cfg->destination.url);
  ASSERT_TRUE(cfg->schedule.has_value());
  EXPECT_EQ(cfg->schedule->cron, "0 3 * * *");
  EXPECT_EQ(cfg->schedule->timezone, "Europe/Berlin");
  EXPECT_FALSE(cfg->schedule->run_on_start);
  EXPECT_TRUE(cfg->server.configured);
  EXPECT_EQ(cfg->server.listen, "127.0.0.1:9187");
}

TEST(ParsePipelineConfig, IncrementalKeysAreChecked) {
  auto parse = [](const std::string& extra) {
    return ParsePipelineConfig(
        "[source]\npath = \"s3://b/p/\"\n" + extra + "\n[destination]\ntype = \"null\"\n", "p.toml", Env({}));
  };
  EXPECT_TRUE(parse("batch = \"per_file\"\nmodified_within = \"24h\"").ok());
  EXPECT_EQ(parse("modified_within = \"24h\"")->source.modified_within_seconds, 86400);
  auto bad_batch = parse("batch = \"each\"");
  ASSERT_FALSE(bad_batch.ok());
  EXPECT_NE(bad_batch.status().message().find("[source] batch"), std::string::npos);
  EXPECT_FALSE(parse("concurrency = 0").ok());
  EXPECT_FALSE(parse("modified_within = \"soon\"").ok());
  // Local paths are not incremental unless asked; stdin never can be.
  auto local =
      ParsePipelineConfig("[source]\npath = \"in/\"\n[destination]\ntype = \"null\"\n", "p.toml", Env({}));
  ASSERT_TRUE(local.ok());
  EXPECT_FALSE(local->source.is_incremental());
  EXPECT_FALSE(local->uses_state());
  auto stdin_inc = ParsePipelineConfig(
      "[source]\npath = \"-\"\nincremental = true\n[destination]\ntype = \"null\"\n", "p.toml", Env({}));
  ASSERT_FALSE(stdin_inc.ok());
  EXPECT_NE(stdin_inc.status().message().find("stdin"), std::string::npos);
  auto both = ParsePipelineConfig(
      "[source]\npath = \"in/\"\n[destination]\ntype = \"null\"\n[state]\nurl = \"postgresql://x/y\"\npath = "
      "\"s.db\"\n",
      "p.toml", Env({}));
  EXPECT_FALSE(both.ok());
  auto addressing = parse("[s3]\naddressing = \"dns\"");
  ASSERT_FALSE(addressing.ok());
  EXPECT_NE(addressing.status().message().find("[s3] addressing"), std::string::npos);
  auto schedule = ParsePipelineConfig(
      "[source]\npath = \"in/\"\n[destination]\ntype = \"null\"\n[schedule]\nevery = \"1h\"\ncron = \"* * * "
      "* *\"\n",
      "p.toml", Env({}));
  EXPECT_FALSE(schedule.ok());
}

// libpq would split "p@ss..." at its first '@' and print the rest as a host:
// each URL key refuses it at load time, by name, without echoing it.
TEST(ParsePipelineConfig, UrlsLibpqWouldMisreadAreRefusedNamingTheKeyNotTheValue) {
  const std::string bad = "postgresql://loader:p@ss:w/rd#S3cr3t?&%x@127.0.0.1:5432/shop";
  const std::string good = "postgresql://loader:p%40ss@127.0.0.1:5432/shop";
  auto file = [](const std::string& source, const std::string& state, const std::string& destination) {
    return "[source]\ntype = \"postgres_cdc\"\npublication = \"p\"\nurl = '" + source +
           "'\n[state]\nurl = '" + state + "'\n[destination]\ntype = \"postgres\"\nurl = '" + destination +
           "'\n";
  };
  for (const auto& [toml, key] :
       {std::pair{file(bad, good, good), "[source] url"}, std::pair{file(good, bad, good), "[state] url"},
        std::pair{file(good, good, bad), "[destination] url"}}) {
    auto cfg = ParsePipelineConfig(toml, "cdc.toml");
    ASSERT_FALSE(cfg.ok()) << key;
    EXPECT_EQ(cfg.status().code(), StatusCode::kInvalidArgument);
    const std::string& message = cfg.status().message();
    EXPECT_EQ(message.rfind(std::string(key) + ": the password contains a raw '@'; write it as %40", 0), 0u)
        << message;
    for (const char* piece : {"ss:w", "rd#S3", "S3cr3t", "127.0.0.1"}) {
      EXPECT_EQ(message.find(piece), std::string::npos) << piece << " in " << message;
    }
  }
  EXPECT_TRUE(ParsePipelineConfig(file(good, good, good), "cdc.toml").ok());
  // A "${" inside a password is not echoed either.
  auto dollar = ParsePipelineConfig(file(good, good, "postgresql://u:ab${cd!efgh}@h/db"), "cdc.toml");
  ASSERT_FALSE(dollar.ok());
  EXPECT_EQ(dollar.status().message().find("efgh"), std::string::npos) << dollar.status().message();
}

TEST(ParsePipelineConfig, ReadsTheCdcContractKeys) {
  auto cfg = ParsePipelineConfig(R"TOML(
[source]
type = "postgres_cdc"
url = "postgresql://replicator:secret@127.0.0.1:5432/app"
publication = "sluice_pub"
tables = ["public.orders", "public.customers"]
slot = "sluice_orders"
max_table_sync_workers = 3
table_error_retry_delay_ms = 2500
table_error_retry_max_attempts = 7

[batch]
max_rows = 500
max_bytes = "2MB"
max_fill_ms = 250

[destination]
type = "postgres"
url = "postgresql://postgres@127.0.0.1:5432/replica"
schema = "mirror"

[state]
url = "postgresql://postgres@127.0.0.1:5432/replica"
)TOML",
                                 "cdc.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_TRUE(cfg->source.is_cdc());
  EXPECT_EQ(cfg->source.publication, "sluice_pub");
  EXPECT_EQ(cfg->source.tables, (std::vector<std::string>{"public.orders", "public.customers"}));
  EXPECT_EQ(cfg->source.slot, "sluice_orders");
  EXPECT_EQ(cfg->source.max_table_sync_workers, 3);
  EXPECT_EQ(cfg->source.table_error_retry_delay_ms, 2500);
  EXPECT_EQ(cfg->source.table_error_retry_max_attempts, 7);
  EXPECT_EQ(cfg->batch.max_rows, 500);
  EXPECT_EQ(cfg->batch.max_bytes, 2000000);  // MB is 10^6, MiB 2^20
  EXPECT_EQ(cfg->batch.max_fill_ms, 250);
  EXPECT_EQ(cfg->destination.schema, "mirror");
  EXPECT_EQ(cfg->state.url, "postgresql://postgres@127.0.0.1:5432/replica");
}

TEST(ParsePipelineConfig, CdcSlotDefaultsToThePipelineNameAndBadOnesAreRejected) {
  const std::string base =
      "[source]\ntype = \"postgres_cdc\"\nurl = \"postgresql://h/db\"\npublication = \"p\"\n";
  auto cfg = ParsePipelineConfig(base + "[destination]\ntype = \"stdout\"\n", "dir/My-Orders.toml");
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_EQ(cfg->source.slot, "sluice_my_orders");
  auto bad = ParsePipelineConfig(base + "slot = \"Bad-Slot\"\n[destination]\ntype = \"stdout\"\n", "x.toml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("[source] slot"), std::string::npos);
  auto dest = ParsePipelineConfig(base + "[destination]\ntype = \"duckdb\"\npath = \"x.db\"\ntable = \"t\"\n",
                                  "x.toml");
  ASSERT_FALSE(dest.ok());
  EXPECT_NE(dest.status().message().find("cannot take changes"), std::string::npos);
  auto sched =
      ParsePipelineConfig(base + "[destination]\ntype = \"stdout\"\n[schedule]\nevery = \"1h\"\n", "x.toml");
  ASSERT_FALSE(sched.ok());
  EXPECT_NE(sched.status().message().find("continuously"), std::string::npos);
}

TEST(ParsePipelineConfig, ReadsTheCdcExampleShippedInTheRepository) {
  auto cfg = LoadPipelineConfig(std::string(SLUICE_SOURCE_DIR) + "/examples/postgres_cdc/cdc.toml", Env({}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  EXPECT_TRUE(cfg->source.is_cdc());
  EXPECT_EQ(cfg->source.url, "postgresql://replicator:secret@127.0.0.1:5432/app");
}

}  // namespace
}  // namespace sluice::service
