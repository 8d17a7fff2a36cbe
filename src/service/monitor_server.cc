#include "service/monitor_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace sluice::service {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kJsonContentType = "application/json";
// After a "Connection: close" response the server stops sending and reads
// (and drops) what the client still sends for this long before it closes:
// closing with unread bytes would reset the connection and could destroy
// the response before the client read it.
constexpr milliseconds kLingerTime{1000};
// While accept() fails for lack of file descriptors, the listening socket
// is left alone this long instead of being polled in a busy loop.
constexpr milliseconds kAcceptPause{100};
constexpr size_t kReadChunk = 16 * 1024;

bool KnownPath(std::string_view path) {
  return path == "/health" || path == "/ready" || path == "/status" || path == "/metrics";
}

bool IEquals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

/// Whether a comma-separated header value (Connection) holds `token`.
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (IEquals(Trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

// Compares in time that depends on the lengths only, never on where the
// first difference is.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  const size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

const char* ReasonPhrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 413:
      return "Payload Too Large";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

struct Response {
  int status = 200;
  std::string content_type = kJsonContentType;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

Response Json(int status, const nlohmann::json& body) {
  // Paths echoed into errors may hold invalid UTF-8: replace it, never throw.
  return Response{status,
                  kJsonContentType,
                  body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  {}};
}

Response Error(int status, const std::string& message) {
  return Json(status, nlohmann::json{{"error", message}});
}

std::string Serialize(const Response& r, bool head_only, bool keep_alive) {
  std::string out = "HTTP/1.1 " + std::to_string(r.status) + " " + ReasonPhrase(r.status) + "\r\n";
  out += "Content-Type: " + r.content_type + "\r\n";
  out += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  for (const auto& [name, value] : r.headers) out += name + ": " + value + "\r\n";
  out += "Cache-Control: no-store\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  if (!head_only) out += r.body;
  return out;
}

/// What the server needs from a request head.
struct RequestHead {
  std::string method;
  std::string path;  // without the query
  bool keep_alive = false;
  std::optional<std::string> authorization;
  uint64_t content_length = 0;
  bool chunked = false;  // a Transfer-Encoding body: not read, the connection closes after the answer
};

/// Where the head in `buf` ends (the index after its empty line), or npos
/// while it is incomplete. Lines end in CRLF or a bare LF.
size_t FindHeadEnd(std::string_view buf) {
  size_t line_start = 0;
  for (size_t nl = buf.find('\n'); nl != std::string_view::npos; nl = buf.find('\n', line_start)) {
    size_t len = nl - line_start;
    if (len == 0 || (len == 1 && buf[line_start] == '\r')) return nl + 1;
    line_start = nl + 1;
  }
  return std::string_view::npos;
}

/// Parses a complete head (request line and header lines, ending in the
/// empty line). nullopt: malformed.
std::optional<RequestHead> ParseHead(std::string_view head) {
  std::vector<std::string_view> lines;
  while (!head.empty()) {
    size_t nl = head.find('\n');
    std::string_view line = head.substr(0, nl);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    lines.push_back(line);
    if (nl == std::string_view::npos) break;
    head.remove_prefix(nl + 1);
  }
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (lines.empty()) return std::nullopt;

  RequestHead req;
  std::string_view request_line = lines[0];
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp1 == 0 || sp2 == sp1) return std::nullopt;
  req.method = std::string(request_line.substr(0, sp1));
  std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  std::string_view version = request_line.substr(sp2 + 1);
  if (target.empty() || target.find(' ') != std::string_view::npos) return std::nullopt;
  if (!std::all_of(req.method.begin(), req.method.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
    return std::nullopt;
  bool http11 = version == "HTTP/1.1";
  if (!http11 && version != "HTTP/1.0") return std::nullopt;
  req.path = std::string(target.substr(0, target.find_first_of("?#")));

  std::optional<std::string_view> connection;
  bool has_length = false;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    size_t colon = line.find(':');
    // No colon, an empty name, a name with blanks, or a folded line (which
    // starts with a blank): malformed.
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    std::string_view name = line.substr(0, colon);
    if (name.find_first_of(" \t") != std::string_view::npos) return std::nullopt;
    std::string_view value = Trim(line.substr(colon + 1));
    if (IEquals(name, "Authorization")) {
      if (!req.authorization) req.authorization = std::string(value);
    } else if (IEquals(name, "Connection")) {
      connection = value;
    } else if (IEquals(name, "Transfer-Encoding")) {
      req.chunked = true;
    } else if (IEquals(name, "Content-Length")) {
      if (value.empty() || value.size() > 18 ||
          !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return std::nullopt;
      uint64_t n = std::stoull(std::string(value));
      if (has_length && n != req.content_length) return std::nullopt;
      has_length = true;
      req.content_length = n;
    }
  }
  // Both framings at once is how requests are smuggled past proxies.
  if (has_length && req.chunked) return std::nullopt;
  req.keep_alive = http11 ? !(connection && HasToken(*connection, "close"))
                          : connection && HasToken(*connection, "keep-alive");
  if (req.chunked) req.keep_alive = false;
  return req;
}

/// The readiness checks and their last result, shared by the server and its
/// checker thread. Shared ownership lets Stop() abandon a check that does not
/// return: the detached thread keeps this (and the check) alive.
struct ReadinessState {
  struct Outcome {
    bool ready = false;
    std::string detail;
    Clock::time_point at;  // when the check returned
  };

  explicit ReadinessState(std::function<bool(std::string*)> c) : check(std::move(c)) {}

  const std::function<bool(std::string*)> check;
  std::mutex mu;
  std::condition_variable wake;     // a check was requested, or stopping
  std::condition_variable exited;   // the checker thread is done
  bool requested = false;           // guarded by mu
  bool stopping = false;            // guarded by mu
  bool thread_done = false;         // guarded by mu
  bool running = false;             // guarded by mu
  Clock::time_point running_since;  // guarded by mu
  std::optional<Outcome> last;      // guarded by mu
  uint64_t completed = 0;           // guarded by mu; checks that returned so far
  std::function<void()> on_done;    // guarded by mu; wakes the event loop, cleared by Stop()

  /// Starts a check unless one is running or about to; returns the value
  /// of `completed` once that check has returned.
  uint64_t Request() {
    std::lock_guard<std::mutex> lock(mu);
    if (!running && !requested) {
      requested = true;
      wake.notify_one();
    }
    return completed + 1;
  }
};

void RunReadinessChecks(std::shared_ptr<ReadinessState> s) {
  std::unique_lock<std::mutex> lock(s->mu);
  while (true) {
    s->wake.wait(lock, [&] { return s->requested || s->stopping; });
    if (s->stopping) break;
    s->requested = false;
    s->running = true;
    s->running_since = Clock::now();
    lock.unlock();
    std::string detail;
    bool ready = false;
    try {
      ready = s->check(&detail);
    } catch (const std::exception& e) {
      detail = std::string("readiness check failed: ") + e.what();
    } catch (...) {
      detail = "readiness check failed";
    }
    lock.lock();
    s->running = false;
    s->last = ReadinessState::Outcome{ready, std::move(detail), Clock::now()};
    ++s->completed;
    if (s->on_done) s->on_done();
  }
  s->thread_done = true;
  s->exited.notify_all();
}

int64_t MillisBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<milliseconds>(to - from).count();
}

std::string Seconds(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(ms) / 1000.0);
  return buf;
}

/// The /ready answer from what the checks know at `now`.
Response ReadyResponse(ReadinessState& s, Clock::time_point now, milliseconds timeout) {
  std::lock_guard<std::mutex> lock(s.mu);
  nlohmann::json body;
  if (s.running && now - s.running_since >= timeout) {
    std::string detail =
        "readiness check has not answered for " + Seconds(MillisBetween(s.running_since, now));
    if (s.last) {
      detail += "; the previous one, " + Seconds(MillisBetween(s.last->at, now)) + " ago, said " +
                (s.last->ready ? std::string("ready") : "not ready: " + s.last->detail);
    }
    body = {{"ready", false},
            {"detail", detail},
            {"checked_ms_ago", s.last ? nlohmann::json(MillisBetween(s.last->at, now)) : nlohmann::json()}};
    return Json(503, body);
  }
  if (!s.last) {
    body = {{"ready", false},
            {"detail", "not known yet: the first readiness check is still running"},
            {"checked_ms_ago", nullptr}};
    return Json(503, body);
  }
  body = {{"ready", s.last->ready}, {"checked_ms_ago", MillisBetween(s.last->at, now)}};
  if (!s.last->detail.empty()) body["detail"] = s.last->detail;
  return Json(s.last->ready ? 200 : 503, body);
}

/// Closes a file descriptor unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

}  // namespace

std::string ListenAddress::ToString() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return h + ":" + std::to_string(port);
}

