// decode_linear against torch::linear: output sizes that are and are not whole 16-column
// blocks, with and without bias, 1-3 decode threads (the context's, on its own pool), 1-D
// to 3-D inputs; the column form for the row counts it takes (AVX-512), on 1-3 threads;
// and the cases where it must stay torch::linear (autograd on, too few columns).
#include "policy/decode_threads.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/blas_threads.h"
#include "core/parallel.h"
#include "policy/expert_kernels.h"

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

// x w^T + b as the column form computes it: each output a sum of fp32 FMAs in the order
// of k from zero, then the bias.
torch::Tensor sequential_fma(const torch::Tensor& x, const torch::Tensor& w, const float* b) {
  const int64_t M = x.size(0), K = x.size(1), N = w.size(0);
  auto y = torch::empty({M, N});
  const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      float acc = 0.0f;
      for (int64_t k = 0; k < K; ++k) acc = std::fma(wp[n * K + k], xp[m * K + k], acc);
      yp[m * N + n] = b ? acc + b[n] : acc;
    }
  return y;
}

// Rows from kColumnRowsMin to kColumnRowsMax take the column form (one panel of 64 rows,
// several, a narrower last one), with output sizes that leave a tail in its blocks of 6
// weight rows, split over 1-3 threads: torch::linear's result within rounding, and bit for
// bit the sequential FMA sums (which sgemm, blocking K = 1000, does not give); one row
// more, or the column form off, is sgemm again.
TEST(DecodeLinearTest, ColumnFormMatchesTorchLinear) {
  if (!small_rows_avx512_available()) GTEST_SKIP() << "no AVX-512: the column form never runs";
  torch::manual_seed(12);
  torch::NoGradGuard ng;
  ParallelPool pool;
  for (int threads : {1, 2, 3}) {
    ExecutionContext exec;
    exec.decode_threads = threads;
    exec.pool = &pool;
    for (int64_t M : std::vector<int64_t>{kColumnRowsMin, 64, 100, kColumnRowsMax}) {
      for (int64_t N : {80, 7, 256 + 5}) {
        auto w = torch::randn({N, 1000}), b = torch::randn({N});
        auto x = torch::randn({M, 1, 1000});
        auto want = torch::linear(x, w, b);
        auto got = decode_linear(x, w, b, exec);
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_LT((got - want).abs().max().item<double>(), 1e-3)
            << "threads=" << threads << " M=" << M << " N=" << N;
        EXPECT_TRUE(torch::equal(got.view({M, N}),
                                 sequential_fma(x.view({M, 1000}), w, b.data_ptr<float>())))
            << "threads=" << threads << " M=" << M << " N=" << N;
        EXPECT_TRUE(torch::equal(decode_linear(x, w, {}, exec).view({M, N}),
                                 sequential_fma(x.view({M, 1000}), w, nullptr)));
      }
    }
  }
  ExecutionContext one;
  auto w = torch::randn({80, 1000});
  for (int64_t M : {kColumnRowsMax + 1, int64_t{64}}) {
    if (M == 64) one.kernels.small_rows_columns = false;
    auto x = torch::randn({M, 1000});
    const auto got = decode_linear(x, w, {}, one);
    EXPECT_TRUE(torch::equal(got, torch::linear(x, w))) << "M=" << M;
    EXPECT_FALSE(torch::equal(got, sequential_fma(x, w, nullptr))) << "M=" << M;
  }
}

// Below kColumnRowsMin rows the row form (a dot product per output), from there to
// kColumnRowsMax the column form: each output is computed whole by one thread, so the
// results are the same bits on 1-4 decode threads (what lets the engine take lent cores,
// rollout/engine.h), with and without bias, on output sizes that leave tails in the
// blocks of 6 (the output heads of `tiny` and `small` among them); within rounding of
// torch::linear.
TEST(DecodeLinearTest, SameBitsOnEveryThreadCountUpToTheColumnForm) {
  if (!small_rows_kernels_available()) GTEST_SKIP() << "no AVX2/FMA: sgemm takes every row count";
  torch::manual_seed(13);
  torch::NoGradGuard ng;
  BlasThreadsGuard blas(1);
  ParallelPool pool;
  std::vector<int64_t> rows = {1, 2, 5, 6, 7, 16};
  if (small_rows_avx512_available()) rows.insert(rows.end(), {kColumnRowsMin, 64, kColumnRowsMax});
  for (auto [N, K] : std::vector<std::pair<int64_t, int64_t>>{{512, 256}, {4096, 512}, {71, 40}})
    for (int64_t M : rows) {
      auto w = torch::randn({N, K}), b = torch::randn({N}), x = torch::randn({M, K});
      for (const auto& bias : {torch::Tensor(), b}) {
        torch::Tensor first;
        for (int threads : {1, 2, 3, 4}) {
          ExecutionContext exec;
          exec.decode_threads = threads;
          exec.pool = &pool;
          auto got = decode_linear(x, w, bias, exec);
          const std::string where = "N=" + std::to_string(N) + " M=" + std::to_string(M) +
                                    (bias.defined() ? " bias" : "") +
                                    " threads=" + std::to_string(threads);
          EXPECT_LT((got - torch::linear(x, w, bias)).abs().max().item<double>(), 1e-3) << where;
          if (threads == 1) {
            first = got;
          } else {
            EXPECT_TRUE(torch::equal(got, first)) << where;
          }
        }
      }
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
