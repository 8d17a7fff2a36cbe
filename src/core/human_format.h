// Numbers for people: "5,000,000", "327.8 MB". Pure functions.
#pragma once

#include <cstdint>
#include <string>

namespace sluice {

/// 5000000 -> "5,000,000".
std::string Thousands(int64_t n);
/// 327831309 -> "327.8 MB" (decimal units, as disks and networks count).
std::string HumanBytes(double bytes);

}  // namespace sluice
