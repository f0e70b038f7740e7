// Fused absorbed-MLA decode attention; see mla_decode.h.
#include "policy/mla_decode.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/parallel.h"
#include "policy/expert_kernels.h"
#include "policy/kernel_util.h"

namespace r1kit::policy {
namespace {

using kernel::exp16;
using kernel::fp32_cpu;
using kernel::hmax512;
using kernel::hsum512;
using kernel::lanes;

// s[0, L) <- softmax(scale * (s + t)), in place.
R1KIT_AVX512 void scaled_softmax(float* s, const float* t, int64_t L, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < L; j += 16) {
    const __mmask16 m = lanes(L - j);
    const __m512 v = _mm512_mul_ps(
        _mm512_add_ps(_mm512_maskz_loadu_ps(m, s + j), _mm512_maskz_loadu_ps(m, t + j)), sc);
    _mm512_mask_storeu_ps(s + j, m, v);
    mx = _mm512_mask_max_ps(mx, m, mx, v);
  }
  const __m512 vmax = _mm512_set1_ps(hmax512(mx));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < L; j += 16) {
    const __mmask16 m = lanes(L - j);
    const __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + j), vmax));
    _mm512_mask_storeu_ps(s + j, m, e);
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  const __m512 inv = _mm512_set1_ps(1.0f / hsum512(sum));
  for (int64_t j = 0; j < L; j += 16) {
    const __mmask16 m = lanes(L - j);
    _mm512_mask_storeu_ps(s + j, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), inv));
  }
}

// o [H, dc] = p [H, L] (row stride ldp) times c [L, dc] (row stride dc): 4 heads by 64
// latent dims at a time, 16 accumulators, one load of c per 4 FMAs.
R1KIT_AVX512 void weighted_sum(const float* p, int64_t H, int64_t L, int64_t ldp, const float* c,
                               int64_t dc, float* o) {
  constexpr int kHeads = 4, kVecs = 4;
  for (int64_t h0 = 0; h0 < H; h0 += kHeads) {
    const float* ph[kHeads];
    for (int i = 0; i < kHeads; ++i) ph[i] = p + std::min(h0 + i, H - 1) * ldp;
    for (int64_t d0 = 0; d0 < dc; d0 += 16 * kVecs) {
      __mmask16 m[kVecs];
      __m512 acc[kHeads][kVecs];
      for (int v = 0; v < kVecs; ++v) {
        m[v] = lanes(dc - d0 - 16 * v);
        for (int i = 0; i < kHeads; ++i) acc[i][v] = _mm512_setzero_ps();
      }
      for (int64_t j = 0; j < L; ++j) {
        const float* cj = c + j * dc + d0;
        __m512 w[kHeads];
        for (int i = 0; i < kHeads; ++i) w[i] = _mm512_set1_ps(ph[i][j]);
#pragma GCC unroll 4
        for (int v = 0; v < kVecs; ++v) {
          const __m512 cv = _mm512_maskz_loadu_ps(m[v], cj + 16 * v);
#pragma GCC unroll 4
          for (int i = 0; i < kHeads; ++i) acc[i][v] = _mm512_fmadd_ps(w[i], cv, acc[i][v]);
        }
      }
      for (int i = 0; i < kHeads && h0 + i < H; ++i)
        for (int v = 0; v < kVecs; ++v)
          _mm512_mask_storeu_ps(o + (h0 + i) * dc + d0 + 16 * v, m[v], acc[i][v]);
    }
  }
}

}  // namespace

bool mla_decode_kernel_applies(const torch::Tensor& q_lat, const torch::Tensor& q_pe,
                               const torch::Tensor& c, const torch::Tensor& pe,
                               const KernelChoices& kernels) {
  return kernels.mla_decode && small_rows_avx512_available() && !torch::GradMode::is_enabled() &&
         fp32_cpu(q_lat) && fp32_cpu(q_pe) && fp32_cpu(c) && fp32_cpu(pe) && c.dim() == 3 &&
         pe.dim() == 3 && c.stride(2) == 1 && c.stride(1) == c.size(2) && pe.stride(2) == 1 &&
         pe.stride(1) == pe.size(2);
}

