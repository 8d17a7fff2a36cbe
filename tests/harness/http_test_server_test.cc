// Tests that HttpTestServer gives a real server that behaves as
// tests/http_server/README.md says: the tests of the HTTP source,
// destination and alerts rely on each of these behaviours.
#include "harness/http_test_server.h"

#include <curl/curl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "harness/temp_dir.h"

namespace sluice::testing {
namespace {

using nlohmann::json;

std::unique_ptr<HttpTestServer> StartOrFail(HttpTestServerOptions options = {}) {
  auto server = HttpTestServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

HttpReply GetOrFail(const HttpTestServer& server, const std::string& path,
                    std::vector<std::string> headers = {}) {
  auto reply = server.Get(path, std::move(headers));
  EXPECT_TRUE(reply.ok()) << path << ": " << reply.status().ToString();
  return reply.ok() ? std::move(reply).value() : HttpReply{};
}

HttpReply PostOrFail(const HttpTestServer& server, const std::string& path, const std::string& body,
                     std::vector<std::string> headers = {}) {
  auto reply = server.Post(path, body, std::move(headers));
  EXPECT_TRUE(reply.ok()) << path << ": " << reply.status().ToString();
  return reply.ok() ? std::move(reply).value() : HttpReply{};
}

json ParseOrFail(const std::string& text) {
  json parsed = json::parse(text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(parsed.is_discarded()) << "not JSON: " << text;
  return parsed;
}

json ReceivedOrFail(const HttpTestServer& server) {
  auto received = server.Received();
  EXPECT_TRUE(received.ok()) << received.status().ToString();
  return received.ok() ? *received : json::object();
}

TEST(HttpTestServer, DefaultGetIsAJsonEntityWithEtagAndLastModified) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(server->base_url(), "http://127.0.0.1:" + std::to_string(server->port()));
  EXPECT_EQ(server->Url("/e/1"), server->base_url() + "/e/1");

  HttpReply reply = GetOrFail(*server, "/e/17");
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.Header("content-type"), "application/json");
  EXPECT_EQ(reply.Header("ETag"), "\"v1\"");
  EXPECT_EQ(reply.Header("Last-Modified"), "Mon, 01 Jan 2024 00:00:00 GMT");
  json body = ParseOrFail(reply.body);
  EXPECT_EQ(body, json::parse(R"({"id": 17, "temp": 8.5, "name": "station 17", "version": 1})"));

  json named = ParseOrFail(GetOrFail(*server, "/e/abc?x=1").body);
  EXPECT_EQ(named["id"], "abc");
  EXPECT_EQ(named["name"], "station abc");
}

TEST(HttpTestServer, ConditionalGetAnswers304UntilTheVersionIsBumped) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  HttpReply first = GetOrFail(*server, "/e/5");
  ASSERT_EQ(first.status, 200);

  HttpReply same = GetOrFail(*server, "/e/5", {"If-None-Match: " + first.Header("ETag")});
  EXPECT_EQ(same.status, 304);
  EXPECT_EQ(same.body, "");
  EXPECT_EQ(same.Header("ETag"), "\"v1\"");
  HttpReply since =
      GetOrFail(*server, "/e/5?page=2", {"If-Modified-Since: " + first.Header("Last-Modified")});
  EXPECT_EQ(since.status, 304);
  EXPECT_EQ(GetOrFail(*server, "/e/5", {"If-None-Match: \"v9\""}).status, 200);

  auto version = server->Bump("/e/5");
  ASSERT_TRUE(version.ok()) << version.status().ToString();
  EXPECT_EQ(*version, 2);
  HttpReply changed = GetOrFail(*server, "/e/5", {"If-None-Match: " + first.Header("ETag")});
  EXPECT_EQ(changed.status, 200);
  EXPECT_EQ(changed.Header("ETag"), "\"v2\"");
  EXPECT_EQ(ParseOrFail(changed.body)["version"], 2);
  EXPECT_EQ(GetOrFail(*server, "/e/5", {"If-Modified-Since: " + first.Header("Last-Modified")}).status, 200);
  // Other paths keep their version.
  EXPECT_EQ(GetOrFail(*server, "/e/6").Header("ETag"), "\"v1\"");
}

TEST(HttpTestServer, QueryParametersShapeTheBody) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  json wrapped = ParseOrFail(GetOrFail(*server, "/e/3?rows=4&wrap=1").body);
  ASSERT_TRUE(wrapped["data"]["items"].is_array()) << wrapped.dump();
  ASSERT_EQ(wrapped["data"]["items"].size(), 4u);
  EXPECT_EQ(wrapped["data"]["items"][3]["row"], 3);
  EXPECT_EQ(wrapped["data"]["items"][3]["id"], 3);

