// The on-policy distillation losses (sft/reverse_kl.h) against hand computations: the
// sampled-token estimator's value and gradient, the full-vocabulary reverse KL's value
// and gradient, and the mask.
#include "sft/reverse_kl.h"

#include <gtest/gtest.h>

#include <cmath>

namespace r1kit::sft {
namespace {

TEST(ReverseKlTest, SampledEstimatorMatchesHandComputation) {
  // One row of three tokens, the last masked out (N = 2):
  //   student s = ln .5, ln .2, ln .9;  teacher u = ln .25, ln .1, ln .01
  //   k = s - u = ln 2, ln 2, (ln 90: masked)
  //   reverse_kl = (ln 2 + ln 2) / 2 = ln 2
  //   loss = (k_0 s_0 + k_1 s_1) / 2 = ln 2 (ln .5 + ln .2) / 2 = ln 2 ln .1 / 2
  //   d loss / d s_t = m_t k_t / N = (ln 2 / 2, ln 2 / 2, 0)
  auto s = torch::log(torch::tensor({{0.5, 0.2, 0.9}}, torch::kFloat)).requires_grad_(true);
  auto u = torch::log(torch::tensor({{0.25, 0.1, 0.01}}, torch::kFloat));
  auto mask = torch::tensor({{1.0, 1.0, 0.0}}, torch::kFloat);
  ReverseKlLoss l = sampled_reverse_kl(s, u, mask);
  EXPECT_EQ(l.tokens, 2);
  EXPECT_NEAR(l.reverse_kl, std::log(2.0), 1e-6);
  EXPECT_NEAR(l.loss.item<double>(), std::log(2.0) * std::log(0.1) / 2, 1e-6);
  l.loss.backward();
  const double g = std::log(2.0) / 2;  // 0.3465736
  auto want = torch::tensor({{g, g, 0.0}}, torch::kFloat);
  EXPECT_TRUE(torch::allclose(s.grad(), want, 1e-6, 1e-6)) << s.grad();
  // The teacher side gets no gradient, even when it asks for one.
  auto u2 = u.clone().requires_grad_(true);
  auto l2 = sampled_reverse_kl(s, u2, mask);
  l2.loss.backward();
  EXPECT_FALSE(u2.grad().defined() && u2.grad().abs().sum().item<double>() > 0);
  // Student equal to teacher: the estimate and the gradient are 0.
  auto same = sampled_reverse_kl(u.clone().requires_grad_(true), u, mask);
  EXPECT_NEAR(same.reverse_kl, 0.0, 1e-7);
  // No token at all: loss 0, not NaN.
  auto none = sampled_reverse_kl(s, u, torch::zeros({1, 3}));
  EXPECT_EQ(none.tokens, 0);
  EXPECT_EQ(none.loss.item<double>(), 0.0);
}

TEST(ReverseKlTest, FullVocabularyMatchesHandComputation) {
  // Row 0: student logits (0, 0) -> p_S = (.5, .5); teacher logits (ln 4, 0) -> p_T = (.8, .2).
  //   KL = .5 ln(.5/.8) + .5 ln(.5/.2) = .5 ln(.625 * 2.5) = .5 ln 1.5625 = 0.2231436
  //   d KL / d z_j = p_S,j (log p_S,j - log p_T,j - KL):
  //     j=0: .5 (ln .625 - .2231436) = .5 (-.4700036 - .2231436) = -.3465736
  //     j=1: .5 (ln 2.5  - .2231436) = .5 ( .9162907 - .2231436) =  .3465736
  // Row 1 is masked out (any values); N = 1.
  auto z = torch::tensor({{0.0, 0.0}, {3.0, -1.0}}, torch::kFloat).requires_grad_(true);
  auto t = torch::tensor({{std::log(4.0), 0.0}, {0.0, 5.0}}, torch::kFloat);
  auto mask = torch::tensor({1.0, 0.0}, torch::kFloat);
  ReverseKlLoss l = full_reverse_kl(z, t, mask);
  EXPECT_EQ(l.tokens, 1);
  EXPECT_NEAR(l.loss.item<double>(), 0.5 * std::log(1.5625), 1e-6);
  EXPECT_NEAR(l.reverse_kl, 0.2231436, 1e-6);
  l.loss.backward();
  auto want = torch::tensor({{-0.3465736, 0.3465736}, {0.0, 0.0}}, torch::kFloat);
  EXPECT_TRUE(torch::allclose(z.grad(), want, 1e-6, 1e-6)) << z.grad();
  // Two unmasked rows: the mean of their KLs. Row 1 alone: p_S = softmax(3, -1), p_T =
  // softmax(0, 5); the same formula computed term by term.
  const double a = std::exp(3.0) / (std::exp(3.0) + std::exp(-1.0)), b = 1 - a;
  const double c = 1 / (1 + std::exp(5.0)), d = 1 - c;
  const double kl1 = a * std::log(a / c) + b * std::log(b / d);
  auto both = full_reverse_kl(z.detach(), t, torch::ones({2}));
  EXPECT_NEAR(both.reverse_kl, (0.5 * std::log(1.5625) + kl1) / 2, 1e-5);
  // Identical distributions (logits shifted by a constant): 0.
  EXPECT_NEAR(full_reverse_kl(t + 7.0, t, torch::ones({2})).reverse_kl, 0.0, 1e-6);
}

TEST(ReverseKlTest, ShapesAreChecked) {
  EXPECT_THROW(sampled_reverse_kl(torch::zeros({2, 3}), torch::zeros({2, 4}), torch::ones({2, 3})),
               c10::Error);
  EXPECT_THROW(full_reverse_kl(torch::zeros({2, 3}), torch::zeros({2, 3}), torch::ones({3})),
               c10::Error);
}

}  // namespace
}  // namespace r1kit::sft
