#include "service/schedule.h"

#include <functional>
#include <set>

#include <gtest/gtest.h>

namespace sluice::service {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;
using TimePoint = system_clock::time_point;

TimePoint At(year_month_day date, seconds time_of_day = 0s) {
  return TimePoint{sys_days{date} + time_of_day};
}

CronSchedule MustParse(std::string_view expression) {
  Result<CronSchedule> cron = CronSchedule::Parse(expression);
  EXPECT_TRUE(cron.ok()) << cron.status().ToString();
  return cron.ok() ? *cron : *CronSchedule::Parse("* * * * *");
}

TimeZone MustLoad(const char* name) {
  Result<TimeZone> tz = TimeZone::Load(name);
  EXPECT_TRUE(tz.ok()) << tz.status().ToString();
  return tz.ok() ? *tz : TimeZone::Utc();
}

// The successive runs after `start`.
std::vector<TimePoint> Runs(const CronSchedule& cron, TimePoint start, int count,
                            const TimeZone& tz = TimeZone()) {
  std::vector<TimePoint> runs;
  TimePoint t = start;
  for (int i = 0; i < count; ++i) {
    Result<TimePoint> next = cron.NextAfter(t, tz);
    EXPECT_TRUE(next.ok()) << next.status().ToString();
    if (!next.ok()) break;
    EXPECT_GT(*next, t);
    runs.push_back(*next);
    t = *next;
  }
  return runs;
}

std::string ParseError(std::string_view expression) {
  Result<CronSchedule> cron = CronSchedule::Parse(expression);
  EXPECT_FALSE(cron.ok()) << expression;
  if (cron.ok()) return "";
  EXPECT_EQ(cron.status().code(), StatusCode::kInvalidArgument);
  return cron.status().message();
}

TEST(CronSchedule, EveryFifteenMinutesIsStrictlyAfter) {
  CronSchedule cron = MustParse("*/15 * * * *");
  TimeZone utc;
  EXPECT_EQ(*cron.NextAfter(At(2026y / May / 5, 10h + 7min), utc), At(2026y / May / 5, 10h + 15min));
  EXPECT_EQ(*cron.NextAfter(At(2026y / May / 5, 10h + 15min), utc), At(2026y / May / 5, 10h + 30min));
  EXPECT_EQ(*cron.NextAfter(At(2026y / May / 5, 10h + 14min + 59s) + 999ms, utc),
            At(2026y / May / 5, 10h + 15min));
  EXPECT_EQ(*cron.NextAfter(At(2026y / May / 5, 23h + 50min), utc), At(2026y / May / 6));
  EXPECT_EQ(*cron.NextAfter(At(2026y / December / 31, 23h + 45min), utc), At(2027y / January / 1));
}

TEST(CronSchedule, DailyAtThreeInBerlinAcrossBothDstSwitches) {
  CronSchedule cron = MustParse("0 3 * * *");
  TimeZone berlin = MustLoad("Europe/Berlin");
  EXPECT_EQ(Runs(cron, At(2026y / March / 27, 12h), 3, berlin),
            (std::vector<TimePoint>{At(2026y / March / 28, 2h),  // 03:00 CET
                                    At(2026y / March / 29, 1h),  // 03:00 CEST, the day clocks go forward
                                    At(2026y / March / 30, 1h)}));
  EXPECT_EQ(Runs(cron, At(2026y / October / 23, 12h), 3, berlin),
            (std::vector<TimePoint>{At(2026y / October / 24, 1h),  // 03:00 CEST
                                    At(2026y / October / 25, 2h),  // 03:00 CET, the day clocks go back
                                    At(2026y / October / 26, 2h)}));
}

TEST(CronSchedule, SkippedTimeRunsOnceRightAfterTheGap) {
  // 29 March 2026 in Berlin has no 02:30: the run moves to 03:00 CEST.
  CronSchedule cron = MustParse("30 2 * * *");
  TimeZone berlin = MustLoad("Europe/Berlin");
  EXPECT_EQ(Runs(cron, At(2026y / March / 28, 12h), 2, berlin),
            (std::vector<TimePoint>{At(2026y / March / 29, 1h), At(2026y / March / 30, 30min)}));
  // Several skipped minutes still make one run.
  CronSchedule minutes = MustParse("10,20,40 2 * * *");
  EXPECT_EQ(Runs(minutes, At(2026y / March / 28, 12h), 2, berlin),
            (std::vector<TimePoint>{At(2026y / March / 29, 1h), At(2026y / March / 30, 10min)}));
}

TEST(CronSchedule, RepeatedTimeRunsOnceAtItsFirstOccurrence) {
  // 25 October 2026 in Berlin has 02:30 twice: 00:30 UTC (CEST) and 01:30 UTC (CET).
  CronSchedule cron = MustParse("30 2 * * *");
  TimeZone berlin = MustLoad("Europe/Berlin");
  EXPECT_EQ(Runs(cron, At(2026y / October / 24, 12h), 2, berlin),
            (std::vector<TimePoint>{At(2026y / October / 25, 30min), At(2026y / October / 26, 1h + 30min)}));
  // Asking right after the first occurrence does not find the second.
  EXPECT_EQ(*cron.NextAfter(At(2026y / October / 25, 30min), berlin), At(2026y / October / 26, 1h + 30min));
  EXPECT_EQ(*cron.NextAfter(At(2026y / October / 25, 1h), berlin), At(2026y / October / 26, 1h + 30min));
}

TEST(CronSchedule, EveryHourSchedulesFollowElapsedTime) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  CronSchedule quarter = MustParse("*/15 * * * *");
  // Clocks go back: 02:45 CEST, then 02:00 CET an hour later by the clock but 15 minutes in real time.
  EXPECT_EQ(Runs(quarter, At(2026y / October / 25, 40min), 3, berlin),
            (std::vector<TimePoint>{At(2026y / October / 25, 45min), At(2026y / October / 25, 1h),
                                    At(2026y / October / 25, 1h + 15min)}));
  // Clocks go forward: 01:45 CET, then 03:00 CEST.
  EXPECT_EQ(Runs(quarter, At(2026y / March / 29, 40min), 3, berlin),
            (std::vector<TimePoint>{At(2026y / March / 29, 45min), At(2026y / March / 29, 1h),
                                    At(2026y / March / 29, 1h + 15min)}));
  // An hourly job skips the hour that does not exist and runs in both copies of the repeated one.
  CronSchedule hourly = MustParse("30 * * * *");
  EXPECT_EQ(Runs(hourly, At(2026y / March / 29), 2, berlin),
            (std::vector<TimePoint>{At(2026y / March / 29, 30min), At(2026y / March / 29, 1h + 30min)}));
  EXPECT_EQ(Runs(hourly, At(2026y / October / 25), 3, berlin),
            (std::vector<TimePoint>{At(2026y / October / 25, 30min), At(2026y / October / 25, 1h + 30min),
                                    At(2026y / October / 25, 2h + 30min)}));
}

