// Small-row expert kernels; see expert_kernels.h.
#include "policy/expert_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/parallel.h"
#include "core/torch_compat.h"
#include "policy/kernel_util.h"

namespace r1kit::policy {
namespace {

R1KIT_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Floats ahead of the current weight element to prefetch (4 KiB). At decode the weights
// stream from memory (a step touches nearly every expert once), and without prefetching
// the loads wait on memory and the FMAs on the loads, one after the other (the timings with
// and without it are in bench/RESULTS.md).
constexpr int64_t kPrefetch = 1024;

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
    if (k % 16 == 0) {
      _mm_prefetch(reinterpret_cast<const char*>(wa + k + kPrefetch), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(wb + k + kPrefetch), _MM_HINT_T0);
    }
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

// dot2 with AVX-512's 16-lane vectors, for CPUs that have them: half the instructions
// per weight row, and a masked load for the last K % 16 elements instead of a scalar tail.
template <int R>
R1KIT_AVX512 void dot2_512(const float* x, int64_t K, const float* wa, const float* wb, float* a,
                           float* b) {
  __m512 acc_a[R], acc_b[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) acc_a[r] = acc_b[r] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    _mm_prefetch(reinterpret_cast<const char*>(wa + k + kPrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(wb + k + kPrefetch), _MM_HINT_T0);
    const __m512 va = _mm512_loadu_ps(wa + k), vb = _mm512_loadu_ps(wb + k);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_loadu_ps(x + r * K + k);
      acc_a[r] = _mm512_fmadd_ps(xv, va, acc_a[r]);
      acc_b[r] = _mm512_fmadd_ps(xv, vb, acc_b[r]);
    }
  }
  if (k < K) {
    const __mmask16 m = kernel::lanes(K - k);
    const __m512 va = _mm512_maskz_loadu_ps(m, wa + k), vb = _mm512_maskz_loadu_ps(m, wb + k);
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + r * K + k);
      acc_a[r] = _mm512_fmadd_ps(xv, va, acc_a[r]);
      acc_b[r] = _mm512_fmadd_ps(xv, vb, acc_b[r]);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    a[r] = kernel::hsum512(acc_a[r]);
    b[r] = kernel::hsum512(acc_b[r]);
  }
}

// dot2 for a block of 1..6 rows, on AVX-512 when `wide`, else AVX2.
void dot2_rows(bool wide, int rows, const float* x, int64_t K, const float* wa, const float* wb,
               float* a, float* b) {
  auto call = [&](auto r) {
    constexpr int R = decltype(r)::value;
    if (wide) return dot2_512<R>(x, K, wa, wb, a, b);
    return dot2<R>(x, K, wa, wb, a, b);
  };
  switch (rows) {
    case 1: return call(std::integral_constant<int, 1>{});
    case 2: return call(std::integral_constant<int, 2>{});
    case 3: return call(std::integral_constant<int, 3>{});
    case 4: return call(std::integral_constant<int, 4>{});
    case 5: return call(std::integral_constant<int, 5>{});
    default: return call(std::integral_constant<int, 6>{});
  }
}

// Input rows per pass over the weights: 6 rows x 2 weight rows = 12 accumulators, plus
// the 2 weight vectors and one input vector, fill AVX2's 16 registers.
constexpr int kBlock = 6;

}  // namespace

bool small_rows_kernels_available() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return ok;
}

bool small_rows_avx512_available() {
  static const bool ok = __builtin_cpu_supports("avx512f");
  return ok;
}

bool small_rows_use_avx512(const KernelChoices& kernels) {
  return kernels.small_rows_avx512 && small_rows_avx512_available();
}

bool small_rows_kernels_apply(const torch::Tensor& x, const torch::Tensor& w_gate,
                              const torch::Tensor& w_up, const torch::Tensor& w_down,
                              const KernelChoices& kernels) {
  return kernels.small_rows && !kernels.grouped_without_grad && small_rows_kernels_available() &&
         !torch::GradMode::is_enabled() && !compat::cpu_autocast_enabled() &&
         kernel::fp32_cpu_contiguous(x) && kernel::fp32_cpu_contiguous(w_gate) &&
         kernel::fp32_cpu_contiguous(w_up) && kernel::fp32_cpu_contiguous(w_down);
}

int64_t small_rows_max_rows(const KernelChoices& kernels, int threads) {
  const bool columns = kernels.small_rows_columns && small_rows_use_avx512(kernels);
  return columns ? kColumnRowsMax : threads > 1 ? kPoolRowsMax : kSmallRowsMax;
}

