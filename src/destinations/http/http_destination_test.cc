// The http destinations: their table's keys, and loads and change events
// sent to the real test server of the harness (tests/http_server), which
// stores rows by Idempotency-Key and injects faults.
#include "destinations/http/http_destination.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "config/config_document.h"
#include "harness/http_test_server.h"
#include "harness/temp_dir.h"

namespace sluice::destinations {
namespace {

using nlohmann::json;
using testing::HttpTestServer;
using testing::TempDir;

// ---------------------------------------------------------------------------
// Configuration

std::unique_ptr<config::ConfigDocument> Parse(const std::string& toml) {
  auto doc = config::ConfigDocument::Parse(
      toml, "p.toml",
      [](const std::string&) -> std::optional<std::string> { return std::string("s3cr3t-token"); });
  EXPECT_TRUE(doc.ok()) << doc.status().ToString();
  return std::move(doc).value();
}

Registry HttpRegistry() {
  Registry registry;
  EXPECT_TRUE(RegisterHttpDestinations(registry).ok());
  return registry;
}

TEST(HttpDestinationConfig, DefaultsAreTheContractsDefaults) {
  auto doc = Parse("[destination]\ntype = \"http\"\nurl = \"http://127.0.0.1:8080/ingest\"\n");
  auto o = ReadHttpSendOptions(doc->Section("destination"), false);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->method, "POST");
  EXPECT_EQ(o->format, BodyFormat::kJson);
  EXPECT_EQ(o->decimals, DecimalFormat::kNumber);
  EXPECT_EQ(o->max_rows, 500);
  EXPECT_EQ(o->max_bytes, 1000000);
  EXPECT_EQ(o->concurrency, 8);
  EXPECT_EQ(o->timeout, std::chrono::seconds(30));
  EXPECT_EQ(o->dead_letter, "");
  EXPECT_EQ(o->retry.max_attempts, 10);
  EXPECT_EQ(o->retry.initial, std::chrono::milliseconds(200));
  EXPECT_EQ(o->retry.max_delay, std::chrono::seconds(30));
  EXPECT_EQ(o->retry.max_elapsed, std::chrono::minutes(5));
}

TEST(HttpDestinationConfig, EveryContractKeyIsRead) {
  auto doc = Parse(R"TOML(
[destination]
type = "http"
url = "https://api.example.com/ingest"
method = "put"
format = "ndjson"
decimals = "string"
headers = { Authorization = "Bearer ${API_TOKEN}", X-Source = "sluice" }
max_rows = 50
max_bytes = "64KiB"
concurrency = 3
timeout = "1500ms"
dead_letter = "rejected.jsonl"

[destination.retry]
max_attempts = 4
initial = "50ms"
max_delay = "2s"
max_elapsed = "1m"

[retry]
attempts = 2
)TOML");
  const ConfigTable& t = doc->Section("destination");
  EXPECT_EQ(t.GetString("type"), "http");  // read by the registry
  auto o = ReadHttpSendOptions(t, false);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->method, "PUT");
  EXPECT_EQ(o->format, BodyFormat::kJsonLines);
  EXPECT_EQ(o->decimals, DecimalFormat::kString);
  ASSERT_EQ(o->headers.size(), 2u);
  EXPECT_EQ(o->headers[0].second, "Bearer s3cr3t-token");
  EXPECT_EQ(o->max_rows, 50);
  EXPECT_EQ(o->max_bytes, 65536);
  EXPECT_EQ(o->concurrency, 3);
  EXPECT_EQ(o->timeout, std::chrono::milliseconds(1500));
  EXPECT_EQ(o->dead_letter, "rejected.jsonl");
  EXPECT_EQ(o->retry.max_attempts, 4);
  EXPECT_EQ(o->retry.initial, std::chrono::milliseconds(50));
  EXPECT_EQ(o->retry.max_delay, std::chrono::seconds(2));
  EXPECT_EQ(o->retry.max_elapsed, std::chrono::minutes(1));
  EXPECT_TRUE(t.CheckAllRead("http").ok()) << t.CheckAllRead("http").ToString();
  EXPECT_EQ(DescribeHttp(*o), "http PUT https://api.example.com/ingest");
}

