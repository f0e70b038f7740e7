// Tests of the procedural task generators (countdown, knights-and-knaves) and the JSONL
// task loader: determinism, ranges, metadata shape, and loader errors. That generated
// answers are right is checked with the rewards in tests/reward/tasks_reward_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "data/task.h"
#include "tests/data/task_test_util.h"
#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

TEST(CountdownTaskTest, DeterministicAndInRange) {
  const TaskSection o = task_section(
      "{name: countdown, min_numbers: 3, max_numbers: 5, max_number: 50, "
      "max_target: 500}");
  const Task& countdown = o.task();
  for (uint64_t i = 0; i < 300; ++i) {
    TaskSample a = countdown.generate(7, i), b = countdown.generate(7, i);
    EXPECT_EQ(a.question, b.question);
    EXPECT_EQ(a.metadata, b.metadata);
    const auto& nums = a.metadata["numbers"];
    ASSERT_GE(nums.size(), 3u);
    ASSERT_LE(nums.size(), 5u);
    for (const auto& n : nums) {
      EXPECT_GE(n.get<int64_t>(), 1);
      EXPECT_LE(n.get<int64_t>(), 50);
    }
    int64_t target = a.metadata["target"].get<int64_t>();
    EXPECT_GE(target, 1);
    EXPECT_LE(target, 500);
    // The answer uses exactly the given numbers, each once.
    std::string expr = a.metadata["answer"].get<std::string>();
    std::vector<int64_t> used, given = nums.get<std::vector<int64_t>>();
    std::regex int_re("[0-9]+");
    for (auto it = std::sregex_iterator(expr.begin(), expr.end(), int_re);
         it != std::sregex_iterator(); ++it) {
      used.push_back(std::stoll(it->str()));
    }
    std::sort(used.begin(), used.end());
    std::sort(given.begin(), given.end());
    EXPECT_EQ(used, given) << expr;
    EXPECT_NE(a.question.find(std::to_string(target)), std::string::npos);
    EXPECT_FALSE(a.trace.empty());
  }
  EXPECT_NE(countdown.generate(7, 0).question, countdown.generate(8, 0).question);
}

// The trace is a chain of steps "a op b = v, left x y z." ending in "a op b = target.":
// each step's operands come from the pool the step before left (the given numbers at
// first), its arithmetic is right, the pool it names is the old one less a and b plus v,
// and the last step leaves only the target.
TEST(CountdownTaskTest, TraceStepsUseThePoolTheyName) {
  const TaskSection o = task_section(
      "{name: countdown, min_numbers: 3, max_numbers: 4, max_number: 6, max_target: 30}");
  const std::regex step_re(R"(^(\d+) ([-+*/]) (\d+) = (\d+)(?:, left((?: \d+)+))?$)");
  for (uint64_t i = 0; i < 300; ++i) {
    TaskSample t = o.task().generate(5, i);
    std::vector<int64_t> pool = t.metadata["numbers"].get<std::vector<int64_t>>();
    const int64_t target = t.metadata["target"].get<int64_t>();
    std::vector<std::string> steps;
    std::string rest = t.trace;
    for (size_t dot; (dot = rest.find('.')) != std::string::npos;) {
      steps.push_back(rest.substr(0, dot));
      rest = dot + 2 <= rest.size() ? rest.substr(dot + 2) : "";
    }
    ASSERT_TRUE(rest.empty()) << t.trace;
    ASSERT_EQ(steps.size(), pool.size() - 1) << t.trace;
    for (size_t s = 0; s < steps.size(); ++s) {
      std::smatch m;
      ASSERT_TRUE(std::regex_match(steps[s], m, step_re)) << steps[s];
      const int64_t a = std::stoll(m[1]), b = std::stoll(m[3]), v = std::stoll(m[4]);
      const char op = m[2].str()[0];
      EXPECT_EQ(v, op == '+' ? a + b : op == '-' ? a - b : op == '*' ? a * b : a / b);
      if (op == '/') {
        EXPECT_EQ(a % b, 0);
      }
      for (int64_t x : {a, b}) {
        auto it = std::find(pool.begin(), pool.end(), x);
        ASSERT_NE(it, pool.end()) << x << " is not left before: " << t.trace;
        pool.erase(it);
      }
      pool.push_back(v);
      const bool last = s + 1 == steps.size();
      ASSERT_EQ(m[5].matched, !last) << steps[s];
      if (last) {
        EXPECT_EQ(v, target) << t.trace;
        continue;
      }
      std::vector<int64_t> named;
      std::istringstream in(m[5].str());
      for (int64_t x; in >> x;) named.push_back(x);
      std::vector<int64_t> expected = pool;  // as multisets: equal numbers may swap places
      std::sort(named.begin(), named.end());
      std::sort(expected.begin(), expected.end());
      EXPECT_EQ(named, expected) << steps[s];
    }
  }
}

TEST(KnightsKnavesTaskTest, DeterministicShapes) {
  const TaskSection o = task_section("{name: knights_knaves, min_people: 2, max_people: 6}");
  for (uint64_t i = 0; i < 100; ++i) {
    TaskSample a = o.task().generate(3, i), b = o.task().generate(3, i);
    EXPECT_EQ(a.question, b.question);
    const auto& names = a.metadata["names"];
    const auto& roles = a.metadata["roles"];
    ASSERT_EQ(names.size(), roles.size());
    EXPECT_GE(names.size(), 2u);
    EXPECT_LE(names.size(), 6u);
    for (size_t k = 0; k < names.size(); ++k) {
      EXPECT_NE(a.question.find(names[k].get<std::string>() + " says"), std::string::npos);
      std::string role = roles[k].get<std::string>();
      EXPECT_TRUE(role == "knight" || role == "knave");
      EXPECT_NE(a.metadata["answer"].get<std::string>().find(names[k].get<std::string>() +
                                                             " is a " + role),
                std::string::npos);
    }
    std::vector<std::string> sorted = names.get<std::vector<std::string>>();
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end());  // distinct
  }
}

TEST(TaskJsonlTest, LoadsAndReportsErrors) {
  const testing::ScopedTempDir tmp("tasks_test");
  const std::string path = tmp.join("tasks_test.jsonl");
  {
    std::ofstream f(path);
    f << R"({"prompt": "What is 2+2?", "answer": "4"})"
      << "\n\n"
      << R"({"question": "Use [1, 2]", "numbers": [1, 2], "target": 3, "trace": "1 + 2 = 3."})"
      << "\n";
  }
  const TaskSection sec = task_section("{name: jsonl, path: '" + path + "'}");
  auto load = [&](const TaskSection& t) { return t.task().load(); };
  auto ok = load(sec);
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();
  ASSERT_EQ(ok->samples.size(), 2u);
  EXPECT_EQ(ok->samples[0].question, "What is 2+2?");
  EXPECT_EQ(ok->samples[0].metadata, nlohmann::json({{"answer", "4"}}));
  EXPECT_EQ(ok->samples[1].trace, "1 + 2 = 3.");
  EXPECT_EQ(ok->samples[1].metadata["target"], 3);
  {
    std::ofstream f(path);
    f << R"({"prompt": "ok"})"
      << "\n"
      << R"({"answer": 1})"
      << "\n";
  }
  auto bad = load(sec);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find(":2:"), std::string::npos) << bad.status().to_string();
  {
    std::ofstream f(path);
    f << "{not json\n";
  }
  EXPECT_FALSE(load(sec).ok());
  EXPECT_EQ(load(task_section("{name: jsonl, path: '" + path + ".missing'}")).status().code(),
            StatusCode::kNotFound);
}

}  // namespace
}  // namespace r1kit::data
