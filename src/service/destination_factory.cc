#include "service/destination_factory.h"

#include <filesystem>

#include "core/redact.h"
#include "destinations/null/null_destination.h"
#include "destinations/postgres/pg_types.h"
#include "destinations/postgres/postgres_destination.h"
#include "io/postgres/pg_connection.h"
#include "io/s3/s3_client.h"

namespace sluice::service {

Result<io::S3Options> S3OptionsFor(const S3Config& config, const CancellationSource* cancel) {
  io::S3Options o;
  o.endpoint = config.endpoint;
  o.region = config.region;
  o.access_key_id = config.access_key_id;
  o.secret_access_key = config.secret_access_key;
  o.session_token = config.session_token;
  if (!config.addressing.empty()) o.path_style = config.addressing == "path";
  o.stall_timeout_ms = config.stall_timeout_ms;
  o.retry.max_elapsed = std::chrono::milliseconds(config.retry_max_elapsed_ms);
  o.cancel = cancel;
  return io::ResolveS3Options(std::move(o), GetEnv);
}

Result<BuiltDestination> MakeDestination(const DestinationConfig& config, const CancellationSource* cancel) {
  BuiltDestination out;
  const std::string& type = config.type;
  if (type == "postgres") {
    PostgresDestinationOptions o;
    o.url = config.url;
    o.table = config.table;
    SLUICE_ASSIGN_OR_RETURN(o.mode, ParsePostgresLoadMode(config.mode));
    o.key = config.key;
    o.create_table = config.create_table;
    o.untyped_empty = config.untyped_empty;
    if (o.url.empty()) return Status::InvalidArgument("[destination] url is required for type postgres");
    if (o.table.empty()) return Status::InvalidArgument("[destination] table is required for type postgres");
    SLUICE_ASSIGN_OR_RETURN(out.batch, PostgresDestination::Make(std::move(o)));
  } else if (type == "duckdb") {
    destinations::DuckDbDestinationOptions o;
    o.path = config.path;
    o.table = config.table;
    SLUICE_ASSIGN_OR_RETURN(o.mode, destinations::ParseLoadMode(config.mode));
    o.key = config.key;
    o.untyped_empty = config.untyped_empty;
    if (o.table.empty()) return Status::InvalidArgument("[destination] table is required for type duckdb");
    SLUICE_ASSIGN_OR_RETURN(out.native, destinations::MakeDuckDbDestination(std::move(o)));
  } else if (type == "file" || type == "stdout") {
    destinations::FileDestinationOptions o;
    o.path = type == "stdout" ? "-" : config.path;
    o.format = config.format;
    o.temp_dir = config.temp_directory;
    o.untyped_empty = config.untyped_empty;
    if (o.path.starts_with("s3://")) {
      auto s3 = S3OptionsFor(config.s3, cancel);
      if (!s3.ok()) return s3.status().WithContext("[s3]");
      o.s3 = std::move(s3).value();
    }
    SLUICE_ASSIGN_OR_RETURN(out.native, destinations::MakeFileDestination(std::move(o)));
  } else if (type == "null") {
    out.batch = destinations::MakeNullDestination();
  } else {
    return Status::InvalidArgument("[destination] type: unknown destination type '" + type +
                                   "' (available: postgres, duckdb, file, stdout, null)");
  }
  return out;
}

Result<std::string> CheckDestination(const DestinationConfig& config, const Schema& schema,
                                     engine::DuckDbEngine* engine) {
  SLUICE_ASSIGN_OR_RETURN(BuiltDestination dest, MakeDestination(config));
  if (config.type == "postgres") {
    SLUICE_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(config.url));
    SLUICE_ASSIGN_OR_RETURN(PgTableName name, ParsePgTableName(config.table));
    SLUICE_ASSIGN_OR_RETURN(auto table, ReadPgTable(*conn, name.Quoted()));
    std::string where = dest.Describe() + " at " + RedactUrl(config.url);
    if (!table) {
      SLUICE_ASSIGN_OR_RETURN(
          auto ns, conn->Query("SELECT n IS NOT NULL AND has_schema_privilege(current_user, n, 'CREATE') "
                               "FROM to_regnamespace($1) AS n",
                               {PgConnection::QuoteIdent(name.schema)}));
      if (ns.empty() || ns[0][0].value_or("f") != "t") {
        return Status::NotFound(where + ": schema \"" + name.schema +
                                "\" does not exist or the user may not create tables in it");
      }
      if (!config.create_table) {
        return Status::NotFound(where + " does not exist and create_table = false");
      }
      return where + " (reachable; the table will be created)";
    }
    if (schema.num_fields() > 0) {
      SLUICE_RETURN_IF_ERROR(MatchPgColumns(name.Display(), *table, schema).status());
      return where + " (reachable; the existing table fits the result)";
    }
    return where + " (reachable)";
  }
  if (dest.native) {
    SLUICE_RETURN_IF_ERROR(dest.native->Check(engine));
    return dest.native->Describe() + " (reachable)";
  }
  return dest.batch->Describe();
}

Status PingDestination(const DestinationConfig& config) {
  if (config.type == "postgres") {
    SLUICE_ASSIGN_OR_RETURN(auto conn, PgConnection::Connect(config.url));
    return conn->Exec("SELECT 1");
  }
  if ((config.type == "file" || config.type == "duckdb") && config.path.starts_with("s3://")) {
    // The bucket answers a one-key listing with these credentials.
    SLUICE_ASSIGN_OR_RETURN(io::S3Url url, io::ParseS3Url(config.path));
    SLUICE_ASSIGN_OR_RETURN(io::S3Options options, S3OptionsFor(config.s3));
    options.retry.max_attempts = 1;
    SLUICE_ASSIGN_OR_RETURN(auto client, io::S3Client::Make(std::move(options)));
    auto page = client->List(url.bucket, url.key.substr(0, url.key.find_last_of('/') + 1), 1)->NextPage();
    return page.status();
  }
  if (config.type == "file" || config.type == "duckdb") {
    std::error_code ec;
    auto dir = std::filesystem::absolute(config.path, ec).parent_path();
    if (ec || !std::filesystem::is_directory(dir, ec)) {
      return Status::NotFound("output directory '" + dir.string() + "' does not exist");
    }
  }
  return Status::OK();
}

}  // namespace sluice::service