Result<ListenAddress> ParseListenAddress(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("listen address \"" + std::string(text) + "\": " + why);
  };
  ListenAddress out;
  std::string_view port;
  if (!text.empty() && text.front() == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after the IPv6 address");
    out.host = std::string(text.substr(1, close - 1));
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("expected \":port\" after ']'");
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos) return bad("expected host:port, e.g. 127.0.0.1:9187");
    out.host = std::string(text.substr(0, colon));
    if (out.host.find(':') != std::string::npos)
      return bad("write IPv6 addresses in brackets, e.g. [::1]:9187");
    port = text.substr(colon + 1);
  }
  if (out.host.empty()) return bad("missing host (use 0.0.0.0 to listen on every interface)");
  if (port.empty() || port.size() > 5 ||
      !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return bad("port must be a number from 0 to 65535");
  }
  out.port = std::stoi(std::string(port));
  if (out.port > 65535) return bad("port must be a number from 0 to 65535");
  return out;
}

bool IsLoopbackHost(std::string_view host) {
  if (IEquals(host, "localhost")) return true;
  std::string h(host);
  in_addr v4{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    if (IN6_IS_ADDR_LOOPBACK(&v6)) return true;
    return IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127;
  }
  return false;
}

struct MonitorServer::Impl {
  enum class Phase {
    kHead,       // reading a request head
    kBody,       // dropping a request body
    kHandler,    // a pool thread is making the response
    kReadyWait,  // waiting for a readiness check
    kWrite,      // sending the response
    kLinger,     // response sent, closing: dropping what the client still sends
  };

