// Grouped routed experts with autograd; see grouped_experts.h.
#include "policy/grouped_experts.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/torch_compat.h"
#include "policy/expert_kernels.h"
#include "policy/kernel_util.h"

namespace r1kit::policy {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// e^x as Cephes' expf computes it (x clamped to [-87.3, 88.3], where e^x is a normal
// float): x = n ln2 + r with |r| <= ln2/2, e^r by a degree-7 polynomial, times 2^n put
// into the exponent bits. Relative error about 1e-7; written without library calls and
// branches so that the loops below vectorize. n is rounded by adding and subtracting
// 1.5 * 2^23 (exact for |x log2 e| < 2^22; the compiler may not reassociate it).
R1KIT_INLINE float ge_exp(float x) {
  x = std::min(std::max(x, -87.3f), 88.3f);
  const float fn = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = x - fn * 0.693359375f + fn * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t n = static_cast<int32_t>(fn);
  return p * std::bit_cast<float>(static_cast<int32_t>((n + 127) << 23));
}

R1KIT_INLINE float ge_sigmoid(float g) {
  return 1.0f / (1.0f + ge_exp(-g));
}

// a = silu(g) u, on fp32.
R1KIT_INLINE void swiglu_fwd_f32(const float* __restrict g, const float* __restrict u,
                                 float* __restrict a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = g[i] * ge_sigmoid(g[i]) * u[i];
}

// From g, u and da = dL/da, on fp32: dg = da u s (1 + g (1 - s)) with s = sigmoid(g),
// du = da silu(g), and (when a is given) a = silu(g) u.
R1KIT_INLINE void swiglu_bwd_f32(const float* __restrict g, const float* __restrict u,
                                 const float* __restrict da, float* __restrict dg,
                                 float* __restrict du, float* __restrict a, int64_t n) {
  if (a) {  // one pass, one exp per element for all three (two loops: both vectorize)
    for (int64_t i = 0; i < n; ++i) {
      const float s = ge_sigmoid(g[i]), sl = g[i] * s;
      dg[i] = da[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
      du[i] = da[i] * sl;
      a[i] = sl * u[i];
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const float s = ge_sigmoid(g[i]), sl = g[i] * s;
      dg[i] = da[i] * u[i] * s * (1.0f + g[i] * (1.0f - s));
      du[i] = da[i] * sl;
    }
  }
}

template <typename S>
R1KIT_INLINE void swiglu_fwd_body(const S* __restrict g, const S* __restrict u, S* __restrict a,
                                  int64_t n) {
  if constexpr (std::is_same_v<S, float>) {
    swiglu_fwd_f32(g, u, a, n);
  } else {
    float gb[kernel::kBf16Block], ub[kernel::kBf16Block], ab[kernel::kBf16Block];
    for (int64_t i = 0; i < n; i += kernel::kBf16Block) {
      const int64_t m = std::min(kernel::kBf16Block, n - i);
      kernel::widen(gb, g + i, m);
      kernel::widen(ub, u + i, m);
      swiglu_fwd_f32(gb, ub, ab, m);
      kernel::narrow(a + i, ab, m);
    }
  }
}

template <typename S>
R1KIT_INLINE void swiglu_bwd_body(const S* __restrict g, const S* __restrict u,
                                  const S* __restrict da, S* __restrict dg, S* __restrict du,
                                  S* __restrict a, int64_t n) {
  if constexpr (std::is_same_v<S, float>) {
    swiglu_bwd_f32(g, u, da, dg, du, a, n);
  } else {
    float gb[kernel::kBf16Block], ub[kernel::kBf16Block], dab[kernel::kBf16Block],
        dgb[kernel::kBf16Block], dub[kernel::kBf16Block], ab[kernel::kBf16Block];
    for (int64_t i = 0; i < n; i += kernel::kBf16Block) {
      const int64_t m = std::min(kernel::kBf16Block, n - i);
      kernel::widen(gb, g + i, m);
      kernel::widen(ub, u + i, m);
      kernel::widen(dab, da + i, m);
      swiglu_bwd_f32(gb, ub, dab, dgb, dub, a ? ab : nullptr, m);
      kernel::narrow(dg + i, dgb, m);
      kernel::narrow(du + i, dub, m);
      if (a) kernel::narrow(a + i, ab, m);
    }
  }
}

// acc = a r (first) or acc += a r, over d elements.
template <typename S>
R1KIT_INLINE void ge_axpy(float* __restrict acc, const S* __restrict r, float a, int64_t d,
                          bool first) {
  if (first)
    for (int64_t j = 0; j < d; ++j) acc[j] = a * kernel::ld(r[j]);
  else
    for (int64_t j = 0; j < d; ++j) acc[j] += a * kernel::ld(r[j]);
}

template <typename S>
R1KIT_INLINE void ge_store_row(S* __restrict o, const float* __restrict acc, int64_t d) {
  for (int64_t j = 0; j < d; ++j) o[j] = kernel::st<S>(acc[j]);
}

// Rows [n0, n1) of out [N, d]: out[n] = Σ_k w[n K + k] src[pos[n K + k]] (w null: 1),
// summed in fp32 in acc [d].
template <typename Ss, typename So>
R1KIT_INLINE void combine_body(const Ss* __restrict src, const int64_t* __restrict pos,
                               const float* __restrict w, int64_t K, int64_t d, So* __restrict out,
                               int64_t n0, int64_t n1, float* __restrict acc) {
  for (int64_t n = n0; n < n1; ++n) {
    for (int64_t k = 0; k < K; ++k)
      ge_axpy(acc, src + pos[n * K + k] * d, w ? w[n * K + k] : 1.0f, d, k == 0);
    ge_store_row(out + n * d, acc, d);
  }
}

// o = a r over d elements; returns r . y (fp32, 16 partial sums).
template <typename Sd, typename Sc>
R1KIT_INLINE float ge_scale_dot(Sc* __restrict o, const Sd* __restrict r, const Sc* __restrict y,
                                float a, int64_t d) {
  for (int64_t j = 0; j < d; ++j) o[j] = kernel::st<Sc>(a * kernel::ld(r[j]));
  float part[16] = {};
  int64_t j = 0;
  for (; j + 16 <= d; j += 16)
    for (int l = 0; l < 16; ++l) part[l] += kernel::ld(r[j + l]) * kernel::ld(y[j + l]);
  for (; j < d; ++j) part[0] += kernel::ld(r[j]) * kernel::ld(y[j]);
  float s = 0.0f;
  for (int l = 0; l < 16; ++l) s += part[l];
  return s;
}

// Sorted rows [p0, p1): with t = tok[p], dyw[p] = ws[p] dy[t] and dws[p] = dy[t] . y[p].
template <typename Sd, typename Sc>
R1KIT_INLINE void gather_scale_dot_body(const Sd* __restrict dy, const int64_t* __restrict tok,
                                        const float* __restrict ws, const Sc* __restrict y,
                                        int64_t d, Sc* __restrict dyw, float* __restrict dws,
                                        int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p)
    dws[p] = ge_scale_dot(dyw + p * d, dy + tok[p] * d, y + p * d, ws[p], d);
}

// Each kernel in three forms: AVX-512, AVX2/FMA and the baseline ISA. kernel::pick chooses by
// the CPU (checked once).
template <typename T>
R1KIT_AVX512 void swiglu_fwd_512(const T* g, const T* u, T* a, int64_t n) {
  swiglu_fwd_body(g, u, a, n);
}
template <typename T>
R1KIT_AVX2 void swiglu_fwd_256(const T* g, const T* u, T* a, int64_t n) {
  swiglu_fwd_body(g, u, a, n);
}
template <typename T>
void swiglu_fwd_base(const T* g, const T* u, T* a, int64_t n) {
  swiglu_fwd_body(g, u, a, n);
}
template <typename T>
R1KIT_AVX512 void swiglu_bwd_512(const T* g, const T* u, const T* da, T* dg, T* du, T* a,
                                 int64_t n) {
  swiglu_bwd_body(g, u, da, dg, du, a, n);
}
template <typename T>
R1KIT_AVX2 void swiglu_bwd_256(const T* g, const T* u, const T* da, T* dg, T* du, T* a, int64_t n) {
  swiglu_bwd_body(g, u, da, dg, du, a, n);
}
template <typename T>
void swiglu_bwd_base(const T* g, const T* u, const T* da, T* dg, T* du, T* a, int64_t n) {
  swiglu_bwd_body(g, u, da, dg, du, a, n);
}
template <typename Ts, typename To>
R1KIT_AVX512 void combine_512(const Ts* src, const int64_t* pos, const float* w, int64_t K,
                              int64_t d, To* out, int64_t n0, int64_t n1, float* acc) {
  combine_body(src, pos, w, K, d, out, n0, n1, acc);
}
template <typename Ts, typename To>
R1KIT_AVX2 void combine_256(const Ts* src, const int64_t* pos, const float* w, int64_t K, int64_t d,
                            To* out, int64_t n0, int64_t n1, float* acc) {
  combine_body(src, pos, w, K, d, out, n0, n1, acc);
}
template <typename Ts, typename To>
void combine_base(const Ts* src, const int64_t* pos, const float* w, int64_t K, int64_t d, To* out,
                  int64_t n0, int64_t n1, float* acc) {
  combine_body(src, pos, w, K, d, out, n0, n1, acc);
}
template <typename Td, typename Tc>
R1KIT_AVX512 void gather_scale_dot_512(const Td* dy, const int64_t* tok, const float* ws,
                                       const Tc* y, int64_t d, Tc* dyw, float* dws, int64_t p0,
                                       int64_t p1) {
  gather_scale_dot_body(dy, tok, ws, y, d, dyw, dws, p0, p1);
}
template <typename Td, typename Tc>
R1KIT_AVX2 void gather_scale_dot_256(const Td* dy, const int64_t* tok, const float* ws, const Tc* y,
                                     int64_t d, Tc* dyw, float* dws, int64_t p0, int64_t p1) {
  gather_scale_dot_body(dy, tok, ws, y, d, dyw, dws, p0, p1);
}
template <typename Td, typename Tc>
void gather_scale_dot_base(const Td* dy, const int64_t* tok, const float* ws, const Tc* y,
                           int64_t d, Tc* dyw, float* dws, int64_t p0, int64_t p1) {
  gather_scale_dot_body(dy, tok, ws, y, d, dyw, dws, p0, p1);
}

using kernel::kElemGrain;
using kernel::row_grain;

torch::Tensor swiglu_forward_impl(const torch::Tensor& g, const torch::Tensor& u) {
  if (!(kernel::f32_or_bf16_cpu(g) && g.scalar_type() == u.scalar_type()))
    return torch::silu(g) * u;
  auto gc = g.contiguous(), uc = u.contiguous();
  auto a = torch::empty_like(gc);
  kernel::dispatch_f32_bf16(g.scalar_type(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* gp = kernel::data_as<T>(gc);
    const T* up = kernel::data_as<T>(uc);
    T* ap = kernel::data_as<T>(a);
    at::parallel_for(0, gc.numel(), kElemGrain, [&](int64_t b, int64_t e) {
      kernel::pick(swiglu_fwd_512<T>, swiglu_fwd_256<T>, swiglu_fwd_base<T>)(gp + b, up + b, ap + b,
                                                                             e - b);
    });
  });
  return a;
}

// {dg, du, a}; a only when want_a.
std::vector<torch::Tensor> swiglu_backward_impl(const torch::Tensor& g, const torch::Tensor& u,
                                                const torch::Tensor& da, bool want_a) {
  if (!(kernel::f32_or_bf16_cpu(g) && g.scalar_type() == u.scalar_type() &&
        g.scalar_type() == da.scalar_type())) {
    auto s = torch::sigmoid(g);
    auto sl = g * s;
    auto dg = da * u * s * (1 + g * (1 - s));
    auto du = da * sl;
    return {dg, du, want_a ? sl * u : torch::Tensor()};
  }
  auto gc = g.contiguous(), uc = u.contiguous(), dac = da.contiguous();
  auto dg = torch::empty_like(gc), du = torch::empty_like(gc);
  torch::Tensor a = want_a ? torch::empty_like(gc) : torch::Tensor();
  kernel::dispatch_f32_bf16(g.scalar_type(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* gp = kernel::data_as<T>(gc);
    const T* up = kernel::data_as<T>(uc);
    const T* dap = kernel::data_as<T>(dac);
    T* dgp = kernel::data_as<T>(dg);
    T* dup = kernel::data_as<T>(du);
    T* ap = want_a ? kernel::data_as<T>(a) : nullptr;
    at::parallel_for(0, gc.numel(), kElemGrain, [&](int64_t b, int64_t e) {
      kernel::pick(swiglu_bwd_512<T>, swiglu_bwd_256<T>, swiglu_bwd_base<T>)(
          gp + b, up + b, dap + b, dgp + b, dup + b, ap ? ap + b : nullptr, e - b);
    });
  });
  return {dg, du, a};
}

// The routed experts' SwiGLU over gate and up side by side: gu [R, 2I] holds each row's
// gate activations in its first I columns and its up activations in the last I (one GEMM
// per expert computes both). Writes a [R, I] = silu(gate) * up (contiguous: a tensor or a
// block of its rows).
void swiglu_rows_forward(const torch::Tensor& gu, torch::Tensor& a) {
  TORCH_INTERNAL_ASSERT(a.is_contiguous());
  const int64_t I = gu.size(1) / 2;
  if (!kernel::f32_or_bf16_cpu(gu)) {
    a.copy_(swiglu_forward_impl(gu.narrow(1, 0, I), gu.narrow(1, I, I)));
    return;
  }
  auto guc = gu.contiguous();
  const int64_t R = guc.size(0);
  kernel::dispatch_f32_bf16(gu.scalar_type(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* gp = kernel::data_as<T>(guc);
    T* ap = kernel::data_as<T>(a);
    const auto fn = kernel::pick(swiglu_fwd_512<T>, swiglu_fwd_256<T>, swiglu_fwd_base<T>);
    at::parallel_for(0, R, row_grain(I), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) fn(gp + r * 2 * I, gp + r * 2 * I + I, ap + r * I, I);
    });
  });
}

