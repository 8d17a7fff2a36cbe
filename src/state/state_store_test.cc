#include "state/state_store.h"
#include "state/state_test_support.h"

#include <gtest/gtest.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <iostream>
#include <latch>
#include <regex>
#include <set>
#include <thread>

#include "harness/pg_server.h"
#include "harness/temp_dir.h"
#include "state/http_url_key.h"
#include "state/migrations.h"
#include "state/postgres_identity.h"

namespace sluice::state {
namespace {

using testing::PgServer;
using testing::TempDir;

using Kind = sluice::state::test_support::StoreKind;
constexpr auto KindName = sluice::state::test_support::StoreKindName;
ObjectInfo Obj(std::string key, std::string etag, int64_t size = 10, int64_t modified = 1700000000000) {
  return ObjectInfo{std::move(key), std::move(etag), size, modified};
}

/// "url etag|last_modified" per validator, in order.
std::vector<std::string> Lines(const std::vector<HttpValidator>& validators) {
  std::vector<std::string> out;
  for (const auto& v : validators) out.push_back(v.url + " " + v.etag + "|" + v.last_modified);
  return out;
}

std::vector<std::string> Keys(const std::vector<ObjectInfo>& objects) {
  std::vector<std::string> keys;
  for (const auto& o : objects) keys.push_back(o.key + "@" + o.etag);
  return keys;
}

/// Whether store takes the pipeline's run lock within 10 s (for locks that
/// the server releases asynchronously).
bool EventuallyLocks(StateStore& store, const std::string& pipeline) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    auto taken = store.TryLockPipeline(pipeline);
    EXPECT_TRUE(taken.ok()) << taken.status().ToString();
    if (taken.ok() && *taken) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

using sluice::state::test_support::SharedPostgres;

class StateStoreTest : public sluice::state::test_support::StoreTest {
 protected:
  std::unique_ptr<StateStore> Open() {
    auto store = OpenStateStore(Config());
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }

  /// Runs SQL against the store's database (not for memory stores).
  std::string Scalar(const std::string& sql) {
    if (GetParam() == Kind::kPostgres) {
      auto v = server_->QueryScalar(db_, sql);
      EXPECT_TRUE(v.ok()) << v.status().ToString();
      return v.ok() ? *v : "<error>";
    }
    sqlite3* db = nullptr;
    std::string out = "<error>";
    if (sqlite3_open_v2(Config().path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK) {
      sqlite3_stmt* stmt = nullptr;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK) {
        int rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
          out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
        } else if (rc == SQLITE_DONE) {
          out = "";
        }
      }
      sqlite3_finalize(stmt);
    }
    EXPECT_NE(out, "<error>") << sql << ": " << sqlite3_errmsg(db);
    sqlite3_close(db);
    return out;
  }

  std::string Ledger() const { return GetParam() == Kind::kPostgres ? "sluice.file_ledger" : "file_ledger"; }

  /// The HTTP validators table.
  std::string Validators() const {
    return GetParam() == Kind::kPostgres ? "sluice.http_validators" : "http_validators";
  }

  /// Runs a statement that returns no rows against the store's database.
  void Exec(const std::string& sql) {
    if (GetParam() == Kind::kPostgres) {
      Status st = server_->Exec(db_, sql);
      EXPECT_TRUE(st.ok()) << sql << ": " << st.ToString();
    } else {
      EXPECT_EQ(Scalar(sql), "") << sql;
    }
  }

  std::string MigrationsTable() const {
    return GetParam() == Kind::kPostgres ? "sluice.schema_migrations" : "schema_migrations";
  }
  int LatestMigration() const {
    return LatestVersion(GetParam() == Kind::kPostgres ? PostgresMigrations() : SqliteMigrations());
  }
};

TEST_P(StateStoreTest, FilterNewReturnsNewAndChangedObjectsInOrder) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->MarkLoaded("p", 1, {Obj("s3://b/a.csv", "e1"), Obj("s3://b/c.csv", "e1")}).ok());

  auto fresh = store->FilterNew("p", {Obj("s3://b/d.csv", "e1"), Obj("s3://b/a.csv", "e1"),
                                      Obj("s3://b/c.csv", "e2"), Obj("s3://b/b.csv", "e1")});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(Keys(*fresh),
            (std::vector<std::string>{"s3://b/d.csv@e1", "s3://b/c.csv@e2", "s3://b/b.csv@e1"}));
  EXPECT_EQ((*fresh)[0].size, 10);
  EXPECT_EQ((*fresh)[0].modified_unix_ms, 1700000000000);

  // The ledger is per pipeline.
  auto other = store->FilterNew("q", {Obj("s3://b/a.csv", "e1")});
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->size(), 1u);

  auto none = store->FilterNew("p", {});
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
}

TEST_P(StateStoreTest, FilterNewHandlesPagesLargerThanOneQueryChunk) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<ObjectInfo> page, loaded, expected;
  for (int i = 0; i < 2000; ++i) {
    ObjectInfo o = Obj("/data/in/file-" + std::to_string(i) + ".csv", "etag" + std::to_string(i));
    page.push_back(o);
    (i % 3 == 0 ? loaded : expected).push_back(o);
  }
  ASSERT_TRUE(store->MarkLoaded("p", 1, loaded).ok());
  auto fresh = store->FilterNew("p", page);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(fresh->size(), 1333u);
  EXPECT_EQ(Keys(*fresh), Keys(expected));
}

TEST_P(StateStoreTest, MarkLoadedTwiceIsIdempotentAndKeepsTheFirstRun) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::vector<ObjectInfo> objects = {Obj("a", "e1"), Obj("b", "e1")};
  ASSERT_TRUE(store->MarkLoaded("p", 1, objects).ok());
  ASSERT_TRUE(store->MarkLoaded("p", 1, objects).ok());
  ASSERT_TRUE(store->MarkLoaded("p", 2, objects).ok());
  ASSERT_TRUE(store->MarkLoaded("p", 3, {}).ok());
  auto fresh = store->FilterNew("p", objects);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_TRUE(fresh->empty());
  if (GetParam() != Kind::kMemory) {
    EXPECT_EQ(Scalar("SELECT count(*) || ' ' || min(run_id) || ' ' || max(run_id) FROM " + Ledger()),
              "2 1 1");
  }
}

TEST_P(StateStoreTest, LedgerKeepsEveryVersionOfAKey) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->MarkLoaded("p", 1, {Obj("k", "E1")}).ok());
  auto fresh = store->FilterNew("p", {Obj("k", "E1"), Obj("k", "E2")});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(Keys(*fresh), (std::vector<std::string>{"k@E2"}));

  ASSERT_TRUE(store->MarkLoaded("p", 2, {Obj("k", "E2")}).ok());
  // The object overwritten with bytes loaded once (E1 again) is not new,
  // nor is E2; an unseen version is, in the page's order.
  fresh = store->FilterNew("p", {Obj("k", "E3"), Obj("k", "E2"), Obj("k", "E1"), Obj("j", "E1")});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(Keys(*fresh), (std::vector<std::string>{"k@E3", "j@E1"}));

  // A slow run recording the older version last does not make the newer
  // one look new.
  ASSERT_TRUE(store->MarkLoaded("p", 1, {Obj("k", "E1")}).ok());
  fresh = store->FilterNew("p", {Obj("k", "E2")});
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->empty());

  // An empty ETag is a version like any other.
  ASSERT_TRUE(store->MarkLoaded("p", 3, {Obj("k", "")}).ok());
  fresh = store->FilterNew("p", {Obj("k", ""), Obj("k", "E3"), Obj("m", "")});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(Keys(*fresh), (std::vector<std::string>{"k@E3", "m@"}));

  // Versions are per pipeline.
  fresh = store->FilterNew("q", {Obj("k", "E1")});
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->size(), 1u);
  if (GetParam() != Kind::kMemory) {
    EXPECT_EQ(Scalar("SELECT count(*) FROM " + Ledger() + " WHERE key = 'k'"), "3");
    EXPECT_EQ(Scalar("SELECT count(*) FROM " + Ledger() + " WHERE key = 'k' AND etag = ''"), "1");
  }
}

