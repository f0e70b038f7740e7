// FusedAdamW (train/fused_adamw.h) against LibTorch's torch::optim::AdamW step by step,
// from the same parameters and gradients: two groups (with and without weight decay),
// sizes that leave vector tails, a parameter whose gradient first comes at step 3, one
// that never gets one, a non-contiguous parameter and a bf16 one (LibTorch's ops), and
// the bias corrections over enough steps that they matter; and one step checked by hand.
#include "train/fused_adamw.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace r1kit::train {
namespace {

std::vector<torch::Tensor> fresh_params() {
  torch::manual_seed(3);
  return {torch::randn({37, 29}),
          torch::randn({70001}),
          torch::randn({5}),
          torch::randn({8, 6}).t(),  // non-contiguous
          torch::randn({33}).to(torch::kBFloat16),
          torch::randn({4, 4}),
          torch::randn({3})};
}

template <typename Opt>
std::vector<torch::Tensor> run(int steps, bool amsgrad) {
  auto ps = fresh_params();
  for (auto& p : ps) p.requires_grad_();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  auto decay = torch::optim::AdamWOptions(2e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1);
  decay.amsgrad(amsgrad);
  auto none = decay;
  none.weight_decay(0.0);
  groups.emplace_back(std::vector<torch::Tensor>{ps[0], ps[3], ps[4], ps[5]},
                      std::make_unique<torch::optim::AdamWOptions>(decay));
  groups.emplace_back(std::vector<torch::Tensor>{ps[1], ps[2], ps[6]},
                      std::make_unique<torch::optim::AdamWOptions>(none));
  Opt opt(groups, decay);
  torch::manual_seed(4);
  for (int t = 1; t <= steps; ++t) {
    for (size_t i = 0; i < ps.size(); ++i) {
      ps[i].mutable_grad() = torch::Tensor();
      if (i == 6) continue;           // never a gradient
      if (i == 5 && t < 3) continue;  // from step 3 on
      ps[i].mutable_grad() = (torch::randn(ps[i].sizes()) * static_cast<double>(i + 1)).to(ps[i].scalar_type());
    }
    opt.step();
  }
  std::vector<torch::Tensor> out;
  for (auto& p : ps) out.push_back(p.detach().to(torch::kFloat));
  return out;
}

TEST(FusedAdamWTest, MatchesLibTorchAdamWOverManySteps) {
  for (bool amsgrad : {false, true}) {
    SCOPED_TRACE(amsgrad ? "amsgrad" : "adamw");
    const auto want = run<torch::optim::AdamW>(40, amsgrad);
    const auto got = run<FusedAdamW>(40, amsgrad);
    const auto start = fresh_params();
    for (size_t i = 0; i < want.size(); ++i) {
      SCOPED_TRACE("parameter " + std::to_string(i));
      const double scale = want[i].abs().max().item<double>();
      EXPECT_LT((got[i] - want[i]).abs().max().item<double>(), 1e-6 * scale);
      if (i == 6) {
        EXPECT_TRUE(torch::equal(got[i], start[i]));  // no gradient: untouched
      } else {
        EXPECT_GT((got[i] - start[i].to(torch::kFloat)).abs().max().item<double>(), 0.05);
      }
    }
  }
}

TEST(FusedAdamWTest, OneStepByHand) {
  // t = 1: m = (1 - b1) g, v = (1 - b2) g^2, so m / (1 - b1) = g and
  // sqrt(v / (1 - b2)) = |g|: p <- p (1 - lr wd) - lr g / (|g| + eps).
  auto p = torch::tensor({1.0f, -2.0f, 0.5f, 3.0f}).requires_grad_();
  p.mutable_grad() = torch::tensor({0.5f, -4.0f, 1e-3f, 0.0f});
  FusedAdamW opt(std::vector<torch::Tensor>{p},
                 torch::optim::AdamWOptions(0.1).betas({0.9, 0.99}).eps(1e-3).weight_decay(0.5));
  opt.step();
  const double lr = 0.1, decay = 1 - 0.1 * 0.5, eps = 1e-3;
  const double p0[] = {1.0, -2.0, 0.5, 3.0}, g[] = {0.5, -4.0, 1e-3, 0.0};
  for (int i = 0; i < 4; ++i)
    EXPECT_NEAR(p[i].item<double>(), p0[i] * decay - lr * g[i] / (std::abs(g[i]) + eps), 1e-6) << i;
  auto& s = static_cast<torch::optim::AdamWParamState&>(*opt.state().begin()->second);
  EXPECT_EQ(s.step(), 1);
  EXPECT_NEAR(s.exp_avg()[1].item<double>(), 0.1 * -4.0, 1e-6);
  EXPECT_NEAR(s.exp_avg_sq()[1].item<double>(), 0.01 * 16.0, 1e-6);
}

}  // namespace
}  // namespace r1kit::train
