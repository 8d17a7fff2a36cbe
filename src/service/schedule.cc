#include "service/schedule.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cctype>
#include <optional>
#include <utility>
#include <vector>

namespace sluice::service {

namespace {

using std::chrono::days;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;

constexpr int64_t kSecondsPerDay = 86400;
constexpr int kHorizonYears = 100;

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return parts;
    start = at + 1;
  }
}

std::vector<std::string_view> Fields(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    size_t start = i;
    while (i < s.size() && s[i] != ' ' && s[i] != '\t') ++i;
    if (i > start) out.push_back(s.substr(start, i - start));
  }
  return out;
}

// The lowest set bit of `bits` at or above `from`, or -1.
int NextBit(uint64_t bits, int from) {
  if (from >= 64) return -1;
  uint64_t rest = bits & (~uint64_t{0} << from);
  return rest == 0 ? -1 : std::countr_zero(rest);
}

struct FieldSpec {
  const char* name;
  int min;
  int max;
  const std::array<const char*, 12>* names;  // names[i] means min + i
  int name_count;
};

constexpr std::array<const char*, 12> kMonthNames = {"jan", "feb", "mar", "apr", "may", "jun",
                                                     "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr std::array<const char*, 12> kDayNames = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

const FieldSpec kMinute{"minute", 0, 59, nullptr, 0};
const FieldSpec kHour{"hour", 0, 23, nullptr, 0};
const FieldSpec kDayOfMonth{"day-of-month", 1, 31, nullptr, 0};
const FieldSpec kMonth{"month", 1, 12, &kMonthNames, 12};
const FieldSpec kDayOfWeek{"day-of-week", 0, 7, &kDayNames, 7};

class FieldParser {
 public:
  FieldParser(std::string_view expression, const FieldSpec& spec) : expression_(expression), spec_(spec) {}

  // Bit n set when value n matches.
  Result<uint64_t> Parse(std::string_view text) {
    uint64_t bits = 0;
    for (std::string_view item : Split(text, ',')) {
      if (item.empty()) return Error("has an empty list item in \"" + std::string(text) + "\"");
      std::vector<std::string_view> step_parts = Split(item, '/');
      if (step_parts.size() > 2) return Error("\"" + std::string(item) + "\" has more than one step");
      std::string_view range = step_parts[0];
      int lo = spec_.min, hi = spec_.max, step = 1;
      bool single = false;
      if (range != "*") {
        std::vector<std::string_view> ends = Split(range, '-');
        if (ends.size() > 2) return Error("\"" + std::string(item) + "\" is not a value or a range");
        SLUICE_ASSIGN_OR_RETURN(lo, Value(ends[0]));
        if (ends.size() == 2) {
          SLUICE_ASSIGN_OR_RETURN(hi, Value(ends[1]));
          // SUN (0) ends a range of weekdays: FRI-SUN.
          if (&spec_ == &kDayOfWeek && hi == 0 && lo > 0) hi = 7;
          if (lo > hi) return Error("range " + std::string(range) + " is reversed");
        } else {
          hi = lo;
          single = true;
        }
      }
      if (step_parts.size() == 2) {
        std::string_view s = step_parts[1];
        std::optional<int> n = Number(s);
        if (!n) return Error("step \"" + std::string(s) + "\" is not a number");
        if (*n < 1) return Error("step " + std::string(s) + " must be at least 1");
        if (*n > spec_.max - spec_.min + 1) {
          return Error("step " + std::string(s) + " is larger than the range " + std::to_string(spec_.min) +
                       "-" + std::to_string(spec_.max));
        }
        step = *n;
        if (single) hi = spec_.max;  // "a/n" means "a-max/n"
      }
      for (int v = lo; v <= hi; v += step) bits |= uint64_t{1} << v;
    }
    if (&spec_ == &kDayOfWeek && (bits & (uint64_t{1} << 7))) bits = (bits | 1) & 0x7f;  // 7 is Sunday
    return bits;
  }

 private:
  Status Error(const std::string& what) const {
    return Status::InvalidArgument("cron \"" + std::string(expression_) + "\": " + spec_.name + " " + what);
  }

  static std::optional<int> Number(std::string_view s) {
    if (s.empty() || s.size() > 4) return std::nullopt;
    int v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return std::nullopt;
      v = v * 10 + (c - '0');
    }
    return v;
  }

  Result<int> Value(std::string_view s) {
    std::optional<int> v = Number(s);
    if (!v && spec_.names != nullptr) {
      std::string lower = Lower(s);
      for (int i = 0; i < spec_.name_count; ++i) {
        if (lower == (*spec_.names)[i]) v = spec_.min + i;
      }
      if (!v) return Error("\"" + std::string(s) + "\" is not a number or a name");
    }
    if (!v) return Error("\"" + std::string(s) + "\" is not a number");
    if (*v < spec_.min || *v > spec_.max) {
      return Error(std::string(s) + " out of range " + std::to_string(spec_.min) + "-" +
                   std::to_string(spec_.max));
    }
    return *v;
  }

  std::string_view expression_;
  const FieldSpec& spec_;
};

