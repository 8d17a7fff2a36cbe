// The "http" destinations: rows of batch pipelines and change events of CDC
// pipelines sent to an HTTP endpoint as JSON, in requests cut
// deterministically and marked with an Idempotency-Key, with per-request
// retries and a dead-letter file for what the server refuses. Delivery is
// at least once (Delivery::kAtLeastOnce): a receiver that keeps the keys it
// has seen gets every request once. See docs/http-destination.md.
//
// Thread-safety: as include/sluice/destination.h and include/sluice/cdc.h
// require (Interrupt from any thread; the CDC copy's TruncateTable and
// WriteTableRows from several copy workers).
#pragma once

#include <memory>

#include "destinations/http/http_delivery.h"
#include "sluice/cdc.h"
#include "sluice/destination.h"
#include "sluice/registry.h"

namespace sluice::destinations {

std::unique_ptr<Destination> MakeHttpDestination(HttpSendOptions options);
std::unique_ptr<CdcDestination> MakeHttpCdcDestination(HttpSendOptions options);

/// Registers the batch and the CDC destination "http".
Status RegisterHttpDestinations(Registry& registry);

}  // namespace sluice::destinations
