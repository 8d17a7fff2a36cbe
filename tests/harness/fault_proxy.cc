#include "harness/fault_proxy.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <sstream>
#include <string_view>
#include <utility>

namespace sluice::testing {

namespace fault_proxy_internal {

constexpr size_t kMaxHeadBytes = 64 * 1024;
constexpr size_t kIoChunk = 64 * 1024;

/// Receives a body piece by piece.
using Sink = std::function<Status(std::string_view)>;

std::string ErrnoText(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

/// Whether the comma-separated list value contains token (case-insensitive).
bool HasToken(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    if (EqualsIgnoreCase(Trim(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

struct HttpMessage {
  // Request line.
  std::string method;
  std::string target;
  // Status line.
  int status = 0;
  std::string reason;
  // Both.
  std::string version;
  std::vector<std::pair<std::string, std::string>> headers;

  const std::string* Find(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (EqualsIgnoreCase(n, name)) return &v;
    }
    return nullptr;
  }
};

/// How the body of a message is delimited.
struct Framing {
  enum class Kind { kNone, kLength, kChunked, kUntilClose };
  Kind kind = Kind::kNone;
  uint64_t length = 0;
};

Status WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::Unavailable(ErrnoText("send"));
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::OK();
}

/// Buffered reading of HTTP messages from a socket.
class Reader {
 public:
  explicit Reader(int fd) : fd_(fd) {}

  /// Reads up to and including the empty line after the headers. *eof is
  /// set if the peer closed the connection before sending a byte.
  Status ReadHead(std::string* head, bool* eof) {
    *eof = false;
    size_t searched = 0;
    while (true) {
      std::string_view data = Buffered();
      size_t end = data.find("\r\n\r\n", searched);
      if (end != std::string_view::npos) {
        head->assign(data.substr(0, end + 4));
        pos_ += end + 4;
        return Status::OK();
      }
      if (data.size() > kMaxHeadBytes) return Status::DataError("HTTP headers longer than 64 KiB");
      searched = data.size() < 3 ? 0 : data.size() - 3;
      bool closed = false;
      SLUICE_RETURN_IF_ERROR(Fill(&closed));
      if (closed) {
        if (Buffered().empty()) {
          *eof = true;
          return Status::OK();
        }
        return Status::Unavailable("connection closed in the middle of HTTP headers");
      }
    }
  }

  /// Reads one CRLF-terminated line, without the CRLF.
  Status ReadLine(std::string* line) {
    while (true) {
      std::string_view data = Buffered();
      size_t end = data.find("\r\n");
      if (end != std::string_view::npos) {
        line->assign(data.substr(0, end));
        pos_ += end + 2;
        return Status::OK();
      }
      if (data.size() > kMaxHeadBytes) return Status::DataError("HTTP line longer than 64 KiB");
      bool closed = false;
      SLUICE_RETURN_IF_ERROR(Fill(&closed));
      if (closed) return Status::Unavailable("connection closed in the middle of a line");
    }
  }

  /// Reads exactly n bytes and hands them to sink.
  Status ReadBytes(uint64_t n, const Sink& sink) {
    while (n > 0) {
      if (Buffered().empty()) {
        bool closed = false;
        SLUICE_RETURN_IF_ERROR(Fill(&closed));
        if (closed)
          return Status::Unavailable("connection closed with " + std::to_string(n) +
                                     " bytes of body missing");
      }
      std::string_view data = Buffered();
      size_t take = static_cast<size_t>(std::min<uint64_t>(n, data.size()));
      pos_ += take;
      n -= take;
      SLUICE_RETURN_IF_ERROR(sink(data.substr(0, take)));
    }
    return Status::OK();
  }

  /// Reads until the peer closes the connection.
  Status ReadToEof(const Sink& sink) {
    while (true) {
      std::string_view data = Buffered();
      pos_ += data.size();
      if (!data.empty()) SLUICE_RETURN_IF_ERROR(sink(data));
      bool closed = false;
      SLUICE_RETURN_IF_ERROR(Fill(&closed));
      if (closed) return Status::OK();
    }
  }

  Status ReadBody(const Framing& framing, const Sink& sink) {
    switch (framing.kind) {
      case Framing::Kind::kNone:
        return Status::OK();
      case Framing::Kind::kLength:
        return ReadBytes(framing.length, sink);
      case Framing::Kind::kUntilClose:
        return ReadToEof(sink);
      case Framing::Kind::kChunked:
        break;
    }
    std::string line;
    while (true) {
      SLUICE_RETURN_IF_ERROR(ReadLine(&line));
      std::string_view size_text = Trim(std::string_view(line).substr(0, line.find(';')));
      uint64_t size = 0;
      auto [end, ec] = std::from_chars(size_text.data(), size_text.data() + size_text.size(), size, 16);
      if (ec != std::errc() || end != size_text.data() + size_text.size() || size_text.empty()) {
        return Status::DataError("bad chunk size line '" + line + "'");
      }
      if (size == 0) break;
      SLUICE_RETURN_IF_ERROR(ReadBytes(size, sink));
      SLUICE_RETURN_IF_ERROR(ReadLine(&line));
      if (!line.empty()) return Status::DataError("chunk not followed by CRLF");
    }
    do {  // trailer fields, ignored
      SLUICE_RETURN_IF_ERROR(ReadLine(&line));
    } while (!line.empty());
    return Status::OK();
  }

 private:
  std::string_view Buffered() const { return std::string_view(buf_).substr(pos_); }

  Status Fill(bool* closed) {
    if (pos_ > 0 && pos_ >= buf_.size() / 2) {
      buf_.erase(0, pos_);
      pos_ = 0;
    }
    size_t old_size = buf_.size();
    buf_.resize(old_size + kIoChunk);
    while (true) {
      ssize_t n = recv(fd_, buf_.data() + old_size, kIoChunk, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        int e = errno;
        buf_.resize(old_size);
        if (e == EAGAIN || e == EWOULDBLOCK) return Status::Unavailable("timed out waiting for data");
        errno = e;
        return Status::Unavailable(ErrnoText("recv"));
      }
      buf_.resize(old_size + static_cast<size_t>(n));
      *closed = n == 0;
      return Status::OK();
    }
  }

  int fd_;
  std::string buf_;
  size_t pos_ = 0;
};

/// Splits a head into its start line and header fields.
Status ParseHead(const std::string& head, std::string* start_line, HttpMessage* message) {
  std::string_view rest(head);
  size_t eol = rest.find("\r\n");
  *start_line = std::string(rest.substr(0, eol));
  rest.remove_prefix(eol + 2);
  while (!rest.empty()) {
    eol = rest.find("\r\n");
    std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 2);
    if (line.empty()) break;
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Status::DataError("bad HTTP header line '" + std::string(line) + "'");
    }
    message->headers.emplace_back(std::string(line.substr(0, colon)),
                                  std::string(Trim(line.substr(colon + 1))));
  }
  return Status::OK();
}

Result<HttpMessage> ParseRequest(const std::string& head) {
  HttpMessage request;
  std::string line;
  SLUICE_RETURN_IF_ERROR(ParseHead(head, &line, &request));
  std::istringstream words(line);
  std::string extra;
  if (!(words >> request.method >> request.target >> request.version) || (words >> extra) ||
      request.version.rfind("HTTP/1.", 0) != 0) {
    return Status::DataError("bad HTTP request line '" + line + "'");
  }
  return request;
}

Result<HttpMessage> ParseResponse(const std::string& head) {
  HttpMessage response;
  std::string line;
  SLUICE_RETURN_IF_ERROR(ParseHead(head, &line, &response));
  // HTTP/1.1 200 OK; the reason may be empty or contain spaces.
  size_t sp1 = line.find(' ');
  std::string_view code = sp1 == std::string::npos ? "" : std::string_view(line).substr(sp1 + 1, 3);
  auto [end, ec] = std::from_chars(code.data(), code.data() + code.size(), response.status);
  if (line.rfind("HTTP/1.", 0) != 0 || code.size() != 3 || ec != std::errc() ||
      end != code.data() + code.size()) {
    return Status::DataError("bad HTTP status line '" + line + "'");
  }
  response.version = line.substr(0, sp1);
  response.reason = sp1 + 4 < line.size() ? line.substr(sp1 + 5) : "";
  return response;
}

Result<Framing> BodyFraming(const HttpMessage& message, bool is_response) {
  Framing framing;
  if (const std::string* te = message.Find("Transfer-Encoding")) {
    // chunked must be the last coding; the proxy supports no others.
    if (!EqualsIgnoreCase(Trim(*te), "chunked")) {
      return Status::DataError("unsupported Transfer-Encoding '" + *te + "'");
    }
    framing.kind = Framing::Kind::kChunked;
  } else if (const std::string* cl = message.Find("Content-Length")) {
    std::string_view text = Trim(*cl);
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), framing.length);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty()) {
      return Status::DataError("bad Content-Length '" + *cl + "'");
    }
    framing.kind = framing.length == 0 ? Framing::Kind::kNone : Framing::Kind::kLength;
  } else if (is_response) {
    framing.kind = Framing::Kind::kUntilClose;
  }
  return framing;
}

