// The names of the metrics r1kit's trainers write (console, metrics.jsonl, TensorBoard) and
// the HTML report groups, each written once. Names follow TRL's GRPOTrainer where it has
// one (reward, reward_std, frac_reward_zero_std, completions/*, kl, entropy,
// clip_ratio/*); docs/grpo-training.md and docs/sft.md describe each.
//
// A writer uses the constant, never the string; the report (eval/report.h) files every
// name listed here under its group and falls back to name patterns only for metrics it
// does not know (a plug-in reward's component, a user's own key).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace r1kit::metric {

// Every trainer.
inline constexpr char kLoss[] = "loss";                // the minimised loss (SFT/pretrain: NLL)
inline constexpr char kLr[] = "lr";                    // learning rate of the step
inline constexpr char kGradNorm[] = "grad_norm";       // global norm before clipping
inline constexpr char kAuxLoss[] = "aux_loss";         // MoE sequence-wise balance loss
inline constexpr char kMtpLoss[] = "mtp_loss";         // multi-token prediction loss
inline constexpr char kEvalLoss[] = "eval_loss";       // held-out NLL
inline constexpr char kTokensPerS[] = "tokens_per_s";  // trained (SFT) / generated (GRPO)
inline constexpr char kEpoch[] = "epoch";              // SFT: data epoch
inline constexpr char kLossTokens[] = "loss_tokens";   // SFT: response tokens in the step

// On-policy distillation (sft/reverse_kl.h).
inline constexpr char kReverseKl[] = "reverse_kl";           // per token, student samples
inline constexpr char kEvalReverseKl[] = "eval_reverse_kl";  // the same, held-out problems

// GRPO: rewards and accuracy.
inline constexpr char kReward[] = "reward";         // mean weighted total
inline constexpr char kRewardStd[] = "reward_std";  // its standard deviation
inline constexpr char kAccuracy[] = "accuracy";     // share scoring 1 on the checker
inline constexpr char kFracRewardZeroStd[] = "frac_reward_zero_std";  // groups with no signal
inline constexpr char kRewardComponentPrefix[] = "rewards/";          // rewards/<name>/mean
inline constexpr char kRemoteRewardFailures[] = "reward/remote_failures";
// Groups whose completions failed the rollout check (rollout/checked_source.h).
inline constexpr char kRejectedGroups[] = "rollout/rejected_groups";
// Optimizer steps skipped for a non-finite loss or gradient norm, cumulative (train/setup.h).
inline constexpr char kSkippedSteps[] = "train/skipped_steps";
// GRPO: completions.
inline constexpr char kMeanLength[] = "completions/mean_length";
inline constexpr char kMinLength[] = "completions/min_length";
inline constexpr char kMaxLength[] = "completions/max_length";
inline constexpr char kClippedRatio[] = "completions/clipped_ratio";  // hit max_new_tokens
inline constexpr char kNumTokens[] = "num_tokens";                    // loss tokens
// GRPO: the update.
inline constexpr char kPgLoss[] = "pg_loss";
inline constexpr char kKl[] = "kl";         // to the reference
inline constexpr char kPpoKl[] = "ppo_kl";  // pi_old vs pi_theta
inline constexpr char kEntropy[] = "entropy";
inline constexpr char kClipLow[] = "clip_ratio/low_mean";
inline constexpr char kClipHigh[] = "clip_ratio/high_mean";
inline constexpr char kClipRegion[] = "clip_ratio/region_mean";
inline constexpr char kRatioMean[] = "ratio/mean";
inline constexpr char kRatioMax[] = "ratio/max";
inline constexpr char kTisMean[] = "tis/mean";
inline constexpr char kTisClipRatio[] = "tis/clip_ratio";
inline constexpr char kMismatchKl[] = "mismatch_kl";  // k3 of KL(pi_behaviour || pi_old)
inline constexpr char kMoeRouteMismatch[] = "moe/route_mismatch";  // trainer vs engine experts
inline constexpr char kSkippedFrac[] = "train/skipped_frac";
inline constexpr char kMoeMaxLoadOverMean[] = "moe/max_load_over_mean";
inline constexpr char kMoeLoadPrefix[] = "moe/load/layer";  // moe/load/layer<L>/expert<E>
inline std::string moe_load_key(int64_t layer, int64_t expert) {
  return kMoeLoadPrefix + std::to_string(layer) + "/expert" + std::to_string(expert);
}
// GRPO: rollout and timing.
inline constexpr char kStaleness[] = "rollout/staleness";
// max |trainer - engine| log-prob of on-policy tokens; 0 with rollout.exact.
inline constexpr char kLogprobMaxAbsDiff[] = "rollout/logprob_max_abs_diff";
inline constexpr char kPolicyVersion[] = "policy_version";
inline constexpr char kDynPassRate[] = "dynamic_sampling/pass_rate";
inline constexpr char kDynRounds[] = "dynamic_sampling/rounds";
inline constexpr char kDynGroupsKept[] = "dynamic_sampling/groups_kept";
inline constexpr char kStepTime[] = "step_time";
inline constexpr char kTimeGenerate[] = "timing/generate";
inline constexpr char kTimeReward[] = "timing/reward";
inline constexpr char kTimeReference[] = "timing/reference";
inline constexpr char kTimeTrain[] = "timing/train";
inline constexpr char kTimeSync[] = "timing/sync";
inline constexpr char kTimeEval[] = "timing/eval";
inline constexpr char kTimeTeacher[] = "timing/teacher";  // on-policy distillation: scoring
// GRPO: held-out evaluation during training.
inline constexpr char kEvalGreedyAccuracy[] = "eval/greedy_accuracy";
inline constexpr char kEvalMeanLength[] = "eval/mean_length";               // greedy
inline constexpr char kEvalSampleMeanLength[] = "eval/sample_mean_length";  // one sample
inline constexpr char kEvalRewardPrefix[] = "eval/reward/";  // eval/reward/<component>: mean
inline constexpr char kEvalPassAt1[] = "eval/pass@1";
inline constexpr char kEvalFormat[] = "eval/format";

// The report's section of a metric this header names ("Reward", "Accuracy and
// evaluation", "KL", "Entropy", "Completion length", "Clip ratios", "Loss", "Other"), or ""
// when the name is not one of them.
std::string_view known_metric_group(std::string_view name);

}  // namespace r1kit::metric
