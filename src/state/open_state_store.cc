#include "state/memory_state_store.h"
#include "state/postgres_state_store.h"
#include "state/sqlite_state_store.h"
#include "state/register_state_stores.h"
#include "state/state_store.h"

namespace sluice::state {

Result<std::unique_ptr<StateStore>> OpenStateStore(const StateConfig& config) {
  if (!config.url.empty()) return OpenPostgresStateStore(config.url);
  if (config.memory) return MakeMemoryStateStore();
  return OpenSqliteStateStore(config.path.empty() ? kDefaultStatePath : config.path);
}

}  // namespace sluice::state
