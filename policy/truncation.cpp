// Truncation of a next-token distribution; see truncation.h.
#include "policy/truncation.h"

#include <torch/torch.h>

#include <cmath>

namespace r1kit::policy {

bool Truncation::active(int64_t vocab) const {
  return (top_k > 0 && top_k < vocab) || top_p < 1.0 || min_p > 0.0;
}

torch::Tensor truncation_mask(const torch::Tensor& probs, int64_t top_k, double top_p,
                              double min_p) {
  const int64_t V = probs.size(-1);
  const bool use_k = top_k > 0 && top_k < V, use_p = top_p<1.0, use_min = min_p> 0.0;
  if (!use_k && !use_p && !use_min) return {};
  torch::Tensor keep;
  if (use_min) {
    auto pmax = std::get<0>(probs.max(/*dim=*/-1, /*keepdim=*/true));  // [B, 1]
    keep = probs >= pmax * min_p;
  }
  if (use_k || use_p) {
    // Sorted by descending probability, ties by ascending id (stable sort).
    auto [sorted, order] = probs.sort(/*stable=*/true, /*dim=*/-1, /*descending=*/true);
    auto ks = torch::ones_like(sorted, torch::kBool);  // kept, in sorted order
    if (use_k) ks.narrow(-1, top_k, V - top_k).fill_(false);
    if (use_p) {
      auto sp = sorted.to(torch::kDouble);
      if (use_k) sp = sp.masked_fill(ks.logical_not(), 0.0);
      auto mass = sp.sum(-1, /*keepdim=*/true);
      auto before = sp.cumsum(-1) - sp;  // mass strictly before each token
      ks = ks & (before < mass * top_p);
    }
    auto kk = torch::zeros_like(ks).scatter(-1, order, ks);
    keep = keep.defined() ? keep & kk : kk;
  }
  return keep;
}

torch::Tensor kept_tokens(const torch::Tensor& z, const Truncation& t,
                          const torch::Tensor& targets) {
  if (!t.active(z.size(-1))) return {};
  auto keep = truncation_mask(torch::log_softmax(z, -1).exp(), t.top_k, t.top_p, t.min_p);
  if (targets.defined()) keep.scatter_(1, targets.view({-1, 1}), true);
  return keep;
}

torch::Tensor processed_logprobs(const torch::Tensor& z, const torch::Tensor& keep,
                                 const torch::Tensor& targets) {
  auto zk = keep.defined() ? z.masked_fill(keep.logical_not(), -INFINITY) : z;
  return z.gather(1, targets.view({-1, 1})).squeeze(1) - torch::logsumexp(zk, -1);
}

}  // namespace r1kit::policy
