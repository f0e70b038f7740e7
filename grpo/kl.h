// Per-token estimators of KL(pi_theta || pi_ref) from the log-probs of sampled tokens
// (Schulman, "Approximating KL divergence", 2020), and the two places the KL goes.
//
// With d = ref_logp - logp (the log of pi_ref/pi_theta at the sampled token):
//   k1 = -d                   unbiased value, can be negative
//   k2 = d^2 / 2              biased value, >= 0; its gradient is the on-policy gradient of KL
//   k3 = exp(d) - d - 1       unbiased value, >= 0 (DeepSeekMath Eq. 4, verl "low_var_kl")
// Placement (docs/grpo.md, "KL to the reference"):
//   - in the loss (DeepSeekMath GRPO, TRL, verl use_kl_loss): loss += beta * agg(k),
//     aggregated like the policy loss (policy_loss.h);
//   - in the reward (PPO/RLHF, verl use_kl_in_reward, OpenRLHF): with outcome rewards
//     and no critic the sequence's reward becomes r - beta * sum_t k_t, before the
//     advantages are computed (kl_penalized_rewards).
// Different from verl: d is clamped to [-20, 20] before exp (verl clamps the same way)
// but the value itself is not clamped to [-10, 10]. k1 in the loss has zero expected
// gradient, so GrpoLossConfig::validate rejects that combination.
// Thread-safety: pure functions.
#pragma once

#include <torch/types.h>

#include "core/enum_names.h"

namespace r1kit::grpo {

enum class KlEstimator { kK1, kK2, kK3 };
// Where the KL goes: a term of the loss (GRPO), or subtracted from the reward before the
// advantages (PPO/RLHF style).
enum class KlPlacement { kLoss, kReward };

// Recipe spellings (grpo.loss.kl_estimator, grpo.loss.kl_placement).
inline constexpr EnumName<KlEstimator> kKlEstimatorNames[] = {
    {KlEstimator::kK1, "k1"}, {KlEstimator::kK2, "k2"}, {KlEstimator::kK3, "k3"}};
inline constexpr EnumName<KlPlacement> kKlPlacementNames[] = {{KlPlacement::kLoss, "loss"},
                                                              {KlPlacement::kReward, "reward"}};

// logprobs, ref_logprobs: [B, T]; returns [B, T] (not masked), differentiable w.r.t.
// logprobs (ref_logprobs is detached).
torch::Tensor kl_per_token(const torch::Tensor& logprobs, const torch::Tensor& ref_logprobs,
                           KlEstimator estimator);

// KL in the reward: rewards [B] - coef * sum_t mask * k_t, with k from `logprobs` (the
// behaviour / old log-probs of the rollout) and `ref_logprobs`, both [B, T]; mask
// [B, T]. No gradient; NaN rewards stay NaN. Returns [B] float32.
torch::Tensor kl_penalized_rewards(const torch::Tensor& rewards, const torch::Tensor& logprobs,
                                   const torch::Tensor& ref_logprobs, const torch::Tensor& mask,
                                   KlEstimator estimator, double coef);

}  // namespace r1kit::grpo
