// End to end: `run_distill` on nano sizes. A nano teacher is fine-tuned for a few steps
// (run_sft), samples traces through the in-process RolloutSource (kept with a loose
// threshold: a few-step teacher is rarely right), and a dense GQA student (tiny-dense)
// is trained on them with SFT mixed with top-k logit distillation. A rerun skips both
// stages; a changed sampling key samples again or is refused.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "data/prompt_format.h"
#include "sft/distill.h"
#include "tests/temp_dir.h"

namespace r1kit::sft {
namespace {
namespace fs = std::filesystem;

TEST(DistillIntegrationTest, SamplesTracesAndTrainsAStudent) {
  const testing::ScopedTempDir tmp("r1kit_distill_integ");
  const std::string root = tmp.join("run");
  auto teacher_recipe = load_config_string<SftRecipe>(R"(
model: {preset: nano}
tokenizer: {vocab_size: 320}
task: {name: arithmetic, seed: 3, chat_template: plain}
data: {n_examples: 200, seed: 3, max_seq_len: 96}
train: {steps: 4, batch_size: 4, seed: 5, optim: {lr: 3.0e-3, warmup_steps: 1}, eval_batches: 1}
dist: {threads: 1}
)",
                                                      {"checkpoint.dir=" + root + "/teacher"});
  ASSERT_TRUE(teacher_recipe.ok()) << teacher_recipe.status().to_string();
  auto teacher = run_sft(*teacher_recipe);
  ASSERT_TRUE(teacher.ok()) << teacher.status().to_string();

  // No task.chat_template: the one the teacher records (plain).
  auto recipe = load_config_string<DistillRecipe>(
      R"(
task: {name: arithmetic, eval_size: 10}
sample: {n_prompts: 6, samples_per_prompt: 3, keep_per_prompt: 2, min_reward: -1.0,
         require_stop: false, temperature: 1.0, max_new_tokens: 16, prompts_per_batch: 4}
model: {preset: tiny-dense}
data: {max_seq_len: 96, holdout_fraction: 0.1}
kd: {alpha: 0.5, top_k: 8}
train: {steps: 3, batch_size: 2, seed: 2, optim: {lr: 1.0e-3, warmup_steps: 1}, eval_batches: 1}
dist: {threads: 1}
)",
      {"teacher.from=" + teacher->final_dir, "checkpoint.dir=" + root + "/student",
       "checkpoint.every=0"});
  ASSERT_TRUE(recipe.ok()) << recipe.status().to_string();
  auto res = run_distill(*recipe);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_TRUE(res->sampled);
  EXPECT_EQ(res->traces.prompts, 6);
  EXPECT_EQ(res->traces.completions, 18);
  EXPECT_EQ(res->traces.passed, 18);  // min_reward -1 keeps everything judged
  EXPECT_LE(res->traces.kept, 12);    // at most M = 2 per prompt
  EXPECT_GE(res->traces.kept, 6);
  EXPECT_TRUE(res->student.finished);
  EXPECT_EQ(res->student.steps_run, 3);
  EXPECT_TRUE(fs::exists(root + "/student/final/model.safetensors"));
  EXPECT_TRUE(fs::exists(root + "/student/final/tokenizer.model"));
  // The traces were rendered with the teacher's template, and the student records it.
  auto format = data::read_prompt_format(root + "/student/final");
  ASSERT_TRUE(format.ok() && format->has_value()) << format.status().to_string();
  EXPECT_EQ((*format)->chat_template, "plain");
  // The student is the dense GQA preset, and the KD loss was logged every step.
  std::ifstream cfg(root + "/student/final/config.json");
  EXPECT_EQ(nlohmann::json::parse(cfg)["model_type"], "qwen2");
  std::ifstream metrics(root + "/student/metrics.jsonl");
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines) {
    auto m = nlohmann::json::parse(line);
    ASSERT_TRUE(m.contains("kd_loss")) << line;
    EXPECT_GT(m["kd_loss"].get<double>(), 0.0);
  }
  EXPECT_EQ(lines, 3);

  // Rerun: the traces and the final student exist, nothing is redone.
  auto again = run_distill(*recipe);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_FALSE(again->sampled);
  EXPECT_EQ(again->traces.kept, res->traces.kept);
  EXPECT_EQ(again->student.steps_run, 0);

  // A changed sampling key: refused by name while the student is trained on the traces,
  DistillRecipe hotter = *recipe;
  hotter.sample.temperature = 0.5;
  auto refused = run_distill(hotter);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("sample.temperature=1.0"), std::string::npos)
      << refused.status().to_string();
  // sampled again once nothing depends on them (an emptied trace file included),
  fs::remove_all(root + "/student/final");
  { std::ofstream(root + "/student/traces.jsonl", std::ios::trunc); }
  auto resampled = run_distill(hotter);
  ASSERT_TRUE(resampled.ok()) << resampled.status().to_string();
  EXPECT_TRUE(resampled->sampled);
  EXPECT_GE(resampled->traces.kept, 6);
  EXPECT_EQ(resampled->student.steps_run, 3);
  // and reused when only keys that do not change them differ.
  hotter.sample.prompts_per_batch = 2;
  hotter.teacher.max_batch = 8;
  auto reused = run_distill(hotter);
  ASSERT_TRUE(reused.ok()) << reused.status().to_string();
  EXPECT_FALSE(reused->sampled);
}

// reward_plugins are loaded before anything else: a missing library is an error at start
// naming it (no teacher is loaded, no directory written).
TEST(DistillIntegrationTest, MissingRewardPluginIsAnErrorAtStart) {
  const testing::ScopedTempDir tmp("r1kit_distill_plugin");
  const std::string root = tmp.join("run");
  auto recipe = load_config_string<DistillRecipe>(
      "reward_plugins: [no/such/libdistill_reward.so]\n"
      "reward: [{name: keyword_bonus, keyword: so}]\n",
      {"teacher.from=" + root + "/teacher", "checkpoint.dir=" + root + "/student"});
  ASSERT_TRUE(recipe.ok()) << recipe.status().to_string();
  EXPECT_EQ(recipe->reward_plugins, std::vector<std::string>{"no/such/libdistill_reward.so"});
  auto res = run_distill(*recipe);
  ASSERT_FALSE(res.ok());
  EXPECT_NE(res.status().message().find("no/such/libdistill_reward.so"), std::string::npos)
      << res.status().to_string();
  EXPECT_FALSE(fs::exists(root + "/student"));
}

}  // namespace
}  // namespace r1kit::sft
