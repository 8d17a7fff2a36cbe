// End-to-end tests of PostgreSQL change data capture (`sluice run` of a
// postgres_cdc pipeline) against a real PostgreSQL 15 with wal_level =
// logical and logical_decoding_work_mem = 64kB, so that any transaction
// over 64 kB of changes is streamed while in progress.
//
// The replica lives in schema `replica` of the source database, so that
// source and destination tables are compared in SQL, row by row, with
// EXCEPT ALL both ways; the state store is the same database (exactly once).
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <iostream>
#include <random>
#include <thread>

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "e2e/e2e_support.h"

namespace sluice::e2e {
namespace {

using sluice::testing::CliProcess;
using sluice::testing::PgServerOptions;

PgServer* CdcPg() {
  static std::unique_ptr<PgServer> server;
  static bool tried = false;
  if (!tried) {
    tried = true;
    PgServerOptions options;
    options.extra_settings = {"logical_decoding_work_mem = '64kB'", "max_replication_slots = 40",
                              "max_wal_senders = 40", "wal_sender_timeout = '20s'"};
    auto started = PgServer::Start(options);
    if (!started.ok()) {
      ADD_FAILURE() << "cannot start PostgreSQL: " << started.status().ToString();
      return nullptr;
    }
    server = std::move(started).value();
  }
  return server.get();
}

class CdcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pg_ = CdcPg();
    ASSERT_NE(pg_, nullptr);
    db_ = DbNameForCurrentTest();
    ASSERT_TRUE(pg_->CreateDatabase(db_).ok());
    slot_ = db_.substr(0, 60);
  }

