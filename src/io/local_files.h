// Finding local input files: a file, a glob, or a directory.
// Stateless functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/status.h"

namespace sluice::io {

struct LocalFile {
  std::string path;
  int64_t size = 0;
  int64_t mtime_ns = 0;
};

/// Expands `pattern` (a path, a glob with * ? [..], or a directory whose
/// regular files are taken, not recursively) into files sorted by path.
/// Fails with NotFound naming the pattern when nothing matches.
Result<std::vector<LocalFile>> ListLocalFiles(const std::string& pattern);

/// Writes `contents` to `path` through a temporary file and a rename, so
/// readers never see a half-written file.
Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace sluice::io
