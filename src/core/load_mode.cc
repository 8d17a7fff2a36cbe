#include "core/load_mode.h"

namespace sluice {

Result<LoadMode> ParseLoadMode(const std::string& text) {
  if (text.empty() || text == "append") return LoadMode::kAppend;
  if (text == "replace") return LoadMode::kReplace;
  if (text == "upsert") return LoadMode::kUpsert;
  return Status::InvalidArgument("[destination] mode: unknown mode '" + text +
                                 "' (expected append, replace or upsert)");
}

}  // namespace sluice
