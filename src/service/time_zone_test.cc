#include "service/time_zone.h"

#include <gtest/gtest.h>

namespace sluice::service {
namespace {

using namespace std::chrono;
using namespace std::chrono_literals;

sys_seconds Utc(year_month_day date, seconds time_of_day = 0s) { return sys_days{date} + time_of_day; }
local_seconds Local(year_month_day date, seconds time_of_day = 0s) { return local_days{date} + time_of_day; }

TimeZone MustLoad(const char* name) {
  Result<TimeZone> tz = TimeZone::Load(name);
  EXPECT_TRUE(tz.ok()) << tz.status().ToString();
  return tz.ok() ? *tz : TimeZone::Utc();
}

TEST(TimeZone, BerlinSpringForward2026) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  EXPECT_EQ(berlin.name(), "Europe/Berlin");
  // 29 March 2026: 02:00 CET becomes 03:00 CEST at 01:00 UTC.
  EXPECT_EQ(berlin.UtcOffsetAt(Utc(2026y / March / 29, 59min + 59s)), 1h);
  EXPECT_EQ(berlin.UtcOffsetAt(Utc(2026y / March / 29, 1h)), 2h);
  OffsetPeriod summer = berlin.PeriodAt(Utc(2026y / June / 1));
  EXPECT_EQ(summer.begin, Utc(2026y / March / 29, 1h));
  EXPECT_EQ(summer.end, Utc(2026y / October / 25, 1h));
  EXPECT_EQ(summer.abbreviation, "CEST");
  EXPECT_TRUE(summer.is_dst);

  LocalTimeMapping gap = berlin.LocalToUtc(Local(2026y / March / 29, 2h + 30min));
  EXPECT_EQ(gap.kind, LocalTimeMapping::Kind::kNonexistent);
  EXPECT_EQ(gap.earliest, Utc(2026y / March / 29, 1h)) << "the first instant after the gap (03:00 CEST)";

  LocalTimeMapping before = berlin.LocalToUtc(Local(2026y / March / 29, 1h + 59min));
  EXPECT_EQ(before.kind, LocalTimeMapping::Kind::kUnique);
  EXPECT_EQ(before.earliest, Utc(2026y / March / 29, 59min));
  LocalTimeMapping after = berlin.LocalToUtc(Local(2026y / March / 29, 3h));
  EXPECT_EQ(after.kind, LocalTimeMapping::Kind::kUnique);
  EXPECT_EQ(after.earliest, Utc(2026y / March / 29, 1h));
}

TEST(TimeZone, BerlinFallBack2026) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  // 25 October 2026: 03:00 CEST becomes 02:00 CET at 01:00 UTC.
  EXPECT_EQ(berlin.UtcOffsetAt(Utc(2026y / October / 25, 59min + 59s)), 2h);
  EXPECT_EQ(berlin.UtcOffsetAt(Utc(2026y / October / 25, 1h)), 1h);
  EXPECT_EQ(berlin.PeriodAt(Utc(2026y / December / 1)).abbreviation, "CET");

  LocalTimeMapping twice = berlin.LocalToUtc(Local(2026y / October / 25, 2h + 30min));
  EXPECT_EQ(twice.kind, LocalTimeMapping::Kind::kAmbiguous);
  EXPECT_EQ(twice.earliest, Utc(2026y / October / 25, 30min));
  EXPECT_EQ(twice.latest, Utc(2026y / October / 25, 1h + 30min));

  LocalTimeMapping three = berlin.LocalToUtc(Local(2026y / October / 25, 3h));
  EXPECT_EQ(three.kind, LocalTimeMapping::Kind::kUnique);
  EXPECT_EQ(three.earliest, Utc(2026y / October / 25, 2h));
  EXPECT_EQ(berlin.ToLocal(Utc(2026y / October / 25, 1h + 30min)), Local(2026y / October / 25, 2h + 30min));
}

