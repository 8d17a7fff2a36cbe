#include "io/csv_lines.h"

#include <cstdio>
#include <cstring>
#include <memory>

namespace sluice::io {

namespace {

struct FileCloser {
  void operator()(FILE* f) const {
    if (f) std::fclose(f);
  }
};

}  // namespace

Result<int64_t> PhysicalLineOfRecord(const std::string& path, int64_t record) {
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return Status::IoError("cannot open '" + path + "': " + std::strerror(errno));
  if (record <= 1) return int64_t{1};
  std::vector<char> buf(1 << 20);
  int64_t line = 1;
  int64_t records_done = 0;
  bool in_quotes = false;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) {
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

Result<std::vector<int64_t>> PhysicalLinesOfOffsets(const std::string& path, const std::vector<int64_t>& offsets) {
  std::vector<int64_t> lines;
  lines.reserve(offsets.size());
  if (offsets.empty()) return lines;
  std::unique_ptr<FILE, FileCloser> f(std::fopen(path.c_str(), "rb"));
  if (!f) return Status::IoError("cannot open '" + path + "': " + std::strerror(errno));
  std::vector<char> buf(1 << 20);
  int64_t pos = 0;
  int64_t line = 1;
  size_t next = 0;
  size_t n;
  while (next < offsets.size() && (n = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) {
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

}  // namespace sluice::io
