// Tests of data/task_source.h: the held-out set is disjoint from the training stream,
// problems are a pure function of (seed, index), JSONL files are split, and the
// prompts and SFT responses follow the chat template.
#include "data/task_source.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/task_util.h"
#include "tests/data/task_test_util.h"
#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

TEST(TaskSourceTest, HeldOutProblemsNeverAppearInTraining) {
  // 8 * 8 * 100 = 6,400 questions: collisions are likely without the filter.
  TaskSection sec = task_section("{name: arithmetic, max_a: 9, eval_size: 300}");
  auto src = TaskSource::create(sec);
  ASSERT_TRUE(src.ok()) << src.status().message();
  std::set<std::string> eval;
  for (const auto& s : src->eval()) eval.insert(s.question);
  EXPECT_EQ(eval.size(), src->eval().size());
  EXPECT_GT(eval.size(), 280u);  // a few duplicates are dropped, not many
  // ... and the source says why it has fewer than eval_size.
  const std::string why = src->eval_shortfall();
  EXPECT_NE(why.find(std::to_string(300 - eval.size()) + " of the 300 generated questions"),
            std::string::npos)
      << why;
  for (uint64_t i = 0; i < 3000; ++i) EXPECT_FALSE(eval.contains(src->train(i).question)) << i;
}

TEST(TaskSourceTest, DeterministicPerIndex) {
  TaskSection sec;
  sec.name = "countdown";
  auto a = TaskSource::create(sec), b = TaskSource::create(sec);
  ASSERT_TRUE(a.ok() && b.ok());
  const auto batch = a->train_batch(10, 5);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(batch[i].question, b->train(10 + i).question);
    EXPECT_EQ(batch[i].metadata, b->train(10 + i).metadata);
  }
  sec.seed = 2;
  auto c = TaskSource::create(sec);
  EXPECT_NE(c->train(10).question, batch[0].question);
}

TEST(TaskSourceTest, ArithmeticMetadataAndRendering) {
  TaskSection sec;
  sec.prefill_think = true;
  auto src = TaskSource::create(sec);
  ASSERT_TRUE(src.ok());
  const TaskSample s = src->train(0);
  // "What is a*b+c?" with the answer in the metadata.
  int a, b, c;
  ASSERT_EQ(std::sscanf(s.question.c_str(), "What is %d*%d+%d?", &a, &b, &c), 3) << s.question;
  EXPECT_EQ(s.metadata["answer"], std::to_string(a * b + c));
  EXPECT_TRUE(src->render(s).ends_with("Assistant: <think>")) << src->render(s);
  EXPECT_EQ(src->sft_response(s),
            s.trace + " </think> <answer> " + std::to_string(a * b + c) + " </answer>");
}

// Column traces, written out by hand: every step is a one-digit fact plus a carry.
TEST(ArithmeticTraceTest, ColumnTracesByHand) {
  EXPECT_EQ(column_product_trace(7, 8), "7*8=56.");
  EXPECT_EQ(column_product_trace(23, 7), "23*7: 3*7=21, 2*7+2=16, so 161.");
  EXPECT_EQ(column_product_trace(21, 3), "21*3: 1*3=3, 2*3=6, so 63.");
  EXPECT_EQ(column_product_trace(105, 9), "105*9: 5*9=45, 0*9+4=4, 1*9=9, so 945.");
  EXPECT_EQ(column_product_trace(23, 12), "23*12=276.");  // two-digit b: direct
  EXPECT_EQ(column_sum_trace(161, 5), "161+5: 1+5=6, 6+0=6, 1+0=1, so 166.");
  EXPECT_EQ(column_sum_trace(56, 45), "56+45: 6+5=11, 5+4+1=10, so 101.");
  EXPECT_EQ(column_sum_trace(5, 0), "5+0: 5+0=5, so 5.");
  EXPECT_EQ(column_sum_trace(7, 95), "7+95: 7+5=12, 0+9+1=10, so 102.");
  EXPECT_EQ(column_sum_trace(999, 1), "999+1: 9+1=10, 9+0+1=10, 9+0+1=10, so 1000.");
}

