// Tests of the JSON-lines conversions behind `r1kit reward score` and
// `r1kit task generate`: record parsing, null for cannot-judge, CLI flag errors, and
// an end-to-end scoring of generated tasks.
#include "reward/jsonl.h"

#include <gtest/gtest.h>

namespace r1kit::reward {
namespace {

TEST(JsonlTest, RecordsInAndOut) {
  auto s = sample_from_record(nlohmann::json::parse(
      R"({"prompt": "p", "completion": "<answer>3</answer>", "completion_ids": [1, 2],
          "answer": "3", "numbers": [1, 2], "target": 3})"));
  ASSERT_TRUE(s.ok()) << s.status().to_string();
  EXPECT_EQ(s->prompt, "p");
  EXPECT_EQ(s->completion_ids, (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(s->metadata,
            nlohmann::json::parse(R"({"answer": "3", "numbers": [1, 2], "target": 3})"));
  EXPECT_FALSE(sample_from_record(nlohmann::json::parse(R"({"prompt": "p"})")).ok());
  EXPECT_FALSE(sample_from_record(nlohmann::json::parse(R"({"completion": 3})")).ok());
  EXPECT_FALSE(
      sample_from_record(nlohmann::json::parse(R"({"completion": "", "completion_ids": ["a"]})"))
          .ok());

  auto specs =
      specs_from_flags("math_accuracy,countdown", "1,0.5", R"({"countdown": {"format_score": 0}})");
  ASSERT_TRUE(specs.ok()) << specs.status().to_string();
  auto rewards = build_rewards(*specs);
  ASSERT_TRUE(rewards.ok()) << rewards.status().to_string();
  std::vector<Sample> g = {*s};
  GroupScores scores = rewards->score(g);
  // math_accuracy 1; countdown "3" uses [3] not [1, 2]: well-formed, wrong numbers ->
  // format_score 0; total 1 * 1 + 0.5 * 0 = 1.
  EXPECT_EQ(score_record(scores, 0),
            nlohmann::json::parse(
                R"({"total": 1.0, "rewards": {"math_accuracy": 1.0, "countdown": 0.0}})"));
  g[0].metadata = nlohmann::json::object();
  EXPECT_EQ(score_record(rewards->score(g), 0),
            nlohmann::json::parse(
                R"({"total": null, "rewards": {"math_accuracy": null, "countdown": null}})"));
}

TEST(JsonlTest, FlagErrors) {
  EXPECT_FALSE(specs_from_flags("", "", "").ok());
  EXPECT_FALSE(specs_from_flags("format,tag_count", "1", "").ok());
  auto bad_w = specs_from_flags("format", "heavy", "");
  ASSERT_FALSE(bad_w.ok());
  EXPECT_NE(bad_w.status().message().find("heavy"), std::string::npos);
  auto bad_args = specs_from_flags("format", "", R"({"countdown": {}})");
  ASSERT_FALSE(bad_args.ok());
  EXPECT_NE(bad_args.status().message().find("countdown"), std::string::npos);
  EXPECT_FALSE(specs_from_flags("format", "", "[1]").ok());
  auto ok = specs_from_flags("format, tag_count", "", "");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ((*ok)[1].name, "tag_count");
  EXPECT_EQ((*ok)[1].weight, 1.0);
}

TEST(JsonlTest, GeneratedTasksRoundTrip) {
  for (const char* task : {"countdown", "knights_knaves", "arithmetic"}) {
    auto t = generate_task(task, 1, 0);
    ASSERT_TRUE(t.ok()) << task;
    nlohmann::json rec = task_record(*t, /*with_trace=*/true);
    EXPECT_EQ(rec["prompt"], t->question);
    EXPECT_EQ(rec["trace"], t->trace);
    EXPECT_FALSE(task_record(*t, false).contains("trace"));
    // A perfect completion built from the record scores 1 with the task's reward.
    rec["completion"] = "<think> " + t->trace + " </think> <answer> " +
                        rec["answer"].get<std::string>() + " </answer>";
    auto s = sample_from_record(rec);
    ASSERT_TRUE(s.ok());
    auto r = RewardRegistry::global().create(task, nlohmann::json::object());
    ASSERT_TRUE(r.ok());
    std::vector<Sample> g = {*s};
    EXPECT_EQ((*r)->score(g)[0], 1.0) << task;
  }
  EXPECT_FALSE(generate_task("sudoku", 1, 0).ok());
}

}  // namespace
}  // namespace r1kit::reward
