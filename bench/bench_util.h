// Helpers shared by the benchmarks in bench/: flag lists, timing, and the matmul peak
// every MFU figure is a fraction of.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <vector>

namespace r1kit::bench {

using Clock = std::chrono::steady_clock;

// "a,b,c" -> {"a", "b", "c"}.
inline std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string x;
  while (std::getline(ss, x, ',')) out.push_back(x);
  return out;
}

inline bool has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The best of five 2048^3 matmuls of this dtype, in GFLOP/s, in this process and at its
// thread settings (after one warm-up).
inline double matmul_peak_gflops(torch::Dtype dtype = torch::kFloat) {
  const int64_t n = 2048;
  auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  torch::matmul(a, b);
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    auto t = Clock::now();
    auto c = torch::matmul(a, b);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t) / 1e9);
  }
  return best;
}

}  // namespace r1kit::bench
