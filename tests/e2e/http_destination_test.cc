// The HTTP destination through the CLI against a real HTTP receiver
// (tests/http_server, node) that keeps rows by Idempotency-Key: 200,000
// rows through injected 500/503/429/cut/lost replies and refused payloads,
// kill -9 in the middle of a load followed by a rerun, and CDC from a real
// PostgreSQL with kill -9 while streaming.
#include <signal.h>

#include <fstream>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "e2e_support.h"
#include "harness/http_test_server.h"
#include "harness/subprocess.h"

namespace sluice::e2e {
namespace {

using nlohmann::json;
using sluice::testing::CliProcess;
using sluice::testing::HttpTestServer;

/// Each test gets a server of its own: faults and stored rows are global.
std::unique_ptr<HttpTestServer> StartHttp() {
  auto started = HttpTestServer::Start();
  if (!started.ok()) {
    ADD_FAILURE() << "cannot start the HTTP test server: " << started.status().ToString();
    return nullptr;
  }
  return std::move(started).value();
}

/// Rows the receiver stored (one per accepted key), as parsed JSON lines.
std::vector<json> Stored(HttpTestServer& http, const TempDir& tmp) {
  std::string file = tmp.Path("dump.jsonl");
  auto n = http.Dump(file);
  EXPECT_TRUE(n.ok()) << n.status().ToString();
  std::vector<json> rows;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) rows.push_back(json::parse(line));
  }
  return rows;
}

/// The dead-letter file's requests, one per idempotency key (a rerun may
/// dead-letter the same request again).
std::map<std::string, json> DeadLetters(const std::string& path) {
  std::map<std::string, json> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json j = json::parse(line);
    out[j["idempotency_key"].get<std::string>()] = j;
  }
  return out;
}

/// id,name CSV; every row whose id is a multiple of `bad_every` says BAD.
void WriteRows(const TempDir& tmp, const std::string& name, int64_t first, int64_t n, int64_t bad_every) {
  std::ofstream out(tmp.Path(name));
  out << "id,name\n";
  for (int64_t i = first; i < first + n; ++i) {
    out << i << "," << (bad_every > 0 && i % bad_every == 0 ? "BAD " : "row ") << i << "\n";
  }
}

class HttpDestinationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    http_ = StartHttp();
    ASSERT_NE(http_, nullptr);
  }

  std::string Pipeline(const std::string& path, const std::string& extra_source = "",
                       const std::string& extra_dest = "") const {
    return "name = \"deliver\"\n[source]\npath = '" + path + "'\n" + extra_source +
           "\n[destination]\ntype = " + "\"http\"\nurl = '" + http_->Url("/ingest") +
           "'\nmax_rows = 500\nconcurrency = 8\ntimeout = \"5s\"\n" + "dead_letter = '" +
           tmp_.Path("rejected.jsonl") + "'\n" + extra_dest +
           "\n[destination.retry]\nmax_attempts = 20\ninitial = \"5ms\"\nmax_delay = "
           "\"200ms\"\n[state]\npath = '" +
           tmp_.Path("state.db") + "'\n" + EngineSection();
  }

  /// Every id in [0, n) exactly once over what the receiver stored and what
  /// was dead-lettered, and each dead-lettered request holds a BAD row.
  void ExpectEveryRowOnce(int64_t n, int64_t bad_every) {
    std::map<int64_t, int> seen;
    for (const json& r : Stored(*http_, tmp_)) seen[r["row"]["id"].get<int64_t>()]++;
    int64_t stored = static_cast<int64_t>(seen.size());
    auto dead = DeadLetters(tmp_.Path("rejected.jsonl"));
    int64_t dead_rows = 0;
    for (const auto& [key, request] : dead) {
      EXPECT_EQ(request["status"], 400) << request.dump().substr(0, 500);
      EXPECT_NE(request["response"].get<std::string>().find("rejected"), std::string::npos);
      EXPECT_EQ(request["url"], http_->Url("/ingest"));
      bool has_bad = false;
      for (const json& row : request["rows"]) {
        seen[row["id"].get<int64_t>()]++;
        has_bad = has_bad || row["name"].get<std::string>().starts_with("BAD");
        ++dead_rows;
      }
      EXPECT_TRUE(has_bad) << "a request without a refused row was dead-lettered: " << key;
    }
    if (bad_every > 0) {
      EXPECT_GT(dead.size(), 0u);
    } else {
      EXPECT_EQ(dead.size(), 0u);
    }
    EXPECT_EQ(static_cast<int64_t>(seen.size()), n) << stored << " stored, " << dead_rows << " dead-lettered";
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) {
      auto it = seen.find(i);
      if (it == seen.end() || it->second != 1) ++wrong;
    }
    EXPECT_EQ(wrong, 0) << "ids missing or present more than once";
  }

  std::unique_ptr<HttpTestServer> http_;
  TempDir tmp_{"sluice-http-dest"};
};

