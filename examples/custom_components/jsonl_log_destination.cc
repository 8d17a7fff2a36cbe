#include "jsonl_log_destination.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

#include "tutorial_log.h"

namespace tutorial {
namespace {

constexpr std::string_view kName = "jsonl_log";

void AppendJsonString(std::string& out, std::string_view text) {
  out += '"';
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char escaped[8];
          std::snprintf(escaped, sizeof(escaped), "\\u%04x", static_cast<unsigned>(c));
          out += escaped;
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

/// ,"key":"value"
void AppendField(std::string& out, std::string_view key, std::string_view value) {
  out += ',';
  AppendJsonString(out, key);
  out += ':';
  AppendJsonString(out, value);
}

/// ,"key":{"column":"value",...} for the row whose cells start at `first`.
/// `keys_only`: an old row sent with its key columns only (the others are
/// not set). Unchanged TOASTed columns are left out and named in
/// ,"unchanged_toast":[...].
void AppendRow(std::string& out, std::string_view key, const sluice::CdcTable& table,
               const sluice::ChangeBatch& batch, uint32_t first, bool keys_only) {
  const sluice::CdcCell* cells = batch.row(first);
  std::string unchanged;
  out += ',';
  AppendJsonString(out, key);
  out += ":{";
  bool any = false;
  for (size_t i = 0; i < table.columns.size(); ++i) {
    const sluice::CdcColumn& column = table.columns[i];
    if (keys_only && !column.key) continue;
    if (cells[i].kind == sluice::CdcCellKind::kUnchangedToast) {
      if (!unchanged.empty()) unchanged += ',';
      AppendJsonString(unchanged, column.name);
      continue;
    }
    if (any) out += ',';
    any = true;
    AppendJsonString(out, column.name);
    out += ':';
    if (cells[i].kind == sluice::CdcCellKind::kNull) {
      out += "null";
    } else {
      AppendJsonString(out, batch.value(cells[i]));
    }
  }
  out += '}';
  if (!unchanged.empty()) out += ",\"unchanged_toast\":[" + unchanged + "]";
}

/// The line of one row of the initial copy.
std::string CopyLine(const sluice::CdcTable& table, const sluice::ChangeBatch& rows,
                     const sluice::ChangeEvent& row) {
  std::string line = "{\"phase\":\"copy\"";
  AppendField(line, "op", sluice::ChangeOpName(row.op));
  AppendField(line, "table", table.QualifiedName());
  if (row.new_row != sluice::ChangeEvent::kNoRow) AppendRow(line, "new", table, rows, row.new_row, false);
  line += "}\n";
  return line;
}

/// The line of one streamed change, with the LSNs of its transaction.
std::string EventLine(const sluice::ChangeBatch& batch, const sluice::ChangeEvent& event) {
  static const sluice::CdcTable kUnknownTable{0, "?", "?", sluice::CdcIdentity::kDefault, {}};
  const sluice::CdcTable& table = event.table ? *event.table : kUnknownTable;
  std::string line = "{\"phase\":\"stream\"";
  AppendField(line, "op", sluice::ChangeOpName(event.op));
  AppendField(line, "table", table.QualifiedName());
  line += ",\"xid\":" + std::to_string(event.xid);
  if (event.commit_lsn != 0) AppendField(line, "lsn", sluice::CdcLsnToString(event.commit_lsn));
  if (event.end_lsn != 0) AppendField(line, "end_lsn", sluice::CdcLsnToString(event.end_lsn));
  if (event.commit_time_us != 0) line += ",\"commit_time_us\":" + std::to_string(event.commit_time_us);
  if (event.op == sluice::ChangeOp::kTruncate) {
    line += std::string(",\"cascade\":") +
            ((event.truncate_options & sluice::ChangeEvent::kTruncateCascade) ? "true" : "false");
    line += std::string(",\"restart_identity\":") +
            ((event.truncate_options & sluice::ChangeEvent::kTruncateRestartIdentity) ? "true" : "false");
  }
  if (event.new_row != sluice::ChangeEvent::kNoRow)
    AppendRow(line, "new", table, batch, event.new_row, false);
  if (event.old_row != sluice::ChangeEvent::kNoRow) {
    AppendRow(line, "old", table, batch, event.old_row, !event.old_is_full);
  }
  line += "}\n";
  return line;
}

/// "2 insert, 1 update" for the log.
std::string CountOps(std::span<const sluice::ChangeEvent> events) {
  std::map<std::string, int> counts;
  for (const sluice::ChangeEvent& event : events) {
    counts[std::string(sluice::ChangeOpName(event.op)) + " " +
           (event.table ? event.table->QualifiedName() : std::string("?"))]++;
  }
  std::string text;
  for (const auto& [what, count] : counts)
    text += (text.empty() ? "" : ", ") + std::to_string(count) + " " + what;
  return text;
}

}  // namespace

JsonlLogDestination::JsonlLogDestination(std::string path) : path_(std::move(path)) {}

JsonlLogDestination::~JsonlLogDestination() {
  if (file_ != nullptr) std::fclose(file_);
}

sluice::Status JsonlLogDestination::Open() {
  std::lock_guard lock(mu_);
  if (file_ == nullptr) {
    file_ = std::fopen(path_.c_str(), "a");
    if (file_ == nullptr)
      return sluice::Status::IoError("cannot open " + path_ + ": " + std::strerror(errno));
  }
  Log(kName, "Open: appending JSON lines to " + path_);
  return sluice::Status::OK();
}

sluice::Status JsonlLogDestination::AppendLocked(const std::string& lines) {
  if (file_ == nullptr) return sluice::Status::Internal("jsonl_log: write before Open()");
  if (std::fwrite(lines.data(), 1, lines.size(), file_) != lines.size() || std::fflush(file_) != 0) {
    return sluice::Status::IoError("cannot write " + path_ + ": " + std::strerror(errno));
  }
  // When this returns OK sluice may confirm the LSN to PostgreSQL, which
  // then recycles the WAL: the lines must be on disk by now.
  if (::fsync(::fileno(file_)) != 0) {
    return sluice::Status::IoError("cannot sync " + path_ + ": " + std::strerror(errno));
  }
  return sluice::Status::OK();
}

sluice::Status JsonlLogDestination::TruncateTable(const sluice::CdcTable& table) {
  std::string line = "{\"phase\":\"copy\",\"op\":\"truncate\"";
  AppendField(line, "table", table.QualifiedName());
  line += ",\"columns\":[";
  for (size_t i = 0; i < table.columns.size(); ++i) {
    if (i > 0) line += ',';
    AppendJsonString(line, table.columns[i].name);
  }
  line += "]}\n";
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(AppendLocked(line));
  Log(kName, "TruncateTable " + table.QualifiedName() + " (" + std::to_string(table.columns.size()) +
                 " columns): the initial copy starts");
  return sluice::Status::OK();
}

sluice::Status JsonlLogDestination::WriteTableRows(const sluice::CdcTable& table,
                                                   const sluice::ChangeBatch& rows) {
  std::string lines;
  for (const sluice::ChangeEvent& row : rows.events()) lines += CopyLine(table, rows, row);
  std::lock_guard lock(mu_);
  SLUICE_RETURN_IF_ERROR(AppendLocked(lines));
  Log(kName, "WriteTableRows " + table.QualifiedName() + ": " + std::to_string(rows.events().size()) +
                 " copied rows written");
  return sluice::Status::OK();
}

sluice::Status JsonlLogDestination::WriteEvents(const sluice::ChangeBatch& batch,
                                                const std::vector<sluice::CommitStatement>& /*checkpoint*/) {
  // The checkpoint statements are only for a destination that is itself the
  // state store's PostgreSQL database (TransactionDatabase()); ours is empty.
  std::span<const sluice::ChangeEvent> events = batch.events();
  // An incomplete batch ends inside a transaction: its events there have no
  // end LSN yet. Everything before them is whole transactions.
  size_t whole = events.size();
  if (!batch.complete()) {
    whole = 0;
    for (size_t i = 0; i < events.size(); ++i) {
      if (events[i].end_lsn != 0) whole = i + 1;
    }
  }
  std::string lines;
  for (size_t i = 0; i < whole; ++i) lines += EventLine(batch, events[i]);
  std::string open;
  for (size_t i = whole; i < events.size(); ++i) open += EventLine(batch, events[i]);

  std::lock_guard lock(mu_);
  // A transaction held from earlier pieces ends in this batch when the batch
  // closes any transaction (its own is the first to close).
  bool held_ends = batch.transactions() > 0 || batch.complete();
  const size_t held_written = held_ends ? pending_changes_ : 0;
  if (held_written > 0) lines = pending_ + lines;
  if (!lines.empty()) SLUICE_RETURN_IF_ERROR(AppendLocked(lines));
  // Change what is held only once the write succeeded: a failed WriteEvents
  // is called again with the same events.
  if (held_ends) {
    pending_.clear();
    pending_changes_ = 0;
  }
  pending_ += open;
  pending_changes_ += events.size() - whole;

  std::string message = "WriteEvents: " + std::to_string(whole) + " changes";
  if (whole > 0) message += " (" + CountOps(events.subspan(0, whole)) + ")";
  if (held_written > 0) message += " and " + std::to_string(held_written) + " held from earlier pieces";
  message += " in " + std::to_string(batch.transactions()) + " transactions";
  if (batch.end_lsn() != 0) message += " up to " + sluice::CdcLsnToString(batch.end_lsn());
  message += " written";
  if (!open.empty()) {
    message += "; " + std::to_string(events.size() - whole) + " changes of an open transaction held";
  }
  Log(kName, message);
  return sluice::Status::OK();
}

void JsonlLogDestination::SetExactlyOnce(bool exactly_once) {
  Log(kName, exactly_once ? "delivery: exactly once"
                          : "delivery: at least once (after a crash a transaction may be written again, "
                            "with the same lsn)");
}

void JsonlLogDestination::DiscardIncomplete() {
  std::lock_guard lock(mu_);
  Log(kName, "DiscardIncomplete: dropping " + std::to_string(pending_changes_) +
                 " held changes of an open transaction; the stream sends them again");
  pending_.clear();
  pending_changes_ = 0;
}

std::string JsonlLogDestination::Describe() const { return "jsonl_log file " + path_; }

sluice::Status RegisterJsonlLogDestination(sluice::Registry& registry) {
  return registry.AddCdcDestination(
      "jsonl_log",
      [](const sluice::ConfigTable& table) -> sluice::Result<std::unique_ptr<sluice::CdcDestination>> {
        std::string path = table.GetString("path");
        if (path.empty()) {
          return sluice::Status::InvalidArgument(
              table.Describe() +
              ": key 'path' is required: the file the jsonl_log destination "
              "appends JSON lines to");
        }
        return std::unique_ptr<sluice::CdcDestination>(
            std::make_unique<JsonlLogDestination>(std::move(path)));
      },
      sluice::ComponentInfo{"changes as JSON lines in a file, logged to stderr (the tutorial's destination)",
                            {"path"}});
}

}  // namespace tutorial