/// Whether the header belongs to one connection rather than to the message:
/// those are never copied from one side of the proxy to the other. Length
/// headers are left out too; the proxy writes its own.
bool IsHopByHop(const HttpMessage& message, const std::string& name) {
  static constexpr std::string_view kNames[] = {"Connection", "Keep-Alive", "Proxy-Connection",
                                                "TE",         "Trailer",    "Transfer-Encoding",
                                                "Upgrade",    "Expect",     "Content-Length"};
  for (std::string_view n : kNames) {
    if (EqualsIgnoreCase(n, name)) return true;
  }
  const std::string* connection = message.Find("Connection");
  return connection != nullptr && HasToken(*connection, name);
}

std::string CopyHeaders(const HttpMessage& message) {
  std::string out;
  for (const auto& [name, value] : message.headers) {
    if (!IsHopByHop(message, name)) out += name + ": " + value + "\r\n";
  }
  return out;
}

std::string XmlEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// A complete S3-style error response.
std::string ErrorResponse(int status, std::string_view reason, std::string_view code,
                          std::string_view message, const HttpMessage& request, int64_t request_id,
                          bool keep_alive, const std::string& extra_headers = "") {
  std::string resource = request.target.substr(0, request.target.find('?'));
  std::string id = "sluice-fault-proxy-" + std::to_string(request_id);
  std::string body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + std::string(code) +
                     "</Code><Message>" + XmlEscape(message) + "</Message><Resource>" + XmlEscape(resource) +
                     "</Resource><RequestId>" + id + "</RequestId></Error>";
  bool head_only = request.method == "HEAD";
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += "Content-Type: application/xml\r\n";
  out += "x-amz-request-id: " + id + "\r\n";
  out += "Content-Length: " + std::to_string(head_only ? 0 : body.size()) + "\r\n";
  out += extra_headers;
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  if (!head_only) out += body;
  return out;
}

