// The memory state store: the file ledger and run log in plain maps, gone
// when the process ends. For tests and for `memory = true` configs. Run
// locks are process-wide: two memory stores in one process exclude each
// other; a store releases its locks when destroyed.
//
// Thread-safety: every method may be called from any thread; one mutex
// serialises them.
#pragma once

#include <memory>

#include "state/state_store.h"

namespace sluice::state {

std::unique_ptr<StateStore> MakeMemoryStateStore();

}  // namespace sluice::state