TEST(HttpDestinationConfig, TheFilesRetrySectionIsNotTheDestinations) {
  // [retry] re-runs whole loads; it must not set the per-request retries.
  auto doc = Parse("[destination]\ntype = \"http\"\nurl = \"http://h/x\"\n[retry]\nmax_attempts = 2\n");
  auto o = ReadHttpSendOptions(doc->Section("destination"), false);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->retry.max_attempts, 10);
}

TEST(HttpDestinationConfig, BadValuesNameTheKey) {
  std::vector<std::pair<std::string, std::string>> cases = {
      {"method = \"GET\"", "[destination] method must be \"POST\" or \"PUT\""},
      {"format = \"csv\"", "[destination] format must be \"json\""},
      {"decimals = \"float\"", "[destination] decimals must be \"number\" or \"string\""},
      {"max_rows = 0", "[destination] max_rows must be at least 1"},
      {"concurrency = 0", "[destination] concurrency must be between 1 and 4096"},
      {"timeout = \"soon\"", "[destination] timeout"},
      {"headers = { Idempotency-Key = \"x\" }", "[destination] headers.Idempotency-Key is set by sluice"},
      {"headers = { \"Bad Name\" = \"x\" }", "not a valid header name"},
  };
  for (const auto& [line, expected] : cases) {
    auto doc = Parse("[destination]\ntype = \"http\"\nurl = \"http://h/x\"\n" + line + "\n");
    auto o = ReadHttpSendOptions(doc->Section("destination"), false);
    ASSERT_FALSE(o.ok()) << line;
    EXPECT_EQ(o.status().code(), StatusCode::kInvalidArgument) << line;
    EXPECT_NE(o.status().message().find(expected), std::string::npos) << line << ": " << o.status().message();
  }
  auto retry = Parse("[destination]\nurl = \"http://h/x\"\n[destination.retry]\nmax_attempts = 0\n");
  auto o = ReadHttpSendOptions(retry->Section("destination"), false);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("[destination.retry] max_attempts must be between 1 and 1000"),
            std::string::npos)
      << o.status().message();
}

TEST(HttpDestinationConfig, UrlIsRequiredAndCheckedWithoutItsPassword) {
  auto missing = Parse("[destination]\ntype = \"http\"\n");
  auto o = ReadHttpSendOptions(missing->Section("destination"), false);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("[destination] url is required"), std::string::npos)
      << o.status().message();
  auto bad = Parse("[destination]\nurl = \"ftp://me:hunter2@h/x\"\n");
  o = ReadHttpSendOptions(bad->Section("destination"), false);
  ASSERT_FALSE(o.ok());
  EXPECT_NE(o.status().message().find("http:// or https://"), std::string::npos) << o.status().message();
  EXPECT_EQ(o.status().message().find("hunter2"), std::string::npos) << o.status().message();
}

TEST(HttpDestinationConfig, TablePlaceholderIsForChangeDataCaptureOnly) {
  auto doc = Parse("[destination]\ntype = \"http\"\nurl = \"http://h/ingest/{table}\"\n");
  auto batch = ReadHttpSendOptions(doc->Section("destination"), false);
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.status().message().find("{table}"), std::string::npos) << batch.status().message();
  auto doc2 = Parse("[destination]\ntype = \"http\"\nurl = \"http://h/ingest/{table}\"\n");
  EXPECT_TRUE(ReadHttpSendOptions(doc2->Section("destination"), true).ok());
}

