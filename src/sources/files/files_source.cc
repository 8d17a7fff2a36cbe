#include "sources/files/files_source.h"

#include <fcntl.h>
#include <fnmatch.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "core/human_format.h"
#include "core/replace_all.h"
#include "io/compressed_input.h"
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
  if (checker_.joinable()) {
    stop_checks_.store(true);
    checker_.join();
  }
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
  if (!o.files.empty()) {
    source->files_ = o.files;
  } else if (o.path != "-") {
    SLUICE_ASSIGN_OR_RETURN(source->files_, io::ListLocalFiles(o.path));
  }
  if (!o.format.empty()) {
    SLUICE_ASSIGN_OR_RETURN(source->format_, ParseFileFormat(o.format));
  } else if (o.path == "-") {
    source->format_ = FileFormat::kCsv;
  } else {
    // From the first file's name: a directory or glob does not say.
    SLUICE_ASSIGN_OR_RETURN(source->format_,
                            FormatFromPath(source->files_.empty() ? o.path : source->files_.front().path));
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
  if (o.max_line_size < 1024 || o.max_line_size > (int64_t{1} << 30)) {
    return Status::InvalidArgument("[source] max_line_size must be between 1KB and 1GiB");
  }
  if (source->format_ == FileFormat::kParquet && o.path == "-") {
    return Status::InvalidArgument(
        "[source] Parquet cannot be read from stdin (it needs seeking); "
        "write it to a file first");
  }
  if (o.delimiter.size() > 1 && o.delimiter != "\\t") {
    return Status::InvalidArgument("[source] delimiter must be one character");
  }
  if (!o.rejects_path.empty()) SLUICE_RETURN_IF_ERROR(source->CheckRejectsPath());
  return source;
}

Status FilesSource::CheckRejectsPath() const {
  // The rejects file replaces what is at its path: never an input, nor a
  // file a later run would take for one.
  namespace fs = std::filesystem;
  auto normal = [](const std::string& p) {
    std::error_code ec;
    fs::path abs = fs::absolute(p, ec);
    return ec ? p : abs.lexically_normal().string();
  };
  const std::string rejects = normal(options_.rejects_path);
  auto refuse = [&](const std::string& why) {
    return Status::InvalidArgument("[source] rejects: " + options_.rejects_path + " " + why +
                                   "; write the rejects elsewhere");
  };
  for (const auto& f : files_) {
    if (normal(f.path) == rejects) return refuse("is one of the input files");
  }
  if (options_.path.empty() || options_.path == "-" || options_.path.starts_with("s3://"))
    return Status::OK();
  std::string pattern = normal(options_.path);
  std::error_code ec;
  if (fs::is_directory(pattern, ec)) {
    if (fs::path(rejects).parent_path() == fs::path(pattern)) {
      return refuse("is in the input directory " + options_.path + ", so a later run would read it as input");
    }
  } else if (fnmatch(pattern.c_str(), rejects.c_str(), FNM_PATHNAME) == 0) {
    return refuse("matches the input path " + options_.path + ", so a later run would read it as input");
  }
  return Status::OK();
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

std::string FilesSource::CsvDialectOptions() const {
  const auto& o = options_;
  std::string out;
  if (o.header) out += std::string(", header=") + (*o.header ? "true" : "false");
  if (!o.delimiter.empty()) out += ", delim=" + QuoteLiteral(o.delimiter == "\\t" ? "\t" : o.delimiter);
  out += ", max_line_size=" + std::to_string(o.max_line_size);
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
  std::string out = ", allow_quoted_nulls=false, max_line_size=" + std::to_string(o.max_line_size);
  if (o.on_error == OnError::kSkip) {
    out += std::string(", store_rejects=true, rejects_table='") + kRejectsTable + "', rejects_scan='" +
           kRejectsScan + "', rejects_limit=" + std::to_string(o.max_rejects + 1);
  }
  return out;
}

}  // namespace

