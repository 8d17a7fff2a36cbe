#include "destinations/events/event_destinations.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>

#include "core/json_string.h"

namespace sluice::destinations {
namespace {

// PostgreSQL type oids whose text form is valid JSON as it is.
constexpr uint32_t kBool = 16, kInt8 = 20, kInt2 = 21, kInt4 = 23, kJson = 114, kJsonb = 3802;

void AppendValue(const ChangeBatch& batch, const CdcCell& cell, const CdcColumn& column, std::string* out) {
  if (cell.kind != CdcCellKind::kText) {
    out->append("null");
    return;
  }
  std::string_view text = batch.value(cell);
  switch (column.type_oid) {
    case kBool:
      out->append(text == "t" ? "true" : "false");
      return;
    case kInt2:
    case kInt4:
    case kInt8:
    case kJson:
    case kJsonb:
      out->append(text);
      return;
    default:
      AppendJsonString(text, out);
  }
}

void AppendRow(const ChangeBatch& batch, const CdcTable& table, uint32_t first, bool keys_only,
               std::string* out) {
  const CdcCell* cells = batch.row(first);
  out->push_back('{');
  bool any = false;
  for (size_t i = 0; i < table.columns.size(); ++i) {
    const CdcColumn& column = table.columns[i];
    if (cells[i].kind == CdcCellKind::kUnchangedToast) continue;
    if (keys_only && !column.key) continue;
    if (any) out->push_back(',');
    any = true;
    AppendJsonString(column.name, out);
    out->push_back(':');
    AppendValue(batch, cells[i], column, out);
  }
  out->push_back('}');
}

std::string IsoTime(int64_t unix_us) {
  time_t seconds = static_cast<time_t>(unix_us / 1000000);
  int64_t micros = unix_us % 1000000;
  if (micros < 0) {
    micros += 1000000;
    --seconds;
  }
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(micros));
  return buf;
}

/// Common part: turns batches into lines and hands them to Emit().
class JsonEventsBase : public CdcDestination {
 public:
  Status TruncateTable(const CdcTable& table) override {
    std::string line = "{\"op\":\"copy_start\",\"table\":";
    AppendJsonString(table.QualifiedName(), &line);
    line += "}\n";
    std::lock_guard lock(mu_);
    return Emit(line, true);
  }
  Status WriteTableRows(const CdcTable& table, const ChangeBatch& rows) override {
    std::string lines;
    for (const ChangeEvent& event : rows.events()) {
      AppendEventJson(rows, event, table, /*copy=*/true, &lines);
      lines.push_back('\n');
    }
    std::lock_guard lock(mu_);
    return Emit(lines, true);
  }
  Status WriteEvents(const ChangeBatch& batch, const std::vector<CommitStatement>&) override {
    std::string lines;
    for (const ChangeEvent& event : batch.events()) {
      AppendEventJson(batch, event, *event.table, /*copy=*/false, &lines);
      lines.push_back('\n');
    }
    std::lock_guard lock(mu_);
    return Emit(lines, batch.complete());
  }

 protected:
  /// Writes `lines`; `durable`: make them durable before returning.
  virtual Status Emit(const std::string& lines, bool durable) = 0;
  std::mutex mu_;
};

class JsonLinesDestination : public JsonEventsBase {
 public:
  explicit JsonLinesDestination(std::string path) : path_(std::move(path)) {}
  ~JsonLinesDestination() override {
    if (fd_ > 1) close(fd_);
  }
  Status Open() override {
    if (path_.empty() || path_ == "-") {
      fd_ = 1;
      return Status::OK();
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) return Status::IoError("cannot open " + path_ + ": " + std::strerror(errno));
    return Status::OK();
  }
  std::string Describe() const override { return fd_ == 1 || path_.empty() ? "stdout (JSON lines)" : path_; }

 protected:
  Status Emit(const std::string& lines, bool durable) override {
    size_t done = 0;
    while (done < lines.size()) {
      ssize_t n = ::write(fd_, lines.data() + done, lines.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return Status::IoError("writing " + Describe() + ": " + std::strerror(errno));
      done += static_cast<size_t>(n);
    }
    if (durable && fd_ != 1 && ::fsync(fd_) != 0) {
      return Status::IoError("fsync " + path_ + ": " + std::strerror(errno));
    }
    return Status::OK();
  }

 private:
  std::string path_;
  int fd_ = -1;
};

class MemoryDestination : public JsonEventsBase {
 public:
  explicit MemoryDestination(std::vector<std::string>* lines) : lines_(lines) {}
  std::string Describe() const override { return "memory"; }

 protected:
  Status Emit(const std::string& lines, bool) override {
    size_t pos = 0;
    while (pos < lines.size()) {
      size_t end = lines.find('\n', pos);
      lines_->push_back(lines.substr(pos, end - pos));
      pos = end + 1;
    }
    return Status::OK();
  }

