// The initial copy of published tables: several workers, each with its own
// source connection that imports one exported snapshot, copy tables (large
// ones split into ctid page ranges) with COPY ... TO STDOUT. Rows go to the
// destination's binary COPY writer when it has one (no decoding at all),
// otherwise they are parsed from COPY's text format into ChangeBatch rows.
//
// Thread-safety: CopyTables blocks its caller and runs its own workers.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/cancellation.h"
#include "sluice/cdc.h"
#include "sluice/status.h"

namespace sluice::cdc {

struct CopyOptions {
  std::string url;       // source
  std::string snapshot;  // exported snapshot to import
  int workers = 4;
  int64_t batch_bytes = 8 << 20;   // rows per WriteTableRows call, by bytes
  int64_t pages_per_range = 4096;  // split tables larger than this (32 MB)
  const CancellationSource* cancel = nullptr;
};

/// Called (from a worker) when a table's copy is complete and durable.
using TableCopiedFn = std::function<Status(const CdcTable& table, int64_t rows)>;

/// Copies every table; TruncateTable is called for each first. The first
/// error stops all workers and is returned naming the table.
/// `failed_table`, when given, receives the id of the table whose copy failed.
Status CopyTables(const CopyOptions& options, const std::vector<std::shared_ptr<const CdcTable>>& tables,
                  CdcDestination* destination, const TableCopiedFn& on_copied,
                  uint32_t* failed_table = nullptr);

/// Parses one line of COPY's text format (without the newline) into
/// `columns` cells appended to *batch. DataError on a malformed line.
Status AppendCopyTextRow(std::string_view line, size_t columns, ChangeBatch* batch, std::string* scratch);

}  // namespace sluice::cdc
