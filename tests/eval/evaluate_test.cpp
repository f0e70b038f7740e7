// evaluate(): a fake RolloutSource returns fixed completions, so every metric is checked
// against values computed by hand (see the table in FixedCompletionsGiveHandComputedMetrics).
#include "eval/evaluate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "tests/temp_dir.h"

namespace r1kit::eval {
namespace {

// One id per byte: the codec of the tests.
TextCodec byte_codec() {
  TextCodec c;
  c.encode = [](std::string_view text) { return std::vector<int64_t>(text.begin(), text.end()); };
  c.decode = [](std::span<const int64_t> ids) { return std::string(ids.begin(), ids.end()); };
  c.stop_token_ids = {2};
  return c;
}

// Completions by problem index: `sampled[i]` for temperature > 0 (the first group_size
// of them), `greedy[i]` for temperature 0.
class FakeSource final : public rollout::RolloutSource {
 public:
  std::vector<std::vector<std::string>> sampled;
  std::vector<std::string> greedy;
  std::vector<rollout::FinishReason> finish;  // per problem, for sampled completions
  std::vector<rollout::GenerateRequest> requests;

  StatusOr<std::vector<rollout::Group>> generate(
      const rollout::GenerateRequest& req,
      const std::function<void(const rollout::Group&)>& on_group) override {
    requests.push_back(req);
    std::vector<rollout::Group> out;
    for (const auto& p : req.prompts) {
      rollout::Group g;
      g.prompt_index = p.index;
      for (int64_t j = 0; j < req.group_size; ++j) {
        const bool is_greedy = req.sampling.temperature == 0.0;
        const std::string& text = is_greedy ? greedy.at(p.index) : sampled.at(p.index).at(j);
        rollout::Completion c;
        c.token_ids.assign(text.begin(), text.end());
        c.logprobs.assign(text.size(), -1.0f);
        c.finish_reason = is_greedy ? rollout::FinishReason::kStop : finish.at(p.index);
        g.completions.push_back(std::move(c));
      }
      if (on_group) on_group(g);
      out.push_back(std::move(g));
    }
    return out;
  }
  Status update_weights(const rollout::NamedTensors&, int64_t) override { return OkStatus(); }
  int64_t policy_version() const override { return 0; }
};

std::string well_formed(const std::string& answer) {
  return "<think> work </think> <answer> " + answer + " </answer>";
}

// The rewards of a task whose checker is `checker`: `yaml`'s list, roles settled.
reward::CombinedReward task_rewards(const std::string& yaml,
                                    const std::string& checker = "arithmetic") {
  auto specs = reward::parse_reward_specs(yaml);
  EXPECT_TRUE(specs.ok()) << specs.status().to_string();
  reward::RewardSpec task_checker;
  task_checker.name = checker;
  task_checker.role = reward::kRoleAccuracy;
  auto r = reward::build_task_rewards(*specs, {task_checker});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return std::move(*r);
}

std::vector<data::TaskSample> problems() {
  std::vector<data::TaskSample> out(3);
  for (int i = 0; i < 3; ++i) {
    out[i].question = "q" + std::to_string(i);
    out[i].metadata = {{"answer", std::to_string(5 + 2 * i)}};
  }
  return out;
}

FakeSource fake() {
  FakeSource s;
  const std::string answer_only = "<answer> 5 </answer>";  // correct, not well-formed
  s.sampled = {
      {well_formed("5"), well_formed("5"), well_formed("6"), answer_only},       // c = 3
      {well_formed("1"), well_formed("7"), well_formed("1"), well_formed("2")},  // c = 1
      {"no idea", "no idea", "still no idea", "no"},                             // c = 0, no votes
  };
  s.greedy = {well_formed("5"), well_formed("2"), well_formed("9")};
  s.finish = {rollout::FinishReason::kStop, rollout::FinishReason::kStop,
              rollout::FinishReason::kLength};
  return s;
}

RenderFn render() {
  return [](const data::TaskSample& s) { return "Q: " + s.question; };
}

TEST(PassAtKTest, UnbiasedEstimator) {
  // 1 - C(n-c, k) / C(n, k)
  EXPECT_NEAR(pass_at_k(10, 3, 5), 1.0 - 21.0 / 252.0, 1e-12);
  EXPECT_NEAR(pass_at_k(4, 1, 2), 1.0 - 3.0 / 6.0, 1e-12);
  EXPECT_NEAR(pass_at_k(5, 2, 1), 0.4, 1e-12);  // k = 1: c / n
  EXPECT_EQ(pass_at_k(5, 0, 3), 0.0);
  EXPECT_EQ(pass_at_k(4, 3, 2), 1.0);  // n - c < k: some draw of k always has a correct one
  EXPECT_EQ(pass_at_k(8, 1, 8), 1.0);  // n == k: any correct
  EXPECT_EQ(pass_at_k(8, 0, 8), 0.0);
  EXPECT_NEAR(
      pass_at_k(100, 10, 10),
      1.0 - std::exp(std::lgamma(91) - std::lgamma(81) - std::lgamma(101) + std::lgamma(91)), 1e-9);
}

TEST(MajorityVoteTest, MostFrequentThenFirstSeen) {
  EXPECT_EQ(majority_vote({"1", "7", "7"}), std::make_pair(std::string("7"), int64_t{1}));
  EXPECT_EQ(majority_vote({"1", "7"}), std::make_pair(std::string("1"), int64_t{0}));  // tie
  EXPECT_EQ(majority_vote({"", "3", ""}), std::make_pair(std::string("3"), int64_t{1}));
  EXPECT_EQ(majority_vote({"", ""}), std::make_pair(std::string(""), int64_t{-1}));
}

TEST(VoteAnswerTest, ExtractsAndNormalises) {
  EXPECT_EQ(vote_answer("<think> x </think> <answer> 1,234 </answer>"), "1234");
  EXPECT_EQ(vote_answer("<answer> 5 </answer>"), vote_answer("<answer>5.</answer>"));
  EXPECT_EQ(vote_answer("nothing here"), "");
}

// Problem | samples (answer, correct, formatted) | c | pass@2          | maj@2
// 0 (5)   | 5 y y, 5 y y, 6 n y, 5 y n           | 3 | 1               | "5": correct
// 1 (7)   | 1 n y, 7 y y, 1 n y, 2 n y           | 1 | 1 - C(3,2)/C(4,2) = 0.5 | tie 1/7 -> "1":
// wrong 2 (9)   | no answers, none formatted           | 0 | 0               | no votes: wrong
TEST(EvaluateTest, FixedCompletionsGiveHandComputedMetrics) {
  FakeSource src = fake();
  const auto rewards =
      task_rewards("[{name: arithmetic, weight: 1.0}, {name: format, weight: 0.5}]");
  EvalOptions o;
  o.k = 2;
  o.n = 4;
  o.greedy_pass1 = true;
  o.batch = 2;
  o.seed = 7;
  o.max_new_tokens = 99;
  auto rep = evaluate(src, byte_codec(), problems(), render(), rewards, o);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_EQ(rep->problems, 3);
  EXPECT_NEAR(rep->pass_at_1, (3.0 / 4 + 1.0 / 4 + 0) / 3, 1e-12);
  EXPECT_NEAR(rep->pass_at_k, (1.0 + 0.5 + 0) / 3, 1e-12);
  EXPECT_NEAR(rep->pass_at.at(1), rep->pass_at_1, 1e-12);
  EXPECT_NEAR(rep->pass_at.at(4), (1.0 + 1.0 + 0) / 3, 1e-12);
  EXPECT_NEAR(rep->maj_at_k, 1.0 / 3, 1e-12);
  EXPECT_NEAR(rep->format_rate, 7.0 / 12, 1e-12);
  EXPECT_NEAR(rep->greedy_pass_at_1, 2.0 / 3, 1e-12);
  EXPECT_NEAR(rep->greedy_format_rate, 1.0, 1e-12);
  double len = 0;
  for (const auto& texts : src.sampled)
    for (const auto& t : texts) len += t.size();
  EXPECT_NEAR(rep->mean_length, len / 12, 1e-12);
  EXPECT_EQ(rep->finish_reasons.at("stop"), 8);
  EXPECT_EQ(rep->finish_reasons.at("length"), 4);
  EXPECT_EQ(rep->unjudged, 0);
  // arithmetic: 1 correct, 0.1 for a wrong number in <answer>, 0 without an answer.
  EXPECT_NEAR(rep->component_means.at("arithmetic"), (4 * 1.0 + 4 * 0.1) / 12, 1e-12);
  EXPECT_NEAR(rep->component_means.at("format"), 7.0 / 12, 1e-12);
  EXPECT_NEAR(rep->mean_reward, (4 * 1.0 + 4 * 0.1 + 0.5 * 7) / 12, 1e-12);

  // Per-problem records.
  ASSERT_EQ(rep->records.size(), 3u);
  EXPECT_EQ(rep->records[0].num_correct, 3);
  EXPECT_EQ(rep->records[0].majority_answer, "5");
  EXPECT_TRUE(rep->records[0].majority_correct);
  EXPECT_EQ(rep->records[1].majority_answer, "1");
  EXPECT_FALSE(rep->records[1].majority_correct);
  EXPECT_EQ(rep->records[2].majority_answer, "");
  EXPECT_FALSE(rep->records[2].samples[3].correct);

  // The requests: batches of 2 prompts, n samples, then one greedy sample; prompt
  // indices are the problem indices; EOS stops.
  ASSERT_EQ(src.requests.size(), 4u);
  EXPECT_EQ(src.requests[0].prompts.size(), 2u);
  EXPECT_EQ(src.requests[0].group_size, 4);
  EXPECT_EQ(src.requests[0].sampling.temperature, 1.0);
  EXPECT_EQ(src.requests[0].sampling.seed, 7u);
  EXPECT_EQ(src.requests[0].sampling.max_new_tokens, 99);
  EXPECT_EQ(src.requests[0].sampling.stop_token_ids, std::vector<int64_t>{2});
  EXPECT_EQ(src.requests[1].group_size, 1);
  EXPECT_EQ(src.requests[1].sampling.temperature, 0.0);
  EXPECT_EQ(src.requests[2].prompts.size(), 1u);
  EXPECT_EQ(src.requests[2].prompts[0].index, 2);
  EXPECT_EQ(byte_codec().decode(src.requests[2].prompts[0].ids), "Q: q2");

  // Flat metrics and JSON.
  const auto m = rep->metrics();
  EXPECT_NEAR(m.at("eval/pass@1"), rep->pass_at_1, 1e-12);
  EXPECT_NEAR(m.at("eval/pass@2"), rep->pass_at_k, 1e-12);
  EXPECT_NEAR(m.at("eval/maj@2"), rep->maj_at_k, 1e-12);
  EXPECT_NEAR(m.at("eval/greedy_pass@1"), 2.0 / 3, 1e-12);
  EXPECT_NEAR(m.at("eval/format"), 7.0 / 12, 1e-12);
  EXPECT_NEAR(m.at("eval/finish/length"), 4.0 / 12, 1e-12);
  EXPECT_TRUE(m.contains("eval/reward/arithmetic"));
  const nlohmann::json j = rep->to_json();
  EXPECT_NEAR(j.at("pass@2").get<double>(), 0.5, 1e-12);
  EXPECT_NEAR(j.at("maj@2").get<double>(), 1.0 / 3, 1e-12);
  EXPECT_EQ(j.at("finish_reasons").at("length"), 4);
  EXPECT_FALSE(rep->table().empty());
}

TEST(EvaluateTest, BatchingDoesNotChangeResults) {
  const auto rewards = task_rewards("[{name: arithmetic}, {name: format}]");
  EvalOptions o;
  o.k = 4;
  o.greedy_pass1 = false;
  FakeSource a = fake(), b = fake();
  o.batch = 1;
  auto r1 = evaluate(a, byte_codec(), problems(), render(), rewards, o);
  o.batch = 8;
  auto r8 = evaluate(b, byte_codec(), problems(), render(), rewards, o);
  ASSERT_TRUE(r1.ok() && r8.ok());
  EXPECT_EQ(a.requests.size(), 3u);
  EXPECT_EQ(b.requests.size(), 1u);
  EXPECT_EQ(r1->to_json().at("pass@4"), r8->to_json().at("pass@4"));
  EXPECT_NEAR(r1->pass_at_k, (1.0 + 1.0 + 0) / 3, 1e-12);  // n == k: any correct
  EXPECT_EQ(r1->greedy_pass_at_1, -1);
  EXPECT_TRUE(r1->to_json().at("greedy_pass@1").is_null());
  EXPECT_FALSE(r1->metrics().contains("eval/greedy_pass@1"));
}

TEST(EvaluateTest, WithoutFormatRewardTheRateIsNull) {
  FakeSource src = fake();
  const auto rewards = task_rewards("[{name: arithmetic}]");
  EvalOptions o;
  o.k = 4;
  o.greedy_pass1 = false;
  auto rep = evaluate(src, byte_codec(), problems(), render(), rewards, o);
  ASSERT_TRUE(rep.ok());
  EXPECT_TRUE(std::isnan(rep->format_rate));
  EXPECT_TRUE(rep->to_json().at("format_rate").is_null());
  EXPECT_FALSE(rep->metrics().contains("eval/format"));
}

TEST(EvaluateTest, NoGoldAnswerCountsAsUnjudged) {
  FakeSource src = fake();
  const auto rewards = task_rewards("[{name: math_accuracy}, {name: format}]", "math_accuracy");
  auto probs = problems();
  probs[2].metadata = nlohmann::json::object();  // math_accuracy: NaN without gold
  EvalOptions o;
  o.k = 4;
  o.greedy_pass1 = false;
  auto rep = evaluate(src, byte_codec(), probs, render(), rewards, o);
  ASSERT_TRUE(rep.ok()) << rep.status().to_string();
  EXPECT_EQ(rep->unjudged, 4);
  EXPECT_NEAR(rep->pass_at_1, (3.0 / 4 + 1.0 / 4) / 3, 1e-12);
}

TEST(EvaluateTest, WritesRecords) {
  FakeSource src = fake();
  const auto rewards = task_rewards("[{name: arithmetic}, {name: format}]");
  EvalOptions o;
  o.k = 4;
  o.max_problems = 2;
  const testing::ScopedTempDir tmp("r1kit_eval_records");
  o.records_path = tmp.join("records.jsonl");
  auto rep = evaluate(src, byte_codec(), problems(), render(), rewards, o);
  ASSERT_TRUE(rep.ok());
  EXPECT_EQ(rep->problems, 2);
  std::ifstream in(o.records_path);
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].at("num_correct"), 3);
  EXPECT_EQ(lines[0].at("samples").size(), 4u);
  EXPECT_EQ(lines[1].at("samples")[1].at("answer"), "7");
  EXPECT_TRUE(lines[1].contains("greedy"));
}