TEST_F(HttpDestinationTest, TwoHundredThousandRowsThroughFaultsArriveExactlyOnceAfterDedup) {
  WriteRows(tmp_, "rows.csv", 0, 200000, 9973);
  ASSERT_TRUE(http_
                  ->SetFaults(R"({"seed": 7, "rate_500": 0.03, "rate_503": 0.03, "rate_429": 0.03,
      "retry_after": "0", "rate_cut": 0.02, "rate_drop_reply": 0.02, "reject_marker": "BAD"})")
                  .ok());
  auto r = RunPipeline(tmp_, Pipeline(tmp_.Path("rows.csv")));
  ASSERT_EQ(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find("dead-lettered"), std::string::npos) << Describe(r);
  auto received = http_->Received();
  ASSERT_TRUE(received.ok());
  // Lost replies were sent again with the same key and dropped by the receiver.
  EXPECT_GT((*received)["duplicates"].get<int64_t>(), 0) << received->dump();
  EXPECT_GT((*received)["faulted"].get<int64_t>(), 0) << received->dump();
  ExpectEveryRowOnce(200000, 9973);
}

TEST_F(HttpDestinationTest, KillNineDuringALoadThenARerunDeliversEveryRowOnceAfterDedup) {
  std::filesystem::create_directories(tmp_.Path("in"));
  WriteRows(tmp_, "in/a.csv", 0, 60000, 0);
  WriteRows(tmp_, "in/b.csv", 60000, 60000, 0);
  // Slow enough to be killed in the middle.
  ASSERT_TRUE(http_->SetFaults(R"({"seed": 3, "rate_slow": 1.0, "slow_ms": 20})").ok());
  std::string file = tmp_.Write("pipeline.toml", Pipeline(tmp_.Path("in/*.csv"), "incremental = true"));
  auto proc = CliProcess::Start({"run", file, "--once", "--progress", "never"});
  ASSERT_TRUE(proc.ok()) << proc.status().ToString();
  int64_t accepted = 0;
  for (int i = 0; i < 300 && accepted < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    auto received = http_->Received();
    if (received.ok()) accepted = (*received)["accepted"].get<int64_t>();
  }
  ASSERT_GE(accepted, 20) << (*proc)->StderrSoFar();
  (*proc)->Kill(SIGKILL);
  (void)(*proc)->Wait();
  auto partial = http_->Received();
  ASSERT_TRUE(partial.ok());
  EXPECT_LT((*partial)["rows"].get<int64_t>(), 120000) << "the load finished before the kill";
  ASSERT_TRUE(http_->SetFaults(R"({"seed": 4, "rate_drop_reply": 0.02})").ok());
  auto rerun = RunPipeline(tmp_, Pipeline(tmp_.Path("in/*.csv"), "incremental = true"));
  ASSERT_EQ(rerun.exit_code, 0) << Describe(rerun);
  auto after = http_->Received();
  ASSERT_TRUE(after.ok());
  // The rerun sent the requests of the killed run again under the same keys.
  EXPECT_GT((*after)["duplicates"].get<int64_t>(), 0) << after->dump();
  ExpectEveryRowOnce(120000, 0);
  // A third run has nothing new to send.
  auto third = RunPipeline(tmp_, Pipeline(tmp_.Path("in/*.csv"), "incremental = true"));
  ASSERT_EQ(third.exit_code, 0) << Describe(third);
  auto last = http_->Received();
  ASSERT_TRUE(last.ok());
  EXPECT_EQ((*last)["requests"], (*after)["requests"]);
}

