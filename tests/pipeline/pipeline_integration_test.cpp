// The whole pipeline (`r1kit run`) on the `nano` preset: every stage runs, its artefacts
// load (both models, both evaluation reports, the HTML page), and a rerun skips every
// stage whose output exists.
#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <tuple>
#include <utility>

#include "core/config.h"
#include "core/stop_signal.h"
#include "data/prompt_format.h"
#include "pipeline/run.h"
#include "policy/checkpoint.h"
#include "tests/cli_util.h"
#include "tests/temp_dir.h"

namespace r1kit::pipeline {
namespace {
namespace fs = std::filesystem;

// Each test's run directories are in a directory of its own, removed when the test ends.
class PipelineIntegrationTest : public ::testing::Test {
 protected:
  // A directory path of this test's, not made yet.
  std::string fresh_dir(const std::string& name) const { return tmp_.join(name); }

 private:
  testing::ScopedTempDir tmp_{"r1kit_pipeline"};
};

// `r1kit eval --plugin LIB` on a model of the run: the plug-in's reward is a component.
void expect_eval_loads_plugin(const std::string& model_dir, const std::string& out_json) {
  const std::string eval = testing::r1kit_binary() + " eval --model " + model_dir +
                           " --task arithmetic --chat-template plain --n 2 --k 1"
                           " --max-new-tokens 8 --threads 1 --quiet --rewards "
                           "'[{name: arithmetic}, {name: keyword_bonus, keyword: e}]'";
  auto [rc, out] = testing::run_command(
      eval + " --plugin " + testing::example_reward_plugin() + " --json " + out_json, true);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream f(out_json);
  auto j = nlohmann::json::parse(f, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_TRUE(j["reward_components"].contains("keyword_bonus")) << j.dump();
  // A missing library: exit code 1 before the model is loaded, naming the path.
  std::tie(rc, out) = testing::run_command(eval + " --plugin no/such/libeval_reward.so", true);
  EXPECT_EQ(rc, 1) << out;
  EXPECT_NE(out.find("no/such/libeval_reward.so"), std::string::npos) << out;
}

// Every model the run wrote records its prompt format (the recipe's plain template and
// task section), and the CLI reads it: eval and generate default to it, a contradicting
// --chat-template is a warning naming both, and a format rate under 10% says why.
void expect_models_record_their_format(const std::string& dir) {
  std::vector<std::string> models = {dir + "/sft/final", dir + "/grpo/final"};
  for (const char* stage : {"/sft/checkpoints", "/grpo/checkpoints"})
    if (fs::exists(dir + stage))
      for (const auto& e : fs::directory_iterator(dir + stage)) models.push_back(e.path());
  for (const std::string& m : models) {
    auto rec = data::read_prompt_format(m);
    ASSERT_TRUE(rec.ok() && rec->has_value()) << m << ": " << rec.status().to_string();
    EXPECT_EQ((*rec)->chat_template, "plain") << m;
    EXPECT_EQ((*rec)->task["eval_size"], 6) << m;
  }
  const std::string model = dir + "/grpo/final";
  const std::string eval = testing::r1kit_binary() + " eval --model " + model +
                           " --k 1 --max-new-tokens 8 --threads 1 --quiet --json ";
  auto [rc, out] = testing::run_command(eval + dir + "/eval_auto.json", true);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("--chat-template: plain, as " + model), std::string::npos) << out;
  std::ifstream f(dir + "/eval_auto.json");
  auto j = nlohmann::json::parse(f, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  EXPECT_EQ(j["task_section"]["chat_template"], "plain");
  EXPECT_EQ(j["problems"], 6) << "the recorded eval_size";
  EXPECT_EQ(j.contains("warning"), j["format_rate"].get<double>() < 0.1) << j.dump();

  std::tie(rc, out) =
      testing::run_command(eval + dir + "/eval_r1.json --chat-template r1_zero", true);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("--chat-template r1_zero contradicts the model's record"), std::string::npos)
      << out;
  EXPECT_NE(out.find("trained with plain"), std::string::npos) << out;
  std::ifstream f2(dir + "/eval_r1.json");
  j = nlohmann::json::parse(f2, nullptr, false);
  ASSERT_TRUE(j.is_object()) << out;
  if (j["format_rate"].get<double>() < 0.1) {
    EXPECT_NE(j.value("warning", "").find("trained with plain, evaluated with r1_zero"),
              std::string::npos)
        << j.dump();
  }

  std::tie(rc, out) =
      testing::run_command(testing::r1kit_binary() + " generate --model " + model +
                               " --prompt 'What is 2+3?' --n 1 --max-new-tokens 4 --threads 1",
                           true);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("--chat-template: plain, as " + model), std::string::npos) << out;
}

TEST_F(PipelineIntegrationTest, EveryStageRunsAndItsArtefactsLoad) {
  const std::string dir = fresh_dir("run");
  auto r = load_config_string<RunRecipe>(R"(
model: {preset: nano}
tokenizer: {vocab_size: 320}
task: {name: arithmetic, eval_size: 6, chat_template: plain}
sft:
  n_examples: 200
  max_seq_len: 96
  train: {steps: 4, batch_size: 4, log_every: 2, eval_every: 0, eval_batches: 1}
grpo:
  rollout: {group_size: 2, prompts_per_step: 2, max_new_tokens: 8, max_batch: 16}
  train: {steps: 2, micro_batch_size: 4, optim: {lr: 1.0e-4}}
eval: {problems: 4, k: 2, max_new_tokens: 8}
dist: {threads: 1}
)",
                                         {"run.dir=" + dir});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  // GRPO's prompts are problems SFT did not train on; a later start is kept.
  EXPECT_EQ(grpo_recipe(*r).grpo.first_problem, 200u);
  r->grpo.train.first_problem = 5000;
  EXPECT_EQ(grpo_recipe(*r).grpo.first_problem, 5000u);
  r->grpo.train.first_problem = 0;
  auto res = run_pipeline(*r);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->ran, (std::vector<std::string>{"sft", "grpo", "eval", "report"}));
  for (const char* m : {"/sft/final", "/grpo/final"}) {
    auto model = policy::load_model(dir + m);
    EXPECT_TRUE(model.ok()) << m << ": " << model.status().to_string();
  }
  for (const char* e : {"/grpo/eval_sft.json", "/grpo/eval_grpo.json"}) {
    std::ifstream f(dir + e);
    auto j = nlohmann::json::parse(f, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << e;
    EXPECT_TRUE(j.contains("pass_at_1") || j.contains("pass@1")) << j.dump();
  }
  expect_eval_loads_plugin(dir + "/grpo/final", dir + "/eval_plugin.json");
  expect_models_record_their_format(dir);
  std::ifstream html(dir + "/report.html");
  std::stringstream ss;
  ss << html.rdbuf();
  EXPECT_NE(ss.str().find("<svg"), std::string::npos);
  // The run directory's report: the headline per stage, SFT's loss curves.
  EXPECT_NE(ss.str().find("id=\"headline\""), std::string::npos);
  EXPECT_NE(ss.str().find("SFT loss curves"), std::string::npos);

  auto again = run_pipeline(*r);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->skipped, (std::vector<std::string>{"sft", "grpo", "eval"}));

  // The control stage: SFT only for the SFT + GRPO time, at the SFT stage's pace.
  std::ifstream tf(dir + "/timing.json");
  auto timing = nlohmann::json::parse(tf, nullptr, false);
  ASSERT_TRUE(timing.is_object());
  EXPECT_EQ(timing["sft"]["steps"], 4);
  EXPECT_EQ(timing["grpo"]["steps"], 2);
  const double t_sft = timing["sft"]["seconds"], t_grpo = timing["grpo"]["seconds"];
  ASSERT_GT(t_sft, 0);
  ASSERT_GT(t_grpo, 0);
  r->run.stages = {"control", "eval"};
  auto cr = control_recipe(*r);
  ASSERT_TRUE(cr.ok()) << cr.status().to_string();
  EXPECT_EQ(cr->train.steps, std::llround(4 * (t_sft + t_grpo) / t_sft));
  EXPECT_GE(cr->train.steps, 4);  // more when GRPO took a noticeable share of the time
  EXPECT_EQ(cr->tokenizer.path, dir + "/sft/final");
  auto ctl = run_pipeline(*r);
  ASSERT_TRUE(ctl.ok()) << ctl.status().to_string();
  EXPECT_EQ(ctl->ran, (std::vector<std::string>{"control", "eval"}));
  EXPECT_TRUE(policy::load_model(dir + "/control/final").ok());
  EXPECT_TRUE(fs::exists(dir + "/grpo/eval_control.json"));
}

