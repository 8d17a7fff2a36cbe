// TimeZone: the UTC offset rules of an IANA time zone, read from the
// system's compiled TZif files (/usr/share/zoneinfo, or $TZDIR), because
// GCC 12's libstdc++ has no std::chrono::tzdb. Instants after the file's
// last transition follow the POSIX TZ rule in the file's footer, so dates
// far in the future are right even with "slim" zone files.
//
// A TimeZone is an immutable value, cheap to copy (it shares its tables);
// any number of threads may use one at once. Leap seconds are ignored
// (POSIX time), as everywhere else in sluice.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/status.h"

namespace sluice::service {

/// A stretch of time during which a zone's UTC offset does not change.
/// `begin` is the transition that started it (kBeginningOfTime for the
/// first), `end` the next one (kEndOfTime when there is none).
struct OffsetPeriod {
  std::chrono::sys_seconds begin;
  std::chrono::sys_seconds end;
  std::chrono::seconds utc_offset{0};  // local time = UTC + utc_offset
  bool is_dst = false;
  std::string abbreviation;  // "CEST"; empty when the zone file names none
};

/// How a local wall-clock time maps to UTC.
struct LocalTimeMapping {
  enum class Kind {
    kUnique,       // exists exactly once
    kAmbiguous,    // exists twice (the clock was set back, e.g. autumn)
    kNonexistent,  // skipped (the clock was set forward, e.g. spring)
  };
  Kind kind = Kind::kUnique;
  /// kUnique: the instant. kAmbiguous: the first occurrence (still on the
  /// earlier, larger offset). kNonexistent: the end of the gap, i.e. the
  /// transition instant, the first instant whose local time is later.
  std::chrono::sys_seconds earliest;
  /// kAmbiguous: the second occurrence; otherwise equal to `earliest`.
  std::chrono::sys_seconds latest;
};

class TimeZone {
 public:
  /// Far enough out that adding any UTC offset cannot overflow.
  static constexpr std::chrono::sys_seconds kBeginningOfTime{std::chrono::seconds{-(int64_t{1} << 50)}};
  static constexpr std::chrono::sys_seconds kEndOfTime{std::chrono::seconds{int64_t{1} << 50}};

  /// UTC.
  TimeZone();

  /// Loads an IANA zone such as "Europe/Berlin" from $TZDIR or
  /// /usr/share/zoneinfo. "UTC" and "" need no file. Unknown or malformed
  /// names are errors that name the zone.
  static Result<TimeZone> Load(std::string_view name);
  /// Loads `name` from the given zoneinfo directory.
  static Result<TimeZone> LoadFromDirectory(std::string_view name, const std::string& directory);
  /// Parses the contents of a TZif file (RFC 8536, versions 1 to 4).
  static Result<TimeZone> FromTzif(std::string name, std::string_view data);
  /// A zone defined by a POSIX TZ rule alone, e.g. "CET-1CEST,M3.5.0,M10.5.0/3".
  static Result<TimeZone> FromPosixRule(std::string_view rule);

  static TimeZone Utc() { return TimeZone(); }

  /// The name it was loaded under ("Europe/Berlin", "UTC").
  const std::string& name() const;

  std::chrono::seconds UtcOffsetAt(std::chrono::sys_seconds t) const;
  /// The period of constant offset that contains `t`.
  OffsetPeriod PeriodAt(std::chrono::sys_seconds t) const;
  /// The wall-clock time at `t`.
  std::chrono::local_seconds ToLocal(std::chrono::sys_seconds t) const;
  /// Where a wall-clock time falls: once, twice, or not at all.
  LocalTimeMapping LocalToUtc(std::chrono::local_seconds local) const;

  struct Data;  // the parsed tables; defined in time_zone.cc

 private:
  explicit TimeZone(std::shared_ptr<const Data> data) : data_(std::move(data)) {}
  std::shared_ptr<const Data> data_;
};

}  // namespace sluice::service