TEST_P(StateStoreTest, FilterNewFindsOneVersionAmongManyOfItsKey) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  std::vector<ObjectInfo> versions;
  for (int i = 0; i < 1500; ++i)
    versions.push_back(Obj("k" + std::to_string(i % 3), "v" + std::to_string(i)));
  ASSERT_TRUE(store->MarkLoaded("p", 1, versions).ok());
  std::vector<ObjectInfo> page;
  for (int i = 0; i < 900; ++i)
    page.push_back(Obj("k" + std::to_string(i * 2 % 3), "v" + std::to_string(i * 2)));
  auto fresh = store->FilterNew("p", page);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  std::vector<ObjectInfo> expected(page.begin() + 750, page.end());  // v1500 and above are not loaded
  EXPECT_EQ(Keys(*fresh), Keys(expected));
  // An ETag loaded under another key is no match.
  fresh = store->FilterNew("p", {Obj("k0", "v1"), Obj("k1", "v1")});
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(Keys(*fresh), (std::vector<std::string>{"k0@v1"}));
}

TEST_P(StateStoreTest, KeysWithQuotesCommasBracesBackslashesAndUnicodeSurvive) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::vector<std::string> keys = {"s3://b/with \"double\" quotes.csv",
                                         "s3://b/with,comma.csv",
                                         "s3://b/{braces}.csv",
                                         "s3://b/back\\slash.csv",
                                         "s3://b/\\\"both\\\\\".csv",
                                         "NULL",
                                         "null",
                                         "",
                                         " padded ",
                                         "it's.csv",
                                         "s3://b/ünïcødé/日本語/😀.csv",
                                         "{\"a\",\"b\"}",
                                         "tab\there",
                                         "new\nline"};
  std::vector<ObjectInfo> objects;
  for (const auto& k : keys) objects.push_back(Obj(k, "e1"));
  ASSERT_TRUE(store->MarkLoaded("p", 1, objects).ok());

  auto fresh = store->FilterNew("p", objects);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(Keys(*fresh), std::vector<std::string>{});

  std::vector<ObjectInfo> changed;
  for (const auto& k : keys) changed.push_back(Obj(k, "e2"));
  fresh = store->FilterNew("p", changed);
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(Keys(*fresh), Keys(changed));

  // Lookalikes of the stored keys are not confused with them.
  fresh = store->FilterNew(
      "p", {Obj("s3://b/with", "e1"), Obj("comma.csv", "e1"), Obj("s3://b/backslash.csv", "e1")});
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(fresh->size(), 3u);
}

TEST_P(StateStoreTest, RunLogRoundTripsNewestFirst) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto r1 = store->BeginRun("p", 1700000000001);
  auto r2 = store->BeginRun("p", 1700000060002);
  auto r3 = store->BeginRun("p", 1700000120003);
  auto other = store->BeginRun("q", 1700000180004);
  ASSERT_TRUE(r1.ok() && r2.ok() && r3.ok() && other.ok()) << r1.status().ToString();
  EXPECT_LT(*r1, *r2);
  EXPECT_LT(*r2, *r3);

  ASSERT_TRUE(store->FinishRun(*r1, "succeeded", "", 2, 300, 1700000005555).ok());
  ASSERT_TRUE(
      store->FinishRun(*r2, "failed", "COPY failed: row 7, column \"a\": bad 'x'", 1, 0, 1700000065555).ok());

  FileRecord f1{*r1, "p", "s3://b/a.csv", "e1", 1234, 100, 99, 2345, 0.125, "loaded", ""};
  FileRecord f2{*r1, "p", "s3://b/b.csv", "e2", 99, 201, 201, 300, 1.5, "failed", "bad row 3"};
  FileRecord f3{*r2, "p", "s3://b/c.csv", "", 0, 0, 0, 0, 0, "skipped", ""};
  ASSERT_TRUE(store->RecordFile(f1).ok());
  ASSERT_TRUE(store->RecordFile(f2).ok());
  ASSERT_TRUE(store->RecordFile(f3).ok());

  auto runs = store->RecentRuns("p", 10);
  ASSERT_TRUE(runs.ok()) << runs.status().ToString();
  ASSERT_EQ(runs->size(), 3u);
  EXPECT_EQ((*runs)[0].id, *r3);
  EXPECT_EQ((*runs)[1].id, *r2);
  EXPECT_EQ((*runs)[2].id, *r1);

  const RunRecord& running = (*runs)[0];
  EXPECT_EQ(running.pipeline, "p");
  EXPECT_EQ(running.status, "running");
  EXPECT_EQ(running.started_unix_ms, 1700000120003);
  EXPECT_FALSE(running.finished_unix_ms.has_value());
  EXPECT_EQ(running.error, "");

  const RunRecord& failed = (*runs)[1];
  EXPECT_EQ(failed.status, "failed");
  EXPECT_EQ(failed.error, "COPY failed: row 7, column \"a\": bad 'x'");
  EXPECT_EQ(failed.files, 1);
  EXPECT_EQ(failed.finished_unix_ms, std::optional<int64_t>(1700000065555));

  const RunRecord& ok = (*runs)[2];
  EXPECT_EQ(ok.status, "succeeded");
  EXPECT_EQ(ok.started_unix_ms, 1700000000001);
  EXPECT_EQ(ok.finished_unix_ms, std::optional<int64_t>(1700000005555));
  EXPECT_EQ(ok.files, 2);
  EXPECT_EQ(ok.rows, 300);

  auto limited = store->RecentRuns("p", 2);
  ASSERT_TRUE(limited.ok());
  ASSERT_EQ(limited->size(), 2u);
  EXPECT_EQ((*limited)[0].id, *r3);
  auto zero = store->RecentRuns("p", 0);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->empty());

  auto files = store->FilesOfRun(*r1);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  ASSERT_EQ(files->size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const FileRecord& want = i == 0 ? f1 : f2;
    const FileRecord& got = (*files)[i];
    EXPECT_EQ(got.run_id, want.run_id);
    EXPECT_EQ(got.pipeline, want.pipeline);
    EXPECT_EQ(got.file, want.file);
    EXPECT_EQ(got.etag, want.etag);
    EXPECT_EQ(got.size, want.size);
    EXPECT_EQ(got.rows_in, want.rows_in);
    EXPECT_EQ(got.rows_out, want.rows_out);
    EXPECT_EQ(got.bytes, want.bytes);
    EXPECT_DOUBLE_EQ(got.seconds, want.seconds);
    EXPECT_EQ(got.status, want.status);
    EXPECT_EQ(got.error, want.error);
  }
  files = store->FilesOfRun(*r2);
  ASSERT_TRUE(files.ok());
  ASSERT_EQ(files->size(), 1u);
  EXPECT_EQ((*files)[0].status, "skipped");
  files = store->FilesOfRun(*r3);
  ASSERT_TRUE(files.ok());
  EXPECT_TRUE(files->empty());

  Status missing = store->FinishRun(*other + 1000, "succeeded", "", 0, 0, 1);
  EXPECT_EQ(missing.code(), StatusCode::kNotFound) << missing.ToString();
}