TEST(HttpDestinationConfig, RegistryRefusesConcurrencyForCdcAndUnknownRetryKeys) {
  Registry registry = HttpRegistry();
  auto doc = Parse("[destination]\ntype = \"http\"\nurl = \"http://h/x\"\nconcurrency = 4\n");
  auto cdc = registry.MakeCdcDestination(doc->Section("destination"));
  ASSERT_FALSE(cdc.ok());
  EXPECT_NE(cdc.status().message().find("unknown key 'concurrency'"), std::string::npos)
      << cdc.status().message();

  auto doc2 =
      Parse("[destination]\ntype = \"http\"\nurl = \"http://h/x\"\n[destination.retry]\nattempts = 3\n");
  auto batch = registry.MakeDestination(doc2->Section("destination"));
  ASSERT_FALSE(batch.ok());
  EXPECT_NE(batch.status().message().find("unknown key 'attempts'"), std::string::npos)
      << batch.status().message();

  auto doc3 = Parse("[destination]\ntype = \"http\"\nurl = \"http://u:hunter2@h/x?token=abc\"\n");
  auto ok = registry.MakeDestination(doc3->Section("destination"));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)->delivery(), Delivery::kAtLeastOnce);
  EXPECT_TRUE((*ok)->NeedsInputOrder());
  EXPECT_EQ((*ok)->Describe().find("hunter2"), std::string::npos) << (*ok)->Describe();
  EXPECT_EQ((*ok)->Describe().find("abc"), std::string::npos) << (*ok)->Describe();
  auto checked = (*ok)->Check(Schema());
  ASSERT_TRUE(checked.ok()) << checked.status().ToString();
  EXPECT_NE(checked->find("not contacted"), std::string::npos) << *checked;
}

// ---------------------------------------------------------------------------
// Batch loads against the test server

std::unique_ptr<HttpTestServer> StartServer() {
  auto server = HttpTestServer::Start();
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

HttpSendOptions Options(const HttpTestServer& server, const std::string& path = "/ingest") {
  HttpSendOptions o;
  o.url = server.Url(path);
  o.max_rows = 100;
  o.concurrency = 4;
  o.timeout = std::chrono::seconds(10);
  o.retry.initial = std::chrono::milliseconds(5);
  o.retry.max_delay = std::chrono::milliseconds(50);
  o.retry.max_elapsed = std::chrono::seconds(30);
  o.pipeline = "orders";
  return o;
}

/// Rows id = first..first+n-1, note = "row <id>" (or `marker` for ids in `marked`).
std::shared_ptr<Batch> Rows(int64_t first, int64_t n, const std::set<int64_t>& marked = {},
                            const std::string& marker = "BAD") {
  BatchBuilder b(Schema({Field{"id", DataType::Of(TypeId::kInt64), false},
                         Field{"note", DataType::Of(TypeId::kString), true},
                         Field{"amount", DataType::Decimal(12, 2), true}}));
  for (int64_t id = first; id < first + n; ++id) {
    b.AppendInt(0, id);
    b.AppendBytes(1, marked.count(id) ? marker : "row " + std::to_string(id));
    b.AppendInt(2, id * 100 + 5);
  }
  auto batch = b.Finish();
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return std::move(batch).value();
}

/// One load of `batches` with the given input identity; returns Commit's status.
Status Load(Destination* dest, const std::vector<std::shared_ptr<Batch>>& batches, const std::string& input,
            bool encoded = false) {
  LoadContext load;
  load.pipeline = "orders";
  load.input_identity = input;
  SLUICE_RETURN_IF_ERROR(dest->PrepareLoad(load));
  SLUICE_RETURN_IF_ERROR(dest->Begin(batches.front()->schema()));
  for (const auto& batch : batches) {
    Status written;
    if (encoded) {
      auto bytes = dest->Encode(*batch);
      written = bytes.ok() ? dest->WriteEncoded(std::move(bytes).value(), batch->num_rows()) : bytes.status();
    } else {
      written = dest->Write(*batch);
    }
    if (!written.ok()) {
      dest->Abort();
      return written;
    }
  }
  Status committed = dest->Commit();
  if (!committed.ok()) dest->Abort();
  return committed;
}

/// The stored rows, by id, as JSON.
std::map<int64_t, json> Stored(const HttpTestServer& server, const TempDir& dir,
                               std::set<std::string>* keys = nullptr) {
  std::string file = dir.Path("dump.jsonl");
  auto dumped = server.Dump(file);
  EXPECT_TRUE(dumped.ok()) << dumped.status().ToString();
  std::map<int64_t, json> rows;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    int64_t id = j["row"]["id"].get<int64_t>();
    EXPECT_FALSE(rows.count(id)) << "row " << id << " stored twice";
    rows[id] = j["row"];
    if (keys) keys->insert(j["key"].get<std::string>());
  }
  return rows;
}

