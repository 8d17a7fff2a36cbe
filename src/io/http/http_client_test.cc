#include "io/http/http_client.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

namespace sluice::io {
namespace {

using std::chrono::milliseconds;

// A real HTTP server on 127.0.0.1 (cpp-httplib) with a few misbehaving paths.
class TestServer {
 public:
  TestServer() {
    server_.Get("/ok", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(R"({"ok":true})", "application/json");
    });
    server_.Post("/echo", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.get_header_value("Idempotency-Key") + "|" + req.body, "text/plain");
    });
    // Fails `n` times with the given status, then succeeds.
    server_.Get(R"(/flaky/(\d+)/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      int status = std::stoi(req.matches[1]);
      int times = std::stoi(req.matches[2]);
      int seen = Count(req.path);
      if (seen <= times) {
        res.status = status;
        if (req.has_param("retry_after")) res.set_header("Retry-After", req.get_param_value("retry_after"));
        res.set_content("busy", "text/plain");
        return;
      }
      res.set_content("finally", "text/plain");
    });
    server_.Get(R"(/status/(\d+))", [this](const httplib::Request& req, httplib::Response& res) {
      Count(req.path);
      res.status = std::stoi(req.matches[1]);
      res.set_content("no", "text/plain");
    });
    server_.Get("/slow", [this](const httplib::Request& req, httplib::Response& res) {
      Count(req.path);
      std::this_thread::sleep_for(milliseconds(1500));
      res.set_content("late", "text/plain");
    });
    server_.Get("/big", [](const httplib::Request&, httplib::Response& res) {
      res.set_content(std::string(100000, 'x'), "text/plain");
    });
    server_.Get(R"(/n/(\d+))", [](const httplib::Request& req, httplib::Response& res) {
      res.set_content(req.matches[1], "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(milliseconds(5));
  }
  ~TestServer() {
    server_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int Seen(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return counts_[path];
  }

 private:
  int Count(const std::string& path) {
    std::lock_guard<std::mutex> lock(mu_);
    return ++counts_[path];
  }
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::map<std::string, int> counts_;
};

HttpRetryPolicy FastRetries(int attempts) {
  HttpRetryPolicy p;
  p.max_attempts = attempts;
  p.initial = milliseconds(10);
  p.max_delay = milliseconds(2000);
  p.max_elapsed = milliseconds(20000);
  return p;
}

HttpRequest Get(const std::string& url) {
  HttpRequest r;
  r.url = url;
  r.timeout = milliseconds(5000);
  return r;
}

TEST(HttpClient, GetsABodyAndHeaders) {
  TestServer server;
  auto client = HttpClient::Make({}).value();
  HttpResponse r = client->Send(Get(server.Url("/ok")), FastRetries(1));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"ok":true})");
  EXPECT_EQ(r.Header("Content-Type").value_or(""), "application/json");
  EXPECT_EQ(r.attempts, 1);
}

TEST(HttpClient, PostsTheBodyWithItsHeaders) {
  TestServer server;
  auto client = HttpClient::Make({}).value();
  HttpRequest req = Get(server.Url("/echo"));
  req.method = "POST";
  req.body = "[1,2,3]";
  req.headers = {"Idempotency-Key: abc", "Content-Type: application/json"};
  HttpResponse r = client->Send(req, FastRetries(1));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "abc|[1,2,3]");
}

TEST(HttpClient, Retries503UntilItSucceeds) {
  TestServer server;
  auto client = HttpClient::Make({}).value();
  HttpResponse r = client->Send(Get(server.Url("/flaky/503/2")), FastRetries(5));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "finally");
  EXPECT_EQ(r.attempts, 3);
}

TEST(HttpClient, GivesUpAfterMaxAttempts) {
  TestServer server;
  auto client = HttpClient::Make({}).value();
  HttpResponse r = client->Send(Get(server.Url("/status/500")), FastRetries(3));
  EXPECT_EQ(r.status, 500);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(server.Seen("/status/500"), 3);
}

