// End to end: `run_sft` on the `nano` preset (generated traces, tokenizer, packed
// training with gradient accumulation, checkpoints, TensorBoard), and a run stopped
// after 3 steps then resumed ending bit for bit where the uninterrupted run ends.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "core/safetensors.h"
#include "sft/sft.h"

namespace r1kit::sft {
namespace {
namespace fs = std::filesystem;

std::string sft_fresh_dir(const std::string& name) {
  const std::string dir =
      ::testing::TempDir() + "r1kit_sft_" + name + "_" + std::to_string(::getpid());
  fs::remove_all(dir);
  return dir;
}

SftRecipe nano_sft_recipe(const std::string& dir) {
  auto r = load_config_string<SftRecipe>(R"(
model: {preset: nano}
tokenizer: {vocab_size: 320}
task: {name: arithmetic, seed: 3, chat_template: plain}
data: {n_examples: 300, seed: 3, max_seq_len: 96, holdout_fraction: 0.05}
train:
  steps: 6
  batch_size: 2
  grad_accum: 2
  seed: 5
  optim: {lr: 3.0e-3, warmup_steps: 2}
  log_every: 3
  eval_every: 3
  eval_batches: 1
dist: {threads: 1}
)",
                                         {"checkpoint.dir=" + dir, "checkpoint.every=3"});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return *r;
}

std::vector<double> losses(const std::string& dir) {
  std::vector<double> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);)
    out.push_back(nlohmann::json::parse(line)["loss"].get<double>());
  return out;
}

TEST(SftIntegrationTest, TrainsAndResumesExactly) {
  const std::string a_dir = sft_fresh_dir("a"), b_dir = sft_fresh_dir("b");
  auto a = run_sft(nano_sft_recipe(a_dir));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_TRUE(a->finished);
  EXPECT_LT(a->final_loss, a->first_loss);
  for (const char* f : {"tokenizer.model", "metrics.jsonl", "final/model.safetensors",
                        "checkpoints/step-000003/optimizer.safetensors", "tensorboard"})
    EXPECT_TRUE(fs::exists(a_dir + "/" + f)) << f;

  SftRecipe rb = nano_sft_recipe(b_dir);
  rb.train.stop_after = 2;  // checkpoint at step 2, not on the every-3 grid
  auto b1 = run_sft(rb);
  ASSERT_TRUE(b1.ok()) << b1.status().to_string();
  EXPECT_FALSE(b1->finished);
  rb.train.stop_after = 0;
  auto b2 = run_sft(rb);
  ASSERT_TRUE(b2.ok()) << b2.status().to_string();
  EXPECT_EQ(b2->steps_run, 4);

  EXPECT_EQ(losses(a_dir), losses(b_dir));  // the same 6 step losses, exactly
  auto ca = SafetensorsCheckpoint::open_dir(a_dir + "/final");
  auto cb = SafetensorsCheckpoint::open_dir(b_dir + "/final");
  ASSERT_TRUE(ca.ok() && cb.ok());
  for (const auto& n : ca->names()) EXPECT_TRUE(torch::equal(*ca->load(n), *cb->load(n))) << n;
  if (!HasFailure()) {
    fs::remove_all(a_dir);
    fs::remove_all(b_dir);
  }
}

}  // namespace
}  // namespace r1kit::sft