 private:
  std::vector<std::string>* lines_;
};

class DiscardWriter : public CdcCopyWriter {
 public:
  Status Put(std::string_view) override { return Status::OK(); }
  Result<int64_t> Commit() override { return int64_t{-1}; }  // not counted
  void Abort() override {}
};

class DiscardDestination : public CdcDestination {
 public:
  Result<std::unique_ptr<CdcCopyWriter>> OpenCopyWriter(const CdcTable&, bool) override {
    return std::unique_ptr<CdcCopyWriter>(new DiscardWriter());
  }
  Status TruncateTable(const CdcTable&) override { return Status::OK(); }
  Status WriteTableRows(const CdcTable&, const ChangeBatch&) override { return Status::OK(); }
  Status WriteEvents(const ChangeBatch&, const std::vector<CommitStatement>&) override {
    return Status::OK();
  }
  std::string Describe() const override { return "discard"; }
};

}  // namespace

void AppendEventJson(const ChangeBatch& batch, const ChangeEvent& event, const CdcTable& table, bool copy,
                     std::string* out) {
  out->append("{\"op\":\"");
  out->append(copy ? "copy" : ChangeOpName(event.op));
  out->append("\",\"table\":");
  AppendJsonString(table.QualifiedName(), out);
  if (!copy) {
    out->append(",\"lsn\":\"" + CdcLsnToString(event.end_lsn) + "\",\"commit_lsn\":\"" +
                CdcLsnToString(event.commit_lsn) + "\",\"commit_time\":\"" + IsoTime(event.commit_time_us) +
                "\",\"xid\":" + std::to_string(event.xid));
  }
  if (event.new_row != ChangeEvent::kNoRow) {
    out->append(",\"new\":");
    AppendRow(batch, table, event.new_row, false, out);
    const CdcCell* cells = batch.row(event.new_row);
    std::string unchanged;
    for (size_t i = 0; i < table.columns.size(); ++i) {
      if (cells[i].kind != CdcCellKind::kUnchangedToast) continue;
      unchanged += unchanged.empty() ? "" : ",";
      AppendJsonString(table.columns[i].name, &unchanged);
    }
    if (!unchanged.empty()) out->append(",\"unchanged\":[" + unchanged + "]");
  }
  if (event.old_row != ChangeEvent::kNoRow) {
    out->append(",\"old_key\":");
    AppendRow(batch, table, event.old_row, !event.old_is_full && table.identity != CdcIdentity::kFull, out);
  }
  if (event.op == ChangeOp::kTruncate) {
    if (event.truncate_options & ChangeEvent::kTruncateCascade) out->append(",\"cascade\":true");
    if (event.truncate_options & ChangeEvent::kTruncateRestartIdentity)
      out->append(",\"restart_identity\":true");
  }
  out->push_back('}');
}

std::unique_ptr<CdcDestination> MakeJsonLinesCdcDestination(const std::string& path) {
  return std::make_unique<JsonLinesDestination>(path);
}

std::unique_ptr<CdcDestination> MakeMemoryCdcDestination(std::vector<std::string>* lines) {
  return std::make_unique<MemoryDestination>(lines);
}

std::unique_ptr<CdcDestination> MakeDiscardCdcDestination() { return std::make_unique<DiscardDestination>(); }

namespace {

/// Change events are written as JSON lines, uncompressed, whatever a name says.
Status CheckJsonLines(const ConfigTable& t, const std::string& type, const std::string& path) {
  std::string format = t.GetString("format");
  if (!format.empty() && format != "jsonl" && format != "json") {
    return Status::InvalidArgument(t.Name() + " format = \"" + format + "\": a " + type +
                                   " destination of a postgres_cdc pipeline writes change events as JSON "
                                   "lines only (format = \"jsonl\")");
  }
  std::string lower = path;
  for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* ext : {".parquet", ".pq", ".csv", ".tsv", ".gz", ".zst", ".zstd"}) {
    if (lower.ends_with(ext)) {
      return Status::InvalidArgument(t.Name() + " path " + path +
                                     ": change events are written as plain JSON lines; name the file .jsonl");
    }
  }
  return Status::OK();
}

}  // namespace

Status RegisterEventDestinations(Registry& registry) {
  auto jsonl = [](const ConfigTable& t) -> Result<std::unique_ptr<CdcDestination>> {
    std::string path = t.GetString("path");
    std::string type = t.GetString("type");
    SLUICE_RETURN_IF_ERROR(CheckJsonLines(t, type, path));
    if (path.empty()) return Status::InvalidArgument(t.Name() + " path is required for type " + type);
    return MakeJsonLinesCdcDestination(path);
  };
  ComponentInfo jsonl_info{"change events as JSON lines appended to a file (at least once)",
                           {"path", "format"}};
  SLUICE_RETURN_IF_ERROR(registry.AddCdcDestination("jsonl", jsonl, jsonl_info));
  jsonl_info.summary = "the same as jsonl (the older name)";
  SLUICE_RETURN_IF_ERROR(registry.AddCdcDestination("file", jsonl, jsonl_info));
  SLUICE_RETURN_IF_ERROR(
      registry.AddCdcDestination("stdout",
                                 [](const ConfigTable& t) -> Result<std::unique_ptr<CdcDestination>> {
                                   SLUICE_RETURN_IF_ERROR(CheckJsonLines(t, "stdout", ""));
                                   return MakeJsonLinesCdcDestination("-");
                                 },
                                 {"change events as JSON lines on standard output", {"format"}}));
  return registry.AddCdcDestination("null",
                                    [](const ConfigTable&) -> Result<std::unique_ptr<CdcDestination>> {
                                      return MakeDiscardCdcDestination();
                                    },
                                    {"counts the changes and discards them (benchmarks)", {}});
}

}  // namespace sluice::destinations
