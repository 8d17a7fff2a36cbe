#include "engine/duckdb_engine.h"

#include <duckdb.h>

#include <algorithm>
#include <cctype>
#include <regex>

namespace sluice::engine {

// ---------------------------------------------------------------------------
// Quoting and errors

std::string QuoteLiteral(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

std::string QuoteIdent(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

namespace {

std::string FirstMatch(const std::string& text, const std::regex& re) {
  std::smatch m;
  if (std::regex_search(text, m, re)) return m[1].str();
  return {};
}

}  // namespace

std::string CsvReason(const std::string& reason) {
  static const std::regex kFields(R"(Expected Number of Columns: (\d+) Found: (\d+))");
  static const std::regex kLineSize(
      R"(Maximum line size of (\d+) bytes exceeded\. Actual Size:\s*(\d+) bytes)");
  std::smatch m;
  if (std::regex_search(reason, m, kFields)) {
    return "expected " + m[1].str() + " fields, found " + m[2].str();
  }
  if (std::regex_search(reason, m, kLineSize)) {
    return "the line is " + m[2].str() + " bytes, longer than max_line_size (" + m[1].str() +
           " bytes); raise [source] max_line_size";
  }
  return reason;
}

Status DuckDbError(const std::string& message) {
  // CSV errors from DuckDB carry the line, the column and the file in a
  // long multi-line message; users need just those and the reason.
  static const std::regex kLine(R"(CSV Error on Line: (\d+))");
  static const std::regex kFile(R"(\n\s*file = ([^\n]+))");
  static const std::regex kColumn(R"(column \"([^\"]+)\")");
  static const std::regex kReason(R"(Could not convert [^\n]*)");
  std::string line = FirstMatch(message, kLine);
  if (!line.empty()) {
    std::string file = FirstMatch(message, kFile);
    std::string column = FirstMatch(message, kColumn);
    std::smatch m;
    std::string reason;
    if (std::regex_search(message, m, kReason)) {
      reason = m[0].str();
    } else {
      // The first line after the "Original Line" echo is the reason.
      auto pos = message.find("Original Line:");
      auto next = pos == std::string::npos ? std::string::npos : message.find('\n', pos);
      while (next != std::string::npos && reason.empty()) {
        auto end = message.find('\n', next + 1);
        reason = message.substr(next + 1, end == std::string::npos ? std::string::npos : end - next - 1);
        next = end;
      }
      if (reason.empty()) reason = message.substr(0, message.find('\n'));
    }
    reason = CsvReason(reason);
    std::string out = (file.empty() ? std::string("input") : file) + " line " + line;
    if (!column.empty()) out += ", column " + column;
    out += ": " + reason;
    return Status::DataError(out);
  }
  std::string first = message.substr(0, message.find("\n\n"));
  auto starts = [&](const char* p) { return message.rfind(p, 0) == 0; };
  if (starts("Conversion Error") || starts("Invalid Input Error") || starts("Out of Range Error")) {
    return Status::DataError(first);
  }
  if (starts("Parser Error") || starts("Binder Error") || starts("Catalog Error") ||
      starts("Not implemented Error")) {
    return Status::InvalidArgument(first);
  }
  if (starts("IO Error")) return Status::IoError(first);
  if (starts("INTERRUPT")) return Status::Cancelled("interrupted");
  if (starts("Constraint Error")) return Status::DataError(first);
  return Status::Internal(first);
}

// ---------------------------------------------------------------------------
// Type mapping

namespace {

std::string Upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

}  // namespace

ResultColumn MapDuckDbType(const std::string& name, const std::string& duckdb_type) {
  ResultColumn col{name, duckdb_type, DataType::Of(TypeId::kString), ""};
  std::string t = Upper(duckdb_type);
  auto set = [&](TypeId id, std::string cast = "") {
    col.type = DataType::Of(id);
    col.cast_to = std::move(cast);
  };
  // Lists: X[] and fixed arrays X[N].
  if (!t.empty() && t.back() == ']') {
    auto open = t.rfind('[');
    std::string element_type = duckdb_type.substr(0, open);
    ResultColumn element = MapDuckDbType(name, element_type);
    bool fixed = t.size() - open > 2;
    std::string upper_element = Upper(element_type);
    bool nested = upper_element.starts_with("STRUCT") || upper_element.starts_with("MAP") ||
                  upper_element.starts_with("UNION");
    if (element.type.id == TypeId::kList || nested) {
      set(TypeId::kJson, "JSON");
      return col;
    }
    col.type = DataType::List(element.type);
    if (fixed || !element.cast_to.empty()) {
      col.cast_to = (element.cast_to.empty() ? element_type : element.cast_to) + "[]";
    }
    return col;
  }
  if (t.starts_with("STRUCT") || t.starts_with("MAP") || t.starts_with("UNION")) {
    set(TypeId::kJson, "JSON");
  } else if (t.starts_with("DECIMAL")) {
    auto r = ParseTypeName(t);
    col.type = r.ok() ? *r : DataType::Decimal(38, 0);
  } else if (t.starts_with("ENUM")) {
    set(TypeId::kString, "VARCHAR");
  } else if (t == "BOOLEAN") {
    set(TypeId::kBool);
  } else if (t == "TINYINT" || t == "UTINYINT") {
    set(TypeId::kInt16, "SMALLINT");
  } else if (t == "SMALLINT") {
    set(TypeId::kInt16);
  } else if (t == "USMALLINT") {
    set(TypeId::kInt32, "INTEGER");
  } else if (t == "INTEGER") {
    set(TypeId::kInt32);
  } else if (t == "UINTEGER") {
    set(TypeId::kInt64, "BIGINT");
  } else if (t == "BIGINT") {
    set(TypeId::kInt64);
  } else if (t == "UBIGINT" || t == "HUGEINT" || t == "UHUGEINT") {
    col.type = DataType::Decimal(38, 0);
    col.cast_to = "DECIMAL(38,0)";
  } else if (t == "FLOAT") {
    set(TypeId::kFloat32);
  } else if (t == "DOUBLE") {
    set(TypeId::kFloat64);
  } else if (t == "VARCHAR") {
    set(TypeId::kString);
  } else if (t == "JSON") {
    set(TypeId::kJson);
  } else if (t == "BLOB") {
    set(TypeId::kBinary);
  } else if (t == "DATE") {
    set(TypeId::kDate);
  } else if (t == "TIME") {
    set(TypeId::kTime);
  } else if (t == "TIMESTAMP") {
    set(TypeId::kTimestamp);
  } else if (t == "TIMESTAMP_S" || t == "TIMESTAMP_MS" || t == "TIMESTAMP_NS") {
    set(TypeId::kTimestamp, "TIMESTAMP");
  } else if (t == "TIMESTAMP WITH TIME ZONE") {
    set(TypeId::kTimestampTz);
  } else if (t == "INTERVAL") {
    set(TypeId::kInterval);
  } else if (t == "UUID") {
    set(TypeId::kUuid);  // travels as canonical text in Arrow
  } else {
    // TIME WITH TIME ZONE, BIT, VARINT and anything newer: text keeps them
    // exactly as DuckDB prints them.
    set(TypeId::kString, "VARCHAR");
  }
  return col;
}

// ---------------------------------------------------------------------------
// Engine

/// The database, open while any of its engines (Connect) lives.
struct SharedDatabase {
  duckdb_database db = nullptr;
  ~SharedDatabase() {
    if (db) duckdb_close(&db);
  }
};

struct DuckDbEngine::Impl {
  std::shared_ptr<SharedDatabase> shared;
  duckdb_connection conn = nullptr;
  EngineOptions options;
  ~Impl() {
    if (conn) duckdb_disconnect(&conn);
  }
};

DuckDbEngine::~DuckDbEngine() = default;

namespace {

/// Settings of every connection (DuckDB keeps them per connection).
Status SetUpConnection(DuckDbEngine* engine, const std::string& streaming_buffer) {
  // DuckDB tracks query progress only with its progress bar on (a
  // connection setting; the database config does not reach it). sluice
  // draws its own progress line, so DuckDB must not print one.
  SLUICE_RETURN_IF_ERROR(engine->Execute(
      "SET enable_progress_bar = true; SET enable_progress_bar_print = false; SET progress_bar_time = 0"));
  if (!streaming_buffer.empty()) {
    SLUICE_RETURN_IF_ERROR(engine->Execute("SET streaming_buffer_size = " + QuoteLiteral(streaming_buffer)));
  }
  return Status::OK();
}

}  // namespace

Result<std::unique_ptr<DuckDbEngine>> DuckDbEngine::Open(const EngineOptions& options,
                                                         const std::string& path) {
  std::unique_ptr<DuckDbEngine> engine(new DuckDbEngine());
  engine->impl_ = std::make_unique<Impl>();
  engine->impl_->shared = std::make_shared<SharedDatabase>();
  engine->impl_->options = options;
  duckdb_config config;
  if (duckdb_create_config(&config) == DuckDBError) return Status::Internal("duckdb_create_config failed");
  // DuckDB keeps its default when it refuses a value: refuse it here.
  Status config_status;
  auto set = [&](const char* key, const std::string& value) {
    if (value.empty() || !config_status.ok()) return;
    if (duckdb_set_config(config, key, value.c_str()) == DuckDBError) {
      config_status =
          Status::InvalidArgument(std::string("[engine] ") + key + ": DuckDB refused '" + value + "'");
    }
  };
  if (options.threads < 0) config_status = Status::InvalidArgument("[engine] threads must not be negative");
  if (options.threads > 0) set("threads", std::to_string(options.threads));
  set("memory_limit", options.memory_limit);
  set("temp_directory", options.temp_directory);
  // Order does not matter to loads and keeping it costs memory in parallel scans.
  set("preserve_insertion_order", "false");
  if (!config_status.ok()) {
    duckdb_destroy_config(&config);
    return config_status;
  }
  char* error = nullptr;
  duckdb_state state =
      duckdb_open_ext(path.empty() ? nullptr : path.c_str(), &engine->impl_->shared->db, config, &error);
  duckdb_destroy_config(&config);
  if (state == DuckDBError) {
    std::string message = error ? error : "unknown error";
    if (error) duckdb_free(error);
    return Status::IoError("cannot open DuckDB database '" + (path.empty() ? ":memory:" : path) +
                           "': " + message);
  }
  if (duckdb_connect(engine->impl_->shared->db, &engine->impl_->conn) == DuckDBError) {
    return Status::Internal("cannot connect to DuckDB");
  }
  SLUICE_RETURN_IF_ERROR(SetUpConnection(engine.get(), options.streaming_buffer));
  return engine;
}

Result<std::unique_ptr<DuckDbEngine>> DuckDbEngine::Connect() {
  std::unique_ptr<DuckDbEngine> engine(new DuckDbEngine());
  engine->impl_ = std::make_unique<Impl>();
  engine->impl_->shared = impl_->shared;
  engine->impl_->options = impl_->options;
  if (duckdb_connect(impl_->shared->db, &engine->impl_->conn) == DuckDBError) {
    return Status::Internal("cannot connect to DuckDB");
  }
  SLUICE_RETURN_IF_ERROR(SetUpConnection(engine.get(), impl_->options.streaming_buffer));
  return engine;
}

Status DuckDbEngine::Execute(const std::string& sql) {
  duckdb_result result;
  duckdb_state state = duckdb_query(impl_->conn, sql.c_str(), &result);
  Status status;
  if (state == DuckDBError) {
    const char* e = duckdb_result_error(&result);
    status = DuckDbError(e ? e : "unknown DuckDB error");
  }
  duckdb_destroy_result(&result);
  return status;
}

Result<std::vector<std::vector<std::optional<std::string>>>> DuckDbEngine::QueryRows(const std::string& sql) {
  duckdb_result result;
  if (duckdb_query(impl_->conn, sql.c_str(), &result) == DuckDBError) {
    const char* e = duckdb_result_error(&result);
    Status status = DuckDbError(e ? e : "unknown DuckDB error");
    duckdb_destroy_result(&result);
    return status;
  }
  // Small results only (DDL counts, metadata): the materialised API is simplest.
  std::vector<std::vector<std::optional<std::string>>> rows;
  idx_t ncols = duckdb_column_count(&result);
  idx_t nrows = duckdb_row_count(&result);
  rows.reserve(nrows);
  for (idx_t r = 0; r < nrows; ++r) {
    std::vector<std::optional<std::string>> row(ncols);
    for (idx_t c = 0; c < ncols; ++c) {
      if (duckdb_value_is_null(&result, c, r)) continue;
      char* text = duckdb_value_varchar(&result, c, r);
      row[c] = std::string(text ? text : "");
      if (text) duckdb_free(text);
    }
    rows.push_back(std::move(row));
  }
  duckdb_destroy_result(&result);
  return rows;
}

std::string StripSql(std::string sql) {
  // Find the last character that is neither white space, a semicolon nor
  // part of a comment, honouring quotes, so that "SELECT 1; -- done" and
  // "SELECT ';'" are both handled.
  size_t keep = 0;
  for (size_t i = 0; i < sql.size();) {
    char c = sql[i];
    if (c == '\'' || c == '"') {
      size_t end = i + 1;
      while (end < sql.size()) {
        if (sql[end] == c) {
          if (end + 1 < sql.size() && sql[end + 1] == c) {
            end += 2;  // doubled quote inside the literal
            continue;
          }
          break;
        }
        ++end;
      }
      i = std::min(end + 1, sql.size());
      keep = i;
    } else if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      size_t nl = sql.find('\n', i);
      i = nl == std::string::npos ? sql.size() : nl;
    } else if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      size_t end = sql.find("*/", i + 2);
      i = end == std::string::npos ? sql.size() : end + 2;
    } else {
      if (!std::isspace(static_cast<unsigned char>(c)) && c != ';') keep = i + 1;
      ++i;
    }
  }
  sql.resize(keep);
  return sql;
}

Result<std::vector<ResultColumn>> DuckDbEngine::Describe(const std::string& select_sql) {
  SLUICE_ASSIGN_OR_RETURN(auto rows, QueryRows("DESCRIBE " + StripSql(select_sql) + "\n"));
  std::vector<ResultColumn> columns;
  for (const auto& row : rows) {
    if (row.size() < 2 || !row[0] || !row[1]) return Status::Internal("unexpected DESCRIBE output");
    columns.push_back(MapDuckDbType(*row[0], *row[1]));
  }
  return columns;
}

Result<std::string> DuckDbEngine::Normalize(const std::string& select_sql, Schema* schema_out) {
  SLUICE_ASSIGN_OR_RETURN(auto columns, Describe(select_sql));
  bool any_cast = false;
  std::string list;
  std::vector<Field> fields;
  for (const auto& col : columns) {
    if (!list.empty()) list += ", ";
    if (col.cast_to.empty()) {
      list += QuoteIdent(col.name);
    } else {
      any_cast = true;
      list += "CAST(" + QuoteIdent(col.name) + " AS " + col.cast_to + ") AS " + QuoteIdent(col.name);
    }
    fields.push_back(Field{col.name, col.type, true});
  }
  if (schema_out) *schema_out = Schema(std::move(fields));
  if (!any_cast) return StripSql(select_sql);
  return "SELECT " + list + " FROM (" + StripSql(select_sql) + "\n) AS sluice_normalize";
}

namespace {

/// Consumes a duckdb_error_data: OK when there is none, else `code` with
/// "what: DuckDB's message".
Status TakeError(duckdb_error_data error, StatusCode code, const std::string& what) {
  if (error == nullptr) return Status::OK();
  Status status;
  if (duckdb_error_data_has_error(error))
    status = Status(code, what + ": " + duckdb_error_data_message(error));
  duckdb_destroy_error_data(&error);
  return status;
}

class DuckDbStream : public QueryStream {
 public:
  ~DuckDbStream() override {
    if (options_) duckdb_destroy_arrow_options(&options_);
    duckdb_destroy_result(&result_);
  }
  const Schema& schema() const override { return imported_->schema; }

