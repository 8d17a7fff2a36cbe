#include "sources/postgres_cdc/catalog.h"

#include <string_view>

namespace sluice::cdc {
namespace {

std::string Join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (const std::string& part : parts) {
    if (!out.empty()) out += sep;
    out += part;
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<SourceCatalog>> SourceCatalog::Connect(const std::string& url) {
  SLUICE_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(url, {{"options", kCdcSessionOptions}}));
  return std::unique_ptr<SourceCatalog>(new SourceCatalog(std::move(conn)));
}

Status SourceCatalog::CheckServer() {
  SLUICE_ASSIGN_OR_RETURN(auto rows, conn_->Query("SELECT current_setting('wal_level'), r.rolreplication, "
                                                  "r.rolsuper, current_user, current_database() "
                                                  "FROM pg_roles r WHERE r.rolname = current_user"));
  if (rows.empty()) return Status::Internal("cannot read the current role from pg_roles");
  const auto& row = rows[0];
  if (row[0].value_or("") != "logical") {
    return Status::InvalidArgument("PostgreSQL at " + conn_->where() +
                                   " has wal_level = " + row[0].value_or("?") +
                                   "; logical replication needs wal_level = logical (set it in "
                                   "postgresql.conf and restart the server)");
  }
  if (row[1].value_or("f") != "t" && row[2].value_or("f") != "t") {
    return Status::InvalidArgument("user " + row[3].value_or("?") + " on " + conn_->where() +
                                   " lacks the REPLICATION attribute needed for logical replication "
                                   "(ALTER ROLE " +
                                   PgConnection::QuoteIdent(row[3].value_or("?")) + " REPLICATION)");
  }
  return Status::OK();
}

Status SourceCatalog::EnsurePublication(const std::string& publication,
                                        const std::vector<std::string>& tables, bool create, bool* created) {
  if (created) *created = false;
  std::vector<std::string> qualified;
  std::vector<uint32_t> ids;
  for (const std::string& table : tables) {
    SLUICE_ASSIGN_OR_RETURN(auto rows,
                            conn_->Query("SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), "
                                         "c.relkind::text, c.oid FROM pg_class c JOIN pg_namespace n ON "
                                         "n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
                                         {table}));
    if (rows.empty()) {
      return Status::InvalidArgument("[source] tables: table " + table + " does not exist in " +
                                     conn_->where());
    }
    if (rows[0][1].value_or("") != "r" && rows[0][1].value_or("") != "p") {
      return Status::InvalidArgument("[source] tables: " + table + " is not a table");
    }
    qualified.push_back(*rows[0][0]);
    ids.push_back(static_cast<uint32_t>(std::stoul(rows[0][2].value_or("0"))));
  }
  SLUICE_ASSIGN_OR_RETURN(auto exists,
                          conn_->Query("SELECT 1 FROM pg_publication WHERE pubname = $1", {publication}));
  if (!exists.empty()) return Status::OK();
  if (qualified.empty()) {
    return Status::InvalidArgument("publication " + publication + " does not exist in " + conn_->where() +
                                   "; create it or list the tables to publish in [source] tables");
  }
  // The tables the publication would be made for must be replicable
  // (a usable replica identity) before anything is created; validate checks
  // the same.
  for (uint32_t id : ids) SLUICE_RETURN_IF_ERROR(DescribeTable(id).status());
  if (!create) return Status::OK();
  SLUICE_RETURN_IF_ERROR(conn_->Exec("CREATE PUBLICATION " + PgConnection::QuoteIdent(publication) +
                                     " FOR TABLE " + Join(qualified, ", ")));
  if (created) *created = true;
  return Status::OK();
}

Status SourceCatalog::DropPublication(const std::string& publication) {
  return conn_->Exec("DROP PUBLICATION IF EXISTS " + PgConnection::QuoteIdent(publication));
}

Result<std::vector<PublishedTable>> SourceCatalog::PublicationTables(const std::string& publication) {
  SLUICE_ASSIGN_OR_RETURN(auto exists,
                          conn_->Query("SELECT 1 FROM pg_publication WHERE pubname = $1", {publication}));
  if (exists.empty()) {
    return Status::NotFound("publication " + publication + " does not exist in " + conn_->where());
  }
  SLUICE_ASSIGN_OR_RETURN(auto rows,
                          conn_->Query("SELECT c.oid, p.schemaname, p.tablename FROM pg_publication_tables p "
                                       "JOIN pg_namespace n ON n.nspname = p.schemaname "
                                       "JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = "
                                       "p.tablename WHERE p.pubname = $1 ORDER BY 2, 3",
                                       {publication}));
  std::vector<PublishedTable> tables;
  for (const auto& row : rows) {
    tables.push_back(PublishedTable{static_cast<uint32_t>(std::stoul(row[0].value_or("0"))),
                                    row[1].value_or(""), row[2].value_or("")});
  }
  return tables;
}

Status SourceCatalog::NameColumnType(CdcColumn* column) {
  auto key = std::make_pair(column->type_oid, column->type_modifier);
  auto it = type_cache_.find(key);
  if (it == type_cache_.end()) {
    // The element type for arrays; its namespace tells built-in from user-defined.
    SLUICE_ASSIGN_OR_RETURN(
        auto rows,
        conn_->Query(
            "SELECT format_type(t.oid, $2::int4), b.typtype::text, b.typnamespace = "
            "'pg_catalog'::regnamespace, "
            "format_type(b.oid, NULL), format_type(b.typbasetype, b.typtypmod), b.typnotnull, "
            "(SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder) FROM pg_enum e "
            " WHERE e.enumtypid = b.oid), "
            "(SELECT string_agg(pg_get_constraintdef(c.oid), ' ') FROM pg_constraint c WHERE c.contypid = "
            "b.oid), "
            "quote_ident(nb.nspname), b.typbasetype "
            "FROM pg_type t JOIN pg_type b ON b.oid = CASE WHEN t.typelem <> 0 AND t.typlen = -1 "
            "THEN t.typelem ELSE t.oid END JOIN pg_namespace nb ON nb.oid = b.typnamespace WHERE t.oid = $1",
            {std::to_string(column->type_oid), std::to_string(column->type_modifier)}));
    if (rows.empty()) {
      return Status::InvalidArgument("column " + column->name + ": type oid " +
                                     std::to_string(column->type_oid) + " does not exist on the source");
    }
    const auto& row = rows[0];
    std::string definition;
    if (row[2].value_or("t") != "t") {
      std::string schema = "CREATE SCHEMA IF NOT EXISTS " + row[8].value_or("public") + ";";
      std::string kind = row[1].value_or("");
      if (kind == "e") {
        definition =
            schema + "CREATE TYPE " + row[3].value_or("") + " AS ENUM (" + row[6].value_or("") + ");";
      } else if (kind == "d") {
        // A domain over a user-defined type needs that type first.
        CdcColumn base;
        base.name = column->name;
        base.type_oid = static_cast<uint32_t>(std::stoul(row[9].value_or("0")));
        SLUICE_RETURN_IF_ERROR(NameColumnType(&base));
        definition = base.type_definition + schema + "CREATE DOMAIN " + row[3].value_or("") + " AS " +
                     row[4].value_or("") + (row[5].value_or("f") == "t" ? " NOT NULL" : "") +
                     (row[7] ? " " + *row[7] : "") + ";";
      } else {
        return Status::InvalidArgument("column " + column->name + " has type " + row[0].value_or("?") +
                                       ", a user-defined type sluice cannot mirror (only enums and domains)");
      }
    }
    it = type_cache_.emplace(key, std::make_pair(row[0].value_or(""), std::move(definition))).first;
  }
  column->type_name = it->second.first;
  column->type_definition = it->second.second;
  return Status::OK();
}

Result<std::shared_ptr<const CdcTable>> SourceCatalog::DescribeTable(uint32_t table_id) {
  const std::string oid = std::to_string(table_id);
  SLUICE_ASSIGN_OR_RETURN(auto info,
                          conn_->Query("SELECT n.nspname, c.relname, c.relreplident::text FROM pg_class c "
                                       "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                                       {oid}));
  if (info.empty()) return Status::NotFound("table with oid " + oid + " no longer exists on the source");
  auto table = std::make_shared<CdcTable>();
  table->id = table_id;
  table->schema = info[0][0].value_or("");
  table->name = info[0][1].value_or("");
  const std::string ident = info[0][2].value_or("d");
  table->identity = ident == "f"   ? CdcIdentity::kFull
                    : ident == "i" ? CdcIdentity::kIndex
                    : ident == "n" ? CdcIdentity::kNothing
                                   : CdcIdentity::kDefault;
  // Key columns: those of the replica identity index (the primary key for
  // DEFAULT); every column for FULL, as pgoutput flags them.
  SLUICE_ASSIGN_OR_RETURN(
      auto columns,
      conn_->Query(
          "SELECT a.attname, a.atttypid, a.atttypmod, "
          "($2 = 'f' OR EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND "
          " a.attnum = ANY (i.indkey) AND ((i.indisprimary AND $2 = 'd') OR (i.indisreplident AND $2 = "
          "'i')))) "
          "FROM pg_attribute a WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped AND "
          "a.attgenerated = '' ORDER BY a.attnum",
          {oid, ident}));
  for (const auto& row : columns) {
    CdcColumn column;
    column.name = row[0].value_or("");
    column.type_oid = static_cast<uint32_t>(std::stoul(row[1].value_or("0")));
    column.type_modifier = std::stoi(row[2].value_or("-1"));
    column.key = row[3].value_or("f") == "t";
    SLUICE_RETURN_IF_ERROR(NameColumnType(&column));
    table->columns.push_back(std::move(column));
  }
  if (!table->has_key()) {
    return Status::InvalidArgument(
        "table " + table->QualifiedName() + " has no usable replica identity (REPLICA IDENTITY " +
        (table->identity == CdcIdentity::kNothing ? std::string("NOTHING")
                                                  : std::string("DEFAULT without a primary key")) +
        "), so its updates and deletes cannot be replicated: add a primary key or run ALTER TABLE " +
        PgConnection::QuoteIdent(table->schema) + "." + PgConnection::QuoteIdent(table->name) +
        " REPLICA IDENTITY FULL");
  }
  return std::shared_ptr<const CdcTable>(std::move(table));
}

Result<int64_t> SourceCatalog::TablePages(uint32_t table_id) {
  SLUICE_ASSIGN_OR_RETURN(auto rows,
                          conn_->Query("SELECT greatest(c.relpages, pg_relation_size(c.oid) / "
                                       "current_setting('block_size')::int) FROM pg_class c WHERE c.oid = $1",
                                       {std::to_string(table_id)}));
  if (rows.empty()) return int64_t{0};
  return std::stoll(rows[0][0].value_or("0"));
}

}  // namespace sluice::cdc
