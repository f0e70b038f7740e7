// Packing rollout groups into [B, T] tensors (grpo/completion_batch.h).
#include "grpo/completion_batch.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace r1kit::grpo {
namespace {

rollout::Completion completion(std::vector<int64_t> ids, std::vector<float> lps,
                               rollout::FinishReason why, int64_t version = 3) {
  rollout::Completion c;
  c.token_ids = std::move(ids);
  c.logprobs = std::move(lps);
  c.finish_reason = why;
  c.policy_version = version;
  return c;
}

TEST(CompletionBatch, PacksGroupMajorWithRightPadding) {
  using rollout::FinishReason;
  std::vector<rollout::Group> groups(2);
  groups[0].prompt_index = 0;
  groups[0].completions = {completion({5, 6, 7}, {-0.1f, -0.2f, -0.3f}, FinishReason::kLength),
                           completion({8}, {-0.4f}, FinishReason::kStop)};
  groups[1].prompt_index = 1;
  groups[1].completions = {completion({}, {}, FinishReason::kStop),
                           completion({9, 10}, {-0.5f, -0.6f}, FinishReason::kStop, 4)};
  auto b = pack_completions(groups);
  EXPECT_EQ(b.group_size, 2);
  ASSERT_EQ(b.token_ids.sizes(), (std::vector<int64_t>{4, 3}));
  EXPECT_TRUE(torch::equal(b.token_ids,
                           torch::tensor({5, 6, 7, 8, 0, 0, 0, 0, 0, 9, 10, 0}).reshape({4, 3})));
  EXPECT_TRUE(torch::equal(
      b.mask,
      torch::tensor({1.f, 1.f, 1.f, 1.f, 0.f, 0.f, 0.f, 0.f, 0.f, 1.f, 1.f, 0.f}).reshape({4, 3})));
  EXPECT_FLOAT_EQ(b.behaviour_logprobs[3][1].item<float>(), -0.6f);
  EXPECT_FLOAT_EQ(b.behaviour_logprobs[1][1].item<float>(), 0.0f);  // padding
  EXPECT_TRUE(torch::equal(b.truncated, torch::tensor({true, false, false, false})));
  EXPECT_TRUE(torch::equal(b.policy_version, torch::tensor({3, 3, 3, 4}, torch::kInt64)));
}

TEST(CompletionBatch, RejectsRaggedGroupsAndMismatchedLogprobs) {
  using rollout::FinishReason;
  std::vector<rollout::Group> ragged(2);
  ragged[0].completions = {completion({1}, {-1.f}, FinishReason::kStop),
                           completion({1}, {-1.f}, FinishReason::kStop)};
  ragged[1].completions = {completion({1}, {-1.f}, FinishReason::kStop)};
  EXPECT_THROW(pack_completions(ragged), c10::Error);
  std::vector<rollout::Group> bad(1);
  bad[0].completions = {completion({1, 2}, {-1.f}, FinishReason::kStop)};
  EXPECT_THROW(pack_completions(bad), c10::Error);
}

}  // namespace
}  // namespace r1kit::grpo
