// WorkerLease: this process as one worker of a pipeline in a state store
// that SharesWork() (PostgreSQL). A thread renews the worker's row every
// third of the lease; while the row lives, what the worker holds (exclusive
// leases, file claims) is its own. When a renewal has not succeeded for
// almost a whole lease, or a lease the job watches is no longer held, the
// worker must stop using what it holds: Lost() turns true and the watched
// callback runs (the job cancels its run). Destination transactions stay
// safe without it (the fences in the state store's rows); this stops the
// work early. The destructor releases everything at once (LeaveWork), so a
// rolling restart does not wait for leases to expire.
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "sluice/config_table.h"
#include "sluice/status.h"
#include "state/state_store.h"

namespace sluice::state {

/// The pipeline's exclusive lease: the tick of a batch = "all" pipeline,
/// the active process of a CDC pipeline.
inline constexpr const char* kRunLease = "run";

/// "[state] lease" when unset.
inline constexpr int64_t kDefaultLeaseMs = 60000;

/// [state] lease ("60s"): at least one second; kDefaultLeaseMs when absent.
Result<int64_t> ReadLeaseMs(const ConfigTable& state);

/// The workers of a pipeline for /status: a JSON array of {"worker",
/// "since", "seen", "expires", "doing", "leases", "claimed_files",
/// "claimed_since"}.
nlohmann::json WorkersJson(const std::vector<WorkerInfo>& workers);

class WorkerLease {
 public:
  /// Registers the worker (one heartbeat, which must succeed) and starts
  /// renewing it. `store` must SharesWork() and outlive the lease.
  static Result<std::unique_ptr<WorkerLease>> Start(StateStore* store, std::string pipeline,
                                                    int64_t lease_ms);
  ~WorkerLease();
  WorkerLease(const WorkerLease&) = delete;
  WorkerLease& operator=(const WorkerLease&) = delete;

  int64_t lease_ms() const { return lease_ms_; }
  const std::string& worker() const { return store_->worker(); }
  /// What /status and the other workers see this one doing.
  void SetDoing(std::string doing);
  /// The last renewal is older than the lease allows (less a safety margin):
  /// the others may already treat this worker as gone.
  bool Lost() const;
  /// Calls `on_lost` (from the heartbeat thread, once) when the worker is
  /// Lost() or no longer holds lease `name` ("" watches only the worker
  /// row). One watch at a time; Unwatch() before what it captures dies.
  void Watch(std::string name, std::function<void()> on_lost);
  void Unwatch();
  /// Renews now (after a long pause of the caller, before taking a lease).
  Status RenewNow();
  /// The pipeline's live workers as of the last renewal (this one included).
  std::vector<WorkerInfo> Peers() const;

 private:
  WorkerLease(StateStore* store, std::string pipeline, int64_t lease_ms);
  void Loop();
  Status Renew();

  using Clock = std::chrono::steady_clock;
  StateStore* store_;
  const std::string pipeline_;
  const int64_t lease_ms_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::string doing_;
  Clock::time_point renewed_;  // when the last successful renewal was sent
  std::vector<std::string> held_;
  std::vector<WorkerInfo> peers_;
  std::string watch_name_;
  std::function<void()> on_lost_;
  std::mutex renew_mu_;  // one renewal at a time
  std::thread thread_;
};

}  // namespace sluice::state
