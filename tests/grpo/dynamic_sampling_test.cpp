// Dynamic sampling (grpo/dynamic_sampling.h): exactly the zero-variance groups go.
#include "grpo/dynamic_sampling.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "grpo/advantages.h"

namespace r1kit::grpo {
namespace {

const float kNaNf = std::nanf("");

// Five groups of G = 4:
//   0: [1, 0, 1, 0]          mixed              -> keep
//   1: [1, 1, 1, 1]          all correct        -> drop
//   2: [0, 0, 0, 0]          all wrong          -> drop
//   3: [NaN, 1, NaN, NaN]    one scored sample  -> drop (no baseline)
//   4: [0.5, 0.5, NaN, 0.7]  mixed among scored -> keep
//   5: [0.2, 0.2, 0.2 + 1 ulp, 0.2]  equal within kZeroStdTol -> drop
torch::Tensor five_groups() {
  return torch::tensor({{1.0f, 0.0f, 1.0f, 0.0f},
                        {1.0f, 1.0f, 1.0f, 1.0f},
                        {0.0f, 0.0f, 0.0f, 0.0f},
                        {kNaNf, 1.0f, kNaNf, kNaNf},
                        {0.5f, 0.5f, kNaNf, 0.7f},
                        {0.2f, 0.2f, std::nextafter(0.2f, 1.0f), 0.2f}});
}

TEST(DynamicSampling, DropsExactlyTheZeroVarianceGroups) {
  auto r = five_groups();
  EXPECT_EQ(select_informative_groups(r), (std::vector<int64_t>{0, 4}));
  // The same groups that compute_advantages marks zero_std, whose advantages are all 0.
  auto a = compute_advantages(r, 4, AdvantageOptions{});
  EXPECT_TRUE(torch::equal(a.zero_std, informative_groups(r).logical_not()));
  auto per_group = a.advantages.reshape({6, 4}).abs().sum(1);
  for (int64_t i : {1, 2, 3, 5}) EXPECT_EQ(per_group[i].item<float>(), 0.0f) << i;
  for (int64_t i : {0, 4}) EXPECT_GT(per_group[i].item<float>(), 0.0f) << i;
}

TEST(DynamicSampling, SamplerFillsUpToTheTarget) {
  DynamicSampler ds(/*target_groups=*/3, /*max_rounds=*/2);
  EXPECT_TRUE(ds.should_generate());
  EXPECT_EQ(ds.add_round(five_groups()), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(ds.needed(), 1);
  EXPECT_TRUE(ds.should_generate());
  // Round 2: groups 0 and 1 informative, only one needed.
  auto r2 = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {1.0f, 1.0f}});
  EXPECT_EQ(ds.add_round(r2), (std::vector<int64_t>{0}));
  EXPECT_TRUE(ds.satisfied());
  EXPECT_FALSE(ds.exhausted());
  EXPECT_FALSE(ds.should_generate());
  EXPECT_EQ(ds.kept(), 3);
  EXPECT_EQ(ds.rounds(), 2);
  EXPECT_EQ(ds.seen(), 9);
  EXPECT_EQ(ds.informative(), 4);
  EXPECT_NEAR(ds.pass_rate(), 4.0 / 9.0, 1e-12);
}

TEST(DynamicSampling, SamplerGivesUpAfterMaxRounds) {
  DynamicSampler ds(/*target_groups=*/4, /*max_rounds=*/2);
  auto none = torch::ones({4, 3});  // every group all-equal
  EXPECT_TRUE(ds.add_round(none).empty());
  EXPECT_TRUE(ds.should_generate());
  EXPECT_TRUE(ds.add_round(five_groups()).size() == 2);
  EXPECT_FALSE(ds.should_generate());
  EXPECT_TRUE(ds.exhausted());
  EXPECT_EQ(ds.kept(), 2);
}

}  // namespace
}  // namespace r1kit::grpo
