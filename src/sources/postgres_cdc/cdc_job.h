// The postgres_cdc source as a component: [source] type = "postgres_cdc"
// builds a CdcJob, which copies the published tables and then streams their
// changes to the [destination] (a CDC destination from the registry), with
// its progress in the [state] store (a CDC store from the registry), until
// it is cancelled. Counters become metrics once a second.
#pragma once

#include "core/job.h"
#include "sluice/registry.h"

namespace sluice::cdc {

/// Registers the source type "postgres_cdc".
Status RegisterPostgresCdcSource(Registry& registry);

}  // namespace sluice::cdc
