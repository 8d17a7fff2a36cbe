#include "state/worker_lease.h"

#include <spdlog/spdlog.h>

#include <signal.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/human_format.h"

namespace sluice::state {

namespace {

/// No such process, or one that exited and was not reaped yet (a zombie).
bool ProcessGone(pid_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  size_t close = line.rfind(')');  // the name may hold spaces and parentheses
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

}  // namespace

WorkerLease::WorkerLease(StateStore* store, std::string pipeline, int64_t lease_ms)
    : store_(store), pipeline_(std::move(pipeline)), lease_ms_(lease_ms) {}

Result<std::unique_ptr<WorkerLease>> WorkerLease::Start(StateStore* store, std::string pipeline,
                                                        int64_t lease_ms) {
  if (!store->SharesWork()) {
    return Status::InvalidArgument("state store " + store->Describe() +
                                   " cannot share work between processes");
  }
  auto lease = std::unique_ptr<WorkerLease>(new WorkerLease(store, std::move(pipeline), lease_ms));
  SLUICE_RETURN_IF_ERROR(lease->Renew());
  lease->thread_ = std::thread([l = lease.get()] { l->Loop(); });
  return lease;
}

WorkerLease::~WorkerLease() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    on_lost_ = nullptr;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  Status left = store_->LeaveWork(pipeline_);
  if (!left.ok()) {
    spdlog::warn(
        "pipeline {}: could not release what worker {} holds ({}); the others take it over when its "
        "lease expires",
        pipeline_, store_->worker(), left.message());
  }
}

void WorkerLease::SetDoing(std::string doing) {
  std::lock_guard<std::mutex> lock(mu_);
  doing_ = std::move(doing);
}

bool WorkerLease::Lost() const {
  std::lock_guard<std::mutex> lock(mu_);
  // A tenth of the lease as margin: the row expires lease_ms after the
  // server received the renewal, which came after it was sent.
  return Clock::now() - renewed_ > std::chrono::milliseconds(lease_ms_ - lease_ms_ / 10);
}

void WorkerLease::Watch(std::string name, std::function<void()> on_lost) {
  std::lock_guard<std::mutex> lock(mu_);
  watch_name_ = std::move(name);
  on_lost_ = std::move(on_lost);
}

void WorkerLease::Unwatch() {
  std::lock_guard<std::mutex> lock(mu_);
  watch_name_.clear();
  on_lost_ = nullptr;
}

Status WorkerLease::RenewNow() { return Renew(); }

Status WorkerLease::Renew() {
  std::lock_guard<std::mutex> renewing(renew_mu_);
  std::string doing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    doing = doing_;
  }
  auto sent = Clock::now();
  auto held = store_->Heartbeat(pipeline_, lease_ms_, doing);
  if (!held.ok()) return held.status();
  auto peers = store_->Workers(pipeline_);
  if (peers.ok()) {
    // A worker of this machine whose process is gone (kill -9, a crash) is
    // dead now: the others need not wait for its lease to run out.
    const std::string me = store_->worker();
    const std::string host = me.substr(0, me.rfind(':') + 1);
    for (auto it = peers->begin(); it != peers->end();) {
      pid_t pid =
          it->worker.starts_with(host) ? static_cast<pid_t>(std::atoll(it->worker.c_str() + host.size())) : 0;
      if (it->worker != me && pid > 0 && ProcessGone(pid) &&
          store_->ExpireWorker(pipeline_, it->worker).ok()) {
        spdlog::info("pipeline {}: worker {} is gone (no such process); what it held is free", pipeline_,
                     it->worker);
        it = peers->erase(it);
      } else {
        ++it;
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  renewed_ = sent;
  held_ = std::move(held).value();
  if (peers.ok()) peers_ = std::move(peers).value();
  return Status::OK();
}

std::vector<WorkerInfo> WorkerLease::Peers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peers_;
}

Result<int64_t> ReadLeaseMs(const ConfigTable& state) {
  if (!state.Has("lease")) return kDefaultLeaseMs;
  int64_t ms = state.GetMillis("lease", kDefaultLeaseMs);
  SLUICE_RETURN_IF_ERROR(state.Check());
  if (ms < 1000) return Status::InvalidArgument(state.Name() + " lease must be at least 1s");
  return ms;
}

nlohmann::json WorkersJson(const std::vector<WorkerInfo>& workers) {
  auto time = [](int64_t ms) {
    return ms > 0
               ? nlohmann::json(Iso8601(std::chrono::system_clock::time_point(std::chrono::milliseconds(ms))))
               : nlohmann::json(nullptr);
  };
  nlohmann::json out = nlohmann::json::array();
  for (const WorkerInfo& w : workers) {
    out.push_back({{"worker", w.worker},
                   {"since", time(w.started_unix_ms)},
                   {"seen", time(w.seen_unix_ms)},
                   {"expires", time(w.expires_unix_ms)},
                   {"doing", w.doing},
                   {"leases", w.leases},
                   {"claimed_files", w.claimed_files},
                   {"claimed_since", time(w.claimed_since_unix_ms)}});
  }
  return out;
}

void WorkerLease::Loop() {
  const auto every = std::chrono::milliseconds(std::max<int64_t>(100, lease_ms_ / 3));
  bool warned = false;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_for(lock, every, [&] { return stop_; });
      if (stop_) return;
    }
    Status renewed = Renew();
    if (!renewed.ok() && !warned) {
      spdlog::warn("pipeline {}: worker {} could not renew its lease: {}", pipeline_, store_->worker(),
                   renewed.message());
    }
    warned = !renewed.ok();
    std::function<void()> fire;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!on_lost_) continue;
      bool lost = Clock::now() - renewed_ > std::chrono::milliseconds(lease_ms_ - lease_ms_ / 10);
      bool gone = renewed.ok() && !watch_name_.empty() &&
                  std::find(held_.begin(), held_.end(), watch_name_) == held_.end();
      if (lost || gone) {
        fire = std::move(on_lost_);
        on_lost_ = nullptr;
      }
    }
    if (fire) fire();
  }
}

}  // namespace sluice::state
