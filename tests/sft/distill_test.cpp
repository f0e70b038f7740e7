// Distillation: the top-k logit-distillation loss against a hand computation, and the
// rejection sampling of teacher traces (only rewarded ones, at most M per prompt, no
// duplicates) with a fake RolloutSource returning fixed completions.
#include "sft/distill.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/config.h"
#include "data/chat_template.h"

namespace r1kit::sft {
namespace {
namespace fs = std::filesystem;

TEST(KdLossTest, MatchesHandComputation) {
  // Three positions, k = 2; the middle one is masked out.
  //   row 0: teacher log(.6), log(.2) -> renormalised p = (.75, .25);
  //          student q = (.5, .25):  KL = .75 ln(.75/.5) + .25 ln(.25/.25) = .75 ln 1.5
  //          = 0.3040988
  //   row 2: teacher log(.3), log(.3) -> p = (.5, .5); student q = (.1, .4):
  //          KL = .5 ln 5 + .5 ln 1.25 = 0.8047190 + 0.1115718 = 0.9162907
  //   sum = 1.2203895. d sum / d s_nj = -mask_n * p_nj.
  auto t = torch::log(torch::tensor({{0.6, 0.2}, {0.9, 0.05}, {0.3, 0.3}}, torch::kFloat));
  auto s = torch::log(torch::tensor({{0.5, 0.25}, {0.01, 0.01}, {0.1, 0.4}}, torch::kFloat))
               .requires_grad_(true);
  auto mask = torch::tensor({1.0, 0.0, 1.0}, torch::kFloat);
  auto kl = topk_forward_kl_sum(s, t, mask);
  EXPECT_NEAR(kl.item<double>(), 0.75 * std::log(1.5) + 0.5 * std::log(5.0) + 0.5 * std::log(1.25),
              1e-6);
  EXPECT_NEAR(kl.item<double>(), 1.2203895, 1e-6);
  kl.backward();
  auto want = torch::tensor({{-0.75, -0.25}, {0.0, 0.0}, {-0.5, -0.5}}, torch::kFloat);
  EXPECT_TRUE(torch::allclose(s.grad(), want, 1e-6, 1e-6)) << s.grad();
  // No mask: every row counts; the student equal to the renormalised teacher gives 0.
  auto p = torch::log_softmax(t, -1);
  EXPECT_NEAR(topk_forward_kl_sum(p, t).item<double>(), 0.0, 1e-6);
  // The mix: (1 - alpha) * sft + alpha * kd.
  EXPECT_NEAR(mix_distill_loss(torch::tensor(2.0), torch::tensor(1.0), 0.25).item<double>(), 1.75,
              1e-9);
}

TEST(KdLossTest, TeacherEqualToStudentGivesZeroOverTheFullVocabulary) {
  policy::ModelConfig mc;
  mc.preset = "nano";
  const int64_t V = 64;
  auto model = mc.build(V, /*seed=*/3);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  (*model)->eval();
  SftSample a{{5, 6, 7, 8, 9, 10, 2}, 3}, b{{11, 12, 13, 14, 2}, 2};
  auto batch = make_padded_batch({&a, &b}, /*pad_id=*/0);
  torch::NoGradGuard ng;
  auto hidden = sft_loss_terms(**model, batch).hidden;
  // k = V: the teacher's top-k is its whole distribution, equal to the student's: KL = 0.
  auto full = make_kd_token_loss(*model, /*top_k=*/V, V)(**model, batch, hidden);
  EXPECT_NEAR(full.item<double>(), 0.0, 1e-4);
  // k = 4: KL = -log(student mass on the 4 tokens) > 0 at each of the 7 response positions.
  auto top4 = make_kd_token_loss(*model, /*top_k=*/4, V)(**model, batch, hidden);
  EXPECT_GT(top4.item<double>(), 0.1);
  EXPECT_EQ(batch.n_loss_tokens, 7);
}

// A teacher that answers every prompt with the same six completions (with the problem's
// answer filled in): two distinct right and well-formed ones, a duplicate of the first,
// a wrong answer, a right answer without the format, and a right one cut at the length
// limit.
class FakeTeacher final : public rollout::RolloutSource {
 public:
  FakeTeacher(const data::Tokenizer& tok, const data::TaskSource& tasks)
      : tok_(tok), tasks_(tasks) {}
  static constexpr int kK = 6;

