// The clipped policy loss (grpo/policy_loss.h) against hand-computed values, and its
// invariants: zero advantages give zero gradient, the first pass is unclipped, every
// aggregation mode is invariant to the micro-batch split, truncated completions give
// no gradient.
#include "grpo/policy_loss.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

namespace r1kit::grpo {
namespace {

const auto kF64 = torch::kFloat64;

std::vector<double> to_dvec(const torch::Tensor& t) {
  auto c = t.to(kF64).contiguous();
  return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

void expect_near_dvec(const torch::Tensor& got, const std::vector<double>& want,
                      double tol = 1e-9) {
  auto g = to_dvec(got);
  ASSERT_EQ(g.size(), want.size());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], want[i], tol) << "index " << i;
}

// A tiny batch given by its ratios: old = log 0.5 everywhere, logp = old + log(ratio).
// Padding holds NaN, which must be ignored.
struct Tiny {
  torch::Tensor theta;  // [B, T] log ratios, the leaf we differentiate
  torch::Tensor old;    // [B, T]
  torch::Tensor mask;   // [B, T]
  torch::Tensor adv;    // [B]
  PolicyLossInputs inputs() const {
    PolicyLossInputs in;
    in.old_logprobs = old;
    in.logprobs = old + theta;
    in.mask = mask;
    in.advantages = adv;
    return in;
  }
};

Tiny make_tiny(const std::vector<std::vector<double>>& ratios, const std::vector<double>& adv) {
  const int64_t b = static_cast<int64_t>(ratios.size());
  int64_t t = 0;
  for (const auto& r : ratios) t = std::max<int64_t>(t, static_cast<int64_t>(r.size()));
  auto theta = torch::full({b, t}, std::nan(""), kF64);
  auto mask = torch::zeros({b, t}, kF64);
  for (int64_t i = 0; i < b; ++i)
    for (size_t j = 0; j < ratios[i].size(); ++j) {
      theta[i][j] = std::log(ratios[i][j]);
      mask[i][j] = 1.0;
    }
  Tiny x;
  x.theta = theta.requires_grad_(true);
  x.old = torch::full({b, t}, std::log(0.5), kF64);
  x.mask = mask;
  x.adv = torch::tensor(adv, kF64);
  return x;
}

// The main tiny batch, eps 0.2 / 0.2:
//   row0, A = +1, ratios [1.0, 1.5, 0.7]:  l = -min(r, clip(r)) = [-1.0, -1.2 (clipped high), -0.7]
//   row1, A = -1, ratios [0.5, 1.1, pad]:   l = max(r, clip(r))  = [0.8 (clipped low), 1.1]
// sum = -1.0 - 1.2 - 0.7 + 0.8 + 1.1 = -1.0; 5 tokens, 2 sequences.
Tiny main_tiny() {
  return make_tiny({{1.0, 1.5, 0.7}, {0.5, 1.1}}, {1.0, -1.0});
}

PolicyLoss run(const Tiny& x, const PolicyLossOptions& o, double max_length = 0) {
  return policy_loss(x.inputs(), o, make_normalizer({x.mask}, max_length));
}

TEST(PolicyLoss, NormalizerCounts) {
  auto x = main_tiny();
  auto n = make_normalizer({x.mask, torch::zeros({1, 3})}, 7);
  EXPECT_EQ(n.tokens, 5);
  EXPECT_EQ(n.sequences, 2);  // the empty row does not count
  EXPECT_EQ(n.max_length, 7);
}

TEST(PolicyLoss, TokenMeanHandValues) {
  auto x = main_tiny();
  PolicyLossOptions o;  // token-mean, eps 0.2/0.2
  auto out = run(x, o);
  // -1.0 / 5 = -0.2
  EXPECT_NEAR(out.loss.item<double>(), -0.2, 1e-12);
  EXPECT_NEAR(out.stats.pg_loss, -0.2, 1e-12);
  out.loss.backward();
  // d/dtheta of -A r / 5 = -A r / 5 where unclipped, 0 where clipped, 0 on padding:
  //   row0: [-1/5, 0, -0.7/5]; row1: [0, 1.1/5, 0].
  expect_near_dvec(x.theta.grad(), {-0.2, 0.0, -0.14, 0.0, 0.22, 0.0});
  // Stats: 1 of 5 clipped low, 1 of 5 clipped high; ratio mean (1+1.5+0.7+0.5+1.1)/5.
  EXPECT_NEAR(out.stats.clip_ratio_low, 0.2, 1e-12);
  EXPECT_NEAR(out.stats.clip_ratio_high, 0.2, 1e-12);
  EXPECT_NEAR(out.stats.clip_ratio, 0.4, 1e-12);
  EXPECT_NEAR(out.stats.ratio_mean, 0.96, 1e-12);
  EXPECT_NEAR(out.stats.ratio_min, 0.5, 1e-12);
  EXPECT_NEAR(out.stats.ratio_max, 1.5, 1e-12);
  // approx_kl = mean(old - logp) = -mean(log r) = -(0 + log1.5 + log0.7 + log0.5 + log1.1)/5
  EXPECT_NEAR(out.stats.approx_kl,
              -(std::log(1.5) + std::log(0.7) + std::log(0.5) + std::log(1.1)) / 5, 1e-12);
  EXPECT_EQ(out.stats.tokens, 5);
  EXPECT_EQ(out.stats.sequences, 2);
}

TEST(PolicyLoss, SeqMeanTokenMeanHandValues) {
  auto x = main_tiny();
  PolicyLossOptions o;
  o.aggregation = LossAggregation::kSeqMeanTokenMean;
  auto out = run(x, o);
  // row0 mean = -2.9 / 3; row1 mean = 1.9 / 2; loss = (-2.9/3 + 0.95) / 2 = -0.0083333
  EXPECT_NEAR(out.loss.item<double>(), (-2.9 / 3 + 0.95) / 2, 1e-12);
  out.loss.backward();
  // row0 tokens weigh 1/(3*2), row1 tokens 1/(2*2).
  expect_near_dvec(x.theta.grad(), {-1.0 / 6, 0.0, -0.7 / 6, 0.0, 1.1 / 4, 0.0});
}

TEST(PolicyLoss, SeqMeanTokenSumNormHandValues) {
  auto x = main_tiny();
  PolicyLossOptions o;
  o.aggregation = LossAggregation::kSeqMeanTokenSumNorm;
  auto out = run(x, o, /*max_length=*/4);
  // sum / (2 sequences * L=4) = -1.0 / 8
  EXPECT_NEAR(out.loss.item<double>(), -0.125, 1e-12);
  out.loss.backward();
  expect_near_dvec(x.theta.grad(), {-1.0 / 8, 0.0, -0.7 / 8, 0.0, 1.1 / 8, 0.0});
  // Without L the mode refuses to guess.
  EXPECT_THROW(run(main_tiny(), o, /*max_length=*/0), c10::Error);

  // seq-mean-token-sum: the same sum over 2 sequences without L: -1.0 / 2, and 4x the
  // gradient, [-1/2, 0, -0.7/2 | 0, 1.1/2].
  auto y = main_tiny();
  o.aggregation = LossAggregation::kSeqMeanTokenSum;
  auto out_sum = run(y, o);
  out_sum.loss.backward();
  EXPECT_NEAR(out_sum.loss.item<double>(), -0.5, 1e-12);
  EXPECT_TRUE(torch::allclose(y.theta.grad(), x.theta.grad() * 4, 0, 1e-12));
  EXPECT_NEAR(y.theta.grad()[1][1].item<double>(), 1.1 / 2, 1e-12);
}

TEST(PolicyLoss, CispoClipsTheWeightNotTheUpdate) {
  // main_tiny, eps 0.2/0.2: weights sg(clip(r)) = row0 [1.0, 1.2, 0.8], row1 [0.8, 1.1].
  // Value -A clip(r): row0 [-1.0, -1.2, -0.8], row1 [0.8, 1.1] -> token-mean -1.1 / 5.
  // Gradient of -sg(w) A log pi: -A w / 5 for EVERY token, the clipped ones included
  // (PPO gives 0 at r = 1.5 and r = 0.5 and 0.7 is clipped only for A < 0).
  auto x = main_tiny();
  PolicyLossOptions o;
  o.surrogate = Surrogate::kCispo;
  auto out = run(x, o);
  EXPECT_NEAR(out.loss.item<double>(), -1.1 / 5, 1e-12);
  out.loss.backward();
  expect_near_dvec(x.theta.grad(), {-1.0 / 5, -1.2 / 5, -0.8 / 5, 0.8 / 5, 1.1 / 5, 0.0});
  // Clipped weights, whatever the sign of A: low {0.7, 0.5}, high {1.5}.
  EXPECT_NEAR(out.stats.clip_ratio_low, 0.4, 1e-12);
  EXPECT_NEAR(out.stats.clip_ratio_high, 0.2, 1e-12);
  EXPECT_NEAR(out.stats.clip_ratio, 0.6, 1e-12);
  // MiniMax-M1's setting, no lower bound in effect: the row1 token at 0.5 keeps w = 0.5.
  o.eps_low = 0.9;
  o.eps_high = 2.0;
  auto y = main_tiny();
  auto out2 = run(y, o);
  out2.loss.backward();
  expect_near_dvec(y.theta.grad(), {-1.0 / 5, -1.5 / 5, -0.7 / 5, 0.5 / 5, 1.1 / 5, 0.0});
  // No dual clip with CISPO.
  o.dual_clip_c = 3.0;
  EXPECT_THROW(run(main_tiny(), o), c10::Error);
}

TEST(PolicyLoss, ClipHigherEpsHigh) {
  // A = +1, ratios [1.25, 1.3].
  //   symmetric 0.2: both clipped at 1.2 -> l = [-1.2, -1.2], no gradient.
  //   eps_high 0.28: 1.25 is inside -> -1.25 (grad -1.25/2); 1.3 clipped at 1.28 -> -1.28.
  PolicyLossOptions sym;
  auto a = make_tiny({{1.25, 1.3}}, {1.0});
  auto out_a = run(a, sym);
  EXPECT_NEAR(out_a.loss.item<double>(), -1.2, 1e-12);
  EXPECT_NEAR(out_a.stats.clip_ratio_high, 1.0, 1e-12);
  out_a.loss.backward();
  expect_near_dvec(a.theta.grad(), {0.0, 0.0});

  PolicyLossOptions dapo;
  dapo.eps_high = 0.28;
  auto b = make_tiny({{1.25, 1.3}}, {1.0});
  auto out_b = run(b, dapo);
  EXPECT_NEAR(out_b.loss.item<double>(), (-1.25 - 1.28) / 2, 1e-12);
  EXPECT_NEAR(out_b.stats.clip_ratio_high, 0.5, 1e-12);
  out_b.loss.backward();
  expect_near_dvec(b.theta.grad(), {-1.25 / 2, 0.0});
}

TEST(PolicyLoss, DualClip) {
  // A = -1, ratios [4, 2]. Without dual clip l = max(r, clip(r)) = [4, 2] -> mean 3.
  // With c = 3: l = [min(4, 3), 2] = [3, 2] -> mean 2.5; the first token has no gradient,
  // the second keeps -A r / 2 = 1.
  auto a = make_tiny({{4.0, 2.0}}, {-1.0});
  EXPECT_NEAR(run(a, PolicyLossOptions{}).loss.item<double>(), 3.0, 1e-12);
  PolicyLossOptions o;
  o.dual_clip_c = 3.0;
  auto b = make_tiny({{4.0, 2.0}}, {-1.0});
  auto out = run(b, o);
  EXPECT_NEAR(out.loss.item<double>(), 2.5, 1e-12);
  EXPECT_NEAR(out.stats.dual_clip_ratio, 0.5, 1e-12);
  out.loss.backward();
  expect_near_dvec(b.theta.grad(), {0.0, 1.0});
  // The dual clip never touches positive advantages: A = +1, ratio 4 -> -1.2 (clip high).
  auto c = make_tiny({{4.0}}, {1.0});
  EXPECT_NEAR(run(c, o).loss.item<double>(), -1.2, 1e-12);
  // c <= 1 is rejected.
  o.dual_clip_c = 1.0;
  EXPECT_THROW(run(make_tiny({{1.0}}, {1.0}), o), c10::Error);
}

TEST(PolicyLoss, GspoSequenceRatio) {
  // row0, A = +1, log ratios [0.1, 0.3]: s0 = exp(0.2) = 1.2214 > 1.2 -> l = -1.2 per token,
  //   clipped, no gradient.
  // row1, A = +1, log ratios [0.0, 0.2]: s1 = exp(0.1) = 1.1052 -> l = -s1 per token.
  // seq-mean-token-mean: (-1.2 - s1) / 2. Gradient of row1's tokens: -s1 / (2 seqs * 2 tokens),
  // which is exactly d/dlogp_t of the GSPO objective -s1 / 2 (d s1 / d logp_t = s1 / 2).
  auto x = make_tiny({{std::exp(0.1), std::exp(0.3)}, {1.0, std::exp(0.2)}}, {1.0, 1.0});
  PolicyLossOptions o;
  o.ratio_level = RatioLevel::kSequence;
  o.aggregation = LossAggregation::kSeqMeanTokenMean;
  auto out = run(x, o);
  const double s1 = std::exp(0.1);
  EXPECT_NEAR(out.loss.item<double>(), (-1.2 - s1) / 2, 1e-12);
  EXPECT_NEAR(out.stats.ratio_mean, (2 * std::exp(0.2) + 2 * s1) / 4, 1e-12);
  EXPECT_NEAR(out.stats.clip_ratio_high, 0.5, 1e-12);
  out.loss.backward();
  expect_near_dvec(x.theta.grad(), {0.0, 0.0, -s1 / 4, -s1 / 4});

  // Same gradient as differentiating the textbook sequence objective directly.
  auto theta = torch::tensor({0.0, 0.2}, kF64).requires_grad_(true);
  auto s = torch::exp(theta.mean());
  (-s / 2).backward();  // row1's share of the 2-sequence mean, unclipped
  expect_near_dvec(theta.grad(), {-s1 / 4, -s1 / 4});
}

TEST(PolicyLoss, ZeroAdvantagesGiveZeroGradient) {
  torch::manual_seed(3);
  for (auto agg : {LossAggregation::kTokenMean, LossAggregation::kSeqMeanTokenMean,
                   LossAggregation::kSeqMeanTokenSumNorm, LossAggregation::kSeqMeanTokenSum})
    for (auto level : {RatioLevel::kToken, RatioLevel::kSequence}) {
      auto theta = (torch::randn({3, 4}, kF64) * 0.5).requires_grad_(true);
      auto old = -torch::rand({3, 4}, kF64) * 3;
      PolicyLossInputs in;
      in.old_logprobs = old;
      in.logprobs = old + theta;
      in.mask = torch::tensor({{1, 1, 1, 1}, {1, 1, 0, 0}, {1, 0, 0, 0}}, kF64);
      in.advantages = torch::zeros({3}, kF64);
      in.behaviour_logprobs = old - 0.3;
      PolicyLossOptions o;
      o.aggregation = agg;
      o.ratio_level = level;
      o.dual_clip_c = 3.0;
      o.tis = TisLevel::kToken;
      auto out = policy_loss(in, o, make_normalizer({in.mask}, 4));
      out.loss.backward();
      EXPECT_EQ(out.loss.item<double>(), 0.0);
      EXPECT_EQ(theta.grad().abs().max().item<double>(), 0.0);
    }
}

TEST(PolicyLoss, FirstPassRatioIsOneAndNothingClipped) {
  // mu = 1, first pass: logp == old, whatever the advantages.
  torch::manual_seed(4);
  auto old = -torch::rand({4, 5}, kF64) * 4;
  auto theta = torch::zeros({4, 5}, kF64).requires_grad_(true);
  PolicyLossInputs in;
  in.old_logprobs = old;
  in.logprobs = old + theta;
  in.mask = torch::ones({4, 5}, kF64);
  in.advantages = torch::tensor({2.0, -1.0, 0.5, -3.0}, kF64);
  PolicyLossOptions o;
  o.dual_clip_c = 3.0;
  auto out = policy_loss(in, o, make_normalizer({in.mask}));
  EXPECT_EQ(out.stats.ratio_min, 1.0);
  EXPECT_EQ(out.stats.ratio_max, 1.0);
  EXPECT_EQ(out.stats.clip_ratio, 0.0);
  EXPECT_EQ(out.stats.dual_clip_ratio, 0.0);
  EXPECT_EQ(out.stats.approx_kl, 0.0);
  // loss = -mean_tokens(A) = -(2 - 1 + 0.5 - 3) / 4 = 0.375; gradient -A / 20 per token.
  EXPECT_NEAR(out.loss.item<double>(), 0.375, 1e-12);
  out.loss.backward();
  auto want = (-in.advantages / 20).unsqueeze(1).expand({4, 5});
  EXPECT_TRUE(torch::allclose(theta.grad(), want, 0, 1e-15));
}

TEST(PolicyLoss, TruncatedImportanceWeights) {
  // old - behaviour = [log 3, log 0.5 | log 1.5, pad]:
  //   token:    w = [min(3, 2), 0.5 | 1.5, 1 (pad)]
  //   sequence: w0 = min(3 * 0.5, 2) = 1.5; w1 = 1.5 (pad stays 1)
  auto old = torch::tensor({{-1.0, -1.0}, {-1.0, -1.0}}, kF64);
  auto beh = old - torch::tensor({{std::log(3.0), std::log(0.5)}, {std::log(1.5), 0.0}}, kF64);
  auto mask = torch::tensor({{1.0, 1.0}, {1.0, 0.0}}, kF64);
  expect_near_dvec(truncated_is_weights(old, beh, mask, TisLevel::kToken, 2.0),
                   {2.0, 0.5, 1.5, 1.0}, 1e-6);
  expect_near_dvec(truncated_is_weights(old, beh, mask, TisLevel::kSequence, 2.0),
                   {1.5, 1.5, 1.5, 1.0}, 1e-6);
  expect_near_dvec(truncated_is_weights(old, beh, mask, TisLevel::kNone, 2.0), {1, 1, 1, 1});

  // In the loss (first pass, ratio 1, A = [1, -1]): l = -A * w;
  // token-mean = (-2 - 0.5 + 1.5) / 3 = -1/3.
  auto theta = torch::zeros({2, 2}, kF64).requires_grad_(true);
  PolicyLossInputs in;
  in.old_logprobs = old;
  in.logprobs = old + theta;
  in.behaviour_logprobs = beh;
  in.mask = mask;
  in.advantages = torch::tensor({1.0, -1.0}, kF64);
  PolicyLossOptions o;
  o.tis = TisLevel::kToken;
  auto out = policy_loss(in, o, make_normalizer({mask}));
  EXPECT_NEAR(out.loss.item<double>(), -1.0 / 3, 1e-6);
  EXPECT_NEAR(out.stats.tis_max, 2.0, 1e-6);
  EXPECT_NEAR(out.stats.tis_min, 0.5, 1e-6);
  EXPECT_NEAR(out.stats.tis_clip_ratio, 1.0 / 3, 1e-6);
  // mismatch_kl: rho - 1 - log rho for rho = pi_old / pi_beh = 3, 0.5, 1.5, mean of 3:
  // (0.9013877 + 0.1931472 + 0.0945349) / 3.
  EXPECT_NEAR(out.stats.mismatch_kl,
              (3 - 1 - std::log(3.0) + 0.5 - 1 - std::log(0.5) + 1.5 - 1 - std::log(1.5)) / 3,
              1e-6);
  EXPECT_NEAR(out.stats.mismatch_kl, 1.1890698 / 3, 1e-6);
  out.loss.backward();
  // The weights are constants: gradient -A * w * r / 3.
  expect_near_dvec(theta.grad(), {-2.0 / 3, -0.5 / 3, 1.5 / 3, 0.0}, 1e-6);
  // Required when on.
  in.behaviour_logprobs = torch::Tensor();
  EXPECT_THROW(policy_loss(in, o, make_normalizer({mask})), c10::Error);
}

TEST(PolicyLoss, KlAndEntropyTermsInTheLoss) {
  // First pass, A = 0, so only the KL and entropy terms remain.
  // logp = [-1, -2], ref = [-2, -1]: k3 = [e^-1 + 1 - 1, e^1 - 1 - 1] = [0.3678794, 0.7182818]
  // entropy = [1, 3]. token-mean: loss = 0.1 * (k3 sum)/2 - 0.01 * 4/2.
  auto logp = torch::tensor({{-1.0, -2.0}}, kF64).requires_grad_(true);
  PolicyLossInputs in;
  in.logprobs = logp;
  in.old_logprobs = logp.detach();
  in.ref_logprobs = torch::tensor({{-2.0, -1.0}}, kF64);
  in.entropy = torch::tensor({{1.0, 3.0}}, kF64);
  in.mask = torch::ones({1, 2}, kF64);
  in.advantages = torch::zeros({1}, kF64);
  PolicyLossOptions o;
  o.kl_coef = 0.1;
  o.entropy_coef = 0.01;
  auto out = policy_loss(in, o, make_normalizer({in.mask}));
  const double k3 = std::exp(-1.0) + std::exp(1.0) - 2.0;
  EXPECT_NEAR(out.loss.item<double>(), 0.1 * k3 / 2 - 0.01 * 2.0, 1e-12);
  EXPECT_NEAR(out.stats.kl, k3 / 2, 1e-12);
  EXPECT_NEAR(out.stats.kl_mean, k3 / 2, 1e-12);
  EXPECT_NEAR(out.stats.entropy_mean, 2.0, 1e-12);
  EXPECT_EQ(out.stats.pg_loss, 0.0);
  // KL logged but not in the loss when kl_coef = 0.
  o.kl_coef = 0;
  o.entropy_coef = 0;
  auto logged = policy_loss(in, o, make_normalizer({in.mask}));
  EXPECT_EQ(logged.loss.item<double>(), 0.0);
  EXPECT_NEAR(logged.stats.kl_mean, k3 / 2, 1e-12);
  // Reference required when kl_coef > 0.
  o.kl_coef = 0.1;
  in.ref_logprobs = torch::Tensor();
  EXPECT_THROW(policy_loss(in, o, make_normalizer({in.mask})), c10::Error);
}

// A random mini-batch whose rows have different lengths (one row empty), with every
// optional input, differentiable through one leaf.
struct RandomBatch {
  torch::Tensor theta, old, beh, ref, mask, adv;
  PolicyLossInputs slice(int64_t lo, int64_t hi) const {
    auto m = mask.slice(0, lo, hi);
    // Trim the padding columns this micro-batch does not need (different T per micro-batch).
    const int64_t t = std::max<int64_t>(1, m.sum(1).max().item<int64_t>());
    auto cols = [&](const torch::Tensor& x) { return x.slice(0, lo, hi).slice(1, 0, t); };
    PolicyLossInputs in;
    in.old_logprobs = cols(old);
    in.logprobs = cols(old) + cols(theta);
    in.behaviour_logprobs = cols(beh);
    in.ref_logprobs = cols(ref);
    in.entropy = cols(theta).sin() + 1.0;  // any differentiable function of theta
    in.mask = m.slice(1, 0, t);
    in.advantages = adv.slice(0, lo, hi);
    return in;
  }
};

RandomBatch random_batch(uint64_t seed) {
  torch::manual_seed(seed);
  const int64_t b = 7, t = 6;
  RandomBatch r;
  r.theta = (torch::randn({b, t}, kF64) * 0.3).requires_grad_(true);
  r.old = -torch::rand({b, t}, kF64) * 4;
  r.beh = r.old + torch::randn({b, t}, kF64) * 0.5;
  r.ref = r.old + torch::randn({b, t}, kF64) * 0.5;
  auto len = torch::tensor({6, 1, 3, 0, 5, 2, 4});
  r.mask = (torch::arange(t).unsqueeze(0) < len.unsqueeze(1)).to(kF64);
  r.adv = torch::randn({b}, kF64);
  return r;
}

TEST(PolicyLoss, GradientAccumulationInvariance) {
  struct Mode {
    LossAggregation agg;
    RatioLevel level;
  };
  for (auto mode : {Mode{LossAggregation::kTokenMean, RatioLevel::kToken},
                    Mode{LossAggregation::kSeqMeanTokenMean, RatioLevel::kToken},
                    Mode{LossAggregation::kSeqMeanTokenSumNorm, RatioLevel::kToken},
                    Mode{LossAggregation::kSeqMeanTokenSum, RatioLevel::kToken},
                    Mode{LossAggregation::kSeqMeanTokenMean, RatioLevel::kSequence}}) {
    PolicyLossOptions o;
    o.aggregation = mode.agg;
    o.ratio_level = mode.level;
    o.eps_high = 0.28;
    o.dual_clip_c = 3.0;
    o.kl_coef = 0.05;
    o.entropy_coef = 0.01;
    o.tis = TisLevel::kToken;

    // Full batch.
    auto full = random_batch(11);
    auto norm = make_normalizer({full.mask}, /*max_length=*/6);
    auto out = policy_loss(full.slice(0, 7), o, norm);
    out.loss.backward();
    auto g_full = full.theta.grad().clone();
    ASSERT_GT(g_full.abs().sum().item<double>(), 0.0);

    // Uneven micro-batches [0, 2), [2, 3), [3, 7): the normaliser is computed once, over
    // all of them, and the micro-batch losses are summed as they are.
    auto acc = random_batch(11);
    const std::vector<std::pair<int64_t, int64_t>> splits = {{0, 2}, {2, 3}, {3, 7}};
    std::vector<torch::Tensor> masks;
    for (auto [lo, hi] : splits) masks.push_back(acc.slice(lo, hi).mask);
    auto micro_norm = make_normalizer(masks, 6);
    EXPECT_EQ(micro_norm.tokens, norm.tokens);
    EXPECT_EQ(micro_norm.sequences, norm.sequences);
    PolicyLossStats stats;
    double loss_sum = 0;
    for (auto [lo, hi] : splits) {
      auto part = policy_loss(acc.slice(lo, hi), o, micro_norm);
      part.loss.backward();  // gradients accumulate in acc.theta.grad()
      loss_sum += part.loss.item<double>();
      stats.merge(part.stats);
    }
    EXPECT_NEAR(loss_sum, out.loss.item<double>(), 1e-12);
    EXPECT_TRUE(torch::allclose(acc.theta.grad(), g_full, /*rtol=*/0, /*atol=*/1e-6))
        << "aggregation " << static_cast<int>(mode.agg) << " level "
        << static_cast<int>(mode.level);
    // Merged statistics equal the full-batch ones.
    EXPECT_EQ(stats.tokens, out.stats.tokens);
    EXPECT_EQ(stats.sequences, out.stats.sequences);
    EXPECT_NEAR(stats.pg_loss, out.stats.pg_loss, 1e-12);
    EXPECT_NEAR(stats.clip_ratio, out.stats.clip_ratio, 1e-12);
    EXPECT_NEAR(stats.ratio_mean, out.stats.ratio_mean, 1e-12);
    EXPECT_NEAR(stats.ratio_max, out.stats.ratio_max, 1e-12);
    EXPECT_NEAR(stats.tis_min, out.stats.tis_min, 1e-12);
    EXPECT_NEAR(stats.mismatch_kl, out.stats.mismatch_kl, 1e-12);
    EXPECT_NEAR(stats.kl_mean, out.stats.kl_mean, 1e-12);
  }
}

TEST(PolicyLoss, LocalNormalisationWouldBreakInvariance) {
  // The control: normalising each micro-batch by its own token count (the TRL bug)
  // gives a different gradient on the same split, so the test above can fail.
  auto full = random_batch(11);
  PolicyLossOptions o;
  policy_loss(full.slice(0, 7), o, make_normalizer({full.mask})).loss.backward();
  auto acc = random_batch(11);
  for (auto [lo, hi] : std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 3}, {3, 7}}) {
    auto in = acc.slice(lo, hi);
    (policy_loss(in, o, make_normalizer({in.mask})).loss / 3).backward();
  }
  EXPECT_FALSE(torch::allclose(acc.theta.grad(), full.theta.grad(), 0, 1e-6));
}