namespace {

// ---------------------------------------------------------------------------------
// The column form (expert_kernels.h, kColumnRowsMin): xT [K, Mp] holds the rows as
// columns, Mp = MV * 16 >= M, zero-padded.

// silu(g) u = g u / (1 + e^-g).
R1KIT_AVX512 inline __m512 swiglu512(__m512 g, __m512 u) {
  const __m512 den =
      _mm512_add_ps(_mm512_set1_ps(1.0f), kernel::exp16(_mm512_sub_ps(_mm512_setzero_ps(), g)));
  return _mm512_div_ps(_mm512_mul_ps(g, u), den);
}

// yT[i, :] = w[i, :] . xT for the NB weight rows w [NB, K] (row stride K): NB x MV
// accumulators; each weight element broadcast once against the MV column vectors.
template <int NB, int MV>
R1KIT_AVX512 void linear_cols_block(const float* w, int64_t K, const float* xT, float* yT) {
  constexpr int64_t Mp = MV * 16;
  __m512 acc[NB][MV];
#pragma GCC unroll 6
  for (int i = 0; i < NB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 xv[MV];
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j) xv[j] = _mm512_loadu_ps(xT + k * Mp + 16 * j);
#pragma GCC unroll 6
    for (int i = 0; i < NB; ++i) {
      const __m512 wv = _mm512_set1_ps(w[i * K + k]);
#pragma GCC unroll 4
      for (int j = 0; j < MV; ++j) acc[i][j] = _mm512_fmadd_ps(wv, xv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < NB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j) _mm512_storeu_ps(yT + i * Mp + 16 * j, acc[i][j]);
}

// hT[i, :] = silu(wg[i] . xT) * (wu[i] . xT) for NB hidden rows.
template <int NB, int MV>
R1KIT_AVX512 void swiglu_cols_block(const float* wg, const float* wu, int64_t K, const float* xT,
                                    float* hT) {
  constexpr int64_t Mp = MV * 16;
  __m512 g[NB][MV], u[NB][MV];
#pragma GCC unroll 3
  for (int i = 0; i < NB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j) g[i][j] = u[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; ++k) {
    __m512 xv[MV];
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j) xv[j] = _mm512_loadu_ps(xT + k * Mp + 16 * j);
#pragma GCC unroll 3
    for (int i = 0; i < NB; ++i) {
      const __m512 gw = _mm512_set1_ps(wg[i * K + k]), uw = _mm512_set1_ps(wu[i * K + k]);
#pragma GCC unroll 4
      for (int j = 0; j < MV; ++j) {
        g[i][j] = _mm512_fmadd_ps(gw, xv[j], g[i][j]);
        u[i][j] = _mm512_fmadd_ps(uw, xv[j], u[i][j]);
      }
    }
  }
#pragma GCC unroll 3
  for (int i = 0; i < NB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j)
      _mm512_storeu_ps(hT + i * Mp + 16 * j, swiglu512(g[i][j], u[i][j]));
}

// fn(std::integral_constant<int, MV>{}) for a panel of mv = MV vectors (1..4), so that a
// block's vector count, chosen at run time, is a template argument.
template <typename Fn>
void with_mv(int mv, const Fn& fn) {
  switch (mv) {
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    case 3: return fn(std::integral_constant<int, 3>{});
    default: return fn(std::integral_constant<int, 4>{});
  }
}

// Rows per panel of the column form: 4 vectors of 16, the most the blocks hold in
// registers (6 x 4 accumulators and 4 column vectors of AVX-512's 32).
constexpr int64_t kPanelRows = 64;

// M rows cut into panels of kPanelRows (the last one narrower). A matrix of C values per
// row is held as columns, panel after panel: panel p at offset C * kPanelRows * p, as
// [C, 16 * mv(p)], zero-padded to its vectors. The whole takes C * Mp floats, Mp = M
// rounded up to 16.
struct Panels {
  int64_t M;
  int64_t count() const { return (M + kPanelRows - 1) / kPanelRows; }
  int64_t rows(int64_t p) const { return std::min(kPanelRows, M - p * kPanelRows); }
  int mv(int64_t p) const { return static_cast<int>((rows(p) + 15) / 16); }
  int64_t padded() const { return (M + 15) / 16 * 16; }
};

using kernel::kAll16;
using kernel::kAll8;

// Transposes the 16 x 16 floats of r (row i in r[i]) in registers: unpacks of 32- and
// 64-bit elements within 128-bit lanes, then two rounds of lane shuffles.
R1KIT_AVX512 inline void transpose16x16(__m512 (&r)[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_maskz_unpacklo_ps(kAll16, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(kAll16, r[i], r[i + 1]);
  }
  // u[4g + c], lane L: column 4L + c of rows 4g..4g+3.
  __m512 u[16];
  for (int g = 0; g < 16; g += 4) {
    const __m512d a = _mm512_castps_pd(t[g]), b = _mm512_castps_pd(t[g + 1]);
    const __m512d c = _mm512_castps_pd(t[g + 2]), d = _mm512_castps_pd(t[g + 3]);
    u[g] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, a, c));
    u[g + 1] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, a, c));
    u[g + 2] = _mm512_castpd_ps(_mm512_maskz_unpacklo_pd(kAll8, b, d));
    u[g + 3] = _mm512_castpd_ps(_mm512_maskz_unpackhi_pd(kAll8, b, d));
  }
  for (int c = 0; c < 4; ++c) {
    const __m512 v = _mm512_maskz_shuffle_f32x4(kAll16, u[c], u[4 + c], 0x88);
    const __m512 w = _mm512_maskz_shuffle_f32x4(kAll16, u[8 + c], u[12 + c], 0x88);
    const __m512 v2 = _mm512_maskz_shuffle_f32x4(kAll16, u[c], u[4 + c], 0xdd);
    const __m512 w2 = _mm512_maskz_shuffle_f32x4(kAll16, u[8 + c], u[12 + c], 0xdd);
    r[c] = _mm512_maskz_shuffle_f32x4(kAll16, v, w, 0x88);
    r[8 + c] = _mm512_maskz_shuffle_f32x4(kAll16, v, w, 0xdd);
    r[4 + c] = _mm512_maskz_shuffle_f32x4(kAll16, v2, w2, 0x88);
    r[12 + c] = _mm512_maskz_shuffle_f32x4(kAll16, v2, w2, 0xdd);
  }
}

