// Padding under ForwardOptions::token_mask: the feed-forward layers skip it, so the real
// tokens' states, log-probs and gradients are those of the unpadded rows; it does not
// count in the MoE expert loads that the auxiliary-loss-free bias update reads
// (DeepSeek-V3 §2.1.2) nor in the sequence-wise balance loss, in a plain forward and in
// the GRPO log-prob path (SFT batches carry their padding mask: tests/sft/sft_test.cpp).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

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

// A nano model in training mode with balance-loss weight `aux_alpha`.
Transformer training_nano(double aux_alpha) {
  ModelArgs a = *preset("nano");
  a.aux_loss_alpha = aux_alpha;
  Transformer m(a);
  m->train();
  return m;
}

TEST(TokenMaskTest, PaddingLeavesTheExpertLoadsOfTheRealTokens) {
  torch::manual_seed(3);
  Transformer m(*preset("nano"));
  const auto& a = m->args();
  const int64_t T0 = 9, P = 7, K = a.n_activated_experts;
  auto rows = padded_rows(a.vocab_size, T0, P);
  torch::NoGradGuard ng;
  // Causal attention: the real tokens route the same with or without padding after them.
  auto unpadded = m->forward(rows.real).expert_load;
  ForwardOptions fo;
  fo.token_mask = rows.mask;
  auto masked = m->forward(rows.padded, fo).expert_load;
  auto unmasked = m->forward(rows.padded).expert_load;
  ASSERT_GT(unpadded.size(0), 0);
  EXPECT_TRUE(torch::equal(masked, unpadded)) << masked << unpadded;
  for (int64_t l = 0; l < masked.size(0); ++l) {
    EXPECT_EQ(masked[l].sum().item<double>(), T0 * K);
    EXPECT_EQ(unmasked[l].sum().item<double>(), (T0 + P) * K);  // without the mask it counts
  }
}

TEST(TokenMaskTest, TheGrpoLogProbPathCountsPromptAndCompletionTokensOnly) {
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

// Rows of different lengths, right-padded, under the token mask: each real position's
// hidden state equals that of its row run alone, and the balance loss is the mean of
// the rows' own (their real tokens only; V3 eq. 17-20 per sequence).
TEST(TokenMaskTest, RealTokensComputeAsTheUnpaddedRowsDo) {
  torch::manual_seed(5);
  Transformer m = training_nano(0.01);
  const ModelArgs& a = m->args();
  const std::vector<int64_t> lens = {9, 4, 12};
  const int64_t B = 3, T = 12;
  auto gen = at::detail::createCPUGenerator(8);
  auto ids = torch::randint(1, a.vocab_size, {B, T}, gen, torch::kLong);
  auto mask = torch::zeros({B, T});
  for (int64_t b = 0; b < B; ++b) {
    mask[b].narrow(0, 0, lens[b]).fill_(1);
    ids[b].narrow(0, lens[b], T - lens[b]).zero_();
  }
  ForwardOptions fo;
  fo.token_mask = mask;
  fo.record_experts = true;
  auto packed = m->forward(ids, fo);
  double aux_rows = 0;
  for (int64_t b = 0; b < B; ++b) {
    SCOPED_TRACE("row " + std::to_string(b));
    ForwardOptions one;
    one.record_experts = true;
    auto alone = m->forward(ids[b].narrow(0, 0, lens[b]).unsqueeze(0), one);
    aux_rows += alone.aux_loss.item<double>() / B;
    auto got = packed.hidden[b].narrow(0, 0, lens[b]);
    EXPECT_LT((got - alone.hidden[0]).abs().max().item<double>(), 1e-5);
    EXPECT_TRUE(torch::equal(packed.experts[b].narrow(0, 0, lens[b]), alone.experts[0]));
    // Padding ran through no expert.
    EXPECT_TRUE((packed.experts[b].narrow(0, lens[b], T - lens[b]) == -1).all().item<bool>());
  }
  EXPECT_GT(aux_rows, 0.0);
  EXPECT_NEAR(packed.aux_loss.item<double>(), aux_rows, 1e-6 * aux_rows);
  // Without the mask the padding counts in the balance loss, which then differs.
  EXPECT_GT(std::abs(m->forward(ids).aux_loss.item<double>() - aux_rows), 1e-3 * aux_rows);
}

// The GRPO log-prob path: log-probs and every parameter's gradient with the padding
// skipped equal those of a forward that computes the padding too (within float rounding).
TEST(TokenMaskTest, SkippingPaddingKeepsLogProbsAndGradients) {
  torch::manual_seed(6);
  // No balance loss: it counts padding in the reference, so it is not compared.
  Transformer m = training_nano(0);
  std::vector<std::vector<int64_t>> prompts = {{5, 6, 7}, {8, 9, 10, 11, 12}, {13, 14}};
  auto completions =
      torch::tensor({{15, 16, 17, 18, 19}, {20, 21, 0, 0, 0}, {22, 0, 0, 0, 0}}, torch::kLong);
  auto mask = torch::tensor(
      {{1.f, 1.f, 1.f, 1.f, 1.f}, {1.f, 1.f, 0.f, 0.f, 0.f}, {1.f, 0.f, 0.f, 0.f, 0.f}});
  auto grads = [&](const torch::Tensor& lp) {
    m->zero_grad();
    (lp * torch::arange(1, 16, torch::kFloat).view({3, 5})).sum().backward();
    std::map<std::string, torch::Tensor> g;
    for (const auto& p : m->named_parameters())
      if (p.value().grad().defined()) g[p.key()] = p.value().grad().clone();
    return g;
  };
  auto skipped = completion_logprobs(*m, prompts, completions, mask, 1.0, false);
  auto g_skipped = grads(skipped.logprobs);
  // The reference: the same rows with a mask of ones for the forward (every position
  // computed), the log-probs masked after.
  auto full = completion_logprobs(*m, prompts, completions, torch::ones({3, 5}), 1.0, false);
  auto full_lp = full.logprobs * mask;
  auto g_full = grads(full_lp);
  EXPECT_LT((skipped.logprobs - full_lp).abs().max().item<double>(), 1e-5);
  EXPECT_EQ((skipped.logprobs != 0).sum().item<int64_t>(), 8);
  ASSERT_EQ(g_skipped.size(), g_full.size());
  for (const auto& [name, g] : g_full) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(g_skipped.count(name));
    EXPECT_LT((g_skipped.at(name) - g).abs().max().item<double>(),
              1e-5 * std::max(1.0, g.abs().max().item<double>()));
  }
}

