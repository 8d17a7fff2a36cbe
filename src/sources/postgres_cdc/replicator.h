// Replicator: PostgreSQL change data capture from one publication through
// one logical replication slot into a CdcDestination, with its state in a
// CdcStore.
//
// How it works (see the README's CDC section for the user's view):
// - Start: checks the server (wal_level, REPLICATION), creates the
//   publication and the slot when missing. A new slot exports a snapshot,
//   and every published table is copied from it in parallel; each table is
//   then "sync done" at the slot's consistent point, where streaming starts.
// - Tables that need a copy later (added to the publication, errored and
//   due for a retry, or interrupted by a crash) are copied from the
//   snapshot of a temporary slot created at that moment, at point C. The
//   stream then skips that table's transactions that commit before C (the
//   copy has them) and applies those from C on: no change is lost or
//   repeated at the boundary. Streaming pauses while such a copy runs.
// - Streaming: pgoutput v2 with streaming of large in-progress transactions
//   (buffered per transaction within a memory budget, spilled to disk
//   beyond it). Whole transactions are batched (max rows, bytes, fill time)
//   and written to the destination; only then is the batch's end LSN
//   confirmed to the server. When the destination and the state store share
//   a PostgreSQL database, the LSN commits with the rows: exactly once.
// - Lost connections (either side) reconnect with backoff and resume from
//   the last confirmed LSN; whatever was not durable is streamed again.
//
// Thread-safety: Run() blocks its thread; cancel through the atomic flag.
// stats() may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/cancellation.h"
#include "core/retry.h"
#include "sluice/cdc.h"
#include "sluice/status.h"

namespace sluice::cdc {

struct ReplicatorOptions {
  std::string pipeline;
  std::string url;
  std::string publication;
  std::vector<std::string> tables;  // create the publication for these when missing
  std::string slot;
  int max_table_sync_workers = 4;
  int64_t table_error_retry_delay_ms = 10000;
  int64_t table_error_retry_max_attempts = 5;
  int64_t batch_max_rows = 10000;
  int64_t batch_max_bytes = 8 << 20;
  int64_t batch_max_fill_ms = 1000;
  /// Memory for in-progress streamed transactions before they spill.
  int64_t stream_memory_bytes = 64 << 20;
  std::string spill_directory = "/tmp";
  /// How often the publication is checked for added or removed tables.
  int64_t publication_refresh_ms = 10000;
  /// Standby status updates at least this often.
  int64_t status_interval_ms = 10000;
  /// Backoff between reconnections after a lost connection ([retry]
  /// initial and max_delay); replication reconnects until it is stopped,
  /// whatever the policy's attempts and elapsed time say.
  RetryPolicy reconnect{std::chrono::milliseconds(500), std::chrono::milliseconds(30000), 2.0, 0.5};
  /// Stops replication (then Run returns OK); must outlive the replicator.
  const CancellationSource* cancel = nullptr;
  /// Several processes serve the pipeline: the fence every destination
  /// transaction runs (CdcDestination::SetFence) when the destination's
  /// database is `fence_database` (the state store's).
  std::vector<CommitStatement> fence;
  std::string fence_database;
  std::string session_name;  // the destination's sessions (CdcDestination::SetFence)
  /// When set and true at the moment the slot is found in use, the backend
  /// that holds it (a previous active process that stopped or lost its
  /// lease) is ended rather than waited for.
  std::function<bool()> may_take_slot;
};

struct ReplicatorStats {
  std::atomic<int64_t> events{0};
  std::atomic<int64_t> transactions{0};
  std::atomic<int64_t> batches{0};
  std::atomic<int64_t> copied_rows{0};
  std::atomic<int64_t> spilled_bytes{0};
  std::atomic<int64_t> reconnects{0};
  std::atomic<uint64_t> confirmed_lsn{0};
  std::atomic<int64_t> last_commit_time_us{0};
};

class Replicator {
 public:
  Replicator(ReplicatorOptions options, CdcDestination* destination, CdcStore* store);
  ~Replicator();
  Replicator(const Replicator&) = delete;
  Replicator& operator=(const Replicator&) = delete;

  /// Replicates until the cancel flag is set (then returns OK after writing
  /// what was complete) or a non-retryable error.
  Status Run();
  const ReplicatorStats& stats() const { return stats_; }
  /// The tables' sync states as the replicator last knew them; any thread.
  std::vector<TableSyncStatus> TableStates() const;

 private:
  class Session;
  void PublishStates(const std::map<uint32_t, TableSyncStatus>& states);
  ReplicatorOptions options_;
  CdcDestination* destination_;
  CdcStore* store_;
  ReplicatorStats stats_;
  bool exactly_once_ = false;
  mutable std::mutex states_mu_;
  std::vector<TableSyncStatus> states_;  // a copy for monitoring
};

}  // namespace sluice::cdc