// x [M, C] (row stride C) -> its panels of columns, 16 x 16 tiles at a time.
R1KIT_AVX512 void to_columns(const Panels& P, const float* x, int64_t C, float* cols) {
  __m512 r[16];
  for (int64_t p = 0; p < P.count(); ++p) {
    const int64_t rows = P.rows(p), mp = 16 * P.mv(p);
    const float* xp = x + p * kPanelRows * C;
    float* cp = cols + p * kPanelRows * C;
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const int64_t nc = std::min<int64_t>(16, C - c0);
      const __mmask16 m = kernel::lanes(nc);
      for (int64_t m0 = 0; m0 < mp; m0 += 16) {
        for (int i = 0; i < 16; ++i)
          r[i] = m0 + i < rows ? _mm512_maskz_loadu_ps(m, xp + (m0 + i) * C + c0)
                               : _mm512_setzero_ps();
        transpose16x16(r);
        for (int64_t j = 0; j < nc; ++j) _mm512_storeu_ps(cp + (c0 + j) * mp + m0, r[j]);
      }
    }
  }
}

// Panels of columns -> y [M, C] (row stride ldy), plus b [C] when given.
R1KIT_AVX512 void from_columns(const Panels& P, const float* cols, int64_t C, const float* b,
                               float* y, int64_t ldy) {
  __m512 r[16];
  for (int64_t p = 0; p < P.count(); ++p) {
    const int64_t rows = P.rows(p), mp = 16 * P.mv(p);
    const float* cp = cols + p * kPanelRows * C;
    float* yp = y + p * kPanelRows * ldy;
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const int64_t nc = std::min<int64_t>(16, C - c0);
      const __mmask16 m = kernel::lanes(nc);
      const __m512 bias = b ? _mm512_maskz_loadu_ps(m, b + c0) : _mm512_setzero_ps();
      for (int64_t m0 = 0; m0 < rows; m0 += 16) {
        for (int j = 0; j < 16; ++j)
          r[j] = j < nc ? _mm512_loadu_ps(cp + (c0 + j) * mp + m0) : _mm512_setzero_ps();
        transpose16x16(r);
        const int64_t nr = std::min<int64_t>(16, rows - m0);
        for (int64_t i = 0; i < nr; ++i)
          _mm512_mask_storeu_ps(yp + (m0 + i) * ldy + c0, m, _mm512_add_ps(r[i], bias));
      }
    }
  }
}

// The column form's loop: for each block of NB output rows (single rows for the last
// N % NB) and each panel in turn, so that a block's weight rows come from memory once and
// from L1 for the later panels, fn.template operator()<R, MV>(n, x, y): R = NB for a whole
// block from row n, else 1; MV the panel's vectors (a template argument through with_mv);
// x the panel of the inputs xT ([K, .], elements of T) and y where the block's outputs go
// in the panels of yT ([N, .]).
template <int NB, typename T, typename Fn>
void over_blocks_and_panels(const Panels& P, int64_t N, int64_t K, const T* xT, float* yT,
                            const Fn& fn) {
  for (int64_t n = 0; n < N; n += (N - n >= NB ? NB : 1))
    for (int64_t p = 0; p < P.count(); ++p) {
      const T* x = xT + p * kPanelRows * K;
      float* y = yT + p * kPanelRows * N + n * 16 * P.mv(p);
      with_mv(P.mv(p), [&](auto c) {
        constexpr int MV = decltype(c)::value;
        if (N - n >= NB)
          fn.template operator()<NB, MV>(n, x, y);
        else
          fn.template operator()<1, MV>(n, x, y);
      });
    }
}

// ---------------------------------------------------------------------------------
// bf16 compute (expert_kernels.h, "bf16 compute"). Weights and inputs as raw bf16 bits.