  json padded = ParseOrFail(GetOrFail(*server, "/e/3?rows=2&size=300").body);
  ASSERT_EQ(padded.size(), 2u);
  EXPECT_NEAR(static_cast<double>(padded[0].dump().size()), 300.0, 10.0);

  HttpReply csv = GetOrFail(*server, "/e/3?format=csv&rows=2");
  EXPECT_EQ(csv.Header("Content-Type"), "text/csv");
  EXPECT_EQ(csv.body, "id,temp,name\n3,1.5,station 3\n3,1.5,station 3\n");

  HttpReply jsonl = GetOrFail(*server, "/e/3?format=jsonl&rows=2");
  EXPECT_EQ(jsonl.body,
            "{\"id\":3,\"temp\":1.5,\"name\":\"station 3\",\"version\":1,\"row\":0}\n"
            "{\"id\":3,\"temp\":1.5,\"name\":\"station 3\",\"version\":1,\"row\":1}\n");

  HttpReply bad = GetOrFail(*server, "/e/3?bad=1");
  EXPECT_EQ(bad.status, 200);
  EXPECT_TRUE(json::parse(bad.body, nullptr, false).is_discarded()) << bad.body;

  HttpReply invalid = GetOrFail(*server, "/e/3?rows=many");
  EXPECT_EQ(invalid.status, 400);
  EXPECT_NE(invalid.body.find("rows=many"), std::string::npos) << invalid.body;
  EXPECT_EQ(GetOrFail(*server, "/nothing/here").status, 404);
}

TEST(HttpTestServer, FailOnceFailsTheFirstRequestsOfThatUrlOnly) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  const std::string url = "/e/8?fail_once=503";
  HttpReply failed = GetOrFail(*server, url);
  EXPECT_EQ(failed.status, 503);
  EXPECT_EQ(ParseOrFail(failed.body)["error"], "injected 503");
  EXPECT_EQ(GetOrFail(*server, url).status, 200);
  EXPECT_EQ(GetOrFail(*server, url).status, 200);
  auto count = server->Count(url);
  ASSERT_TRUE(count.ok()) << count.status().ToString();
  EXPECT_EQ(*count, 3);

  const std::string twice = "/e/8?fail_once=500&fail_times=2";
  EXPECT_EQ(GetOrFail(*server, twice).status, 500);
  EXPECT_EQ(GetOrFail(*server, twice).status, 500);
  EXPECT_EQ(GetOrFail(*server, twice).status, 200);

  EXPECT_EQ(GetOrFail(*server, "/e/8?fail=502").status, 502);
  EXPECT_EQ(GetOrFail(*server, "/e/8?fail=502").status, 502);

  auto stats = server->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ((*stats)["requests"], 8);
  EXPECT_EQ((*stats)["by_prefix"]["e"], 8);
  EXPECT_EQ((*stats)["by_status"]["200"], 3);
  EXPECT_EQ((*stats)["by_status"]["500"], 2);
  EXPECT_EQ((*stats)["by_status"]["502"], 2);
  EXPECT_EQ((*stats)["by_status"]["503"], 1);
}

TEST(HttpTestServer, RetryAfterComesAsSecondsOrAsAnHttpDate) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  HttpReply seconds = GetOrFail(*server, "/e/1?fail=429&retry_after=7");
  EXPECT_EQ(seconds.status, 429);
  EXPECT_EQ(seconds.Header("Retry-After"), "7");

  std::time_t before = std::time(nullptr);
  HttpReply dated = GetOrFail(*server, "/e/1?fail_once=503&retry_after_date=30");
  std::time_t after = std::time(nullptr);
  EXPECT_EQ(dated.status, 503);
  std::string header = dated.Header("Retry-After");
  std::time_t when = curl_getdate(header.c_str(), nullptr);
  ASSERT_NE(when, -1) << "not an HTTP date: '" << header << "'";
  EXPECT_GE(when, before + 30) << header;
  EXPECT_LE(when, after + 31) << header;

  EXPECT_EQ(GetOrFail(*server, "/e/1").Header("Retry-After"), "");
}

TEST(HttpTestServer, DelayMsDelaysTheAnswer) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(GetOrFail(*server, "/e/1?delay_ms=300").status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(300));
}

