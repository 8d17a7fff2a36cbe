// SourceCatalog: what the CDC source asks the source database's catalog,
// over an ordinary (non-replication) connection: the server checks that
// give clear errors before anything starts (wal_level, the REPLICATION
// attribute), the publication and its tables, each table's columns and
// replica identity, and the type names and definitions that the
// destination needs to mirror a table (format_type, enums, domains).
//
// Thread-safety: one catalog per thread (it owns its connection).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "io/postgres/pg_connection.h"
#include "sluice/cdc.h"
#include "sluice/status.h"

namespace sluice::cdc {

inline constexpr const char* kCdcSessionOptions = kPortableSessionOptions;

struct PublishedTable {
  uint32_t id = 0;
  std::string schema;
  std::string name;
  std::string QualifiedName() const { return schema + "." + name; }
};

class SourceCatalog {
 public:
  static Result<std::unique_ptr<SourceCatalog>> Connect(const std::string& url);

  /// wal_level = logical and a user with REPLICATION (or superuser).
  Status CheckServer();
  /// Creates `publication` FOR `tables` ("schema.table" or "table") when it
  /// does not exist, after checking that each of them can be replicated (a
  /// usable replica identity); checks that every listed table exists either
  /// way. With create false (validate), only checks. `created` says whether
  /// this call created the publication.
  Status EnsurePublication(const std::string& publication, const std::vector<std::string>& tables,
                           bool create = true, bool* created = nullptr);
  /// Drops a publication that a start which then failed had created.
  Status DropPublication(const std::string& publication);
  /// The tables of the publication now; NotFound when it does not exist.
  Result<std::vector<PublishedTable>> PublicationTables(const std::string& publication);
  /// Columns (without generated ones) and replica identity, as pgoutput's
  /// Relation message would describe them, with type names and the DDL of
  /// user-defined types. InvalidArgument naming the table when it has no
  /// usable replica identity.
  Result<std::shared_ptr<const CdcTable>> DescribeTable(uint32_t table_id);
  /// format_type() and the definition for one column type (cached).
  Status NameColumnType(CdcColumn* column);
  /// Pages in the table (pg_class.relpages), to split a copy into ranges.
  Result<int64_t> TablePages(uint32_t table_id);

  PgConnection* connection() { return conn_.get(); }

 private:
  explicit SourceCatalog(std::unique_ptr<PgConnection> conn) : conn_(std::move(conn)) {}
  std::unique_ptr<PgConnection> conn_;
  std::map<std::pair<uint32_t, int32_t>, std::pair<std::string, std::string>> type_cache_;
};

}  // namespace sluice::cdc
