// Physical line numbers in CSV files. DuckDB counts records; a quoted field
// that spans lines makes every later record number smaller than the line a
// user sees in an editor. These helpers turn record numbers and byte
// offsets into physical line numbers. Compressed files (.gz, .zst) are read
// through their decompressor, and offsets count decompressed bytes.
// Stateless; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sluice/status.h"

namespace sluice::io {

/// The physical line (1-based) on which record `record` (1-based, the
/// header counting as record 1 when present) starts, for a CSV file with
/// double-quote quoting and doubled-quote escaping.
Result<int64_t> PhysicalLineOfRecord(const std::string& path, int64_t record);

/// Physical lines (1-based) of the given byte offsets, which must be sorted.
Result<std::vector<int64_t>> PhysicalLinesOfOffsets(const std::string& path,
                                                    const std::vector<int64_t>& offsets);

struct LongLine {
  int64_t line = 0;    // 1-based
  int64_t length = 0;  // bytes, without the newline
};

/// The first physical line longer than `limit` bytes, or nullopt.
Result<std::optional<LongLine>> FirstLineLongerThan(const std::string& path, int64_t limit);

}  // namespace sluice::io