// run.max_minutes: GRPO's box is the budget less the time spent, the evaluation and half
// a minute for the report, capped by grpo.train.max_minutes, at least 1e-6 (one step).
TEST_F(PipelineIntegrationTest, GrpoTimeBoxFitsTheRunBudget) {
  RunRecipe r;
  r.grpo.train.max_minutes = 10;
  EXPECT_DOUBLE_EQ(grpo_time_box(r, 7, 1), 10);  // no budget: GRPO's own box
  r.run.max_minutes = 20;
  EXPECT_DOUBLE_EQ(grpo_time_box(r, 7, 1), 10);     // 11.5 left, capped by the own box
  EXPECT_DOUBLE_EQ(grpo_time_box(r, 9, 2), 8.5);    // 20 - 9 - 2 - 0.5
  EXPECT_DOUBLE_EQ(grpo_time_box(r, 25, 1), 1e-6);  // over budget: one step
  r.grpo.train.max_minutes = 0;
  EXPECT_DOUBLE_EQ(grpo_time_box(r, 7, 1), 11.5);
}

// With a budget smaller than SFT's time, GRPO gets one step, and the SFT model is
// evaluated before GRPO (its time recorded) rather than after.
TEST_F(PipelineIntegrationTest, RunBudgetShrinksGrpo) {
  const std::string dir = fresh_dir("budget");
  auto r = load_config_string<RunRecipe>(R"(
run: {stages: [sft, grpo, eval], max_minutes: 0.001}
model: {preset: nano}
tokenizer: {vocab_size: 320}
task: {name: arithmetic, eval_size: 4, chat_template: plain, max_a: 5, max_b: 5, max_c: 9}
sft:
  n_examples: 100
  max_seq_len: 96
  train: {steps: 2, batch_size: 4, log_every: 1, eval_every: 0, eval_batches: 1}
grpo:
  rollout: {group_size: 2, prompts_per_step: 2, max_new_tokens: 8, max_batch: 16}
  train: {steps: 4, micro_batch_size: 4, optim: {lr: 1.0e-4}}
eval: {problems: 4, k: 2, max_new_tokens: 8}
dist: {threads: 1}
)",
                                         {"run.dir=" + dir});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto res = run_pipeline(*r);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  std::ifstream tf(dir + "/timing.json");
  auto timing = nlohmann::json::parse(tf, nullptr, false);
  ASSERT_TRUE(timing.is_object());
  EXPECT_EQ(timing["grpo"]["steps"], 1);
  ASSERT_TRUE(timing.contains("eval_sft")) << timing.dump();
  EXPECT_GT(timing["eval_sft"]["seconds"].get<double>(), 0);
  EXPECT_TRUE(fs::exists(dir + "/grpo/eval_sft.json"));
  EXPECT_TRUE(fs::exists(dir + "/grpo/eval_grpo.json"));
}

