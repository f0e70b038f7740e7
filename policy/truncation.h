// Top-k / top-p / min-p truncation of a next-token distribution: the "processed"
// distribution the rollout engine samples from and the trainer computes log-probs under,
// so that behaviour and trainer log-probs describe the same distribution
// (docs/rollout.md, "The log-prob convention").
//
// For tempered logits z (z = logits / temperature) with p = softmax(z), the kept set K is
// the intersection of
//   top-k: the k most probable tokens (ties broken by lower id),
//   top-p: the smallest prefix of the top-k tokens, by descending probability, whose
//          mass renormalised over the top-k tokens reaches top_p (always >= 1 token),
//   min-p: tokens with p >= min_p * p_max,
// and the processed distribution is q = softmax(z) restricted to K and renormalised:
//   log q(y) = z_y - logsumexp_{v in K} z_v      (y in K).
// Thread-safety: pure functions.
#pragma once

#include <torch/types.h>

#include <cstdint>

namespace r1kit::policy {

struct Truncation {
  int64_t top_k = 0;   // 0 = off
  double top_p = 1.0;  // 1 = off
  double min_p = 0.0;  // 0 = off
  // Whether any filter is on for a vocabulary of `vocab` tokens.
  bool active(int64_t vocab) const;
};

// The tokens a filter keeps: bool [B, V] for probs [B, V] (fp32, rows summing to 1).
// top_k <= 0 or >= V, top_p >= 1 and min_p <= 0 switch the filter off. Returns an
// undefined tensor when every filter is off (everything kept).
torch::Tensor truncation_mask(const torch::Tensor& probs, int64_t top_k, double top_p,
                              double min_p);

// The kept set K of tempered logits z [B, V] (fp32): truncation_mask of
// exp(log_softmax(z)), with the `targets` [B] (when given) added, so that a token that was
// sampled is never dropped by a rounding difference between two computations of z.
// Undefined when `t` keeps everything.
torch::Tensor kept_tokens(const torch::Tensor& z, const Truncation& t,
                          const torch::Tensor& targets = {});

// log q(targets) [B] under the processed distribution of z [B, V], keep [B, V] (undefined:
// the full softmax).
torch::Tensor processed_logprobs(const torch::Tensor& z, const torch::Tensor& keep,
                                 const torch::Tensor& targets);

}  // namespace r1kit::policy
