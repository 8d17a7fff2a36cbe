#include "destinations/native/native_destination.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "core/replace_all.h"
#include "io/s3/s3_client.h"

namespace sluice::destinations {

using engine::QuoteIdent;
using engine::QuoteLiteral;

Result<std::pair<std::string, std::string>> SplitTableName(const std::string& name) {
  std::vector<std::string> parts(1);
  bool quoted = false;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    if (c == '"') {
      if (quoted && i + 1 < name.size() && name[i + 1] == '"') {
        parts.back() += '"';
        ++i;
      } else {
        quoted = !quoted;
      }
    } else if (c == '.' && !quoted) {
      parts.emplace_back();
    } else {
      parts.back() += c;
    }
  }
  if (quoted || parts.size() > 2 || parts.back().empty() || (parts.size() == 2 && parts[0].empty())) {
    return Status::InvalidArgument("[destination] table: '" + name +
                                   "' is not a valid table name (expected table or schema.table)");
  }
  if (parts.size() == 1) return std::make_pair(std::string(), parts[0]);
  return std::make_pair(parts[0], parts[1]);
}

namespace {

constexpr const char* kAlias = "sluice_out";

/// /ready of a local output: its directory exists.
Status OutputDirectoryExists(const std::string& path) {
  std::error_code ec;
  auto dir = std::filesystem::absolute(path, ec).parent_path();
  if (ec || !std::filesystem::is_directory(dir, ec)) {
    return Status::NotFound("output directory '" + dir.string() + "' does not exist");
  }
  return Status::OK();
}

class DuckDbDestination : public NativeDestination {
 public:
  explicit DuckDbDestination(DuckDbDestinationOptions options) : options_(std::move(options)) {}

  std::string Describe() const override { return "duckdb table " + options_.table + " in " + options_.path; }
  bool NeedsInputOrder() const override { return options_.mode == LoadMode::kUpsert; }
  Status PrepareLoad(const LoadContext& load) override {
    options_.untyped_empty = load.untyped_empty;
    return Status::OK();
  }
  Status Ping() override { return OutputDirectoryExists(options_.path); }

  Status CheckInEngine(engine::DuckDbEngine* engine) override {
    std::error_code ec;
    if (!std::filesystem::exists(options_.path, ec)) {
      // Checking must not create the database file.
      auto dir = std::filesystem::absolute(options_.path).parent_path();
      if (!std::filesystem::is_directory(dir, ec)) {
        return Status::NotFound("directory '" + dir.string() + "' for DuckDB database does not exist");
      }
      return Status::OK();
    }
    Status status =
        engine->Execute("ATTACH " + QuoteLiteral(options_.path) + " AS " + kAlias + " (READ_ONLY)");
    if (!status.ok()) return status.WithContext("cannot open DuckDB database '" + options_.path + "'");
    (void)engine->Execute(std::string("DETACH ") + kAlias);
    return Status::OK();
  }

  std::string Note() const override { return note_; }

