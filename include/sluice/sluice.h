// The public API of sluice in one include: Status and Result, the column
// types and Batch, the Destination and CDC interfaces a user implements,
// ConfigTable, the Registry that names components, and Pipeline, which runs
// a pipeline file from code. See each header for thread-safety.
#pragma once

#include "sluice/batch.h"
#include "sluice/cdc.h"
#include "sluice/config_table.h"
#include "sluice/destination.h"
#include "sluice/pipeline.h"
#include "sluice/registry.h"
#include "sluice/status.h"
#include "sluice/types.h"