// A batch of padding only (no real token) runs: no expert load, no balance loss term,
// finite states, and a backward that reaches the attention weights.
TEST(TokenMaskTest, ABatchOfPaddingOnlyRuns) {
  torch::manual_seed(9);
  Transformer m = training_nano(0.01);
  const ModelArgs& a = m->args();
  ForwardOptions fo;
  fo.token_mask = torch::zeros({2, 5});
  auto out = m->forward(torch::randint(1, a.vocab_size, {2, 5}, torch::kLong), fo);
  EXPECT_TRUE(torch::isfinite(out.hidden).all().item<bool>());
  EXPECT_EQ(out.expert_load.sum().item<double>(), 0.0);
  EXPECT_EQ(out.aux_loss.item<double>(), 0.0);
  out.logits.sum().backward();
  EXPECT_TRUE(m->layers[0]->as<DecoderLayerImpl>()->mla->o_proj->weight.grad().defined());
}

// masked_token_logprobs is token_logprobs times the mask, the head run on kept rows only.
TEST(TokenMaskTest, MaskedTokenLogProbsEqualTheFullOnesTimesTheMask) {
  torch::manual_seed(7);
  auto hidden = torch::randn({2, 4, 8});
  auto weight = torch::randn({11, 8});
  auto targets = torch::randint(11, {2, 4}, torch::kLong);
  auto mask = torch::tensor({{1.f, 1.f, 0.f, 0.f}, {1.f, 0.5f, 1.f, 0.f}});
  auto full = token_logprobs(hidden.reshape({8, 8}), weight, targets.reshape({8}), 0.7, true);
  auto got = masked_token_logprobs(hidden, weight, targets, mask, 0.7, true);
  EXPECT_TRUE(torch::allclose(got.logprobs, full.logprobs.view({2, 4}) * mask, 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(got.entropy, full.entropy.view({2, 4}) * mask, 1e-6, 1e-6));
  auto none = masked_token_logprobs(hidden, weight, targets, torch::zeros({2, 4}), 1.0, false);
  EXPECT_TRUE(torch::equal(none.logprobs, torch::zeros({2, 4})));
}

}  // namespace
}  // namespace r1kit::policy