TEST(ArithmeticTraceTest, TaskSectionPicksTheTrace) {
  TaskSection sec = task_section("{trace: columns, max_a: 99}");
  auto src = TaskSource::create(sec);
  ASSERT_TRUE(src.ok());
  for (uint64_t i = 0; i < 50; ++i) {
    const TaskSample s = src->train(i);
    int a, b, c;
    ASSERT_EQ(std::sscanf(s.question.c_str(), "What is %d*%d+%d?", &a, &b, &c), 3);
    EXPECT_EQ(s.trace, column_product_trace(a, b) + " " + column_sum_trace(a * b, c));
    EXPECT_TRUE(s.trace.ends_with(fmt::format(", so {}.", a * b + c))) << s.trace;
  }
  EXPECT_FALSE(apply_task_args(sec, {"trace=digits"}).ok());
}

// task.trace_slips: that share of traces misremember a*b as a*(b-1) or a*(b+1) and work
// the rest out from it; the problems and their true answers do not change, and the SFT
// response ends in the answer its trace reached.
TEST(ArithmeticTraceTest, SlippedTracesKeepTheProblemAndTheTrueAnswer) {
  TaskSection clean = task_section("{trace: columns, max_a: 9}");
  TaskSection slipped = clean;
  ASSERT_TRUE(apply_task_args(slipped, {"trace_slips=0.25"}).ok());
  auto a_src = TaskSource::create(clean), b_src = TaskSource::create(slipped);
  ASSERT_TRUE(a_src.ok() && b_src.ok());
  const int n = 2000;
  int slips = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const TaskSample x = a_src->train(i), y = b_src->train(i);
    ASSERT_EQ(x.question, y.question);
    ASSERT_EQ(x.metadata["answer"], y.metadata["answer"]);
    EXPECT_FALSE(x.metadata.contains("trace_answer"));
    int a, b, c;
    ASSERT_EQ(std::sscanf(y.question.c_str(), "What is %d*%d+%d?", &a, &b, &c), 3);
    if (!y.metadata.contains("trace_answer")) {
      EXPECT_EQ(y.trace, x.trace);
      continue;
    }
    ++slips;
    const int p = y.trace.starts_with(fmt::format("{}*{}={}.", a, b, a * (b + 1))) ? a * (b + 1)
                                                                                   : a * (b - 1);
    EXPECT_EQ(y.trace, fmt::format("{}*{}={}. ", a, b, p) + column_sum_trace(p, c));
    EXPECT_EQ(y.metadata["trace_answer"].get<std::string>(), std::to_string(p + c));
    EXPECT_EQ(y.metadata["answer"].get<std::string>(), std::to_string(a * b + c));
    EXPECT_TRUE(b_src->sft_response(y).ends_with(fmt::format("<answer> {} </answer>", p + c)));
  }
  // 500 expected; 4 standard deviations is about +-77.
  EXPECT_GT(slips, 420);
  EXPECT_LT(slips, 580);
  EXPECT_FALSE(apply_task_args(slipped, {"trace_slips=1.5"}).ok());
}

