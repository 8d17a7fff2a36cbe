#include "service/destination_factory.h"

#include "core/redact.h"
#include "destinations/null/null_destination.h"

namespace sluice::service {

Result<BuiltDestination> MakeDestination(const DestinationConfig& config) {
  BuiltDestination out;
  const std::string& type = config.type;
  if (type == "duckdb") {
    destinations::DuckDbDestinationOptions o;
    o.path = config.path;
    o.table = config.table;
    SLUICE_ASSIGN_OR_RETURN(o.mode, destinations::ParseLoadMode(config.mode));
    o.key = config.key;
    if (o.table.empty()) return Status::InvalidArgument("[destination] table is required for type duckdb");
    SLUICE_ASSIGN_OR_RETURN(out.native, destinations::MakeDuckDbDestination(std::move(o)));
  } else if (type == "file" || type == "stdout") {
    destinations::FileDestinationOptions o;
    o.path = type == "stdout" ? "-" : config.path;
    o.format = config.format;
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
  (void)schema;
  SLUICE_ASSIGN_OR_RETURN(BuiltDestination dest, MakeDestination(config));
  if (dest.native) {
    SLUICE_RETURN_IF_ERROR(dest.native->Check(engine));
    return dest.native->Describe() + " (reachable)";
  }
  return dest.batch->Describe();
}

}  // namespace sluice::service
