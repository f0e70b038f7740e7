// Tests of the policy modules: MLA paths and caches, routing, balancing, gradients,
// MTP, dtypes. Golden logits against an independent implementation are in
// golden_test.cpp.
#include "policy/model.h"

#include <gtest/gtest.h>

#include <set>

#include "core/torch_compat.h"
#include "policy/logprobs.h"

namespace r1kit::policy {
namespace {

ModelArgs nano() {
  return *preset("nano");
}

ModelArgs nano_q_lora_yarn() {
  ModelArgs a = nano();
  a.q_lora_rank = 24;
  a.rope_factor = 4.0;
  a.rope_original_max_pos = 16;
  a.mscale = a.mscale_all_dim = 1.0;
  a.n_routed_experts = 8;
  a.n_expert_groups = 4;
  a.n_limited_groups = 2;
  a.n_activated_experts = 2;
  return a;
}

ModelArgs dense_gqa() {
  return *preset("tiny-dense", /*vocab_size=*/256);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

torch::Tensor random_ids(const ModelArgs& a, int64_t B, int64_t T, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randint(a.vocab_size, {B, T}, gen, torch::kLong);
}

TEST(ModelArgsTest, PresetsValidateAndHaveTheAdvertisedSizes) {
  for (const auto& name : preset_names()) {
    auto a = preset(name);
    ASSERT_TRUE(a.ok()) << name << ": " << a.status().to_string();
  }
  EXPECT_LT(count_params(*preset("nano")).total, 1'000'000);
  const auto tiny = count_params(*preset("tiny"));
  EXPECT_GT(tiny.total, 3'000'000);
  EXPECT_LT(tiny.total, 8'000'000);
  const auto small = count_params(*preset("small"));
  EXPECT_GT(small.total, 80'000'000);
  EXPECT_LT(small.total, 130'000'000);
  EXPECT_GT(small.active, 14'000'000);
  EXPECT_LT(small.active, 28'000'000);
  EXPECT_FALSE(preset("huge").ok());
}

TEST(ModelArgsTest, CountMatchesTheModule) {
  for (const auto& name : {"nano", "tiny-dense"}) {
    ModelArgs a = *preset(name);
    a.n_mtp_layers = 1;
    Transformer m(a);
    int64_t n = 0;
    for (const auto& p : m->parameters()) n += p.numel();
    EXPECT_EQ(count_params(a).total, n) << name;
  }
}

TEST(ModelArgsTest, ValidateNamesTheKey) {
  ModelArgs a = nano();
  a.n_activated_experts = 9;
  Status s = a.validate();
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("n_activated_experts"), std::string::npos) << s.message();
  a = nano();
  a.attention = AttentionKind::kGQA;
  a.n_heads = 6;
  a.n_kv_heads = 4;
  EXPECT_NE(a.validate().message().find("n_kv_heads"), std::string::npos);
}

TEST(ModelArgsTest, HfConfigRoundTrip) {
  for (const auto& name : preset_names()) {
    ModelArgs a = *preset(name);
    auto back = args_from_hf_config(args_to_hf_config(a));
    ASSERT_TRUE(back.ok()) << back.status().to_string();
    EXPECT_EQ(count_params(*back).total, count_params(a).total) << name;
    EXPECT_EQ(back->attention, a.attention);
    EXPECT_EQ(back->rope_interleave, a.rope_interleave);
    EXPECT_EQ(back->expert_bias, a.expert_bias);
    EXPECT_DOUBLE_EQ(back->softmax_scale(), a.softmax_scale());
  }
}

TEST(ModelArgsTest, SoftmaxScaleMatchesReferenceValues) {
  // The HF DeepSeek rule d_qk^-0.5 * m(mscale_all_dim)^2 (docs/model.md, "MLA"), worked
  // out by hand: d_qk = 192, factor 40: V3 (mscale_all_dim 1.0) 0.135234, V2-Lite (0.707)
  // 0.114721.
  ModelArgs a;
  a.qk_nope_head_dim = 128;
  a.qk_rope_head_dim = 64;
  a.rope_factor = 40;
  a.mscale_all_dim = 1.0;
  EXPECT_NEAR(a.softmax_scale(), 0.135234, 1e-6);
  a.mscale_all_dim = 0.707;
  EXPECT_NEAR(a.softmax_scale(), 0.114721, 1e-6);
}

TEST(ModelArgsTest, KvCacheBytesMatchReferenceTable) {
  // (d_c + d_r) * layers * 2 bytes (DeepSeek-V2 §2.1.4), from the released configs: V3 MLA
  // cache 70,272 B/token; V2-Lite 31,104 B; Qwen2.5-0.5B (GQA) 12,288 B.
  ModelArgs v3;
  v3.n_layers = 61;
  v3.n_heads = 128;
  v3.kv_lora_rank = 512;
  v3.qk_rope_head_dim = 64;
  v3.qk_nope_head_dim = 128;
  v3.v_head_dim = 128;
  EXPECT_EQ(v3.kv_cache_bytes_per_token(), 70272);
  EXPECT_EQ(v3.mha_cache_bytes_per_token(), 4997120);  // naive k 192 + v 128 per head
  ModelArgs q;
  q.attention = AttentionKind::kGQA;
  q.n_layers = 24;
  q.n_kv_heads = 2;
  q.head_dim = 64;
  EXPECT_EQ(q.kv_cache_bytes_per_token(), 12288);
}

TEST(RopeTest, YarnCorrectionRangeMatchesReference) {
  // DeepSeek's YaRN settings (docs/model.md, "RoPE and YaRN"), worked out by hand: dim 64,
  // theta 1e4, L0 4096, factor 40 -> frequencies 0-9 kept, 23-31 divided by 40, 10-22
  // blended.
  ModelArgs a;
  a.rope_factor = 40;
  a.rope_original_max_pos = 4096;
  Rotary r(a, 64);
  auto f = r.inv_freq();
  for (int i = 0; i < 32; ++i) {
    const double base = 1.0 / std::pow(10000.0, 2.0 * i / 64);
    const double got = f[i].item<double>();
    if (i <= 10) {
      EXPECT_NEAR(got, base, base * 1e-5) << i;  // the ramp starts at low = 10
    }
    if (i >= 23) {
      EXPECT_NEAR(got, base / 40, base / 40 * 1e-5) << i;
    }
    if (i > 10 && i < 23) {
      EXPECT_LT(got, base);
      EXPECT_GT(got, base / 40);
    }
  }
}

TEST(RopeTest, InterleavedAndHalfSplitAreRowPermutationsOfEachOther) {
  ModelArgs a;
  a.rope_interleave = true;
  Rotary inter(a, 8);
  a.rope_interleave = false;
  Rotary half(a, 8);
  auto x = torch::randn({1, 5, 2, 8});
  auto pos = torch::arange(5).unsqueeze(0);
  // Permutation taking interleaved layout (x0,x1,x2,...) to halves (even dims, odd dims).
  auto perm = torch::tensor({0, 2, 4, 6, 1, 3, 5, 7}, torch::kLong);
  auto a1 = inter.apply(x, pos).index_select(-1, perm);
  auto a2 = half.apply(x.index_select(-1, perm), pos);
  EXPECT_LT(max_diff(a1, a2), 1e-6);
  // Position 0 is the identity; rotation preserves norms.
  auto r0 = inter.apply(x.narrow(1, 0, 1), torch::zeros({1, 1}, torch::kLong));
  EXPECT_LT(max_diff(r0, x.narrow(1, 0, 1)), 1e-6);
  EXPECT_LT(max_diff(inter.apply(x, pos).norm(2, -1), x.norm(2, -1)), 1e-5);
}

TEST(MLATest, AbsorbedEqualsNaive) {
  torch::manual_seed(0);
  ModelArgs a = nano_q_lora_yarn();
  MLA mla(a);
  for (auto& p : mla->parameters()) p.data().normal_(0, 0.2);
  auto x = torch::randn({2, 7, a.dim});
  auto pos = torch::arange(7).unsqueeze(0).expand({2, 7});
  auto mask = causal_mask(7, 0);
  auto naive = mla(x, pos, mask, nullptr, 0, 0, AttnImpl::kNaive);
  auto absorb = mla(x, pos, mask, nullptr, 0, 0, AttnImpl::kAbsorb);
  EXPECT_LT(max_diff(naive, absorb), 1e-5);
  EXPECT_GT(naive.abs().max().item<double>(), 1e-2);  // not trivially zero
}

// From two blocks of 128 query rows the naive path attends block by block, each block to
// the keys up to the last one its mask lets it see. Against the absorbed path (all keys at
// once): the output and every gradient, under a causal mask (2 blocks and a short one),
// a causal mask with keys held back from the last rows, and a padded batch's mask (rows of
// [B, 1, T, S]) that lets no query see past the first 150 keys.
TEST(MLATest, BlockWiseNaiveEqualsAbsorbedWithGradients) {
  torch::manual_seed(2);
  ModelArgs a = nano_q_lora_yarn();
  MLA mla(a);
  for (auto& p : mla->parameters()) p.data().normal_(0, 0.2);
  const int64_t B = 2, T = 300;
  auto pos = torch::arange(T).unsqueeze(0).expand({B, T});
  auto causal = causal_mask(T, 0);
  auto held_back = causal.clone();
  held_back.narrow(-2, 256, 44).narrow(-1, 200, 100).fill_(false);
  auto padded = causal.expand({B, 1, T, T}).clone();
  padded.narrow(-1, 150, 150).fill_(false);
  padded.narrow(-2, 150, 150).narrow(-1, 0, 1).fill_(true);  // pad rows see key 0
  for (const auto& mask : {causal, held_back, padded}) {
    auto x = torch::randn({B, T, a.dim});
    auto g = torch::randn({B, T, a.dim});
    std::vector<torch::Tensor> outs, grads;
    for (AttnImpl impl : {AttnImpl::kNaive, AttnImpl::kAbsorb}) {
      auto xl = x.clone().requires_grad_();
      for (auto& p : mla->parameters()) p.mutable_grad() = torch::Tensor();
      auto y = mla(xl, pos, mask, nullptr, 0, 0, impl);
      y.backward(g);
      outs.push_back(y.detach());
      grads.push_back(xl.grad());
      for (auto& p : mla->parameters()) grads.push_back(p.grad());
    }
    EXPECT_LT(max_diff(outs[0], outs[1]), 1e-5);
    EXPECT_GT(outs[0].abs().max().item<double>(), 1e-2);
    const size_t n = grads.size() / 2;
    for (size_t i = 0; i < n; ++i)
      EXPECT_LT(max_diff(grads[i], grads[n + i]),
                1e-4 * (1 + grads[n + i].abs().max().item<double>()))
          << "gradient " << i;
  }
}

class CacheTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CacheTest, TokenByTokenDecodeEqualsFullForward) {
  torch::manual_seed(1);
  ModelArgs a = GetParam() == "mla" ? nano_q_lora_yarn() : dense_gqa();
  Transformer m(a);
  m->init_weights(3);
  m->eval();
  torch::NoGradGuard ng;
  const int64_t B = 2, T = 9, P = 4;
  auto ids = random_ids(a, B, T, 5);
  auto full = m->forward(ids).logits;  // [B, T, V]

