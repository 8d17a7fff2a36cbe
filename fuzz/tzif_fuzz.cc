// Fuzzes time zones (time_zone.h) from the three places they come from:
//  - "TZif...": the bytes of a compiled zone file (RFC 8536);
//  - "zone:NAME": a zone name as a user writes it in [schedule] timezone,
//    looked up in the system's zoneinfo directory ($TZDIR or
//    /usr/share/zoneinfo);
//  - anything else: a POSIX TZ rule (the footer of a TZif file).
// Properties of every zone that loads, walking its periods from a few
// instants between 1900 and 2200:
//  - the period at t contains t, with an offset under 26 hours, and the
//    next period starts where it ends;
//  - t's wall-clock time maps back to a set of instants that includes t;
//  - a wall-clock time near a change maps to instants that show that time,
//    or, when skipped, to the first instant whose wall-clock time is later.
// A name that loads is a relative path inside the zoneinfo directory.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "service/time_zone.h"

namespace sluice::service {
namespace {

using std::chrono::local_seconds;
using std::chrono::seconds;
using std::chrono::sys_seconds;

constexpr int64_t kMaxOffset = 26 * 3600;
// 1900, 1970, around the EU's changes in 2024, 2100, 2200.
constexpr std::array<int64_t, 6> kStarts = {-2208988800, 0, 1711846000, 1729990000, 4102444800, 7258118400};
constexpr int kPeriodsPerStart = 6;

void CheckLocal(const TimeZone& tz, local_seconds local) {
  LocalTimeMapping m = tz.LocalToUtc(local);
  SLUICE_FUZZ_CHECK(m.earliest <= m.latest);
  switch (m.kind) {
    case LocalTimeMapping::Kind::kUnique:
      SLUICE_FUZZ_CHECK(m.earliest == m.latest && tz.ToLocal(m.earliest) == local);
      break;
    case LocalTimeMapping::Kind::kAmbiguous:
      SLUICE_FUZZ_CHECK(m.earliest < m.latest);
      SLUICE_FUZZ_CHECK(tz.ToLocal(m.earliest) == local && tz.ToLocal(m.latest) == local);
      break;
    case LocalTimeMapping::Kind::kNonexistent:
      SLUICE_FUZZ_CHECK(m.earliest == m.latest && tz.ToLocal(m.earliest) > local);
      break;
  }
}

void CheckInstant(const TimeZone& tz, sys_seconds t) {
  OffsetPeriod p = tz.PeriodAt(t);
  SLUICE_FUZZ_CHECK(p.begin <= t && t < p.end);
  SLUICE_FUZZ_CHECK(std::abs(p.utc_offset.count()) < kMaxOffset);
  SLUICE_FUZZ_CHECK(tz.UtcOffsetAt(t) == p.utc_offset);
  const local_seconds local = tz.ToLocal(t);
  SLUICE_FUZZ_CHECK(local.time_since_epoch() == t.time_since_epoch() + p.utc_offset);
  LocalTimeMapping m = tz.LocalToUtc(local);
  SLUICE_FUZZ_CHECK(m.kind != LocalTimeMapping::Kind::kNonexistent);
  SLUICE_FUZZ_CHECK(m.earliest <= t && t <= m.latest);
}

void CheckZone(const TimeZone& tz) {
  for (int64_t start : kStarts) {
    sys_seconds t{seconds{start}};
    for (int i = 0; i < kPeriodsPerStart; ++i) {
      CheckInstant(tz, t);
      OffsetPeriod p = tz.PeriodAt(t);
      if (p.end >= TimeZone::kEndOfTime || p.end > sys_seconds{seconds{kStarts.back() + 400LL * 86400 * 366}})
        break;
      // Wall-clock times around the change at p.end, on both sides.
      const local_seconds before = local_seconds{p.end.time_since_epoch() + p.utc_offset};
      for (int64_t d : {-3601, -1800, -1, 0, 1, 1800, 3600}) CheckLocal(tz, before + seconds{d});
      CheckInstant(tz, p.end - seconds{1});
      OffsetPeriod next = tz.PeriodAt(p.end);
      SLUICE_FUZZ_CHECK(next.begin == p.end);
      t = p.end;
    }
  }
}

/// The zone an input describes (see the top of the file), checking how it fails.
Result<TimeZone> ZoneOf(std::string_view input) {
  if (input.starts_with("TZif")) {
    Result<TimeZone> tz = TimeZone::FromTzif("Fuzz/Zone", input);
    SLUICE_FUZZ_CHECK(tz.ok() || tz.status().code() == StatusCode::kDataError);
    return tz;
  }
  if (input.starts_with("zone:")) {
    const std::string_view name = input.substr(5);
    Result<TimeZone> tz = TimeZone::Load(name);
    if (tz.ok() && !name.empty() && name != "UTC") {
      SLUICE_FUZZ_CHECK(name.front() != '/' && name.find("..") == std::string_view::npos);
      SLUICE_FUZZ_CHECK(tz->name() == name);
    }
    return tz;
  }
  Result<TimeZone> tz = TimeZone::FromPosixRule(input);
  SLUICE_FUZZ_CHECK(tz.ok() || tz.status().code() == StatusCode::kDataError);
  return tz;
}

}  // namespace
}  // namespace sluice::service

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  sluice::Result<sluice::service::TimeZone> tz = sluice::service::ZoneOf(input);
  if (tz.ok()) sluice::service::CheckZone(*tz);
  return 0;
}