// Backward of swiglu_rows_forward: writes dgu [R, 2I] (the gate's gradient in the first I
// columns, the up's in the last I) and a [R, I] (both contiguous) from gu and da [R, I].
void swiglu_rows_backward(const torch::Tensor& gu, const torch::Tensor& da, torch::Tensor& dgu,
                          torch::Tensor& a) {
  TORCH_INTERNAL_ASSERT(dgu.is_contiguous() && a.is_contiguous());
  const int64_t I = gu.size(1) / 2;
  if (!(kernel::f32_or_bf16_cpu(gu) && gu.scalar_type() == da.scalar_type())) {
    auto r = swiglu_backward_impl(gu.narrow(1, 0, I), gu.narrow(1, I, I), da, /*want_a=*/true);
    dgu.narrow(1, 0, I).copy_(r[0]);
    dgu.narrow(1, I, I).copy_(r[1]);
    a.copy_(r[2]);
    return;
  }
  auto guc = gu.contiguous(), dac = da.contiguous();
  const int64_t R = guc.size(0);
  kernel::dispatch_f32_bf16(gu.scalar_type(), [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    const T* gp = kernel::data_as<T>(guc);
    const T* dap = kernel::data_as<T>(dac);
    T* dgp = kernel::data_as<T>(dgu);
    T* ap = kernel::data_as<T>(a);
    const auto fn = kernel::pick(swiglu_bwd_512<T>, swiglu_bwd_256<T>, swiglu_bwd_base<T>);
    at::parallel_for(0, R, row_grain(I), [&](int64_t b, int64_t e) {
      for (int64_t r = b; r < e; ++r) {
        const int64_t o = r * 2 * I;
        fn(gp + o, gp + o + I, dap + r * I, dgp + o, dgp + o + I, ap + r * I, I);
      }
    });
  });
}

