// CdcLsnToString (declared in include/sluice/cdc.h): a WAL position in
// PostgreSQL's own notation, here where PostgreSQL is known.
#include <cstdio>

#include "sluice/cdc.h"

namespace sluice {

std::string CdcLsnToString(CdcLsn lsn) {
  char text[32];
  std::snprintf(text, sizeof(text), "%X/%X", static_cast<unsigned>(lsn >> 32), static_cast<unsigned>(lsn));
  return text;
}

}  // namespace sluice
