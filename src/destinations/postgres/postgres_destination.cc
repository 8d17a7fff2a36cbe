#include "destinations/postgres/postgres_destination.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <regex>
#include <set>

#include "destinations/postgres/copy_encoder.h"
#include "destinations/postgres/pg_types.h"
#include "core/redact.h"
#include "destinations/postgres/postgres_cdc_destination.h"
#include "io/postgres/pg_connection.h"
#include "io/postgres/pg_conninfo.h"

namespace sluice {
namespace {

// Write() keeps its buffer between batches; one oversized batch should not
// pin its memory for the rest of the load.
constexpr size_t kMaxKeptBuffer = size_t{64} << 20;
constexpr const char* kStagingTable = "sluice_staging";
constexpr size_t kMaxIdentifierBytes = 63;

/// PostgreSQL's "CONTEXT: COPY t, line N" counts rows of the COPY stream,
/// which users take for a line of their file: say what it is.
Status ExplainCopyLine(const Status& status) {
  static const std::regex kCopyLine(R"(COPY ([^,;]+), line (\d+)(, column [^:;]+)?)");
  std::string message = std::regex_replace(status.message(), kCopyLine, "COPY $1: row $2 of the result$3");
  return Status(status.code(), message, status.retryable());
}

std::string Ident(const std::string& name) { return PgConnection::QuoteIdent(name); }

std::string JoinIdents(const std::vector<std::string>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) out += ", ";
    out += Ident(names[i]);
  }
  return out;
}