TEST(HttpDestination, LoadsEveryRowInRequestsOfMaxRowsWithKeys) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  auto dest = MakeHttpDestination(Options(*server));
  ASSERT_TRUE(Load(dest.get(), {Rows(0, 550), Rows(550, 700)}, "data/a.csv etag-1").ok());
  auto received = server->Received();
  ASSERT_TRUE(received.ok()) << received.status().ToString();
  EXPECT_EQ((*received)["requests"], 13);  // 1250 rows in requests of 100
  EXPECT_EQ((*received)["accepted"], 13);
  std::set<std::string> keys;
  auto rows = Stored(*server, dir, &keys);
  ASSERT_EQ(rows.size(), 1250u);
  EXPECT_EQ(keys.size(), 13u);
  EXPECT_EQ(keys.count(RowRequestKey("orders", "input data/a.csv etag-1", 0)), 1u);
  EXPECT_EQ(keys.count(RowRequestKey("orders", "input data/a.csv etag-1", 12)), 1u);
  EXPECT_EQ(rows[7], json::parse(R"({"id":7,"note":"row 7","amount":7.05})"));
  EXPECT_EQ(dest->Note(), "");
}

TEST(HttpDestination, TheSameInputLoadedAgainSendsTheSameKeysWhateverTheBatches) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  auto first = MakeHttpDestination(Options(*server));
  ASSERT_TRUE(Load(first.get(), {Rows(0, 1000)}, "a.csv etag-1").ok());
  // A rerun after a crash: other batch boundaries, encoded on workers.
  auto again = MakeHttpDestination(Options(*server));
  ASSERT_TRUE(Load(again.get(), {Rows(0, 33), Rows(33, 500), Rows(533, 467)}, "a.csv etag-1", true).ok());
  auto received = server->Received();
  ASSERT_TRUE(received.ok());
  EXPECT_EQ((*received)["accepted"], 10);
  EXPECT_EQ((*received)["duplicates"], 10);
  EXPECT_EQ(Stored(*server, dir).size(), 1000u);
  // Another version of the file is another input: its rows are new.
  auto changed = MakeHttpDestination(Options(*server));
  ASSERT_TRUE(Load(changed.get(), {Rows(0, 100)}, "a.csv etag-2").ok());
  EXPECT_EQ((*server->Received())["accepted"], 11);
}

TEST(HttpDestination, JsonLinesBodiesAndStringDecimals) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  HttpSendOptions o = Options(*server);
  o.format = BodyFormat::kJsonLines;
  o.decimals = DecimalFormat::kString;
  o.max_rows = 1000;
  o.max_bytes = 2000;  // about 45 rows per request
  auto dest = MakeHttpDestination(o);
  ASSERT_TRUE(Load(dest.get(), {Rows(0, 300)}, "x").ok());
  auto rows = Stored(*server, dir);
  ASSERT_EQ(rows.size(), 300u);
  EXPECT_EQ(rows[3]["amount"], "3.05");
  auto received = server->Received();
  EXPECT_GE((*received)["requests"].get<int>(), 7);
  EXPECT_LE((*received)["bytes"].get<int64_t>() / (*received)["requests"].get<int64_t>(), 2000);
}

TEST(HttpDestination, ServerFaultsAreRetriedAndEveryRowArrivesOnceAfterDedup) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  ASSERT_TRUE(server
                  ->SetFaults(R"({"seed": 7, "rate_500": 0.15, "rate_503": 0.1, "rate_429": 0.1,
                                  "retry_after": "0", "rate_cut": 0.05, "rate_drop_reply": 0.1})")
                  .ok());
  HttpSendOptions o = Options(*server);
  o.max_rows = 20;
  o.retry.max_attempts = 30;
  auto dest = MakeHttpDestination(o);
  Status loaded = Load(dest.get(), {Rows(0, 2000)}, "faulty");
  ASSERT_TRUE(loaded.ok()) << loaded.ToString();
  auto received = server->Received();
  EXPECT_GT((*received)["faulted"].get<int>(), 0);
  EXPECT_EQ((*received)["accepted"], 100);
  auto rows = Stored(*server, dir);
  EXPECT_EQ(rows.size(), 2000u);
}