// out [N, d] in out_dtype: out[n] = Σ_k w[n, k] src[pos[n K + k]] (w undefined: 1).
torch::Tensor combine_rows(const torch::Tensor& src, const torch::Tensor& pos,
                           const torch::Tensor& w, int64_t N, int64_t K,
                           torch::ScalarType out_dtype) {
  const int64_t d = src.size(1);
  const bool fast = kernel::f32_or_bf16_cpu(src) && pos.is_cpu() &&
                    (out_dtype == torch::kFloat || out_dtype == torch::kBFloat16) &&
                    (!w.defined() || (w.is_cpu() && w.scalar_type() == torch::kFloat));
  if (!fast) {
    auto rows = src.index_select(0, pos).view({N, K, d}).to(torch::kFloat);
    if (w.defined()) rows = rows * w.reshape({N, K, 1}).to(torch::kFloat);
    return rows.sum(1).to(out_dtype);
  }
  auto s = src.contiguous();
  auto wc = w.defined() ? w.reshape({N * K}).contiguous() : torch::Tensor();
  auto out = torch::empty({N, d}, s.options().dtype(out_dtype));
  const int64_t* pp = pos.data_ptr<int64_t>();
  const float* wp = wc.defined() ? wc.data_ptr<float>() : nullptr;
  kernel::dispatch_f32_bf16(s.scalar_type(), [&](auto* stag) {
    using Ts = std::remove_pointer_t<decltype(stag)>;
    kernel::dispatch_f32_bf16(out_dtype, [&](auto* otag) {
      using To = std::remove_pointer_t<decltype(otag)>;
      const Ts* sp = kernel::data_as<Ts>(s);
      To* op = kernel::data_as<To>(out);
      at::parallel_for(0, N, row_grain(K * d), [&](int64_t b, int64_t e) {
        std::vector<float> acc(d);
        kernel::pick(combine_512<Ts, To>, combine_256<Ts, To>, combine_base<Ts, To>)(
            sp, pp, wp, K, d, op, b, e, acc.data());
      });
    });
  });
  return out;
}

