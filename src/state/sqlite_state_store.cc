#include "state/sqlite_state_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <utility>

#include "state/http_url_key.h"
#include "state/sqlite_db.h"

namespace sluice::state {
namespace {

// Objects per FilterNew query, two parameters each: below SQLite's
// parameter limit (999 in old builds).
constexpr size_t kFilterChunk = 400;
// URL hashes per HttpValidators query, one parameter each.
constexpr size_t kValidatorChunk = 500;
// The longest pipeline name kept readable in a lock file's name.
constexpr size_t kMaxLockNameChars = 64;

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// The loaded versions among a chunk's (key, etag) pairs ?2/?3, ...,
/// ?800/?801: for each pair, one lookup through the primary key (CROSS JOIN
/// keeps SQLite from scanning the pipeline's whole ledger instead). One
/// statement for every chunk; a short chunk binds NULL to the rest, which
/// matches nothing.
std::string FilterSql() {
  std::string sql = "SELECT l.key, l.etag FROM (VALUES ";
  for (size_t i = 0; i < kFilterChunk; ++i) {
    if (i > 0) sql += ", ";
    sql += "(?" + std::to_string(2 * i + 2) + ", ?" + std::to_string(2 * i + 3) + ")";
  }
  return sql +
         ") AS p CROSS JOIN file_ledger AS l "
         "ON l.pipeline = ?1 AND l.key = p.column1 AND l.etag = p.column2";
}

// The ledger keeps every version loaded: recording one twice changes nothing.
constexpr const char* kInsertLedger =
    "INSERT INTO file_ledger (pipeline, key, etag, size, modified_at, run_id, loaded_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (pipeline, key, etag) DO NOTHING";

/// The validators among a chunk's URL hashes ?2, ..., ?501, through the
/// primary key. One statement for every chunk; a short chunk binds NULL to
/// the rest, which matches nothing.
std::string ValidatorsSql() {
  std::string sql =
      "SELECT url_hash, coalesce(etag, ''), coalesce(last_modified, '') FROM http_validators "
      "WHERE pipeline = ?1 AND url_hash IN (";
  for (size_t i = 0; i < kValidatorChunk; ++i) {
    if (i > 0) sql += ", ";
    sql += "?" + std::to_string(i + 2);
  }
  return sql + ")";
}

constexpr const char* kUpsertValidator =
    "INSERT INTO http_validators (pipeline, url_hash, url, etag, last_modified, updated_at) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (pipeline, url_hash) DO UPDATE SET "
    "url = excluded.url, etag = excluded.etag, last_modified = excluded.last_modified, "
    "updated_at = excluded.updated_at";

constexpr const char* kDeleteValidator = "DELETE FROM http_validators WHERE pipeline = ?1 AND url_hash = ?2";

/// "<db>.<name>.<hash>.lock": the pipeline name reduced to [A-Za-z0-9._-]
/// (and shortened) so that it is a safe file name that still tells a person
/// which pipeline it is for, and a hash (FNV-1a, stable across builds) of
/// the real name so that names that reduce alike get different files.
std::string LockFilePath(const std::string& db_path, const std::string& pipeline) {
  std::string name;
  for (char c : pipeline) {
    if (name.size() == kMaxLockNameChars) break;
    bool safe = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                c == '_' || c == '-';
    name += safe ? c : '_';
  }
  uint32_t hash = 2166136261u;
  for (unsigned char c : pipeline) {
    hash ^= c;
    hash *= 16777619u;
  }
  char hex[9];
  std::snprintf(hex, sizeof(hex), "%08x", hash);
  return db_path + "." + name + "." + hex + ".lock";
}

class SqliteStateStore final : public StateStore {
 public:
  explicit SqliteStateStore(std::unique_ptr<SqliteDb> db) : db_(std::move(db)), path_(db_->path()) {}

  ~SqliteStateStore() override {
    for (auto& [pipeline, fd] : locks_) close(fd);
  }

  std::string Describe() const override { return "sqlite " + path_; }

  Status Ping() override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare("SELECT max(version) FROM schema_migrations"));
    SqliteStatement use(stmt);
    return db_->StepRowOrDone(use, "ping").status();
  }

