// GRPO's data-parallel pieces that need no second process (grpo/data_parallel.h): which
// recipe settings are refused across ranks, one process's advantages, and two ranks
// (threads of this process) taking the job's batch statistics. The rest of the
// multi-rank behaviour is tested end to end in tests/train/distributed_integration_test.cpp.
#include "grpo/data_parallel.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "tests/two_ranks.h"

namespace r1kit::grpo {
namespace {

TEST(CheckDataParallelTest, RefusesOnlyWhatIsNotExactAcrossRanks) {
  GrpoRecipe r;
  r.rollout.prompts_per_step = 4;
  // The global shuffle and the job's batch statistics work on several ranks.
  r.grpo.mini_batches = 2;
  r.grpo.loss.scale_rewards = RewardScale::kBatch;
  EXPECT_TRUE(check_data_parallel(r, 2).ok());
  const Status few = check_data_parallel(r, 5);
  ASSERT_FALSE(few.ok());
  EXPECT_NE(few.message().find("rollout.prompts_per_step=4"), std::string::npos) << few.message();
  // Overlap with dynamic sampling: the rollout thread reduces on a group of its own.
  r.rollout.overlap = true;
  r.grpo.loss.dynamic_sampling = true;
  EXPECT_TRUE(check_data_parallel(r, 2).ok());
  r.rollout.prompts_per_step = 1;
  EXPECT_TRUE(check_data_parallel(r, 1).ok()) << "one rank: anything goes";
}

TEST(JobAdvantagesTest, OneProcessIsComputeAdvantages) {
  GrpoRecipe r;
  r.rollout.group_size = 2;
  r.grpo.loss.scale_rewards = RewardScale::kBatch;
  train::DataParallel one;
  const auto rewards = torch::tensor({1.0f, 0.0f, 3.0f, 1.0f});
  // By hand: group means 0.5 and 2, so centred 0.5, -0.5, 1, -1; the batch's unbiased
  // variance of {1, 0, 3, 1} is 4.75 / 3 around its mean 1.25.
  const Advantages a = job_advantages(rewards, {0, 1, 2, 3}, 4, r, one);
  const double mean = 5.0 / 4,
               var = ((1 - mean) * (1 - mean) * 2 + mean * mean + (3 - mean) * (3 - mean)) / 3;
  const double s = std::sqrt(var) + r.grpo.loss.advantage_options().eps;
  EXPECT_NEAR(a.advantages[0].item<float>(), 0.5 / s, 1e-6);
  EXPECT_NEAR(a.advantages[1].item<float>(), -0.5 / s, 1e-6);
  EXPECT_NEAR(a.advantages[2].item<float>(), 1.0 / s, 1e-6);
  EXPECT_NEAR(a.advantages[3].item<float>(), -1.0 / s, 1e-6);
}

// Three groups of two: rank 0 holds global groups 0 and 2, rank 1 group 1 (scattered, as
// dynamic sampling keeps them). Each rank's advantages are its rows of one process's, to
// the bit; then a step where rank 1 kept no group and takes part with nothing.
TEST(JobAdvantagesTest, TwoRanksTakeTheJobsBatchStatistics) {
  GrpoRecipe r;
  r.rollout.group_size = 2;
  r.grpo.loss.scale_rewards = RewardScale::kBatch;
  const auto all = torch::tensor({1.0f, 0.0f, 5.0f, 1.0f, 3.0f, 1.0f});
  const Advantages want = compute_advantages(all, 2, r.grpo.loss.advantage_options());
  r1kit::testing::two_ranks([&](int rank, train::DataParallel& dp) {
    const std::vector<int64_t> rows =
        rank == 0 ? std::vector<int64_t>{0, 1, 4, 5} : std::vector<int64_t>{2, 3};
    const auto idx = torch::tensor(rows);
    const auto groups =
        rank == 0 ? torch::tensor({int64_t{0}, int64_t{2}}) : torch::tensor({int64_t{1}});
    const Advantages got = job_advantages(all.index_select(0, idx), rows, 6, r, dp);
    EXPECT_TRUE(torch::equal(got.advantages, want.advantages.index_select(0, idx))) << rank;
    EXPECT_TRUE(torch::equal(got.valid, want.valid.index_select(0, idx))) << rank;
    EXPECT_TRUE(torch::equal(got.group_std, want.group_std.index_select(0, groups))) << rank;
    EXPECT_TRUE(torch::equal(got.zero_std, want.zero_std.index_select(0, groups))) << rank;
    // Rank 1 sits the next step out.
    const Advantages next = rank == 0 ? job_advantages(all, {0, 1, 2, 3, 4, 5}, 6, r, dp)
                                      : job_advantages(torch::zeros({0}), {}, 6, r, dp);
    if (rank == 0)
      EXPECT_TRUE(torch::equal(next.advantages, want.advantages));
    else
      EXPECT_EQ(next.advantages.numel(), 0);
  });
}

}  // namespace
}  // namespace r1kit::grpo
