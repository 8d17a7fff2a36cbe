// Running one pipeline once: builds the engine, the source and the
// destination from a PipelineConfig, moves the data, and reports what
// happened. Called from one thread; cancellation comes from a
// CancellationSource that signal handlers may set.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/cancellation.h"
#include "service/config.h"
#include "sluice/status.h"

namespace sluice::service {

enum class ProgressMode { kAuto, kAlways, kNever };

struct RunOptions {
  const CancellationSource* cancel = nullptr;
  ProgressMode progress = ProgressMode::kAuto;
};

struct RunSummary {
  int64_t rows = 0;
  int64_t rejected = 0;
  int64_t bytes_in = 0;
  double seconds = 0;
  std::string source;
  std::string destination;
  /// Per stage: rows, bytes and time blocked on channels (where the time
  /// went), e.g. "source 5,000,000 rows 1.2 GB blocked 3.1 s; ...".
  std::string stages;
};

Result<RunSummary> RunPipelineOnce(const PipelineConfig& config, const RunOptions& options);

/// Checks the file, the destination's reachability and the SQL against the
/// source's schema, loading nothing. Returns a human-readable report.
Result<std::string> ValidatePipeline(const PipelineConfig& config);

}  // namespace sluice::service
