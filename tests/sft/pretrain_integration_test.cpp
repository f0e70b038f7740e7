// End to end: the pretrain job on the `nano` preset (corpus, tokenizer training through
// the dlopen'ed SentencePiece shim, training, checkpoints), exact resumption, and the
// `r1kit` binary's model/tokenizer/pretrain commands as a user runs them.
#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/safetensors.h"
#include "core/stop_signal.h"
#include "sft/pretrain.h"
#include "tests/cli_util.h"
#include "tests/temp_dir.h"

namespace r1kit::sft {
namespace {
namespace fs = std::filesystem;

PretrainRecipe nano_pretrain_recipe(const std::string& dir) {
  auto r = load_config_string<PretrainRecipe>(R"(
model: {preset: nano}
tokenizer: {vocab_size: 320}
task: {name: arithmetic, seed: 3}
data: {n_examples: 400}
train:
  steps: 8
  batch_size: 4
  seq_len: 48
  seed: 5
  optim: {lr: 3.0e-3, warmup_steps: 2}
  log_every: 4
  eval_every: 4
  eval_batches: 1
dist: {threads: 1}
)",
                                              {"checkpoint.dir=" + dir, "checkpoint.every=4"});
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return *r;
}

std::map<std::string, torch::Tensor> load_all(const std::string& dir) {
  std::map<std::string, torch::Tensor> out;
  auto ck = SafetensorsCheckpoint::open_dir(dir);
  EXPECT_TRUE(ck.ok()) << ck.status().to_string();
  for (const auto& n : ck->names()) out[n] = *ck->load(n);
  return out;
}

TEST(PretrainIntegrationTest, TrainsSavesAndResumesExactly) {
  const testing::ScopedTempDir tmp("r1kit_pretrain");
  const std::string a_dir = tmp.join("a"), b_dir = tmp.join("b");
  // Uninterrupted run.
  auto a = run_pretrain(nano_pretrain_recipe(a_dir));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_TRUE(a->finished);
  EXPECT_EQ(a->steps_run, 8);
  EXPECT_LT(a->final_loss, a->first_loss);  // it learns
  for (const char* f : {"corpus.txt", "tokenizer.model", "metrics.jsonl", "final/config.json",
                        "final/model.safetensors", "final/tokenizer.model",
                        "checkpoints/step-000004/optimizer.safetensors",
                        "checkpoints/step-000008/trainer_state.json"})
    EXPECT_TRUE(fs::exists(a_dir + "/" + f)) << f;

  // Interrupted after 3 steps (checkpoint at 3), then resumed by a second invocation.
  PretrainRecipe rb = nano_pretrain_recipe(b_dir);
  rb.train.stop_after = 3;
  auto b1 = run_pretrain(rb);
  ASSERT_TRUE(b1.ok()) << b1.status().to_string();
  EXPECT_FALSE(b1->finished);
  EXPECT_TRUE(fs::exists(b_dir + "/checkpoints/step-000003/trainer_state.json"));
  rb.train.stop_after = 0;
  auto b2 = run_pretrain(rb);
  ASSERT_TRUE(b2.ok()) << b2.status().to_string();
  EXPECT_TRUE(b2->finished);
  EXPECT_EQ(b2->steps_run, 5);

  // Same final weights, bit for bit, and the same last-window loss and eval loss.
  auto wa = load_all(a_dir + "/final"), wb = load_all(b_dir + "/final");
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) {
    ASSERT_TRUE(wb.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, wb[name]))
        << name << " max diff " << (t - wb[name]).abs().max().item<double>();
  }
  EXPECT_DOUBLE_EQ(a->eval_loss, b2->eval_loss);

  // Ctrl-C: a SIGINT during step 1 stops the run after it with the normal checkpoint;
  // the rerun resumes and ends with the same weights.
  const std::string c_dir = tmp.join("c");
  {
    StopSignalScope scope;
    std::raise(SIGINT);  // arrives "during" the first step; the process goes on
    auto c1 = run_pretrain(nano_pretrain_recipe(c_dir));
    ASSERT_TRUE(c1.ok()) << c1.status().to_string();
    EXPECT_FALSE(c1->finished);
    EXPECT_EQ(c1->steps_run, 1);
    EXPECT_TRUE(fs::exists(c_dir + "/checkpoints/step-000001/trainer_state.json"));
  }
  clear_stop_request();
  auto c2 = run_pretrain(nano_pretrain_recipe(c_dir));
  ASSERT_TRUE(c2.ok()) << c2.status().to_string();
  EXPECT_TRUE(c2->finished);
  EXPECT_EQ(c2->steps_run, 7);
  auto wc = load_all(c_dir + "/final");
  for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wc[name])) << name;
  EXPECT_DOUBLE_EQ(a->eval_loss, c2->eval_loss);
}

// --- the binary, as a user runs it ---------------------------------------------------