TEST_F(HttpDestinationTest, WithoutADeadLetterFileARefusedRequestFailsTheRunNamingUrlAndStatus) {
  WriteRows(tmp_, "rows.csv", 0, 2000, 1500);
  ASSERT_TRUE(http_->SetFaults(R"({"reject_marker": "BAD"})").ok());
  std::string toml = Pipeline(tmp_.Path("rows.csv"));
  toml.replace(toml.find("dead_letter"), toml.find('\n', toml.find("dead_letter")) - toml.find("dead_letter"),
               "");
  auto r = RunPipeline(tmp_, toml);
  EXPECT_NE(r.exit_code, 0) << Describe(r);
  EXPECT_NE(r.err.find(http_->Url("/ingest")), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("400"), std::string::npos) << Describe(r);
  EXPECT_NE(r.err.find("rejected: contains BAD"), std::string::npos) << Describe(r);
}

class HttpCdcTest : public PgTest {
 protected:
  void SetUp() override {
    PgTest::SetUp();
    http_ = StartHttp();
    ASSERT_NE(http_, nullptr);
  }
  std::unique_ptr<HttpTestServer> http_;
  TempDir tmp_{"sluice-http-cdc"};
};

TEST_F(HttpCdcTest, KillNineWhileStreamingThenRestartDeliversEveryChangeOnceInCommitOrderPerTable) {
  Exec("CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)");
  Exec("CREATE TABLE notes (id bigint PRIMARY KEY, body text)");
  Exec("INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 500) g");
  Exec("CREATE PUBLICATION pub FOR TABLE accounts, notes");
  std::string toml =
      "name = \"cdc_http\"\n[source]\ntype = \"postgres_cdc\"\nurl = '" + url_ +
      "'\npublication = \"pub\"\nslot = \"sluice_http\"\n[destination]\ntype = \"http\"\nurl = '" +
      http_->Url("/ingest/{table}") +
      "'\nformat = \"jsonl\"\nmax_rows = 50\n[destination.retry]\nmax_attempts = 50\ninitial = "
      "\"5ms\"\nmax_delay = \"100ms\"\n[state]\npath = '" +
      tmp_.Path("cdc_state.db") + "'\n";
  std::string file = tmp_.Write("cdc.toml", toml);
  ASSERT_TRUE(
      http_->SetFaults(R"({"seed": 11, "rate_503": 0.05, "rate_drop_reply": 0.05, "retry_after": "0"})")
          .ok());
  auto proc = CliProcess::Start({"run", file, "--progress", "never"});
  ASSERT_TRUE(proc.ok()) << proc.status().ToString();
  // A workload of transactions in both tables while sluice streams; kill -9 in the middle.
  std::thread writer([&] {
    for (int t = 0; t < 200; ++t) {
      (void)pg_->Exec(db_, "BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = " +
                               std::to_string(t % 500 + 1) + "; INSERT INTO notes VALUES (" +
                               std::to_string(t) + ", 'n" + std::to_string(t) + "'); COMMIT");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  (*proc)->Kill(SIGKILL);
  (void)(*proc)->Wait();
  writer.join();
  Exec("DELETE FROM notes WHERE id < 10");
  auto again = CliProcess::Start({"run", file, "--progress", "never"});
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  // Wait until the last change arrived: the 10 deletes of notes.
  int64_t deletes = 0;
  for (int i = 0; i < 600 && deletes < 10; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    deletes = 0;
    for (const json& r : Stored(*http_, tmp_)) {
      if (r["row"]["op"] == "delete" && r["row"]["table"] == "public.notes") ++deletes;
    }
  }
  (*again)->Kill(SIGTERM);
  (void)(*again)->Wait();
  ASSERT_EQ(deletes, 10) << (*again)->StderrSoFar();
  // After dedup by key (the receiver keeps each key once): the copy of
  // accounts, then every change once, in commit order per table.
  std::map<std::string, std::vector<json>> per_table;
  for (const json& r : Stored(*http_, tmp_)) {
    EXPECT_EQ(r["path"], "/ingest/" + r["row"]["table"].get<std::string>());
    per_table[r["row"]["table"]].push_back(r["row"]);
  }
  // A receiver drops what a table's copy sent before a later copy_start
  // (an interrupted copy that started again).
  int64_t copied = 0, updates = 0;
  for (const json& e : per_table["public.accounts"]) {
    if (e["op"] == "copy_start") copied = 0;
    if (e["op"] == "copy") ++copied;
    if (e["op"] == "update") ++updates;
  }
  EXPECT_EQ(copied, 500);
  // Updates committed before the snapshot are in the copied balances.
  EXPECT_LE(updates, 200);
  EXPECT_GT(updates, 100);
  std::set<int64_t> copied_notes, inserted;
  int64_t previous_commit = -1;
  for (const json& e : per_table["public.notes"]) {
    if (e["op"] == "copy_start") copied_notes.clear();
    if (e["op"] == "copy") {
      EXPECT_TRUE(copied_notes.insert(e["new"]["id"].get<int64_t>()).second) << "copied twice: " << e.dump();
    }
    if (e["op"] == "insert") {
      EXPECT_TRUE(inserted.insert(e["new"]["id"].get<int64_t>()).second)
          << "insert delivered twice: " << e.dump();
      EXPECT_EQ(copied_notes.count(e["new"]["id"].get<int64_t>()), 0u) << "copied and inserted: " << e.dump();
    }
    if (e.contains("commit_lsn")) {
      std::string lsn = e["commit_lsn"];
      auto pos = lsn.find('/');
      int64_t value =
          (std::stoll(lsn.substr(0, pos), nullptr, 16) << 32) + std::stoll(lsn.substr(pos + 1), nullptr, 16);
      EXPECT_GE(value, previous_commit) << "out of commit order: " << e.dump();
      previous_commit = value;
    }
  }
  EXPECT_EQ(copied_notes.size() + inserted.size(), 200u);
}

TEST_F(HttpCdcTest, ARefusedRequestWithoutDeadLetterErrorsItsTableAndTheOthersGoOn) {
  Exec("CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)");
  Exec("CREATE TABLE notes (id bigint PRIMARY KEY, body text)");
  Exec("CREATE PUBLICATION pub FOR TABLE accounts, notes");
  ASSERT_TRUE(http_->SetFaults(R"({"reject_marker": "BAD"})").ok());
  std::string toml =
      "name = \"cdc_refused\"\n[source]\ntype = \"postgres_cdc\"\nurl = '" + url_ +
      "'\npublication = \"pub\"\nslot = \"sluice_refused\"\ntable_error_retry_delay_ms = 600000\n"
      "[destination]\ntype = \"http\"\nurl = '" +
      http_->Url("/ingest/{table}") + "'\n[state]\npath = '" + tmp_.Path("state.db") + "'\n";
  std::string file = tmp_.Write("cdc.toml", toml);
  auto proc = CliProcess::Start({"run", file, "--progress", "never"});
  ASSERT_TRUE(proc.ok()) << proc.status().ToString();
  auto stored_count = [&](const std::string& table, const std::string& op) {
    int64_t n = 0;
    for (const json& r : Stored(*http_, tmp_)) {
      if (r["row"]["table"] == table && r["row"]["op"] == op) ++n;
    }
    return n;
  };
  for (int i = 0; i < 100 && stored_count("public.notes", "copy_start") == 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  Exec("INSERT INTO notes VALUES (1, 'fine')");
  Exec("INSERT INTO notes VALUES (2, 'BAD note')");
  Exec("INSERT INTO accounts VALUES (1, 10)");
  Exec("INSERT INTO accounts VALUES (2, 20)");
  // The accounts rows can be stored before the notes table's refusal is
  // logged (the tables are sent independently): wait for both.
  for (int i = 0; i < 150 && (stored_count("public.accounts", "insert") < 2 ||
                              (*proc)->StderrSoFar().find("table public.notes errored") ==
                                  std::string::npos);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::string err = (*proc)->StderrSoFar();
  (*proc)->Kill(SIGTERM);
  (void)(*proc)->Wait();
  EXPECT_EQ(stored_count("public.accounts", "insert"), 2) << err;
  EXPECT_EQ(stored_count("public.notes", "insert"), 1) << err;
  EXPECT_NE(err.find("table public.notes errored"), std::string::npos) << err;
  EXPECT_NE(err.find("rejected: contains BAD"), std::string::npos) << err;
}

}  // namespace
}  // namespace sluice::e2e
