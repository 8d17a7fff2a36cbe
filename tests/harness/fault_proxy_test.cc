// Tests FaultProxy between libcurl (as sluice's S3 client uses it) and a
// small httplib upstream started by each test: plain forwarding must be
// byte-exact, and every fault must reach the client as the error it stands
// for.
#include "harness/fault_proxy.h"

#include <curl/curl.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace sluice::testing {
namespace {

using std::string;
using Clock = std::chrono::steady_clock;

// --- upstream ---------------------------------------------------------------

// An object store in memory: PUT, GET, HEAD and DELETE of /bucket/<key>,
// plus /echo (describes the request it got) and /chunked/<n> (n bytes in a
// chunked response).
class Upstream {
 public:
  Upstream() {
    server_.Put(R"(/bucket/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      ++hits_;
      std::lock_guard<std::mutex> lock(mu_);
      objects_[req.matches[1]] = req.body;
      res.set_header("ETag", "\"etag-" + std::to_string(req.body.size()) + "\"");
      res.status = 200;
    });
    // httplib also serves HEAD through this handler, without the body.
    server_.Get(R"(/bucket/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      ++hits_;
      std::lock_guard<std::mutex> lock(mu_);
      auto it = objects_.find(req.matches[1]);
      if (it == objects_.end()) {
        res.status = 404;
        res.set_content("<Error><Code>NoSuchKey</Code></Error>", "application/xml");
        return;
      }
      res.set_header("ETag", "\"etag-" + std::to_string(it->second.size()) + "\"");
      res.set_content(it->second, "application/octet-stream");
    });
    server_.Delete(R"(/bucket/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      ++hits_;
      std::lock_guard<std::mutex> lock(mu_);
      objects_.erase(req.matches[1]);
      res.status = 204;
    });
    server_.Get("/echo", [this](const httplib::Request& req, httplib::Response& res) {
      ++hits_;
      string text = req.method + " " + req.path + " list-type=" + req.get_param_value("list-type") +
                    " x-test=" + req.get_header_value("x-test") + " host=" + req.get_header_value("Host");
      res.set_header("x-upstream", "yes");
      res.set_content(text, "text/plain");
    });
    server_.Get(R"(/chunked/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      ++hits_;
      size_t n = std::stoul(req.matches[1]);
      res.set_chunked_content_provider("text/plain", [n](size_t offset, httplib::DataSink& sink) {
        if (offset >= n) {
          sink.done();
          return true;
        }
        string piece(std::min<size_t>(1000, n - offset), static_cast<char>('a' + offset / 1000 % 26));
        return sink.write(piece.data(), piece.size());
      });
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // stop() does nothing before the server runs.
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  ~Upstream() {
    server_.stop();
    thread_.join();
  }

  int port() const { return port_; }
  int hits() const { return hits_.load(); }
  std::optional<string> Object(const string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = objects_.find(key);
    return it == objects_.end() ? std::nullopt : std::optional<string>(it->second);
  }
  void PutObject(const string& key, string data) {
    std::lock_guard<std::mutex> lock(mu_);
    objects_[key] = std::move(data);
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = -1;
  std::atomic<int> hits_{0};
  std::mutex mu_;
  std::map<string, string> objects_;  // guarded by mu_
};

// --- client -----------------------------------------------------------------

struct CurlRequest {
  string method = "GET";
  string path = "/";
  std::optional<string> body{};  // PUT/POST upload
  bool chunked_upload = false;   // no Content-Length: curl sends the body chunked
  std::vector<string> headers{};
  /// Fail when less than one byte arrives in this many seconds; 0: never.
  long low_speed_time = 0;
  long timeout_ms = 30000;
};

struct CurlReply {
  CURLcode code = CURLE_OK;
  long status = 0;
  string body;
  string headers;
  string error;
  long new_connections = 0;
  double seconds = 0;

  string Describe() const {
    return "curl " + std::to_string(code) + " (" + curl_easy_strerror(code) + ": " + error + "), HTTP " +
           std::to_string(status) + ", " + std::to_string(body.size()) + " body bytes";
  }
};

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Append(char* data, size_t size, size_t n, void* out) {
  static_cast<string*>(out)->append(data, size * n);
  return size * n;
}

struct Upload {
  const string* data;
  size_t pos = 0;
};

size_t ReadUpload(char* buffer, size_t size, size_t n, void* arg) {
  auto* upload = static_cast<Upload*>(arg);
  size_t take = std::min(size * n, upload->data->size() - upload->pos);
  std::memcpy(buffer, upload->data->data() + upload->pos, take);
  upload->pos += take;
  return take;
}

// Runs one request on handle, which keeps its connections between calls.
CurlReply Perform(CURL* handle, const string& endpoint, const CurlRequest& request) {
  curl_easy_reset(handle);
  CurlReply reply;
  char error[CURL_ERROR_SIZE] = "";
  string url = endpoint + request.path;
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(handle, CURLOPT_TIMEOUT_MS, request.timeout_ms);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, Append);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &reply.body);
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, Append);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &reply.headers);
  if (request.low_speed_time > 0) {
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, request.low_speed_time);
  }
  Upload upload{request.body ? &*request.body : nullptr};
  if (request.method == "HEAD") {
    curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
  } else if (request.method == "PUT") {
    curl_easy_setopt(handle, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(handle, CURLOPT_READFUNCTION, ReadUpload);
    curl_easy_setopt(handle, CURLOPT_READDATA, &upload);
    if (!request.chunked_upload) {
      curl_easy_setopt(handle, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body->size()));
    }
  } else if (request.method != "GET") {
    curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  curl_slist* headers = nullptr;
  for (const string& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, headers);

  reply.code = curl_easy_perform(handle);
  curl_slist_free_all(headers);
  curl_easy_getinfo(handle, CURLINFO_RESPONSE_CODE, &reply.status);
  curl_easy_getinfo(handle, CURLINFO_NUM_CONNECTS, &reply.new_connections);
  curl_easy_getinfo(handle, CURLINFO_TOTAL_TIME, &reply.seconds);
  reply.error = error;
  return reply;
}

