// End to end: `run_sft` on the `nano` preset (generated traces, tokenizer, packed
// training with gradient accumulation, checkpoints, TensorBoard), and a run stopped
// after 3 steps then resumed ending bit for bit where the uninterrupted run ends; the
// same step split into 1, 2 or 4 micro-batches; the MoE bias update against the load.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/config.h"
#include "core/metric_names.h"
#include "core/safetensors.h"
#include "policy/checkpoint.h"
#include "sft/sft.h"
#include "tests/temp_dir.h"

namespace r1kit::sft {
namespace {
namespace fs = std::filesystem;

// Each test's run directories are in a directory of its own, removed when the test ends.
class SftIntegrationTest : public ::testing::Test {
 protected:
  // A directory path of this test's, not made yet.
  std::string sft_fresh_dir(const std::string& name) const { return tmp_.join(name); }

 private:
  testing::ScopedTempDir tmp_{"r1kit_sft"};
};

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

std::vector<nlohmann::json> metric_rows(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

std::vector<double> losses(const std::string& dir) {
  std::vector<double> out;
  for (const auto& row : metric_rows(dir)) out.push_back(row["loss"].get<double>());
  return out;
}

TEST_F(SftIntegrationTest, TrainsAndResumesExactly) {
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
}

// Gradient accumulation through the trainer: the same 4 rows per step as one micro-batch
// of 4, two of 2 or four of 1 give the same gradient (its logged norm, before clipping),
// loss and weights. The rows hold different numbers of response tokens, so a normaliser
// per micro-batch instead of per step would change the gradient norm. AdamW's eps is 1
// (the update is linear in the gradient): with 1e-8 an embedding row whose gradient is
// rounding noise in one split and 0 in another moves by lr (docs/distributed.md).
TEST_F(SftIntegrationTest, AccumulationSplitsTheStepNotTheGradient) {
  std::vector<std::string> dirs;
  for (const auto& [batch, accum] : {std::pair{4, 1}, {2, 2}, {1, 4}}) {
    dirs.push_back(sft_fresh_dir("accum" + std::to_string(accum)));
    SftRecipe r = nano_sft_recipe(dirs.back());
    r.train.steps = 3;
    r.train.batch_size = batch;
    r.train.grad_accum = accum;
    r.train.eval_every = 0;
    r.data.pack = false;  // a row per sample: the micro-batches differ in response tokens
    r.train.optim.eps = 1;
    auto res = run_sft(r);
    ASSERT_TRUE(res.ok()) << res.status().to_string();
  }
  const auto ref = metric_rows(dirs[0]);
  ASSERT_EQ(ref.size(), 3u);
  auto ca = SafetensorsCheckpoint::open_dir(dirs[0] + "/final");
  ASSERT_TRUE(ca.ok());
  for (size_t i = 1; i < dirs.size(); ++i) {
    const auto rows = metric_rows(dirs[i]);
    ASSERT_EQ(rows.size(), ref.size());
    for (size_t s = 0; s < ref.size(); ++s) {
      EXPECT_NEAR(rows[s]["loss"].get<double>(), ref[s]["loss"].get<double>(), 1e-6) << s;
      const double g = ref[s][metric::kGradNorm].get<double>();
      EXPECT_GT(g, 0);
      EXPECT_NEAR(rows[s][metric::kGradNorm].get<double>(), g, 1e-5 * g)
          << dirs[i] << " step " << s;
    }
    auto cb = SafetensorsCheckpoint::open_dir(dirs[i] + "/final");
    ASSERT_TRUE(cb.ok());
    for (const auto& n : ca->names())
      EXPECT_LT((*ca->load(n) - *cb->load(n)).abs().max().item<double>(), 1e-5) << n;
  }
}

// The aux-loss-free balance during SFT (DeepSeek-V3, section 2.1.2): after one step each
// routed expert's bias moved by gamma against its logged share of the step's tokens.
TEST_F(SftIntegrationTest, ExpertBiasesMoveAgainstTheLoggedLoad) {
  const std::string dir = sft_fresh_dir("bias");
  SftRecipe r = nano_sft_recipe(dir);
  r.train.steps = 1;
  ASSERT_TRUE(run_sft(r).ok());
  const auto m = metric_rows(dir);
  ASSERT_EQ(m.size(), 1u);
  auto model = policy::load_model(dir + "/final");
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const auto& a = (*model)->args();
  ASSERT_GT(a.n_routed_experts, 0);
  ASSERT_GT(a.bias_update_gamma, 0);
  ASSERT_TRUE(m[0].contains(metric::kMoeMaxLoadOverMean));
  EXPECT_GE(m[0][metric::kMoeMaxLoadOverMean].get<double>(), 1.0);
  const int64_t E = a.n_routed_experts;
  int moved = 0;
  for (int64_t l = a.n_dense_layers; l < a.n_layers; ++l) {
    auto bias =
        (*model)->layers[l]->as<policy::DecoderLayerImpl>()->moe->gate->e_score_correction_bias;
    double share = 0;
    for (int64_t e = 0; e < E; ++e) {
      const double frac = m[0][metric::moe_load_key(l - a.n_dense_layers, e)].get<double>();
      share += frac;
      const double gap = 1.0 / E - frac;  // > 0: under-loaded
      const double expect = std::abs(gap) < 1e-7 ? 0.0 : (gap > 0 ? 1 : -1) * a.bias_update_gamma;
      EXPECT_NEAR(bias[e].item<double>(), expect, 1e-9) << "layer " << l << " expert " << e;
      moved += expect != 0;
    }
    EXPECT_NEAR(share, 1.0, 1e-6) << "layer " << l;
  }
  EXPECT_GT(moved, 0);
}

}  // namespace
}  // namespace r1kit::sft
