// NullDestination: accepts batches and discards them. For benchmarks and
// dry runs: the whole read and transform path runs, nothing is stored.
#pragma once

#include <memory>

#include "sluice/destination.h"
#include "sluice/registry.h"

namespace sluice::destinations {

std::unique_ptr<Destination> MakeNullDestination();

/// Registers the batch destination "null".
Status RegisterNullDestination(Registry& registry);

}  // namespace sluice::destinations
