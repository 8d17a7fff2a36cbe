// The small out-of-line helpers of include/sluice/cdc.h that know nothing
// of PostgreSQL (CdcLsnToString is in io/postgres/lsn.cc).
#include "sluice/cdc.h"

namespace sluice {

bool CdcTable::has_key() const {
  if (identity == CdcIdentity::kFull) return true;
  for (const CdcColumn& column : columns) {
    if (column.key) return true;
  }
  return false;
}

const char* ChangeOpName(ChangeOp op) {
  switch (op) {
    case ChangeOp::kInsert:
      return "insert";
    case ChangeOp::kUpdate:
      return "update";
    case ChangeOp::kDelete:
      return "delete";
    case ChangeOp::kTruncate:
      return "truncate";
  }
  return "?";
}

namespace {
constexpr const char* kStateNames[] = {"init",     "data_sync", "finished_copy", "sync_wait",
                                       "catch_up", "sync_done", "ready",         "errored"};
}  // namespace

const char* TableSyncStateName(TableSyncState state) {
  auto index = static_cast<size_t>(state);
  return index < std::size(kStateNames) ? kStateNames[index] : "?";
}

Result<TableSyncState> ParseTableSyncState(std::string_view name) {
  for (size_t i = 0; i < std::size(kStateNames); ++i) {
    if (name == kStateNames[i]) return static_cast<TableSyncState>(i);
  }
  return Status::InvalidArgument("unknown table sync state '" + std::string(name) + "'");
}

}  // namespace sluice
