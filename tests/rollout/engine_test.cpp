// Tests of rollout/engine.h on the `nano` preset (and a small GQA model): per-row cache
// decode, cached generation equal to uncached (greedy = argmax of a full forward),
// log-probs equal to the trainer's policy::token_logprobs, seeds independent of batch
// composition, prefix sharing, continuous batching, finish reasons, validation, abort.
#include "rollout/engine.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "core/blas_threads.h"
#include "core/parallel.h"
#include "core/torch_compat.h"
#include "policy/logprobs.h"
#include "policy/model.h"

namespace r1kit::rollout {
namespace {

using policy::Transformer;

// A nano model with a sharpened output layer, so distributions are far from uniform
// and temperature, top-k and top-p matter.
Transformer make_model(uint64_t seed, bool gqa = false, double sharpen = 40.0) {
  policy::ModelArgs a = gqa ? *policy::preset("tiny-dense", 128) : *policy::preset("nano");
  if (gqa) {
    a.n_layers = 2;
    a.dim = 48;
    a.n_heads = 4;
    a.n_kv_heads = 2;
    a.head_dim = 12;
    a.inter_dim = 64;
  }
  Transformer m(a);
  m->init_weights(seed);
  torch::NoGradGuard ng;
  m->output_weight().mul_(sharpen);
  m->eval();
  return m;
}

std::vector<int64_t> random_prompt(int64_t V, int64_t P, uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  auto t = torch::randint(3, V, {P}, g, torch::kLong);
  return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + P);
}

GenerateRequest make_request(const Transformer& m, std::vector<int64_t> lengths, int64_t G,
                             int64_t max_new, uint64_t seed = 11) {
  GenerateRequest r;
  for (size_t i = 0; i < lengths.size(); ++i)
    r.prompts.push_back(
        {random_prompt(m->args().vocab_size, lengths[i], 100 + i), static_cast<int64_t>(i)});
  r.group_size = G;
  r.sampling.max_new_tokens = max_new;
  r.sampling.seed = seed;
  return r;
}

EngineOptions opts(int64_t max_batch, bool share = true) {
  EngineOptions o;
  o.max_batch = max_batch;
  o.max_seq_len = 48;
  o.share_prefix = share;
  return o;
}

// The trainer's view: a full forward over prompt + completion, then token_logprobs.
// Returns [n] log-probs of the completion tokens, and the full logits [P + n, V].
std::pair<torch::Tensor, torch::Tensor> recompute(Transformer& m,
                                                  const std::vector<int64_t>& prompt,
                                                  const Completion& c, double temperature,
                                                  const policy::Truncation& trunc = {}) {
  torch::NoGradGuard ng;
  std::vector<int64_t> ids = prompt;
  ids.insert(ids.end(), c.token_ids.begin(), c.token_ids.end());
  const int64_t P = prompt.size(), n = c.token_ids.size();
  auto t = torch::tensor(ids, torch::kLong).view({1, -1});
  auto out = m->forward(t);
  auto hidden = out.hidden[0].narrow(0, P - 1, n);  // positions predicting the completion
  auto targets = t[0].narrow(0, P, n);
  auto lp =
      policy::token_logprobs(hidden, m->output_weight(), targets, temperature, false, 1024, trunc)
          .logprobs;
  return {lp, out.logits[0]};
}

double max_abs(const torch::Tensor& a, const std::vector<float>& b) {
  return (a - torch::tensor(b)).abs().max().item<double>();
}

std::vector<std::vector<int64_t>> tokens_of(const std::vector<Group>& groups) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& g : groups)
    for (const auto& c : g.completions) out.push_back(c.token_ids);
  return out;
}

TEST(RowPositionsTest, RaggedPerRowDecodeEqualsFullForward) {
  for (bool gqa : {false, true}) {
    Transformer m = make_model(1, gqa);
    torch::NoGradGuard ng;
    const auto& a = m->args();
    // Two sequences of lengths 7 and 4 share one cache; row 0 is ahead of row 1.
    auto s0 = torch::tensor(random_prompt(a.vocab_size, 7, 1)).view({1, -1});
    auto s1 = torch::tensor(random_prompt(a.vocab_size, 4, 2)).view({1, -1});
    auto f0 = m->forward(s0).logits[0], f1 = m->forward(s1).logits[0];
    auto cache = policy::KVCache::allocate(a, 3, 16, torch::kFloat);
    // Prefill row 0 with 5 tokens and row 1 with 2, one row at a time (per-row
    // positions, T = 1), then decode both together.
    auto step = [&](std::vector<int64_t> ids, std::vector<int64_t> pos) {
      policy::ForwardOptions o;
      o.cache = &cache;
      o.row_positions = torch::tensor(pos);
      o.start_pos = *std::max_element(pos.begin(), pos.end());
      return m->forward(torch::tensor(ids).view({-1, 1}), o).logits.select(1, 0);
    };
    for (int64_t t = 0; t < 2; ++t) {
      auto l = step({s0[0][t].item<int64_t>(), s1[0][t].item<int64_t>()}, {t, t});
      EXPECT_LT((l[0] - f0[t]).abs().max().item<double>(), 1e-4);
      EXPECT_LT((l[1] - f1[t]).abs().max().item<double>(), 1e-4);
    }
    for (int64_t t = 2; t < 5; ++t) {  // row 0 runs ahead alone, row 1 waits
      policy::ForwardOptions o;
      o.cache = &cache;
      o.start_pos = t;
      o.row_positions = torch::tensor({t});
      auto l = m->forward(s0.narrow(1, t, 1), o).logits[0][0];
      EXPECT_LT((l - f0[t]).abs().max().item<double>(), 1e-4);
    }
    for (int64_t k = 0; k < 2; ++k) {  // ragged: row 0 at 5+k, row 1 at 2+k
      auto l = step({s0[0][5 + k].item<int64_t>(), s1[0][2 + k].item<int64_t>()}, {5 + k, 2 + k});
      EXPECT_LT((l[0] - f0[5 + k]).abs().max().item<double>(), 1e-4) << "gqa " << gqa;
      EXPECT_LT((l[1] - f1[2 + k]).abs().max().item<double>(), 1e-4) << "gqa " << gqa;
    }
  }
}