// R1-Zero: a base model pretrained on the task corpus, then GRPO with no SFT. The corpus
// holds the training problems only, never a held-out one.
TEST_F(PipelineIntegrationTest, PretrainThenGrpoWithoutSft) {
  const std::string dir = fresh_dir("zero");
  auto r = load_config_string<RunRecipe>(R"(
run: {stages: [pretrain, grpo, eval]}
model: {preset: nano}
tokenizer: {vocab_size: 320}
task: {name: arithmetic, eval_size: 6, chat_template: plain, max_a: 5, max_b: 5, max_c: 9}
pretrain:
  n_examples: 300
  train: {steps: 3, batch_size: 4, seq_len: 64, log_every: 1, eval_every: 0, eval_batches: 1}
grpo:
  rollout: {group_size: 2, prompts_per_step: 2, max_new_tokens: 8, max_batch: 16}
  train: {steps: 2, micro_batch_size: 4, optim: {lr: 1.0e-4}}
eval: {problems: 6, k: 2, max_new_tokens: 8}
dist: {threads: 1}
)",
                                         {"run.dir=" + dir});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(grpo_recipe(*r).model.from, dir + "/pretrain/final");
  // GRPO's prompts start after the problems the base model was pretrained on.
  EXPECT_EQ(grpo_recipe(*r).grpo.first_problem, 300u);
  auto res = run_pipeline(*r);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(res->ran, (std::vector<std::string>{"pretrain", "grpo", "eval"}));
  EXPECT_FALSE(fs::exists(dir + "/sft"));
  for (const char* m : {"/pretrain/final", "/grpo/final"})
    EXPECT_TRUE(policy::load_model(dir + m).ok()) << m;
  for (const char* e : {"/grpo/eval_pretrain.json", "/grpo/eval_grpo.json"})
    EXPECT_TRUE(fs::exists(dir + e)) << e;
  std::ifstream cf(dir + "/pretrain/corpus.txt");
  std::stringstream corpus;
  corpus << cf.rdbuf();
  ASSERT_GT(corpus.str().size(), 1000u);
  auto task = data::TaskSource::create(r->task);
  ASSERT_TRUE(task.ok());
  for (const auto& p : task->eval())
    EXPECT_EQ(corpus.str().find("User: " + p.question + "\n"), std::string::npos) << p.question;
  // With the pretrain stage listed, SFT starts from the base model and its tokenizer.
  r->run.stages = {"pretrain", "sft"};
  EXPECT_EQ(sft_recipe(*r).model.from, dir + "/pretrain/final");
  EXPECT_EQ(sft_recipe(*r).tokenizer.path, dir + "/pretrain/final");
}

