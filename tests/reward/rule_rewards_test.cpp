// Tests of the rule rewards (format, tag_count, regex, math_accuracy, countdown, arithmetic,
// knights_knaves), the registry, the recipe list and the combined reward. Cases come
// from docs/rewards.md, including its "Where other implementations go wrong".
#include "reward/rule_rewards.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/config.h"
#include "reward/reward.h"

namespace r1kit::reward {
namespace {

Sample make(std::string completion, nlohmann::json meta = nlohmann::json::object()) {
  Sample s;
  s.completion = std::move(completion);
  s.metadata = std::move(meta);
  return s;
}

double score1(const Reward& r, const Sample& s) {
  return r.score(std::span<const Sample>(&s, 1)).values[0];
}

struct FormatCase {
  const char* completion;
  bool prefilled;
  double expected;
};

TEST(FormatRewardTest, Table) {
  const FormatCase cases[] = {
      {"<think> reasoning </think> <answer> 4 </answer>", false, 1.0},
      {"<think>\nreasoning\n</think>\n<answer>\n4\n</answer>\n", false, 1.0},
      {"  <think>a</think><answer>4</answer>  ", false, 1.0},
      {"<think>a</think> <answer>4</answer> trailing junk", false, 0.0},  // open-r1 passes
      {"<think>a</think> <answer>4</answer>\nmore junk", false, 0.0},
      {"<think>a</think> <think>b</think> <answer>4</answer>", false, 0.0},  // duplicated
      {"<think>a</think> <answer>4</answer> <answer>5</answer>", false, 0.0},
      {"<think>a <answer>4</answer> </think> <answer>4</answer>", false, 0.0},
      {"<answer>4</answer> <think>a</think>", false, 0.0},  // order
      {"<think>a</think> text <answer>4</answer>", false, 0.0},
      {"<think>a</think> <answer>4", false, 0.0},  // unclosed
      {"<think>a", false, 0.0},
      {"", false, 0.0},
      {"<think> </think> <answer>4</answer>", false, 0.0},  // empty reasoning
      {"<think>a</think> <answer></answer>", false, 0.0},   // empty answer
      {"prefix <think>a</think> <answer>4</answer>", false, 0.0},
      // Prefilled <think>: the completion starts inside the reasoning.
      {" reasoning </think> <answer> 4 </answer>", true, 1.0},
      {"<think> reasoning </think> <answer> 4 </answer>", true, 0.0},
      {"reasoning <answer>4</answer>", true, 0.0},
  };
  for (const auto& c : cases) {
    FormatOptions o;
    o.prefilled_think = c.prefilled;
    FormatReward r(o);
    EXPECT_EQ(r.score_one(c.completion), c.expected) << c.completion;
  }
}

TEST(TagCountRewardTest, Table) {
  TagCountReward r{TagCountOptions{}};
  EXPECT_EQ(score1(r, make("<think>a</think><answer>b</answer>")), 1.0);
  EXPECT_EQ(score1(r, make("<think>a</think>")), 0.5);
  EXPECT_EQ(score1(r, make("<think><think>a</think><answer>b</answer>")), 0.75);
  EXPECT_EQ(score1(r, make("")), 0.0);
  TagCountOptions pre;
  pre.prefilled_think = true;
  TagCountReward rp(pre);
  EXPECT_EQ(score1(rp, make("a</think><answer>b</answer>")), 1.0);
  EXPECT_EQ(score1(rp, make("<think>a</think><answer>b</answer>")), 0.75);
}

// regex: built through the registry (the pattern compiles there); scores a match in the
// chosen part of the completion.
TEST(RegexRewardTest, MatchesInTheChosenPart) {
  RewardRegistry& g = RewardRegistry::global();
  // The multiplication step of a column trace ("347*6: 7*6=42, ..."), not of a direct one.
  auto worked = g.create("regex", {{"pattern", "\\d\\*\\d: "}, {"in", "think"}});
  ASSERT_TRUE(worked.ok()) << worked.status().to_string();
  const Reward& r = **worked;
  EXPECT_EQ(score1(r, make("<think> 347*6: 7*6=42, so 2082. </think> <answer> 1 </answer>")), 1.0);
  EXPECT_EQ(score1(r, make("<think> 347*6=2082. </think> <answer> 2082 </answer>")), 0.0);
  // Only the reasoning is searched: a match in the answer does not count; no </think>
  // means no reasoning to search.
  EXPECT_EQ(score1(r, make("<think> x </think> <answer> 7*6: </answer>")), 0.0);
  EXPECT_EQ(score1(r, make("<think> 347*6: 7*6=42")), 0.0);
  // The answer part, and scores of the recipe's choosing.
  auto four = g.create(
      "regex",
      {{"pattern", "^\\s*4\\s*$"}, {"in", "answer"}, {"match_score", 0.5}, {"miss_score", -1}});
  ASSERT_TRUE(four.ok()) << four.status().to_string();
  EXPECT_EQ(score1(**four, make("<think>4</think> <answer> 4 </answer>")), 0.5);
  EXPECT_EQ(score1(**four, make("<think>4</think> <answer> 44 </answer>")), -1.0);
  EXPECT_EQ(score1(**four, make("<think>4</think> 4")), -1.0);
  // The whole completion by default, invalid UTF-8 included (searched repaired).
  auto any = g.create("regex", {{"pattern", "so \\d+\\."}});
  ASSERT_TRUE(any.ok());
  EXPECT_EQ(score1(**any, make("\xff\xfe so 12. <answer>")), 1.0);
  EXPECT_EQ(score1(**any, make("so twelve.")), 0.0);
  // Bad options name the reward and what is wrong.
  auto missing = g.create("regex", nlohmann::json::object());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().to_string().find("pattern"), std::string::npos)
      << missing.status().to_string();
  auto broken = g.create("regex", {{"pattern", "(unclosed"}});
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.status().to_string().find("reward regex"), std::string::npos)
      << broken.status().to_string();
  auto bad_in = g.create("regex", {{"pattern", "x"}, {"in", "reasoning"}});
  EXPECT_FALSE(bad_in.ok());
}

