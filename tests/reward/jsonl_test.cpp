// Tests of the JSON-lines conversions behind `r1kit reward score`: record parsing, null
// for cannot-judge, CLI flag errors, and an end-to-end scoring of generated tasks (the
// records of `r1kit task generate`, data/task_source.h).
#include "reward/jsonl.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "data/task_source.h"

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

// Every generated task: its record round-trips, and a completion made of its trace and
// answer scores 1 with the task's checker.
TEST(JsonlTest, GeneratedTasksRoundTrip) {
  for (const auto& [task, doc] : data::TaskRegistry::global().list()) {
    data::TaskSection sec;
    sec.name = task;
    if (!sec.task().procedural()) continue;
    SCOPED_TRACE(task);
    const data::TaskSample t = sec.task().generate(1, 0);
    nlohmann::json rec = data::task_record(t, /*with_trace=*/true);
    EXPECT_EQ(rec["prompt"], t.question);
    EXPECT_EQ(rec["trace"], t.trace);
    EXPECT_FALSE(data::task_record(t, false).contains("trace"));
    // A perfect completion built from the record scores 1 with the task's checker.
    rec["completion"] = "<think> " + t.trace + " </think> <answer> " +
                        rec["answer"].get<std::string>() + " </answer>";
    auto s = sample_from_record(rec);
    ASSERT_TRUE(s.ok());
    const std::string checker = checker_of(sec.default_rewards());
    auto r = RewardRegistry::global().create(checker, nlohmann::json::object());
    ASSERT_TRUE(r.ok()) << checker;
    std::vector<Sample> g = {*s};
    EXPECT_EQ((*r)->score(g).values[0], 1.0) << checker;
  }
}

// `r1kit reward score` on a whole stream: one output line per input line, in order,
// null for cannot-judge; consecutive same-prompt lines scored as one group.
TEST(JsonlTest, ScoreJsonlStream) {
  auto specs = specs_from_flags("math_accuracy,format", "1,0.5", "");
  ASSERT_TRUE(specs.ok());
  auto rewards = build_rewards(*specs);
  ASSERT_TRUE(rewards.ok());
  std::istringstream in(
      R"({"prompt": "p1", "completion": "<think>x</think> <answer>3</answer>", "answer": "3"})"
      "\n\n"  // blank lines give no output
      R"({"prompt": "p1", "completion": "<answer>4</answer>", "answer": "3"})"
      "\n"
      R"({"prompt": "p2", "completion": "<think>y</think> <answer>1/2</answer>"})"
      "\n");
  std::ostringstream out;
  int64_t unjudged = -1;
  auto n = score_jsonl(in, "samples.jsonl", *rewards, out, &unjudged);
  ASSERT_TRUE(n.ok()) << n.status().to_string();
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(unjudged, 1);  // the third line: no answer
  // Key order as documented: total first, rewards in --rewards order.
  EXPECT_EQ(out.str().substr(0, out.str().find('\n')),
            R"({"total":1.5,"rewards":{"math_accuracy":1.0,"format":1.0}})");
  std::istringstream lines(out.str());
  std::vector<nlohmann::json> recs;
  for (std::string l; std::getline(lines, l);) recs.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(recs.size(), 3u);
  EXPECT_EQ(recs[0], nlohmann::json::parse(
                         R"({"total": 1.5, "rewards": {"math_accuracy": 1.0, "format": 1.0}})"));
  EXPECT_EQ(recs[1], nlohmann::json::parse(
                         R"({"total": 0.0, "rewards": {"math_accuracy": 0.0, "format": 0.0}})"));
  // No answer: math_accuracy cannot judge, so the total is null too.
  EXPECT_EQ(recs[2], nlohmann::json::parse(
                         R"({"total": null, "rewards": {"math_accuracy": null, "format": 1.0}})"));
}

// Group rewards see consecutive same-prompt lines together: kimi_length's group min/max.
TEST(JsonlTest, ScoreJsonlGroupsConsecutivePrompts) {
  auto specs = specs_from_flags("kimi_length", "", "");
  ASSERT_TRUE(specs.ok());
  auto rewards = build_rewards(*specs);
  ASSERT_TRUE(rewards.ok()) << rewards.status().to_string();
  auto line = [](const char* prompt, int len) {
    nlohmann::json j = {{"prompt", prompt},
                        {"completion", "<answer>3</answer>"},
                        {"completion_ids", std::vector<int>(len, 1)},
                        {"answer", "3"}};
    return j.dump() + "\n";
  };
  // Alone, a sample has min == max length: Kimi's reward is 0. In a group of two
  // correct answers of lengths 10 and 30, the short one gets +0.5, the long one -0.5.
  std::istringstream in(line("a", 10) + line("a", 30) + line("b", 10));
  std::ostringstream out;
  ASSERT_TRUE(score_jsonl(in, "g.jsonl", *rewards, out).ok());
  std::istringstream lines(out.str());
  std::vector<double> totals;
  for (std::string l; std::getline(lines, l);)
    totals.push_back(nlohmann::json::parse(l)["total"].get<double>());
  ASSERT_EQ(totals.size(), 3u);
  EXPECT_DOUBLE_EQ(totals[0], 0.5);
  EXPECT_DOUBLE_EQ(totals[1], -0.5);
  EXPECT_DOUBLE_EQ(totals[2], 0.0);
}

TEST(JsonlTest, ScoreJsonlErrorsNameFileAndLine) {
  auto rewards = build_rewards(*specs_from_flags("format", "", ""));
  ASSERT_TRUE(rewards.ok());
  struct Case {
    std::string input;
    std::string where;  // must appear in the error
  };
  const std::vector<Case> cases = {
      {"{\"completion\": \"a\"}\n{not json\n", "in.jsonl:2: not valid JSON"},
      {"\n\n[1, 2]\n", "in.jsonl:3: expected a JSON object"},
      {"{\"completion\": \"a\"}\n{\"prompt\": \"p\"}\n", "in.jsonl:2: completion"},
      {"{\"completion\": 7}\n", "in.jsonl:1: completion"},
      {"{\"completion\": \"a\", \"completion_ids\": [1.5]}\n", "in.jsonl:1: completion_ids"},
      // 100k levels of nesting: refused while parsing, not a stack overflow.
      {"{\"completion\": \"a\", \"x\": " + std::string(100000, '[') + "\n",
       "in.jsonl:1: JSON nested deeper than 64 levels"},
  };
  for (const Case& c : cases) {
    std::istringstream in(c.input);
    std::ostringstream out;
    auto n = score_jsonl(in, "in.jsonl", *rewards, out);
    ASSERT_FALSE(n.ok()) << c.input;
    EXPECT_NE(n.status().to_string().find(c.where), std::string::npos) << n.status().to_string();
  }
}

// Without r1kit_reward_grpc, asking for `remote` says where it lives.
TEST(JsonlTest, RemoteRewardMissingSaysWhere) {
  RewardRegistry registry;
  register_builtin_rewards(registry);
  auto r = registry.create("remote", {{"address", "127.0.0.1:1"}});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("r1kit_reward_grpc"), std::string::npos);
}

}  // namespace
}  // namespace r1kit::reward
