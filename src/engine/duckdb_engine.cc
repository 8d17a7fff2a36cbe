#include "engine/duckdb_engine.h"

#include <duckdb.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <mutex>
#include <regex>
#include <set>

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

/// The database and every connection to it, for Interrupt().
struct SharedDatabase {
  duckdb_database db = nullptr;
  std::mutex mu;
  std::set<duckdb_connection> connections;  // guarded by mu
  ~SharedDatabase() {
    if (db) duckdb_close(&db);
  }
};

struct DuckDbEngine::Impl {
  std::shared_ptr<SharedDatabase> shared;
  /// Where Interrupt() finds this connection: `shared`, or for a reader
  /// (ConnectReader) the database of the engine it reads for.
  std::shared_ptr<SharedDatabase> group;
  duckdb_connection conn = nullptr;
  bool primary = true;  // opened the database (not Connect()ed to it)
  EngineOptions options;
  /// The single-threaded database of ConnectReader, opened on first use.
  std::mutex readers_mu;
  std::shared_ptr<SharedDatabase> readers;  // guarded by readers_mu
  ~Impl() {
    if (!conn) return;
    {
      std::lock_guard<std::mutex> lock(group->mu);
      group->connections.erase(conn);
    }
    duckdb_disconnect(&conn);
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
  engine->impl_->group = engine->impl_->shared;
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
  engine->impl_->shared->connections.insert(engine->impl_->conn);
  SLUICE_RETURN_IF_ERROR(SetUpConnection(engine.get(), options.streaming_buffer));
  return engine;
}

Result<std::unique_ptr<DuckDbEngine>> DuckDbEngine::Connect() {
  std::unique_ptr<DuckDbEngine> engine(new DuckDbEngine());
  engine->impl_ = std::make_unique<Impl>();
  engine->impl_->shared = impl_->shared;
  engine->impl_->group = impl_->group;
  engine->impl_->primary = false;
  engine->impl_->options = impl_->options;
  if (duckdb_connect(impl_->shared->db, &engine->impl_->conn) == DuckDBError) {
    return Status::Internal("cannot connect to DuckDB");
  }
  {
    std::lock_guard<std::mutex> lock(impl_->group->mu);
    impl_->group->connections.insert(engine->impl_->conn);
  }
  SLUICE_RETURN_IF_ERROR(SetUpConnection(engine.get(), impl_->options.streaming_buffer));
  return engine;
}

Result<std::unique_ptr<DuckDbEngine>> DuckDbEngine::ConnectReader() {
  std::shared_ptr<SharedDatabase> readers;
  {
    std::lock_guard<std::mutex> lock(impl_->readers_mu);
    if (!impl_->readers) {
      // One thread per database: a query there runs on the thread that
      // fetches its chunks, and does not wait for (or spin on) this
      // database's threads, which are busy running the query that reads it.
      EngineOptions options = impl_->options;
      options.threads = 1;
      options.streaming_buffer = "";
      SLUICE_ASSIGN_OR_RETURN(auto side, Open(options, ""));
      impl_->readers = side->impl_->shared;
    }
    readers = impl_->readers;
  }
  std::unique_ptr<DuckDbEngine> engine(new DuckDbEngine());
  engine->impl_ = std::make_unique<Impl>();
  engine->impl_->shared = readers;
  engine->impl_->group = impl_->group;
  engine->impl_->primary = false;
  engine->impl_->options = impl_->options;
  if (duckdb_connect(readers->db, &engine->impl_->conn) == DuckDBError) {
    return Status::Internal("cannot connect to DuckDB");
  }
  {
    std::lock_guard<std::mutex> lock(impl_->group->mu);
    impl_->group->connections.insert(engine->impl_->conn);
  }
  SLUICE_RETURN_IF_ERROR(SetUpConnection(engine.get(), ""));
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

// ---------------------------------------------------------------------------
// Parts scan

namespace {

/// Whether two logical types are the same type (vectors of one can stand
/// for vectors of the other).
bool SameType(duckdb_logical_type a, duckdb_logical_type b) {
  duckdb_type id = duckdb_get_type_id(a);
  if (id != duckdb_get_type_id(b)) return false;
  auto same_child = [](duckdb_logical_type x, duckdb_logical_type y) {
    bool same = SameType(x, y);
    duckdb_destroy_logical_type(&x);
    duckdb_destroy_logical_type(&y);
    return same;
  };
  auto same_name = [](char* x, char* y) {
    bool same = std::string(x ? x : "") == std::string(y ? y : "");
    duckdb_free(x);
    duckdb_free(y);
    return same;
  };
  switch (id) {
    case DUCKDB_TYPE_DECIMAL:
      return duckdb_decimal_width(a) == duckdb_decimal_width(b) &&
             duckdb_decimal_scale(a) == duckdb_decimal_scale(b);
    case DUCKDB_TYPE_LIST:
      return same_child(duckdb_list_type_child_type(a), duckdb_list_type_child_type(b));
    case DUCKDB_TYPE_ARRAY:
      return duckdb_array_type_array_size(a) == duckdb_array_type_array_size(b) &&
             same_child(duckdb_array_type_child_type(a), duckdb_array_type_child_type(b));
    case DUCKDB_TYPE_MAP:
      return same_child(duckdb_map_type_key_type(a), duckdb_map_type_key_type(b)) &&
             same_child(duckdb_map_type_value_type(a), duckdb_map_type_value_type(b));
    case DUCKDB_TYPE_STRUCT: {
      idx_t n = duckdb_struct_type_child_count(a);
      if (n != duckdb_struct_type_child_count(b)) return false;
      for (idx_t i = 0; i < n; ++i) {
        if (!same_name(duckdb_struct_type_child_name(a, i), duckdb_struct_type_child_name(b, i)) ||
            !same_child(duckdb_struct_type_child_type(a, i), duckdb_struct_type_child_type(b, i)))
          return false;
      }
      return true;
    }
    case DUCKDB_TYPE_UNION: {
      idx_t n = duckdb_union_type_member_count(a);
      if (n != duckdb_union_type_member_count(b)) return false;
      for (idx_t i = 0; i < n; ++i) {
        if (!same_name(duckdb_union_type_member_name(a, i), duckdb_union_type_member_name(b, i)) ||
            !same_child(duckdb_union_type_member_type(a, i), duckdb_union_type_member_type(b, i)))
          return false;
      }
      return true;
    }
    case DUCKDB_TYPE_ENUM: {
      uint32_t n = duckdb_enum_dictionary_size(a);
      if (n != duckdb_enum_dictionary_size(b)) return false;
      for (uint32_t i = 0; i < n; ++i) {
        if (!same_name(duckdb_enum_dictionary_value(a, i), duckdb_enum_dictionary_value(b, i))) return false;
      }
      return true;
    }
    default:
      return true;
  }
}

/// A parts scan: the function's extra info, alive as long as the database
/// knows the function.
struct PartsScan {
  ScanParts* parts = nullptr;
  DuckDbEngine* owner = nullptr;  // connects the readers
  duckdb_connection (*connection_of)(DuckDbEngine*) = nullptr;
  bool ordered = false;
  std::vector<std::string> names;
  std::vector<duckdb_logical_type> types;
  ~PartsScan() {
    for (auto& t : types) duckdb_destroy_logical_type(&t);
  }
};

/// One query's scan of the function.
struct PartsScanState {
  std::atomic<size_t> next{0};
  std::vector<idx_t> columns;  // the columns the query needs, in output order
  std::string select_list;
};

/// One thread's reading: its connection and the part it is reading.
struct PartsScanReader {
  std::unique_ptr<DuckDbEngine> engine;
  duckdb_connection conn = nullptr;
  duckdb_result result{};
  bool reading = false;
  void Close() {
    if (reading) duckdb_destroy_result(&result);
    reading = false;
  }
  ~PartsScanReader() { Close(); }
};

void PartsScanBind(duckdb_bind_info info) {
  auto* scan = static_cast<PartsScan*>(duckdb_bind_get_extra_info(info));
  for (size_t i = 0; i < scan->names.size(); ++i)
    duckdb_bind_add_result_column(info, scan->names[i].c_str(), scan->types[i]);
}

void PartsScanInit(duckdb_init_info info) {
  auto* scan = static_cast<PartsScan*>(duckdb_init_get_extra_info(info));
  auto state = std::make_unique<PartsScanState>();
  idx_t n = duckdb_init_get_column_count(info);
  for (idx_t i = 0; i < n; ++i) {
    idx_t column = duckdb_init_get_column_index(info, i);
    if (column >= scan->names.size()) {
      duckdb_init_set_error(info, "parts scan: the query asks for a column the scan does not have");
      return;
    }
    state->columns.push_back(column);
    state->select_list += (i ? ", " : "") + QuoteIdent(scan->names[column]);
  }
  // In order: one thread reads the parts one after another.
  duckdb_init_set_max_threads(info, scan->ordered ? 1 : 1024);
  duckdb_init_set_init_data(info, state.release(), [](void* p) { delete static_cast<PartsScanState*>(p); });
}

void PartsScanLocalInit(duckdb_init_info info) {
  auto* scan = static_cast<PartsScan*>(duckdb_init_get_extra_info(info));
  auto reader = std::make_unique<PartsScanReader>();
  auto engine = scan->owner->ConnectReader();
  if (!engine.ok()) {
    duckdb_init_set_error(info, engine.status().message().c_str());
    return;
  }
  reader->engine = std::move(engine).value();
  duckdb_init_set_init_data(info, reader.release(), [](void* p) { delete static_cast<PartsScanReader*>(p); });
}

}  // namespace

namespace {

/// Starts `sql` on `conn` as a streaming query (DuckDB computes ahead of
/// the fetches as far as streaming_buffer_size allows).
Status StartStreaming(duckdb_connection conn, const std::string& sql, duckdb_result* out) {
  duckdb_prepared_statement prepared = nullptr;
  if (duckdb_prepare(conn, sql.c_str(), &prepared) == DuckDBError) {
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
  duckdb_state state = duckdb_execute_pending(pending, out);
  duckdb_destroy_pending(&pending);
  duckdb_destroy_prepare(&prepared);
  if (state == DuckDBError) {
    const char* e = duckdb_result_error(out);
    Status status = DuckDbError(e ? e : "execution failed");
    duckdb_destroy_result(out);
    return status;
  }
  return Status::OK();
}

void PartsScanFunction(duckdb_function_info info, duckdb_data_chunk output) {
  auto* scan = static_cast<PartsScan*>(duckdb_function_get_extra_info(info));
  auto* state = static_cast<PartsScanState*>(duckdb_function_get_init_data(info));
  auto* reader = static_cast<PartsScanReader*>(duckdb_function_get_local_init_data(info));
  auto fail = [&](const std::string& message) {
    reader->Close();
    duckdb_function_set_error(info, message.c_str());
  };
  while (true) {
    if (!reader->reading) {
      size_t index = state->next.fetch_add(1);
      auto part = scan->parts->Open(index, reader->engine.get());
      if (!part.ok()) return fail(part.status().message());
      if (!*part) {
        duckdb_data_chunk_set_size(output, 0);  // no more parts: this thread is done
        return;
      }
      if ((*part)->empty()) continue;
      std::string sql = "SELECT " + (state->select_list.empty() ? std::string("NULL") : state->select_list) +
                        " FROM (" + StripSql(**part) + "\n) AS sluice_part";
      Status started = StartStreaming(scan->connection_of(reader->engine.get()), sql, &reader->result);
      if (!started.ok()) return fail(started.message());
      reader->reading = true;
      if (!state->select_list.empty()) {
        bool same = duckdb_column_count(&reader->result) == state->columns.size();
        for (size_t i = 0; same && i < state->columns.size(); ++i) {
          duckdb_logical_type got = duckdb_column_logical_type(&reader->result, i);
          same = SameType(got, scan->types[state->columns[i]]);
          duckdb_destroy_logical_type(&got);
        }
        if (!same) return fail("part " + std::to_string(index) + " does not have the columns of the scan");
      }
    }
    duckdb_data_chunk chunk = duckdb_fetch_chunk(reader->result);
    if (chunk == nullptr) {
      const char* e = duckdb_result_error(&reader->result);
      std::string error = e ? e : "";
      reader->Close();
      if (!error.empty()) return fail(error);
      continue;  // the part is read
    }
    idx_t rows = duckdb_data_chunk_get_size(chunk);
    if (rows > 0) {
      // The output shares the part's vectors (their buffers are reference
      // counted): no copy.
      if (!state->select_list.empty()) {
        for (idx_t i = 0; i < state->columns.size(); ++i) {
          duckdb_vector_reference_vector(duckdb_data_chunk_get_vector(output, i),
                                         duckdb_data_chunk_get_vector(chunk, i));
        }
      }
      duckdb_data_chunk_set_size(output, rows);
    }
    duckdb_destroy_data_chunk(&chunk);
    if (rows > 0) return;
  }
}

}  // namespace

Status DuckDbEngine::RegisterPartsScan(const std::string& name, ScanParts* parts, DuckDbEngine* reader,
                                       const std::string& first_sql, bool ordered) {
  auto scan = std::make_unique<PartsScan>();
  scan->parts = parts;
  scan->owner = this;
  scan->connection_of = [](DuckDbEngine* engine) { return engine->impl_->conn; };
  scan->ordered = ordered;
  duckdb_prepared_statement prepared = nullptr;
  if (duckdb_prepare(reader->impl_->conn, StripSql(first_sql).c_str(), &prepared) == DuckDBError) {
    const char* e = duckdb_prepare_error(prepared);
    Status status = DuckDbError(e ? e : "prepare failed");
    duckdb_destroy_prepare(&prepared);
    return status;
  }
  idx_t n = duckdb_prepared_statement_column_count(prepared);
  for (idx_t i = 0; i < n; ++i) {
    const char* column = duckdb_prepared_statement_column_name(prepared, i);
    scan->names.emplace_back(column ? column : "");
    scan->types.push_back(duckdb_prepared_statement_column_logical_type(prepared, i));
  }
  duckdb_destroy_prepare(&prepared);
  if (n == 0) return Status::InvalidArgument("a parts scan needs columns");

  duckdb_table_function function = duckdb_create_table_function();
  duckdb_table_function_set_name(function, name.c_str());
  duckdb_table_function_set_extra_info(function, scan.release(),
                                       [](void* p) { delete static_cast<PartsScan*>(p); });
  duckdb_table_function_set_bind(function, PartsScanBind);
  duckdb_table_function_set_init(function, PartsScanInit);
  duckdb_table_function_set_local_init(function, PartsScanLocalInit);
  duckdb_table_function_set_function(function, PartsScanFunction);
  duckdb_table_function_supports_projection_pushdown(function, true);
  duckdb_state state = duckdb_register_table_function(impl_->conn, function);
  duckdb_destroy_table_function(&function);
  if (state == DuckDBError) return Status::Internal("cannot register the table function " + name);
  return Status::OK();
}

QueryProgress DuckDbEngine::Progress() {
  duckdb_query_progress_type p = duckdb_query_progress(impl_->conn);
  return QueryProgress{p.percentage, static_cast<int64_t>(p.rows_processed),
                       static_cast<int64_t>(p.total_rows_to_process)};
}

void DuckDbEngine::Interrupt() {
  if (!impl_->primary) {
    duckdb_interrupt(impl_->conn);
    return;
  }
  // The engine's queries may read through other connections (a parts scan).
  std::lock_guard<std::mutex> lock(impl_->group->mu);
  for (duckdb_connection c : impl_->group->connections) duckdb_interrupt(c);
}

}  // namespace sluice::engine