class CurlClient {
 public:
  explicit CurlClient(string endpoint) : endpoint_(std::move(endpoint)) {
    InitCurlOnce();
    handle_ = curl_easy_init();
  }
  ~CurlClient() { curl_easy_cleanup(handle_); }
  CurlClient(const CurlClient&) = delete;
  CurlClient& operator=(const CurlClient&) = delete;

  CurlReply Run(const CurlRequest& request) { return Perform(handle_, endpoint_, request); }
  CurlReply Get(const string& path) { return Run({.method = "GET", .path = path}); }
  CurlReply Put(const string& path, const string& body) {
    return Run({.method = "PUT", .path = path, .body = body});
  }

 private:
  string endpoint_;
  CURL* handle_;
};

// --- helpers ----------------------------------------------------------------

string RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

std::unique_ptr<FaultProxy> StartOrFail(const FaultProxyOptions& options) {
  auto proxy = FaultProxy::Start(options);
  EXPECT_TRUE(proxy.ok()) << proxy.status().ToString();
  return proxy.ok() ? std::move(proxy).value() : nullptr;
}

FaultProxyOptions Always(const Upstream& upstream, FaultKind kind) {
  FaultProxyOptions options;
  options.upstream_port = upstream.port();
  options.probability = {{kind, 1.0}};
  return options;
}

bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds limit) {
  auto deadline = Clock::now() + limit;
  while (!condition()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// --- forwarding ---------------------------------------------------------------

TEST(FaultProxy, ForwardsPutGetHeadOfTenMegabytesByteExact) {
  Upstream upstream;
  auto proxy = StartOrFail({.upstream_port = upstream.port()});
  ASSERT_NE(proxy, nullptr);
  EXPECT_GT(proxy->port(), 0);
  EXPECT_EQ(proxy->endpoint(), "http://127.0.0.1:" + std::to_string(proxy->port()));
  CurlClient client(proxy->endpoint());
  const string data = RandomBytes(10 << 20, 7);

  CurlReply put = client.Put("/bucket/dir/big.bin", data);
  ASSERT_EQ(put.code, CURLE_OK) << put.Describe();
  EXPECT_EQ(put.status, 200);
  EXPECT_NE(put.headers.find("etag-10485760"), string::npos) << put.headers;
  std::optional<string> stored = upstream.Object("dir/big.bin");
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(*stored == data) << "upstream got " << stored->size() << " bytes";

  CurlReply get = client.Get("/bucket/dir/big.bin");
  ASSERT_EQ(get.code, CURLE_OK) << get.Describe();
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body.size(), data.size());
  EXPECT_TRUE(get.body == data);

  CurlReply head = client.Run({.method = "HEAD", .path = "/bucket/dir/big.bin"});
  ASSERT_EQ(head.code, CURLE_OK) << head.Describe();
  EXPECT_EQ(head.status, 200);
  EXPECT_NE(head.headers.find("Content-Length: 10485760"), string::npos) << head.headers;
  EXPECT_TRUE(head.body.empty());

  CurlReply missing = client.Get("/bucket/nope");
  ASSERT_EQ(missing.code, CURLE_OK) << missing.Describe();
  EXPECT_EQ(missing.status, 404);
  EXPECT_NE(missing.body.find("NoSuchKey"), string::npos);

  CurlReply del = client.Run({.method = "DELETE", .path = "/bucket/dir/big.bin"});
  ASSERT_EQ(del.code, CURLE_OK) << del.Describe();
  EXPECT_EQ(del.status, 204);
  EXPECT_FALSE(upstream.Object("dir/big.bin").has_value());

  EXPECT_EQ(proxy->requests(), 5);
  EXPECT_EQ(proxy->forwarded(), 5);
  EXPECT_EQ(proxy->total_faults(), 0);
  EXPECT_EQ(upstream.hits(), 5);
}

TEST(FaultProxy, ForwardsQueryHeadersAndHostUnchanged) {
  Upstream upstream;
  auto proxy = StartOrFail({.upstream_port = upstream.port()});
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  CurlReply reply = client.Run({.path = "/echo?list-type=2&prefix=a%2Fb", .headers = {"x-test: hello"}});
  ASSERT_EQ(reply.code, CURLE_OK) << reply.Describe();
  // The Host the client signed (SigV4) is the proxy's, and must arrive so.
  EXPECT_EQ(reply.body, "GET /echo list-type=2 x-test=hello host=127.0.0.1:" + std::to_string(proxy->port()));
  EXPECT_NE(reply.headers.find("x-upstream: yes"), string::npos) << reply.headers;
  std::vector<FaultProxyEvent> events = proxy->events();
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].method, "GET");
  EXPECT_EQ(events[0].target, "/echo?list-type=2&prefix=a%2Fb");
  EXPECT_FALSE(events[0].fault.has_value());
}

TEST(FaultProxy, ForwardsChunkedUploadsAndChunkedResponses) {
  Upstream upstream;
  auto proxy = StartOrFail({.upstream_port = upstream.port()});
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  const string data = RandomBytes(3 << 20, 11);
  CurlReply put =
      client.Run({.method = "PUT", .path = "/bucket/chunked", .body = data, .chunked_upload = true});
  ASSERT_EQ(put.code, CURLE_OK) << put.Describe();
  EXPECT_EQ(put.status, 200);
  EXPECT_TRUE(upstream.Object("chunked") == data);

  CurlReply get = client.Get("/chunked/123456");
  ASSERT_EQ(get.code, CURLE_OK) << get.Describe();
  ASSERT_EQ(get.body.size(), 123456u);
  EXPECT_EQ(get.body.substr(0, 3), "aaa");
  EXPECT_EQ(get.body.substr(123000, 3), "ttt");  // piece 123 is 'a' + 123 % 26
  EXPECT_NE(get.headers.find("Content-Length: 123456"), string::npos) << get.headers;
}

TEST(FaultProxy, KeepsClientConnectionsAliveAcrossRequestsAndErrorFaults) {
  Upstream upstream;
  upstream.PutObject("k", "value");
  FaultProxyOptions options = Always(upstream, FaultKind::kInternalError);
  options.max_faults = 1;
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  CurlReply first = client.Get("/bucket/k");
  EXPECT_EQ(first.status, 500);
  EXPECT_EQ(first.new_connections, 1);
  for (int i = 0; i < 3; ++i) {
    CurlReply next = client.Get("/bucket/k");
    ASSERT_EQ(next.code, CURLE_OK) << next.Describe();
    EXPECT_EQ(next.body, "value");
    EXPECT_EQ(next.new_connections, 0) << "request " << i << " did not reuse the connection";
  }
}

