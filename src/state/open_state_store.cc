#include <unistd.h>

#include <cstdio>

#include "state/memory_state_store.h"
#include "state/postgres_state_store.h"
#include "state/register_state_stores.h"
#include "state/sqlite_state_store.h"
#include "state/state_store.h"

namespace sluice::state {

std::string ProcessWorkerId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "localhost");
  return std::string(host) + ":" + std::to_string(getpid());
}

Result<std::unique_ptr<StateStore>> OpenStateStore(const StateConfig& config) {
  if (!config.url.empty()) return OpenPostgresStateStore(config.url);
  if (config.memory) return MakeMemoryStateStore();
  return OpenSqliteStateStore(config.path.empty() ? kDefaultStatePath : config.path);
}

}  // namespace sluice::state
