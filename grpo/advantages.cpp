// Group-relative advantages; see advantages.h for the formulas and NaN handling.
#include "grpo/advantages.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace r1kit::grpo {
namespace {

// (x - mean) / (std + eps) with the mean and unbiased std of x over `ok` (the whole
// batch); a batch with fewer than two such values is only centred.
torch::Tensor batch_whiten(const torch::Tensor& x, const torch::Tensor& ok, double eps) {
  auto vals = x.masked_select(ok);
  if (vals.numel() == 0) return x;
  const double mean = vals.mean().item<double>();
  const double s = vals.numel() >= 2 ? vals.std(/*unbiased=*/true).item<double>() : 0.0;
  return (x - mean) / (s + eps);
}

}  // namespace

Advantages compute_advantages(const torch::Tensor& rewards, int64_t group_size,
                              const AdvantageOptions& options) {
  TORCH_CHECK(group_size >= 2, "compute_advantages: group_size must be >= 2, got ", group_size);
  TORCH_CHECK(rewards.dim() == 1 || rewards.dim() == 2,
              "compute_advantages: rewards must be [N, G] or [N*G], got ", rewards.sizes());
  TORCH_CHECK(rewards.numel() % group_size == 0, "compute_advantages: ", rewards.numel(),
              " rewards do not split into groups of ", group_size);
  if (rewards.dim() == 2)
    TORCH_CHECK(rewards.size(1) == group_size, "compute_advantages: rewards ", rewards.sizes(),
                " but group_size ", group_size);
  TORCH_CHECK(options.eps > 0, "compute_advantages: eps must be > 0");
  TORCH_CHECK(
      options.baseline != Baseline::kReinforcePlusPlus || options.scale == RewardScale::kBatch,
      "compute_advantages: the REINFORCE++-baseline estimator normalises over the batch; "
      "it needs scale = batch");

  torch::NoGradGuard no_grad;
  const int64_t g = group_size;
  auto r = rewards.detach().to(torch::kFloat64).reshape({-1, g});  // [N, G]
  auto valid = torch::isfinite(r);                                 // [N, G]
  auto vf = valid.to(torch::kFloat64);
  auto r0 = torch::where(valid, r, torch::zeros_like(r));  // NaN -> 0 for the sums
  auto n = vf.sum(/*dim=*/1, /*keepdim=*/true);            // [N, 1] valid count
  auto sum = r0.sum(/*dim=*/1, /*keepdim=*/true);          // [N, 1]
  auto mean = sum / n.clamp_min(1);                        // [N, 1]
  auto dev = (r0 - mean) * vf;                             // [N, G], 0 where invalid
  auto var = dev.pow(2).sum(/*dim=*/1, /*keepdim=*/true) / (n - 1).clamp_min(1);
  auto std = torch::where(n >= 2, var.sqrt(), torch::zeros_like(var));  // [N, 1]

  // Baseline.
  torch::Tensor centred;  // [N, G]
  if (options.baseline != Baseline::kLeaveOneOut) {
    centred = r0 - mean;
  } else {
    // mean of the others: (sum - r_i) / (n - 1)
    centred = r0 - (sum - r0) / (n - 1).clamp_min(1);
  }

  // Scale.
  auto has_baseline = (n >= 2).expand_as(centred);
  torch::Tensor adv;
  switch (options.scale) {
    case RewardScale::kGroup: adv = centred / (std + options.eps); break;
    case RewardScale::kBatch: {
      if (options.baseline == Baseline::kReinforcePlusPlus) {
        adv = batch_whiten(centred, valid & has_baseline, options.eps);
        break;
      }
      auto all = r.reshape({-1});
      auto ok = valid.reshape({-1});
      auto vals = all.masked_select(ok);
      const double s = vals.numel() >= 2 ? vals.std(/*unbiased=*/true).item<double>() : 0.0;
      adv = centred / (s + options.eps);
      break;
    }
    case RewardScale::kNone: adv = centred; break;
  }

  // Groups with < 2 valid rewards have no baseline; invalid rewards get 0.
  adv = torch::where(valid & has_baseline, adv, torch::zeros_like(adv));

  // Zero-signal groups: all valid rewards equal (range <= tol), or < 2 valid.
  auto big = std::numeric_limits<double>::infinity();
  auto hi = torch::where(valid, r, torch::full_like(r, -big)).amax(/*dim=*/1);
  auto lo = torch::where(valid, r, torch::full_like(r, big)).amin(/*dim=*/1);
  auto zero_std = (n.squeeze(1) < 2) | ((hi - lo) <= kZeroStdTol);
  // Exactly zero advantages there, whatever the rounding of (r - mean).
  adv = torch::where(zero_std.unsqueeze(1).expand_as(adv), torch::zeros_like(adv), adv);

  Advantages out;
  out.advantages = adv.reshape({-1}).to(torch::kFloat32);
  out.valid = valid.reshape({-1});
  out.group_mean = torch::where(n >= 1, mean, torch::full_like(mean, std::nan("")))
                       .squeeze(1)
                       .to(torch::kFloat32);
  out.group_std = std.squeeze(1).to(torch::kFloat32);
  out.zero_std = zero_std;
  return out;
}

torch::Tensor broadcast_to_tokens(const torch::Tensor& advantages, const torch::Tensor& mask) {
  TORCH_CHECK(advantages.dim() == 1, "broadcast_to_tokens: advantages must be [B], got ",
              advantages.sizes());
  TORCH_CHECK(mask.dim() == 2 && mask.size(0) == advantages.size(0),
              "broadcast_to_tokens: mask must be [B, T] with B=", advantages.size(0), ", got ",
              mask.sizes());
  return advantages.unsqueeze(1) * mask.to(advantages.scalar_type());  // [B, T]
}

}  // namespace r1kit::grpo
