// The execution context (policy/execution.h) of a forward: its decode threads reach the
// kernels (their pool starts the workers they ask for), a bad thread count is an error,
// and two contexts used from two threads at once, with different threads and kernel
// choices, each get their own path's results, bit for bit, run after run.
#include "policy/execution.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <thread>

#include "core/blas_threads.h"
#include "core/parallel.h"
#include "policy/expert_kernels.h"
#include "policy/model.h"
#include "policy/model_args.h"

namespace r1kit::policy {
namespace {

// A `nano` model (MLA and MoE) with a prefilled 4-row cache; step(exec) runs one per-row
// decode step on a copy of it, as the rollout engine does.
class ExecutionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(21);
    saved_threads_ = at::get_num_threads();
    // One LibTorch and one OpenBLAS thread: the only threads are the contexts' own, and
    // every result is reproducible bit for bit.
    at::set_num_threads(1);
    blas_.emplace(1);
    a_ = *preset("nano");
    m_ = Transformer(a_);
    m_->init_weights(4);
    m_->eval();
    torch::NoGradGuard ng;
    cache_ = KVCache::allocate(a_, kRows, 16, torch::kFloat);
    ForwardOptions pre;
    pre.cache = &cache_;
    m_->forward(torch::randint(3, a_.vocab_size, {kRows, 6}, torch::kLong), pre);
    next_ = torch::randint(3, a_.vocab_size, {kRows, 1}, torch::kLong);
  }
  void TearDown() override {
    blas_.reset();
    at::set_num_threads(saved_threads_);
  }

  torch::Tensor step(const ExecutionContext& exec) {
    torch::NoGradGuard ng;  // per thread
    KVCache c = cache_;
    for (auto& t : c.a) t = t.clone();
    for (auto& t : c.b) t = t.clone();
    ForwardOptions o;
    o.cache = &c;
    o.start_pos = 5;
    o.row_positions = torch::tensor({5, 2, 4, 3}, torch::kLong);
    o.execution = exec;
    return m_->forward(next_, o).logits;
  }

  static constexpr int64_t kRows = 4;
  int saved_threads_ = 1;
  std::optional<BlasThreadsGuard> blas_;
  ModelArgs a_;
  Transformer m_{nullptr};
  KVCache cache_;
  torch::Tensor next_;
};

TEST_F(ExecutionTest, DecodeThreadsReachTheKernelsThroughTheForwardOptions) {
  const auto want = step(ExecutionContext{});
  ParallelPool one_pool, three_pool;
  ExecutionContext one, three;
  one.pool = &one_pool;
  three.decode_threads = 3;
  three.pool = &three_pool;
  EXPECT_TRUE(torch::equal(step(one), want));  // the default, on its own (unused) pool
  EXPECT_EQ(one_pool.workers(), 0);
  const auto got = step(three);
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  // The output head alone (decode_linear, every CPU) splits into 3 parts: the caller and
  // two workers of this context's pool.
  EXPECT_EQ(three_pool.workers(), 2);
}

TEST_F(ExecutionTest, ABadThreadCountIsAnError) {
  for (int bad : {0, kMaxDecodeThreads + 1}) {
    ExecutionContext exec;
    exec.decode_threads = bad;
    try {
      step(exec);
      ADD_FAILURE() << "no error for decode_threads " << bad;
    } catch (const c10::Error& e) {
      EXPECT_NE(std::string(e.what()).find("execution.decode_threads must be in [1, 64]"),
                std::string::npos)
          << e.what();
    }
  }
}

TEST_F(ExecutionTest, TwoContextsOnTwoThreadsAtOnceDoNotInterfere) {
  // Every kernel on 2 decode threads, against LibTorch alone on 1 (and AVX2 where the
  // kernels would be on: no kernel is chosen, so no switch could leak into the other).
  ParallelPool pool_a;
  ExecutionContext kernels, plain;
  kernels.decode_threads = 2;
  kernels.pool = &pool_a;
  plain.kernels = {.small_rows = false, .small_rows_avx512 = false, .mla_decode = false};
  const auto want_kernels = step(kernels), want_plain = step(plain);
  // Both paths compute the same function ...
  EXPECT_LT((want_kernels - want_plain).abs().max().item<double>(), 1e-5);
  // ... by different arithmetic where the CPU has the kernels, so a path taken by the
  // wrong context would show in the bits.
  if (small_rows_kernels_available()) {
    EXPECT_FALSE(torch::equal(want_kernels, want_plain));
  }

  constexpr int kRuns = 20;
  int same_kernels = 0, same_plain = 0;
  auto run = [&](const ExecutionContext& exec, const torch::Tensor& want, int* same) {
    at::set_num_threads(1);  // LibTorch's thread count is per thread under OpenMP
    for (int i = 0; i < kRuns; ++i) *same += torch::equal(step(exec), want);
  };
  std::thread a(run, std::cref(kernels), std::cref(want_kernels), &same_kernels);
  std::thread b(run, std::cref(plain), std::cref(want_plain), &same_plain);
  a.join();
  b.join();
  EXPECT_EQ(same_kernels, kRuns);
  EXPECT_EQ(same_plain, kRuns);
}

}  // namespace
}  // namespace r1kit::policy