  Status BeginInEngine(engine::DuckDbEngine* engine, const std::vector<engine::ResultColumn>& columns) override {
    columns_ = columns;
    skip_load_ = options_.untyped_empty;
    note_.clear();
    std::error_code exists_ec;
    if (options_.untyped_empty && !std::filesystem::exists(options_.path, exists_ec)) {
      note_ = kNotCreated;
      return Status::OK();
    }
    SLUICE_RETURN_IF_ERROR(Attach(engine));
    SLUICE_RETURN_IF_ERROR(engine->Execute("BEGIN TRANSACTION"));
    in_tx_ = true;
    if (!schema_name_.empty()) {
      SLUICE_RETURN_IF_ERROR(engine->Execute("CREATE SCHEMA IF NOT EXISTS " + std::string(kAlias) + "." +
                                             QuoteIdent(schema_name_)));
    }
    SLUICE_ASSIGN_OR_RETURN(
        auto existing,
        // DuckDB identifiers are case-insensitive.
        engine->QueryRows(
            "SELECT lower(column_name) FROM duckdb_columns() WHERE database_name = " + QuoteLiteral(kAlias) +
            " AND lower(schema_name) = lower(" + QuoteLiteral(schema_name_.empty() ? "main" : schema_name_) +
            ") AND lower(table_name) = lower(" + QuoteLiteral(table_name_) + ")"));
    if (existing.empty() && options_.untyped_empty) {
      note_ = kNotCreated;
      return Status::OK();
    }
    if (existing.empty()) {
      std::string ddl = "CREATE TABLE " + Target() + " (";
      for (size_t i = 0; i < columns.size(); ++i) {
        if (i) ddl += ", ";
        ddl += QuoteIdent(columns[i].name) + " " + columns[i].duckdb_type;
      }
      if (options_.mode == LoadMode::kUpsert) ddl += ", PRIMARY KEY (" + KeyList() + ")";
      SLUICE_RETURN_IF_ERROR(engine->Execute(ddl + ")"));
    } else {
      std::set<std::string> have;
      for (const auto& row : existing) have.insert(row[0].value_or(""));
      for (const auto& field : columns) {
        std::string lower = field.name;
        for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (!have.count(lower)) {
          return Status::SchemaMismatch(Describe() + " has no column '" + field.name +
                                        "' that the result has");
        }
      }
      if (options_.mode == LoadMode::kReplace) {
        SLUICE_RETURN_IF_ERROR(engine->Execute("DELETE FROM " + Target()));
        if (options_.untyped_empty) note_ = "the input has no rows: the table was emptied (mode replace)";
      } else if (options_.untyped_empty) {
        note_ = "the input has no rows: the table is unchanged";
      }
    }
    return Status::OK();
  }

  Result<int64_t> LoadInEngine(engine::DuckDbEngine* engine, const std::string& select_sql) override {
    if (skip_load_) return int64_t{0};  // nothing to load; the runner checked the result is empty
    std::string cols;
    for (const auto& field : columns_) {
      if (!cols.empty()) cols += ", ";
      cols += QuoteIdent(field.name);
    }
    std::string sql;
    if (options_.mode == LoadMode::kUpsert) {
      // INSERT OR REPLACE keeps the first of two rows with one key; the
      // contract is that the last one wins, so deduplicate in input order
      // (the runner turns preserve_insertion_order on for upserts).
      sql = "INSERT OR REPLACE INTO " + Target() + " (" + cols + ") SELECT " + cols + " FROM (SELECT *, " +
            "row_number() OVER () AS sluice_seq FROM (" + select_sql +
            "\n) AS sluice_result) AS sluice_numbered " + "QUALIFY row_number() OVER (PARTITION BY " +
            KeyList() + " ORDER BY sluice_seq DESC) = 1";
    } else {
      sql = "INSERT INTO " + Target() + " (" + cols + ") SELECT " + cols + " FROM (" + select_sql +
            "\n) AS sluice_result";
    }
    auto rows = engine->QueryRows(sql);
    if (!rows.ok()) return rows.status().WithContext(Describe());
    if (rows->empty() || !(*rows)[0][0]) return int64_t{0};
    return std::stoll(*(*rows)[0][0]);
  }

  Status CommitInEngine(engine::DuckDbEngine* engine) override {
    if (!in_tx_) return Status::OK();  // untyped_empty without a database file
    Status status = engine->Execute("COMMIT");
    in_tx_ = !status.ok();
    if (!status.ok()) return status.WithContext(Describe());
    created_file_ = false;
    Detach(engine);
    return Status::OK();
  }

  void AbortInEngine(engine::DuckDbEngine* engine) override {
    if (in_tx_) {
      (void)engine->Execute("ROLLBACK");
      in_tx_ = false;
    }
    Detach(engine);
    if (created_file_) {
      // The failed load created the database file: leave nothing behind.
      std::error_code ec;
      std::filesystem::remove(options_.path, ec);
      std::filesystem::remove(options_.path + ".wal", ec);
      created_file_ = false;
    }
  }

  Status Init() {
    SLUICE_ASSIGN_OR_RETURN(auto parts, SplitTableName(options_.table));
    schema_name_ = parts.first;
    table_name_ = parts.second;
    if (options_.path.empty())
      return Status::InvalidArgument("[destination] path is required for type duckdb");
    if (options_.mode == LoadMode::kUpsert && options_.key.empty()) {
      return Status::InvalidArgument("[destination] key is required with mode = \"upsert\"");
    }
    return Status::OK();
  }