std::optional<std::string_view> ExpandMacro(const std::string& lower) {
  if (lower == "@yearly" || lower == "@annually") return "0 0 1 1 *";
  if (lower == "@monthly") return "0 0 1 * *";
  if (lower == "@weekly") return "0 0 * * 0";
  if (lower == "@daily" || lower == "@midnight") return "0 0 * * *";
  if (lower == "@hourly") return "0 * * * *";
  return std::nullopt;
}

std::string FormatDuration(int64_t s) {
  if (s == 0) return "0s";
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h";
  if (s % 3600 >= 60) out += std::to_string(s % 3600 / 60) + "m";
  if (s % 60 != 0) out += std::to_string(s % 60) + "s";
  return out;
}

class CronZoneSchedule final : public Schedule {
 public:
  CronZoneSchedule(CronSchedule cron, TimeZone tz) : cron_(std::move(cron)), tz_(std::move(tz)) {}
  Result<TimePoint> Next(TimePoint after) const override { return cron_.NextAfter(after, tz_); }
  std::string Describe() const override { return "cron \"" + cron_.expression() + "\" in " + tz_.name(); }

 private:
  CronSchedule cron_;
  TimeZone tz_;
};

}  // namespace

Result<Schedule::TimePoint> IntervalSchedule::Next(TimePoint after) const {
  if (interval_ <= seconds::zero()) {
    return Status::InvalidArgument("schedule interval must be positive, got " +
                                   std::to_string(interval_.count()) + "s");
  }
  return after + interval_;
}

std::string IntervalSchedule::Describe() const { return "every " + FormatDuration(interval_.count()); }

