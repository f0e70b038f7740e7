// Sampling one token per row from next-token logits: temperature, top-k, top-p, min-p,
// greedy; with the log-prob of the chosen token under the convention of
// rollout_source.h (log softmax(logits / temperature) over the full vocabulary, before
// truncation; temperature 0 reports the temperature-1 log-prob).
//
// Follows llama.cpp's sampler chain and Hugging Face's logits warpers (temperature,
// then top-k, top-p, min-p), with one difference: every filter is a mask on the same
// tempered distribution, so the kept set is the intersection of
//   top-k: the k most probable tokens (ties broken by lower id),
//   top-p: the smallest prefix of the top-k tokens, by descending probability, whose
//          mass renormalised over the top-k tokens reaches top_p (always >= 1 token),
//   min-p: tokens with p >= min_p * p_max,
// and the draw is from the kept tokens renormalised. The draw is an inverse-CDF lookup
// with one uniform number per row, taken from a counter-based stream
// (sample_uniform(seed, step)), so a row's token depends only on its logits, its seed
// and its step: never on the other rows of the batch.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "rollout/rollout_source.h"

namespace r1kit::rollout {

// Uniform number in [0, 1) for draw `step` of the stream `seed`: 53 bits of
// derive_seed(seed, {step}). Pure function, thread-safe.
double sample_uniform(uint64_t seed, uint64_t step);

// The tokens a filter keeps: bool [B, V] for probs [B, V] (fp32, rows summing to 1).
// top_k <= 0 or >= V, top_p >= 1 and min_p <= 0 switch the filter off. Returns an
// undefined tensor when every filter is off (everything kept).
torch::Tensor truncation_mask(const torch::Tensor& probs, int64_t top_k, double top_p,
                              double min_p);

struct SampledTokens {
  torch::Tensor tokens;    // [B] int64
  torch::Tensor logprobs;  // [B] float32, the convention above
};

// Samples one token per row of logits [B, V] (fp32). `uniforms` holds one number in
// [0, 1) per row (ignored when greedy). Greedy (temperature 0) takes the argmax (the
// lowest id among ties).
SampledTokens sample_tokens(const torch::Tensor& logits, const SamplingParams& params,
                            const std::vector<double>& uniforms);

// Checks a SamplingParams: temperature >= 0 and finite, top_k >= 0, top_p in (0, 1],
// min_p in [0, 1], max_new_tokens >= 1, stop ids in [0, vocab_size). The message
// names the field.
Status validate_sampling(const SamplingParams& params, int64_t vocab_size);

}  // namespace r1kit::rollout