  Result<std::vector<ObjectInfo>> FilterNew(const std::string& pipeline,
                                            const std::vector<ObjectInfo>& page) override {
    static const std::string kSql = FilterSql();
    std::set<std::pair<std::string, std::string>> versions;
    {
      std::lock_guard<std::mutex> lock(mu_);
      SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare(kSql));
      for (size_t begin = 0; begin < page.size(); begin += kFilterChunk) {
        SqliteStatement use(stmt);
        use.Text(1, pipeline);
        for (size_t i = 0; i < kFilterChunk; ++i) {
          int param = 2 * static_cast<int>(i) + 2;
          if (begin + i < page.size()) {
            use.Text(param, page[begin + i].key);
            use.Text(param + 1, page[begin + i].etag);
          } else {
            use.Null(param);
            use.Null(param + 1);
          }
        }
        for (;;) {
          SLUICE_ASSIGN_OR_RETURN(bool row, db_->StepRowOrDone(use, "read the file ledger"));
          if (!row) break;
          versions.emplace(use.ColumnText(0), use.ColumnText(1));
        }
      }
    }
    std::vector<ObjectInfo> out;
    for (const ObjectInfo& object : page) {
      if (!versions.contains({object.key, object.etag})) out.push_back(object);
    }
    return out;
  }

  Status MarkLoaded(const std::string& pipeline, int64_t run_id,
                    const std::vector<ObjectInfo>& objects) override {
    if (objects.empty()) return Status::OK();
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = NowUnixMs();
    return db_->WriteTransaction("record loaded files", [&]() -> Status {
      SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare(kInsertLedger));
      for (const ObjectInfo& o : objects) {
        SqliteStatement use(stmt);
        use.Text(1, pipeline);
        use.Text(2, o.key);
        use.Text(3, o.etag);
        use.Int(4, o.size);
        use.Int(5, o.modified_unix_ms);
        use.Int(6, run_id);
        use.Int(7, now);
        SLUICE_RETURN_IF_ERROR(db_->StepDone(use, "record a loaded file"));
      }
      return Status::OK();
    });
  }

  Result<std::vector<HttpValidator>> HttpValidators(const std::string& pipeline,
                                                    const std::vector<std::string>& urls) override {
    static const std::string kSql = ValidatorsSql();
    HttpValidatorLookup lookup(urls);
    const std::vector<std::string>& hashes = lookup.hashes();
    {
      std::lock_guard<std::mutex> lock(mu_);
      SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, db_->Prepare(kSql));
      for (size_t begin = 0; begin < hashes.size(); begin += kValidatorChunk) {
        SqliteStatement use(stmt);
        use.Text(1, pipeline);
        for (size_t i = 0; i < kValidatorChunk; ++i) {
          if (begin + i < hashes.size()) {
            use.Text(static_cast<int>(i) + 2, hashes[begin + i]);
          } else {
            use.Null(static_cast<int>(i) + 2);
          }
        }
        for (;;) {
          SLUICE_ASSIGN_OR_RETURN(bool row, db_->StepRowOrDone(use, "read HTTP validators"));
          if (!row) break;
          lookup.Found(use.ColumnText(0), use.ColumnText(1), use.ColumnText(2));
        }
      }
    }
    return lookup.Take();
  }

  Status SaveHttpValidators(const std::string& pipeline,
                            const std::vector<HttpValidator>& validators) override {
    if (validators.empty()) return Status::OK();
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = NowUnixMs();
    return db_->WriteTransaction("record HTTP validators", [&]() -> Status {
      SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * upsert, db_->Prepare(kUpsertValidator));
      SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * remove, db_->Prepare(kDeleteValidator));
      // In order: the last validator of a URL wins, as the interface promises.
      for (const HttpValidator& v : validators) {
        if (v.etag.empty() && v.last_modified.empty()) {
          SqliteStatement use(remove);
          use.Text(1, pipeline);
          use.Text(2, HttpUrlHash(v.url));
          SLUICE_RETURN_IF_ERROR(db_->StepDone(use, "remove an HTTP validator"));
          continue;
        }
        SqliteStatement use(upsert);
        use.Text(1, pipeline);
        use.Text(2, HttpUrlHash(v.url));
        use.Text(3, StoredHttpUrl(v.url));
        use.TextOrNull(4, v.etag);
        use.TextOrNull(5, v.last_modified);
        use.Int(6, now);
        SLUICE_RETURN_IF_ERROR(db_->StepDone(use, "record an HTTP validator"));
      }
      return Status::OK();
    });
  }

  Result<bool> TryLockPipeline(const std::string& pipeline) override {
    std::lock_guard<std::mutex> lock(locks_mu_);
    if (locks_.contains(pipeline)) return true;
    const std::string path = LockFilePath(path_, pipeline);
    int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Status::IoError("cannot open the run lock file " + path + " of pipeline " + pipeline + ": " +
                             std::strerror(errno));
    }
    int rc;
    do {
      rc = flock(fd, LOCK_EX | LOCK_NB);
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      const int error = errno;
      close(fd);
      if (error == EWOULDBLOCK) return false;
      return Status::IoError("cannot lock the run lock file " + path + " of pipeline " + pipeline + ": " +
                             std::strerror(error));
    }
    locks_.emplace(pipeline, fd);
    return true;
  }

  void UnlockPipeline(const std::string& pipeline) override {
    std::lock_guard<std::mutex> lock(locks_mu_);
    auto it = locks_.find(pipeline);
    if (it == locks_.end()) return;
    // Closing the only descriptor of the open file releases the flock. The
    // file stays: removing it would let a process that opened it before the
    // removal and one that creates it anew both hold "the" lock.
    close(it->second);
    locks_.erase(it);
  }

  Result<int64_t> BeginRun(const std::string& pipeline, int64_t started_unix_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(
        sqlite3_stmt * stmt,
        db_->Prepare(
            "INSERT INTO runs (pipeline, started_at, status, worker) VALUES (?1, ?2, 'running', ?3)"));
    SqliteStatement use(stmt);
    use.Text(1, pipeline);
    use.Int(2, started_unix_ms);
    use.Text(3, worker());
    SLUICE_RETURN_IF_ERROR(db_->StepDone(use, "start a run"));
    return static_cast<int64_t>(sqlite3_last_insert_rowid(db_->handle()));
  }

  Status FinishRun(int64_t run_id, const std::string& status, const std::string& error, int64_t files,
                   int64_t rows, int64_t finished_unix_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                            db_->Prepare("UPDATE runs SET status = ?2, error = ?3, files = ?4, "
                                         "rows = ?5, finished_at = ?6 WHERE id = ?1"));
    SqliteStatement use(stmt);
    use.Int(1, run_id);
    use.Text(2, status);
    use.TextOrNull(3, error);
    use.Int(4, files);
    use.Int(5, rows);
    use.Int(6, finished_unix_ms);
    SLUICE_RETURN_IF_ERROR(db_->StepDone(use, "finish a run"));
    if (db_->Changes() == 0) {
      return Status::NotFound("run " + std::to_string(run_id) + " is not in the run log of " + Describe());
    }
    return Status::OK();
  }

  Status RecordFile(const FileRecord& f) override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(
        sqlite3_stmt * stmt,
        db_->Prepare(
            "INSERT INTO run_files (run_id, pipeline, file, etag, size, rows_in, rows_out, bytes, seconds, "
            "status, error, recorded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"));
    SqliteStatement use(stmt);
    use.Int(1, f.run_id);
    use.Text(2, f.pipeline);
    use.Text(3, f.file);
    use.TextOrNull(4, f.etag);
    use.Int(5, f.size);
    // Negative counts are unknown: NULL.
    if (f.rows_in >= 0)
      use.Int(6, f.rows_in);
    else
      use.Null(6);
    if (f.rows_out >= 0)
      use.Int(7, f.rows_out);
    else
      use.Null(7);
    use.Int(8, f.bytes);
    use.Double(9, f.seconds);
    use.Text(10, f.status);
    use.TextOrNull(11, f.error);
    use.Int(12, NowUnixMs());
    return db_->StepDone(use, "record a file of a run");
  }

  Result<std::optional<std::string>> OutputClaim(const std::string& pipeline,
                                                 const std::string& output) override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(
        sqlite3_stmt * stmt,
        db_->Prepare("SELECT input FROM file_outputs WHERE pipeline = ?1 AND output = ?2"));
    SqliteStatement use(stmt);
    use.Text(1, pipeline);
    use.Text(2, output);
    SLUICE_ASSIGN_OR_RETURN(bool row, db_->StepRowOrDone(use, "read an output's input"));
    if (!row) return std::optional<std::string>();
    return std::optional<std::string>(use.ColumnText(0));
  }

  Status ClaimOutput(const std::string& pipeline, const std::string& output, const std::string& input,
                     int64_t run_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(
        sqlite3_stmt * stmt,
        db_->Prepare("INSERT INTO file_outputs (pipeline, output, input, run_id, claimed_at) "
                     "VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (pipeline, output) DO NOTHING"));
    SqliteStatement use(stmt);
    use.Text(1, pipeline);
    use.Text(2, output);
    use.Text(3, input);
    use.Int(4, run_id);
    use.Int(5, NowUnixMs());
    return db_->StepDone(use, "claim an output file");
  }

  Result<std::vector<RunRecord>> RecentRuns(const std::string& pipeline, int limit) override {
    std::vector<RunRecord> out;
    if (limit <= 0) return out;
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(
        sqlite3_stmt * stmt,
        db_->Prepare("SELECT id, pipeline, started_at, finished_at, status, error, files, rows, worker "
                     "FROM runs WHERE pipeline = ?1 ORDER BY started_at DESC, id DESC LIMIT ?2"));
    SqliteStatement use(stmt);
    use.Text(1, pipeline);
    use.Int(2, limit);
    for (;;) {
      SLUICE_ASSIGN_OR_RETURN(bool row, db_->StepRowOrDone(use, "read the run log"));
      if (!row) break;
      RunRecord run;
      run.id = use.ColumnInt(0);
      run.pipeline = use.ColumnText(1);
      run.started_unix_ms = use.ColumnInt(2);
      if (!use.ColumnIsNull(3)) run.finished_unix_ms = use.ColumnInt(3);
      run.status = use.ColumnText(4);
      run.error = use.ColumnText(5);
      run.files = use.ColumnInt(6);
      run.rows = use.ColumnInt(7);
      run.worker = use.ColumnText(8);
      out.push_back(std::move(run));
    }
    return out;
  }

  Result<std::vector<FileRecord>> FilesOfRun(int64_t run_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(
        sqlite3_stmt * stmt,
        db_->Prepare("SELECT run_id, pipeline, file, etag, size, rows_in, rows_out, bytes, seconds, "
                     "status, error FROM run_files WHERE run_id = ?1 ORDER BY id"));
    SqliteStatement use(stmt);
    use.Int(1, run_id);
    std::vector<FileRecord> out;
    for (;;) {
      SLUICE_ASSIGN_OR_RETURN(bool row, db_->StepRowOrDone(use, "read the files of a run"));
      if (!row) break;
      FileRecord f;
      f.run_id = use.ColumnInt(0);
      f.pipeline = use.ColumnText(1);
      f.file = use.ColumnText(2);
      f.etag = use.ColumnText(3);
      f.size = use.ColumnInt(4);
      f.rows_in = use.ColumnIsNull(5) ? -1 : use.ColumnInt(5);
      f.rows_out = use.ColumnIsNull(6) ? -1 : use.ColumnInt(6);
      f.bytes = use.ColumnInt(7);
      f.seconds = use.ColumnDouble(8);
      f.status = use.ColumnText(9);
      f.error = use.ColumnText(10);
      out.push_back(std::move(f));
    }
    return out;
  }

  Status CloseAbandonedRuns(const std::string& pipeline, int64_t now_unix_ms) override {
    std::lock_guard<std::mutex> lock(mu_);
    SLUICE_ASSIGN_OR_RETURN(sqlite3_stmt * stmt,
                            db_->Prepare("UPDATE runs SET status = 'failed', error = ?2, finished_at = ?3 "
                                         "WHERE pipeline = ?1 AND status = 'running'"));
    SqliteStatement use(stmt);
    use.Text(1, pipeline);
    use.Text(2, kAbandonedRunError);
    use.Int(3, now_unix_ms);
    return db_->StepDone(use, "close abandoned runs");
  }

 private:
  const std::unique_ptr<SqliteDb> db_;
  const std::string path_;
  std::mutex mu_;
  // Run locks, apart from mu_ so that taking one never waits for a busy
  // database: pipeline -> descriptor of its lock file, flock()ed.
  std::mutex locks_mu_;
  std::map<std::string, int> locks_;
};

}  // namespace

Result<std::unique_ptr<StateStore>> OpenSqliteStateStore(const std::string& path) {
  std::error_code ec;
  std::filesystem::path absolute =
      std::filesystem::absolute(path.empty() ? std::string(kDefaultStatePath) : path, ec);
  if (ec) return Status::IoError("cannot resolve the state store path " + path + ": " + ec.message());
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<SqliteDb> db, SqliteDb::Open(absolute.lexically_normal().string()));
  return std::unique_ptr<StateStore>(std::make_unique<SqliteStateStore>(std::move(db)));
}

}  // namespace sluice::state
