// Tests of the log-prob helper GRPO trains with (policy/logprobs.h completion_logprobs): for the
// tokens the rollout engine sampled, it gives back the engine's log-probs (the
// convention of rollout/rollout_source.h), whatever the prompt lengths in the batch;
// masked positions are 0; and the gradient of a zero-advantage loss is zero.
#include "grpo/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/torch_compat.h"
#include "grpo/completion_batch.h"
#include "grpo/policy_loss.h"
#include "grpo/update_step.h"
#include "policy/logprobs.h"
#include "policy/model_args.h"
#include "rollout/local_source.h"

namespace r1kit::grpo {
namespace {

policy::Transformer nano(uint64_t seed) {
  policy::Transformer m(*policy::preset("nano"));
  m->init_weights(seed);
  torch::NoGradGuard ng;
  m->output_weight().mul_(20.0);  // peaked distributions: a wrong alignment shows at once
  return m;
}

struct Sampled {
  std::vector<std::vector<int64_t>> row_prompts;
  CompletionBatch batch;
};

Sampled sample(policy::TransformerImpl& m, double temperature,
               const policy::Truncation& trunc = {}) {
  auto src = rollout::LocalRolloutSource::copy_of(m);
  rollout::GenerateRequest req;
  req.prompts = {{{5, 17, 99, 3, 8, 21}, 0}, {{42, 7}, 1}, {{9}, 2}};
  req.group_size = 3;
  req.sampling.temperature = temperature;
  req.sampling.top_k = trunc.top_k;
  req.sampling.top_p = trunc.top_p;
  req.sampling.min_p = trunc.min_p;
  req.sampling.max_new_tokens = 10;
  req.sampling.stop_token_ids = {11, 12, 13};  // some rows end early: ragged completions
  req.sampling.seed = 3;
  auto groups = src->generate(req);
  EXPECT_TRUE(groups.ok());
  Sampled s;
  for (const auto& g : *groups)
    for (size_t j = 0; j < g.completions.size(); ++j)
      s.row_prompts.push_back(req.prompts[g.prompt_index].ids);
  s.batch = pack_completions(*groups);
  return s;
}

TEST(CompletionLogProbsTest, EqualsTheEnginesLogProbs) {
  auto m = nano(1);
  for (double temperature : {1.0, 0.7}) {
    Sampled s = sample(*m, temperature);
    torch::NoGradGuard ng;
    auto out =
        policy::completion_logprobs(*m, s.row_prompts, s.batch.token_ids, s.batch.mask, temperature,
                                    /*with_entropy=*/true);
    EXPECT_TRUE(
        torch::allclose(out.logprobs, s.batch.behaviour_logprobs * s.batch.mask, 1e-4, 1e-4))
        << (out.logprobs - s.batch.behaviour_logprobs).abs().max();
    EXPECT_EQ(out.logprobs.masked_select(s.batch.mask == 0).abs().sum().item<float>(), 0.0f);
    // Entropy of a V-way distribution lies in [0, log V] at every real position.
    auto ent = out.entropy.masked_select(s.batch.mask > 0);
    EXPECT_GE(ent.min().item<float>(), 0.0f);
    EXPECT_LE(ent.max().item<float>(), std::log(static_cast<float>(m->args().vocab_size)) + 1e-4);
  }
}

// With top-k/top-p the engine reports log-probs of the truncated distribution it sampled
// from; the trainer, given the same truncation, computes the same ones, so the engine/trainer
// mismatch (mismatch_kl) is ~0. Without the truncation (the full-vocabulary alternative)
// the ratio pi_trainer / pi_behaviour is off by the kept mass at every token.
TEST(CompletionLogProbsTest, TruncatedSamplingIsTheTrainedDistribution) {
  auto m = nano(4);
  {
    torch::NoGradGuard ng;
    m->output_weight().div_(10.0);  // flatter: top-k/top-p cut real mass
  }
  const policy::Truncation trunc{8, 0.9, 0.0};
  Sampled s = sample(*m, 0.8, trunc);
  torch::NoGradGuard ng;
  auto same = policy::completion_logprobs(*m, s.row_prompts, s.batch.token_ids, s.batch.mask, 0.8,
                                          false, false, trunc);
  EXPECT_TRUE(torch::allclose(same.logprobs, s.batch.behaviour_logprobs * s.batch.mask, 1e-4, 1e-4))
      << (same.logprobs - s.batch.behaviour_logprobs).abs().max();
  auto full =
      policy::completion_logprobs(*m, s.row_prompts, s.batch.token_ids, s.batch.mask, 0.8, false);
  auto stats_of = [&](const torch::Tensor& lp) {
    PolicyLossInputs in;
    in.logprobs = lp;
    in.old_logprobs = lp;
    in.behaviour_logprobs = s.batch.behaviour_logprobs;
    in.advantages = torch::zeros({s.batch.token_ids.size(0)});
    in.mask = s.batch.mask;
    return policy_loss(in, PolicyLossOptions{}, make_normalizer({s.batch.mask})).stats;
  };
  EXPECT_LT(stats_of(same.logprobs).mismatch_kl, 1e-7);
  EXPECT_GT(stats_of(full.logprobs).mismatch_kl, 1e-3);
}

TEST(CompletionLogProbsTest, ZeroAdvantagesGiveZeroGradientAndRatioOne) {
  auto m = nano(2);
  Sampled s = sample(*m, 1.0);
  auto out =
      policy::completion_logprobs(*m, s.row_prompts, s.batch.token_ids, s.batch.mask, 1.0, false);
  PolicyLossInputs in;
  in.logprobs = out.logprobs;
  in.old_logprobs = out.logprobs.detach();
  in.advantages = torch::zeros({s.batch.token_ids.size(0)});
  in.mask = s.batch.mask;
  PolicyLossOptions o;
  auto norm = make_normalizer({s.batch.mask});
  auto pl = policy_loss(in, o, norm);
  pl.loss.backward();
  double g = 0;
  for (const auto& p : m->parameters())
    if (p.grad().defined()) g += p.grad().abs().sum().item<double>();
  EXPECT_EQ(g, 0.0);
  EXPECT_DOUBLE_EQ(pl.stats.ratio_mean, 1.0);
  EXPECT_EQ(pl.stats.clip_ratio, 0.0);
}

// GRPO's update in bf16 compute (model.compute: bf16 or auto, train/compute.h; the trainer
// holds the autocast guard over it): a gradient close to the f32 one, fp32 weights and
// gradients, and a recomputed pi_old equal to the ratio's numerator (ratio 1).
struct Bf16UpdateOut {
  UpdateResult res;
  std::vector<torch::Tensor> grads;
};

Bf16UpdateOut bf16_test_update(policy::TransformerImpl& m, const TrainBatch& tb,
                               const GrpoRecipe& r, bool bf16) {
  torch::optim::SGD sgd(m.parameters(), torch::optim::SGDOptions(0.0));  // gradients only
  train::DataParallel one;
  compat::CpuAutocastGuard ac(bf16);
  Bf16UpdateOut out;
  out.res = update_policy(m, sgd, tb, r, /*step=*/0, one);
  for (const auto& p : m.parameters()) {
    EXPECT_EQ(p.scalar_type(), torch::kFloat);
    if (p.grad().defined()) {
      EXPECT_EQ(p.grad().scalar_type(), torch::kFloat);
      out.grads.push_back(p.grad().reshape({-1}).clone());
    } else {
      out.grads.push_back(torch::zeros({p.numel()}));
    }
  }
  return out;
}

// Cosine and norm ratio of two flattened gradients.
std::pair<double, double> bf16_test_compare(const Bf16UpdateOut& a, const Bf16UpdateOut& b) {
  auto ga = torch::cat(a.grads), gb = torch::cat(b.grads);
  EXPECT_FALSE(torch::equal(ga, gb));  // it did run in bf16
  return {(ga * gb).sum().item<double>() / (ga.norm() * gb.norm()).item<double>(),
          gb.norm().item<double>() / ga.norm().item<double>()};
}

TEST(GrpoBf16Test, UpdateTracksF32WithFp32MasterWeights) {
  policy::ModelArgs args = *policy::preset("nano");
  args.bias_update_gamma = 0;  // routing unchanged between the passes: the ratio stays 1
  policy::Transformer f32_model(args);
  f32_model->init_weights(4);
  policy::Transformer bf16_model(args);
  bf16_model->init_weights(4);
  const int64_t G = 3;
  Sampled s = sample(*f32_model, 1.0);  // 3 prompts x 3 completions
  TrainBatch tb;
  tb.row_prompts = s.row_prompts;
  tb.completions = s.batch;
  tb.rewards = torch::arange(9, torch::kFloat).remainder(2.0);  // varied within each group
  tb.advantages = compute_advantages(tb.rewards, G, AdvantageOptions{});
  tb.mask = tb.completions.mask;
  GrpoRecipe r;
  r.rollout.group_size = G;
  r.rollout.max_new_tokens = 10;
  r.grpo.mu = 2;  // pi_old recomputed before the first pass (grpo/update_step.h)
  r.grpo.micro_batch_size = 4;
  r.grpo.optim.grad_clip = 0;
  r.grpo.loss.entropy_coef = 0.01;  // the entropy's gradient too

  // Group-relative advantages (per-token terms of both signs).
  Bf16UpdateOut a = bf16_test_update(*f32_model, tb, r, false);
  Bf16UpdateOut b = bf16_test_update(*bf16_model, tb, r, true);
  auto [cos, norm_ratio] = bf16_test_compare(a, b);
  std::printf("group advantages: cosine %.5f, norm ratio %.5f\n", cos, norm_ratio);
  EXPECT_GT(cos, 0.999);
  EXPECT_NEAR(norm_ratio, 1.0, 0.01);
  // The loss (an entropy term makes it depend on the compute) and the ratio: pi_old is
  // recomputed in the same compute as the numerator, so the ratio is 1 (lr = 0 here). With
  // autocast's weight cache the no-grad pi_old pass would also cut the gradients.
  EXPECT_NEAR(b.res.stats.loss, a.res.stats.loss, 0.02 * std::abs(a.res.stats.loss) + 1e-4);
  EXPECT_NEAR(b.res.stats.entropy_mean, a.res.stats.entropy_mean, 0.02 * a.res.stats.entropy_mean);
  EXPECT_NEAR(b.res.stats.ratio_min, 1.0, 1e-6);
  EXPECT_NEAR(b.res.stats.ratio_max, 1.0, 1e-6);
  EXPECT_EQ(b.res.updates, 2);

  // Advantage 1 everywhere: the gradient of the summed log-likelihood, as in SFT.
  tb.advantages.advantages = torch::ones_like(tb.advantages.advantages);
  a = bf16_test_update(*f32_model, tb, r, false);
  b = bf16_test_update(*bf16_model, tb, r, true);
  std::tie(cos, norm_ratio) = bf16_test_compare(a, b);
  std::printf("advantage 1: cosine %.5f, norm ratio %.5f\n", cos, norm_ratio);
  EXPECT_GT(cos, 0.999);
  EXPECT_NEAR(norm_ratio, 1.0, 0.01);
}

TEST(GrpoRecipeTest, StrictKeysAndCrossChecks) {
  auto bad = load_config_string<GrpoRecipe>("grpo: {mu: 0}\n");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("grpo.mu"), std::string::npos) << bad.status().message();
  auto unknown = load_config_string<GrpoRecipe>("rollout: {groupsize: 4}\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("groupsize"), std::string::npos);
  // validate() runs as part of loading.
  auto mtp = load_config_string<GrpoRecipe>("grpo: {mtp_coef: 0.1}\nmodel: {n_mtp_layers: 0}\n");
  ASSERT_FALSE(mtp.ok());
  EXPECT_NE(mtp.status().message().find("grpo.mtp_coef"), std::string::npos);
  EXPECT_TRUE(load_config_string<GrpoRecipe>("grpo: {mu: 2}\n").ok());
}

}  // namespace
}  // namespace r1kit::grpo
