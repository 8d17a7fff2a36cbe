// Fuzzes the pipeline file loader (service/config.h, config/): TOML as
// users write it, with ${VAR} interpolation against a made-up environment,
// every ConfigTable getter, the sections the service reads, and the
// duration and size parsers. The registry holds stand-ins for a source and a
// destination that read their tables with every getter (the real ones need
// DuckDB and libpq, which this build leaves out). Properties:
//  - a file either fails with InvalidArgument or loads with the values the
//    loader promises (retry attempts >= 1, a schedule that can run);
//  - text whose every '$' is doubled interpolates back to itself;
//  - a duration that parses is positive and an `every` schedule can use
//    it; a size is not negative.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "fuzz_check.h"
#include "core/job.h"
#include "service/config.h"
#include "service/schedule.h"
#include "sluice/registry.h"

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

/// Reads every key of `t` with the getter its name asks for.
void ReadAll(const ConfigTable& t) {
  for (const auto& key : t.Keys()) {
    if (key.starts_with("n")) (void)t.GetInt(key, 0);
    else if (key.starts_with("b")) (void)t.GetBool(key, false);
    else if (key.starts_with("l")) (void)t.GetStringList(key);
    else if (key.starts_with("s")) (void)t.GetBytes(key, 0);
    else if (key.starts_with("d")) (void)t.GetMillis(key, 0);
    else if (key.starts_with("m")) (void)t.GetStringMap(key);
    else if (key.starts_with("t")) (void)t.Section(key).Keys();
    else (void)t.GetString(key);
  }
}

class NoDestination : public Destination {
 public:
  Status Begin(const Schema&) override { return Status::OK(); }
  Status Write(const Batch&) override { return Status::OK(); }
  Status Commit() override { return Status::OK(); }
  void Abort() override {}
  std::string Describe() const override { return "none"; }
};

class NoJob : public Job {
 public:
  bool continuous() const override { return false; }
  JobRun Run(const CancellationSource*, ProgressMode) override { return {}; }
  Result<std::string> Validate() override { return std::string(); }
  Status Ready() override { return Status::OK(); }
  std::string StatusJson() const override { return "{}"; }
  std::string Describe() const override { return "none"; }
};

const Registry& FuzzRegistry() {
  static const Registry registry = [] {
    Registry r;
    (void)r.AddDestination("null", [](const ConfigTable& t) -> Result<std::unique_ptr<Destination>> {
      ReadAll(t);
      return std::make_unique<NoDestination>();
    });
    (void)r.AddInternal(
        ComponentKind::kSource, "files",
        std::make_shared<const JobFactory>([](const JobContext& c) -> Result<std::unique_ptr<Job>> {
          ReadAll(*c.source);
          ReadAll(c.section("s3"));
          SLUICE_RETURN_IF_ERROR(c.registry->MakeDestination(c.section("destination")).status());
          return std::make_unique<NoJob>();
        }),
        {"stand-in", {}});
    return r;
  }();
  return registry;
}

void CheckConfig(const std::string& text) {
  auto loaded = LoadPipelineText(text, "fuzz.toml", FuzzRegistry(), "", nullptr, FuzzEnv);
  if (!loaded.ok()) {
    SLUICE_FUZZ_CHECK(loaded.status().code() == StatusCode::kInvalidArgument);
    return;
  }
  const PipelineConfig& cfg = (*loaded)->config;
  SLUICE_FUZZ_CHECK(cfg.source_type == "files");
  SLUICE_FUZZ_CHECK((*loaded)->job != nullptr);
  SLUICE_FUZZ_CHECK(cfg.retry.max_attempts >= 1);
  if (cfg.schedule) SLUICE_FUZZ_CHECK(cfg.schedule->every.empty() || cfg.schedule->every_seconds > 0);
}

void CheckInterpolate(const std::string& text) {
  Result<std::string> expanded = config::Interpolate(text, FuzzEnv, "[fuzz] key");
  if (text.find('$') == std::string::npos) SLUICE_FUZZ_CHECK(expanded.ok() && *expanded == text);
  std::string escaped;
  for (char c : text) {
    escaped += c;
    if (c == '$') escaped += '$';
  }
  Result<std::string> literal = config::Interpolate(escaped, FuzzEnv, "[fuzz] key");
  SLUICE_FUZZ_CHECK(literal.ok() && *literal == text);
}

void CheckValues(const std::string& text) {
  Result<int64_t> seconds = config::ParseDurationSeconds(text);
  SLUICE_FUZZ_CHECK(seconds.ok() ? *seconds > 0 : seconds.status().code() == StatusCode::kInvalidArgument);
  if (seconds.ok()) {
    // As `every` uses it: the next run after now.
    const auto now = std::chrono::system_clock::time_point{std::chrono::seconds{1767225600}};
    Result<std::chrono::system_clock::time_point> next =
        IntervalSchedule(std::chrono::seconds{*seconds}).Next(now);
    SLUICE_FUZZ_CHECK(next.ok() && *next > now);
  }
  Result<int64_t> bytes = config::ParseBytes(text);
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
