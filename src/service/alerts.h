// Alerts: [alert] posts one JSON document to a webhook when a run fails
// (or a CDC table errors), when the first run after a failure succeeds, and
// when a run is still running after slow_after.
//
//   {"pipeline": "stations", "event": "failure", "run_id": 12, "status": "failed",
//    "error": "...", "started": "2026-12-06T10:00:00.000Z", "seconds": 3.2, "table": null}
//
// Posting never blocks nor fails the pipeline: requests go through an
// io::HttpClient on its own thread, retried a few times (429/5xx, honouring
// Retry-After), and counted in /metrics (sluice_alerts_total{event,outcome}).
// Errors are already free of secrets; URLs are shown redacted and headers
// never.
//
// Thread-safety: Post may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "service/config.h"
#include "sluice/status.h"

namespace sluice {
class MetricsRegistry;
}
namespace sluice::io {
class HttpClient;
}

namespace sluice::service {

struct AlertEvent {
  std::string event;  // failure, recovery, slow
  int64_t run_id = 0;
  std::string status;  // failed, succeeded, running
  std::string error;
  std::chrono::system_clock::time_point started{};
  double seconds = 0;
  std::string table;  // CDC: the table that errored
};

class Alerter {
 public:
  static Result<std::unique_ptr<Alerter>> Make(AlertConfig config, std::string pipeline,
                                               MetricsRegistry* metrics);
  ~Alerter();
  Alerter(const Alerter&) = delete;
  Alerter& operator=(const Alerter&) = delete;

  const AlertConfig& config() const { return config_; }
  /// Sends `event` if [alert] on lists it; returns at once.
  void Post(const AlertEvent& event);
  /// The JSON document of an event.
  std::string Document(const AlertEvent& event) const;

 private:
  Alerter(AlertConfig config, std::string pipeline, MetricsRegistry* metrics);
  AlertConfig config_;
  std::string pipeline_;
  MetricsRegistry* metrics_;
  std::unique_ptr<io::HttpClient> client_;
};

}  // namespace sluice::service
