// Advantage modes against hand-computed values (grpo/advantages.h).
#include "grpo/advantages.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace r1kit::grpo {
namespace {

const double kNaN = std::nan("");

std::vector<float> to_vec(const torch::Tensor& t) {
  auto c = t.to(torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

void expect_near_vec(const torch::Tensor& got, const std::vector<double>& want, double tol = 1e-6) {
  auto g = to_vec(got);
  ASSERT_EQ(g.size(), want.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], tol) << "index " << i;
}

// Two groups of G=4: g0 = [1, 0, 0, 1] (signal), g1 = [3, 3, 3, 3] (no signal).
torch::Tensor two_groups() {
  return torch::tensor({1.0, 0.0, 0.0, 1.0, 3.0, 3.0, 3.0, 3.0}, torch::kFloat64);
}

TEST(Advantages, GrpoGroupMeanAndStd) {
  // g0: mean 0.5; unbiased var = 4 * 0.25 / 3 = 1/3; std = 0.5773503.
  // A = +-0.5 / (0.5773503 + 1e-4) = +-0.8658756. g1: std 0 -> A = 0 exactly.
  AdvantageOptions o;  // group mean, group std, eps 1e-4
  auto a = compute_advantages(two_groups(), 4, o);
  const double s = std::sqrt(1.0 / 3.0) + 1e-4;
  expect_near_vec(a.advantages, {0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0, 0, 0, 0});
  EXPECT_NEAR(0.5 / s, 0.8658756, 1e-6);
  expect_near_vec(a.group_mean, {0.5, 3.0});
  expect_near_vec(a.group_std, {std::sqrt(1.0 / 3.0), 0.0});
  EXPECT_FALSE(a.zero_std[0].item<bool>());
  EXPECT_TRUE(a.zero_std[1].item<bool>());
  EXPECT_TRUE(a.valid.all().item<bool>());
  // Exactly zero, not merely small, for the zero-variance group.
  EXPECT_EQ(a.advantages.slice(0, 4, 8).abs().sum().item<float>(), 0.0f);
}

TEST(Advantages, DrGrpoMeanOnly) {
  // A = r - mean: g0 = [0.5, -0.5, -0.5, 0.5]; g1 = 0.
  AdvantageOptions o;
  o.scale = RewardScale::kNone;
  auto a = compute_advantages(two_groups().reshape({2, 4}), 4, o);  // [N, G] input works too
  expect_near_vec(a.advantages, {0.5, -0.5, -0.5, 0.5, 0, 0, 0, 0});
}

TEST(Advantages, RlooLeaveOneOut) {
  // r=1: others {0, 0, 1} mean 1/3 -> 2/3; r=0: others {1, 0, 1} mean 2/3 -> -2/3.
  AdvantageOptions o;
  o.baseline = Baseline::kLeaveOneOut;
  o.scale = RewardScale::kNone;
  auto a = compute_advantages(two_groups(), 4, o);
  expect_near_vec(a.advantages, {2.0 / 3, -2.0 / 3, -2.0 / 3, 2.0 / 3, 0, 0, 0, 0});
}

TEST(Advantages, BatchStd) {
  // All 8 rewards: mean 14/8 = 1.75; squared deviations 0.5625, 3.0625, 3.0625, 0.5625,
  // 4 x 1.5625 = 13.5; var = 13.5 / 7 = 1.9285714; std = 1.3887301.
  // g0 baseline is still the group mean: A = +-0.5 / (1.3887301 + 1e-4).
  AdvantageOptions o;
  o.scale = RewardScale::kBatch;
  auto a = compute_advantages(two_groups(), 4, o);
  const double s = std::sqrt(13.5 / 7.0) + 1e-4;
  EXPECT_NEAR(std::sqrt(13.5 / 7.0), 1.3887301, 1e-6);
  expect_near_vec(a.advantages, {0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0, 0, 0, 0});
}

TEST(Advantages, ReinforcePlusPlusBaseline) {
  // Three groups of G=4: g0 = [1, 0, 0, 1] -> c = [0.5, -0.5, -0.5, 0.5];
  // g1 = [2, NaN, NaN, NaN]: one valid reward, no baseline, not in the batch statistics;
  // g2 = [0, 3, 3, 3]: mean 2.25 -> c = [-2.25, 0.75, 0.75, 0.75].
  // Batch over the 8 centred values: mean 0; squares 4 * 0.25 + 5.0625 + 3 * 0.5625 = 7.75,
  // unbiased var 7.75 / 7, std 1.0522085. A = c / (std + 1e-4).
  auto r = torch::tensor({1.0, 0.0, 0.0, 1.0, 2.0, kNaN, kNaN, kNaN, 0.0, 3.0, 3.0, 3.0},
                         torch::kFloat64);
  AdvantageOptions o;
  o.baseline = Baseline::kReinforcePlusPlus;
  o.scale = RewardScale::kBatch;
  auto a = compute_advantages(r, 4, o);
  const double s = std::sqrt(7.75 / 7.0) + 1e-4;
  EXPECT_NEAR(std::sqrt(7.75 / 7.0), 1.0522085, 1e-6);
  expect_near_vec(a.advantages, {0.5 / s, -0.5 / s, -0.5 / s, 0.5 / s, 0, 0, 0, 0, -2.25 / s,
                                 0.75 / s, 0.75 / s, 0.75 / s});
  // Unlike scale_rewards=batch with the group-mean baseline, which divides by the std of
  // the raw rewards (here of {1, 0, 0, 1, 2, 0, 3, 3, 3}).
  AdvantageOptions grpo_batch;
  grpo_batch.scale = RewardScale::kBatch;
  auto b = compute_advantages(r, 4, grpo_batch);
  EXPECT_GT(std::abs(b.advantages[8].item<float>() - a.advantages[8].item<float>()), 0.1);
  // The estimator is a batch normalisation: other scales are refused.
  o.scale = RewardScale::kGroup;
  EXPECT_THROW(compute_advantages(r, 4, o), c10::Error);
}

TEST(Advantages, NanRewardsAreExcludedAndGetZero) {
  // g0 = [1, NaN, 0, 2]: valid {1, 0, 2}, mean 1, var (0 + 1 + 1) / 2 = 1, std 1.
  //   GRPO: [0, 0 (NaN), -1/1.0001, 1/1.0001].
  // g1 = [NaN, NaN, 5, NaN]: one valid reward, no baseline -> all 0, zero_std.
  auto r = torch::tensor({1.0, kNaN, 0.0, 2.0, kNaN, kNaN, 5.0, kNaN}, torch::kFloat64);
  auto a = compute_advantages(r, 4, AdvantageOptions{});
  expect_near_vec(a.advantages, {0, 0, -1 / 1.0001, 1 / 1.0001, 0, 0, 0, 0});
  EXPECT_TRUE(torch::isfinite(a.advantages).all().item<bool>());
  expect_near_vec(a.valid.to(torch::kFloat32), {1, 0, 1, 1, 0, 0, 1, 0});
  expect_near_vec(a.group_mean, {1.0, 5.0});
  EXPECT_TRUE(a.zero_std[1].item<bool>());

  // RLOO on g0: r=1: others {0, 2} -> 0; r=0: others {1, 2} -> -1.5; r=2: others {1, 0} -> 1.5.
  AdvantageOptions o;
  o.baseline = Baseline::kLeaveOneOut;
  o.scale = RewardScale::kNone;
  auto b = compute_advantages(r, 4, o);
  expect_near_vec(b.advantages, {0, 0, -1.5, 1.5, 0, 0, 0, 0});
}

TEST(Advantages, AllNanGroupIsZero) {
  auto r = torch::full({2, 3}, kNaN, torch::kFloat64);
  auto a = compute_advantages(r, 3, AdvantageOptions{});
  EXPECT_EQ(a.advantages.abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(a.zero_std.all().item<bool>());
  EXPECT_TRUE(std::isnan(a.group_mean[0].item<float>()));
}

TEST(Advantages, RejectsBadShapes) {
  EXPECT_THROW(compute_advantages(torch::zeros({7}), 4, AdvantageOptions{}), c10::Error);
  EXPECT_THROW(compute_advantages(torch::zeros({4}), 1, AdvantageOptions{}), c10::Error);
  EXPECT_THROW(compute_advantages(torch::zeros({2, 3}), 4, AdvantageOptions{}), c10::Error);
}

TEST(Advantages, BroadcastToTokens) {
  auto adv = torch::tensor({2.0f, -1.0f});
  auto mask = torch::tensor({{1.0f, 1.0f, 0.0f}, {1.0f, 0.0f, 0.0f}});
  auto t = broadcast_to_tokens(adv, mask);
  expect_near_vec(t, {2, 2, 0, -1, 0, 0});
  EXPECT_THROW(broadcast_to_tokens(adv, torch::ones({3, 3})), c10::Error);
}

}  // namespace
}  // namespace r1kit::grpo
