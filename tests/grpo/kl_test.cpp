// KL estimators (grpo/kl.h): values, zero at equality, k3 >= 0, KL-in-reward.
#include "grpo/kl.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace r1kit::grpo {
namespace {

TEST(Kl, HandValues) {
  // d = ref - logp = 1: k1 = -1, k2 = 0.5, k3 = e - 1 - 1 = 0.7182818.
  // d = -0.5:          k1 = 0.5, k2 = 0.125, k3 = exp(-0.5) + 0.5 - 1 = 0.1065307.
  auto logp = torch::tensor({{-2.0, -1.0}}, torch::kFloat64);
  auto ref = torch::tensor({{-1.0, -1.5}}, torch::kFloat64);
  auto k1 = kl_per_token(logp, ref, KlEstimator::kK1);
  auto k2 = kl_per_token(logp, ref, KlEstimator::kK2);
  auto k3 = kl_per_token(logp, ref, KlEstimator::kK3);
  EXPECT_NEAR(k1[0][0].item<double>(), -1.0, 1e-12);
  EXPECT_NEAR(k1[0][1].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(k2[0][0].item<double>(), 0.5, 1e-12);
  EXPECT_NEAR(k2[0][1].item<double>(), 0.125, 1e-12);
  EXPECT_NEAR(k3[0][0].item<double>(), std::exp(1.0) - 2.0, 1e-12);
  EXPECT_NEAR(k3[0][1].item<double>(), std::exp(-0.5) - 0.5, 1e-12);
}

TEST(Kl, ZeroWhenPolicyEqualsReference) {
  torch::manual_seed(0);
  auto logp = -torch::rand({4, 6}) * 5;
  for (auto e : {KlEstimator::kK1, KlEstimator::kK2, KlEstimator::kK3})
    EXPECT_EQ(kl_per_token(logp, logp.clone(), e).abs().max().item<float>(), 0.0f);
}

TEST(Kl, K3NonNegativeOnRandomInputs) {
  torch::manual_seed(1);
  auto logp = -torch::rand({64, 64}, torch::kFloat64) * 10;
  auto ref = -torch::rand({64, 64}, torch::kFloat64) * 10;
  auto k3 = kl_per_token(logp, ref, KlEstimator::kK3);
  EXPECT_GE(k3.min().item<double>(), 0.0);
  EXPECT_GT(k3.max().item<double>(), 0.0);  // and not trivially zero
  EXPECT_GE(kl_per_token(logp, ref, KlEstimator::kK2).min().item<double>(), 0.0);
  // k1 is not: somewhere it is negative on these inputs.
  EXPECT_LT(kl_per_token(logp, ref, KlEstimator::kK1).min().item<double>(), 0.0);
}

TEST(Kl, K3GradientPointsTowardsReference) {
  // d k3 / d logp = 1 - exp(ref - logp): positive when logp > ref (push logp down).
  auto logp = torch::tensor({-1.0, -3.0}, torch::kFloat64).requires_grad_(true);
  auto ref = torch::tensor({-2.0, -2.0}, torch::kFloat64);
  kl_per_token(logp, ref, KlEstimator::kK3).sum().backward();
  EXPECT_NEAR(logp.grad()[0].item<double>(), 1 - std::exp(-1.0), 1e-12);
  EXPECT_NEAR(logp.grad()[1].item<double>(), 1 - std::exp(1.0), 1e-12);
}

TEST(Kl, PenalizedRewards) {
  // row0: k1 over the two masked tokens = (0.5) + (1.0) = 1.5 -> 1 - 0.1 * 1.5 = 0.85
  //       (the third token is padding holding NaN, ignored).
  // row1: NaN reward stays NaN.
  auto logp = torch::tensor({{-1.0f, -1.0f, NAN}, {-1.0f, -1.0f, -1.0f}});
  auto ref = torch::tensor({{-1.5f, -2.0f, 0.0f}, {-1.0f, -1.0f, -1.0f}});
  auto mask = torch::tensor({{1.0f, 1.0f, 0.0f}, {1.0f, 1.0f, 1.0f}});
  auto rewards = torch::tensor({1.0f, NAN});
  auto out = kl_penalized_rewards(rewards, logp, ref, mask, KlEstimator::kK1, 0.1);
  EXPECT_NEAR(out[0].item<float>(), 0.85f, 1e-6);
  EXPECT_TRUE(std::isnan(out[1].item<float>()));
  EXPECT_FALSE(out.requires_grad());
}

}  // namespace
}  // namespace r1kit::grpo
