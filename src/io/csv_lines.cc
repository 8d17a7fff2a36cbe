#include "io/csv_lines.h"

#include <memory>

#include "io/compressed_input.h"

namespace sluice::io {

namespace {

constexpr size_t kBuffer = 1 << 20;

Result<std::unique_ptr<ContentReader>> OpenContent(const std::string& path) {
  return ContentReader::Open(path, CompressionOfPath(path));
}

}  // namespace

Result<int64_t> PhysicalLineOfRecord(const std::string& path, int64_t record) {
  SLUICE_ASSIGN_OR_RETURN(auto reader, OpenContent(path));
  if (record <= 1) return int64_t{1};
  std::vector<char> buf(kBuffer);
  int64_t line = 1;
  int64_t records_done = 0;
  bool in_quotes = false;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(size_t n, reader->Read(buf.data(), buf.size()));
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      char c = buf[i];
      if (c == '"') {
        in_quotes = !in_quotes;  // a doubled quote toggles twice
      } else if (c == '\n') {
        ++line;
        if (!in_quotes && ++records_done == record - 1) return line;
      }
    }
  }
  return Status::NotFound("'" + path + "' has fewer than " + std::to_string(record) + " records");
}

Result<std::vector<int64_t>> PhysicalLinesOfOffsets(const std::string& path,
                                                    const std::vector<int64_t>& offsets) {
  std::vector<int64_t> lines;
  lines.reserve(offsets.size());
  if (offsets.empty()) return lines;
  SLUICE_ASSIGN_OR_RETURN(auto reader, OpenContent(path));
  std::vector<char> buf(kBuffer);
  int64_t pos = 0;
  int64_t line = 1;
  size_t next = 0;
  while (next < offsets.size()) {
    SLUICE_ASSIGN_OR_RETURN(size_t n, reader->Read(buf.data(), buf.size()));
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i, ++pos) {
      while (next < offsets.size() && offsets[next] <= pos) {
        lines.push_back(line);
        ++next;
      }
      if (next == offsets.size()) break;
      if (buf[i] == '\n') ++line;
    }
  }
  while (next++ < offsets.size()) lines.push_back(line);
  return lines;
}

Result<std::optional<LongLine>> FirstLineLongerThan(const std::string& path, int64_t limit) {
  SLUICE_ASSIGN_OR_RETURN(auto reader, OpenContent(path));
  std::vector<char> buf(kBuffer);
  int64_t line = 1;
  int64_t length = 0;
  std::optional<LongLine> found;
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(size_t n, reader->Read(buf.data(), buf.size()));
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) {
      if (buf[i] == '\n') {
        if (found) return found;
        ++line;
        length = 0;
      } else if (++length > limit) {
        found = LongLine{line, length};
      }
    }
    if (found) found->length = length;  // still counting to the end of the line
  }
  return found;
}

}  // namespace sluice::io
