#include "sources/files/files_source.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/replace_all.h"
#include "io/csv_lines.h"

namespace sluice::sources {

using engine::QuoteIdent;
using engine::QuoteLiteral;

namespace {

constexpr const char* kRejectsTable = "sluice_reject_errors";
constexpr const char* kRejectsScan = "sluice_reject_scans";

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

Result<FileFormat> FormatFromPath(const std::string& path) {
  std::string p = Lower(path);
  for (const char* suffix : {".gz", ".zst", ".zstd"}) {
    if (p.ends_with(suffix)) p.resize(p.size() - std::strlen(suffix));
  }
  if (p.ends_with(".csv") || p.ends_with(".tsv") || p.ends_with(".txt")) return FileFormat::kCsv;
  if (p.ends_with(".parquet") || p.ends_with(".pq")) return FileFormat::kParquet;
  if (p.ends_with(".jsonl") || p.ends_with(".ndjson") || p.ends_with(".json")) return FileFormat::kJsonl;
  return Status::InvalidArgument("[source] format: cannot tell the format of '" + path +
                                 "' from its extension; set format = \"csv\", \"parquet\" or \"jsonl\"");
}

std::string FileList(const std::vector<io::LocalFile>& files) {
  std::string out = "[";
  for (size_t i = 0; i < files.size(); ++i) {
    if (i) out += ", ";
    out += QuoteLiteral(files[i].path);
  }
  return out + "]";
}

}  // namespace

Result<FileFormat> ParseFileFormat(const std::string& name) {
  std::string n = Lower(name);
  if (n == "csv" || n == "tsv") return FileFormat::kCsv;
  if (n == "parquet") return FileFormat::kParquet;
  if (n == "jsonl" || n == "ndjson" || n == "json") return FileFormat::kJsonl;
  return Status::InvalidArgument("[source] format: unknown format '" + name +
                                 "' (expected csv, parquet or jsonl)");
}

FilesSource::~FilesSource() {
  if (feeder_.joinable()) {
    stop_feeding_.store(true);
    feeder_.join();
  }
  if (!temp_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(temp_dir_, ec);
  }
}

Result<std::unique_ptr<FilesSource>> FilesSource::Make(FilesSourceOptions options) {
  if (options.path.empty() && options.files.empty())
    return Status::InvalidArgument("[source] path is required");
  std::unique_ptr<FilesSource> source(new FilesSource(std::move(options)));
  const auto& o = source->options_;
  if (!o.format.empty()) {
    SLUICE_ASSIGN_OR_RETURN(source->format_, ParseFileFormat(o.format));
  } else if (o.path == "-") {
    source->format_ = FileFormat::kCsv;
  } else {
    SLUICE_ASSIGN_OR_RETURN(source->format_, FormatFromPath(o.files.empty() ? o.path : o.files.front().path));
  }
  for (auto& [name, type] : source->options_.columns) {
    auto parsed = ParseTypeName(type);
    if (!parsed.ok()) return parsed.status().WithContext("[source] columns." + name);
    type = parsed->ToString();  // canonical spelling: never paste config text into SQL
  }
  if (o.on_error == OnError::kSkip && source->format_ != FileFormat::kCsv) {
    return Status::InvalidArgument(
        "[source] on_error = \"skip\" is supported for CSV input only; JSON-lines and Parquet "
        "input stop at the first bad row");
  }
  if (o.max_rejects < 0) return Status::InvalidArgument("[source] max_rejects must be >= 0");
  if (source->format_ == FileFormat::kParquet && o.path == "-") {
    return Status::InvalidArgument(
        "[source] Parquet cannot be read from stdin (it needs seeking); "
        "write it to a file first");
  }
  if (o.delimiter.size() > 1 && o.delimiter != "\\t") {
    return Status::InvalidArgument("[source] delimiter must be one character");
  }
  if (!o.files.empty()) {
    source->files_ = o.files;
  } else if (o.path != "-") {
    SLUICE_ASSIGN_OR_RETURN(source->files_, io::ListLocalFiles(o.path));
  }
  return source;
}

int64_t FilesSource::total_bytes() const {
  int64_t total = 0;
  for (const auto& f : files_) total += f.size;
  return total;
}

std::string FilesSource::Describe() const {
  if (is_stdin()) return "stdin";
  if (files_.size() == 1) return options_.files.empty() ? files_[0].path : options_.path;
  return std::to_string(files_.size()) + " files " + (options_.files.empty() ? "matching '" : "from '") +
         options_.path + "'";
}

std::string FilesSource::CsvOptions() const {
  const auto& o = options_;
  std::string out;
  if (o.header) out += std::string(", header=") + (*o.header ? "true" : "false");
  if (!o.delimiter.empty()) out += ", delim=" + QuoteLiteral(o.delimiter == "\\t" ? "\t" : o.delimiter);
  if (!o.columns.empty()) {
    // Without a header, columns are positional and must all be given;
    // with one, types override the named columns and the rest is detected.
    bool positional = o.header.has_value() && !*o.header;
    out += positional ? ", columns={" : ", types={";
    for (size_t i = 0; i < o.columns.size(); ++i) {
      if (i) out += ", ";
      out += QuoteLiteral(o.columns[i].first) + ": " + QuoteLiteral(o.columns[i].second);
    }
    out += "}";
  }
  return out;
}

std::string FilesSource::ReplaceCasts(const std::string& scan) const {
  if (options_.columns.empty()) return "SELECT * FROM " + scan;
  std::string list;
  for (const auto& [name, type] : options_.columns) {
    if (!list.empty()) list += ", ";
    list += "CAST(" + QuoteIdent(name) + " AS " + type + ") AS " + QuoteIdent(name);
  }
  return "SELECT * REPLACE (" + list + ") FROM " + scan;
}

namespace {

std::string CsvCommonTail(const FilesSourceOptions& o) {
  // PostgreSQL's CSV semantics: an unquoted empty field is NULL, a quoted
  // empty string ("") is an empty string.
  std::string out = ", allow_quoted_nulls=false";
  if (o.on_error == OnError::kSkip) {
    out += std::string(", store_rejects=true, rejects_table='") + kRejectsTable + "', rejects_scan='" +
           kRejectsScan + "', rejects_limit=" + std::to_string(o.max_rejects + 1);
  }
  return out;
}

}  // namespace

Result<std::string> FilesSource::ScanSql(engine::DuckDbEngine* engine) {
  if (is_stdin()) return StdinScanSql(engine);
  switch (format_) {
    case FileFormat::kCsv:
      // Files of one glob may order or add columns differently: match them
      // by name instead of silently using the first file's layout.
      return "SELECT * FROM read_csv(" + FileList(files_) + CsvOptions() + CsvCommonTail(options_) +
             (files_.size() > 1 ? ", union_by_name=true" : "") + ")";
    case FileFormat::kParquet:
      return ReplaceCasts("read_parquet(" + FileList(files_) +
                          (files_.size() > 1 ? ", union_by_name=true" : "") + ")");
    case FileFormat::kJsonl: {
      std::string args = FileList(files_) + ", format='newline_delimited'" +
                         (files_.size() > 1 ? ", union_by_name=true" : "");
      if (options_.columns.empty()) return "SELECT * FROM read_json(" + args + ")";
      SLUICE_ASSIGN_OR_RETURN(auto columns, JsonColumns(engine, args));
      std::string spec;
      for (const auto& [name, type] : columns) {
        spec += (spec.empty() ? "" : ", ") + QuoteLiteral(name) + ": " + QuoteLiteral(type);
      }
      return "SELECT * FROM read_json(" + args + ", columns={" + spec + "})";
    }
  }
  return Status::Internal("unknown format");
}

Result<std::string> FilesSource::StdinScanSql(engine::DuckDbEngine* engine) {
  // Read a sample so DuckDB can detect the dialect and types; the same
  // bytes are replayed into the FIFO ahead of the rest of stdin.
  sample_.resize(static_cast<size_t>(options_.stdin_sample_bytes));
  size_t got = 0;
  while (got < sample_.size()) {
    if (options_.cancel && options_.cancel->cancelled()) return Status::Cancelled("interrupted");
    ssize_t n = read(0, sample_.data() + got, sample_.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Status::IoError(std::string("cannot read stdin: ") + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  sample_.resize(got);
  if (sample_.empty()) return Status::DataError("stdin: no input");
  // Sniff only whole lines.
  size_t cut = sample_.rfind('\n');
  std::string sniff = cut == std::string::npos ? sample_ : sample_.substr(0, cut + 1);

  char tmpl[] = "/tmp/sluice-stdin-XXXXXX";
  std::string base = options_.temp_dir.empty() ? std::string() : options_.temp_dir + "/sluice-stdin-XXXXXX";
  std::vector<char> buf(base.empty() ? std::vector<char>(tmpl, tmpl + sizeof(tmpl))
                                     : std::vector<char>(base.begin(), base.end()));
  if (!base.empty()) buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    return Status::IoError(std::string("cannot create a temp directory: ") + std::strerror(errno));
  }
  temp_dir_ = buf.data();
  std::string sample_path = temp_dir_ + (format_ == FileFormat::kCsv ? "/sample.csv" : "/sample.jsonl");
  {
    std::ofstream out(sample_path, std::ios::binary);
    out.write(sniff.data(), static_cast<std::streamsize>(sniff.size()));
    if (!out) return Status::IoError("cannot write " + sample_path);
  }
  fifo_path_ = temp_dir_ + "/stdin.fifo";
  if (mkfifo(fifo_path_.c_str(), 0600) != 0) {
    return Status::IoError("cannot create FIFO " + fifo_path_ + ": " + std::strerror(errno));
  }

  if (format_ == FileFormat::kCsv) {
    SLUICE_ASSIGN_OR_RETURN(auto rows, engine->QueryRows("SELECT Prompt FROM sniff_csv(" +
                                                         QuoteLiteral(sample_path) + CsvOptions() + ")"));
    if (rows.empty() || !rows[0][0]) return Status::DataError("stdin: cannot detect the CSV format");
    std::string prompt = *rows[0][0];
    // "FROM read_csv('<sample>', auto_detect=false, ..., columns={...});"
    auto from = prompt.find(QuoteLiteral(sample_path));
    auto close = prompt.rfind(')');
    if (prompt.rfind("FROM ", 0) != 0 || from == std::string::npos || close == std::string::npos) {
      return Status::Internal("unexpected sniff_csv prompt: " + prompt);
    }
    std::string call = prompt.substr(5, close - 5);
    call.replace(from - 5, QuoteLiteral(sample_path).size(), QuoteLiteral(fifo_path_));
    return "SELECT * FROM " + call + CsvCommonTail(options_) + ")";
  }
  // JSON lines: DuckDB's JSON reader opens its file while binding, which a
  // FIFO cannot allow; so stdin is split into lines by the CSV reader and
  // each line parsed with from_json into the types detected on the sample.
  SLUICE_ASSIGN_OR_RETURN(auto columns,
                          JsonColumns(engine, QuoteLiteral(sample_path) + ", format='newline_delimited'"));
  std::string structure = "{";
  std::string projection;
  for (size_t i = 0; i < columns.size(); ++i) {
    std::string key = columns[i].first;
    std::string escaped;
    for (char c : key) {
      if (c == '"' || c == '\\') escaped += '\\';
      escaped += c;
    }
    if (i) structure += ",";
    structure += "\"" + escaped + "\":\"" + columns[i].second + "\"";
    if (i) projection += ", ";
    projection += "j." + QuoteIdent(key) + " AS " + QuoteIdent(key);
  }
  structure += "}";
  std::string lines = "read_csv(" + QuoteLiteral(fifo_path_) +
                      ", auto_detect=false, header=false, delim='\\x01', quote='', escape='', "
                      "new_line='\\n', columns={'line': 'VARCHAR'})";
  return "SELECT " + projection + " FROM (SELECT from_json(line, " + QuoteLiteral(structure) +
         ") AS j FROM " + lines + " WHERE trim(line) <> '') AS sluice_lines";
}

Result<std::vector<std::pair<std::string, std::string>>> FilesSource::JsonColumns(
    engine::DuckDbEngine* engine, const std::string& read_json_args) const {
  SLUICE_ASSIGN_OR_RETURN(auto inferred, engine->Describe("SELECT * FROM read_json(" + read_json_args + ")"));
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& col : inferred) out.emplace_back(col.name, col.duckdb_type);
  for (const auto& [name, type] : options_.columns) {
    bool found = false;
    for (auto& col : out) {
      if (col.first == name) {
        col.second = type;
        found = true;
      }
    }
    if (!found) out.emplace_back(name, type);  // a key absent from the sample: NULL until it appears
  }
  return out;
}

bool FilesSource::IsCompressed(const std::string& path) const {
  std::string p = Lower(path);
  return p.ends_with(".gz") || p.ends_with(".zst") || p.ends_with(".zstd");
}

Status FilesSource::Explain(const Status& status) const {
  if (status.ok()) return status;
  std::string message = status.message();
  if (is_stdin() && !fifo_path_.empty() && message.find(fifo_path_) != std::string::npos &&
      (message.find("No such file") != std::string::npos ||
       message.find("No files found") != std::string::npos)) {
    return Status::InvalidArgument(
        "[transform] sql reads `input` more than once, but stdin can be read only once; read it once, "
        "e.g. WITH rows AS MATERIALIZED (SELECT * FROM input) ...");
  }
  message = ReplaceAll(std::move(message), fifo_path_, "stdin");
  if (format_ == FileFormat::kCsv && status.code() == StatusCode::kDataError && !is_stdin()) {
    // "... FILE line N, column C: reason" from engine::DuckDbError, N counting records.
    for (const auto& f : files_) {
      std::string marker = f.path + " line ";
      size_t at = message.find(marker);
      if (at == std::string::npos || IsCompressed(f.path)) continue;
      size_t digits = at + marker.size();
      size_t end = message.find_first_not_of("0123456789", digits);
      if (end == digits) continue;
      auto line = io::PhysicalLineOfRecord(f.path, std::stoll(message.substr(digits, end - digits)));
      if (line.ok()) message.replace(digits, end - digits, std::to_string(*line));
      break;
    }
  }
  return Status(status.code(), message, status.retryable());
}

Status FilesSource::Attach(engine::DuckDbEngine* engine) {
  SLUICE_ASSIGN_OR_RETURN(std::string scan, ScanSql(engine));
  return engine->Execute("CREATE OR REPLACE TEMP VIEW input AS " + scan);
}

void FilesSource::StartFeeding(const CancellationSource* cancel) {
  if (!is_stdin() || fifo_path_.empty() || feeder_.joinable()) return;
  feeder_ = std::thread([this, cancel] { Feed(cancel); });
}

Status FilesSource::StopFeeding() {
  if (feeder_.joinable()) {
    stop_feeding_.store(true);
    feeder_.join();
  }
  return feeder_status_;
}

void FilesSource::Feed(const CancellationSource* cancel) {
  auto stopping = [&] { return stop_feeding_.load() || (cancel && cancel->cancelled()); };
  int fd = -1;
  // Wait for DuckDB to open the reading end, without blocking forever if
  // the query fails before it gets there.
  while (fd < 0) {
    fd = open(fifo_path_.c_str(), O_WRONLY | O_NONBLOCK);
    if (fd >= 0) break;
    if (errno != ENXIO) {
      feeder_status_ = Status::IoError(std::string("cannot open FIFO: ") + std::strerror(errno));
      return;
    }
    if (stopping()) {
      // DuckDB may be blocked opening the reading end: a writer that comes
      // and goes releases it with an empty input.
      int release = open(fifo_path_.c_str(), O_RDWR | O_NONBLOCK);
      if (release >= 0) close(release);
      if (cancel && cancel->cancelled())
        feeder_status_ = Status::Cancelled("interrupted before stdin was read");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // stdin can be read only once: a second scan of `input` must fail at once
  // instead of waiting for a writer that never comes.
  unlink(fifo_path_.c_str());
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  fcntl(fd, F_SETPIPE_SZ, 1 << 20);
  auto write_all = [&](const char* p, size_t n) {
    while (n > 0) {
      ssize_t w = write(fd, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return false;  // EPIPE: the reader is gone (query ended or failed)
      p += w;
      n -= static_cast<size_t>(w);
      stdin_bytes_.fetch_add(w, std::memory_order_relaxed);
    }
    return true;
  };
  bool ok = write_all(sample_.data(), sample_.size());
  sample_.clear();
  sample_.shrink_to_fit();
  std::vector<char> buf(1 << 20);
  while (ok && !stopping()) {
    pollfd pfd{0, POLLIN, 0};
    int pr = poll(&pfd, 1, 100);
    if (pr == 0) continue;
    if (pr < 0 && errno == EINTR) continue;
    ssize_t n = read(0, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      feeder_status_ = Status::IoError(std::string("cannot read stdin: ") + std::strerror(errno));
      break;
    }
    if (n == 0) break;
    ok = write_all(buf.data(), static_cast<size_t>(n));
  }
  if (cancel && cancel->cancelled() && feeder_status_.ok()) {
    // A load of a stream cut short must never be committed as complete.
    feeder_status_ = Status::Cancelled("interrupted before the end of stdin");
  }
  close(fd);
}

namespace {

std::string CsvField(const std::string& v) {
  if (v.find_first_of(",\"\r\n") == std::string::npos) return v;
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

Result<int64_t> FilesSource::FinishRejects(engine::DuckDbEngine* engine) {
  if (options_.on_error != OnError::kSkip) return int64_t{0};
  // One row per rejected input line (a line can fail in several columns).
  SLUICE_ASSIGN_OR_RETURN(
      auto rows,
      engine->QueryRows("SELECT s.file_path, e.line, e.line_byte_position, "
                        "string_agg(coalesce(e.column_name, ''), '; '), string_agg(e.error_message, '; '), "
                        "any_value(e.csv_line) FROM " +
                        std::string(kRejectsTable) + " e JOIN " + kRejectsScan +
                        " s ON e.scan_id = s.scan_id AND e.file_id = s.file_id "
                        "GROUP BY ALL ORDER BY s.file_path, e.line_byte_position"));
  struct Reject {
    std::string file;
    int64_t line;
    int64_t offset;
    std::string column, reason, raw;
  };
  std::vector<Reject> rejects;
  for (const auto& r : rows) {
    rejects.push_back(Reject{r[0].value_or(""), std::stoll(r[1].value_or("0")),
                             std::stoll(r[2].value_or("0")), r[3].value_or(""), r[4].value_or(""),
                             r[5].value_or("")});
  }
  // DuckDB numbers records; users need the physical line (quoted fields may
  // span lines). Re-read each uncompressed file once to translate.
  std::map<std::string, std::vector<size_t>> by_file;
  for (size_t i = 0; i < rejects.size(); ++i) by_file[rejects[i].file].push_back(i);
  for (auto& [file, idx] : by_file) {
    bool local = !is_stdin() && !IsCompressed(file);
    if (!local) continue;
    std::vector<int64_t> offsets;
    for (size_t i : idx) offsets.push_back(rejects[i].offset);
    auto lines = io::PhysicalLinesOfOffsets(file, offsets);
    if (!lines.ok()) continue;  // keep DuckDB's numbers rather than fail the load
    for (size_t k = 0; k < idx.size(); ++k) rejects[idx[k]].line = (*lines)[k];
  }
  for (auto& r : rejects) {
    if (is_stdin()) r.file = "stdin";
  }
  int64_t count = static_cast<int64_t>(rejects.size());
  if (count > 0 && !options_.rejects_path.empty()) {
    std::string csv = "file,line,column,reason,raw\n";
    for (const auto& r : rejects) {
      csv += CsvField(r.file) + "," + std::to_string(r.line) + "," + CsvField(r.column) + "," +
             CsvField(r.reason) + "," + CsvField(r.raw) + "\n";
    }
    SLUICE_RETURN_IF_ERROR(io::WriteFileAtomically(options_.rejects_path, csv));
  }
  if (count > options_.max_rejects) {
    const Reject& first = rejects.front();
    return Status::DataError("more than max_rejects = " + std::to_string(options_.max_rejects) +
                             " bad rows (first: " + first.file + " line " + std::to_string(first.line) +
                             ": " + first.reason + ")");
  }
  return count;
}

}  // namespace sluice::sources
