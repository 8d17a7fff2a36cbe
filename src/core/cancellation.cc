#include "core/cancellation.h"

#include <chrono>
#include <csignal>
#include <unistd.h>

namespace sluice {

CancellationSource& ProcessCancellation() {
  static CancellationSource source;
  return source;
}

CancelWatcher::CancelWatcher(const CancellationSource* source, std::function<void()> on_cancel) {
  if (source == nullptr) return;
  thread_ = std::thread([this, source, on_cancel = std::move(on_cancel)] {
    while (!done_.load()) {
      if (source->cancelled()) {
        on_cancel();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });
}

CancelWatcher::~CancelWatcher() {
  done_.store(true);
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
