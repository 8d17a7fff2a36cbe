#include "sources/postgres_cdc/cdc_job.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "config/registry_build.h"
#include "core/human_format.h"
#include "core/metrics.h"
#include "io/postgres/pg_conninfo.h"
#include "sources/postgres_cdc/catalog.h"
#include "sources/postgres_cdc/replicator.h"

namespace sluice::cdc {

namespace {

using SystemClock = std::chrono::system_clock;

class CdcJob final : public Job {
 public:
  CdcJob(ReplicatorOptions options, std::unique_ptr<CdcDestination> destination, const Registry* registry,
         const ConfigTable* state, MetricsRegistry* metrics)
      : options_(std::move(options)),
        destination_(std::move(destination)),
        registry_(registry),
        state_(state),
        metrics_(metrics) {}

  bool continuous() const override { return true; }

  std::string Describe() const override {
    return "postgres_cdc publication " + options_.publication + " slot " + options_.slot + " -> " +
           destination_->Describe();
  }

  JobRun Run(const CancellationSource* cancel, ProgressMode) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = true;
      started_ = SystemClock::now();
      error_.clear();
    }
    Status status = Replicate(cancel);
    if (!status.ok()) spdlog::error("pipeline {}: {}", options_.pipeline, status.message());
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
    if (!status.ok()) error_ = status.message();
    return JobRun{status, false};
  }

  Result<std::string> Validate() override {
    std::string report;
    SLUICE_ASSIGN_OR_RETURN(auto catalog, SourceCatalog::Connect(options_.url));
    SLUICE_RETURN_IF_ERROR(catalog->CheckServer());
    report += "  source: " + catalog->connection()->where() + " (wal_level logical, user may replicate)\n";
    SLUICE_RETURN_IF_ERROR(catalog->EnsurePublication(options_.publication, options_.tables, false));
    auto published = catalog->PublicationTables(options_.publication);
    if (published.ok()) {
      report += "  publication " + options_.publication + ": " + std::to_string(published->size()) + " table(s)\n";
      for (const auto& table : *published) {
        SLUICE_ASSIGN_OR_RETURN(auto described, catalog->DescribeTable(table.id));
        report +=
            "    " + table.QualifiedName() + ": " + std::to_string(described->columns.size()) + " columns\n";
      }
    } else {
      report += "  publication " + options_.publication + ": will be created for " +
                std::to_string(options_.tables.size()) + " table(s)\n";
    }
    SLUICE_ASSIGN_OR_RETURN(auto slots, catalog->connection()->Query(
                                            "SELECT coalesce(active_pid::text, ''), coalesce(wal_status, ''), "
                                            "coalesce(confirmed_flush_lsn::text, '') FROM pg_replication_slots "
                                            "WHERE slot_name = $1",
                                            {options_.slot}));
    if (slots.empty()) {
      report += "  slot " + options_.slot + ": will be created (with an initial copy)\n";
    } else {
      if (slots[0][1].value_or("") == "lost") {
        return Status::InvalidArgument("replication slot " + options_.slot + " was invalidated");
      }
      report += "  slot " + options_.slot + ": exists, confirmed up to " + slots[0][2].value_or("?") +
                (slots[0][0].value_or("").empty() ? "" : ", in use by PID " + *slots[0][0]) + "\n";
    }
    SLUICE_ASSIGN_OR_RETURN(auto store, OpenStore());
    report += "  state: " + store->Describe() + "\n";
    SLUICE_RETURN_IF_ERROR(destination_->Check());
    report += "  destination: " + destination_->Describe() + "\n";
    return report;
  }

