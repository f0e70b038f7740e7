// The GRPO policy loss: PPO's clipped surrogate on group-relative advantages, with the
// variants of TRL, verl, DAPO, Dr. GRPO and MiniMax-M1 (docs/grpo.md), and its detached
// statistics.
//
// Per token t of completion i, with r = pi_theta / pi_old and A_i the advantage:
//   l_{i,t} = -min(r A_i, clip(r, 1 - eps_low, 1 + eps_high) A_i)        (DeepSeekMath Eq. 3)
//   dual clip (Ye et al. 2020; verl clip_ratio_c), for A_i < 0:  l <- min(l, -c A_i)
//   truncated IS (Yao et al., "Your efficient RL framework secretly brings you
//   off-policy RL"; verl TIS):  l <- w * l,  w = min(pi_old / pi_behaviour, C), detached
//   GSPO (Zheng et al. 2025): r is the sequence ratio s_i = exp(mean_t log(pi/pi_old)),
//   written per token as s_i * pi_t / sg(pi_t) (verl's "gspo" mode), so that under
//   seq-mean-token-mean the gradient is exactly the GSPO one.
//   CISPO (MiniMax-M1, §3.1 "Efficient RL Scaling with CISPO"): the IS weight is clipped
//   and detached instead of the token update, so every token keeps a gradient:
//     l_{i,t} = -sg(clip(r, 1 - eps_low, 1 + eps_high)) A_i log pi_theta(o_t)
//   written as -sg(clip(r)) A_i r / sg(r), which has the same gradient and the value
//   -clip(r) A_i (comparable with PPO's). MiniMax-M1 sets no lower bound (eps_low near
//   1) and tunes eps_high. Dual clip does not apply.
// plus, aggregated the same way: + kl_coef * k_{i,t} (KL in the loss, kl.h) and
// - entropy_coef * H_{i,t} (entropy bonus).
// Engine/trainer mismatch (a statistic; samples from pi_behaviour, k3 of Schulman's
// "Approximating KL divergence"): mismatch_kl = mean_t (rho_t - 1 - log rho_t),
// rho_t = pi_old(o_t) / pi_behaviour(o_t), an estimate of KL(pi_behaviour || pi_old).
//
// Aggregation, ALWAYS normalised over the whole mini-batch (all micro-batches of one
// optimizer step, all ranks), never over the micro-batch in hand:
//   token-mean               sum_{i,t} l / N_tokens                     (DAPO, verl default)
//   seq-mean-token-mean      sum_i (sum_t l / |o_i|) / N_seqs           (DeepSeekMath, TRL "grpo")
//   seq-mean-token-sum       sum_{i,t} l / N_seqs                       (verl, OpenRLHF)
//   seq-mean-token-sum-norm  sum_{i,t} l / (N_seqs * L_max)             (Dr. GRPO)
// N_tokens, N_seqs and L_max come in a LossNormalizer that the caller computes ONCE
// per mini-batch (make_normalizer over every micro-batch's mask, then an all-reduce
// of the two sums when data-parallel). Each micro-batch's loss is then its exact share
// of the mini-batch loss: summing the micro-batch losses (or accumulating their
// gradients with no further division) gives exactly the full-batch value and
// gradient, whatever the split. This is the bug class of TRL's GRPOTrainer, which
// normalised each micro-batch by its own token count and then divided by the
// accumulation steps (docs/grpo.md, "Aggregation and the global normaliser"): do NOT
// divide by the number of micro-batches afterwards.
//
// Masked positions (mask == 0) may hold any finite or non-finite value; they are
// replaced by 0 before use and get zero gradient.
// Thread-safety: pure functions.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "core/enum_names.h"
#include "grpo/kl.h"