TEST(CronSchedule, SydneyAndNewYork) {
  CronSchedule cron = MustParse("0 9 * * *");
  EXPECT_EQ(Runs(cron, At(2026y / April / 3), 3, MustLoad("Australia/Sydney")),
            (std::vector<TimePoint>{At(2026y / April / 3, 22h),  // 09:00 AEDT on 4 April
                                    At(2026y / April / 4, 23h),  // 09:00 AEST on 5 April
                                    At(2026y / April / 5, 23h)}));
  EXPECT_EQ(Runs(cron, At(2026y / March / 7), 2, MustLoad("America/New_York")),
            (std::vector<TimePoint>{At(2026y / March / 7, 14h), At(2026y / March / 8, 13h)}));
}

TEST(CronSchedule, DayOfMonthOrDayOfWeekWhenBothRestricted) {
  // Vixie cron: the 13th or any Friday. 13 April 2026 is a Monday.
  CronSchedule cron = MustParse("0 0 13 * FRI");
  EXPECT_EQ(Runs(cron, At(2026y / April / 10), 3),
            (std::vector<TimePoint>{At(2026y / April / 13), At(2026y / April / 17), At(2026y / April / 24)}));
  // A field starting with '*' makes both required: odd days that are Mondays.
  CronSchedule both = MustParse("0 0 */2 * MON");
  EXPECT_EQ(Runs(both, At(2026y / April / 1), 2),
            (std::vector<TimePoint>{At(2026y / April / 13), At(2026y / April / 27)}));
}

