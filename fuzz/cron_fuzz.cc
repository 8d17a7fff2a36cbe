// Fuzzes cron expressions (schedule.h) as users write them in [schedule],
// and the search for the next run in a time zone. An input is the
// expression, optionally followed by a line with a POSIX TZ rule
// ("CET-1CEST,M3.5.0,M10.5.0/3") for a zone with daylight-saving changes;
// UTC is always checked too. Properties:
//  - an expression either parses or fails with InvalidArgument naming it;
//  - the next run after t is later than t, and every instant between t and
//    that run has the same next run (nothing is skipped or invented).
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.h"
#include "service/schedule.h"
#include "service/time_zone.h"

namespace sluice::service {
namespace {

using std::chrono::seconds;
using TimePoint = CronSchedule::TimePoint;

// Midnight UTC at the start of 1970, near the EU's spring-forward and
// fall-back instants of 2024, and a leap day in 2096.
constexpr std::array<int64_t, 4> kStarts = {0, 1711846800 - 5400, 1729990800 - 1800, 3981312000 - 30};

void CheckZone(const CronSchedule& cron, const TimeZone& tz) {
  for (int64_t start : kStarts) {
    const TimePoint t{seconds{start}};
    Result<TimePoint> next = cron.NextAfter(t, tz);
    if (!next.ok()) {
      SLUICE_FUZZ_CHECK(next.status().code() == StatusCode::kInvalidArgument);
      continue;
    }
    SLUICE_FUZZ_CHECK(*next > t);
    for (TimePoint between : {*next - seconds{1}, t + (*next - t) / 2}) {
      if (between < t) continue;
      Result<TimePoint> again = cron.NextAfter(between, tz);
      SLUICE_FUZZ_CHECK(again.ok() && *again == *next);
    }
  }
}

}  // namespace
}  // namespace sluice::service

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice;
  using namespace sluice::service;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  const std::string_view expression = input.substr(0, newline);

  Result<CronSchedule> cron = CronSchedule::Parse(expression);
  if (!cron.ok()) {
    SLUICE_FUZZ_CHECK(cron.status().code() == StatusCode::kInvalidArgument);
    SLUICE_FUZZ_CHECK(cron.status().message().starts_with("cron \"" + std::string(expression) + "\""));
    return 0;
  }
  SLUICE_FUZZ_CHECK(cron->expression() == expression);
  CheckZone(*cron, TimeZone::Utc());
  if (newline != std::string_view::npos) {
    Result<TimeZone> tz = TimeZone::FromPosixRule(input.substr(newline + 1));
    if (tz.ok()) CheckZone(*cron, *tz);
  }
  return 0;
}
