#include "service/monitor_server.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>
#include <vector>

#include "harness/http_probe.h"
#include "harness/slow_peers.h"

namespace sluice::service {
namespace {

using sluice::testing::TimedAnswer;
using sluice::testing::TimedGet;

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using sluice::testing::SlowLorisClient;

std::chrono::milliseconds Since(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start);
}

/// Sends `request` on a new connection to 127.0.0.1:port and returns what
/// the server sent until it closed the connection or `timeout` passed.
std::string RawExchange(int port, const std::string& request, std::chrono::milliseconds timeout = 3s) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return "<connect failed>";
  }
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 20) <= 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

int CountOf(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1)) ++n;
  return n;
}

struct Fixture {
  std::atomic<bool> ready{true};
  std::atomic<int> ready_calls{0};
  std::unique_ptr<MonitorServer> server;

  MonitorHandlers Handlers() {
    MonitorHandlers h;
    h.ready = [this](std::string* detail) {
      ++ready_calls;
      if (ready) return true;
      *detail = "state store: connection refused";
      return false;
    };
    h.status_json = [] { return std::string(R"({"pipelines":[{"name":"daily","state":"idle"}]})"); };
    h.metrics_text = [] { return std::string("# TYPE sluice_runs_total counter\nsluice_runs_total 3\n"); };
    return h;
  }

  httplib::Client Client() {
    httplib::Client c("127.0.0.1", server->port());
    c.set_connection_timeout(2s);
    c.set_read_timeout(5s);
    return c;
  }
};

std::unique_ptr<MonitorServer> MustStart(MonitorOptions options, MonitorHandlers handlers) {
  Result<std::unique_ptr<MonitorServer>> server = MonitorServer::Start(options, std::move(handlers));
  EXPECT_TRUE(server.ok()) << server.status().ToString();
  return server.ok() ? std::move(server).value() : nullptr;
}

MonitorOptions AnyPort() {
  MonitorOptions o;
  o.listen = "127.0.0.1:0";
  return o;
}

TEST(MonitorServer, ServesEachEndpoint) {
  Fixture f;
  f.server = MustStart(AnyPort(), f.Handlers());
  ASSERT_NE(f.server, nullptr);
  EXPECT_GT(f.server->port(), 0);
  EXPECT_EQ(f.server->address(), "127.0.0.1:" + std::to_string(f.server->port()));
  httplib::Client c = f.Client();

  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(health->body, "{\"status\":\"ok\"}\n");
  EXPECT_EQ(health->get_header_value("Content-Type"), "application/json");

  auto ready = c.Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 200);
  EXPECT_EQ(ready->get_header_value("Content-Type"), "application/json");
  nlohmann::json ready_body = nlohmann::json::parse(ready->body);
  EXPECT_EQ(ready_body["ready"], true);
  EXPECT_FALSE(ready_body.contains("detail")) << ready->body;
  ASSERT_TRUE(ready_body["checked_ms_ago"].is_number_integer()) << ready->body;
  EXPECT_LT(ready_body["checked_ms_ago"].get<int64_t>(), 1000) << "the check ran for this request";

  auto status = c.Get("/status");
  ASSERT_TRUE(status);
  EXPECT_EQ(status->status, 200);
  EXPECT_EQ(status->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(status->body, R"({"pipelines":[{"name":"daily","state":"idle"}]})");

  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_EQ(metrics->body, "# TYPE sluice_runs_total counter\nsluice_runs_total 3\n");

  auto head = c.Head("/health");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_TRUE(head->body.empty());
}

