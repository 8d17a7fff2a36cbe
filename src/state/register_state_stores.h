// The [state] section's components: where the file ledger, the run log and
// the CDC state live. "sqlite" (a local file, the default), "postgres"
// (schema sluice, which lets loads commit their checkpoints exactly once)
// and "memory" (tests; forgets everything at exit). Each is registered for
// batch pipelines (StateStore) and CDC pipelines (CdcStore).
#pragma once

#include <functional>
#include <memory>

#include "sluice/registry.h"
#include "state/state_store.h"

namespace sluice::state {

using StateStoreFactory = std::function<Result<std::unique_ptr<StateStore>>(const ConfigTable&)>;

/// Registers sqlite, postgres and memory for both kinds, and the rule that
/// a [state] with url and no type is "postgres", else "sqlite".
Status RegisterStateStores(Registry& registry);

/// The batch state store [state] names (a ConfigTable with no keys: the
/// default SQLite file).
Result<std::unique_ptr<StateStore>> MakeStateStore(const Registry& registry, const ConfigTable& state);

}  // namespace sluice::state