TEST(MathAccuracyRewardTest, Table) {
  MathAccuracyReward r{MathAccuracyOptions{}};
  struct Case {
    const char* completion;
    nlohmann::json gold;
    double expected;  // NaN: cannot judge
  };
  const double nan = kNoScore;
  const Case cases[] = {
      {"<think>2+2</think> <answer> 4 </answer>", "4", 1.0},
      {"<answer>4</answer>", 4, 1.0},  // numeric gold
      {"<answer>0.5</answer>", 0.5, 1.0},
      {"<answer>\\frac{1}{2}</answer>", "0.5", 1.0},
      {"<answer>5</answer>", "4", 0.0},
      {"<answer></answer>", "4", 0.0},   // empty answer never rewarded (Visual-RFT's collapse)
      {"<answer> </answer>", " ", nan},  // blank gold: cannot judge
      {"<answer>4</answer>", nullptr, nan},
      {"The answer is \\boxed{4}.", "4", 1.0},
      {"\\boxed{3} or maybe \\boxed{4}", "4", 0.0},  // hedge
      {"The final answer is 4. I hope it is correct.", "4", 1.0},
      {"... #### 4", "#### 4", 1.0},
      {"Natalia sold 72 clips", "72", 0.0},  // no anchor, no whole-text fallback
      {"<answer>x = 4</answer>", "4", 1.0},
      {"<answer>4 or 5</answer>", "4", 0.0},
      {"<answer>14</answer>", "4", 0.0},  // no substring match
      {"<answer>\\boxed{\\frac{3}{4}}</answer>", "so \\boxed{\\dfrac34}", 1.0},
  };
  for (const auto& c : cases) {
    double got = score1(r, make(c.completion, {{"answer", c.gold}}));
    if (std::isnan(c.expected)) {
      EXPECT_TRUE(std::isnan(got)) << c.completion;
    } else {
      EXPECT_EQ(got, c.expected) << c.completion;
    }
  }
  EXPECT_TRUE(std::isnan(score1(r, make("<answer>4</answer>"))));  // no metadata at all
}

TEST(MathAccuracyRewardTest, SourcesOption) {
  MathAccuracyOptions o;
  o.sources = {"answer_tag"};
  MathAccuracyReward r(o);
  EXPECT_EQ(score1(r, make("\\boxed{4}", {{"answer", "4"}})), 0.0);
  EXPECT_EQ(score1(r, make("<answer>4</answer>", {{"answer", "4"}})), 1.0);
}

struct CountdownCase {
  const char* answer;
  CountdownVerdict verdict;
};