TEST(FaultProxy, UnreachableUpstreamGives502AndCountsUpstreamError) {
  int dead_port;
  {
    Upstream gone;
    dead_port = gone.port();
  }
  auto proxy = StartOrFail({.upstream_port = dead_port});
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  CurlReply reply = client.Get("/bucket/k");
  ASSERT_EQ(reply.code, CURLE_OK) << reply.Describe();
  EXPECT_EQ(reply.status, 502);
  EXPECT_NE(reply.body.find("connect to upstream 127.0.0.1:" + std::to_string(dead_port)), string::npos)
      << reply.body;
  EXPECT_EQ(proxy->upstream_errors(), 1);
  EXPECT_EQ(proxy->forwarded(), 1);
}

TEST(FaultProxy, RejectsBadOptions) {
  FaultProxyOptions no_upstream;
  auto r1 = FaultProxy::Start(no_upstream);
  ASSERT_FALSE(r1.ok());
  EXPECT_EQ(r1.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r1.status().message().find("upstream_port"), string::npos) << r1.status().ToString();

  FaultProxyOptions too_likely;
  too_likely.upstream_port = 9;
  too_likely.probability = {{FaultKind::kCut, 0.6}, {FaultKind::kStall, 0.5}};
  auto r2 = FaultProxy::Start(too_likely);
  ASSERT_FALSE(r2.ok());
  EXPECT_EQ(r2.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r2.status().message().find("more than 1"), string::npos) << r2.status().ToString();

  FaultProxyOptions negative;
  negative.upstream_port = 9;
  negative.probability = {{FaultKind::kCut, -0.1}};
  auto r3 = FaultProxy::Start(negative);
  ASSERT_FALSE(r3.ok());
  EXPECT_NE(r3.status().message().find("probability[cut]"), string::npos) << r3.status().ToString();
}

// --- faults -------------------------------------------------------------------

struct ErrorFaultCase {
  FaultKind kind;
  long status;
  string code;
};

TEST(FaultProxy, ErrorFaultsGiveS3ErrorResponsesWithoutReachingUpstream) {
  const ErrorFaultCase cases[] = {
      {FaultKind::kInternalError, 500, "<Code>InternalError</Code>"},
      {FaultKind::kSlowDown, 503, "<Code>SlowDown</Code>"},
      {FaultKind::kTooManyRequests, 429, "<Code>TooManyRequests</Code>"},
  };
  for (const ErrorFaultCase& c : cases) {
    SCOPED_TRACE(FaultKindName(c.kind));
    Upstream upstream;
    auto proxy = StartOrFail(Always(upstream, c.kind));
    ASSERT_NE(proxy, nullptr);
    CurlClient client(proxy->endpoint());

    CurlReply get = client.Get("/bucket/some/key");
    ASSERT_EQ(get.code, CURLE_OK) << get.Describe();
    EXPECT_EQ(get.status, c.status);
    EXPECT_NE(get.body.find(c.code), string::npos) << get.body;
    EXPECT_NE(get.body.find("<Resource>/bucket/some/key</Resource>"), string::npos) << get.body;
    EXPECT_NE(get.headers.find("Content-Type: application/xml"), string::npos) << get.headers;
    if (c.kind == FaultKind::kTooManyRequests) {
      EXPECT_NE(get.headers.find("Retry-After: 1\r\n"), string::npos) << get.headers;
    }

    // A PUT body is read and dropped; the upstream never sees it.
    CurlReply put = client.Put("/bucket/other", RandomBytes(2 << 20, 3));
    ASSERT_EQ(put.code, CURLE_OK) << put.Describe();
    EXPECT_EQ(put.status, c.status);
    EXPECT_FALSE(upstream.Object("other").has_value());

    CurlReply head = client.Run({.method = "HEAD", .path = "/bucket/x"});
    ASSERT_EQ(head.code, CURLE_OK) << head.Describe();
    EXPECT_EQ(head.status, c.status);

    EXPECT_EQ(upstream.hits(), 0);
    EXPECT_EQ(proxy->faults(c.kind), 3) << proxy->Summary();
    EXPECT_EQ(proxy->total_faults(), 3);
    EXPECT_EQ(proxy->forwarded(), 0);
  }
}

