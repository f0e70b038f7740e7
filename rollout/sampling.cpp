// Sampling: see sampling.h.
#include "rollout/sampling.h"

#include <torch/torch.h>

#include <cmath>

#include "core/rng.h"

namespace r1kit::rollout {

double sample_uniform(uint64_t seed, uint64_t step) {
  return static_cast<double>(derive_seed(seed, {step}) >> 11) * 0x1.0p-53;
}

SampledTokens sample_tokens(const torch::Tensor& logits, const SamplingParams& params,
                            const std::vector<double>& uniforms) {
  TORCH_CHECK(logits.dim() == 2, "sample_tokens: logits must be [B, V]");
  const int64_t B = logits.size(0), V = logits.size(1);
  auto z = logits.to(torch::kFloat);
  SampledTokens out;
  if (params.temperature == 0.0) {
    out.tokens = z.argmax(/*dim=*/-1);
    out.logprobs = torch::log_softmax(z, -1).gather(1, out.tokens.unsqueeze(1)).squeeze(1);
    return out;
  }
  TORCH_CHECK(static_cast<int64_t>(uniforms.size()) == B, "sample_tokens: one uniform per row");
  // The same arithmetic as policy::token_logprobs: logits * (1 / T), then log-softmax.
  auto zt = z * (1.0 / params.temperature);
  auto probs = torch::log_softmax(zt, -1).exp();  // [B, V]
  auto keep = policy::kept_tokens(zt, {params.top_k, params.top_p, params.min_p});
  auto q = keep.defined() ? probs.masked_fill(keep.logical_not(), 0.0f) : probs;
  auto cdf = q.to(torch::kDouble).cumsum(-1);  // [B, V], non-decreasing
  auto u = torch::tensor(uniforms, torch::kDouble).view({B, 1});
  auto x = u * cdf.narrow(1, V - 1, 1);  // [B, 1], in [0, mass)
  auto tok = torch::searchsorted(cdf, x, /*out_int32=*/false, /*right=*/true).squeeze(1);
  // x rounding up to the full mass would step past the end: take the last kept token.
  auto ids = torch::arange(V, torch::kLong).unsqueeze(0);
  auto last_kept = ((q > 0).to(torch::kLong) * ids).amax(-1);
  out.tokens = torch::where(tok >= V, last_kept, tok);
  out.logprobs = policy::processed_logprobs(zt, keep, out.tokens);
  return out;
}

Status validate_sampling(const SamplingParams& p, int64_t vocab_size) {
  if (!std::isfinite(p.temperature) || p.temperature < 0)
    return InvalidArgument("sampling.temperature={}: must be >= 0 (0 = greedy)", p.temperature);
  if (p.top_k < 0) return InvalidArgument("sampling.top_k={}: must be >= 0 (0 = off)", p.top_k);
  if (!(p.top_p > 0 && p.top_p <= 1))
    return InvalidArgument("sampling.top_p={}: must be in (0, 1] (1 = off)", p.top_p);
  if (!(p.min_p >= 0 && p.min_p <= 1))
    return InvalidArgument("sampling.min_p={}: must be in [0, 1] (0 = off)", p.min_p);
  if (p.max_new_tokens < 1)
    return InvalidArgument("sampling.max_new_tokens={}: must be >= 1", p.max_new_tokens);
  for (int64_t id : p.stop_token_ids)
    if (id < 0 || id >= vocab_size)
      return InvalidArgument("sampling.stop_token_ids: {} is outside the vocabulary [0, {})", id,
                             vocab_size);
  for (const auto& s : p.stop_strings)
    if (s.empty()) return InvalidArgument("sampling.stop_strings: an empty stop string");
  return OkStatus();
}

}  // namespace r1kit::rollout
