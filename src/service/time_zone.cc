#include "service/time_zone.h"

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>
#include <vector>

#include <sys/stat.h>

namespace sluice::service {

namespace {

using std::chrono::days;
using std::chrono::local_seconds;
using std::chrono::seconds;
using std::chrono::sys_days;
using std::chrono::sys_seconds;

constexpr int64_t kSecondsPerDay = 86400;
constexpr int64_t kBegin = TimeZone::kBeginningOfTime.time_since_epoch().count();
constexpr int64_t kEnd = TimeZone::kEndOfTime.time_since_epoch().count();

struct LocalType {
  int64_t utc_offset = 0;
  bool is_dst = false;
  std::string abbreviation;
};

// One end of a POSIX TZ daylight-saving rule: a day of the year and a
// local time of day (which may be negative or beyond 24h in TZif v3+).
struct RuleDate {
  enum class Kind { kJulian1, kJulian0, kMonthWeekDay };
  Kind kind = Kind::kMonthWeekDay;
  int day = 0;                           // Jn: 1-365; n: 0-365
  int month = 0, week = 0, weekday = 0;  // Mm.w.d
  int64_t time = 2 * 3600;
};

struct PosixRule {
  LocalType standard;
  bool has_dst = false;
  LocalType dst;
  RuleDate start, end;
};

int64_t FloorDiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

int64_t DaysFromCivil(int year, unsigned month, unsigned day) {
  return sys_days{std::chrono::year{year} / std::chrono::month{month} / std::chrono::day{day}}
      .time_since_epoch()
      .count();
}

int YearOf(int64_t t) {
  return static_cast<int>(std::chrono::year_month_day{sys_days{days{FloorDiv(t, kSecondsPerDay)}}}.year());
}

// The local time (seconds since the local epoch) at which `rule` falls in `year`.
int64_t LocalRuleInstant(int year, const RuleDate& rule) {
  int64_t day = 0;
  switch (rule.kind) {
    case RuleDate::Kind::kJulian1: {
      bool leap = std::chrono::year{year}.is_leap();
      day = DaysFromCivil(year, 1, 1) + rule.day - 1 + (leap && rule.day >= 60 ? 1 : 0);
      break;
    }
    case RuleDate::Kind::kJulian0:
      day = DaysFromCivil(year, 1, 1) + rule.day;
      break;
    case RuleDate::Kind::kMonthWeekDay: {
      int64_t first = DaysFromCivil(year, rule.month, 1);
      unsigned first_weekday = std::chrono::weekday{sys_days{days{first}}}.c_encoding();
      day = first + (rule.weekday - static_cast<int>(first_weekday) + 7) % 7 + (rule.week - 1) * 7;
      int64_t next_month =
          rule.month == 12 ? DaysFromCivil(year + 1, 1, 1) : DaysFromCivil(year, rule.month + 1, 1);
      while (day >= next_month) day -= 7;  // week 5 means "last"
      break;
    }
  }
  return day * kSecondsPerDay + rule.time;
}

// --- POSIX TZ strings ------------------------------------------------------

class PosixParser {
 public:
  explicit PosixParser(std::string_view s) : s_(s) {}

  Result<PosixRule> Parse() {
    PosixRule rule;
    if (!Name(&rule.standard.abbreviation)) return Error("expected a zone abbreviation");
    std::optional<int64_t> offset = Offset(24);
    if (!offset) return Error("expected a UTC offset after \"" + rule.standard.abbreviation + "\"");
    rule.standard.utc_offset = -*offset;
    if (AtEnd()) return rule;

    rule.has_dst = true;
    rule.dst.is_dst = true;
    if (!Name(&rule.dst.abbreviation)) return Error("expected a daylight-saving abbreviation");
    rule.dst.utc_offset = rule.standard.utc_offset + 3600;
    if (!AtEnd() && s_[pos_] != ',') {
      offset = Offset(24);
      if (!offset) return Error("bad daylight-saving offset");
      rule.dst.utc_offset = -*offset;
    }
    if (AtEnd()) {
      // No rule given: POSIX leaves it to the implementation; tzcode uses
      // the US rules.
      rule.start = RuleDate{RuleDate::Kind::kMonthWeekDay, 0, 3, 2, 0, 2 * 3600};
      rule.end = RuleDate{RuleDate::Kind::kMonthWeekDay, 0, 11, 1, 0, 2 * 3600};
      return rule;
    }
    if (!Consume(',') || !Date(&rule.start)) return Error("bad daylight-saving start rule");
    if (!Consume(',') || !Date(&rule.end)) return Error("bad daylight-saving end rule");
    if (!AtEnd()) return Error("unexpected text after the rules");
    return rule;
  }

