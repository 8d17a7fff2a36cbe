#include "destinations/http/http_requests.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

namespace sluice::destinations {
namespace {

std::string Row(int i) { return "{\"id\":" + std::to_string(i) + "}"; }

/// Cuts rows 0..n-1 (each Row(i)) and returns the requests.
std::vector<RowRequest> CutRows(BodyFormat format, int64_t max_rows, int64_t max_bytes, int n) {
  RowRequestCutter cutter(format, max_rows, max_bytes);
  std::vector<RowRequest> done;
  for (int i = 0; i < n; ++i) cutter.Add(Row(i), &done);
  cutter.Finish(&done);
  return done;
}

TEST(RequestBody, JsonIsOneArrayAndJsonLinesOneObjectPerLine) {
  RequestBody json(BodyFormat::kJson);
  EXPECT_EQ(json.BytesWith(3), 5);  // "[abc]"
  json.Append("{}");
  EXPECT_EQ(json.bytes(), 4);
  EXPECT_EQ(json.BytesWith(3), 8);  // "[{},abc]"
  json.Append("{\"a\":1}");
  EXPECT_EQ(json.bytes(), 12);
  std::string body = json.Take();
  EXPECT_EQ(body, "[{},{\"a\":1}]");
  EXPECT_TRUE(json.empty());
  EXPECT_EQ(json.Take(), "[]");

  RequestBody lines(BodyFormat::kJsonLines);
  lines.Append("{}");
  EXPECT_EQ(lines.BytesWith(3), 7);
  lines.Append("{\"a\":1}");
  EXPECT_EQ(lines.bytes(), 11);
  EXPECT_EQ(lines.Take(), "{}\n{\"a\":1}\n");
}

TEST(RequestBody, AppendingABodyKeepsTheFramingAndItsPredictedSize) {
  for (BodyFormat format : {BodyFormat::kJson, BodyFormat::kJsonLines}) {
    RequestBody a(format), b(format);
    a.Append("{\"x\":1}");
    b.Append("{\"y\":2}");
    b.Append("{\"z\":3}");
    int64_t predicted = a.BytesWith(b);
    a.Append(b);
    EXPECT_EQ(a.items(), 3);
    EXPECT_EQ(a.bytes(), predicted);
    std::string body = a.Take();
    EXPECT_EQ(static_cast<int64_t>(body.size()), predicted);
    EXPECT_EQ(BodyAsJsonArray(format, body), "[{\"x\":1},{\"y\":2},{\"z\":3}]");
  }
}

TEST(RowRequestCutter, CutsEveryMaxRowsAndNumbersRequestsFromZero) {
  auto requests = CutRows(BodyFormat::kJson, 3, 1 << 20, 8);
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].number, 0);
  EXPECT_EQ(requests[0].rows, 3);
  EXPECT_EQ(requests[0].body, "[{\"id\":0},{\"id\":1},{\"id\":2}]");
  EXPECT_EQ(requests[1].number, 1);
  EXPECT_EQ(requests[2].number, 2);
  EXPECT_EQ(requests[2].rows, 2);
  EXPECT_EQ(requests[2].body, "[{\"id\":6},{\"id\":7}]");
}

TEST(RowRequestCutter, CutsBeforeARowWouldPassMaxBytes) {
  // Each row is 8 bytes; "[r,r]" is 19 bytes, "[r,r,r]" 28.
  auto requests = CutRows(BodyFormat::kJson, 100, 27, 5);
  ASSERT_EQ(requests.size(), 3u);
  for (const auto& r : requests) EXPECT_LE(static_cast<int64_t>(r.body.size()), 27) << r.body;
  EXPECT_EQ(requests[0].rows, 2);
  EXPECT_EQ(requests[1].rows, 2);
  EXPECT_EQ(requests[2].rows, 1);
  // Exactly at the limit is allowed.
  auto exact = CutRows(BodyFormat::kJson, 100, 28, 6);
  ASSERT_EQ(exact.size(), 2u);
  EXPECT_EQ(exact[0].rows, 3);
  EXPECT_EQ(exact[0].body.size(), 28u);
}

TEST(RowRequestCutter, ARowLargerThanMaxBytesGoesAlone) {
  RowRequestCutter cutter(BodyFormat::kJsonLines, 100, 20);
  std::vector<RowRequest> done;
  cutter.Add("{\"a\":1}", &done);
  cutter.Add("{\"big\":\"" + std::string(50, 'x') + "\"}", &done);
  cutter.Add("{\"b\":2}", &done);
  cutter.Finish(&done);
  ASSERT_EQ(done.size(), 3u);
  EXPECT_EQ(done[0].body, "{\"a\":1}\n");
  EXPECT_EQ(done[1].rows, 1);
  EXPECT_GT(done[1].body.size(), 20u);
  EXPECT_EQ(done[2].body, "{\"b\":2}\n");
}

