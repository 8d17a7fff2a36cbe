// CDC destinations that do not hold tables: change events as JSON lines on
// stdout or in a file, kept in memory (tests, embedding), or discarded
// (benchmarks of the source side).
//
// One JSON object per line:
//   {"op":"update","table":"public.orders","lsn":"0/1A2B3C4","commit_lsn":"0/1A2B3A0",
//    "commit_time":"2026-11-21T10:00:00.123456Z","xid":742,
//    "new":{"id":7,"note":"x"},"old_key":{"id":6},"unchanged":["blob"]}
// - op: insert, update, delete, truncate; and "copy" for rows of the
//   initial copy (no LSN), preceded by one {"op":"copy_start",...} per table.
// - Values: booleans and integers as JSON numbers/booleans, json/jsonb
//   embedded as JSON, everything else (numeric, floats, dates, arrays) as
//   the source's text form in a string; SQL NULL is null.
// - old_key: the replica identity of the old row (all columns for FULL);
//   only when the source sent an old row. "unchanged" lists TOASTed columns
//   the update did not send (their value did not change).
//
// Durability: the file destination flushes and fsyncs before WriteEvents
// returns. Delivery is at least once: after a crash the last batch may be
// written again (same lsn values), so consumers deduplicate by lsn.
//
// Thread-safety: see include/sluice/cdc.h; writes are serialised.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sluice/cdc.h"
#include "sluice/registry.h"

namespace sluice::destinations {

/// path "-" or "" is stdout.
std::unique_ptr<CdcDestination> MakeJsonLinesCdcDestination(const std::string& path);

/// Keeps every JSON line in memory; `lines` must outlive the destination.
std::unique_ptr<CdcDestination> MakeMemoryCdcDestination(std::vector<std::string>* lines);

/// Accepts everything, keeps nothing.
std::unique_ptr<CdcDestination> MakeDiscardCdcDestination();

/// Registers the CDC destinations jsonl (and its alias file), stdout and null.
Status RegisterEventDestinations(Registry& registry);

/// One event as a JSON object (no newline); `copy` for initial-copy rows.
void AppendEventJson(const ChangeBatch& batch, const ChangeEvent& event, const CdcTable& table, bool copy,
                     std::string* out);

}  // namespace sluice::destinations
