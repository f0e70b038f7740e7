// See fused_adamw.h.
#include "train/fused_adamw.h"

#include <cmath>
#include <string>

#include "policy/kernel_util.h"

namespace r1kit::train {
namespace {

// The scalars of one parameter's step, as floats (LibTorch's scalar arguments become the
// tensor's dtype).
struct Coeffs {
  float decay, beta1, one_minus_beta1, beta2, one_minus_beta2, sqrt_bc2, eps, neg_step;
};

R1KIT_INLINE void adamw_body(float* __restrict p, const float* __restrict g, float* __restrict m,
                             float* __restrict v, int64_t n, const Coeffs& c) {
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = m[i] * c.beta1 + c.one_minus_beta1 * gi;
    const float vi = v[i] * c.beta2 + c.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * c.decay + c.neg_step * (mi / (std::sqrt(vi) / c.sqrt_bc2 + c.eps));
  }
}

R1KIT_AVX512 void adamw_512(float* p, const float* g, float* m, float* v, int64_t n,
                            const Coeffs& c) {
  adamw_body(p, g, m, v, n, c);
}
R1KIT_AVX2 void adamw_256(float* p, const float* g, float* m, float* v, int64_t n,
                          const Coeffs& c) {
  adamw_body(p, g, m, v, n, c);
}
void adamw_base(float* p, const float* g, float* m, float* v, int64_t n, const Coeffs& c) {
  adamw_body(p, g, m, v, n, c);
}

}  // namespace

std::string adamw_state_key(const torch::Tensor& p) {
  return c10::guts::to_string(p.unsafeGetTensorImpl());
}

torch::Tensor FusedAdamW::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  for (auto& group : param_groups()) {
    const auto& o = static_cast<const torch::optim::AdamWOptions&>(group.options());
    const auto [beta1, beta2] = o.betas();
    for (auto& p : group.params()) {
      if (!p.grad().defined()) continue;
      const torch::Tensor& grad = p.grad();
      TORCH_CHECK(!grad.is_sparse(), "FusedAdamW: sparse gradients are not supported");
      const std::string key = adamw_state_key(p);
      auto it = state().find(key);
      if (it == state().end()) {
        auto s = std::make_unique<torch::optim::AdamWParamState>();
        s->step(0);
        s->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        s->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        if (o.amsgrad()) s->max_exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        it = state().emplace(key, std::move(s)).first;
      }
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      s.step(s.step() + 1);
      const double bc1 = 1 - std::pow(beta1, s.step());
      const double bc2 = 1 - std::pow(beta2, s.step());
      const double step_size = o.lr() / bc1;
      auto& m = s.exp_avg();
      auto& v = s.exp_avg_sq();
      if (!o.amsgrad() && policy::kernel::fp32_cpu_contiguous(p) &&
          policy::kernel::fp32_cpu_contiguous(grad) && policy::kernel::fp32_cpu_contiguous(m) &&
          policy::kernel::fp32_cpu_contiguous(v) && grad.numel() == p.numel()) {
        const Coeffs c{static_cast<float>(1 - o.lr() * o.weight_decay()),
                       static_cast<float>(beta1),
                       static_cast<float>(1 - beta1),
                       static_cast<float>(beta2),
                       static_cast<float>(1 - beta2),
                       static_cast<float>(std::sqrt(bc2)),
                       static_cast<float>(o.eps()),
                       static_cast<float>(-step_size)};
        float* pp = p.data_ptr<float>();
        const float* gp = grad.data_ptr<float>();
        float* mp = m.data_ptr<float>();
        float* vp = v.data_ptr<float>();
        const auto fn = policy::kernel::pick(adamw_512, adamw_256, adamw_base);
        at::parallel_for(0, p.numel(), policy::kernel::kElemGrain, [&](int64_t b, int64_t e) {
          fn(pp + b, gp + b, mp + b, vp + b, e - b, c);
        });
        // Written in place, as LibTorch's ops would: a graph that saved them now sees that.
        for (auto* t : {&p, &m, &v}) t->unsafeGetTensorImpl()->bump_version();
        continue;
      }
      // LibTorch's AdamW::step, op by op.
      if (o.weight_decay() != 0) p.mul_(1 - o.lr() * o.weight_decay());
      m.mul_(beta1).add_(grad, 1 - beta1);
      v.mul_(beta2).addcmul_(grad, grad, 1 - beta2);
      torch::Tensor denom;
      if (o.amsgrad()) {
        auto& vmax = s.max_exp_avg_sq();
        torch::max_out(vmax, v, vmax);
        denom = (vmax.sqrt() / std::sqrt(bc2)).add_(o.eps());
      } else {
        denom = (v.sqrt() / std::sqrt(bc2)).add_(o.eps());
      }
      p.addcdiv_(m, denom, -step_size);
    }
  }
  return loss;
}

}  // namespace r1kit::train
