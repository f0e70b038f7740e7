// Tests of the `multiplication` task (data/tasks/multiplication.cpp): it is registered
// with its checker, problems are a pure function of (seed, index) within the digit
// range, and every step of every trace is right arithmetic that ends in a*b. Its
// checker (the `arithmetic` reward) is tested on these answers in
// tests/reward/multiplication_reward_test.cpp.
#include <gtest/gtest.h>

#include <cstdio>
#include <regex>
#include <set>
#include <string>

#include "data/task.h"
#include "data/task_source.h"
#include "tests/data/task_test_util.h"

namespace r1kit::data {
namespace {

int64_t digit_count(int64_t x) {
  return static_cast<int64_t>(std::to_string(x).size());
}

TEST(MultiplicationTaskTest, RegisteredWithItsChecker) {
  bool listed = false;
  for (const auto& [name, doc] : TaskRegistry::global().list())
    if (name == "multiplication") listed = !doc.empty();
  EXPECT_TRUE(listed);
  const TaskSection sec = task_section("{name: multiplication}");
  const auto rewards = sec.default_rewards();
  ASSERT_EQ(rewards.size(), 2u);
  EXPECT_EQ(rewards[0].name, "arithmetic");
  EXPECT_EQ(rewards[0].role, reward::kRoleAccuracy);
  EXPECT_EQ(rewards[1].name, "format");
  EXPECT_TRUE(sec.task().procedural());
  // Its keys are checked like every task's.
  EXPECT_FALSE(load_config_string<TaskSection>("{name: multiplication, max_a: 9}").ok());
  EXPECT_FALSE(load_config_string<TaskSection>("{name: multiplication, max_digits: 10}").ok());
  auto bad =
      load_config_string<TaskSection>("{name: multiplication, min_digits: 4, max_digits: 3}");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("task.min_digits=4 > task.max_digits=3"), std::string::npos)
      << bad.status().to_string();
}

TEST(MultiplicationTaskTest, PureFunctionOfSeedAndIndexWithinTheDigits) {
  const TaskSection sec = task_section("{name: multiplication, min_digits: 2, max_digits: 4}");
  const TaskSection copy = sec;
  std::set<int64_t> digits_seen;
  for (uint64_t i = 0; i < 500; ++i) {
    const TaskSample p = sec.task().generate(9, i);
    const TaskSample q = copy.task().generate(9, i);
    EXPECT_EQ(p.question, q.question);
    EXPECT_EQ(p.trace, q.trace);
    EXPECT_EQ(p.metadata, q.metadata);
    long long a = 0, b = 0;
    ASSERT_EQ(std::sscanf(p.question.c_str(), "What is %lld*%lld?", &a, &b), 2) << p.question;
    for (long long x : {a, b}) {
      EXPECT_GE(digit_count(x), 2);
      EXPECT_LE(digit_count(x), 4);
      digits_seen.insert(digit_count(x));
    }
    EXPECT_EQ(p.metadata["answer"], std::to_string(a * b));
  }
  EXPECT_EQ(digits_seen, (std::set<int64_t>{2, 3, 4}));  // the range is used
  EXPECT_NE(sec.task().generate(9, 0).question, sec.task().generate(10, 0).question);
  // The problem stream of a task source: same seeds, same problems.
  auto s1 = TaskSource::create(sec), s2 = TaskSource::create(sec);
  ASSERT_TRUE(s1.ok() && s2.ok());
  EXPECT_EQ(s1->train(17).question, s2->train(17).question);
}

// Checks every step of a trace: each "x*y=z", "x*y+c=z", "x+y=z", "x+y+c=z" fact is
// true, each "so N" is the value of the product or sum its group started with, the last
// value computed is a*b, and the trace ends "So a*b=a*b.". Returns the number of steps.
int64_t check_trace(const std::string& trace, int64_t a, int64_t b) {
  std::string t = trace;
  for (const char* sep : {": ", ". "}) {
    for (size_t at; (at = t.find(sep)) != std::string::npos;) t.replace(at, 2, ", ");
  }
  EXPECT_TRUE(!t.empty() && t.back() == '.') << trace;
  t.pop_back();
  const std::regex product(R"((\d+)\*(\d+))"), sum(R"((\d+)\+(\d+))"),
      fact(R"((\d+)\*(\d+)=(\d+))"), fact_carry(R"((\d+)\*(\d+)\+(\d+)=(\d+))"),
      add(R"((\d+)\+(\d+)=(\d+))"), add_carry(R"((\d+)\+(\d+)\+(\d+)=(\d+))"), so(R"(so (\d+))"),
      final_step(R"(So (\d+)\*(\d+)=(\d+))");
  auto n = [](const std::ssub_match& m) { return std::stoll(m.str()); };
  int64_t group = -1, last = -1, steps = 0;
  bool done = false;
  size_t start = 0;
  while (start <= t.size()) {
    const size_t end = std::min(t.find(", ", start), t.size());
    const std::string tok = t.substr(start, end - start);
    start = end + 2;
    ++steps;
    std::smatch m;
    EXPECT_FALSE(done) << "a step after the final one: " << tok;
    if (std::regex_match(tok, m, final_step)) {
      EXPECT_EQ(n(m[1]), a);
      EXPECT_EQ(n(m[2]), b);
      EXPECT_EQ(n(m[3]), a * b) << trace;
      done = true;
    } else if (std::regex_match(tok, m, product)) {
      group = n(m[1]) * n(m[2]);
    } else if (std::regex_match(tok, m, sum)) {
      group = n(m[1]) + n(m[2]);
    } else if (std::regex_match(tok, m, fact)) {
      EXPECT_EQ(n(m[1]) * n(m[2]), n(m[3])) << tok;
      last = n(m[3]);
    } else if (std::regex_match(tok, m, fact_carry)) {
      EXPECT_EQ(n(m[1]) * n(m[2]) + n(m[3]), n(m[4])) << tok;
    } else if (std::regex_match(tok, m, add)) {
      EXPECT_EQ(n(m[1]) + n(m[2]), n(m[3])) << tok;
    } else if (std::regex_match(tok, m, add_carry)) {
      EXPECT_EQ(n(m[1]) + n(m[2]) + n(m[3]), n(m[4])) << tok;
    } else if (std::regex_match(tok, m, so)) {
      EXPECT_EQ(n(m[1]), group) << tok << " in " << trace;
      last = n(m[1]);
    } else {
      ADD_FAILURE() << "unexpected step \"" << tok << "\" in " << trace;
    }
  }
  EXPECT_TRUE(done) << trace;
  EXPECT_EQ(last, a * b) << "the trace does not reach a*b: " << trace;
  return steps;
}

TEST(MultiplicationTaskTest, EveryTraceStepIsRightAndEndsInTheProduct) {
  // By hand, the example of the task's header.
  const TaskSection one = task_section("{name: multiplication, min_digits: 1, max_digits: 9}");
  EXPECT_EQ(check_trace("347*6: 7*6=42, 4*6+4=28, 3*6+2=20, so 2082. 347*8: 7*8=56, 4*8+5=37, "
                        "3*8+3=27, so 2776. 2776*10=27760. 2082+27760: 2+0=2, 8+6=14, 0+7+1=8, "
                        "2+7=9, 0+2=2, so 29842. So 347*86=29842.",
                        347, 86),
            19);
  int64_t long_traces = 0;
  for (uint64_t i = 0; i < 2000; ++i) {
    const TaskSample p = one.task().generate(4, i);
    long long a = 0, b = 0;
    ASSERT_EQ(std::sscanf(p.question.c_str(), "What is %lld*%lld?", &a, &b), 2) << p.question;
    const int64_t steps = check_trace(p.trace, a, b);
    if (steps > 100) ++long_traces;
    if (HasFailure()) break;
  }
  EXPECT_GT(long_traces, 100);  // many digits: long reasoning
}

}  // namespace
}  // namespace r1kit::data
