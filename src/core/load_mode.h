// How a batch destination treats what its target already holds, as
// `[destination] mode` spells it. One enum for every destination.
#pragma once

#include <string>

#include "sluice/status.h"

namespace sluice {

enum class LoadMode { kAppend, kReplace, kUpsert };

/// "append" (also ""), "replace", "upsert".
Result<LoadMode> ParseLoadMode(const std::string& text);

}  // namespace sluice