// The status message of a run that must fail.
std::string refusal(const RunRecipe& r) {
  auto res = run_pipeline(r);
  return res.ok() ? "(it ran)" : std::string(res.status().message());
}

// A rerun compares each finished stage's recorded recipe with the recipe now: a changed
// key is refused by name, a cadence key is not, a raised step count continues the stage
// from its checkpoint (to the weights of a run that had the higher count from the start:
// constant learning rate), and a later stage made from the old model refuses it.
TEST_F(PipelineIntegrationTest, ChangedRecipeIsRefusedByKeyAndRaisedStepsContinue) {
  const std::string dir = fresh_dir("reuse");
  const char* yaml = R"(
run: {stages: [sft, grpo, eval]}
task: {name: arithmetic, eval_size: 2, chat_template: plain, max_a: 5, max_b: 5, max_c: 9}
model: {preset: nano}
tokenizer: {vocab_size: 320}
sft: {n_examples: 100, max_seq_len: 96,
      train: {steps: 3, batch_size: 4, log_every: 1, eval_every: 0, eval_batches: 1,
              optim: {lr: 1.0e-3, warmup_steps: 0, min_lr_ratio: 1.0}}}
grpo:
  rollout: {group_size: 2, prompts_per_step: 1, max_new_tokens: 4, max_batch: 8}
  train: {steps: 1, micro_batch_size: 2}
eval: {problems: 2, k: 1, max_new_tokens: 4}
dist: {threads: 1}
)";
  auto r = load_config_string<RunRecipe>(yaml, {"run.dir=" + dir + "/a"});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto first = run_pipeline(*r);
  ASSERT_TRUE(first.ok()) << first.status().to_string();
  EXPECT_TRUE(fs::exists(dir + "/a/sft/recipe.json"));
  EXPECT_TRUE(fs::exists(dir + "/a/grpo/recipe.json"));

  RunRecipe changed = *r;
  changed.sft.train.optim.lr = 2e-3;
  EXPECT_NE(refusal(changed).find("stage sft: " + dir + "/a/sft was made with sft.train.optim.lr="),
            std::string::npos)
      << refusal(changed);
  changed = *r;
  changed.grpo.train.loss.kl_coef = 0.5;
  EXPECT_NE(refusal(changed).find("grpo.train.loss.kl_coef"), std::string::npos);
  changed = *r;
  changed.sft.train.steps = 2;  // fewer steps cannot be undone
  EXPECT_NE(refusal(changed).find("sft.train.steps=3"), std::string::npos) << refusal(changed);
  // More SFT steps with GRPO's output made from the 3-step model: GRPO refuses.
  changed.sft.train.steps = 5;
  EXPECT_NE(refusal(changed).find("stage grpo: " + dir + "/a/grpo was made with sft.train.steps=3"),
            std::string::npos)
      << refusal(changed);

  // Keys that change nothing computed, and an evaluation key: only the evaluation reruns.
  changed = *r;
  changed.sft.train.log_every = 2;
  changed.grpo.train.log_every = 5;
  changed.dist.threads = 2;
  changed.eval.temperature = 0.5;
  auto again = run_pipeline(changed);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->skipped, (std::vector<std::string>{"sft", "grpo"}));
  EXPECT_EQ(again->ran, (std::vector<std::string>{"eval"}));

  // SFT alone, its step count raised: it continues from step 3 to 5.
  r->run.stages = {"sft"};
  r->sft.train.steps = 5;
  auto more = run_pipeline(*r);
  ASSERT_TRUE(more.ok()) << more.status().to_string();
  EXPECT_EQ(more->ran, (std::vector<std::string>{"sft"}));
  std::ifstream tf(dir + "/a/timing.json");
  EXPECT_EQ(nlohmann::json::parse(tf)["sft"]["steps"], 5);  // 3 + 2, not 3 + 5
  auto fresh = load_config_string<RunRecipe>(
      yaml, {"run.dir=" + dir + "/b", "run.stages=[sft]", "sft.train.steps=5"});
  ASSERT_TRUE(fresh.ok());
  ASSERT_TRUE(run_pipeline(*fresh).ok());
  auto continued = policy::load_model(dir + "/a/sft/final");
  auto direct = policy::load_model(dir + "/b/sft/final");
  ASSERT_TRUE(continued.ok() && direct.ok());
  const auto pa = (*continued)->named_parameters(), pb = (*direct)->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& p : pa) EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
}