TEST(EngineTest, GreedyEqualsArgmaxOfFullForward) {
  for (bool gqa : {false, true}) {
    Transformer m = make_model(2, gqa);
    Engine engine(m, opts(4));
    auto req = make_request(m, {5, 9, 3}, /*G=*/2, /*max_new=*/10);
    req.sampling.temperature = 0;
    auto groups = engine.generate(req, /*policy_version=*/3);
    ASSERT_TRUE(groups.ok()) << groups.status().to_string();
    ASSERT_EQ(groups->size(), 3u);
    for (size_t g = 0; g < 3; ++g) {
      const auto& prompt = req.prompts[g].ids;
      EXPECT_EQ((*groups)[g].completions[0].token_ids, (*groups)[g].completions[1].token_ids);
      for (const auto& c : (*groups)[g].completions) {
        ASSERT_EQ(c.token_ids.size(), 10u);
        EXPECT_EQ(c.finish_reason, FinishReason::kLength);
        EXPECT_EQ(c.policy_version, 3);
        auto [lp, logits] = recompute(m, prompt, c, 1.0);
        const int64_t P = prompt.size();
        for (size_t t = 0; t < c.token_ids.size(); ++t)
          EXPECT_EQ(c.token_ids[t], logits[P - 1 + t].argmax().item<int64_t>())
              << "gqa " << gqa << " group " << g << " step " << t;
        EXPECT_LT(max_abs(lp, c.logprobs), 1e-5);
      }
    }
  }
}

// The engine (prefill naive, decode absorbed through the cache, ragged batch) and the
// trainer (one naive full forward) differ only by fp32 rounding, which grows with the
// size of the logits: within 1e-5 for logits of a few units (output layer x10, max
// |logit| ~ 5), within 1e-4 (the required bound) for a very sharp model (x40, ~20).
TEST(EngineTest, LogprobsEqualTheTrainersRecomputation) {
  for (auto [sharpen, tol] : {std::pair{10.0, 1e-5}, std::pair{40.0, 1e-4}}) {
    Transformer m = make_model(3, false, sharpen);
    struct Case {
      double temperature;
      int64_t top_k;
      double top_p;
      double min_p;
    };
    for (const Case& k : {Case{1.0, 0, 1.0, 0.0}, Case{0.7, 0, 1.0, 0.0}, Case{1.0, 20, 0.9, 0.0},
                          Case{0.7, 20, 0.9, 0.05}}) {
      Engine engine(m, opts(5));
      auto req = make_request(m, {6, 11, 4}, /*G=*/3, /*max_new=*/12);
      req.sampling.temperature = k.temperature;
      req.sampling.top_k = k.top_k;
      req.sampling.top_p = k.top_p;
      req.sampling.min_p = k.min_p;
      auto groups = engine.generate(req, 0);
      ASSERT_TRUE(groups.ok()) << groups.status().to_string();
      double worst = 0;
      for (size_t g = 0; g < groups->size(); ++g)
        for (const auto& c : (*groups)[g].completions) {
          // The trainer applies the same truncation (the processed distribution).
          auto [lp, logits] =
              recompute(m, req.prompts[g].ids, c, k.temperature, {k.top_k, k.top_p, k.min_p});
          worst = std::max(worst, max_abs(lp, c.logprobs));
          // Truncation: every sampled token is within the top-k of its position.
          if (k.top_k > 0) {
            const int64_t P = req.prompts[g].ids.size();
            for (size_t t = 0; t < c.token_ids.size(); ++t) {
              auto topk = std::get<1>(logits[P - 1 + t].topk(k.top_k));
              EXPECT_TRUE((topk == c.token_ids[t]).any().item<bool>());
            }
          }
        }
      EXPECT_LT(worst, tol) << "x" << sharpen << " temperature " << k.temperature << " top_k "
                            << k.top_k;
    }
  }
}

