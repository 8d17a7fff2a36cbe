#include "service/monitor_server.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include <httplib.h>
#include <sys/socket.h>
#include <nlohmann/json.hpp>

namespace sluice::service {

namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kJsonContentType = "application/json";

bool KnownPath(const std::string& path) {
  return path == "/health" || path == "/ready" || path == "/status" || path == "/metrics";
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

const char* StatusText(int status) {
  switch (status) {
    case 400:
      return "bad request";
    case 413:
      return "payload too large";
    case 414:
      return "URI too long";
    case 416:
      return "range not satisfiable";
    case 500:
      return "internal error";
    case 503:
      return "service unavailable";
    default:
      return "error";
  }
}

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump() + "\n", kJsonContentType);
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, status, nlohmann::json{{"error", message}});
}

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

struct MonitorServer::Impl {
  MonitorOptions options;
  MonitorHandlers handlers;
  ListenAddress bound;
  httplib::Server server;
  std::thread thread;
  std::atomic<bool> listen_returned{false};
  std::mutex stop_mu;
  bool stopped = false;

  bool Authorized(const httplib::Request& req) const {
    if (options.token.empty()) return true;
    const std::string& header = req.get_header_value("Authorization");
    constexpr std::string_view kScheme = "bearer ";
    if (header.size() < kScheme.size()) return false;
    for (size_t i = 0; i < kScheme.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return false;
    }
    std::string_view presented = std::string_view(header).substr(kScheme.size());
    while (!presented.empty() && presented.front() == ' ') presented.remove_prefix(1);
    return ConstantTimeEquals(presented, options.token);
  }

  static void Unauthorized(httplib::Response& res) {
    res.set_header("WWW-Authenticate", "Bearer");
    SendError(res, 401, "unauthorized: send Authorization: Bearer <token>");
  }

  void Serve(const httplib::Request& req, httplib::Response& res) {
    if (!Authorized(req)) return Unauthorized(res);
    try {
      if (req.path == "/health") {
        SendJson(res, 200, nlohmann::json{{"status", "ok"}});
      } else if (req.path == "/ready") {
        std::string detail;
        bool ready = handlers.ready ? handlers.ready(&detail) : true;
        nlohmann::json body{{"ready", ready}};
        if (!detail.empty()) body["detail"] = detail;
        SendJson(res, ready ? 200 : 503, body);
      } else if (req.path == "/status" && handlers.status_json) {
        res.status = 200;
        res.set_content(handlers.status_json(), kJsonContentType);
      } else if (req.path == "/metrics" && handlers.metrics_text) {
        res.status = 200;
        res.set_content(handlers.metrics_text(), kMetricsContentType);
      } else {
        SendError(res, 404, "not found: " + req.path);
      }
    } catch (const std::exception& e) {
      SendError(res, 500, std::string("internal error: ") + e.what());
    } catch (...) {
      SendError(res, 500, "internal error");
    }
  }

  // Runs for every response with status >= 400, including httplib's own:
  // "no handler" for methods other than GET/HEAD, malformed requests.
  httplib::Server::HandlerResponse OnError(const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours, already complete
    if (res.status == 404 && req.method != "GET" && req.method != "HEAD") {
      if (!Authorized(req)) {
        Unauthorized(res);
      } else if (KnownPath(req.path)) {
        res.set_header("Allow", "GET, HEAD");
        SendError(res, 405, "method " + req.method + " not allowed: use GET");
      } else {
        SendError(res, 404, "not found: " + req.path);
      }
      return httplib::Server::HandlerResponse::Handled;
    }
    SendError(res, res.status, StatusText(res.status));
    return httplib::Server::HandlerResponse::Handled;
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
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handlers = std::move(handlers);
  Impl* self = impl.get();

  httplib::Server& server = impl->server;
  const size_t threads = static_cast<size_t>(options.threads);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // httplib's default sets SO_REUSEPORT, which lets a second process bind
  // the same port and silently share it. SO_REUSEADDR only permits
  // rebinding over connections in TIME_WAIT after a restart.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_read_timeout(options.io_timeout);
  server.set_write_timeout(options.io_timeout);
  // Idle keep-alive connections hold a pool thread; keep them short so that
  // Stop() does not wait long for them.
  server.set_keep_alive_timeout(1);
  server.set_payload_max_length(64 * 1024);
  server.Get(".*", [self](const httplib::Request& req, httplib::Response& res) { self->Serve(req, res); });
  server.set_error_handler(httplib::Server::HandlerWithResponse(
      [self](const httplib::Request& req, httplib::Response& res) { return self->OnError(req, res); }));

  errno = 0;
  int port = address.port;
  bool bound = false;
  if (port == 0) {
    port = server.bind_to_any_port(address.host);
    bound = port > 0;
  } else {
    bound = server.bind_to_port(address.host, port);
  }
  if (!bound) {
    int err = errno;
    std::string why = err != 0 ? std::strerror(err) : "address in use or not available";
    return Status::IoError("monitoring server: cannot listen on " + address.ToString() + ": " + why);
  }
  impl->bound = ListenAddress{address.host, port};

  impl->thread = std::thread([self] {
    self->server.listen_after_bind();
    self->listen_returned.store(true);
  });
  // The socket already accepts connections (the kernel queues them); wait
  // until the accept loop runs so that Stop() cannot miss it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!impl->server.is_running() && !impl->listen_returned.load()) {
    if (std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto result = std::unique_ptr<MonitorServer>(new MonitorServer(std::move(impl)));
  if (!result->impl_->server.is_running()) {
    result->Stop();
    return Status::IoError("monitoring server on " + address.ToString() + " stopped right after starting");
  }
  return result;
}

void MonitorServer::Stop() {
  std::lock_guard<std::mutex> lock(impl_->stop_mu);
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace sluice::service