TEST(CountdownTest, JudgeTable) {
  // numbers [2, 3, 4], target 14 = 2 + 3 * 4.
  const std::vector<int64_t> nums = {2, 3, 4};
  const CountdownCase cases[] = {
      {"2 + 3 * 4", CountdownVerdict::kCorrect},
      {"(3 * 4) + 2", CountdownVerdict::kCorrect},
      {" 4*3+2 ", CountdownVerdict::kCorrect},
      {"2 + 3 * 4 = 14", CountdownVerdict::kCorrect},
      {"2 + 3 * 4 = 15", CountdownVerdict::kWrongValue},  // claimed result must be the target
      {"(2 + 3) * 4", CountdownVerdict::kWrongValue},     // 20
      {"2 + 3 + 4", CountdownVerdict::kWrongValue},
      {"2 + 12", CountdownVerdict::kWrongNumbers},             // other numbers
      {"2 + 3 * 4 + 0", CountdownVerdict::kWrongNumbers},      // extra number
      {"3 * 4 + 2 + 2 - 2", CountdownVerdict::kWrongNumbers},  // 2 used three times
      {"4 / (3 - 3) + 2", CountdownVerdict::kWrongNumbers},
      {"2 / (4 - 4) * 3", CountdownVerdict::kWrongNumbers},
      {"2 ** 3 + 4", CountdownVerdict::kMalformed},  // TinyZero scored 2**3 as valid
      {"(2 + 3) // 4", CountdownVerdict::kMalformed},
      {"2.5 + 3 + 4", CountdownVerdict::kMalformed},  // TinyZero read 2.5 as 2 and 5
      {"-2 + 3 * 4", CountdownVerdict::kMalformed},
      {"2 + 3 * 4)", CountdownVerdict::kMalformed},
      {"((2 + 3 * 4)", CountdownVerdict::kMalformed},
      {"x + 3 * 4", CountdownVerdict::kMalformed},
      {"", CountdownVerdict::kMalformed},
      {"2 + 3 * 4 = 14 = 14", CountdownVerdict::kMalformed},
      {"2 +\n3 *\n4", CountdownVerdict::kCorrect},  // TinyZero lost multi-line answers
  };
  for (const auto& c : cases) {
    EXPECT_EQ(judge_countdown(c.answer, nums, 14), c.verdict) << c.answer;
  }
  // Division is exact: numbers [1, 3, 3], target 1 = 3 / 3 * 1, and 1/3*3 = 1 too.
  EXPECT_EQ(judge_countdown("1 / 3 * 3", {1, 3, 3}, 1), CountdownVerdict::kCorrect);
  // Division by zero is well-formed but wrong: numbers [5, 2, 2], 5 / (2 - 2).
  EXPECT_EQ(judge_countdown("5 / (2 - 2)", {5, 2, 2}, 1), CountdownVerdict::kWrongValue);
  // Huge numbers: a 40-digit operand is a wrong number, not an overflow.
  EXPECT_EQ(judge_countdown("9999999999999999999999999999999999999999 + 2", {2, 3}, 5),
            CountdownVerdict::kWrongNumbers);
  // Deep nesting is malformed beyond the depth cap and never overflows the stack.
  std::string deep(100000, '(');
  deep.append("2").append(100000, ')');
  EXPECT_EQ(judge_countdown(deep, {2}, 2), CountdownVerdict::kMalformed);
}

TEST(CountdownTest, RewardScores) {
  CountdownReward r{CountdownOptions{}};
  nlohmann::json meta = {{"numbers", {2, 3, 4}}, {"target", 14}};
  EXPECT_EQ(score1(r, make("<think>x</think> <answer>2 + 3 * 4</answer>", meta)), 1.0);
  EXPECT_EQ(score1(r, make("<answer>(2 + 3) * 4</answer>", meta)), 0.1);
  EXPECT_EQ(score1(r, make("<answer>2 ** 3</answer>", meta)), 0.0);
  EXPECT_EQ(score1(r, make("2 + 3 * 4", meta)), 0.0);  // no tag
  // The last answer tag decides, and a newline after it is fine (TinyZero scored 0).
  EXPECT_EQ(score1(r, make("<answer>1</answer> <answer>\n2 + 3 * 4\n</answer>\n", meta)), 1.0);
  EXPECT_TRUE(std::isnan(score1(r, make("<answer>1</answer>", {{"numbers", {1}}}))));
  CountdownOptions o;
  o.format_score = 0.0;
  CountdownReward r0(o);
  EXPECT_EQ(score1(r0, make("<answer>(2 + 3) * 4</answer>", meta)), 0.0);
}