// A vector rounded to bf16 (nearest even, as a cast to bf16 rounds) and widened back.
R1KIT_AVX512BF16 inline __m512 round_bf16(__m512 v) {
  const __m256i h = reinterpret_cast<__m256i>(_mm512_maskz_cvtneps_pbh(kAll16, v));
  return _mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(kAll16, _mm512_maskz_cvtepu16_epi32(kAll16, h), 16));
}

// The bf16 bits of 16 floats, rounded to nearest even.
R1KIT_AVX512BF16 inline __m256i bf16_bits(__m512 v) {
  return reinterpret_cast<__m256i>(_mm512_maskz_cvtneps_pbh(kAll16, v));
}

// y [M, N] (row stride ldy) rounded to bf16 in place.
R1KIT_AVX512BF16 void round_rows_bf16(float* y, int64_t M, int64_t N, int64_t ldy) {
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; n += 16) {
      const __mmask16 k = kernel::lanes(N - n);
      float* p = y + m * ldy + n;
      _mm512_mask_storeu_ps(p, k, round_bf16(_mm512_maskz_loadu_ps(k, p)));
    }
}

// x [M, K] fp32 (row stride K) -> bf16 bits [M, K].
R1KIT_AVX512BF16 void rows_to_bf16(const float* x, int64_t M, int64_t K, uint16_t* out) {
  const int64_t n = M * K;
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = kernel::lanes(n - i);
    _mm256_mask_storeu_epi16(out + i, k, bf16_bits(_mm512_maskz_loadu_ps(k, x + i)));
  }
}

// Column panels of fp32 (to_columns' layout: panel p at C * kPanelRows * p, [C, 16 mv])
// -> the same panels as bf16 pairs: panel p at the same element offset, [C / 2, 16 mv, 2],
// element (c, m) at ((c / 2) * 16 mv + m) * 2 + c % 2, so that one 32-bit lane holds the
// pair (c, c + 1) of column m. C even.
R1KIT_AVX512BF16 void columns_to_pairs(const Panels& P, const float* cols, int64_t C,
                                       uint16_t* pairs) {
  for (int64_t p = 0; p < P.count(); ++p) {
    const int64_t mp = 16 * P.mv(p);
    const float* cp = cols + p * kPanelRows * C;
    uint16_t* pp = pairs + p * kPanelRows * C;
    for (int64_t c = 0; c < C; c += 2)
      for (int64_t m0 = 0; m0 < mp; m0 += 16) {
        const __m512i lo =
            _mm512_maskz_cvtepu16_epi32(kAll16, bf16_bits(_mm512_loadu_ps(cp + c * mp + m0)));
        const __m512i hi =
            _mm512_maskz_cvtepu16_epi32(kAll16, bf16_bits(_mm512_loadu_ps(cp + (c + 1) * mp + m0)));
        _mm512_storeu_si512(
            pp + (c * mp + 2 * m0),
            _mm512_maskz_or_epi32(kAll16, lo, _mm512_maskz_slli_epi32(kAll16, hi, 16)));
      }
  }
}

// The pair (w[k], w[k + 1]) broadcast to every 32-bit lane.
R1KIT_AVX512BF16 inline __m512bh pair_of(const uint16_t* w) {
  int32_t v;
  std::memcpy(&v, w, sizeof(v));
  return reinterpret_cast<__m512bh>(_mm512_set1_epi32(v));
}

// linear_cols_block over bf16 pairs: yT[i, :] = w[i, :] . xP for NB weight rows (bf16
// [NB, K], K even) against MV vectors of 16 columns.
template <int NB, int MV>
R1KIT_AVX512BF16 void linear_cols_bf16(const uint16_t* w, int64_t K, const uint16_t* xP,
                                       float* yT) {
  constexpr int64_t Mp = MV * 16;
  __m512 acc[NB][MV];
#pragma GCC unroll 6
  for (int i = 0; i < NB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 2) {
    __m512bh xv[MV];
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j)
      xv[j] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(xP + k * Mp + 32 * j));
#pragma GCC unroll 6
    for (int i = 0; i < NB; ++i) {
      const __m512bh wv = pair_of(w + i * K + k);
#pragma GCC unroll 4
      for (int j = 0; j < MV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], wv, xv[j]);
    }
  }
#pragma GCC unroll 6
  for (int i = 0; i < NB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j) _mm512_storeu_ps(yT + i * Mp + 16 * j, acc[i][j]);
}

// swiglu_cols_block over bf16 pairs: hT[i, :] = silu(g) u with g and u the rounded outputs
// of wg[i] . xP and wu[i] . xP, in fp32 (rounded when packed for the down projection).
template <int NB, int MV>
R1KIT_AVX512BF16 void swiglu_cols_bf16(const uint16_t* wg, const uint16_t* wu, int64_t K,
                                       const uint16_t* xP, float* hT) {
  constexpr int64_t Mp = MV * 16;
  __m512 g[NB][MV], u[NB][MV];
#pragma GCC unroll 3
  for (int i = 0; i < NB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j) g[i][j] = u[i][j] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 2) {
    __m512bh xv[MV];
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j)
      xv[j] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(xP + k * Mp + 32 * j));
