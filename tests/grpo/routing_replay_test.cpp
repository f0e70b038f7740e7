// Routing replay bookkeeping (grpo/routing_replay.h) on hand-made routings: the packed
// layout (prompt then completion, -1 padding) and the route-mismatch counts.
#include "grpo/routing_replay.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace r1kit::grpo {
namespace {

rollout::RoutedExperts routed(std::vector<int16_t> ids) {
  return {/*layers=*/1, /*k=*/2, std::move(ids)};
}

TEST(RoutingReplay, PackLaysOutPromptThenCompletionWithPadding) {
  // One group, G = 2, prompt of 2 tokens; completions of 2 and 1 tokens (last token -1).
  rollout::Group g;
  g.prompt_experts = routed({0, 1, 2, 3});
  rollout::Completion a, b;
  a.token_ids = {7, 8};
  a.routed_experts = routed({1, 2, -1, -1});
  b.token_ids = {9};
  b.routed_experts = routed({-1, -1});
  g.completions = {a, b};
  auto t = pack_routed_experts({g}, {2});
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{2, 4, 1, 2}));
  EXPECT_EQ(t.scalar_type(), torch::kInt16);
  auto want = torch::tensor({0, 1, 2, 3, 1, 2, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1}, torch::kInt16)
                  .view({2, 4, 1, 2});
  EXPECT_TRUE(torch::equal(t, want)) << t;

  // No routing recorded (a dense model): undefined.
  rollout::Group dense;
  dense.completions = {a};
  dense.completions[0].routed_experts = {};
  EXPECT_FALSE(pack_routed_experts({dense}, {2}).defined());
  // A completion whose routing does not cover its tokens is refused.
  g.completions[1].routed_experts = routed({1});
  EXPECT_THROW(pack_routed_experts({g}, {2}), c10::Error);
}

TEST(RoutingReplay, MismatchCountsEngineChoicesTheTrainerDidNotMake) {
  // Recorded [1, 3, 1, 2]: token 0 {0, 1}, token 1 {2, 3}, token 2 not recorded.
  auto rec = torch::tensor({0, 1, 2, 3, -1, -1}, torch::kInt16).view({1, 3, 1, 2});
  // Used (one position longer): token 0 {1, 0} (same set, other order), token 1 {2, 0}
  // (3 missing), token 2 anything.
  auto used = torch::tensor({1, 0, 2, 0, 3, 3, 1, 1}, torch::kInt16).view({1, 4, 1, 2});
  RouteMismatch m;
  EXPECT_TRUE(std::isnan(m.rate()));
  m.add(rec, used);
  EXPECT_EQ(m.recorded, 4);
  EXPECT_EQ(m.mismatched, 1);
  EXPECT_DOUBLE_EQ(m.rate(), 0.25);
  m.add(rec, rec);  // a second micro-batch in full agreement
  EXPECT_DOUBLE_EQ(m.rate(), 1.0 / 8);
  m.add(rec, used.narrow(1, 0, 2));  // shorter, past it only padding: the same counts
  EXPECT_DOUBLE_EQ(m.rate(), 2.0 / 12);
  EXPECT_THROW(m.add(rec, used.narrow(1, 0, 1)), c10::Error);  // drops a recorded token
}

}  // namespace
}  // namespace r1kit::grpo
