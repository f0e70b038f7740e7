// The generated tasks are right by their own rewards: every countdown answer scores 1,
// every knights-and-knaves answer scores correct, and the arithmetic task's answers and
// traces (data/arithmetic.h, as the SFT recipe renders them) pass arithmetic + format.
#include <gtest/gtest.h>

#include "data/arithmetic.h"
#include "data/tasks.h"
#include "reward/rule_rewards.h"

namespace r1kit::reward {
namespace {

double task_score1(const Reward& r, const Sample& s) {
  return r.score(std::span<const Sample>(&s, 1)).values[0];
}

TEST(TaskRewardTest, CountdownAnswersAreRight) {
  CountdownReward r{CountdownOptions{}};
  for (uint64_t i = 0; i < 1000; ++i) {
    data::TaskSample t = data::countdown_task(11, i);
    Sample s;
    s.completion = "<think> " + t.trace + " </think> <answer> " +
                   t.metadata["answer"].get<std::string>() + " </answer>";
    s.metadata = t.metadata;
    ASSERT_EQ(task_score1(r, s), 1.0) << s.completion;
  }
}

TEST(TaskRewardTest, KnightsKnavesAnswersAreRight) {
  KnightsKnavesReward r{KnightsKnavesRewardOptions{}};
  for (uint64_t i = 0; i < 300; ++i) {
    data::TaskSample t = data::knights_knaves_task(5, i);
    Sample s;
    s.completion =
        "<think> x </think> <answer> " + t.metadata["answer"].get<std::string>() + " </answer>";
    s.metadata = t.metadata;
    ASSERT_EQ(task_score1(r, s), 1.0) << s.completion;
    // Flipping the first person's role is wrong.
    std::string flipped = t.metadata["answer"].get<std::string>();
    size_t p = flipped.find(" is a ");
    bool knight = flipped.compare(p + 6, 6, "knight") == 0;
    flipped.replace(p + 6, knight ? 6 : 5, knight ? "knave" : "knight");
    s.completion = "<answer>" + flipped + "</answer>";
    ASSERT_EQ(task_score1(r, s), 0.0) << s.completion;
  }
}

TEST(TaskRewardTest, ArithmeticTracesPass) {
  ArithmeticReward arith{ArithmeticRewardOptions{}};
  FormatReward format{FormatOptions{}};
  for (const data::TaskExample& ex : data::arithmetic_examples(1, 200)) {
    Sample s;
    s.completion = "<think> " + ex.trace + " </think> <answer> " + ex.answer + " </answer>";
    s.metadata = {{"answer", ex.answer}};
    EXPECT_EQ(task_score1(arith, s), 1.0);
    EXPECT_EQ(format.score_one(s.completion), 1.0);
  }
}

}  // namespace
}  // namespace r1kit::reward