TEST(RowRequestCutter, SameRowsGiveTheSameRequestsWhateverTheBatches) {
  // The cut depends on the rows only, not on how Write calls split them.
  auto whole = CutRows(BodyFormat::kJsonLines, 7, 60, 50);
  RowRequestCutter cutter(BodyFormat::kJsonLines, 7, 60);
  std::vector<RowRequest> pieces;
  for (int i = 0; i < 50; ++i) {
    std::vector<RowRequest> done;
    cutter.Add(Row(i), &done);
    for (auto& r : done) pieces.push_back(std::move(r));
  }
  cutter.Finish(&pieces);
  ASSERT_EQ(pieces.size(), whole.size());
  for (size_t i = 0; i < whole.size(); ++i) {
    EXPECT_EQ(pieces[i].number, whole[i].number);
    EXPECT_EQ(pieces[i].body, whole[i].body);
  }
}

struct Event {
  CdcLsn lsn;
  int n;  // the event's number in the whole stream
};

std::string EventJson(int n) { return "{\"n\":" + std::to_string(n) + "}"; }

/// Feeds transactions (commit LSN, events) in batches of the given sizes
/// (in events; a batch may end inside a transaction, like a piece of a
/// large one, and Flush is called only where a batch ends at a transaction
/// boundary).
std::vector<EventRequest> CutEvents(const std::vector<std::pair<CdcLsn, int>>& transactions,
                                    const std::vector<int>& batch_sizes, int64_t max_events,
                                    int64_t max_bytes, bool group) {
  std::vector<Event> events;
  int n = 0;
  std::vector<size_t> ends;  // event index after each transaction
  for (auto [lsn, count] : transactions) {
    for (int i = 0; i < count; ++i) events.push_back({lsn, n++});
    ends.push_back(events.size());
  }
  EventRequestCutter cutter(BodyFormat::kJsonLines, max_events, max_bytes, group);
  std::vector<EventRequest> done;
  size_t pos = 0;
  size_t b = 0;
  while (pos < events.size()) {
    size_t size = b < batch_sizes.size() ? static_cast<size_t>(batch_sizes[b++]) : events.size();
    size_t end = std::min(events.size(), pos + size);
    for (; pos < end; ++pos) cutter.Add(events[pos].lsn, EventJson(events[pos].n), &done);
    if (std::find(ends.begin(), ends.end(), pos) != ends.end()) cutter.Flush(&done);
  }
  return done;
}

std::vector<std::string> Keys(const std::vector<EventRequest>& requests) {
  std::vector<std::string> keys;
  for (const auto& r : requests) keys.push_back(EventRequestKey("p", "", r));
  return keys;
}

TEST(EventRequestCutter, EachTransactionIsCutAtFixedOffsetsFromItsFirstEvent) {
  auto requests = CutEvents({{100, 2}, {200, 7}, {300, 1}}, {}, 3, 1 << 20, false);
  ASSERT_EQ(requests.size(), 5u);
  EXPECT_EQ(requests[0].commit_lsn, 100u);
  EXPECT_EQ(requests[0].first_index, 0);
  EXPECT_EQ(requests[0].events, 2);
  EXPECT_EQ(requests[1].commit_lsn, 200u);
  EXPECT_EQ(requests[1].first_index, 0);
  EXPECT_EQ(requests[1].events, 3);
  EXPECT_EQ(requests[2].first_index, 3);
  EXPECT_EQ(requests[2].events, 3);
  EXPECT_EQ(requests[3].first_index, 6);
  EXPECT_EQ(requests[3].events, 1);
  EXPECT_EQ(requests[4].commit_lsn, 300u);
  EXPECT_EQ(requests[4].body, "{\"n\":9}\n");
}

TEST(EventRequestCutter, AReplayWithOtherBatchBoundariesCutsTheSameRequests) {
  std::vector<std::pair<CdcLsn, int>> txns = {{10, 1}, {20, 1}, {30, 12}, {40, 2}, {50, 5}};
  auto first = CutEvents(txns, {1, 1, 12, 2, 5}, 5, 1 << 20, false);
  // Batches that end elsewhere, including inside the large transaction.
  auto replay = CutEvents(txns, {2, 4, 3, 7, 5}, 5, 1 << 20, false);
  auto one_batch = CutEvents(txns, {}, 5, 1 << 20, false);
  EXPECT_EQ(Keys(first), Keys(replay));
  EXPECT_EQ(Keys(first), Keys(one_batch));
  for (size_t i = 0; i < first.size() && i < replay.size(); ++i) EXPECT_EQ(first[i].body, replay[i].body);
  // Every event exactly once, in order.
  std::string all;
  for (const auto& r : first) all += r.body;
  std::string expected;
  for (int i = 0; i < 21; ++i) expected += EventJson(i) + "\n";
  EXPECT_EQ(all, expected);
}