// The full sequence's recorded routing [S, L, K] (prompt then completion, one forward row).
torch::Tensor recorded_routing(const Group& g, const Completion& c) {
  std::vector<int16_t> ids = g.prompt_experts.ids;
  ids.insert(ids.end(), c.routed_experts.ids.begin(), c.routed_experts.ids.end());
  return torch::tensor(std::vector<int64_t>(ids.begin(), ids.end()))
      .view({-1, g.prompt_experts.layers, g.prompt_experts.k});
}

// Share of recorded (token, layer, slot) experts missing from `used` [S, L, K].
double route_mismatch(const torch::Tensor& rec, const torch::Tensor& used) {
  auto found = (rec.unsqueeze(-1) == used.to(torch::kLong).unsqueeze(-2)).any(-1);
  auto valid = rec >= 0;
  return (valid & found.logical_not()).sum().item<double>() / valid.sum().item<double>();
}

// Routing replay: the engine records each token's experts (prompt and completion, the
// last completion token unrecorded); a trainer whose router disagrees (here: perturbed
// gate weights) uses those experts exactly when they are replayed, and its gate still gets
// a gradient.
TEST(EngineTest, RecordsRoutingThatTheTrainerReplaysExactly) {
  Transformer m = make_model(5, false, 10.0);
  const int64_t L = m->n_moe_layers(), K = m->args().n_activated_experts;
  ASSERT_GT(L, 0);
  Engine engine(m, opts(4));
  auto req = make_request(m, {6, 3}, /*G=*/2, /*max_new=*/8);
  req.record_experts = true;
  auto groups = engine.generate(req, 0);
  ASSERT_TRUE(groups.ok()) << groups.status().to_string();

  Transformer trainer = make_model(5, false, 10.0);
  {
    torch::NoGradGuard ng;
    for (auto& p : trainer->named_parameters())
      if (p.key().find("gate.weight") != std::string::npos)
        p.value().add_(torch::randn_like(p.value()) * 0.05);
  }
  trainer->train();
  double without = 0;
  for (size_t g = 0; g < groups->size(); ++g) {
    const Group& grp = (*groups)[g];
    const int64_t P = static_cast<int64_t>(req.prompts[g].ids.size());
    ASSERT_EQ(grp.prompt_experts.layers, L);
    ASSERT_EQ(static_cast<int64_t>(grp.prompt_experts.ids.size()), P * L * K);
    for (const auto& c : grp.completions) {
      const int64_t n = static_cast<int64_t>(c.token_ids.size());
      ASSERT_EQ(static_cast<int64_t>(c.routed_experts.ids.size()), n * L * K);
      auto rec = recorded_routing(grp, c);  // [P + n, L, K]
      EXPECT_TRUE((rec[P + n - 1] == -1).all().item<bool>()) << "last token: no forward";
      EXPECT_TRUE((rec.narrow(0, 0, P + n - 1) >= 0).all().item<bool>());
      EXPECT_TRUE((rec < m->args().n_routed_experts).all().item<bool>());
      std::vector<int64_t> seq = req.prompts[g].ids;
      seq.insert(seq.end(), c.token_ids.begin(), c.token_ids.end());
      auto ids = torch::tensor(seq).view({1, -1});
      policy::ForwardOptions o;
      o.record_experts = true;
      {
        torch::NoGradGuard ng;
        // The engine's own weights agree with what they recorded.
        EXPECT_EQ(route_mismatch(rec, m->forward(ids, o).experts[0]), 0.0);
        without += route_mismatch(rec, trainer->forward(ids, o).experts[0]);
      }
      o.replay_experts = rec.to(torch::kInt16).unsqueeze(0);
      auto out = trainer->forward(ids, o);
      EXPECT_EQ(route_mismatch(rec, out.experts[0]), 0.0) << "replayed: 100% agreement";
      trainer->zero_grad();
      out.logits.logsumexp(-1).sum().backward();
      for (auto& p : trainer->named_parameters())
        if (p.key().find("gate.weight") != std::string::npos) {
          EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
        }
    }
  }
  EXPECT_GT(without, 0.0) << "the perturbed router should disagree somewhere";
}