TEST(CronSchedule, NamesAreCaseInsensitiveAndSevenIsSunday) {
  CronSchedule winter = MustParse("0 9 * JAN-mar Mon-Fri");
  // After March, the next weekday in January 2027 is Friday the 1st.
  EXPECT_EQ(*winter.NextAfter(At(2026y / March / 31, 10h), TimeZone()), At(2027y / January / 1, 9h));
  // 2 May 2026 is a Saturday; the next Sunday is the 3rd.
  for (const char* expression : {"0 12 * * SUN", "0 12 * * 0", "0 12 * * 7", "0 12 * * sun"}) {
    EXPECT_EQ(*MustParse(expression).NextAfter(At(2026y / May / 2), TimeZone()), At(2026y / May / 3, 12h))
        << expression;
  }
  // A weekday range may end on Sunday.
  EXPECT_EQ(Runs(MustParse("0 0 * * FRI-SUN"), At(2026y / April / 30), 4),
            (std::vector<TimePoint>{At(2026y / May / 1), At(2026y / May / 2), At(2026y / May / 3),
                                    At(2026y / May / 8)}));
  EXPECT_EQ(*MustParse("0 0 1 dec *").NextAfter(At(2026y / May / 2), TimeZone()), At(2026y / December / 1));
}

TEST(CronSchedule, Steps) {
  EXPECT_EQ(Runs(MustParse("5-50/15 * * * *"), At(2026y / May / 5, 10h), 5),
            (std::vector<TimePoint>{At(2026y / May / 5, 10h + 5min), At(2026y / May / 5, 10h + 20min),
                                    At(2026y / May / 5, 10h + 35min), At(2026y / May / 5, 10h + 50min),
                                    At(2026y / May / 5, 11h + 5min)}));
  EXPECT_EQ(Runs(MustParse("10/20 * * * *"), At(2026y / May / 5, 10h), 4),
            (std::vector<TimePoint>{At(2026y / May / 5, 10h + 10min), At(2026y / May / 5, 10h + 30min),
                                    At(2026y / May / 5, 10h + 50min), At(2026y / May / 5, 11h + 10min)}));
  EXPECT_EQ(Runs(MustParse("0 */6 * * *"), At(2026y / May / 5, 1h), 4),
            (std::vector<TimePoint>{At(2026y / May / 5, 6h), At(2026y / May / 5, 12h),
                                    At(2026y / May / 5, 18h), At(2026y / May / 6)}));
  EXPECT_EQ(
      Runs(MustParse("0 0 1 */4 *"), At(2026y / May / 5), 3),
      (std::vector<TimePoint>{At(2026y / September / 1), At(2027y / January / 1), At(2027y / May / 1)}));
  EXPECT_EQ(Runs(MustParse("0,30 8-9 * * *"), At(2026y / May / 5), 5),
            (std::vector<TimePoint>{At(2026y / May / 5, 8h), At(2026y / May / 5, 8h + 30min),
                                    At(2026y / May / 5, 9h), At(2026y / May / 5, 9h + 30min),
                                    At(2026y / May / 6, 8h)}));
}