TEST(FaultProxy, StallMakesLowSpeedClientTimeOut) {
  Upstream upstream;
  upstream.PutObject("k", "value");
  FaultProxyOptions options = Always(upstream, FaultKind::kStall);
  options.stall_duration = std::chrono::milliseconds(5000);
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  auto start = Clock::now();
  CurlReply reply = client.Run({.path = "/bucket/k", .low_speed_time = 1});
  EXPECT_EQ(reply.code, CURLE_OPERATION_TIMEDOUT) << reply.Describe();
  EXPECT_EQ(reply.status, 0);
  EXPECT_LT(SecondsSince(start), 4.0);
  EXPECT_EQ(proxy->faults(FaultKind::kStall), 1);
  EXPECT_EQ(upstream.hits(), 0);
}

TEST(FaultProxy, StallWithoutClientTimeoutEndsInClosedConnection) {
  Upstream upstream;
  FaultProxyOptions options = Always(upstream, FaultKind::kStall);
  options.stall_duration = std::chrono::milliseconds(300);
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  CurlReply reply = client.Get("/bucket/k");
  EXPECT_EQ(reply.code, CURLE_GOT_NOTHING) << reply.Describe();
  EXPECT_GE(reply.seconds, 0.25);
}

TEST(FaultProxy, StallMidBodySendsHeadersAndHalfTheBodyThenNothing) {
  Upstream upstream;
  const string data = RandomBytes(1 << 20, 5);
  upstream.PutObject("k", data);
  FaultProxyOptions options = Always(upstream, FaultKind::kStallMidBody);
  options.stall_duration = std::chrono::milliseconds(20000);
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  auto start = Clock::now();
  CurlReply reply = client.Run({.path = "/bucket/k", .low_speed_time = 1});
  EXPECT_EQ(reply.code, CURLE_OPERATION_TIMEDOUT) << reply.Describe();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body.size(), data.size() / 2);
  EXPECT_TRUE(reply.body == data.substr(0, data.size() / 2));
  // libcurl's speed is an average over the last ~5 seconds, so the burst
  // before the stall delays the low-speed timeout by that much.
  EXPECT_LT(SecondsSince(start), 15.0);
  EXPECT_EQ(proxy->faults(FaultKind::kStallMidBody), 1);
  EXPECT_EQ(upstream.hits(), 1);
}

TEST(FaultProxy, CutGivesShortBodyAfterForwarding) {
  Upstream upstream;
  const string data = RandomBytes(4 << 20, 9);
  upstream.PutObject("k", data);
  FaultProxyOptions options = Always(upstream, FaultKind::kCut);
  options.partial_body_bytes = 1000;
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  CurlReply reply = client.Get("/bucket/k");
  EXPECT_EQ(reply.code, CURLE_PARTIAL_FILE) << reply.Describe();
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.body, data.substr(0, 1000));
  EXPECT_EQ(proxy->faults(FaultKind::kCut), 1);
  EXPECT_EQ(upstream.hits(), 1);
}

TEST(FaultProxy, CutOfEmptyResponseSendsNothingButTheUpstreamGotTheRequest) {
  Upstream upstream;
  auto proxy = StartOrFail(Always(upstream, FaultKind::kCut));
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  const string data = RandomBytes(100000, 1);
  CurlReply reply = client.Put("/bucket/written", data);
  EXPECT_EQ(reply.code, CURLE_GOT_NOTHING) << reply.Describe();
  // The write happened: a retry must be safe to repeat it.
  EXPECT_TRUE(upstream.Object("written") == data);

  CurlReply head = client.Run({.method = "HEAD", .path = "/bucket/written"});
  EXPECT_EQ(head.code, CURLE_GOT_NOTHING) << head.Describe();
}

TEST(FaultProxy, CutWithResetGivesConnectionError) {
  Upstream upstream;
  upstream.PutObject("k", RandomBytes(1 << 20, 2));
  FaultProxyOptions options = Always(upstream, FaultKind::kCut);
  options.cut_with_reset = true;
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  CurlReply reply = client.Get("/bucket/k");
  // Whether the bytes before the reset are delivered depends on timing.
  EXPECT_TRUE(reply.code == CURLE_RECV_ERROR || reply.code == CURLE_PARTIAL_FILE) << reply.Describe();
  EXPECT_LT(reply.body.size(), 1u << 20);
}

