// The built-in CDC state stores (sluice::CdcStore of include/sluice/cdc.h):
// per pipeline, the synchronisation state of each source table, the schema
// last applied to it and the confirmed LSN. One store object serves one
// pipeline; every row it reads or writes is keyed by the pipeline's name,
// so pipelines sharing a database never see each other's state.
//
// Like the StateStore they live next to: memory (tests, `memory = true`),
// SQLite (the default, may share the StateStore's file) and PostgreSQL
// (schema `sluice`; tables cdc_table_states, cdc_table_schemas and
// cdc_progress, created by migration 2 of migrations.h, which the
// StateStore applies too when it opens the database first). Schemas are
// kept as JSON text (CdcTableToJson). Only the PostgreSQL store can write
// inside a destination's transaction: its ConfirmedLsnStatements affect
// exactly one row when the LSN does not go backwards and none otherwise.
//
// Thread-safety: every method may be called from any thread; each store
// serialises its calls with one mutex.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "sluice/cdc.h"
#include "sluice/status.h"
#include "state/state_store.h"

namespace sluice::state {

/// Opens (and migrates) the CDC store of `pipeline` in the place `config`
/// names: PostgreSQL when `url` is set, memory when `memory`, else SQLite at
/// `path` (default ".sluice/state.db"), creating its directory. Errors as
/// for OpenStateStore.
Result<std::unique_ptr<CdcStore>> OpenCdcStore(const StateConfig& config, const std::string& pipeline);

std::unique_ptr<CdcStore> MakeMemoryCdcStore(const std::string& pipeline);
Result<std::unique_ptr<CdcStore>> OpenSqliteCdcStore(const std::string& path, const std::string& pipeline);
Result<std::unique_ptr<CdcStore>> OpenPostgresCdcStore(const std::string& url, const std::string& pipeline);

/// A table's schema as stored: {"id", "schema", "name", "identity"
/// ("default", "nothing", "full", "index"), "columns": [{"name", "type_oid",
/// "type_modifier", "type_name", "type_definition", "key"}]}. InvalidArgument when a name is
/// not valid UTF-8.
Result<std::string> CdcTableToJson(const CdcTable& table);
/// The inverse of CdcTableToJson; DataError when `json` is not one.
Result<CdcTable> CdcTableFromJson(std::string_view json);

}  // namespace sluice::state
