// Per-token log-probabilities (and entropies) of given tokens, without materialising
// a full [N, V] log-softmax: the output projection, the log-sum-exp and the gather run
// in chunks of rows, and the backward pass recomputes each chunk's logits instead of
// keeping them (a custom autograd function). Peak extra memory is chunk x V floats.
//
// Convention (shared with the rollout engine; docs/rollout.md, "The log-prob convention"):
// log q(token) under the distribution the engine sampled from: softmax(logits /
// temperature), truncated by `truncation` (top-k/top-p/min-p) and renormalised
// (policy/truncation.h), computed in fp32; with no filter on, the full tempered softmax.
// The target token is always in the kept set (a rounding difference from the engine's
// logits must not make a sampled token impossible). The gradient is that of log q: the
// kept tokens' logits only. Entropy is of the full tempered distribution (untruncated).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "policy/truncation.h"

namespace r1kit::policy {

class TransformerImpl;

struct TokenLogProbs {
  torch::Tensor logprobs;  // [N] float32, differentiable w.r.t. hidden and weight
  torch::Tensor entropy;   // [N] float32, differentiable (undefined unless requested)
};

// hidden: [N, d] (the final-normed hidden states); weight: [V, d] (the output
// projection); targets: [N] int64. Works for any float dtype of hidden/weight; the
// math runs in fp32, the projection included, also inside a bf16 autocast region
// (train/compute.h).
TokenLogProbs token_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                             const torch::Tensor& targets, double temperature = 1.0,
                             bool with_entropy = false, int64_t chunk_rows = 1024,
                             const Truncation& truncation = {});

// token_logprobs of the rows of hidden [B, T, d] and targets [B, T] where mask [B, T]
// (float) is nonzero, computed on those rows only and returned as [B, T] times the mask
// (0 elsewhere, no output projection spent on padding).
TokenLogProbs masked_token_logprobs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                    const torch::Tensor& targets, const torch::Tensor& mask,
                                    double temperature, bool with_entropy,
                                    const Truncation& truncation = {});

// The number of leading completion tokens up to the last one the mask row keeps: the
// positions a forward must compute (later ones are padding).
int64_t completion_length(const torch::TensorAccessor<float, 1>& mask_row);

// Log-probs (and entropies) of completion tokens under `model`, for training on sampled
// completions: row i is prompt_ids[i] followed by completion row i of `completions`
// [B, T] (mask [B, T]), right-padded; the result [B, T] holds
//   log p(completions[i, t] | prompt_i, completions[i, <t])
// under softmax(logits / temperature) truncated by `truncation`, 0 where mask is 0 (the
// same convention as token_logprobs and the rollout engine). `aux_loss` is the MoE balance
// loss of the forward; `mtp_loss` (with_mtp) the MTP loss over the completion tokens.
// MoE routing replay: `replay_experts` [B, S, n_moe_layers, K] (ids < 0 are not replayed;
// past these rows' longest prompt + T only -1) is laid out like the forward's rows
// (prompt_i then completion row i) and replayed (ForwardOptions::replay_experts); with
// `record_experts`, `experts` gets the experts every position used, [B, S', L, K].
struct CompletionLogProbs {
  torch::Tensor logprobs;  // [B, T]
  torch::Tensor entropy;   // [B, T], undefined unless asked
  torch::Tensor aux_loss;  // scalar
  torch::Tensor mtp_loss;  // scalar, undefined unless asked
  torch::Tensor experts;   // [B, S', n_moe_layers, K] int16, undefined unless asked
  // [B, T, d] the final-normed hidden state that predicts each completion token (the
  // output projection's input; for full-vocabulary losses). completion_logprobs only.
  torch::Tensor hidden;
};
// The output projection and log-softmax run on the completion tokens only (mask != 0),
// the feed-forward layers on the prompt and completion tokens only
// (ForwardOptions::token_mask): padding costs neither.
CompletionLogProbs completion_logprobs(TransformerImpl& model,
                                       const std::vector<std::vector<int64_t>>& prompt_ids,
                                       const torch::Tensor& completions, const torch::Tensor& mask,
                                       double temperature, bool with_entropy, bool with_mtp = false,
                                       const Truncation& truncation = {},
                                       const torch::Tensor& replay_experts = {},
                                       bool record_experts = false);

// completion_logprobs with each distinct prompt computed once (GRPO's G completions of a
// problem share it): the prompts run as one batch whose keys/values (MLA: the KV latent and
// RoPE key) go to a cache that every completion row attends before its own tokens, with
// gradients flowing back through the shared prefix. Row i's tail is the last prompt token
// and completion tokens [0, T-1), at positions lp_i - 1 + t, attending prefix slots
// [0, lp_i - 1) and its own tail causally: the same keys, positions and values as the
// per-row sequence, so logprobs, entropy and their gradients equal completion_logprobs'
// up to float rounding (tested within 1e-5). What differs is bookkeeping: the MoE balance
// loss (`aux_loss`) is the token-weighted mean of the prompt batch's and the tail batch's
// sequence-wise losses (each row of each a sequence), and the expert load counts a shared
// prompt's tokens once (padding never). No MTP loss (`mtp_loss` stays undefined), no
// routing record or replay (completion_logprobs does those).
CompletionLogProbs shared_prompt_logprobs(TransformerImpl& model,
                                          const std::vector<std::vector<int64_t>>& prompt_ids,
                                          const torch::Tensor& completions,
                                          const torch::Tensor& mask, double temperature,
                                          bool with_entropy, const Truncation& truncation = {});

}  // namespace r1kit::policy