// The search trace of data::countdown_search for {4, 3, 4, 1} -> 29 (written out by hand
// in tests/data/task_source_test.cpp), and edits of it that make one claim false.
constexpr const char* kSearch29 =
    "29 from 4 3 4 1. 29 = x + 4: 25 from 3 4 1 (max 16) no. "
    "29 = x - 4: 33 from 3 4 1 (max 16) no. 29 = x / 4: 116 from 3 4 1 (max 16) no. "
    "29 = x + 3: 26 from 4 4 1 (max 20) no. 29 = x - 3: 32 from 4 4 1 (max 20) no. "
    "29 = x / 3: 87 from 4 4 1 (max 20) no. 29 = x + 1: 28 from 4 3 4 (max 48). "
    "28 = x * 4: 7 from 3 4 (7 1 12) yes, 4 + 3 = 7. 28 = (4 + 3) * 4. "
    "29 = ((4 + 3) * 4) + 1.";

std::string replaced(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? s : s.replace(at, from.size(), to);
}

TEST(CountdownSearchRewardTest, TrueTracesPass) {
  SearchTraceCheck c = check_countdown_search(kSearch29, {4, 3, 4, 1}, 29);
  EXPECT_TRUE(c.all_true()) << c.error;
  EXPECT_EQ(c.false_claims, 0);
  // 1 problem line, 8 splits of 3 claims (its node's goal, its number, an integer x),
  // 8 nodes of 4 (x, the numbers left, max or list, no or yes), the yes's expression,
  // 2 results.
  EXPECT_EQ(c.claims, 1 + 8 * 3 + 8 * 4 + 1 + 2);
  // A search that goes straight to the way through is as true: only the order differs.
  EXPECT_TRUE(check_countdown_search(
                  "29 from 4 3 4 1. 29 = x + 1: 28 from 4 3 4 (max 48). 28 = x * 4: 7 from 3 4 "
                  "(7 1 12) yes, 4 + 3 = 7. 28 = (4 + 3) * 4. 29 = ((4 + 3) * 4) + 1.",
                  {4, 3, 4, 1}, 29)
                  .all_true());
}

TEST(CountdownSearchRewardTest, EachFalseClaimIsCaught) {
  const std::vector<std::pair<std::string, std::string>> edits = {
      {"25 from 3 4 1", "24 from 3 4 1"},                         // x + 4 = 29 needs 25
      {"25 from 3 4 1 (max 16)", "25 from 3 4 4 (max 16)"},       // the numbers left are 3 4 1
      {"33 from 3 4 1 (max 16)", "33 from 3 4 1 (max 15)"},       // (3 + 1) * 4 = 16
      {"28 from 4 3 4 (max 48).", "28 from 4 3 4 (max 48) no."},  // 28 <= 48
      {"(7 1 12)", "(7 1 11)"},                                   // 4 * 3 = 12
      {"yes, 4 + 3 = 7", "yes, 4 * 3 = 7"},                       // 4 * 3 is 12
      {"29 = x + 1:", "29 = x * 1:"},                             // * needs n > 1
      {"28 = (4 + 3) * 4.", "28 = (4 + 3) * 3."},                 // not over 4 3 4
      {"29 = x + 3:", "29 = x + 6:"},                             // 6 is not a number here
      {"29 from 4 3 4 1.", "29 from 4 3 4 2."},                   // not the problem
  };
  for (const auto& [from, to] : edits) {
    SearchTraceCheck c = check_countdown_search(replaced(kSearch29, from, to), {4, 3, 4, 1}, 29);
    EXPECT_FALSE(c.all_true()) << to;
    EXPECT_GE(c.false_claims, 1) << to;
    EXPECT_TRUE(c.error.starts_with("false: ")) << to << ": " << c.error;
  }
  // "no" where the pair makes x, and "none." where the search reaches the goal
  // (8 = (4 + 1) + 3), not where only n / x would (3 = 12 / (9 - 5)).
  EXPECT_EQ(check_countdown_search("5 from 2 3 (5 1 6) no.", {2, 3}, 5).false_claims, 1);
  EXPECT_EQ(check_countdown_search("8 from 4 3 1. none.", {4, 3, 1}, 8).false_claims, 1);
  EXPECT_TRUE(check_countdown_search("3 from 9 12 5. none.", {9, 12, 5}, 3).all_true());
}