// Ctrl-C during the SFT stage: the stage stops at its step boundary with a checkpoint,
// the run says where it stopped and runs no later stage; the rerun finishes it.
TEST_F(PipelineIntegrationTest, CtrlCStopsTheRunningStageAndTheRerunFinishes) {
  const std::string dir = fresh_dir("sigint");
  auto r = load_config_string<RunRecipe>(R"(
run: {stages: [sft, grpo, eval]}
task: {name: arithmetic, eval_size: 2, chat_template: plain, max_a: 5, max_b: 5, max_c: 9}
model: {preset: nano}
tokenizer: {vocab_size: 320}
sft: {n_examples: 100, max_seq_len: 96,
      train: {steps: 3, batch_size: 4, log_every: 1, eval_every: 0, eval_batches: 1}}
grpo:
  rollout: {group_size: 2, prompts_per_step: 1, max_new_tokens: 4, max_batch: 8}
  train: {steps: 1, micro_batch_size: 2}
eval: {problems: 2, k: 1, max_new_tokens: 4}
dist: {threads: 1}
)",
                                         {"run.dir=" + dir});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  {
    StopSignalScope scope;
    std::raise(SIGINT);  // arrives during SFT's first step
    auto stopped = run_pipeline(*r);
    ASSERT_TRUE(stopped.ok()) << stopped.status().to_string();
    EXPECT_EQ(stopped->stopped_in, "sft");
    EXPECT_EQ(stopped->ran, (std::vector<std::string>{"sft"}));
    EXPECT_TRUE(fs::exists(dir + "/sft/checkpoints/step-000001/trainer_state.json"));
    EXPECT_FALSE(fs::exists(dir + "/sft/final"));
    EXPECT_FALSE(fs::exists(dir + "/grpo"));
  }
  clear_stop_request();
  auto rest = run_pipeline(*r);
  ASSERT_TRUE(rest.ok()) << rest.status().to_string();
  EXPECT_EQ(rest->stopped_in, "");
  EXPECT_EQ(rest->ran, (std::vector<std::string>{"sft", "grpo", "eval"}));
  std::ifstream tf(dir + "/timing.json");
  EXPECT_EQ(nlohmann::json::parse(tf)["sft"]["steps"], 3);         // 1 + 2: resumed, not restarted
  EXPECT_TRUE(fs::exists(dir + "/grpo/eval_grpo.records.jsonl"));  // the report's samples
}