 private:
  std::string Target() const {
    return std::string(kAlias) + "." +
           (schema_name_.empty() ? std::string("main") : QuoteIdent(schema_name_)) + "." +
           QuoteIdent(table_name_);
  }
  std::string KeyList() const {
    std::string out;
    for (const auto& k : options_.key) out += (out.empty() ? "" : ", ") + QuoteIdent(k);
    return out;
  }
  Status Attach(engine::DuckDbEngine* engine) {
    if (attached_) return Status::OK();
    std::error_code ec;
    created_file_ = !std::filesystem::exists(options_.path, ec);
    Status status = engine->Execute("ATTACH " + QuoteLiteral(options_.path) + " AS " + kAlias);
    if (!status.ok()) return status.WithContext("cannot open DuckDB database '" + options_.path + "'");
    attached_ = true;
    return Status::OK();
  }
  void Detach(engine::DuckDbEngine* engine) {
    if (!attached_) return;
    (void)engine->Execute(std::string("DETACH ") + kAlias);
    attached_ = false;
  }

  static constexpr const char* kNotCreated =
      "the input has no rows and the types of its columns are unknown, so the table was not created "
      "(declare the types in [source] columns to create it)";

  DuckDbDestinationOptions options_;
  bool skip_load_ = false;
  std::string note_;
  std::string schema_name_, table_name_;
  std::vector<engine::ResultColumn> columns_;
  bool attached_ = false;
  bool in_tx_ = false;
  bool created_file_ = false;  // this load created the database file
};

/// Copies what DuckDB writes into a FIFO to our own stdout. DuckDB opens
/// paths itself (with O_TRUNC), which would clobber a `>>` redirection if it
/// opened /dev/stdout; through the FIFO the bytes go to the inherited file
/// descriptor, wherever it points.
class StdoutPump {
 public:
  ~StdoutPump() { Stop(); }

  Status Start() {
    char tmpl[] = "/tmp/sluice-stdout-XXXXXX";
    if (mkdtemp(tmpl) == nullptr)
      return Status::IoError(std::string("cannot create temp dir: ") + std::strerror(errno));
    dir_ = tmpl;
    path_ = dir_ + "/stdout.fifo";
    if (mkfifo(path_.c_str(), 0600) != 0)
      return Status::IoError("cannot create FIFO " + path_ + ": " + std::strerror(errno));
    // Non-blocking open of the read end succeeds without a writer.
    fd_ = open(path_.c_str(), O_RDONLY | O_NONBLOCK);
    if (fd_ < 0) return Status::IoError("cannot open FIFO " + path_ + ": " + std::strerror(errno));
    thread_ = std::thread([this] { Run(); });
    return Status::OK();
  }

  const std::string& path() const { return path_; }

  /// Waits until the writer closed and everything reached stdout.
  Status Finish() {
    if (thread_.joinable()) thread_.join();
    Cleanup();
    return status_;
  }

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    Cleanup();
  }

