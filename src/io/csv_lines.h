// Physical line numbers in CSV files. DuckDB counts records; a quoted field
// that spans lines makes every later record number smaller than the line a
// user sees in an editor. These helpers turn record numbers and byte
// offsets into physical line numbers. Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/status.h"

namespace sluice::io {

/// The physical line (1-based) on which record `record` (1-based, the
/// header counting as record 1 when present) starts, for a CSV file with
/// double-quote quoting and doubled-quote escaping.
Result<int64_t> PhysicalLineOfRecord(const std::string& path, int64_t record);

/// Physical lines (1-based) of the given byte offsets, which must be sorted.
Result<std::vector<int64_t>> PhysicalLinesOfOffsets(const std::string& path, const std::vector<int64_t>& offsets);

}  // namespace sluice::io