TEST(EventRequestCutter, ByteLimitCutsInsideATransactionDeterministically) {
  // Each event is 8 bytes + "\n": two fit in 18 bytes, three do not.
  auto requests = CutEvents({{7, 5}}, {}, 100, 18, false);
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[0].first_index, 0);
  EXPECT_EQ(requests[1].first_index, 2);
  EXPECT_EQ(requests[2].first_index, 4);
  EXPECT_EQ(Keys(requests), Keys(CutEvents({{7, 5}}, {1, 3, 1}, 100, 18, false)));
}

TEST(EventRequestCutter, AnIncompleteBatchKeepsTheOpenPartOfItsTransaction) {
  EventRequestCutter cutter(BodyFormat::kJson, 4, 1 << 20, false);
  std::vector<EventRequest> done;
  for (int i = 0; i < 6; ++i) cutter.Add(5, EventJson(i), &done);
  // A piece of a large transaction ends here: one full request left, two
  // events wait for the rest of the transaction.
  ASSERT_EQ(done.size(), 1u);
  EXPECT_EQ(cutter.open_events(), 2);
  for (int i = 6; i < 8; ++i) cutter.Add(5, EventJson(i), &done);
  cutter.Flush(&done);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[1].first_index, 4);
  EXPECT_EQ(done[1].events, 4);
}

TEST(EventRequestCutter, ResetStartsOverAtATransactionBoundary) {
  EventRequestCutter cutter(BodyFormat::kJson, 4, 1 << 20, false);
  std::vector<EventRequest> done;
  for (int i = 0; i < 6; ++i) cutter.Add(5, EventJson(i), &done);
  cutter.Reset();  // the stream restarts: transaction 5 comes again from its start
  done.clear();
  for (int i = 0; i < 6; ++i) cutter.Add(5, EventJson(i), &done);
  cutter.Flush(&done);
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(done[0].first_index, 0);
  EXPECT_EQ(done[1].first_index, 4);
  EXPECT_EQ(done[1].events, 2);
}

TEST(EventRequestCutter, GroupingPutsWholeTransactionsTogetherUpToTheLimits) {
  auto requests = CutEvents({{1, 2}, {2, 2}, {3, 1}, {4, 3}, {5, 9}, {6, 1}}, {}, 5, 1 << 20, true);
  // {1,2,3} = 5 events; {4} = 3 (5 does not fit with it); 5 is cut at 5 and
  // its last 4 events take transaction 6 along.
  ASSERT_EQ(requests.size(), 4u);
  EXPECT_EQ(requests[0].commit_lsn, 1u);
  EXPECT_EQ(requests[0].events, 5);
  EXPECT_EQ(requests[1].commit_lsn, 4u);
  EXPECT_EQ(requests[1].events, 3);
  EXPECT_EQ(requests[2].commit_lsn, 5u);
  EXPECT_EQ(requests[2].first_index, 0);
  EXPECT_EQ(requests[2].events, 5);
  EXPECT_EQ(requests[3].commit_lsn, 5u);
  EXPECT_EQ(requests[3].first_index, 5);
  EXPECT_EQ(requests[3].events, 5);
  std::string all;
  for (const auto& r : requests) all += r.body;
  std::string expected;
  for (int i = 0; i < 18; ++i) expected += EventJson(i) + "\n";
  EXPECT_EQ(all, expected);
}

TEST(EventRequestCutter, GroupedRequestsDependOnWhereBatchesEnded) {
  // Why grouping is off in the destination: the same stream in other
  // batches gives other requests, so a replay's keys would not match.
  std::vector<std::pair<CdcLsn, int>> txns = {{1, 1}, {2, 1}, {3, 1}};
  EXPECT_NE(Keys(CutEvents(txns, {3}, 10, 1 << 20, true)),
            Keys(CutEvents(txns, {1, 1, 1}, 10, 1 << 20, true)));
}

