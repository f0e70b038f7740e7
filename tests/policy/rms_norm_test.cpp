// The fused RMSNorm (policy/rms_norm.h): a hand-computed row, then the output and both
// gradients against the chain of LibTorch ops (rms_norm_reference) for fp32 and bf16
// inputs and weights, odd widths, strided inputs, a frozen weight, several threads, other
// dtypes and CPU autocast.
#include "policy/rms_norm.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "core/torch_compat.h"
#include "policy/model.h"

namespace r1kit::policy {
namespace {

// max |a - b| / max |b|.
double norm_rel_err(const torch::Tensor& a, const torch::Tensor& b) {
  auto ad = a.to(torch::kDouble), bd = b.to(torch::kDouble);
  const double scale = std::max(bd.abs().max().item<double>(), 1e-30);
  return (ad - bd).abs().max().item<double>() / scale;
}

struct Result {
  torch::Tensor y, dx, dw;
};

// y, dL/dx and dL/dw for L = sum(y * g), through `norm`.
template <typename Norm>
Result run(Norm norm, const torch::Tensor& x0, const torch::Tensor& w0, const torch::Tensor& g,
           double eps = 1e-6) {
  auto x = x0.detach().clone().requires_grad_();
  auto w = w0.detach().clone().requires_grad_();
  auto y = norm(x, w, eps);
  (y.to(torch::kFloat) * g).sum().backward();
  return {y.detach(), x.grad(), w.grad()};
}

TEST(RmsNormTest, HandComputedRow) {
  // x = [3, 4]: mean of squares 12.5, r = 1/sqrt(12.5); w = [1, 2].
  auto x = torch::tensor({3.0f, 4.0f}).requires_grad_();
  auto w = torch::tensor({1.0f, 2.0f}).requires_grad_();
  auto y = rms_norm(x, w, 0.0);
  const double r = 1.0 / std::sqrt(12.5);
  EXPECT_NEAR(y[0].item<double>(), 3 * r, 1e-6);
  EXPECT_NEAR(y[1].item<double>(), 8 * r, 1e-6);
  // L = y0 + y1: dL/dw = x r; dL/dx_j = r (w_j - x_j r^2 (w . x) / 2) with w . x = 11.
  y.sum().backward();
  EXPECT_NEAR(w.grad()[0].item<double>(), 3 * r, 1e-6);
  EXPECT_NEAR(w.grad()[1].item<double>(), 4 * r, 1e-6);
  EXPECT_NEAR(x.grad()[0].item<double>(), r * (1 - 3 * r * r * 11 / 2), 1e-6);
  EXPECT_NEAR(x.grad()[1].item<double>(), r * (2 - 4 * r * r * 11 / 2), 1e-6);
}

TEST(RmsNormTest, Fp32MatchesTheReference) {
  torch::manual_seed(1);
  for (int64_t d : {1, 7, 16, 33, 64, 256, 300}) {
    auto x = torch::randn({3, 5, d}) * 2;
    auto w = torch::randn({d});
    auto g = torch::randn({3, 5, d});
    const auto a = run(rms_norm, x, w, g), b = run(rms_norm_reference, x, w, g);
    EXPECT_EQ(a.y.scalar_type(), torch::kFloat);
    EXPECT_LT(norm_rel_err(a.y, b.y), 1e-6) << "d " << d;
    // At d = 1 dL/dx is r g w eps / x^2 (x r is sign(x) up to eps), a cancellation: there
    // the error is measured against the size of the terms, r |g w|.
    const double terms =
        (torch::rsqrt(x.pow(2).mean(-1, true) + 1e-6) * (g * w).abs()).max().item<double>();
    if (d == 1)
      EXPECT_LT((a.dx - b.dx).abs().max().item<double>() / terms, 1e-5);
    else
      EXPECT_LT(norm_rel_err(a.dx, b.dx), 1e-5) << "d " << d;
    EXPECT_LT(norm_rel_err(a.dw, b.dw), 1e-5) << "d " << d;
  }
}

TEST(RmsNormTest, Bf16MatchesTheReference) {
  torch::manual_seed(2);
  // {x dtype, w dtype}: bf16 activations under autocast with fp32 master weights, and a
  // model held in bf16.
  for (auto [xt, wt] :
       {std::tuple{torch::kBFloat16, torch::kFloat}, std::tuple{torch::kBFloat16, torch::kBFloat16},
        std::tuple{torch::kFloat, torch::kBFloat16}}) {
    auto x = (torch::randn({64, 96}) * 3).to(xt);
    auto w = (torch::randn({96}) + 1).to(wt);
    auto g = torch::randn({64, 96});
    const auto a = run(rms_norm, x, w, g), b = run(rms_norm_reference, x, w, g);
    ASSERT_EQ(a.y.scalar_type(), b.y.scalar_type());
    EXPECT_EQ(a.dx.scalar_type(), xt);
    EXPECT_EQ(a.dw.scalar_type(), wt);
    // One bf16 rounding (2^-8 relative) apart at most: the fused pass keeps g w in fp32
    // where autograd rounds it to x's dtype, and sums in another order.
    EXPECT_LT(norm_rel_err(a.y, b.y), 1e-2);
    EXPECT_LT(norm_rel_err(a.dx, b.dx), 2e-2);
    EXPECT_LT(norm_rel_err(a.dw, b.dw), 2e-2);
    // ... and both far closer to the fp32 computation than a wrong formula would be.
    const auto f = run(rms_norm_reference, x.to(torch::kFloat), w.to(torch::kFloat), g);
    EXPECT_LT(norm_rel_err(a.dx, f.dx), 2e-2);
  }
}

TEST(RmsNormTest, StridedInputAndFrozenWeight) {
  torch::manual_seed(3);
  auto base = torch::randn({40, 24});
  auto x = base.t();  // [24, 40], not contiguous
  ASSERT_FALSE(x.is_contiguous());
  auto w = torch::randn({40});
  auto g = torch::randn({24, 40});
  auto xa = x.detach().clone().requires_grad_();
  auto ya = rms_norm(xa, w, 1e-5);  // w does not require grad
  (ya * g).sum().backward();
  const auto b = run(rms_norm_reference, x, w, g, 1e-5);
  EXPECT_LT(norm_rel_err(ya, b.y), 1e-6);
  EXPECT_LT(norm_rel_err(xa.grad(), b.dx), 1e-5);
  EXPECT_FALSE(w.grad().defined());
}

TEST(RmsNormTest, BitwiseTheSameOnOneAndTwoThreads) {
  torch::manual_seed(4);
  auto x = torch::randn({1000, 256});
  auto w = torch::randn({256});
  auto g = torch::randn({1000, 256});
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const auto a = run(rms_norm, x, w, g);
  at::set_num_threads(2);
  const auto b = run(rms_norm, x, w, g);
  at::set_num_threads(before);
  EXPECT_TRUE(torch::equal(a.y, b.y));
  EXPECT_TRUE(torch::equal(a.dx, b.dx));
  EXPECT_TRUE(torch::equal(a.dw, b.dw));
}

TEST(RmsNormTest, OtherDtypesTakeTheReference) {
  // fp64 has no fused form: the chain computes it, here against the formula written out.
  auto x = torch::randn({4, 8}, torch::kDouble);
  auto w = torch::randn({8}, torch::kDouble);
  auto want = x / torch::sqrt(x.pow(2).mean(-1, true) + 1e-6) * w;
  auto got = rms_norm(x, w, 1e-6);
  EXPECT_EQ(got.scalar_type(), torch::kDouble);
  EXPECT_LT(norm_rel_err(got, want), 1e-6);
}

TEST(RmsNormTest, RejectsAWeightOfTheWrongWidth) {
  EXPECT_THROW(rms_norm(torch::randn({2, 8}), torch::ones({7}), 1e-6), c10::Error);
}

TEST(RmsNormTest, ModuleUnderAutocastGivesFp32FromBf16) {
  RMSNorm norm(32, 1e-6);
  auto x = torch::randn({2, 3, 32}).to(torch::kBFloat16);
  norm->weight.data().uniform_(0.5, 1.5);
  compat::CpuAutocastGuard autocast(true, torch::kBFloat16);
  auto y = norm(x);
  EXPECT_EQ(y.scalar_type(), torch::kFloat);
  EXPECT_EQ(y.sizes(), x.sizes());
  EXPECT_LT(norm_rel_err(y, rms_norm_reference(x, norm->weight, 1e-6)), 1e-2);
}

}  // namespace
}  // namespace r1kit::policy
