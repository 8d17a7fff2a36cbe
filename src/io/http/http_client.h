// HttpClient: many HTTP requests at once on one event-driven thread
// (libcurl's multi interface), with the retry rules every HTTP component of
// sluice shares.
//
// One client owns one curl multi handle and one thread that drives it:
// connections are kept alive and reused, HTTP/2 is used where a TLS server
// offers it, DNS answers are cached, TLS uses the system's CAs. Requests
// beyond `max_in_flight` wait in a queue; curl itself holds back requests
// beyond `max_per_host` for one host. A request that fails in a retryable
// way (408, 429, 5xx except 501, a timeout, a connection error) is sent
// again after an exponential backoff with full jitter, or after what the
// server's Retry-After asks for (capped by max_delay), until max_attempts or
// max_elapsed; any other response is final.
//
// Thread-safety: Submit, Send and Cancel may be called from any thread.
// Callbacks run on the client's thread, one at a time: they must be quick
// (hand the response over and return) and must not call Send or destroy
// the client. The destructor cancels what is still pending (each callback
// still runs once, with `cancelled` set) and joins the thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/cancellation.h"
#include "sluice/status.h"

namespace sluice::io {

/// Per-request retries ([source.retry], [destination.retry]).
struct HttpRetryPolicy {
  int max_attempts = 3;  // including the first; 1: no retries
  std::chrono::milliseconds initial{200};
  std::chrono::milliseconds max_delay{30000};
  std::chrono::milliseconds max_elapsed{300000};
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  /// "Name: value" lines, sent as they are.
  std::vector<std::string> headers;
  std::string body;
  std::chrono::milliseconds timeout{30000};
  int64_t max_response_bytes = 16 << 20;
};

/// One attempt's outcome, or the last attempt's when a request is done.
struct HttpResponse {
  /// The HTTP status; 0 when no complete response arrived (see error).
  long status = 0;
  std::string body;
  /// Response headers with lower-case names, in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;
  /// Why there is no (complete) response: "timed out after 10 s",
  /// "connection refused", "response larger than 16 MB"; empty otherwise.
  std::string error;
  bool timed_out = false;
  bool too_large = false;
  bool cancelled = false;
  /// Attempts made (1 when the first one was final).
  int attempts = 0;
  /// Seconds of the last attempt, and from the first attempt's start to the end.
  double seconds = 0;
  double total_seconds = 0;

  /// The value of a header (case-insensitive name), or nullopt.
  std::optional<std::string> Header(std::string_view name) const;
  bool ok() const { return status >= 200 && status < 300; }
  /// "HTTP 503" or the transport error, for messages.
  std::string Summary() const;
};

struct HttpClientOptions {
  int max_in_flight = 256;
  int max_per_host = 256;
  std::string user_agent = "sluice";
  /// Called on the client's thread after every attempt (metrics).
  std::function<void(const HttpRequest&, const HttpResponse&)> on_attempt;
  /// When it fires, queued and running requests end with `cancelled`.
  const CancellationSource* cancel = nullptr;
};

/// Whether an attempt that ended like `response` may be tried again.
bool HttpRetryable(const HttpResponse& response);

/// What a Retry-After value asks for: delta-seconds ("120") or an HTTP date
/// (IMF-fixdate, RFC 850 or asctime form) relative to `now`; nullopt when
/// it is neither. A date in the past is zero.
std::optional<std::chrono::milliseconds> ParseRetryAfter(std::string_view value,
                                                         std::chrono::system_clock::time_point now);

/// The delay before attempt `attempt` + 1 (attempt counts from 1): full
/// jitter (uniform in [0, min(max_delay, initial * 2^(attempt-1))]), or
/// Retry-After when the response has one, capped by max_delay.
std::chrono::milliseconds HttpRetryDelay(const HttpRetryPolicy& policy, int attempt,
                                         const HttpResponse& response, double uniform01);

/// The URL without credentials: user:password, and the values of query
/// parameters that carry secrets (api_key, apikey, token, access_token,
/// key, signature, sig, password), replaced by ***.
std::string RedactHttpUrl(std::string_view url);

class HttpClient {
 public:
  using Callback = std::function<void(HttpResponse)>;

  static Result<std::unique_ptr<HttpClient>> Make(HttpClientOptions options);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  /// Queues `request`; `done` runs once on the client's thread with the
  /// final response (after the retries `policy` allows).
  void Submit(HttpRequest request, HttpRetryPolicy policy, Callback done);
  /// Submit and wait.
  HttpResponse Send(HttpRequest request, HttpRetryPolicy policy);
  /// Ends every queued and running request (they complete as cancelled).
  void Cancel();
  /// Requests submitted and not yet completed.
  int64_t pending() const;

 private:
  HttpClient() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::io