// `r1kit run` takes `r1kit grpo`'s spellings: grpo.steps and rollout.group_size.
TEST_F(PipelineIntegrationTest, RunTakesGrpoSpellings) {
  EXPECT_EQ(expand_grpo_spellings({"grpo.steps=7", "rollout.group_size=4", "grpo.train.seed=2",
                                   "grpo.rollout.top_k=3", "sft.train.steps=9", "grpo={}"}),
            (std::vector<std::string>{"grpo.train.steps=7", "grpo.rollout.group_size=4",
                                      "grpo.train.seed=2", "grpo.rollout.top_k=3",
                                      "sft.train.steps=9", "grpo={}"}));
  const fs::path root = fs::path(R1KIT_TESTDATA).parent_path().parent_path();
  auto [rc, out] = testing::run_command(
      "cd " + root.string() + " && " + testing::r1kit_binary() +
          " run recipes/r1-tiny.yaml grpo.steps=7 rollout.group_size=4 --print-recipe",
      true);
  ASSERT_EQ(rc, 0) << out;
  auto r = load_config_string<RunRecipe>(out.substr(out.find('\n') + 1));
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->grpo.train.steps, 7);
  EXPECT_EQ(r->grpo.rollout.group_size, 4);
  // A misspelled key is still an error naming it, in the run recipe's spelling.
  std::tie(rc, out) =
      testing::run_command("cd " + root.string() + " && " + testing::r1kit_binary() +
                               " run recipes/r1-tiny.yaml grpo.stepz=7 --print-recipe",
                           true);
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("grpo.train.stepz"), std::string::npos) << out;
}

// The files the format flags write are what the next command reads: `task generate
// --format sft` -> `r1kit sft` (data.source=jsonl) -> `eval --records --format score` ->
// `reward score`.
TEST_F(PipelineIntegrationTest, FormatFlagsFeedTheNextCommand) {
  const std::string dir = fresh_dir("formats");
  fs::create_directories(dir);
  const std::string bin = testing::r1kit_binary();
  auto [rc, out] = testing::run_command(
      bin + " task generate --task arithmetic --n 40 --format sft --out " + dir + "/sft.jsonl",
      true);
  ASSERT_EQ(rc, 0) << out;
  {
    std::ofstream(dir + "/sft.yaml") << "model: {preset: nano}\n"
                                        "tokenizer: {vocab_size: 320}\n"
                                        "task: {name: arithmetic, chat_template: plain}\n"
                                        "data: {source: jsonl, max_seq_len: 96}\n"
                                        "train: {steps: 2, batch_size: 4, eval_batches: 1}\n"
                                        "dist: {threads: 1}\n";
  }
  std::tie(rc, out) = testing::run_command(bin + " sft " + dir + "/sft.yaml data.path=" + dir +
                                               "/sft.jsonl checkpoint.dir=" + dir + "/sft",
                                           true);
  ASSERT_EQ(rc, 0) << out;
  std::smatch m;  // every line read: train + held-out = 40
  ASSERT_TRUE(std::regex_search(out, m, std::regex(R"(sft data: (\d+) train / (\d+) held-out)")))
      << out;
  EXPECT_EQ(std::stoi(m[1]) + std::stoi(m[2]), 40) << out;
  std::tie(rc, out) = testing::run_command(
      bin + " eval --model " + dir +
          "/sft/final --chat-template plain --n 3 --k 2 --max-new-tokens 8 --threads 1 --quiet "
          "--records " +
          dir + "/samples.jsonl --format score",
      true);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream samples(dir + "/samples.jsonl");
  int n = 0;
  for (std::string line; std::getline(samples, line); ++n) {
    auto j = nlohmann::json::parse(line);
    EXPECT_TRUE(j["prompt"].is_string() && j["completion"].is_string() && j.contains("answer"))
        << line;
  }
  EXPECT_EQ(n, 6);  // 3 problems x 2 samples
  std::tie(rc, out) =
      testing::run_command(bin + " reward score --rewards arithmetic,format --input " + dir +
                               "/samples.jsonl --output " + dir + "/scores.jsonl",
                           true);
  ASSERT_EQ(rc, 0) << out;
  std::ifstream scores(dir + "/scores.jsonl");
  n = 0;
  for (std::string line; std::getline(scores, line); ++n)
    EXPECT_TRUE(nlohmann::json::parse(line)["rewards"].contains("arithmetic")) << line;
  EXPECT_EQ(n, 6);
}

