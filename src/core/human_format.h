// Numbers and times for people: "5,000,000", "327.8 MB",
// "2026-12-06T14:03:13Z". Pure functions.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace sluice {

/// 5000000 -> "5,000,000".
std::string Thousands(int64_t n);
/// 327831309 -> "327.8 MB" (decimal units, as disks and networks count).
std::string HumanBytes(double bytes);
/// A point in time as ISO 8601 in UTC, to the second: "2026-12-06T14:03:13Z".
std::string Iso8601(std::chrono::system_clock::time_point t);

/// The proleptic Gregorian date `days` after 1970-01-01 (year 0 is 1 BC).
struct CivilDate {
  int64_t year = 1970;
  int64_t month = 1;
  int64_t day = 1;
};
CivilDate CivilFromDays(int64_t days);

}  // namespace sluice
