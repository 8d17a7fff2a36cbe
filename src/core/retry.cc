#include "core/retry.h"

#include <thread>

namespace sluice {

bool SleepUnlessCancelled(std::chrono::milliseconds d, const CancellationSource* cancel) {
  auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
    if (cancel && cancel->cancelled()) return false;
    auto left = until - std::chrono::steady_clock::now();
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, std::chrono::milliseconds(50)));
  }
  return !(cancel && cancel->cancelled());
}

}  // namespace sluice
