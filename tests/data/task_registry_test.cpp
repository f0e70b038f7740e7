// Tests of the task registry (data/task.h) and of the task section's binding: every task
// is listed once with a doc, names and keys are checked strictly (an unknown key names
// the task), default rewards mark the checker, and the built-in tasks produce exactly
// the problems, traces and splits they produced before they became registry entries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "data/task.h"
#include "data/task_source.h"
#include "tests/data/task_test_util.h"
#include "tests/temp_dir.h"

namespace r1kit::data {
namespace {

using ::testing::HasSubstr;

TEST(TaskRegistryTest, ListsTheBuiltInTasksWithDocs) {
  const auto list = TaskRegistry::global().list();
  std::vector<std::string> names;
  for (const auto& [name, doc] : list) {
    names.push_back(name);
    EXPECT_FALSE(doc.empty()) << name;
  }
  for (const char* t : {"arithmetic", "countdown", "knights_knaves", "jsonl"})
    EXPECT_THAT(names, ::testing::Contains(t));
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  EXPECT_EQ(TaskRegistry::global().names(), names);
  // A fresh registry gets the same tasks; adding one twice is refused.
  TaskRegistry fresh;
  register_builtin_tasks(fresh);
  EXPECT_EQ(fresh.names(), names);
  auto again = fresh.create("countdown");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(fresh.add("countdown", std::move(*again)).code(), StatusCode::kAlreadyExists);
  auto unknown = fresh.create("sudoku");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("known tasks: arithmetic, countdown"));
}

TEST(TaskRegistryTest, SectionKeysAreTheNamedTasks) {
  // Each task's own keys, flat next to name/seed/...; another task's key is an error
  // naming the task, with its line.
  auto bad = load_config_string<TaskSection>("name: countdown\nmax_a: 9\n", {}, "recipe.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("recipe.yaml:2:1: max_a: unknown key of task "
                                                "countdown"));
  auto typo = load_config_string<TaskSection>("name: arithmetic\nmax_aa: 9\n", {}, "recipe.yaml");
  ASSERT_FALSE(typo.ok());
  EXPECT_THAT(typo.status().message(),
              HasSubstr("max_aa: unknown key of task arithmetic (did you mean max_a?)"));
  auto name = load_config_string<TaskSection>("name: sudoku\n", {}, "recipe.yaml");
  ASSERT_FALSE(name.ok());
  EXPECT_THAT(name.status().message(), HasSubstr("name=\"sudoku\": must be one of"));
  // The dump lists the task's keys and loads back the same.
  const TaskSection kk = task_section("{name: knights_knaves, min_people: 2, max_people: 3}");
  const std::string text = dump_config(kk);
  EXPECT_THAT(text, HasSubstr("min_people: 2"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("max_a")));
  auto back = load_config_string<TaskSection>(text);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  EXPECT_EQ(config_to_json(*back), config_to_json(kk));
  // Copies keep their options; a name assigned in code brings that task's defaults.
  TaskSection copy = kk;
  EXPECT_EQ(copy.task().generate(1, 0).question, kk.task().generate(1, 0).question);
  copy.name = "countdown";
  EXPECT_EQ(config_to_json(copy)["max_number"], 99);
}

TEST(TaskRegistryTest, DefaultRewardsMarkTheChecker) {
  for (const auto& [name, doc] : TaskRegistry::global().list()) {
    TaskSection sec;
    sec.name = name;
    sec.prefill_think = true;
    const auto specs = sec.default_rewards();
    ASSERT_EQ(specs.size(), 2u) << name;
    EXPECT_EQ(specs[0].role, reward::kRoleAccuracy) << name;
    EXPECT_EQ(specs[1].name, "format");
    EXPECT_EQ(specs[1].role, reward::kRoleFormat);
    EXPECT_EQ(specs[1].args, nlohmann::json({{"prefilled_think", true}}));
  }
}

// ---------------------------------------------------------------- golden values
//
// Taken from the code before tasks became registry entries (data/tasks.cpp,
// data/arithmetic.cpp and data/task_source.cpp at commit 644f5f2), by a scratch program
// that printed these problems and hashed longer streams with fnv_hash below: same seeds
// and options, same problems, traces, metadata, splits and SFT responses.

uint64_t fnv(uint64_t h, const std::string& s) {
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= 0xff;
  return h * 0x100000001b3ULL;
}
constexpr uint64_t kFnvStart = 0xcbf29ce484222325ULL;
uint64_t fnv_sample(uint64_t h, const TaskSample& s) {
  return fnv(fnv(fnv(h, s.question), s.trace), s.metadata.dump());
}

