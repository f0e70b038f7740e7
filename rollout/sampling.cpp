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
  // [B, V] on the CPU for the loop below (a copy only when the logits are elsewhere).
  auto probs = torch::log_softmax(zt, -1).exp().to(torch::kCPU).contiguous();
  auto keep = policy::kept_tokens(zt, {params.top_k, params.top_p, params.min_p});
  const auto keep_c =
      keep.defined() ? keep.to(torch::kCPU, torch::kBool).contiguous() : torch::Tensor();
  // Inverse-CDF sampling, one row at a time: the kept probabilities q summed in double
  // from the left, the first token whose running sum exceeds u times the kept mass. None
  // does only when nothing is kept or u >= 1 (uniforms are in [0, 1)); then the last kept
  // token, as the LibTorch form of this draw did.
  out.tokens = torch::empty({B}, torch::kLong);
  int64_t* tok = out.tokens.data_ptr<int64_t>();
  const float* pp = probs.data_ptr<float>();
  const bool* kp = keep_c.defined() ? keep_c.data_ptr<bool>() : nullptr;
  for (int64_t b = 0; b < B; ++b) {
    const float* p = pp + b * V;
    const bool* k = kp ? kp + b * V : nullptr;
    auto q = [&](int64_t j) { return k && !k[j] ? 0.0f : p[j]; };
    double mass = 0;
    int64_t last_kept = 0;
    for (int64_t j = 0; j < V; ++j) {
      const float qj = q(j);
      mass += qj;
      if (qj > 0) last_kept = j;
    }
    const double x = uniforms[b] * mass;
    int64_t t = last_kept;
    double cdf = 0;
    for (int64_t j = 0; j < V; ++j) {
      cdf += q(j);
      if (cdf > x) {
        t = j;
        break;
      }
    }
    tok[b] = t;
  }
  out.tokens = out.tokens.to(zt.device());
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
