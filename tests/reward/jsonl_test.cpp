// Tests of the JSON-lines conversions behind `r1kit reward score` and
// `r1kit task generate`: record parsing, null for cannot-judge, CLI flag errors, and
// an end-to-end scoring of generated tasks.
#include "reward/jsonl.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <sstream>

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
    EXPECT_EQ((*r)->score(g).values[0], 1.0) << task;
  }
  EXPECT_FALSE(generate_task("sudoku", 1, 0).ok());
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
  auto n = score_jsonl(in, "samples.jsonl", *rewards, out);
  ASSERT_TRUE(n.ok()) << n.status().to_string();
  EXPECT_EQ(*n, 3);
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
  };
  for (const Case& c : cases) {
    std::istringstream in(c.input);
    std::ostringstream out;
    auto n = score_jsonl(in, "in.jsonl", *rewards, out);
    ASSERT_FALSE(n.ok()) << c.input;
    EXPECT_NE(n.status().to_string().find(c.where), std::string::npos) << n.status().to_string();
  }
}

TEST(JsonlTest, WriteTasksJsonl) {
  for (const char* task : {"countdown", "arithmetic", "knights_knaves"}) {
    SCOPED_TRACE(task);
    std::ostringstream a, b;
    ASSERT_TRUE(write_tasks_jsonl(task, 7, 25, /*with_traces=*/true, a).ok());
    ASSERT_TRUE(write_tasks_jsonl(task, 7, 25, /*with_traces=*/false, b).ok());
    std::istringstream la(a.str()), lb(b.str());
    int lines = 0;
    for (std::string x, y; std::getline(la, x) && std::getline(lb, y); ++lines) {
      nlohmann::json with = nlohmann::json::parse(x), without = nlohmann::json::parse(y);
      EXPECT_TRUE(with.contains("answer"));
      EXPECT_FALSE(with["trace"].get<std::string>().empty());
      EXPECT_FALSE(without.contains("trace"));
      with.erase("trace");
      EXPECT_EQ(with, without);
      // Line i is problem i of the seeded stream.
      EXPECT_EQ(without, task_record(*generate_task(task, 7, lines), false));
      if (std::string(task) == "countdown") {
        EXPECT_TRUE(without.contains("numbers"));
        EXPECT_TRUE(without.contains("target"));
      }
    }
    EXPECT_EQ(lines, 25);
  }
  std::ostringstream o1, o2;
  ASSERT_TRUE(write_tasks_jsonl("countdown", 1, 5, false, o1).ok());
  ASSERT_TRUE(write_tasks_jsonl("countdown", 2, 5, false, o2).ok());
  EXPECT_NE(o1.str(), o2.str());
  std::ostringstream none;
  EXPECT_TRUE(write_tasks_jsonl("countdown", 1, 0, false, none).ok());
  EXPECT_TRUE(none.str().empty());
  EXPECT_FALSE(write_tasks_jsonl("sudoku", 1, 3, false, none).ok());
  EXPECT_FALSE(write_tasks_jsonl("countdown", 1, -1, false, none).ok());
}

// `r1kit task generate --task-arg`: the `task:` section's difficulty keys reach every
// generator; a default section gives exactly the default-difficulty file.
TEST(JsonlTest, WriteTasksJsonlWithTaskSection) {
  auto lines_of = [](const data::TaskSection& t, int64_t n) {
    std::ostringstream out;
    EXPECT_TRUE(write_tasks_jsonl(t, 11, n, /*with_traces=*/true, out).ok()) << t.name;
    std::vector<nlohmann::json> v;
    std::istringstream in(out.str());
    for (std::string line; std::getline(in, line);) v.push_back(nlohmann::json::parse(line));
    EXPECT_EQ(static_cast<int64_t>(v.size()), n) << t.name;
    return v;
  };
  for (const char* name : {"countdown", "arithmetic", "knights_knaves"}) {
    data::TaskSection t;
    t.name = name;
    std::ostringstream by_name, by_section;
    ASSERT_TRUE(write_tasks_jsonl(name, 11, 20, true, by_name).ok());
    ASSERT_TRUE(write_tasks_jsonl(t, 11, 20, true, by_section).ok());
    EXPECT_EQ(by_name.str(), by_section.str()) << name;
  }

  data::TaskSection arith;
  arith.max_a = 9;
  arith.max_b = 3;
  arith.max_c = 5;
  int64_t max_a_seen = 0;
  for (const auto& rec : lines_of(arith, 300)) {
    int a = -1, b = -1, c = -1;
    ASSERT_EQ(
        std::sscanf(rec["prompt"].get<std::string>().c_str(), "What is %d*%d+%d?", &a, &b, &c), 3)
        << rec.dump();
    EXPECT_TRUE(a >= 2 && a <= 9 && b >= 2 && b <= 3 && c >= 0 && c <= 5) << rec.dump();
    EXPECT_EQ(rec["answer"], std::to_string(a * b + c));
    max_a_seen = std::max<int64_t>(max_a_seen, a);
  }
  EXPECT_EQ(max_a_seen, 9);  // the range is used, not just bounded
  arith.trace = "columns";
  arith.max_a = 99;
  const auto columns = lines_of(arith, 5);
  arith.trace = "direct";
  const auto direct = lines_of(arith, 5);
  EXPECT_EQ(columns[0]["prompt"], direct[0]["prompt"]);
  EXPECT_NE(columns[0]["trace"], direct[0]["trace"]);

  data::TaskSection cd;
  cd.name = "countdown";
  cd.min_numbers = cd.max_numbers = 5;
  cd.max_number = 20;
  for (const auto& rec : lines_of(cd, 50)) {
    ASSERT_EQ(rec["numbers"].size(), 5u) << rec.dump();
    for (const auto& x : rec["numbers"]) EXPECT_LE(x.get<int64_t>(), 20) << rec.dump();
  }

  data::TaskSection kk;
  kk.name = "knights_knaves";
  kk.min_people = kk.max_people = 2;
  for (const auto& rec : lines_of(kk, 20)) EXPECT_EQ(rec["names"].size(), 2u) << rec.dump();

  // Cross-field checks of the section: min > max names both keys.
  cd.min_numbers = 6;
  std::ostringstream none;
  Status bad = write_tasks_jsonl(cd, 1, 3, false, none);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("min_numbers"), std::string::npos) << bad.to_string();
  EXPECT_NE(bad.message().find("max_numbers"), std::string::npos) << bad.to_string();
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