#pragma GCC unroll 3
    for (int i = 0; i < NB; ++i) {
      const __m512bh gw = pair_of(wg + i * K + k), uw = pair_of(wu + i * K + k);
#pragma GCC unroll 4
      for (int j = 0; j < MV; ++j) {
        g[i][j] = _mm512_dpbf16_ps(g[i][j], gw, xv[j]);
        u[i][j] = _mm512_dpbf16_ps(u[i][j], uw, xv[j]);
      }
    }
  }
#pragma GCC unroll 3
  for (int i = 0; i < NB; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < MV; ++j)
      _mm512_storeu_ps(hT + i * Mp + 16 * j, swiglu512(round_bf16(g[i][j]), round_bf16(u[i][j])));
}

// linear_panels over bf16 pairs (w bf16 [N, K], xP from columns_to_pairs).
void linear_panels_bf16(const Panels& P, const uint16_t* w, int64_t N, int64_t K,
                        const uint16_t* xP, float* yT) {
  over_blocks_and_panels<6>(P, N, K, xP, yT,
                            [&]<int R, int MV>(int64_t n, const uint16_t* x, float* y) {
                              linear_cols_bf16<R, MV>(w + n * K, K, x, y);
                            });
}

// dot2 over bf16 bits: for R rows of x ([R, K], row stride K), a[r] = x[r] . wa and
// b[r] = x[r] . wb, 32 products a step; a masked load for the last K % 32.
template <int R>
R1KIT_AVX512BF16 void dot2_bf16(const uint16_t* x, int64_t K, const uint16_t* wa,
                                const uint16_t* wb, float* a, float* b) {
  __m512 acc_a[R], acc_b[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) acc_a[r] = acc_b[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < K; k += 32) {
    const __mmask32 m = K - k >= 32 ? ~__mmask32{0} : (__mmask32{1} << (K - k)) - 1;
    _mm_prefetch(reinterpret_cast<const char*>(wa + k + 2 * kPrefetch), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(wb + k + 2 * kPrefetch), _MM_HINT_T0);
    const auto va = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, wa + k));
    const auto vb = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, wb + k));
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const auto xv = reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, x + r * K + k));
      acc_a[r] = _mm512_dpbf16_ps(acc_a[r], xv, va);
      acc_b[r] = _mm512_dpbf16_ps(acc_b[r], xv, vb);
    }
  }
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    a[r] = kernel::hsum512(acc_a[r]);
    b[r] = kernel::hsum512(acc_b[r]);
  }
}

R1KIT_AVX512BF16 void dot2_bf16_rows(int rows, const uint16_t* x, int64_t K, const uint16_t* wa,
                                     const uint16_t* wb, float* a, float* b) {
  switch (rows) {
    case 1: return dot2_bf16<1>(x, K, wa, wb, a, b);
    case 2: return dot2_bf16<2>(x, K, wa, wb, a, b);
    case 3: return dot2_bf16<3>(x, K, wa, wb, a, b);
    case 4: return dot2_bf16<4>(x, K, wa, wb, a, b);
    case 5: return dot2_bf16<5>(x, K, wa, wb, a, b);
    default: return dot2_bf16<6>(x, K, wa, wb, a, b);
  }
}

// The row form in bf16: y [M, N] (row stride ldy, fp32) = x16 [M, K] w^T, unrounded.
void linear_rows_bf16(const uint16_t* x16, int64_t M, int64_t K, const uint16_t* w, int64_t N,
                      float* y, int64_t ldy) {
  float a[6], b[6];
  for (int64_t m0 = 0; m0 < M; m0 += 6) {
    const int rows = static_cast<int>(std::min<int64_t>(6, M - m0));
    for (int64_t n = 0; n < N; n += 2) {
      const int64_t n1 = std::min(n + 1, N - 1);  // an odd last row pairs with itself
      dot2_bf16_rows(rows, x16 + m0 * K, K, w + n * K, w + n1 * K, a, b);
      for (int r = 0; r < rows; ++r) {
        y[(m0 + r) * ldy + n] = a[r];
        if (n + 1 < N) y[(m0 + r) * ldy + n + 1] = b[r];
      }
    }
  }
}

// Scratch floats for M rows of a layer K -> N in bf16 (either form), and for a SwiGLU
// expert K -> I -> K.
int64_t linear_bf16_scratch(int64_t M, int64_t K, int64_t N) {
  return Panels{M}.padded() * (K + K / 2 + N) + M * K;
}
int64_t swiglu_bf16_scratch(int64_t M, int64_t K, int64_t I) {
  return Panels{M}.padded() * (K + K / 2 + I + I / 2 + K) + M * (K + I);
}