TEST(PolicyLoss, MaskingTruncatedCompletionsRemovesTheirGradient) {
  auto x = main_tiny();
  auto truncated = torch::tensor({false, true});
  x.mask = mask_truncated(x.mask, truncated);
  expect_near_dvec(x.mask, {1, 1, 1, 0, 0, 0});
  auto norm = make_normalizer({x.mask});
  EXPECT_EQ(norm.tokens, 3);
  EXPECT_EQ(norm.sequences, 1);
  auto out = policy_loss(x.inputs(), PolicyLossOptions{}, norm);
  // Only row0 remains: (-1.0 - 1.2 - 0.7) / 3.
  EXPECT_NEAR(out.loss.item<double>(), -2.9 / 3, 1e-12);
  out.loss.backward();
  expect_near_dvec(x.theta.grad(), {-1.0 / 3, 0.0, -0.7 / 3, 0.0, 0.0, 0.0});
}

TEST(PolicyLoss, StatsMergeSkipsEmptyMicroBatches) {
  PolicyLossStats a, empty;
  a.tokens = 4;
  a.ratio_min = 0.9;
  a.ratio_max = 1.1;
  a.ratio_mean = 1.0;
  a.loss = 0.5;
  empty.ratio_min = empty.ratio_max = std::nan("");
  empty.loss = 0.25;
  a.merge(empty);
  EXPECT_EQ(a.ratio_min, 0.9);
  EXPECT_EQ(a.ratio_max, 1.1);
  EXPECT_EQ(a.ratio_mean, 1.0);
  EXPECT_EQ(a.loss, 0.75);
  EXPECT_EQ(a.tokens, 4);
}

}  // namespace
}  // namespace r1kit::grpo