// {dyw [NK, d] in y's dtype, dws [NK] fp32}: dyw[p] = ws[p] dy[tok[p]], dws[p] =
// dy[tok[p]] . y[p].
std::pair<torch::Tensor, torch::Tensor> gather_scale_dot(const torch::Tensor& dy,
                                                         const torch::Tensor& tok,
                                                         const torch::Tensor& ws,
                                                         const torch::Tensor& y) {
  const int64_t NK = y.size(0), d = y.size(1);
  const bool fast = kernel::f32_or_bf16_cpu(dy) && kernel::f32_or_bf16_cpu(y) && tok.is_cpu() &&
                    ws.is_cpu() && ws.scalar_type() == torch::kFloat;
  if (!fast) {
    auto r = dy.index_select(0, tok);
    auto dws = (r.to(torch::kFloat) * y.to(torch::kFloat)).sum(-1);
    return {(r.to(torch::kFloat) * ws.to(torch::kFloat).unsqueeze(1)).to(y.scalar_type()), dws};
  }
  auto dyc = dy.contiguous(), yc = y.contiguous(), wsc = ws.contiguous();
  auto dyw = torch::empty({NK, d}, yc.options());
  auto dws = torch::empty({NK}, wsc.options());
  const int64_t* tp = tok.data_ptr<int64_t>();
  const float* wp = wsc.data_ptr<float>();
  float* dwp = dws.data_ptr<float>();
  kernel::dispatch_f32_bf16(dyc.scalar_type(), [&](auto* dtag) {
    using Td = std::remove_pointer_t<decltype(dtag)>;
    kernel::dispatch_f32_bf16(yc.scalar_type(), [&](auto* ctag) {
      using Tc = std::remove_pointer_t<decltype(ctag)>;
      const Td* dp = kernel::data_as<Td>(dyc);
      const Tc* yp = kernel::data_as<Tc>(yc);
      Tc* op = kernel::data_as<Tc>(dyw);
      at::parallel_for(0, NK, row_grain(d), [&](int64_t b, int64_t e) {
        kernel::pick(gather_scale_dot_512<Td, Tc>, gather_scale_dot_256<Td, Tc>,
                     gather_scale_dot_base<Td, Tc>)(dp, tp, wp, yp, d, op, dwp, b, e);
      });
    });
  });
  return {dyw, dws};
}

