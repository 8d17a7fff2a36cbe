// CachedFileStore: a CDC state store, type "cached_file", that keeps what
// sluice asks it to keep (table schemas, table states, the confirmed LSN) in
// memory and writes it through to a file on every change. At start-up it
// reloads the file, so a restarted pipeline continues where it stopped:
// tables already copied are not copied again, and streaming resumes after
// the last confirmed LSN. Every operation is logged to stderr as
// "[cached_file] ...".
//
//   [state]
//   type = "cached_file"
//   path = "tutorial_state.txt"
//
// The file is plain text, one record a line, fields separated by tabs
// (a tab, newline or backslash inside a field is written \t, \n, \\):
//
//   confirmed_lsn  0/1A2B3C8
//   table          16385  public  orders  d
//   column         16385  id  23  -1  1  integer  <type definition>
//   state          16385  public.orders  ready  0/1A2B000  0  0  <error>
//
// (table: oid, schema, name, replica identity d/n/f/i; column: table oid,
// name, type oid, type modifier, key 1/0, type name, type definition;
// state: table oid, name, state, LSN, attempts, retry at (unix ms), error.)
//
// Thread-safety: sluice may call every method from any thread; one mutex
// guards the cache and the file.
#pragma once

#include <sluice/sluice.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace tutorial {

class CachedFileStore : public sluice::CdcStore {
 public:
  /// Touches nothing yet: the file is read when sluice first uses the store.
  explicit CachedFileStore(std::string path);

  // CdcSchemaStore: the tables as last applied to the destination.
  sluice::Result<std::vector<sluice::CdcTable>> LoadSchemas() override;
  sluice::Status SaveSchema(const sluice::CdcTable& table) override;

  // CdcStateStore: where each table's copy is, and how far the destination
  // has made the stream durable.
  sluice::Result<std::vector<sluice::TableSyncStatus>> LoadTableStates() override;
  sluice::Status SaveTableState(const sluice::TableSyncStatus& status) override;
  sluice::Result<sluice::CdcLsn> LoadConfirmedLsn() override;
  sluice::Status SaveConfirmedLsn(sluice::CdcLsn lsn) override;

  // CdcCleanupStore.
  sluice::Status DropTable(uint32_t table_id) override;
  sluice::Status DropPipeline() override;

  std::string Describe() const override;

 private:
  /// Everything the store keeps: the cache, and what the file holds.
  struct Contents {
    std::map<uint32_t, sluice::CdcTable> schemas;
    std::map<uint32_t, sluice::TableSyncStatus> states;
    sluice::CdcLsn confirmed_lsn = 0;
  };

  /// Reads the file into the cache on first use (a missing file is an empty store).
  sluice::Status LoadLocked();
  /// Writes `next` to the file, then makes it the cache: when the write
  /// fails, the cache still matches the file.
  sluice::Status WriteThroughLocked(Contents next);

  const std::string path_;
  std::mutex mu_;
  bool loaded_ = false;  // guarded by mu_
  Contents cache_;       // guarded by mu_
};

/// Adds "cached_file" to the registry's CDC state stores.
sluice::Status RegisterCachedFileStore(sluice::Registry& registry);

}  // namespace tutorial