bool PeerClosed(int fd) {
  pollfd p{fd, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace fault_proxy_internal

using fault_proxy_internal::ErrnoText;
using fault_proxy_internal::ErrorResponse;
using fault_proxy_internal::Framing;
using fault_proxy_internal::HttpMessage;
using fault_proxy_internal::Reader;
using fault_proxy_internal::WriteAll;

static_assert(static_cast<int>(FaultKind::kCut) + 1 == kFaultKindCount, "kFaultKindCount is stale");

struct FaultProxy::Connection {
  int client_fd = -1;    // guarded by mu_ for writes; Stop() shuts it down
  int upstream_fd = -1;  // guarded by mu_
  bool done = false;     // guarded by mu_; Serve() has finished
  std::thread thread;
};

const char* FaultKindName(FaultKind kind) {
  switch (kind) {
    case FaultKind::kInternalError:
      return "internal_error";
    case FaultKind::kSlowDown:
      return "slow_down";
    case FaultKind::kTooManyRequests:
      return "too_many_requests";
    case FaultKind::kAccessDenied:
      return "access_denied";
    case FaultKind::kStall:
      return "stall";
    case FaultKind::kStallMidBody:
      return "stall_mid_body";
    case FaultKind::kCut:
      return "cut";
  }
  return "unknown";
}

FaultProxy::FaultProxy(FaultProxyOptions options) : options_(std::move(options)), rng_(options_.seed) {}

FaultProxy::~FaultProxy() { Stop(); }

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(const FaultProxyOptions& options) {
  if (options.upstream_host.empty())
    return Status::InvalidArgument("FaultProxyOptions.upstream_host is empty");
  if (options.upstream_port <= 0 || options.upstream_port > 65535) {
    return Status::InvalidArgument("FaultProxyOptions.upstream_port must be 1..65535, not " +
                                   std::to_string(options.upstream_port));
  }
  if (options.port < 0 || options.port > 65535) {
    return Status::InvalidArgument("FaultProxyOptions.port must be 0..65535, not " +
                                   std::to_string(options.port));
  }
  double sum = 0;
  for (const auto& [kind, p] : options.probability) {
    if (!(p >= 0 && p <= 1)) {
      return Status::InvalidArgument(std::string("FaultProxyOptions.probability[") + FaultKindName(kind) +
                                     "] must be in [0, 1], not " + std::to_string(p));
    }
    sum += p;
  }
  if (sum > 1 + 1e-9) {
    return Status::InvalidArgument("FaultProxyOptions.probability adds up to " + std::to_string(sum) +
                                   ", more than 1");
  }
  if (options.stall_duration.count() < 0 || options.upstream_timeout.count() <= 0) {
    return Status::InvalidArgument("FaultProxyOptions.stall_duration and upstream_timeout must be positive");
  }

  std::unique_ptr<FaultProxy> proxy(new FaultProxy(options));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(ErrnoText("fault proxy: socket"));
  proxy->listen_fd_ = fd;  // closed by the destructor from here on
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(options.port));
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return Status::IoError(
        ErrnoText(("fault proxy: bind 127.0.0.1:" + std::to_string(options.port)).c_str()));
  }
  if (listen(fd, SOMAXCONN) != 0) return Status::IoError(ErrnoText("fault proxy: listen"));
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    return Status::IoError(ErrnoText("fault proxy: getsockname"));
  }
  proxy->port_ = ntohs(addr.sin_port);
  proxy->accept_thread_ = std::thread([p = proxy.get()] { p->AcceptLoop(); });
  return proxy;
}

