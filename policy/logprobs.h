// Per-token log-probabilities (and entropies) of given tokens, without materialising
// a full [N, V] log-softmax: the output projection, the log-sum-exp and the gather run
// in chunks of rows, and the backward pass recomputes each chunk's logits instead of
// keeping them (a custom autograd function). Peak extra memory is chunk x V floats.
//
// Convention (shared with the rollout engine; docs/rollout.md, "The log-prob convention"):
// log p(token) under softmax(logits / temperature) over the full vocabulary, computed in
// fp32; top-k/top-p truncation is NOT applied. Entropy is of the same tempered
// distribution.
#pragma once

#include <torch/torch.h>

namespace r1kit::policy {

struct TokenLogProbs {
  torch::Tensor logprobs;  // [N] float32, differentiable w.r.t. hidden and weight
  torch::Tensor entropy;   // [N] float32, differentiable (undefined unless requested)
};

// hidden: [N, d] (the final-normed hidden states); weight: [V, d] (the output
// projection); targets: [N] int64. Works for any float dtype of hidden/weight; the
// math runs in fp32.
TokenLogProbs token_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                             const torch::Tensor& targets, double temperature = 1.0,
                             bool with_entropy = false, int64_t chunk_rows = 1024);

}  // namespace r1kit::policy
