// HttpDelivery: what the batch and CDC HTTP destinations share once their
// requests are cut: the options of their [destination] table, a window of
// requests in flight on one HttpClient, and what happens to a request the
// server refused or that used up its retries (a line in the dead-letter
// file, or the error that fails the load).
//
// A caller sends through a Group (its requests: a load, one WriteEvents
// call) and waits for the group; Send blocks while the window is full
// (backpressure: at most `window` bodies are held), or while the request's
// lane (a URL whose requests must arrive in order) has one in flight.
// Failures are handled on the caller's thread, in Send and Wait: the
// client's callbacks only record outcomes.
//
// Thread-safety: a Group is used by one thread; several groups may send at
// once from different threads. Interrupt and CancelInFlight may be called
// from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "destinations/http/http_requests.h"
#include "destinations/http/json_rows.h"
#include "io/http/http_client.h"
#include "sluice/config_table.h"
#include "sluice/status.h"

namespace sluice::destinations {

/// The keys of an HTTP destination's table (see the README).
struct HttpSendOptions {
  std::string url;  // CDC: may contain {table}
  std::string method = "POST";
  BodyFormat format = BodyFormat::kJson;
  DecimalFormat decimals = DecimalFormat::kNumber;
  /// Sent with every request; values may be secrets and are never logged.
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t max_rows = 500;
  int64_t max_bytes = 1000000;
  int concurrency = 8;
  std::chrono::milliseconds timeout{30000};
  std::string dead_letter;  // "" when not set
  io::HttpRetryPolicy retry{10, std::chrono::milliseconds(200), std::chrono::milliseconds(30000),
                            std::chrono::milliseconds(300000)};
  /// The pipeline's name, for idempotency keys.
  std::string pipeline;
};

/// Reads the table; `cdc`: the CDC destination's keys (no concurrency).
/// Value errors name the key and its line.
Result<HttpSendOptions> ReadHttpSendOptions(const ConfigTable& t, bool cdc);

/// "http POST http://host/ingest", without credentials.
std::string DescribeHttp(const HttpSendOptions& options);

struct OutgoingRequest {
  std::string url;
  std::string body;
  std::string idempotency_key;
  int64_t items = 0;  // rows or events
  /// Names the request in messages: "request 3", "events of 0/16B3748 from 0".
  std::string what;
  /// CDC: the source table whose events the request carries (0: several or none).
  uint32_t table_id = 0;
};

class HttpDelivery {
 public:
  /// `window`: requests in flight at most, over all groups.
  static Result<std::unique_ptr<HttpDelivery>> Make(HttpSendOptions options, int window);
  ~HttpDelivery();
  HttpDelivery(const HttpDelivery&) = delete;
  HttpDelivery& operator=(const HttpDelivery&) = delete;

  class Group {
   public:
    explicit Group(HttpDelivery* delivery);
    /// Waits for the group's requests still in flight (their outcome is
    /// dropped: call Wait to learn it).
    ~Group();
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;

    /// Sends `request` once the window (and its lane, when not empty) has
    /// room. Fails with the group's first error (a refused request without
    /// a dead-letter file, a dead-letter write that failed) or when
    /// interrupted; the request is then not sent.
    Status Send(OutgoingRequest request, const std::string& lane = "");
    /// Waits until every request of the group was accepted or handled,
    /// makes the dead-letter file durable if the group wrote to it, and
    /// returns the group's first error.
    Status Wait();
    /// Requests of the group the server accepted (2xx).
    int64_t accepted() const;
    /// After Wait or Send failed: the table_id of the request that caused
    /// the group's error (0 when none or not a request's).
    uint32_t error_table() const;

   private:
    struct State;
    /// Handles the failures recorded so far; `lock` (on the shared mutex)
    /// is released while a failure is written.
    void HandleFailures(std::unique_lock<std::mutex>& lock);
    HttpDelivery* delivery_;
    std::shared_ptr<State> state_;
  };

  /// Ends every request in flight (they fail as cancelled) and refuses new
  /// ones. Thread-safe.
  void Interrupt();
  /// Ends the requests in flight; later sends go ahead. Thread-safe.
  void CancelInFlight();

  /// Rows (or events) and requests written to the dead-letter file so far.
  int64_t dead_lettered_items() const;
  int64_t dead_lettered_requests() const;
  const HttpSendOptions& options() const { return options_; }

 private:
  struct Shared;
  struct Failure;
  class DeadLetterFile;
  explicit HttpDelivery(HttpSendOptions options, int window);
  /// A refused or failed request: dead-lettered (OK) or the error.
  Status Handle(const Failure& failure, bool* dead_lettered);

  HttpSendOptions options_;
  int window_;
  std::vector<std::string> header_lines_;
  std::shared_ptr<Shared> shared_;
  std::unique_ptr<DeadLetterFile> dead_letter_;
  // Last: destroyed first, so that its callbacks have run before the rest goes.
  std::unique_ptr<io::HttpClient> client_;
};

}  // namespace sluice::destinations
