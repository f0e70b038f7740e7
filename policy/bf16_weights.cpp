// See bf16_weights.h.
#include "policy/bf16_weights.h"

namespace r1kit::policy {

void Bf16Weights::assign(torch::nn::Module& root) {
  torch::NoGradGuard no_grad;
  std::unordered_map<const c10::TensorImpl*, torch::Tensor> next;
  auto add = [&](const torch::Tensor& t) {
    if (!t.defined() || t.scalar_type() != torch::kFloat) return;
    auto it = copies_.find(t.unsafeGetTensorImpl());
    torch::Tensor copy = it != copies_.end() && it->second.sizes() == t.sizes()
                             ? it->second
                             : torch::empty(t.sizes(), t.options().dtype(torch::kBFloat16));
    copy.copy_(t);
    next.emplace(t.unsafeGetTensorImpl(), std::move(copy));
  };
  for (const auto& m : root.modules(/*include_self=*/true)) {
    if (const auto* l = m->as<torch::nn::LinearImpl>()) {
      add(l->weight);
      add(l->bias);
    }
  }
  copies_ = std::move(next);
}

const torch::Tensor* Bf16Weights::find(const torch::Tensor& t) const {
  if (!t.defined()) return nullptr;
  const auto it = copies_.find(t.unsafeGetTensorImpl());
  return it == copies_.end() ? nullptr : &it->second;
}

}  // namespace r1kit::policy
