// GrpoLossConfig: every knob of GRPO's math (advantages, the clipped surrogate, KL,
// truncated importance sampling, entropy bonus, dynamic-sampling filter, truncation
// masking), bound from the `grpo.loss` section of a recipe with the strict YAML visitor
// (core/config.h), plus conversion to the option structs the pure functions take.
//
// Defaults follow the toolkits of docs/grpo.md: DeepSeekMath GRPO advantages (group
// mean and std), PPO/GRPO clip 0.2 (symmetric; DAPO's clip-higher is eps_high=0.28),
// token-mean aggregation (verl's default, TRL's "dapo" default since v0.22), KL off
// (TRL and verl default beta 0), entropy bonus off.
// Deliberately different: truncated importance sampling against the rollout engine's
// log-probs is on (token level, cap 2, as "Your efficient RL framework secretly brings
// you off-policy RL"); it is exactly 1 when the trainer does not recompute old
// log-probs. Combinations that are legal elsewhere but wrong (k1 in the loss, GSPO
// with a token-level aggregation) are rejected by validate(), naming both keys.
#pragma once

#include <cstdint>
#include <string>

#include "core/config.h"
#include "core/status.h"
#include "grpo/advantages.h"
#include "grpo/kl.h"
#include "grpo/policy_loss.h"

namespace r1kit::grpo {

struct GrpoLossConfig {
  // --- advantages (grpo/advantages.h)
  Baseline advantage_estimator = Baseline::kGroupMean;  // grpo | rloo | reinforce++-baseline
  RewardScale scale_rewards = RewardScale::kGroup;      // group | batch | none (Dr. GRPO)
  double advantage_eps = 1e-4;                          // (r - b) / (std + eps); TRL's 1e-4

  // --- policy loss (grpo/policy_loss.h)
  RatioLevel ratio_level = RatioLevel::kToken;  // token (PPO/GRPO) | sequence (GSPO)
  Surrogate surrogate = Surrogate::kClip;       // clip (PPO/GRPO) | cispo (MiniMax-M1)
  double eps_low = 0.2;                         // ratio clipped below at 1 - eps_low
  double eps_high = 0.2;                        // ratio clipped above at 1 + eps_high (DAPO: 0.28)
  double dual_clip_c = 0.0;  // dual clip for A < 0: loss <= -A * c; 0 = off (verl: 3)
  LossAggregation loss_aggregation =
      LossAggregation::kTokenMean;  // token-mean |
                                    // seq-mean-token-mean | seq-mean-token-sum-norm

  // --- KL to the frozen reference (grpo/kl.h)
  double kl_coef = 0.0;                           // beta; 0 = no reference model at all
  KlEstimator kl_estimator = KlEstimator::kK3;    // k1 | k2 | k3 (DeepSeekMath's, >= 0)
  KlPlacement kl_placement = KlPlacement::kLoss;  // loss (GRPO) | reward (PPO/RLHF style)

  // --- off-policy correction
  TisLevel tis = TisLevel::kToken;  // none | token | sequence: truncated IS weights
  double tis_cap = 2.0;             // C in min(pi_old / pi_behaviour, C)

  // --- entropy, truncation, dynamic sampling
  double entropy_coef = 0.0;                 // entropy bonus: loss -= coef * H (logged anyway)
  bool mask_truncated_completions = false;   // drop completions cut at the length cap (DAPO)
  bool dynamic_sampling = false;             // drop zero-variance groups and refill (DAPO)
  int64_t dynamic_sampling_max_rounds = 10;  // generation rounds per step before giving up

  void visit(ConfigVisitor& v) {
    v.field("advantage_estimator", advantage_estimator,
            "baseline: grpo (group mean), rloo (mean of the other G-1 samples) or "
            "reinforce++-baseline (group mean, then whitened over the batch)",
            kBaselineNames);
    v.field("scale_rewards", scale_rewards,
            "divide advantages by the group std, the batch std, or nothing (Dr. GRPO)",
            kRewardScaleNames);
    v.field("advantage_eps", advantage_eps, "added to the std before dividing", Range::positive());
    v.field("ratio_level", ratio_level,
            "importance ratio per token, or per sequence (GSPO: geometric mean of token ratios)",
            kRatioLevelNames);
    v.field("surrogate", surrogate,
            "clip: PPO's clipped token update; cispo: clip the detached IS weight instead "
            "(every token keeps its gradient)",
            kSurrogateNames);
    v.field("eps_low", eps_low, "clip the ratio below at 1 - eps_low",
            Range::non_negative().and_less_than(1));
    v.field("eps_high", eps_high, "clip the ratio above at 1 + eps_high (DAPO clip-higher: 0.28)",
            Range::non_negative());
    v.field("dual_clip_c", dual_clip_c,
            "dual clip: for negative advantages the loss is capped at -A * c; 0 = off",
            Range::non_negative());
    v.field("loss_aggregation", loss_aggregation,
            "how token losses become the scalar; normalised over the whole mini-batch",
            kLossAggregationNames);
    v.field("kl_coef", kl_coef, "KL(pi || ref) coefficient; 0 = no reference model",
            Range::non_negative());
    v.field("kl_estimator", kl_estimator, "per-token KL estimator", kKlEstimatorNames);
    v.field("kl_placement", kl_placement,
            "KL as a loss term, or subtracted from the reward before the advantages",
            kKlPlacementNames);
    v.field("tis", tis, "truncated importance sampling against the rollout engine's log-probs",
            kTisLevelNames);
    v.field("tis_cap", tis_cap, "cap C of the truncated IS weight", Range::at_least(1));
    v.field("entropy_coef", entropy_coef, "entropy bonus coefficient (0 = entropy only logged)",
            Range::non_negative());
    v.field("mask_truncated_completions", mask_truncated_completions,
            "completions that hit the length cap get no loss (DAPO overlong filtering)");
    v.field("dynamic_sampling", dynamic_sampling,
            "drop groups whose rewards are all equal and generate more (DAPO)");
    v.field("dynamic_sampling_max_rounds", dynamic_sampling_max_rounds,
            "generation rounds per step before training on what was kept", Range::at_least(1));
  }

  // Cross-field checks; messages name both keys.
  Status validate() const;

  // Whether a frozen reference policy is needed at all (load it only then).
  bool needs_reference() const { return kl_coef > 0; }
  bool kl_in_loss() const { return kl_coef > 0 && kl_placement == KlPlacement::kLoss; }
  bool kl_in_reward() const { return kl_coef > 0 && kl_placement == KlPlacement::kReward; }

  // The option structs of the pure functions. Call on a validated config.
  AdvantageOptions advantage_options() const;
  PolicyLossOptions policy_loss_options() const;
};

}  // namespace r1kit::grpo
