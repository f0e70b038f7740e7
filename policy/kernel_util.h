// Helpers shared by the hand-written CPU kernels of policy/ (expert_kernels.cpp,
// mla_decode.cpp): the target attributes, lane masks and reductions for AVX-512, and the
// tensor check they all make. Internal to those files.
#pragma once

#include <immintrin.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdint>

#define R1KIT_AVX2 __attribute__((target("avx2,fma")))
#define R1KIT_AVX512 __attribute__((target("avx512f,avx2,fma")))

namespace r1kit::policy::kernel {

// The first n lanes of 16 (none for n <= 0, all for n >= 16).
inline __mmask16 lanes(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF)
                 : static_cast<__mmask16>((1u << std::max<int64_t>(n, 0)) - 1);
}

// Folds v's 16 lanes with op by halving in registers (GCC 12's _mm512_reduce_*_ps and
// unmasked shuffles read an undefined vector and warn, hence the zero-masked forms).
template <typename Op>
R1KIT_AVX512 inline float reduce16(__m512 v, Op op) {
  constexpr __mmask16 all = 0xFFFF;
  v = op(v, _mm512_maskz_shuffle_f32x4(all, v, v, 0x4E));  // 256-bit halves
  v = op(v, _mm512_maskz_shuffle_f32x4(all, v, v, 0xB1));  // 128-bit quarters
  v = op(v, _mm512_maskz_permute_ps(all, v, 0x4E));        // 64-bit pairs
  v = op(v, _mm512_maskz_permute_ps(all, v, 0xB1));        // neighbours
  return _mm512_cvtss_f32(v);
}

R1KIT_AVX512 inline __m512 add16(__m512 a, __m512 b) {
  return _mm512_add_ps(a, b);
}
R1KIT_AVX512 inline __m512 max16(__m512 a, __m512 b) {
  return _mm512_maskz_max_ps(0xFFFF, a, b);
}

// The sum and the maximum of v's 16 lanes.
R1KIT_AVX512 inline float hsum512(__m512 v) {
  return reduce16(v, add16);
}
R1KIT_AVX512 inline float hmax512(__m512 v) {
  return reduce16(v, max16);
}

// A defined fp32 tensor on the CPU.
inline bool fp32_cpu(const torch::Tensor& t) {
  return t.defined() && t.is_cpu() && t.scalar_type() == torch::kFloat;
}

}  // namespace r1kit::policy::kernel