// linear_bf16_raw with its scratch (linear_bf16_scratch floats).
void linear_bf16_into(const float* x, int64_t M, int64_t K, const uint16_t* w, int64_t N,
                      const float* b, float* y, int64_t ldy, const KernelChoices& kernels,
                      float* scratch) {
  if (takes_columns(kernels, M)) {
    const Panels P{M};
    float* xT = scratch;
    auto* xP = reinterpret_cast<uint16_t*>(xT + K * P.padded());
    float* yT = xT + (K + K / 2) * P.padded();
    to_columns(P, x, K, xT);
    columns_to_pairs(P, xT, K, xP);
    linear_panels_bf16(P, w, N, K, xP, yT);
    from_columns(P, yT, N, b, y, ldy);
  } else {
    auto* x16 = reinterpret_cast<uint16_t*>(scratch);
    rows_to_bf16(x, M, K, x16);
    linear_rows_bf16(x16, M, K, w, N, y, ldy);
    if (b)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) y[m * ldy + n] += b[n];
  }
  round_rows_bf16(y, M, N, ldy);
}

// One SwiGLU expert in bf16 (swiglu_bf16_scratch floats of scratch).
void swiglu_bf16(const float* xp, int64_t M, int64_t K, int64_t I, const uint16_t* gp,
                 const uint16_t* up, const uint16_t* dp, float* scratch, float* yp,
                 const KernelChoices& kernels) {
  if (takes_columns(kernels, M)) {
    const Panels P{M};
    float* xT = scratch;
    auto* xP = reinterpret_cast<uint16_t*>(xT + K * P.padded());
    float* hT = xT + (K + K / 2) * P.padded();
    auto* hP = reinterpret_cast<uint16_t*>(hT + I * P.padded());
    float* yT = hT + (I + I / 2) * P.padded();
    to_columns(P, xp, K, xT);
    columns_to_pairs(P, xT, K, xP);
    over_blocks_and_panels<3>(P, I, K, xP, hT,
                              [&]<int R, int MV>(int64_t n, const uint16_t* x, float* h) {
                                swiglu_cols_bf16<R, MV>(gp + n * K, up + n * K, K, x, h);
                              });
    columns_to_pairs(P, hT, I, hP);
    linear_panels_bf16(P, dp, K, I, hP, yT);
    from_columns(P, yT, K, nullptr, yp, K);
  } else {
    auto* x16 = reinterpret_cast<uint16_t*>(scratch);
    float* h = scratch + M * K;
    auto* h16 = reinterpret_cast<uint16_t*>(h + M * I);
    rows_to_bf16(xp, M, K, x16);
    float g[6], u[6];
    for (int64_t m0 = 0; m0 < M; m0 += 6) {
      const int rows = static_cast<int>(std::min<int64_t>(6, M - m0));
      for (int64_t n = 0; n < I; ++n) {
        dot2_bf16_rows(rows, x16 + m0 * K, K, gp + n * K, up + n * K, g, u);
        for (int r = 0; r < rows; ++r) {
          const float gr = static_cast<float>(at::BFloat16(g[r]));
          const float ur = static_cast<float>(at::BFloat16(u[r]));
          h[(m0 + r) * I + n] = gr / (1.0f + std::exp(-gr)) * ur;
        }
      }
    }
    rows_to_bf16(h, M, I, h16);
    linear_rows_bf16(h16, M, I, dp, K, yp, K);
  }
  round_rows_bf16(yp, M, K, K);
}

// yT = w xT for w [N, K] and the panels xT ([K, .]) into yT ([N, .]): each block of 6
// weight rows runs against every panel in turn, so it comes from memory once and from L1
// for the later panels.
void linear_panels(const Panels& P, const float* w, int64_t N, int64_t K, const float* xT,
                   float* yT) {
  over_blocks_and_panels<6>(P, N, K, xT, yT,
                            [&]<int R, int MV>(int64_t n, const float* x, float* y) {
                              linear_cols_block<R, MV>(w + n * K, K, x, y);
                            });
}

// Scratch floats swiglu_rows_columns needs for M rows: xT, hT and yT.
int64_t columns_scratch(int64_t M, int64_t K, int64_t I) {
  return Panels{M}.padded() * (2 * K + I);
}

// One SwiGLU expert of M rows in the column form (panels as above); scratch holds
// columns_scratch(M, K, I) floats. For one panel this is the form of "Experts as
// columns" in bench/RESULTS.md.
void swiglu_rows_columns(const float* xp, int64_t M, int64_t K, int64_t I, const float* gp,
                         const float* up, const float* dp, float* scratch, float* yp) {
  const Panels P{M};
  float* xT = scratch;
  float* yT = xT + K * P.padded();
  float* hT = yT + K * P.padded();
  to_columns(P, xp, K, xT);
  over_blocks_and_panels<3>(P, I, K, xT, hT,
                            [&]<int R, int MV>(int64_t n, const float* x, float* h) {
                              swiglu_cols_block<R, MV>(gp + n * K, up + n * K, K, x, h);
                            });
  linear_panels(P, dp, K, I, hT, yT);
  from_columns(P, yT, K, nullptr, yp, K);
}