  Status Ready() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_.empty()) return Status::Unavailable(error_);
      if (!replicator_) return Status::Unavailable("replication not started");
    }
    return destination_->Ping();
  }

  std::string StatusJson() const override {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json j;
    j["state"] = running_ ? "streaming" : error_.empty() ? "stopped" : "failed";
    if (!error_.empty()) j["error"] = error_;
    j["source"] = "postgres_cdc publication " + options_.publication + " slot " + options_.slot;
    j["destination"] = destination_->Describe();
    j["started"] = Iso8601(started_);
    if (replicator_) {
      const auto& stats = replicator_->stats();
      int64_t commit_us = stats.last_commit_time_us.load();
      j["cdc"] = {{"confirmed_lsn", CdcLsnToString(stats.confirmed_lsn.load())},
                  {"events", stats.events.load()},
                  {"transactions", stats.transactions.load()},
                  {"batches", stats.batches.load()},
                  {"copied_rows", stats.copied_rows.load()},
                  {"reconnects", stats.reconnects.load()},
                  {"spilled_bytes", stats.spilled_bytes.load()},
                  {"last_commit", commit_us > 0 ? nlohmann::json(Iso8601(SystemClock::time_point(
                                                      std::chrono::microseconds(commit_us))))
                                                : nlohmann::json(nullptr)}};
      nlohmann::json tables = nlohmann::json::array();
      for (const TableSyncStatus& t : replicator_->TableStates()) {
        nlohmann::json table = {{"table", t.table_name}, {"state", TableSyncStateName(t.state)}};
        if (t.lsn != 0) table["lsn"] = CdcLsnToString(t.lsn);
        if (t.state == TableSyncState::kErrored) {
          table["error"] = t.error;
          table["attempts"] = t.attempts;
          table["retry_at"] = t.retry_at_unix_ms != 0 ? nlohmann::json(Iso8601(SystemClock::time_point(
                                                            std::chrono::milliseconds(t.retry_at_unix_ms))))
                                                      : nlohmann::json(nullptr);
        }
        tables.push_back(std::move(table));
      }
      j["tables"] = std::move(tables);
    }
    return j.dump();
  }

 private:
  Result<std::unique_ptr<CdcStore>> OpenStore() {
    auto store = registry_->MakeCdcStore(*state_);
    if (!store.ok() && !store.status().message().starts_with(state_->Name())) {
      return store.status().WithContext(state_->Name());
    }
    return store;
  }

  Status Replicate(const CancellationSource* cancel) {
    if (!store_) {
      SLUICE_ASSIGN_OR_RETURN(store_, OpenStore());
    }
    ReplicatorOptions options = options_;
    options.cancel = cancel;
    {
      std::lock_guard<std::mutex> lock(mu_);
      replicator_ = std::make_unique<Replicator>(options, destination_.get(), store_.get());
    }
    std::atomic<bool> done{false};
    std::thread refresher([&] {
      while (!done) {
        RefreshMetrics();
        for (int i = 0; i < 10 && !done; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    });
    Status status = replicator_->Run();
    done = true;
    refresher.join();
    RefreshMetrics();
    const auto& stats = replicator_->stats();
    spdlog::info(
        "pipeline {}: stopped; {} row(s) copied, {} change(s) in {} transaction(s), {} batch(es), confirmed up "
        "to {}",
        options_.pipeline, stats.copied_rows.load(), stats.events.load(), stats.transactions.load(),
        stats.batches.load(), CdcLsnToString(stats.confirmed_lsn.load()));
    return status;
  }

  /// The replicator's counters as metrics: advanced by what changed since
  /// the last look.
  void RefreshMetrics() {
    if (metrics_ == nullptr || !replicator_) return;
    const auto& stats = replicator_->stats();
    auto& r = *metrics_;
    const std::vector<std::pair<std::string, std::string>> labels = {{"pipeline", options_.pipeline}};
    auto advance = [&](const char* name, const char* help, int64_t now, int64_t* seen) {
      if (now > *seen) r.Counter(name, help, labels).Add(static_cast<uint64_t>(now - *seen));
      *seen = std::max(*seen, now);
    };
    advance("sluice_cdc_events_total", "Changes (rows inserted, updated, deleted; truncates) applied",
            stats.events.load(), &seen_.events);
    advance("sluice_cdc_transactions_total", "Source transactions applied", stats.transactions.load(),
            &seen_.transactions);
    advance("sluice_cdc_batches_total", "Destination writes", stats.batches.load(), &seen_.batches);
    advance("sluice_cdc_copied_rows_total", "Rows of initial table copies", stats.copied_rows.load(),
            &seen_.copied_rows);
    advance("sluice_cdc_reconnects_total", "Reconnections after a lost connection", stats.reconnects.load(),
            &seen_.reconnects);
    advance("sluice_cdc_spilled_bytes_total", "Bytes of streamed transactions spilled to disk",
            stats.spilled_bytes.load(), &seen_.spilled);
    r.Gauge("sluice_cdc_confirmed_lsn", "WAL position confirmed to the source (durable in the destination)",
            labels)
        .Set(static_cast<double>(stats.confirmed_lsn.load()));
    r.Gauge("sluice_cdc_last_commit_timestamp_seconds",
            "Source commit time of the last transaction handed to the destination", labels)
        .Set(static_cast<double>(stats.last_commit_time_us.load()) / 1e6);
  }

  const ReplicatorOptions options_;
  std::unique_ptr<CdcDestination> destination_;
  const Registry* registry_;
  const ConfigTable* state_;
  MetricsRegistry* metrics_;
  std::unique_ptr<CdcStore> store_;
  struct {
    int64_t events = 0, transactions = 0, batches = 0, copied_rows = 0, reconnects = 0, spilled = 0;
  } seen_;

  mutable std::mutex mu_;  // guards what follows: read by the monitoring threads
  std::unique_ptr<Replicator> replicator_;
  bool running_ = false;
  SystemClock::time_point started_{};
  std::string error_;
};

/// The replication slot's default name: sluice_<pipeline>, in the letters
/// slot names allow.
std::string DefaultSlot(const std::string& pipeline) {
  std::string slot = "sluice_";
  for (char c : pipeline) {
    slot.push_back(std::isalnum(static_cast<unsigned char>(c)) ? static_cast<char>(std::tolower(c)) : '_');
  }
  return slot;
}

Result<std::unique_ptr<Job>> MakeCdcJob(const JobContext& context) {
  const ConfigTable& src = *context.source;
  ReplicatorOptions o;
  o.pipeline = context.pipeline;
  o.url = src.GetString("url");
  o.publication = src.GetString("publication");
  o.tables = src.GetStringList("tables");
  o.slot = src.GetString("slot");
  o.max_table_sync_workers = static_cast<int>(src.GetInt("max_table_sync_workers", o.max_table_sync_workers));
  o.table_error_retry_delay_ms = src.GetInt("table_error_retry_delay_ms", o.table_error_retry_delay_ms);
  o.table_error_retry_max_attempts = src.GetInt("table_error_retry_max_attempts", o.table_error_retry_max_attempts);
  o.publication_refresh_ms = src.GetInt("publication_refresh_ms", o.publication_refresh_ms);
  o.stream_memory_bytes = src.GetBytes("stream_memory", o.stream_memory_bytes);
  const ConfigTable& batch = context.section("batch");
  o.batch_max_rows = batch.GetInt("max_rows", o.batch_max_rows);
  o.batch_max_bytes = batch.GetBytes("max_bytes", o.batch_max_bytes);
  o.batch_max_fill_ms = batch.GetInt("max_fill_ms", o.batch_max_fill_ms);
  o.reconnect.initial = std::chrono::milliseconds(context.retry.initial_ms);
  o.reconnect.max_delay = std::chrono::milliseconds(context.retry.max_delay_ms);
  o.spill_directory = (context.engine.temp_directory.empty() ? std::filesystem::temp_directory_path().string()
                                                             : context.engine.temp_directory) +
                      "/sluice-spill";
  SLUICE_RETURN_IF_ERROR(src.Check());
  SLUICE_RETURN_IF_ERROR(batch.Check());
  SLUICE_RETURN_IF_ERROR(batch.CheckAllRead(""));
  if (o.url.empty()) return Status::InvalidArgument(src.Name() + " url is required for type \"postgres_cdc\"");
  SLUICE_RETURN_IF_ERROR(CheckPgConnInfo(o.url).WithContext(src.Name() + " url"));
  if (o.publication.empty()) {
    return Status::InvalidArgument(src.Name() + " publication is required for type \"postgres_cdc\"");
  }
  if (o.slot.empty()) o.slot = DefaultSlot(context.pipeline);
  for (char c : o.slot) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) || c == '_')) {
      return Status::InvalidArgument(src.Name() + " slot '" + o.slot +
                                     "': replication slot names use only lower-case letters, digits and _");
    }
  }
  if (o.slot.size() > 63) return Status::InvalidArgument(src.Name() + " slot is longer than 63 characters");
  if (o.max_table_sync_workers < 1 || o.max_table_sync_workers > 64) {
    return Status::InvalidArgument(src.Name() + " max_table_sync_workers must be between 1 and 64");
  }
  if (o.table_error_retry_delay_ms < 0 || o.table_error_retry_max_attempts < 0) {
    return Status::InvalidArgument(src.Name() + " table_error_retry_* must not be negative");
  }
  if (o.publication_refresh_ms < 100) {
    return Status::InvalidArgument(src.Name() + " publication_refresh_ms must be at least 100");
  }
  if (o.batch_max_rows < 1 || o.batch_max_bytes < 1024 || o.batch_max_fill_ms < 0) {
    return Status::InvalidArgument("[batch] max_rows must be at least 1, max_bytes at least 1KB, max_fill_ms >= 0");
  }
  if (context.has_section("transform")) {
    return Status::InvalidArgument(
        "[transform] is not supported for postgres_cdc sources (changes are applied as they are)");
  }
  if (context.has_section("schedule")) {
    return Status::InvalidArgument("[schedule] does not apply to postgres_cdc: it replicates continuously");
  }
  SLUICE_ASSIGN_OR_RETURN(auto destination, context.registry->MakeCdcDestination(context.section("destination")));
  // The store opens (and may connect) when replication starts; its keys are
  // checked now.
  const ConfigTable& state = context.section("state");
  SLUICE_RETURN_IF_ERROR(config::CheckComponentKeys(*context.registry, ComponentKind::kCdcStore, state));
  return std::unique_ptr<Job>(std::make_unique<CdcJob>(std::move(o), std::move(destination), context.registry,
                                                       &state, context.metrics));
}

}  // namespace

Status RegisterPostgresCdcSource(Registry& registry) {
  return registry.AddInternal(
      ComponentKind::kSource, "postgres_cdc", std::make_shared<const JobFactory>(MakeCdcJob),
      {"change data capture from PostgreSQL: an initial copy of the published tables, then every change "
       "through pgoutput",
       {"url", "publication", "tables", "slot", "max_table_sync_workers", "table_error_retry_delay_ms",
        "table_error_retry_max_attempts", "publication_refresh_ms", "stream_memory"}});
}

}  // namespace sluice::cdc