TEST_F(PipelineIntegrationTest, ControlNeedsTheTimesOfSftAndGrpo) {
  auto r = load_config_string<RunRecipe>("run: {stages: [control]}\n",
                                         {"run.dir=" + fresh_dir("no_such_run")});
  ASSERT_TRUE(r.ok());
  auto cr = control_recipe(*r);
  ASSERT_FALSE(cr.ok());
  EXPECT_NE(cr.status().message().find("timing.json"), std::string::npos);
}

// reward_plugins reach the GRPO stage's recipe, and a missing library is an error before
// any stage runs, naming it.
TEST_F(PipelineIntegrationTest, RewardPluginsAreLoadedAtStart) {
  const std::string dir = fresh_dir("plugin");
  auto r = load_config_string<RunRecipe>(
      "model: {preset: nano}\n"
      "reward_plugins: [no/such/libpipeline_reward.so]\n"
      "reward: [{name: arithmetic}, {name: keyword_bonus, weight: 0.1, keyword: so}]\n",
      {"run.dir=" + dir});
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(grpo_recipe(*r).reward_plugins, r->reward_plugins);
  auto res = run_pipeline(*r);
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.status().message().find("no/such/libpipeline_reward.so"), std::string::npos)
      << res.status().to_string();
  EXPECT_FALSE(fs::exists(dir + "/sft"));
}

// Every recipe shipped in recipes/ resolves under the command its first line names
// ("# r1kit run recipes/r1-tiny.yaml"): no key drifted out of date.
TEST_F(PipelineIntegrationTest, EveryShippedRecipeResolves) {
  const fs::path root = fs::path(R1KIT_TESTDATA).parent_path().parent_path();
  int n = 0;
  for (const auto& e : fs::directory_iterator(root / "recipes")) {
    if (e.path().extension() != ".yaml") continue;
    std::ifstream in(e.path());
    std::string first;
    std::getline(in, first);
    std::istringstream words(first);
    std::string hash, prog, cmd, path;
    words >> hash >> prog >> cmd >> path;
    ASSERT_EQ(prog, "r1kit") << e.path() << ": first line '" << first << "'";
    EXPECT_EQ(path, "recipes/" + e.path().filename().string()) << first;
    auto [rc, out] = testing::run_command("cd " + root.string() + " && " + testing::r1kit_binary() +
                                              " " + cmd + " " + path + " --print-recipe",
                                          true);
    EXPECT_EQ(rc, 0) << e.path() << "\n" << out;
    ++n;
  }
  EXPECT_GE(n, 7);
}

TEST_F(PipelineIntegrationTest, UnknownStageIsAnError) {
  auto r = load_config_string<RunRecipe>("run: {stages: [sft, rl]}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rl"), std::string::npos);
}

}  // namespace
}  // namespace r1kit::pipeline
