// Fused rotary embedding; see rope.h.
#include "policy/rope.h"

#include <ATen/Parallel.h>

#include <type_traits>

#include "policy/kernel_util.h"

namespace r1kit::policy {
namespace {

using kernel::ld;
using kernel::st;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows [r0, r1) of x viewed as [B*T*h, D]: row r is head r % h at position r / h. `sign`
// +1 rotates forward, -1 by the negated angle (the backward). The first D - R elements are
// scaled only.
template <typename S>
R1KIT_INLINE void rope_body(const S* __restrict x, const float* __restrict cos,
                            const float* __restrict sin, S* __restrict y, int64_t h, int64_t D,
                            int64_t R, bool interleave, float scale, float sign, int64_t r0,
                            int64_t r1) {
  const int64_t keep = D - R, half = R / 2;
  for (int64_t r = r0; r < r1; ++r) {
    const S* xr = x + r * D;
    S* yr = y + r * D;
    for (int64_t j = 0; j < keep; ++j) yr[j] = st<S>(scale * ld(xr[j]));
    const float* c = cos + (r / h) * half;
    const float* s = sin + (r / h) * half;
    const S* xt = xr + keep;
    S* yt = yr + keep;
    for (int64_t i = 0; i < half; ++i) {
      const int64_t a = interleave ? 2 * i : i, b = interleave ? 2 * i + 1 : i + half;
      const float xa = ld(xt[a]), xb = ld(xt[b]), si = sign * s[i];
      yt[a] = st<S>(scale * (xa * c[i] - xb * si));
      yt[b] = st<S>(scale * (xb * c[i] + xa * si));
    }
  }
}

template <typename S>
R1KIT_AVX512 void rope_512(const S* x, const float* c, const float* s, S* y, int64_t h, int64_t D,
                           int64_t R, bool il, float scale, float sign, int64_t r0, int64_t r1) {
  rope_body(x, c, s, y, h, D, R, il, scale, sign, r0, r1);
}
template <typename S>
R1KIT_AVX2 void rope_256(const S* x, const float* c, const float* s, S* y, int64_t h, int64_t D,
                         int64_t R, bool il, float scale, float sign, int64_t r0, int64_t r1) {
  rope_body(x, c, s, y, h, D, R, il, scale, sign, r0, r1);
}
template <typename S>
void rope_base(const S* x, const float* c, const float* s, S* y, int64_t h, int64_t D, int64_t R,
               bool il, float scale, float sign, int64_t r0, int64_t r1) {
  rope_body(x, c, s, y, h, D, R, il, scale, sign, r0, r1);
}

// y = the rotation of x (sign +1) or its transpose (sign -1), times scale.
torch::Tensor rope_apply(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                         bool interleave, double scale, float sign) {
  const int64_t h = x.size(2), D = x.size(3), R = 2 * cos.size(-1);
  const int64_t rows = x.numel() / std::max<int64_t>(D, 1);
  auto xc = x.contiguous();
  auto cc = cos.contiguous(), sc = sin.contiguous();
  auto y = torch::empty(x.sizes(), x.options());
  kernel::dispatch_f32_bf16(x.scalar_type(), [&](auto* tag) {
    using S = std::remove_pointer_t<decltype(tag)>;
    const auto fn = kernel::pick(rope_512<S>, rope_256<S>, rope_base<S>);
    const S* xp = kernel::data_as<S>(xc);
    S* yp = kernel::data_as<S>(y);
    const float* cp = cc.data_ptr<float>();
    const float* sp = sc.data_ptr<float>();
    at::parallel_for(0, rows, kernel::row_grain(D), [&](int64_t r0, int64_t r1) {
      fn(xp, cp, sp, yp, h, D, R, interleave, static_cast<float>(scale), sign, r0, r1);
    });
  });
  return y;
}

using kernel::NoAutocast;

class RopeTailFn : public torch::autograd::Function<RopeTailFn> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& cos, const torch::Tensor& sin, bool interleave,
                               double scale) {
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    ctx->save_for_backward({cos, sin});
    ctx->saved_data["interleave"] = interleave;
    ctx->saved_data["scale"] = scale;
    return rope_apply(x, cos, sin, interleave, scale, 1.0f);
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    NoAutocast no_autocast(c10::DispatchKey::AutocastCPU);
    auto saved = ctx->get_saved_variables();
    auto dx = rope_apply(grads[0], saved[0], saved[1], ctx->saved_data["interleave"].toBool(),
                         ctx->saved_data["scale"].toDouble(), -1.0f);
    return {dx, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor rope_tail_reference(const torch::Tensor& x, const torch::Tensor& cos,
                                  const torch::Tensor& sin, bool interleave, double scale) {
  const int64_t D = x.size(-1), R = 2 * cos.size(-1);
  auto c = cos.unsqueeze(2), s = sin.unsqueeze(2);  // [B, T, 1, R/2]
  auto xf = x.narrow(-1, D - R, R).to(torch::kFloat);
  torch::Tensor rot;
  if (interleave) {
    auto xp = xf.unflatten(/*dim=*/-1, {-1, 2});  // [B, T, h, R/2, 2]
    auto x0 = xp.select(-1, 0), x1 = xp.select(-1, 1);
    rot = torch::stack({x0 * c - x1 * s, x0 * s + x1 * c}, /*dim=*/-1).flatten(-2);
  } else {
    auto halves = xf.chunk(2, /*dim=*/-1);
    rot = torch::cat({halves[0] * c - halves[1] * s, halves[1] * c + halves[0] * s}, -1);
  }
  auto y = torch::cat({x.narrow(-1, 0, D - R).to(torch::kFloat), rot}, -1) * scale;
  return y.to(x.scalar_type());
}

torch::Tensor rope_tail(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        bool interleave, double scale) {
  TORCH_CHECK(x.dim() == 4, "rope_tail: x must be [B, T, h, D], got ", x.sizes());
  TORCH_CHECK(cos.dim() == 3 && cos.sizes() == sin.sizes() && cos.size(0) == x.size(0) &&
                  cos.size(1) == x.size(1) && 2 * cos.size(2) <= x.size(3),
              "rope_tail: cos and sin must be [B, T, R/2] with R <= D for x ", x.sizes(), ", got ",
              cos.sizes(), " and ", sin.sizes());
  TORCH_CHECK(cos.scalar_type() == torch::kFloat && sin.scalar_type() == torch::kFloat,
              "rope_tail: cos and sin must be fp32");
  if (!kernel::f32_or_bf16_cpu(x) || !cos.is_cpu() || x.numel() == 0)
    return rope_tail_reference(x, cos, sin, interleave, scale);
  return RopeTailFn::apply(x, cos, sin, interleave, scale);
}

}  // namespace r1kit::policy