// Exactness today (measurement; docs/rollout.md, "Engine/trainer agreement"): the engine's
// log-probs against the trainer's one full forward, per configuration (slots, decode
// threads, absorbed/naive MLA decode, prefix sharing), on the MoE+MLA nano model. Prints
// the max |diff| and the share of bitwise-equal log-probs; asserts the 1e-4 bound.
TEST(EngineTest, MeasuresTheEngineTrainerLogprobDifferencePerConfiguration) {
  Transformer m = make_model(6, false, 10.0);
  for (auto impl : {policy::AttnImpl::kAbsorb, policy::AttnImpl::kNaive})
    for (int threads : {1, 3})
      for (int64_t slots : {1, 6})
        for (bool share : {true, false}) {
          EngineOptions o = opts(slots, share);
          o.decode_impl = impl;
          o.decode_threads = threads;
          Engine engine(m, o);
          auto req = make_request(m, {7, 3}, /*G=*/3, /*max_new=*/10);
          auto groups = engine.generate(req, 0);
          ASSERT_TRUE(groups.ok()) << groups.status().to_string();
          double worst = 0;
          int64_t equal = 0, total = 0;
          for (size_t g = 0; g < groups->size(); ++g)
            for (const auto& c : (*groups)[g].completions) {
              auto lp = recompute(m, req.prompts[g].ids, c, 1.0).first;
              auto engine_lp = torch::tensor(c.logprobs);
              worst = std::max(worst, (lp - engine_lp).abs().max().item<double>());
              equal += (lp == engine_lp).sum().item<int64_t>();
              total += lp.numel();
            }
          std::printf(
              "logprob diff: %s decode, %d threads, %2lld slots, share_prefix %d: "
              "max |diff| %.3g, bitwise equal %lld/%lld\n",
              impl == policy::AttnImpl::kAbsorb ? "absorbed" : "naive", threads,
              static_cast<long long>(slots), share ? 1 : 0, worst, static_cast<long long>(equal),
              static_cast<long long>(total));
          EXPECT_LT(worst, 1e-4);
        }
}

// bf16 compute (GenerateRequest::bf16_compute): the linear layers in bf16, the log-probs
// a bf16 rounding away from the fp32 model's, and no farther from the trainer's bf16
// recomputation than an fp32 engine's are (the trainer's autocast rounds attention, RoPE
// and norms as well, which the engine does not mirror: docs/rollout.md, "bf16 compute"; on
// the MoE + MLA model those dominate, on the small GQA model it comes closer). Prompts long
// enough that prefill takes the column form; decode batches take the row form.
TEST(EngineTest, Bf16ComputeLogprobsAreABf16RoundingFromTheModels) {
  for (bool gqa : {false, true}) {
    SCOPED_TRACE(gqa ? "GQA (q/k/v biases)" : "MoE + MLA");
    Transformer m = make_model(8, gqa, 10.0);
    // [engine bf16][trainer bf16]: the max and mean |engine - trainer| log-prob.
    double worst[2][2] = {}, mean[2][2] = {};
    for (bool bf16 : {false, true}) {
      Engine engine(m, opts(8));
      auto req = make_request(m, {20, 9, 33}, /*G=*/4, /*max_new=*/10);
      req.bf16_compute = bf16;
      auto groups = engine.generate(req, 0);
      ASSERT_TRUE(groups.ok()) << groups.status().to_string();
      int64_t n = 0;
      for (size_t g = 0; g < groups->size(); ++g)
        for (const auto& c : (*groups)[g].completions) {
          for (bool trainer_bf16 : {false, true}) {
            compat::CpuAutocastGuard ac(trainer_bf16);
            auto d =
                (recompute(m, req.prompts[g].ids, c, 1.0).first - torch::tensor(c.logprobs)).abs();
            worst[bf16][trainer_bf16] = std::max(worst[bf16][trainer_bf16], d.max().item<double>());
            mean[bf16][trainer_bf16] += d.sum().item<double>();
          }
          n += static_cast<int64_t>(c.logprobs.size());
        }
      for (auto& v : mean[bf16]) v /= static_cast<double>(n);
      std::printf(
          "%s engine: |diff| to the fp32 trainer max %.3g mean %.3g; to the bf16 trainer "
          "max %.3g mean %.3g\n",
          bf16 ? "bf16-compute" : "fp32", worst[bf16][0], mean[bf16][0], worst[bf16][1],
          mean[bf16][1]);
    }
    EXPECT_LT(worst[0][0], 1e-4);  // fp32 engine: the fp32 model's
    EXPECT_GT(worst[1][0], 1e-4) << "bf16 compute not taken";
    EXPECT_LT(worst[1][0], 0.02);             // a bf16 rounding, no more
    EXPECT_LT(mean[1][1], mean[0][1] * 1.1);  // no farther from the bf16 trainer
  }
}

TEST(EngineTest, SameSeedSameTokensWhateverTheBatchComposition) {
  Transformer m = make_model(4);
  // The request of interest: prompt index 7, G = 3.
  GenerateRequest alone = make_request(m, {6}, 3, 12, /*seed=*/99);
  alone.prompts[0].index = 7;
  Engine e1(m, opts(1));  // one slot: strictly one sequence at a time
  auto a = e1.generate(alone, 0);
  ASSERT_TRUE(a.ok());

  // The same prompt (same index) in the middle of a larger request, with other
  // prompts of other lengths before and after, on a wider engine, with and without
  // prefix sharing.
  GenerateRequest mixed = make_request(m, {9, 3, 5}, 3, 12, /*seed=*/99);
  mixed.prompts.insert(mixed.prompts.begin() + 2, alone.prompts[0]);
  for (bool share : {true, false})
    for (int64_t N : {2, 5, 16}) {
      Engine e2(m, opts(N, share));
      auto b = e2.generate(mixed, 0);
      ASSERT_TRUE(b.ok());
      ASSERT_EQ((*b)[2].prompt_index, 7);
      for (int j = 0; j < 3; ++j) {
        EXPECT_EQ((*b)[2].completions[j].token_ids, (*a)[0].completions[j].token_ids)
            << "N " << N << " share " << share << " sample " << j;
        EXPECT_LT(max_abs(torch::tensor((*b)[2].completions[j].logprobs),
                          (*a)[0].completions[j].logprobs),
                  1e-5);
      }
    }
  // The samples of a group differ from each other, and another seed changes them.
  EXPECT_NE((*a)[0].completions[0].token_ids, (*a)[0].completions[1].token_ids);
  alone.sampling.seed = 100;
  auto c = e1.generate(alone, 0);
  EXPECT_NE((*c)[0].completions[0].token_ids, (*a)[0].completions[0].token_ids);
}