// y [M, N] (row stride ldy) = x [M, K] w^T (+ bias [N] when not null) for w [N, K]: raw
// pointers, row-major; AVX-512 when `wide`. Each output is one dot product (dot2 computes
// its two weight rows' sums apart), so it does not depend on M or N.
void linear_rows(const float* xp, int64_t M, int64_t K, const float* wp, int64_t N,
                 const float* bias, float* yp, int64_t ldy, bool wide) {
  float a[kBlock], b[kBlock];
  for (int64_t m0 = 0; m0 < M; m0 += kBlock) {
    const int rows = static_cast<int>(std::min<int64_t>(kBlock, M - m0));
    for (int64_t n = 0; n < N; n += 2) {
      const int64_t n1 = std::min(n + 1, N - 1);  // an odd last row pairs with itself
      dot2_rows(wide, rows, xp + m0 * K, K, wp + n * K, wp + n1 * K, a, b);
      const float ba = bias ? bias[n] : 0.0f, bb = bias ? bias[n1] : 0.0f;
      for (int r = 0; r < rows; ++r) {
        yp[(m0 + r) * ldy + n] = bias ? a[r] + ba : a[r];
        if (n + 1 < N) yp[(m0 + r) * ldy + n + 1] = bias ? b[r] + bb : b[r];
      }
    }
  }
}

// Scratch floats swiglu_rows needs for M rows.
int64_t swiglu_scratch(const KernelChoices& kernels, int64_t M, int64_t K, int64_t I) {
  return takes_columns(kernels, M) ? columns_scratch(M, K, I) : M * I;
}

// One SwiGLU expert on raw pointers: hp (swiglu_scratch floats) is scratch, yp [M, K] the
// output; the column form where takes_columns, else the row form (AVX-512 when `wide`).
void swiglu_rows(const float* xp, int64_t M, int64_t K, int64_t I, const float* gp, const float* up,
                 const float* dp, float* hp, float* yp, const KernelChoices& kernels) {
  if (takes_columns(kernels, M)) return swiglu_rows_columns(xp, M, K, I, gp, up, dp, hp, yp);
  const bool wide = small_rows_use_avx512(kernels);
  float g[kBlock], u[kBlock];
  for (int64_t m0 = 0; m0 < M; m0 += kBlock) {
    const int rows = static_cast<int>(std::min<int64_t>(kBlock, M - m0));
    for (int64_t n = 0; n < I; ++n) {
      dot2_rows(wide, rows, xp + m0 * K, K, gp + n * K, up + n * K, g, u);
      for (int r = 0; r < rows; ++r) hp[(m0 + r) * I + n] = g[r] / (1.0f + std::exp(-g[r])) * u[r];
    }
  }
  linear_rows(hp, M, I, dp, K, nullptr, yp, K, wide);
}

}  // namespace

bool bf16_kernels_available() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
  return ok;
}

bool bf16_kernels_apply(const KernelChoices& kernels, int64_t K) {
  return kernels.small_rows && K % 2 == 0 && bf16_kernels_available();
}

void linear_bf16_raw(const float* x, int64_t M, int64_t K, const at::BFloat16* w, int64_t N,
                     const float* b, float* y, int64_t ldy, const KernelChoices& kernels) {
  TORCH_CHECK(bf16_kernels_apply(kernels, K),
              "linear_bf16_raw: AVX512-BF16 and an even K expected");
  std::vector<float> scratch(static_cast<size_t>(linear_bf16_scratch(M, K, N)));
  linear_bf16_into(x, M, K, reinterpret_cast<const uint16_t*>(w), N, b, y, ldy, kernels,
                   scratch.data());
}

bool takes_columns(const KernelChoices& kernels, int64_t M) {
  return M >= kColumnRowsMin && M <= kColumnRowsMax && kernels.small_rows_columns &&
         small_rows_use_avx512(kernels);
}

void linear_columns_raw(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                        const float* b, float* y, int64_t ldy) {
  TORCH_CHECK(small_rows_avx512_available(), "linear_columns_raw: AVX-512F expected");
  const Panels P{M};
  std::vector<float> scratch(static_cast<size_t>(P.padded() * (K + N)));
  float* xT = scratch.data();
  float* yT = xT + K * P.padded();
  to_columns(P, x, K, xT);
  linear_panels(P, w, N, K, xT, yT);
  from_columns(P, yT, N, b, y, ldy);
}

void linear_rows_raw(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                     const float* b, float* y, int64_t ldy, const KernelChoices& kernels) {
  TORCH_CHECK(small_rows_kernels_available(), "linear_rows_raw: AVX2/FMA expected");
  linear_rows(x, M, K, w, N, b, y, ldy, small_rows_use_avx512(kernels));
}