namespace r1kit::grpo {

enum class RatioLevel {
  kToken,     // PPO/GRPO: r_{i,t} = pi_theta(o_t) / pi_old(o_t)
  kSequence,  // GSPO: s_i = (prod_t r_{i,t})^(1/|o_i|)
};

enum class Surrogate {
  kClip,   // PPO/GRPO: the token update is clipped (min of clipped and unclipped)
  kCispo,  // CISPO: the detached IS weight is clipped, every token keeps its gradient
};

enum class LossAggregation {
  kTokenMean,            // "token-mean"
  kSeqMeanTokenMean,     // "seq-mean-token-mean"
  kSeqMeanTokenSumNorm,  // "seq-mean-token-sum-norm"
  kSeqMeanTokenSum,      // "seq-mean-token-sum"
};

enum class TisLevel {
  kNone,      // no truncated importance sampling
  kToken,     // w_{i,t} = min(pi_old(o_t) / pi_behaviour(o_t), C)
  kSequence,  // w_i = min(prod_t pi_old / pi_behaviour, C), the same for every token of i
};

// Recipe spellings (grpo.loss.ratio_level, surrogate, loss_aggregation, tis): a new variant is its
// enum value, its line here, its case in policy_loss.cpp and its test.
inline constexpr EnumName<RatioLevel> kRatioLevelNames[] = {{RatioLevel::kToken, "token"},
                                                            {RatioLevel::kSequence, "sequence"}};
inline constexpr EnumName<Surrogate> kSurrogateNames[] = {{Surrogate::kClip, "clip"},
                                                          {Surrogate::kCispo, "cispo"}};
inline constexpr EnumName<LossAggregation> kLossAggregationNames[] = {
    {LossAggregation::kTokenMean, "token-mean"},
    {LossAggregation::kSeqMeanTokenMean, "seq-mean-token-mean"},
    {LossAggregation::kSeqMeanTokenSumNorm, "seq-mean-token-sum-norm"},
    {LossAggregation::kSeqMeanTokenSum, "seq-mean-token-sum"}};
inline constexpr EnumName<TisLevel> kTisLevelNames[] = {
    {TisLevel::kNone, "none"}, {TisLevel::kToken, "token"}, {TisLevel::kSequence, "sequence"}};

struct PolicyLossOptions {
  RatioLevel ratio_level = RatioLevel::kToken;
  Surrogate surrogate = Surrogate::kClip;
  double eps_low = 0.2;      // lower clip: r >= 1 - eps_low
  double eps_high = 0.2;     // upper clip: r <= 1 + eps_high
  double dual_clip_c = 0.0;  // > 1 turns the dual clip on; 0 = off
  LossAggregation aggregation = LossAggregation::kTokenMean;
  double kl_coef = 0.0;  // KL in the loss; 0 when off or when the KL goes into the reward
  KlEstimator kl_estimator = KlEstimator::kK3;
  TisLevel tis = TisLevel::kNone;
  double tis_cap = 2.0;       // C
  double entropy_coef = 0.0;  // entropy bonus
};

// The global normalisers of one mini-batch (one optimizer step).
struct LossNormalizer {
  double tokens = 0;      // loss tokens (mask > 0) over the whole mini-batch
  double sequences = 0;   // sequences with at least one loss token, whole mini-batch
  double max_length = 0;  // Dr. GRPO's constant L: the generation cap (max_new_tokens);
                          // used by seq-mean-token-sum-norm only
};

// Counts tokens and non-empty sequences over every micro-batch mask ([B_k, T_k] each)
// of one mini-batch. Data-parallel callers all-reduce tokens and sequences afterwards.
LossNormalizer make_normalizer(const std::vector<torch::Tensor>& micro_batch_masks,
                               double max_length = 0);

// The scalar share of `values` ([B, T], masked by `mask` [B, T]) under `mode`.
torch::Tensor aggregate_loss(const torch::Tensor& values, const torch::Tensor& mask,
                             LossAggregation mode, const LossNormalizer& norm);

// Truncated importance-sampling weights [B, T], detached, 1 at masked positions and
// for kNone. old_logprobs: the trainer's log-probs of pi_old; behaviour_logprobs: the
// rollout engine's, same tokens.
torch::Tensor truncated_is_weights(const torch::Tensor& old_logprobs,
                                   const torch::Tensor& behaviour_logprobs,
                                   const torch::Tensor& mask, TisLevel level, double cap);

// Zeroes the mask rows of completions cut at the length cap (truncated [B] bool), so
// they contribute neither loss nor gradient nor normaliser count (DAPO's overlong
// filtering, TRL mask_truncated_completions). Apply before make_normalizer.
torch::Tensor mask_truncated(const torch::Tensor& mask, const torch::Tensor& truncated);

struct PolicyLossInputs {
  torch::Tensor logprobs;            // [B, T] pi_theta of the sampled tokens, with grad
  torch::Tensor old_logprobs;        // [B, T] pi_old: fixed for the mu passes over one rollout
                                     // batch; the behaviour log-probs when not recomputed
  torch::Tensor advantages;          // [B] per completion (compute_advantages)
  torch::Tensor mask;                // [B, T] 1 = loss token (completion, not padding)
  torch::Tensor behaviour_logprobs;  // [B, T] the rollout engine's; required when tis != kNone
  torch::Tensor ref_logprobs;        // [B, T] frozen reference; required when kl_coef > 0
  torch::Tensor entropy;             // [B, T] optional (logged); required when entropy_coef > 0
};

// Detached statistics of one micro-batch. "share" values add up over the micro-batches
// of a mini-batch to the mini-batch value; "mean" values are token means over this
// micro-batch's loss tokens (combine with merge(), which weights them by `tokens`).
// Under CISPO the clip ratios count the tokens whose IS weight was clipped (r < 1 - eps_low,
// r > 1 + eps_high, whatever the sign of A) instead of the clips that zero the gradient.
struct PolicyLossStats {
  double loss = 0;             // share: the total loss
  double pg_loss = 0;          // share: the clipped surrogate term
  double kl = 0;               // share: aggregated KL to the reference, before kl_coef
  double entropy = 0;          // share: aggregated entropy, before entropy_coef
  int64_t tokens = 0;          // loss tokens in this micro-batch
  int64_t sequences = 0;       // non-empty sequences in this micro-batch
  double clip_ratio_low = 0;   // mean: A < 0 and r < 1 - eps_low (gradient zeroed)
  double clip_ratio_high = 0;  // mean: A > 0 and r > 1 + eps_high (gradient zeroed)
  double clip_ratio = 0;       // mean: either of the two
  double dual_clip_ratio = 0;  // mean: A < 0 and r > c (dual clip active)
  double ratio_mean = 0;       // mean of r (s_i per token under GSPO)
  double ratio_min = 0;        // min of r over loss tokens
  double ratio_max = 0;        // max of r over loss tokens
  double approx_kl = 0;        // mean of log pi_old - log pi_theta (verl ppo_kl)
  double kl_mean = 0;          // mean per-token KL to the reference (0 without ref)
  double entropy_mean = 0;     // mean entropy (0 without entropy)
  double tis_mean = 1;         // mean IS weight
  double tis_min = 1;          // min IS weight
  double tis_max = 1;          // max IS weight
  double tis_clip_ratio = 0;   // mean: weight capped at C
  // mean: k3 estimate of KL(pi_behaviour || pi_old) on the sampled tokens (drawn from
  // pi_behaviour): rho - 1 - log rho, rho = pi_old / pi_behaviour; the engine/trainer
  // mismatch. 0 without behaviour log-probs.
  double mismatch_kl = 0;

  // Adds another micro-batch's statistics into this one.
  void merge(const PolicyLossStats& other);
};

struct PolicyLoss {
  torch::Tensor loss;  // scalar, this micro-batch's share; backward() it as is
  PolicyLossStats stats;
};

// The loss of one micro-batch under `options`, normalised by the mini-batch `norm`.
PolicyLoss policy_loss(const PolicyLossInputs& inputs, const PolicyLossOptions& options,
                       const LossNormalizer& norm);

}  // namespace r1kit::grpo