TEST(FaultProxy, DenyRuleGives403OnlyForMatchingPathsEveryTime) {
  Upstream upstream;
  upstream.PutObject("open", "ok");
  upstream.PutObject("secret/a", "hidden");
  FaultProxyOptions options;
  options.upstream_port = upstream.port();
  options.deny_path_substring = "/bucket/secret/";
  options.max_faults = 0;  // does not limit the rule
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  for (int i = 0; i < 3; ++i) {
    CurlReply denied = client.Get("/bucket/secret/a");
    ASSERT_EQ(denied.code, CURLE_OK) << denied.Describe();
    EXPECT_EQ(denied.status, 403);
    EXPECT_NE(denied.body.find("<Code>AccessDenied</Code>"), string::npos) << denied.body;
    CurlReply open = client.Get("/bucket/open");
    EXPECT_EQ(open.status, 200);
    EXPECT_EQ(open.body, "ok");
  }
  proxy->SetFaultsEnabled(false);  // random faults only
  EXPECT_EQ(client.Get("/bucket/secret/a").status, 403);
  EXPECT_EQ(proxy->faults(FaultKind::kAccessDenied), 4);
  EXPECT_EQ(proxy->forwarded(), 3);
  EXPECT_EQ(upstream.hits(), 3);
}

TEST(FaultProxy, DelayRuleHoldsMatchingRequestsThenForwardsThem) {
  Upstream upstream;
  upstream.PutObject("fast", "quick");
  upstream.PutObject("slow", "late");
  FaultProxyOptions options;
  options.upstream_port = upstream.port();
  options.delay_path_substring = "/bucket/slow";
  options.delay = std::chrono::milliseconds(600);
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  auto start = std::chrono::steady_clock::now();
  CurlReply fast = client.Get("/bucket/fast");
  auto fast_took = std::chrono::steady_clock::now() - start;
  EXPECT_EQ(fast.body, "quick");
  EXPECT_LT(fast_took, std::chrono::milliseconds(500));
  start = std::chrono::steady_clock::now();
  CurlReply slow = client.Get("/bucket/slow");
  auto slow_took = std::chrono::steady_clock::now() - start;
  ASSERT_EQ(slow.code, CURLE_OK) << slow.Describe();
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(slow.body, "late");
  EXPECT_GE(slow_took, std::chrono::milliseconds(600));
  EXPECT_EQ(proxy->delayed(), 1);
  EXPECT_EQ(proxy->total_faults(), 0);
  EXPECT_EQ(proxy->forwarded(), 2);
}

TEST(FaultProxy, MaxFaultsStopsInjecting) {
  Upstream upstream;
  upstream.PutObject("k", "value");
  FaultProxyOptions options = Always(upstream, FaultKind::kSlowDown);
  options.max_faults = 2;
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  std::vector<long> statuses;
  for (int i = 0; i < 5; ++i) statuses.push_back(client.Get("/bucket/k").status);
  EXPECT_EQ(statuses, (std::vector<long>{503, 503, 200, 200, 200}));
  EXPECT_EQ(proxy->faults(FaultKind::kSlowDown), 2);
  EXPECT_EQ(proxy->forwarded(), 3);
}

TEST(FaultProxy, PathFilterMethodsAndSwitchLimitWhichRequestsFault) {
  Upstream upstream;
  upstream.PutObject("data/k", "value");
  FaultProxyOptions options = Always(upstream, FaultKind::kInternalError);
  options.path_filter = "/bucket/data/";
  options.methods = {"GET"};
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());
  EXPECT_EQ(client.Put("/bucket/data/new", "x").status, 200);  // method not listed
  EXPECT_EQ(client.Get("/echo?p=/bucket/dat").status, 200);    // path does not match
  EXPECT_EQ(client.Get("/bucket/data/k").status, 500);
  proxy->SetFaultsEnabled(false);
  EXPECT_EQ(client.Get("/bucket/data/k").status, 200);
  proxy->SetFaultsEnabled(true);
  EXPECT_EQ(client.Get("/bucket/data/k").status, 500);
  EXPECT_EQ(proxy->faults(FaultKind::kInternalError), 2);
  EXPECT_EQ(proxy->forwarded(), 3);
}

std::vector<long> StatusesWithSeed(const Upstream& upstream, uint64_t seed) {
  FaultProxyOptions options;
  options.upstream_port = upstream.port();
  options.probability = {{FaultKind::kInternalError, 0.25}, {FaultKind::kSlowDown, 0.25}};
  options.seed = seed;
  auto proxy = StartOrFail(options);
  if (proxy == nullptr) return {};
  CurlClient client(proxy->endpoint());
  std::vector<long> statuses;
  for (int i = 0; i < 40; ++i) statuses.push_back(client.Get("/echo").status);
  return statuses;
}