std::string FaultProxy::endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }

int64_t FaultProxy::total_faults() const {
  int64_t total = 0;
  for (const auto& f : faults_) total += f.load();
  return total;
}

std::vector<FaultProxyEvent> FaultProxy::events() const {
  std::lock_guard<std::mutex> lock(mu_);
  return events_;
}

std::string FaultProxy::Summary() const {
  std::string out = "requests=" + std::to_string(requests()) + " forwarded=" + std::to_string(forwarded());
  for (int i = 0; i < kFaultKindCount; ++i) {
    auto kind = static_cast<FaultKind>(i);
    if (faults(kind) > 0) out += std::string(" ") + FaultKindName(kind) + "=" + std::to_string(faults(kind));
  }
  if (upstream_errors() > 0) out += " upstream_errors=" + std::to_string(upstream_errors());
  return out;
}

void FaultProxy::Stop() {
  std::lock_guard<std::mutex> stop_lock(stop_mu_);
  if (stopped_) return;
  stopped_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    // Wakes accept() and every blocked recv()/send() of the connections.
    if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);
    for (const auto& conn : conns_) {
      if (conn->client_fd >= 0) shutdown(conn->client_fd, SHUT_RDWR);
      if (conn->upstream_fd >= 0) shutdown(conn->upstream_fd, SHUT_RDWR);
    }
  }
  stop_cv_.notify_all();
  if (accept_thread_.joinable()) accept_thread_.join();
  std::list<std::unique_ptr<Connection>> conns;
  {
    std::lock_guard<std::mutex> lock(mu_);
    conns.swap(conns_);
  }
  for (const auto& conn : conns) conn->thread.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

void FaultProxy::AcceptLoop() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      int e = errno;
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return;
      }
      // EMFILE and the like: wait a little instead of spinning.
      if (e != EINTR && e != ECONNABORTED) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    fault_proxy_internal::SetNoDelay(fd);
    std::list<std::unique_ptr<Connection>> finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) {
        close(fd);
        return;
      }
      for (auto it = conns_.begin(); it != conns_.end();) {
        auto next = std::next(it);
        if ((*it)->done) finished.splice(finished.end(), conns_, it);
        it = next;
      }
      auto conn = std::make_unique<Connection>();
      conn->client_fd = fd;
      Connection* raw = conn.get();
      conns_.push_back(std::move(conn));
      raw->thread = std::thread([this, raw] { Serve(raw); });
    }
    for (const auto& conn : finished) conn->thread.join();
  }
}

