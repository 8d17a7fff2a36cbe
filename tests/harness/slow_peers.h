// Peers that misbehave slowly, for tests of servers and clients that must
// bound their time:
//
// - SlowLorisClient connects to an HTTP server and sends a request head one
//   header line at a time, an interval apart, never finishing it, on a
//   thread of its own, and records when and how the server ended it.
// - SilentListener is a TCP listener on 127.0.0.1 whose connections the
//   kernel completes but nobody ever accepts or answers: a database or
//   HTTP server that hangs.
//
// Thread-safety: the const accessors and Stop() may be called from any
// thread while the client runs.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "sluice/status.h"

namespace sluice::testing {

class SlowLorisClient {
 public:
  /// Connects to host:port (an IPv4 address) and starts sending: the
  /// request line at once, then one header line every `interval`.
  static Result<std::unique_ptr<SlowLorisClient>> Start(int port, std::chrono::milliseconds interval,
                                                        const std::string& host = "127.0.0.1");

  /// Stops sending and closes the connection.
  ~SlowLorisClient();
  SlowLorisClient(const SlowLorisClient&) = delete;
  SlowLorisClient& operator=(const SlowLorisClient&) = delete;

  /// How long after connecting the server closed (or reset) the connection;
  /// nullopt while it is open.
  std::optional<std::chrono::milliseconds> closed_after() const;
  /// Everything the server sent.
  std::string received() const;
  /// Header lines sent after the request line.
  int lines_sent() const { return lines_sent_.load(); }
  /// Stops sending and closes the connection (the server sees it go away).
  /// Idempotent.
  void Stop();

 private:
  SlowLorisClient() = default;
  void Run(std::chrono::milliseconds interval);

  int fd_ = -1;
  std::chrono::steady_clock::time_point connected_at_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> lines_sent_{0};
  mutable std::mutex mu_;
  std::optional<std::chrono::milliseconds> closed_after_;  // guarded by mu_
  std::string received_;                                   // guarded by mu_
};

class SilentListener {
 public:
  /// Listens on 127.0.0.1 with a free port.
  static Result<std::unique_ptr<SilentListener>> Start();
  /// Closes the socket: connections not yet closed by their client are reset.
  ~SilentListener();
  SilentListener(const SilentListener&) = delete;
  SilentListener& operator=(const SilentListener&) = delete;

  int port() const { return port_; }

 private:
  SilentListener() = default;
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace sluice::testing
