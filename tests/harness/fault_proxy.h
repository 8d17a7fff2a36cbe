// FaultProxy: an HTTP/1.1 proxy for tests that sits between an S3 client
// and a real S3 server (s3rver) and, for a chosen share of the requests,
// answers with a fault instead of (or while) forwarding them: S3 error
// responses (500 InternalError, 503 SlowDown, 429 with Retry-After), a stall
// (nothing, or the headers and part of the body, then silence), a cut (the
// headers and part of the body, then the connection is closed), and a
// deterministic 403 AccessDenied for paths that match a rule. Tests point
// the client at endpoint() and assert on the counters that faults happened.
//
// The proxy listens on 127.0.0.1 and serves each client connection on its
// own thread, with keep-alive. Request bodies and Content-Length responses
// are streamed; chunked or close-delimited responses are buffered and sent
// with a Content-Length. Every forwarded request uses a new upstream
// connection. The Host header is passed through unchanged, so SigV4
// signatures made for the proxy's address stay valid.
//
// Random faults are drawn from a generator seeded by options.seed, one draw
// per request that is eligible for a fault, in the order the proxy reads
// them: a client that sends its requests one at a time gets the same faults
// on every run. Concurrent requests may be drawn for in any order.
//
// Thread-safety: all const methods, SetFaultsEnabled() and Stop() may be
// called from any thread while the proxy serves requests.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "sluice/status.h"

namespace sluice::testing {

namespace fault_proxy_internal {
class Reader;
struct HttpMessage;
}  // namespace fault_proxy_internal

enum class FaultKind {
  kInternalError,    // 500, <Code>InternalError</Code>; not forwarded
  kSlowDown,         // 503, <Code>SlowDown</Code>; not forwarded
  kTooManyRequests,  // 429, <Code>TooManyRequests</Code>, Retry-After; not forwarded
  kAccessDenied,     // 403, <Code>AccessDenied</Code>; not forwarded
  kStall,            // not forwarded; nothing is sent for stall_duration, then the connection is closed
  kStallMidBody,     // forwarded; the headers and part of the body, then silence, then close
  kCut,              // forwarded; the headers and part of the body, then the connection is closed
};
inline constexpr int kFaultKindCount = 7;

/// "internal_error", "slow_down", ...: for failure messages.
const char* FaultKindName(FaultKind kind);

struct FaultProxyOptions {
  /// The real server, e.g. s3rver on 127.0.0.1.
  std::string upstream_host = "127.0.0.1";
  int upstream_port = 0;
  /// Where the proxy listens on 127.0.0.1; 0 picks a free port.
  int port = 0;

  /// The chance of each kind for a request that is eligible for a random
  /// fault; at most one fault per request, the sum must not exceed 1.
  /// Kinds not listed never happen at random.
  std::map<FaultKind, double> probability{};
  uint64_t seed = 1;
  /// Random faults stop after this many; negative: no limit.
  int64_t max_faults = -1;
  /// Only requests whose target (path and query, as sent, percent-encoded)
  /// contains this string are eligible for random faults; empty: all.
  std::string path_filter{};
  /// Only requests with one of these methods ("GET", "PUT", ...) are
  /// eligible for random faults; empty: all.
  std::vector<std::string> methods{};

  /// Every request whose target contains this string gets 403 AccessDenied,
  /// not counting towards max_faults; empty: none.
  std::string deny_path_substring{};
  /// Every request whose target contains this string (and that gets no
  /// fault) is held for `delay` before it is forwarded: a slow object, for
  /// tests of what a client does while it waits. Not a fault; empty: none.
  std::string delay_path_substring{};
  std::chrono::milliseconds delay{0};