std::optional<FaultKind> FaultProxy::Decide(const std::string& method, const std::string& target) {
  std::lock_guard<std::mutex> lock(mu_);
  std::optional<FaultKind> fault;
  const auto& o = options_;
  bool eligible =
      faults_enabled_.load() && (o.max_faults < 0 || random_faults_ < o.max_faults) &&
      target.find(o.path_filter) != std::string::npos &&
      (o.methods.empty() || std::find(o.methods.begin(), o.methods.end(), method) != o.methods.end());
  if (!o.deny_path_substring.empty() && target.find(o.deny_path_substring) != std::string::npos) {
    fault = FaultKind::kAccessDenied;
  } else if (eligible) {
    // 53 random bits as a double in [0, 1): the same on every platform,
    // unlike std::uniform_real_distribution.
    double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
    double cumulative = 0;
    for (const auto& [kind, p] : o.probability) {
      cumulative += p;
      if (u < cumulative) {
        fault = kind;
        ++random_faults_;
        break;
      }
    }
  }
  if (fault) {
    faults_[static_cast<int>(*fault)].fetch_add(1);
  } else {
    forwarded_.fetch_add(1);
  }
  events_.push_back(FaultProxyEvent{method, target, fault});
  return fault;
}

void FaultProxy::Stall(int fd, std::chrono::milliseconds duration) {
  auto deadline = std::chrono::steady_clock::now() + duration;
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return;
    stop_cv_.wait_for(
        lock, std::min<std::chrono::steady_clock::duration>(deadline - now, std::chrono::milliseconds(50)));
    // A client that gave up frees the thread early.
    if (fault_proxy_internal::PeerClosed(fd)) return;
  }
}

Result<int> FaultProxy::ConnectUpstream(Connection* conn) {
  const std::string where = options_.upstream_host + ":" + std::to_string(options_.upstream_port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  int rc = getaddrinfo(options_.upstream_host.c_str(), std::to_string(options_.upstream_port).c_str(), &hints,
                       &found);
  if (rc != 0) return Status::Unavailable("upstream " + where + ": " + gai_strerror(rc));
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> free_found(found, freeaddrinfo);
  int fd = socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Unavailable(ErrnoText("socket"));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) {
      close(fd);
      return Status::Cancelled("fault proxy is stopping");
    }
    conn->upstream_fd = fd;
  }
  // Also bounds connect(), on Linux.
  auto ms = options_.upstream_timeout.count();
  timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  fault_proxy_internal::SetNoDelay(fd);
  while (connect(fd, found->ai_addr, found->ai_addrlen) != 0) {
    if (errno == EINTR) continue;
    Status error = Status::Unavailable(ErrnoText(("connect to upstream " + where).c_str()));
    CloseUpstream(conn);
    return error;
  }
  return fd;
}

void FaultProxy::CloseUpstream(Connection* conn) {
  std::lock_guard<std::mutex> lock(mu_);
  if (conn->upstream_fd >= 0) close(conn->upstream_fd);
  conn->upstream_fd = -1;
}