  // Prefill P tokens, then decode one token at a time (absorbed path for MLA).
  KVCache cache = KVCache::allocate(a, B, 16, torch::kFloat);
  ForwardOptions o;
  o.cache = &cache;
  auto pre = m->forward(ids.narrow(1, 0, P), o).logits;
  EXPECT_LT(max_diff(pre, full.narrow(1, 0, P)), 1e-5);
  for (int64_t t = P; t < T; ++t) {
    o.start_pos = t;
    auto step = m->forward(ids.narrow(1, t, 1), o).logits;
    EXPECT_LT(max_diff(step, full.narrow(1, t, 1)), 1e-5) << "position " << t;
  }
  // The cache is the compressed one for MLA: d_c + d_r per token and layer.
  if (GetParam() == "mla") {
    EXPECT_EQ(cache.bytes(), B * 16 * a.kv_cache_bytes_per_token(/*bytes_per_elem=*/4));
  }
}

INSTANTIATE_TEST_SUITE_P(Attention, CacheTest, ::testing::Values("mla", "gqa"));

TEST(MLATest, NaiveDecodeThroughCacheAlsoMatches) {
  torch::manual_seed(2);
  ModelArgs a = nano();
  Transformer m(a);
  m->init_weights(4);
  m->eval();
  torch::NoGradGuard ng;
  auto ids = random_ids(a, 1, 6, 7);
  auto full = m->forward(ids).logits;
  KVCache cache = KVCache::allocate(a, 1, 8, torch::kFloat);
  ForwardOptions o;
  o.cache = &cache;
  o.attn_impl = AttnImpl::kNaive;
  for (int64_t t = 0; t < 6; ++t) {
    o.start_pos = t;
    auto step = m->forward(ids.narrow(1, t, 1), o).logits;
    EXPECT_LT(max_diff(step, full.narrow(1, t, 1)), 1e-5);
  }
}

// ---------------------------------------------------------------------------------
// Routing

TEST(GateTest, ExactlyKDistinctExpertsNoneFromAMaskedGroup) {
  torch::manual_seed(3);
  ModelArgs a = nano_q_lora_yarn();  // 8 experts, 4 groups of 2, keep 2 groups, top-2
  a.n_activated_experts = 3;
  a.route_scale = 2.5;
  Gate gate(a);
  gate->weight.data().normal_(0, 1.0);
  gate->e_score_correction_bias.normal_(0, 0.3);
  auto x = torch::randn({64, a.dim});
  Routing r = gate(x);
  ASSERT_EQ(r.indices.sizes(), (std::vector<int64_t>{64, 3}));
  auto s = (r.scores + gate->e_score_correction_bias).view({64, 4, 2});
  auto group_score = std::get<0>(s.topk(2, -1)).sum(-1);  // [64, 4]
  for (int64_t n = 0; n < 64; ++n) {
    std::set<int64_t> chosen;
    for (int64_t k = 0; k < 3; ++k) chosen.insert(r.indices[n][k].item<int64_t>());
    EXPECT_EQ(chosen.size(), 3u);
    // The two best groups by the sum of their top-2 biased scores.
    auto top_groups = std::get<1>(group_score[n].topk(2));
    std::set<int64_t> kept = {top_groups[0].item<int64_t>(), top_groups[1].item<int64_t>()};
    for (int64_t e : chosen) EXPECT_TRUE(kept.count(e / 2)) << "expert " << e << " token " << n;
    // Weights: unbiased scores of the chosen experts, normalised, times 2.5.
    auto w = r.scores[n].index_select(0, r.indices[n]);
    auto expect = w / w.sum() * 2.5;
    EXPECT_LT(max_diff(r.weights[n], expect), 1e-6);
    EXPECT_NEAR(r.weights[n].sum().item<double>(), 2.5, 1e-5);
  }
}

TEST(GateTest, BiasChangesSelectionButNotTheWeightFormula) {
  torch::manual_seed(4);
  ModelArgs a = nano();  // 4 experts, 1 group, top-2, sigmoid, bias on
  Gate gate(a);
  gate->weight.data().normal_(0, 1.0);
  auto x = torch::randn({32, a.dim});
  Routing before = gate(x);
  // A large bias on expert 3 forces it into every token's top-2.
  gate->e_score_correction_bias.copy_(torch::tensor({0.0f, 0.0f, 0.0f, 10.0f}));
  Routing after = gate(x);
  EXPECT_TRUE((after.indices == 3).any(1).all().item<bool>());
  EXPECT_FALSE(torch::equal(before.indices, after.indices));
  EXPECT_TRUE(torch::allclose(before.scores, after.scores));  // affinities unchanged
  for (int64_t n = 0; n < 32; ++n) {
    auto w = after.scores[n].index_select(0, after.indices[n]);
    EXPECT_LT(max_diff(after.weights[n], w / w.sum() * a.route_scale), 1e-6);
  }
}

TEST(GateTest, SoftmaxWithoutNormalisationScalesByFactor) {
  ModelArgs a = nano();
  a.score_func = ScoreFunc::kSoftmax;
  a.expert_bias = false;
  a.norm_topk_prob = false;
  a.route_scale = 16.0;
  Gate gate(a);
  gate->weight.data().normal_(0, 1.0);
  auto x = torch::randn({8, a.dim});
  Routing r = gate(x);
  EXPECT_LT(max_diff(r.scores.sum(-1), torch::ones({8})), 1e-5);
  auto expect = r.scores.gather(1, r.indices) * 16.0;
  EXPECT_LT(max_diff(r.weights, expect), 1e-5);
  // Greedy top-k: the chosen are the two largest softmax scores.
  EXPECT_TRUE(torch::equal(std::get<1>(r.scores.topk(2)), r.indices));
}

TEST(MoETest, MatchesAPerTokenReference) {
  torch::manual_seed(5);
  ModelArgs a = nano_q_lora_yarn();
  MoE moe(a);
  for (auto& p : moe->parameters()) p.data().normal_(0, 0.3);
  auto x = torch::randn({2, 5, a.dim});
  torch::Tensor load, aux;
  auto y = moe(x, &load, &aux);
  // Reference: loop over tokens and their experts.
  auto xf = x.view({10, a.dim});
  Routing r = moe->gate(xf);
  auto expect = moe->shared_experts(xf);
  for (int64_t n = 0; n < 10; ++n)
    for (int64_t k = 0; k < a.n_activated_experts; ++k) {
      const int64_t e = r.indices[n][k].item<int64_t>();
      expect[n] += r.weights[n][k] * moe->experts[e]->as<MLPImpl>()->forward(xf[n].unsqueeze(0))[0];
    }
  EXPECT_LT(max_diff(y.view({10, a.dim}), expect), 1e-5);
  EXPECT_EQ(load.sum().item<double>(), 10 * a.n_activated_experts);
}

TEST(MoETest, BiasUpdatesReduceImbalanceOnSkewedInput) {
  torch::manual_seed(6);
  ModelArgs a = nano_q_lora_yarn();
  a.n_expert_groups = 1;
  a.n_limited_groups = 1;
  MoE moe(a);
  moe->train();
  moe->gate->weight.data().normal_(0, 0.05);
  // Skewed input: every token shares a common direction, so a few experts win.
  auto x = torch::randn({1, 256, a.dim}) + torch::randn({1, 1, a.dim}) * 1.5;
  auto imbalance = [&]() {
    torch::NoGradGuard ng;
    auto r = moe->gate(x.view({256, a.dim}));
    auto load = torch::bincount(r.indices.view(-1), {}, a.n_routed_experts).to(torch::kFloat);
    return (load.max() / load.mean()).item<double>();
  };
  const double start = imbalance();
  ASSERT_GT(start, 1.8);  // the input really is skewed
  for (int step = 0; step < 300; ++step) {
    torch::Tensor load, aux;
    moe(x, &load, &aux);  // accumulates the load (training mode, grad on)
    moe->update_bias(0.005);
  }
  const double end = imbalance();
  EXPECT_LT(end, start * 0.6) << "start " << start << " end " << end;
  EXPECT_LT(end, 1.6);
}

TEST(MoETest, SequenceAuxLossMatchesHandComputation) {
  ModelArgs a = nano();  // E = 4, K = 2
  a.aux_loss_alpha = 0.5;
  MoE moe(a);
  moe->train();
  moe->gate->weight.data().normal_(0, 1.0);
  auto x = torch::randn({2, 3, a.dim});
  torch::Tensor load, aux;
  moe(x, &load, &aux);
  Routing r = moe->gate(x.view({6, a.dim}));
  double expect = 0;
  for (int b = 0; b < 2; ++b) {
    for (int e = 0; e < 4; ++e) {
      double count = 0, p = 0;
      for (int t = 0; t < 3; ++t) {
        const int n = b * 3 + t;
        for (int k = 0; k < 2; ++k) count += r.indices[n][k].item<int64_t>() == e;
        p += (r.scores[n][e] / r.scores[n].sum()).item<double>() / 3.0;
      }
      expect += (4.0 / (2 * 3)) * count * p / 2.0;  // f_i P_i, mean over B = 2
    }
  }
  EXPECT_NEAR(aux.item<double>(), 0.5 * expect, 1e-5);
  // The loss has a gradient into the router.
  aux.backward();
  EXPECT_GT(moe->gate->weight.grad().abs().sum().item<double>(), 0);
}

// ---------------------------------------------------------------------------------
// Whole model

TEST(TransformerTest, GradientsReachEveryParameter) {
  for (ModelArgs a : {nano_q_lora_yarn(), dense_gqa()}) {
    a.n_mtp_layers = a.attention == AttentionKind::kMLA ? 1 : 0;
    a.aux_loss_alpha = 0.01;
    Transformer m(a);
    m->init_weights(9);
    m->train();
    auto ids = random_ids(a, 2, 12, 11);
    auto out = m->forward(ids);
    auto logits = out.logits.narrow(1, 0, 11).reshape({-1, a.vocab_size});
    auto loss = torch::nn::functional::cross_entropy(logits, ids.narrow(1, 1, 11).reshape({-1})) +
                out.aux_loss + m->mtp_loss(ids, out.last_hidden);
    loss.backward();
    for (const auto& p : m->named_parameters()) {
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      // With 2x12 tokens and top-2 of 8, an expert may legitimately get no token.
      if (p.key().find("experts.") != std::string::npos &&
          p.key().find("shared_experts") == std::string::npos)
        continue;
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
}

TEST(TransformerTest, OverfitsOneBatch) {
  torch::manual_seed(7);
  ModelArgs a = nano();
  a.vocab_size = 64;
  Transformer m(a);
  m->init_weights(1);
  m->train();
  auto ids = random_ids(a, 2, 16, 3);
  torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(3e-3));
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    auto out = m->forward(ids);
    auto loss = torch::nn::functional::cross_entropy(
        out.logits.narrow(1, 0, 15).reshape({-1, a.vocab_size}),
        ids.narrow(1, 1, 15).reshape({-1}));
    opt.zero_grad();
    loss.backward();
    opt.step();
    m->update_expert_bias(a.bias_update_gamma);
    if (step == 0) first = loss.item<double>();
    last = loss.item<double>();
  }
  EXPECT_GT(first, 3.5);  // ~ln(64) at init
  EXPECT_LT(last, 0.3) << "first " << first;
}

TEST(TransformerTest, MtpLogitsShapesAndLoss) {
  ModelArgs a = nano();
  a.n_mtp_layers = 2;
  Transformer m(a);
  auto ids = random_ids(a, 2, 8, 1);
  auto out = m->forward(ids);
  auto lg = m->mtp_logits(ids, out.last_hidden);
  ASSERT_EQ(lg.size(), 2u);
  EXPECT_EQ(lg[0].sizes(), (std::vector<int64_t>{2, 7, a.vocab_size}));
  EXPECT_EQ(lg[1].sizes(), (std::vector<int64_t>{2, 6, a.vocab_size}));
  // At init the loss is ~lambda * ln(V) (each depth's CE ~ ln V, averaged over D).
  const double loss = m->mtp_loss(ids, out.last_hidden).item<double>();
  EXPECT_NEAR(loss, a.mtp_lambda * std::log(a.vocab_size), 0.3);
}

TEST(TransformerTest, Bf16CloseToFp32) {
  ModelArgs a = nano();
  Transformer m(a);
  m->init_weights(2);
  m->eval();
  auto ids = random_ids(a, 2, 10, 4);
  torch::NoGradGuard ng;
  auto ref = m->forward(ids).logits;
  m->to(torch::kBFloat16);
  for (auto& b : m->named_buffers()) b.value().set_data(b.value().to(torch::kFloat));
  auto got = m->forward(ids).logits;
  EXPECT_EQ(got.scalar_type(), torch::kFloat);
  EXPECT_LT(max_diff(got, ref), 0.05 * ref.abs().max().item<double>() + 0.02);
}

TEST(TransformerTest, CustomMaskAndPositionsIsolatePackedSamples) {
  // Two samples packed into one row with a block-diagonal mask and restarted positions
  // give the same logits as running them separately.
  ModelArgs a = nano();
  Transformer m(a);
  m->init_weights(5);
  m->eval();
  torch::NoGradGuard ng;
  auto s1 = random_ids(a, 1, 5, 1), s2 = random_ids(a, 1, 4, 2);
  auto packed = torch::cat({s1, s2}, 1);
  auto pos = torch::cat({torch::arange(5), torch::arange(4)}).unsqueeze(0);
  auto seg = torch::cat({torch::zeros({5}), torch::ones({4})});
  auto same = seg.unsqueeze(1) == seg.unsqueeze(0);
  auto causal = torch::ones({9, 9}, torch::kBool).tril();
  ForwardOptions o;
  o.positions = pos;
  o.attn_mask = (same & causal).unsqueeze(0);
  auto lp = m->forward(packed, o).logits;
  EXPECT_LT(max_diff(lp.narrow(1, 0, 5), m->forward(s1).logits), 1e-5);
  EXPECT_LT(max_diff(lp.narrow(1, 5, 4), m->forward(s2).logits), 1e-5);
}

// ---------------------------------------------------------------------------------
// Log-probs helper

TEST(LogProbsTest, MatchesFullLogSoftmaxWithGradients) {
  torch::manual_seed(8);
  const int64_t N = 37, d = 16, V = 50;
  auto h = torch::randn({N, d}, torch::requires_grad());
  auto w = torch::randn({V, d}, torch::requires_grad());
  auto tgt = torch::randint(V, {N}, torch::kLong);
  const double temp = 0.7;
  auto r = token_logprobs(h, w, tgt, temp, /*with_entropy=*/true, /*chunk_rows=*/8);
  auto loss = (r.logprobs * torch::linspace(-1, 1, N)).sum() + 0.3 * r.entropy.sum();
  auto gh = torch::autograd::grad({loss}, {h, w});

  auto h2 = h.detach().clone().requires_grad_(true);
  auto w2 = w.detach().clone().requires_grad_(true);
  auto lsm = torch::log_softmax(torch::matmul(h2, w2.t()) / temp, -1);
  auto lp = lsm.gather(1, tgt.unsqueeze(1)).squeeze(1);
  auto ent = -(lsm.exp() * lsm).sum(-1);
  EXPECT_LT(max_diff(r.logprobs, lp), 1e-5);
  EXPECT_LT(max_diff(r.entropy, ent), 1e-5);
  auto loss2 = (lp * torch::linspace(-1, 1, N)).sum() + 0.3 * ent.sum();
  auto gh2 = torch::autograd::grad({loss2}, {h2, w2});
  EXPECT_LT(max_diff(gh[0], gh2[0]), 1e-4);
  EXPECT_LT(max_diff(gh[1], gh2[1]), 1e-4);
}

TEST(LogProbsTest, TruncatedDistributionMatchesMaskedLogSoftmaxWithGradients) {
  // Under top-k/top-p the log-prob is that of the kept set renormalised, and its gradient
  // reaches the kept tokens' logits only; the target is always kept.
  torch::manual_seed(9);
  const int64_t N = 29, d = 16, V = 40;
  auto h = torch::randn({N, d}, torch::requires_grad());
  auto w = (torch::randn({V, d}) * 0.5).requires_grad_(true);
  auto tgt = torch::randint(V, {N}, torch::kLong);
  const double temp = 0.8;
  const Truncation trunc{5, 0.9, 0.0};
  auto r = token_logprobs(h, w, tgt, temp, /*with_entropy=*/false, /*chunk_rows=*/8, trunc);
  auto g = torch::autograd::grad({(r.logprobs * torch::linspace(-1, 1, N)).sum()}, {h, w});

  auto h2 = h.detach().clone().requires_grad_(true);
  auto w2 = w.detach().clone().requires_grad_(true);
  auto z = torch::matmul(h2, w2.t()) / temp;
  torch::Tensor keep;
  {
    torch::NoGradGuard ng;
    keep = truncation_mask(torch::softmax(z, -1), 5, 0.9, 0.0);
    keep.scatter_(1, tgt.unsqueeze(1), true);
  }
  auto lp = torch::log_softmax(z.masked_fill(keep.logical_not(), -INFINITY), -1)
                .gather(1, tgt.unsqueeze(1))
                .squeeze(1);
  EXPECT_LT(max_diff(r.logprobs, lp), 1e-5);
  // Truncation changes the value: every log q >= log p, strictly where tokens were cut.
  auto full = token_logprobs(h, w, tgt, temp).logprobs;
  EXPECT_TRUE((r.logprobs >= full - 1e-6).all().item<bool>());
  EXPECT_GT((r.logprobs - full).max().item<double>(), 1e-3);
  auto g2 = torch::autograd::grad({(lp * torch::linspace(-1, 1, N)).sum()}, {h2, w2});
  EXPECT_LT(max_diff(g[0], g2[0]), 1e-4);
  EXPECT_LT(max_diff(g[1], g2[1]), 1e-4);
}

// Inside a bf16 autocast region (bf16 training, train/compute.h) the head, log-softmax and
// their backward stay fp32: the same log-probs and gradients as outside it.
TEST(LogProbsTest, HeadStaysFp32UnderBf16Autocast) {
  torch::manual_seed(9);
  const int64_t N = 21, d = 32, V = 64;
  auto h = torch::randn({N, d}) * 3;
  auto w = torch::randn({V, d});
  auto tgt = torch::randint(V, {N}, torch::kLong);
  auto run = [&](bool bf16) {
    auto hh = h.clone().requires_grad_(true);
    auto ww = w.clone().requires_grad_(true);
    compat::CpuAutocastGuard ac(bf16);
    auto r = token_logprobs(hh, ww, tgt, 1.0, /*with_entropy=*/true, /*chunk_rows=*/8);
    (r.logprobs.sum() + r.entropy.sum()).backward();
    return std::vector<torch::Tensor>{r.logprobs, r.entropy, hh.grad(), ww.grad()};
  };
  auto f32 = run(false), bf16 = run(true);
  for (size_t i = 0; i < f32.size(); ++i) {
    EXPECT_EQ(bf16[i].scalar_type(), torch::kFloat) << i;
    EXPECT_LT(max_diff(bf16[i], f32[i]), 1e-5) << i;
  }
  // A bf16 head would be off by about 1e-2 here: the check above can tell.
  compat::CpuAutocastGuard ac(true);
  EXPECT_EQ(torch::matmul(h, w.t()).scalar_type(), torch::kBFloat16);
}

}  // namespace
}  // namespace r1kit::policy