TEST(CronSchedule, Macros) {
  TimePoint start = At(2026y / May / 5, 10h + 20min);  // a Tuesday
  struct Case {
    const char* macro;
    TimePoint expected;
  };
  for (const Case& c : {Case{"@yearly", At(2027y / January / 1)}, Case{"@annually", At(2027y / January / 1)},
                        Case{"@monthly", At(2026y / June / 1)}, Case{"@weekly", At(2026y / May / 10)},
                        Case{"@daily", At(2026y / May / 6)}, Case{"@midnight", At(2026y / May / 6)},
                        Case{"@hourly", At(2026y / May / 5, 11h)}, Case{"@DAILY", At(2026y / May / 6)}}) {
    EXPECT_EQ(*MustParse(c.macro).NextAfter(start, TimeZone()), c.expected) << c.macro;
  }
  EXPECT_NE(ParseError("@reboot").find("unknown macro @reboot"), std::string::npos);
}

TEST(CronSchedule, LeapDay) {
  CronSchedule cron = MustParse("0 0 29 2 *");
  EXPECT_EQ(Runs(cron, At(2026y / January / 1), 2),
            (std::vector<TimePoint>{At(2028y / February / 29), At(2032y / February / 29)}));
  // 2100 is not a leap year.
  EXPECT_EQ(*cron.NextAfter(At(2096y / March / 1), TimeZone()), At(2104y / February / 29));
  // system_clock (nanoseconds) ends in 2262.
  Result<TimePoint> beyond = cron.NextAfter(At(2260y / March / 1), TimeZone());
  ASSERT_FALSE(beyond.ok());
  EXPECT_EQ(beyond.status().message(), "cron \"0 0 29 2 *\": the next run is after the year 2262");
  // 29 February on a Sunday: 2032, then 2060.
  EXPECT_EQ(Runs(MustParse("0 0 29 2 */7"), At(2026y / January / 1), 2),
            (std::vector<TimePoint>{At(2032y / February / 29), At(2060y / February / 29)}));
}

TEST(CronSchedule, ImpossibleDatesAreRejected) {
  EXPECT_EQ(ParseError("0 0 30 2 *"), "cron \"0 0 30 2 *\": day-of-month 30 never occurs in month 2");
  EXPECT_NE(ParseError("0 0 31 4,6,9,11 *").find("never occurs"), std::string::npos);
  EXPECT_NE(ParseError("0 0 31 feb * ").find("never occurs"), std::string::npos);
  // With both day fields restricted any Monday in February matches.
  EXPECT_TRUE(CronSchedule::Parse("0 0 30 2 MON").ok());
  EXPECT_TRUE(CronSchedule::Parse("0 0 31 * *").ok());
}

TEST(CronSchedule, ParseErrorsNameTheFieldAndText) {
  EXPECT_EQ(ParseError("0 25 * * *"), "cron \"0 25 * * *\": hour 25 out of range 0-23");
  EXPECT_EQ(ParseError("60 * * * *"), "cron \"60 * * * *\": minute 60 out of range 0-59");
  EXPECT_EQ(ParseError("* * 0 * *"), "cron \"* * 0 * *\": day-of-month 0 out of range 1-31");
  EXPECT_EQ(ParseError("* * * 13 *"), "cron \"* * * 13 *\": month 13 out of range 1-12");
  EXPECT_EQ(ParseError("* * * * 8"), "cron \"* * * * 8\": day-of-week 8 out of range 0-7");
  EXPECT_EQ(ParseError("* * * FOO *"), "cron \"* * * FOO *\": month \"FOO\" is not a number or a name");
  EXPECT_EQ(ParseError("x * * * *"), "cron \"x * * * *\": minute \"x\" is not a number");
  EXPECT_EQ(ParseError("*/0 * * * *"), "cron \"*/0 * * * *\": minute step 0 must be at least 1");
  EXPECT_EQ(ParseError("*/90 * * * *"),
            "cron \"*/90 * * * *\": minute step 90 is larger than the range 0-59");
  EXPECT_EQ(ParseError("5-1 * * * *"), "cron \"5-1 * * * *\": minute range 5-1 is reversed");
  EXPECT_EQ(ParseError("1,,2 * * * *"), "cron \"1,,2 * * * *\": minute has an empty list item in \"1,,2\"");
  EXPECT_EQ(ParseError("0 3 * *"),
            "cron \"0 3 * *\": expected 5 fields (minute hour day-of-month month day-of-week), found 4");
  EXPECT_NE(ParseError("0 0 3 * * *").find("found 6"), std::string::npos);
  EXPECT_NE(ParseError("").find("found 0"), std::string::npos);
  EXPECT_NE(ParseError("1-2-3 * * * *").find("minute \"1-2-3\" is not a value or a range"),
            std::string::npos);
  EXPECT_NE(ParseError("1/2/3 * * * *").find("more than one step"), std::string::npos);
  EXPECT_NE(ParseError("* * * * MON-XYZ").find("day-of-week \"XYZ\""), std::string::npos);
}

