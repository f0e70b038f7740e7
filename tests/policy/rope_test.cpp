// The fused rotary embedding (policy/rope.h): a hand-computed rotation, then the output and
// the input gradient against the chain of LibTorch ops (rope_tail_reference) and against
// Rotary::apply, in both pair conventions, fp32 and bf16, with a part left unrotated.
#include "policy/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "policy/model.h"

namespace r1kit::policy {
namespace {

double rope_rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  auto ad = a.to(torch::kDouble), bd = b.to(torch::kDouble);
  const double scale = std::max(bd.abs().max().item<double>(), 1e-30);
  return (ad - bd).abs().max().item<double>() / scale;
}

TEST(RopeTest, HandComputedRotation) {
  // One head of D = 3: x = [5, 1, 2], the last R = 2 rotated by 90 degrees, scale 2:
  // y = 2 [5, 1 cos - 2 sin, 2 cos + 1 sin] = [10, -4, 2].
  auto x = torch::tensor({5.0f, 1.0f, 2.0f}).view({1, 1, 1, 3}).requires_grad_();
  auto cos = torch::zeros({1, 1, 1}), sin = torch::ones({1, 1, 1});
  for (bool interleave : {true, false}) {
    auto y = rope_tail(x, cos, sin, interleave, 2.0);
    EXPECT_NEAR(y[0][0][0][0].item<double>(), 10, 1e-6);
    EXPECT_NEAR(y[0][0][0][1].item<double>(), -4, 1e-6);
    EXPECT_NEAR(y[0][0][0][2].item<double>(), 2, 1e-6);
    // d/dx of y . [1, 1, 1]: 2 [1, cos + sin, -sin + cos] = [2, 2, -2].
    x.mutable_grad() = torch::Tensor();
    y.sum().backward();
    EXPECT_NEAR(x.grad()[0][0][0][0].item<double>(), 2, 1e-6);
    EXPECT_NEAR(x.grad()[0][0][0][1].item<double>(), 2, 1e-6);
    EXPECT_NEAR(x.grad()[0][0][0][2].item<double>(), -2, 1e-6);
  }
}

TEST(RopeTest, MatchesTheReferenceAndItsGradient) {
  torch::manual_seed(5);
  const int64_t B = 2, T = 5, h = 3, D = 24, R = 8;
  auto ang = torch::randn({B, T, R / 2}) * 3;
  auto cos = torch::cos(ang) * 1.1, sin = torch::sin(ang) * 1.1;
  auto g = torch::randn({B, T, h, D});
  for (auto dtype : {torch::kFloat, torch::kBFloat16}) {
    for (bool interleave : {true, false}) {
      auto x0 = torch::randn({B, T, h, D}).to(dtype);
      auto xa = x0.clone().requires_grad_(), xb = x0.clone().requires_grad_();
      auto ya = rope_tail(xa, cos, sin, interleave, 0.7);
      auto yb = rope_tail_reference(xb, cos, sin, interleave, 0.7);
      (ya.to(torch::kFloat) * g).sum().backward();
      (yb.to(torch::kFloat) * g).sum().backward();
      ASSERT_EQ(ya.scalar_type(), dtype);
      ASSERT_EQ(xa.grad().scalar_type(), dtype);
      const double tol = dtype == torch::kFloat ? 1e-6 : 1e-2;
      EXPECT_LT(rope_rel_err(ya, yb), tol) << interleave;
      EXPECT_LT(rope_rel_err(xa.grad(), xb.grad()), tol) << interleave;
    }
  }
}

TEST(RopeTest, ApplyTailAgreesWithRotaryApply) {
  // The model's two forms: apply_tail on [q_nope, q_pe] equals [q_nope, apply(q_pe)] times
  // the scale, for DeepSeek's interleaved pairs and for Llama's halves.
  for (bool interleave : {true, false}) {
    ModelArgs a;
    a.rope_interleave = interleave;
    const Rotary rope(a, 16);
    torch::manual_seed(6);
    auto q = torch::randn({2, 7, 4, 48});
    auto pos = torch::arange(7).unsqueeze(0).expand({2, 7}).contiguous() + 3;
    auto fused = rope.apply_tail(q, pos, 0.5);
    auto ref = torch::cat({q.narrow(-1, 0, 32), rope.apply(q.narrow(-1, 32, 16), pos)}, -1) * 0.5;
    EXPECT_LT(rope_rel_err(fused, ref), 1e-6) << interleave;
    // Positions of one row broadcast over the batch, as apply's do.
    auto one_row = rope.apply_tail(q, pos.narrow(0, 0, 1), 0.5);
    EXPECT_LT(rope_rel_err(one_row, ref), 1e-6) << interleave;
  }
}

TEST(RopeTest, RejectsMismatchedAngles) {
  auto x = torch::randn({1, 2, 1, 8});
  EXPECT_THROW(rope_tail(x, torch::zeros({1, 2, 5}), torch::zeros({1, 2, 5}), false, 1.0),
               c10::Error);  // R = 10 > D = 8
  EXPECT_THROW(rope_tail(x, torch::zeros({1, 3, 2}), torch::zeros({1, 3, 2}), false, 1.0),
               c10::Error);  // T differs
}

}  // namespace
}  // namespace r1kit::policy