// ---------------------------------------------------------------------------------
// Autograd functions

// oneDNN, which runs LibTorch's bf16 GEMMs on the CPU, builds (JIT-compiles) a kernel
// for every new GEMM shape, about 0.3 ms each, and its cache only helps shapes seen before.
// An expert's row count changes with every batch, so each expert's block of rows is
// padded with zero rows to a multiple of kBf16RowAlign: a few dozen shapes a run instead of
// new ones every step (docs/model.md, "Grouped training path"). fp32 GEMMs (OpenBLAS in
// Debian's LibTorch) build nothing and are not padded.
constexpr int64_t kBf16RowAlign = 32;

// The routing of one call, sorted by expert. Rows are the sorted (token, slot) pairs,
// expert by expert; each expert's block is padded with zero rows to `rows[e]` (a
// multiple of the alignment; 0 for an expert without tokens), NKp rows in all.
struct GroupPlan {
  int64_t N = 0, K = 0, E = 0, NKp = 0;
  torch::Tensor order;        // [N K] int64: the pair n K + k at each unpadded sorted position
  torch::Tensor padded_of;    // [N K] int64: the row of unpadded sorted position q (undefined
                              // when nothing is padded)
  torch::Tensor token_of;     // [NKp] int64: each row's token n (padding rows: token 0)
  torch::Tensor pos;          // [N K] int64: the row of pair n K + k
  std::vector<int64_t> rows;  // [E] rows per expert, padding included
  std::vector<int64_t> pads;  // [E] of which padding
  torch::ScalarType compute = torch::kFloat;
};

using kernel::NoAutocast;