TEST(FaultProxy, SameSeedGivesSameFaultsForSequentialRequests) {
  Upstream upstream;
  std::vector<long> a = StatusesWithSeed(upstream, 42);
  std::vector<long> b = StatusesWithSeed(upstream, 42);
  std::vector<long> c = StatusesWithSeed(upstream, 43);
  ASSERT_EQ(a.size(), 40u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  auto count = [&](long status) { return std::count(a.begin(), a.end(), status); };
  EXPECT_GT(count(200), 5);
  EXPECT_GT(count(500), 2);
  EXPECT_GT(count(503), 2);
  EXPECT_EQ(count(200) + count(500) + count(503), 40);
}

TEST(FaultProxy, CountersMatchWhatClientsSaw) {
  Upstream upstream;
  upstream.PutObject("k", RandomBytes(200000, 4));
  FaultProxyOptions options;
  options.upstream_port = upstream.port();
  options.probability = {{FaultKind::kInternalError, 0.15},
                         {FaultKind::kSlowDown, 0.15},
                         {FaultKind::kTooManyRequests, 0.15},
                         {FaultKind::kCut, 0.15}};
  options.seed = 99;
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  // Four clients at once, on kept-alive and new connections.
  std::map<string, int> seen;
  std::mutex seen_mu;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      CurlClient client(proxy->endpoint());
      for (int i = 0; i < 30; ++i) {
        CurlReply r = client.Get("/bucket/k");
        string what = r.code == CURLE_PARTIAL_FILE ? "cut"
                      : r.code != CURLE_OK         ? "curl error " + std::to_string(r.code)
                                                   : std::to_string(r.status);
        std::lock_guard<std::mutex> lock(seen_mu);
        ++seen[what];
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(proxy->requests(), 120) << proxy->Summary();
  EXPECT_EQ(proxy->requests(), proxy->forwarded() + proxy->total_faults());
  EXPECT_EQ(seen["200"], proxy->forwarded());
  EXPECT_EQ(seen["500"], proxy->faults(FaultKind::kInternalError));
  EXPECT_EQ(seen["503"], proxy->faults(FaultKind::kSlowDown));
  EXPECT_EQ(seen["429"], proxy->faults(FaultKind::kTooManyRequests));
  EXPECT_EQ(seen["cut"], proxy->faults(FaultKind::kCut));
  EXPECT_EQ(seen.size(), 5u) << proxy->Summary();
  EXPECT_EQ(upstream.hits(), proxy->forwarded() + proxy->faults(FaultKind::kCut));
  EXPECT_EQ(proxy->events().size(), 120u);
}

TEST(FaultProxy, DestructorStopsPromptlyDuringStall) {
  Upstream upstream;
  FaultProxyOptions options = Always(upstream, FaultKind::kStall);
  options.stall_duration = std::chrono::milliseconds(60000);
  auto proxy = StartOrFail(options);
  ASSERT_NE(proxy, nullptr);
  CurlReply reply;
  std::thread request([&, endpoint = proxy->endpoint()] {
    CurlClient client(endpoint);
    reply = client.Run({.path = "/bucket/k", .timeout_ms = 30000});
  });
  ASSERT_TRUE(WaitFor([&] { return proxy->faults(FaultKind::kStall) == 1; }, std::chrono::seconds(10)));
  auto start = Clock::now();
  proxy.reset();
  EXPECT_LT(SecondsSince(start), 1.0);
  request.join();
  EXPECT_EQ(reply.code, CURLE_GOT_NOTHING) << reply.Describe();
  EXPECT_LT(reply.seconds, 10.0);
}

TEST(FaultProxy, StopWithIdleKeptAliveConnectionIsPrompt) {
  Upstream upstream;
  auto proxy = StartOrFail({.upstream_port = upstream.port()});
  ASSERT_NE(proxy, nullptr);
  CurlClient client(proxy->endpoint());  // keeps its connection open
  EXPECT_EQ(client.Get("/echo").status, 200);
  auto start = Clock::now();
  proxy->Stop();
  proxy->Stop();
  EXPECT_LT(SecondsSince(start), 1.0);
  CurlReply after = client.Get("/echo");
  EXPECT_EQ(after.code, CURLE_COULDNT_CONNECT) << after.Describe();
}

}  // namespace
}  // namespace sluice::testing