torch::Tensor mla_decode_attention(const torch::Tensor& q_lat_in, const torch::Tensor& q_pe_in,
                                   const torch::Tensor& c, const torch::Tensor& pe,
                                   const torch::Tensor& lengths_in, double scale,
                                   const ExecutionContext& exec) {
  TORCH_CHECK(mla_decode_kernel_applies(q_lat_in, q_pe_in, c, pe, exec.kernels),
              "mla_decode_attention: AVX-512, kernels.mla_decode, no autograd, fp32 CPU tensors "
              "with row-contiguous caches expected");
  TORCH_CHECK(q_lat_in.dim() == 3 && q_pe_in.dim() == 3,
              "mla_decode_attention: q_lat [B, H, dc] and q_pe [B, H, dr] expected");
  const int64_t B = q_lat_in.size(0), H = q_lat_in.size(1), dc = q_lat_in.size(2);
  const int64_t dr = q_pe_in.size(2), S = c.size(1);
  TORCH_CHECK(q_pe_in.size(0) == B && q_pe_in.size(1) == H && c.size(0) >= B && c.size(2) == dc &&
                  pe.size(0) >= B && pe.size(1) == S && pe.size(2) == dr,
              "mla_decode_attention: q_lat [B, H, dc], q_pe [B, H, dr], c [B, S, dc], pe [B, S, "
              "dr] expected");
  const auto q_lat = q_lat_in.contiguous(), q_pe = q_pe_in.contiguous();
  const auto lengths = lengths_in.to(torch::kLong).contiguous();
  TORCH_CHECK(lengths.is_cpu() && lengths.numel() == B, "mla_decode_attention: lengths [B]");
  const int64_t* len = lengths.data_ptr<int64_t>();
  int64_t total = 0;
  for (int64_t b = 0; b < B; ++b) {
    TORCH_CHECK(len[b] >= 1 && len[b] <= S, "mla_decode_attention: lengths[", b, "] = ", len[b],
                " is outside [1, ", S, "]");
    total += len[b];
  }
  auto out = torch::empty({B, H, dc}, q_lat.options());
  if (B == 0) return out;
  const float* ql = q_lat.data_ptr<float>();
  const float* qp = q_pe.data_ptr<float>();
  const float* cp = c.data_ptr<float>();
  const float* pp = pe.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const int64_t c_row = c.stride(0), pe_row = pe.stride(0);
  const auto sc = static_cast<float>(scale);

  // Contiguous ranges of rows of about equal total length, one per part.
  const int parts = static_cast<int>(std::clamp<int64_t>(exec.decode_threads, 1, B));
  std::vector<int64_t> first(parts + 1, B);
  first[0] = 0;
  for (int64_t b = 0, acc = 0, p = 1; b < B && p < parts; ++b) {
    acc += len[b];
    if (acc * parts >= total * p) first[p++] = b + 1;
  }
  auto run = [&](int p) {
    std::vector<float> s(static_cast<size_t>(2 * H * S));
    float* s1 = s.data();    // [H, L] latent scores, then the softmax
    float* s2 = s1 + H * S;  // [H, L] RoPE scores
    for (int64_t b = first[p]; b < first[p + 1]; ++b) {
      const int64_t L = len[b];
      const float* cb = cp + b * c_row;
      linear_rows_raw(ql + b * H * dc, H, dc, cb, L, s1, exec.kernels);
      linear_rows_raw(qp + b * H * dr, H, dr, pp + b * pe_row, L, s2, exec.kernels);
      for (int64_t h = 0; h < H; ++h) scaled_softmax(s1 + h * L, s2 + h * L, L, sc);
      weighted_sum(s1, H, L, L, cb, dc, op + b * H * dc);
    }
  };
  exec.parallel_pool().run(parts, run);
  return out;
}

}  // namespace r1kit::policy