// A long-context model (max_seq_len far above what requests use) gets slots of
// kInitialCacheTokens at first, grown to what a request needs (rounded up to 256), with the
// same tokens and log-probs as an engine whose slots were sized up front.
TEST(EngineTest, CacheGrowsToWhatRequestsNeed) {
  policy::ModelArgs args = *policy::preset("tiny-dense", 128);
  args.max_seq_len = 40960;
  Transformer m(args);
  m->init_weights(4);
  m->eval();
  EngineOptions grow = opts(2);
  grow.max_seq_len = 0;  // the model's limit, allocated on demand
  Engine e1(m, grow);
  EXPECT_EQ(e1.max_seq_len(), 40960);
  EXPECT_EQ(e1.cache_len(), EngineOptions::kInitialCacheTokens);
  const int64_t small = e1.cache_bytes();

  GenerateRequest r = make_request(m, {500, 7}, 2, 30, /*seed=*/5);
  auto a = e1.generate(r, 0);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(e1.cache_len(), 768);  // 500 + 30 tokens, rounded up to 256
  EXPECT_EQ(e1.cache_bytes(), small / 512 * 768);

  EngineOptions fixed = opts(2);
  fixed.max_seq_len = 1024;
  Engine e2(m, fixed);
  EXPECT_EQ(e2.cache_len(), 1024);
  auto b = e2.generate(r, 0);
  ASSERT_TRUE(b.ok());
  for (size_t g = 0; g < a->size(); ++g)
    for (size_t j = 0; j < (*a)[g].completions.size(); ++j) {
      EXPECT_EQ((*a)[g].completions[j].token_ids, (*b)[g].completions[j].token_ids);
      EXPECT_EQ((*a)[g].completions[j].logprobs, (*b)[g].completions[j].logprobs);
    }
  // A shorter request keeps the grown slots.
  ASSERT_TRUE(e1.generate(make_request(m, {5}, 2, 4), 0).ok());
  EXPECT_EQ(e1.cache_len(), 768);
}

// decode_threads spreads each decode step's routed experts over threads (and puts
// OpenBLAS on one): the same tokens as one thread, and the same log-probs up to the
// rounding of OpenBLAS's other split of its sgemms.
TEST(EngineTest, DecodeThreadsGiveTheSameTokensAndLogprobs) {
  Transformer m = make_model(6);
  GenerateRequest r = make_request(m, {5, 9, 4}, 4, 16, /*seed=*/5);
  Engine e1(m, opts(12));
  auto a = e1.generate(r, 0);
  ASSERT_TRUE(a.ok());
  for (int threads : {2, 3}) {
    EngineOptions o = opts(12);
    o.decode_threads = threads;
    Engine e2(m, o);
    auto b = e2.generate(r, 0);
    ASSERT_TRUE(b.ok());
    for (size_t g = 0; g < a->size(); ++g)
      for (size_t j = 0; j < (*a)[g].completions.size(); ++j) {
        EXPECT_EQ((*b)[g].completions[j].token_ids, (*a)[g].completions[j].token_ids);
        EXPECT_LT(max_abs(torch::tensor((*b)[g].completions[j].logprobs),
                          (*a)[g].completions[j].logprobs),
                  1e-5);
      }
  }
  EngineOptions bad = opts(4);
  bad.decode_threads = 0;
  EXPECT_THROW(Engine(m, bad), c10::Error);
}

