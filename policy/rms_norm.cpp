// Fused RMSNorm; see rms_norm.h.
#include "policy/rms_norm.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <type_traits>
#include <vector>

#include "policy/kernel_util.h"

namespace r1kit::policy {
namespace {

using kernel::ld;
using kernel::st;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Sum of x_j^2 over d elements in fp32, 16 partial sums (so that the loop vectorizes).
template <typename S>
R1KIT_INLINE float sum_squares(const S* __restrict x, int64_t d) {
  float part[16] = {};
  int64_t j = 0;
  for (; j + 16 <= d; j += 16)
    for (int l = 0; l < 16; ++l) part[l] += ld(x[j + l]) * ld(x[j + l]);
  for (; j < d; ++j) part[0] += ld(x[j]) * ld(x[j]);
  float s = 0.0f;
  for (int l = 0; l < 16; ++l) s += part[l];
  return s;
}

// The output dtype's storage type: bf16 only when both x and w are bf16.
template <typename S, typename W>
using Out =
    std::conditional_t<std::is_same_v<S, uint16_t> && std::is_same_v<W, uint16_t>, uint16_t, float>;

// Rows [r0, r1) of x [R, d]: y = round_x(x r) w, and r per row into rs.
template <typename S, typename W>
R1KIT_INLINE void fwd_body(const S* __restrict x, const W* __restrict w, Out<S, W>* __restrict y,
                           float* __restrict rs, int64_t d, float eps, int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const S* xr = x + r * d;
    auto* yr = y + r * d;
    const float inv = 1.0f / std::sqrt(sum_squares(xr, d) / static_cast<float>(d) + eps);
    rs[r] = inv;
    for (int64_t j = 0; j < d; ++j) yr[j] = st<Out<S, W>>(ld(st<S>(ld(xr[j]) * inv)) * ld(w[j]));
  }
}

// Rows [r0, r1): dx, and dw accumulated into dw_acc [d] (fp32; null: not wanted).
template <typename S, typename W>
R1KIT_INLINE void bwd_body(const S* __restrict x, const W* __restrict w,
                           const Out<S, W>* __restrict g, const float* __restrict rs,
                           S* __restrict dx, float* __restrict dw_acc, int64_t d, int64_t r0,
                           int64_t r1) {
  for (int64_t r = r0; r < r1; ++r) {
    const S* xr = x + r * d;
    const auto* gr = g + r * d;
    const float inv = rs[r];
    float part[16] = {};
    int64_t j = 0;
    for (; j + 16 <= d; j += 16)
      for (int l = 0; l < 16; ++l) part[l] += ld(gr[j + l]) * ld(w[j + l]) * (ld(xr[j + l]) * inv);
    for (; j < d; ++j) part[0] += ld(gr[j]) * ld(w[j]) * (ld(xr[j]) * inv);
    float dot = 0.0f;
    for (int l = 0; l < 16; ++l) dot += part[l];
    const float c = dot / static_cast<float>(d);
    S* dxr = dx + r * d;
    for (j = 0; j < d; ++j) {
      const float xh = ld(xr[j]) * inv;
      dxr[j] = st<S>(inv * (ld(gr[j]) * ld(w[j]) - xh * c));
    }
    if (dw_acc)
      for (j = 0; j < d; ++j) dw_acc[j] += ld(gr[j]) * ld(st<S>(ld(xr[j]) * inv));
  }
}

template <typename S, typename W>
R1KIT_AVX512 void fwd_512(const S* x, const W* w, Out<S, W>* y, float* rs, int64_t d, float eps,
                          int64_t r0, int64_t r1) {
  fwd_body(x, w, y, rs, d, eps, r0, r1);
}
template <typename S, typename W>
R1KIT_AVX2 void fwd_256(const S* x, const W* w, Out<S, W>* y, float* rs, int64_t d, float eps,
                        int64_t r0, int64_t r1) {
  fwd_body(x, w, y, rs, d, eps, r0, r1);
}
template <typename S, typename W>
void fwd_base(const S* x, const W* w, Out<S, W>* y, float* rs, int64_t d, float eps, int64_t r0,
              int64_t r1) {
  fwd_body(x, w, y, rs, d, eps, r0, r1);
}
template <typename S, typename W>
R1KIT_AVX512 void bwd_512(const S* x, const W* w, const Out<S, W>* g, const float* rs, S* dx,
                          float* dw, int64_t d, int64_t r0, int64_t r1) {
  bwd_body(x, w, g, rs, dx, dw, d, r0, r1);
}
template <typename S, typename W>
R1KIT_AVX2 void bwd_256(const S* x, const W* w, const Out<S, W>* g, const float* rs, S* dx,
                        float* dw, int64_t d, int64_t r0, int64_t r1) {
  bwd_body(x, w, g, rs, dx, dw, d, r0, r1);
}
template <typename S, typename W>
void bwd_base(const S* x, const W* w, const Out<S, W>* g, const float* rs, S* dx, float* dw,
              int64_t d, int64_t r0, int64_t r1) {
  bwd_body(x, w, g, rs, dx, dw, d, r0, r1);
}

// Calls fn with null pointers of x's and w's storage types.
template <typename Fn>
void dispatch2(torch::ScalarType xs, torch::ScalarType ws, const Fn& fn) {
  kernel::dispatch_f32_bf16(
      xs, [&](auto* s) { kernel::dispatch_f32_bf16(ws, [&](auto* w) { fn(s, w); }); });
}

using kernel::NoAutocast;
using kernel::row_grain;

class RmsNormFn : public torch::autograd::Function<RmsNormFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, double eps) {
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    const int64_t d = x.size(-1), R = x.numel() / std::max<int64_t>(d, 1);
    auto xc = x.contiguous();
    auto wc = weight.contiguous();
    auto y = torch::empty(
        x.sizes(), x.options().dtype(c10::promoteTypes(x.scalar_type(), weight.scalar_type())));
    auto rs = torch::empty({R}, x.options().dtype(torch::kFloat));
    dispatch2(x.scalar_type(), weight.scalar_type(), [&](auto* s, auto* w) {
      using S = std::remove_pointer_t<decltype(s)>;
      using W = std::remove_pointer_t<decltype(w)>;
      const auto fn = kernel::pick(fwd_512<S, W>, fwd_256<S, W>, fwd_base<S, W>);
      const S* xp = kernel::data_as<S>(xc);
      const W* wp = kernel::data_as<W>(wc);
      auto* yp = kernel::data_as<Out<S, W>>(y);
      float* rp = rs.data_ptr<float>();
      at::parallel_for(0, R, row_grain(d), [&](int64_t r0, int64_t r1) {
        fn(xp, wp, yp, rp, d, static_cast<float>(eps), r0, r1);
      });
    });
    ctx->save_for_backward({xc, wc, rs});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &rs = saved[2];
    const int64_t d = x.size(-1), R = x.numel() / std::max<int64_t>(d, 1);
    const auto out_dtype = c10::promoteTypes(x.scalar_type(), w.scalar_type());
    auto g = grads[0].to(out_dtype).contiguous();
    auto dx = torch::empty_like(x);
    const bool want_dw = ctx->needs_input_grad(1);
    // One fp32 dw accumulator per chunk of rows, summed after: at most kMaxChunks of
    // them (wide rows would otherwise make one per few rows), and chunks that do not
    // depend on the thread count, so that the sum is the same bits on any.
    constexpr int64_t kMaxChunks = 64;
    const int64_t grain = std::max(row_grain(d), (R + kMaxChunks - 1) / kMaxChunks);
    const int64_t chunks = (R + grain - 1) / grain;
    torch::Tensor dw_parts;
    if (want_dw) dw_parts = torch::zeros({chunks, d}, x.options().dtype(torch::kFloat));
    dispatch2(x.scalar_type(), w.scalar_type(), [&](auto* s, auto* wt) {
      using S = std::remove_pointer_t<decltype(s)>;
      using W = std::remove_pointer_t<decltype(wt)>;
      const auto fn = kernel::pick(bwd_512<S, W>, bwd_256<S, W>, bwd_base<S, W>);
      const S* xp = kernel::data_as<S>(x);
      const W* wp = kernel::data_as<W>(w);
      const auto* gp = kernel::data_as<Out<S, W>>(g);
      const float* rp = rs.data_ptr<float>();
      S* dxp = kernel::data_as<S>(dx);
      float* dwp = want_dw ? dw_parts.data_ptr<float>() : nullptr;
      // Chunks of exactly `grain` rows, so that chunk c owns row block c of dw_parts.
      at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
        for (int64_t c = c0; c < c1; ++c)
          fn(xp, wp, gp, rp, dxp, dwp ? dwp + c * d : nullptr, d, c * grain,
             std::min(R, (c + 1) * grain));
      });
    });
    torch::Tensor dw;
    if (want_dw) dw = dw_parts.sum(0).to(w.scalar_type());
    return {dx, dw, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  auto xf = x.to(torch::kFloat);
  auto y = xf * torch::rsqrt(xf.pow(2).mean(/*dim=*/-1, /*keepdim=*/true) + eps);
  return y.to(x.scalar_type()) * weight;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  TORCH_CHECK(weight.dim() == 1 && x.dim() >= 1 && x.size(-1) == weight.size(0),
              "rms_norm: weight must be [d] with d = x's last dimension, got x ", x.sizes(),
              " and weight ", weight.sizes());
  if (!kernel::f32_or_bf16_cpu(x) || !kernel::f32_or_bf16_cpu(weight) || x.numel() == 0)
    return rms_norm_reference(x, weight, eps);
  return RmsNormFn::apply(x, weight, eps);
}

}  // namespace r1kit::policy
