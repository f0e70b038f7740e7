// reward/score_group.h: every completion of a group becomes a Sample with the prompt,
// the metadata, its ids and its decoded text; an EOS to drop leaves ids and text; the
// group is scored at once by every component.
#include "reward/score_group.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

namespace r1kit::reward {
namespace {

// Scores a sample by its token count plus 10 if its text equals metadata["answer"], and
// keeps what it was given.
class SgRecordingReward : public Reward {
 public:
  explicit SgRecordingReward(std::vector<Sample>* seen) : seen_(seen) {}
  Scores score(std::span<const Sample> group) const override {
    std::vector<double> out;
    for (const Sample& s : group) {
      seen_->push_back(s);
      const bool right = s.completion == s.metadata.value("answer", std::string());
      out.push_back(static_cast<double>(s.completion_ids.size()) + (right ? 10.0 : 0.0));
    }
    return out;
  }

 private:
  std::vector<Sample>* seen_;
};

// "ids" -> "<5><7>": a decoder that shows exactly which ids it was given.
std::string sg_decode(std::span<const int64_t> ids) {
  std::string s;
  for (int64_t id : ids) s += "<" + std::to_string(id) + ">";
  return s;
}

struct SgCompletion {
  std::vector<int64_t> token_ids;
};

CombinedReward sg_rewards(std::vector<Sample>* seen) {
  std::vector<CombinedReward::Component> c;
  c.push_back({"recording", 2.0, kRoleOther, std::make_unique<SgRecordingReward>(seen)});
  return CombinedReward(std::move(c));
}

TEST(ScoreGroupTest, SamplesCarryPromptMetadataIdsAndText) {
  std::vector<Sample> seen;
  const CombinedReward rewards = sg_rewards(&seen);
  const nlohmann::json meta = {{"answer", "<5><7>"}};
  const std::vector<SgCompletion> group = {{{5, 7}}, {{9}}, {{}}};
  const ScoredGroup g = score_completions(rewards, "Q: 2+3?", meta, group, sg_decode);
  ASSERT_EQ(g.samples.size(), 3u);
  ASSERT_EQ(seen.size(), 3u);  // one call over the whole group
  const std::vector<std::string> texts = {"<5><7>", "<9>", ""};
  for (size_t j = 0; j < 3; ++j) {
    EXPECT_EQ(g.samples[j].prompt, "Q: 2+3?");
    EXPECT_EQ(g.samples[j].metadata, meta);
    EXPECT_EQ(g.samples[j].completion, texts[j]);
    EXPECT_EQ(seen[j].completion, texts[j]);
    EXPECT_EQ(g.samples[j].completion_ids.size(), group[j].token_ids.size());
  }
  EXPECT_EQ(g.samples[0].completion_ids, (std::vector<int32_t>{5, 7}));
  EXPECT_EQ(g.scores.names, (std::vector<std::string>{"recording"}));
  // Component: 2 tokens + 10 (right), 1 token, 0 tokens; total: weight 2.
  EXPECT_EQ(g.scores.components[0], (std::vector<double>{12.0, 1.0, 0.0}));
  EXPECT_EQ(g.scores.total, (std::vector<double>{24.0, 2.0, 0.0}));
}

TEST(ScoreGroupTest, DropIdLeavesIdsAndTextButNothingElse) {
  std::vector<Sample> seen;
  const CombinedReward rewards = sg_rewards(&seen);
  const std::vector<std::vector<int64_t>> ids = {{4, 2, 8, 2}, {2}, {3, 9}};
  const std::vector<std::span<const int64_t>> spans(ids.begin(), ids.end());
  const nlohmann::json meta = {{"answer", "none"}};
  const std::vector<int64_t> stop = {2, 9};
  const ScoredGroup g = score_group(rewards, "p", meta, spans, sg_decode, /*drop_ids=*/stop);
  ASSERT_EQ(g.samples.size(), 3u);
  EXPECT_EQ(g.samples[0].completion_ids, (std::vector<int32_t>{4, 8}));
  EXPECT_EQ(g.samples[0].completion, "<4><8>");
  EXPECT_TRUE(g.samples[1].completion_ids.empty());
  EXPECT_EQ(g.samples[1].completion, "");
  EXPECT_EQ(g.samples[2].completion, "<3>");
  EXPECT_EQ(g.scores.total, (std::vector<double>{4.0, 0.0, 2.0}));
  // Without drop_ids every id stays.
  const ScoredGroup all = score_group(rewards, "p", meta, spans, sg_decode);
  EXPECT_EQ(all.samples[0].completion, "<4><2><8><2>");
}

}  // namespace
}  // namespace r1kit::reward
