#include "service/cdc_job.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "destinations/events/event_destinations.h"
#include "destinations/postgres/postgres_cdc_destination.h"
#include "service/batch_job.h"
#include "sources/postgres_cdc/replicator.h"
#include "state/cdc_store.h"

namespace sluice::service {

Result<std::unique_ptr<CdcDestination>> MakeCdcDestination(const PipelineConfig& config) {
  const DestinationConfig& d = config.destination;
  if (d.type == "postgres") return destinations::MakePostgresCdcDestination(d.url, d.schema);
  if (d.type == "stdout") return destinations::MakeJsonLinesCdcDestination("-");
  if (d.type == "file") return destinations::MakeJsonLinesCdcDestination(d.path);
  if (d.type == "null") return destinations::MakeDiscardCdcDestination();
  if (d.type == "memory") {
    // Only useful embedded; from the command line it counts and forgets.
    return destinations::MakeDiscardCdcDestination();
  }
  return Status::InvalidArgument("[destination] type '" + d.type + "' cannot take changes");
}

Status RunCdcPipeline(const PipelineConfig& config, const std::atomic<bool>* cancel) {
  SLUICE_ASSIGN_OR_RETURN(auto destination, MakeCdcDestination(config));
  SLUICE_ASSIGN_OR_RETURN(auto store, state::OpenCdcStore(StateConfigFor(config), config.name));
  cdc::ReplicatorOptions options;
  options.pipeline = config.name;
  options.url = config.source.url;
  options.publication = config.source.publication;
  options.tables = config.source.tables;
  options.slot = config.source.slot;
  options.max_table_sync_workers = static_cast<int>(config.source.max_table_sync_workers);
  options.table_error_retry_delay_ms = config.source.table_error_retry_delay_ms;
  options.table_error_retry_max_attempts = config.source.table_error_retry_max_attempts;
  options.publication_refresh_ms = config.source.publication_refresh_ms;
  options.stream_memory_bytes = config.source.stream_memory_bytes;
  options.batch_max_rows = config.batch.max_rows;
  options.batch_max_bytes = config.batch.max_bytes;
  options.batch_max_fill_ms = config.batch.max_fill_ms;
  options.spill_directory = (config.engine.temp_directory.empty() ? std::filesystem::temp_directory_path().string()
                                                                  : config.engine.temp_directory) +
                            "/sluice-spill";
  options.cancel = cancel;
  cdc::Replicator replicator(options, destination.get(), store.get());
  Status status = replicator.Run();
  const auto& stats = replicator.stats();
  spdlog::info("pipeline {}: stopped; {} row(s) copied, {} change(s) in {} transaction(s), {} batch(es), "
               "confirmed up to {}",
               config.name, stats.copied_rows.load(), stats.events.load(), stats.transactions.load(),
               stats.batches.load(), CdcLsnToString(stats.confirmed_lsn.load()));
  return status;
}

}  // namespace sluice::service