 private:
  Status Error(const std::string& what) const {
    return Status::DataError("bad POSIX TZ rule \"" + std::string(s_) + "\": " + what);
  }
  bool AtEnd() const { return pos_ >= s_.size(); }
  bool Consume(char c) {
    if (AtEnd() || s_[pos_] != c) return false;
    ++pos_;
    return true;
  }
  static bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
  static bool IsDigit(char c) { return c >= '0' && c <= '9'; }

  bool Name(std::string* out) {
    if (Consume('<')) {
      size_t close = s_.find('>', pos_);
      if (close == std::string_view::npos || close == pos_) return false;
      *out = std::string(s_.substr(pos_, close - pos_));
      pos_ = close + 1;
      return true;
    }
    size_t start = pos_;
    while (!AtEnd() && IsAlpha(s_[pos_])) ++pos_;
    if (pos_ == start) return false;
    *out = std::string(s_.substr(start, pos_ - start));
    return true;
  }

  std::optional<int64_t> Number(int max_digits) {
    size_t start = pos_;
    int64_t v = 0;
    while (!AtEnd() && IsDigit(s_[pos_]) && pos_ - start < static_cast<size_t>(max_digits)) {
      v = v * 10 + (s_[pos_] - '0');
      ++pos_;
    }
    if (pos_ == start) return std::nullopt;
    return v;
  }

  // [+-]hh[:mm[:ss]] in seconds, sign as written (POSIX offsets are west-positive).
  std::optional<int64_t> Offset(int max_hours) {
    int64_t sign = 1;
    if (Consume('-')) {
      sign = -1;
    } else {
      Consume('+');
    }
    std::optional<int64_t> h = Number(3);
    if (!h || *h > max_hours) return std::nullopt;
    int64_t total = *h * 3600;
    if (Consume(':')) {
      std::optional<int64_t> m = Number(2);
      if (!m || *m > 59) return std::nullopt;
      total += *m * 60;
      if (Consume(':')) {
        std::optional<int64_t> sec = Number(2);
        if (!sec || *sec > 59) return std::nullopt;
        total += *sec;
      }
    }
    return sign * total;
  }

  bool Date(RuleDate* out) {
    if (Consume('J')) {
      std::optional<int64_t> n = Number(3);
      if (!n || *n < 1 || *n > 365) return false;
      out->kind = RuleDate::Kind::kJulian1;
      out->day = static_cast<int>(*n);
    } else if (Consume('M')) {
      std::optional<int64_t> m = Number(2);
      if (!m || *m < 1 || *m > 12 || !Consume('.')) return false;
      std::optional<int64_t> w = Number(1);
      if (!w || *w < 1 || *w > 5 || !Consume('.')) return false;
      std::optional<int64_t> d = Number(1);
      if (!d || *d > 6) return false;
      out->kind = RuleDate::Kind::kMonthWeekDay;
      out->month = static_cast<int>(*m);
      out->week = static_cast<int>(*w);
      out->weekday = static_cast<int>(*d);
    } else {
      std::optional<int64_t> n = Number(3);
      if (!n || *n > 365) return false;
      out->kind = RuleDate::Kind::kJulian0;
      out->day = static_cast<int>(*n);
    }
    out->time = 2 * 3600;
    if (Consume('/')) {
      std::optional<int64_t> t = Offset(167);  // TZif v3 extends the range to +-167h
      if (!t) return false;
      out->time = *t;
    }
    return true;
  }