TEST(HttpDestination, RefusedRequestsGoToTheDeadLetterFileAndTheLoadGoesOn) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  ASSERT_TRUE(server->SetFaults(R"({"reject_marker": "BAD"})").ok());
  HttpSendOptions o = Options(*server);
  o.dead_letter = dir.Path("rejected.jsonl");
  o.headers = {{"Authorization", "Bearer very-secret-token"}};
  auto dest = MakeHttpDestination(o);
  // Rows 150 and 420 are refused: requests 1 (100-199) and 4 (400-499).
  Status loaded = Load(dest.get(), {Rows(0, 500, {150, 420})}, "with-bad-rows");
  ASSERT_TRUE(loaded.ok()) << loaded.ToString();
  EXPECT_EQ(dest->Note(), "200 rows in 2 requests dead-lettered to " + o.dead_letter);
  EXPECT_EQ(Stored(*server, dir).size(), 300u);

  std::ifstream in(o.dead_letter);
  std::string line;
  std::vector<json> letters;
  while (std::getline(in, line)) letters.push_back(json::parse(line));
  ASSERT_EQ(letters.size(), 2u);
  std::set<int64_t> ids;
  for (const json& letter : letters) {
    EXPECT_EQ(letter["status"], 400);
    EXPECT_EQ(letter["url"], server->Url("/ingest"));
    EXPECT_NE(letter["response"].get<std::string>().find("rejected"), std::string::npos) << letter;
    EXPECT_EQ(letter["error"], "HTTP 400");
    EXPECT_EQ(letter["idempotency_key"].get<std::string>().size(), 64u);
    EXPECT_FALSE(letter["time"].get<std::string>().empty());
    ASSERT_EQ(letter["rows"].size(), 100u);
    for (const json& row : letter["rows"]) ids.insert(row["id"].get<int64_t>());
  }
  EXPECT_EQ(ids.size(), 200u);
  EXPECT_TRUE(ids.count(150) && ids.count(199) && ids.count(400) && ids.count(499));
  std::set<std::string> keys = {letters[0]["idempotency_key"], letters[1]["idempotency_key"]};
  EXPECT_EQ(keys, (std::set<std::string>{RowRequestKey("orders", "input with-bad-rows", 1),
                                         RowRequestKey("orders", "input with-bad-rows", 4)}));
}

TEST(HttpDestination, WithoutDeadLetterARefusedRequestFailsTheLoadNamingUrlStatusAndResponse) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->SetFaults(R"({"reject_marker": "BAD"})").ok());
  HttpSendOptions o = Options(*server);
  o.url = "http://user:hunter2@127.0.0.1:" + std::to_string(server->port()) + "/ingest";
  auto dest = MakeHttpDestination(o);
  Status loaded = Load(dest.get(), {Rows(0, 300, {250})}, "refused");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.code(), StatusCode::kDataError);
  EXPECT_NE(loaded.message().find("http POST http://user:***@127.0.0.1:"), std::string::npos)
      << loaded.message();
  EXPECT_NE(loaded.message().find("request 2 (100 rows) was refused: HTTP 400"), std::string::npos)
      << loaded.message();
  EXPECT_NE(loaded.message().find("rejected: contains BAD"), std::string::npos) << loaded.message();
  EXPECT_EQ(loaded.message().find("hunter2"), std::string::npos) << loaded.message();
}

TEST(HttpDestination, ExhaustedRetriesAreDeadLetteredWithTheirAttempts) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  HttpSendOptions o = Options(*server, "/ingest?fail=503");
  o.retry.max_attempts = 3;
  o.dead_letter = dir.Path("dl/../rejected.jsonl");
  std::filesystem::create_directories(dir.Path("dl"));
  auto dest = MakeHttpDestination(o);
  ASSERT_TRUE(Load(dest.get(), {Rows(0, 150)}, "down").ok());
  EXPECT_EQ(dest->Note(), "150 rows in 2 requests dead-lettered to " + o.dead_letter);
  std::ifstream in(o.dead_letter);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  json letter = json::parse(line);
  EXPECT_EQ(letter["status"], 503);
  EXPECT_EQ(letter["error"], "HTTP 503 after 3 attempts");

  // Without a dead-letter file the load fails, as retryable.
  o.dead_letter.clear();
  auto failing = MakeHttpDestination(o);
  Status loaded = Load(failing.get(), {Rows(0, 10)}, "down");
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.code(), StatusCode::kUnavailable);
  EXPECT_NE(loaded.message().find("failed: HTTP 503 after 3 attempts"), std::string::npos)
      << loaded.message();
}

