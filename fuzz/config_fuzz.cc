// Fuzzes the pipeline configuration loader (config.h): TOML as users write
// it, with ${VAR} interpolation against a made-up environment, and the
// duration and size parsers its values go through. Properties:
//  - a config either fails with InvalidArgument or passes the checks the
//    loader promises (a known source type, a slot PostgreSQL accepts, ...);
//  - text whose every '$' is doubled interpolates back to itself;
//  - a duration that parses is positive and an `every` schedule can use
//    it; a size is not negative.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_check.h"
#include "service/config.h"
#include "service/schedule.h"

namespace sluice::service {
namespace {

/// UNSET* are not set, EMPTY* are empty, NESTED* hold a reference that
/// must not be expanded again; every other name is set.
std::optional<std::string> FuzzEnv(const std::string& name) {
  if (name.starts_with("UNSET")) return std::nullopt;
  if (name.starts_with("EMPTY")) return std::string();
  if (name.starts_with("NESTED")) return "${" + name + "}";
  return "v_" + name;
}

void CheckConfig(const std::string& text) {
  Result<PipelineConfig> cfg = ParsePipelineConfig(text, "fuzz.toml", FuzzEnv);
  if (!cfg.ok()) {
    SLUICE_FUZZ_CHECK(cfg.status().code() == StatusCode::kInvalidArgument);
    return;
  }
  SLUICE_FUZZ_CHECK(cfg->source.type == "files" || cfg->source.type == "postgres_cdc");
  if (cfg->source.is_cdc()) {
    SLUICE_FUZZ_CHECK(!cfg->source.slot.empty() && cfg->source.slot.size() <= 63);
    SLUICE_FUZZ_CHECK(!cfg->schedule.has_value());
  } else {
    SLUICE_FUZZ_CHECK(cfg->source.concurrency >= 1 && cfg->source.concurrency <= 64);
    SLUICE_FUZZ_CHECK(!cfg->destination.type.empty());
  }
  SLUICE_FUZZ_CHECK(cfg->retry.max_attempts >= 1);
  if (cfg->schedule) SLUICE_FUZZ_CHECK(cfg->schedule->every.empty() || cfg->schedule->every_seconds > 0);
}

void CheckInterpolate(const std::string& text) {
  Result<std::string> expanded = Interpolate(text, FuzzEnv, "[fuzz] key");
  if (text.find('$') == std::string::npos) SLUICE_FUZZ_CHECK(expanded.ok() && *expanded == text);
  std::string escaped;
  for (char c : text) {
    escaped += c;
    if (c == '$') escaped += '$';
  }
  Result<std::string> literal = Interpolate(escaped, FuzzEnv, "[fuzz] key");
  SLUICE_FUZZ_CHECK(literal.ok() && *literal == text);
}

void CheckValues(const std::string& text) {
  Result<int64_t> seconds = ParseDurationSeconds(text);
  SLUICE_FUZZ_CHECK(seconds.ok() ? *seconds > 0 : seconds.status().code() == StatusCode::kInvalidArgument);
  if (seconds.ok()) {
    // As `every` uses it: the next run after now.
    const auto now = std::chrono::system_clock::time_point{std::chrono::seconds{1767225600}};
    Result<std::chrono::system_clock::time_point> next =
        IntervalSchedule(std::chrono::seconds{*seconds}).Next(now);
    SLUICE_FUZZ_CHECK(next.ok() && *next > now);
  }
  Result<int64_t> bytes = ParseBytes(text);
  SLUICE_FUZZ_CHECK(bytes.ok() ? *bytes >= 0 : bytes.status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace sluice::service

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string input(reinterpret_cast<const char*>(data), size);
  sluice::service::CheckConfig(input);
  sluice::service::CheckInterpolate(input);
  sluice::service::CheckValues(input);
  return 0;
}