torch::Tensor linear_small_rows(const torch::Tensor& x, const torch::Tensor& w,
                                const KernelChoices& kernels) {
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2 && x.size(1) == w.size(1),
              "linear_small_rows: x [M, K] and w [N, K] expected");
  TORCH_CHECK(kernel::fp32_cpu_contiguous(x) && kernel::fp32_cpu_contiguous(w) &&
                  small_rows_kernels_available(),
              "linear_small_rows: fp32 contiguous CPU tensors and AVX2/FMA expected");
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  auto y = torch::empty({M, N}, x.options());
  linear_rows(x.data_ptr<float>(), M, K, w.data_ptr<float>(), N, nullptr, y.data_ptr<float>(), N,
              small_rows_use_avx512(kernels));
  return y;
}

torch::Tensor swiglu_small_rows(const torch::Tensor& x, const torch::Tensor& w_gate,
                                const torch::Tensor& w_up, const torch::Tensor& w_down,
                                const KernelChoices& kernels) {
  TORCH_CHECK(x.dim() == 2 && w_gate.dim() == 2 && w_up.sizes() == w_gate.sizes() &&
                  w_gate.size(1) == x.size(1) && w_down.dim() == 2 &&
                  w_down.size(1) == w_gate.size(0) && w_down.size(0) == x.size(1),
              "swiglu_small_rows: x [M, dim], w_gate/w_up [inter, dim], w_down [dim, inter]");
  TORCH_CHECK(small_rows_kernels_available() && kernel::fp32_cpu_contiguous(x) &&
                  kernel::fp32_cpu_contiguous(w_gate) && kernel::fp32_cpu_contiguous(w_up) &&
                  kernel::fp32_cpu_contiguous(w_down),
              "swiglu_small_rows: fp32 contiguous CPU tensors and AVX2/FMA expected");
  const int64_t M = x.size(0), K = x.size(1), I = w_gate.size(0);
  std::vector<float> h(static_cast<size_t>(swiglu_scratch(kernels, M, K, I)));
  auto y = torch::empty({M, K}, x.options());
  swiglu_rows(x.data_ptr<float>(), M, K, I, w_gate.data_ptr<float>(), w_up.data_ptr<float>(),
              w_down.data_ptr<float>(), h.data(), y.data_ptr<float>(), kernels);
  return y;
}

std::vector<std::pair<size_t, size_t>> partition_expert_jobs(const std::vector<ExpertJob>& jobs,
                                                             int parts) {
  // A job's cost: its rows' FMAs plus one pass over its weights per block of rows, both in
  // proportion to its hidden size.
  auto cost = [](const ExpertJob& j) {
    return (j.rows + 4 * ((j.rows + kBlock - 1) / kBlock)) * j.inter;
  };
  int64_t total = 0;
  for (const auto& j : jobs) total += cost(j);
  parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(parts, jobs.size())));
  std::vector<std::pair<size_t, size_t>> out;
  size_t begin = 0;
  int64_t acc = 0;
  for (int p = 0; p < parts; ++p) {
    size_t end = jobs.size();
    if (p < parts - 1) {
      // At least one job, at least one left for each later part; then every job whose
      // cost midpoint falls within this part's share.
      const int64_t target = total * (p + 1) / parts;
      const size_t max_end = jobs.size() - static_cast<size_t>(parts - 1 - p);
      end = begin;
      do {
        acc += cost(jobs[end]);
        ++end;
      } while (end < max_end && 2 * acc + cost(jobs[end]) <= 2 * target);
    }
    out.emplace_back(begin, end);
    begin = end;
  }
  return out;
}

void swiglu_experts_small_rows(const std::vector<ExpertJob>& jobs, int64_t dim, int threads,
                               const ExecutionContext& exec) {
  TORCH_CHECK(small_rows_kernels_available(), "swiglu_experts_small_rows: AVX2/FMA expected");
  int64_t scratch = 0;
  for (const auto& j : jobs)
    scratch = std::max(scratch, j.w_gate16 ? swiglu_bf16_scratch(j.rows, dim, j.inter)
                                           : swiglu_scratch(exec.kernels, j.rows, dim, j.inter));
  const auto parts = partition_expert_jobs(jobs, std::max(threads, 1));
  auto run = [&](int p) {
    std::vector<float> h(static_cast<size_t>(scratch));  // this part's scratch
    for (size_t i = parts[p].first; i < parts[p].second; ++i) {
      const ExpertJob& j = jobs[i];
      if (j.w_gate16) {
        const auto bits = [](const at::BFloat16* w) {
          return reinterpret_cast<const uint16_t*>(w);
        };
        swiglu_bf16(j.x, j.rows, dim, j.inter, bits(j.w_gate16), bits(j.w_up16), bits(j.w_down16),
                    h.data(), j.y, exec.kernels);
        continue;
      }
      swiglu_rows(j.x, j.rows, dim, j.inter, j.w_gate, j.w_up, j.w_down, h.data(), j.y,
                  exec.kernels);
    }
  };
  exec.parallel_pool().run(static_cast<int>(parts.size()), run);
}

}  // namespace r1kit::policy
