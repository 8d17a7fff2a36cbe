// One line of the tutorial's log on stderr: "[cached_file] SaveConfirmedLsn 0/1A2B3C8".
//
// Thread-safety: callable from any thread; each line is one fwrite, so lines
// of different threads do not mix.
#pragma once

#include <cstdio>
#include <string>
#include <string_view>

namespace tutorial {

inline void Log(std::string_view component, std::string_view message) {
  std::string line;
  line.reserve(component.size() + message.size() + 4);
  line += '[';
  line += component;
  line += "] ";
  for (char c : message) line += (c == '\n' || c == '\r') ? ' ' : c;  // one line, whatever an error says
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace tutorial