TEST(TimeZone, FarFutureFollowsTheFooterRule) {
  TimeZone berlin = MustLoad("Europe/Berlin");
  // 2060 is beyond any zone file's table: the POSIX rule decides.
  // Last Sunday of March 2060 is the 28th, of October the 31st.
  EXPECT_EQ(berlin.UtcOffsetAt(Utc(2060y / March / 28, 59min + 59s)), 1h);
  EXPECT_EQ(berlin.UtcOffsetAt(Utc(2060y / March / 28, 1h)), 2h);
  EXPECT_EQ(berlin.UtcOffsetAt(Utc(2060y / October / 31, 59min + 59s)), 2h);
  EXPECT_EQ(berlin.UtcOffsetAt(Utc(2060y / October / 31, 1h)), 1h);
  OffsetPeriod summer = berlin.PeriodAt(Utc(2060y / July / 1));
  EXPECT_EQ(summer.begin, Utc(2060y / March / 28, 1h));
  EXPECT_EQ(summer.end, Utc(2060y / October / 31, 1h));
  EXPECT_EQ(summer.abbreviation, "CEST");
  LocalTimeMapping twice = berlin.LocalToUtc(Local(2060y / October / 31, 2h + 15min));
  EXPECT_EQ(twice.kind, LocalTimeMapping::Kind::kAmbiguous);
  EXPECT_EQ(twice.earliest, Utc(2060y / October / 31, 15min));
  EXPECT_EQ(twice.latest, Utc(2060y / October / 31, 1h + 15min));
}

TEST(TimeZone, NewYork) {
  TimeZone ny = MustLoad("America/New_York");
  EXPECT_EQ(ny.UtcOffsetAt(Utc(2026y / March / 8, 6h + 59min)), -5h);
  EXPECT_EQ(ny.UtcOffsetAt(Utc(2026y / March / 8, 7h)), -4h);
  EXPECT_EQ(ny.UtcOffsetAt(Utc(2026y / November / 1, 5h + 59min)), -4h);
  EXPECT_EQ(ny.UtcOffsetAt(Utc(2026y / November / 1, 6h)), -5h);
  EXPECT_EQ(ny.PeriodAt(Utc(2026y / July / 4)).abbreviation, "EDT");
  // 2060: second Sunday of March is the 14th, first of November the 7th.
  EXPECT_EQ(ny.UtcOffsetAt(Utc(2060y / March / 14, 6h + 59min)), -5h);
  EXPECT_EQ(ny.UtcOffsetAt(Utc(2060y / March / 14, 7h)), -4h);
  EXPECT_EQ(ny.UtcOffsetAt(Utc(2060y / November / 7, 6h)), -5h);

  LocalTimeMapping gap = ny.LocalToUtc(Local(2026y / March / 8, 2h + 30min));
  EXPECT_EQ(gap.kind, LocalTimeMapping::Kind::kNonexistent);
  EXPECT_EQ(gap.earliest, Utc(2026y / March / 8, 7h));
  LocalTimeMapping twice = ny.LocalToUtc(Local(2026y / November / 1, 1h + 30min));
  EXPECT_EQ(twice.kind, LocalTimeMapping::Kind::kAmbiguous);
  EXPECT_EQ(twice.earliest, Utc(2026y / November / 1, 5h + 30min));
  EXPECT_EQ(twice.latest, Utc(2026y / November / 1, 6h + 30min));
}

TEST(TimeZone, SydneyHasSummerAroundNewYear) {
  TimeZone sydney = MustLoad("Australia/Sydney");
  EXPECT_EQ(sydney.UtcOffsetAt(Utc(2026y / January / 15)), 11h);
  EXPECT_EQ(sydney.UtcOffsetAt(Utc(2026y / July / 15)), 10h);
  // Ends Sunday 5 April 2026 03:00 AEDT, starts Sunday 4 October 02:00 AEST.
  EXPECT_EQ(sydney.UtcOffsetAt(Utc(2026y / April / 4, 15h + 59min)), 11h);
  EXPECT_EQ(sydney.UtcOffsetAt(Utc(2026y / April / 4, 16h)), 10h);
  EXPECT_EQ(sydney.UtcOffsetAt(Utc(2026y / October / 3, 15h + 59min)), 10h);
  EXPECT_EQ(sydney.UtcOffsetAt(Utc(2026y / October / 3, 16h)), 11h);
  // The footer rule across a year boundary, far in the future.
  OffsetPeriod summer = sydney.PeriodAt(Utc(2060y / January / 1));
  EXPECT_EQ(summer.utc_offset, 11h);
  EXPECT_EQ(summer.end, Utc(2060y / April / 3, 16h));
  EXPECT_EQ(sydney.PeriodAt(Utc(2060y / December / 31)).begin, Utc(2060y / October / 2, 16h));

  LocalTimeMapping gap = sydney.LocalToUtc(Local(2026y / October / 4, 2h + 30min));
  EXPECT_EQ(gap.kind, LocalTimeMapping::Kind::kNonexistent);
  EXPECT_EQ(gap.earliest, Utc(2026y / October / 3, 16h));
  LocalTimeMapping twice = sydney.LocalToUtc(Local(2026y / April / 5, 2h + 30min));
  EXPECT_EQ(twice.kind, LocalTimeMapping::Kind::kAmbiguous);
  EXPECT_EQ(twice.earliest, Utc(2026y / April / 4, 15h + 30min));
  EXPECT_EQ(twice.latest, Utc(2026y / April / 4, 16h + 30min));
}

