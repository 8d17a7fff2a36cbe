// Builds a destination from its [destination] config section. Either a
// batch destination (rows cross to sluice as Arrow batches) or a native one
// (DuckDB writes it directly), never both.
#pragma once

#include <memory>

#include "core/cancellation.h"
#include "destinations/native/native_destination.h"
#include "io/s3/s3_options.h"
#include "service/config.h"
#include "sluice/destination.h"

namespace sluice::service {

struct BuiltDestination {
  std::unique_ptr<Destination> batch;
  std::unique_ptr<destinations::NativeDestination> native;
  std::string Describe() const { return batch ? batch->Describe() : native->Describe(); }
};

/// [s3] completed from the environment and ~/.aws.
Result<io::S3Options> S3OptionsFor(const S3Config& config, const CancellationSource* cancel = nullptr);

/// `cancel` interrupts slow work of the destination itself (an S3 upload).
Result<BuiltDestination> MakeDestination(const DestinationConfig& config, const CancellationSource* cancel = nullptr);

/// Connects to the destination and checks it can take rows shaped like
/// `schema`, changing nothing. Returns a short description of what was checked.
Result<std::string> CheckDestination(const DestinationConfig& config, const Schema& schema,
                                     engine::DuckDbEngine* engine);

/// A cheap check that the destination is reachable now (PostgreSQL:
/// connect and SELECT 1), for /ready. Changes nothing.
Status PingDestination(const DestinationConfig& config);

}  // namespace sluice::service
