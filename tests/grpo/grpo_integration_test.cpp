// End to end: `run_grpo` on the `nano` preset with the in-process rollout source.
// - Learning: with a reward that is the share of even token ids in the completion (0.5
//   in expectation for a random policy, learnable by one bias direction), the mean
//   reward rises clearly over 20 steps.
// - Resume: a run stopped after 2 steps and resumed (KL reference, mu = 2, two
//   mini-batches: every piece of state) ends bit for bit where the uninterrupted one does.
// - The micro-batch size does not change the update.
// - grpo.ref_reset_every copies the policy into the KL reference.
// - The MoE bias update moves every bias against the step's expert load.
// - GSPO, the dual clip, TIS, KL in the reward, dynamic sampling and the overlong mask
//   each change the update.
// - A reward plug-in library listed in the recipe (reward_plugins) is loaded at start,
//   its reward is built by name and logged as a component; a missing library is an
//   error at start naming it.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "core/config.h"
#include "core/safetensors.h"
#include "data/tokenizer.h"
#include "eval/report.h"
#include "grpo/trainer.h"
#include "policy/checkpoint.h"
#include "reward/reward.h"
#include "rollout/local_source.h"
#include "tests/cli_util.h"
#include "tests/temp_dir.h"

namespace r1kit::grpo {
namespace {
namespace fs = std::filesystem;

// Share of even token ids: a dense, easily learnable signal for a random policy.
class EvenTokens final : public reward::Reward {
 public:
  reward::Scores score(std::span<const reward::Sample> group) const override {
    std::vector<double> out;
    for (const auto& s : group) {
      if (s.completion_ids.empty()) {
        out.push_back(0);
        continue;
      }
      double even = 0;
      for (int32_t id : s.completion_ids) even += id % 2 == 0;
      out.push_back(even / static_cast<double>(s.completion_ids.size()));
    }
    return out;
  }
};

// Even-token share for half of the prompts (by a hash of the prompt text) and a constant
// 0.5 for the others: the constant half are zero-advantage groups.
class HalfConstant final : public reward::Reward {
 public:
  reward::Scores score(std::span<const reward::Sample> group) const override {
    std::vector<double> out = EvenTokens().score(group).values;
    for (size_t i = 0; i < group.size(); ++i)
      if (std::hash<std::string>()(group[i].prompt) % 2 == 0) out[i] = 0.5;
    return out;
  }
};

// The same score for every sample: no group has a learning signal.
class ConstantScore final : public reward::Reward {
 public:
  reward::Scores score(std::span<const reward::Sample> group) const override {
    return std::vector<double>(group.size(), 0.25);
  }
};

// Fails to score the first sample of every group (as a remote server that dropped it
// would) and gives the others their even-token share.
class FailsFirstOfGroup final : public reward::Reward {
 public:
  reward::Scores score(std::span<const reward::Sample> group) const override {
    reward::Scores s = EvenTokens().score(group);
    if (!s.values.empty()) {
      s.values[0] = reward::kNoScore;
      s.failures = 1;
    }
    return s;
  }
};

// Trained once per process, into a directory removed at exit.
std::string tokenizer_path() {
  static const testing::ScopedTempDir dir("r1kit_grpo_tok");
  static const std::string path = [] {
    const std::string p = dir.join("tok.model");
    data::TokenizerTrainOptions o;
    for (int i = 0; i < 400; ++i)
      o.lines.push_back("What is " + std::to_string(i % 97 + 2) + "*" + std::to_string(i % 7 + 2) +
                        "+" + std::to_string(i) + "? <think> step </think> <answer> 1 </answer>");
    o.vocab_size = 300;
    EXPECT_TRUE(data::Tokenizer::train(o, p).ok());
    if (!reward::RewardRegistry::global().contains("test_even_tokens"))
      (void)reward::RewardRegistry::global().add(
          "test_even_tokens",
          [](const nlohmann::json&) -> StatusOr<std::unique_ptr<reward::Reward>> {
            return std::unique_ptr<reward::Reward>(std::make_unique<EvenTokens>());
          });
    if (!reward::RewardRegistry::global().contains("test_half_constant"))
      (void)reward::RewardRegistry::global().add(
          "test_half_constant",
          [](const nlohmann::json&) -> StatusOr<std::unique_ptr<reward::Reward>> {
            return std::unique_ptr<reward::Reward>(std::make_unique<HalfConstant>());
          });
    if (!reward::RewardRegistry::global().contains("test_constant"))
      (void)reward::RewardRegistry::global().add(
          "test_constant", [](const nlohmann::json&) -> StatusOr<std::unique_ptr<reward::Reward>> {
            return std::unique_ptr<reward::Reward>(std::make_unique<ConstantScore>());
          });
    if (!reward::RewardRegistry::global().contains("test_fails_first"))
      (void)reward::RewardRegistry::global().add(
          "test_fails_first",
          [](const nlohmann::json&) -> StatusOr<std::unique_ptr<reward::Reward>> {
            return std::unique_ptr<reward::Reward>(std::make_unique<FailsFirstOfGroup>());
          });
    return p;
  }();
  return path;
}

// Each test's run directories are in a directory of its own, removed when the test ends.
class GrpoIntegrationTest : public ::testing::Test {
 protected:
  // A directory path of this test's, not made yet.
  std::string grpo_fresh_dir(const std::string& name) const { return tmp_.join(name); }