  struct Connection {
    uint64_t id = 0;
    int fd = -1;
    Phase phase = Phase::kHead;
    Clock::time_point since;     // when it began waiting for the current request
    Clock::time_point deadline;  // of the current phase; max(): none
    std::string in;              // received, not yet parsed
    std::string out;             // the response, from out_offset on not sent yet
    size_t out_offset = 0;
    uint64_t body_left = 0;
    bool keep_alive = false;
    bool head_only = false;
    uint64_t ready_generation = 0;  // kReadyWait: answer once this many checks returned
    RequestHead request;            // kBody: the request whose body is being dropped
  };

  enum class Endpoint { kStatus, kMetrics };
  struct Job {
    uint64_t conn_id;
    Endpoint endpoint;
  };
  struct Done {
    uint64_t conn_id;
    Response response;
  };

  MonitorOptions options;
  MonitorHandlers handlers;
  ListenAddress bound;
  int listen_fd = -1;
  int wake_fd = -1;  // eventfd: wakes the loop for Stop(), pool results and readiness results
  std::atomic<bool> stopping{false};
  std::thread loop_thread;

  std::shared_ptr<ReadinessState> readiness;  // null without a ready handler
  std::thread checker_thread;

  std::mutex pool_mu;
  std::condition_variable pool_cv;
  std::deque<Job> jobs;        // guarded by pool_mu
  std::vector<Done> done;      // guarded by pool_mu
  bool pool_stopping = false;  // guarded by pool_mu
  std::vector<std::thread> pool;

  std::mutex stop_mu;
  bool stopped = false;  // guarded by stop_mu

  // Owned by the loop thread.
  std::map<uint64_t, std::unique_ptr<Connection>> conns;
  uint64_t next_id = 1;
  Clock::time_point accept_paused_until{};

  ~Impl() {
    if (listen_fd >= 0) ::close(listen_fd);
    if (wake_fd >= 0) ::close(wake_fd);
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t n = ::write(wake_fd, &one, sizeof(one));
    (void)n;  // a full counter wakes the loop all the same
  }