  Result<std::shared_ptr<Batch>> Next() override {
    if (done_) return std::shared_ptr<Batch>();
    duckdb_data_chunk chunk = duckdb_fetch_chunk(result_);
    if (chunk == nullptr) {
      done_ = true;
      const char* e = duckdb_result_error(&result_);
      if (e) return DuckDbError(e);
      return std::shared_ptr<Batch>();
    }
    ArrowArray array{};
    duckdb_error_data error = duckdb_data_chunk_to_arrow(options_, chunk, &array);
    duckdb_destroy_data_chunk(&chunk);
    SLUICE_RETURN_IF_ERROR(TakeError(error, StatusCode::kInternal, "DuckDB to Arrow conversion failed"));
    auto batch = Batch::FromArrow(&array, imported_);
    if (batch.ok()) {
      (*batch)->set_first_row(rows_emitted_);
      rows_emitted_ += (*batch)->num_rows();
    }
    return batch;
  }

  static Result<std::unique_ptr<QueryStream>> Make(duckdb_result result, const Schema& logical) {
    auto stream = std::make_unique<DuckDbStream>();
    stream->result_ = result;
    stream->options_ = duckdb_result_get_arrow_options(&stream->result_);
    idx_t n = duckdb_column_count(&stream->result_);
    std::vector<duckdb_logical_type> types(n);
    std::vector<const char*> names(n);
    for (idx_t i = 0; i < n; ++i) {
      types[i] = duckdb_column_logical_type(&stream->result_, i);
      names[i] = duckdb_column_name(&stream->result_, i);
    }
    ArrowSchema arrow{};
    duckdb_error_data error = duckdb_to_arrow_schema(stream->options_, types.data(), names.data(), n, &arrow);
    for (auto& t : types) duckdb_destroy_logical_type(&t);
    SLUICE_RETURN_IF_ERROR(TakeError(error, StatusCode::kInternal, "DuckDB Arrow schema failed"));
    const Schema* override_types = static_cast<idx_t>(logical.num_fields()) == n ? &logical : nullptr;
    SLUICE_ASSIGN_OR_RETURN(stream->imported_, ImportedSchema::Make(&arrow, override_types));
    return std::unique_ptr<QueryStream>(std::move(stream));
  }

