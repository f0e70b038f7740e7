// Helpers shared by the benchmarks in bench/: flag lists, timing, and the matmul peak
// every MFU figure is a fraction of.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "core/memory.h"
#include "policy/model_args.h"

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

// Start-up shared by the benches: keeps freed heap memory as the r1kit binary does
// (core/memory.h; R1KIT_RELEASE_MEMORY=1 turns it off for A/B runs) and says so.
inline void bench_init() {
  const bool kept = retain_freed_memory();
  std::printf("heap: %s\n",
              kept ? "freed memory kept (core/memory.h)" : "freed memory released (glibc default)");
}

// The median of v (the mean of the middle two for an even count); 0 for an empty v.
inline double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The best of five 2048^3 matmuls of this dtype, in GFLOP/s, in this process and at its
// thread settings (after one warm-up). The product goes into one preallocated output, so
// this is the BLAS kernel's rate: a fresh 16 MiB result per call would add the kernel's
// page faults, which on some virtual machines cost a large part of the rate and moved
// with the malloc settings (bench/RESULTS.md).
inline double matmul_peak_gflops(torch::Dtype dtype = torch::kFloat) {
  const int64_t n = 2048;
  auto a = torch::randn({n, n}).to(dtype), b = torch::randn({n, n}).to(dtype);
  auto c = torch::empty({n, n}, a.options());
  torch::mm_out(c, a, b);
  double best = 0;
  for (int i = 0; i < 5; ++i) {
    auto t = Clock::now();
    torch::mm_out(c, a, b);
    best = std::max(best, 2.0 * n * n * n / seconds_since(t) / 1e9);
  }
  return best;
}

// FLOPs of one training step of B x T tokens (forward + backward = 3x forward), counted
// as executed:
//   matmul weights: 2 * tokens * (active non-embedding weights + lm_head) per forward,
//     where "active" counts the top-k routed experts, the shared experts, the router,
//     attention projections and dense FFNs actually run for each token;
//   attention: 2 * B * H * T^2 * (d_qk + d_v) per layer per forward (the full masked
//     score and value products, as the eager reference computes them);
//   embeddings lookups, norms, RoPE and softmax are not counted.
inline double step_flops(const policy::ModelArgs& a, int64_t B, int64_t T) {
  const policy::ParamCount pc = count_params(a);
  // Active weights used in matmuls: active params minus the embedding table(s) and
  // norm weights, plus the lm_head (which is the embedding when tied).
  const int64_t emb = a.vocab_size * a.dim;
  int64_t norms = a.dim * (2 * a.n_layers + 1);
  if (a.attention == policy::AttentionKind::kMLA)
    norms += a.n_layers * (a.kv_lora_rank + (a.q_lora_rank > 0 ? a.q_lora_rank : 0));
  const double weights = static_cast<double>(pc.active - pc.embedding - norms + emb);
  const double tokens = static_cast<double>(B * T);
  const double dqk = a.attention == policy::AttentionKind::kMLA ? a.qk_head_dim() : a.head_dim;
  const double dv = a.attention == policy::AttentionKind::kMLA ? a.v_head_dim : a.head_dim;
  const double attn = 2.0 * B * a.n_heads * static_cast<double>(T) * T * (dqk + dv) * a.n_layers;
  return 3.0 * (2.0 * tokens * weights + attn);
}

}  // namespace r1kit::bench
