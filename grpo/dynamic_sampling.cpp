// Dynamic sampling group filter; see dynamic_sampling.h.
#include "grpo/dynamic_sampling.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

#include "grpo/advantages.h"

namespace r1kit::grpo {

torch::Tensor informative_groups(const torch::Tensor& group_rewards) {
  TORCH_CHECK(group_rewards.dim() == 2, "informative_groups: rewards must be [N, G], got ",
              group_rewards.sizes());
  torch::NoGradGuard no_grad;
  auto r = group_rewards.detach().to(torch::kFloat64);
  auto valid = torch::isfinite(r);
  const double inf = std::numeric_limits<double>::infinity();
  auto hi = torch::where(valid, r, torch::full_like(r, -inf)).amax(/*dim=*/1);
  auto lo = torch::where(valid, r, torch::full_like(r, inf)).amin(/*dim=*/1);
  auto n = valid.sum(/*dim=*/1);
  return (n >= 2) & ((hi - lo) > kZeroStdTol);
}

std::vector<int64_t> select_informative_groups(const torch::Tensor& group_rewards) {
  auto keep = informative_groups(group_rewards).contiguous();
  std::vector<int64_t> out;
  const auto* p = keep.data_ptr<bool>();
  for (int64_t i = 0; i < keep.numel(); ++i)
    if (p[i]) out.push_back(i);
  return out;
}

DynamicSampler::DynamicSampler(int64_t target_groups, int64_t max_rounds)
    : target_(target_groups), max_rounds_(max_rounds) {
  TORCH_CHECK(target_groups >= 1 && max_rounds >= 1,
              "DynamicSampler: target_groups and max_rounds must be >= 1");
}

std::vector<int64_t> DynamicSampler::add_round(const torch::Tensor& group_rewards) {
  auto idx = select_informative_groups(group_rewards);
  ++rounds_;
  seen_ += group_rewards.size(0);
  informative_ += static_cast<int64_t>(idx.size());
  const auto take = std::min<int64_t>(needed(), static_cast<int64_t>(idx.size()));
  idx.resize(static_cast<size_t>(std::max<int64_t>(take, 0)));
  kept_ += static_cast<int64_t>(idx.size());
  return idx;
}

double DynamicSampler::pass_rate() const {
  return seen_ > 0 ? static_cast<double>(informative_) / static_cast<double>(seen_) : 0.0;
}

}  // namespace r1kit::grpo
