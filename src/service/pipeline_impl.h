// What a sluice::Pipeline holds: the loaded file, its job, and the
// cancellation that Stop() fires. Shared by the public Pipeline and the
// service's workers, which run the same jobs on schedules.
#pragma once

#include <memory>
#include <mutex>

#include "core/cancellation.h"
#include "core/metrics.h"
#include "service/config.h"
#include "sluice/pipeline.h"

namespace sluice {

struct Pipeline::Impl {
  MetricsRegistry metrics;  // used when the pipeline runs on its own
  std::unique_ptr<service::LoadedPipeline> loaded;
  CancellationSource cancel;
  std::mutex open_mu;  // Open() once
  bool opened = false;
};

}  // namespace sluice
