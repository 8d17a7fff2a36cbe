// Registry::WithBuiltins(): every component sluice ships, each registered by
// its own folder.
#include "destinations/events/event_destinations.h"
#include "destinations/http/http_destination.h"
#include "destinations/native/native_destination.h"
#include "destinations/null/null_destination.h"
#include "destinations/postgres/postgres_destination.h"
#include "sluice/registry.h"
#include "sources/files/files_job.h"
#include "sources/http/http_job.h"
#include "sources/postgres_cdc/cdc_job.h"
#include "state/register_state_stores.h"

namespace sluice {

Registry Registry::WithBuiltins() {
  Registry registry;
  for (Status status : {sources::RegisterFilesSource(registry), cdc::RegisterPostgresCdcSource(registry),
                        sources::RegisterHttpSource(registry),
                        RegisterPostgresDestinations(registry), destinations::RegisterNativeDestinations(registry),
                        destinations::RegisterNullDestination(registry),
                        destinations::RegisterEventDestinations(registry),
                        destinations::RegisterHttpDestinations(registry), state::RegisterStateStores(registry)}) {
    // Built-in names are distinct; a clash is a bug in sluice itself.
    if (!status.ok()) std::abort();
  }
  return registry;
}

}  // namespace sluice
