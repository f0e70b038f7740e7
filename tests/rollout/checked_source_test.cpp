// Tests of rollout/checked_source.h: completions with NaN log-probs, ids outside the
// vocabulary or more tokens than asked never pass; their group is asked for again, and
// rejected (emptied, cannot be judged) when it is bad again.
#include "rollout/checked_source.h"

#include <gtest/gtest.h>

#include <cmath>

namespace r1kit::rollout {
namespace {

Completion completion(std::vector<int64_t> ids, std::vector<float> logprobs,
                      FinishReason finish = FinishReason::kLength, int64_t version = 0) {
  Completion c;
  c.token_ids = std::move(ids);
  c.logprobs = std::move(logprobs);
  c.finish_reason = finish;
  c.policy_version = version;
  return c;
}

// Returns two-token completions; `bad(call, prompt_index)` decides which groups to break.
class ScriptedSource final : public RolloutSource {
 public:
  explicit ScriptedSource(std::function<int(int, int64_t)> bad) : bad_(std::move(bad)) {}
  StatusOr<std::vector<Group>> generate(const GenerateRequest& req,
                                        const std::function<void(const Group&)>&) override {
    ++calls_;
    std::vector<Group> out;
    for (const auto& p : req.prompts) {
      Group g;
      g.prompt_index = p.index;
      for (int64_t j = 0; j < req.group_size; ++j) {
        Completion c = completion({3, 4}, {-0.5f, -0.25f}, FinishReason::kStop, 7);
        switch (bad_(calls_, p.index)) {
          case 1: c.logprobs[1] = NAN; break;
          case 2: c.token_ids[0] = 1000; break;
          case 3: c.token_ids.assign(9, 3), c.logprobs.assign(9, -1.0f); break;
          default: break;
        }
        g.completions.push_back(c);
      }
      out.push_back(g);
    }
    return out;
  }
  Status update_weights(const NamedTensors&, int64_t) override { return OkStatus(); }
  int64_t policy_version() const override { return 7; }
  int calls() const { return calls_; }

 private:
  std::function<int(int, int64_t)> bad_;
  int calls_ = 0;
};

GenerateRequest three_prompts() {
  GenerateRequest r;
  r.prompts = {{{1}, 10}, {{2}, 11}, {{3}, 12}};
  r.group_size = 2;
  r.sampling.max_new_tokens = 4;
  return r;
}

TEST(CompletionProblemTest, NamesWhatIsWrong) {
  SamplingParams s;
  s.max_new_tokens = 2;
  EXPECT_EQ(completion_problem(completion({1, 2}, {-1.f, -2.f}), s, 5), "");
  EXPECT_NE(completion_problem(completion({1, 2}, {-1.f, NAN}), s, 5).find("log-prob nan"),
            std::string::npos);
  EXPECT_NE(completion_problem(completion({1, 2}, {-1.f, -INFINITY}), s, 5).find("log-prob -inf"),
            std::string::npos);
  EXPECT_NE(
      completion_problem(completion({1, 5}, {-1.f, -1.f}), s, 5).find("outside the vocabulary"),
      std::string::npos);
  EXPECT_NE(completion_problem(completion({-1}, {-1.f}), s, 5).find("outside the vocabulary"),
            std::string::npos);
  EXPECT_NE(
      completion_problem(completion({1, 2, 3}, {-1.f, -1.f, -1.f}), s, 5).find("max_new_tokens=2"),
      std::string::npos);
  EXPECT_NE(completion_problem(completion({1, 2}, {-1.f}), s, 5).find("1 log-probs"),
            std::string::npos);
}

TEST(CheckedRolloutSourceTest, ABadGroupIsAskedAgainThenRejected) {
  // Prompt 10: NaN every time; 11: out of the vocabulary on the first call only; 12: fine.
  auto inner = std::make_unique<ScriptedSource>([](int call, int64_t index) {
    if (index == 10) return 1;
    if (index == 11 && call == 1) return 2;
    return 0;
  });
  ScriptedSource* raw = inner.get();
  CheckedRolloutSource src(std::move(inner), /*vocab_size=*/100);
  auto groups = src.generate(three_prompts());
  ASSERT_TRUE(groups.ok()) << groups.status().message();
  ASSERT_EQ(groups->size(), 3u);
  EXPECT_EQ(raw->calls(), 3);  // the request, then 10 and 11 once more each
  EXPECT_EQ(src.rerequested_groups(), 2);
  EXPECT_EQ(src.rejected_groups(), 1);
  const Group& nan = (*groups)[0];
  EXPECT_TRUE(nan.rejected);
  ASSERT_EQ(nan.completions.size(), 2u);
  for (const auto& c : nan.completions) {
    EXPECT_TRUE(c.token_ids.empty());
    EXPECT_TRUE(c.logprobs.empty());
    EXPECT_EQ(c.finish_reason, FinishReason::kAbort);
    EXPECT_EQ(c.policy_version, 7);
  }
  for (int i : {1, 2}) {
    const Group& g = (*groups)[i];
    EXPECT_FALSE(g.rejected);
    EXPECT_EQ(g.prompt_index, 10 + i);
    for (const auto& c : g.completions) EXPECT_EQ(c.token_ids, (std::vector<int64_t>{3, 4}));
  }
}

TEST(CheckedRolloutSourceTest, LongerThanAskedIsRejected) {
  CheckedRolloutSource src(
      std::make_unique<ScriptedSource>([](int, int64_t index) { return index == 12 ? 3 : 0; }),
      100);
  auto groups = src.generate(three_prompts());
  ASSERT_TRUE(groups.ok());
  EXPECT_TRUE((*groups)[2].rejected);
  EXPECT_FALSE((*groups)[0].rejected);
  EXPECT_EQ(src.policy_version(), 7);
}

}  // namespace
}  // namespace r1kit::rollout
