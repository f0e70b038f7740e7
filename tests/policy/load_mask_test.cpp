// Padding does not count in the MoE expert loads (ForwardOptions::load_mask): the
// loads that the auxiliary-loss-free bias update reads (DeepSeek-V3 §2.1.2) are those of
// the real tokens only, in a plain forward and in the GRPO log-prob path (SFT batches
// carry their padding mask: tests/sft/sft_test.cpp).
#include <gtest/gtest.h>

#include "policy/logprobs.h"
#include "policy/model.h"

namespace r1kit::policy {
namespace {

struct PaddedRows {
  torch::Tensor real;    // [1, T0] the tokens
  torch::Tensor padded;  // [1, T0 + P] the same, then P padding tokens (id 0)
  torch::Tensor mask;    // [1, T0 + P] 1 on the tokens
};

PaddedRows padded_rows(int64_t vocab, int64_t T0, int64_t P) {
  auto gen = at::detail::createCPUGenerator(7);
  PaddedRows r;
  r.real = torch::randint(1, vocab, {1, T0}, gen, torch::kLong);
  r.padded = torch::cat({r.real, torch::zeros({1, P}, torch::kLong)}, 1);
  r.mask = torch::cat({torch::ones({1, T0}), torch::zeros({1, P})}, 1);
  return r;
}

TEST(LoadMaskTest, PaddingLeavesTheExpertLoadsOfTheRealTokens) {
  torch::manual_seed(3);
  Transformer m(*preset("nano"));
  const auto& a = m->args();
  const int64_t T0 = 9, P = 7, K = a.n_activated_experts;
  auto rows = padded_rows(a.vocab_size, T0, P);
  torch::NoGradGuard ng;
  // Causal attention: the real tokens route the same with or without padding after them.
  auto unpadded = m->forward(rows.real).expert_load;
  ForwardOptions fo;
  fo.load_mask = rows.mask;
  auto masked = m->forward(rows.padded, fo).expert_load;
  auto unmasked = m->forward(rows.padded).expert_load;
  ASSERT_GT(unpadded.size(0), 0);
  EXPECT_TRUE(torch::equal(masked, unpadded)) << masked << unpadded;
  for (int64_t l = 0; l < masked.size(0); ++l) {
    EXPECT_EQ(masked[l].sum().item<double>(), T0 * K);
    EXPECT_EQ(unmasked[l].sum().item<double>(), (T0 + P) * K);  // without the mask it counts
  }
}

TEST(LoadMaskTest, TheGrpoLogProbPathCountsPromptAndCompletionTokensOnly) {
  torch::manual_seed(4);
  Transformer m(*preset("nano"));
  const auto& a = m->args();
  const int64_t K = a.n_activated_experts;
  // Two rows of different prompt and completion lengths: the short one is padded.
  std::vector<std::vector<int64_t>> prompts = {{5, 6, 7}, {8, 9, 10, 11, 12}};
  auto completions = torch::tensor({{13, 14, 15, 16}, {17, 18, 0, 0}}, torch::kLong);
  auto mask = torch::tensor({{1.f, 1.f, 1.f, 1.f}, {1.f, 1.f, 0.f, 0.f}});
  m->train();
  auto out = completion_logprobs(*m, prompts, completions, mask, 1.0, false);
  out.logprobs.sum().backward();
  auto load = m->accumulated_expert_load();  // [n_moe_layers, E]
  const double real_tokens = (3 + 4) + (5 + 2);
  ASSERT_GT(load.size(0), 0);
  for (int64_t l = 0; l < load.size(0); ++l)
    EXPECT_EQ(load[l].sum().item<double>(), real_tokens * K) << "layer " << l;
}

}  // namespace
}  // namespace r1kit::policy
