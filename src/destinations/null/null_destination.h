// NullDestination: accepts batches and discards them. For benchmarks and
// dry runs: the whole read and transform path runs, nothing is stored.
#pragma once

#include <memory>

#include "sluice/destination.h"

namespace sluice::destinations {

std::unique_ptr<Destination> MakeNullDestination();

}  // namespace sluice::destinations
