// RunCdcPipeline: `sluice run` of a postgres_cdc pipeline. Builds the
// destination and the state store from the config, runs the replicator
// until SIGTERM/Ctrl-C (or a non-retryable error), and reports.
#pragma once

#include <atomic>
#include <memory>

#include "service/config.h"
#include "sluice/cdc.h"
#include "sluice/status.h"
#include "sources/postgres_cdc/replicator.h"

namespace sluice::service {

/// The CDC destination a config names.
Result<std::unique_ptr<CdcDestination>> MakeCdcDestination(const PipelineConfig& config);

/// `sluice validate`: checks the source (wal_level, REPLICATION, the
/// publication and its tables' replica identity, the slot), the state
/// store and the destination, changing nothing. Returns a report.
Result<std::string> ValidateCdcPipeline(const PipelineConfig& config);

/// One running CDC pipeline: its destination, state store and replicator.
class CdcJob {
 public:
  static Result<std::unique_ptr<CdcJob>> Make(const PipelineConfig& config, const std::atomic<bool>* cancel);
  ~CdcJob();
  CdcJob(const CdcJob&) = delete;
  CdcJob& operator=(const CdcJob&) = delete;

  /// Replicates until the cancel flag is set; OK after a clean stop.
  Status Run();
  /// Counters of the replicator; any thread.
  const cdc::ReplicatorStats& stats() const;
  std::vector<TableSyncStatus> TableStates() const { return replicator_->TableStates(); }
  std::string DestinationDescription() const { return destination_->Describe(); }

 private:
  CdcJob() = default;
  std::string name_;
  std::unique_ptr<CdcDestination> destination_;
  std::unique_ptr<CdcStore> store_;
  std::unique_ptr<cdc::Replicator> replicator_;
};

/// Replicates until `cancel` is set; OK after a clean stop.
Status RunCdcPipeline(const PipelineConfig& config, const std::atomic<bool>* cancel);

}  // namespace sluice::service
