// decode_linear against torch::linear: output sizes that are and are not whole 16-column
// blocks, with and without bias, 1-3 decode threads (the context's, on its own pool), 1-D
// to 3-D inputs; and the cases where it must stay torch::linear (autograd on, too few
// columns).
#include "policy/decode_threads.h"

#include <gtest/gtest.h>

#include "core/blas_threads.h"
#include "core/parallel.h"

namespace r1kit::policy {
namespace {

TEST(DecodeLinearTest, MatchesTorchLinearOnEveryThreadCount) {
  torch::manual_seed(11);
  torch::NoGradGuard ng;
  BlasThreadsGuard blas(1);  // as the engine runs decode_threads > 1
  ParallelPool pool;
  for (int threads : {1, 2, 3}) {
    ExecutionContext exec;
    exec.decode_threads = threads;
    exec.pool = &pool;
    for (int64_t N : {64, 144, 4096, 77 + 64}) {
      auto w = torch::randn({N, 48}), b = torch::randn({N});
      for (auto x : {torch::randn({48}), torch::randn({5, 48}), torch::randn({3, 1, 48})}) {
        auto want = torch::linear(x, w, b);
        auto got = decode_linear(x, w, b, exec);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT((got - want).abs().max().item<double>(), 1e-4)
            << "threads=" << threads << " N=" << N << " x " << x.sizes();
        EXPECT_LT((decode_linear(x, w, {}, exec) - torch::linear(x, w)).abs().max().item<double>(),
                  1e-4);
      }
    }
    // The context's thread count reached the split: its pool has started a worker for
    // every part but the caller's.
    EXPECT_EQ(pool.workers(), threads - 1);
  }
}

TEST(DecodeLinearTest, KeepsAutogradWhenGradIsOn) {
  ExecutionContext exec;
  exec.decode_threads = 2;
  auto w = torch::randn({128, 16}, torch::requires_grad());
  auto x = torch::randn({4, 16});
  auto y = decode_linear(x, w, {}, exec);
  ASSERT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_LT((w.grad() - x.sum(0).expand({128, 16})).abs().max().item<double>(), 1e-5);
}

}  // namespace
}  // namespace r1kit::policy
