// The small-row expert kernels against LibTorch's own linear and SwiGLU, over row counts
// that exercise full and partial 4-row blocks, odd output sizes and K not a multiple of 8;
// and the rule for when MLP takes them.
#include "policy/expert_kernels.h"

#include <gtest/gtest.h>

#include "policy/model.h"

namespace r1kit::policy {
namespace {

namespace F = torch::nn::functional;

class ExpertKernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!small_rows_kernels_available()) GTEST_SKIP() << "this CPU has no AVX2/FMA";
    torch::manual_seed(3);
  }
};

TEST_F(ExpertKernelsTest, LinearMatchesTorch) {
  for (int64_t M : {1, 2, 3, 4, 5, 7, 8, 16}) {
    for (auto [K, N] :
         std::vector<std::pair<int64_t, int64_t>>{{8, 1}, {13, 3}, {512, 192}, {192, 511}}) {
      auto x = torch::randn({M, K}), w = torch::randn({N, K});
      auto want = F::linear(x, w);
      auto got = linear_small_rows(x, w);
      ASSERT_EQ(got.sizes(), want.sizes());
      EXPECT_TRUE(torch::allclose(got, want, /*rtol=*/1e-5, /*atol=*/1e-4))
          << "M=" << M << " K=" << K << " N=" << N << " max diff "
          << (got - want).abs().max().item<float>();
    }
  }
}

TEST_F(ExpertKernelsTest, SwigluMatchesTorch) {
  for (int64_t M : {1, 4, 6, 9, 16}) {
    const int64_t dim = 512, inter = 192;
    auto x = torch::randn({M, dim});
    auto wg = torch::randn({inter, dim}) * 0.05, wu = torch::randn({inter, dim}) * 0.05;
    auto wd = torch::randn({dim, inter}) * 0.05;
    auto want = F::linear(F::silu(F::linear(x, wg)) * F::linear(x, wu), wd);
    auto got = swiglu_small_rows(x, wg, wu, wd);
    EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5))
        << "M=" << M << " max diff " << (got - want).abs().max().item<float>();
  }
}

TEST_F(ExpertKernelsTest, MlpUsesThemOnlyWithoutAutogradForFewFp32Rows) {
  MLP mlp(64, 48);
  auto x = torch::randn({2, 3, 64});
  EXPECT_FALSE(small_rows_kernels_apply(x, mlp->gate_proj->weight, mlp->up_proj->weight,
                                        mlp->down_proj->weight));  // grad mode is on
  auto want = mlp->forward(x);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(small_rows_kernels_apply(x, mlp->gate_proj->weight, mlp->up_proj->weight,
                                       mlp->down_proj->weight));
  EXPECT_FALSE(small_rows_kernels_apply(x.to(torch::kBFloat16), mlp->gate_proj->weight,
                                        mlp->up_proj->weight, mlp->down_proj->weight));
  EXPECT_FALSE(small_rows_kernels_apply(x.transpose(0, 1), mlp->gate_proj->weight,
                                        mlp->up_proj->weight, mlp->down_proj->weight));
  set_small_rows_kernels_enabled(false);
  EXPECT_FALSE(small_rows_kernels_apply(x, mlp->gate_proj->weight, mlp->up_proj->weight,
                                        mlp->down_proj->weight));
  set_small_rows_kernels_enabled(true);
  auto got = mlp->forward(x);  // 6 rows: the kernel
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6));
}

}  // namespace
}  // namespace r1kit::policy
