// Routing replay packing and the route-mismatch rate; see routing_replay.h.
#include "grpo/routing_replay.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace r1kit::grpo {

torch::Tensor pack_routed_experts(const std::vector<rollout::Group>& groups,
                                  const std::vector<int64_t>& prompt_lengths) {
  TORCH_CHECK(prompt_lengths.size() == groups.size(),
              "pack_routed_experts: ", prompt_lengths.size(), " prompt lengths for ", groups.size(),
              " groups");
  if (groups.empty() || groups.front().prompt_experts.ids.empty()) return {};
  const int64_t L = groups.front().prompt_experts.layers, K = groups.front().prompt_experts.k;
  const int64_t per_token = L * K;
  TORCH_CHECK(per_token > 0, "pack_routed_experts: recorded routing without layers or k");
  int64_t S = 1, B = 0;
  for (size_t g = 0; g < groups.size(); ++g)
    for (const auto& c : groups[g].completions) {
      S = std::max<int64_t>(S, prompt_lengths[g] + static_cast<int64_t>(c.token_ids.size()));
      ++B;
    }
  auto out = torch::full({B, S, L, K}, -1, torch::kInt16);
  int16_t* o = out.data_ptr<int16_t>();
  // Copies `r` (its layout checked) to row b from position `at`.
  auto put = [&](const rollout::RoutedExperts& r, int64_t b, int64_t at, int64_t tokens) {
    if (tokens == 0 && r.ids.empty()) return;  // a rejected (emptied) completion
    TORCH_CHECK(
        r.layers == L && r.k == K && static_cast<int64_t>(r.ids.size()) == tokens * per_token,
        "pack_routed_experts: routing of ", tokens, " tokens should hold ", tokens * per_token,
        " ids (", L, " layers x ", K, "), got ", r.ids.size(), " (", r.layers, " x ", r.k, ")");
    std::copy(r.ids.begin(), r.ids.end(), o + (b * S + at) * per_token);
  };
  int64_t b = 0;
  for (size_t g = 0; g < groups.size(); ++g)
    for (const auto& c : groups[g].completions) {
      put(groups[g].prompt_experts, b, 0, prompt_lengths[g]);
      put(c.routed_experts, b, prompt_lengths[g], static_cast<int64_t>(c.token_ids.size()));
      ++b;
    }
  return out;
}

void RouteMismatch::add(const torch::Tensor& rec, const torch::Tensor& used) {
  TORCH_CHECK(rec.dim() == 4 && used.dim() == 4 && rec.size(0) == used.size(0) &&
                  rec.size(2) == used.size(2) && rec.size(3) == used.size(3),
              "RouteMismatch: recorded ", rec.sizes(), " and used ", used.sizes(),
              " must be [B, S, L, K] with the same B, L, K");
  torch::NoGradGuard no_grad;
  const int64_t s = std::min(rec.size(1), used.size(1));
  TORCH_CHECK((rec.narrow(1, s, rec.size(1) - s) < 0).all().item<bool>(),
              "RouteMismatch: recorded routing past the forward's ", used.size(1), " positions");
  auto r = rec.narrow(1, 0, s).to(torch::kLong);
  auto u = used.narrow(1, 0, s).to(torch::kLong);
  auto found = (r.unsqueeze(-1) == u.unsqueeze(-2)).any(-1);  // [B, S, L, K]
  auto valid = r >= 0;
  mismatched += (valid & found.logical_not()).sum().item<double>();
  recorded += valid.sum().item<double>();
}

double RouteMismatch::rate() const {
  return recorded > 0 ? mismatched / recorded : std::nan("");
}

}  // namespace r1kit::grpo