TEST(HttpDestination, InterruptEndsRequestsInFlightPromptly) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  HttpSendOptions o = Options(*server, "/ingest?delay_ms=20000");
  auto dest = MakeHttpDestination(o);
  auto start = std::chrono::steady_clock::now();
  std::thread interrupter([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    dest->Interrupt();
  });
  Status loaded = Load(dest.get(), {Rows(0, 1000)}, "slow");
  interrupter.join();
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.code(), StatusCode::kCancelled) << loaded.ToString();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(HttpDestination, WithoutAnInputIdentityEachLoadHasKeysOfItsOwn) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  for (int i = 0; i < 2; ++i) {
    auto dest = MakeHttpDestination(Options(*server));
    ASSERT_TRUE(Load(dest.get(), {Rows(0, 10)}, "").ok());
  }
  auto received = server->Received();
  EXPECT_EQ((*received)["accepted"], 2);
  EXPECT_EQ((*received)["duplicates"], 0);
}

// ---------------------------------------------------------------------------
// Change events

/// Builds change batches of inserts into tables with columns (id int4, note text).
class Events {
 public:
  explicit Events(std::vector<std::string> tables) {
    uint32_t oid = 100;
    for (const auto& name : tables) {
      auto table = std::make_shared<CdcTable>();
      table->id = oid++;
      table->schema = "public";
      table->name = name;
      table->columns = {CdcColumn{"id", 23, -1, "integer", "", true},
                        CdcColumn{"note", 25, -1, "text", "", false}};
      tables_.push_back(table);
    }
  }
  /// A transaction of `ids` inserts, each into tables_[id % tables].
  void Transaction(CdcLsn commit_lsn, const std::vector<int>& ids) {
    transactions_.push_back({commit_lsn, ids});
  }

  /// The events cut into batches after the given event counts (the rest in
  /// a last batch); a batch that ends inside a transaction is incomplete.
  std::vector<std::unique_ptr<ChangeBatch>> Batches(const std::vector<size_t>& sizes) const {
    struct Flat {
      CdcLsn lsn;
      int id;
      bool last;
    };
    std::vector<Flat> flat;
    for (const auto& [lsn, ids] : transactions_) {
      for (size_t i = 0; i < ids.size(); ++i) flat.push_back({lsn, ids[i], i + 1 == ids.size()});
    }
    std::vector<std::unique_ptr<ChangeBatch>> out;
    size_t pos = 0, b = 0;
    while (pos < flat.size()) {
      size_t end = std::min(flat.size(), b < sizes.size() ? pos + sizes[b++] : flat.size());
      auto batch = std::make_unique<ChangeBatch>();
      size_t txn_first = 0;
      bool complete = false;
      for (; pos < end; ++pos) {
        const Flat& f = flat[pos];
        uint32_t row = batch->BeginRow();
        batch->AppendCell(CdcCellKind::kText, std::to_string(f.id));
        batch->AppendCell(CdcCellKind::kText, "note " + std::to_string(f.id));
        ChangeEvent event;
        event.op = ChangeOp::kInsert;
        event.table = tables_[static_cast<size_t>(f.id) % tables_.size()];
        event.xid = static_cast<uint32_t>(f.lsn);
        event.commit_lsn = f.lsn;
        event.commit_time_us = 1704164645000000;
        event.new_row = row;
        batch->AppendEvent(std::move(event));
        complete = false;
        if (f.last) {
          batch->FinishTransaction(txn_first, f.lsn + 8);
          txn_first = batch->events().size();
          complete = true;
        }
      }
      batch->set_complete(complete);
      out.push_back(std::move(batch));
    }
    return out;
  }

  const CdcTable& table(size_t i) const { return *tables_[i]; }

 private:
  std::vector<std::shared_ptr<CdcTable>> tables_;
  std::vector<std::pair<CdcLsn, std::vector<int>>> transactions_;
};