TEST(EvaluateTest, BadOptionsAndRewardsAreErrors) {
  FakeSource src = fake();
  const auto rewards = task_rewards("[{name: arithmetic}]");
  EvalOptions o;
  o.k = 8;
  o.n = 4;
  auto r = evaluate(src, byte_codec(), problems(), render(), rewards, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("n=4 < k=8"), std::string::npos);
  o.n = 0;
  o.k = 4;
  o.temperature = 0;
  EXPECT_FALSE(evaluate(src, byte_codec(), problems(), render(), rewards, o).ok());
  o.temperature = 1;
  // The checker is found by its role, wherever it is listed.
  const auto format_first = task_rewards("[{name: format}, {name: arithmetic}]");
  auto first = evaluate(src, byte_codec(), problems(), render(), format_first, o);
  auto last = evaluate(src, byte_codec(), problems(), render(),
                       task_rewards("[{name: arithmetic}, {name: format}]"), o);
  ASSERT_TRUE(first.ok() && last.ok());
  EXPECT_EQ(first->pass_at_1, last->pass_at_1);
  EXPECT_EQ(first->format_rate, last->format_rate);
  // No reward with role accuracy: an error saying so.
  auto no_checker = reward::build_rewards(*reward::parse_reward_specs("[{name: format}]"));
  ASSERT_TRUE(no_checker.ok());
  r = evaluate(src, byte_codec(), problems(), render(), *no_checker, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().to_string().find("role accuracy"), std::string::npos);
  EXPECT_FALSE(evaluate(src, byte_codec(), {}, render(), rewards, o).ok());
}

