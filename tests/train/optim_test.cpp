// The optimizer set-up every trainer shares (train/optim.h): the warm-up + cosine
// schedule, AdamW's two decay groups, dropped gradients and global-norm clipping.
// Expected values are computed by hand from the formulas in the header.
#include "train/optim.h"

#include <gtest/gtest.h>

#include <cmath>

namespace r1kit::train {
namespace {

OptimConfig schedule(double lr, int64_t warmup, double min_lr_ratio) {
  OptimConfig c;
  c.lr = lr;
  c.warmup_steps = warmup;
  c.min_lr_ratio = min_lr_ratio;
  return c;
}

TEST(LrScheduleTest, WarmsUpLinearlyThenFollowsTheCosineToItsFloor) {
  const auto c = schedule(1e-3, 4, 0.1);
  const int64_t total = 14;                       // 4 warm-up steps, then a cosine over 10
  EXPECT_DOUBLE_EQ(lr_at(0, total, c), 0.25e-3);  // (0 + 1) / 4 of lr
  EXPECT_DOUBLE_EQ(lr_at(1, total, c), 0.5e-3);
  EXPECT_DOUBLE_EQ(lr_at(3, total, c), 1e-3);       // the last warm-up step reaches lr
  EXPECT_DOUBLE_EQ(lr_at(4, total, c), 1e-3);       // cos(0) = 1
  EXPECT_NEAR(lr_at(9, total, c), 0.55e-3, 1e-15);  // halfway: floor + (lr - floor) / 2
  // A quarter of the way: floor + (lr - floor) * (1 + cos(pi/4)) / 2.
  const double quarter = 1e-4 + 9e-4 * 0.5 * (1 + std::sqrt(0.5));
  EXPECT_NEAR(lr_at(2, 8, schedule(1e-3, 0, 0.1)), quarter, 1e-15);  // 2 of 8 steps
  EXPECT_DOUBLE_EQ(lr_at(14, total, c), 1e-4);    // the end: the floor, lr * min_lr_ratio
  EXPECT_DOUBLE_EQ(lr_at(1000, total, c), 1e-4);  // past the end it stays there
  EXPECT_GT(lr_at(13, total, c), 1e-4);           // the last step is still above it
}

TEST(LrScheduleTest, ConstantWhenTheFloorIsTheRate) {
  const auto c = schedule(5e-5, 0, 1.0);  // the GRPO recipes' constant rate
  for (int64_t s : {0, 1, 50, 199}) EXPECT_DOUBLE_EQ(lr_at(s, 200, c), 5e-5) << s;
}

TEST(AdamWTest, DecaysMatricesOnlyAndSkipsFrozenParameters) {
  torch::OrderedDict<std::string, torch::Tensor> params;
  params.insert("w", torch::ones({2, 3}).requires_grad_());
  params.insert("norm", torch::ones({3}).requires_grad_());
  params.insert("frozen", torch::ones({2, 2}));  // no requires_grad: not optimised at all
  OptimConfig c;
  c.lr = 0.1;
  c.weight_decay = 0.5;
  auto opt = make_adamw(params, c);
  ASSERT_EQ(opt->param_groups().size(), 2u);
  ASSERT_EQ(opt->param_groups()[0].params().size(), 1u);
  ASSERT_EQ(opt->param_groups()[1].params().size(), 1u);
  EXPECT_TRUE(opt->param_groups()[0].params()[0].is_same(params["w"]));
  EXPECT_TRUE(opt->param_groups()[1].params()[0].is_same(params["norm"]));

  // A zero gradient leaves only the decoupled decay: p <- p - lr * wd * p = 0.95 for the
  // matrix; the 1-D tensor has no decay and a zero Adam step, so it stays 1.
  for (const char* name : {"w", "norm"})
    params[name].mutable_grad() = torch::zeros_like(params[name]);
  opt->step();
  EXPECT_TRUE(torch::allclose(params["w"], torch::full({2, 3}, 0.95)));
  EXPECT_TRUE(torch::equal(params["norm"], torch::ones({3})));
  EXPECT_TRUE(torch::equal(params["frozen"], torch::ones({2, 2})));
}

TEST(AdamWTest, SetLrReachesBothGroupsAndADroppedGradientSkipsTheParameter) {
  torch::OrderedDict<std::string, torch::Tensor> params;
  params.insert("w", torch::ones({2, 2}).requires_grad_());
  params.insert("b", torch::ones({2}).requires_grad_());
  OptimConfig c;
  c.lr = 0.1;
  c.weight_decay = 0.5;
  auto opt = make_adamw(params, c);
  set_lr(*opt, 0.02);
  for (auto& g : opt->param_groups())
    EXPECT_DOUBLE_EQ(static_cast<torch::optim::AdamWOptions&>(g.options()).lr(), 0.02);

  // Adam's first step moves every coordinate by lr (m / sqrt(v) = sign(g) after bias
  // correction, up to eps), plus the decay on the matrix: 1 - 0.02 * 0.5 - 0.02 = 0.97.
  for (const char* name : {"w", "b"}) params[name].mutable_grad() = torch::ones_like(params[name]);
  opt->step();
  EXPECT_TRUE(torch::allclose(params["w"], torch::full({2, 2}, 0.97), 1e-6, 1e-6));
  EXPECT_TRUE(torch::allclose(params["b"], torch::full({2}, 0.98), 1e-6, 1e-6));

  // zero_grad drops the gradients (undefined, not zeros): AdamW then leaves the
  // parameters untouched, decay included, as an expert no token reached.
  std::vector<torch::Tensor> list = {params["w"], params["b"]};
  zero_grad(list);
  EXPECT_FALSE(params["w"].grad().defined());
  const auto w = params["w"].detach().clone(), b = params["b"].detach().clone();
  opt->step();
  EXPECT_TRUE(torch::equal(params["w"], w));
  EXPECT_TRUE(torch::equal(params["b"], b));
}

TEST(ClipGradNormTest, ScalesToTheGlobalNormAndReturnsTheNormBefore) {
  auto a = torch::zeros({2}).requires_grad_(), b = torch::zeros({1}).requires_grad_();
  auto none = torch::zeros({3}).requires_grad_();  // no gradient: ignored
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  std::vector<torch::Tensor> ps = {a, b, none};
  EXPECT_NEAR(clip_grad_norm(ps, 1.0), 5.0, 1e-6);  // sqrt(3^2 + 4^2)
  EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<double>(), 0.8, 1e-6);
  EXPECT_FALSE(none.grad().defined());
  // Under the limit (and with the limit off) the gradients are left as they are.
  EXPECT_NEAR(clip_grad_norm(ps, 2.0), 1.0, 1e-6);
  EXPECT_NEAR(a.grad()[0].item<double>(), 0.6, 1e-6);
  EXPECT_NEAR(clip_grad_norm(ps, 0.0), 1.0, 1e-6);
}

}  // namespace
}  // namespace r1kit::train