// task.trace: mixed: columns_share of the traces are worked column by column, the rest
// direct, drawn per problem from a stream of its own (the problems do not change).
TEST(ArithmeticTraceTest, MixedTracesAreColumnsAtTheirShareAndDirectOtherwise) {
  TaskSection direct = task_section("{trace: direct, max_a: 999, max_c: 999}");
  TaskSection mixed = direct;
  ASSERT_TRUE(apply_task_args(mixed, {"trace=mixed", "columns_share=0.2"}).ok());
  auto d_src = TaskSource::create(direct), m_src = TaskSource::create(mixed);
  ASSERT_TRUE(d_src.ok() && m_src.ok());
  const int n = 2000;
  int columns = 0;
  for (uint64_t i = 0; i < n; ++i) {
    const TaskSample x = d_src->train(i), y = m_src->train(i);
    ASSERT_EQ(x.question, y.question);
    ASSERT_EQ(x.metadata["answer"], y.metadata["answer"]);
    int a, b, c;
    ASSERT_EQ(std::sscanf(y.question.c_str(), "What is %d*%d+%d?", &a, &b, &c), 3);
    const std::string worked = column_product_trace(a, b) + " " + column_sum_trace(a * b, c);
    if (y.trace == worked) {
      ++columns;
    } else {
      EXPECT_EQ(y.trace, x.trace);
      EXPECT_EQ(y.trace, fmt::format("{}*{}={}. {}+{}={}.", a, b, a * b, a * b, c, a * b + c));
    }
  }
  // 400 expected; 4 standard deviations is about +-72.
  EXPECT_GT(columns, 328);
  EXPECT_LT(columns, 472);
  // The share is the recipe's: all columns at 1, none at 0.
  TaskSection all = mixed, none = mixed;
  ASSERT_TRUE(apply_task_args(all, {"columns_share=1"}).ok());
  ASSERT_TRUE(apply_task_args(none, {"columns_share=0"}).ok());
  auto all_src = TaskSource::create(all), none_src = TaskSource::create(none);
  ASSERT_TRUE(all_src.ok() && none_src.ok());
  for (uint64_t i = 0; i < 20; ++i) {
    EXPECT_NE(all_src->train(i).trace.find(": "), std::string::npos) << all_src->train(i).trace;
    EXPECT_EQ(none_src->train(i).trace, d_src->train(i).trace);
  }
  EXPECT_FALSE(apply_task_args(mixed, {"columns_share=1.5"}).ok());
}

// Countdown's search trace, written out by hand from its rule: numbers largest first,
// t = x * n, x + n, n - x, x - n, x / n in that order, two numbers checked by what they
// make (sum, difference, product, exact quotient), three by the largest value they make.
TEST(CountdownSearchTest, TracesByHand) {
  auto a = countdown_search({4, 6, 1}, 24);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->trace,
            "24 from 4 6 1. 24 = x * 6: 4 from 4 1 (5 3 4) yes, 4 * 1 = 4. 24 = (4 * 1) * 6.");
  EXPECT_EQ(a->expression, "(4 * 1) * 6");
  // Three numbers at most make (3 + 1) * 5 = 20; n - x comes before x - n.
  auto b = countdown_search({3, 1, 5, 6}, 7);
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->trace,
            "7 from 3 1 5 6. 7 = x + 6: 1 from 3 1 5 (max 20). "
            "1 = 5 - x: 4 from 3 1 (4 2 3) yes, 3 + 1 = 4. 1 = 5 - (3 + 1). "
            "7 = (5 - (3 + 1)) + 6.");
  EXPECT_EQ(b->expression, "(5 - (3 + 1)) + 6");
  // Dead ends above the most the rest make ((3 + 1) * 4 = 16, (4 + 1) * 4 = 20), stopped
  // at once; 4 * 3 * 4 = 48 lets 28 through.
  auto d = countdown_search({4, 3, 4, 1}, 29);
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->trace,
            "29 from 4 3 4 1. 29 = x + 4: 25 from 3 4 1 (max 16) no. "
            "29 = x - 4: 33 from 3 4 1 (max 16) no. 29 = x / 4: 116 from 3 4 1 (max 16) no. "
            "29 = x + 3: 26 from 4 4 1 (max 20) no. 29 = x - 3: 32 from 4 4 1 (max 20) no. "
            "29 = x / 3: 87 from 4 4 1 (max 20) no. 29 = x + 1: 28 from 4 3 4 (max 48). "
            "28 = x * 4: 7 from 3 4 (7 1 12) yes, 4 + 3 = 7. 28 = (4 + 3) * 4. "
            "29 = ((4 + 3) * 4) + 1.");
  EXPECT_EQ(d->expression, "((4 + 3) * 4) + 1");
  // Two numbers: one check. The quotient is listed when exact.
  auto c = countdown_search({2, 8}, 4);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->trace, "4 from 2 8 (10 6 16 4) yes, 8 / 2 = 4.");
  // Unreachable: every branch written, then none.
  EXPECT_FALSE(countdown_search({1, 1, 1}, 30).has_value());
  // (1 + 1) * (1 + 3) = 8 needs two pairs; no "t = x op n" reaches it.
  EXPECT_FALSE(countdown_search({1, 1, 1, 3}, 8).has_value());
}