TEST_P(StateStoreTest, OutputClaimsKeepTheFirstInputPerPipelineAndSurviveReopening) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    auto none = store->OutputClaim("p", "out/2024.csv");
    ASSERT_TRUE(none.ok()) << none.status().ToString();
    EXPECT_FALSE(none->has_value());
    ASSERT_TRUE(store->ClaimOutput("p", "out/2024.csv", "d/2024.01.01.csv", 1).ok());
    // A second claim keeps the first input: the caller must check first.
    ASSERT_TRUE(store->ClaimOutput("p", "out/2024.csv", "d/2024.01.02.csv", 2).ok());
    ASSERT_TRUE(store->ClaimOutput("q", "out/2024.csv", "other.csv", 3).ok());
    auto claim = store->OutputClaim("p", "out/2024.csv");
    ASSERT_TRUE(claim.ok() && claim->has_value()) << claim.status().ToString();
    EXPECT_EQ(**claim, "d/2024.01.01.csv");
  }
  if (GetParam() == Kind::kMemory) return;  // nothing to reopen
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto claim = store->OutputClaim("p", "out/2024.csv");
  ASSERT_TRUE(claim.ok()) << claim.status().ToString();
  ASSERT_TRUE(claim->has_value());
  EXPECT_EQ(**claim, "d/2024.01.01.csv");
  auto other = store->OutputClaim("q", "out/2024.csv");
  ASSERT_TRUE(other.ok() && other->has_value());
  EXPECT_EQ(**other, "other.csv");
}

TEST_P(StateStoreTest, CloseAbandonedRunsFailsOnlyRunningRunsOfThePipeline) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto done = store->BeginRun("p", 1000);
  auto crashed = store->BeginRun("p", 2000);
  auto elsewhere = store->BeginRun("q", 3000);
  ASSERT_TRUE(done.ok() && crashed.ok() && elsewhere.ok());
  ASSERT_TRUE(store->FinishRun(*done, "succeeded", "", 1, 1, 1500).ok());

  ASSERT_TRUE(store->CloseAbandonedRuns("p", 9000).ok());
  auto runs = store->RecentRuns("p", 10);
  ASSERT_TRUE(runs.ok());
  ASSERT_EQ(runs->size(), 2u);
  EXPECT_EQ((*runs)[0].id, *crashed);
  EXPECT_EQ((*runs)[0].status, "failed");
  EXPECT_EQ((*runs)[0].error, kAbandonedRunError);
  EXPECT_EQ((*runs)[0].finished_unix_ms, std::optional<int64_t>(9000));
  EXPECT_EQ((*runs)[1].status, "succeeded");
  EXPECT_EQ((*runs)[1].finished_unix_ms, std::optional<int64_t>(1500));

  auto q = store->RecentRuns("q", 10);
  ASSERT_TRUE(q.ok());
  ASSERT_EQ(q->size(), 1u);
  EXPECT_EQ((*q)[0].status, "running");
}

TEST_P(StateStoreTest, ReopeningKeepsDataAndAppliesNoMigrationTwice) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    EXPECT_TRUE(store->Ping().ok());
    ASSERT_TRUE(store->MarkLoaded("p", 1, {Obj("a", "e1")}).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(store->Ping().ok());
  if (GetParam() == Kind::kMemory) return;  // nothing outlives a memory store
  auto fresh = store->FilterNew("p", {Obj("a", "e1")});
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->empty());
  EXPECT_EQ(Scalar("SELECT count(*) FROM " + MigrationsTable()), std::to_string(LatestMigration()));
  EXPECT_EQ(Scalar("SELECT max(version) FROM " + MigrationsTable()), std::to_string(LatestMigration()));
  if (GetParam() == Kind::kSqlite) {
    EXPECT_EQ(Scalar("PRAGMA journal_mode"), "wal");
  }
}

TEST_P(StateStoreTest, StoresOpenedAtTheSameMomentMigrateOnce) {
  constexpr int kOpeners = 4;
  std::latch start(kOpeners);
  std::vector<std::future<Result<std::unique_ptr<StateStore>>>> opened;
  const StateConfig config = Config();
  for (int i = 0; i < kOpeners; ++i) {
    opened.push_back(std::async(std::launch::async, [&] {
      start.arrive_and_wait();
      return OpenStateStore(config);
    }));
  }
  std::vector<std::unique_ptr<StateStore>> stores;
  for (auto& f : opened) {
    auto store = f.get();
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    stores.push_back(std::move(store).value());
  }
  for (auto& store : stores) {
    auto id = store->BeginRun("p", 1);
    EXPECT_TRUE(id.ok()) << id.status().ToString();
  }
  if (GetParam() == Kind::kMemory) return;
  EXPECT_EQ(Scalar("SELECT count(*) FROM " + MigrationsTable()), std::to_string(LatestMigration()));
  auto runs = stores[0]->RecentRuns("p", 10);
  ASSERT_TRUE(runs.ok());
  EXPECT_EQ(runs->size(), static_cast<size_t>(kOpeners));
}

TEST_P(StateStoreTest, StoreWrittenByNewerSluiceIsRefused) {
  if (GetParam() == Kind::kMemory) GTEST_SKIP() << "a memory store has no schema to be newer";
  ASSERT_NE(Open(), nullptr);
  const int newer = LatestMigration() + 1;
  Scalar("INSERT INTO " + MigrationsTable() + " (version, name, applied_at) VALUES (" +
         std::to_string(newer) + ", 'from the future', " + (GetParam() == Kind::kPostgres ? "now()" : "0") +
         ")" + (GetParam() == Kind::kPostgres ? " RETURNING version" : ""));
  auto store = OpenStateStore(Config());
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(
      store.status().message().find("was written by a newer sluice (migration " + std::to_string(newer)),
      std::string::npos)
      << store.status().ToString();
}

TEST_P(StateStoreTest, DescribesItself) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  switch (GetParam()) {
    case Kind::kMemory:
      EXPECT_EQ(store->Describe(), "memory");
      EXPECT_EQ(store->PostgresDatabase(), "");
      break;
    case Kind::kSqlite:
      EXPECT_EQ(store->Describe(), "sqlite " + Config().path);
      EXPECT_EQ(store->PostgresDatabase(), "");
      break;
    case Kind::kPostgres: {
      std::string where = "127.0.0.1:" + std::to_string(server_->port()) + "/" + db_;
      EXPECT_EQ(store->Describe(), "postgres " + where + " (schema sluice)");
      EXPECT_EQ(store->PostgresDatabase(), where);
      auto identity = PostgresDatabaseIdentity(server_->Url(db_));
      ASSERT_TRUE(identity.ok()) << identity.status().ToString();
      EXPECT_EQ(*identity, where);
      auto from_keywords = PostgresDatabaseIdentity("host=127.0.0.1 port=" + std::to_string(server_->port()) +
                                                    " dbname=" + db_ + " user=postgres");
      ASSERT_TRUE(from_keywords.ok()) << from_keywords.status().ToString();
      EXPECT_EQ(*from_keywords, where);
      break;
    }
  }
}

TEST_P(StateStoreTest, OnlyPostgresWritesIntoADestinationTransaction) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto statements = store->MarkLoadedStatements("p", 1, {Obj("a", "e1")});
  EXPECT_EQ(statements.ok(), GetParam() == Kind::kPostgres) << statements.status().ToString();
}

TEST_P(StateStoreTest, ConcurrentWritersAndReadersSeeEveryRun) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 4;
  constexpr int kRunsEach = 15;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRunsEach; ++i) {
        auto id = store->BeginRun("p", 1000 * t + i);
        if (!id.ok() ||
            !store->RecordFile(FileRecord{*id, "p", "f", "e", 1, 1, 1, 1, 0.5, "loaded", ""}).ok() ||
            !store->FinishRun(*id, "succeeded", "", 1, 1, 1000 * t + i + 1).ok() ||
            !store->RecentRuns("p", 5).ok()) {
          ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  auto runs = store->RecentRuns("p", 1000);
  ASSERT_TRUE(runs.ok());
  std::set<int64_t> ids;
  for (const auto& r : *runs) {
    ids.insert(r.id);
    EXPECT_EQ(r.status, "succeeded");
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kRunsEach));
}

