// When a scheduled pipeline runs next: a fixed interval ("every = 24h") or
// a cron expression evaluated in a time zone ("cron = 0 3 * * *").
//
// Cron syntax: five fields, minute (0-59), hour (0-23), day of month
// (1-31), month (1-12 or JAN-DEC) and day of week (0-7 or SUN-SAT; 0 and 7
// are Sunday). Each field is `*` or a comma list of `a`, `a-b`, `*/n`,
// `a-b/n` and `a/n` (= `a-max/n`); names are case-insensitive. Macros:
// @yearly (@annually), @monthly, @weekly, @daily (@midnight), @hourly.
// As in Vixie cron, when the day-of-month and day-of-week fields are both
// restricted (neither starts with `*`) a day matches if EITHER matches;
// otherwise both must match ("0 0 */2 * MON" is odd days that are Mondays).
//
// Daylight-saving time. Fields match the local wall clock of the zone.
// Like cronie, schedules whose hour field is fixed (not every hour) keep
// their wall-clock times through clock changes:
//  - a time skipped when clocks go forward (02:30 on a day when 02:00
//    becomes 03:00) runs once, at the first instant after the gap (03:00);
//  - a time that occurs twice when clocks go back runs once, at its first
//    occurrence.
// Schedules that run every hour (hour field `*`) follow elapsed time
// instead: minutes in a skipped hour do not run, and minutes in a repeated
// hour run in both occurrences, so "*/15 * * * *" keeps running every 15
// minutes of real time.
//
// Schedules are immutable; every method is safe to call from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "service/time_zone.h"
#include "sluice/status.h"

namespace sluice::service {

/// What the scheduler holds: when to start the next run.
class Schedule {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  Schedule() = default;
  virtual ~Schedule() = default;
  Schedule(const Schedule&) = delete;
  Schedule& operator=(const Schedule&) = delete;

  /// The first start strictly after `after` (for an interval: the
  /// previous start plus the interval).
  virtual Result<TimePoint> Next(TimePoint after) const = 0;
  /// For logs and /status: "every 24h", "cron \"0 3 * * *\" in Europe/Berlin".
  virtual std::string Describe() const = 0;
};

class IntervalSchedule final : public Schedule {
 public:
  /// `interval` must be positive.
  explicit IntervalSchedule(std::chrono::seconds interval) : interval_(interval) {}
  Result<TimePoint> Next(TimePoint after) const override;
  std::string Describe() const override;
  std::chrono::seconds interval() const { return interval_; }

 private:
  std::chrono::seconds interval_;
};

/// A parsed cron expression; a plain value.
class CronSchedule {
 public:
  using TimePoint = std::chrono::system_clock::time_point;

  /// Parses a 5-field expression or a macro. Errors name the field and the
  /// offending text: `cron "0 25 * * *": hour 25 out of range 0-23`. A
  /// day-of-month that never occurs in the chosen months ("0 0 30 2 *")
  /// is an error too.
  static Result<CronSchedule> Parse(std::string_view expression);

  /// The first matching minute strictly after `t`, in the wall-clock time
  /// of `tz` (see the daylight-saving rules above). Searches at most 100
  /// years ahead and fails if nothing matches in that time.
  Result<TimePoint> NextAfter(TimePoint t, const TimeZone& tz) const;

  const std::string& expression() const { return expression_; }

 private:
  CronSchedule() = default;
  bool DayMatches(std::chrono::year_month_day date) const;
  // The first matching local minute (local seconds since the epoch) in [from, limit).
  bool NextLocalMatch(int64_t from, int64_t limit, int64_t* match) const;

  std::string expression_;
  uint64_t minutes_ = 0;        // bit n: minute n
  uint32_t hours_ = 0;          // bit n: hour n
  uint32_t days_of_month_ = 0;  // bit n: day n (1-31)
  uint32_t months_ = 0;         // bit n: month n (1-12)
  uint32_t days_of_week_ = 0;   // bit n: weekday n (0 = Sunday)
  bool day_of_month_star_ = false;
  bool day_of_week_star_ = false;
};

/// Builds the schedule a pipeline's config asks for: `every_seconds` > 0
/// for an interval, or a cron expression evaluated in `time_zone` (an IANA
/// name; empty means UTC). Exactly one of the two must be given.
Result<std::unique_ptr<Schedule>> MakeSchedule(int64_t every_seconds, std::string_view cron,
                                               std::string_view time_zone);

}  // namespace sluice::service