TEST(TimeZone, UtcNeedsNoFile) {
  for (const char* name : {"UTC", ""}) {
    Result<TimeZone> tz = TimeZone::LoadFromDirectory(name, "/nonexistent");
    ASSERT_TRUE(tz.ok()) << tz.status().ToString();
    EXPECT_EQ(tz->name(), "UTC");
    EXPECT_EQ(tz->UtcOffsetAt(Utc(2026y / July / 1)), 0s);
    LocalTimeMapping m = tz->LocalToUtc(Local(2026y / March / 29, 2h + 30min));
    EXPECT_EQ(m.kind, LocalTimeMapping::Kind::kUnique);
    EXPECT_EQ(m.earliest, Utc(2026y / March / 29, 2h + 30min));
  }
  EXPECT_EQ(TimeZone().name(), "UTC");
}

TEST(TimeZone, UnknownZoneIsAnErrorNamingIt) {
  Result<TimeZone> tz = TimeZone::Load("Mars/Olympus_Mons");
  ASSERT_FALSE(tz.ok());
  EXPECT_EQ(tz.status().code(), StatusCode::kNotFound);
  EXPECT_NE(tz.status().message().find("unknown time zone \"Mars/Olympus_Mons\""), std::string::npos)
      << tz.status().message();

  Result<TimeZone> dir = TimeZone::Load("Europe");
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.status().code(), StatusCode::kNotFound);
}

TEST(TimeZone, RejectsPathsOutsideTheZoneDirectory) {
  for (const char* name : {"../../etc/passwd", "/etc/localtime", "Europe/../UTC", "Europe/Berlin\n"}) {
    Result<TimeZone> tz = TimeZone::Load(name);
    ASSERT_FALSE(tz.ok()) << name;
    EXPECT_EQ(tz.status().code(), StatusCode::kInvalidArgument) << name;
    EXPECT_NE(tz.status().message().find("invalid time zone name"), std::string::npos);
  }
}

TEST(TimeZone, MalformedFileIsADataError) {
  Result<TimeZone> tz = TimeZone::FromTzif("Broken/Zone", "TZif2 this is not a zone file");
  ASSERT_FALSE(tz.ok());
  EXPECT_EQ(tz.status().code(), StatusCode::kDataError);
  EXPECT_NE(tz.status().message().find("Broken/Zone"), std::string::npos);
  EXPECT_FALSE(TimeZone::FromTzif("Empty", "").ok());
}

TEST(TimeZone, PosixRuleWithHalfHourDaylightSaving) {
  // Lord Howe Island moves its clocks by 30 minutes.
  Result<TimeZone> tz = TimeZone::FromPosixRule("<+1030>-10:30<+11>-11,M10.1.0,M4.1.0");
  ASSERT_TRUE(tz.ok()) << tz.status().ToString();
  EXPECT_EQ(tz->UtcOffsetAt(Utc(2026y / April / 4, 14h + 59min)), 11h);
  EXPECT_EQ(tz->UtcOffsetAt(Utc(2026y / April / 4, 15h)), 10h + 30min);
  EXPECT_EQ(tz->UtcOffsetAt(Utc(2026y / October / 3, 15h + 29min)), 10h + 30min);
  EXPECT_EQ(tz->UtcOffsetAt(Utc(2026y / October / 3, 15h + 30min)), 11h);
  EXPECT_EQ(tz->PeriodAt(Utc(2026y / July / 1)).abbreviation, "+1030");
}

