// Tests of rollout/sampling.h on hand-made distributions (llama.cpp's sampler tests
// style): which tokens top-k, top-p and min-p keep, greedy, the log-prob convention
// (the processed distribution),
// the draw frequencies and the counter-based uniforms.
#include "rollout/sampling.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>
#include <tuple>

namespace r1kit::rollout {
namespace {

// The kept token ids of row 0 of a mask.
std::set<int64_t> kept(const torch::Tensor& mask) {
  std::set<int64_t> out;
  auto m = mask[0].to(torch::kCPU);
  for (int64_t i = 0; i < m.size(0); ++i)
    if (m[i].item<bool>()) out.insert(i);
  return out;
}

torch::Tensor probs(std::vector<float> p) {
  return torch::tensor(p, torch::kFloat).view({1, -1});
}

TEST(TruncationMaskTest, AllOffKeepsEverything) {
  EXPECT_FALSE(truncation_mask(probs({0.5, 0.5}), 0, 1.0, 0.0).defined());
  EXPECT_FALSE(truncation_mask(probs({0.5, 0.5}), /*top_k=*/2, 1.0, 0.0).defined());
}

TEST(TruncationMaskTest, TopKKeepsTheKMostLikely) {
  struct Case {
    std::vector<float> p;
    int64_t k;
    std::set<int64_t> want;
  };
  const std::vector<Case> cases = {
      {{0.1, 0.4, 0.2, 0.3}, 1, {1}},
      {{0.1, 0.4, 0.2, 0.3}, 2, {1, 3}},
      {{0.1, 0.4, 0.2, 0.3}, 3, {1, 2, 3}},
      {{0.25, 0.25, 0.25, 0.25}, 2, {0, 1}},  // ties: lower ids first
  };
  for (const auto& c : cases) EXPECT_EQ(kept(truncation_mask(probs(c.p), c.k, 1.0, 0.0)), c.want);
}

TEST(TruncationMaskTest, TopPKeepsTheSmallestPrefixReachingP) {
  // Sorted: 0 (0.5), 2 (0.3), 3 (0.15), 1 (0.05); mass before: 0, 0.5, 0.8, 0.95.
  const auto p = probs({0.5, 0.05, 0.3, 0.15});
  EXPECT_EQ(kept(truncation_mask(p, 0, 0.3, 0.0)), (std::set<int64_t>{0}));
  EXPECT_EQ(kept(truncation_mask(p, 0, 0.45, 0.0)), (std::set<int64_t>{0}));
  EXPECT_EQ(kept(truncation_mask(p, 0, 0.75, 0.0)), (std::set<int64_t>{0, 2}));
  EXPECT_EQ(kept(truncation_mask(p, 0, 0.9, 0.0)), (std::set<int64_t>{0, 2, 3}));
  EXPECT_EQ(kept(truncation_mask(p, 0, 0.99, 0.0)), (std::set<int64_t>{0, 1, 2, 3}));
  // A tiny top_p still keeps the most likely token.
  EXPECT_EQ(kept(truncation_mask(p, 0, 1e-9, 0.0)), (std::set<int64_t>{0}));
}

TEST(TruncationMaskTest, TopPIsOverTheTopKRenormalised) {
  // Top-2 of {0.4, 0.3, 0.2, 0.1} has mass 0.7; renormalised: 0.571, 0.429.
  const auto p = probs({0.4, 0.3, 0.2, 0.1});
  EXPECT_EQ(kept(truncation_mask(p, 2, 0.5, 0.0)), (std::set<int64_t>{0}));     // 0.571 >= 0.5
  EXPECT_EQ(kept(truncation_mask(p, 2, 0.6, 0.0)), (std::set<int64_t>{0, 1}));  // 0.571 < 0.6
  // Without top-k, 0.6 needs {0.4, 0.3} as well, and 0.75 three tokens.
  EXPECT_EQ(kept(truncation_mask(p, 0, 0.75, 0.0)), (std::set<int64_t>{0, 1, 2}));
  EXPECT_EQ(kept(truncation_mask(p, 2, 0.75, 0.0)), (std::set<int64_t>{0, 1}));
}

TEST(TruncationMaskTest, MinPKeepsTokensAboveAFractionOfTheMax) {
  const auto p = probs({0.5, 0.19, 0.11, 0.2});
  EXPECT_EQ(kept(truncation_mask(p, 0, 1.0, 0.4)), (std::set<int64_t>{0, 3}));  // p >= 0.2
  EXPECT_EQ(kept(truncation_mask(p, 0, 1.0, 0.2)), (std::set<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(kept(truncation_mask(p, 0, 1.0, 1.0)), (std::set<int64_t>{0}));
  // Combined with top-k: the intersection.
  EXPECT_EQ(kept(truncation_mask(p, 1, 1.0, 0.2)), (std::set<int64_t>{0}));
}

TEST(TruncationMaskTest, RowsAreIndependent) {
  auto p = torch::tensor({0.7f, 0.2f, 0.1f, 0.1f, 0.2f, 0.7f}).view({2, 3});
  auto m = truncation_mask(p, 1, 1.0, 0.0);
  EXPECT_TRUE(m[0][0].item<bool>());
  EXPECT_TRUE(m[1][2].item<bool>());
  EXPECT_EQ(m.sum().item<int64_t>(), 2);
}

TEST(SampleTokensTest, TemperatureZeroIsArgmaxWithTemperatureOneLogprob) {
  torch::manual_seed(0);
  auto logits = torch::randn({5, 50});
  SamplingParams p;
  p.temperature = 0;
  auto s = sample_tokens(logits, p, {});
  EXPECT_TRUE(torch::equal(s.tokens, logits.argmax(-1)));
  auto want = torch::log_softmax(logits, -1).gather(1, s.tokens.unsqueeze(1)).squeeze(1);
  EXPECT_LT((s.logprobs - want).abs().max().item<double>(), 1e-6);
}

// The sampler as LibTorch ops (inverse CDF by cumsum and searchsorted), the form it had
// before its row loop: the loop must pick the same token for every row and uniform.
torch::Tensor chain_sample(const torch::Tensor& z, const SamplingParams& p,
                           const std::vector<double>& u) {
  const int64_t B = z.size(0), V = z.size(1);
  auto zt = z * (1.0 / p.temperature);
  auto probs = torch::log_softmax(zt, -1).exp();
  auto keep = policy::kept_tokens(zt, {p.top_k, p.top_p, p.min_p});
  auto q = keep.defined() ? probs.masked_fill(keep.logical_not(), 0.0f) : probs;
  auto cdf = q.to(torch::kDouble).cumsum(-1);
  auto x = torch::tensor(u, torch::kDouble).view({B, 1}) * cdf.narrow(1, V - 1, 1);
  auto tok = torch::searchsorted(cdf, x, /*out_int32=*/false, /*right=*/true).squeeze(1);
  auto last_kept =
      ((q > 0).to(torch::kLong) * torch::arange(V, torch::kLong).unsqueeze(0)).amax(-1);
  return torch::where(tok >= V, last_kept, tok);
}

// No filter, top-k, top-p and min-p, at temperatures 0.7-1.3.
std::vector<SamplingParams> filter_settings() {
  std::vector<SamplingParams> out;
  for (const auto& [T, k, top_p, min_p] : std::vector<std::tuple<double, int64_t, double, double>>{
           {1.0, 0, 1.0, 0.0}, {0.7, 5, 1.0, 0.0}, {1.3, 0, 0.8, 0.0}, {1.0, 0, 1.0, 0.05}}) {
    SamplingParams p;
    p.temperature = T;
    p.top_k = k;
    p.top_p = top_p;
    p.min_p = min_p;
    out.push_back(p);
  }
  return out;
}

TEST(SampleTokensTest, RowLoopPicksTheTokensOfTheCumsumSearch) {
  torch::manual_seed(7);
  const int64_t B = 300, V = 97;
  auto z = torch::randn({B, V}) * 4;
  z.narrow(0, 0, 5).fill_(0);  // uniform rows: many tokens of equal probability
  std::vector<double> u(B);
  for (int64_t b = 0; b < B; ++b) u[b] = static_cast<double>((b * 7919) % 1000) / 1000;
  u[5] = 0;
  u[6] = std::nextafter(1.0, 0.0);  // the largest uniform: the last kept token
  for (const SamplingParams& p : filter_settings()) {
    SCOPED_TRACE("T=" + std::to_string(p.temperature) + " top_k=" + std::to_string(p.top_k));
    auto got = sample_tokens(z, p, u).tokens;
    EXPECT_TRUE(torch::equal(got, chain_sample(z, p, u)));
  }
}

TEST(SampleTokensTest, SameBitsOnEveryThreadCount) {
  // Rows split over 2-4 threads of the pool: every token and log-prob as on one thread,
  // and the tokens still those of the cumsum search. 101 rows: uneven parts.
  torch::manual_seed(11);
  const int64_t B = 101, V = 257;
  ASSERT_GE(B / kSampleRowsMin, 4) << "too few rows to split over 4 threads";
  auto z = torch::randn({B, V}) * 3;
  z.narrow(0, 0, 3).fill_(0);  // uniform rows
  std::vector<double> u(B);
  for (int64_t b = 0; b < B; ++b) u[b] = sample_uniform(/*seed=*/3, b);
  auto settings = filter_settings();
  settings.emplace_back();
  settings.back().temperature = 0;  // greedy
  for (const SamplingParams& p : settings) {
    SCOPED_TRACE("T=" + std::to_string(p.temperature) + " top_k=" + std::to_string(p.top_k));
    const auto one = sample_tokens(z, p, u);
    if (p.temperature > 0) {
      EXPECT_TRUE(torch::equal(one.tokens, chain_sample(z, p, u)));
    }
    for (int threads = 2; threads <= 4; ++threads) {
      policy::ExecutionContext exec;
      exec.decode_threads = threads;
      const auto got = sample_tokens(z, p, u, exec);
      EXPECT_TRUE(torch::equal(got.tokens, one.tokens)) << threads << " threads";
      EXPECT_TRUE(torch::equal(got.logprobs, one.logprobs)) << threads << " threads";
    }
  }
}

TEST(SampleTokensTest, LogprobIsOfTheProcessedDistribution) {
  // p = {0.1, 0.4, 0.2, 0.3}, top-k 2 keeps {1, 3}: q = {4/7, 3/7}.
  auto logits = torch::log(torch::tensor({0.1f, 0.4f, 0.2f, 0.3f})).view({1, 4}).expand({2, 4});
  SamplingParams k2;
  k2.top_k = 2;
  auto a = sample_tokens(logits.contiguous(), k2, {0.1, 0.9});
  EXPECT_EQ(a.tokens[0].item<int64_t>(), 1);
  EXPECT_EQ(a.tokens[1].item<int64_t>(), 3);
  EXPECT_NEAR(a.logprobs[0].item<double>(), std::log(4.0 / 7), 1e-6);
  EXPECT_NEAR(a.logprobs[1].item<double>(), std::log(3.0 / 7), 1e-6);
  // No filter: the full distribution, log 0.4 and log 0.3.
  auto b = sample_tokens(logits.contiguous(), SamplingParams{}, {0.3, 0.9});
  EXPECT_EQ(b.tokens[0].item<int64_t>(), 1);
  EXPECT_EQ(b.tokens[1].item<int64_t>(), 3);
  EXPECT_NEAR(b.logprobs[0].item<double>(), std::log(0.4), 1e-6);
  EXPECT_NEAR(b.logprobs[1].item<double>(), std::log(0.3), 1e-6);

  torch::manual_seed(1);
  auto z = torch::randn({4, 30}) * 3;
  SamplingParams p;
  p.temperature = 0.7;
  p.top_k = 3;
  p.top_p = 0.8;
  auto s = sample_tokens(z, p, {0.1, 0.5, 0.9, 0.99});
  auto keep = truncation_mask(torch::softmax(z / 0.7, -1), 3, 0.8, 0.0);
  auto want = torch::log_softmax((z / 0.7).masked_fill(keep.logical_not(), -INFINITY), -1)
                  .gather(1, s.tokens.unsqueeze(1))
                  .squeeze(1);
  EXPECT_LT((s.logprobs - want).abs().max().item<double>(), 1e-6);
  // Every token is one of its row's top 3.
  auto top3 = std::get<1>(z.topk(3, -1));
  EXPECT_TRUE((top3 == s.tokens.unsqueeze(1)).any(-1).all().item<bool>());
}

TEST(SampleTokensTest, DrawFrequenciesMatchTheRenormalisedKeptSet) {
  // p = {0.1, 0.4, 0.2, 0.3}; top-k 2 keeps {1, 3}: 0.4/0.7 and 0.3/0.7.
  const int64_t n = 20000;
  auto logits = torch::log(torch::tensor({0.1f, 0.4f, 0.2f, 0.3f})).view({1, 4}).expand({n, 4});
  SamplingParams p;
  p.top_k = 2;
  std::vector<double> u(n);
  for (int64_t i = 0; i < n; ++i) u[i] = sample_uniform(/*seed=*/7, i);
  auto tok = sample_tokens(logits.contiguous(), p, u).tokens;
  auto counts = torch::bincount(tok, {}, 4).to(torch::kDouble) / n;
  EXPECT_EQ(counts[0].item<double>(), 0.0);
  EXPECT_EQ(counts[2].item<double>(), 0.0);
  EXPECT_NEAR(counts[1].item<double>(), 4.0 / 7, 0.015);
  EXPECT_NEAR(counts[3].item<double>(), 3.0 / 7, 0.015);
}

TEST(SampleTokensTest, InverseCdfBoundaries) {
  // Kept {1, 3} with masses 4/7, 3/7: u just below 4/7 picks 1, just above picks 3,
  // and u at the top end never steps past the last kept token.
  auto logits = torch::log(torch::tensor({0.1f, 0.4f, 0.2f, 0.3f})).view({1, 4}).expand({3, 4});
  SamplingParams p;
  p.top_k = 2;
  auto tok =
      sample_tokens(logits.contiguous(), p, {4.0 / 7 - 1e-4, 4.0 / 7 + 1e-4, 1 - 1e-16}).tokens;
  EXPECT_EQ(tok[0].item<int64_t>(), 1);
  EXPECT_EQ(tok[1].item<int64_t>(), 3);
  EXPECT_EQ(tok[2].item<int64_t>(), 3);
}

TEST(SampleUniformTest, DeterministicInRangeAndDistinctPerStream) {
  EXPECT_EQ(sample_uniform(1, 5), sample_uniform(1, 5));
  EXPECT_NE(sample_uniform(1, 5), sample_uniform(2, 5));
  EXPECT_NE(sample_uniform(1, 5), sample_uniform(1, 6));
  double mean = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = sample_uniform(3, i);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    mean += u / 10000;
  }
  EXPECT_NEAR(mean, 0.5, 0.02);
}

TEST(ValidateSamplingTest, NamesTheBadField) {
  struct Case {
    SamplingParams p;
    std::string field;
  };
  std::vector<Case> cases(7);
  cases[0].p.temperature = -1, cases[0].field = "temperature";
  cases[1].p.temperature = NAN, cases[1].field = "temperature";
  cases[2].p.top_k = -2, cases[2].field = "top_k";
  cases[3].p.top_p = 0, cases[3].field = "top_p";
  cases[4].p.min_p = 1.5, cases[4].field = "min_p";
  cases[5].p.max_new_tokens = 0, cases[5].field = "max_new_tokens";
  cases[6].p.stop_token_ids = {100}, cases[6].field = "stop_token_ids";
  for (const auto& c : cases) {
    Status s = validate_sampling(c.p, /*vocab_size=*/100);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_NE(s.message().find(c.field), std::string::npos) << s.message();
  }
  EXPECT_TRUE(validate_sampling(SamplingParams{}, 100).ok());
}

}  // namespace
}  // namespace r1kit::rollout
