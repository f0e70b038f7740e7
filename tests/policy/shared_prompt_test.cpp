// shared_prompt_logprobs (policy/logprobs.h): each distinct prompt computed once, its
// completions attending its keys/values, equals the per-row completion_logprobs within
// 1e-5 in log-probs and entropies, and every parameter's gradient within 1e-5 of the largest; MoE +
// MLA and GQA, ragged prompts (one of a single token: an empty prefix) and ragged completions.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "policy/logprobs.h"
#include "policy/model.h"

namespace r1kit::policy {
namespace {

struct SharedPromptRun {
  torch::Tensor logprobs, entropy;
  std::vector<torch::Tensor> grads;
};

SharedPromptRun shared_prompt_run(TransformerImpl& m, bool shared,
                                  const std::vector<std::vector<int64_t>>& prompts,
                                  const torch::Tensor& comp, const torch::Tensor& mask) {
  m.zero_grad();
  auto out = shared ? shared_prompt_logprobs(m, prompts, comp, mask, 0.8, true)
                    : completion_logprobs(m, prompts, comp, mask, 0.8, true);
  auto w = torch::linspace(-1, 1, comp.numel()).view(comp.sizes());
  ((out.logprobs * w).sum() + 0.1 * out.entropy.sum()).backward();
  SharedPromptRun r{out.logprobs.detach(), out.entropy.detach(), {}};
  for (const auto& p : m.parameters())
    r.grads.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
  return r;
}

void expect_shared_equals_per_row(const std::string& preset_name,
                                  const std::vector<std::vector<int64_t>>& prompts) {
  ModelArgs a = *preset(preset_name);
  a.aux_loss_alpha = 0;  // the balance loss is bookkept per segment (logprobs.h)
  Transformer m(a);
  m->init_weights(7);
  {
    torch::NoGradGuard ng;
    m->output_weight().mul_(10.0);  // peaked: a misaligned position shows at once
  }
  const int64_t B = static_cast<int64_t>(prompts.size()), T = 7;
  auto gen = at::detail::createCPUGenerator(11);
  auto comp = torch::randint(1, a.vocab_size, {B, T}, gen, torch::kLong);
  auto mask = torch::ones({B, T});
  for (int64_t i = 0; i < B; ++i) mask[i].narrow(0, T - i % 4, i % 4).zero_();  // ragged
  auto per_row = shared_prompt_run(*m, false, prompts, comp, mask);
  auto shared = shared_prompt_run(*m, true, prompts, comp, mask);
  // 1e-5, or a few float32 steps of the largest log-prob: the peaked head gives log-probs
  // past -128, where one step (ulp) is 1.5e-5, and the two paths sum in another order.
  const double lp_tol =
      std::max(1e-5, 4 * 1.1920929e-7 * per_row.logprobs.abs().max().item<double>());
  EXPECT_LT((per_row.logprobs - shared.logprobs).abs().max().item<double>(), lp_tol);
  EXPECT_LT((per_row.entropy - shared.entropy).abs().max().item<double>(), 1e-5);
  double gmax = 0, gdiff = 0;
  for (size_t k = 0; k < per_row.grads.size(); ++k) {
    gmax = std::max(gmax, per_row.grads[k].abs().max().item<double>());
    gdiff = std::max(gdiff, (per_row.grads[k] - shared.grads[k]).abs().max().item<double>());
  }
  EXPECT_GT(gmax, 1e-3);  // a real gradient
  // Within 1e-5 of the largest gradient (float32 rounding of sums in another order).
  EXPECT_LT(gdiff, 1e-5 * std::max(1.0, gmax)) << preset_name << ": largest gradient " << gmax;
  std::printf("%s: largest gradient %.3g, largest difference %.3g\n", preset_name.c_str(), gmax,
              gdiff);
}

TEST(SharedPromptTest, EqualsPerRowLogProbsAndGradients) {
  // Groups of 3 rows; prompts of 6, 2 and 1 tokens (the last: no prefix at all).
  std::vector<std::vector<int64_t>> prompts;
  for (const auto& p : std::vector<std::vector<int64_t>>{{5, 17, 99, 3, 8, 21}, {42, 7}, {9}})
    for (int j = 0; j < 3; ++j) prompts.push_back(p);
  prompts.push_back({42, 7});                             // a prompt repeated out of its group
  expect_shared_equals_per_row("nano", prompts);          // MoE + MLA
  expect_shared_equals_per_row("tiny-dense", prompts);    // GQA, dense
  expect_shared_equals_per_row("nano", {{4}, {6}, {4}});  // one-token prompts only
}

}  // namespace
}  // namespace r1kit::policy
