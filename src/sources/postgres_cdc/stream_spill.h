// StreamSpill: the raw pgoutput messages of in-progress (streamed)
// transactions, kept until their Stream Commit or Stream Abort. All open
// transactions share one memory budget; beyond it a transaction's messages
// go to a temporary file, so a 10-million-row transaction costs disk, not
// memory. Subtransaction aborts are remembered and their messages skipped
// on replay.
//
// Thread-safety: one replication stream, one thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

#include "sluice/status.h"

namespace sluice::cdc {

class StreamSpill {
 public:
  /// `directory`: where spill files go (created when needed); files are
  /// unlinked as soon as they are opened, so nothing outlives the process.
  StreamSpill(std::string directory, int64_t memory_budget)
      : directory_(std::move(directory)), budget_(memory_budget) {}
  ~StreamSpill();
  StreamSpill(const StreamSpill&) = delete;
  StreamSpill& operator=(const StreamSpill&) = delete;

  /// Appends one message of top-level transaction `xid`, sent for (sub)transaction `subxid`.
  Status Append(uint32_t xid, uint32_t subxid, std::string_view message);
  /// Stream Abort: the whole transaction when subxid == xid, else one subtransaction.
  void Abort(uint32_t xid, uint32_t subxid);
  /// Stream Commit: calls `each` for every kept message in order, then forgets the transaction.
  Status Replay(uint32_t xid, const std::function<Status(std::string_view)>& each);
  /// Forgets everything (reconnect).
  void Clear();

  bool empty() const { return txns_.empty(); }
  int64_t memory_bytes() const { return memory_; }
  int64_t spilled_bytes() const { return spilled_total_; }

 private:
  struct Txn {
    std::string memory;  // records: u32 subxid, u32 length, bytes
    std::FILE* file = nullptr;
    int64_t file_bytes = 0;
    std::set<uint32_t> aborted;
  };
  Status SpillLargest();
  void Close(Txn& txn);

  std::string directory_;
  int64_t budget_;
  int64_t memory_ = 0;
  int64_t spilled_total_ = 0;
  std::map<uint32_t, Txn> txns_;
};

}  // namespace sluice::cdc
