// TempDir: a fresh directory for one test, removed with everything in it
// when the object goes away.
//
// Failures to create, write or read are reported as gtest failures (the
// test goes on and fails) rather than Status, because a test has nothing
// better to do with them.
//
// Thread-safety: Write/Read of different files may run concurrently.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <system_error>

namespace sluice::testing {

class TempDir {
 public:
  /// Creates $TMPDIR (default /tmp)/<prefix>-XXXXXX, mode 0700.
  explicit TempDir(const std::string& prefix = "sluice-test") {
    const char* tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix + "-XXXXXX";
    if (mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp(" << templ << "): " << std::strerror(errno);
      return;
    }
    path_ = templ;
  }

  ~TempDir() {
    if (path_.empty()) return;
    std::error_code ec;  // best effort: a leftover dir must not fail the test
    std::filesystem::remove_all(path_, ec);
  }

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

  /// path()/relative, without touching the file system.
  std::string Path(const std::string& relative) const { return path_ + "/" + relative; }

  /// Writes contents to path()/relative (creating parent directories) and
  /// returns the full path.
  std::string Write(const std::string& relative, const std::string& contents) const {
    std::string full = Path(relative);
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(full).parent_path(), ec);
    std::ofstream file(full, std::ios::binary | std::ios::trunc);
    file.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    file.close();
    if (!file) ADD_FAILURE() << "cannot write " << full;
    return full;
  }

  /// Reads path()/relative; empty (and a test failure) if it cannot.
  std::string Read(const std::string& relative) const {
    std::string full = Path(relative);
    std::ifstream file(full, std::ios::binary);
    if (!file) {
      ADD_FAILURE() << "cannot read " << full;
      return "";
    }
    std::ostringstream contents;
    contents << file.rdbuf();
    return contents.str();
  }

 private:
  std::string path_;
};

}  // namespace sluice::testing