TEST(HttpClient, DoesNotRetryOtherClientErrorsNor501) {
  TestServer server;
  auto client = HttpClient::Make({}).value();
  for (const char* path : {"/status/400", "/status/404", "/status/501"}) {
    HttpResponse r = client->Send(Get(server.Url(path)), FastRetries(5));
    EXPECT_EQ(r.attempts, 1) << path;
    EXPECT_EQ(server.Seen(path), 1) << path;
  }
}

TEST(HttpClient, HonoursRetryAfterSeconds) {
  TestServer server;
  auto client = HttpClient::Make({}).value();
  auto start = std::chrono::steady_clock::now();
  HttpResponse r = client->Send(Get(server.Url("/flaky/429/1?retry_after=1")), FastRetries(3));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_GE(seconds, 0.95);  // the backoff alone would have waited at most 10 ms
}

TEST(HttpClient, TimesOutAndRetriesASlowServer) {
  TestServer server;
  auto client = HttpClient::Make({}).value();
  HttpRequest req = Get(server.Url("/slow"));
  req.timeout = milliseconds(300);
  HttpResponse r = client->Send(req, FastRetries(2));
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.timed_out);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_NE(r.error.find("timed out"), std::string::npos) << r.error;
}

TEST(HttpClient, RefusesAResponseLargerThanTheLimitWithoutRetrying) {
  TestServer server;
  auto client = HttpClient::Make({}).value();
  HttpRequest req = Get(server.Url("/big"));
  req.max_response_bytes = 1000;
  HttpResponse r = client->Send(req, FastRetries(3));
  EXPECT_TRUE(r.too_large);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_NE(r.error.find("larger than"), std::string::npos) << r.error;
}

TEST(HttpClient, AConnectionRefusedIsRetryableAndNamed) {
  auto client = HttpClient::Make({}).value();
  // Port 1 on loopback: nothing listens there.
  HttpResponse r = client->Send(Get("http://127.0.0.1:1/x"), FastRetries(2));
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.attempts, 2);
  EXPECT_FALSE(r.error.empty());
}

TEST(HttpClient, RunsManyRequestsWithABoundedNumberInFlight) {
  TestServer server;
  std::atomic<int> attempts{0};
  HttpClientOptions options;
  options.max_in_flight = 8;
  options.on_attempt = [&](const HttpRequest&, const HttpResponse&) { attempts.fetch_add(1); };
  auto client = HttpClient::Make(options).value();
  std::mutex mu;
  std::map<std::string, std::string> bodies;
  std::atomic<int> done{0};
  for (int i = 0; i < 500; ++i) {
    client->Submit(Get(server.Url("/n/" + std::to_string(i))), FastRetries(1), [&, i](HttpResponse r) {
      std::lock_guard<std::mutex> lock(mu);
      bodies[std::to_string(i)] = r.body;
      done.fetch_add(1);
    });
  }
  for (int i = 0; i < 500 && done.load() < 500; ++i) std::this_thread::sleep_for(milliseconds(20));
  ASSERT_EQ(done.load(), 500);
  EXPECT_EQ(attempts.load(), 500);
  EXPECT_EQ(client->pending(), 0);
  for (const auto& [k, v] : bodies) EXPECT_EQ(k, v);
}

TEST(HttpClient, CancellationEndsPendingRequestsPromptly) {
  TestServer server;
  CancellationSource cancel;
  HttpClientOptions options;
  options.cancel = &cancel;
  auto client = HttpClient::Make(options).value();
  std::thread canceller([&] {
    std::this_thread::sleep_for(milliseconds(200));
    cancel.Cancel();
  });
  auto start = std::chrono::steady_clock::now();
  HttpResponse r = client->Send(Get(server.Url("/slow")), FastRetries(1));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  canceller.join();
  EXPECT_TRUE(r.cancelled);
  EXPECT_LT(seconds, 1.2);
}