  StatusOr<std::vector<rollout::Group>> generate(
      const rollout::GenerateRequest& req,
      const std::function<void(const rollout::Group&)>& /*on_group*/) override {
    EXPECT_EQ(req.group_size, kK);
    EXPECT_EQ(req.sampling.stop_token_ids, std::vector<int64_t>{tok_.eos_id()});
    std::vector<rollout::Group> out;
    for (const auto& p : req.prompts) {
      const auto problem = tasks_.train(static_cast<uint64_t>(p.index));
      EXPECT_EQ(p.ids.size(), tok_.encode(tasks_.render(problem)).size());
      const auto& a = problem.metadata["answer"];
      const std::string ans = a.is_string() ? a.get<std::string>() : a.dump();
      const std::string right1 = " <think> first try </think> <answer> " + ans + " </answer>";
      const std::string right2 = " <think> second try </think> <answer> " + ans + " </answer>";
      const std::vector<std::pair<std::string, rollout::FinishReason>> texts = {
          {right1, rollout::FinishReason::kStop},
          {right1, rollout::FinishReason::kStop},
          {right2, rollout::FinishReason::kStop},
          {" <think> oops </think> <answer> " + ans + "1 </answer>", rollout::FinishReason::kStop},
          {" the answer is " + ans, rollout::FinishReason::kStop},
          {" <think> long </think> <answer> " + ans + " </answer>", rollout::FinishReason::kLength},
      };
      rollout::Group g;
      g.prompt_index = p.index;
      for (const auto& [text, finish] : texts) {
        rollout::Completion c;
        for (int32_t id : tok_.encode(text)) c.token_ids.push_back(id);
        if (finish == rollout::FinishReason::kStop) c.token_ids.push_back(tok_.eos_id());
        c.logprobs.assign(c.token_ids.size(), -1.0f);
        c.finish_reason = finish;
        g.completions.push_back(std::move(c));
      }
      out.push_back(std::move(g));
    }
    ++calls;
    return out;
  }
  Status update_weights(const rollout::NamedTensors&, int64_t) override { return OkStatus(); }
  int64_t policy_version() const override { return 0; }
  int calls = 0;

 private:
  data::Tokenizer tok_;
  const data::TaskSource& tasks_;
};

class TracesTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(::testing::TempDir() + "r1kit_distill_" + std::to_string(::getpid()));
    fs::create_directories(*dir_);
    data::TaskSection ts;
    ts.chat_template = "plain";
    ts.eval_size = 10;
    tasks_ = new data::TaskSource(*data::TaskSource::create(ts));
    data::TokenizerTrainOptions o;
    for (uint64_t i = 0; i < 200; ++i) {
      const auto p = tasks_->train(i);
      o.lines.push_back(tasks_->render(p) + " <think> first second try oops long </think> " +
                        "<answer> 1 </answer> the answer is");
    }
    o.vocab_size = 300;
    o.num_threads = 1;
    ASSERT_TRUE(data::Tokenizer::train(o, *dir_ + "/tok.model").ok());
    tok_ = new data::Tokenizer(*data::Tokenizer::load(*dir_ + "/tok.model"));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete tok_;
    delete tasks_;
    delete dir_;
  }

  static std::vector<nlohmann::json> read_lines(const std::string& path) {
    std::vector<nlohmann::json> out;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
    return out;
  }

  StatusOr<TraceStats> sample(const DistillSampleSection& o, const std::string& out) {
    auto rewards = reward::build_task_rewards({}, tasks_->section().default_rewards());
    EXPECT_TRUE(rewards.ok());
    FakeTeacher teacher(*tok_, *tasks_);
    return sample_traces(teacher, *tok_, *tasks_, *rewards, o, out);
  }

  static std::string* dir_;
  static data::TaskSource* tasks_;
  static data::Tokenizer* tok_;
};
std::string* TracesTest::dir_ = nullptr;
data::TaskSource* TracesTest::tasks_ = nullptr;
data::Tokenizer* TracesTest::tok_ = nullptr;