TEST(CountdownSearchRewardTest, TextNotOfTheFormIsNoTrace) {
  for (const char* text : {"", "I think it is (4 + 3) * 4 + 1.", "29 from 4 3 4 1. 28 = maybe:",
                           "29 from 4 3 4 1. 25 from 3 4 1 (max 16) no.",  // no split above
                           "29 = ((4 + 3) * 4) + 1."}) {
    SearchTraceCheck c = check_countdown_search(text, {4, 3, 4, 1}, 29);
    EXPECT_FALSE(c.all_true()) << text;
  }
  EXPECT_TRUE(check_countdown_search("29 from 4 3 4 1. 28 = maybe:", {4, 3, 4, 1}, 29)
                  .error.starts_with("not a search step: \"28 = maybe\""));
  // Hostile text: long, deep, huge numbers; it returns.
  std::string junk(200000, '(');
  EXPECT_FALSE(check_countdown_search(junk, {1, 2}, 3).all_true());
  EXPECT_FALSE(
      check_countdown_search("9999999999 from 1 2. 3 = x * 99999999999999:", {1, 2}, 3).all_true());
  EXPECT_FALSE(check_countdown_search("3 from 1 2 2 2 2 2 2 (max 9) no.", {1, 2}, 3).all_true());
}

TEST(CountdownSearchRewardTest, RewardScores) {
  CountdownSearchReward r{CountdownSearchOptions{}};
  nlohmann::json meta = {{"numbers", {4, 3, 4, 1}}, {"target", 29}};
  const std::string good =
      std::string("<think> ") + kSearch29 + " </think> <answer> ((4 + 3) * 4) + 1 </answer>";
  EXPECT_EQ(score1(r, make(good, meta)), 1.0);
  EXPECT_EQ(score1(r, make(replaced(good, "(7 1 12)", "(7 1 11)"), meta)), 0.0);
  EXPECT_EQ(score1(r, make(std::string(kSearch29), meta)), 0.0);  // no </think>
  EXPECT_TRUE(std::isnan(score1(r, make(good))));                 // no numbers/target
  CountdownSearchOptions o;
  o.true_score = 0.5;
  o.false_score = -0.5;
  CountdownSearchReward half(o);
  EXPECT_EQ(score1(half, make(good, meta)), 0.5);
  EXPECT_EQ(score1(half, make("<think> no idea </think>", meta)), -0.5);
}

TEST(ArithmeticRewardTest, Table) {
  ArithmeticReward r{ArithmeticRewardOptions{}};
  nlohmann::json meta = {{"answer", "166"}};
  EXPECT_EQ(score1(r, make("<think> 23*7=161. 161+5=166. </think> <answer> 166 </answer>", meta)),
            1.0);
  EXPECT_EQ(score1(r, make("<answer>166.0</answer>", meta)), 1.0);
  EXPECT_EQ(score1(r, make("<answer>165</answer>", meta)), 0.1);
  EXPECT_EQ(score1(r, make("<answer>one hundred</answer>", meta)), 0.0);
  EXPECT_EQ(score1(r, make("<answer></answer>", meta)), 0.0);
  EXPECT_EQ(score1(r, make("166", meta)), 0.0);
  EXPECT_TRUE(std::isnan(score1(r, make("<answer>1</answer>"))));
}