TEST_P(StateStoreTest, RunLockExcludesAnotherStoreUntilUnlocked) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto taken = a->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_TRUE(*taken);
  taken = b->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_FALSE(*taken);

  // Unlocking a lock the store does not hold changes nothing.
  b->UnlockPipeline("nightly");
  taken = b->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(*taken);

  a->UnlockPipeline("nightly");
  taken = b->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_TRUE(*taken);
  taken = a->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(*taken);
  b->UnlockPipeline("nightly");
}

TEST_P(StateStoreTest, RunLockIsReentrantAndOneUnlockReleasesIt) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  for (int i = 0; i < 2; ++i) {
    auto taken = a->TryLockPipeline("nightly");
    ASSERT_TRUE(taken.ok()) << taken.status().ToString();
    EXPECT_TRUE(*taken) << "attempt " << i;
  }
  a->UnlockPipeline("nightly");
  auto taken = b->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok());
  EXPECT_TRUE(*taken);
  a->UnlockPipeline("nightly");  // not held any more: no effect on b's lock
  taken = a->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(*taken);
  b->UnlockPipeline("nightly");
}

TEST_P(StateStoreTest, RunLocksOfDifferentPipelinesAreIndependent) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  // Names that a file name would reduce alike, and odd ones, are still
  // different pipelines.
  const std::vector<std::string> names = {"orders",  "orders/eu", "orders_eu", "orders eu",
                                          "../../x", "ünïcødé",   "",          std::string(300, 'n')};
  for (const auto& name : names) {
    auto taken = a->TryLockPipeline(name);
    ASSERT_TRUE(taken.ok()) << name << ": " << taken.status().ToString();
    EXPECT_TRUE(*taken) << name;
  }
  auto other = b->TryLockPipeline("customers");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(*other);
  for (const auto& name : names) {
    auto taken = b->TryLockPipeline(name);
    ASSERT_TRUE(taken.ok()) << name;
    EXPECT_FALSE(*taken) << name;
  }
  a->UnlockPipeline("orders_eu");
  auto taken = b->TryLockPipeline("orders_eu");
  ASSERT_TRUE(taken.ok());
  EXPECT_TRUE(*taken);
  taken = b->TryLockPipeline("orders/eu");
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(*taken);
  for (const auto& name : names) a->UnlockPipeline(name);
  b->UnlockPipeline("orders_eu");
  b->UnlockPipeline("customers");
}

TEST_P(StateStoreTest, ExactlyOneOfManyStoresTakesTheRunLockAtOnce) {
  constexpr int kStores = 6;
  std::vector<std::unique_ptr<StateStore>> stores;
  for (int i = 0; i < kStores; ++i) {
    stores.push_back(Open());
    ASSERT_NE(stores.back(), nullptr);
  }
  std::latch start(kStores);
  std::vector<std::future<Result<bool>>> attempts;
  for (auto& store : stores) {
    attempts.push_back(std::async(std::launch::async, [&start, s = store.get()] {
      start.arrive_and_wait();
      return s->TryLockPipeline("nightly");
    }));
  }
  int winners = 0;
  for (auto& f : attempts) {
    auto taken = f.get();
    ASSERT_TRUE(taken.ok()) << taken.status().ToString();
    winners += *taken ? 1 : 0;
  }
  EXPECT_EQ(winners, 1);
  for (auto& store : stores) store->UnlockPipeline("nightly");
}

TEST_P(StateStoreTest, RunLockIsReleasedWhenTheStoreIsDestroyed) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto taken = a->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok() && *taken);
  a.reset();
  // PostgreSQL releases the lock when the closed connection's backend
  // exits, a moment after the client has gone.
  EXPECT_TRUE(EventuallyLocks(*b, "nightly"));
  b->UnlockPipeline("nightly");
}

// --- HTTP validators ----------------------------------------------------------

TEST_P(StateStoreTest, HttpValidatorsReadBackOnlyTheKnownUrlsInTheOrderAsked) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string a = "https://api.example.com/v1/a.json";
  const std::string b = "https://api.example.com/v1/b.json?page=2";
  const std::string c = "https://other.example.org/c.csv";
  ASSERT_TRUE(store
                  ->SaveHttpValidators("p", {{a, "\"abc123\"", "Tue, 15 Nov 1994 12:45:26 GMT"},
                                             {b, "W/\"weak, with comma\"", ""},
                                             {c, "", "Wed, 21 Oct 2015 07:28:00 GMT"}})
                  .ok());

  auto got = store->HttpValidators("p", {c, "https://api.example.com/v1/unknown.json", a, c, b});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), (std::vector<std::string>{c + " |Wed, 21 Oct 2015 07:28:00 GMT",
                                                   a + " \"abc123\"|Tue, 15 Nov 1994 12:45:26 GMT",
                                                   b + " W/\"weak, with comma\"|"}));

  auto none = store->HttpValidators("p", {});
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());
  auto unknown = store->HttpValidators("p", {"https://api.example.com/v1/a.json?x=1"});
  ASSERT_TRUE(unknown.ok()) << unknown.status().ToString();
  EXPECT_TRUE(unknown->empty());
  EXPECT_TRUE(store->SaveHttpValidators("p", {}).ok());
}

TEST_P(StateStoreTest, SavingHttpValidatorsAgainReplacesThemAndSurvivesReopening) {
  const std::string a = "https://api.example.com/a";
  const std::string b = "https://api.example.com/b";
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(
        store->SaveHttpValidators("p", {{a, "\"v1\"", "Mon, 01 Jan 2024 00:00:00 GMT"}, {b, "\"b1\"", ""}})
            .ok());
    // A server that stops sending Last-Modified: the old one goes.
    ASSERT_TRUE(store->SaveHttpValidators("p", {{a, "\"v2\"", ""}}).ok());
    auto got = store->HttpValidators("p", {a, b});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(Lines(*got), (std::vector<std::string>{a + " \"v2\"|", b + " \"b1\"|"}));
    // Within one call the last validator of a URL wins.
    ASSERT_TRUE(store
                    ->SaveHttpValidators("p", {{b, "\"b2\"", ""},
                                               {a, "", "Tue, 02 Jan 2024 00:00:00 GMT"},
                                               {b, "\"b3\"", "Wed, 03 Jan 2024 00:00:00 GMT"}})
                    .ok());
    got = store->HttpValidators("p", {a, b});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ(Lines(*got), (std::vector<std::string>{a + " |Tue, 02 Jan 2024 00:00:00 GMT",
                                                     b + " \"b3\"|Wed, 03 Jan 2024 00:00:00 GMT"}));
  }
  if (GetParam() == Kind::kMemory) return;  // nothing outlives a memory store
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto got = store->HttpValidators("p", {b, a});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), (std::vector<std::string>{b + " \"b3\"|Wed, 03 Jan 2024 00:00:00 GMT",
                                                   a + " |Tue, 02 Jan 2024 00:00:00 GMT"}));
  EXPECT_EQ(Scalar("SELECT count(*) FROM " + Validators()), "2");
}

TEST_P(StateStoreTest, HttpValidatorWithBothFieldsEmptyRemovesTheEntry) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string a = "https://api.example.com/a";
  const std::string b = "https://api.example.com/b";
  const std::string c = "https://api.example.com/c";
  ASSERT_TRUE(store->SaveHttpValidators("p", {{a, "\"a\"", ""}, {b, "\"b\"", ""}, {c, "\"c\"", ""}}).ok());
  ASSERT_TRUE(store->SaveHttpValidators("q", {{a, "\"qa\"", ""}}).ok());
  // Removing a URL that has no entry is no error; a removal followed by a
  // save in one call keeps the save, a save followed by a removal does not.
  ASSERT_TRUE(store
                  ->SaveHttpValidators("p", {{a, "", ""},
                                             {"https://api.example.com/never-saved", "", ""},
                                             {c, "", ""},
                                             {c, "\"c2\"", ""},
                                             {b, "\"b2\"", ""},
                                             {b, "", ""}})
                  .ok());
  auto got = store->HttpValidators("p", {a, b, c});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), (std::vector<std::string>{c + " \"c2\"|"}));
  // Only pipeline p's entry went.
  got = store->HttpValidators("q", {a});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), (std::vector<std::string>{a + " \"qa\"|"}));
  if (GetParam() != Kind::kMemory) {
    EXPECT_EQ(Scalar("SELECT count(*) FROM " + Validators()), "2");
  }
}

