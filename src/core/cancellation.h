// Cancellation: one flag that every stage of a run polls, set by Ctrl-C,
// SIGTERM or the first failing stage. Thread-safe; Cancel() is also
// async-signal-safe (a lock-free atomic store).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace sluice {

class CancellationSource {
 public:
  CancellationSource() = default;
  CancellationSource(const CancellationSource&) = delete;
  CancellationSource& operator=(const CancellationSource&) = delete;

  void Cancel() { cancelled_.store(true, std::memory_order_release); }
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  /// The flag itself, for loops that poll an atomic<bool>.
  const std::atomic<bool>* flag() const { return &cancelled_; }

 private:
  std::atomic<bool> cancelled_{false};
};

/// Calls `on_cancel` once if `source` fires while the watcher lives: for
/// blocking calls made outside the pipeline runtime (query start-up,
/// connecting) that can be interrupted from another thread.
class CancelWatcher {
 public:
  CancelWatcher(const CancellationSource* source, std::function<void()> on_cancel);
  ~CancelWatcher();
  CancelWatcher(const CancelWatcher&) = delete;
  CancelWatcher& operator=(const CancelWatcher&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
};

/// The process-wide source that SIGINT/SIGTERM handlers cancel.
CancellationSource& ProcessCancellation();
/// Installs SIGINT and SIGTERM handlers that cancel ProcessCancellation().
/// A second signal while a cancellation is in progress exits at once.
void InstallSignalHandlers();

}  // namespace sluice