TEST(KnightsKnavesTest, ParseAndScore) {
  std::vector<std::string> names = {"Zoey", "Ethan"};
  EXPECT_EQ(parse_knights_knaves("(1) Zoey is a knight\n(2) Ethan is a knave", names),
            (std::vector<std::string>{"knight", "knave"}));
  // "knights" elsewhere does not break parsing (Logic-RL counted substrings).
  EXPECT_EQ(
      parse_knights_knaves("Among the knights, Zoey is a Knight and Ethan is a knave.", names),
      (std::vector<std::string>{"knight", "knave"}));
  // A hedge: both roles claimed.
  EXPECT_EQ(parse_knights_knaves("Zoey is a knight. Zoey is a knave. Ethan is a knave.", names)[0],
            "?");
  // Word boundaries: "Zoeyx" is not Zoey.
  EXPECT_EQ(parse_knights_knaves("Zoeyx is a knight", names)[0], "");

  KnightsKnavesRewardOptions o;
  o.correct_score = 2.0;
  o.wrong_score = -1.5;
  o.unparseable_score = -2.0;  // Logic-RL's values
  KnightsKnavesReward r(o);
  nlohmann::json meta = {{"names", {"Zoey", "Ethan"}}, {"roles", {"knight", "knave"}}};
  EXPECT_EQ(score1(r, make("<answer>Zoey is a knight, Ethan is a knave</answer>", meta)), 2.0);
  EXPECT_EQ(score1(r, make("<answer>Zoey is a knave, Ethan is a knave</answer>", meta)), -1.5);
  EXPECT_EQ(score1(r, make("<answer>Zoey is a knight</answer>", meta)), -2.0);
  EXPECT_EQ(score1(r, make("Zoey is a knight, Ethan is a knave", meta)), -2.0);
  EXPECT_TRUE(std::isnan(score1(r, make("<answer>x</answer>", {{"names", {"A"}}}))));
}

// ---------------------------------------------------------------- registry and recipe

TEST(RegistryTest, BuiltinsAndErrors) {
  RewardRegistry& g = RewardRegistry::global();
  for (const char* name :
       {"format", "tag_count", "math_accuracy", "countdown", "arithmetic", "knights_knaves",
        "regex", "overlong", "cosine_length", "kimi_length", "repetition", "language_consistency",
        "code_execution", "countdown_search"}) {
    EXPECT_TRUE(g.contains(name)) << name;
  }
  auto unknown = g.create("math_acuracy", nlohmann::json::object());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().code(), StatusCode::kNotFound);
  EXPECT_NE(unknown.status().message().find("math_acuracy"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("math_accuracy"), std::string::npos);  // listed

  auto bad_key = g.create("countdown", {{"format_scor", 0.2}});
  ASSERT_FALSE(bad_key.ok());
  EXPECT_NE(bad_key.status().message().find("format_scor"), std::string::npos)
      << bad_key.status().to_string();
  EXPECT_NE(bad_key.status().message().find("countdown"), std::string::npos);

  auto bad_type = g.create("format", {{"prefilled_think", "yes"}});
  EXPECT_FALSE(bad_type.ok());
  auto bad_choice = g.create("math_accuracy", {{"sources", {"boxed", "whole_text"}}});
  EXPECT_FALSE(bad_choice.ok());
  auto bad_range = g.create("overlong", {{"max_length", 100}, {"cache_length", 200}});
  EXPECT_FALSE(bad_range.ok());
  auto ok = g.create("countdown", {{"format_score", 0.2}});
  ASSERT_TRUE(ok.ok()) << ok.status().to_string();

  RewardRegistry fresh;
  EXPECT_TRUE(fresh.add("mine", make_factory<FormatReward, FormatOptions>("mine")).ok());
  EXPECT_EQ(fresh.add("mine", make_factory<FormatReward, FormatOptions>("mine")).code(),
            StatusCode::kAlreadyExists);
}

