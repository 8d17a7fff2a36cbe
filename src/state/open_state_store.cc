#include "state/state_store.h"

namespace sluice::state {

Result<std::unique_ptr<StateStore>> OpenStateStore(const StateConfig& config) {
  (void)config;
  return Status::Internal("state stores are not built yet");
}

}  // namespace sluice::state