// A Countdown problem is its numbers in any order and its target: the training stream
// skips the held-out ones in every order, which with small numbers the question text
// alone would let through.
TEST(TaskSourceTest, CountdownHeldOutProblemsInAnyOrderAreNotTrainedOn) {
  TaskSection sec =
      task_section("{name: countdown, max_number: 6, max_target: 30, eval_size: 200}");
  auto src = TaskSource::create(sec);
  ASSERT_TRUE(src.ok());
  std::set<std::string> held_keys, held_questions;
  for (const TaskSample& s : src->eval()) {
    held_keys.insert(s.key);
    held_questions.insert(s.question);
  }
  EXPECT_EQ(held_keys.size(), src->eval().size());  // no problem twice
  for (uint64_t i = 0; i < 5000; ++i) {
    const TaskSample s = src->train(i);
    ASSERT_FALSE(held_keys.contains(s.key)) << s.question;
    ASSERT_FALSE(held_questions.contains(s.question)) << s.question;
  }
  // Unfiltered draws repeat held-out problems reordered (what a question-only check
  // misses): the problem space is small enough that the skip matters.
  int reordered = 0;
  for (uint64_t i = 0; i < 5000; ++i) {
    const TaskSample raw = sec.task().generate(12345, i);
    reordered += held_keys.contains(raw.key) && !held_questions.contains(raw.question);
  }
  EXPECT_GT(reordered, 50);
}

TEST(TaskSourceTest, JsonlIsSplitAndCycled) {
  const testing::ScopedTempDir tmp("r1kit_task_source_test");
  const std::filesystem::path path = tmp.join("problems.jsonl");
  {
    std::ofstream f(path);
    for (int i = 0; i < 10; ++i)
      f << "{\"prompt\": \"q" << i << "\", \"answer\": \"" << i << "\"}\n";
  }
  TaskSection sec = task_section("{name: jsonl, path: '" + path.string() + "', eval_size: 3}");
  auto src = TaskSource::create(sec);
  ASSERT_TRUE(src.ok()) << src.status().message();
  ASSERT_EQ(src->eval().size(), 3u);
  EXPECT_EQ(src->eval_shortfall(), "");  // all 3 asked for
  std::set<std::string> seen;
  for (uint64_t i = 0; i < 7; ++i) seen.insert(src->train(i).question);
  EXPECT_EQ(seen.size(), 7u);
  for (const auto& e : src->eval()) EXPECT_FALSE(seen.contains(e.question));
  EXPECT_EQ(src->train(7).question, src->train(0).question);  // cycles
  // Asking for all 10 gives 9: one line stays for training, and the source says so.
  auto all = TaskSource::create(
      task_section("{name: jsonl, path: '" + path.string() + "', eval_size: 10}"));
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all->eval().size(), 9u);
  EXPECT_NE(all->eval_shortfall().find("the file has 10 problems"), std::string::npos);
}

TEST(TaskSourceTest, BadSectionsAreErrorsNamingTheKey) {
  TaskSection sec;
  sec.name = "jsonl";
  auto s = TaskSource::create(sec);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("task.path"), std::string::npos);
  sec = {};
  sec.name = "countdown";
  ASSERT_TRUE(apply_task_args(sec, {"max_numbers=3"}).ok());
  Status bad = apply_task_args(sec, {"min_numbers=5"});  // checked as the section is bound
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("task.min_numbers"), std::string::npos) << bad.to_string();
}

}  // namespace
}  // namespace r1kit::data
