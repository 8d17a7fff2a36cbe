#include "sources/postgres_cdc/cdc_job.h"

#include <spdlog/spdlog.h>

#include <algorithm>
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
#include "state/postgres_state_store.h"
#include "state/worker_lease.h"

namespace sluice::cdc {

namespace {

using SystemClock = std::chrono::system_clock;

class CdcJob final : public Job {
 public:
  /// `shared_url`: the PostgreSQL state store's URL, when several processes
  /// may serve the pipeline (one active, the others standing by).
  CdcJob(ReplicatorOptions options, std::unique_ptr<CdcDestination> destination, const Registry* registry,
         const ConfigTable* state, MetricsRegistry* metrics, std::string shared_url, int64_t lease_ms)
      : options_(std::move(options)),
        destination_(std::move(destination)),
        registry_(registry),
        state_(state),
        metrics_(metrics),
        shared_url_(std::move(shared_url)),
        lease_ms_(lease_ms) {}

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
      report +=
          "  publication " + options_.publication + ": " + std::to_string(published->size()) + " table(s)\n";
      for (const auto& table : *published) {
        SLUICE_ASSIGN_OR_RETURN(auto described, catalog->DescribeTable(table.id));
        report +=
            "    " + table.QualifiedName() + ": " + std::to_string(described->columns.size()) + " columns\n";
      }
    } else {
      report += "  publication " + options_.publication + ": will be created for " +
                std::to_string(options_.tables.size()) + " table(s)\n";
    }
    SLUICE_ASSIGN_OR_RETURN(
        auto slots,
        catalog->connection()->Query("SELECT coalesce(active_pid::text, ''), coalesce(wal_status, ''), "
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
    state::StateStore* standby_store = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!error_.empty()) return Status::Unavailable(error_);
      // A standby is ready when it could take over: the state store answers.
      if (role_ == "standby") standby_store = lease_store_.get();
      if (!replicator_ && standby_store == nullptr) return Status::Unavailable("replication not started");
    }
    if (standby_store) return standby_store->Ping().WithContext("state store (standby)");
    return destination_->Ping();
  }