  void TearDown() override {
    for (auto& proc : procs_) {
      if (proc->Running()) proc->Kill(SIGKILL);
      (void)proc->Wait();
    }
    // Free the slot so that the server's slot count does not run out.
    for (int i = 0; i < 50; ++i) {
      auto dropped = pg_->Exec(db_,
                               "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE "
                               "slot_name = '" +
                                   slot_ + "'");
      if (dropped.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }

  void Exec(const std::string& sql) {
    ASSERT_TRUE(pg_->Exec(db_, sql).ok()) << pg_->Exec(db_, sql).ToString();
  }
  std::string Scalar(const std::string& sql) {
    auto v = pg_->QueryScalar(db_, sql);
    return v.ok() ? *v : "ERROR: " + v.status().message();
  }

  std::string Config(const std::string& tables, const std::string& destination = "",
                     const std::string& source_extra = "") {
    std::string dest = destination.empty() ? "[destination]\ntype = \"postgres\"\nurl = '" + pg_->Url(db_) +
                                                 "'\nschema = \"replica\"\n"
                                           : destination;
    return "[source]\ntype = \"postgres_cdc\"\nurl = '" + pg_->Url(db_) +
           "'\npublication = \"pub\"\n"
           "tables = [" +
           tables + "]\nslot = \"" + slot_ +
           "\"\nmax_table_sync_workers = 2\npublication_refresh_ms = 500\n"
           "table_error_retry_delay_ms = 1000\n" +
           source_extra + "\n[batch]\nmax_rows = 2000\nmax_bytes = \"1MB\"\nmax_fill_ms = 100\n\n" + dest +
           "\n[state]\nurl = '" + pg_->Url(db_) + "'\n";
  }

  CliProcess* Start(const std::string& toml) {
    std::string file = dir_.Write("cdc.toml", toml);
    auto proc = CliProcess::Start({"run", file}, CliOptions{});
    EXPECT_TRUE(proc.ok());
    if (!proc.ok()) return nullptr;
    procs_.push_back(std::move(proc).value());
    return procs_.back().get();
  }

  /// Rows that differ between public.T and replica.T (EXCEPT ALL both ways);
  /// "" when equal.
  std::string Diff(const std::string& table) {
    auto v =
        pg_->QueryScalar(db_, "SELECT (SELECT count(*) FROM (SELECT s::text FROM public." + table +
                                  " s EXCEPT ALL SELECT r::text FROM replica." + table +
                                  " r) a) || ' ' || (SELECT count(*) FROM (SELECT r::text FROM replica." +
                                  table + " r EXCEPT ALL SELECT s::text FROM public." + table + " s) b)");
    if (!v.ok()) return v.status().message();
    return *v == "0 0" ? "" : "source-only/replica-only rows: " + *v;
  }

  /// Waits until every table equals its replica.
  ::testing::AssertionResult WaitEqual(const std::vector<std::string>& tables, CliProcess* proc,
                                       int timeout_ms = 60000) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
      last.clear();
      for (const auto& table : tables) {
        std::string diff = Diff(table);
        if (!diff.empty()) last += table + ": " + diff + "; ";
      }
      if (last.empty()) return ::testing::AssertionSuccess();
      if (proc != nullptr && !proc->Running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    return ::testing::AssertionFailure() << last << "\n--- sluice stderr ---\n"
                                         << (proc ? proc->StderrSoFar().substr(0, 6000) : "");
  }

  PgServer* pg_ = nullptr;
  std::string db_;
  std::string slot_;
  TempDir dir_;
  std::vector<std::unique_ptr<CliProcess>> procs_;
};

constexpr const char* kTypesTable = R"sql(
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE TABLE alltypes(
  id int PRIMARY KEY, b bool, i2 int2, i4 int4, i8 int8, f4 float4, f8 float8, n numeric, n2 numeric(12,3),
  t text, vc varchar(20), c char(5), by bytea, d date, tm time, ttz timetz, ts timestamp, tstz timestamptz,
  iv interval, u uuid, j json, jb jsonb, ip inet, ci cidr, mac macaddr, m mood, p posint,
  ai int[], at text[], am mood[], ats timestamptz[], big text);
ALTER TABLE alltypes ALTER COLUMN big SET STORAGE EXTERNAL;
INSERT INTO alltypes VALUES
 (1, true, 1, 2, 3, 1.5, 2.25, 1.1, 2.345, 'hello', 'v', 'c', '\x0102ff', '2020-01-01', '12:34:56.789',
  '12:00:00+02', '2020-01-01 01:02:03.456789', 'infinity', '1 year 2 mons 3 days 04:05:06.7',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"x": [1,2]}', '{"y": null}', '10.0.0.1/8', '192.168.0.0/16',
  '08:00:2b:01:02:03', 'happy', 5, '{1,NULL,3}', '{"a b",NULL,"c\"d"}', '{sad,ok}',
  '{"2020-01-01 00:00:00+00",NULL,infinity}', repeat('B', 100000)),
 (2, false, -32768, -2147483648, -9223372036854775808, 'NaN', '-Infinity', 'NaN', NULL,
  E'tab\there\nnewline \\ back', NULL, NULL, '\x', '-infinity', '00:00', '23:59:59-11', '-infinity',
  '2000-01-01 00:00:00+00', '-3 days -00:00:01', NULL, '[]', '[]', '::1', '::/0', 'ff:ff:ff:ff:ff:ff', 'sad', 1,
  '{}', '{}', '{}', '{}', 'small'),
 (3, NULL, 32767, 2147483647, 9223372036854775807, 'Infinity', 1e308,
  (repeat('9', 500) || '.' || repeat('1', 500))::numeric, 0, 'ünïcødé ☃', 'x', 'abcde', NULL, '4713-01-01 BC',
  '24:00', NULL, '294276-12-31 23:59:59.999999', '1999-12-31 23:59:59.999999-08', NULL, NULL, 'null', '"str"',
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{ok,NULL}', NULL, NULL);
CREATE TABLE plain(id bigint PRIMARY KEY, note text, amount numeric(12,2));
INSERT INTO plain SELECT g, 'note ' || g, g * 1.5 FROM generate_series(1, 5000) g;
CREATE TABLE nokey(a int, b text);
ALTER TABLE nokey REPLICA IDENTITY FULL;
INSERT INTO nokey VALUES (1, 'x'), (1, 'x'), (2, NULL);
CREATE TABLE byindex(code text NOT NULL, v int, extra text);
CREATE UNIQUE INDEX byindex_code ON byindex(code);
ALTER TABLE byindex REPLICA IDENTITY USING INDEX byindex_code;
INSERT INTO byindex SELECT 'c' || g, g, NULL FROM generate_series(1, 100) g;
)sql";

TEST_F(CdcTest, EveryTypeRoundTripsThroughCopyAndStreaming) {
  Exec(kTypesTable);
  CliProcess* proc =
      Start(Config("\"public.alltypes\", \"public.plain\", \"public.nokey\", \"public.byindex\""));
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  ASSERT_TRUE(WaitEqual({"alltypes", "plain", "nokey", "byindex"}, proc));

  // Inserts, updates (one leaves the TOASTed column unchanged, one changes
  // the key), deletes, a transaction large enough to be streamed, an
  // aborted one, a subtransaction rolled back inside a streamed one, and a
  // truncate followed by new rows.
  Exec(R"sql(
    INSERT INTO alltypes (id, t, big, am) VALUES (4, 'four', repeat('Q', 70000), '{happy}');
    UPDATE alltypes SET t = 'updated', n = n + 1 WHERE id IN (1, 4);
    UPDATE alltypes SET id = 20 WHERE id = 2;
    UPDATE alltypes SET f4 = 'NaN', tstz = '-infinity', iv = '-1 mons' WHERE id = 3;
    DELETE FROM plain WHERE id BETWEEN 100 AND 199;
    UPDATE plain SET note = NULL WHERE id % 7 = 0;
    INSERT INTO plain SELECT g, repeat('s', 50), g FROM generate_series(100000, 130000) g;
    UPDATE nokey SET b = 'y' WHERE a = 2;
    DELETE FROM nokey WHERE a = 1 AND ctid = (SELECT min(ctid) FROM nokey WHERE a = 1);
    UPDATE byindex SET v = -v WHERE v % 2 = 0;
    UPDATE byindex SET code = 'renamed' WHERE code = 'c1';
    DELETE FROM byindex WHERE v % 5 = 0;
  )sql");
  Exec("BEGIN; INSERT INTO plain VALUES (900000, 'aborted', 1); ROLLBACK;");
  Exec(R"sql(
    BEGIN;
    INSERT INTO plain SELECT g, 'kept', g FROM generate_series(200000, 220000) g;
    SAVEPOINT s1;
    INSERT INTO plain SELECT g, 'rolled back', g FROM generate_series(300000, 320000) g;
    ROLLBACK TO SAVEPOINT s1;
    UPDATE plain SET amount = amount + 1 WHERE id BETWEEN 200000 AND 200100;
    COMMIT;
  )sql");
  Exec("TRUNCATE nokey; INSERT INTO nokey VALUES (5, 'after truncate');");
  ASSERT_TRUE(WaitEqual({"alltypes", "plain", "nokey", "byindex"}, proc));

  // The update that did not touch `big` kept its 100,000 characters.
  EXPECT_EQ(Scalar("SELECT length(big) FROM replica.alltypes WHERE id = 1"), "100000");
  // The large transactions really were streamed.
  EXPECT_NE(Scalar("SELECT stream_txns FROM pg_stat_replication_slots WHERE slot_name = '" + slot_ + "'"),
            "0");
  EXPECT_EQ(Scalar("SELECT count(*) FROM replica.plain WHERE note = 'rolled back' OR note = 'aborted'"), "0");
  // Table states and the confirmed position are in the state store.
  EXPECT_EQ(
      Scalar("SELECT string_agg(state, ',') FROM (SELECT DISTINCT state FROM sluice.cdc_table_states) s"),
      "ready");

  proc->Kill(SIGTERM);
  auto result = proc->Wait();
  EXPECT_EQ(result.exit_code, 0) << Describe(result);
  EXPECT_NE(result.err.find("stopped;"), std::string::npos) << Describe(result);
}

TEST_F(CdcTest, SameRowChangedManyTimesInOneBatchEndsAsAtTheSource) {
  Exec(
      "CREATE TABLE t(id int PRIMARY KEY, v int, note text); INSERT INTO t SELECT g, 0, 'seed' FROM "
      "generate_series(1, 10) g;");
  CliProcess* proc = Start(Config("\"t\""));
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  // One transaction: chains of updates of one row, key changes that reuse
  // a freed key, delete and re-insert of the same key.
  Exec(R"sql(
    BEGIN;
    INSERT INTO t VALUES (100, 1, 'new');
    UPDATE t SET v = 2 WHERE id = 100;
    UPDATE t SET id = 101 WHERE id = 100;
    UPDATE t SET v = 3 WHERE id = 101;
    DELETE FROM t WHERE id = 101;
    INSERT INTO t VALUES (101, 4, 'again');
    UPDATE t SET v = 5 WHERE id = 101;
    UPDATE t SET id = 200 WHERE id = 1;
    UPDATE t SET id = 1 WHERE id = 2;
    UPDATE t SET id = 2 WHERE id = 200;
    UPDATE t SET v = v + 1;
    UPDATE t SET v = v + 1 WHERE id % 2 = 0;
    COMMIT;
  )sql");
  // Many small transactions touching the same rows, batched together.
  for (int i = 0; i < 20; ++i)
    Exec("UPDATE t SET v = v * 2, note = 'round " + std::to_string(i) + "' WHERE id <= 5");
  EXPECT_TRUE(WaitEqual({"t"}, proc));
}

TEST_F(CdcTest, ConfirmedPositionAdvancesWhileOnlyUnpublishedTablesChange) {
  Exec("CREATE TABLE published(id int PRIMARY KEY); CREATE TABLE unpublished(id int, v text);");
  CliProcess* proc = Start(Config("\"published\""));
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  for (int i = 0; i < 20; ++i)
    Exec("INSERT INTO unpublished SELECT g, md5(g::text) FROM generate_series(1, 2000) g");
  const std::string target = Scalar("SELECT pg_current_wal_lsn()");
  std::string behind = "1";
  for (int i = 0; i < 300 && behind != "0"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    behind = Scalar("SELECT (confirmed_flush_lsn < '" + target +
                    "')::int FROM pg_replication_slots WHERE slot_name = '" + slot_ + "'");
  }
  EXPECT_EQ(behind, "0") << "slot still behind " << target << "\n" << proc->StderrSoFar();
}

TEST_F(CdcTest, ChangeEventsAsJsonLines) {
  Exec(
      "CREATE TABLE items(id int PRIMARY KEY, name text, price numeric, ok bool, doc jsonb);"
      "INSERT INTO items VALUES (1, 'one', 1.5, true, '{\"a\": 1}')");
  std::string out = dir_.path() + "/events.jsonl";
  CliProcess* proc = Start(Config("\"items\"", "[destination]\ntype = \"file\"\npath = '" + out + "'\n"));
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  Exec(
      "INSERT INTO items VALUES (2, 'two', NULL, false, NULL); UPDATE items SET name = 'uno' WHERE id = 1;"
      "UPDATE items SET id = 3 WHERE id = 2; DELETE FROM items WHERE id = 1; TRUNCATE items;");
  std::string text;
  for (int i = 0; i < 200; ++i) {
    std::ifstream in(out);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (text.find("\"op\":\"truncate\"") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(text.find("{\"op\":\"copy_start\",\"table\":\"public.items\"}"), std::string::npos) << text;
  EXPECT_NE(
      text.find("{\"op\":\"copy\",\"table\":\"public.items\",\"new\":{\"id\":1,\"name\":\"one\",\"price\":"
                "\"1.5\",\"ok\":true,\"doc\":{\"a\": 1}}}"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("\"op\":\"insert\",\"table\":\"public.items\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"new\":{\"id\":2,\"name\":\"two\",\"price\":null,\"ok\":false,\"doc\":null}"),
            std::string::npos)
      << text;
  // The key change carries the old key; the delete carries only the key.
  EXPECT_NE(
      text.find("\"new\":{\"id\":3,\"name\":\"two\",\"price\":null,\"ok\":false,\"doc\":null},\"old_key\":{"
                "\"id\":2}}"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("\"op\":\"delete\",\"table\":\"public.items\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"old_key\":{\"id\":1}}"), std::string::npos) << text;
  EXPECT_NE(text.find("\"commit_time\":\"20"), std::string::npos) << text;
  proc->Kill(SIGTERM);
  EXPECT_EQ(proc->Wait().exit_code, 0);
}

TEST_F(CdcTest, KillNineDuringCopyAndStreamingLosesAndRepeatsNothing) {
  Exec(
      "CREATE TABLE big(id bigint PRIMARY KEY, v text, n int);"
      "INSERT INTO big SELECT g, md5(g::text), 0 FROM generate_series(1, 300000) g;"
      // No key: a repeated insert would show up as a duplicate row.
      "CREATE TABLE events(id bigint, v text); ALTER TABLE events REPLICA IDENTITY FULL;"
      "INSERT INTO events SELECT g, 'seed' FROM generate_series(1, 1000) g;");
  const std::string toml = Config("\"big\", \"events\"");
  std::mt19937 rng(std::random_device{}());
  SCOPED_TRACE("seed-free random kill points");

  // Kill during the initial copy.
  for (int round = 0; round < 2; ++round) {
    CliProcess* proc = Start(toml);
    ASSERT_NE(proc, nullptr);
    ASSERT_TRUE(proc->WaitForOutput("copying", 60000)) << proc->StderrSoFar();
    std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 400));
    proc->Kill(SIGKILL);
    (void)proc->Wait();
  }

  // Kill at random points while a workload runs.
  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::thread workload([&] {
    int64_t next_id = 1000000;
    while (!stop) {
      std::string sql = "BEGIN; INSERT INTO events SELECT g, 'w' FROM generate_series(" +
                        std::to_string(next_id) + ", " + std::to_string(next_id + 499) +
                        ") g; INSERT INTO big SELECT g, 'new', 1 FROM "
                        "generate_series(" +
                        std::to_string(next_id) + ", " + std::to_string(next_id + 499) +
                        ") g; UPDATE big SET n = n + 1 WHERE id % 997 = " + std::to_string(next_id % 997) +
                        "; DELETE FROM big WHERE id = " + std::to_string(next_id / 1000) + "; COMMIT;";
      (void)pg_->Exec(db_, sql);
      next_id += 500;
      if (++batches % 8 == 0) {
        // A transaction large enough to be streamed while in progress, and
        // to reach the destination in several pieces.
        (void)pg_->Exec(db_, "INSERT INTO events SELECT g, repeat('L', 100) FROM generate_series(" +
                                 std::to_string(next_id) + ", " + std::to_string(next_id + 29999) + ") g");
        next_id += 30000;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
  for (int round = 0; round < 4; ++round) {
    CliProcess* proc = Start(toml);
    ASSERT_NE(proc, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + rng() % 2000));
    proc->Kill(SIGKILL);
    (void)proc->Wait();
  }
  stop = true;
  workload.join();
  EXPECT_GT(batches.load(), 10);

  CliProcess* proc = Start(toml);
  ASSERT_NE(proc, nullptr);
  EXPECT_TRUE(WaitEqual({"big", "events"}, proc, 120000));
  EXPECT_EQ(Scalar("SELECT count(*) - count(DISTINCT id) FROM replica.events"), "0");
}

/// Starts `sluice serve` on the pipeline file `file` with a monitoring port.
struct Served {
  CliProcess* proc = nullptr;
  int port = 0;
};

/// A workload of small transactions into `events` (no key: a batch applied
/// twice shows as duplicate ids) and `big`, until `stop`.
void RunWorkload(PgServer* pg, const std::string& db, std::atomic<bool>* stop, std::atomic<int>* batches) {
  int64_t next_id = 1000000;
  while (!*stop) {
    std::string sql = "BEGIN; INSERT INTO events SELECT g, 'w' FROM generate_series(" +
                      std::to_string(next_id) + ", " + std::to_string(next_id + 199) +
                      ") g; UPDATE big SET n = n + 1 WHERE id % 97 = " + std::to_string(next_id % 97) +
                      "; COMMIT;";
    (void)pg->Exec(db, sql);
    next_id += 200;
    ++*batches;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

class CdcStandbyTest : public CdcTest {
 protected:
  Served Serve(const std::string& file) {
    auto started = CliProcess::Start({"serve", file, "--listen", "127.0.0.1:0"});
    EXPECT_TRUE(started.ok());
    if (!started.ok()) return {};
    procs_.push_back(std::move(started).value());
    Served s{procs_.back().get(), 0};
    if (!s.proc->WaitForOutput("monitoring on http://", 30000)) return s;
    std::smatch m;
    std::string err = s.proc->StderrSoFar();
    if (std::regex_search(err, m, std::regex("monitoring on http://127\\.0\\.0\\.1:([0-9]+)")))
      s.port = std::stoi(m[1]);
    return s;
  }
  nlohmann::json Status(const Served& s) {
    httplib::Client http("127.0.0.1", s.port);
    auto res = http.Get("/status");
    if (!res) return nullptr;
    return nlohmann::json::parse(res->body)["pipelines"][0];
  }
  int ReadyCode(const Served& s) {
    httplib::Client http("127.0.0.1", s.port);
    auto res = http.Get("/ready");
    return res ? res->status : 0;
  }
  std::string MakeTables() {
    Exec(
        "CREATE TABLE big(id bigint PRIMARY KEY, v text, n int);"
        "INSERT INTO big SELECT g, md5(g::text), 0 FROM generate_series(1, 20000) g;"
        "CREATE TABLE events(id bigint, v text); ALTER TABLE events REPLICA IDENTITY FULL;");
    return dir_.Write("standby.toml", Config("\"big\", \"events\"") + "lease = \"3s\"\n");
  }
  /// Two `serve` processes on one pipeline: `a` streaming, `b` standing by.
  void StartActiveAndStandby(Served* a, Served* b) {
    std::string file = MakeTables();
    *a = Serve(file);
    ASSERT_GT(a->port, 0);
    ASSERT_TRUE(a->proc->WaitForOutput("streaming from slot", 60000)) << a->proc->StderrSoFar();
    *b = Serve(file);
    ASSERT_GT(b->port, 0);
    ASSERT_TRUE(b->proc->WaitForOutput("stands by", 30000)) << b->proc->StderrSoFar();
  }
};

TEST_F(CdcStandbyTest, StandbyTakesOverAfterKillNineOfTheActiveAndNothingIsAppliedTwice) {
  Served a, b;
  ASSERT_NO_FATAL_FAILURE(StartActiveAndStandby(&a, &b));
  auto standby = Status(b);
  EXPECT_EQ(standby["state"], "standby") << standby.dump();
  EXPECT_EQ(standby["role"], "standby") << standby.dump();
  EXPECT_EQ(standby["workers"].size(), 2u) << standby.dump();
  EXPECT_EQ(ReadyCode(b), 200) << "a standby that can take over is ready";
  EXPECT_EQ(Status(a)["role"], "active");

  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::thread workload([&] { RunWorkload(pg_, db_, &stop, &batches); });
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  a.proc->Kill(SIGKILL);
  auto killed = std::chrono::steady_clock::now();
  (void)a.proc->Wait();
  ASSERT_TRUE(b.proc->WaitForOutput("is active (lease epoch 2)", 30000)) << b.proc->StderrSoFar();
  double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::cout << "failover: the standby was active " << took << " s after kill -9 of the active process\n";
  EXPECT_LT(took, 10.0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  stop = true;
  workload.join();
  EXPECT_GT(batches.load(), 20);
  EXPECT_TRUE(WaitEqual({"big", "events"}, b.proc, 60000));
  EXPECT_EQ(Scalar("SELECT count(*) - count(DISTINCT id) FROM replica.events"), "0");
  EXPECT_EQ(Status(b)["state"], "streaming");
}

TEST_F(CdcStandbyTest, AnActivePausedPastItsLeaseIsFencedAndStepsDownWhenResumed) {
  Served a, b;
  ASSERT_NO_FATAL_FAILURE(StartActiveAndStandby(&a, &b));

  std::atomic<bool> stop{false};
  std::atomic<int> batches{0};
  std::thread workload([&] { RunWorkload(pg_, db_, &stop, &batches); });
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  a.proc->Kill(SIGSTOP);
  // The standby takes over once the paused one's lease ran out (3 s), and
  // ends its walsender instead of waiting for wal_sender_timeout.
  ASSERT_TRUE(b.proc->WaitForOutput("is active (lease epoch 2)", 30000)) << b.proc->StderrSoFar();
  ASSERT_TRUE(b.proc->WaitForOutput("ending that backend", 30000)) << b.proc->StderrSoFar();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  a.proc->Kill(SIGCONT);
  // The old active one notices it lost the lease and stands by; whatever
  // it still had in flight was refused by the fence.
  ASSERT_TRUE(a.proc->WaitForOutput("lost the lease", 30000)) << a.proc->StderrSoFar();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  workload.join();
  EXPECT_TRUE(WaitEqual({"big", "events"}, b.proc, 60000));
  EXPECT_EQ(Scalar("SELECT count(*) - count(DISTINCT id) FROM replica.events"), "0");
  auto old = Status(a);
  EXPECT_EQ(old["state"], "standby") << old.dump();
  EXPECT_EQ(Status(b)["role"], "active");
  EXPECT_EQ(Scalar("SELECT epoch FROM sluice.leases WHERE name = 'run'"), "2");

  // And it takes over again when the new active one is stopped (SIGTERM
  // releases the lease at once).
  // Updates and deletes too: the process active for the second time
  // starts from a clean destination session (no staging table of its first).
  Exec("INSERT INTO events SELECT g, 'late' FROM generate_series(1, 100) g");
  Exec("UPDATE big SET n = n + 10 WHERE id < 300; DELETE FROM big WHERE id BETWEEN 400 AND 420");
  b.proc->Kill(SIGTERM);
  EXPECT_EQ(b.proc->Wait().exit_code, 0);
  ASSERT_TRUE(a.proc->WaitForOutput("(lease epoch 3)", 30000)) << a.proc->StderrSoFar();
  EXPECT_TRUE(WaitEqual({"big", "events"}, a.proc, 60000));
  EXPECT_EQ(Scalar("SELECT count(*) - count(DISTINCT id) FROM replica.events"), "0");
}

TEST_F(CdcTest, AtLeastOnceWithAnotherStateStoreStillConvergesAfterKillNine) {
  Exec(
      "CREATE TABLE t(id bigint PRIMARY KEY, v int, note text);"
      "INSERT INTO t SELECT g, 0, 'seed' FROM generate_series(1, 20000) g;");
  // The state in a SQLite file: the destination cannot hold the checkpoint,
  // so a batch may be applied again after a crash; it must do no harm.
  std::string toml = Config("\"t\"");
  toml = toml.substr(0, toml.find("[state]")) + "[state]\npath = '" + dir_.path() + "/state.db'\n";
  std::mt19937 rng(std::random_device{}());
  std::atomic<bool> stop{false};
  std::thread workload([&] {
    int64_t next_id = 100000;
    while (!stop) {
      (void)pg_->Exec(
          db_, "BEGIN; INSERT INTO t SELECT g, 1, 'w' FROM generate_series(" + std::to_string(next_id) +
                   ", " + std::to_string(next_id + 999) +
                   ") g; UPDATE t SET v = v + 1 WHERE id % 101 = " + std::to_string(next_id % 101) +
                   "; DELETE FROM t WHERE id = " + std::to_string(next_id / 1000) + "; COMMIT;");
      next_id += 1000;
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
  });
  for (int round = 0; round < 3; ++round) {
    CliProcess* proc = Start(toml);
    ASSERT_NE(proc, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500 + rng() % 1500));
    proc->Kill(SIGKILL);
    (void)proc->Wait();
  }
  stop = true;
  workload.join();
  CliProcess* proc = Start(toml);
  ASSERT_NE(proc, nullptr);
  EXPECT_TRUE(WaitEqual({"t"}, proc, 120000));
  EXPECT_NE(proc->StderrSoFar().find("at least once"), std::string::npos) << proc->StderrSoFar();
}

TEST_F(CdcTest, ReconnectsAfterPostgresRestart) {
  Exec("CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');");
  CliProcess* proc = Start(Config("\"t\""));
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  Exec("INSERT INTO t SELECT g, 'before' FROM generate_series(2, 1000) g");
  ASSERT_TRUE(WaitEqual({"t"}, proc));
  ASSERT_TRUE(pg_->Stop(sluice::testing::PgStopMode::kFast).ok());
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_TRUE(pg_->StartAgain().ok());
  Exec(
      "INSERT INTO t SELECT g, 'after' FROM generate_series(1001, 2000) g; UPDATE t SET v = 'u' WHERE id < "
      "10");
  EXPECT_TRUE(WaitEqual({"t"}, proc, 90000));
  EXPECT_NE(proc->StderrSoFar().find("reconnecting"), std::string::npos);
  EXPECT_TRUE(proc->Running());
}

TEST_F(CdcTest, ColumnsAddedDroppedAndRenamedWhileStreaming) {
  Exec("CREATE TABLE t(id int PRIMARY KEY, a text, b int); INSERT INTO t VALUES (1, 'x', 1);");
  CliProcess* proc = Start(Config("\"t\""));
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  Exec(
      "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT '2020-01-01'; INSERT INTO t VALUES (2, 'y', 2, "
      "now());");
  Exec(
      "BEGIN; INSERT INTO t VALUES (3, 'z', 3, now()); ALTER TABLE t DROP COLUMN b; INSERT INTO t VALUES (4, "
      "'w', now()); COMMIT;");
  Exec("ALTER TABLE t RENAME COLUMN a TO label; UPDATE t SET label = label || '!' WHERE id <= 2;");
  EXPECT_TRUE(WaitEqual({"t"}, proc));
  EXPECT_EQ(Scalar("SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = "
                   "'replica.t'::regclass AND attnum > 0 AND NOT attisdropped"),
            "id,label,c");
}

TEST_F(CdcTest, TableAddedToThePublicationJoinsWithoutRestart) {
  Exec("CREATE TABLE first(id int PRIMARY KEY); INSERT INTO first VALUES (1);");
  CliProcess* proc = Start(Config("\"first\""));
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  Exec(
      "CREATE TABLE later(id int PRIMARY KEY, v text); INSERT INTO later SELECT g, 'old' FROM "
      "generate_series(1, 3000) g;");
  Exec("ALTER PUBLICATION pub ADD TABLE later");
  Exec(
      "INSERT INTO later SELECT g, 'new' FROM generate_series(3001, 4000) g; UPDATE later SET v = 'u' WHERE "
      "id "
      "< 100; INSERT INTO first VALUES (2);");
  EXPECT_TRUE(WaitEqual({"first", "later"}, proc));
  EXPECT_NE(proc->StderrSoFar().find("later joined the publication"), std::string::npos)
      << proc->StderrSoFar();

  // A table without a usable replica identity that joins later errors
  // alone, with its name; the others go on.
  Exec("CREATE TABLE keyless(a int); ALTER PUBLICATION pub ADD TABLE keyless;");
  std::string state;
  for (int i = 0; i < 150 && state.find("errored") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    state = Scalar(
        "SELECT state || ' ' || coalesce(error, '') FROM sluice.cdc_table_states WHERE table_name = "
        "'public.keyless'");
  }
  EXPECT_NE(state.find("public.keyless has no usable replica identity"), std::string::npos) << state;
  Exec("INSERT INTO first VALUES (3); UPDATE later SET v = 'again' WHERE id = 1;");
  EXPECT_TRUE(WaitEqual({"first", "later"}, proc));
  EXPECT_TRUE(proc->Running());
}

TEST_F(CdcTest, TableThatCannotBeAppliedErrorsAndIsRetried) {
  Exec(
      "CREATE TABLE good(id int PRIMARY KEY); CREATE TABLE bad(id int PRIMARY KEY, gone text);"
      "INSERT INTO good VALUES (1); INSERT INTO bad VALUES (1, 'x');");
  // Enough attempts that the retries outlast a slow machine.
  CliProcess* proc = Start(Config("\"good\", \"bad\"", "", "table_error_retry_max_attempts = 1000\n"));
  ASSERT_NE(proc, nullptr);
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  ASSERT_TRUE(WaitEqual({"good", "bad"}, proc));
  // A view on the replica blocks dropping the column there.
  Exec("CREATE VIEW replica.bad_view AS SELECT gone FROM replica.bad");
  Exec("ALTER TABLE bad DROP COLUMN gone; INSERT INTO bad VALUES (2); INSERT INTO good VALUES (2);");
  std::string state;
  for (int i = 0; i < 150 && state.find("errored") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    state = Scalar(
        "SELECT state || ' ' || coalesce(error, '') FROM sluice.cdc_table_states WHERE table_name = "
        "'public.bad'");
  }
  EXPECT_NE(state.find("errored"), std::string::npos) << state << proc->StderrSoFar();
  EXPECT_NE(state.find("bad_view"), std::string::npos) << state;
  // The other table goes on.
  EXPECT_TRUE(WaitEqual({"good"}, proc));
  // Fixed: the next retry copies the table again and it catches up.
  Exec("DROP VIEW replica.bad_view");
  Exec("INSERT INTO bad VALUES (3)");
  EXPECT_TRUE(WaitEqual({"good", "bad"}, proc));
}

TEST_F(CdcTest, ClearErrorsForMisconfiguredSources) {
  Exec(
      "CREATE TABLE t(id int PRIMARY KEY); CREATE TABLE nokey(a int);"
      "CREATE ROLE plainuser LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO plainuser;");
  {
    auto r = RunPipeline(dir_, Config("\"public.missing\""));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("table public.missing does not exist"), std::string::npos) << Describe(r);
  }
  {
    // validate is as strict as run, and a failed start leaves nothing behind:
    // the publication is not created for a table that cannot be replicated.
    auto v = ValidatePipeline(dir_, Config("\"nokey\""));
    EXPECT_NE(v.exit_code, 0) << Describe(v);
    EXPECT_NE(v.err.find("public.nokey has no usable replica identity"), std::string::npos) << Describe(v);
    auto r = RunPipeline(dir_, Config("\"nokey\""));
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("public.nokey has no usable replica identity"), std::string::npos) << Describe(r);
    EXPECT_EQ(*pg_->QueryScalar(db_, "SELECT count(*) FROM pg_publication WHERE pubname = 'pub'"), "0");
    EXPECT_EQ(*pg_->QueryScalar(db_, "SELECT count(*) FROM pg_replication_slots"), "0");
  }
  {
    std::string toml = Config("\"t\"");
    std::string url = pg_->Url(db_);
    std::string plain = pg_->Url(db_, "plainuser");
    toml.replace(toml.find(url), url.size(), plain);
    auto r = RunPipeline(dir_, toml);
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("lacks the REPLICATION attribute"), std::string::npos) << Describe(r);
  }
  {
    CliProcess* first = Start(Config("\"t\""));
    ASSERT_NE(first, nullptr);
    ASSERT_TRUE(first->WaitForOutput("streaming from slot", 60000)) << first->StderrSoFar();
    auto r = RunPipeline(dir_, Config("\"t\""), CliOptions{}, "second.toml");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find("is in use by another process"), std::string::npos) << Describe(r);
  }
}

TEST_F(CdcTest, ServeReportsReplicationInStatusAndMetrics) {
  Exec("CREATE TABLE t(id int PRIMARY KEY); INSERT INTO t VALUES (1), (2);");
  std::string file = dir_.Write("svc.toml", Config("\"t\""));
  auto started = CliProcess::Start({"serve", file, "--listen", "127.0.0.1:0"});
  ASSERT_TRUE(started.ok());
  procs_.push_back(std::move(started).value());
  CliProcess* proc = procs_.back().get();
  ASSERT_TRUE(proc->WaitForOutput("streaming from slot", 60000)) << proc->StderrSoFar();
  std::smatch m;
  std::string err = proc->StderrSoFar();
  ASSERT_TRUE(std::regex_search(err, m, std::regex("monitoring on http://127\\.0\\.0\\.1:([0-9]+)"))) << err;
  httplib::Client http("127.0.0.1", std::stoi(m[1]));
  Exec("INSERT INTO t SELECT g FROM generate_series(3, 102) g");
  ASSERT_TRUE(WaitEqual({"t"}, proc));
  nlohmann::json pipeline;
  for (int i = 0; i < 50; ++i) {
    auto res = http.Get("/status");
    ASSERT_TRUE(res);
    pipeline = nlohmann::json::parse(res->body)["pipelines"][0];
    if (pipeline["cdc"]["events"].get<int64_t>() >= 100) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(pipeline["state"], "streaming") << pipeline.dump();
  EXPECT_EQ(pipeline["cdc"]["events"], 100) << pipeline.dump();
  EXPECT_EQ(pipeline["cdc"]["copied_rows"], 2) << pipeline.dump();
  EXPECT_NE(pipeline["cdc"]["confirmed_lsn"], "0/0") << pipeline.dump();
  ASSERT_EQ(pipeline["tables"].size(), 1u) << pipeline.dump();
  EXPECT_EQ(pipeline["tables"][0]["table"], "public.t") << pipeline.dump();
  EXPECT_EQ(pipeline["tables"][0]["state"], "ready") << pipeline.dump();
  // Metrics follow the replicator's counters once a second.
  std::string body;
  for (int i = 0; i < 50 && body.find("sluice_cdc_events_total{pipeline=\"svc\"} 100\n") == std::string::npos;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto metrics = http.Get("/metrics");
    ASSERT_TRUE(metrics);
    body = metrics->body;
  }
  EXPECT_NE(body.find("sluice_cdc_events_total{pipeline=\"svc\"} 100\n"), std::string::npos) << body;
  EXPECT_NE(body.find("sluice_cdc_copied_rows_total{pipeline=\"svc\"} 2\n"), std::string::npos) << body;
  auto ready = http.Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  proc->Kill(SIGTERM);
  EXPECT_EQ(proc->Wait().exit_code, 0);
}

TEST(CdcErrors, WalLevelNotLogicalIsReportedAtOnce) {
  PgServerOptions options;
  options.logical = false;
  auto server = PgServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  ASSERT_TRUE((*server)->Exec("postgres", "CREATE TABLE t(id int PRIMARY KEY)").ok());
  TempDir dir;
  std::string toml =
      "[source]\ntype = \"postgres_cdc\"\nurl = '" + (*server)->Url("postgres") +
      "'\npublication = \"pub\"\ntables = [\"t\"]\n[destination]\ntype = \"stdout\"\n[state]\npath = '" +
      dir.path() + "/state.db'\n";
  auto r = RunPipeline(dir, toml);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("wal_level = replica"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("wal_level = logical"), std::string::npos) << Describe(r);
}

TEST(CdcErrors, InvalidatedSlotIsReportedWithWhatToDo) {
  PgServerOptions options;
  options.extra_settings = {"max_slot_wal_keep_size = '1MB'", "max_wal_size = '32MB'",
                            "min_wal_size = '32MB'"};
  auto server = PgServer::Start(options);
  ASSERT_TRUE(server.ok()) << server.status().ToString();
  PgServer* pg = server->get();
  ASSERT_TRUE(
      pg->Exec("postgres", "CREATE TABLE t(id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')").ok());
  TempDir dir;
  std::string toml = "[source]\ntype = \"postgres_cdc\"\nurl = '" + pg->Url("postgres") +
                     "'\npublication = \"pub\"\ntables = [\"t\"]\nslot = \"doomed\"\n[destination]\ntype = "
                     "\"null\"\n[state]\npath = '" +
                     dir.path() + "/state.db'\n";
  std::string file = dir.Write("cdc.toml", toml);
  {
    auto proc = CliProcess::Start({"run", file});
    ASSERT_TRUE(proc.ok());
    ASSERT_TRUE((*proc)->WaitForOutput("streaming from slot", 60000)) << (*proc)->StderrSoFar();
    (*proc)->Kill(SIGTERM);
    EXPECT_EQ((*proc)->Wait().exit_code, 0);
  }
  // While sluice is stopped, far more WAL than the slot may keep.
  std::string status;
  for (int i = 0; i < 20 && status != "lost"; ++i) {
    ASSERT_TRUE(pg->Exec("postgres", "INSERT INTO t SELECT g, repeat('x', 200) FROM generate_series(" +
                                         std::to_string(i * 20000 + 2) + ", " +
                                         std::to_string(i * 20000 + 20001) +
                                         ") g; SELECT pg_switch_wal(); CHECKPOINT;")
                    .ok());
    status =
        pg->QueryScalar("postgres", "SELECT wal_status FROM pg_replication_slots WHERE slot_name = 'doomed'")
            .ValueOr("?");
  }
  ASSERT_EQ(status, "lost");
  auto r = RunPipeline(dir, toml, CliOptions{}, "again.toml");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("replication slot doomed was invalidated"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("pg_drop_replication_slot('doomed')"), std::string::npos) << Describe(r);
}

}  // namespace
}  // namespace sluice::e2e