// EngineOptions reach generate()'s forwards as their execution context: the decode
// threads run on the pool the options name, the kernel choices change no token, and
// OpenBLAS runs on the thread count the options decide, for the call only; the calling
// thread runs on one LibTorch intra-op thread meanwhile, and gets its count back.
TEST(EngineTest, OptionsReachTheForwardsAndOpenBlas) {
  Transformer m = make_model(6);
  GenerateRequest r = make_request(m, {5, 9}, 2, 8, /*seed=*/5);
  Engine plain(m, opts(4));
  auto want = plain.generate(r, 0);
  ASSERT_TRUE(want.ok());

  ParallelPool pool;
  EngineOptions o = opts(4);
  o.decode_threads = 3;
  o.pool = &pool;
  EXPECT_EQ(o.execution().decode_threads, 3);
  EXPECT_EQ(o.execution().pool, &pool);
  EXPECT_EQ(o.decode_threads_with(1), 3);
  EXPECT_EQ(o.blas_threads_during_generate(3), 1);
  const int before = BlasThreadsGuard::current();  // -1 without OpenBLAS
  const int intra_before = at::get_num_threads();
  int during = -2, intra_during = -2;
  Engine threaded(m, o);
  auto got = threaded.generate(r, 0, [&](const Group&) {
    during = BlasThreadsGuard::current();
    intra_during = at::get_num_threads();
  });
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(pool.workers(), 2);  // a caller and two workers for each split
  EXPECT_EQ(during, before > 0 ? 1 : before);
  EXPECT_EQ(BlasThreadsGuard::current(), before);
#ifdef _OPENMP
  EXPECT_EQ(intra_during, 1);
#endif
  EXPECT_EQ(at::get_num_threads(), intra_before);

  EngineOptions no_kernels = opts(4);
  no_kernels.kernels = {.small_rows = false, .small_rows_avx512 = false, .mla_decode = false};
  Engine libtorch(m, no_kernels);
  auto lt = libtorch.generate(r, 0);
  ASSERT_TRUE(lt.ok());
  auto tokens = [](const std::vector<Group>& groups) {
    std::vector<std::vector<int64_t>> out;
    for (const auto& g : groups)
      for (const auto& c : g.completions) out.push_back(c.token_ids);
    return out;
  };
  EXPECT_EQ(tokens(*got), tokens(*want));
  EXPECT_EQ(tokens(*lt), tokens(*want));

  // The caller's intra-op threads become decode threads where they are more.
  EXPECT_EQ(opts(4).decode_threads_with(1), 1);
  EXPECT_EQ(opts(4).decode_threads_with(2), 2);
  EXPECT_EQ(o.decode_threads_with(2), 3);
  EXPECT_EQ(opts(4).decode_threads_with(1000), policy::kMaxDecodeThreads);
  // The OpenBLAS decision: auto (1 with decode threads, else left), left, or a count.
  EXPECT_EQ(opts(4).blas_threads_during_generate(1), 0);
  EXPECT_EQ(opts(4).blas_threads_during_generate(2), 1);
  EngineOptions left = o;
  left.blas_threads = 0;
  EXPECT_EQ(left.blas_threads_during_generate(3), 0);
  EngineOptions two = opts(4);
  two.blas_threads = 2;
  EXPECT_EQ(two.blas_threads_during_generate(1), 2);
  EngineOptions bad = opts(4);
  bad.blas_threads = -2;
  EXPECT_THROW(Engine(m, bad), c10::Error);
}

TEST(EngineTest, FinishReasonsStopIdsStopStringsAndLength) {
  Transformer m = make_model(5);
  Engine probe(m, opts(4));
  auto req = make_request(m, {5}, 1, 12);
  req.sampling.temperature = 0;
  auto free_run = probe.generate(req, 0);
  ASSERT_TRUE(free_run.ok());
  const auto toks = (*free_run)[0].completions[0].token_ids;
  ASSERT_EQ(toks.size(), 12u);

  // A stop id: the sequence ends on its first occurrence, keeping it.
  const int64_t stop = toks[4];
  const size_t first = std::find(toks.begin(), toks.end(), stop) - toks.begin();
  req.sampling.stop_token_ids = {stop};
  auto stopped = probe.generate(req, 0);
  ASSERT_TRUE(stopped.ok());
  const auto& c = (*stopped)[0].completions[0];
  EXPECT_EQ(c.finish_reason, FinishReason::kStop);
  EXPECT_EQ(c.token_ids, std::vector<int64_t>(toks.begin(), toks.begin() + first + 1));

  // A stop string, through a decode callback that writes token t as "<t>".
  DecodeFn decode = [](std::span<const int64_t> ids) {
    std::string s;
    for (int64_t id : ids) s += "<" + std::to_string(id) + ">";
    return s;
  };
  Engine with_text(m, opts(4), decode);
  req.sampling.stop_token_ids.clear();
  req.sampling.stop_strings = {"<" + std::to_string(toks[2]) + "><" + std::to_string(toks[3])};
  auto by_string = with_text.generate(req, 0);
  ASSERT_TRUE(by_string.ok()) << by_string.status().to_string();
  const auto& d = (*by_string)[0].completions[0];
  EXPECT_EQ(d.finish_reason, FinishReason::kStop);
  EXPECT_LE(d.token_ids.size(), 4u);
  EXPECT_EQ(d.token_ids, std::vector<int64_t>(toks.begin(), toks.begin() + d.token_ids.size()));

  // Length: exactly max_new_tokens.
  req.sampling.stop_strings.clear();
  req.sampling.max_new_tokens = 3;
  auto short_run = probe.generate(req, 0);
  EXPECT_EQ((*short_run)[0].completions[0].token_ids.size(), 3u);
  EXPECT_EQ((*short_run)[0].completions[0].finish_reason, FinishReason::kLength);
}

