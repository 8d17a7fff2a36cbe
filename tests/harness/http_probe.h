// One timed HTTP GET on 127.0.0.1, for tests that bound how long a server
// may take to answer (the monitoring endpoints under slow clients or a
// hanging readiness check). Header-only: the tests that use it link
// cpp-httplib. Safe from any thread (each call has its own client).
#pragma once

#include <httplib.h>

#include <chrono>
#include <string>

namespace sluice::testing {

struct TimedAnswer {
  int status = 0;    // 0: no answer
  std::string body;  // or, without an answer, the client's error
  std::chrono::milliseconds took{};
};

inline TimedAnswer TimedGet(int port, const std::string& path, std::chrono::seconds read_timeout) {
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(read_timeout);
  auto start = std::chrono::steady_clock::now();
  auto res = client.Get(path);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start);
  return TimedAnswer{res ? res->status : 0, res ? res->body : httplib::to_string(res.error()), took};
}

}  // namespace sluice::testing