// Calls fn(e, off, c) for every expert e with rows (c of them, from row off of the sorted
// rows), sharing the experts among LibTorch's intra-op threads: largest first, each
// thread taking the next when it is done. Each call runs on one thread, so the GEMMs in
// it do too. An expert's GEMMs are about a hundred rows; split over two threads, each
// spends more of its time in the library's per-call set-up and barriers than in work,
// while one GEMM a thread runs near the single-thread rate (bench/RESULTS.md, "Experts
// over threads"). The pool's threads do not inherit the caller's grad mode or autocast
// state, so fn runs without both, as the autograd functions below do. Off the CPU the
// experts run one after another.
template <typename Fn>
void for_each_expert(const std::vector<int64_t>& rows, bool cpu, Fn&& fn) {
  struct Block {
    int64_t e, off, c;
  };
  std::vector<Block> blocks;
  for (int64_t e = 0, off = 0; e < static_cast<int64_t>(rows.size()); off += rows[e++])
    if (rows[e] > 0) blocks.push_back({e, off, rows[e]});
  std::stable_sort(blocks.begin(), blocks.end(),
                   [](const Block& a, const Block& b) { return a.c > b.c; });
  std::atomic<size_t> next{0};
  at::parallel_for(0, cpu ? at::get_num_threads() : 1, 1, [&](int64_t, int64_t) {
    torch::NoGradGuard no_grad;
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    for (size_t i; (i = next.fetch_add(1)) < blocks.size();)
      fn(blocks[i].e, blocks[i].off, blocks[i].c);
  });
}

class SwigluFn : public torch::autograd::Function<SwigluFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& g,
                               const torch::Tensor& u) {
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    ctx->save_for_backward({g, u});
    return swiglu_forward_impl(g, u);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    auto saved = ctx->get_saved_variables();
    auto r = swiglu_backward_impl(saved[0], saved[1], grads[0].to(saved[0].scalar_type()),
                                  /*want_a=*/false);
    return {r[0], r[1]};
  }
};