  // --- pool ----------------------------------------------------------------

  void PoolThread() {
    std::unique_lock<std::mutex> lock(pool_mu);
    while (true) {
      pool_cv.wait(lock, [&] { return pool_stopping || !jobs.empty(); });
      if (pool_stopping) return;
      Job job = jobs.front();
      jobs.pop_front();
      lock.unlock();
      Response response;
      try {
        if (job.endpoint == Endpoint::kStatus) {
          response = Response{200, kJsonContentType, handlers.status_json(), {}};
        } else {
          response = Response{200, kMetricsContentType, handlers.metrics_text(), {}};
        }
      } catch (const std::exception& e) {
        response = Error(500, std::string("internal error: ") + e.what());
      } catch (...) {
        response = Error(500, "internal error");
      }
      lock.lock();
      done.push_back(Done{job.conn_id, std::move(response)});
      Wake();
    }
  }

  // --- the event loop ------------------------------------------------------

  void Loop() {
    std::vector<pollfd> fds;
    std::vector<uint64_t> ids;  // ids[i] is the connection of fds[i + 2]
    while (!stopping.load()) {
      Clock::time_point now = Clock::now();
      fds.clear();
      ids.clear();
      fds.push_back(pollfd{wake_fd, POLLIN, 0});
      bool accepting = now >= accept_paused_until;
      fds.push_back(pollfd{accepting ? listen_fd : -1, POLLIN, 0});
      Clock::time_point next = accepting ? now + milliseconds(1000) : accept_paused_until;
      for (const auto& [id, c] : conns) {
        short events = 0;
        if (c->phase == Phase::kHead || c->phase == Phase::kBody || c->phase == Phase::kLinger)
          events = POLLIN;
        if (c->phase == Phase::kWrite) events = POLLOUT;
        fds.push_back(pollfd{c->fd, events, 0});
        ids.push_back(id);
        next = std::min(next, c->deadline);
      }
      auto wait = std::chrono::ceil<milliseconds>(next - now).count();
      int n = ::poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(wait, 0, 1000)));
      if (n < 0 && errno != EINTR) std::this_thread::sleep_for(milliseconds(10));
      if (stopping.load()) break;
      if (n > 0) {
        if (fds[0].revents != 0) {
          uint64_t count;
          ssize_t r = ::read(wake_fd, &count, sizeof(count));
          (void)r;
          TakeHandlerResults();
          AnswerFinishedReadyWaits();
        }
        if (fds[1].revents != 0) Accept();
        for (size_t i = 0; i < ids.size(); ++i) {
          short revents = fds[i + 2].revents;
          if (revents == 0) continue;
          Connection* c = Find(ids[i]);
          if (c == nullptr) continue;  // closed meanwhile
          if (c->phase == Phase::kWrite) {
            TryWrite(c);
          } else if (c->phase == Phase::kHandler || c->phase == Phase::kReadyWait) {
            if (revents & (POLLHUP | POLLERR | POLLNVAL)) Close(c);  // gone while we prepared the answer
          } else {
            OnReadable(c);
          }
        }
      }
      ExpireDeadlines(Clock::now());
    }
    for (auto& [id, c] : conns) ::close(c->fd);
    conns.clear();
  }

  Connection* Find(uint64_t id) {
    auto it = conns.find(id);
    return it == conns.end() ? nullptr : it->second.get();
  }

  void Close(Connection* c) {
    ::close(c->fd);
    conns.erase(c->id);
  }

  void Accept() {
    while (true) {
      int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
          accept_paused_until = Clock::now() + kAcceptPause;
        return;  // EAGAIN: none left; other errors concern that one connection only
      }
      if (conns.size() >= static_cast<size_t>(options.max_connections) && !MakeRoom()) {
        // Every connection is being answered: refuse this one, best effort.
        std::string refusal = Serialize(Error(503, "too many connections"), false, false);
        ssize_t n = ::send(fd, refusal.data(), refusal.size(), MSG_NOSIGNAL);
        (void)n;
        ::close(fd);
        continue;
      }
      auto c = std::make_unique<Connection>();
      c->id = next_id++;
      c->fd = fd;
      StartRequest(c.get(), Clock::now());
      conns.emplace(c->id, std::move(c));
    }
  }

  /// Closes the connection that matters least: one that is closing, else
  /// the one that has waited longest for its request head. False if every
  /// connection is being answered.
  bool MakeRoom() {
    Connection* victim = nullptr;
    for (auto& [id, c] : conns) {
      if (c->phase == Phase::kLinger) {
        victim = c.get();
        break;
      }
      if ((c->phase == Phase::kHead || c->phase == Phase::kBody) && (!victim || c->since < victim->since))
        victim = c.get();
    }
    if (victim == nullptr) return false;
    Close(victim);
    return true;
  }

  void StartRequest(Connection* c, Clock::time_point now) {
    c->phase = Phase::kHead;
    c->since = now;
    c->deadline = now + options.head_timeout;
    c->out.clear();
    c->out_offset = 0;
    c->body_left = 0;
    c->keep_alive = false;
    c->head_only = false;
  }

  void OnReadable(Connection* c) {
    char buf[kReadChunk];
    ssize_t n = ::recv(c->fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    if (n <= 0) return Close(c);  // the client left (or the connection broke)
    if (c->phase == Phase::kLinger) return;
    if (c->phase == Phase::kBody) {
      uint64_t take = std::min<uint64_t>(c->body_left, static_cast<uint64_t>(n));
      c->body_left -= take;
      c->in.append(buf + take, static_cast<size_t>(n) - take);  // a pipelined next request
      if (c->body_left == 0) FinishRequest(c);
      return;
    }
    c->in.append(buf, static_cast<size_t>(n));
    ParseRequest(c);
  }

  /// kHead: parses the head if it is complete and dispatches the request.
  void ParseRequest(Connection* c) {
    // Empty lines before a request line are allowed (RFC 9112, 2.2).
    c->in.erase(0, std::min(c->in.find_first_not_of("\r\n"), c->in.size()));
    size_t end = FindHeadEnd(c->in);
    if (end == std::string::npos) {
      if (c->in.size() > options.max_head_bytes) RespondAndClose(c, 431, "request head too large");
      return;
    }
    if (end > options.max_head_bytes) return RespondAndClose(c, 431, "request head too large");
    std::optional<RequestHead> req = ParseHead(std::string_view(c->in).substr(0, end));
    if (!req) return RespondAndClose(c, 400, "malformed request");
    c->in.erase(0, end);
    if (req->content_length > options.max_body_bytes)
      return RespondAndClose(c, 413, "request body too large");
    c->keep_alive = req->keep_alive;
    c->head_only = req->method == "HEAD";
    c->request = std::move(*req);
    c->body_left = c->request.content_length;
    uint64_t take = std::min<uint64_t>(c->body_left, c->in.size());
    c->in.erase(0, static_cast<size_t>(take));
    c->body_left -= take;
    if (c->body_left > 0) {
      c->phase = Phase::kBody;  // same deadline: the whole request must arrive in time
      return;
    }
    FinishRequest(c);
  }

  void FinishRequest(Connection* c) {
    RequestHead req = std::move(c->request);
    Dispatch(c, req);
  }

  bool Authorized(const RequestHead& req) const {
    if (options.token.empty()) return true;
    if (!req.authorization) return false;
    const std::string& header = *req.authorization;
    constexpr std::string_view kScheme = "bearer ";
    if (header.size() < kScheme.size() ||
        !IEquals(std::string_view(header).substr(0, kScheme.size()), kScheme))
      return false;
    std::string_view presented = std::string_view(header).substr(kScheme.size());
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
    return ConstantTimeEquals(presented, options.token);
  }

  void Dispatch(Connection* c, const RequestHead& req) {
    if (!Authorized(req)) {
      Response r = Error(401, "unauthorized: send Authorization: Bearer <token>");
      r.headers.emplace_back("WWW-Authenticate", "Bearer");
      return Respond(c, std::move(r));
    }
    if (req.method != "GET" && req.method != "HEAD") {
      if (!KnownPath(req.path)) return Respond(c, Error(404, "not found: " + req.path));
      Response r = Error(405, "method " + req.method + " not allowed: use GET");
      r.headers.emplace_back("Allow", "GET, HEAD");
      return Respond(c, std::move(r));
    }
    if (req.path == "/health") return Respond(c, Json(200, nlohmann::json{{"status", "ok"}}));
    if (req.path == "/ready") {
      if (!readiness) return Respond(c, Json(200, nlohmann::json{{"ready", true}}));
      c->ready_generation = readiness->Request();
      c->phase = Phase::kReadyWait;
      c->deadline = Clock::now() + options.ready_wait;
      return;
    }
    if ((req.path == "/status" && handlers.status_json) ||
        (req.path == "/metrics" && handlers.metrics_text)) {
      c->phase = Phase::kHandler;
      c->deadline = Clock::time_point::max();
      {
        std::lock_guard<std::mutex> lock(pool_mu);
        jobs.push_back(Job{c->id, req.path == "/status" ? Endpoint::kStatus : Endpoint::kMetrics});
      }
      pool_cv.notify_one();
      return;
    }
    Respond(c, Error(404, "not found: " + req.path));
  }

  void RespondAndClose(Connection* c, int status, const std::string& message) {
    c->keep_alive = false;
    c->head_only = false;
    Respond(c, Error(status, message));
  }

  void Respond(Connection* c, Response r) {
    c->out = Serialize(r, c->head_only, c->keep_alive);
    c->out_offset = 0;
    c->phase = Phase::kWrite;
    c->deadline = Clock::now() + options.write_timeout;
    TryWrite(c);
  }

  void TryWrite(Connection* c) {
    while (c->out_offset < c->out.size()) {
      ssize_t n = ::send(c->fd, c->out.data() + c->out_offset, c->out.size() - c->out_offset, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;  // POLLOUT resumes
      if (n <= 0) return Close(c);
      c->out_offset += static_cast<size_t>(n);
    }
    Clock::time_point now = Clock::now();
    if (c->keep_alive) {
      StartRequest(c, now);
      if (!c->in.empty()) ParseRequest(c);  // a pipelined request already arrived
      return;
    }
    ::shutdown(c->fd, SHUT_WR);
    c->phase = Phase::kLinger;
    c->in.clear();
    c->deadline = now + kLingerTime;
  }

  void TakeHandlerResults() {
    std::vector<Done> results;
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      results.swap(done);
    }
    for (Done& d : results) {
      Connection* c = Find(d.conn_id);
      if (c != nullptr && c->phase == Phase::kHandler) Respond(c, std::move(d.response));
    }
  }

  void AnswerFinishedReadyWaits() {
    if (!readiness) return;
    uint64_t completed;
    {
      std::lock_guard<std::mutex> lock(readiness->mu);
      completed = readiness->completed;
    }
    std::vector<Connection*> answer;
    for (auto& [id, c] : conns) {
      if (c->phase == Phase::kReadyWait && completed >= c->ready_generation) answer.push_back(c.get());
    }
    Clock::time_point now = Clock::now();
    for (Connection* c : answer) Respond(c, ReadyResponse(*readiness, now, options.ready_timeout));
  }

  void ExpireDeadlines(Clock::time_point now) {
    std::vector<uint64_t> expired;
    for (auto& [id, c] : conns) {
      if (c->deadline <= now) expired.push_back(id);
    }
    for (uint64_t id : expired) {
      Connection* c = Find(id);
      if (c == nullptr) continue;
      switch (c->phase) {
        case Phase::kHead:
          // Idle (nothing of a request yet, e.g. a kept-alive connection):
          // close quietly; a request begun too slowly gets 408.
          if (c->in.empty()) {
            Close(c);
          } else {
            RespondAndClose(c, 408,
                            "request head not received within " + Seconds(options.head_timeout.count()));
          }
          break;
        case Phase::kBody:
          RespondAndClose(c, 408, "request not received within " + Seconds(options.head_timeout.count()));
          break;
        case Phase::kReadyWait:
          Respond(c, ReadyResponse(*readiness, now, options.ready_timeout));
          break;
        case Phase::kHandler:
          break;
        case Phase::kWrite:
        case Phase::kLinger:
          Close(c);
          break;
      }
    }
  }
};

