#include "harness/slow_peers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace sluice::testing {

namespace {

using Clock = std::chrono::steady_clock;

Status SocketError(const std::string& what) { return Status::IoError(what + ": " + std::strerror(errno)); }

}  // namespace

Result<std::unique_ptr<SlowLorisClient>> SlowLorisClient::Start(int port, std::chrono::milliseconds interval,
                                                                const std::string& host) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1)
    return Status::InvalidArgument("SlowLorisClient: not an IPv4 address: " + host);
  std::unique_ptr<SlowLorisClient> client(new SlowLorisClient());
  client->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (client->fd_ < 0) return SocketError("SlowLorisClient: socket");
  if (::connect(client->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return SocketError("SlowLorisClient: connect to " + host + ":" + std::to_string(port));
  client->connected_at_ = Clock::now();
  SlowLorisClient* self = client.get();
  client->thread_ = std::thread([self, interval] { self->Run(interval); });
  return client;
}

SlowLorisClient::~SlowLorisClient() {
  Stop();
  if (fd_ >= 0) ::close(fd_);
}

void SlowLorisClient::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
}

std::optional<std::chrono::milliseconds> SlowLorisClient::closed_after() const {
  std::lock_guard<std::mutex> lock(mu_);
  return closed_after_;
}

std::string SlowLorisClient::received() const {
  std::lock_guard<std::mutex> lock(mu_);
  return received_;
}

void SlowLorisClient::Run(std::chrono::milliseconds interval) {
  auto closed = [this] {
    std::lock_guard<std::mutex> lock(mu_);
    closed_after_ = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - connected_at_);
  };
  auto send_all = [this](const std::string& text) {
    return ::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size());
  };
  if (!send_all("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")) return closed();
  Clock::time_point next_line = Clock::now() + interval;
  while (!stop_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 20) > 0) {
      char buf[4096];
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) return closed();
      std::lock_guard<std::mutex> lock(mu_);
      received_.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (Clock::now() >= next_line) {
      int i = lines_sent_.load();
      if (!send_all("X-Slow-" + std::to_string(i) + ": still typing\r\n")) return closed();
      lines_sent_.store(i + 1);
      next_line += interval;
    }
  }
}

Result<std::unique_ptr<SilentListener>> SilentListener::Start() {
  std::unique_ptr<SilentListener> listener(new SilentListener());
  listener->fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listener->fd_ < 0) return SocketError("SilentListener: socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(listener->fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return SocketError("SilentListener: bind");
  if (::listen(listener->fd_, 64) != 0) return SocketError("SilentListener: listen");
  socklen_t len = sizeof(addr);
  if (::getsockname(listener->fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return SocketError("SilentListener: getsockname");
  listener->port_ = ntohs(addr.sin_port);
  return listener;
}

SilentListener::~SilentListener() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace sluice::testing