bool NeedsQuotes(const std::string& name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return true;
  return !std::all_of(name.begin(), name.end(),
                      [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

std::string DisplayIdent(const std::string& name) { return NeedsQuotes(name) ? Ident(name) : name; }

}  // namespace

std::string PgTableName::Quoted() const { return Ident(schema) + "." + Ident(table); }

std::string PgTableName::Display() const { return DisplayIdent(schema) + "." + DisplayIdent(table); }

Result<PgTableName> ParsePgTableName(const std::string& text) {
  std::vector<std::string> parts;
  std::string current;
  bool quoted = false;  // the current part was written in quotes
  bool in_quotes = false;
  bool closed = false;  // a quoted part ended; only a dot may follow
  auto bad = [&](const std::string& why) {
    return Status::InvalidArgument("invalid table name '" + text + "': " + why);
  };
  auto finish = [&]() -> Status {
    if (!quoted) {
      while (!current.empty() && std::isspace(static_cast<unsigned char>(current.back()))) current.pop_back();
      for (char& c : current) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (current.empty()) return bad("empty name part");
    parts.push_back(std::move(current));
    current.clear();
    quoted = closed = false;
    return Status::OK();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_quotes) {
      if (c == '"') {
        if (i + 1 < text.size() && text[i + 1] == '"') {
          current += '"';
          ++i;
        } else {
          in_quotes = false;
          closed = true;
        }
      } else {
        current += c;
      }
      continue;
    }
    if (c == '.') {
      if (!parts.empty()) return bad("use schema.table (database names are part of the URL)");
      SLUICE_RETURN_IF_ERROR(finish());
      continue;
    }
    if (closed) {
      if (std::isspace(static_cast<unsigned char>(c))) continue;
      return bad("unexpected text after a quoted name");
    }
    if (c == '"') {
      if (!current.empty()) return bad("a quote inside an unquoted name");
      in_quotes = quoted = true;
      continue;
    }
    if (current.empty() && std::isspace(static_cast<unsigned char>(c))) continue;
    current += c;
  }
  if (in_quotes) return bad("unterminated quote");
  SLUICE_RETURN_IF_ERROR(finish());
  PgTableName name;
  if (parts.size() == 2) {
    name.schema = parts[0];
    name.table = parts[1];
  } else {
    name.table = parts[0];
  }
  return name;
}

Result<std::unique_ptr<PostgresDestination>> PostgresDestination::Make(PostgresDestinationOptions options) {
  if (options.url.empty()) return Status::InvalidArgument("postgres destination: url is required");
  if (options.table.empty()) return Status::InvalidArgument("postgres destination: table is required");
  SLUICE_ASSIGN_OR_RETURN(PgTableName name, ParsePgTableName(options.table));
  for (const std::string* part : {&name.schema, &name.table}) {
    if (part->size() > kMaxIdentifierBytes) {
      return Status::InvalidArgument("postgres destination: table name part \"" + *part + "\" has " +
                                     std::to_string(part->size()) +
                                     " bytes, longer than PostgreSQL's limit of 63; choose a shorter name");
    }
  }
  if (options.mode == LoadMode::kUpsert && options.key.empty()) {
    return Status::InvalidArgument("postgres table " + name.Display() +
                                   ": mode upsert needs key (the columns that identify a row)");
  }
  std::set<std::string> seen;
  for (const auto& k : options.key) {
    if (!seen.insert(k).second) {
      return Status::InvalidArgument("postgres table " + name.Display() + ": key column \"" + k +
                                     "\" is listed twice");
    }
  }
  return std::unique_ptr<PostgresDestination>(new PostgresDestination(std::move(options), std::move(name)));
}

PostgresDestination::PostgresDestination(PostgresDestinationOptions options, PgTableName name)
    : options_(std::move(options)), name_(std::move(name)) {}

PostgresDestination::~PostgresDestination() { Abort(); }

std::string PostgresDestination::Describe() const { return "postgres table " + name_.Display(); }

std::shared_ptr<const CopyEncoder> PostgresDestination::encoder() const {
  std::lock_guard<std::mutex> lock(encoder_mu_);
  return encoder_;
}

Status PostgresDestination::Connect() {
  SLUICE_ASSIGN_OR_RETURN(ahead_, PgConnection::Connect(options_.url));
  return Status::OK();
}

Status PostgresDestination::Begin(const Schema& schema) {
  Abort();  // whatever an earlier load left open
  rows_ = 0;
  note_.clear();
  {
    std::lock_guard<std::mutex> lock(rejected_mu_);
    rejected_.clear();
  }
  Status status = BeginLoad(schema);
  if (!status.ok()) {
    Abort();
    // Schema checks already name the table.
    if (status.message().starts_with("table " + name_.Display() + ":")) return status;
    return status.WithContext(Describe());
  }
  loading_ = true;
  return Status::OK();
}

Status PostgresDestination::BeginLoad(const Schema& schema) {
  if (schema.num_fields() == 0) return Status::InvalidArgument("the result has no columns");
  std::vector<std::string> columns;
  std::set<std::string> seen;
  for (const auto& field : schema.fields()) {
    // PostgreSQL cuts longer identifiers to 63 bytes (NAMEDATALEN - 1): the
    // column it would create could not be found by its full name again.
    if (field.name.size() > kMaxIdentifierBytes) {
      std::string cut = field.name.substr(0, kMaxIdentifierBytes);
      while (!cut.empty() && (static_cast<unsigned char>(cut.back()) & 0xC0) == 0x80) cut.pop_back();
      if (!cut.empty() && static_cast<unsigned char>(cut.back()) >= 0xC0) cut.pop_back();
      return Status::InvalidArgument("the result's column \"" + field.name + "\" has a name of " +
                                     std::to_string(field.name.size()) +
                                     " bytes, longer than PostgreSQL's limit of 63 (it would become \"" +
                                     cut + "\"); rename it in [transform] sql, e.g. SELECT " +
                                     Ident(field.name) + " AS " + Ident(cut) + ", ... FROM input");
    }
    if (!seen.insert(field.name).second) {
      return Status::InvalidArgument("the result has two columns named \"" + field.name + "\"");
    }
    columns.push_back(field.name);
  }
  const bool upsert = options_.mode == LoadMode::kUpsert;
  for (const auto& k : options_.key) {
    if (schema.IndexOf(k) < 0) {
      return Status::InvalidArgument("key column \"" + k + "\" is not a column of the result " +
                                     schema.ToString());
    }
  }

  // A connection opened ahead (Connect) may have been closed by the server
  // while it waited: then a new one.
  bool ahead = ahead_ && ahead_->alive();
  if (ahead) {
    conn_ = std::move(ahead_);
  } else {
    ahead_.reset();
    SLUICE_ASSIGN_OR_RETURN(conn_, PgConnection::Connect(options_.url));
  }
  Status begun = conn_->Exec("BEGIN");
  if (!begun.ok() && ahead && !conn_->alive()) {
    SLUICE_ASSIGN_OR_RETURN(conn_, PgConnection::Connect(options_.url));
    begun = conn_->Exec("BEGIN");
  }
  {
    std::lock_guard<std::mutex> lock(cancel_mu_);
    cancel_ = PQgetCancel(conn_->raw());
  }
  if (interrupted_.load()) return Status::Cancelled("interrupted");
  SLUICE_RETURN_IF_ERROR(begun);
  // Checkpoints are recorded once Commit returns: the commit must be durable
  // then, whatever the server or role default says.
  SLUICE_RETURN_IF_ERROR(conn_->Exec("SET LOCAL synchronous_commit TO on"));

  const std::string target = name_.Quoted();
  SLUICE_ASSIGN_OR_RETURN(std::optional<PgTable> table, ReadPgTable(*conn_, target));
  copying_ = false;
  if (options_.untyped_empty) return BeginUntypedEmpty(table, schema);
  bool fresh = false;  // created or truncated in this transaction
  if (!table) {
    if (!options_.create_table) {
      return Status::NotFound("the table does not exist (and create_table is off)");
    }
    std::string ddl = "CREATE TABLE " + target + " (";
    for (int i = 0; i < schema.num_fields(); ++i) {
      const Field& field = schema.field(i);
      auto type = PgTypeNameFor(field.type);
      if (!type.ok()) return type.status().WithContext("column \"" + field.name + "\"");
      ddl += (i ? ", " : "") + Ident(field.name) + " " + *type + (field.nullable ? "" : " NOT NULL");
    }
    if (upsert) ddl += ", PRIMARY KEY (" + JoinIdents(options_.key) + ")";
    ddl += ")";
    Status created = conn_->Exec(ddl);
    if (!created.ok()) {
      // Another load created it first: trying again finds it in place.
      if (created.message().find("42P07") != std::string::npos ||
          created.message().find("pg_type_typname_nsp_index") != std::string::npos) {
        return Status::Unavailable("the table was created concurrently by another session: " +
                                   created.message());
      }
      return created.WithContext("cannot create the table");
    }
    SLUICE_ASSIGN_OR_RETURN(table, ReadPgTable(*conn_, target));
    if (!table) return Status::Internal("the table just created is not visible");
    fresh = true;
  }
  if (table->relkind != 'r' && table->relkind != 'p' && table->relkind != 'f') {
    return Status::InvalidArgument(std::string("the relation is not a table (relkind '") + table->relkind +
                                   "'); only tables can be loaded");
  }
  SLUICE_ASSIGN_OR_RETURN(std::vector<PgType> targets, MatchPgColumns(name_.Display(), *table, schema));
  SLUICE_ASSIGN_OR_RETURN(std::unique_ptr<CopyEncoder> encoder, CopyEncoder::MakeForTargets(schema, targets));
  {
    std::lock_guard<std::mutex> lock(encoder_mu_);
    encoder_ = std::move(encoder);
  }

  const std::string column_list = JoinIdents(columns);
  std::string copy_target = target;
  merge_sql_.clear();
  switch (options_.mode) {
    case LoadMode::kAppend:
      break;
    case LoadMode::kReplace:
      SLUICE_RETURN_IF_ERROR(conn_->Exec("TRUNCATE TABLE " + target));
      fresh = true;
      break;
    case LoadMode::kUpsert: {
      SLUICE_RETURN_IF_ERROR(CheckUpsertKey(table->oid));
      std::string seq = "sluice_seq";
      while (seen.count(seq)) seq += "_";
      const std::string staging = "pg_temp." + Ident(kStagingTable);
      // The staging table has exactly the result's columns with the
      // target's types (not LIKE: the target's defaults, such as nextval(),
      // would run for every staged row), plus the arrival order.
      SLUICE_RETURN_IF_ERROR(conn_->Exec("CREATE TEMPORARY TABLE " + Ident(kStagingTable) +
                                         " ON COMMIT DROP AS SELECT " + column_list + " FROM " + target +
                                         " WITH NO DATA"));
      SLUICE_RETURN_IF_ERROR(conn_->Exec("ALTER TABLE " + staging + " ADD COLUMN " + Ident(seq) +
                                         " bigint GENERATED ALWAYS AS IDENTITY"));
      copy_target = staging;
      const std::string keys = JoinIdents(options_.key);
      std::string set_list;
      for (const auto& c : columns) {
        if (std::find(options_.key.begin(), options_.key.end(), c) != options_.key.end()) continue;
        set_list += (set_list.empty() ? "" : ", ") + Ident(c) + " = EXCLUDED." + Ident(c);
      }
      merge_sql_ = "INSERT INTO " + target + " (" + column_list + ") SELECT DISTINCT ON (" + keys + ") " +
                   column_list + " FROM " + staging + " ORDER BY " + keys + ", " + Ident(seq) +
                   " DESC ON CONFLICT (" + keys + ") " +
                   (set_list.empty() ? "DO NOTHING" : "DO UPDATE SET " + set_list);
      fresh = false;
      break;
    }
  }
  // FREEZE needs a plain table created or truncated in this transaction.
  bool freeze = fresh && table->relkind == 'r';
  SLUICE_RETURN_IF_ERROR(conn_->CopyIn("COPY " + copy_target + " (" + column_list +
                                       ") FROM STDIN (FORMAT binary" + (freeze ? ", FREEZE" : "") + ")"));
  SLUICE_RETURN_IF_ERROR(conn_->PutCopyData(CopyEncoder::Header()));
  copying_ = true;
  return Status::OK();
}

Status PostgresDestination::BeginUntypedEmpty(const std::optional<PgTable>& table, const Schema& schema) {
  if (!table) {
    note_ =
        "the input has no rows and the types of its columns are unknown, so the table was not created "
        "(declare the types in [source] columns to create it)";
    return Status::OK();
  }
  for (const auto& field : schema.fields()) {
    bool found = false;
    for (const auto& col : table->columns) found = found || col.name == field.name;
    if (!found) {
      return Status::SchemaMismatch("table " + name_.Display() + ": the table has no column \"" + field.name +
                                    "\" that the input has");
    }
  }
  if (options_.mode == LoadMode::kReplace) {
    SLUICE_RETURN_IF_ERROR(conn_->Exec("TRUNCATE TABLE " + name_.Quoted()));
    note_ = "the input has no rows: the table was emptied (mode replace)";
  } else {
    note_ = "the input has no rows: the table is unchanged";
  }
  return Status::OK();
}

Status PostgresDestination::CheckUpsertKey(uint32_t table_oid) {
  // ON CONFLICT (key) needs a unique, immediate, non-partial index whose key
  // columns are exactly the key, in any order.
  SLUICE_ASSIGN_OR_RETURN(
      PgResultRows rows,
      conn_->Query("SELECT i.indexrelid, a.attname "
                   "FROM pg_catalog.pg_index i "
                   "CROSS JOIN LATERAL pg_catalog.unnest(i.indkey::pg_catalog.int2[]) "
                   "  WITH ORDINALITY AS k(attnum, ord) "
                   "JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum "
                   "WHERE i.indrelid = $1::pg_catalog.oid AND i.indisunique AND i.indimmediate "
                   "  AND i.indisvalid AND i.indpred IS NULL AND i.indexprs IS NULL "
                   "  AND k.ord <= i.indnkeyatts",
                   {std::to_string(table_oid)}));
  std::map<std::string, std::set<std::string>> indexes;
  for (const auto& row : rows) indexes[row[0].value_or("")].insert(row[1].value_or(""));
  const std::set<std::string> key(options_.key.begin(), options_.key.end());
  for (const auto& [index, columns] : indexes) {
    if (columns == key) return Status::OK();
  }
  std::string key_list = JoinIdents(options_.key);
  return Status::SchemaMismatch("upsert on (" + key_list +
                                ") needs a unique constraint or index on exactly these columns, "
                                "and the table has none; add one, e.g. ALTER TABLE " +
                                name_.Quoted() + " ADD PRIMARY KEY (" + key_list + ")");
}

Status PostgresDestination::EncodeChecked(const CopyEncoder& encoder, const Batch& batch, std::string* out) {
  std::vector<RejectedRow> refused;
  Status status = encoder.Encode(batch, out, &refused);
  if (!status.ok() || refused.empty()) return status;
  std::lock_guard<std::mutex> lock(rejected_mu_);
  if (skip_bad_rows_) {
    for (auto& r : refused) rejected_.push_back(std::move(r));
    return Status::OK();
  }
  rejected_.push_back(refused.front());
  return CopyEncoder::RefusedValueError(refused.front());
}

std::vector<RejectedRow> PostgresDestination::TakeRejectedRows() {
  std::lock_guard<std::mutex> lock(rejected_mu_);
  std::vector<RejectedRow> out;
  out.swap(rejected_);
  return out;
}

Status PostgresDestination::Write(const Batch& batch) {
  if (!loading_) return Status::Internal(Describe() + ": Write without a successful Begin");
  if (!copying_) return UntypedRowsError();
  buffer_.clear();
  Status status = EncodeChecked(*encoder_, batch, &buffer_);
  if (status.ok()) status = conn_->PutCopyData(buffer_);
  if (buffer_.capacity() > kMaxKeptBuffer) std::string().swap(buffer_);
  if (!status.ok()) return status.WithContext(Describe());
  rows_ += batch.num_rows();
  return Status::OK();
}

Status PostgresDestination::UntypedRowsError() const {
  return Status::InvalidArgument(Describe() +
                                 ": the input has no rows and the types of its columns are unknown, yet the "
                                 "result has rows; declare the types in [source] columns");
}

Result<std::string> PostgresDestination::Encode(const Batch& batch) {
  if (options_.untyped_empty) return UntypedRowsError();
  std::shared_ptr<const CopyEncoder> enc = encoder();
  if (!enc) return Status::Internal(Describe() + ": Encode before Begin");
  std::string out;
  Status status = EncodeChecked(*enc, batch, &out);
  if (!status.ok()) return status.WithContext(Describe());
  return out;
}

Status PostgresDestination::WriteEncoded(std::string bytes, int64_t rows) {
  if (!loading_) return Status::Internal(Describe() + ": WriteEncoded without a successful Begin");
  if (!copying_) return UntypedRowsError();
  Status status = conn_->PutCopyData(bytes);
  if (!status.ok()) return ExplainCopyLine(status).WithContext(Describe());
  rows_ += rows;
  return Status::OK();
}

Status PostgresDestination::FinishLoad() {
  if (copying_) {
    SLUICE_RETURN_IF_ERROR(conn_->PutCopyData(CopyEncoder::Trailer()));
    SLUICE_RETURN_IF_ERROR(conn_->EndCopy());
    copying_ = false;
  }
  if (!merge_sql_.empty()) SLUICE_RETURN_IF_ERROR(conn_->Exec(merge_sql_).WithContext("upsert merge"));
  for (const auto& statement : commit_statements_) {
    SLUICE_ASSIGN_OR_RETURN(int64_t affected, conn_->Execute(statement.sql, statement.params));
    if (statement.expect_rows >= 0 && affected != statement.expect_rows) {
      // Another run recorded the same checkpoint first: committing would
      // load its rows a second time.
      return Status(StatusCode::kDataError,
                    "checkpoint already recorded by another run (statement affected " +
                        std::to_string(affected) + " rows, expected " +
                        std::to_string(statement.expect_rows) + "); load rolled back");
    }
  }
  commit_statements_.clear();
  Status committed = conn_->Exec("COMMIT");
  if (!committed.ok() && !conn_->alive()) {
    // Not retryable: the load may have committed, and running it again
    // would then load every row twice.
    return Status(StatusCode::kUnavailable,
                  "the connection was lost during COMMIT, so whether the load was "
                  "committed is unknown (check the table before running again): " +
                      committed.message(),
                  /*retryable=*/false);
  }
  return committed;
}

Status PostgresDestination::Commit() {
  if (!loading_) return Status::Internal(Describe() + ": Commit without a successful Begin");
  Status status = FinishLoad();
  if (!status.ok()) {
    Abort();
    return ExplainCopyLine(status).WithContext(Describe());
  }
  loading_ = false;
  conn_.reset();
  return Status::OK();
}

std::string PostgresDestination::TransactionDatabase() const { return conn_ ? conn_->where() : ""; }

Status PostgresDestination::AddCommitStatements(std::vector<CommitStatement> statements) {
  if (!loading_) return Status::Internal(Describe() + ": AddCommitStatements without a successful Begin");
  for (auto& s : statements) commit_statements_.push_back(std::move(s));
  return Status::OK();
}

void PostgresDestination::Interrupt() {
  interrupted_.store(true);
  std::lock_guard<std::mutex> lock(cancel_mu_);
  if (cancel_ != nullptr) {
    char error[256];
    (void)PQcancel(static_cast<PGcancel*>(cancel_), error, sizeof(error));
  }
}

void PostgresDestination::Abort() {
  loading_ = false;
  copying_ = false;
  commit_statements_.clear();
  if (!conn_) return;
  try {
    if (conn_->alive()) {
      conn_->CancelCopy("load aborted by sluice");
      // Closing the connection would roll back as well; ROLLBACK first
      // releases locks at once instead of when the server notices.
      if (conn_->alive()) (void)conn_->Exec("ROLLBACK");
    }
  } catch (...) {
  }
  {
    std::lock_guard<std::mutex> lock(cancel_mu_);
    if (cancel_ != nullptr) PQfreeCancel(static_cast<PGcancel*>(cancel_));
    cancel_ = nullptr;
  }
  conn_.reset();
}

Result<std::string> PostgresDestination::Check(const Schema& schema) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(options_.url));
  SLUICE_ASSIGN_OR_RETURN(auto table, ReadPgTable(*conn, name_.Quoted()));
  std::string where = Describe() + " at " + RedactUrl(options_.url);
  if (!table) {
    SLUICE_ASSIGN_OR_RETURN(
        auto ns, conn->Query("SELECT n IS NOT NULL AND has_schema_privilege(current_user, n, 'CREATE') "
                             "FROM to_regnamespace($1) AS n",
                             {PgConnection::QuoteIdent(name_.schema)}));
    if (ns.empty() || ns[0][0].value_or("f") != "t") {
      return Status::NotFound(where + ": schema \"" + name_.schema +
                              "\" does not exist or the user may not create tables in it");
    }
    if (!options_.create_table) return Status::NotFound(where + " does not exist and create_table = false");
    return where + " (reachable; the table will be created)";
  }
  if (schema.num_fields() > 0) {
    SLUICE_RETURN_IF_ERROR(MatchPgColumns(name_.Display(), *table, schema).status());
    return where + " (reachable; the existing table fits the result)";
  }
  return where + " (reachable)";
}