TEST(CliIntegrationTest, ModelInitInfoLogits) {
  const testing::ScopedTempDir tmp("r1kit_pretrain_cli_model");
  const std::string bin = testing::r1kit_binary(), dir = tmp.path().string();
  ASSERT_TRUE(fs::exists(bin)) << bin;
  auto [rc, out] =
      testing::run_command(bin + " model init --preset nano --seed 1 --out " + dir + "/m", false);
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = testing::run_command(bin + " model info " + dir + "/m --json", false);
  ASSERT_EQ(rc, 0);
  auto info = nlohmann::json::parse(out);
  EXPECT_GT(info["parameters_total"].get<int64_t>(),
            info["parameters_active_per_token"].get<int64_t>());
  EXPECT_LT(info["kv_cache_bytes_per_token_bf16"].get<int64_t>(),
            info["mha_cache_bytes_per_token_bf16"].get<int64_t>());
  std::tie(rc, out) =
      testing::run_command(bin + " model logits --model " + dir + "/m --ids 5,17,42", false);
  ASSERT_EQ(rc, 0);
  auto logits = nlohmann::json::parse(out)["logits"];
  ASSERT_EQ(logits.size(), 3u);
  EXPECT_EQ(logits[0].size(), 512u);  // nano vocabulary
  // The golden Hugging Face checkpoint loads through the same command.
  std::tie(rc, out) =
      testing::run_command(bin + " model logits --model " + std::string(R1KIT_TESTDATA) +
                               "/golden/qwen2_tiny --ids 0,1,2",
                           false);
  ASSERT_EQ(rc, 0);
  EXPECT_EQ(nlohmann::json::parse(out)["logits"][2].size(), 97u);
  // Bad input: a clear error, exit code 1, no crash.
  EXPECT_EQ(
      testing::run_command(bin + " model logits --model " + dir + "/m --ids 5,x", false).first, 1);
  EXPECT_EQ(
      testing::run_command(bin + " model logits --model " + dir + "/m --ids 99999", false).first,
      1);
  EXPECT_EQ(
      testing::run_command(bin + " model logits --model " + dir + "/missing --ids 1", false).first,
      1);
  EXPECT_EQ(
      testing::run_command(bin + " model init --preset nope --out " + dir + "/x", false).first, 1);
}

TEST(CliIntegrationTest, TokenizerAndPretrainThroughTheBinary) {
  // Training a tokenizer inside the binary that links LibTorch and gRPC-era protobuf
  // is exactly what the SentencePiece shim exists for.
  const testing::ScopedTempDir tmp("r1kit_pretrain_cli_tok");
  const std::string bin = testing::r1kit_binary(), dir = tmp.path().string();
  std::string corpus;
  for (int i = 0; i < 300; ++i)
    corpus += "What is " + std::to_string(i) + "*7+3? <think> ok </think>\n";
  ASSERT_TRUE(write_file_atomic(dir + "/c.txt", corpus).ok());
  auto [rc, out] = testing::run_command(
      bin + " tokenizer train --input " + dir + "/c.txt --out " + dir + "/t.model --vocab-size 300",
      false);
  ASSERT_EQ(rc, 0) << out;
  std::tie(rc, out) = testing::run_command(
      bin + " tokenizer encode --model " + dir + "/t.model --text '<think>12'", false);
  ASSERT_EQ(rc, 0);
  std::tie(rc, out) = testing::run_command(
      bin + " tokenizer decode --model " + dir + "/t.model --ids " + out, false);
  ASSERT_EQ(rc, 0);
  EXPECT_NE(out.find("<think>12"), std::string::npos) << out;

  // A malformed recipe override is an error naming the key.
  std::tie(rc, out) = testing::run_command(
      bin + " pretrain recipes/pretrain-tiny.yaml train.stepz=3 --print-recipe", false);
  EXPECT_NE(rc, 0);
  // The real recipe resolves and prints.
  std::tie(rc, out) =
      testing::run_command("cd " + std::string(R1KIT_TESTDATA) + "/../.. && " + bin +
                               " pretrain recipes/pretrain-tiny.yaml --print-recipe train.steps=3",
                           false);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("steps: 3"), std::string::npos);

  // --verbose (it crashed the binary) is gone: an unknown-flag error, not a segfault.
  std::tie(rc, out) = testing::run_command(
      bin + " tokenizer train --input " + dir + "/c.txt --out " + dir + "/v.model --verbose", true);
  EXPECT_NE(rc, 0);
  EXPECT_LT(rc, 128) << out;
  EXPECT_NE(out.find("--verbose"), std::string::npos) << out;

  // A short run through the binary: the resolved recipe goes to RUN/recipe.yaml with a
  // one-line pointer, and each console line has elapsed time and an ETA and fits 100
  // columns.
  std::tie(rc, out) = testing::run_command(
      "cd " + std::string(R1KIT_TESTDATA) + "/../.. && " + bin +
          " pretrain recipes/pretrain-tiny.yaml model.preset=nano tokenizer.vocab_size=320 "
          "data.n_examples=200 train.steps=4 train.batch_size=2 train.seq_len=32 "
          "train.log_every=2 train.eval_every=0 train.eval_batches=1 checkpoint.dir=" +
          dir + "/run",
      false);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("resolved recipe: " + dir + "/run/recipe.yaml"), std::string::npos) << out;
  EXPECT_EQ(out.find("preset: nano"), std::string::npos) << out;  // not printed
  auto saved = load_config_file<PretrainRecipe>(dir + "/run/recipe.yaml", {});
  ASSERT_TRUE(saved.ok()) << saved.status().to_string();
  EXPECT_EQ(saved->train.steps, 4);
  EXPECT_NE(out.find("step 2/4 | "), std::string::npos) << out;
  EXPECT_NE(out.find(", eta "), std::string::npos) << out;
  std::istringstream lines(out);
  for (std::string l; std::getline(lines, l);)
    if (l.starts_with("step ")) {
      EXPECT_LE(l.size(), 100u) << l;
    }
}

}  // namespace
}  // namespace r1kit::sft