  /// How long a stall lasts before the proxy closes the connection; make it
  /// longer than the client's stall timeout. It ends early if the client
  /// closes the connection or the proxy stops. libcurl's LOW_SPEED_TIME
  /// averages over the last ~5 s, so after the burst of a kStallMidBody it
  /// fires about 5 s later than after a kStall.
  std::chrono::milliseconds stall_duration{5000};
  /// How much of the response body kStallMidBody and kCut send: this many
  /// bytes, but always at least one byte less than the body; negative: half
  /// the body. When the body is empty they send nothing at all, not even
  /// the headers, so the client still sees the failure.
  int64_t partial_body_bytes = -1;
  /// kCut closes with a TCP reset (SO_LINGER 0) instead of a normal close:
  /// the client sees "connection reset" rather than a short body.
  bool cut_with_reset = false;
  /// The value of Retry-After in kTooManyRequests responses.
  int retry_after_seconds = 1;
  /// How long the proxy waits for the upstream to connect, accept data or
  /// answer before it gives up on the request (502 or a closed connection).
  std::chrono::milliseconds upstream_timeout{60000};
};

/// One request as the proxy saw it, for failure messages and assertions.
struct FaultProxyEvent {
  std::string method;
  std::string target;
  /// The fault injected; nullopt: forwarded untouched.
  std::optional<FaultKind> fault;
};

class FaultProxy {
 public:
  /// Listens before it returns; the upstream is not contacted until the
  /// first request.
  static Result<std::unique_ptr<FaultProxy>> Start(const FaultProxyOptions& options);

  /// Stops the proxy (see Stop()).
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  int port() const { return port_; }
  /// http://127.0.0.1:PORT, the endpoint to give the S3 client.
  std::string endpoint() const;

  /// Turns random faults on (the default) or off, e.g. while a test sets up
  /// its bucket through the proxy. The deny rule applies either way.
  void SetFaultsEnabled(bool enabled) { faults_enabled_.store(enabled); }

  /// Requests read from clients (a request counts once its headers are read).
  int64_t requests() const { return requests_.load(); }
  /// Requests forwarded without a fault. requests() == forwarded() +
  /// total_faults() once no request is in progress.
  int64_t forwarded() const { return forwarded_.load(); }
  int64_t faults(FaultKind kind) const { return faults_[static_cast<int>(kind)].load(); }
  int64_t total_faults() const;
  /// Forwarded requests that failed on the upstream side (cannot connect,
  /// bad or missing response): the client got a 502, or a closed connection
  /// if the response had begun. Included in forwarded().
  int64_t upstream_errors() const { return upstream_errors_.load(); }
  /// Requests held by the delay rule, counted once the hold has ended.
  int64_t delayed() const { return delayed_.load(); }
  /// Every request so far, in the order the proxy read them.
  std::vector<FaultProxyEvent> events() const;
  /// "requests=9 forwarded=6 internal_error=3 ...": for failure messages.
  std::string Summary() const;

  /// Stops listening, closes every client and upstream connection (also
  /// ending stalls at once) and waits for the connection threads. Idempotent.
  void Stop();

 private:
  struct Connection;
  using Reader = fault_proxy_internal::Reader;
  using HttpMessage = fault_proxy_internal::HttpMessage;

  explicit FaultProxy(FaultProxyOptions options);

  void AcceptLoop();
  /// Serves the requests of one client connection until it closes.
  void Serve(Connection* conn);
  /// Forwards one request whose headers were read and relays the response,
  /// injecting kCut or kStallMidBody if fault says so. Returns whether the
  /// client connection may serve another request.
  bool Forward(Connection* conn, Reader* client, const HttpMessage& request, bool keep_alive,
               std::optional<FaultKind> fault);
  /// Decides the fault for one request and counts it; nullopt: forward.
  std::optional<FaultKind> Decide(const std::string& method, const std::string& target);
  /// Waits until `duration` passed, the peer closed fd, or Stop().
  void Stall(int fd, std::chrono::milliseconds duration);
  /// Connects to the upstream with a socket registered in conn, so that
  /// Stop() can interrupt it.
  Result<int> ConnectUpstream(Connection* conn);
  void CloseUpstream(Connection* conn);

  const FaultProxyOptions options_;
  int port_ = 0;
  int listen_fd_ = -1;
  std::thread accept_thread_;

  std::atomic<bool> faults_enabled_{true};
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> forwarded_{0};
  std::atomic<int64_t> upstream_errors_{0};
  std::atomic<int64_t> delayed_{0};
  std::array<std::atomic<int64_t>, kFaultKindCount> faults_{};

  std::mutex stop_mu_;    // serialises Stop()
  bool stopped_ = false;  // guarded by stop_mu_

  mutable std::mutex mu_;
  std::condition_variable stop_cv_;               // notified when stopping_ is set
  bool stopping_ = false;                         // guarded by mu_
  std::list<std::unique_ptr<Connection>> conns_;  // guarded by mu_
  std::mt19937_64 rng_;                           // guarded by mu_
  int64_t random_faults_ = 0;                     // guarded by mu_
  std::vector<FaultProxyEvent> events_;           // guarded by mu_
};

}  // namespace sluice::testing
