// JsonlLogDestination: a CDC destination, type "jsonl_log", that logs what
// it receives to stderr ("[jsonl_log] ...") and appends it to a file as JSON
// lines, one line per truncated table, per copied row and per change:
//
//   {"phase":"copy","op":"truncate","table":"public.orders","columns":["id","customer_id",...]}
//   {"phase":"copy","op":"insert","table":"public.orders","new":{"id":"1","note":null,...}}
//   {"phase":"stream","op":"insert","table":"public.orders","xid":745,"lsn":"0/1A2B3C8",
//    "end_lsn":"0/1A2B400","commit_time_us":1733476800000000,"new":{"id":"4",...}}
//   {"phase":"stream","op":"update",...,"new":{...},"old":{"id":"1"}}
//   {"phase":"stream","op":"delete",...,"old":{"id":"2"}}
//   {"phase":"stream","op":"truncate","table":"public.orders",...,"cascade":false,"restart_identity":false}
//
// "copy" lines come from the initial copy (TruncateTable, then
// WriteTableRows), "stream" lines from WriteEvents, whole transactions in
// commit order: "lsn" is the transaction's commit LSN, "end_lsn" the position
// sluice confirms once the line is durable. "old" holds the key columns of a
// deleted row or of an update that changed the key (every column with
// REPLICA IDENTITY FULL).
//
// A transaction larger than the [batch] budget reaches WriteEvents in
// pieces; their lines are held in memory until the last piece arrives, so
// the file only ever holds whole transactions. Lines of the earlier pieces
// have no "lsn" or "end_lsn" (the commit was not known yet), only the xid.
//
// Values are PostgreSQL's text form as JSON strings, NULL is null. A TOASTed
// value the update did not change is not sent by PostgreSQL: its column is
// left out of "new" and named in "unchanged_toast".
//
//   [destination]
//   type = "jsonl_log"
//   path = "tutorial_changes.jsonl"
//
// Delivery is at least once: the store is not in this file's transaction, so
// after a crash between a write and its checkpoint a transaction is written
// again (with the same LSN, by which a reader can skip it).
//
// Thread-safety: copy workers call TruncateTable and WriteTableRows at once;
// one mutex serialises appends to the file.
#pragma once

#include <sluice/sluice.h>

#include <cstddef>
#include <cstdio>
#include <mutex>
#include <string>
#include <vector>

namespace tutorial {

class JsonlLogDestination : public sluice::CdcDestination {
 public:
  explicit JsonlLogDestination(std::string path);
  ~JsonlLogDestination() override;

  /// Opens the file for appending.
  sluice::Status Open() override;
  sluice::Status TruncateTable(const sluice::CdcTable& table) override;
  sluice::Status WriteTableRows(const sluice::CdcTable& table, const sluice::ChangeBatch& rows) override;
  sluice::Status WriteEvents(const sluice::ChangeBatch& events,
                             const std::vector<sluice::CommitStatement>& checkpoint) override;
  void SetExactlyOnce(bool exactly_once) override;
  void DiscardIncomplete() override;
  std::string Describe() const override;

 private:
  /// Appends lines and makes them durable (fsync) before returning OK.
  sluice::Status AppendLocked(const std::string& lines);

  const std::string path_;
  std::mutex mu_;
  std::FILE* file_ = nullptr;  // guarded by mu_
  /// Lines of a transaction whose pieces have arrived in incomplete batches:
  /// written when its last piece arrives, dropped by DiscardIncomplete.
  std::string pending_;         // guarded by mu_ (WriteEvents runs on one thread)
  size_t pending_changes_ = 0;  // guarded by mu_: how many lines pending_ holds
};

/// Adds "jsonl_log" to the registry's CDC destinations.
sluice::Status RegisterJsonlLogDestination(sluice::Registry& registry);

}  // namespace tutorial
