#include "config/config_values.h"

#include <algorithm>
#include <cctype>
#include <cstdlib>

namespace sluice::config {

std::optional<std::string> GetEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

Result<std::string> Interpolate(const std::string& text, const EnvLookup& env, const std::string& where) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$' || i + 1 >= text.size()) {
      out += c;
      continue;
    }
    if (text[i + 1] == '$') {
      out += '$';
      ++i;
      continue;
    }
    if (text[i + 1] != '{') {
      out += c;
      continue;
    }
    size_t close = text.find('}', i + 2);
    if (close == std::string::npos) {
      return Status::InvalidArgument(where + ": unterminated ${ in value");
    }
    std::string body = text.substr(i + 2, close - i - 2);
    std::optional<std::string> fallback;
    size_t dash = body.find(":-");
    if (dash != std::string::npos) {
      fallback = body.substr(dash + 2);
      body = body.substr(0, dash);
    }
    if (body.empty() || !std::all_of(body.begin(), body.end(), [](char ch) {
          return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
        })) {
      // Not echoed: this may be a password with "${" in it.
      return Status::InvalidArgument(where + ": bad variable name after ${ (write a literal $ as $$)");
    }
    auto value = env(body);
    if (!value || (value->empty() && fallback)) {
      if (!fallback) {
        return Status::InvalidArgument("environment variable " + body + " is not set (used in " + where +
                                       "); set it or write ${" + body + ":-default}");
      }
      value = fallback;
    }
    out += *value;
    i = close;
  }
  return out;
}

Result<int64_t> ParseDurationMillis(const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument("bad duration '" + text + "' (expected e.g. 250ms, 30s, 5m, 24h, 1d)");
  };
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  if (digits == 0) return bad();
  auto too_long = [&] { return Status::InvalidArgument("bad duration '" + text + "': longer than 100 years"); };
  if (digits > 15) return too_long();  // beyond 100 years in any unit, and beyond what stoll reads
  int64_t n = std::stoll(text.substr(0, digits));
  std::string unit = text.substr(digits);
  int64_t mult = 0;
  if (unit == "ms")
    mult = 1;
  else if (unit == "s" || unit.empty())
    mult = 1000;
  else if (unit == "m")
    mult = 60'000;
  else if (unit == "h")
    mult = 3'600'000;
  else if (unit == "d")
    mult = 86'400'000;
  if (mult == 0 || n <= 0) return bad();
  // Longer than any interval or timeout means anything; the limit also
  // keeps every use (the clock's nanoseconds) from overflowing.
  constexpr int64_t kMaxMillis = int64_t{100} * 366 * 86'400'000;
  if (n > kMaxMillis / mult) return too_long();
  return n * mult;
}

Result<int64_t> ParseDurationSeconds(const std::string& text) {
  SLUICE_ASSIGN_OR_RETURN(int64_t ms, ParseDurationMillis(text));
  return (ms + 999) / 1000;
}

Result<int64_t> ParseBytes(const std::string& text) {
  auto bad = [&] {
    return Status::InvalidArgument("bad size '" + text + "' (expected e.g. 8MB, 512KiB, 1GB)");
  };
  // A plain decimal number (no sign, exponent, inf or nan) and a unit.
  size_t end = 0;
  while (end < text.size() && (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.'))
    ++end;
  std::string number = text.substr(0, end);
  if (number.empty() || number.size() > 20 || std::count(number.begin(), number.end(), '.') > 1 ||
      number == ".") {
    return bad();
  }
  double n = std::stod(number);
  std::string unit = text.substr(end);
  unit.erase(std::remove(unit.begin(), unit.end(), ' '), unit.end());
  for (auto& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double mult = 0;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KB")
    mult = 1e3;
  else if (unit == "MB")
    mult = 1e6;
  else if (unit == "GB")
    mult = 1e9;
  else if (unit == "TB")
    mult = 1e12;
  else if (unit == "KIB")
    mult = 1024;
  else if (unit == "MIB")
    mult = 1024.0 * 1024;
  else if (unit == "GIB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "TIB")
    mult = 1024.0 * 1024 * 1024 * 1024;
  // NaN, infinity and sizes beyond int64_t are no sizes (and converting
  // them to an integer is undefined).
  const double bytes = n * mult;
  if (mult == 0 || !(bytes < 0x1p63)) return bad();
  return static_cast<int64_t>(bytes);
}

}  // namespace sluice::config
