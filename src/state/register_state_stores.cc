#include "state/register_state_stores.h"

#include "config/registry_build.h"
#include "io/postgres/pg_conninfo.h"
#include "state/cdc_store.h"
#include "state/memory_state_store.h"
#include "state/postgres_state_store.h"
#include "state/sqlite_state_store.h"
#include "state/worker_lease.h"

namespace sluice::state {

namespace {

Result<std::string> UrlOf(const ConfigTable& t) {
  std::string url = t.GetString("url");
  if (url.empty()) return Status::InvalidArgument(t.Name() + " url is required for type postgres");
  SLUICE_RETURN_IF_ERROR(CheckPgConnInfo(url).WithContext(t.Name() + " url"));
  return url;
}

}  // namespace

Status RegisterStateStores(Registry& registry) {
  registry.SetDefaultType(ComponentKind::kStateStore,
                          [](const ConfigTable& t) { return t.Has("url") ? "postgres" : "sqlite"; });
  registry.SetDefaultType(ComponentKind::kCdcStore,
                          [](const ConfigTable& t) { return t.Has("url") ? "postgres" : "sqlite"; });
  const ComponentInfo sqlite{
      "a local SQLite file (default " + std::string(kDefaultStatePath) + ")", {"path"}, true};
  const ComponentInfo postgres{
      "schema sluice in a PostgreSQL database (exactly once when it is the destination's; shared by several "
      "processes, which hold work under a lease)",
      {"url", "lease"},
      true};
  const ComponentInfo memory{"in memory: forgets everything when the process ends (tests)", {}, true};

  SLUICE_RETURN_IF_ERROR(config::AddComponent<StateStore>(
      &registry, ComponentKind::kStateStore, "sqlite",
      [](const ConfigTable& t) { return OpenSqliteStateStore(t.GetString("path", kDefaultStatePath)); },
      sqlite));
  SLUICE_RETURN_IF_ERROR(config::AddComponent<StateStore>(
      &registry, ComponentKind::kStateStore, "postgres",
      [](const ConfigTable& t) -> Result<std::unique_ptr<StateStore>> {
        SLUICE_ASSIGN_OR_RETURN(std::string url, UrlOf(t));
        SLUICE_RETURN_IF_ERROR(ReadLeaseMs(t).status());  // read by the jobs
        return OpenPostgresStateStore(url);
      },
      postgres));
  SLUICE_RETURN_IF_ERROR(config::AddComponent<StateStore>(
      &registry, ComponentKind::kStateStore, "memory",
      [](const ConfigTable&) -> Result<std::unique_ptr<StateStore>> { return MakeMemoryStateStore(); },
      memory));

  SLUICE_RETURN_IF_ERROR(registry.AddCdcStore(
      "sqlite",
      [](const ConfigTable& t) {
        return OpenSqliteCdcStore(t.GetString("path", kDefaultStatePath), t.PipelineName());
      },
      sqlite));
  SLUICE_RETURN_IF_ERROR(registry.AddCdcStore(
      "postgres",
      [](const ConfigTable& t) -> Result<std::unique_ptr<CdcStore>> {
        SLUICE_ASSIGN_OR_RETURN(std::string url, UrlOf(t));
        SLUICE_RETURN_IF_ERROR(ReadLeaseMs(t).status());  // read by the job
        return OpenPostgresCdcStore(url, t.PipelineName());
      },
      postgres));
  return registry.AddCdcStore(
      "memory",
      [](const ConfigTable& t) -> Result<std::unique_ptr<CdcStore>> {
        return MakeMemoryCdcStore(t.PipelineName());
      },
      memory);
}

Result<std::unique_ptr<StateStore>> MakeStateStore(const Registry& registry, const ConfigTable& state) {
  auto store = config::BuildComponent<StateStore>(registry, ComponentKind::kStateStore, state);
  if (!store.ok() && !store.status().message().starts_with(state.Name())) {
    return store.status().WithContext(state.Name());
  }
  return store;
}

}  // namespace sluice::state
