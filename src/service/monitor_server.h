// MonitorServer: the HTTP endpoints that people, Prometheus and
// orchestrators use to watch `sluice serve`:
//
//   GET /health   200 {"status":"ok"} while the process serves requests
//   GET /ready    200 {"ready":true} or 503 {"ready":false,"detail":"..."}
//   GET /status   200, application/json, whatever status_json returns
//   GET /metrics  200, text/plain; version=0.0.4 (Prometheus)
//
// Other paths are 404, other methods on these paths 405 (HEAD is served
// like GET). When a token is configured, EVERY endpoint, /health included,
// requires "Authorization: Bearer <token>" and answers 401 with
// "WWW-Authenticate: Bearer" otherwise. A liveness probe that cannot send
// headers should use a TCP check, or run without a token on 127.0.0.1.
//
// The server knows nothing about pipelines: it calls the handlers it is
// given, on a small pool of its own threads, possibly concurrently; the
// handlers must be thread-safe and should bound their own time (a slow
// readiness check holds one pool thread and delays Stop()). A handler that
// throws produces a 500.
//
// Thread safety: Start() and Stop() may be called from any thread; Stop()
// is idempotent and also runs in the destructor.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/status.h"

namespace sluice::service {

struct ListenAddress {
  std::string host;  // "127.0.0.1", "::1", "localhost", "0.0.0.0"
  int port = 0;      // 0: any free port
  /// "127.0.0.1:9187", "[::1]:9187".
  std::string ToString() const;
};

/// Parses "host:port" or "[ipv6]:port".
Result<ListenAddress> ParseListenAddress(std::string_view text);

struct MonitorOptions {
  std::string listen = "127.0.0.1:9187";
  /// When not empty, required as a bearer token on every request.
  std::string token;
  /// Threads serving requests (handlers run on them).
  int threads = 4;
  /// Socket read and write timeout for one request or response.
  std::chrono::milliseconds io_timeout{5000};
};

struct MonitorHandlers {
  /// true = ready; on false, `detail` says why ("state store: connection
  /// refused"). Not set: always ready.
  std::function<bool(std::string* detail)> ready;
  /// The body of /status (JSON). Not set: 404.
  std::function<std::string()> status_json;
  /// The body of /metrics (Prometheus text). Not set: 404.
  std::function<std::string()> metrics_text;
};

class MonitorServer {
 public:
  /// Binds and starts serving; returns once the socket is listening. A
  /// bind failure (address in use, unknown host) names the address.
  static Result<std::unique_ptr<MonitorServer>> Start(const MonitorOptions& options,
                                                      MonitorHandlers handlers);

  ~MonitorServer();
  MonitorServer(const MonitorServer&) = delete;
  MonitorServer& operator=(const MonitorServer&) = delete;

  /// The port actually bound (the chosen one when the options said 0).
  int port() const;
  /// The bound address, e.g. "127.0.0.1:41234".
  std::string address() const;
  /// Closes the listening socket and waits for requests in progress.
  void Stop();

 private:
  struct Impl;
  explicit MonitorServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::service
