// Sampling: see sampling.h.
#include "rollout/sampling.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <exception>

#include "core/parallel.h"
#include "core/rng.h"

namespace r1kit::rollout {

double sample_uniform(uint64_t seed, uint64_t step) {
  return static_cast<double>(derive_seed(seed, {step}) >> 11) * 0x1.0p-53;
}

namespace {

// The token drawn from one row's kept probabilities: q_j = p_j where kept (k null: all
// kept), summed in double from the left into cdf; the first token whose running sum
// exceeds u times the kept mass. None does only when nothing is kept or u >= 1 (uniforms
// are in [0, 1)); then the last kept token, as the LibTorch form of this draw did.
int64_t draw(const float* p, const bool* k, int64_t V, double u, std::vector<double>& cdf) {
  double mass = 0;
  int64_t last_kept = 0;
  for (int64_t j = 0; j < V; ++j) {
    const float qj = k && !k[j] ? 0.0f : p[j];
    mass += qj;
    cdf[j] = mass;
    if (qj > 0) last_kept = j;
  }
  const double x = u * mass;
  if (std::isnan(x)) return last_kept;  // NaN logits: no running sum exceeds it
  // The running sums never decrease (q >= 0), so bisection finds the first one above x:
  // the token a scan from the left finds, in one pass over the row instead of two.
  const double* first = std::upper_bound(cdf.data(), cdf.data() + V, x);
  return first == cdf.data() + V ? last_kept : first - cdf.data();
}

// Rows [r0, r1) of sample_tokens' logits z [B, V] (fp32), its tokens and log-probs.
SampledTokens sample_rows(const torch::Tensor& z_all, const SamplingParams& params,
                          const std::vector<double>& uniforms, int64_t r0, int64_t r1) {
  const auto z = z_all.narrow(0, r0, r1 - r0);
  const int64_t B = z.size(0), V = z.size(1);
  SampledTokens out;
  if (params.temperature == 0.0) {
    out.tokens = z.argmax(/*dim=*/-1);
    out.logprobs = torch::log_softmax(z, -1).gather(1, out.tokens.unsqueeze(1)).squeeze(1);
    return out;
  }
  // The same arithmetic as policy::token_logprobs: logits * (1 / T), then log-softmax.
  auto zt = z * (1.0 / params.temperature);
  // [B, V] on the CPU for the loop below (a copy only when the logits are elsewhere).
  auto probs = torch::log_softmax(zt, -1).exp().to(torch::kCPU).contiguous();
  auto keep = policy::kept_tokens(zt, {params.top_k, params.top_p, params.min_p});
  const auto keep_c =
      keep.defined() ? keep.to(torch::kCPU, torch::kBool).contiguous() : torch::Tensor();
  out.tokens = torch::empty({B}, torch::kLong);
  int64_t* tok = out.tokens.data_ptr<int64_t>();
  const float* pp = probs.data_ptr<float>();
  const bool* kp = keep_c.defined() ? keep_c.data_ptr<bool>() : nullptr;
  std::vector<double> cdf(static_cast<size_t>(V));
  for (int64_t b = 0; b < B; ++b)
    tok[b] = draw(pp + b * V, kp ? kp + b * V : nullptr, V, uniforms[r0 + b], cdf);
  out.tokens = out.tokens.to(zt.device());
  out.logprobs = policy::processed_logprobs(zt, keep, out.tokens);
  return out;
}

}  // namespace

SampledTokens sample_tokens(const torch::Tensor& logits, const SamplingParams& params,
                            const std::vector<double>& uniforms,
                            const policy::ExecutionContext& exec) {
  TORCH_CHECK(logits.dim() == 2, "sample_tokens: logits must be [B, V]");
  const int64_t B = logits.size(0);
  TORCH_CHECK(params.temperature == 0.0 || static_cast<int64_t>(uniforms.size()) == B,
              "sample_tokens: one uniform per row");
  auto z = logits.to(torch::kFloat);
  const int parts =
      z.is_cpu() ? static_cast<int>(std::clamp<int64_t>(B / kSampleRowsMin, 1, exec.decode_threads))
                 : 1;
  if (parts == 1) return sample_rows(z, params, uniforms, 0, B);
  // Contiguous ranges of rows, one a thread. Every op above works row by row, so each
  // row's token and log-prob are the same bits however the rows are split.
  SampledTokens out;
  out.tokens = torch::empty({B}, torch::kLong);
  out.logprobs = torch::empty({B}, torch::kFloat);
  std::vector<std::exception_ptr> errors(static_cast<size_t>(parts));
  exec.parallel_pool().run(parts, [&](int p) {
    const int64_t r0 = B * p / parts, r1 = B * (p + 1) / parts;
    try {
      auto part = sample_rows(z, params, uniforms, r0, r1);
      out.tokens.narrow(0, r0, r1 - r0).copy_(part.tokens);
      out.logprobs.narrow(0, r0, r1 - r0).copy_(part.logprobs);
    } catch (...) {
      errors[static_cast<size_t>(p)] = std::current_exception();
    }
  });
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
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