TEST_F(TracesTest, KeepsOnlyRightAndWellFormedDeduplicated) {
  DistillSampleSection o;
  o.n_prompts = 5;
  o.samples_per_prompt = FakeTeacher::kK;
  o.keep_per_prompt = 4;
  o.prompts_per_batch = 2;  // three generate() calls
  const std::string out = *dir_ + "/traces.jsonl";
  auto st = sample(o, out);
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  // Default threshold: the sum of the weights (arithmetic 1.0 + format 0.2).
  EXPECT_NEAR(st->threshold, 1.2, 1e-12);
  EXPECT_EQ(st->prompts, 5);
  EXPECT_EQ(st->completions, 30);
  EXPECT_EQ(st->passed, 15);  // right1 twice and right2; the truncated one is rejected
  EXPECT_NEAR(st->acceptance(), 0.5, 1e-12);
  EXPECT_EQ(st->kept, 10);  // the duplicate is dropped
  EXPECT_EQ(st->prompts_kept, 5);

  auto lines = read_lines(out);
  ASSERT_EQ(lines.size(), 10u);
  std::map<int64_t, int> per_prompt;
  for (const auto& l : lines) {
    const auto problem = tasks_->train(l["index"].get<uint64_t>());
    EXPECT_EQ(l["prompt"], problem.question);
    EXPECT_GE(l["reward"].get<double>(), 1.2);
    EXPECT_EQ(l["rewards"]["format"].get<double>(), 1.0);
    EXPECT_NE(l["response"].get<std::string>().find("try </think>"), std::string::npos);
    ++per_prompt[l["index"].get<int64_t>()];
  }
  for (const auto& [i, n] : per_prompt) EXPECT_EQ(n, 2) << "prompt " << i;
  // The file is what `r1kit sft` reads.
  auto ex = read_sft_jsonl(out);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  EXPECT_EQ(ex->size(), 10u);
  auto stats = nlohmann::json::parse(std::ifstream(out + ".stats.json"));
  EXPECT_EQ(stats["kept"], 10);
}

TEST_F(TracesTest, AtMostMPerPromptAndConfigurableThreshold) {
  DistillSampleSection o;
  o.n_prompts = 3;
  o.samples_per_prompt = FakeTeacher::kK;
  o.keep_per_prompt = 1;
  auto st = sample(o, *dir_ + "/m1.jsonl");
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ(st->kept, 3);
  for (const auto& l : read_lines(*dir_ + "/m1.jsonl"))
    EXPECT_NE(l["response"].get<std::string>().find("first try"), std::string::npos);

  // A lower threshold admits the wrong but well-formed answer (arithmetic's format_score
  // 0.1 + format 0.2 = 0.3), and require_stop=false the truncated "long" one; the answer
  // without tags scores 0 and stays out.
  o.keep_per_prompt = 6;
  o.min_reward = 0.3;
  o.require_stop = false;
  st = sample(o, *dir_ + "/loose.jsonl");
  ASSERT_TRUE(st.ok()) << st.status().to_string();
  EXPECT_EQ(st->passed, 3 * 5);  // everything but "the answer is"
  EXPECT_EQ(st->kept, 3 * 4);    // minus the duplicate
}

TEST(DistillRecipeTest, ResolvesTheSftRecipeAndRejectsBadCombinations) {
  auto r = load_config_string<DistillRecipe>(R"(
teacher: {from: runs/sft-tiny/final}
task: {name: arithmetic, chat_template: plain}
model: {preset: tiny-dense}
checkpoint: {dir: runs/d}
)");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  const SftRecipe s = r->sft_recipe();
  EXPECT_EQ(s.data.source, SftSource::kJsonl);
  EXPECT_EQ(s.data.path, "runs/d/traces.jsonl");
  EXPECT_EQ(s.task.chat_template, "plain");
  EXPECT_EQ(s.tokenizer.path, "runs/sft-tiny/final/tokenizer.model");
  EXPECT_EQ(s.checkpoint.dir, "runs/d");

  auto no_teacher = load_config_string<DistillRecipe>("model: {preset: nano}");
  ASSERT_FALSE(no_teacher.ok());
  EXPECT_NE(no_teacher.status().message().find("teacher.from"), std::string::npos);
  auto too_many = load_config_string<DistillRecipe>(
      "teacher: {from: x}\nsample: {samples_per_prompt: 2, keep_per_prompt: 3}");
  ASSERT_FALSE(too_many.ok());
  EXPECT_NE(too_many.status().message().find("keep_per_prompt"), std::string::npos);
  auto unknown = load_config_string<DistillRecipe>("teacher: {from: x}\nkd: {beta: 1}");
  EXPECT_FALSE(unknown.ok());
}

}  // namespace
}  // namespace r1kit::sft