TEST(TaskGoldenTest, ProblemsAsBefore) {
  TaskSection sec;
  const TaskSample a = sec.task().generate(3, 7);
  EXPECT_EQ(a.question, "What is 31*2+90?");
  EXPECT_EQ(a.trace, "31*2=62. 62+90=152.");
  EXPECT_EQ(a.metadata, nlohmann::json({{"answer", "152"}}));
  sec.name = "countdown";
  const TaskSample c = sec.task().generate(3, 0);
  EXPECT_EQ(c.question,
            "Using the numbers [84, 93, 92, 75], create an equation that equals 10. You can use "
            "basic arithmetic operations (+, -, *, /) and each number can only be used once");
  EXPECT_EQ(c.trace, "92 - 84 = 8, left 93 75 8. 75 + 8 = 83, left 93 83. 93 - 83 = 10.");
  EXPECT_EQ(c.metadata["answer"], "93 - (75 + (92 - 84))");
  sec.name = "knights_knaves";
  const TaskSample k = sec.task().generate(3, 7);
  EXPECT_EQ(k.question,
            "A very special island is inhabited only by knights and knaves. Knights always tell "
            "the truth, and knaves always lie. You meet 3 inhabitants: Jack, Ella and Owen. Jack "
            "says, \"Owen is a knight.\" Ella says, \"Owen is a knave.\" Owen says, \"Jack is a "
            "knight if and only if Ella is a knave.\" So who is a knight and who is a knave?");
  EXPECT_EQ(k.metadata["answer"],
            "(1) Jack is a knight\n(2) Ella is a knave\n(3) Owen is a knight");
  // Problems [0, 300) of stream 3 with default options.
  for (const auto& [name, want] :
       std::vector<std::pair<std::string, uint64_t>>{{"arithmetic", 0x3f1681f571c659ffULL},
                                                     {"countdown", 0xceb4a9601e252fa0ULL},
                                                     {"knights_knaves", 0x3ca23cca3ed10fccULL}}) {
    sec.name = name;
    uint64_t h = kFnvStart;
    for (uint64_t i = 0; i < 300; ++i) h = fnv_sample(h, sec.task().generate(3, i));
    EXPECT_EQ(h, want) << name;
  }
}

// The default recipe's task section (recipes/r1-tiny.yaml): the held-out set, and the
// first 8,000 training problems with the prompts and SFT responses its SFT stage learns.
TEST(TaskGoldenTest, DefaultRecipeStreamsAsBefore) {
  auto src = TaskSource::create(task_section(
      "{name: arithmetic, seed: 1, eval_size: 200, max_a: 9, max_b: 9, max_c: 99, trace: "
      "columns, trace_slips: 0.25, chat_template: plain}"));
  ASSERT_TRUE(src.ok()) << src.status().to_string();
  ASSERT_EQ(src->eval().size(), 193u);
  uint64_t h = kFnvStart;
  for (const auto& s : src->eval()) h = fnv_sample(h, s);
  EXPECT_EQ(h, 0x6a8be227cc7c9780ULL);
  h = kFnvStart;
  for (uint64_t i = 0; i < 8000; ++i) {
    const TaskSample s = src->train(i);
    h = fnv(fnv(fnv_sample(h, s), src->sft_response(s)), src->render(s));
  }
  EXPECT_EQ(h, 0x00e7233e83cdb0f2ULL);
  const TaskSample slipped = src->train(3);
  EXPECT_EQ(slipped.question, "What is 7*3+42?");
  EXPECT_EQ(src->sft_response(slipped),
            "<think> 7*3=28. 28+42: 8+2=10, 2+4+1=7, so 70. </think> <answer> 70 </answer>");
  EXPECT_EQ(slipped.metadata, nlohmann::json({{"answer", "63"}, {"trace_answer", "70"}}));
}

TEST(TaskGoldenTest, OtherStreamsAndSplitsAsBefore) {
  // recipes/r1-countdown-tiny.yaml's task. Since problems are told apart by their numbers
  // in any order and their target (TaskSample::key), the held-out set holds 188 problems
  // (199 distinct questions) and the training stream skips them in every order.
  auto cd = TaskSource::create(
      task_section("{name: countdown, max_number: 6, max_target: 30, chat_template: plain}"));
  ASSERT_TRUE(cd.ok());
  ASSERT_EQ(cd->eval().size(), 188u);  // 199 questions, 188 problems (numbers in any order)
  uint64_t h = kFnvStart;
  for (const auto& s : cd->eval()) h = fnv_sample(h, s);
  EXPECT_EQ(h, 0x2b7eadd4b6e6d1d1ULL);
  h = kFnvStart;
  for (uint64_t i = 0; i < 2000; ++i) h = fnv_sample(h, cd->train(i));
  EXPECT_EQ(h, 0x4e266da2ea2b2999ULL);  // the stream skips held-out problems in any order
  auto kk = TaskSource::create(
      task_section("{name: knights_knaves, min_people: 2, max_people: 3, seed: 5, eval_size: 50}"));
  ASSERT_TRUE(kk.ok());
  h = kFnvStart;
  for (const auto& s : kk->eval()) h = fnv_sample(h, s);
  for (uint64_t i = 0; i < 500; ++i) h = fnv_sample(h, kk->train(i));
  EXPECT_EQ(h, 0x9e3c4dc23cc23fbaULL);
  // A JSONL file of 30 lines, seed 4, 7 held out.
  const testing::ScopedTempDir tmp("r1kit_task_golden");
  const std::filesystem::path path = tmp.join("golden.jsonl");
  {
    std::ofstream f(path);
    for (int i = 0; i < 30; ++i)
      f << "{\"prompt\": \"q" << i << "\", \"answer\": \"" << i << "\"}\n";
  }
  auto js = TaskSource::create(
      task_section("{name: jsonl, path: '" + path.string() + "', seed: 4, eval_size: 7}"));
  ASSERT_TRUE(js.ok()) << js.status().to_string();
  std::string eval, train;
  for (const auto& s : js->eval()) eval += s.question + " ";
  for (uint64_t i = 0; i < 23; ++i) train += js->train(i).question + " ";
  EXPECT_EQ(eval, "q24 q6 q15 q12 q22 q28 q4 ");
  EXPECT_EQ(train,
            "q2 q16 q27 q26 q0 q9 q8 q25 q23 q11 q29 q13 q3 q19 q18 q21 q5 q7 q10 q1 q17 q20 q14 ");
}

}  // namespace
}  // namespace r1kit::data