void FaultProxy::Serve(Connection* conn) {
  const int fd = conn->client_fd;
  Reader client(fd);
  bool reset = false;  // close with RST instead of FIN
  while (true) {
    std::string head;
    bool eof = false;
    if (!client.ReadHead(&head, &eof).ok() || eof) break;
    int64_t request_id = requests_.fetch_add(1) + 1;
    Result<HttpMessage> request = fault_proxy_internal::ParseRequest(head);
    Result<Framing> framing =
        request.ok() ? fault_proxy_internal::BodyFraming(*request, false) : Result<Framing>(request.status());
    if (!framing.ok()) {
      // Not counted as forwarded or faulted: a broken client is a test bug.
      requests_.fetch_sub(1);
      std::string body = framing.status().message();
      (void)WriteAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: " +
                             std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
      break;
    }
    const std::string* connection = request->Find("Connection");
    bool keep_alive = request->version == "HTTP/1.1" &&
                      !(connection != nullptr && fault_proxy_internal::HasToken(*connection, "close"));
    const std::string* expect = request->Find("Expect");
    if (expect != nullptr && fault_proxy_internal::EqualsIgnoreCase(*expect, "100-continue") &&
        framing->kind != Framing::Kind::kNone) {
      if (!WriteAll(fd, "HTTP/1.1 100 Continue\r\n\r\n").ok()) break;
    }

    std::optional<FaultKind> fault = Decide(request->method, request->target);
    if (!fault && !options_.delay_path_substring.empty() &&
        request->target.find(options_.delay_path_substring) != std::string::npos) {
      Stall(fd, options_.delay);
      delayed_.fetch_add(1);
    }
    if (!fault || *fault == FaultKind::kCut || *fault == FaultKind::kStallMidBody) {
      if (fault == FaultKind::kCut) reset = options_.cut_with_reset;
      if (!Forward(conn, &client, *request, keep_alive, fault)) break;
      continue;
    }

    // Faults that never reach the upstream; the body is read and dropped.
    if (!client.ReadBody(*framing, [](std::string_view) { return Status::OK(); }).ok()) break;
    std::string response;
    switch (*fault) {
      case FaultKind::kInternalError:
        response = ErrorResponse(500, "Internal Server Error", "InternalError",
                                 "We encountered an internal error. Please try again.", *request, request_id,
                                 keep_alive);
        break;
      case FaultKind::kSlowDown:
        response = ErrorResponse(503, "Slow Down", "SlowDown", "Please reduce your request rate.", *request,
                                 request_id, keep_alive);
        break;
      case FaultKind::kTooManyRequests:
        response = ErrorResponse(429, "Too Many Requests", "TooManyRequests",
                                 "Please reduce your request rate.", *request, request_id, keep_alive,
                                 "Retry-After: " + std::to_string(options_.retry_after_seconds) + "\r\n");
        break;
      case FaultKind::kAccessDenied:
        response = ErrorResponse(403, "Forbidden", "AccessDenied", "Access Denied", *request, request_id,
                                 keep_alive);
        break;
      case FaultKind::kStall:
      case FaultKind::kStallMidBody:
      case FaultKind::kCut:
        break;
    }
    if (*fault == FaultKind::kStall) {
      Stall(fd, options_.stall_duration);
      break;
    }
    if (!WriteAll(fd, response).ok() || !keep_alive) break;
  }

  std::lock_guard<std::mutex> lock(mu_);
  if (reset) {
    linger l{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  }
  close(fd);
  conn->client_fd = -1;
  if (conn->upstream_fd >= 0) close(conn->upstream_fd);
  conn->upstream_fd = -1;
  conn->done = true;
}

bool FaultProxy::Forward(Connection* conn, Reader* client, const HttpMessage& request, bool keep_alive,
                         std::optional<FaultKind> fault) {
  const int fd = conn->client_fd;
  const bool head_only = request.method == "HEAD";
  auto bad_gateway = [&](const Status& error) {
    upstream_errors_.fetch_add(1);
    CloseUpstream(conn);
    // The request body may be partly unread: the connection cannot go on.
    (void)WriteAll(fd, ErrorResponse(502, "Bad Gateway", "BadGateway", "fault proxy: " + error.message(),
                                     request, requests_.load(), false));
    return false;
  };

  Result<Framing> request_framing = fault_proxy_internal::BodyFraming(request, false);
  Result<int> upstream_fd = ConnectUpstream(conn);
  if (!upstream_fd.ok()) return bad_gateway(upstream_fd.status());
  const int up = *upstream_fd;

  // The request, with a fresh upstream connection per request. The body is
  // streamed; when the upstream stops taking it (it may answer early), the
  // rest of the client's body is not read and the response still relayed.
  const bool chunked = request_framing->kind == Framing::Kind::kChunked;
  std::string out =
      request.method + " " + request.target + " HTTP/1.1\r\n" + fault_proxy_internal::CopyHeaders(request);
  if (chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  } else if (request_framing->kind == Framing::Kind::kLength) {
    out += "Content-Length: " + std::to_string(request_framing->length) + "\r\n";
  }
  out += "Connection: close\r\n\r\n";
  bool upstream_write_failed = !WriteAll(up, out).ok();
  bool request_complete = false;
  if (!upstream_write_failed) {
    Status relayed = client->ReadBody(*request_framing, [&](std::string_view piece) {
      Status st = chunked
                      ? WriteAll(up,
                                 [&] {
                                   char size[32];
                                   auto [end, ec] = std::to_chars(size, size + sizeof size, piece.size(), 16);
                                   return std::string(size, end) + "\r\n" + std::string(piece) + "\r\n";
                                 }())
                      : WriteAll(up, piece);
      if (!st.ok()) upstream_write_failed = true;
      return st;
    });
    if (!relayed.ok() && !upstream_write_failed) {
      CloseUpstream(conn);
      return false;  // the client went away
    }
    if (relayed.ok() && chunked && !WriteAll(up, "0\r\n\r\n").ok()) upstream_write_failed = true;
    request_complete = relayed.ok();
  }
  if (!request_complete) keep_alive = false;

  // The response head; interim 1xx responses are dropped.
  Reader upstream(up);
  Result<HttpMessage> response = Status::Unavailable("no response");
  while (true) {
    std::string head;
    bool eof = false;
    Status st = upstream.ReadHead(&head, &eof);
    if (!st.ok()) return bad_gateway(st);
    if (eof) return bad_gateway(Status::Unavailable("upstream closed the connection without a response"));
    response = fault_proxy_internal::ParseResponse(head);
    if (!response.ok()) return bad_gateway(response.status());
    if (response->status / 100 != 1) break;
  }
  Framing framing;
  if (!head_only && response->status != 204 && response->status != 304) {
    Result<Framing> f = fault_proxy_internal::BodyFraming(*response, true);
    if (!f.ok()) return bad_gateway(f.status());
    framing = *f;
  }
  // Bodies of unknown length are read whole, so that the client gets a
  // Content-Length and kCut knows where the middle is.
  std::string buffered;
  bool is_buffered = framing.kind == Framing::Kind::kChunked || framing.kind == Framing::Kind::kUntilClose;
  if (is_buffered) {
    Status st = upstream.ReadBody(framing, [&](std::string_view piece) {
      buffered.append(piece);
      return Status::OK();
    });
    if (!st.ok()) return bad_gateway(st);
    framing.kind = buffered.empty() ? Framing::Kind::kNone : Framing::Kind::kLength;
    framing.length = buffered.size();
  }
  const uint64_t length = framing.kind == Framing::Kind::kLength ? framing.length : 0;

  std::string head = "HTTP/1.1 " + std::to_string(response->status) + " " + response->reason + "\r\n" +
                     fault_proxy_internal::CopyHeaders(*response);
  if (head_only || response->status == 204 || response->status == 304) {
    // No body follows; the length, if any, describes the resource.
    if (const std::string* cl = response->Find("Content-Length")) head += "Content-Length: " + *cl + "\r\n";
  } else {
    head += "Content-Length: " + std::to_string(length) + "\r\n";
  }
  if (!keep_alive) head += "Connection: close\r\n";
  head += "\r\n";

  uint64_t send_bytes = length;
  if (fault) {
    if (length == 0) {
      // Headers alone would be a complete response: send nothing.
      if (*fault == FaultKind::kStallMidBody) Stall(fd, options_.stall_duration);
      return false;
    }
    send_bytes = options_.partial_body_bytes < 0
                     ? length / 2
                     : std::min<uint64_t>(static_cast<uint64_t>(options_.partial_body_bytes), length - 1);
  }
  if (!WriteAll(fd, head).ok()) return false;
  if (is_buffered) {
    if (!WriteAll(fd, std::string_view(buffered).substr(0, send_bytes)).ok()) return false;
  } else {
    bool client_failed = false;
    Status st = upstream.ReadBytes(send_bytes, [&](std::string_view piece) {
      Status written = WriteAll(fd, piece);
      if (!written.ok()) client_failed = true;
      return written;
    });
    if (!st.ok()) {
      if (!client_failed) upstream_errors_.fetch_add(1);
      return false;
    }
  }
  CloseUpstream(conn);
  if (fault == FaultKind::kStallMidBody) {
    Stall(fd, options_.stall_duration);
    return false;
  }
  return fault ? false : keep_alive;
}

}  // namespace sluice::testing