TEST(RecipeTest, ParseSpecsAndCombine) {
  auto specs = parse_reward_specs(R"(
- {name: math_accuracy, weight: 1.0}
- {name: format, weight: 0.5, prefilled_think: false}
- name: countdown
  format_score: 0.2
)");
  ASSERT_TRUE(specs.ok()) << specs.status().to_string();
  ASSERT_EQ(specs->size(), 3u);
  EXPECT_EQ((*specs)[0].name, "math_accuracy");
  EXPECT_EQ((*specs)[1].weight, 0.5);
  EXPECT_EQ((*specs)[1].args, nlohmann::json({{"prefilled_think", false}}));
  EXPECT_EQ((*specs)[2].weight, 1.0);
  EXPECT_EQ((*specs)[2].args["format_score"], 0.2);

  auto built = build_rewards(*specs);
  ASSERT_TRUE(built.ok()) << built.status().to_string();
  std::vector<Sample> group = {
      make("<think> a </think> <answer> 4 </answer>", {{"answer", "4"}}),
      make("<think> a </think> <answer> 5 </answer>", {{"answer", "4"}}),
      make("garbage", {{"answer", "4"}}),
  };
  GroupScores gs = built->score(group);
  ASSERT_EQ(gs.names, (std::vector<std::string>{"math_accuracy", "format", "countdown"}));
  // countdown has no numbers/target in these samples: NaN, so every total is NaN ...
  EXPECT_TRUE(std::isnan(gs.components[2][0]));
  EXPECT_TRUE(std::isnan(gs.total[0]));
  // ... while the other components are kept for metrics.
  EXPECT_EQ(gs.components[0], (std::vector<double>{1.0, 0.0, 0.0}));
  EXPECT_EQ(gs.components[1], (std::vector<double>{1.0, 1.0, 0.0}));

  auto two =
      build_rewards(*parse_reward_specs("[{name: math_accuracy}, {name: format, weight: 0.5}]"));
  ASSERT_TRUE(two.ok());
  GroupScores t = two->score(group);
  // totals: 1*1 + 0.5*1 = 1.5; 1*0 + 0.5*1 = 0.5; 0 + 0 = 0
  EXPECT_EQ(t.total, (std::vector<double>{1.5, 0.5, 0.0}));
  EXPECT_EQ(t.failures, 0);  // rule rewards never fail; a NaN is "cannot judge"
  EXPECT_EQ(gs.failures, 0);

  // Errors name the entry.
  auto no_name = parse_reward_specs("[{weight: 1}]");
  ASSERT_FALSE(no_name.ok());
  EXPECT_NE(no_name.status().message().find("reward[0]: name: required"), std::string::npos)
      << no_name.status().to_string();
  auto bad_weight = parse_reward_specs("[{name: format, weight: heavy}]");
  ASSERT_FALSE(bad_weight.ok());
  EXPECT_NE(bad_weight.status().message().find("reward list:1:25: reward[0].weight"),
            std::string::npos)
      << bad_weight.status().to_string();
  auto unknown = build_rewards(*parse_reward_specs("[{name: format}, {name: nope}]"));
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("reward[1]"), std::string::npos);
  EXPECT_NE(unknown.status().message().find("nope"), std::string::npos);
  EXPECT_FALSE(parse_reward_specs("{name: format}").ok());  // not a list
  // A repeated reward gets a distinct component name.
  auto rep = build_rewards(*parse_reward_specs("[{name: format}, {name: format}]"));
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->components()[1].name, "format#2");
  // A label names the component; a label used twice is an error naming it.
  auto labelled = build_rewards(*parse_reward_specs(
      "[{name: format}, {name: regex, label: worked, pattern: ': \\d', weight: 0}]"));
  ASSERT_TRUE(labelled.ok()) << labelled.status().to_string();
  EXPECT_EQ(labelled->components()[1].name, "worked");
  auto twice = build_rewards(
      *parse_reward_specs("[{name: format, label: f}, {name: regex, label: f, pattern: x}]"));
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("label 'f'"), std::string::npos)
      << twice.status().to_string();
}

// A reward that fails to score every sample, and one that returns too few scores.
class CombinedTestFailingReward final : public Reward {
 public:
  Scores score(std::span<const Sample> g) const override {
    return {std::vector<double>(g.size(), kNoScore), static_cast<int64_t>(g.size())};
  }
};
class CombinedTestShortReward final : public Reward {
 public:
  Scores score(std::span<const Sample>) const override { return std::vector<double>{1.0}; }
};

TEST(CombinedRewardTest, SumsTheFailuresOfItsComponents) {
  std::vector<CombinedReward::Component> parts;
  parts.push_back({"failing", 1.0, kRoleOther, std::make_unique<CombinedTestFailingReward>()});
  parts.push_back({"short", 1.0, kRoleOther, std::make_unique<CombinedTestShortReward>()});
  parts.push_back({"format", 1.0, kRoleFormat, std::make_unique<FormatReward>(FormatOptions{})});
  CombinedReward combined(std::move(parts));
  std::vector<Sample> group = {make("<think> a </think> <answer> 4 </answer>"), make("garbage")};
  GroupScores gs = combined.score(group);
  // 2 samples the failing reward could not score, 2 that the short one left unscored.
  EXPECT_EQ(gs.failures, 4);
  EXPECT_TRUE(std::isnan(gs.components[1][0]) && std::isnan(gs.components[1][1]));
  EXPECT_EQ(gs.components[2], (std::vector<double>{1.0, 0.0}));
}

