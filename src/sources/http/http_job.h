// The HTTP source: [source] type = "http" polls a list of URLs (thousands
// of them) once per run, turns every response into rows with the columns
// _url, _status and _fetched_at, and loads the whole tick as one `input`
// through the pipeline's transform into its destination.
//
// Requests go through one io::HttpClient (libcurl multi): a bounded number
// in flight, per-request retries ([source.retry]) that honour Retry-After.
// Responses are written to a spool file on disk as they arrive, so memory
// is bounded by the requests in flight, not by the number of endpoints. An
// endpoint that still fails after its retries is recorded in the run log
// (URL without credentials, status or error, attempts, milliseconds) and,
// with on_endpoint_error = "skip" (the default), the others load; with
// "fail" the run fails and loads nothing. With conditional = true the
// ETag / Last-Modified of each loaded response is kept in the state store
// and sent back as If-None-Match / If-Modified-Since: a 304 yields no rows.
//
// Thread-safety: as for every Job (core/job.h).
#pragma once

#include "core/job.h"
#include "sluice/registry.h"

namespace sluice::sources {

/// Registers the source type "http".
Status RegisterHttpSource(Registry& registry);

}  // namespace sluice::sources
