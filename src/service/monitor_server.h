// MonitorServer: the HTTP endpoints that people, Prometheus and
// orchestrators use to watch `sluice serve`:
//
//   GET /health   200 {"status":"ok"} while the process serves requests
//   GET /ready    200 {"ready":true,"checked_ms_ago":12} or
//                 503 {"ready":false,"detail":"...","checked_ms_ago":12}
//   GET /status   200, application/json, whatever status_json returns
//   GET /metrics  200, text/plain; version=0.0.4 (Prometheus)
//
// Other paths are 404, other methods on these paths 405 (HEAD is served
// like GET). When a token is configured, EVERY endpoint, /health included,
// requires "Authorization: Bearer <token>" and answers 401 with
// "WWW-Authenticate: Bearer" otherwise. A liveness probe that cannot send
// headers should use a TCP check, or run without a token on 127.0.0.1.
//
// It is a small HTTP/1.1 server of its own: one event-loop thread owns every
// connection (non-blocking sockets, poll), so a client that sends slowly
// holds no thread. A client must send its whole request head within
// head_timeout (408, then closed) and in at most max_head_bytes (431);
// beyond max_connections the connection that has waited longest for its
// request head is closed to make room. /health and /ready are answered on
// the loop thread and never wait for a handler.
//
// Handlers: the server knows nothing about pipelines. status_json and
// metrics_text run on a small pool of the server's threads, possibly
// concurrently; they must be thread-safe and quick (Stop() waits for them).
// ready runs on a checker thread of its own, one check at a time, when a
// /ready request arrives and no check is running; the request waits up to
// ready_wait for that check and otherwise answers from the last result, with
// its age. A check still running after ready_timeout makes /ready answer
// not ready until it returns. A handler that throws produces a 500 (a
// readiness check that throws: not ready).
//
// Thread safety: Start() and Stop() may be called from any thread; Stop() is
// idempotent, also runs in the destructor, and returns within about
// stop_grace whatever the clients do: it closes every connection at once,
// waits for the pool's handlers, and waits at most stop_grace for a
// readiness check in progress. A check that takes longer is abandoned: its
// thread is detached and keeps the `ready` function (and what it captured)
// alive until the check returns, so the function must own, or share
// ownership of, everything it uses.
#pragma once

#include <chrono>
#include <cstddef>
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
[[nodiscard]] Result<ListenAddress> ParseListenAddress(std::string_view text);

/// Whether `host` names only this machine: "localhost", 127.0.0.0/8, "::1"
/// (also IPv4-mapped, "::ffff:127.0.0.1"). Names are not resolved.
bool IsLoopbackHost(std::string_view host);

struct MonitorOptions {
  std::string listen = "127.0.0.1:9187";
  /// When not empty, required as a bearer token on every request.
  std::string token;
  /// Threads running the status_json and metrics_text handlers.
  int threads = 2;
  /// Open connections at most (lingering and idle ones included).
  int max_connections = 64;
  /// A request head (request line and headers, and a request body if any)
  /// must arrive within this long of the connection opening or, on a kept
  /// alive connection, of the previous response; otherwise 408 and close.
  std::chrono::milliseconds head_timeout{5000};
  /// Request heads longer than this are answered with 431 and closed.
  size_t max_head_bytes = 8192;
  /// Request bodies (no endpoint reads one) longer than this: 413.
  size_t max_body_bytes = 64 * 1024;
  /// A response not fully taken by the client within this long is dropped.
  std::chrono::milliseconds write_timeout{5000};
  /// How long /ready waits for the check it started before it answers from
  /// the previous result.
  std::chrono::milliseconds ready_wait{1000};
  /// A readiness check running longer than this makes /ready not ready.
  std::chrono::milliseconds ready_timeout{5000};
  /// How long Stop() waits for a readiness check in progress.
  std::chrono::milliseconds stop_grace{1000};
};

struct MonitorHandlers {
  /// true = ready; on false, `detail` says why ("state store: connection
  /// refused"). Runs on the server's checker thread, never twice at once.
  /// Not set: always ready.
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
  [[nodiscard]] static Result<std::unique_ptr<MonitorServer>> Start(const MonitorOptions& options,
                                                                    MonitorHandlers handlers);

  ~MonitorServer();
  MonitorServer(const MonitorServer&) = delete;
  MonitorServer& operator=(const MonitorServer&) = delete;

  /// The port actually bound (the chosen one when the options said 0).
  int port() const;
  /// The bound address, e.g. "127.0.0.1:41234".
  std::string address() const;
  /// Closes the listening socket and every connection; see the top of
  /// this file for what it waits for.
  void Stop();

 private:
  struct Impl;
  explicit MonitorServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::service
