// The whole pipeline (`r1kit run`) on the `nano` preset: every stage runs, its artefacts
// load (both models, both evaluation reports, the HTML page), and a rerun skips every
// stage whose output exists.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/config.h"
#include "pipeline/run.h"
#include "policy/checkpoint.h"

namespace r1kit::pipeline {
namespace {
namespace fs = std::filesystem;

TEST(PipelineIntegrationTest, EveryStageRunsAndItsArtefactsLoad) {
  const std::string dir = ::testing::TempDir() + "r1kit_pipeline_" + std::to_string(::getpid());
  fs::remove_all(dir);
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
  std::ifstream html(dir + "/report.html");
  std::stringstream ss;
  ss << html.rdbuf();
  EXPECT_NE(ss.str().find("<svg"), std::string::npos);

  auto again = run_pipeline(*r);
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  EXPECT_EQ(again->skipped, (std::vector<std::string>{"sft", "grpo", "eval"}));
  if (!HasFailure()) fs::remove_all(dir);
}

TEST(PipelineIntegrationTest, UnknownStageIsAnError) {
  auto r = load_config_string<RunRecipe>("run: {stages: [sft, rl]}\n");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("rl"), std::string::npos);
}

}  // namespace
}  // namespace r1kit::pipeline
