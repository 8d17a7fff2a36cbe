// The value syntax of pipeline files, shared by every component's table:
// ${VAR} interpolation, durations ("30s") and sizes ("8MB"). Pure functions,
// safe from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "sluice/status.h"

namespace sluice::config {

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
/// The process environment.
std::optional<std::string> GetEnv(const std::string& name);

/// Expands ${VAR} and ${VAR:-default}; "$$" is a literal "$". `where`
/// names the key for the error when a variable is missing.
Result<std::string> Interpolate(const std::string& text, const EnvLookup& env, const std::string& where);

/// Parses "250ms", "90s", "5m", "24h", "1d" (a whole number and a unit; a
/// bare number is seconds) into milliseconds. Zero and negative are errors.
Result<int64_t> ParseDurationMillis(const std::string& text);
/// ParseDurationMillis, in whole seconds (rounded up: "1500ms" is 2).
Result<int64_t> ParseDurationSeconds(const std::string& text);
/// Parses "8MB", "512KiB", "1GB", "1024" into bytes.
Result<int64_t> ParseBytes(const std::string& text);

}  // namespace sluice::config
