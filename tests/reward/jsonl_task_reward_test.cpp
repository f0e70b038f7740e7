// End to end from a dataset's JSONL line to the reward: GSM8K, MATH and conversation
// lines read by the jsonl task (TaskSource), then scored by the task's checker
// (math_accuracy) as GRPO and eval score them — a right completion 1, a wrong one 0.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <string>

#include "data/task_source.h"
#include "reward/reward.h"
#include "tests/temp_dir.h"

namespace r1kit::reward {
namespace {

// Each problem of `lines` (by question), with the jsonl task's checker.
struct JsonlScored {
  std::map<std::string, data::TaskSample> by_question;
  std::unique_ptr<Reward> checker;
};

JsonlScored jsonl_problems(const std::vector<std::string>& lines) {
  const testing::ScopedTempDir tmp("jsonl_task_reward");
  const std::string path = tmp.join("problems.jsonl");
  {
    std::ofstream f(path);
    for (const std::string& l : lines) f << l << '\n';
  }
  auto sec = load_config_string<data::TaskSection>(
      "{name: jsonl, eval_size: 0, path: '" + path + "'}", {}, "task");
  EXPECT_TRUE(sec.ok()) << sec.status().to_string();
  auto src = data::TaskSource::create(*sec);
  EXPECT_TRUE(src.ok()) << src.status().to_string();
  JsonlScored out;
  for (uint64_t i = 0; i < lines.size(); ++i) {
    data::TaskSample s = src->train(i);
    out.by_question[s.question] = s;
  }
  const std::vector<RewardSpec> specs = sec->default_rewards();
  EXPECT_EQ(specs[0].name, "math_accuracy");
  auto r = RewardRegistry::global().create(specs[0].name, specs[0].args);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  out.checker = std::move(*r);
  return out;
}

double jsonl_score(const JsonlScored& p, const std::string& question,
                   const std::string& completion) {
  Sample s;
  s.completion = completion;
  s.metadata = p.by_question.at(question).metadata;
  return p.checker->score(std::span<const Sample>(&s, 1)).values[0];
}

TEST(JsonlTaskRewardTest, DatasetAnswersAreScored) {
  const std::string gsm8k = "Natalia sold 48 clips in April and half as many in May. How many?";
  const std::string math = "What is $\\frac{1}{2}+\\frac{1}{4}$?";
  const JsonlScored p = jsonl_problems({
      nlohmann::json{{"question", gsm8k},
                     {"answer",
                      "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = "
                      "<<48+24=72>>72 clips altogether.\n#### 72"}}
          .dump(),
      nlohmann::json{{"problem", math},
                     {"solution", "Add: $\\frac{2}{4}+\\frac{1}{4} = \\boxed{\\frac{3}{4}}$."},
                     {"level", "Level 1"}}
          .dump(),
      R"({"question": "Price?", "answer": "It is $1,234 in total.\n#### 1,234"})",
      R"({"messages": [{"role": "user", "content": "What is 6*7?"}, {"role": "assistant", "content": "<think> 6*7=42 </think> <answer> 42 </answer>"}]})",
  });
  ASSERT_EQ(p.by_question.size(), 4u);
  // GSM8K: "#### 72" is the gold answer.
  EXPECT_EQ(jsonl_score(p, gsm8k, "<think> 48+24 </think> <answer> 72 </answer>"), 1.0);
  EXPECT_EQ(jsonl_score(p, gsm8k, "So the answer is \\boxed{72}."), 1.0);
  EXPECT_EQ(jsonl_score(p, gsm8k, "<think> 48+24 </think> <answer> 24 </answer>"), 0.0);
  // Not the whole solution: the reasoning's numbers are not the answer.
  EXPECT_EQ(jsonl_score(p, gsm8k, "<answer> 48 </answer>"), 0.0);
  // MATH: the last \boxed, compared exactly (0.75 == 3/4).
  EXPECT_EQ(jsonl_score(p, math, "<think> x </think> <answer> \\frac{3}{4} </answer>"), 1.0);
  EXPECT_EQ(jsonl_score(p, math, "<think> x </think> <answer> 0.75 </answer>"), 1.0);
  EXPECT_EQ(jsonl_score(p, math, "<think> x </think> <answer> \\frac{2}{4} </answer>"), 0.0);
  // Thousands separators in the gold answer.
  EXPECT_EQ(jsonl_score(p, "Price?", "<answer> 1234 </answer>"), 1.0);
  EXPECT_EQ(jsonl_score(p, "Price?", "<answer> 1233 </answer>"), 0.0);
  // A conversation's answer tag is its gold answer.
  EXPECT_EQ(jsonl_score(p, "What is 6*7?", "<think> y </think> <answer> 42 </answer>"), 1.0);
  EXPECT_EQ(jsonl_score(p, "What is 6*7?", "<think> y </think> <answer> 48 </answer>"), 0.0);
}

}  // namespace
}  // namespace r1kit::reward