  std::string StatusJson() const override {
    std::lock_guard<std::mutex> lock(mu_);
    nlohmann::json j;
    j["state"] = role_ == "standby" ? "standby"
                 : running_         ? "streaming"
                 : error_.empty()   ? "stopped"
                                    : "failed";
    if (lease_) {
      j["role"] = role_;
      j["worker"] = lease_->worker();
      if (epoch_ > 0) j["epoch"] = epoch_;
      j["workers"] = state::WorkersJson(lease_->Peers());
    }
    if (!error_.empty()) j["error"] = error_;
    j["source"] = "postgres_cdc publication " + options_.publication + " slot " + options_.slot;
    j["destination"] = destination_->Describe();
    j["started"] = Iso8601(started_);
    if (replicator_ && role_ != "standby") {
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
    if (shared_url_.empty()) return ReplicateOnce(cancel, options_);
    return ReplicateShared(cancel);
  }

  void SetRole(std::string role, int64_t epoch) {
    std::lock_guard<std::mutex> lock(mu_);
    role_ = std::move(role);
    epoch_ = epoch;
  }

  /// Several processes serve the pipeline: this one stands by until it
  /// takes the pipeline's run lease, replicates while it holds it (every
  /// destination transaction fenced by the lease's epoch), and stands by
  /// again when it loses it.
  Status ReplicateShared(const CancellationSource* cancel) {
    if (!lease_) {
      SLUICE_ASSIGN_OR_RETURN(auto store, state::OpenPostgresStateStore(shared_url_));
      SLUICE_ASSIGN_OR_RETURN(auto lease,
                              state::WorkerLease::Start(store.get(), options_.pipeline, lease_ms_));
      std::lock_guard<std::mutex> lock(mu_);
      lease_store_ = std::move(store);
      lease_ = std::move(lease);
    }
    const auto poll = std::chrono::milliseconds(std::clamp<int64_t>(lease_ms_ / 4, 200, 1000));
    bool announced = false;
    while (!cancel->cancelled()) {
      SetRole("standby", 0);
      lease_->SetDoing("standby");
      if (lease_->Lost()) (void)lease_->RenewNow();
      auto epoch = lease_->Lost() ? Result<std::optional<int64_t>>(std::optional<int64_t>())
                                  : lease_store_->TryAcquireLease(options_.pipeline, state::kRunLease);
      if (!epoch.ok() || !epoch->has_value()) {
        if (!announced) {
          spdlog::info("pipeline {}: worker {} stands by ({})", options_.pipeline, lease_->worker(),
                       epoch.ok() ? "another process is active" : epoch.status().message());
          announced = true;
        }
        SleepUnlessCancelled(poll, cancel);
        continue;
      }
      announced = false;
      const int64_t held = **epoch;
      SetRole("active", held);
      lease_->SetDoing("active (epoch " + std::to_string(held) + ")");
      spdlog::info("pipeline {}: worker {} is active (lease epoch {})", options_.pipeline, lease_->worker(),
                   held);
      CancellationSource stop;
      std::atomic<bool> lost{false};
      Status status;
      {
        CancelWatcher forward(cancel, [&stop] { stop.Cancel(); });
        lease_->Watch(state::kRunLease, [&] {
          lost = true;
          stop.Cancel();
        });
        ReplicatorOptions options = options_;
        options.fence = lease_store_->LeaseFence(options_.pipeline, state::kRunLease, held);
        options.fence_database = lease_store_->PostgresDatabase();
        options.session_name = state::WorkerSessionName(options_.pipeline, lease_->worker());
        // A previous active process paused inside a destination transaction
        // still holds its row locks: its sessions end now (its commit would
        // be refused by the fence anyway).
        Status ended = lease_store_->EndSessionsOfOtherWorkers(options_.pipeline);
        if (!ended.ok()) {
          spdlog::warn("pipeline {}: could not end the sessions of earlier active processes: {}",
                       options_.pipeline, ended.message());
        }
        options.may_take_slot = [this, held] {
          auto again = lease_store_->TryAcquireLease(options_.pipeline, state::kRunLease);
          return again.ok() && again->has_value() && **again == held;
        };
        status = ReplicateOnce(&stop, options);
        lease_->Unwatch();
      }
      if (cancel->cancelled()) {
        (void)lease_store_->ReleaseLease(options_.pipeline, state::kRunLease);
        return Status::OK();
      }
      if (lost || status.code() == StatusCode::kCancelled) {
        spdlog::warn("pipeline {}: worker {} lost the lease (epoch {}){}; standing by", options_.pipeline,
                     lease_->worker(), held, status.ok() ? "" : ": " + status.message());
        std::lock_guard<std::mutex> lock(mu_);
        error_.clear();
        continue;
      }
      // A failure that is not about the lease: released, so that another
      // process can try.
      (void)lease_store_->ReleaseLease(options_.pipeline, state::kRunLease);
      return status;
    }
    return Status::OK();
  }

  Status ReplicateOnce(const CancellationSource* cancel, ReplicatorOptions options) {
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
        "pipeline {}: stopped; {} row(s) copied, {} change(s) in {} transaction(s), {} batch(es), confirmed "
        "up "
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
  const std::string shared_url_;
  const int64_t lease_ms_;
  struct {
    int64_t events = 0, transactions = 0, batches = 0, copied_rows = 0, reconnects = 0, spilled = 0;
  } seen_;

  mutable std::mutex mu_;  // guards what follows: read by the monitoring threads
  std::unique_ptr<Replicator> replicator_;
  // Several processes: the store holding the leases (its connection apart
  // from the CDC store's), this worker, and its role ("standby", "active").
  std::unique_ptr<state::StateStore> lease_store_;
  std::unique_ptr<state::WorkerLease> lease_;
  std::string role_;
  int64_t epoch_ = 0;
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
  o.table_error_retry_max_attempts =
      src.GetInt("table_error_retry_max_attempts", o.table_error_retry_max_attempts);
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
  if (o.url.empty())
    return Status::InvalidArgument(src.Name() + " url is required for type \"postgres_cdc\"");
  SLUICE_RETURN_IF_ERROR(CheckPgConnInfo(o.url).WithContext(src.Name() + " url"));
  if (o.publication.empty()) {
    return Status::InvalidArgument(src.Name() + " publication is required for type \"postgres_cdc\"");
  }
  if (o.slot.empty()) o.slot = DefaultSlot(context.pipeline);
  for (char c : o.slot) {
    if (!(std::islower(static_cast<unsigned char>(c)) || std::isdigit(static_cast<unsigned char>(c)) ||
          c == '_')) {
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
    return Status::InvalidArgument(
        "[batch] max_rows must be at least 1, max_bytes at least 1KB, max_fill_ms >= 0");
  }
  if (context.has_section("transform")) {
    return Status::InvalidArgument(
        "[transform] is not supported for postgres_cdc sources (changes are applied as they are)");
  }
  if (context.has_section("schedule")) {
    return Status::InvalidArgument("[schedule] does not apply to postgres_cdc: it replicates continuously");
  }
  SLUICE_ASSIGN_OR_RETURN(auto destination,
                          context.registry->MakeCdcDestination(context.section("destination")));
  // The store opens (and may connect) when replication starts; its keys are
  // checked now.
  const ConfigTable& state = context.section("state");
  SLUICE_RETURN_IF_ERROR(config::CheckComponentKeys(*context.registry, ComponentKind::kCdcStore, state));
  // A PostgreSQL state store lets several processes serve the pipeline: one
  // active, the others standing by.
  std::string shared_url;
  int64_t lease_ms = state::kDefaultLeaseMs;
  if (context.registry->TypeOf(ComponentKind::kCdcStore, state) == "postgres") {
    shared_url = state.GetString("url");
    SLUICE_ASSIGN_OR_RETURN(lease_ms, state::ReadLeaseMs(state));
  }
  return std::unique_ptr<Job>(std::make_unique<CdcJob>(std::move(o), std::move(destination), context.registry,
                                                       &state, context.metrics, std::move(shared_url),
                                                       lease_ms));
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