TEST(TimeZone, PosixRuleJulianDaysAndFixedOffsets) {
  // J60 is 1 March in every year (29 February is never counted); plain
  // 300 is zero-based and counts 29 February.
  Result<TimeZone> j = TimeZone::FromPosixRule("AAA-1BBB,J60/0,300/0");
  ASSERT_TRUE(j.ok()) << j.status().ToString();
  EXPECT_EQ(j->PeriodAt(Utc(2028y / June / 1)).begin, Utc(2028y / March / 1, -1h));
  EXPECT_EQ(j->PeriodAt(Utc(2028y / June / 1)).end,
            Utc(2028y / October / 27, -2h));  // day 300 of a leap year
  EXPECT_EQ(j->PeriodAt(Utc(2027y / June / 1)).begin, Utc(2027y / March / 1, -1h));

  Result<TimeZone> india = TimeZone::FromPosixRule("IST-5:30");
  ASSERT_TRUE(india.ok());
  EXPECT_EQ(india->UtcOffsetAt(Utc(2060y / January / 1)), 5h + 30min);
  EXPECT_EQ(india->LocalToUtc(Local(2026y / March / 29, 2h + 30min)).kind, LocalTimeMapping::Kind::kUnique);

  // Daylight saving all year (TZif v3 example): never a transition.
  Result<TimeZone> always = TimeZone::FromPosixRule("EST5EDT4,0/0,J365/25");
  ASSERT_TRUE(always.ok()) << always.status().ToString();
  for (auto date : {2026y / January / 1, 2026y / June / 30, 2026y / December / 31}) {
    OffsetPeriod p = always->PeriodAt(sys_days{date});
    EXPECT_EQ(p.utc_offset, -4h);
    EXPECT_TRUE(p.is_dst);
    EXPECT_EQ(p.end, TimeZone::kEndOfTime);
  }
}

TEST(TimeZone, PosixRuleWhoseStartAndEndSwapOrderBetweenYears) {
  // Found by fuzz/tzif_fuzz.cc. DST starts on 2 January (zero-based day 1)
  // and ends on the first Sunday of January. 2017 began on a Sunday, so its
  // end (1 January) came before its start (2 January); 2018 began on a
  // Monday, so its start (2 January) came first. The changes apply in time
  // order: DST from 2 January 2017 to 7 January 2018, whichever instant of
  // that stretch is asked about.
  Result<TimeZone> tz = TimeZone::FromPosixRule("<+1030>-10:30<+11>-11,1/0,M1.1.0");
  ASSERT_TRUE(tz.ok()) << tz.status().ToString();
  const sys_seconds begin = Utc(2017y / January / 2) - (10h + 30min);
  const sys_seconds end = Utc(2018y / January / 7, 2h) - 11h;
  for (sys_seconds t : {Utc(2017y / June / 1), Utc(2017y / December / 31, 12h), Utc(2018y / January / 1),
                        Utc(2018y / January / 6)}) {
    OffsetPeriod p = tz->PeriodAt(t);
    EXPECT_TRUE(p.is_dst);
    EXPECT_EQ(p.begin, begin);
    EXPECT_EQ(p.end, end);
  }
  EXPECT_FALSE(tz->PeriodAt(end).is_dst);
  LocalTimeMapping m = tz->LocalToUtc(Local(2018y / January / 1, 11h));
  EXPECT_EQ(m.kind, LocalTimeMapping::Kind::kUnique);
  EXPECT_EQ(m.earliest, Utc(2018y / January / 1));
}

TEST(TimeZone, BadPosixRulesAreErrors) {
  for (const char* rule :
       {"", "CET", "CET-1CEST,M13.5.0,M10.5.0", "CET-1CEST,M3.5.0", "CET-1CEST,M3.5.0,M10.5.0/x"}) {
    Result<TimeZone> tz = TimeZone::FromPosixRule(rule);
    ASSERT_FALSE(tz.ok()) << rule;
    EXPECT_NE(tz.status().message().find("bad POSIX TZ rule"), std::string::npos) << tz.status().message();
  }
}

}  // namespace
}  // namespace sluice::service