struct StoredEvent {
  std::string key;
  std::string path;
  json row;
};

std::vector<StoredEvent> StoredEvents(const HttpTestServer& server, const TempDir& dir) {
  std::string file = dir.Path("events.jsonl");
  EXPECT_TRUE(server.Dump(file).ok());
  std::vector<StoredEvent> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    json j = json::parse(line);
    out.push_back({j["key"].get<std::string>(), j["path"].get<std::string>(), j["row"]});
  }
  return out;
}

Status Stream(CdcDestination* dest, const std::vector<std::unique_ptr<ChangeBatch>>& batches) {
  for (const auto& batch : batches) SLUICE_RETURN_IF_ERROR(dest->WriteEvents(*batch, {}));
  return Status::OK();
}

TEST(HttpCdcDestination, EventsArriveInCommitOrderInTheJsonLinesShape) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  HttpSendOptions o = Options(*server);
  o.max_rows = 4;
  auto dest = MakeHttpCdcDestination(o);
  ASSERT_TRUE(dest->Open().ok());
  Events events({"orders"});
  events.Transaction(0x1000, {1, 2});
  events.Transaction(0x2000, {3, 4, 5, 6, 7, 8, 9, 10, 11});
  events.Transaction(0x3000, {12});
  ASSERT_TRUE(Stream(dest.get(), events.Batches({})).ok());
  auto stored = StoredEvents(*server, dir);
  ASSERT_EQ(stored.size(), 12u);
  for (size_t i = 0; i < stored.size(); ++i) EXPECT_EQ(stored[i].row["new"]["id"], static_cast<int>(i + 1));
  EXPECT_EQ(stored[0].row, json::parse(R"({"op":"insert","table":"public.orders","lsn":"0/1008",
      "commit_lsn":"0/1000","commit_time":"2024-01-02T03:04:05.000000Z","xid":4096,
      "new":{"id":1,"note":"note 1"}})"));
  // Requests: [1,2], [3..6], [7..10], [11], [12].
  EXPECT_EQ((*server->Received())["accepted"], 5);
  EventRequest second{0x2000, 4, 4, ""};
  EXPECT_EQ(stored[6].key, EventRequestKey("orders", "", second));
}

TEST(HttpCdcDestination, AReplayInOtherBatchesIsRecognisedByItsKeys) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  HttpSendOptions o = Options(*server);
  o.max_rows = 3;
  Events events({"orders"});
  events.Transaction(0x10, {1});
  events.Transaction(0x20, {2, 3, 4, 5, 6, 7, 8});
  events.Transaction(0x30, {9, 10});
  events.Transaction(0x40, {11});
  {
    auto dest = MakeHttpCdcDestination(o);
    ASSERT_TRUE(dest->Open().ok());
    ASSERT_TRUE(Stream(dest.get(), events.Batches({1, 7, 3})).ok());
  }
  int accepted = (*server->Received())["accepted"];
  {
    // After a crash the stream comes again from the confirmed position, in
    // other batches (one ends inside the large transaction).
    auto dest = MakeHttpCdcDestination(o);
    ASSERT_TRUE(dest->Open().ok());
    ASSERT_TRUE(Stream(dest.get(), events.Batches({5, 6})).ok());
  }
  auto received = server->Received();
  EXPECT_EQ((*received)["accepted"], accepted);
  EXPECT_EQ((*received)["duplicates"], accepted);
  EXPECT_EQ(StoredEvents(*server, dir).size(), 11u);
}

