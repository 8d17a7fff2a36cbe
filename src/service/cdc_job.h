// RunCdcPipeline: `sluice run` of a postgres_cdc pipeline. Builds the
// destination and the state store from the config, runs the replicator
// until SIGTERM/Ctrl-C (or a non-retryable error), and reports.
#pragma once

#include <atomic>
#include <memory>

#include "service/config.h"
#include "sluice/cdc.h"
#include "sluice/status.h"

namespace sluice::service {

/// The CDC destination a config names.
Result<std::unique_ptr<CdcDestination>> MakeCdcDestination(const PipelineConfig& config);

/// `sluice validate`: checks the source (wal_level, REPLICATION, the
/// publication and its tables' replica identity, the slot), the state
/// store and the destination, changing nothing. Returns a report.
Result<std::string> ValidateCdcPipeline(const PipelineConfig& config);

/// Replicates until `cancel` is set; OK after a clean stop.
Status RunCdcPipeline(const PipelineConfig& config, const std::atomic<bool>* cancel);

}  // namespace sluice::service
