// Tests of data/task_answer.h: answers as GSM8K and MATH write them, and solutions and
// responses split into their reasoning and final answer.
#include "data/task_answer.h"

#include <gtest/gtest.h>

#include <string>

namespace r1kit::data {
namespace {

struct SplitCase {
  std::string text;
  std::string reasoning;
  std::string answer;
  bool marked;
};

TEST(TaskAnswerTest, SplitSolution) {
  const SplitCase cases[] = {
      // GSM8K: the text before ####, the rest of the #### line.
      {"Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72",
       "Natalia sold 48/2 = <<48/2=24>>24 clips.", "72", true},
      {"It costs $1,234.\n####  1,234 \n", "It costs $1,234.", "1,234", true},
      {"#### 5", "", "5", true},
      // MATH: the whole solution, its last \boxed (brace-matched).
      {"So $x = \\boxed{\\frac{3}{4}}$.", "So $x = \\boxed{\\frac{3}{4}}$.", "\\frac{3}{4}", true},
      {"First \\boxed{1}, then \\boxed{\\{2, 3\\}}", "First \\boxed{1}, then \\boxed{\\{2, 3\\}}",
       "\\{2, 3\\}", true},
      {"$\\boxed{5}$", "", "5", true},
      {" \\boxed{5}. ", "", "5", true},
      {"\\fbox{7}", "", "7", true},
      {"The answer is $\\boxed 8$", "The answer is $\\boxed 8$", "8", true},
      // A \boxed wins over ####, as gold answers are read.
      {"\\boxed{3} #### 4", "\\boxed{3} #### 4", "3", true},
      // Bare answers.
      {" 17 ", "", "17", false},
      {"(3 + 4) * 5", "", "(3 + 4) * 5", false},
      {"\\boxed{}", "", "\\boxed{}", false},  // an empty box is no answer
  };
  for (const SplitCase& c : cases) {
    SCOPED_TRACE(c.text);
    WorkedSolution s = split_solution(c.text);
    EXPECT_EQ(s.reasoning, c.reasoning);
    EXPECT_EQ(s.answer, c.answer);
    EXPECT_EQ(s.marked, c.marked);
    EXPECT_EQ(gold_answer_text(c.text), c.answer);
  }
}

TEST(TaskAnswerTest, SplitResponse) {
  const SplitCase cases[] = {
      {"<think> 2+2=4 </think> <answer> 4 </answer>", "2+2=4", "4", true},
      {"2+2=4 </think> <answer> 4 </answer>", "2+2=4", "4", true},  // after a prefilled <think>
      {"<think>\nsteps\n</think>\n<answer>\\boxed{\\frac12}</answer>", "steps", "\\frac12", true},
      {"<answer> 9 </answer>", "", "9", true},
      // The last answer tag, and the reasoning before the last </think> ahead of it.
      {"<think> a </think> <answer> 1 </answer> <answer> 2 </answer>", "a", "2", true},
      {"14/2 = 7.\n#### 7", "14/2 = 7.", "7", true},
      {"So it is \\boxed{7}.", "So it is \\boxed{7}.", "7", true},
      {"It is 5.", "It is 5.", "", false},
      {"<answer> unclosed", "<answer> unclosed", "", false},
  };
  for (const SplitCase& c : cases) {
    SCOPED_TRACE(c.text);
    WorkedSolution s = split_response(c.text);
    EXPECT_EQ(s.reasoning, c.reasoning);
    EXPECT_EQ(s.answer, c.answer);
    EXPECT_EQ(s.marked, c.marked);
  }
}

TEST(TaskAnswerTest, LastBoxedAndMatchBrace) {
  std::vector<std::string> all;
  EXPECT_EQ(last_boxed("\\boxed{1} and \\boxed{{2}} and \\boxed{3", &all), "{2}");
  EXPECT_EQ(all, (std::vector<std::string>{"1", "{2}"}));
  EXPECT_EQ(last_boxed("no box"), "");
  EXPECT_EQ(match_brace("{a\\}b}c", 0), 6u);
  EXPECT_EQ(match_brace("{a{b}", 0), std::string_view::npos);
  EXPECT_EQ(gsm8k_answer("x\n#### 12\nmore"), "12");
  EXPECT_FALSE(gsm8k_answer("no marker"));
}

}  // namespace
}  // namespace r1kit::data
