#include "service/alerts.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <thread>

#include "core/human_format.h"
#include "core/metrics.h"
#include "io/http/http_client.h"

namespace sluice::service {

Alerter::Alerter(AlertConfig config, std::string pipeline, MetricsRegistry* metrics)
    : config_(std::move(config)), pipeline_(std::move(pipeline)), metrics_(metrics) {}

Alerter::~Alerter() {
  // A `sluice run` that just failed exits right after posting: give the
  // alert a few seconds to go out before the client cancels it.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (client_ && client_->pending() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<std::unique_ptr<Alerter>> Alerter::Make(AlertConfig config, std::string pipeline,
                                               MetricsRegistry* metrics) {
  std::unique_ptr<Alerter> a(new Alerter(std::move(config), std::move(pipeline), metrics));
  io::HttpClientOptions options;
  options.max_in_flight = 4;
  options.max_per_host = 4;
  SLUICE_ASSIGN_OR_RETURN(a->client_, io::HttpClient::Make(std::move(options)));
  return a;
}

std::string Alerter::Document(const AlertEvent& e) const {
  nlohmann::json j = {
      {"pipeline", pipeline_},
      {"event", e.event},
      {"run_id", e.run_id == 0 ? nlohmann::json(nullptr) : nlohmann::json(e.run_id)},
      {"status", e.status},
      {"error", e.error.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.error)},
      {"started", e.started == std::chrono::system_clock::time_point{} ? nlohmann::json(nullptr)
                                                                       : nlohmann::json(Iso8601(e.started))},
      {"seconds", e.seconds},
      {"table", e.table.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.table)}};
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void Alerter::Post(const AlertEvent& event) {
  if ((event.event == "failure" && !config_.on_failure) ||
      (event.event == "recovery" && !config_.on_recovery) || (event.event == "slow" && !config_.on_slow)) {
    return;
  }
  io::HttpRequest request;
  request.method = "POST";
  request.url = config_.url;
  request.body = Document(event);
  request.timeout = std::chrono::milliseconds(config_.timeout_ms);
  request.max_response_bytes = 1 << 20;
  request.headers.push_back("Content-Type: application/json");
  for (const auto& [name, value] : config_.headers) request.headers.push_back(name + ": " + value);
  io::HttpRetryPolicy policy;
  policy.max_attempts = 4;
  policy.initial = std::chrono::milliseconds(500);
  policy.max_delay = std::chrono::milliseconds(10000);
  policy.max_elapsed = std::chrono::milliseconds(60000);
  std::string url = io::RedactHttpUrl(config_.url);
  client_->Submit(std::move(request), policy, [this, url, kind = event.event](io::HttpResponse r) {
    std::string outcome = r.ok() ? "sent" : "failed";
    if (metrics_) {
      metrics_
          ->Counter("sluice_alerts_total", "Alerts posted to [alert] url, by event and outcome",
                    {{"pipeline", pipeline_}, {"event", kind}, {"outcome", outcome}})
          .Add(1);
    }
    if (r.ok()) {
      spdlog::info("pipeline {}: alert {} posted to {}", pipeline_, kind, url);
    } else if (!r.cancelled) {
      spdlog::warn("pipeline {}: alert {} to {} failed: {}", pipeline_, kind, url, r.Summary());
    }
  });
}

}  // namespace sluice::service
