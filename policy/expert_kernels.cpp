// Small-row expert kernels; see expert_kernels.h.
#include "policy/expert_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>

#define R1KIT_AVX2 __attribute__((target("avx2,fma")))

namespace r1kit::policy {
namespace {

R1KIT_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// For R rows of x ([R, K], row stride K): a[r] = x[r] . wa and b[r] = x[r] . wb. Each
// weight vector is loaded once for all R rows; 2R accumulators keep the FMA units busy.
template <int R>
R1KIT_AVX2 void dot2(const float* x, int64_t K, const float* wa, const float* wb, float* a,
                     float* b) {
  // The loops over r are unrolled by force so that the accumulators live in registers.
  __m256 acc_a[R], acc_b[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) acc_a[r] = acc_b[r] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= K; k += 8) {
    const __m256 va = _mm256_loadu_ps(wa + k), vb = _mm256_loadu_ps(wb + k);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 xv = _mm256_loadu_ps(x + r * K + k);
      acc_a[r] = _mm256_fmadd_ps(xv, va, acc_a[r]);
      acc_b[r] = _mm256_fmadd_ps(xv, vb, acc_b[r]);
    }
  }
  for (int r = 0; r < R; ++r) {
    a[r] = hsum(acc_a[r]);
    b[r] = hsum(acc_b[r]);
    for (int64_t j = k; j < K; ++j) {
      a[r] += x[r * K + j] * wa[j];
      b[r] += x[r * K + j] * wb[j];
    }
  }
}

// dot2 for a block of 1..6 rows.
void dot2_rows(int rows, const float* x, int64_t K, const float* wa, const float* wb, float* a,
               float* b) {
  switch (rows) {
    case 1: return dot2<1>(x, K, wa, wb, a, b);
    case 2: return dot2<2>(x, K, wa, wb, a, b);
    case 3: return dot2<3>(x, K, wa, wb, a, b);
    case 4: return dot2<4>(x, K, wa, wb, a, b);
    case 5: return dot2<5>(x, K, wa, wb, a, b);
    default: return dot2<6>(x, K, wa, wb, a, b);
  }
}

// Input rows per pass over the weights: 6 rows x 2 weight rows = 12 accumulators, plus
// the 2 weight vectors and one input vector, fill AVX2's 16 registers.
constexpr int kBlock = 6;

std::atomic<bool> g_enabled{true};

bool fp32_cpu_contiguous(const torch::Tensor& t) {
  return t.defined() && t.is_cpu() && t.scalar_type() == torch::kFloat && t.is_contiguous();
}

}  // namespace

bool small_rows_kernels_available() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}

void set_small_rows_kernels_enabled(bool on) {
  g_enabled.store(on);
}

bool small_rows_kernels_apply(const torch::Tensor& x, const torch::Tensor& w_gate,
                              const torch::Tensor& w_up, const torch::Tensor& w_down) {
  return g_enabled.load(std::memory_order_relaxed) && small_rows_kernels_available() &&
         !torch::GradMode::is_enabled() && fp32_cpu_contiguous(x) && fp32_cpu_contiguous(w_gate) &&
         fp32_cpu_contiguous(w_up) && fp32_cpu_contiguous(w_down);
}

torch::Tensor linear_small_rows(const torch::Tensor& x, const torch::Tensor& w) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1),
              "linear_small_rows: x [M, K] and w [N, K] expected");
  TORCH_CHECK(fp32_cpu_contiguous(x) && fp32_cpu_contiguous(w) && small_rows_kernels_available(),
              "linear_small_rows: fp32 contiguous CPU tensors and AVX2/FMA expected");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  auto y = torch::empty({M, N}, x.options());
  const float* xp = x.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  float a[kBlock], b[kBlock];
  for (int64_t m0 = 0; m0 < M; m0 += kBlock) {
    const int rows = static_cast<int>(std::min<int64_t>(kBlock, M - m0));
    for (int64_t n = 0; n < N; n += 2) {
      const int64_t n1 = std::min(n + 1, N - 1);  // an odd last row pairs with itself
      dot2_rows(rows, xp + m0 * K, K, wp + n * K, wp + n1 * K, a, b);
      for (int r = 0; r < rows; ++r) {
        yp[(m0 + r) * N + n] = a[r];
        if (n + 1 < N) yp[(m0 + r) * N + n + 1] = b[r];
      }
    }
  }
  return y;
}

torch::Tensor swiglu_small_rows(const torch::Tensor& x, const torch::Tensor& w_gate,
                                const torch::Tensor& w_up, const torch::Tensor& w_down) {
  TORCH_CHECK(x.dim() == 2 && w_gate.dim() == 2 && w_up.sizes() == w_gate.sizes() &&
                  w_gate.size(1) == x.size(1) && w_down.dim() == 2 &&
                  w_down.size(1) == w_gate.size(0),
              "swiglu_small_rows: x [M, dim], w_gate/w_up [inter, dim], w_down [dim, inter]");
  TORCH_CHECK(small_rows_kernels_available() && fp32_cpu_contiguous(x) &&
                  fp32_cpu_contiguous(w_gate) && fp32_cpu_contiguous(w_up),
              "swiglu_small_rows: fp32 contiguous CPU tensors and AVX2/FMA expected");
  const int64_t M = x.size(0), K = x.size(1), I = w_gate.size(0);
  auto h = torch::empty({M, I}, x.options());  // silu(gate) * up
  const float* xp = x.data_ptr<float>();
  const float* gp = w_gate.data_ptr<float>();
  const float* up = w_up.data_ptr<float>();
  float* hp = h.data_ptr<float>();
  float g[kBlock], u[kBlock];
  for (int64_t m0 = 0; m0 < M; m0 += kBlock) {
    const int rows = static_cast<int>(std::min<int64_t>(kBlock, M - m0));
    for (int64_t n = 0; n < I; ++n) {
      dot2_rows(rows, xp + m0 * K, K, gp + n * K, up + n * K, g, u);
      for (int r = 0; r < rows; ++r) hp[(m0 + r) * I + n] = g[r] / (1.0f + std::exp(-g[r])) * u[r];
    }
  }
  return linear_small_rows(h, w_down);
}

}  // namespace r1kit::policy
