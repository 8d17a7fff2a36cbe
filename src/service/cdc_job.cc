#include "service/cdc_job.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "destinations/events/event_destinations.h"
#include "destinations/postgres/postgres_cdc_destination.h"
#include "service/batch_job.h"
#include "sources/postgres_cdc/catalog.h"
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

Result<std::string> ValidateCdcPipeline(const PipelineConfig& config) {
  std::string report;
  SLUICE_ASSIGN_OR_RETURN(auto catalog, cdc::SourceCatalog::Connect(config.source.url));
  SLUICE_RETURN_IF_ERROR(catalog->CheckServer());
  report += "  source: " + catalog->connection()->where() + " (wal_level logical, user may replicate)\n";
  SLUICE_RETURN_IF_ERROR(catalog->EnsurePublication(config.source.publication, config.source.tables, false));
  auto published = catalog->PublicationTables(config.source.publication);
  if (published.ok()) {
    report += "  publication " + config.source.publication + ": " + std::to_string(published->size()) +
              " table(s)\n";
    for (const auto& table : *published) {
      SLUICE_ASSIGN_OR_RETURN(auto described, catalog->DescribeTable(table.id));
      report +=
          "    " + table.QualifiedName() + ": " + std::to_string(described->columns.size()) + " columns\n";
    }
  } else {
    report += "  publication " + config.source.publication + ": will be created for " +
              std::to_string(config.source.tables.size()) + " table(s)\n";
  }
  SLUICE_ASSIGN_OR_RETURN(auto slots, catalog->connection()->Query(
                                          "SELECT coalesce(active_pid::text, ''), coalesce(wal_status, ''), "
                                          "coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots "
                                          "WHERE slot_name = $1",
                                          {config.source.slot}));
  if (slots.empty()) {
    report += "  slot " + config.source.slot + ": will be created (with an initial copy)\n";
  } else {
    if (slots[0][1].value_or("") == "lost") {
      return Status::InvalidArgument("replication slot " + config.source.slot + " was invalidated");
    }
    report += "  slot " + config.source.slot + ": exists, confirmed up to " + slots[0][2].value_or("?") +
              (slots[0][0].value_or("").empty() ? "" : ", in use by PID " + *slots[0][0]) + "\n";
  }
  SLUICE_ASSIGN_OR_RETURN(auto store, state::OpenCdcStore(StateConfigFor(config), config.name));
  report += "  state: " + store->Describe() + "\n";
  SLUICE_ASSIGN_OR_RETURN(auto destination, MakeCdcDestination(config));
  if (config.destination.type == "postgres") {
    SLUICE_RETURN_IF_ERROR(destination->Open());
  }
  report += "  destination: " + destination->Describe() + "\n";
  return report;
}

Result<std::unique_ptr<CdcJob>> CdcJob::Make(const PipelineConfig& config, const std::atomic<bool>* cancel) {
  std::unique_ptr<CdcJob> job(new CdcJob());
  job->name_ = config.name;
  SLUICE_ASSIGN_OR_RETURN(job->destination_, MakeCdcDestination(config));
  auto store = state::OpenCdcStore(StateConfigFor(config), config.name);
  if (!store.ok()) return store.status().WithContext("[state]");
  job->store_ = std::move(store).value();
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
  options.spill_directory =
      (config.engine.temp_directory.empty() ? std::filesystem::temp_directory_path().string()
                                            : config.engine.temp_directory) +
      "/sluice-spill";
  options.cancel = cancel;
  job->replicator_ = std::make_unique<cdc::Replicator>(options, job->destination_.get(), job->store_.get());
  return job;
}

CdcJob::~CdcJob() = default;

const cdc::ReplicatorStats& CdcJob::stats() const { return replicator_->stats(); }

Status CdcJob::Run() {
  Status status = replicator_->Run();
  const auto& stats = replicator_->stats();
  spdlog::info(
      "pipeline {}: stopped; {} row(s) copied, {} change(s) in {} transaction(s), {} batch(es), "
      "confirmed up to {}",
      name_, stats.copied_rows.load(), stats.events.load(), stats.transactions.load(), stats.batches.load(),
      CdcLsnToString(stats.confirmed_lsn.load()));
  return status;
}

Status RunCdcPipeline(const PipelineConfig& config, const std::atomic<bool>* cancel) {
  SLUICE_ASSIGN_OR_RETURN(auto job, CdcJob::Make(config, cancel));
  return job->Run();
}

}  // namespace sluice::service