TEST_P(StateStoreTest, HttpValidatorsOfAnotherPipelineAreSeparate) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string url = "https://api.example.com/shared.json";
  ASSERT_TRUE(store->SaveHttpValidators("p", {{url, "\"p\"", ""}}).ok());
  auto got = store->HttpValidators("q", {url});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_TRUE(got->empty());
  ASSERT_TRUE(store->SaveHttpValidators("q", {{url, "\"q\"", "Thu, 01 Feb 2024 10:00:00 GMT"}}).ok());
  got = store->HttpValidators("p", {url});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), (std::vector<std::string>{url + " \"p\"|"}));
  got = store->HttpValidators("q", {url});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), (std::vector<std::string>{url + " \"q\"|Thu, 01 Feb 2024 10:00:00 GMT"}));
}

TEST_P(StateStoreTest, HttpValidatorUrlsAreStoredWithoutPasswordsOrSecretQueryValues) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  const std::string url =
      "https://reader:pa55-S3CRET@api.example.com/v1/items?city=Oslo&api_key=k3y-S3CRET&Token=t0k-S3CRET"
      "&access_token=at-S3CRET&apikey=ak-S3CRET&key=kk-S3CRET&signature=sg-S3CRET&sig=s-S3CRET"
      "&password=pw-S3CRET&page=3";
  ASSERT_TRUE(store->SaveHttpValidators("p", {{url, "\"e\"", ""}}).ok());
  // The caller gets the URL back as it asked for it.
  auto got = store->HttpValidators("p", {url});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), (std::vector<std::string>{url + " \"e\"|"}));
  // A URL differing only in a secret is another URL.
  got =
      store->HttpValidators("p", {"https://reader:other@api.example.com/v1/items?city=Oslo&api_key=k3y-S3CRET"
                                  "&Token=t0k-S3CRET&access_token=at-S3CRET&apikey=ak-S3CRET&key=kk-S3CRET"
                                  "&signature=sg-S3CRET&sig=s-S3CRET&password=pw-S3CRET&page=3"});
  ASSERT_TRUE(got.ok());
  EXPECT_TRUE(got->empty());
  if (GetParam() == Kind::kMemory) return;  // nothing is written anywhere

  // An update writes the URL again, redacted again.
  ASSERT_TRUE(store->SaveHttpValidators("p", {{url, "\"e2\"", ""}}).ok());
  EXPECT_EQ(Scalar("SELECT url FROM " + Validators()),
            "https://reader:***@api.example.com/v1/items?city=Oslo&api_key=***&Token=***&access_token=***"
            "&apikey=***&key=***&signature=***&sig=***&password=***&page=3");
  EXPECT_EQ(Scalar("SELECT count(*) FROM " + Validators() +
                   " WHERE url LIKE '%S3CRET%' OR url_hash LIKE "
                   "'%S3CRET%' OR etag LIKE '%S3CRET%' OR pipeline LIKE '%S3CRET%'"),
            "0");
  const std::string hash = Scalar("SELECT url_hash FROM " + Validators());
  EXPECT_TRUE(std::regex_match(hash, std::regex("[0-9a-f]{64}"))) << hash;
  EXPECT_EQ(hash, HttpUrlHash(url));
  if (GetParam() == Kind::kPostgres) {
    EXPECT_EQ(Scalar("SELECT pg_typeof(updated_at)::text || ' ' || (last_modified IS NULL) || ' ' || "
                     "(updated_at > now() - interval '1 minute') FROM sluice.http_validators"),
              "timestamp with time zone true true");
  } else {
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    EXPECT_EQ(Scalar("SELECT typeof(updated_at) || ' ' || (last_modified IS NULL) || ' ' || "
                     "(updated_at > " +
                     std::to_string(now_ms - 60000) + ") FROM http_validators"),
              "integer 1 1");
  }
}

TEST_P(StateStoreTest, TwentyThousandHttpValidatorsSaveAndReadBackQuickly) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kUrls = 20000;
  const auto kBudget = std::chrono::seconds(3);
  std::vector<HttpValidator> validators;
  std::vector<std::string> urls;
  for (int i = 0; i < kUrls; ++i) {
    const std::string n = std::to_string(i);
    validators.push_back({"https://api.example.com/items/" + n + "?api_key=secret&page=" + n, "\"" + n + "\"",
                          i % 2 == 0 ? "Mon, 01 Jan 2024 00:00:00 GMT" : ""});
    urls.push_back(validators.back().url);
  }
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(store->SaveHttpValidators("p", validators).ok());
  const auto save = std::chrono::steady_clock::now() - start;

  urls.push_back("https://api.example.com/not-saved");
  start = std::chrono::steady_clock::now();
  auto got = store->HttpValidators("p", urls);
  const auto read = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), Lines(validators));

  // Updating every entry (every other one loses its Last-Modified) is a
  // save like the first.
  for (auto& v : validators) v.last_modified.clear();
  start = std::chrono::steady_clock::now();
  ASSERT_TRUE(store->SaveHttpValidators("p", validators).ok());
  const auto update = std::chrono::steady_clock::now() - start;
  got = store->HttpValidators("p", urls);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), Lines(validators));

  EXPECT_LT(save, kBudget);
  EXPECT_LT(read, kBudget);
  EXPECT_LT(update, kBudget);
  using std::chrono::duration_cast, std::chrono::milliseconds;
  std::cout << "[ timing   ] " << kUrls << " validators: save " << duration_cast<milliseconds>(save).count()
            << " ms, read " << duration_cast<milliseconds>(read).count() << " ms, update "
            << duration_cast<milliseconds>(update).count() << " ms\n";
  if (GetParam() != Kind::kMemory) {
    EXPECT_EQ(Scalar("SELECT count(*) FROM " + Validators()), std::to_string(kUrls));
  }
}

TEST_P(StateStoreTest, StoreAtMigrationThreeGainsHttpValidatorsWhenOpened) {
  if (GetParam() == Kind::kMemory) GTEST_SKIP() << "a memory store has no schema";
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->MarkLoaded("p", 1, {Obj("a", "e1")}).ok());
  }
  // The database as sluice with migrations 1 to 3 left it.
  const bool pg = GetParam() == Kind::kPostgres;
  if (pg) Exec("DROP TABLE sluice.workers, sluice.leases, sluice.file_claims");
  Exec(std::string("ALTER TABLE ") + (pg ? "sluice.runs" : "runs") + " DROP COLUMN worker");
  Exec("DROP TABLE " + Validators());
  Exec("DELETE FROM " + MigrationsTable() + " WHERE version >= 4");
  ASSERT_EQ(Scalar("SELECT max(version) FROM " + MigrationsTable()), "3");

  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(Scalar("SELECT max(version) FROM " + MigrationsTable()), std::to_string(LatestMigration()));
  EXPECT_EQ(Scalar("SELECT name FROM " + MigrationsTable() + " WHERE version = 4"),
            "http validators of polled urls");
  // Migration 5: runs name their worker.
  auto run = store->BeginRun("p", 5);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  auto runs = store->RecentRuns("p", 1);
  ASSERT_TRUE(runs.ok() && runs->size() == 1);
  EXPECT_EQ(runs->front().worker, ProcessWorkerId());
  auto fresh = store->FilterNew("p", {Obj("a", "e1")});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_TRUE(fresh->empty());
  ASSERT_TRUE(store->SaveHttpValidators("p", {{"https://h/x", "\"x\"", ""}}).ok());
  auto got = store->HttpValidators("p", {"https://h/x"});
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(Lines(*got), (std::vector<std::string>{"https://h/x \"x\"|"}));
}

