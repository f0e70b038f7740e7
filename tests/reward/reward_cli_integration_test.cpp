// `r1kit task generate` and `r1kit reward score` as a user runs them: generated
// countdown problems scored with the task's reward, file:line errors, and the `remote`
// reward registered in the CLI.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/atomic_file.h"
#include "tests/cli_util.h"
#include "tests/temp_dir.h"

namespace r1kit::reward {
namespace {

namespace fs = std::filesystem;

std::vector<nlohmann::json> read_jsonl_file(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

TEST(RewardCliIntegrationTest, TaskGenerateThenRewardScore) {
  const testing::ScopedTempDir tmp("r1kit_reward_cli");
  const std::string bin = testing::r1kit_binary(), dir = tmp.path().string();
  ASSERT_TRUE(fs::exists(bin)) << bin;

  // 20 countdown problems with traces; the same seed gives the same file.
  auto [rc, out] = testing::run_command(
      bin + " task generate --task countdown --n 20 --seed 3 --traces --out " + dir + "/cd.jsonl",
      true);
  ASSERT_EQ(rc, 0) << out;
  ASSERT_EQ(
      testing::run_command(bin + " task generate --task countdown --n 20 --seed 3 --traces --out " +
                               dir + "/cd2.jsonl",
                           true)
          .first,
      0);
  const StatusOr<std::string> first = read_file(dir + "/cd.jsonl");
  const StatusOr<std::string> second = read_file(dir + "/cd2.jsonl");
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(*first, *second);
  const std::vector<nlohmann::json> tasks = read_jsonl_file(dir + "/cd.jsonl");
  ASSERT_EQ(tasks.size(), 20u);
  for (const auto& t : tasks) {
    EXPECT_TRUE(t["prompt"].is_string());
    EXPECT_TRUE(t["numbers"].is_array());
    EXPECT_TRUE(t["target"].is_number_integer());
    EXPECT_TRUE(t["answer"].is_string());
    EXPECT_FALSE(t["trace"].get<std::string>().empty());
  }
  std::tie(rc, out) = testing::run_command(
      bin + " task generate --task sudoku --n 2 --out " + dir + "/x.jsonl", true);
  EXPECT_NE(rc, 0);
  EXPECT_FALSE(fs::exists(dir + "/x.jsonl"));

  // Completions: the known solution for even lines, "1 + 1" for odd ones.
  {
    std::ofstream samples(dir + "/samples.jsonl");
    for (size_t i = 0; i < tasks.size(); ++i) {
      nlohmann::json s = tasks[i];
      s.erase("trace");
      const std::string ans = i % 2 == 0 ? tasks[i]["answer"].get<std::string>() : "1 + 1";
      s["completion"] = "<think> try </think> <answer> " + ans + " </answer>";
      samples << s.dump() << "\n";
    }
  }
  std::tie(rc, out) =
      testing::run_command(bin + " reward score --rewards countdown,format --weights 1,0.5" +
                               " --args '{\"countdown\": {\"format_score\": 0.1}}' --input " + dir +
                               "/samples.jsonl --output " + dir + "/scores.jsonl",
                           true);
  ASSERT_EQ(rc, 0) << out;
  const std::vector<nlohmann::json> scores = read_jsonl_file(dir + "/scores.jsonl");
  ASSERT_EQ(scores.size(), tasks.size());
  for (size_t i = 0; i < scores.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ(scores[i]["rewards"]["format"], 1.0);
    if (i % 2 == 0) {
      EXPECT_EQ(scores[i]["rewards"]["countdown"], 1.0);
      EXPECT_DOUBLE_EQ(scores[i]["total"].get<double>(), 1.5);
    } else {
      EXPECT_LT(scores[i]["rewards"]["countdown"].get<double>(), 1.0);
    }
  }
  // Without --output the lines go to stdout; no ground truth -> null.
  {
    std::ofstream nogt(dir + "/nogt.jsonl");
    nogt << R"({"prompt": "q", "completion": "<answer>3</answer>"})"
         << "\n";
  }
  // Every score null: the scores are still written, but the exit code is 1 and stderr
  // says that nothing could be judged.
  std::tie(rc, out) = testing::run_command(
      bin + " reward score --rewards math_accuracy --input " + dir + "/nogt.jsonl",
      /*with_stderr=*/false);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_EQ(nlohmann::json::parse(out),
            nlohmann::json::parse(R"({"total": null, "rewards": {"math_accuracy": null}})"));
  std::tie(rc, out) = testing::run_command(
      bin + " reward score --rewards math_accuracy --input " + dir + "/nogt.jsonl", true);
  EXPECT_NE(out.find("1 could not be judged"), std::string::npos) << out;
  EXPECT_NE(out.find("no sample could be judged"), std::string::npos) << out;

  // A bad line: exit code 1, the error names file:line, no output file.
  {
    std::ofstream bad(dir + "/bad.jsonl");
    bad << R"({"completion": "a"})"
        << "\n"
        << "{oops\n";
  }
  std::tie(rc, out) = testing::run_command(bin + " reward score --rewards format --input " + dir +
                                               "/bad.jsonl --output " + dir + "/bad_scores.jsonl",
                                           true);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("bad.jsonl:2"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir + "/bad_scores.jsonl"));
  // An unknown reward names the known ones.
  std::tie(rc, out) = testing::run_command(
      bin + " reward score --rewards nope --input " + dir + "/nogt.jsonl", true);
  EXPECT_EQ(rc, 1);
  EXPECT_NE(out.find("math_accuracy"), std::string::npos) << out;
}

// --task-arg KEY=VALUE sets the task section's difficulty, like `r1kit eval --task-arg`.
TEST(RewardCliIntegrationTest, TaskGenerateTaskArgs) {
  const testing::ScopedTempDir tmp("r1kit_task_args");
  const std::string bin = testing::r1kit_binary(), dir = tmp.path().string();
  auto [rc, out] =
      testing::run_command(bin +
                               " task generate --task arithmetic --n 200 --seed 2 --task-arg "
                               "max_a=9 --task-arg max_c=5 --out " +
                               dir + "/small.jsonl",
                           true);
  ASSERT_EQ(rc, 0) << out;
  const std::vector<nlohmann::json> small = read_jsonl_file(dir + "/small.jsonl");
  ASSERT_EQ(small.size(), 200u);
  int max_a = 0;
  for (const auto& t : small) {
    int a = -1, b = -1, c = -1;
    ASSERT_EQ(std::sscanf(t["prompt"].get<std::string>().c_str(), "What is %d*%d+%d?", &a, &b, &c),
              3)
        << t.dump();
    EXPECT_LE(a, 9) << t.dump();
    EXPECT_LE(c, 5) << t.dump();
    max_a = std::max(max_a, a);
  }
  EXPECT_EQ(max_a, 9);
  // Without --task-arg: the default difficulty (a up to 99) for the same seed.
  std::tie(rc, out) = testing::run_command(
      bin + " task generate --task arithmetic --n 200 --seed 2 --out " + dir + "/default.jsonl",
      true);
  ASSERT_EQ(rc, 0) << out;
  int default_max_a = 0;
  for (const auto& t : read_jsonl_file(dir + "/default.jsonl")) {
    int a = 0, b = 0, c = 0;
    std::sscanf(t["prompt"].get<std::string>().c_str(), "What is %d*%d+%d?", &a, &b, &c);
    default_max_a = std::max(default_max_a, a);
  }
  EXPECT_GT(default_max_a, 9);
  // Countdown with five operands.
  std::tie(rc, out) = testing::run_command(
      bin + " task generate --task countdown --n 10 --task-arg min_numbers=5 " +
          "--task-arg max_numbers=5 --out " + dir + "/cd5.jsonl",
      true);
  ASSERT_EQ(rc, 0) << out;
  for (const auto& t : read_jsonl_file(dir + "/cd5.jsonl")) EXPECT_EQ(t["numbers"].size(), 5u);
  // Errors name the culprit; no file is written.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"max_z=3", "max_z"},            // unknown key
      {"max_a=1", "max_a"},            // below its range (>= 2)
      {"max_a=many", "max_a"},         // wrong type
      {"seed=4", "--seed"},            // has its own flag
      {"min_people=6", "max_people"},  // min > max
  };
  for (const auto& [arg, names] : bad) {
    std::tie(rc, out) =
        testing::run_command(bin + " task generate --task knights_knaves --n 2 " + "--task-arg " +
                                 arg + " --out " + dir + "/bad.jsonl",
                             true);
    EXPECT_EQ(rc, 1) << arg << ": " << out;
    EXPECT_NE(out.find(names), std::string::npos) << arg << ": " << out;
    EXPECT_FALSE(fs::exists(dir + "/bad.jsonl")) << arg;
  }
}

TEST(RewardCliIntegrationTest, RemoteIsRegisteredInTheCli) {
  const std::string bin = testing::r1kit_binary();
  auto [rc, out] = testing::run_command(bin + " reward list", true);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("remote"), std::string::npos) << out;
  EXPECT_NE(out.find("math_accuracy"), std::string::npos) << out;
  // A remote reward whose server is down: every line scores null, and as nothing could be
  // judged the exit code is 1.
  const testing::ScopedTempDir tmp("r1kit_reward_cli_remote");
  const std::string dir = tmp.path().string();
  {
    std::ofstream in(dir + "/in.jsonl");
    in << R"({"prompt": "q", "completion": "<answer>3</answer>", "answer": "3"})"
       << "\n";
  }
  std::tie(rc, out) =
      testing::run_command(bin +
                               " reward score --rewards remote --args '{\"remote\": {\"address\": "
                               "\"127.0.0.1:1\", \"deadline_ms\": 500}}' --input " +
                               dir + "/in.jsonl",
                           /*with_stderr=*/false);
  ASSERT_EQ(rc, 1) << out;
  EXPECT_EQ(nlohmann::json::parse(out),
            nlohmann::json::parse(R"({"total": null, "rewards": {"remote": null}})"));
}

}  // namespace
}  // namespace r1kit::reward
