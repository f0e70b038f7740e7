// Group-relative advantages for outcome rewards: one scalar reward per completion,
// turned into one advantage per completion, then broadcast to its tokens.
//
// Follows DeepSeekMath (arXiv 2402.03300) §4.1.2, outcome supervision:
//   A_i = (r_i - mean(r_group)) / std(r_group)
// with the variants of docs/grpo.md, "Advantages":
//   - Dr. GRPO (understand-r1-zero): no std scaling, A_i = r_i - mean(r_group).
//   - RLOO (Ahmadian et al. 2024): leave-one-out baseline, A_i = r_i - mean_{j!=i} r_j
//     = G/(G-1) (r_i - mean(r_group)).
//   - TRL's scale_rewards="batch": the baseline is still per group, the std is the
//     std of all rewards in the batch.
//   - REINFORCE++-baseline (Hu et al., "REINFORCE++", §3, with the group-mean baseline
//     of its GRPO-style setting; OpenRLHF/verl "reinforce_plus_plus_baseline"): the group
//     mean is subtracted, then the centred values are normalised over the whole batch,
//       A_i = (c_i - mean_batch(c)) / (std_batch(c) + eps),  c_i = r_i - mean(r_group).
//     Needs scale = kBatch (the batch normalisation is the estimator's). The statistics
//     are over completions; OpenRLHF takes them over tokens (longer completions weigh
//     more), which with one advantage per completion shifts the mean off 0.
// The std is the unbiased (Bessel-corrected) one, as torch.std in TRL and verl; eps is
// added to the std (not the variance), as in TRL.
//
// NaN rewards ("no score", docs/rewards.md; TRL's None) are excluded from every
// statistic and get advantage 0, and `valid` marks them so the caller can also drop
// them from the loss. A group with fewer than two valid rewards has no baseline to
// compare with: all its advantages are 0 (TRL would give NaN there).
// Thread-safety: pure functions.
#pragma once

#include <torch/types.h>

#include <cstdint>

#include "core/enum_names.h"

namespace r1kit::grpo {

enum class Baseline {
  kGroupMean,          // GRPO, Dr. GRPO: mean of the group's valid rewards
  kLeaveOneOut,        // RLOO: mean of the group's other valid rewards
  kReinforcePlusPlus,  // REINFORCE++-baseline: group mean, then batch mean/std of r - mean
};

enum class RewardScale {
  kGroup,  // divide by the group's std (DeepSeekMath GRPO)
  kBatch,  // divide by the std of every valid reward of the batch (TRL "batch");
           // REINFORCE++-baseline: whiten the centred values over the batch
  kNone,   // no division (Dr. GRPO)
};

// Recipe spellings (grpo.loss.advantage_estimator, grpo.loss.scale_rewards).
inline constexpr EnumName<Baseline> kBaselineNames[] = {
    {Baseline::kGroupMean, "grpo"},
    {Baseline::kLeaveOneOut, "rloo"},
    {Baseline::kReinforcePlusPlus, "reinforce++-baseline"}};
inline constexpr EnumName<RewardScale> kRewardScaleNames[] = {
    {RewardScale::kGroup, "group"}, {RewardScale::kBatch, "batch"}, {RewardScale::kNone, "none"}};

struct AdvantageOptions {
  Baseline baseline = Baseline::kGroupMean;
  RewardScale scale = RewardScale::kGroup;
  double eps = 1e-4;  // added to the std
};

struct Advantages {
  torch::Tensor advantages;  // [B] float32, B = N * G, group-major (sample j of group i at i*G+j)
  torch::Tensor valid;       // [B] bool: the reward was finite
  torch::Tensor group_mean;  // [N] float32: mean of the valid rewards (NaN if none)
  torch::Tensor group_std;   // [N] float32: unbiased std of the valid rewards (0 if < 2)
  torch::Tensor zero_std;    // [N] bool: the group carries no signal (< 2 valid, or all equal)
};

// rewards: [N, G] or [B] = [N * G] (group-major), any float dtype; group_size = G >= 2.
// Computed in float64, returned as float32; no gradient.
Advantages compute_advantages(const torch::Tensor& rewards, int64_t group_size,
                              const AdvantageOptions& options);

// Whether a group's valid rewards are all equal (within kZeroStdTol), or it has fewer
// than two: such a group's advantages are all 0 and it gives no policy gradient.
inline constexpr double kZeroStdTol = 1e-6;

// [B] advantages -> [B, T] per-token advantages, 0 outside the mask. mask: [B, T].
torch::Tensor broadcast_to_tokens(const torch::Tensor& advantages, const torch::Tensor& mask);

}  // namespace r1kit::grpo