TEST(MonitorServer, NotReadyIs503WithTheReason) {
  Fixture f;
  f.ready = false;
  f.server = MustStart(AnyPort(), f.Handlers());
  ASSERT_NE(f.server, nullptr);
  httplib::Client c = f.Client();
  auto ready = c.Get("/ready");
  ASSERT_TRUE(ready);
  EXPECT_EQ(ready->status, 503);
  EXPECT_EQ(ready->get_header_value("Content-Type"), "application/json");
  nlohmann::json body = nlohmann::json::parse(ready->body);
  EXPECT_EQ(body["ready"], false);
  EXPECT_EQ(body["detail"], "state store: connection refused");
  EXPECT_TRUE(body["checked_ms_ago"].is_number_integer()) << ready->body;
  // Alive all the same.
  EXPECT_EQ(c.Get("/health")->status, 200);
  f.ready = true;
  EXPECT_EQ(c.Get("/ready")->status, 200);
  EXPECT_EQ(f.ready_calls.load(), 2);
}

TEST(MonitorServer, UnknownPathsAre404AndOtherMethods405) {
  Fixture f;
  f.server = MustStart(AnyPort(), f.Handlers());
  ASSERT_NE(f.server, nullptr);
  httplib::Client c = f.Client();
  for (const char* path : {"/", "/nope", "/health/", "/metrics.txt"}) {
    auto res = c.Get(path);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 404) << path;
  }
  auto post = c.Post("/health", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  auto del = c.Delete("/metrics");
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 405);
  auto put = c.Put("/elsewhere", "x", "text/plain");
  ASSERT_TRUE(put);
  EXPECT_EQ(put->status, 404);
  // The connection stays usable after a request whose body no handler read.
  EXPECT_EQ(c.Get("/health")->status, 200);
}

TEST(MonitorServer, MissingHandlersAndThrowingHandlers) {
  MonitorHandlers handlers;
  handlers.metrics_text = []() -> std::string { throw std::runtime_error("registry gone"); };
  std::unique_ptr<MonitorServer> server = MustStart(AnyPort(), handlers);
  ASSERT_NE(server, nullptr);
  httplib::Client c("127.0.0.1", server->port());
  EXPECT_EQ(c.Get("/ready")->status, 200) << "no readiness check means ready";
  EXPECT_EQ(c.Get("/status")->status, 404);
  auto metrics = c.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 500);
  EXPECT_NE(metrics->body.find("registry gone"), std::string::npos);
}

TEST(MonitorServer, TokenIsRequiredOnEveryEndpoint) {
  Fixture f;
  MonitorOptions options = AnyPort();
  options.token = "s3cret-token";
  f.server = MustStart(options, f.Handlers());
  ASSERT_NE(f.server, nullptr);
  httplib::Client c = f.Client();
  for (const char* path : {"/health", "/ready", "/status", "/metrics", "/nope"}) {
    auto missing = c.Get(path);
    ASSERT_TRUE(missing) << path;
    EXPECT_EQ(missing->status, 401) << path;
    EXPECT_EQ(missing->get_header_value("WWW-Authenticate"), "Bearer") << path;
    EXPECT_EQ(missing->body.find("s3cret"), std::string::npos);

    for (const char* wrong : {"Bearer s3cret-tokeN", "Bearer s3cret-token2", "Bearer s3cret", "Bearer ",
                              "Basic s3cret-token", "s3cret-token"}) {
      auto res = c.Get(path, httplib::Headers{{"Authorization", wrong}});
      ASSERT_TRUE(res);
      EXPECT_EQ(res->status, 401) << path << " with " << wrong;
    }
  }
  EXPECT_EQ(f.ready_calls.load(), 0) << "handlers must not run for unauthorized requests";
  auto post = c.Post("/health", "x", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 401);

  httplib::Headers good{{"Authorization", "Bearer s3cret-token"}};
  for (const char* path : {"/health", "/ready", "/status", "/metrics"}) {
    auto res = c.Get(path, good);
    ASSERT_TRUE(res) << path;
    EXPECT_EQ(res->status, 200) << path;
  }
  EXPECT_EQ(c.Get("/nope", good)->status, 404);
  EXPECT_EQ(c.Get("/health", httplib::Headers{{"Authorization", "bearer s3cret-token"}})->status, 200)
      << "the scheme is case-insensitive";
  EXPECT_EQ(c.Post("/health", good, "x", "text/plain")->status, 405);
}