MonitorServer::MonitorServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

MonitorServer::~MonitorServer() { Stop(); }

int MonitorServer::port() const { return impl_->bound.port; }

std::string MonitorServer::address() const { return impl_->bound.ToString(); }

Result<std::unique_ptr<MonitorServer>> MonitorServer::Start(const MonitorOptions& options,
                                                            MonitorHandlers handlers) {
  SLUICE_ASSIGN_OR_RETURN(ListenAddress address, ParseListenAddress(options.listen));
  if (options.threads < 1) return Status::InvalidArgument("monitoring server: threads must be at least 1");
  if (options.max_connections < 1)
    return Status::InvalidArgument("monitoring server: max_connections must be at least 1");

  auto cannot = [&](const std::string& why) {
    return Status::IoError("monitoring server: cannot listen on " + address.ToString() + ": " + why);
  };
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  std::string port_text = std::to_string(address.port);
  int gai = ::getaddrinfo(address.host.c_str(), port_text.c_str(), &hints, &found);
  if (gai != 0) return cannot(gai == EAI_SYSTEM ? std::strerror(errno) : ::gai_strerror(gai));
  int err = 0;
  FdGuard listen_fd(-1);
  for (addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
    FdGuard fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (fd.get() < 0) {
      err = errno;
      continue;
    }
    // SO_REUSEADDR permits rebinding over connections in TIME_WAIT after a
    // restart; unlike SO_REUSEPORT it does not let a second process share
    // the port.
    int yes = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), 128) != 0) {
      err = errno;
      continue;
    }
    listen_fd.reset(fd.release());
    break;
  }
  ::freeaddrinfo(found);
  if (listen_fd.get() < 0) return cannot(std::strerror(err != 0 ? err : EADDRNOTAVAIL));

  sockaddr_storage local{};
  socklen_t local_len = sizeof(local);
  if (::getsockname(listen_fd.get(), reinterpret_cast<sockaddr*>(&local), &local_len) != 0)
    return cannot(std::strerror(errno));
  int port = local.ss_family == AF_INET6 ? ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port)
                                         : ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
  int wake_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd < 0) return cannot(std::string("eventfd: ") + std::strerror(errno));

  auto impl = std::make_unique<Impl>();
  Impl* self = impl.get();
  impl->options = options;
  impl->bound = ListenAddress{address.host, port};
  impl->listen_fd = listen_fd.release();
  impl->wake_fd = wake_fd;
  if (handlers.ready) {
    impl->readiness = std::make_shared<ReadinessState>(std::move(handlers.ready));
    impl->readiness->on_done = [self] { self->Wake(); };
  }
  impl->handlers = std::move(handlers);
  if (impl->readiness) impl->checker_thread = std::thread(RunReadinessChecks, impl->readiness);
  for (int i = 0; i < options.threads; ++i) impl->pool.emplace_back([self] { self->PoolThread(); });
  impl->loop_thread = std::thread([self] { self->Loop(); });
  return std::unique_ptr<MonitorServer>(new MonitorServer(std::move(impl)));
}

void MonitorServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  Impl& s = *impl_;
  s.stopping.store(true);
  s.Wake();
  if (s.loop_thread.joinable()) s.loop_thread.join();
  ::close(s.listen_fd);
  s.listen_fd = -1;
  {
    std::lock_guard<std::mutex> pool_lock(s.pool_mu);
    s.pool_stopping = true;
  }
  s.pool_cv.notify_all();
  for (std::thread& t : s.pool) t.join();
  s.pool.clear();
  if (s.readiness) {
    std::unique_lock<std::mutex> ready_lock(s.readiness->mu);
    s.readiness->stopping = true;
    s.readiness->on_done = nullptr;  // the loop and its eventfd are going away
    s.readiness->wake.notify_all();
    bool done = s.readiness->exited.wait_for(ready_lock, s.options.stop_grace,
                                             [&] { return s.readiness->thread_done; });
    ready_lock.unlock();
    // A check that does not return in time is abandoned: the thread owns
    // its share of the state and the check, and ends when the check does.
    if (done) {
      s.checker_thread.join();
    } else {
      s.checker_thread.detach();
    }
  }
}

}  // namespace sluice::service
