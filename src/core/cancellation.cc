#include "core/cancellation.h"

#include <unistd.h>
#include <chrono>
#include <csignal>

namespace sluice {

CancellationSource& ProcessCancellation() {
  static CancellationSource source;
  return source;
}

CancelWatcher::CancelWatcher(const CancellationSource* source, std::function<void()> on_cancel) {
  if (source == nullptr) return;
  thread_ = std::thread([this, source, on_cancel = std::move(on_cancel)] {
    std::unique_lock<std::mutex> lock(mu_);
    while (!done_.load()) {
      if (source->cancelled()) {
        lock.unlock();
        on_cancel();
        return;
      }
      // Polled, because a signal handler cannot notify a condition
      // variable; the destructor does notify, so it never waits a period.
      cv_.wait_for(lock, std::chrono::milliseconds(20));
    }
  });
}

CancelWatcher::~CancelWatcher() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_.store(true);
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

namespace {

void HandleSignal(int sig) {
  if (ProcessCancellation().cancelled()) {
    // A second Ctrl-C: the user wants out now. Transactions still roll back,
    // because the servers see the connection drop.
    _exit(128 + sig);
  }
  ProcessCancellation().Cancel();
}

}  // namespace

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = &HandleSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

}  // namespace sluice
