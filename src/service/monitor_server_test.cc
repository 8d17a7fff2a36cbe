#include "service/monitor_server.h"

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

namespace sluice::service {
namespace {

using namespace std::chrono_literals;

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
  EXPECT_EQ(ready->body, "{\"ready\":true}\n");

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
  EXPECT_EQ(ready->body, "{\"detail\":\"state store: connection refused\",\"ready\":false}\n");
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

TEST(MonitorServer, SlowReadinessCheckDoesNotBlockHealth) {
  std::atomic<bool> release{false};
  MonitorHandlers handlers;
  handlers.ready = [&release](std::string*) {
    while (!release) std::this_thread::sleep_for(5ms);
    return true;
  };
  std::unique_ptr<MonitorServer> server = MustStart(AnyPort(), handlers);
  ASSERT_NE(server, nullptr);
  int port = server->port();
  std::thread slow([port] {
    httplib::Client c("127.0.0.1", port);
    auto res = c.Get("/ready");
    EXPECT_TRUE(res && res->status == 200);
  });
  std::this_thread::sleep_for(100ms);
  httplib::Client c("127.0.0.1", port);
  auto start = std::chrono::steady_clock::now();
  auto health = c.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
  release = true;
  slow.join();
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
