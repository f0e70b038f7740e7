// GrpoLossConfig checks and conversions; see config.h.
#include "grpo/config.h"

namespace r1kit::grpo {

Status GrpoLossConfig::validate() const {
  if (dual_clip_c != 0 && dual_clip_c <= 1 + eps_high)
    return InvalidArgument(
        "dual_clip_c={} with eps_high={}: the dual clip must be above "
        "1 + eps_high to do anything (or 0 = off)",
        dual_clip_c, eps_high);
  if (ratio_level == RatioLevel::kSequence &&
      loss_aggregation != LossAggregation::kSeqMeanTokenMean)
    return InvalidArgument(
        "ratio_level=sequence with loss_aggregation={}: GSPO's objective "
        "is a mean over sequences; use loss_aggregation=seq-mean-token-mean",
        enum_name<LossAggregation>(loss_aggregation, kLossAggregationNames));
  if (kl_in_loss() && kl_estimator == KlEstimator::kK1)
    return InvalidArgument(
        "kl_estimator=k1 with kl_placement=loss: k1's gradient in the loss "
        "is zero in expectation; use k3 (DeepSeekMath) or k2, or kl_placement=reward");
  if (surrogate == Surrogate::kCispo && dual_clip_c != 0)
    return InvalidArgument(
        "surrogate=cispo with dual_clip_c={}: CISPO clips the IS weight, not the update; "
        "the dual clip does not apply (set dual_clip_c: 0)",
        dual_clip_c);
  if (advantage_estimator == Baseline::kReinforcePlusPlus && scale_rewards != RewardScale::kBatch)
    return InvalidArgument(
        "advantage_estimator=reinforce++-baseline with scale_rewards={}: REINFORCE++-baseline "
        "normalises over the batch; set scale_rewards: batch",
        enum_name<RewardScale>(scale_rewards, kRewardScaleNames));
  return OkStatus();
}

AdvantageOptions GrpoLossConfig::advantage_options() const {
  AdvantageOptions o;
  o.baseline = advantage_estimator;
  o.scale = scale_rewards;
  o.eps = advantage_eps;
  return o;
}

PolicyLossOptions GrpoLossConfig::policy_loss_options() const {
  PolicyLossOptions o;
  o.ratio_level = ratio_level;
  o.surrogate = surrogate;
  o.eps_low = eps_low;
  o.eps_high = eps_high;
  o.dual_clip_c = dual_clip_c;
  o.aggregation = loss_aggregation;
  o.kl_coef = kl_in_loss() ? kl_coef : 0.0;
  o.kl_estimator = kl_estimator;
  o.tis = tis;
  o.tis_cap = tis_cap;
  o.entropy_coef = entropy_coef;
  return o;
}

}  // namespace r1kit::grpo