TEST(EngineTest, ContinuousBatchingRefillsFreedSlots) {
  Transformer m = make_model(6);
  // 5 prompts x G 3 = 15 sequences on 4 slots; sampled lengths vary through a stop id
  // that is common in this model's samples.
  auto req = make_request(m, {4, 7, 3, 6, 5}, 3, 16);
  Engine wide(m, opts(32));
  auto ref = wide.generate(req, 0);
  ASSERT_TRUE(ref.ok());
  std::map<int64_t, int> freq;
  for (const auto& t : tokens_of(*ref))
    for (int64_t id : t) ++freq[id];
  req.sampling.stop_token_ids = {std::max_element(freq.begin(), freq.end(), [](auto& x, auto& y) {
                                   return x.second < y.second;
                                 })->first};
  auto want = wide.generate(req, 0);
  Engine narrow(m, opts(4));
  std::vector<int64_t> order;
  auto got = narrow.generate(req, 0, [&](const Group& g) {
    EXPECT_EQ(g.completions.size(), 3u);
    order.push_back(g.prompt_index);
  });
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(tokens_of(*got), tokens_of(*want));
  std::set<size_t> lengths;
  for (const auto& t : tokens_of(*got)) lengths.insert(t.size());
  EXPECT_GT(lengths.size(), 1u) << "the test needs sequences of different lengths";
  EXPECT_EQ(order.size(), 5u);  // on_group once per group
  EXPECT_EQ(std::set<int64_t>(order.begin(), order.end()).size(), 5u);
  auto st = narrow.last_stats();
  EXPECT_EQ(st.sequences, 15);
  EXPECT_LE(st.mean_batch, 4.0);
  EXPECT_GT(st.mean_batch, 2.0);  // slots were refilled, not drained
  int64_t total = 0;
  for (const auto& t : tokens_of(*got)) total += t.size();
  EXPECT_EQ(st.generated_tokens, total);
  // Prefix sharing: each prompt was prefilled once.
  EXPECT_EQ(st.prefill_tokens, 4 + 7 + 3 + 6 + 5);
}

TEST(EngineTest, PrefillsTheGroupsThatGetSlotsInOneForward) {
  // Prompts of different lengths, prefilled together (right-padded) into the free slots
  // and copied to their samples' slots, give the tokens of prompts prefilled one at a
  // time (a one-slot engine), with their log-probs to rounding; MLA and GQA, G = 1 (each
  // prompt already in its only sample's slot) and G = 3 (a group split over admissions).
  for (bool gqa : {false, true})
    for (int64_t G : {1, 3}) {
      Transformer m = make_model(9, gqa);
      auto req = make_request(m, {7, 2, 5, 9, 4}, G, 6);
      Engine one(m, opts(1));
      auto want = one.generate(req, 0);
      ASSERT_TRUE(want.ok());
      EXPECT_EQ(one.last_stats().prefill_forwards, 5);
      for (int64_t N : {4, 16}) {
        SCOPED_TRACE("gqa " + std::to_string(gqa) + " G " + std::to_string(G) + " N " +
                     std::to_string(N));
        Engine e(m, opts(N));
        auto got = e.generate(req, 0);
        ASSERT_TRUE(got.ok());
        EXPECT_EQ(tokens_of(*got), tokens_of(*want));
        for (size_t g = 0; g < got->size(); ++g)
          for (int64_t j = 0; j < G; ++j)
            EXPECT_LT(max_abs(torch::tensor((*got)[g].completions[j].logprobs),
                              (*want)[g].completions[j].logprobs),
                      1e-5);
        const auto st = e.last_stats();
        EXPECT_EQ(st.prefill_tokens, 7 + 2 + 5 + 9 + 4);
        // Every sample fits at once: one forward. Four slots, one sample a prompt: the first
        // four prompts together, the fifth when their slots free up.
        if (N == 16) {
          EXPECT_EQ(st.prefill_forwards, 1);
        } else if (G == 1) {
          EXPECT_EQ(st.prefill_forwards, 2);
        }
      }
    }
}

TEST(EngineTest, PrefixSharingOffPrefillsEverySample) {
  Transformer m = make_model(7);
  auto req = make_request(m, {6, 4}, 4, 5);
  Engine on(m, opts(8, true)), off(m, opts(8, false));
  auto a = on.generate(req, 0), b = off.generate(req, 0);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(tokens_of(*a), tokens_of(*b));
  EXPECT_EQ(on.last_stats().prefill_tokens, 10);
  EXPECT_EQ(off.last_stats().prefill_tokens, 40);
}