TEST(HttpCdcDestination, TablePlaceholderSplitsRequestsPerTableInCommitOrder) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  HttpSendOptions o = Options(*server, "/ingest/{table}");
  auto dest = MakeHttpCdcDestination(o);
  ASSERT_TRUE(dest->Open().ok());
  Events events({"a", "b"});
  events.Transaction(1, {0, 1, 2, 3});
  events.Transaction(2, {4, 5});
  events.Transaction(3, {7});
  ASSERT_TRUE(Stream(dest.get(), events.Batches({})).ok());
  auto stored = StoredEvents(*server, dir);
  ASSERT_EQ(stored.size(), 7u);
  std::map<std::string, std::vector<int>> by_path;
  for (const auto& e : stored) by_path[e.path].push_back(e.row["new"]["id"].get<int>());
  EXPECT_EQ(by_path["/ingest/public.a"], (std::vector<int>{0, 2, 4}));
  EXPECT_EQ(by_path["/ingest/public.b"], (std::vector<int>{1, 3, 5, 7}));
  EventRequest b_first{1, 0, 2, ""};
  std::set<std::string> keys;
  for (const auto& e : stored) keys.insert(e.key);
  EXPECT_EQ(keys.count(EventRequestKey("orders", "public.b", b_first)), 1u);
  EXPECT_EQ(keys.size(), 5u);  // a: txn 1, 2; b: txn 1, 2, 3
}

TEST(HttpCdcDestination, InitialCopySendsCopyStartThenCopyEventsOfANewCopy) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  HttpSendOptions o = Options(*server);
  o.max_rows = 2;
  auto dest = MakeHttpCdcDestination(o);
  ASSERT_TRUE(dest->Open().ok());
  Events events({"orders"});
  events.Transaction(0, {1, 2, 3});
  auto batches = events.Batches({});
  ASSERT_TRUE(dest->TruncateTable(events.table(0)).ok());
  ASSERT_TRUE(dest->WriteTableRows(events.table(0), *batches[0]).ok());
  // The copy is interrupted and started again: a new copy, new keys.
  ASSERT_TRUE(dest->TruncateTable(events.table(0)).ok());
  ASSERT_TRUE(dest->WriteTableRows(events.table(0), *batches[0]).ok());
  auto stored = StoredEvents(*server, dir);
  ASSERT_EQ(stored.size(), 8u);
  // copy_start first; the copy's chunks may arrive in any order.
  for (size_t start : {0, 4}) {
    EXPECT_EQ(stored[start].row, json::parse(R"({"op":"copy_start","table":"public.orders"})"));
    std::set<int> ids;
    for (size_t i = start + 1; i < start + 4; ++i) {
      EXPECT_EQ(stored[i].row["op"], "copy");
      ids.insert(stored[i].row["new"]["id"].get<int>());
      if (stored[i].row["new"]["id"] == 1) {
        EXPECT_EQ(stored[i].row,
                  json::parse(R"({"op":"copy","table":"public.orders","new":{"id":1,"note":"note 1"}})"));
      }
    }
    EXPECT_EQ(ids, (std::set<int>{1, 2, 3}));
  }
  EXPECT_EQ((*server->Received())["duplicates"], 0);
}

TEST(HttpCdcDestination, ARefusedRequestFailsWriteEventsOrIsDeadLettered) {
  auto server = StartServer();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  ASSERT_TRUE(server->SetFaults(R"({"reject_marker": "note 5"})").ok());
  Events events({"orders"});
  events.Transaction(1, {1, 2});
  events.Transaction(2, {5});
  events.Transaction(3, {6});
  HttpSendOptions o = Options(*server);
  {
    auto dest = MakeHttpCdcDestination(o);
    ASSERT_TRUE(dest->Open().ok());
    Status s = Stream(dest.get(), events.Batches({}));
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), StatusCode::kDataError);
    EXPECT_NE(s.message().find("events 0..0 of the transaction committed at 0/2 was refused: HTTP 400"),
              std::string::npos)
        << s.message();
    // Later transactions are not sent past the refused one.
    EXPECT_EQ(StoredEvents(*server, dir).size(), 2u);
  }
  o.dead_letter = dir.Path("events-rejected.jsonl");
  auto dest = MakeHttpCdcDestination(o);
  ASSERT_TRUE(dest->Open().ok());
  ASSERT_TRUE(Stream(dest.get(), events.Batches({})).ok());
  EXPECT_EQ(StoredEvents(*server, dir).size(), 3u);
  std::ifstream in(o.dead_letter);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  json letter = json::parse(line);
  EXPECT_EQ(letter["rows"].size(), 1u);
  EXPECT_EQ(letter["rows"][0]["new"]["id"], 5);
  EXPECT_EQ(letter["rows"][0]["commit_lsn"], "0/2");
}

}  // namespace
}  // namespace sluice::destinations
