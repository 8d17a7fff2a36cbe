// Pipeline files: one TOML file per pipeline. The service reads its own
// sections ([engine], [retry], [schedule], [server]) and hands [source] to
// the source type's factory from the registry, which builds the pipeline's
// job and asks for the sections it needs ([destination], [state],
// [transform], ...). Every key must be read by someone: an unknown key or
// section is an error naming it. Parsing reads the file and the
// environment, and connects nowhere.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "config/config_document.h"
#include "config/config_values.h"
#include "core/job.h"
#include "sluice/registry.h"
#include "sluice/status.h"

namespace sluice {
class MetricsRegistry;
}

namespace sluice::service {

struct ScheduleConfig {
  std::string every;  // "30s", "5m", "24h"
  std::string cron;
  std::string timezone;  // IANA name for cron; empty: UTC
  bool run_on_start = true;
  int64_t every_seconds = 0;
};

/// The monitoring HTTP service of `sluice serve`.
struct ServerConfig {
  std::string listen = "127.0.0.1:9187";
  std::string token;
  bool configured = false;
};

/// [alert]: where and when to post alerts (service/alerts.h).
struct AlertConfig {
  bool configured = false;
  std::string url;
  bool on_failure = true;
  bool on_recovery = true;
  bool on_slow = false;
  int64_t slow_after_ms = 0;
  std::vector<std::pair<std::string, std::string>> headers;
  int64_t timeout_ms = 10000;
};

/// What the service itself reads from a pipeline file.
struct PipelineConfig {
  std::string name;
  std::string file;  // where it was read from
  std::string source_type;
  EngineSettings engine;
  RetrySettings retry;
  std::optional<ScheduleConfig> schedule;
  ServerConfig server;
  AlertConfig alert;
};

/// A pipeline file, read and built: its settings, the document its
/// components read, the registry they came from and the job.
struct LoadedPipeline {
  PipelineConfig config;
  Registry registry;
  std::unique_ptr<config::ConfigDocument> doc;
  std::unique_ptr<Job> job;  // last: refers to doc and registry
};

/// Parses `toml` and builds the pipeline's job from `registry`. `name`
/// overrides the name taken from the file name (a file's name = "..."
/// overrides both). `metrics` (optional) receives the job's counters and
/// must outlive it.
Result<std::unique_ptr<LoadedPipeline>> LoadPipelineText(std::string_view toml, const std::string& file_name,
                                                         const Registry& registry,
                                                         const std::string& name = "",
                                                         MetricsRegistry* metrics = nullptr,
                                                         const config::EnvLookup& env = config::GetEnv);
/// Reads the file at `path` and calls LoadPipelineText.
Result<std::unique_ptr<LoadedPipeline>> LoadPipelineFile(const std::string& path, const Registry& registry,
                                                         MetricsRegistry* metrics = nullptr,
                                                         const config::EnvLookup& env = config::GetEnv);

}  // namespace sluice::service