 private:
  void Run() {
    std::vector<char> buf(1 << 16);
    bool saw_writer = false;
    while (true) {
      pollfd pfd{fd_, POLLIN, 0};
      int pr = poll(&pfd, 1, 50);
      if (pr < 0 && errno == EINTR) continue;
      if (pr == 0) {
        if (stop_) return;
        continue;
      }
      ssize_t n = read(fd_, buf.data(), buf.size());
      if (n > 0) {
        saw_writer = true;
        const char* p = buf.data();
        while (n > 0) {
          if (!status_.ok()) break;  // stdout is gone: drain so DuckDB is never blocked
          ssize_t w = write(1, p, static_cast<size_t>(n));
          if (w < 0 && errno == EINTR) continue;
          if (w < 0) {
            status_ = Status::IoError(std::string("cannot write to stdout: ") + std::strerror(errno));
            break;
          }
          p += w;
          n -= w;
        }
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      // EOF: the writer closed (POLLHUP), or none has connected yet.
      if ((pfd.revents & POLLHUP) || saw_writer) return;
      if (stop_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  void Cleanup() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
    if (!dir_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);
      dir_.clear();
    }
  }

  std::string dir_, path_;
  int fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  Status status_;
};

class FileDestination : public NativeDestination {
 public:
  explicit FileDestination(FileDestinationOptions options) : options_(std::move(options)) {}
  ~FileDestination() override { RemoveUploadDir(); }

  Status Init() {
    if (options_.path.empty()) return Status::InvalidArgument("[destination] path is required for type file");
    template_ = options_.path;
    stdout_ = options_.path == "-" || options_.path == "/dev/stdout";
    s3_ = options_.path.starts_with("s3://");
    std::string f = options_.format;
    std::string p = options_.path;
    for (const char* suffix : {".gz", ".zst"}) {
      if (p.ends_with(suffix)) {
        compression_ = std::string(suffix) == ".gz" ? "gzip" : "zstd";
        p.resize(p.size() - std::string(suffix).size());
      }
    }
    if (f.empty()) {
      if (stdout_ || p.ends_with(".csv"))
        f = "csv";
      else if (p.ends_with(".parquet"))
        f = "parquet";
      else if (p.ends_with(".jsonl") || p.ends_with(".ndjson") || p.ends_with(".json"))
        f = "jsonl";
      else
        return Status::InvalidArgument(
            "[destination] format: cannot tell the format of '" + options_.path +
            "' from its extension; set format = \"parquet\", \"csv\" or \"jsonl\"");
    }
    if (f == "csv")
      copy_options_ = "FORMAT csv, HEADER true";
    else if (f == "parquet")
      copy_options_ = "FORMAT parquet";
    else if (f == "jsonl" || f == "ndjson" || f == "json")
      copy_options_ = "FORMAT json";
    else
      return Status::InvalidArgument("[destination] format: unknown format '" + f + "'");
    if (!compression_.empty()) {
      if (f == "parquet") {
        return Status::InvalidArgument(
            "[destination] path: Parquet compresses its pages itself; name the file "
            ".parquet (zstd/snappy are chosen inside the file), not .parquet" +
            options_.path.substr(options_.path.rfind('.')));
      }
      copy_options_ += ", COMPRESSION " + compression_;
    }
    return Status::OK();
  }

  std::string Describe() const override { return stdout_ ? "stdout" : "file " + options_.path; }
  Status PrepareLoad(const LoadContext& load) override {
    options_.untyped_empty = load.untyped_empty;
    options_.path = ReplaceAll(template_, "{run}", std::to_string(load.run_id));
    if (!load.input.empty()) options_.path = ReplaceAll(std::move(options_.path), "{file}", load.input);
    return Status::OK();
  }
  std::string OutputTemplate() const override { return stdout_ ? "" : template_; }
  std::string OutputName() const override { return stdout_ ? "" : options_.path; }
  void SetCancel(const CancellationSource* cancel) override {
    cancel_ = cancel;
    options_.s3.cancel = cancel;
  }
  Status Ping() override {
    if (stdout_) return Status::OK();
    if (!s3_) return OutputDirectoryExists(template_);
    // The bucket answers a one-key listing with these credentials.
    SLUICE_ASSIGN_OR_RETURN(io::S3Url url, io::ParseS3Url(template_));
    SLUICE_ASSIGN_OR_RETURN(io::S3Options options, io::ResolveS3OptionsForUse(options_.s3, nullptr));
    options.retry.max_attempts = 1;
    SLUICE_ASSIGN_OR_RETURN(auto client, io::S3Client::Make(std::move(options)));
    return client->List(url.bucket, url.key.substr(0, url.key.find_last_of('/') + 1), 1)->NextPage().status();
  }

  Status CheckInEngine(engine::DuckDbEngine*) override {
    if (stdout_) return Status::OK();
    if (s3_) {
      SLUICE_ASSIGN_OR_RETURN(url_, io::ParseS3Url(options_.path));
      if (url_.key.empty() || url_.key.back() == '/') {
        return Status::InvalidArgument("[destination] path: '" + options_.path +
                                       "' names no object (add a file name)");
      }
      if (!s3_resolved_) {
        SLUICE_ASSIGN_OR_RETURN(options_.s3, io::ResolveS3OptionsForUse(options_.s3, cancel_));
        s3_resolved_ = true;
      }
      SLUICE_ASSIGN_OR_RETURN(client_, io::S3Client::Make(options_.s3));
      // Reaching the bucket is the check; the object itself may not exist yet.
      auto probe = client_->Head(url_.bucket, url_.key);
      if (!probe.ok() && probe.status().code() != StatusCode::kNotFound) return probe.status();
      return Status::OK();
    }
    auto dir = std::filesystem::absolute(options_.path).parent_path();
    std::error_code ec;
    if (!std::filesystem::is_directory(dir, ec)) {
      return Status::NotFound("output directory '" + dir.string() + "' does not exist");
    }
    return Status::OK();
  }

  std::string Note() const override {
    return options_.untyped_empty ? "the input has no rows and the types of its columns are unknown, so no "
                                    "output was written (declare the types in [source] columns to write one)"
                                  : "";
  }

  Status BeginInEngine(engine::DuckDbEngine* engine, const std::vector<engine::ResultColumn>&) override {
    SLUICE_RETURN_IF_ERROR(CheckInEngine(engine));
    if (options_.untyped_empty) return Status::OK();
    // Written beside the target and renamed at commit: readers never see a
    // partial file, and a crash leaves only a hidden temp file behind.
    if (s3_) {
      std::filesystem::path base = options_.temp_dir.empty() ? std::filesystem::temp_directory_path()
                                                             : std::filesystem::path(options_.temp_dir);
      SweepUploadDirs(base);
      std::string templ = (base / ("sluice-upload-" + std::to_string(getpid()) + "-XXXXXX")).string();
      if (mkdtemp(templ.data()) == nullptr) {
        return Status::IoError("cannot create a temp directory under " + base.string() + ": " +
                               std::strerror(errno));
      }
      upload_dir_ = templ;
      auto slash = url_.key.find_last_of('/');
      tmp_ = upload_dir_ + "/" + (slash == std::string::npos ? url_.key : url_.key.substr(slash + 1));
    } else if (!stdout_) {
      auto target = std::filesystem::absolute(options_.path);
      tmp_ = (target.parent_path() / ("." + target.filename().string() + ".sluice-tmp")).string();
    } else {
      pump_ = std::make_unique<StdoutPump>();
      SLUICE_RETURN_IF_ERROR(pump_->Start());
    }
    return Status::OK();
  }

  Result<int64_t> LoadInEngine(engine::DuckDbEngine* engine, const std::string& select_sql) override {
    if (options_.untyped_empty) return int64_t{0};
    std::fflush(stdout);
    auto rows = engine->QueryRows("COPY (" + select_sql + "\n) TO " +
                                  QuoteLiteral(stdout_ ? pump_->path() : tmp_) + " (" + copy_options_ + ")");
    if (!rows.ok()) {
      // Name the object, not the local file it is staged in.
      std::string msg =
          s3_ ? ReplaceAll(rows.status().message(), tmp_, options_.path) : rows.status().message();
      return Status(rows.status().code(), msg, rows.status().retryable()).WithContext(Describe());
    }
    if (rows->empty() || !(*rows)[0][0]) return int64_t{0};
    return std::stoll(*(*rows)[0][0]);
  }

  Status CommitInEngine(engine::DuckDbEngine*) override {
    if (options_.untyped_empty) return Status::OK();
    if (stdout_) {
      Status status = pump_ ? pump_->Finish() : Status::OK();
      pump_.reset();
      return status;
    }
    if (s3_) {
      // The object appears whole or not at all: a single PUT, or a
      // multipart upload that S3 assembles only on completion.
      Status uploaded = client_->Upload(url_.bucket, url_.key, tmp_);
      RemoveUploadDir();
      return uploaded;
    }
    std::error_code ec;
    std::filesystem::rename(tmp_, options_.path, ec);
    if (ec)
      return Status::IoError("cannot rename '" + tmp_ + "' to '" + options_.path + "': " + ec.message());
    tmp_.clear();
    return Status::OK();
  }

  void AbortInEngine(engine::DuckDbEngine*) override {
    pump_.reset();
    if (s3_) {
      RemoveUploadDir();
      return;
    }
    if (!tmp_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(tmp_, ec);
      tmp_.clear();
    }
  }

 private:
  /// Removes upload directories left by processes that died (kill -9)
  /// before their upload finished.
  static void SweepUploadDirs(const std::filesystem::path& base) {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(base, ec)) {
      std::string name = entry.path().filename().string();
      if (!name.starts_with("sluice-upload-")) continue;
      pid_t pid = static_cast<pid_t>(std::atoll(name.c_str() + std::strlen("sluice-upload-")));
      if (pid <= 0 || pid == getpid() || kill(pid, 0) == 0 || errno != ESRCH) continue;
      std::error_code rm;
      std::filesystem::remove_all(entry.path(), rm);
    }
  }

  void RemoveUploadDir() {
    if (upload_dir_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(upload_dir_, ec);
    upload_dir_.clear();
    tmp_.clear();
  }

  FileDestinationOptions options_;
  std::string template_;  // the path as configured, with {run} and {file}
  const CancellationSource* cancel_ = nullptr;
  bool s3_resolved_ = false;
  bool stdout_ = false;
  bool s3_ = false;
  io::S3Url url_;
  std::unique_ptr<io::S3Client> client_;
  std::string upload_dir_;
  std::string copy_options_;
  std::string compression_;
  std::string tmp_;
  std::unique_ptr<StdoutPump> pump_;
};

}  // namespace

Result<std::unique_ptr<NativeDestination>> MakeDuckDbDestination(DuckDbDestinationOptions options) {
  auto dest = std::make_unique<DuckDbDestination>(std::move(options));
  SLUICE_RETURN_IF_ERROR(dest->Init());
  return std::unique_ptr<NativeDestination>(std::move(dest));
}

Result<std::unique_ptr<NativeDestination>> MakeFileDestination(FileDestinationOptions options) {
  auto dest = std::make_unique<FileDestination>(std::move(options));
  SLUICE_RETURN_IF_ERROR(dest->Init());
  return std::unique_ptr<NativeDestination>(std::move(dest));
}

Status RegisterNativeDestinations(Registry& registry) {
  SLUICE_RETURN_IF_ERROR(registry.AddDestination(
      "duckdb",
      [](const ConfigTable& t) -> Result<std::unique_ptr<Destination>> {
        DuckDbDestinationOptions o;
        o.path = t.GetString("path");
        o.table = t.GetString("table");
        std::string mode = t.GetString("mode", "append");
        o.key = t.GetStringList("key");
        if (o.table.empty()) return Status::InvalidArgument(t.Name() + " table is required for type duckdb");
        SLUICE_ASSIGN_OR_RETURN(o.mode, ParseLoadMode(mode));
        SLUICE_ASSIGN_OR_RETURN(auto dest, MakeDuckDbDestination(std::move(o)));
        return std::unique_ptr<Destination>(std::move(dest));
      },
      {"a table in an embedded DuckDB database file, written by DuckDB itself", {"path", "table", "mode", "key"}}));
  auto file = [](const ConfigTable& t, bool to_stdout) -> Result<std::unique_ptr<Destination>> {
    FileDestinationOptions o;
    o.path = to_stdout ? "-" : t.GetString("path");
    o.format = t.GetString("format");
    if (!to_stdout) {
      o.s3 = io::ReadS3Section(t.Section("s3"));
      o.temp_dir = t.Section("engine").GetString("temp_directory");
    }
    SLUICE_ASSIGN_OR_RETURN(auto dest, MakeFileDestination(std::move(o)));
    return std::unique_ptr<Destination>(std::move(dest));
  };
  SLUICE_RETURN_IF_ERROR(registry.AddDestination(
      "file", [file](const ConfigTable& t) { return file(t, false); },
      {"a Parquet, CSV or JSON-lines file, local or s3:// (named per run with {run}, per input with {file})",
       {"path", "format"}}));
  return registry.AddDestination(
      "stdout", [file](const ConfigTable& t) { return file(t, true); },
      {"CSV (or format = \"jsonl\"/\"parquet\") on standard output", {"format"}});
}

}  // namespace sluice::destinations