class GroupedExpertsFn : public torch::autograd::Function<GroupedExpertsFn> {
 public:
  // params: the E gate weights, then the E up weights, then the E down weights.
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& w,
                               at::TensorList params, const GroupPlan& plan) {
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    const int64_t E = plan.E, NKp = plan.NKp, d = x.size(1);
    const int64_t I = params[0].size(0);
    auto X = x.to(plan.compute).index_select(0, plan.token_of);  // [NKp, d]
    int64_t off = 0;
    for (int64_t e = 0; e < E; ++e) {  // padding rows are zero
      off += plan.rows[e];
      if (plan.pads[e] > 0) X.narrow(0, off - plan.pads[e], plan.pads[e]).zero_();
    }
    // Per active expert its gate and up weights stacked, [2I, d] in the compute dtype (the
    // cast autocast would make anyway), so that one GEMM gives both: GU [NKp, 2I].
    // wc: E stacked gate-up weights, then E down weights (inactive experts: undefined).
    std::vector<torch::Tensor> wc(2 * E);
    auto GU = torch::empty({NKp, 2 * I}, X.options());
    auto A = torch::empty({NKp, I}, X.options());
    auto Y = torch::empty({NKp, d}, X.options());
    for_each_expert(plan.rows, X.is_cpu(), [&](int64_t e, int64_t off, int64_t c) {
      wc[e] = torch::empty({2 * I, d}, X.options());
      wc[e].narrow(0, 0, I).copy_(params[e]);
      wc[e].narrow(0, I, I).copy_(params[E + e]);
      wc[E + e] = params[2 * E + e].to(plan.compute);
      auto gue = GU.narrow(0, off, c), ae = A.narrow(0, off, c), ye = Y.narrow(0, off, c);
      torch::mm_out(gue, X.narrow(0, off, c), wc[e].t());
      swiglu_rows_forward(gue, ae);
      torch::mm_out(ye, ae, wc[E + e].t());
    });
    auto y = combine_rows(Y, plan.pos, w, plan.N, plan.K, x.scalar_type());
    variable_list save{X, GU, Y, w, plan.order, plan.token_of, plan.pos, plan.padded_of};
    save.insert(save.end(), wc.begin(), wc.end());
    ctx->save_for_backward(save);
    ctx->saved_data["rows"] = torch::tensor(plan.rows, torch::kLong);
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["param_dtype"] = static_cast<int64_t>(params[0].scalar_type());
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    const auto saved = ctx->get_saved_variables();
    const auto &X = saved[0], &GU = saved[1], &Y = saved[2], &w = saved[3];
    const auto &order = saved[4], &token_of = saved[5], &pos = saved[6], &padded_of = saved[7];
    const auto rows_t = ctx->saved_data["rows"].toTensor();
    const std::vector<int64_t> rows(rows_t.data_ptr<int64_t>(),
                                    rows_t.data_ptr<int64_t>() + rows_t.numel());
    const auto x_dtype = static_cast<torch::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    const auto param_dtype = static_cast<torch::ScalarType>(ctx->saved_data["param_dtype"].toInt());
    const int64_t E = static_cast<int64_t>(rows.size()), NKp = X.size(0), N = w.size(0),
                  K = w.size(1), I = GU.size(1) / 2;
    // wgu(e): expert e's stacked gate-up weight [2I, d]; wdown(e): its down weight [d, I].
    auto wgu = [&](int64_t e) -> const torch::Tensor& { return saved[8 + e]; };
    auto wdown = [&](int64_t e) -> const torch::Tensor& { return saved[8 + E + e]; };

    // Output gradient to the sorted rows, times the combine weights; the weights'
    // gradient (dy[token] . expert output) in the same pass. Padding rows get weight 0, so
    // their output gradient is zero and adds nothing to the weights' gradients.
    auto ws = w.reshape({N * K}).to(torch::kFloat).index_select(0, order);
    if (NKp != N * K) ws = torch::zeros({NKp}, ws.options()).index_copy_(0, padded_of, ws);
    auto [dYw, dws] = gather_scale_dot(grads[0], token_of, ws, Y);
    torch::Tensor dw;
    if (ctx->needs_input_grad(1)) dw = dws.index_select(0, pos).view({N, K}).to(w.scalar_type());

    variable_list out(2 + 3 * E + 1);  // x, w, the 3E weights, the plan
    const bool want_dx = ctx->needs_input_grad(0);
    std::vector<char> want_gate(E), want_up(E), want_down(E);
    for (int64_t e = 0; e < E; ++e) {
      want_gate[e] = ctx->needs_input_grad(2 + e);
      want_up[e] = ctx->needs_input_grad(2 + E + e);
      want_down[e] = ctx->needs_input_grad(2 + 2 * E + e);
    }
    auto dA = torch::empty({NKp, I}, Y.options()), A = torch::empty({NKp, I}, Y.options());
    auto dGU = torch::empty({NKp, 2 * I}, Y.options());
    auto dXs = want_dx ? torch::empty({NKp, X.size(1)}, X.options()) : torch::Tensor();
    for_each_expert(rows, X.is_cpu(), [&](int64_t e, int64_t off, int64_t c) {
      // No token, no call: an expert without rows gets no gradient, not a zero-filled one.
      auto dywe = dYw.narrow(0, off, c), dae = dA.narrow(0, off, c), ae = A.narrow(0, off, c);
      auto dgue = dGU.narrow(0, off, c), xe = X.narrow(0, off, c);
      torch::mm_out(dae, dywe, wdown(e));
      swiglu_rows_backward(GU.narrow(0, off, c), dae, dgue, ae);
      if (want_gate[e] || want_up[e]) {
        // Both weights' gradients in one GEMM, [2I, d]; each half is contiguous (in the
        // parameters' dtype a view, else its own cast).
        auto dwgu = torch::mm(dgue.t(), xe);
        if (want_gate[e]) out[2 + e] = dwgu.narrow(0, 0, I).to(param_dtype);
        if (want_up[e]) out[2 + E + e] = dwgu.narrow(0, I, I).to(param_dtype);
      }
      if (want_down[e]) out[2 + 2 * E + e] = torch::mm(dywe.t(), ae).to(param_dtype);
      if (want_dx) {
        auto dxe = dXs.narrow(0, off, c);
        torch::mm_out(dxe, dgue, wgu(e));
      }
    });
    if (want_dx) out[0] = combine_rows(dXs, pos, torch::Tensor(), N, K, x_dtype);
    out[1] = dw;
    return out;
  }
};

}  // namespace

torch::Tensor swiglu(const torch::Tensor& g, const torch::Tensor& u) {
  TORCH_CHECK(g.sizes() == u.sizes() && g.scalar_type() == u.scalar_type(),
              "swiglu: gate and up must have one shape and dtype, got ", g.sizes(), " ",
              g.scalar_type(), " and ", u.sizes(), " ", u.scalar_type());
  return SwigluFn::apply(g, u);
}