// Cross-check against a slow definition of the rules, minute by minute,
// through both of Berlin's 2026 clock changes: a fixed-hour schedule runs
// at the earliest instant of each matching wall-clock minute (the first
// occurrence, or the end of the gap); an every-hour schedule runs at each
// instant whose wall-clock minute matches.
TEST(CronSchedule, AgreesWithMinuteByMinuteSearchAroundDstChanges) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  struct Case {
    const char* expression;
    bool every_hour;
    std::function<bool(int hour, int minute)> matches;
  };
  std::vector<Case> cases = {
      {"30 2 * * *", false, [](int h, int m) { return h == 2 && m == 30; }},
      {"0 3 * * *", false, [](int h, int m) { return h == 3 && m == 0; }},
      {"45 1-3 * * *", false, [](int h, int m) { return h >= 1 && h <= 3 && m == 45; }},
      {"*/20 2 * * *", false, [](int h, int m) { return h == 2 && m % 20 == 0; }},
      {"*/15 * * * *", true, [](int, int m) { return m % 15 == 0; }},
      {"7 * * * *", true, [](int, int m) { return m == 7; }},
  };
  for (year_month_day day : {2026y / March / 29, 2026y / October / 25}) {
    const sys_seconds window_begin = sys_days{day} - days{1};
    const sys_seconds window_end = sys_days{day} + days{2};
    for (const Case& c : cases) {
      std::set<sys_seconds> expected;
      if (c.every_hour) {
        for (sys_seconds u = window_begin; u < window_end; u += 1min) {
          auto local = berlin.ToLocal(u);
          hh_mm_ss<seconds> hms{local - floor<days>(local)};
          if (c.matches(static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count()))) {
            expected.insert(u);
          }
        }
      } else {
        for (local_seconds l = local_days{day} - days{2}; l < local_days{day} + days{3}; l += 1min) {
          hh_mm_ss<seconds> hms{l - floor<days>(l)};
          if (!c.matches(static_cast<int>(hms.hours().count()), static_cast<int>(hms.minutes().count())))
            continue;
          sys_seconds u = berlin.LocalToUtc(l).earliest;
          if (u >= window_begin && u < window_end) expected.insert(u);
        }
      }
      std::set<sys_seconds> actual;
      TimePoint t{window_begin - 1s};
      while (true) {
        Result<TimePoint> next = CronSchedule::Parse(c.expression)->NextAfter(t, berlin);
        ASSERT_TRUE(next.ok());
        if (*next >= TimePoint{window_end}) break;
        actual.insert(floor<seconds>(*next));
        t = *next;
      }
      EXPECT_EQ(actual, expected) << c.expression << " around " << static_cast<unsigned>(day.month()) << "/"
                                  << static_cast<unsigned>(day.day());
    }
  }
}

