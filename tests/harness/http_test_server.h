// HttpTestServer: a real, private HTTP server (tests/http_server/server.js
// under Node.js, no npm packages) for one test or suite of the HTTP source,
// the HTTP destination and webhook alerts. tests/http_server/README.md lists
// what it serves: entities under /e/<id> (ETag/Last-Modified, 304, injected
// failures and cut connections by query parameter), a POST receiver under
// /ingest that records rows with their Idempotency-Key, webhooks under
// /hook, and control endpoints under /__.
//
// Start() runs `node server.js --port 0 --exit-with-parent` on 127.0.0.1 at
// a port the kernel picks and returns once it answers. The destructor kills
// it; if the test binary dies without running destructors, the server sees
// its parent change and exits by itself. Many servers may run at once.
// SLUICE_HTTP_SERVER_SCRIPT (environment) overrides where server.js is.
//
// Get()/Post() report any HTTP status in the reply and fail (kUnavailable)
// only when there is no complete reply; the control helpers (SetFaults,
// Received, ...) fail on any non-2xx answer.
//
// Thread-safety: everything but Stop() may be called from several threads
// at once (each request uses its own connection). Stop() must not run
// concurrently with anything else on the same server.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/status.h"

namespace sluice::testing {

class Subprocess;

struct HttpTestServerOptions {
  /// POST /ingest bodies are counted (requests, bytes) and thrown away
  /// unparsed: for benchmarks. POST /__faults {"discard": ...} changes it later.
  bool discard = false;
};

struct HttpReply {
  long status = 0;
  std::string body;
  /// Response headers by lower-cased name; a repeated header keeps its last value.
  std::map<std::string, std::string> headers;

  /// The value of header `name` (any case), or "" if absent.
  std::string Header(std::string_view name) const;
};

class HttpTestServer {
 public:
  static Result<std::unique_ptr<HttpTestServer>> Start(HttpTestServerOptions options = {});

  /// Kills the server.
  ~HttpTestServer();
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  int port() const { return port_; }
  /// "http://127.0.0.1:PORT".
  std::string base_url() const;
  /// base_url() + path; path starts with '/' and may carry a query string.
  std::string Url(std::string_view path) const;

  /// One request on a fresh connection. headers are "Name: value" lines.
  Result<HttpReply> Get(std::string_view path, std::vector<std::string> headers = {}) const;
  /// Sends body as is, with Content-Type: application/json unless headers
  /// name another.
  Result<HttpReply> Post(std::string_view path, std::string_view body,
                         std::vector<std::string> headers = {}) const;

  /// POST /__faults: replaces the ingest fault configuration (a JSON object,
  /// keys absent are off) and reseeds its PRNG.
  Status SetFaults(std::string_view json) const;
  /// POST /__reset: forgets versions, counts, received rows, hooks and faults.
  Status Reset() const;
  /// POST /__bump: the path's next version (its ETag changes to "v<version>").
  Result<int64_t> Bump(std::string_view path) const;
  /// How many requests the server has had for this exact path+query.
  Result<int64_t> Count(std::string_view path_and_query) const;
  /// GET /__stats: {"requests", "control", "by_status": {...}, "by_prefix": {...}}.
  Result<nlohmann::json> Stats() const;
  /// GET /__received: {"requests", "accepted", "duplicates", "rows", "keys",
  /// "rejected", "faulted", "bytes", "discard"}.
  Result<nlohmann::json> Received() const;
  /// POST /__dump: writes every stored row to `file` (an absolute path) as
  /// JSON lines {"key", "path", "row"} in arrival order; returns the row count.
  Result<int64_t> Dump(const std::string& file) const;
  /// GET /__hooks: the JSON bodies posted to /hook..., oldest first.
  Result<nlohmann::json> Hooks() const;

  /// Kills the server (SIGKILL) and reaps it; later requests are refused.
  /// OK if already stopped.
  Status Stop();
  bool running() const { return running_; }
  /// What the server wrote to stdout and stderr (startup line, crashes).
  std::string OutputTail(size_t max_bytes = 4000) const;

 private:
  HttpTestServer() = default;
  Status Launch(const std::string& script, const HttpTestServerOptions& options);
  /// A control request that must answer 2xx with JSON.
  Result<nlohmann::json> Control(const std::string& method, const std::string& path,
                                 std::string_view body) const;

  int port_ = 0;
  bool running_ = false;
  std::unique_ptr<Subprocess> process_;
};

}  // namespace sluice::testing
