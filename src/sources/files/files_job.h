// The files source as a component: [source] type = "files" builds a
// FilesJob, which runs plain loads (a file, a glob, stdin) and incremental
// ledger runs (local or S3, each file loaded once), keeps what /status and
// /metrics show about them, and answers /ready.
#pragma once

#include "core/job.h"
#include "sluice/registry.h"

namespace sluice::sources {

/// Registers the source type "files", the default of a [source] without type.
Status RegisterFilesSource(Registry& registry);

}  // namespace sluice::sources
