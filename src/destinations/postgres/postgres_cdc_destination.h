// PostgresCdcDestination: applies PostgreSQL changes to a mirror in another
// PostgreSQL database. Source table s.t becomes <schema>.t, created when
// missing with the source's column types (user-defined enums and domains
// are created too) and its replica identity key as primary key.
//
// - Initial copy: TRUNCATE, then each copy worker streams COPY's binary
//   format from the source straight into COPY ... FROM STDIN on its own
//   connection (no decoding).
// - Changes: one destination transaction per complete batch (pieces of a
//   larger source transaction share it). Runs of inserts go in with COPY;
//   runs of updates and deletes through a temporary staging table filled by
//   COPY and one UPDATE ... FROM / DELETE ... USING joined on the replica
//   identity; unchanged TOAST values keep the destination's value; truncate
//   is TRUNCATE. The checkpoint statements run last, in the same
//   transaction.
// - A Relation message that changed a table (added, dropped, renamed
//   columns, a changed type) is applied with ALTER TABLE in the same
//   transaction before the rows that need it.
//
// Thread-safety: see include/sluice/cdc.h. Copy writers use their own
// connections; WriteEvents and TruncateTable share the apply connection.
#pragma once

#include <memory>
#include <string>

#include "sluice/cdc.h"

namespace sluice::destinations {

std::unique_ptr<CdcDestination> MakePostgresCdcDestination(const std::string& url, const std::string& schema);

}  // namespace sluice::destinations