 private:
  duckdb_result result_{};
  duckdb_arrow_options options_ = nullptr;
  std::shared_ptr<const ImportedSchema> imported_;
  bool done_ = false;
  int64_t rows_emitted_ = 0;
};

}  // namespace

Result<std::unique_ptr<QueryStream>> DuckDbEngine::Stream(const std::string& select_sql) {
  Schema logical;
  SLUICE_ASSIGN_OR_RETURN(std::string sql, Normalize(select_sql, &logical));
  duckdb_prepared_statement prepared = nullptr;
  if (duckdb_prepare(impl_->conn, sql.c_str(), &prepared) == DuckDBError) {
    const char* e = duckdb_prepare_error(prepared);
    Status status = DuckDbError(e ? e : "prepare failed");
    duckdb_destroy_prepare(&prepared);
    return status;
  }
  duckdb_pending_result pending = nullptr;
  if (duckdb_pending_prepared_streaming(prepared, &pending) == DuckDBError) {
    const char* e = duckdb_pending_error(pending);
    Status status = DuckDbError(e ? e : "pending failed");
    duckdb_destroy_pending(&pending);
    duckdb_destroy_prepare(&prepared);
    return status;
  }
  duckdb_result result;
  duckdb_state state = duckdb_execute_pending(pending, &result);
  duckdb_destroy_pending(&pending);
  duckdb_destroy_prepare(&prepared);
  if (state == DuckDBError) {
    const char* e = duckdb_result_error(&result);
    Status status = DuckDbError(e ? e : "execution failed");
    duckdb_destroy_result(&result);
    return status;
  }
  return DuckDbStream::Make(result, logical);
}

Status DuckDbEngine::Append(const std::string& table, Batch* batch) {
  duckdb_arrow_converted_schema converted = nullptr;
  // duckdb_schema_from_arrow only reads the schema; the batch keeps owning it.
  auto* arrow_schema = const_cast<ArrowSchema*>(&batch->imported_schema()->arrow);
  SLUICE_RETURN_IF_ERROR(TakeError(duckdb_schema_from_arrow(impl_->conn, arrow_schema, &converted),
                                   StatusCode::kInvalidArgument,
                                   "cannot convert the batch's Arrow schema for DuckDB"));
  ArrowArray array{};
  Status status = batch->ExportTo(&array);
  duckdb_data_chunk chunk = nullptr;
  if (status.ok()) {
    // DuckDB's chunk takes over the Arrow buffers (no copy).
    status = TakeError(duckdb_data_chunk_from_arrow(impl_->conn, &array, converted, &chunk),
                       StatusCode::kInvalidArgument, "cannot convert the batch for DuckDB");
  }
  duckdb_destroy_arrow_converted_schema(&converted);
  if (!status.ok()) {
    if (array.release) array.release(&array);
    return status;
  }
  duckdb_appender appender = nullptr;
  if (duckdb_appender_create(impl_->conn, nullptr, table.c_str(), &appender) == DuckDBError) {
    const char* e = appender ? duckdb_appender_error(appender) : nullptr;
    status = Status::NotFound("cannot append to DuckDB table '" + table + "': " + (e ? e : "unknown error"));
  } else if (duckdb_append_data_chunk(appender, chunk) == DuckDBError ||
             duckdb_appender_close(appender) == DuckDBError) {
    const char* e = duckdb_appender_error(appender);
    status =
        Status::SchemaMismatch("cannot append to DuckDB table '" + table + "': " + (e ? e : "unknown error"));
  }
  if (appender) duckdb_appender_destroy(&appender);
  duckdb_destroy_data_chunk(&chunk);
  return status;
}

// arriving_files.cc: the one use of DuckDB's C++ API.
Status ServeArrivingFilesOn(duckdb_database db, ArrivingFileWaiter wait);

Status DuckDbEngine::ServeArrivingFiles(ArrivingFileWaiter wait) {
  return ServeArrivingFilesOn(impl_->shared->db, std::move(wait));
}

QueryProgress DuckDbEngine::Progress() {
  duckdb_query_progress_type p = duckdb_query_progress(impl_->conn);
  return QueryProgress{p.percentage, static_cast<int64_t>(p.rows_processed),
                       static_cast<int64_t>(p.total_rows_to_process)};
}

void DuckDbEngine::Interrupt() { duckdb_interrupt(impl_->conn); }

}  // namespace sluice::engine
