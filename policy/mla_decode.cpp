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

// The sums of 16 vectors' lanes, in one vector: lane i holds the sum of a[i]'s 16 lanes.
// A transpose and add in registers, 45 shuffles and adds for the 16, against about 8 for
// each one alone (hsum512).
R1KIT_AVX512 inline __m512 sum16x16(const __m512 (&a)[16]) {
  constexpr __mmask16 all = 0xFFFF;
  // Per 128-bit block: [x0+x2, y0+y2, x1+x3, y1+y3] of the block's x = a[2i], y = a[2i+1].
  __m512 b[8];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i)
    b[i] = _mm512_add_ps(_mm512_maskz_unpacklo_ps(all, a[2 * i], a[2 * i + 1]),
                         _mm512_maskz_unpackhi_ps(all, a[2 * i], a[2 * i + 1]));
  // Per 128-bit block: the block's sums of a[4i], a[4i+1], a[4i+2], a[4i+3].
  __m512 c[4];
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i)
    c[i] = _mm512_add_ps(
        _mm512_maskz_shuffle_ps(all, b[2 * i], b[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
        _mm512_maskz_shuffle_ps(all, b[2 * i], b[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // Across the four blocks: block q of the result is the sum of c[q]'s blocks.
  const __m512 e01 = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, c[0], c[1], 0x44),
                                   _mm512_maskz_shuffle_f32x4(all, c[0], c[1], 0xEE));
  const __m512 e23 = _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, c[2], c[3], 0x44),
                                   _mm512_maskz_shuffle_f32x4(all, c[2], c[3], 0xEE));
  return _mm512_add_ps(_mm512_maskz_shuffle_f32x4(all, e01, e23, 0x88),
                       _mm512_maskz_shuffle_f32x4(all, e01, e23, 0xDD));
}

// acc[4 i + j] += q[i][0, K) * rows[j][0, K), lane by lane, for 4 queries and 4 rows:
// 8 loads for 16 FMAs.
R1KIT_AVX512 inline void dot4x4(const float* const (&q)[4], const float* const (&rows)[4],
                                int64_t K, __m512 (&acc)[16]) {
  for (int64_t k = 0; k < K; k += 16) {
    const __mmask16 m = lanes(K - k);
    __m512 qv[4], rv[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) {
      qv[i] = _mm512_maskz_loadu_ps(m, q[i] + k);
      rv[i] = _mm512_maskz_loadu_ps(m, rows[i] + k);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[4 * i + j] = _mm512_fmadd_ps(qv[i], rv[j], acc[4 * i + j]);
  }
}

// Rows r_i = min(first + i, n - 1) of two row-major arrays, i < 4: a[i] = a0 + r_i sa,
// b[i] = b0 + r_i sb.
inline void four_rows(const float* a0, int64_t sa, const float* b0, int64_t sb, int64_t first,
                      int64_t n, const float* (&a)[4], const float* (&b)[4]) {
  for (int i = 0; i < 4; ++i) {
    const int64_t r = std::min<int64_t>(first + i, n - 1);
    a[i] = a0 + r * sa;
    b[i] = b0 + r * sb;
  }
}

// s[h L + j] = q_lat[h] . c[j] + q_pe[h] . pe[j] for h < H, j < L (c [L, dc], pe [L, dr]
// row-major). 4 heads by 4 positions at a time, one accumulator for each pair over its
// dc + dr values, the 16 folded into one vector (sum16x16) whose 128-bit blocks are the
// heads' 4 scores. Heads past H and positions past L repeat the last one, unstored.
R1KIT_AVX512 void scores(const float* ql, const float* qp, int64_t H, int64_t dc, int64_t dr,
                         const float* c, const float* pe, int64_t L, float* s) {
  for (int64_t h0 = 0; h0 < H; h0 += 4) {
    const float* qlh[4];
    const float* qph[4];
    four_rows(ql, dc, qp, dr, h0, H, qlh, qph);
    const int64_t nh = std::min<int64_t>(4, H - h0);
    for (int64_t j0 = 0; j0 < L; j0 += 4) {
      const float* cr[4];
      const float* pr[4];
      four_rows(c, dc, pe, dr, j0, L, cr, pr);
      __m512 acc[16];
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) acc[i] = _mm512_setzero_ps();
      dot4x4(qlh, cr, dc, acc);
      dot4x4(qph, pr, dr, acc);
      alignas(64) float r[16];
      _mm512_store_ps(r, sum16x16(acc));
      const int64_t nj = std::min<int64_t>(4, L - j0);
      for (int64_t i = 0; i < nh; ++i)
        for (int64_t j = 0; j < nj; ++j) s[(h0 + i) * L + j0 + j] = r[4 * i + j];
    }
  }
}

// s[0, L) <- softmax(scale * s), in place.
R1KIT_AVX512 void scaled_softmax(float* s, int64_t L, float scale) {
  const __m512 sc = _mm512_set1_ps(scale);
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < L; j += 16) {
    const __mmask16 m = lanes(L - j);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), sc);
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
    std::vector<float> s(static_cast<size_t>(H * S));  // [H, L] scores, then the softmax
    for (int64_t b = first[p]; b < first[p + 1]; ++b) {
      const int64_t L = len[b];
      const float* cb = cp + b * c_row;
      scores(ql + b * H * dc, qp + b * H * dr, H, dc, dr, cb, pp + b * pe_row, L, s.data());
      for (int64_t h = 0; h < H; ++h) scaled_softmax(s.data() + h * L, L, sc);
      weighted_sum(s.data(), H, L, L, cb, dc, op + b * H * dc);
    }
  };
  exec.parallel_pool().run(parts, run);
  return out;
}

}  // namespace r1kit::policy