// How a recipe carries the list: core/config binds `reward:` as typed specs, every key
// but name/weight/role an argument; quoted strings stay strings.
struct RecipeWithRewards {
  std::vector<RewardSpec> reward;  // the reward list
  void visit(ConfigVisitor& v) { v.field("reward", reward, "rewards (see docs/rewards.md)"); }
};

TEST(RecipeTest, ThroughCoreConfig) {
  auto recipe = load_config_string<RecipeWithRewards>(R"(
reward:
  - {name: math_accuracy, weight: 1.0, gold_key: "42"}
  - name: countdown
    weight: 0.5
    format_score: 0.2
)",
                                                      {"reward.1.weight=0.25"});
  ASSERT_TRUE(recipe.ok()) << recipe.status().to_string();
  const auto& specs = recipe->reward;
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0].args["gold_key"], "42");  // a string, not the number 42
  EXPECT_EQ(specs[1].weight, 0.25);            // the dotted override applied
  EXPECT_EQ(specs[1].args["format_score"], 0.2);
  EXPECT_EQ(specs[1].role, kRoleAuto);
  EXPECT_TRUE(build_rewards(specs).ok());
  // A bad role or weight is an error with its line, like every key.
  auto bad = load_config_string<RecipeWithRewards>(
      "reward:\n  - {name: format}\n  - {name: countdown, role: checker}\n", {}, "r.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("r.yaml:3:"), std::string::npos)
      << bad.status().to_string();
  EXPECT_NE(bad.status().message().find("reward[1].role=\"checker\""), std::string::npos);
  // A bad argument is the reward's to find, when it is built.
  auto arg = load_config_string<RecipeWithRewards>("reward: [{name: countdown, format_scor: 1}]");
  ASSERT_TRUE(arg.ok());
  auto built = build_rewards(arg->reward);
  ASSERT_FALSE(built.ok());
  EXPECT_NE(built.status().message().find("format_scor: unknown key"), std::string::npos)
      << built.status().to_string();
}

// Roles, not positions, say which reward is the checker.
TEST(RecipeTest, RolesFindTheAccuracyReward) {
  const std::vector<RewardSpec> defaults = *parse_reward_specs(
      "[{name: countdown, role: accuracy}, {name: format, weight: 0.2, role: format}]");
  EXPECT_EQ(checker_of(defaults), "countdown");
  // Empty list: the task's defaults.
  auto d = build_task_rewards({}, defaults);
  ASSERT_TRUE(d.ok()) << d.status().to_string();
  EXPECT_EQ(d->role_index(kRoleAccuracy), 0);
  EXPECT_EQ(d->role_index(kRoleFormat), 1);
  // auto: the task's checker is accuracy wherever it is listed; format by name.
  auto listed = build_task_rewards(
      *parse_reward_specs("[{name: format}, {name: overlong, max_length: 9, cache_length: 2}, "
                          "{name: countdown}]"),
      defaults);
  ASSERT_TRUE(listed.ok()) << listed.status().to_string();
  EXPECT_EQ(listed->role_index(kRoleAccuracy), 2);
  EXPECT_EQ(listed->role_index(kRoleFormat), 0);
  EXPECT_EQ(listed->components()[1].role, kRoleOther);
  // Another checker needs role: accuracy; without it the error says so.
  auto none =
      build_task_rewards(*parse_reward_specs("[{name: math_accuracy}, {name: format}]"), defaults);
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no reward has role accuracy"), std::string::npos);
  EXPECT_NE(none.status().message().find("countdown"), std::string::npos);
  auto mine = build_task_rewards(
      *parse_reward_specs("[{name: format}, {name: math_accuracy, role: accuracy}]"), defaults);
  ASSERT_TRUE(mine.ok()) << mine.status().to_string();
  EXPECT_EQ(mine->role_index(kRoleAccuracy), 1);
  auto two = build_task_rewards(
      *parse_reward_specs("[{name: countdown}, {name: math_accuracy, role: accuracy}]"), defaults);
  ASSERT_FALSE(two.ok());
  EXPECT_NE(two.status().message().find("2 rewards have role accuracy"), std::string::npos);
  // Without a task (`r1kit reward score`), no accuracy reward is needed.
  auto plain = build_rewards(*parse_reward_specs("[{name: countdown}, {name: format}]"));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->role_index(kRoleAccuracy), -1);
  EXPECT_EQ(plain->role_index(kRoleFormat), 1);
}

}  // namespace
}  // namespace r1kit::reward