Result<std::string> FilesSource::ScanSql(engine::DuckDbEngine* engine) {
  if (is_stdin()) return StdinScanSql(engine);
  if (options_.arriving) {
    if (format_ != FileFormat::kParquet) return Status::Internal("only Parquet files are read as they arrive");
    scanned_ = files_;
    return ReplaceCasts("read_parquet(" + FileList(scanned_) + ")");
  }
  if (format_ == FileFormat::kCsv) return CsvScanSql(engine);
  // Parquet and JSON lines: a 0-byte file holds nothing (and is no valid
  // Parquet file); a compressed file without content likewise.
  for (const auto& f : files_) {
    bool empty = f.size == 0;
    io::Compression compression = io::CompressionOfPath(f.path);
    if (!empty && compression != io::Compression::kNone) {
      SLUICE_ASSIGN_OR_RETURN(std::string head, io::ReadContentHead(f.path, compression, 1));
      if (head.empty()) {
        // No content: a damaged stream must not pass for an empty file.
        SLUICE_RETURN_IF_ERROR(io::VerifyCompressedFile(f.path, compression, f.path).status());
        empty = true;
      }
    }
    if (empty) {
      empty_files_.push_back(f.path);
    } else {
      scanned_.push_back(f);
    }
  }
  if (scanned_.empty()) return std::string();
  switch (format_) {
    case FileFormat::kCsv:
      break;
    case FileFormat::kParquet:
      return ReplaceCasts("read_parquet(" + FileList(scanned_) +
                          (scanned_.size() > 1 ? ", union_by_name=true" : "") + ")");
    case FileFormat::kJsonl: {
      std::string args = FileList(scanned_) + ", format='newline_delimited'" +
                         (scanned_.size() > 1 ? ", union_by_name=true" : "");
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

namespace {

constexpr size_t kSniffHead = size_t{1} << 16;
/// Rows of a file looked at when checking inferred number types.
constexpr int kExactnessSample = 20480;

/// Fields of `line` split at `delimiter`, honouring double quotes.
int CountFields(std::string_view line, char delimiter) {
  int fields = 1;
  bool quoted = false;
  for (char c : line) {
    if (c == '"') {
      quoted = !quoted;
    } else if (c == delimiter && !quoted) {
      ++fields;
    }
  }
  return fields;
}

std::string FirstLine(const std::string& head) {
  std::string line = head.substr(0, head.find('\n'));
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

/// The delimiter among , ; tab | that splits the first line into the most
/// fields (at least two), or 0.
char LikelyDelimiter(const std::string& first_line, int* fields) {
  char best = 0;
  *fields = 1;
  for (char d : {',', ';', '\t', '|'}) {
    int n = CountFields(first_line, d);
    if (n > *fields) {
      *fields = n;
      best = d;
    }
  }
  return best;
}

std::string ShowDelimiter(char d) { return d == '\t' ? std::string("\\t") : std::string(1, d); }

/// The index just past the '}' that closes the '{' before `from`, skipping
/// '...' literals (with '' inside); npos when unbalanced.
size_t ClosingBrace(const std::string& text, size_t from) {
  bool quoted = false;
  for (size_t i = from; i < text.size(); ++i) {
    if (text[i] == '\'') {
      if (quoted && i + 1 < text.size() && text[i + 1] == '\'') {
        ++i;
        continue;
      }
      quoted = !quoted;
    } else if (!quoted && text[i] == '}') {
      return i + 1;
    }
  }
  return std::string::npos;
}

std::string ColumnSpec(const std::vector<std::pair<std::string, std::string>>& columns) {
  std::string spec = "{";
  for (size_t i = 0; i < columns.size(); ++i) {
    if (i) spec += ", ";
    spec += QuoteLiteral(columns[i].first) + ": " + QuoteLiteral(columns[i].second);
  }
  return spec + "}";
}

std::string NameList(const std::vector<std::pair<std::string, std::string>>& columns) {
  std::string out;
  for (size_t i = 0; i < columns.size() && i < 30; ++i) out += (i ? ", " : "") + columns[i].first;
  if (columns.size() > 30) out += ", ...";
  return out;
}

}  // namespace

std::string FilesSource::DeclaredType(const std::string& name) const {
  for (const auto& [n, t] : options_.columns) {
    if (n == name) return t;
  }
  return {};
}

Result<std::optional<FilesSource::CsvLayout>> FilesSource::SniffCsv(engine::DuckDbEngine* engine,
                                                                    const std::string& path) {
  const io::Compression compression = io::CompressionOfPath(path);
  SLUICE_ASSIGN_OR_RETURN(std::string head, io::ReadContentHead(path, compression, kSniffHead));
  const bool whole = head.size() < kSniffHead;
  if (whole && head.find_first_not_of(" \t\r\n") == std::string::npos) {
    // No content. For a compressed file that may be a stream cut short
    // before its first byte of content: that is damage, not an empty file.
    if (compression != io::Compression::kNone) {
      SLUICE_RETURN_IF_ERROR(io::VerifyCompressedFile(path, compression, path).status());
    }
    return std::optional<CsvLayout>();
  }
  const auto& o = options_;
  const bool positional = o.header.has_value() && !*o.header;
  // The declared types are applied below, on the sniffed columns.
  const std::string user = CsvDialectOptions();

  struct Sniffed {
    std::string prompt;
    int64_t skip = 0;
    bool header = false;
    std::string delimiter;
    std::vector<std::pair<std::string, std::string>> columns;
  };
  auto sniff = [&](bool padded) -> Result<Sniffed> {
    SLUICE_ASSIGN_OR_RETURN(
        auto rows,
        engine->QueryRows("SELECT Prompt, SkipRows, to_json(Columns), Delimiter "
                          "FROM sniff_csv(" +
                          QuoteLiteral(path) + user + (padded ? ", null_padding=true" : "") + ")"));
    if (rows.empty() || !rows[0][0] || !rows[0][2])
      return Status::DataError("no result from the CSV sniffer");
    Sniffed out;
    out.prompt = *rows[0][0];
    out.skip = std::stoll(rows[0][1].value_or("0"));
    out.header = out.prompt.find("header=true") != std::string::npos;
    out.delimiter = rows[0][3].value_or("");
    auto json = nlohmann::json::parse(*rows[0][2], nullptr, false);
    if (!json.is_array()) return Status::Internal("unexpected sniff_csv columns: " + *rows[0][2]);
    for (const auto& c : json) {
      if (!c.is_object() || !c.contains("name") || !c.contains("type")) {
        return Status::Internal("unexpected sniff_csv columns: " + *rows[0][2]);
      }
      out.columns.emplace_back(c["name"].get<std::string>(), c["type"].get<std::string>());
    }
    return out;
  };
  const std::string first_line = FirstLine(head);
  int header_fields = 1;
  const char likely = LikelyDelimiter(first_line, &header_fields);
  // What contradicts the file's first line or the declared columns; empty
  // when the layout is consistent.
  auto contradiction = [&](const Sniffed& s) -> std::string {
    if (s.skip > 0) {
      return "the sniffer would skip the first " + std::to_string(s.skip) +
             " lines as a preamble, which sluice never does silently";
    }
    if (s.columns.size() == 1 && o.delimiter.empty() && likely != 0) {
      return "it found a single column, but the first line has " + std::to_string(header_fields) +
             " fields separated by '" + ShowDelimiter(likely) + "'";
    }
    if (positional && !o.columns.empty() && s.columns.size() != o.columns.size()) {
      return "[source] columns declares " + std::to_string(o.columns.size()) + " columns, but line 1 has " +
             std::to_string(s.columns.size()) + " fields";
    }
    if (!positional && !o.columns.empty()) {
      for (const auto& [name, type] : o.columns) {
        bool found = false;
        for (const auto& c : s.columns) found = found || c.first == name;
        if (!found) {
          return "[source] columns names \"" + name +
                 "\", which is not a column of the file (its columns: " + NameList(s.columns) + ")";
        }
      }
    }
    return {};
  };
  // A line over the limit fails the sniffer at once, with a wrong line
  // number: find the real one. OK for other errors.
  auto long_line = [&](const Status& status) -> Status {
    if (status.message().find("longer than max_line_size") == std::string::npos) return Status::OK();
    auto found = io::FirstLineLongerThan(path, o.max_line_size);
    if (!found.ok() || !found->has_value()) return status;
    return Status::DataError(path + " line " + std::to_string((*found)->line) + ": the line is " +
                             Thousands((*found)->length) + " bytes, longer than max_line_size (" +
                             Thousands(o.max_line_size) + " bytes); raise [source] max_line_size");
  };

  Result<Sniffed> sniffed = sniff(false);
  std::string why;
  if (!sniffed.ok()) {
    SLUICE_RETURN_IF_ERROR(long_line(sniffed.status()));
    why = sniffed.status().message();
  } else {
    why = contradiction(*sniffed);
  }
  if (!why.empty()) {
    // Rows with a different number of fields make the sniffer settle on a
    // layout that fits every row (one text column, or a "preamble" to skip).
    // Detect again letting short rows count as consistent; the rows that do
    // not fit are reported with their line when the file is read.
    Result<Sniffed> padded = sniff(true);
    std::string padded_why = padded.ok() ? contradiction(*padded) : padded.status().message();
    if (!padded.ok()) SLUICE_RETURN_IF_ERROR(long_line(padded.status()));
    if (!padded_why.empty()) {
      // A damaged compressed file makes the sniffer fail too: say so.
      if (compression != io::Compression::kNone) {
        SLUICE_RETURN_IF_ERROR(io::VerifyCompressedFile(path, compression, path).status());
      }
      std::string first = why.substr(0, why.find('\n'));
      std::string fix;
      if (why.starts_with("[source] columns")) {
        return Status::InvalidArgument(path + ": " + why);
      }
      if (likely != 0 && o.delimiter.empty()) {
        fix = "set [source] delimiter = \"" + ShowDelimiter(likely) +
              "\" (rows with another number of fields are then reported with their line)";
      } else {
        fix = "set [source] delimiter and header";
      }
      return Status::DataError(path + ": cannot detect the CSV layout: " + first + "; " + fix);
    }
    sniffed = std::move(padded);
    // With short rows padded, the widest row sets the column count; the
    // header says how many there are, and a wider row is reported.
    if (sniffed->header && sniffed->delimiter.size() == 1) {
      size_t fields = static_cast<size_t>(CountFields(first_line, sniffed->delimiter[0]));
      if (fields >= 1 && fields < sniffed->columns.size()) sniffed->columns.resize(fields);
    }
  }

  // The options that fix the dialect: the sniffer's prompt without its
  // column list (re-made below) and without null padding.
  const std::string& prompt = sniffed->prompt;
  const std::string literal = QuoteLiteral(path);
  size_t at = prompt.find(literal);
  size_t cols = at == std::string::npos ? std::string::npos : prompt.find(", columns={", at + literal.size());
  size_t cols_end = cols == std::string::npos ? std::string::npos : ClosingBrace(prompt, cols + 11);
  size_t close = prompt.rfind(')');
  if (cols_end == std::string::npos || close == std::string::npos || close < cols_end) {
    return Status::Internal("unexpected sniff_csv prompt: " + prompt);
  }
  CsvLayout layout;
  layout.options = prompt.substr(at + literal.size(), cols - at - literal.size()) +
                   prompt.substr(cols_end, close - cols_end);
  layout.options = ReplaceAll(std::move(layout.options), ", null_padding=true", "");
  layout.options = std::regex_replace(layout.options, std::regex(R"(, max_line_size='?\d+'?)"), "");
  if (layout.options.find(", quote='', escape=''") != std::string::npos &&
      head.find('"') == std::string::npos) {
    // No quotes in the sample: read with standard CSV quoting anyway, so a
    // quoted field further down is one field and not split at its commas.
    layout.options =
        ReplaceAll(std::move(layout.options), ", quote='', escape=''", ", quote='\"', escape='\"'");
  }

  // Columns: the sniffed ones, with the declared types.
  if (positional && !o.columns.empty()) {
    layout.columns = o.columns;
  } else {
    layout.columns = sniffed->columns;
    for (auto& [name, type] : layout.columns) {
      std::string declared = DeclaredType(name);
      if (!declared.empty()) type = declared;
    }
  }
  if (sniffed->header && whole) {
    int lines = 0;
    size_t pos = 0;
    while (pos < head.size()) {
      size_t nl = head.find('\n', pos);
      std::string_view line(head.data() + pos, (nl == std::string::npos ? head.size() : nl) - pos);
      if (line.find_first_not_of(" \t\r") != std::string_view::npos) ++lines;
      if (nl == std::string::npos) break;
      pos = nl + 1;
    }
    layout.header_only = lines <= 1;
  }
  if (layout.header_only) {
    for (const auto& [name, type] : layout.columns) {
      if (DeclaredType(name).empty()) layout.types_known = false;
    }
  } else {
    SLUICE_RETURN_IF_ERROR(KeepInferredNumbersExact(engine, path, &layout));
  }
  return std::optional<CsvLayout>(std::move(layout));
}

Status FilesSource::KeepInferredNumbersExact(engine::DuckDbEngine* engine, const std::string& path,
                                             CsvLayout* layout) {
  // DuckDB infers DOUBLE for integers beyond BIGINT and for decimals of any
  // length; a double keeps 15 significant digits. Look at the sample's text.
  std::vector<size_t> doubles;
  for (size_t i = 0; i < layout->columns.size(); ++i) {
    const auto& [name, type] = layout->columns[i];
    if (type == "DOUBLE" && DeclaredType(name).empty()) doubles.push_back(i);
  }
  if (doubles.empty()) return Status::OK();
  std::vector<std::pair<std::string, std::string>> text = layout->columns;
  for (auto& c : text) c.second = "VARCHAR";
  std::string select;
  for (size_t k = 0; k < doubles.size(); ++k) {
    std::string v = "trim(" + QuoteIdent(layout->columns[doubles[k]].first) + ")";
    std::string digits = "regexp_replace(" + v + ", '[^0-9]', '', 'g')";
    std::string int_part = "ltrim(regexp_replace(split_part(" + v + ", '.', 1), '[^0-9]', '', 'g'), '0')";
    if (k) select += ", ";
    select += "coalesce(bool_and(regexp_full_match(" + v +
              ", '[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)')), true), " + "coalesce(max(length(rtrim(ltrim(" +
              digits + ", '0'), '0'))), 0), " + "coalesce(max(length(" + int_part + ")), 0), " +
              "coalesce(max(length(split_part(" + v + ", '.', 2))), 0)";
  }
  SLUICE_ASSIGN_OR_RETURN(
      auto rows, engine->QueryRows("SELECT " + select + " FROM (SELECT * FROM read_csv(" +
                                   QuoteLiteral(path) + layout->options + ", columns=" + ColumnSpec(text) +
                                   ", max_line_size=" + std::to_string(options_.max_line_size) +
                                   ", ignore_errors=true) LIMIT " + std::to_string(kExactnessSample) + ")"));
  if (rows.size() != 1) return Status::Internal("unexpected result of the number check");
  for (size_t k = 0; k < doubles.size(); ++k) {
    const auto& row = rows[0];
    bool plain = row[4 * k].value_or("true") == "true";
    int64_t significant = std::stoll(row[4 * k + 1].value_or("0"));
    int64_t integer_digits = std::stoll(row[4 * k + 2].value_or("0"));
    int64_t scale = std::stoll(row[4 * k + 3].value_or("0"));
    if (significant <= 15) continue;  // a double holds every value exactly enough to print it back
    auto& type = layout->columns[doubles[k]].second;
    if (plain && integer_digits + scale <= 38) {
      type = "DECIMAL(38," + std::to_string(scale) + ")";
    } else {
      type = "VARCHAR";
    }
  }
  return Status::OK();
}

std::string FilesSource::ReadCsvSql(const std::string& files, const std::string& layout_options,
                                    const std::vector<std::pair<std::string, std::string>>& columns) const {
  return "SELECT * FROM read_csv(" + files + layout_options + ", columns=" + ColumnSpec(columns) +
         CsvCommonTail(options_) + ")";
}

Result<std::string> FilesSource::CsvScanSql(engine::DuckDbEngine* engine) {
  std::vector<std::pair<io::LocalFile, CsvLayout>> layouts;
  for (const auto& f : files_) {
    SLUICE_ASSIGN_OR_RETURN(auto layout, SniffCsv(engine, f.path));
    if (!layout) {
      empty_files_.push_back(f.path);
      continue;
    }
    scanned_.push_back(f);
    layouts_[f.path] = *layout;
    layouts.emplace_back(f, std::move(*layout));
  }
  if (layouts.empty()) return std::string();
  untyped_empty_ =
      std::all_of(layouts.begin(), layouts.end(), [](const auto& l) { return l.second.header_only; }) &&
      std::any_of(layouts.begin(), layouts.end(), [](const auto& l) { return !l.second.types_known; });

  // One type per column name over all files (files of one glob may differ:
  // BIGINT in one and DOUBLE in another reads as DOUBLE, as DuckDB's
  // union_by_name would). A header-only file's undeclared columns have no
  // type of their own.
  std::map<std::string, std::vector<std::string>> types_by_name;
  for (const auto& [f, l] : layouts) {
    for (const auto& [name, type] : l.columns) {
      if (l.header_only && DeclaredType(name).empty()) continue;
      auto& types = types_by_name[name];
      if (std::find(types.begin(), types.end(), type) == types.end()) types.push_back(type);
    }
  }
  std::map<std::string, std::string> unified;
  for (const auto& [name, types] : types_by_name) {
    if (types.size() == 1) {
      unified[name] = types[0];
      continue;
    }
    std::string sql;
    for (const auto& t : types)
      sql += (sql.empty() ? "SELECT " : " UNION ALL SELECT ") + ("NULL::" + t + " AS c");
    SLUICE_ASSIGN_OR_RETURN(auto described, engine->Describe(sql));
    unified[name] = described.empty() ? "VARCHAR" : described[0].duckdb_type;
  }

  // Files with the same dialect and columns are read by one read_csv.
  std::vector<std::pair<std::string, std::vector<size_t>>> groups;
  for (size_t i = 0; i < layouts.size(); ++i) {
    std::string key = layouts[i].second.options + '\x1f' + NameList(layouts[i].second.columns) + '\x1f' +
                      std::to_string(layouts[i].second.columns.size());
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.first == key; });
    if (it == groups.end()) {
      groups.push_back({key, {i}});
    } else {
      it->second.push_back(i);
    }
  }
  std::string sql;
  for (const auto& [key, members] : groups) {
    const CsvLayout& layout = layouts[members.front()].second;
    std::vector<io::LocalFile> files;
    for (size_t i : members) files.push_back(layouts[i].first);
    auto columns = layout.columns;
    for (auto& [name, type] : columns) {
      auto u = unified.find(name);
      type = u == unified.end() ? "VARCHAR" : u->second;
    }
    std::string scan = ReadCsvSql(FileList(files), layout.options, columns);
    sql += sql.empty() ? scan : "\nUNION ALL BY NAME\n" + scan;
  }
  return sql;
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
    // The same layout detection and checks as for files, on the sample.
    sample_path_ = sample_path;
    SLUICE_ASSIGN_OR_RETURN(auto layout, SniffCsv(engine, sample_path));
    if (!layout) return Status::DataError("stdin: no input (only blank lines)");
    // A header line and nothing else, when the sample is all of stdin.
    untyped_empty_ = layout->header_only && !layout->types_known &&
                     static_cast<int64_t>(got) < options_.stdin_sample_bytes;
    if (untyped_empty_) {
      // All of stdin is in the sample: read that, there is nothing to feed.
      unlink(fifo_path_.c_str());
      fifo_path_.clear();
      stdin_bytes_.store(static_cast<int64_t>(got));
      return ReadCsvSql(QuoteLiteral(sample_path), layout->options, layout->columns);
    }
    layouts_[fifo_path_] = *layout;
    return ReadCsvSql(QuoteLiteral(fifo_path_), layout->options, layout->columns);
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

std::string FilesSource::FieldCountDetail(const std::string& path, const std::string& reason) const {
  // PostgreSQL's COPY says which column is missing; so do we.
  static const std::regex kFields(R"(expected (\d+) fields, found (\d+))");
  std::smatch m;
  if (!std::regex_search(reason, m, kFields)) return {};
  size_t expected = std::stoul(m[1].str());
  size_t found = std::stoul(m[2].str());
  if (found > expected) return " (extra data after the last expected column)";
  auto it = layouts_.find(path);
  if (it == layouts_.end() || found >= it->second.columns.size()) return {};
  return " (missing data for column " + it->second.columns[found].first + ")";
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
  if (is_stdin() && !fifo_path_.empty()) message += FieldCountDetail(fifo_path_, message);
  message = ReplaceAll(std::move(message), fifo_path_, "stdin");
  if (!sample_path_.empty()) message = ReplaceAll(std::move(message), sample_path_, "stdin");
  if (format_ == FileFormat::kCsv && status.code() == StatusCode::kDataError && !is_stdin()) {
    // "... FILE line N, column C: reason" from engine::DuckDbError, N counting records.
    for (const auto& f : scanned_) {
      std::string marker = f.path + " line ";
      size_t at = message.find(marker);
      if (at == std::string::npos) continue;
      size_t digits = at + marker.size();
      size_t end = message.find_first_not_of("0123456789", digits);
      if (end == digits) continue;
      auto line = io::PhysicalLineOfRecord(f.path, std::stoll(message.substr(digits, end - digits)));
      if (line.ok()) message.replace(digits, end - digits, std::to_string(*line));
      message = message + FieldCountDetail(f.path, message);
      break;
    }
  }
  return Status(status.code(), message, status.retryable());
}

Status FilesSource::Attach(engine::DuckDbEngine* engine) {
  SLUICE_ASSIGN_OR_RETURN(std::string scan, ScanSql(engine));
  if (all_empty()) return Status::OK();
  return engine->Execute("CREATE OR REPLACE TEMP VIEW input AS " + scan);
}

void FilesSource::StartIntegrityChecks() {
  if (checker_.joinable()) return;
  // For bench/load_bench.py only, which measures what the check costs.
  if (const char* skip = std::getenv("SLUICE_BENCH_SKIP_INTEGRITY_CHECK"); skip != nullptr && *skip == '1')
    return;
  std::vector<std::pair<std::string, io::Compression>> compressed;
  for (const auto& f : scanned_) {
    io::Compression c = io::CompressionOfPath(f.path);
    if (c != io::Compression::kNone) compressed.emplace_back(f.path, c);
  }
  if (compressed.empty()) return;
  checker_ = std::thread([this, compressed = std::move(compressed)] {
    for (const auto& [path, compression] : compressed) {
      auto checked = io::VerifyCompressedFile(path, compression, path, &stop_checks_);
      if (!checked.ok()) {
        checks_status_ = checked.status();
        return;
      }
    }
  });
}

Status FilesSource::FinishIntegrityChecks() {
  if (checker_.joinable()) checker_.join();
  return checks_status_;
}

void FilesSource::StopIntegrityChecks() {
  stop_checks_.store(true);
  if (checker_.joinable()) checker_.join();
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

Result<int64_t> FilesSource::FinishRejects(engine::DuckDbEngine* engine,
                                           const std::vector<RejectedRow>& refused) {
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
    int64_t line;  // 0: not known (a row of the result that was not found in the input)
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
  // span lines). Re-read each file once to translate.
  std::map<std::string, std::vector<size_t>> by_file;
  for (size_t i = 0; i < rejects.size(); ++i) by_file[rejects[i].file].push_back(i);
  for (auto& [file, idx] : by_file) {
    if (is_stdin()) continue;
    std::vector<int64_t> offsets;
    for (size_t i : idx) offsets.push_back(rejects[i].offset);
    auto lines = io::PhysicalLinesOfOffsets(file, offsets);
    if (!lines.ok()) continue;  // keep DuckDB's numbers rather than fail the load
    for (size_t k = 0; k < idx.size(); ++k) rejects[idx[k]].line = (*lines)[k];
  }
  for (auto& r : rejects) {
    r.reason = engine::CsvReason(r.reason);
    r.reason += FieldCountDetail(r.file, r.reason);
    if (is_stdin()) r.file = "stdin";
  }
  // Rows the destination refused: where the transform kept input rows, the
  // record they came from; else the row of the result.
  std::vector<std::pair<std::string, std::string>> wanted;
  for (const auto& r : refused) wanted.emplace_back(r.column, r.value);
  auto found = LocateValues(wanted);
  for (size_t i = 0; i < refused.size(); ++i) {
    const RejectedRow& r = refused[i];
    if (found[i]) {
      rejects.push_back(Reject{found[i]->file, found[i]->line, 0, r.column, r.reason, found[i]->raw});
    } else {
      rejects.push_back(Reject{"", 0, 0, r.column,
                               r.reason + " (row " + std::to_string(r.result_row) + " of the result)",
                               r.value});
    }
  }
  int64_t count = static_cast<int64_t>(rejects.size());
  if (count > 0 && !options_.rejects_path.empty()) {
    std::string csv = "file,line,column,reason,raw\n";
    for (const auto& r : rejects) {
      csv += CsvField(r.file) + "," + (r.line > 0 ? std::to_string(r.line) : std::string()) + "," +
             CsvField(r.column) + "," + CsvField(r.reason) + "," + CsvField(r.raw) + "\n";
    }
    SLUICE_RETURN_IF_ERROR(io::WriteFileAtomically(options_.rejects_path, csv));
  }
  if (count > options_.max_rejects) {
    const Reject& first = rejects.front();
    std::string where = first.line > 0 ? first.file + " line " + std::to_string(first.line) + ": " : "";
    return Status::DataError("more than max_rejects = " + std::to_string(options_.max_rejects) +
                             " bad rows (first: " + where + first.reason + ")");
  }
  return count;
}

namespace {

/// The value of `key='...'` in read_csv options ('' doubled inside), or
/// nullopt when the key is absent.
std::optional<std::string> OptionValue(const std::string& options, const std::string& key) {
  std::string marker = ", " + key + "='";
  size_t at = options.find(marker);
  if (at == std::string::npos) return std::nullopt;
  std::string out;
  for (size_t i = at + marker.size(); i < options.size(); ++i) {
    if (options[i] == '\'') {
      if (i + 1 < options.size() && options[i + 1] == '\'') {
        out += '\'';
        ++i;
        continue;
      }
      return out;
    }
    out += options[i];
  }
  return std::nullopt;
}

/// A number's value as text: no sign for zero, no leading zeros, no
/// trailing fractional zeros ("007.50" -> "7.5"); empty when not a number.
std::string NumberKey(std::string_view text) {
  size_t b = text.find_first_not_of(" \t");
  size_t e = text.find_last_not_of(" \t");
  if (b == std::string_view::npos) return {};
  text = text.substr(b, e - b + 1);
  bool negative = false;
  if (!text.empty() && (text[0] == '+' || text[0] == '-')) {
    negative = text[0] == '-';
    text.remove_prefix(1);
  }
  std::string int_part, frac;
  bool dot = false;
  for (char c : text) {
    if (c == '.' && !dot) {
      dot = true;
    } else if (c >= '0' && c <= '9') {
      (dot ? frac : int_part) += c;
    } else {
      return {};
    }
  }
  if (int_part.empty() && frac.empty()) return {};
  int_part.erase(0, std::min(int_part.find_first_not_of('0'), int_part.size()));
  while (!frac.empty() && frac.back() == '0') frac.pop_back();
  if (int_part.empty()) int_part = "0";
  std::string key = int_part + (frac.empty() ? "" : "." + frac);
  return (negative && key != "0" ? "-" : "") + key;
}

}  // namespace

std::vector<std::optional<FilesSource::ValueSource>> FilesSource::LocateValues(
    const std::vector<std::pair<std::string, std::string>>& wanted) const {
  std::vector<std::optional<ValueSource>> found(wanted.size());
  if (wanted.empty() || is_stdin() || format_ != FileFormat::kCsv) return found;
  constexpr size_t kMaxRaw = 4096;
  for (const auto& f : scanned_) {
    auto it = layouts_.find(f.path);
    if (it == layouts_.end()) continue;
    const CsvLayout& layout = it->second;
    // Pending values per column index of this file.
    std::map<size_t, std::vector<size_t>> pending;
    for (size_t w = 0; w < wanted.size(); ++w) {
      if (found[w]) continue;
      for (size_t k = 0; k < layout.columns.size(); ++k) {
        if (layout.columns[k].first == wanted[w].first) pending[k].push_back(w);
      }
    }
    if (pending.empty()) continue;
    std::string delim = OptionValue(layout.options, "delim").value_or(",");
    std::string quote = OptionValue(layout.options, "quote").value_or("\"");
    std::string escape = OptionValue(layout.options, "escape").value_or(quote);
    const char d = delim.empty() ? ',' : delim[0];
    const int q = quote.empty() ? -1 : static_cast<unsigned char>(quote[0]);
    const int esc = escape.empty() ? q : static_cast<unsigned char>(escape[0]);
    bool skip_header = layout.options.find("header=true") != std::string::npos;
    auto reader = io::ContentReader::Open(f.path, io::CompressionOfPath(f.path));
    if (!reader.ok()) continue;

    std::vector<std::string> fields(1);
    std::string raw;
    bool quoted = false;
    int64_t line = 1, record_line = 1;
    size_t open = 0;
    for (const auto& [k, list] : pending) open += list.size();
    auto finish_record = [&] {
      if (skip_header) {
        skip_header = false;
      } else {
        for (auto& [k, list] : pending) {
          if (k >= fields.size() || list.empty()) continue;
          const std::string& field = fields[k];
          for (auto w = list.begin(); w != list.end(); ++w) {
            const std::string& value = wanted[*w].second;
            std::string number = NumberKey(value);
            if (field == value || (!number.empty() && NumberKey(field) == number)) {
              found[*w] = ValueSource{f.path, record_line, raw};
              list.erase(w);
              --open;
              break;
            }
          }
        }
      }
      fields.assign(1, std::string());
      raw.clear();
      record_line = line;
    };
    std::vector<char> buf(1 << 20);
    char prev = 0;
    bool done = false;
    while (!done && open > 0) {
      auto n = (*reader)->Read(buf.data(), buf.size());
      if (!n.ok() || *n == 0) break;
      for (size_t i = 0; i < *n; ++i) {
        char c = buf[i];
        if (c == '\n') ++line;
        if (quoted) {
          if (static_cast<unsigned char>(c) == esc && esc != q && i + 1 < *n) {
            fields.back() += buf[++i];  // an escaped character (at a buffer edge: kept as is)
            if (raw.size() < kMaxRaw) raw += c;
            c = buf[i];
          } else if (static_cast<unsigned char>(c) == q) {
            quoted = false;  // a doubled quote reopens below
          } else {
            fields.back() += c;
          }
        } else if (static_cast<unsigned char>(c) == q) {
          if (prev == static_cast<char>(q) && !fields.back().empty())
            fields.back() += c;  // "" inside a field
          quoted = true;
        } else if (c == d) {
          fields.emplace_back();
        } else if (c == '\n') {
          if (!fields.back().empty() && fields.back().back() == '\r') fields.back().pop_back();
          finish_record();
          prev = c;
          if (open == 0) {
            done = true;
            break;
          }
          continue;
        } else {
          fields.back() += c;
        }
        if (raw.size() < kMaxRaw && c != '\n') raw += c;
        prev = c;
      }
    }
    if (!done && (fields.size() > 1 || !fields[0].empty())) finish_record();
  }
  return found;
}

}  // namespace sluice::sources
