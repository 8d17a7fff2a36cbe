#include "io/local_files.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace sluice::io {

namespace fs = std::filesystem;

namespace {

bool StatFile(const std::string& path, LocalFile* out) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  out->path = path;
  out->size = st.st_size;
  out->mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return true;
}

}  // namespace

Result<std::vector<LocalFile>> ListLocalFiles(const std::string& pattern) {
  std::vector<LocalFile> files;
  std::error_code ec;
  if (fs::is_directory(pattern, ec)) {
    for (const auto& entry : fs::directory_iterator(pattern, ec)) {
      LocalFile f;
      std::string name = entry.path().filename().string();
      if (!name.empty() && name[0] == '.') continue;  // hidden and in-progress files
      if (StatFile(entry.path().string(), &f)) files.push_back(f);
    }
    if (ec) return Status::IoError("cannot list directory '" + pattern + "': " + ec.message());
  } else if (pattern.find_first_of("*?[") != std::string::npos) {
    glob_t g{};
    int rc = glob(pattern.c_str(), 0, nullptr, &g);
    if (rc != 0 && rc != GLOB_NOMATCH) {
      globfree(&g);
      return Status::IoError("cannot expand '" + pattern + "'");
    }
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      LocalFile f;
      if (StatFile(g.gl_pathv[i], &f)) files.push_back(f);
    }
    globfree(&g);
  } else {
    LocalFile f;
    if (!StatFile(pattern, &f)) {
      return Status::NotFound("input file '" + pattern + "': " +
                              (errno ? std::strerror(errno) : "not a regular file"));
    }
    files.push_back(f);
  }
  if (files.empty()) return Status::NotFound("no input files match '" + pattern + "'");
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  return files;
}

Status WriteFileAtomically(const std::string& path, const std::string& contents) {
  std::string tmp = path + ".sluice-tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return Status::IoError("cannot write '" + tmp + "': " + std::strerror(errno));
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    if (!out) return Status::IoError("cannot write '" + tmp + "': " + std::strerror(errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) return Status::IoError("cannot rename '" + tmp + "' to '" + path + "': " + ec.message());
  return Status::OK();
}

}  // namespace sluice::io
