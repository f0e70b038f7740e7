// Helpers shared by the hand-written CPU kernels of policy/ (expert_kernels.cpp,
// mla_decode.cpp, grouped_experts.cpp, rms_norm.cpp): the target attributes, lane masks and
// reductions for AVX-512, the tensor checks they make, and the pieces of the element-wise
// kernels that are written once and compiled for three ISAs. Internal to those files.
#pragma once

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <immintrin.h>
#include <torch/torch.h>

#include <algorithm>
#include <bit>
#include <cstdint>

#include "policy/expert_kernels.h"

#define R1KIT_AVX2 __attribute__((target("avx2,fma")))
#define R1KIT_AVX512 __attribute__((target("avx512f,avx2,fma")))
// AVX-512 with the bf16 dot product (vdpbf16ps) and 16-bit element moves (BW, VL).
#define R1KIT_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma")))
#define R1KIT_INLINE inline __attribute__((always_inline))

namespace r1kit::policy::kernel {

// All 16 (or 8) lanes, for the zero-masked forms of AVX-512 intrinsics: GCC 12's unmasked
// forms of many read an undefined vector and warn.
inline constexpr __mmask16 kAll16 = 0xFFFF;
inline constexpr __mmask8 kAll8 = 0xFF;

// The first n lanes of 16 (none for n <= 0, all for n >= 16).
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? kAll16 : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

// Folds v's 16 lanes with op by halving in registers (GCC 12's _mm512_reduce_*_ps and
// unmasked shuffles read an undefined vector and warn, hence the zero-masked forms).
template <typename Op>
R1KIT_AVX512 inline float reduce16(__m512 v, Op op) {
  v = op(v, _mm512_maskz_shuffle_f32x4(kAll16, v, v, 0x4E));  // 256-bit halves
  v = op(v, _mm512_maskz_shuffle_f32x4(kAll16, v, v, 0xB1));  // 128-bit quarters
  v = op(v, _mm512_maskz_permute_ps(kAll16, v, 0x4E));        // 64-bit pairs
  v = op(v, _mm512_maskz_permute_ps(kAll16, v, 0xB1));        // neighbours
  return _mm512_cvtss_f32(v);
}

R1KIT_AVX512 inline __m512 add16(__m512 a, __m512 b) {
  return _mm512_add_ps(a, b);
}
R1KIT_AVX512 inline __m512 max16(__m512 a, __m512 b) {
  return _mm512_maskz_max_ps(kAll16, a, b);
}

// The sum and the maximum of v's 16 lanes.
R1KIT_AVX512 inline float hsum512(__m512 v) {
  return reduce16(v, add16);
}
R1KIT_AVX512 inline float hmax512(__m512 v) {
  return reduce16(v, max16);
}

// exp(x) on 16 lanes: Cephes' expf (x = n ln 2 + r, |r| <= ln 2 / 2, a degree-6
// polynomial in r), within 2 ulp of std::exp. x is clamped to [-87, 88], so it never
// overflows and the smallest result is e^-87 (~1.6e-38) rather than 0.
R1KIT_AVX512 inline __m512 exp16(__m512 x) {
  // Zero-masked forms throughout (kAll16 above).
  x = _mm512_maskz_max_ps(kAll16, _mm512_maskz_min_ps(kAll16, x, _mm512_set1_ps(88.0f)),
                          _mm512_set1_ps(-87.0f));
  const __m512 n =
      _mm512_maskz_roundscale_ps(kAll16, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // ln 2 in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_maskz_slli_epi32(
      kAll16, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(kAll16, n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

// A defined fp32 tensor on the CPU.
inline bool fp32_cpu(const torch::Tensor& t) {
  return t.defined() && t.is_cpu() && t.scalar_type() == torch::kFloat;
}

// fp32_cpu and contiguous: what the raw-pointer loops read.
inline bool fp32_cpu_contiguous(const torch::Tensor& t) {
  return fp32_cpu(t) && t.is_contiguous();
}

// ---------------------------------------------------------------------------------
// Element-wise kernels on raw memory. Each body is written once as plain loops, compiled
// for AVX-512, AVX2/FMA and the baseline ISA (a wrapper per ISA with the target attribute
// above) and chosen at run time by pick(). Elements are stored as S: float, or uint16_t
// holding a bf16's bits (converted here without branches, so that the loops vectorize;
// c10::BFloat16's own conversion does not).

R1KIT_INLINE float ld(float v) {
  return v;
}
R1KIT_INLINE float ld(uint16_t v) {
  return std::bit_cast<float>(static_cast<uint32_t>(v) << 16);
}
template <typename S>
R1KIT_INLINE S st(float f);
template <>
R1KIT_INLINE float st<float>(float f) {
  return f;
}
// Round to nearest even, as c10::BFloat16 does; a NaN stays a (quiet) NaN.
template <>
R1KIT_INLINE uint16_t st<uint16_t>(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  const uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  const uint32_t nan = (u >> 16) | 0x40u;
  const uint32_t is_nan = 0u - static_cast<uint32_t>((u & 0x7FFFFFFFu) > 0x7F800000u);
  return static_cast<uint16_t>((nan & is_nan) | (rounded & ~is_nan));
}

// Blocks of bf16 go through fp32 buffers: the compiler vectorizes the conversions and the
// fp32 loops apart, not a loop that mixes 16- and 32-bit lanes with exp's integer steps.
constexpr int64_t kBf16Block = 256;

R1KIT_INLINE void widen(float* __restrict dst, const uint16_t* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = ld(src[i]);
}
R1KIT_INLINE void narrow(uint16_t* __restrict dst, const float* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = st<uint16_t>(src[i]);
}

// One of a kernel's three forms, by the CPU (checked once).
template <typename F>
F pick(F f512, F f256, F base) {
  static const int isa = small_rows_avx512_available() ? 2 : small_rows_kernels_available() ? 1 : 0;
  return isa == 2 ? f512 : isa == 1 ? f256 : base;
}

// fp32 or bf16, on the CPU: the dtypes the loops above take.
inline bool f32_or_bf16_cpu(const torch::Tensor& t) {
  return t.is_cpu() && (t.scalar_type() == torch::kFloat || t.scalar_type() == torch::kBFloat16);
}

// Calls fn with a null pointer of the storage type of dtype: float (fp32) or uint16_t
// (bf16).
template <typename Fn>
void dispatch_f32_bf16(torch::ScalarType dtype, const Fn& fn) {
  if (dtype == torch::kFloat)
    fn(static_cast<float*>(nullptr));
  else
    fn(static_cast<uint16_t*>(nullptr));
}

// Elements per parallel chunk of the element-wise loops, and the rows of `width`
// elements that make one (at least 1).
constexpr int64_t kElemGrain = 32768;
inline int64_t row_grain(int64_t width) {
  return std::max<int64_t>(1, kElemGrain / std::max<int64_t>(width, 1));
}

// Inside an autograd node whose kernels choose their dtypes themselves: CPU autocast off
// for the ops there (construct with c10::DispatchKey::AutocastCPU).
using NoAutocast = c10::impl::ExcludeDispatchKeyGuard;

// t's elements as storage type S (t fp32 for float, bf16 for uint16_t).
template <typename S>
S* data_as(const torch::Tensor& t) {
  return static_cast<S*>(t.data_ptr());
}

}  // namespace r1kit::policy::kernel