TEST(HttpTestServer, CutConnectionIsATransportError) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  auto cut = server->Get("/e/1?cut=1&rows=50");
  ASSERT_FALSE(cut.ok()) << "got HTTP " << cut->status << ": " << cut->body;
  EXPECT_EQ(cut.status().code(), StatusCode::kUnavailable);
  // CURLE_PARTIAL_FILE: fewer bytes than the Content-Length promised.
  EXPECT_NE(cut.status().message().find("curl error 18"), std::string::npos) << cut.status().ToString();
  EXPECT_NE(cut.status().message().find("/e/1?cut=1&rows=50"), std::string::npos) << cut.status().ToString();

  // fail_once=cut: the first request is cut, the next one is whole.
  EXPECT_FALSE(server->Get("/e/2?fail_once=cut").ok());
  EXPECT_EQ(GetOrFail(*server, "/e/2?fail_once=cut").status, 200);
}

TEST(HttpTestServer, IngestCountsTheSameIdempotencyKeyOnce) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  const std::string rows = R"([{"id": 1}, {"id": 2}])";
  HttpReply first = PostOrFail(*server, "/ingest/public.orders", rows, {"Idempotency-Key: batch-1"});
  EXPECT_EQ(first.status, 200);
  EXPECT_EQ(ParseOrFail(first.body), json::parse(R"({"accepted": 2})"));
  HttpReply again = PostOrFail(*server, "/ingest/public.orders", rows, {"Idempotency-Key: batch-1"});
  EXPECT_EQ(again.status, 200);
  EXPECT_EQ(ParseOrFail(again.body), json::parse(R"({"duplicate": true})"));
  // JSON lines, and no key: always stored.
  HttpReply lines = PostOrFail(*server, "/ingest", "{\"id\": 3}\n{\"id\": 4}\n{\"id\": 5}\n",
                               {"Content-Type: application/x-ndjson"});
  EXPECT_EQ(ParseOrFail(lines.body), json::parse(R"({"accepted": 3})"));

  json received = ReceivedOrFail(*server);
  EXPECT_EQ(received["requests"], 3);
  EXPECT_EQ(received["accepted"], 2);
  EXPECT_EQ(received["duplicates"], 1);
  EXPECT_EQ(received["rows"], 5);
  EXPECT_EQ(received["keys"], 1);
}

TEST(HttpTestServer, RejectMarkerGets400AndStoresNothing) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  Status set = server->SetFaults(R"({"reject_marker": "BAD"})");
  ASSERT_TRUE(set.ok()) << set.ToString();
  HttpReply rejected = PostOrFail(*server, "/ingest", R"([{"name": "BAD row"}])", {"Idempotency-Key: k"});
  EXPECT_EQ(rejected.status, 400);
  EXPECT_EQ(ParseOrFail(rejected.body)["error"], "rejected: contains BAD");
  // A rejected key was never accepted, so the fixed batch is not a duplicate.
  HttpReply fixed = PostOrFail(*server, "/ingest", R"([{"name": "good row"}])", {"Idempotency-Key: k"});
  EXPECT_EQ(fixed.status, 200);
  EXPECT_EQ(ParseOrFail(fixed.body)["accepted"], 1);

  HttpReply invalid = PostOrFail(*server, "/ingest", R"([{"name": )");
  EXPECT_EQ(invalid.status, 400);
  json received = ReceivedOrFail(*server);
  EXPECT_EQ(received["rows"], 1);
  EXPECT_EQ(received["rejected"], 2);

  Status unknown = server->SetFaults(R"({"rate_5OO": 1})");
  EXPECT_EQ(unknown.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("unknown key 'rate_5OO'"), std::string::npos) << unknown.ToString();
}

TEST(HttpTestServer, SeededFaultsRepeatAndNeverStore) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  const std::string faults = R"({"seed": 7, "rate_503": 0.3, "rate_429": 0.2, "retry_after": "2"})";
  auto run = [&] {
    std::vector<long> statuses;
    for (int i = 0; i < 40; ++i) {
      HttpReply reply = PostOrFail(*server, "/ingest", R"([{"i": 1}])");
      if (reply.status == 503 || reply.status == 429) {
        EXPECT_EQ(reply.Header("Retry-After"), "2");
      }
      statuses.push_back(reply.status);
    }
    return statuses;
  };
  ASSERT_TRUE(server->SetFaults(faults).ok());
  std::vector<long> first = run();
  int64_t ok = std::count(first.begin(), first.end(), 200L);
  EXPECT_GT(ok, 0);
  EXPECT_LT(ok, 40);
  EXPECT_GT(std::count(first.begin(), first.end(), 503L), 0);
  EXPECT_GT(std::count(first.begin(), first.end(), 429L), 0);
  json received = ReceivedOrFail(*server);
  EXPECT_EQ(received["rows"], ok);
  EXPECT_EQ(received["faulted"], 40 - ok);

  ASSERT_TRUE(server->Reset().ok());
  ASSERT_TRUE(server->SetFaults(faults).ok());
  EXPECT_EQ(run(), first);
}

