// GRPO's update in bf16 compute (model.compute: bf16 or auto, train/compute.h): autocast over
// fp32 master weights gives a gradient close to the f32 one, keeps the weights and their
// gradients fp32, and the recomputed pi_old matches the ratio's numerator (ratio 1 at the
// first pass), as the trainer runs it (grpo/trainer.cpp holds the guard over the update).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/torch_compat.h"
#include "grpo/completion_batch.h"
#include "grpo/update_step.h"
#include "policy/model_args.h"
#include "rollout/local_source.h"

namespace r1kit::grpo {
namespace {

TrainBatch bf16_test_batch(policy::TransformerImpl& m, int64_t G) {
  auto src = rollout::LocalRolloutSource::copy_of(m);
  rollout::GenerateRequest req;
  req.prompts = {{{5, 17, 99, 3, 8, 21}, 0}, {{42, 7}, 1}, {{9, 4, 4}, 2}};
  req.group_size = G;
  req.sampling.temperature = 1.0;
  req.sampling.max_new_tokens = 12;
  req.sampling.stop_token_ids = {11, 12, 13};
  req.sampling.seed = 5;
  auto groups = src->generate(req);
  EXPECT_TRUE(groups.ok());
  TrainBatch tb;
  for (const auto& g : *groups)
    for (size_t j = 0; j < g.completions.size(); ++j)
      tb.row_prompts.push_back(req.prompts[g.prompt_index].ids);
  tb.completions = pack_completions(*groups);
  const int64_t B = tb.completions.token_ids.size(0);
  tb.rewards = torch::arange(B, torch::kFloat).remainder(3.0);  // varied within each group
  tb.advantages = compute_advantages(tb.rewards, G, AdvantageOptions{});
  tb.mask = tb.completions.mask;
  return tb;
}

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
  const int64_t G = 4;
  TrainBatch tb = bf16_test_batch(*f32_model, G);
  GrpoRecipe r;
  r.rollout.group_size = G;
  r.rollout.max_new_tokens = 12;
  r.grpo.mu = 2;  // pi_old recomputed before the first pass (grpo/update_step.h)
  r.grpo.micro_batch_size = 5;
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

}  // namespace
}  // namespace r1kit::grpo
