// Wall-clock seconds for timings in logs and metrics (steady clock: never goes back).
#pragma once

#include <chrono>

namespace r1kit {

using SteadyClock = std::chrono::steady_clock;

// Seconds from `t0` to now.
inline double seconds_since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}

}  // namespace r1kit