torch::Tensor grouped_experts(const torch::Tensor& x, const torch::Tensor& indices,
                              const torch::Tensor& weights, const ExpertWeights& experts) {
  const int64_t E = static_cast<int64_t>(experts.gate.size());
  TORCH_CHECK(E > 0 && experts.up.size() == experts.gate.size() &&
                  experts.down.size() == experts.gate.size(),
              "grouped_experts: one gate, up and down weight per expert, got ", experts.gate.size(),
              ", ", experts.up.size(), ", ", experts.down.size());
  TORCH_CHECK(x.dim() == 2, "grouped_experts: x must be [N, d], got ", x.sizes());
  const int64_t N = x.size(0), d = x.size(1);
  TORCH_CHECK(indices.dim() == 2 && indices.size(0) == N && weights.sizes() == indices.sizes(),
              "grouped_experts: indices and weights must be [N, K] with N = ", N, ", got ",
              indices.sizes(), " and ", weights.sizes());
  const int64_t K = indices.size(1), I = experts.gate[0].size(0);
  for (int64_t e = 0; e < E; ++e)
    TORCH_CHECK(experts.gate[e].sizes() == torch::IntArrayRef({I, d}) &&
                    experts.up[e].sizes() == torch::IntArrayRef({I, d}) &&
                    experts.down[e].sizes() == torch::IntArrayRef({d, I}),
                "grouped_experts: expert ", e, " must have gate and up [", I, ", ", d,
                "] and down [", d, ", ", I, "], got ", experts.gate[e].sizes(), ", ",
                experts.up[e].sizes(), ", ", experts.down[e].sizes());

  GroupPlan plan;
  plan.N = N;
  plan.K = K;
  plan.E = E;
  // Under CPU autocast the experts compute in its dtype, as its linears would.
  plan.compute = x.scalar_type();
  if (x.is_cpu() && compat::cpu_autocast_enabled() && c10::isFloatingType(x.scalar_type()))
    plan.compute = compat::cpu_autocast_dtype();
  const int64_t align = x.is_cpu() && plan.compute == torch::kBFloat16 ? kBf16RowAlign : 1;
  {
    torch::NoGradGuard no_grad;
    auto flat = indices.reshape({N * K}).to(torch::kLong);
    auto counts = torch::bincount(flat, /*weights=*/{}, E).to(torch::kCPU);
    TORCH_CHECK(counts.numel() == E, "grouped_experts: an expert id >= the ", E, " experts");
    const int64_t* cnt = counts.data_ptr<int64_t>();
    plan.order = std::get<1>(flat.sort(/*stable=*/true, /*dim=*/0, /*descending=*/false));
    auto token_of = plan.order.div(K, /*rounding_mode=*/"floor");
    auto sorted_pos = torch::empty_like(plan.order)
                          .scatter_(0, plan.order, torch::arange(N * K, plan.order.options()));
    for (int64_t e = 0; e < E; ++e) {
      const int64_t rows = (cnt[e] + align - 1) / align * align;
      plan.rows.push_back(rows);
      plan.pads.push_back(rows - cnt[e]);
      plan.NKp += rows;
    }
    if (plan.NKp == N * K) {  // nothing padded (padded_of stays undefined)
      plan.token_of = token_of;
      plan.pos = sorted_pos;
    } else {
      // Unpadded sorted position q of expert e's i-th pair -> its block's first row + i.
      auto padded_of = torch::empty({N * K}, torch::kLong);
      int64_t* po = padded_of.data_ptr<int64_t>();
      for (int64_t e = 0, q = 0, row = 0; e < E; row += plan.rows[e], ++e)
        for (int64_t i = 0; i < cnt[e]; ++i) po[q++] = row + i;
      plan.padded_of = padded_of.to(plan.order.device());
      plan.token_of =
          torch::zeros({plan.NKp}, token_of.options()).index_copy_(0, plan.padded_of, token_of);
      plan.pos = plan.padded_of.index_select(0, sorted_pos);
    }
  }
  for (int64_t e = 0; e < E; ++e)
    TORCH_CHECK(plan.compute != x.scalar_type() || experts.gate[e].scalar_type() == x.scalar_type(),
                "grouped_experts: expert weights are ", experts.gate[e].scalar_type(), ", x is ",
                x.scalar_type(), " (without autocast they must match)");

  std::vector<torch::Tensor> params;
  params.reserve(3 * E);
  for (const auto* list : {&experts.gate, &experts.up, &experts.down})
    params.insert(params.end(), list->begin(), list->end());
  return GroupedExpertsFn::apply(x, weights, at::TensorList(params), plan);
}

}  // namespace r1kit::policy
