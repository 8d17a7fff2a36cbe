#include "state/cdc_store.h"

#include "state/register_state_stores.h"

#include <algorithm>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

namespace sluice::state {
namespace {

using nlohmann::json;

constexpr const char* kIdentityNames[] = {"default", "nothing", "full", "index"};

const char* IdentityName(CdcIdentity identity) {
  auto index = static_cast<size_t>(identity);
  return index < std::size(kIdentityNames) ? kIdentityNames[index] : "default";
}

Result<CdcIdentity> ParseIdentity(const std::string& name) {
  for (size_t i = 0; i < std::size(kIdentityNames); ++i) {
    if (name == kIdentityNames[i]) return static_cast<CdcIdentity>(i);
  }
  return Status::DataError("unknown replica identity '" + name + "'");
}

/// One pipeline's state in maps: each memory store is its own pipeline.
/// j[key] as an integer in [lo, hi]; nlohmann's get<> would wrap
/// negative or too large numbers silently.
template <typename T>
Result<T> IntegerField(const json& j, const char* key) {
  const json& v = j.at(key);
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<T>::max())) return static_cast<T>(u);
  } else if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
        (i < 0 || static_cast<uint64_t>(i) <= static_cast<uint64_t>(std::numeric_limits<T>::max()))) {
      return static_cast<T>(i);
    }
  }
  return Status::DataError(std::string("stored table schema has an invalid \"") + key + "\": " + v.dump());
}

class MemoryCdcStore final : public CdcStore {
 public:
  std::string Describe() const override { return "memory"; }

  Result<std::vector<CdcTable>> LoadSchemas() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<CdcTable> out;
    out.reserve(schemas_.size());
    for (const auto& [id, table] : schemas_) out.push_back(table);
    return out;
  }

  Status SaveSchema(const CdcTable& table) override {
    std::lock_guard<std::mutex> lock(mu_);
    schemas_[table.id] = table;
    return Status::OK();
  }

  Result<std::vector<TableSyncStatus>> LoadTableStates() override {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<TableSyncStatus> out;
    out.reserve(states_.size());
    for (const auto& [id, status] : states_) out.push_back(status);
    return out;
  }

  Status SaveTableState(const TableSyncStatus& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    states_[status.table_id] = status;
    return Status::OK();
  }

  Result<CdcLsn> LoadConfirmedLsn() override {
    std::lock_guard<std::mutex> lock(mu_);
    return confirmed_lsn_;
  }

  Status SaveConfirmedLsn(CdcLsn lsn) override {
    std::lock_guard<std::mutex> lock(mu_);
    confirmed_lsn_ = std::max(confirmed_lsn_, lsn);
    return Status::OK();
  }

  Status DropTable(uint32_t table_id) override {
    std::lock_guard<std::mutex> lock(mu_);
    states_.erase(table_id);
    schemas_.erase(table_id);
    return Status::OK();
  }

  Status DropPipeline() override {
    std::lock_guard<std::mutex> lock(mu_);
    states_.clear();
    schemas_.clear();
    confirmed_lsn_ = 0;
    return Status::OK();
  }

 private:
  std::mutex mu_;
  std::map<uint32_t, CdcTable> schemas_;
  std::map<uint32_t, TableSyncStatus> states_;
  CdcLsn confirmed_lsn_ = 0;
};

}  // namespace

Result<std::string> CdcTableToJson(const CdcTable& table) {
  json columns = json::array();
  for (const CdcColumn& c : table.columns) {
    columns.push_back(json{{"name", c.name},
                           {"type_oid", c.type_oid},
                           {"type_modifier", c.type_modifier},
                           {"type_name", c.type_name},
                           {"type_definition", c.type_definition},
                           {"key", c.key}});
  }
  json j{{"id", table.id},
         {"schema", table.schema},
         {"name", table.name},
         {"identity", IdentityName(table.identity)},
         {"columns", std::move(columns)}};
  try {
    return j.dump();
  } catch (const json::exception& e) {
    // Only invalid UTF-8 in a name makes dump() fail.
    return Status::InvalidArgument("cannot store the schema of table " + table.QualifiedName() + ": " +
                                   e.what());
  }
}

Result<CdcTable> CdcTableFromJson(std::string_view text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return Status::DataError("stored table schema is not a JSON object");
  try {
    CdcTable table;
    SLUICE_ASSIGN_OR_RETURN(table.id, IntegerField<uint32_t>(j, "id"));
    table.schema = j.at("schema").get<std::string>();
    table.name = j.at("name").get<std::string>();
    SLUICE_ASSIGN_OR_RETURN(table.identity, ParseIdentity(j.at("identity").get<std::string>()));
    for (const json& c : j.at("columns")) {
      CdcColumn column;
      column.name = c.at("name").get<std::string>();
      SLUICE_ASSIGN_OR_RETURN(column.type_oid, IntegerField<uint32_t>(c, "type_oid"));
      SLUICE_ASSIGN_OR_RETURN(column.type_modifier, IntegerField<int32_t>(c, "type_modifier"));
      column.type_name = c.at("type_name").get<std::string>();
      // Absent in schemas saved before it existed.
      column.type_definition = c.value("type_definition", std::string());
      column.key = c.at("key").get<bool>();
      table.columns.push_back(std::move(column));
    }
    return table;
  } catch (const json::exception& e) {
    return Status::DataError(std::string("stored table schema is malformed: ") + e.what());
  }
}

std::unique_ptr<CdcStore> MakeMemoryCdcStore(const std::string& /*pipeline*/) {
  return std::make_unique<MemoryCdcStore>();
}

Result<std::unique_ptr<CdcStore>> OpenCdcStore(const StateConfig& config, const std::string& pipeline) {
  if (!config.url.empty()) return OpenPostgresCdcStore(config.url, pipeline);
  if (config.memory) return MakeMemoryCdcStore(pipeline);
  return OpenSqliteCdcStore(config.path.empty() ? kDefaultStatePath : config.path, pipeline);
}

}  // namespace sluice::state
