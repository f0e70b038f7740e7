// Sampling one token per row from next-token logits: temperature, top-k, top-p, min-p,
// greedy; with the log-prob of the chosen token under the convention of
// rollout_source.h: log q(token) under the processed distribution it was drawn from
// (softmax(logits / temperature) truncated by top-k/top-p/min-p and renormalised,
// policy/truncation.h; the full tempered softmax when no filter is on); temperature 0
// reports the full temperature-1 log-prob.
//
// Follows llama.cpp's sampler chain and Hugging Face's logits warpers (temperature,
// then top-k, top-p, min-p), with one difference: every filter is a mask on the same
// tempered distribution, so the kept set is the intersection of the filters'
// (policy::truncation_mask), and the draw is from the kept tokens renormalised. The draw
// is an inverse-CDF lookup with one uniform number per row, taken from a counter-based
// stream (sample_uniform(seed, step)), so a row's token depends only on its logits, its
// seed and its step: never on the other rows of the batch.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "policy/execution.h"
#include "policy/truncation.h"
#include "rollout/rollout_source.h"

namespace r1kit::rollout {

// Uniform number in [0, 1) for draw `step` of the stream `seed`: 53 bits of
// derive_seed(seed, {step}). Pure function, thread-safe.
double sample_uniform(uint64_t seed, uint64_t step);

// The tokens a filter keeps (policy/truncation.h).
using policy::truncation_mask;

struct SampledTokens {
  torch::Tensor tokens;    // [B] int64
  torch::Tensor logprobs;  // [B] float32, the convention above (processed distribution)
};

// Rows a thread of sample_tokens takes at least: below, a part's few LibTorch calls cost
// more than its rows.
inline constexpr int64_t kSampleRowsMin = 16;

// Samples one token per row of logits [B, V] (fp32). `uniforms` holds one number in
// [0, 1) per row (ignored when greedy). Greedy (temperature 0) takes the argmax (the
// lowest id among ties). CPU logits of at least 2 * kSampleRowsMin rows are split into
// contiguous ranges of rows over up to exec.decode_threads threads of exec's pool; each
// row's token and log-prob are the same bits at any thread count.
SampledTokens sample_tokens(const torch::Tensor& logits, const SamplingParams& params,
                            const std::vector<double>& uniforms,
                            const policy::ExecutionContext& exec = {});

// Checks a SamplingParams: temperature >= 0 and finite, top_k >= 0, top_p in (0, 1],
// min_p in [0, 1], max_new_tokens >= 1, stop ids in [0, vocab_size). The message
// names the field.
Status validate_sampling(const SamplingParams& params, int64_t vocab_size);

}  // namespace r1kit::rollout