Result<CronSchedule> CronSchedule::Parse(std::string_view expression) {
  CronSchedule cron;
  cron.expression_ = std::string(expression);
  std::vector<std::string_view> fields = Fields(expression);
  if (fields.size() == 1 && fields[0].front() == '@') {
    std::optional<std::string_view> expanded = ExpandMacro(Lower(fields[0]));
    if (!expanded) {
      return Status::InvalidArgument("cron \"" + cron.expression_ + "\": unknown macro " +
                                     std::string(fields[0]) +
                                     " (expected @yearly, @annually, @monthly, @weekly, @daily, @midnight "
                                     "or @hourly)");
    }
    fields = Fields(*expanded);
  }
  if (fields.size() != 5) {
    return Status::InvalidArgument(
        "cron \"" + cron.expression_ +
        "\": expected 5 fields (minute hour day-of-month month day-of-week), found " +
        std::to_string(fields.size()));
  }
  SLUICE_ASSIGN_OR_RETURN(cron.minutes_, FieldParser(expression, kMinute).Parse(fields[0]));
  SLUICE_ASSIGN_OR_RETURN(uint64_t hours, FieldParser(expression, kHour).Parse(fields[1]));
  SLUICE_ASSIGN_OR_RETURN(uint64_t doms, FieldParser(expression, kDayOfMonth).Parse(fields[2]));
  SLUICE_ASSIGN_OR_RETURN(uint64_t months, FieldParser(expression, kMonth).Parse(fields[3]));
  SLUICE_ASSIGN_OR_RETURN(uint64_t dows, FieldParser(expression, kDayOfWeek).Parse(fields[4]));
  cron.hours_ = static_cast<uint32_t>(hours);
  cron.days_of_month_ = static_cast<uint32_t>(doms);
  cron.months_ = static_cast<uint32_t>(months);
  cron.days_of_week_ = static_cast<uint32_t>(dows);
  cron.day_of_month_star_ = fields[2].front() == '*';
  cron.day_of_week_star_ = fields[4].front() == '*';

  // When both day fields must match (one starts with '*'), the chosen days
  // of the month must occur in one of the chosen months; every such date
  // falls on every weekday sooner or later. With the OR rule any day of a
  // chosen weekday matches.
  if (cron.day_of_month_star_ || cron.day_of_week_star_) {
    constexpr int kMaxDays[13] = {0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool possible = false;
    for (int m = 1; m <= 12 && !possible; ++m) {
      if (!(cron.months_ >> m & 1)) continue;
      for (int d = 1; d <= kMaxDays[m] && !possible; ++d) possible = cron.days_of_month_ >> d & 1;
    }
    if (!possible) {
      return Status::InvalidArgument("cron \"" + cron.expression_ + "\": day-of-month " +
                                     std::string(fields[2]) + " never occurs in month " +
                                     std::string(fields[3]));
    }
  }
  return cron;
}

bool CronSchedule::DayMatches(std::chrono::year_month_day date) const {
  bool dom = days_of_month_ >> static_cast<unsigned>(date.day()) & 1;
  bool dow = days_of_week_ >> std::chrono::weekday{sys_days{date}}.c_encoding() & 1;
  if (day_of_month_star_ || day_of_week_star_) return dom && dow;
  return dom || dow;
}

bool CronSchedule::NextLocalMatch(int64_t from, int64_t limit, int64_t* match) const {
  int64_t l = FloorDiv(from + 59, 60) * 60;
  while (l < limit) {
    const int64_t day = FloorDiv(l, kSecondsPerDay);
    const int64_t day_start = day * kSecondsPerDay;
    const std::chrono::year_month_day date{sys_days{days{day}}};
    const unsigned month = static_cast<unsigned>(date.month());
    if (!(months_ >> month & 1)) {
      // Skip to the first day of the next matching month.
      int next = NextBit(months_, static_cast<int>(month) + 1);
      std::chrono::year year = date.year();
      if (next < 0) {
        year += std::chrono::years{1};
        next = NextBit(months_, 1);
      }
      l = sys_days{year / std::chrono::month{static_cast<unsigned>(next)} / 1}.time_since_epoch().count() *
          kSecondsPerDay;
      continue;
    }
    if (!DayMatches(date)) {
      l = day_start + kSecondsPerDay;
      continue;
    }
    const int hour = static_cast<int>((l - day_start) / 3600);
    const int minute = static_cast<int>((l - day_start) % 3600 / 60);
    const int next_hour = NextBit(hours_, hour);
    if (next_hour < 0) {
      l = day_start + kSecondsPerDay;
      continue;
    }
    if (next_hour != hour) {
      l = day_start + next_hour * 3600;
      continue;
    }
    const int next_minute = NextBit(minutes_, minute);
    if (next_minute < 0) {
      l = day_start + (hour + 1) * 3600;
      continue;
    }
    l = day_start + hour * 3600 + next_minute * 60;
    if (l >= limit) return false;
    *match = l;
    return true;
  }
  return false;
}

Result<CronSchedule::TimePoint> CronSchedule::NextAfter(TimePoint t, const TimeZone& tz) const {
  // Walk the zone's periods of constant UTC offset from the one holding t.
  // Within a period local time runs straight, so the first matching local
  // minute is found field by field; the local range searched in a period
  // starts where the previous period's range ended (skipping a repeated
  // hour, and including a skipped one, whose minutes map to the period's
  // first instant), except for every-hour schedules, which follow elapsed
  // time (see the header).
  const int64_t after = std::chrono::floor<seconds>(t).time_since_epoch().count();
  const int64_t horizon = after + int64_t{kHorizonYears} * 366 * kSecondsPerDay;
  const bool every_hour = hours_ == 0xFFFFFF;
  OffsetPeriod period = tz.PeriodAt(sys_seconds{seconds{after}});
  while (true) {
    const int64_t begin = period.begin.time_since_epoch().count();
    const int64_t end = period.end.time_since_epoch().count();
    const int64_t offset = period.utc_offset.count();
    const int64_t previous_offset = period.begin <= TimeZone::kBeginningOfTime
                                        ? offset
                                        : tz.UtcOffsetAt(period.begin - seconds{1}).count();
    int64_t from = begin + (every_hour ? offset : previous_offset);
    if (after >= begin) from = std::max(from, FloorDiv(after + offset, 60) * 60 + 60);
    const int64_t limit = std::min(end, horizon) + offset;
    int64_t local = 0;
    if (NextLocalMatch(from, limit, &local)) {
      const int64_t run = std::max(begin, local - offset);
      if (run > std::chrono::floor<seconds>(TimePoint::max()).time_since_epoch().count()) {
        return Status::InvalidArgument("cron \"" + expression_ + "\": the next run is after the year 2262");
      }
      return TimePoint{std::chrono::duration_cast<TimePoint::duration>(seconds{run})};
    }
    if (end >= horizon) break;
    period = tz.PeriodAt(period.end);
  }
  return Status::InvalidArgument("cron \"" + expression_ + "\" has no run within " +
                                 std::to_string(kHorizonYears) + " years");
}

Result<std::unique_ptr<Schedule>> MakeSchedule(int64_t every_seconds, std::string_view cron,
                                               std::string_view time_zone) {
  if (every_seconds < 0) {
    return Status::InvalidArgument("schedule: every must be positive, got " + std::to_string(every_seconds) +
                                   "s");
  }
  if (every_seconds > 0 && !cron.empty()) {
    return Status::InvalidArgument("schedule: set either every or cron, not both");
  }
  if (every_seconds > 0) {
    if (!time_zone.empty()) {
      return Status::InvalidArgument("schedule: timezone applies to cron schedules only, not to every");
    }
    return std::unique_ptr<Schedule>(std::make_unique<IntervalSchedule>(seconds{every_seconds}));
  }
  if (cron.empty()) return Status::InvalidArgument("schedule: set every or cron");
  SLUICE_ASSIGN_OR_RETURN(CronSchedule parsed, CronSchedule::Parse(cron));
  Result<TimeZone> tz = TimeZone::Load(time_zone);
  if (!tz.ok()) return tz.status().WithContext("schedule");
  return std::unique_ptr<Schedule>(
      std::make_unique<CronZoneSchedule>(std::move(parsed), std::move(tz).value()));
}

}  // namespace sluice::service