TEST(MonitorServer, SlowClientsDoNotDelayOthersAndAreCutOffAtTheHeadDeadline) {
  Fixture f;
  MonitorOptions options = AnyPort();
  options.head_timeout = 2s;
  f.server = MustStart(options, f.Handlers());
  ASSERT_NE(f.server, nullptr);
  // More slow clients than the old server had threads, each sending a
  // header line every second and never finishing its request head.
  std::vector<std::unique_ptr<SlowLorisClient>> slow;
  for (int i = 0; i < 6; ++i) {
    auto c = SlowLorisClient::Start(f.server->port(), 1s);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    slow.push_back(std::move(c).value());
  }
  std::this_thread::sleep_for(200ms);
  for (int i = 0; i < 8; ++i) {
    httplib::Client c = f.Client();
    Clock::time_point start = Clock::now();
    auto res = c.Get("/health");
    std::chrono::milliseconds took = Since(start);
    if (!res) {
      ADD_FAILURE() << "request " << i << ": " << httplib::to_string(res.error());
      break;  // and still check the slow clients
    }
    EXPECT_EQ(res->status, 200);
    EXPECT_LT(took, 500ms) << "request " << i;
    std::this_thread::sleep_for(200ms);
  }
  Clock::time_point deadline = Clock::now() + 4s;
  for (auto& c : slow) {
    while (!c->closed_after() && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
    ASSERT_TRUE(c->closed_after()) << "still connected after sending " << c->lines_sent() << " lines";
    // Cut off at the deadline for the whole head, although every line
    // arrived within a second of the previous one.
    EXPECT_GE(*c->closed_after(), 1900ms);
    EXPECT_LT(*c->closed_after(), 3500ms);
    EXPECT_GE(c->lines_sent(), 1);
    EXPECT_EQ(c->received().rfind("HTTP/1.1 408 ", 0), 0u) << c->received();
  }
}

TEST(MonitorServer, StopIsPromptWhileSlowClientsAreConnected) {
  Fixture f;
  f.server = MustStart(AnyPort(), f.Handlers());
  ASSERT_NE(f.server, nullptr);
  std::vector<std::unique_ptr<SlowLorisClient>> slow;
  for (int i = 0; i < 4; ++i) {
    auto c = SlowLorisClient::Start(f.server->port(), 1s);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    slow.push_back(std::move(c).value());
  }
  std::this_thread::sleep_for(1500ms);  // each has sent a header line; the head deadline is 5 s away
  auto health = f.Client().Get("/health");
  EXPECT_TRUE(health && health->status == 200) << "/health while slow clients are connected";

  Clock::time_point start = Clock::now();
  auto stopped = std::async(std::launch::async, [&f] { f.server->Stop(); });
  bool prompt = stopped.wait_for(5s) == std::future_status::ready;
  std::chrono::milliseconds took = Since(start);
  std::this_thread::sleep_for(100ms);
  for (auto& c : slow) {
    EXPECT_TRUE(c->closed_after()) << "Stop() left a slow client connected";
  }
  slow.clear();  // lets a server that waits for its clients finish
  stopped.wait();
  ASSERT_TRUE(prompt) << "Stop() waited for the slow clients";
  EXPECT_LT(took, 1s);
}

TEST(MonitorServer, HangingReadinessCheckDelaysNeitherReadyNorHealth) {
  // Shared: Stop() abandons the hanging check, whose thread outlives the test.
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto calls = std::make_shared<std::atomic<int>>(0);
  MonitorHandlers handlers;
  handlers.ready = [release, calls](std::string*) {
    ++*calls;
    Clock::time_point until = Clock::now() + 10s;
    while (!*release && Clock::now() < until) std::this_thread::sleep_for(5ms);
    return true;
  };
  std::unique_ptr<MonitorServer> server = MustStart(AnyPort(), handlers);  // ready_wait 1 s
  ASSERT_NE(server, nullptr);
  int port = server->port();

  std::vector<std::future<TimedAnswer>> readies;
  for (int i = 0; i < 6; ++i) {
    readies.push_back(std::async(std::launch::async, [port] { return TimedGet(port, "/ready", 15s); }));
  }
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(15s);
  for (int i = 0; i < 6; ++i) {
    Clock::time_point start = Clock::now();
    auto health = c.Get("/health");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    EXPECT_LT(Since(start), 500ms) << "/health " << i << " waited for the readiness check";
    std::this_thread::sleep_for(100ms);
  }
  for (auto& r : readies) {
    TimedAnswer a = r.get();
    EXPECT_EQ(a.status, 503) << a.body;
    EXPECT_LT(a.took, 1500ms) << a.body;
    nlohmann::json body = nlohmann::json::parse(a.body, nullptr, false);
    ASSERT_TRUE(body.is_object()) << a.body;
    EXPECT_EQ(body["ready"], false);
    EXPECT_NE(body["detail"].get<std::string>().find("not known yet"), std::string::npos) << a.body;
    EXPECT_TRUE(body["checked_ms_ago"].is_null()) << a.body;
  }
  EXPECT_EQ(calls->load(), 1) << "concurrent requests share one check";

  // Stop() does not wait for the hanging check longer than stop_grace (1 s).
  Clock::time_point start = Clock::now();
  server->Stop();
  EXPECT_LT(Since(start), 2s);
  release->store(true);
}

TEST(MonitorServer, ReadyAnswersFromTheLastResultWithItsAgeUntilTheCheckTimesOut) {
  auto hang = std::make_shared<std::atomic<bool>>(false);
  MonitorHandlers handlers;
  handlers.ready = [hang](std::string*) {
    Clock::time_point until = Clock::now() + 10s;
    while (*hang && Clock::now() < until) std::this_thread::sleep_for(5ms);
    return true;
  };
  MonitorOptions options = AnyPort();
  options.ready_wait = 200ms;
  options.ready_timeout = 1s;
  std::unique_ptr<MonitorServer> server = MustStart(options, handlers);
  ASSERT_NE(server, nullptr);
  httplib::Client c("127.0.0.1", server->port());
  c.set_read_timeout(15s);
  auto get_ready = [&c](std::chrono::milliseconds* took) {
    Clock::time_point start = Clock::now();
    auto res = c.Get("/ready");
    *took = Since(start);
    EXPECT_TRUE(res);
    return std::make_pair(res ? res->status : 0, res ? nlohmann::json::parse(res->body) : nlohmann::json());
  };
  std::chrono::milliseconds took;
  auto [fresh_status, fresh] = get_ready(&took);
  EXPECT_EQ(fresh_status, 200) << fresh;
  EXPECT_LT(fresh["checked_ms_ago"].get<int64_t>(), 200) << fresh;

  hang->store(true);  // the database stops answering
  std::this_thread::sleep_for(300ms);
  auto [stale_status, stale] = get_ready(&took);
  EXPECT_LT(took, 700ms);
  EXPECT_EQ(stale_status, 200) << "the last result, with its age: " << stale;
  EXPECT_GE(stale["checked_ms_ago"].get<int64_t>(), 450) << stale;

  std::this_thread::sleep_for(1s);  // the hanging check is past ready_timeout
  auto [late_status, late] = get_ready(&took);
  EXPECT_LT(took, 700ms);
  EXPECT_EQ(late_status, 503) << late;
  EXPECT_EQ(late["ready"], false);
  const std::string detail = late["detail"].get<std::string>();
  EXPECT_NE(detail.find("readiness check has not answered for"), std::string::npos) << detail;
  EXPECT_NE(detail.find("said ready"), std::string::npos) << detail;
  EXPECT_GE(late["checked_ms_ago"].get<int64_t>(), 1400) << late;
  EXPECT_EQ(c.Get("/health")->status, 200);

  hang->store(false);  // it answers again: the hung check returns, the next one is fresh
  std::this_thread::sleep_for(50ms);
  auto [back_status, back] = get_ready(&took);
  EXPECT_EQ(back_status, 200) << back;
  EXPECT_LT(back["checked_ms_ago"].get<int64_t>(), 200) << back;
}

TEST(MonitorServer, OversizedMalformedAndTooLargeRequestsAreRejected) {
  Fixture f;
  f.server = MustStart(AnyPort(), f.Handlers());  // max_head_bytes 8192
  ASSERT_NE(f.server, nullptr);
  int port = f.server->port();
  const std::string big(10000, 'a');
  EXPECT_EQ(RawExchange(port, "GET /health HTTP/1.1\r\nX-Big: " + big + "\r\n\r\n").rfind("HTTP/1.1 431 ", 0),
            0u);
  EXPECT_EQ(RawExchange(port, "GET /health HTTP/1.1\r\nX-Big: " + big).rfind("HTTP/1.1 431 ", 0), 0u)
      << "an unfinished head is cut off once it is too large";
  for (const char* bad :
       {"NONSENSE\r\n\r\n", "GET /health HTTP/2.0\r\n\r\n", "GET /health\r\n\r\n",
        "GET /health HTTP/1.1\r\nNo colon here\r\n\r\n", "GET /health HTTP/1.1\r\n folded: header\r\n\r\n",
        "GET /health HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
        "POST /health HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"}) {
    std::string answer = RawExchange(port, bad);
    EXPECT_EQ(answer.rfind("HTTP/1.1 400 ", 0), 0u) << bad << "\n" << answer;
    EXPECT_NE(answer.find("Connection: close"), std::string::npos) << answer;
  }
  EXPECT_EQ(
      RawExchange(port, "POST /health HTTP/1.1\r\nContent-Length: 100000\r\n\r\n").rfind("HTTP/1.1 413 ", 0),
      0u);
  EXPECT_EQ(f.Client().Get("/health")->status, 200);
}

TEST(MonitorServer, PipelinedRequestsAreAnsweredInOrderOnOneConnection) {
  Fixture f;
  f.server = MustStart(AnyPort(), f.Handlers());
  ASSERT_NE(f.server, nullptr);
  Clock::time_point start = Clock::now();
  std::string answer = RawExchange(f.server->port(),
                                   "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                                   "POST /ready HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                                   "HEAD /status HTTP/1.1\r\n\r\n"
                                   "GET /metrics?x=1 HTTP/1.1\r\nConnection: close\r\n\r\n",
                                   5s);
  EXPECT_LT(Since(start), 2s) << "the server closes after the request that asked for it";
  size_t health = answer.find("HTTP/1.1 200 OK\r\n");
  size_t post = answer.find("HTTP/1.1 405 ");
  size_t head = answer.find("HTTP/1.1 200 OK\r\n", post);
  size_t metrics = answer.find("# TYPE sluice_runs_total counter");
  ASSERT_NE(health, std::string::npos) << answer;
  ASSERT_NE(post, std::string::npos) << answer;
  ASSERT_NE(head, std::string::npos) << answer;
  ASSERT_NE(metrics, std::string::npos) << answer;
  EXPECT_LT(health, post);
  EXPECT_LT(post, head);
  EXPECT_LT(head, metrics);
  EXPECT_EQ(CountOf(answer, "\"pipelines\""), 0) << "HEAD sends no body: " << answer;
  EXPECT_EQ(CountOf(answer, "HTTP/1.1 "), 4) << answer;
}

TEST(MonitorServer, ConnectionLimitClosesTheConnectionThatWaitedLongest) {
  Fixture f;
  MonitorOptions options = AnyPort();
  options.max_connections = 3;
  f.server = MustStart(options, f.Handlers());
  ASSERT_NE(f.server, nullptr);
  std::vector<std::unique_ptr<SlowLorisClient>> idle;
  for (int i = 0; i < 3; ++i) {
    auto c = SlowLorisClient::Start(f.server->port(), 10s);
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    idle.push_back(std::move(c).value());
    std::this_thread::sleep_for(50ms);
  }
  Clock::time_point start = Clock::now();
  auto res = f.Client().Get("/health");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_LT(Since(start), 500ms);
  std::this_thread::sleep_for(100ms);
  EXPECT_TRUE(idle[0]->closed_after()) << "the oldest waiting connection made room";
  EXPECT_FALSE(idle[1]->closed_after());
  EXPECT_FALSE(idle[2]->closed_after());
}

TEST(MonitorServer, IsLoopbackHost) {
  for (const char* host : {"localhost", "LocalHost", "127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"})
    EXPECT_TRUE(IsLoopbackHost(host)) << host;
  for (const char* host : {"0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "128.0.0.1", "::2",
                           "localhost.example.com"})
    EXPECT_FALSE(IsLoopbackHost(host)) << host;
}

TEST(MonitorServer, PortInUseIsAnErrorNamingTheAddress) {
  Fixture f;
  f.server = MustStart(AnyPort(), f.Handlers());
  ASSERT_NE(f.server, nullptr);
  MonitorOptions same;
  same.listen = "127.0.0.1:" + std::to_string(f.server->port());
  Result<std::unique_ptr<MonitorServer>> second = MonitorServer::Start(same, f.Handlers());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), StatusCode::kIoError);
  EXPECT_NE(second.status().message().find("cannot listen on " + same.listen), std::string::npos)
      << second.status().message();
  EXPECT_NE(second.status().message().find("in use"), std::string::npos) << second.status().message();
  // The first server is unaffected.
  EXPECT_EQ(f.Client().Get("/health")->status, 200);
}

