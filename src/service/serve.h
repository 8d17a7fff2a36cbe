// The long-running side of sluice: pipelines on their schedules (`sluice
// serve FILE...`, and `sluice run` of a scheduled file) and the monitoring
// service that reports on them.
//
// Each pipeline runs on its own thread; a run never overlaps the previous
// run of the same pipeline. The monitoring handlers read each pipeline's
// state under its lock from the server's threads.
#pragma once

#include <string>
#include <vector>

#include "core/job.h"
#include "sluice/status.h"

namespace sluice::service {

struct ServeOptions {
  ProgressMode progress = ProgressMode::kNever;
  /// Overrides [server] listen of the files ("127.0.0.1:9187"); "off": no server.
  std::string listen;
  /// Run each pipeline once (immediately), then exit: `sluice run`.
  bool once = false;
};

/// The process exit code for a failure: 2 for configuration errors, 130
/// when interrupted, 1 otherwise.
int ExitCodeFor(const Status& status);

/// Runs the pipelines until SIGINT/SIGTERM (or, with `once`, until each
/// ran once). Returns the process exit code.
int ServePipelines(const std::vector<std::string>& files, const ServeOptions& options);

}  // namespace sluice::service
