#include <unistd.h>

#include <cstdio>

#include "state/memory_state_store.h"
#include "state/postgres_state_store.h"
#include "state/register_state_stores.h"
#include "state/sqlite_state_store.h"
#include "state/state_store.h"

namespace sluice::state {

std::string WorkerSessionName(const std::string& pipeline, const std::string& worker) {
  std::string name = "sluice " + worker + " " + pipeline;
  if (name.size() > 63) {
    name.resize(63);
    // Not in the middle of a UTF-8 sequence.
    while (!name.empty() && (static_cast<unsigned char>(name.back()) & 0xC0) == 0x80) name.pop_back();
    if (!name.empty() && (static_cast<unsigned char>(name.back()) & 0x80) != 0) name.pop_back();
  }
  return name;
}

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
