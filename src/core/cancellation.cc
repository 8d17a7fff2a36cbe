#include "core/cancellation.h"

#include <csignal>
#include <unistd.h>

namespace sluice {

CancellationSource& ProcessCancellation() {
  static CancellationSource source;
  return source;
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