TEST(HttpClient, DestroyingTheClientCompletesWhatIsPending) {
  TestServer server;
  std::atomic<int> cancelled{0};
  {
    auto client = HttpClient::Make({}).value();
    for (int i = 0; i < 3; ++i) {
      client->Submit(Get(server.Url("/slow")), FastRetries(1), [&](HttpResponse r) {
        if (r.cancelled) cancelled.fetch_add(1);
      });
    }
    std::this_thread::sleep_for(milliseconds(100));
  }
  EXPECT_EQ(cancelled.load(), 3);
}

TEST(HttpRetry, ClassifiesStatuses) {
  auto with = [](long status) {
    HttpResponse r;
    r.status = status;
    return HttpRetryable(r);
  };
  for (long s : {408L, 429L, 500L, 502L, 503L, 504L, 599L}) EXPECT_TRUE(with(s)) << s;
  for (long s : {200L, 301L, 400L, 401L, 403L, 404L, 409L, 422L, 501L}) EXPECT_FALSE(with(s)) << s;
  HttpResponse transport;
  transport.error = "Connection reset";
  EXPECT_TRUE(HttpRetryable(transport));
  transport.too_large = true;
  EXPECT_FALSE(HttpRetryable(transport));
}

TEST(HttpRetry, ParsesRetryAfterInBothForms) {
  auto now = std::chrono::system_clock::from_time_t(784111777);  // Sun, 06 Nov 1994 08:49:37 GMT
  EXPECT_EQ(ParseRetryAfter("120", now).value(), milliseconds(120000));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now).value(), milliseconds(0));
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:47 GMT", now).value(), milliseconds(10000));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:50:37 GMT", now).value(), milliseconds(60000));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:57 1994", now).value(), milliseconds(20000));
  EXPECT_EQ(ParseRetryAfter("Sat, 05 Nov 1994 08:49:37 GMT", now).value(), milliseconds(0));
  EXPECT_FALSE(ParseRetryAfter("soon", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("-5", now).has_value());
  EXPECT_FALSE(ParseRetryAfter("", now).has_value());
}

TEST(HttpRetry, DelayIsFullJitterCappedAndRetryAfterWins) {
  HttpRetryPolicy p;
  p.initial = milliseconds(100);
  p.max_delay = milliseconds(1000);
  HttpResponse r;
  r.status = 503;
  EXPECT_EQ(HttpRetryDelay(p, 1, r, 1.0), milliseconds(100));
  EXPECT_EQ(HttpRetryDelay(p, 3, r, 1.0), milliseconds(400));
  EXPECT_EQ(HttpRetryDelay(p, 10, r, 1.0), milliseconds(1000));
  EXPECT_EQ(HttpRetryDelay(p, 3, r, 0.0), milliseconds(0));
  r.headers = {{"retry-after", "7"}};
  EXPECT_EQ(HttpRetryDelay(p, 1, r, 0.5), milliseconds(1000));  // capped by max_delay
  p.max_delay = milliseconds(30000);
  EXPECT_EQ(HttpRetryDelay(p, 1, r, 0.5), milliseconds(7000));
}

TEST(HttpUrl, RedactsCredentialsAndSecretQueryParameters) {
  EXPECT_EQ(RedactHttpUrl("https://user:pa55@api.example.com/v1?x=1"),
            "https://user:***@api.example.com/v1?x=1");
  EXPECT_EQ(RedactHttpUrl("https://sk_live_abc@api.example.com/v1"), "https://***@api.example.com/v1");
  EXPECT_EQ(RedactHttpUrl("http://h/p?api_key=abc&city=Oslo&token=t0k&sig=s#frag"),
            "http://h/p?api_key=***&city=Oslo&token=***&sig=***#frag");
  EXPECT_EQ(RedactHttpUrl("http://h/p?Access_Token=x&keyword=k"), "http://h/p?Access_Token=***&keyword=k");
  EXPECT_EQ(RedactHttpUrl("http://h/p"), "http://h/p");
}

}  // namespace
}  // namespace sluice::io