INSTANTIATE_TEST_SUITE_P(AllStores, StateStoreTest,
                         ::testing::Values(Kind::kMemory, Kind::kSqlite, Kind::kPostgres), KindName);

// --- SQLite only ------------------------------------------------------------

TEST(SqliteStateStore, PathBelowAFileIsAnIoError) {
  TempDir dir;
  std::string file = dir.Write("not-a-dir", "x");
  auto store = OpenStateStore(StateConfig{"", file + "/state.db", false});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kIoError) << store.status().ToString();
  EXPECT_NE(store.status().message().find(file), std::string::npos) << store.status().ToString();
}

TEST(SqliteStateStore, FileThatIsNotADatabaseIsRefused) {
  TempDir dir;
  std::string file = dir.Write("state.db", std::string(4096, 'x'));
  auto store = OpenStateStore(StateConfig{"", file, false});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kInvalidArgument) << store.status().ToString();
  EXPECT_NE(store.status().message().find(file), std::string::npos) << store.status().ToString();
}

TEST(SqliteStateStore, RunLockFilesLieNextToTheDatabaseWithSafeNames) {
  TempDir dir;
  const std::string db = dir.Path("state.db");
  auto store = OpenStateStore(StateConfig{"", db, false});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (const std::string name : {"nightly", "../../escape", "a/b", "a_b"}) {
    auto taken = (*store)->TryLockPipeline(name);
    ASSERT_TRUE(taken.ok()) << taken.status().ToString();
    EXPECT_TRUE(*taken) << name;
  }
  std::set<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    const std::string file = entry.path().filename().string();
    if (file.ends_with(".lock")) files.insert(file);
  }
  // "a/b" and "a_b" reduce alike; the hash of the real name tells them apart.
  ASSERT_EQ(files.size(), 4u);
  const std::regex pattern(R"(state\.db\.[A-Za-z0-9._-]+\.[0-9a-f]{8}\.lock)");
  int nightly = 0;
  for (const auto& file : files) {
    EXPECT_TRUE(std::regex_match(file, pattern)) << file;
    nightly += file.starts_with("state.db.nightly.") ? 1 : 0;
  }
  EXPECT_EQ(nightly, 1);
  EXPECT_FALSE(std::filesystem::exists(dir.Path("escape")));
}

// --- PostgreSQL only --------------------------------------------------------
using TestConnection = sluice::state::test_support::CheckpointClient;

class PostgresStateStoreTest : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { SharedPostgres::Stop(); }
  void SetUp() override {
    std::string error;
    server_ = SharedPostgres::Get(&error);
    ASSERT_NE(server_, nullptr) << "PostgreSQL did not start: " << error;
    db_ = SharedPostgres::FreshDatabase();
  }
  std::unique_ptr<StateStore> Open() {
    auto store = OpenStateStore(StateConfig{server_->Url(db_), "", false});
    EXPECT_TRUE(store.ok()) << store.status().ToString();
    return store.ok() ? std::move(store).value() : nullptr;
  }
  std::string Scalar(const std::string& sql) {
    auto v = server_->QueryScalar(db_, sql);
    EXPECT_TRUE(v.ok()) << v.status().ToString();
    return v.ok() ? *v : "<error>";
  }

  PgServer* server_ = nullptr;
  std::string db_;
};

TEST_F(PostgresStateStoreTest, MarkLoadedStatementsAffectNoRowWhenTheSameEtagWasRecorded) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  TestConnection dest(server_->Url(db_));
  auto first = store->MarkLoadedStatements("p", 7, {Obj("a", "e1"), Obj("b,{\"x\"}", "e1")});
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->size(), 2u);
  for (const auto& st : *first) EXPECT_EQ(st.expect_rows, 1);
  EXPECT_TRUE(dest.Commit(*first));
  auto fresh = store->FilterNew("p", {Obj("a", "e1"), Obj("b,{\"x\"}", "e1")});
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->empty());
  EXPECT_EQ(Scalar("SELECT run_id FROM sluice.file_ledger WHERE key = 'a'"), "7");
  // The run log's file rows are the caller's business (RecordFile).
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.run_files"), "0");

  // Another process loaded the same objects: the load rolls back.
  auto again = store->MarkLoadedStatements("p", 8, {Obj("a", "e1")});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(dest.Run(again->at(0)), 0);
  EXPECT_FALSE(dest.Commit(*again));
  EXPECT_EQ(Scalar("SELECT run_id FROM sluice.file_ledger WHERE key = 'a'"), "7");

  // A changed object is loaded again, and its first version stays.
  auto changed = store->MarkLoadedStatements("p", 9, {Obj("a", "e2", 99)});
  ASSERT_TRUE(changed.ok());
  EXPECT_TRUE(dest.Commit(*changed));
  EXPECT_EQ(Scalar("SELECT string_agg(etag || ' ' || size || ' ' || run_id, ', ' ORDER BY etag) "
                   "FROM sluice.file_ledger WHERE key = 'a'"),
            "e1 10 7, e2 99 9");
  for (const auto& st : *changed)
    EXPECT_NE(st.sql.find("ON CONFLICT (pipeline, key, etag) DO NOTHING"), std::string::npos) << st.sql;

  // Either version recorded meanwhile, even the older one after the
  // newer: the load rolls back.
  for (const char* etag : {"e1", "e2"}) {
    auto late = store->MarkLoadedStatements("p", 10, {Obj("b,{\"x\"}", "e2"), Obj("a", etag)});
    ASSERT_TRUE(late.ok());
    EXPECT_FALSE(dest.Commit(*late)) << etag;
  }
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_ledger"), "3");
  // The same version in another pipeline is that pipeline's business.
  auto elsewhere = store->MarkLoadedStatements("q", 11, {Obj("a", "e1")});
  ASSERT_TRUE(elsewhere.ok());
  EXPECT_TRUE(dest.Commit(*elsewhere));
}

TEST_F(PostgresStateStoreTest, ConcurrentLoadsOfDifferentVersionsOfAKeyBothCommit) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto v1 = store->MarkLoadedStatements("p", 1, {Obj("s3://b/x.csv", "e1")});
  auto v2 = store->MarkLoadedStatements("p", 2, {Obj("s3://b/x.csv", "e2")});
  ASSERT_TRUE(v1.ok() && v2.ok());
  TestConnection first(server_->Url(db_));
  TestConnection second(server_->Url(db_));
  first.Exec("BEGIN");
  second.Exec("BEGIN");
  EXPECT_EQ(first.Run(v1->at(0)), 1);
  // No wait on the first transaction: a different row of the primary key.
  auto other = std::async(std::launch::async, [&] { return second.Run(v2->at(0)); });
  ASSERT_EQ(other.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(other.get(), 1);
  first.Exec("COMMIT");
  second.Exec("COMMIT");
  auto fresh = store->FilterNew("p", {Obj("s3://b/x.csv", "e1"), Obj("s3://b/x.csv", "e2")});
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->empty());
}

TEST_F(PostgresStateStoreTest, RunLockIsASessionAdvisoryLockApartFromTheMigrationLock) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto taken = store->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok() && *taken) << taken.status().ToString();
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 2 "
                   "AND classid::int = hashtext('sluice.pipeline') "
                   "AND objid::int = hashtext('nightly')"),
            "1");
  // Opening (and so migrating) another store takes the migration lock meanwhile.
  auto other = Open();
  ASSERT_NE(other, nullptr);
  store->UnlockPipeline("nightly");
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"), "0");
}