Status PostgresDestination::Ping() {
  SLUICE_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(options_.url));
  return conn->Exec("SELECT 1");
}

Status RegisterPostgresDestinations(Registry& registry) {
  SLUICE_RETURN_IF_ERROR(registry.AddDestination(
      "postgres",
      [](const ConfigTable& t) -> Result<std::unique_ptr<Destination>> {
        PostgresDestinationOptions o;
        o.url = t.GetString("url");
        o.table = t.GetString("table");
        std::string mode = t.GetString("mode", "append");
        o.key = t.GetStringList("key");
        o.create_table = t.GetBool("create_table", true);
        if (o.url.empty()) return Status::InvalidArgument(t.Name() + " url is required for type postgres");
        SLUICE_RETURN_IF_ERROR(CheckPgConnInfo(o.url).WithContext(t.Name() + " url"));
        if (o.table.empty()) return Status::InvalidArgument(t.Name() + " table is required for type postgres");
        SLUICE_ASSIGN_OR_RETURN(o.mode, ParseLoadMode(mode));
        SLUICE_ASSIGN_OR_RETURN(auto dest, PostgresDestination::Make(std::move(o)));
        return std::unique_ptr<Destination>(std::move(dest));
      },
      {"a PostgreSQL table, loaded with binary COPY in one transaction (append, replace, upsert)",
       {"url", "table", "mode", "key", "create_table"}}));
  return registry.AddCdcDestination(
      "postgres",
      [](const ConfigTable& t) -> Result<std::unique_ptr<CdcDestination>> {
        std::string url = t.GetString("url");
        std::string schema = t.GetString("schema", "public");
        if (url.empty()) return Status::InvalidArgument(t.Name() + " url is required for type postgres");
        SLUICE_RETURN_IF_ERROR(CheckPgConnInfo(url).WithContext(t.Name() + " url"));
        if (schema.empty()) return Status::InvalidArgument(t.Name() + " schema must not be empty");
        return destinations::MakePostgresCdcDestination(url, schema);
      },
      {"mirrors the published tables into a PostgreSQL schema, exactly once with a PostgreSQL state store",
       {"url", "schema"}});
}

}  // namespace sluice