TEST(HttpTestServer, DropReplyStoresButNeverAnswers) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->SetFaults(R"({"rate_drop_reply": 1.0})").ok());
  auto lost = server->Post("/ingest", R"([{"i": 1}])", {"Idempotency-Key: lost-1"});
  EXPECT_FALSE(lost.ok());
  ASSERT_TRUE(server->SetFaults("{}").ok());
  HttpReply retry = PostOrFail(*server, "/ingest", R"([{"i": 1}])", {"Idempotency-Key: lost-1"});
  EXPECT_EQ(ParseOrFail(retry.body), json::parse(R"({"duplicate": true})"));
  EXPECT_EQ(ReceivedOrFail(*server)["rows"], 1);
}

TEST(HttpTestServer, DumpWritesEveryRowInArrivalOrder) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  TempDir dir;
  EXPECT_EQ(PostOrFail(*server, "/ingest/a", R"([{"n": 9007199254740993}, {"s": "x,]}\""}])",
                       {"Idempotency-Key: k1"})
                .status,
            200);
  EXPECT_EQ(PostOrFail(*server, "/ingest/b", "{\"n\": 3}\n").status, 200);

  std::string file = dir.Path("rows.jsonl");
  auto dumped = server->Dump(file);
  ASSERT_TRUE(dumped.ok()) << dumped.status().ToString();
  EXPECT_EQ(*dumped, 3);
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 3u);
  // Rows are kept as sent: an integer beyond 2^53 is not rounded.
  EXPECT_EQ(lines[0], R"({"key":"k1","path":"/ingest/a","row":{"n": 9007199254740993}})");
  json second = ParseOrFail(lines[1]);
  EXPECT_EQ(second["row"]["s"], "x,]}\"");
  json third = ParseOrFail(lines[2]);
  EXPECT_TRUE(third["key"].is_null());
  EXPECT_EQ(third["path"], "/ingest/b");
  EXPECT_EQ(third["row"]["n"], 3);

  auto relative = server->Dump("relative.jsonl");
  EXPECT_EQ(relative.status().code(), StatusCode::kInvalidArgument);
}

TEST(HttpTestServer, HooksAreStoredInOrder) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(PostOrFail(*server, "/hook/alerts", R"({"pipeline": "p1", "event": "failed"})").status, 200);
  EXPECT_EQ(PostOrFail(*server, "/hook", R"({"pipeline": "p2", "event": "recovered"})").status, 200);
  EXPECT_EQ(PostOrFail(*server, "/hook?fail=500", R"({"pipeline": "p3"})").status, 500);
  auto hooks = server->Hooks();
  ASSERT_TRUE(hooks.ok()) << hooks.status().ToString();
  EXPECT_EQ(*hooks, json::parse(R"([{"pipeline": "p1", "event": "failed"},
                                    {"pipeline": "p2", "event": "recovered"}])"));
  auto stats = server->Stats();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ((*stats)["by_prefix"]["hook"], 3);
}

TEST(HttpTestServer, DiscardModeOnlyCountsBytes) {
  auto server = StartOrFail({.discard = true});
  ASSERT_NE(server, nullptr);
  const std::string body = R"([{"id": 1}, {"id": 2}])";
  EXPECT_EQ(PostOrFail(*server, "/ingest", body, {"Idempotency-Key: same"}).status, 200);
  EXPECT_EQ(PostOrFail(*server, "/ingest", body, {"Idempotency-Key: same"}).status, 200);
  json received = ReceivedOrFail(*server);
  EXPECT_EQ(received["discard"], true);
  EXPECT_EQ(received["requests"], 2);
  EXPECT_EQ(received["bytes"], 2 * body.size());
  EXPECT_EQ(received["rows"], 0);
  EXPECT_EQ(received["duplicates"], 0);
}

TEST(HttpTestServer, ResetForgetsEverything) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  ASSERT_TRUE(server->Bump("/e/1").ok());
  EXPECT_EQ(PostOrFail(*server, "/ingest", R"([{"a": 1}])").status, 200);
  ASSERT_TRUE(server->Reset().ok());
  EXPECT_EQ(GetOrFail(*server, "/e/1").Header("ETag"), "\"v1\"");
  EXPECT_EQ(ReceivedOrFail(*server)["rows"], 0);
  auto count = server->Count("/e/1");
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
}

TEST(HttpTestServer, StopRefusesLaterRequests) {
  auto server = StartOrFail();
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->running());
  ASSERT_TRUE(server->Stop().ok());
  EXPECT_FALSE(server->running());
  auto refused = server->Get("/e/1");
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
}

}  // namespace
}  // namespace sluice::testing