TEST_F(PostgresStateStoreTest, RunLockEndsWithTheConnectionAndIsTakenAgainAfterAReconnect) {
  auto a = Open();
  auto b = Open();
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  auto taken = a->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok() && *taken);
  // The server ends a's session (as when the network drops it): its lock goes.
  EXPECT_EQ(Scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"), "1");
  EXPECT_TRUE(EventuallyLocks(*b, "nightly"));
  // a reconnects and finds the lock taken.
  taken = a->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_FALSE(*taken);
  b->UnlockPipeline("nightly");
  taken = a->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok()) << taken.status().ToString();
  EXPECT_TRUE(*taken);

  // Lost while held and unnoticed until the next TryLockPipeline: taken again.
  EXPECT_EQ(Scalar("SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory'"), "1");
  EXPECT_TRUE(EventuallyLocks(*a, "nightly"));
  taken = b->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok());
  EXPECT_FALSE(*taken);
  a->UnlockPipeline("nightly");
  taken = b->TryLockPipeline("nightly");
  ASSERT_TRUE(taken.ok());
  EXPECT_TRUE(*taken);
}

TEST_F(PostgresStateStoreTest, ConcurrentLoadOfTheSameObjectAffectsNoRowAfterTheFirstCommits) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto statements = store->MarkLoadedStatements("p", 1, {Obj("s3://b/x.csv", "e1")});
  ASSERT_TRUE(statements.ok());
  TestConnection first(server_->Url(db_));
  TestConnection second(server_->Url(db_));
  first.Exec("BEGIN");
  EXPECT_EQ(first.Run(statements->at(0)), 1);
  second.Exec("BEGIN");
  // Waits for the first transaction's row lock, then sees its commit.
  auto blocked = std::async(std::launch::async, [&] { return second.Run(statements->at(0)); });
  EXPECT_EQ(blocked.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  first.Exec("COMMIT");
  EXPECT_EQ(blocked.get(), 0);
  second.Exec("ROLLBACK");
}

TEST_F(PostgresStateStoreTest, TablesArePlainAndTimesAreTimestamptz) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto id = store->BeginRun("nightly", 1700000000123);
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(store->FinishRun(*id, "succeeded", "", 3, 42, 1700000001456).ok());
  ASSERT_TRUE(store->MarkLoaded("nightly", *id, {Obj("a", "e1", 5, 1600000000789)}).ok());
  EXPECT_EQ(
      Scalar("SELECT to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') || ' ' || "
             "to_char(finished_at AT TIME ZONE 'UTC', 'SS.MS') || ' ' || status || ' ' || rows || ' ' || "
             "(error IS NULL) FROM sluice.runs"),
      "2023-11-14 22:13:20.123 21.456 succeeded 42 true");
  EXPECT_EQ(Scalar("SELECT pg_typeof(modified_at)::text || ' ' || "
                   "(extract(epoch FROM modified_at) * 1000)::bigint FROM sluice.file_ledger"),
            "timestamp with time zone 1600000000789");
  EXPECT_EQ(
      Scalar("SELECT string_agg(version || ':' || name, ',' ORDER BY version) FROM sluice.schema_migrations"),
      "1:file ledger and run log,2:cdc table states, schemas and progress,3:inputs of per-load output files,"
      "4:http validators of polled urls,5:workers, leases and file claims");
  EXPECT_EQ(Scalar("SELECT count(*) FROM pg_indexes WHERE schemaname = 'sluice' AND indexname = "
                   "'runs_pipeline_started_idx'"),
            "1");
}

TEST_F(PostgresStateStoreTest, ConnectionRefusedIsUnavailableWithoutThePassword) {
  // A port nobody listens on: bind one, then close it.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const int port = ntohs(addr.sin_port);
  close(fd);

  const std::string url = "postgresql://sluice:hunter2secret@127.0.0.1:" + std::to_string(port) + "/app";
  auto store = OpenStateStore(StateConfig{url, "", false});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), StatusCode::kUnavailable) << store.status().ToString();
  EXPECT_TRUE(store.status().retryable());
  EXPECT_NE(store.status().message().find("127.0.0.1:" + std::to_string(port) + "/app"), std::string::npos)
      << store.status().ToString();
  EXPECT_EQ(store.status().message().find("hunter2secret"), std::string::npos) << store.status().ToString();

  auto identity = PostgresDatabaseIdentity(url);
  ASSERT_FALSE(identity.ok());
  EXPECT_EQ(identity.status().code(), StatusCode::kUnavailable);
  EXPECT_EQ(identity.status().message().find("hunter2secret"), std::string::npos);
}

TEST_F(PostgresStateStoreTest, ReconnectsAfterTheServerRestarted) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->MarkLoaded("p", 1, {Obj("a", "e1")}).ok());
  ASSERT_TRUE(server_->Stop(testing::PgStopMode::kImmediate).ok());
  Status down = store->Ping();
  EXPECT_EQ(down.code(), StatusCode::kUnavailable) << down.ToString();
  EXPECT_TRUE(down.retryable());
  ASSERT_TRUE(server_->StartAgain().ok());

  // Reads and upserts are repeated on a new connection; the caller sees no error.
  auto fresh = store->FilterNew("p", {Obj("a", "e1"), Obj("b", "e1")});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_EQ(Keys(*fresh), (std::vector<std::string>{"b@e1"}));
  auto id = store->BeginRun("p", 1);
  EXPECT_TRUE(id.ok()) << id.status().ToString();

  // An INSERT is not repeated (the first may have committed): the caller
  // gets a retryable error, and the next call runs on a new connection.
  ASSERT_TRUE(server_->Stop(testing::PgStopMode::kImmediate).ok());
  ASSERT_TRUE(server_->StartAgain().ok());
  id = store->BeginRun("p", 2);
  EXPECT_EQ(id.status().code(), StatusCode::kUnavailable) << id.status().ToString();
  EXPECT_TRUE(id.status().retryable());
  id = store->BeginRun("p", 3);
  EXPECT_TRUE(id.ok()) << id.status().ToString();

  // A connection lost between calls: the next call reconnects.
  ASSERT_TRUE(server_->Stop(testing::PgStopMode::kImmediate).ok());
  ASSERT_TRUE(server_->StartAgain().ok());
  EXPECT_TRUE(store->MarkLoaded("p", 2, {Obj("b", "e1")}).ok());
  fresh = store->FilterNew("p", {Obj("b", "e1")});
  ASSERT_TRUE(fresh.ok()) << fresh.status().ToString();
  EXPECT_TRUE(fresh->empty());
}

// --- several workers on one PostgreSQL store --------------------------------

class SharedWorkTest : public PostgresStateStoreTest {
 protected:
  /// A store object playing worker `name`, registered with a lease of `lease_ms`.
  std::unique_ptr<StateStore> Worker(const std::string& name, int64_t lease_ms = 60000) {
    auto store = Open();
    if (!store) return nullptr;
    store->set_worker(name);
    auto beat = store->Heartbeat("p", lease_ms, "testing");
    EXPECT_TRUE(beat.ok()) << beat.status().ToString();
    return store;
  }
  static std::vector<ObjectInfo> Files(int n) {
    std::vector<ObjectInfo> out;
    for (int i = 0; i < n; ++i) out.push_back(Obj("f" + std::to_string(10 + i), "e"));
    return out;
  }
  static std::set<std::string> Keys(const std::vector<ObjectInfo>& objects) {
    std::set<std::string> keys;
    for (const auto& o : objects) keys.insert(o.key);
    return keys;
  }
};