TEST(CronSchedule, ZoneWhoseDaylightSavingRulesReachIntoTheYearBefore) {
  // Found by fuzz/cron_fuzz.cc: UTC-1, DST UTC+12, starting 166 hours before
  // the first Monday of January and ending 132 hours before 3 January, so
  // most years' changes fall in late December of the year before. The
  // zone's periods depended on the year asked about, and the first run
  // after 1970 came 13 hours early, at midnight of a DST offset the zone
  // did not have then.
  Result<TimeZone> tz = TimeZone::FromPosixRule("<-01>1<+12>-12,M1.1.1/-166,2/-132");
  ASSERT_TRUE(tz.ok()) << tz.status().ToString();
  // Minute 0 of every hour on days 1, 8, 15, 22 and 29 of February that
  // are Thursdays: first 1 February 1973, in standard time (UTC-1).
  CronSchedule cron = MustParse("0 * */7 2 4");
  for (TimePoint after : {At(1970y / January / 1), At(1972y / June / 1), At(1973y / February / 1)}) {
    Result<TimePoint> next = cron.NextAfter(after, *tz);
    ASSERT_TRUE(next.ok()) << next.status().ToString();
    EXPECT_EQ(*next, At(1973y / February / 1, 1h));
  }
}

TEST(IntervalSchedule, AddsTheIntervalToThePreviousStart) {
  IntervalSchedule every(24h);
  EXPECT_EQ(*every.Next(At(2026y / May / 5, 10h + 7min)), At(2026y / May / 6, 10h + 7min));
  EXPECT_EQ(every.Describe(), "every 24h");
  EXPECT_EQ(IntervalSchedule(90s).Describe(), "every 1m30s");
  EXPECT_EQ(IntervalSchedule(3h + 5s).Describe(), "every 3h5s");
  EXPECT_FALSE(IntervalSchedule(0s).Next(At(2026y / May / 5)).ok());
}

TEST(MakeSchedule, IntervalOrCronInAZone) {
  Result<std::unique_ptr<Schedule>> interval = MakeSchedule(86400, "", "");
  ASSERT_TRUE(interval.ok()) << interval.status().ToString();
  EXPECT_EQ((*interval)->Describe(), "every 24h");
  EXPECT_EQ(*(*interval)->Next(At(2026y / May / 5)), At(2026y / May / 6));

  Result<std::unique_ptr<Schedule>> cron = MakeSchedule(0, "0 3 * * *", "Europe/Berlin");
  ASSERT_TRUE(cron.ok()) << cron.status().ToString();
  EXPECT_EQ((*cron)->Describe(), "cron \"0 3 * * *\" in Europe/Berlin");
  EXPECT_EQ(*(*cron)->Next(At(2026y / March / 28, 12h)), At(2026y / March / 29, 1h));

  Result<std::unique_ptr<Schedule>> utc = MakeSchedule(0, "0 3 * * *", "");
  ASSERT_TRUE(utc.ok());
  EXPECT_EQ((*utc)->Describe(), "cron \"0 3 * * *\" in UTC");
}

TEST(MakeSchedule, Errors) {
  Result<std::unique_ptr<Schedule>> both = MakeSchedule(60, "* * * * *", "");
  ASSERT_FALSE(both.ok());
  EXPECT_NE(both.status().message().find("either every or cron"), std::string::npos);
  EXPECT_FALSE(MakeSchedule(0, "", "").ok());
  EXPECT_FALSE(MakeSchedule(-5, "", "").ok());
  EXPECT_FALSE(MakeSchedule(60, "", "Europe/Berlin").ok());

  Result<std::unique_ptr<Schedule>> zone = MakeSchedule(0, "0 3 * * *", "Europe/Atlantis");
  ASSERT_FALSE(zone.ok());
  EXPECT_NE(zone.status().message().find("Europe/Atlantis"), std::string::npos);
  Result<std::unique_ptr<Schedule>> cron = MakeSchedule(0, "0 24 * * *", "UTC");
  ASSERT_FALSE(cron.ok());
  EXPECT_NE(cron.status().message().find("hour 24 out of range"), std::string::npos);
}

}  // namespace
}  // namespace sluice::service