TEST(MonitorServer, StopIsPromptIdempotentAndRefusesConnections) {
  Fixture f;
  f.server = MustStart(AnyPort(), f.Handlers());
  ASSERT_NE(f.server, nullptr);
  httplib::Client c = f.Client();
  c.set_keep_alive(true);  // an idle kept-alive connection must not hold Stop() up for long
  ASSERT_EQ(c.Get("/health")->status, 200);
  auto start = std::chrono::steady_clock::now();
  f.server->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 3s);
  f.server->Stop();

  httplib::Client fresh("127.0.0.1", f.server->port());
  fresh.set_connection_timeout(2s);
  auto res = fresh.Get("/health");
  EXPECT_FALSE(res);
  EXPECT_EQ(res.error(), httplib::Error::Connection);
  f.server.reset();  // the destructor after Stop() is fine too
}

TEST(MonitorServer, ListensOnIpv6Loopback) {
  MonitorOptions options;
  options.listen = "[::1]:0";
  Result<std::unique_ptr<MonitorServer>> server = MonitorServer::Start(options, MonitorHandlers{});
  if (!server.ok()) GTEST_SKIP() << "no IPv6 loopback here: " << server.status().ToString();
  EXPECT_EQ((*server)->address(), "[::1]:" + std::to_string((*server)->port()));
  httplib::Client c("::1", (*server)->port());
  auto res = c.Get("/health");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
}

TEST(ParseListenAddress, HostPortAndBracketedIpv6) {
  Result<ListenAddress> v4 = ParseListenAddress("127.0.0.1:9187");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "127.0.0.1");
  EXPECT_EQ(v4->port, 9187);
  Result<ListenAddress> v6 = ParseListenAddress("[::1]:9187");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(v6->port, 9187);
  EXPECT_EQ(v6->ToString(), "[::1]:9187");
  Result<ListenAddress> any = ParseListenAddress("localhost:0");
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(any->port, 0);

  for (const char* bad : {"9187", ":9187", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:65536", "::1:9187",
                          "[::1]9187", "[::1", "host:-1"}) {
    Result<ListenAddress> r = ParseListenAddress(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(r.status().message().find(std::string("listen address \"") + bad + "\""), std::string::npos)
        << r.status().message();
  }
}

}  // namespace
}  // namespace sluice::service
