#include "sources/postgres_cdc/table_copier.h"

#include <libpq-fe.h>

#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "io/postgres/pg_connection.h"
#include "sources/postgres_cdc/catalog.h"

namespace sluice::cdc {
namespace {

struct CopyTask {
  std::shared_ptr<const CdcTable> table;
  int64_t first_page = -1;  // -1: whole table
  int64_t end_page = -1;    // -1: to the end
};

bool NeedsTextFormat(const CdcTable& table) {
  // Binary arrays carry their element type's oid, which differs between
  // databases for user-defined types.
  for (const CdcColumn& column : table.columns) {
    if (!column.type_definition.empty() && column.type_name.ends_with("[]")) return true;
  }
  return false;
}

std::string CopyQuery(const CopyTask& task, bool binary) {
  const CdcTable& table = *task.table;
  std::string columns;
  for (const CdcColumn& column : table.columns) {
    if (!columns.empty()) columns += ", ";
    columns += PgConnection::QuoteIdent(column.name);
  }
  std::string sql = "COPY (SELECT " + columns + " FROM ONLY " + PgConnection::QuoteIdent(table.schema) + "." +
                    PgConnection::QuoteIdent(table.name);
  if (task.first_page >= 0) {
    sql += " WHERE ctid >= '(" + std::to_string(task.first_page) + ",0)'::tid";
    if (task.end_page >= 0) sql += " AND ctid < '(" + std::to_string(task.end_page) + ",0)'::tid";
  }
  sql += ") TO STDOUT";
  if (binary) sql += " (FORMAT binary)";
  return sql;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Worker {
 public:
  Worker(const CopyOptions& options, CdcDestination* destination)
      : options_(options), destination_(destination) {}

  Status Open() {
    SLUICE_ASSIGN_OR_RETURN(conn_, PgConnection::Connect(options_.url, {{"options", kCdcSessionOptions}}));
    SLUICE_RETURN_IF_ERROR(conn_->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    if (!options_.snapshot.empty()) {
      SLUICE_RETURN_IF_ERROR(
          conn_->Exec("SET TRANSACTION SNAPSHOT " + PgConnection::QuoteLiteral(options_.snapshot)));
    }
    return Status::OK();
  }

  /// Copies one task; returns the rows copied.
  Result<int64_t> Copy(const CopyTask& task) {
    const bool binary = !NeedsTextFormat(*task.table);
    SLUICE_ASSIGN_OR_RETURN(auto writer, destination_->OpenCopyWriter(*task.table, binary));
    const std::string sql = CopyQuery(task, writer != nullptr && binary);
    PgConnection::ResultPtr start(PQexec(conn_->raw(), sql.c_str()));
    if (!start || PQresultStatus(start.get()) != PGRES_COPY_OUT) {
      if (writer) writer->Abort();
      return conn_->ErrorFrom(start.get(), "COPY TO STDOUT")
          .WithContext("copying " + task.table->QualifiedName());
    }
    int64_t rows = 0;
    std::string chunk;
    ChangeBatch batch;
    std::string scratch;
    Status status;
    while (true) {
      char* buffer = nullptr;
      int n = PQgetCopyData(conn_->raw(), &buffer, 0);
      if (n < 0) break;
      std::string_view data(buffer, static_cast<size_t>(n));
      if (writer) {
        chunk.append(data);
        ++rows;
        if (chunk.size() >= (1u << 20)) {
          status = writer->Put(chunk);
          chunk.clear();
        }
      } else {
        if (!data.empty() && data.back() == '\n') data.remove_suffix(1);
        status = AppendCopyTextRow(data, task.table->columns.size(), &batch, &scratch);
        ++rows;
        if (status.ok() && static_cast<int64_t>(batch.bytes()) >= options_.batch_bytes) {
          status = destination_->WriteTableRows(*task.table, batch);
          batch.Clear();
        }
      }
      PQfreemem(buffer);
      if (status.ok() && options_.cancel != nullptr && options_.cancel->cancelled()) {
        status = Status::Cancelled("initial copy cancelled");
      }
      if (!status.ok()) break;
    }
    if (!status.ok()) {
      // Leave COPY OUT: the connection is closed below by the caller.
      if (writer) writer->Abort();
      conn_.reset();
      return Status(status.code(), "copying " + task.table->QualifiedName() + ": " + status.message(),
                    status.retryable());
    }
    PgConnection::ResultPtr end(PQgetResult(conn_->raw()));
    if (!end || PQresultStatus(end.get()) != PGRES_COMMAND_OK) {
      if (writer) writer->Abort();
      // Ended early (a cancelled backend, a lost connection): try again.
      Status failed = conn_->ErrorFrom(end.get(), "COPY TO STDOUT");
      return Status::Unavailable("copying " + task.table->QualifiedName() + ": " + failed.message());
    }
    while (PGresult* extra = PQgetResult(conn_->raw())) PQclear(extra);
    if (writer) {
      if (!chunk.empty()) SLUICE_RETURN_IF_ERROR(writer->Put(chunk));
      // The writer's count when it has one: binary COPY sends its trailer
      // as one more message.
      SLUICE_ASSIGN_OR_RETURN(int64_t written, writer->Commit());
      rows = written >= 0 ? written : std::max<int64_t>(0, rows - (binary ? 1 : 0));
    } else if (!batch.empty()) {
      SLUICE_RETURN_IF_ERROR(destination_->WriteTableRows(*task.table, batch));
    }
    return rows;
  }

  bool alive() const { return conn_ != nullptr; }

 private:
  const CopyOptions& options_;
  CdcDestination* destination_;
  std::unique_ptr<PgConnection> conn_;
};

}  // namespace

Status AppendCopyTextRow(std::string_view line, size_t columns, ChangeBatch* batch, std::string* scratch) {
  size_t pos = 0;
  uint32_t first = batch->BeginRow();
  for (size_t col = 0; col < columns; ++col) {
    size_t end = line.find('\t', pos);
    if (end == std::string_view::npos) end = line.size();
    if ((col + 1 < columns) != (end < line.size())) {
      return Status::DataError("COPY text row has a different number of fields than the table's " +
                               std::to_string(columns) + " columns");
    }
    std::string_view field = line.substr(pos, end - pos);
    pos = end + 1;
    if (field == "\\N") {
      batch->AppendCell(CdcCellKind::kNull);
      continue;
    }
    if (field.find('\\') == std::string_view::npos) {
      batch->AppendCell(CdcCellKind::kText, field);
      continue;
    }
    scratch->clear();
    for (size_t i = 0; i < field.size(); ++i) {
      char c = field[i];
      if (c != '\\' || i + 1 == field.size()) {
        scratch->push_back(c);
        continue;
      }
      char e = field[++i];
      switch (e) {
        case 'b':
          scratch->push_back('\b');
          break;
        case 'f':
          scratch->push_back('\f');
          break;
        case 'n':
          scratch->push_back('\n');
          break;
        case 'r':
          scratch->push_back('\r');
          break;
        case 't':
          scratch->push_back('\t');
          break;
        case 'v':
          scratch->push_back('\v');
          break;
        case 'x': {
          int value = 0, digits = 0;
          while (digits < 2 && i + 1 < field.size() && HexValue(field[i + 1]) >= 0) {
            value = value * 16 + HexValue(field[++i]);
            ++digits;
          }
          if (digits == 0)
            scratch->push_back('x');
          else
            scratch->push_back(static_cast<char>(value));
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            int value = e - '0';
            for (int k = 0; k < 2 && i + 1 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '7';
                 ++k) {
              value = value * 8 + (field[++i] - '0');
            }
            scratch->push_back(static_cast<char>(value));
          } else {
            scratch->push_back(e);
          }
      }
    }
    batch->AppendCell(CdcCellKind::kText, *scratch);
  }
  ChangeEvent event;
  event.op = ChangeOp::kInsert;
  event.new_row = first;
  batch->AppendEvent(std::move(event));
  return Status::OK();
}

Status CopyTables(const CopyOptions& options, const std::vector<std::shared_ptr<const CdcTable>>& tables,
                  CdcDestination* destination, const TableCopiedFn& on_copied, uint32_t* failed_table) {
  if (tables.empty()) return Status::OK();
  SLUICE_ASSIGN_OR_RETURN(auto catalog, SourceCatalog::Connect(options.url));
  std::vector<CopyTask> tasks;
  std::map<uint32_t, int> ranges_left;
  const int workers = std::max(1, options.workers);
  for (const auto& table : tables) {
    Status truncated = destination->TruncateTable(*table);
    if (!truncated.ok()) {
      if (failed_table) *failed_table = table->id;
      return truncated.WithContext("preparing " + table->QualifiedName() + " for its copy");
    }
    SLUICE_ASSIGN_OR_RETURN(int64_t pages, catalog->TablePages(table->id));
    int64_t ranges = std::min<int64_t>(workers * 2, pages / std::max<int64_t>(1, options.pages_per_range));
    if (workers == 1 || ranges < 2) {
      tasks.push_back(CopyTask{table, -1, -1});
      ranges_left[table->id] = 1;
      continue;
    }
    int64_t step = (pages + ranges - 1) / ranges;
    for (int64_t r = 0; r < ranges; ++r) {
      tasks.push_back(CopyTask{table, r * step, r + 1 == ranges ? -1 : (r + 1) * step});
    }
    ranges_left[table->id] = static_cast<int>(ranges);
  }
  catalog.reset();

  std::mutex mu;
  size_t next = 0;
  Status first_error;
  std::atomic<bool> failed{false};
  std::map<uint32_t, int64_t> rows_by_table;
  uint32_t failed_id = 0;
  auto run = [&]() {
    Worker worker(options, destination);
    Status status = worker.Open();
    CopyTask task;
    while (status.ok()) {
      {
        std::lock_guard lock(mu);
        if (failed || next == tasks.size()) return;
        task = tasks[next++];
      }
      auto rows = worker.Copy(task);
      if (!rows.ok()) {
        status = rows.status();
        break;
      }
      bool done = false;
      int64_t total = 0;
      {
        std::lock_guard lock(mu);
        rows_by_table[task.table->id] += *rows;
        done = --ranges_left[task.table->id] == 0;
        total = rows_by_table[task.table->id];
      }
      if (done) status = on_copied(*task.table, total);
    }
    std::lock_guard lock(mu);
    if (!status.ok() && first_error.ok()) {
      first_error = status;
      if (task.table) failed_id = task.table->id;
    }
    failed = true;
  };
  std::vector<std::thread> threads;
  const int count = std::min<int>(workers, static_cast<int>(tasks.size()));
  for (int i = 0; i < count; ++i) threads.emplace_back(run);
  for (auto& thread : threads) thread.join();
  if (!first_error.ok() && failed_table) *failed_table = failed_id;
  return first_error;
}

}  // namespace sluice::cdc