TEST_F(SharedWorkTest, WorkersClaimDisjointFilesUntilNoneIsLeft) {
  auto a = Worker("a"), b = Worker("b");
  ASSERT_TRUE(a && b);
  EXPECT_TRUE(a->SharesWork());
  ASSERT_TRUE(a->OfferFiles("p", Files(10)).ok());
  // b lists the same files: offering them again changes nothing.
  ASSERT_TRUE(b->OfferFiles("p", Files(10)).ok());
  std::set<std::string> seen;
  size_t total = 0;
  for (int round = 0; round < 4; ++round) {
    for (auto* w : {a.get(), b.get()}) {
      auto got = w->ClaimFiles("p", 3);
      ASSERT_TRUE(got.ok()) << got.status().ToString();
      EXPECT_LE(got->size(), 3u);
      total += got->size();
      for (const auto& k : Keys(*got)) EXPECT_TRUE(seen.insert(k).second) << k << " claimed twice";
    }
  }
  EXPECT_EQ(total, 10u);
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_claims WHERE holder IS NULL"), "0");
  auto workers = a->Workers("p");
  ASSERT_TRUE(workers.ok()) << workers.status().ToString();
  ASSERT_EQ(workers->size(), 2u);
  EXPECT_EQ(workers->at(0).claimed_files + workers->at(1).claimed_files, 10);
  EXPECT_EQ(workers->at(0).doing, "testing");
}

TEST_F(SharedWorkTest, FilesInTheLedgerAreNeitherOfferedNorClaimed) {
  auto a = Worker("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(a->OfferFiles("p", Files(3)).ok());
  ASSERT_TRUE(a->MarkLoaded("p", 1, {Files(3)[1]}).ok());
  auto got = a->ClaimFiles("p", 10);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(Keys(*got), (std::set<std::string>{"f10", "f12"}));
  // An offer made after the load (a slower listing) is pruned.
  ASSERT_TRUE(a->OfferFiles("p", {Files(3)[1]}).ok());
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_claims WHERE key = 'f11'"), "0");
}

TEST_F(SharedWorkTest, ClaimsOfADeadWorkerAreTakenOverAndItsLoadIsFenced) {
  auto a = Worker("a", 1000), b = Worker("b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->OfferFiles("p", Files(4)).ok());
  auto mine = a->ClaimFiles("p", 10);
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 4u);
  auto none = b->ClaimFiles("p", 10);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << "a lives: its claims are its own";
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));  // a's lease expires
  auto taken = b->ClaimFiles("p", 10);
  ASSERT_TRUE(taken.ok());
  EXPECT_EQ(Keys(*taken), Keys(*mine));
  // a wakes up and commits its load of f10: the claim is b's now.
  TestConnection dest(server_->Url(db_));
  auto statements = a->EndClaimStatements("p", {mine->front()});
  ASSERT_EQ(statements.size(), 1u);
  EXPECT_EQ(statements[0].expect_rows, 1);
  EXPECT_FALSE(dest.Commit(statements));
  // b's own commit goes through.
  EXPECT_TRUE(dest.Commit(b->EndClaimStatements("p", {mine->front()})));
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.file_claims"), "3");
}

TEST_F(SharedWorkTest, GivenBackClaimsAreFreeAtOnceAndDroppedOnesAreGone) {
  auto a = Worker("a"), b = Worker("b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->OfferFiles("p", Files(4)).ok());
  auto mine = a->ClaimFiles("p", 4);
  ASSERT_TRUE(mine.ok() && mine->size() == 4);
  ASSERT_TRUE(a->EndClaims("p", {mine->at(0), mine->at(1)}, /*retry=*/true).ok());
  ASSERT_TRUE(a->EndClaims("p", {mine->at(2)}, /*retry=*/false).ok());
  auto got = b->ClaimFiles("p", 10);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(Keys(*got), (std::set<std::string>{"f10", "f11"}));
  // LeaveWork gives back the rest (f13) at once.
  ASSERT_TRUE(a->LeaveWork("p").ok());
  got = b->ClaimFiles("p", 10);
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(Keys(*got), (std::set<std::string>{"f13"}));
  EXPECT_EQ(Scalar("SELECT count(*) FROM sluice.workers WHERE worker = 'a'"), "0");
}

TEST_F(SharedWorkTest, TheRunLeaseChangesHolderOnlyWhenItsHolderIsGoneAndFencesTheOldOne) {
  auto a = Worker("a", 1000), b = Worker("b");
  ASSERT_TRUE(a && b);
  auto ea = a->TryAcquireLease("p", "run");
  ASSERT_TRUE(ea.ok()) << ea.status().ToString();
  ASSERT_TRUE(ea->has_value());
  auto again = a->TryAcquireLease("p", "run");
  ASSERT_TRUE(again.ok() && again->has_value());
  EXPECT_EQ(**again, **ea) << "the holder taking it again keeps the epoch";
  auto eb = b->TryAcquireLease("p", "run");
  ASSERT_TRUE(eb.ok());
  EXPECT_FALSE(eb->has_value()) << "a lives";
  TestConnection dest(server_->Url(db_));
  EXPECT_TRUE(dest.Commit(a->LeaseFence("p", "run", **ea)));

  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  eb = b->TryAcquireLease("p", "run");
  ASSERT_TRUE(eb.ok() && eb->has_value());
  EXPECT_EQ(**eb, **ea + 1);
  EXPECT_FALSE(dest.Commit(a->LeaseFence("p", "run", **ea))) << "a was paused past its lease: fenced";
  EXPECT_TRUE(dest.Commit(b->LeaseFence("p", "run", **eb)));
  // a's renewal revives its row, not its lease.
  auto held = a->Heartbeat("p", 1000, "back");
  ASSERT_TRUE(held.ok());
  EXPECT_TRUE(held->empty());
  auto ea2 = a->TryAcquireLease("p", "run");
  ASSERT_TRUE(ea2.ok());
  EXPECT_FALSE(ea2->has_value());
  // Released: free for the next one, with a new epoch.
  ASSERT_TRUE(b->ReleaseLease("p", "run").ok());
  ea2 = a->TryAcquireLease("p", "run");
  ASSERT_TRUE(ea2.ok() && ea2->has_value());
  EXPECT_EQ(**ea2, **eb + 1);
}

TEST_F(SharedWorkTest, AbandonedRunsAreClosedOnlyWhenTheirWorkerIsGone) {
  auto a = Worker("a", 1000), b = Worker("b");
  ASSERT_TRUE(a && b);
  auto run = a->BeginRun("p", 1000);
  ASSERT_TRUE(run.ok());
  ASSERT_TRUE(b->CloseAbandonedRuns("p", 2000).ok());
  auto runs = b->RecentRuns("p", 1);
  ASSERT_TRUE(runs.ok() && runs->size() == 1);
  EXPECT_EQ(runs->front().status, "running") << "a lives";
  EXPECT_EQ(runs->front().worker, "a");
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  ASSERT_TRUE(b->CloseAbandonedRuns("p", 3000).ok());
  runs = b->RecentRuns("p", 1);
  ASSERT_TRUE(runs.ok() && runs->size() == 1);
  EXPECT_EQ(runs->front().status, "failed");
  EXPECT_EQ(runs->front().error, kAbandonedRunError);
}

TEST(SqliteStateStore, ServesOneProcessAndSaysSoWhenAskedToShare) {
  sluice::testing::TempDir dir;
  auto store = OpenStateStore(StateConfig{"", dir.path() + "/s.db", false});
  ASSERT_TRUE(store.ok());
  EXPECT_FALSE((*store)->SharesWork());
  auto claimed = (*store)->ClaimFiles("p", 1);
  ASSERT_FALSE(claimed.ok());
  EXPECT_NE(claimed.status().message().find("several workers need a PostgreSQL state store"),
            std::string::npos);
}

}  // namespace
}  // namespace sluice::state