TEST(IdempotencyKey, DependsOnEveryFieldAndNotOnTheClock) {
  std::string key = RowRequestKey("orders", "input data/a.csv etag1", 3);
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(key.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(key, RowRequestKey("orders", "input data/a.csv etag1", 3));
  std::set<std::string> keys = {key,
                                RowRequestKey("orders", "input data/a.csv etag1", 4),
                                RowRequestKey("orders", "input data/a.csv etag2", 3),
                                RowRequestKey("other", "input data/a.csv etag1", 3),
                                CopyStartKey("orders", "public.t", "c1"),
                                CopyChunkKey("orders", "public.t", "c1", 0),
                                CopyChunkKey("orders", "public.t", "c2", 0)};
  EXPECT_EQ(keys.size(), 7u);
  // Length prefixes: moving a boundary between fields changes the key.
  EXPECT_NE(IdempotencyKey({"ab", "c"}), IdempotencyKey({"a", "bc"}));
}

TEST(IdempotencyKey, EventKeysNameTransactionFirstEventCountAndTable) {
  EventRequest r{0x16B3748, 0, 5, ""};
  std::set<std::string> keys;
  keys.insert(EventRequestKey("p", "", r));
  EventRequest other_index = r;
  other_index.first_index = 5;
  keys.insert(EventRequestKey("p", "", other_index));
  EventRequest other_count = r;
  other_count.events = 4;
  keys.insert(EventRequestKey("p", "", other_count));
  EventRequest other_lsn = r;
  other_lsn.commit_lsn = 0x16B3749;
  keys.insert(EventRequestKey("p", "", other_lsn));
  keys.insert(EventRequestKey("p", "public.orders", r));
  EXPECT_EQ(keys.size(), 5u);
}

TEST(DeadLetterLine, HoldsTheRequestRowsAsAnArrayAndAKilobyteOfTheResponse) {
  DeadLetterEntry entry;
  entry.time = "2026-12-06T14:03:13Z";
  entry.url = "http://h/ingest?token=***";
  entry.status = 400;
  std::string response = "bad \"row\"\n" + std::string(2000, 'x');
  entry.response = response;
  entry.error = "HTTP 400";
  entry.idempotency_key = "abc";
  entry.format = BodyFormat::kJsonLines;
  entry.body = "{\"id\":1}\n{\"id\":2}\n";
  std::string line = DeadLetterLine(entry);
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  auto j = nlohmann::json::parse(line);
  EXPECT_EQ(j["time"], "2026-12-06T14:03:13Z");
  EXPECT_EQ(j["url"], "http://h/ingest?token=***");
  EXPECT_EQ(j["status"], 400);
  EXPECT_EQ(j["response"].get<std::string>().size(), 1024u);
  EXPECT_EQ(j["response"].get<std::string>().substr(0, 10), "bad \"row\"\n");
  EXPECT_EQ(j["error"], "HTTP 400");
  EXPECT_EQ(j["idempotency_key"], "abc");
  EXPECT_EQ(j["rows"], nlohmann::json::parse(R"([{"id":1},{"id":2}])"));
  // No response at all: status null.
  entry.status = 0;
  entry.format = BodyFormat::kJson;
  entry.body = "[{\"id\":1}]";
  auto k = nlohmann::json::parse(DeadLetterLine(entry));
  EXPECT_TRUE(k["status"].is_null());
  EXPECT_EQ(k["rows"].size(), 1u);
}

TEST(Utf8Prefix, NeverCutsASequenceInTwo) {
  std::string text = "ab\xE2\x82\xAC";  // "ab€"
  EXPECT_EQ(Utf8Prefix(text, 5), text);
  EXPECT_EQ(Utf8Prefix(text, 4), "ab");
  EXPECT_EQ(Utf8Prefix(text, 3), "ab");
  EXPECT_EQ(Utf8Prefix(text, 2), "ab");
}

TEST(CheckHttpUrl, AcceptsHttpAndHttpsUrlsWithAHost) {
  for (std::string url : {"http://127.0.0.1:8080/ingest", "https://api.example.com", "http://u:p@h/x?y=1",
                          "HTTP://host:1/{table}", "http://[::1]:8080/x"}) {
    EXPECT_TRUE(CheckHttpUrl(url, "[destination] url").ok()) << url;
  }
}

TEST(CheckHttpUrl, RefusesOtherSchemesMissingHostsAndBadPortsWithoutTheirSecrets) {
  for (std::string url : {"ftp://h/x", "127.0.0.1:8080/ingest", "http:///x", "http://h:99999/", "http://h:x/",
                          "http://a b/", "http://[::1/x"}) {
    Status s = CheckHttpUrl(url, "[destination] url");
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << url;
    EXPECT_NE(s.message().find("[destination] url"), std::string::npos) << s.message();
  }
  Status s = CheckHttpUrl("ftp://user:hunter2@h/x", "[destination] url");
  EXPECT_EQ(s.message().find("hunter2"), std::string::npos) << s.message();
  EXPECT_TRUE(CheckHttpUrl("", "[destination] url").message().find("required") != std::string::npos);
}

TEST(ExpandTableUrl, ReplacesEveryPlaceholderWithTheEncodedTableName) {
  EXPECT_EQ(ExpandTableUrl("http://h/t/{table}", "public.orders"), "http://h/t/public.orders");
  EXPECT_EQ(ExpandTableUrl("http://h/{table}?t={table}", "s.My Table/x"),
            "http://h/s.My%20Table%2Fx?t=s.My%20Table%2Fx");
  EXPECT_EQ(ExpandTableUrl("http://h/ingest", "public.orders"), "http://h/ingest");
}

}  // namespace
}  // namespace sluice::destinations