  std::string_view s_;
  size_t pos_ = 0;
};

// --- TZif ------------------------------------------------------------------

class ByteReader {
 public:
  explicit ByteReader(std::string_view data) : data_(data) {}
  bool Has(size_t n) const { return pos_ <= data_.size() && data_.size() - pos_ >= n; }
  size_t pos() const { return pos_; }
  void Skip(size_t n) { pos_ += n; }
  std::string_view Bytes(size_t n) {
    std::string_view v = data_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  uint8_t U8() { return static_cast<uint8_t>(data_[pos_++]); }
  int64_t BigEndian(int width) {
    uint64_t v = 0;
    for (int i = 0; i < width; ++i) v = (v << 8) | static_cast<uint8_t>(data_[pos_++]);
    if (width == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
    return static_cast<int64_t>(v);
  }
  std::string_view Rest() const { return data_.substr(std::min(pos_, data_.size())); }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

struct TzifHeader {
  char version = 0;
  uint32_t isutcnt = 0, isstdcnt = 0, leapcnt = 0, timecnt = 0, typecnt = 0, charcnt = 0;
};

bool ReadHeader(ByteReader* r, TzifHeader* h) {
  if (!r->Has(44)) return false;
  if (r->Bytes(4) != "TZif") return false;
  h->version = static_cast<char>(r->U8());
  r->Skip(15);
  uint32_t* counts[] = {&h->isutcnt, &h->isstdcnt, &h->leapcnt, &h->timecnt, &h->typecnt, &h->charcnt};
  for (uint32_t* c : counts) *c = static_cast<uint32_t>(r->BigEndian(4));
  return true;
}

size_t BlockSize(const TzifHeader& h, int time_width) {
  return size_t{h.timecnt} * time_width + h.timecnt + size_t{h.typecnt} * 6 + h.charcnt +
         size_t{h.leapcnt} * (time_width + 4) + h.isstdcnt + h.isutcnt;
}

bool ValidZoneName(std::string_view name) {
  if (name.empty() || name.front() == '/' || name.back() == '/') return false;
  if (name.find("..") != std::string_view::npos || name.find("//") != std::string_view::npos) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' ||
              c == '_' || c == '-' || c == '+' || c == '.';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

struct TimeZone::Data {
  std::string name;
  std::vector<int64_t> transitions;
  std::vector<uint8_t> type_of;  // local type index after each transition
  std::vector<LocalType> types;  // at least one
  std::optional<PosixRule> footer;

  OffsetPeriod Make(int64_t begin, int64_t end, const LocalType& type) const {
    return OffsetPeriod{sys_seconds{seconds{begin}}, sys_seconds{seconds{end}}, seconds{type.utc_offset},
                        type.is_dst, type.abbreviation};
  }

  // The period containing t under the footer rule, starting no earlier than `lower`.
  OffsetPeriod FooterPeriod(int64_t t, int64_t lower) const {
    const PosixRule& rule = *footer;
    if (!rule.has_dst) return Make(lower, kEnd, rule.standard);
    // The rule's changes in the years around t, in time order: each year
    // switches to DST at its start and back at its end, in whichever order
    // they fall (POSIX; tzcode does the same). Taking them in time order,
    // rather than pairing each year's start with an end, gives the same
    // periods whichever year t is in, also for rules whose start and end
    // swap order between years or reach into a neighbouring year.
    struct Change {
      int64_t at;
      bool dst;
    };
    const int year = YearOf(t);
    std::vector<Change> changes;
    for (int y = year - 3; y <= year + 3; ++y) {
      changes.push_back({LocalRuleInstant(y, rule.start) - rule.standard.utc_offset, true});
      changes.push_back({LocalRuleInstant(y, rule.end) - rule.dst.utc_offset, false});
    }
    // At one instant the last change listed wins: a year whose end meets
    // the next year's start (DST all year) stays in DST.
    std::stable_sort(changes.begin(), changes.end(),
                     [](const Change& a, const Change& b) { return a.at < b.at; });
    // The period is bounded by the nearest instants where the state really
    // switches, looked for only where no other year's change can be missing
    // (rule times reach at most 8 days into a neighbouring year); none there
    // means it does not switch at all.
    const int64_t trusted_begin = DaysFromCivil(year - 2, 1, 1) * kSecondsPerDay;
    const int64_t trusted_end = DaysFromCivil(year + 3, 1, 1) * kSecondsPerDay;
    int64_t begin = kBegin, finish = kEnd;
    bool in_dst = false;
    std::optional<bool> state;  // unknown before the first change
    for (size_t i = 0; i < changes.size();) {
      const int64_t at = changes[i].at;
      while (i + 1 < changes.size() && changes[i + 1].at == at) ++i;
      const bool dst = changes[i++].dst;
      const bool switched = state.has_value() && *state != dst && at >= trusted_begin && at < trusted_end;
      state = dst;
      if (at > t) {
        if (switched) {
          finish = at;
          break;
        }
        continue;
      }
      if (switched) begin = at;
      in_dst = dst;
    }
    return Make(std::max(begin, lower), finish, in_dst ? rule.dst : rule.standard);
  }

  OffsetPeriod PeriodAt(int64_t t) const {
    if (transitions.empty()) {
      if (footer) return FooterPeriod(t, kBegin);
      return Make(kBegin, kEnd, types[0]);
    }
    if (t < transitions.front()) return Make(kBegin, transitions.front(), types[0]);
    size_t i = static_cast<size_t>(std::upper_bound(transitions.begin(), transitions.end(), t) -
                                   transitions.begin()) -
               1;
    if (i + 1 < transitions.size()) return Make(transitions[i], transitions[i + 1], types[type_of[i]]);
    if (footer) return FooterPeriod(t, transitions.back());
    return Make(transitions.back(), kEnd, types[type_of.back()]);
  }
};

TimeZone::TimeZone() {
  static const std::shared_ptr<const Data> kUtc = [] {
    auto d = std::make_shared<Data>();
    d->name = "UTC";
    d->types.push_back(LocalType{0, false, "UTC"});
    return d;
  }();
  data_ = kUtc;
}

const std::string& TimeZone::name() const { return data_->name; }

OffsetPeriod TimeZone::PeriodAt(sys_seconds t) const {
  return data_->PeriodAt(std::clamp(t.time_since_epoch().count(), kBegin, kEnd - 1));
}

seconds TimeZone::UtcOffsetAt(sys_seconds t) const { return PeriodAt(t).utc_offset; }

local_seconds TimeZone::ToLocal(sys_seconds t) const {
  return local_seconds{t.time_since_epoch() + UtcOffsetAt(t)};
}

LocalTimeMapping TimeZone::LocalToUtc(local_seconds local) const {
  // Every offset in effect within two days either side is a candidate
  // (no UTC offset exceeds 26 hours); a candidate counts if the zone
  // really has that offset at the instant it implies.
  const int64_t l = local.time_since_epoch().count();
  const int64_t window_end = l + 2 * kSecondsPerDay;
  std::vector<int64_t> found;
  std::optional<int64_t> gap_end;
  OffsetPeriod p = PeriodAt(sys_seconds{seconds{l - 2 * kSecondsPerDay}});
  while (true) {
    const int64_t begin = p.begin.time_since_epoch().count();
    const int64_t end = p.end.time_since_epoch().count();
    const int64_t offset = p.utc_offset.count();
    int64_t candidate = l - offset;
    if (candidate >= begin && candidate < end) found.push_back(candidate);
    if (end > window_end || end >= kEnd) break;
    OffsetPeriod next = PeriodAt(p.end);
    if (next.end <= p.end) break;  // defensive: never loop on an empty period
    if (next.utc_offset > p.utc_offset && l >= end + offset && l < end + next.utc_offset.count())
      gap_end = end;
    p = std::move(next);
  }
  LocalTimeMapping m;
  if (found.empty()) {
    m.kind = LocalTimeMapping::Kind::kNonexistent;
    int64_t at = gap_end ? *gap_end : l - UtcOffsetAt(sys_seconds{seconds{l}}).count();
    m.earliest = m.latest = sys_seconds{seconds{at}};
    return m;
  }
  std::sort(found.begin(), found.end());
  found.erase(std::unique(found.begin(), found.end()), found.end());
  m.kind = found.size() == 1 ? LocalTimeMapping::Kind::kUnique : LocalTimeMapping::Kind::kAmbiguous;
  m.earliest = sys_seconds{seconds{found.front()}};
  m.latest = sys_seconds{seconds{found.back()}};
  return m;
}

Result<TimeZone> TimeZone::FromPosixRule(std::string_view rule) {
  PosixParser parser(rule);
  SLUICE_ASSIGN_OR_RETURN(PosixRule parsed, parser.Parse());
  auto d = std::make_shared<Data>();
  d->name = std::string(rule);
  d->types.push_back(parsed.standard);
  d->footer = std::move(parsed);
  return TimeZone(std::move(d));
}

Result<TimeZone> TimeZone::FromTzif(std::string name, std::string_view data) {
  auto bad = [&](const std::string& why) {
    return Status::DataError("time zone \"" + name + "\": not a valid TZif file: " + why);
  };
  ByteReader r(data);
  TzifHeader h;
  if (!ReadHeader(&r, &h)) return bad("missing TZif header");
  int width = 4;
  if (h.version != 0) {
    // Version 2+: skip the 32-bit block and read the 64-bit one.
    size_t v1 = BlockSize(h, 4);
    if (!r.Has(v1)) return bad("truncated version 1 data");
    r.Skip(v1);
    if (!ReadHeader(&r, &h)) return bad("missing second header");
    width = 8;
  }
  if (h.typecnt == 0 || h.typecnt > 256 || h.charcnt == 0) return bad("no local time types");
  if (h.leapcnt != 0) return bad("leap-second (\"right/\") zone files are not supported");
  if ((h.isstdcnt != 0 && h.isstdcnt != h.typecnt) || (h.isutcnt != 0 && h.isutcnt != h.typecnt)) {
    return bad("inconsistent counts");
  }
  if (!r.Has(BlockSize(h, width))) return bad("truncated data");

  auto d = std::make_shared<Data>();
  d->name = std::move(name);
  d->transitions.reserve(h.timecnt);
  for (uint32_t i = 0; i < h.timecnt; ++i) {
    int64_t t = r.BigEndian(width);
    if (!d->transitions.empty() && t <= d->transitions.back()) return bad("transitions out of order");
    d->transitions.push_back(t);
  }
  for (uint32_t i = 0; i < h.timecnt; ++i) {
    uint8_t idx = r.U8();
    if (idx >= h.typecnt) return bad("transition refers to a missing type");
    d->type_of.push_back(idx);
  }
  std::vector<uint8_t> designation(h.typecnt);
  for (uint32_t i = 0; i < h.typecnt; ++i) {
    LocalType type;
    type.utc_offset = r.BigEndian(4);
    type.is_dst = r.U8() != 0;
    designation[i] = r.U8();
    if (designation[i] >= h.charcnt || type.utc_offset <= -25 * 3600 || type.utc_offset >= 26 * 3600) {
      return bad("bad local time type");
    }
    d->types.push_back(std::move(type));
  }
  std::string_view chars = r.Bytes(h.charcnt);
  for (uint32_t i = 0; i < h.typecnt; ++i) {
    std::string_view rest = chars.substr(designation[i]);
    d->types[i].abbreviation = std::string(rest.substr(0, rest.find('\0')));
  }
  r.Skip(size_t{h.isstdcnt} + h.isutcnt);

  if (width == 8) {
    // Footer: "\n<POSIX TZ string>\n"; empty means "no rule beyond the table".
    std::string_view rest = r.Rest();
    if (rest.empty() || rest.front() != '\n') return bad("missing footer");
    size_t close = rest.find('\n', 1);
    if (close == std::string_view::npos) return bad("unterminated footer");
    std::string_view tz = rest.substr(1, close - 1);
    if (!tz.empty()) {
      PosixParser parser(tz);
      Result<PosixRule> rule = parser.Parse();
      if (!rule.ok()) return rule.status().WithContext("time zone \"" + d->name + "\"");
      d->footer = std::move(rule).value();
    }
  }
  return TimeZone(std::move(d));
}

Result<TimeZone> TimeZone::LoadFromDirectory(std::string_view name, const std::string& directory) {
  if (name.empty() || name == "UTC") return TimeZone();
  if (!ValidZoneName(name)) {
    return Status::InvalidArgument("invalid time zone name \"" + std::string(name) +
                                   "\": expected an IANA name such as \"Europe/Berlin\"");
  }
  std::string path = directory + "/" + std::string(name);
  struct stat st;
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return Status::NotFound("unknown time zone \"" + std::string(name) + "\" (no zone file " + path + ")");
  }
  if (st.st_size > (1 << 20))
    return Status::DataError("time zone \"" + std::string(name) + "\": " + path + " is too large");
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  if (!in) return Status::IoError("time zone \"" + std::string(name) + "\": cannot read " + path);
  return FromTzif(std::string(name), buf.str());
}

Result<TimeZone> TimeZone::Load(std::string_view name) {
  const char* dir = std::getenv("TZDIR");
  return LoadFromDirectory(name, dir && *dir ? std::string(dir) : std::string("/usr/share/zoneinfo"));
}

}  // namespace sluice::service