 private:
  testing::ScopedTempDir tmp_{"r1kit_grpo"};
};

GrpoRecipe recipe(const std::string& dir, const std::vector<std::string>& overrides) {
  std::vector<std::string> o = {"checkpoint.dir=" + dir, "tokenizer.path=" + tokenizer_path()};
  o.insert(o.end(), overrides.begin(), overrides.end());
  auto r = load_config_string<GrpoRecipe>(R"(
model: {preset: nano}
task: {name: arithmetic, eval_size: 8}
reward: [{name: test_even_tokens, weight: 1.0, role: accuracy}]
rollout: {group_size: 4, prompts_per_step: 4, max_new_tokens: 12, temperature: 1.0}
grpo:
  steps: 20
  seed: 3
  micro_batch_size: 16
  optim: {lr: 1.0e-2, warmup_steps: 0}
checkpoint: {every: 0}
dist: {threads: 1}
)",
                                          o);
  EXPECT_TRUE(r.ok()) << r.status().to_string();
  return *r;
}

std::vector<nlohmann::json> metrics(const std::string& dir) {
  std::vector<nlohmann::json> out;
  std::ifstream in(dir + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

void expect_same_weights(const std::string& a, const std::string& b, double tol) {
  auto ca = SafetensorsCheckpoint::open_dir(a);
  auto cb = SafetensorsCheckpoint::open_dir(b);
  ASSERT_TRUE(ca.ok() && cb.ok());
  for (const auto& n : ca->names()) {
    auto ta = *ca->load(n), tb = *cb->load(n);
    if (tol == 0)
      EXPECT_TRUE(torch::equal(ta, tb)) << n;
    else
      EXPECT_TRUE(torch::allclose(ta, tb, tol, tol)) << n << " " << (ta - tb).abs().max();
  }
}

TEST_F(GrpoIntegrationTest, MeanRewardRises) {
  const std::string dir = grpo_fresh_dir("learn");
  auto res = run_grpo(recipe(dir, {}));
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  ASSERT_EQ(res->rewards.size(), 20u);
  const double first = (res->rewards[0] + res->rewards[1] + res->rewards[2]) / 3;
  const double last = (res->rewards[17] + res->rewards[18] + res->rewards[19]) / 3;
  EXPECT_GT(last, first + 0.15) << "first " << first << " last " << last;
  auto m = metrics(dir);
  ASSERT_EQ(m.size(), 20u);
  for (const char* k :
       {"reward", "reward_std", "rewards/test_even_tokens/mean", "frac_reward_zero_std",
        "completions/mean_length", "completions/clipped_ratio", "entropy", "clip_ratio/region_mean",
        "grad_norm", "lr", "timing/generate", "timing/reward", "timing/train", "timing/sync",
        "policy_version"})
    EXPECT_TRUE(m.back().contains(k)) << k;
  EXPECT_TRUE(fs::exists(dir + "/final/model.safetensors"));
}

// With top-k/top-p sampling the trainer's log-probs are of the same truncated distribution
// as the engine's: the logged engine/trainer mismatch stays ~0 every step.
TEST_F(GrpoIntegrationTest, TruncatedSamplingLogsNoMismatch) {
  const std::string dir = grpo_fresh_dir("trunc");
  ASSERT_TRUE(
      run_grpo(recipe(dir, {"grpo.steps=2", "rollout.top_k=20", "rollout.top_p=0.9"})).ok());
  auto m = metrics(dir);
  ASSERT_EQ(m.size(), 2u);
  for (const auto& row : m) {
    ASSERT_TRUE(row.contains("mismatch_kl")) << row.dump();
    EXPECT_LT(row["mismatch_kl"].get<double>(), 1e-6) << row.dump();
  }
}

// MoE routing replay on the nano (MoE) policy: with grpo.routing_replay=rollout the
// trainer's forwards use exactly the engine's experts (moe/route_mismatch 0 every step);
// without, the disagreement rate is logged.
TEST_F(GrpoIntegrationTest, RoutingReplayAgreesAndMismatchIsLogged) {
  for (const std::string mode : {"rollout", "none"}) {
    const std::string dir = grpo_fresh_dir("replay_" + mode);
    // Without replay the mismatch is measured on the per-row forward (shared prompts
    // record no routing; replay turns them off by itself).
    ASSERT_TRUE(run_grpo(recipe(dir, {"grpo.steps=2", "grpo.routing_replay=" + mode,
                                      "grpo.shared_prompt=false"}))
                    .ok());
    auto m = metrics(dir);
    ASSERT_EQ(m.size(), 2u);
    for (const auto& row : m) {
      ASSERT_TRUE(row.contains("moe/route_mismatch")) << row.dump();
      const double rate = row["moe/route_mismatch"].get<double>();
      if (mode == "rollout")
        EXPECT_EQ(rate, 0.0) << row.dump();
      else
        EXPECT_TRUE(rate >= 0.0 && rate <= 1.0) << row.dump();
    }
  }
}

// The samples a reward failed to score reach reward/remote_failures, summed over the run.
// Every group all-equal and skipped: the update statistics are null (not 0) in
// metrics.jsonl; grpo.log_samples writes every completion of every 2nd step.
TEST_F(GrpoIntegrationTest, NoSignalStepsLogNullAndSamplesAreLogged) {
  const std::string dir = grpo_fresh_dir("nosignal");
  auto res = run_grpo(recipe(dir, {"grpo.steps=3", "grpo.log_samples=2",
                                   "reward=[{name: test_constant, role: accuracy}]"}));
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  const auto m = metrics(dir);
  ASSERT_EQ(m.size(), 3u);
  for (const auto& step : m) {
    EXPECT_EQ(step["frac_reward_zero_std"], 1.0);
    for (const char* k : {"grad_norm", "entropy", "loss"}) EXPECT_TRUE(step[k].is_null()) << k;
    EXPECT_EQ(step["reward"], 0.25);
  }
  std::ifstream in(dir + "/samples.jsonl");
  std::vector<nlohmann::json> samples;
  for (std::string line; std::getline(in, line);) samples.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(samples.size(), 16u);  // step 2: 4 prompts x 4 completions
  for (const auto& s : samples) {
    EXPECT_EQ(s["step"], 2);
    EXPECT_EQ(s["reward"], 0.25);
    EXPECT_TRUE(s["completion"].is_string());
    EXPECT_NE(s["prompt"].get<std::string>().find("What is"), std::string::npos) << s;
  }
}

TEST_F(GrpoIntegrationTest, RewardFailuresAreCountedFromTheScores) {
  const std::string dir = grpo_fresh_dir("reward_failures");
  auto res = run_grpo(
      recipe(dir, {"grpo.steps=2",
                   "reward=[{name: test_fails_first}, {name: test_even_tokens, role: accuracy}]"}));
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  auto m = metrics(dir);
  ASSERT_EQ(m.size(), 2u);
  // One failed sample in each of the 4 groups of a step, cumulative.
  EXPECT_EQ(m[0].value("reward/remote_failures", -1.0), 4.0);
  EXPECT_EQ(m[1].value("reward/remote_failures", -1.0), 8.0);
}

TEST_F(GrpoIntegrationTest, ResumesExactly) {
  const std::vector<std::string> o = {"grpo.steps=4",           "grpo.mu=2",
                                      "grpo.mini_batches=2",    "grpo.micro_batch_size=5",
                                      "grpo.loss.kl_coef=0.05", "grpo.ref_reset_every=3",
                                      "grpo.loss.eps_high=0.28"};
  const std::string a_dir = grpo_fresh_dir("a"), b_dir = grpo_fresh_dir("b");
  auto a = run_grpo(recipe(a_dir, o));
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  auto ob = o;
  ob.push_back("grpo.stop_after=2");
  auto b1 = run_grpo(recipe(b_dir, ob));
  ASSERT_TRUE(b1.ok()) << b1.status().to_string();
  EXPECT_FALSE(b1->finished);
  EXPECT_TRUE(fs::exists(b_dir + "/checkpoints/step-000002/reference.safetensors"));
  auto b2 = run_grpo(recipe(b_dir, o));
  ASSERT_TRUE(b2.ok()) << b2.status().to_string();
  EXPECT_EQ(b2->steps_run, 2);
  auto ma = metrics(a_dir), mb = metrics(b_dir);
  ASSERT_EQ(ma.size(), 4u);
  ASSERT_EQ(mb.size(), 4u);
  for (size_t i = 0; i < 4; ++i)
    for (const char* k : {"reward", "loss", "kl", "grad_norm", "completions/mean_length"})
      EXPECT_EQ(ma[i][k], mb[i][k]) << "step " << i + 1 << " " << k;
  expect_same_weights(a_dir + "/final", b_dir + "/final", 0);
  // A changed learning rate is refused, naming the key.
  auto oc = o;
  oc.push_back("grpo.steps=6");  // allowed: a longer run
  oc.push_back("grpo.optim.lr=0.5");
  auto changed = run_grpo(recipe(b_dir, oc));
  ASSERT_FALSE(changed.ok());
  EXPECT_NE(changed.status().message().find("grpo.optim.lr"), std::string::npos)
      << changed.status().message();
}

// grpo.ref_reset_every copies the policy into the KL reference: the reference saved with
// each checkpoint changes exactly at the reset steps, and the KL of the step after a
// reset is zero (the policy it starts from is the reference). Without resets the
// reference stays the initial policy.
std::unique_ptr<SafetensorsFile> reference_at(const std::string& dir, int step) {
  auto f = SafetensorsFile::open(
      fmt::format("{}/checkpoints/step-{:06d}/reference.safetensors", dir, step));
  EXPECT_TRUE(f.ok()) << f.status().to_string();
  return f.ok() ? std::move(*f) : nullptr;
}

bool same_tensors(const SafetensorsFile& a, const SafetensorsFile& b) {
  for (const auto& t : a.tensors())
    if (!torch::equal(*a.load(t.name), *b.load(t.name))) return false;
  return !a.tensors().empty();
}

TEST_F(GrpoIntegrationTest, ReferenceResetCopiesThePolicy) {
  const std::string dir = grpo_fresh_dir("ref_reset"), fixed = grpo_fresh_dir("ref_fixed");
  const std::vector<std::string> o = {"grpo.steps=3", "grpo.loss.kl_coef=0.05",
                                      "checkpoint.every=1"};
  auto with_reset = o;
  with_reset.push_back("grpo.ref_reset_every=2");
  ASSERT_TRUE(run_grpo(recipe(dir, with_reset)).ok());
  ASSERT_TRUE(run_grpo(recipe(fixed, o)).ok());
  auto r1 = reference_at(dir, 1), r2 = reference_at(dir, 2), r3 = reference_at(dir, 3);
  auto f1 = reference_at(fixed, 1), f3 = reference_at(fixed, 3);
  ASSERT_TRUE(r1 && r2 && r3 && f1 && f3);
  EXPECT_TRUE(same_tensors(*r1, *f1));   // before the first reset: the initial policy
  EXPECT_FALSE(same_tensors(*r1, *r2));  // reset after step 2: the policy of step 2
  EXPECT_TRUE(same_tensors(*r2, *r3));   // no reset after step 3
  EXPECT_TRUE(same_tensors(*f1, *f3));   // never reset
  const auto m = metrics(dir), mf = metrics(fixed);
  ASSERT_EQ(m.size(), 3u);
  ASSERT_EQ(mf.size(), 3u);
  EXPECT_GT(m[1]["kl"].get<double>(), 1e-6);
  EXPECT_NEAR(m[2]["kl"].get<double>(), 0.0, 1e-9);  // step 3 starts from the reference
  EXPECT_GT(mf[2]["kl"].get<double>(), 1e-6);
}

// The auxiliary-loss-free bias update (DeepSeek-V3 §2.1.2) runs in GRPO: after one
// optimizer step each expert's bias is +gamma when the step's logged load was under
// the mean, -gamma when over (the biases start at 0).
TEST_F(GrpoIntegrationTest, ExpertBiasesMoveAgainstTheLoggedLoad) {
  const std::string dir = grpo_fresh_dir("bias");
  ASSERT_TRUE(run_grpo(recipe(dir, {"grpo.steps=1"})).ok());
  const auto m = metrics(dir);
  ASSERT_EQ(m.size(), 1u);
  auto model = policy::load_model(dir + "/final");
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  const auto& a = (*model)->args();
  ASSERT_GT(a.bias_update_gamma, 0);
  const int64_t E = a.n_routed_experts;
  int moved = 0;
  for (int64_t l = a.n_dense_layers; l < a.n_layers; ++l) {
    auto bias =
        (*model)->layers[l]->as<policy::DecoderLayerImpl>()->moe->gate->e_score_correction_bias;
    for (int64_t e = 0; e < E; ++e) {
      const double frac = m[0][eval::expert_load_key(l - a.n_dense_layers, e)].get<double>();
      const double gap = 1.0 / E - frac;  // > 0: under-loaded
      const double expect = std::abs(gap) < 1e-7 ? 0.0 : (gap > 0 ? 1 : -1) * a.bias_update_gamma;
      EXPECT_NEAR(bias[e].item<double>(), expect, 1e-9) << "layer " << l << " expert " << e;
      moved += expect != 0;
    }
  }
  EXPECT_GT(moved, 0);
}

// Each loss variant reaches the update through the trainer: two 2-step runs that differ
// only in the variant's keys end at different weights (a key the trainer dropped on the
// way would leave them equal). The shared keys make the variant matter: mu > 1 moves
// the ratios off 1 for GSPO and the dual clip, the overlapped rollout is one step
// stale for TIS, half of the groups are constant for dynamic sampling, and 12 new
// tokens cut most completions for the overlong mask.
struct VariantCase {
  const char* name;
  std::vector<std::string> shared, variant;
};

bool weights_differ(const std::string& a, const std::string& b) {
  auto ca = SafetensorsCheckpoint::open_dir(a);
  auto cb = SafetensorsCheckpoint::open_dir(b);
  EXPECT_TRUE(ca.ok() && cb.ok());
  if (!ca.ok() || !cb.ok()) return false;
  for (const auto& n : ca->names())
    if (!torch::equal(*ca->load(n), *cb->load(n))) return true;
  return false;
}

TEST_F(GrpoIntegrationTest, EveryLossVariantReachesTheUpdate) {
  const std::vector<VariantCase> cases = {
      {"gspo",
       {"grpo.mu=2", "grpo.loss.loss_aggregation=seq-mean-token-mean"},
       {"grpo.loss.ratio_level=sequence"}},
      {"dual_clip",
       {"grpo.mu=3", "grpo.loss.eps_low=0.01", "grpo.loss.eps_high=0.01"},
       {"grpo.loss.dual_clip_c=1.02"}},
      {"tis", {"rollout.overlap=true", "grpo.loss.tis=none"}, {"grpo.loss.tis=token"}},
      {"kl_in_reward",  // against no KL at all: placed in the reward, it is nowhere else
       {},
       {"grpo.loss.kl_coef=0.5", "grpo.loss.kl_estimator=k1", "grpo.loss.kl_placement=reward"}},
      {"dynamic_sampling",
       {"reward=[{name: test_half_constant, role: accuracy}]"},
       {"grpo.loss.dynamic_sampling=true"}},
      {"overlong_mask", {}, {"grpo.loss.mask_truncated_completions=true"}},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string a_dir = grpo_fresh_dir(std::string("var_a_") + c.name),
                      b_dir = grpo_fresh_dir(std::string("var_b_") + c.name);
    auto base = c.shared;
    base.push_back("grpo.steps=2");
    auto with = base;
    with.insert(with.end(), c.variant.begin(), c.variant.end());
    auto a = run_grpo(recipe(a_dir, base));
    ASSERT_TRUE(a.ok()) << a.status().to_string();
    auto b = run_grpo(recipe(b_dir, with));
    ASSERT_TRUE(b.ok()) << b.status().to_string();
    EXPECT_TRUE(weights_differ(a_dir + "/final", b_dir + "/final"));
    fs::remove_all(a_dir);
    fs::remove_all(b_dir);
  }
}

TEST_F(GrpoIntegrationTest, MicroBatchSizeDoesNotChangeTheUpdate) {
  for (const char* agg : {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"}) {
    const std::string a_dir = grpo_fresh_dir("mb_a"), b_dir = grpo_fresh_dir("mb_b");
    const std::string mode = std::string("grpo.loss.loss_aggregation=") + agg;
    // AdamW's first step is lr * g / (|g| + eps): with eps = 1 the update is linear in
    // the gradient, so equal gradients show as equal weights (with the default eps,
    // float noise in near-zero gradient entries is amplified to lr-sized differences).
    ASSERT_TRUE(run_grpo(recipe(a_dir, {"grpo.steps=1", mode, "grpo.micro_batch_size=16",
                                        "grpo.optim.eps=1", "grpo.optim.grad_clip=0"}))
                    .ok());
    ASSERT_TRUE(run_grpo(recipe(b_dir, {"grpo.steps=1", mode, "grpo.micro_batch_size=3",
                                        "grpo.optim.eps=1", "grpo.optim.grad_clip=0"}))
                    .ok());
    const auto ma = metrics(a_dir), mb = metrics(b_dir);
    EXPECT_NEAR(ma[0]["grad_norm"].get<double>(), mb[0]["grad_norm"].get<double>(),
                1e-5 * ma[0]["grad_norm"].get<double>())
        << agg;
    EXPECT_NEAR(ma[0]["loss"].get<double>(), mb[0]["loss"].get<double>(), 1e-6) << agg;
    expect_same_weights(a_dir + "/final", b_dir + "/final", 1e-7);
    fs::remove_all(a_dir);
    fs::remove_all(b_dir);
  }
}

TEST_F(GrpoIntegrationTest, SkippingZeroAdvantageRowsKeepsTheUpdate) {
  // Completions of all-equal groups have advantage 0: skipping their forward/backward
  // must leave the update as it was (no balance loss or bias update here, which would
  // see fewer tokens; AdamW eps = 1 makes the first step linear in the gradient).
  const std::vector<std::string> o = {
      "reward=[{name: test_half_constant, weight: 1.0, role: accuracy}]",
      "rollout.prompts_per_step=8",
      "grpo.steps=1",
      "grpo.micro_batch_size=5",
      "grpo.optim.eps=1",
      "grpo.optim.grad_clip=0",
      "model.aux_loss_alpha=0",
      "model.bias_update_gamma=0"};
  const std::string a_dir = grpo_fresh_dir("skip_a"), b_dir = grpo_fresh_dir("skip_b");
  auto oa = o, ob = o;
  oa.push_back("grpo.skip_zero_advantage=true");
  ob.push_back("grpo.skip_zero_advantage=false");
  ASSERT_TRUE(run_grpo(recipe(a_dir, oa)).ok());
  ASSERT_TRUE(run_grpo(recipe(b_dir, ob)).ok());
  const auto ma = metrics(a_dir), mb = metrics(b_dir);
  ASSERT_EQ(ma.size(), 1u);
  ASSERT_EQ(mb.size(), 1u);
  EXPECT_GT(ma[0]["frac_reward_zero_std"].get<double>(), 0.0);
  // Every completion of a zero-std group is skipped (and any other whose reward is its
  // group's mean).
  EXPECT_GE(ma[0]["train/skipped_frac"].get<double>(), ma[0]["frac_reward_zero_std"].get<double>());
  EXPECT_EQ(mb[0]["train/skipped_frac"].get<double>(), 0.0);
  EXPECT_EQ(ma[0]["reward"], mb[0]["reward"]);  // the same rollout
  EXPECT_NEAR(ma[0]["grad_norm"].get<double>(), mb[0]["grad_norm"].get<double>(),
              1e-5 * mb[0]["grad_norm"].get<double>());
  expect_same_weights(a_dir + "/final", b_dir + "/final", 1e-7);
}

TEST_F(GrpoIntegrationTest, OverlapIsOneStepStaleAndStillLearns) {
  const std::string dir = grpo_fresh_dir("overlap");
  auto res = run_grpo(recipe(dir, {"grpo.steps=12", "rollout.overlap=true"}));
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  auto m = metrics(dir);
  ASSERT_EQ(m.size(), 12u);
  EXPECT_EQ(m[0]["rollout/staleness"], 0.0);  // the first rollout comes before any update
  for (size_t i = 1; i < m.size(); ++i) EXPECT_EQ(m[i]["rollout/staleness"], 1.0) << i;
  const double first = (res->rewards[0] + res->rewards[1]) / 2;
  const double last = (res->rewards[10] + res->rewards[11]) / 2;
  EXPECT_GT(last, first) << "first " << first << " last " << last;
}

StatusOr<GrpoRecipe> grpo_plugin_recipe(const std::string& dir, const std::string& plugins) {
  return load_config_string<GrpoRecipe>(R"(
model: {preset: nano}
task: {name: arithmetic, eval_size: 8}
reward_plugins: )" + plugins + R"(
reward:
  - {name: test_even_tokens, weight: 1.0, role: accuracy}
  - {name: keyword_bonus, weight: 0.5, keyword: "e", bonus: 2.0}
rollout: {group_size: 4, prompts_per_step: 4, max_new_tokens: 12, temperature: 1.0}
grpo: {steps: 2, seed: 3, micro_batch_size: 16, optim: {lr: 1.0e-2, warmup_steps: 0}}
checkpoint: {every: 0}
dist: {threads: 1}
)",
                                        {"checkpoint.dir=" + dir,
                                         "tokenizer.path=" + tokenizer_path()});
}

// Wraps the in-process source and records the task index of every prompt it is asked for.
class RecordingSource final : public rollout::RolloutSource {
 public:
  RecordingSource(std::unique_ptr<rollout::RolloutSource> inner, std::vector<int64_t>* seen)
      : inner_(std::move(inner)), seen_(seen) {}
  StatusOr<std::vector<rollout::Group>> generate(
      const rollout::GenerateRequest& req,
      const std::function<void(const rollout::Group&)>& on_group) override {
    for (const auto& p : req.prompts) seen_->push_back(p.index);
    return inner_->generate(req, on_group);
  }
  Status update_weights(const rollout::NamedTensors& w, int64_t version) override {
    return inner_->update_weights(w, version);
  }
  int64_t policy_version() const override { return inner_->policy_version(); }

 private:
  std::unique_ptr<rollout::RolloutSource> inner_;
  std::vector<int64_t>* seen_;
};

// grpo.first_problem: the prompts are the training stream's problems from that index on,
// in order (r1kit run sets it past the problems SFT trained on).
TEST_F(GrpoIntegrationTest, FirstProblemStartsTheTrainingStream) {
  const std::string dir = grpo_fresh_dir("first_problem");
  std::vector<int64_t> seen;
  RolloutFactory factory = [&seen](const GrpoRecipe&, policy::TransformerImpl& policy)
      -> StatusOr<std::unique_ptr<rollout::RolloutSource>> {
    return std::unique_ptr<rollout::RolloutSource>(
        std::make_unique<RecordingSource>(rollout::LocalRolloutSource::copy_of(policy), &seen));
  };
  auto res = run_grpo(recipe(dir, {"grpo.steps=2", "grpo.first_problem=1000"}), factory);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  EXPECT_EQ(seen, (std::vector<int64_t>{1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007}));
}

TEST_F(GrpoIntegrationTest, RewardPluginFromTheRecipe) {
  const fs::path plugin = fs::path(testing::example_reward_plugin());
  ASSERT_TRUE(fs::exists(plugin)) << plugin;
  const std::string dir = grpo_fresh_dir("plugin");
  auto r = grpo_plugin_recipe(dir, "[" + plugin.string() + "]");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  EXPECT_EQ(r->reward_plugins, std::vector<std::string>{plugin.string()});
  auto res = run_grpo(*r);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  auto m = metrics(dir);
  ASSERT_EQ(m.size(), 2u);
  for (const auto& step : m) {
    ASSERT_TRUE(step.contains("rewards/keyword_bonus/mean")) << step.dump();
    ASSERT_TRUE(step.contains("rewards/test_even_tokens/mean")) << step.dump();
    const double kw = step["rewards/keyword_bonus/mean"],
                 even = step["rewards/test_even_tokens/mean"];
    EXPECT_GE(kw, 0.0);
    EXPECT_LE(kw, 2.0);  // the plug-in's `bonus` argument reached it
    // The plug-in's component enters the total with its weight.
    EXPECT_NEAR(step["reward"].get<double>(), even + 0.5 * kw, 1e-5) << step.dump();
  }

  // Again in the same process, by a path relative to the current directory: the library
  // is already loaded, which is harmless.
  const std::string dir2 = grpo_fresh_dir("plugin_rel");
  {
    auto rel = grpo_plugin_recipe(dir2, "[" + plugin.filename().string() + "]");
    ASSERT_TRUE(rel.ok()) << rel.status().to_string();
    rel->grpo.steps = 1;
    const fs::path old_cwd = fs::current_path();
    fs::current_path(plugin.parent_path());
    auto res2 = run_grpo(*rel);
    fs::current_path(old_cwd);
    ASSERT_TRUE(res2.ok()) << res2.status().to_string();
    EXPECT_TRUE(metrics(dir2).at(0).contains("rewards/keyword_bonus/mean"));
  }

  // A missing library: an error at start naming it; nothing is written.
  const std::string dir3 = grpo_fresh_dir("plugin_missing");
  auto bad = grpo_plugin_recipe(dir3, "[no/such/libmissing_reward.so]");
  ASSERT_TRUE(bad.ok()) << bad.status().to_string();
  auto failed = run_grpo(*bad);
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.status().message().find("no/such/libmissing_reward.so"), std::string::npos)
      << failed.status().to_string();
  EXPECT_FALSE(fs::exists(dir3 + "/metrics.jsonl"));
}

namespace r1kit::grpo {
namespace {

// A source whose worker is broken: in every request, the completions of the prompt with
// the smallest index get NaN log-probs, those of the next one an id outside the
// vocabulary, those of the third one token more than was asked.
class BrokenWorkerSource final : public rollout::RolloutSource {
 public:
  explicit BrokenWorkerSource(std::unique_ptr<rollout::RolloutSource> inner)
      : inner_(std::move(inner)) {}
  StatusOr<std::vector<rollout::Group>> generate(
      const rollout::GenerateRequest& req,
      const std::function<void(const rollout::Group&)>&) override {
    ASSIGN_OR_RETURN(auto groups, inner_->generate(req));
    for (size_t i = 0; i < groups.size() && i < 3; ++i)
      for (auto& c : groups[i].completions) {
        if (c.token_ids.empty()) {
          c.token_ids.push_back(1);
          c.logprobs.push_back(-1.0f);
        }
        if (i == 0) c.logprobs.back() = NAN;
        if (i == 1) c.token_ids.back() = int64_t{1} << 40;
        while (i == 2 && static_cast<int64_t>(c.token_ids.size()) <= req.sampling.max_new_tokens) {
          c.token_ids.push_back(1);
          c.logprobs.push_back(-1.0f);
        }
      }
    return groups;
  }
  Status update_weights(const rollout::NamedTensors& w, int64_t version) override {
    return inner_->update_weights(w, version);
  }
  int64_t policy_version() const override { return inner_->policy_version(); }

 private:
  std::unique_ptr<rollout::RolloutSource> inner_;
};

// Completions a worker broke never reach the loss: their groups are rejected (counted),
// the run trains on the rest and its weights stay finite.
TEST_F(GrpoIntegrationTest, BrokenCompletionsAreRejectedAndNeverTrainedOn) {
  const std::string dir = grpo_fresh_dir("broken_worker");
  RolloutFactory factory =
      [](const GrpoRecipe&,
         policy::TransformerImpl& policy) -> StatusOr<std::unique_ptr<rollout::RolloutSource>> {
    return std::unique_ptr<rollout::RolloutSource>(
        std::make_unique<BrokenWorkerSource>(rollout::LocalRolloutSource::copy_of(policy)));
  };
  auto res = run_grpo(recipe(dir, {"grpo.steps=2"}), factory);
  ASSERT_TRUE(res.ok()) << res.status().to_string();
  const auto m = metrics(dir);
  ASSERT_EQ(m.size(), 2u);
  for (const auto& step : m) {
    EXPECT_EQ(step.value("rollout/rejected_groups", -1.0), 3.0) << step;
    EXPECT_FALSE(step.contains("train/skipped_steps")) << step;
  }
  EXPECT_TRUE(fs::exists(dir + "/final/model.safetensors"));
  auto ckpt = SafetensorsCheckpoint::open_dir(dir + "/final");
  ASSERT_TRUE(ckpt.ok());
  for (const auto& n : ckpt->names())
    EXPECT_TRUE(torch::isfinite(*ckpt->load(n)).all().item<bool>()) << n;
}

}  // namespace
}  // namespace r1kit::grpo

// rollout.exact (docs/grpo-training.md, "Exact mode"): the engine's log-probs are bitwise
// the trainer's every step (rollout/logprob_max_abs_diff exactly 0), on the in-batch path
// (mu 1), with pi_old recomputed (mu 2, two mini-batches) and in bf16 compute; off, the
// metric shows the small kernel gap.
TEST_F(GrpoIntegrationTest, ExactModeLogsZeroLogprobGap) {
  const std::vector<std::vector<std::string>> runs = {
      {"rollout.exact=true"},
      {"rollout.exact=true", "grpo.mu=2", "grpo.mini_batches=2", "grpo.shared_prompt=false"},
      {"rollout.exact=true", "model.compute=bf16", "rollout.top_k=20"},
      {"rollout.exact=false"}};
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string dir = grpo_fresh_dir("exact" + std::to_string(i));
    std::vector<std::string> o = {"grpo.steps=3"};
    o.insert(o.end(), runs[i].begin(), runs[i].end());
    auto res = run_grpo(recipe(dir, o));
    ASSERT_TRUE(res.ok()) << res.status().to_string();
    const auto m = metrics(dir);
    ASSERT_EQ(m.size(), 3u);
    for (const auto& row : m) {
      ASSERT_TRUE(row.contains("rollout/logprob_max_abs_diff")) << row.dump();
      const double gap = row["rollout/logprob_max_abs_diff"].get<double>();
      std::printf("%s: rollout/logprob_max_abs_diff %.3g\n", runs[i].back().c_str(), gap);
      if (i + 1 < runs.size()) {
        EXPECT_EQ(gap, 0.0) << runs[i].back() << " " << row.dump();
      } else {
        EXPECT_GT(gap, 0.0) << row.dump();
        EXPECT_LT(gap, 1e-3) << row.dump();
      }
    }
  }
}

}  // namespace
}  // namespace r1kit::grpo
