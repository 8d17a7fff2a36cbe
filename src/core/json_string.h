// JSON strings: text quoted and escaped for JSON, as every JSON writer of
// sluice (HTTP bodies, change events, dead-letter lines) writes it.
//
// Pure functions; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

/// Appends `text` as a JSON string: quotes, backslashes and control
/// characters escaped, valid UTF-8 kept as it is, each maximal invalid
/// UTF-8 sequence replaced by U+FFFD, so the result always parses.
void AppendJsonString(std::string_view text, std::string* out);

}  // namespace sluice
