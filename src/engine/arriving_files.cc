// Files that are still arriving, served to DuckDB's own scans.
//
// DuckDB's C API has no way to make a scan wait for a file, so this one
// file uses DuckDB's C++ API (headers of the same 1.4.4 release as
// libduckdb.so, scripts/fetch_duckdb.sh) to register a file system under
// kScheme with the database a DuckDbEngine opened through the C API. It
// only maps a path to a local file once that file is there, and opens it
// with DuckDB's own local file system: every read after the open goes to
// that file system, as for any local file.
#include <duckdb.h>

#include <string>
#include <utility>

#include "duckdb.hpp"
#include "duckdb/main/capi/capi_internal.hpp"
#include "engine/duckdb_engine.h"

namespace sluice::engine {
namespace {

constexpr char kScheme[] = "sluice-arriving://";

class ArrivingFileSystem : public duckdb::FileSystem {
 public:
  explicit ArrivingFileSystem(ArrivingFileWaiter wait)
      : wait_(std::move(wait)), local_(duckdb::FileSystem::CreateLocal()) {}

  std::string GetName() const override { return "SluiceArrivingFileSystem"; }
  bool CanHandleFile(const std::string& path) override { return path.rfind(kScheme, 0) == 0; }

  duckdb::unique_ptr<duckdb::FileHandle> OpenFile(const std::string& path, duckdb::FileOpenFlags flags,
                                                  duckdb::optional_ptr<duckdb::FileOpener> opener) override {
    return local_->OpenFile(LocalPath(path), flags, opener);
  }
  // Asked while a query binds: answering without waiting lets the scan
  // start before the last file arrived (OpenFile reports one that never does).
  bool FileExists(const std::string& path, duckdb::optional_ptr<duckdb::FileOpener>) override {
    return CanHandleFile(path);
  }
  duckdb::vector<duckdb::OpenFileInfo> Glob(const std::string& path, duckdb::FileOpener*) override {
    duckdb::vector<duckdb::OpenFileInfo> files;
    files.emplace_back(path);
    return files;
  }

 private:
  /// Waits for the file and returns its local path; throws what stopped it.
  std::string LocalPath(const std::string& path) {
    size_t index = 0;
    try {
      size_t used = 0;
      index = std::stoul(path.substr(sizeof(kScheme) - 1), &used);
      if (used != path.size() - (sizeof(kScheme) - 1)) throw std::invalid_argument(path);
    } catch (const std::exception&) {
      throw duckdb::IOException("not a file of this load: " + path);
    }
    Result<std::string> local = wait_(index);
    if (!local.ok()) throw duckdb::IOException(local.status().message());
    return *local;
  }

  ArrivingFileWaiter wait_;
  duckdb::unique_ptr<duckdb::FileSystem> local_;
};

}  // namespace

std::string ArrivingFilePath(size_t index) { return kScheme + std::to_string(index); }

Status ServeArrivingFilesOn(duckdb_database db, ArrivingFileWaiter wait) {
  try {
    auto* wrapper = reinterpret_cast<duckdb::DatabaseWrapper*>(db);
    wrapper->database->instance->GetFileSystem().RegisterSubSystem(
        duckdb::make_uniq<ArrivingFileSystem>(std::move(wait)));
  } catch (const std::exception& e) {
    return Status::Internal(std::string("cannot serve arriving files to DuckDB: ") + e.what());
  }
  return Status::OK();
}

}  // namespace sluice::engine
