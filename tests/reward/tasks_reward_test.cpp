// The generated tasks are right by their own rewards: every countdown answer scores 1,
// every knights-and-knaves answer scores correct, and the arithmetic task's answers and
// traces (data/tasks/arithmetic.cpp, as the SFT recipe renders them) pass arithmetic +
// format.
#include <gtest/gtest.h>

#include "core/config.h"
#include "data/task_source.h"
#include "reward/rule_rewards.h"

namespace r1kit::reward {
namespace {

double task_score1(const Reward& r, const Sample& s) {
  return r.score(std::span<const Sample>(&s, 1)).values[0];
}

// Problem `index` of stream `seed` of task `name` with its default options.
data::TaskSample default_problem(const std::string& name, uint64_t seed, uint64_t index) {
  data::TaskSection sec;
  sec.name = name;
  return sec.task().generate(seed, index);
}

// The search-trace reward agrees with the search: every claim of every trace is true,
// dead ends and "none." included, with small numbers and wide ones.
TEST(TaskRewardTest, CountdownSearchTracesAreTrue) {
  CountdownSearchReward r{CountdownSearchOptions{}};
  for (const char* args : {"{name: countdown, trace: search, max_number: 6, max_target: 30}",
                           "{name: countdown, trace: search, max_number: 20, max_target: 200}"}) {
    auto sec = load_config_string<data::TaskSection>(args);
    ASSERT_TRUE(sec.ok()) << sec.status().to_string();
    int searched = 0, with_none = 0;
    for (uint64_t i = 0; i < 500; ++i) {
      data::TaskSample t = sec->task().generate(5, i);
      if (t.trace.find(" from ") == std::string::npos) continue;  // a forward trace
      ++searched;
      with_none += t.trace.find("none.") != std::string::npos;
      Sample s;
      s.completion = "<think> " + t.trace + " </think> <answer> 1 </answer>";
      s.metadata = t.metadata;
      EXPECT_EQ(task_score1(r, s), 1.0) << t.trace;
    }
    EXPECT_GT(searched, 450) << args;
    EXPECT_GT(with_none, 5) << args;
  }
}

TEST(TaskRewardTest, CountdownAnswersAreRight) {
  CountdownReward r{CountdownOptions{}};
  for (uint64_t i = 0; i < 1000; ++i) {
    data::TaskSample t = default_problem("countdown", 11, i);
    Sample s;
    s.completion = "<think> " + t.trace + " </think> <answer> " +
                   t.metadata["answer"].get<std::string>() + " </answer>";
    s.metadata = t.metadata;
    ASSERT_EQ(task_score1(r, s), 1.0) << s.completion;
  }
}

// The search traces' answers (trace_answer when the search found another expression than
// the generating one) score 1 too, with the small numbers of the shipped recipe and with
// wider ones; almost every problem gets a search trace.
TEST(TaskRewardTest, CountdownSearchAnswersAreRight) {
  CountdownReward r{CountdownOptions{}};
  for (const char* args : {"{name: countdown, trace: search, max_number: 6, max_target: 30}",
                           "{name: countdown, trace: search, max_number: 20, max_target: 200}"}) {
    auto sec = load_config_string<data::TaskSection>(args);
    ASSERT_TRUE(sec.ok()) << sec.status().to_string();
    int searched = 0;
    for (uint64_t i = 0; i < 500; ++i) {
      data::TaskSample t = sec->task().generate(3, i);
      const bool search = t.trace.find(" from ") != std::string::npos;
      searched += search;
      const std::string key = t.metadata.contains("trace_answer") ? "trace_answer" : "answer";
      Sample s;
      s.completion = "<think> " + t.trace + " </think> <answer> " +
                     t.metadata[key].get<std::string>() + " </answer>";
      s.metadata = t.metadata;
      ASSERT_EQ(task_score1(r, s), 1.0) << s.completion;
      // The trace ends in the equation it answers with.
      if (search) {
        EXPECT_TRUE(t.trace.ends_with(" = " + t.metadata[key].get<std::string>() + ".")) << t.trace;
      }
    }
    EXPECT_GT(searched, 480) << args;
  }
  // More than 4 numbers: no search trace (it grows as 4^n).
  EXPECT_FALSE(
      load_config_string<data::TaskSection>("{name: countdown, trace: search, max_numbers: 5}")
          .ok());
}

TEST(TaskRewardTest, KnightsKnavesAnswersAreRight) {
  KnightsKnavesReward r{KnightsKnavesRewardOptions{}};
  for (uint64_t i = 0; i < 300; ++i) {
    data::TaskSample t = default_problem("knights_knaves", 5, i);
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
  for (uint64_t i = 0; i < 200; ++i) {
    const data::TaskSample ex = default_problem("arithmetic", 1, i);
    const std::string answer = ex.metadata["answer"].get<std::string>();
    Sample s;
    s.completion = "<think> " + ex.trace + " </think> <answer> " + answer + " </answer>";
    s.metadata = ex.metadata;
    EXPECT_EQ(task_score1(arith, s), 1.0);
    EXPECT_EQ(format.score_one(s.completion), 1.0);
  }
}

}  // namespace
}  // namespace r1kit::reward
