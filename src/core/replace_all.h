// ReplaceAll: every occurrence of a string in a text replaced, scanning
// left to right past each replacement (so `to` may contain `from`).
// Used to make messages speak the user's terms: an object's key instead of
// a spool path, "stdin" instead of a FIFO, "***" instead of a secret.
// A pure function; safe from any thread.
#pragma once

#include <string>
#include <string_view>

namespace sluice {

inline std::string ReplaceAll(std::string text, std::string_view from, std::string_view to) {
  if (from.empty()) return text;
  for (size_t pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size())) {
    text.replace(pos, from.size(), to);
  }
  return text;
}

}  // namespace sluice
