// KL estimators; see kl.h.
#include "grpo/kl.h"

#include <torch/torch.h>

namespace r1kit::grpo {

torch::Tensor kl_per_token(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                           KlEstimator estimator) {
  TORCH_CHECK(logprobs.sizes() == ref_logprobs.sizes(), "kl_per_token: logprobs ", logprobs.sizes(),
              " vs ref_logprobs ", ref_logprobs.sizes());
  auto d = (ref_logprobs.detach() - logprobs).clamp(-20.0, 20.0);  // log(pi_ref / pi)
  switch (estimator) {
    case KlEstimator::kK1: return -d;
    case KlEstimator::kK2: return 0.5 * d.pow(2);
    case KlEstimator::kK3: return torch::exp(d) - d - 1.0;
  }
  TORCH_CHECK(false, "kl_per_token: unknown estimator");
}

torch::Tensor kl_penalized_rewards(const torch::Tensor& rewards, const torch::Tensor& logprobs,
                                   const torch::Tensor& ref_logprobs, const torch::Tensor& mask,
                                   KlEstimator estimator, double coef) {
  TORCH_CHECK(rewards.dim() == 1, "kl_penalized_rewards: rewards must be [B], got ",
              rewards.sizes());
  TORCH_CHECK(logprobs.dim() == 2 && logprobs.size(0) == rewards.size(0) &&
                  mask.sizes() == logprobs.sizes(),
              "kl_penalized_rewards: logprobs/mask must be [B, T] with B=", rewards.size(0));
  torch::NoGradGuard no_grad;
  auto k = kl_per_token(logprobs.detach().to(torch::kFloat32), ref_logprobs.to(torch::kFloat32),
                        estimator);                                               // [B, T]
  auto per_seq = torch::where(mask > 0, k, torch::zeros_like(k)).sum(/*dim=*/1);  // [B]
  return rewards.to(torch::kFloat32) - coef * per_seq;
}

}  // namespace r1kit::grpo