TEST(EngineTest, AbortEndsUnfinishedSamples) {
  Transformer m = make_model(8);
  Engine engine(m, opts(1));  // one sequence at a time: group 0 ends first
  auto req = make_request(m, {4, 5, 6}, 2, 6);
  auto groups = engine.generate(req, 0, [&](const Group& g) {
    if (g.prompt_index == 0) engine.abort();
  });
  ASSERT_TRUE(groups.ok());
  for (const auto& c : (*groups)[0].completions) EXPECT_EQ(c.finish_reason, FinishReason::kLength);
  for (size_t g = 1; g < 3; ++g)
    for (const auto& c : (*groups)[g].completions) {
      EXPECT_EQ(c.finish_reason, FinishReason::kAbort);
      EXPECT_EQ(c.token_ids.size(), c.logprobs.size());
    }
  // The next call runs normally.
  auto again = engine.generate(req, 0);
  for (const auto& g : *again)
    for (const auto& c : g.completions) EXPECT_EQ(c.finish_reason, FinishReason::kLength);
}

TEST(EngineTest, BadRequestsAreRejectedWithTheReason) {
  Transformer m = make_model(9);
  Engine engine(m, opts(2));  // 48-token slots
  auto base = make_request(m, {5}, 2, 8);
  struct Case {
    std::function<void(GenerateRequest&)> edit;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {[](auto& r) { r.prompts.clear(); }, "no prompts"},
      {[](auto& r) { r.prompts[0].ids.clear(); }, "empty"},
      {[](auto& r) { r.prompts[0].ids[2] = 512; }, "outside the vocabulary"},
      {[](auto& r) { r.prompts[0].ids[0] = -1; }, "outside the vocabulary"},
      {[](auto& r) { r.group_size = 0; }, "n=0"},
      {[](auto& r) { r.sampling.max_new_tokens = 44; }, "exceed"},
      {[](auto& r) { r.sampling.temperature = -0.5; }, "temperature"},
      {[](auto& r) { r.sampling.stop_strings = {"x"}; }, "tokenizer"},
  };
  for (const auto& c : cases) {
    GenerateRequest r = base;
    c.edit(r);
    auto out = engine.generate(r, 0);
    ASSERT_FALSE(out.ok()) << c.needle;
    EXPECT_EQ(out.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(out.status().message().find(c.needle), std::string::npos) << out.status().message();
  }
  // At the limit it runs: 5 + 43 = 48.
  base.sampling.max_new_tokens = 43;
  EXPECT_TRUE(engine.generate(base, 0).ok());
}

// With use_lent_cores the engine chooses every kernel as on one thread
// (ExecutionContext::same_bits_any_threads), so a request gives the same bits on one
// decode thread, on two, and with a lent core taken mid-request: in fp32 and bf16 compute,
// on the AVX-512 kernels (the column form, the fused MLA decode) and on AVX2 alone. On
// `tiny`, the default recipe's rollout, at batches of 128, 72 and 8 sequences (the dense
// FFN's rows past one panel, within it, and the row form's output head). And it takes
// lent cores only when asked to.
TEST(EngineTest, TakesLentCoresWithTheSameBits) {
  Transformer m(*policy::preset("tiny", 512));
  m->init_weights(3);
  m->eval();
  const std::vector<int64_t> lengths = {20, 9,  33, 12, 15, 18, 21, 24,
                                        11, 13, 17, 19, 22, 25, 14, 16};
  struct Setting {
    const char* name;
    bool bf16;
    bool avx512;
  };
  for (const Setting& set : {Setting{"bf16", true, true}, Setting{"fp32", false, true},
                             Setting{"fp32 on AVX2", false, false}}) {
    auto run = [&](size_t prompts, int threads, bool use_lent, int lend, int* used = nullptr) {
      EngineOptions o = opts(128);
      o.max_seq_len = 96;
      o.decode_threads = threads;
      o.use_lent_cores = use_lent;
      o.kernels.small_rows_avx512 = set.avx512;
      Engine engine(m, o);
      auto req = make_request(m, {lengths.begin(), lengths.begin() + prompts}, /*G=*/8,
                              /*max_new=*/24);
      req.bf16_compute = set.bf16;
      LendCores lent(lend);
      auto groups = engine.generate(req, 0);
      EXPECT_TRUE(groups.ok()) << groups.status().to_string();
      if (used) *used = engine.last_stats().max_decode_threads;
      std::vector<std::vector<float>> lps;
      for (auto& g : *groups)
        for (auto& c : g.completions) lps.push_back(c.logprobs);
      return lps;
    };
    for (size_t prompts : {16, 9, 1}) {
      SCOPED_TRACE(std::string(set.name) + ", " + std::to_string(prompts * 8) + " sequences");
      const auto one = run(prompts, 1, true, 0);
      EXPECT_EQ(run(prompts, 2, true, 0), one);
      int used = 0;
      EXPECT_EQ(run(prompts, 1, true, 1, &used), one);
      EXPECT_EQ(used, 2);
    }
  }
  int used = 0;
  EngineOptions o = opts(8);
  Engine engine(m, o);  // not asked to
  LendCores lent(1);
  ASSERT_TRUE(engine.generate(make_request(m, {5}, /*G=*/2, /*max_new=*/4), 0).ok());
  used = engine.last_stats().max_decode_threads;
  EXPECT_EQ(used, 1);
}

}  // namespace
}  // namespace r1kit::rollout