// Under 10% well-formatted samples, a warning naming the likely cause from how the
// template was chosen; none at 10% or more, or without a format reward.
TEST(EvaluateTest, LowFormatRateWarningNamesTheLikelyCause) {
  data::ResolvedPromptFormat used;
  used.chat_template = "r1_zero";
  EXPECT_EQ(low_format_rate_warning(0.10, used), "");
  EXPECT_EQ(low_format_rate_warning(std::nan(""), used), "");
  // No record: name the template used and both causes.
  std::string w = low_format_rate_warning(0.0, used);
  EXPECT_NE(w.find("records no prompt format"), std::string::npos) << w;
  EXPECT_NE(w.find("r1_zero"), std::string::npos) << w;
  // A record the choice contradicts: a template mismatch, both named.
  used.recorded = data::PromptFormat{"plain", false, "", nlohmann::json()};
  used.contradicts = true;
  w = low_format_rate_warning(0.02, used);
  EXPECT_NE(w.find("template mismatch: trained with plain, evaluated with r1_zero"),
            std::string::npos)
      << w;
  EXPECT_NE(w.find("2.0%"), std::string::npos) << w;
  // The recorded template itself: the model did not learn the format.
  used.chat_template = "plain";
  used.contradicts = false;
  w = low_format_rate_warning(0.05, used);
  EXPECT_NE(w.find("did not learn"), std::string::npos) << w;
  EXPECT_EQ(w.find("mismatch"), std::string::npos) << w;
}

}  // namespace
}  // namespace r1kit::eval
