// Tests of policy/exact_forward.h:
// - it computes the same model: its log-probs agree with policy::completion_logprobs within
//   1e-4 in fp32 (MLA + MoE with YaRN and group-limited routing, dense MLA with a q LoRA,
//   GQA with biases and q/k norms), and within bf16 rounding under bf16 autocast;
// - batch invariance: a sequence's hidden states are bitwise the same computed all at once
//   (prefill), one token per call (decode), in another slot of a batch with other
//   sequences, and on 1 or 3 threads;
// - the per-row log-prob and sampler follow policy/truncation.h's rules;
// - the straight-through combination has the exact value and the normal gradient.
#include "policy/exact_forward.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>

#include "core/torch_compat.h"
#include "policy/logprobs.h"
#include "policy/model.h"
#include "policy/truncation.h"

namespace r1kit::policy {
namespace {

ModelArgs args_of(const std::string& kind) {
  ModelArgs a = *preset("nano");
  if (kind == "moe-yarn") {  // MLA + MoE, YaRN, group-limited routing, softmax scale mscale
    a.n_routed_experts = 8;
    a.n_activated_experts = 3;
    a.n_expert_groups = 4;
    a.n_limited_groups = 2;
    a.rope_factor = 4.0;
    a.rope_original_max_pos = 16;
    a.mscale = 0.707;
    a.mscale_all_dim = 0.707;
  } else if (kind == "mla-dense-qlora") {
    a.n_routed_experts = 0;
    a.q_lora_rank = 24;
  } else if (kind == "moe-softmax") {  // V2-style gate: softmax scores, no bias, no norm
    a.score_func = ScoreFunc::kSoftmax;
    a.expert_bias = false;
    a.norm_topk_prob = false;
    a.route_scale = 1.5;
  } else if (kind == "gqa") {
    a = *preset("tiny-dense", 128);
    a.n_layers = 2;
    a.dim = 48;
    a.n_heads = 4;
    a.n_kv_heads = 2;
    a.head_dim = 12;
    a.inter_dim = 64;
    a.qkv_bias = true;
    a.qk_norm = true;
  }
  return a;
}

Transformer make(const std::string& kind, uint64_t seed = 1) {
  Transformer m(args_of(kind));
  m->init_weights(seed);
  torch::NoGradGuard ng;
  auto g = at::detail::createCPUGenerator(seed + 100);
  for (auto& p : m->named_parameters())  // biases and norms away from 0 and 1
    if (p.key().find("bias") != std::string::npos || p.key().find("norm") != std::string::npos)
      p.value().add_(torch::randn(p.value().sizes(), g) * 0.1);
  for (auto& b : m->named_buffers()) b.value().copy_(torch::randn(b.value().sizes(), g) * 0.05);
  m->eval();
  return m;
}

std::vector<int64_t> ids_of(int64_t V, int64_t n, uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  auto t = torch::randint(0, V, {n}, g, torch::kLong);
  return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + n};
}

bool same_bits(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() &&
         std::memcmp(a.contiguous().data_ptr(), b.contiguous().data_ptr(), a.nbytes()) == 0;
}

ExecutionContext threads(int n) {
  ExecutionContext e;
  e.decode_threads = n;
  return e;
}

class ExactForwardKinds : public ::testing::TestWithParam<std::string> {};

TEST_P(ExactForwardKinds, AgreesWithTheModelWithin1e4) {
  Transformer m = make(GetParam());
  const int64_t V = m->args().vocab_size, B = 3, T = 7;
  std::vector<std::vector<int64_t>> prompts = {ids_of(V, 5, 1), ids_of(V, 11, 2), ids_of(V, 5, 1)};
  auto comp = torch::randint(0, V, {B, T}, at::detail::createCPUGenerator(9), torch::kLong);
  auto mask = torch::ones({B, T});
  mask[2].narrow(0, 4, 3).zero_();  // a shorter completion
  torch::NoGradGuard ng;
  for (const Truncation trunc : {Truncation{}, Truncation{20, 0.9, 0.0}}) {
    auto ref = completion_logprobs(*m, prompts, comp, mask, 0.7, false, false, trunc).logprobs;
    ExactModel em(*m, ExactPrecision::kF32);
    auto got = exact_completion_logprobs(em, prompts, comp, mask, 0.7, trunc);
    EXPECT_LT((got - ref).abs().max().item<double>(), 1e-4) << GetParam();
    EXPECT_EQ((got * (1 - mask)).abs().sum().item<double>(), 0.0);
    // bf16: within bf16's rounding of the autocast forward (not the same rounding points).
    compat::CpuAutocastGuard ac(true);
    auto ref16 = completion_logprobs(*m, prompts, comp, mask, 0.7, false, false, trunc).logprobs;
    ExactModel em16(*m, ExactPrecision::kBF16);
    auto got16 = exact_completion_logprobs(em16, prompts, comp, mask, 0.7, trunc);
    EXPECT_LT((got16 - ref16.to(torch::kFloat)).abs().max().item<double>(), 0.1) << GetParam();
    EXPECT_FALSE(same_bits(got16, got)) << "bf16 rounding changed nothing";
  }
}

// Prefill, decode one token per call, another slot among other sequences, 1 or 3 threads:
// the same bits.
TEST_P(ExactForwardKinds, BatchInvariantBitwise) {
  Transformer m = make(GetParam());
  for (ExactPrecision prec : {ExactPrecision::kF32, ExactPrecision::kBF16}) {
    ExactModel em(*m, prec);
    const int64_t V = m->args().vocab_size, n = 13;
    const auto seq = ids_of(V, n, 4);
    ExactCache c1(m->args(), 1, 32);
    std::vector<ExactRow> rows;
    for (int64_t t = 0; t < n; ++t) rows.push_back({0, t, seq[t]});
    torch::Tensor ex_full, ex_step;
    const auto full = em.forward(c1, rows, threads(1), &ex_full);

    ExactCache c2(m->args(), 1, 32);
    std::vector<torch::Tensor> steps, step_ex;
    for (int64_t t = 0; t < n; ++t) {
      torch::Tensor e;
      steps.push_back(em.forward(c2, {rows[t]}, threads(2), &e));
      if (e.defined()) step_ex.push_back(e);
    }
    EXPECT_TRUE(same_bits(full, torch::cat(steps))) << GetParam();
    if (ex_full.defined()) {
      EXPECT_TRUE(torch::equal(ex_full, torch::cat(step_ex)));
    }

    // Slot 3 of 5, interleaved with four other sequences, on 3 threads.
    ExactCache c3(m->args(), 5, 32);
    std::vector<ExactRow> mixed;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t s = 0; s < 5; ++s)
        mixed.push_back({s, t, s == 3 ? seq[t] : ids_of(V, n, 40 + s)[t]});
    const auto h = em.forward(c3, mixed, threads(3));
    auto mine = h.view({n, 5, -1}).select(1, 3);
    EXPECT_TRUE(same_bits(full, mine)) << GetParam();
    // And the logits of a row do not depend on the others either.
    auto z_all = em.logits(h, 0.7, threads(3));
    auto z_one = em.logits(full.narrow(0, n - 1, 1), 0.7, threads(1));
    EXPECT_TRUE(same_bits(z_all.view({n, 5, -1})[n - 1][3].unsqueeze(0), z_one));
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ExactForwardKinds,
                         ::testing::Values("nano", "moe-yarn", "mla-dense-qlora", "moe-softmax",
                                           "gqa"));

TEST(ExactForwardTest, TokenLogProbFollowsTheTruncationRules) {
  auto g = at::detail::createCPUGenerator(3);
  auto z = torch::randn({4, 50}, g) * 3;
  const int64_t V = 50;
  for (const Truncation t : {Truncation{}, Truncation{5, 1.0, 0.0}, Truncation{0, 0.8, 0.0},
                             Truncation{10, 0.7, 0.05}}) {
    auto tgt = torch::randint(0, V, {4}, g, torch::kLong);
    auto keep = kept_tokens(z, t, tgt);
    auto ref = processed_logprobs(z, keep, tgt);
    for (int64_t r = 0; r < 4; ++r) {
      auto row = z[r].contiguous();
      const float lp = exact_token_logprob(row.data_ptr<float>(), V, tgt[r].item<int64_t>(), t);
      EXPECT_NEAR(lp, ref[r].item<float>(), 1e-5) << t.top_k << " " << t.top_p;
      // The sampler only draws kept tokens, and u sweeps them in id order.
      int64_t prev = -1;
      for (double u : {0.0, 0.2, 0.5, 0.8, 0.999999}) {
        const int64_t tok = exact_sample(row.data_ptr<float>(), V, t, u, false);
        if (keep.defined()) {
          auto kept_no_target = kept_tokens(z[r].unsqueeze(0), t);
          EXPECT_TRUE(kept_no_target[0][tok].item<bool>()) << tok;
        }
        EXPECT_GE(tok, prev);
        prev = tok;
      }
    }
  }
  auto row = z[0].contiguous();
  EXPECT_EQ(exact_sample(row.data_ptr<float>(), V, {}, 0.5, true), z[0].argmax().item<int64_t>());
}

// lp_exact.detach() + (lp - lp.detach()): the exact value, bit for bit, and the gradient of
// the normal forward's log-probs, bit for bit.
TEST(ExactForwardTest, StraightThroughKeepsValueAndGradient) {
  Transformer m = make("nano");
  m->train();
  const int64_t V = m->args().vocab_size;
  std::vector<std::vector<int64_t>> prompts = {ids_of(V, 6, 1), ids_of(V, 3, 2)};
  auto comp = torch::randint(0, V, {2, 5}, at::detail::createCPUGenerator(8), torch::kLong);
  auto mask = torch::ones({2, 5});
  auto normal = completion_logprobs(*m, prompts, comp, mask, 1.0, false);
  normal.logprobs.sum().backward();
  std::vector<torch::Tensor> g_ref;
  for (auto& p : m->parameters()) {
    g_ref.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    if (p.grad().defined()) p.mutable_grad().zero_();
  }
  auto st = completion_logprobs(*m, prompts, comp, mask, 1.0, false);
  make_logprobs_exact(st, *m, prompts, comp, mask, 1.0, {});
  torch::Tensor exact;
  {
    torch::NoGradGuard ng;
    ExactModel em(*m, ExactPrecision::kF32);
    exact = exact_completion_logprobs(em, prompts, comp, mask, 1.0, {});
  }
  EXPECT_TRUE(same_bits(st.logprobs.detach(), exact));
  EXPECT_FALSE(same_bits(normal.logprobs.detach(), exact)) << "nothing to correct";
  st.logprobs.sum().backward();
  size_t i = 0;
  for (auto& p : m->parameters()) {
    if (g_ref[i].defined()) {
      EXPECT_TRUE(same_bits(p.grad(), g_ref[i]));
    }
    ++i;
  }
}

TEST(ExactForwardTest, ChecksItsInputs) {
  Transformer m = make("nano");
  ExactModel em(*m, ExactPrecision::kF32);
  ExactCache c(m->args(), 2, 4);
  EXPECT_THROW(em.forward(c, {{2, 0, 1}}, {}), c10::Error);   // slot
  EXPECT_THROW(em.forward(c, {{0, 4, 1}}, {}), c10::Error);   // position
  EXPECT_THROW(em.forward(c, {{0, 0, -1}}, {}), c10::Error);  // token
  ModelArgs odd = m->args();
  odd.qk_rope_head_dim = 7;
  EXPECT_NE(exact_unsupported(odd).find("qk_rope_head_dim"), std::string::npos);
  EXPECT_EQ(exact_unsupported(m->args()), "");
}

}  // namespace
}  // namespace r1kit::policy
