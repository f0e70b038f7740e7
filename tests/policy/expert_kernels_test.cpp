// The small-row expert kernels against LibTorch's own linear and SwiGLU, on AVX2 and
// AVX-512 (where the CPU has it), over row counts that exercise full and partial 6-row
// blocks, odd output sizes and K not a multiple of 8 or 16;
// and the rule for when MLP takes them.
#include "policy/expert_kernels.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "core/parallel.h"
#include "core/torch_compat.h"
#include "policy/bf16_weights.h"
#include "policy/decode_threads.h"
#include "policy/execution.h"
#include "policy/model.h"
#include "policy/model_args.h"

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

// Both instruction sets where the CPU has AVX-512, AVX2 alone otherwise.
std::vector<bool> avx512_settings() {
  if (small_rows_avx512_available()) return {false, true};
  return {false};
}

KernelChoices with_avx512(bool avx512) {
  KernelChoices k;
  k.small_rows_avx512 = avx512;
  return k;
}

TEST_F(ExpertKernelsTest, LinearMatchesTorch) {
  for (bool avx512 : avx512_settings()) {
    SCOPED_TRACE(avx512 ? "AVX-512" : "AVX2");
    EXPECT_EQ(small_rows_use_avx512(with_avx512(avx512)), avx512);
    for (int64_t M : {1, 2, 3, 4, 5, 7, 8, 16}) {
      for (auto [K, N] :
           std::vector<std::pair<int64_t, int64_t>>{{8, 1}, {13, 3}, {512, 192}, {192, 511}}) {
        auto x = torch::randn({M, K}), w = torch::randn({N, K});
        auto want = F::linear(x, w);
        auto got = linear_small_rows(x, w, with_avx512(avx512));
        ASSERT_EQ(got.sizes(), want.sizes());
        EXPECT_TRUE(torch::allclose(got, want, /*rtol=*/1e-5, /*atol=*/1e-4))
            << "M=" << M << " K=" << K << " N=" << N << " max diff "
            << (got - want).abs().max().item<float>();
      }
    }
  }
}

TEST_F(ExpertKernelsTest, SwigluMatchesTorch) {
  for (bool avx512 : avx512_settings()) {
    SCOPED_TRACE(avx512 ? "AVX-512" : "AVX2");
    for (int64_t M : {1, 4, 6, 9, 16}) {
      const int64_t dim = 512, inter = 192;
      auto x = torch::randn({M, dim});
      auto wg = torch::randn({inter, dim}) * 0.05, wu = torch::randn({inter, dim}) * 0.05;
      auto wd = torch::randn({dim, inter}) * 0.05;
      auto want = F::linear(F::silu(F::linear(x, wg)) * F::linear(x, wu), wd);
      auto got = swiglu_small_rows(x, wg, wu, wd, with_avx512(avx512));
      EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5))
          << "M=" << M << " max diff " << (got - want).abs().max().item<float>();
    }
  }
}

TEST_F(ExpertKernelsTest, ColumnFormMatchesTorch) {
  if (!small_rows_avx512_available()) GTEST_SKIP() << "no AVX-512: the column form never runs";
  const KernelChoices columns, rows{.small_rows_columns = false};
  EXPECT_EQ(small_rows_max_rows(columns, 1), kColumnRowsMax);
  EXPECT_EQ(small_rows_max_rows(columns, 2), kColumnRowsMax);
  EXPECT_EQ(small_rows_max_rows(rows, 1), kSmallRowsMax);
  EXPECT_EQ(small_rows_max_rows(rows, 2), kPoolRowsMax);
  // Row counts across the 16-row vectors and their padding, and past one panel of 64
  // rows (a full panel and a narrower last one); sizes that leave tails in the blocks of
  // 3 hidden and 6 output rows.
  for (auto [dim, inter] :
       std::vector<std::pair<int64_t, int64_t>>{{512, 192}, {256, 256}, {13, 7}, {100, 301}}) {
    for (int64_t M : std::vector<int64_t>{kColumnRowsMin, kColumnRowsMin + 1, 31, 32, 33, 48, 63,
                                          64, 65, 80, 127, kColumnRowsMax}) {
      auto x = torch::randn({M, dim});
      auto wg = torch::randn({inter, dim}) * 0.05, wu = torch::randn({inter, dim}) * 0.05;
      auto wd = torch::randn({dim, inter}) * 0.05;
      auto want = F::linear(F::silu(F::linear(x, wg)) * F::linear(x, wu), wd);
      auto got = swiglu_small_rows(x, wg, wu, wd, columns);
      EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5))
          << "dim=" << dim << " inter=" << inter << " M=" << M << " max diff "
          << (got - want).abs().max().item<float>();
    }
  }
  // Gates far into SiLU's tails (|g| up to ~100): exp's clamp keeps silu finite and exact
  // there (silu(g) -> g above, -> 0 below).
  auto x = torch::randn({20, 64}) * 8;
  auto wg = torch::randn({32, 64}), wu = torch::randn({32, 64}), wd = torch::randn({64, 32});
  auto want = F::linear(F::silu(F::linear(x, wg)) * F::linear(x, wu), wd);
  auto got = swiglu_small_rows(x, wg, wu, wd, columns);
  EXPECT_TRUE(torch::isfinite(got).all().item<bool>());
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-3 * want.abs().max().item<float>()))
      << (got - want).abs().max().item<float>();
}

TEST_F(ExpertKernelsTest, MlpUsesThemOnlyWithoutAutogradForFewFp32Rows) {
  MLP mlp(64, 48);
  auto x = torch::randn({2, 3, 64});
  const KernelChoices on, off{.small_rows = false};
  EXPECT_FALSE(small_rows_kernels_apply(x, mlp->gate_proj->weight, mlp->up_proj->weight,
                                        mlp->down_proj->weight, on));  // grad mode is on
  auto want = mlp->forward(x);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(small_rows_kernels_apply(x, mlp->gate_proj->weight, mlp->up_proj->weight,
                                       mlp->down_proj->weight, on));
  EXPECT_FALSE(small_rows_kernels_apply(x.to(torch::kBFloat16), mlp->gate_proj->weight,
                                        mlp->up_proj->weight, mlp->down_proj->weight, on));
  EXPECT_FALSE(small_rows_kernels_apply(x.transpose(0, 1), mlp->gate_proj->weight,
                                        mlp->up_proj->weight, mlp->down_proj->weight, on));
  EXPECT_FALSE(small_rows_kernels_apply(x, mlp->gate_proj->weight, mlp->up_proj->weight,
                                        mlp->down_proj->weight, off));
  EXPECT_TRUE(mlp->takes_small_rows(x, on));
  EXPECT_FALSE(mlp->takes_small_rows(x, off));
  auto got = mlp->forward(x);  // 6 rows: the kernel
  ASSERT_EQ(got.sizes(), want.sizes());
  EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-6));
  ExecutionContext no_kernel;
  no_kernel.kernels = off;
  EXPECT_TRUE(torch::allclose(mlp->forward(x, no_kernel), want, 1e-5, 1e-6));
}

// A dense SwiGLU FFN (the dense layers and the shared expert at decode) of more rows than
// the row form takes, in fp32 and in bf16 compute, on 1-4 decode threads: equal to
// LibTorch's chain, and where the column form runs (AVX-512) the same bits at every thread
// count (its rows are cut into pieces, one a thread: what lets the engine take lent
// cores). Past kColumnRowsMax rows, or without AVX-512, decode_linear's linears take it.
TEST_F(ExpertKernelsTest, MlpOfManyRowsIsTheSameBitsOnEveryThreadCount) {
  MLP mlp(256, 768);
  for (auto& p : mlp->parameters()) p.data().normal_(0, 0.05);
  Bf16Weights bf16;
  bf16.assign(*mlp);
  const bool bf16_ok = bf16_kernels_available();
  torch::NoGradGuard no_grad;
  ParallelPool pool;
  for (int64_t M : std::vector<int64_t>{kColumnRowsMin, 33, 34, 51, 64, 65, 100, kColumnRowsMax,
                                        kColumnRowsMax + 1}) {
    auto x = torch::randn({M, 1, 256});
    ExecutionContext reference;
    reference.kernels.small_rows = false;
    auto want = mlp->forward(x, reference);
    for (bool in_bf16 : {false, true}) {
      if (in_bf16 && !bf16_ok) continue;
      torch::Tensor first;
      for (int threads : {1, 2, 3, 4}) {
        ExecutionContext exec;
        exec.decode_threads = threads;
        exec.pool = &pool;
        if (in_bf16) exec.bf16 = &bf16;
        auto got = mlp->forward(x, exec);
        const std::string where = "M=" + std::to_string(M) + (in_bf16 ? " bf16" : " fp32") +
                                  " decode_threads=" + std::to_string(threads);
        EXPECT_TRUE(torch::allclose(got, want, 1e-5, in_bf16 ? 2e-2 : 1e-5))
            << where << " max diff " << (got - want).abs().max().item<float>();
        if (threads == 1) {
          first = got;
        } else if (takes_columns(exec.kernels, M)) {  // AVX-512: the column form
          EXPECT_TRUE(torch::equal(got, first)) << where;
        }
      }
    }
    // On one thread, within kColumnRowsMax rows, the column form ran: not LibTorch's bits.
    if (small_rows_avx512_available() && M <= kColumnRowsMax) {
      EXPECT_FALSE(torch::equal(mlp->forward(x), want)) << "M=" << M;
    }
  }
}

// The trainer's no-grad passes (kernels.grouped_without_grad, policy/logprobs.h) take the
// kernels of the gradient pass, so their log-probs are its bits: no small-row kernel or
// column form for a dense FFN or a linear layer of few rows.
TEST_F(ExpertKernelsTest, TrainerNoGradPassesTakeTheGradientPassKernels) {
  MLP mlp(256, 768);
  for (auto& p : mlp->parameters()) p.data().normal_(0, 0.05);
  for (int64_t M : std::vector<int64_t>{6, 100}) {
    auto x = torch::randn({M, 1, 256});
    const auto with_grad = mlp->forward(x).detach();
    torch::NoGradGuard no_grad;
    ExecutionContext trainer;
    trainer.kernels.grouped_without_grad = true;
    EXPECT_TRUE(torch::equal(mlp->forward(x, trainer), with_grad)) << "M=" << M;
    EXPECT_TRUE(torch::equal(decode_linear(x, mlp->gate_proj->weight, {}, trainer),
                             torch::linear(x, mlp->gate_proj->weight)))
        << "M=" << M;
  }
}

TEST(PartitionExpertJobsTest, CutsByCostIntoNonEmptyContiguousRanges) {
  auto jobs_of = [](std::vector<int64_t> rows) {
    std::vector<ExpertJob> jobs;
    for (int64_t r : rows)
      jobs.push_back({nullptr, r, /*inter=*/1, nullptr, nullptr, nullptr, nullptr});
    return jobs;
  };
  using Ranges = std::vector<std::pair<size_t, size_t>>;
  // cost = (rows + 4 per block of 6 rows) x inter (1 here): 6 rows -> 10, 1 row -> 5,
  // 12 rows -> 20.
  EXPECT_EQ(partition_expert_jobs(jobs_of({6, 6, 6, 6}), 2), (Ranges{{0, 2}, {2, 4}}));
  EXPECT_EQ(partition_expert_jobs(jobs_of({12, 1, 1, 1, 1}), 2), (Ranges{{0, 1}, {1, 5}}));
  EXPECT_EQ(partition_expert_jobs(jobs_of({1, 1, 1, 1, 12}), 2), (Ranges{{0, 4}, {4, 5}}));
  EXPECT_EQ(partition_expert_jobs(jobs_of({6, 6, 6}), 1), (Ranges{{0, 3}}));
  // More parts than jobs: one job each.
  EXPECT_EQ(partition_expert_jobs(jobs_of({16, 1}), 4), (Ranges{{0, 1}, {1, 2}}));
  // One huge job first still leaves a job for every later part.
  EXPECT_EQ(partition_expert_jobs(jobs_of({16, 16, 16, 1, 1}), 3),
            (Ranges{{0, 1}, {1, 2}, {2, 5}}));
  EXPECT_EQ(partition_expert_jobs(jobs_of({}), 2), (Ranges{{0, 0}}));
}

// The inference path of MoE (small-row kernel for experts with few rows, spread over
// several threads; LibTorch for the others) against the autograd path (LibTorch only),
// on one thread, on 2 intra-op threads, and with a context's decode_threads = 2 and 3 (the
// pool of core/parallel.h with every other op on one thread, the shared expert on the
// kernel too).
TEST_F(ExpertKernelsTest, MoeInferenceMatchesAutogradPathOnOneAndMoreThreads) {
  ModelArgs args = *preset("tiny");  // 8 experts, top-2
  MoE moe(args);
  for (auto& p : moe->parameters()) p.data().normal_(0, 0.05);
  // 4 tokens: every expert gets at most 4 rows (the kernel); 48 tokens: several get more
  // than kSmallRowsMax (the column form on one thread where AVX-512 is chosen, else
  // LibTorch; the kernel in the pool) beside some that get fewer; 300 tokens: most get
  // more than kPoolRowsMax (the column form where it applies, else LibTorch); 700 tokens:
  // most get more than kColumnRowsMax (LibTorch everywhere).
  for (int64_t T : {4, 48, 300, 700}) {
    auto x = torch::randn({1, T, args.dim});
    torch::Tensor load;
    auto want = moe->forward(x, &load, nullptr).detach();
    if (T == 48) {  // both the row and the column (or LibTorch) paths taken
      EXPECT_GT(load.max().item<int64_t>(), kSmallRowsMax);
      EXPECT_LE(load.min().item<int64_t>(), kSmallRowsMax);
    }
    const int saved = at::get_num_threads();
    torch::Tensor one_thread;
    for (int threads : {1, 2}) {
      at::set_num_threads(threads);
      torch::NoGradGuard no_grad;
      auto got = moe->forward(x, nullptr, nullptr);
      if (threads == 1) one_thread = got;
      EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5))
          << "T=" << T << " threads=" << threads << " max diff "
          << (got - want).abs().max().item<float>();
    }
    at::set_num_threads(1);
    for (int n : {2, 3}) {
      ExecutionContext exec;
      exec.decode_threads = n;
      EXPECT_EQ(exec.expert_threads(), n);
      torch::NoGradGuard no_grad;
      // Each expert's rows are computed whole by one thread, and the shared expert joins
      // the routed ones on the kernel (T <= kPoolRowsMax).
      auto got = moe->forward(x, nullptr, nullptr, exec);
      EXPECT_TRUE(torch::allclose(got, want, 1e-5, 1e-5))
          << "T=" << T << " decode_threads=" << n << " max diff "
          << (got - want).abs().max().item<float>();
      // Up to small_rows_max_rows(kernels, 1) rows (kSmallRowsMax, or kColumnRowsMax where
      // the column form applies) every expert takes the kernel on one thread too: the same
      // bits; above it, up to kPoolRowsMax, some take it only here.
      if (T <= kPoolRowsMax) {
        EXPECT_EQ(torch::equal(got, one_thread), T <= small_rows_max_rows(KernelChoices{}, 1))
            << "T=" << T << " decode_threads=" << n;
      }
    }
    at::set_num_threads(saved);
  }
}

// ---------------------------------------------------------------------------------
// bf16 compute: against LibTorch's bf16 linear, which rounds input and weights to bf16,
// sums in fp32 and rounds its output (what autocast runs in the trainer).

// got and want both bf16 values; equal, or a few bf16 steps apart where fp32 sums in
// another order straddle a rounding boundary (or a SwiGLU hidden value rounds the other way).
void expect_bf16_close(const torch::Tensor& got, const torch::Tensor& want, double steps,
                       const std::string& what) {
  ASSERT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_TRUE(torch::equal(got, got.to(torch::kBFloat16).to(torch::kFloat)))
      << what << ": results not rounded to bf16";
  const auto tol = want.abs() * (steps / 128.0) + 1e-3 * want.abs().max();
  EXPECT_TRUE(((got - want).abs() <= tol).all().item<bool>())
      << what << ": max diff " << (got - want).abs().max().item<float>();
  EXPECT_GT((got == want).to(torch::kFloat).mean().item<double>(), 0.8)
      << what << ": most results should be the same bf16 value";
}

class Bf16KernelsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!bf16_kernels_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    torch::manual_seed(5);
  }
};

TEST_F(Bf16KernelsTest, LinearMatchesTorchInBf16) {
  // Rows of the row form (6-row blocks) and of the column form (panels of 64); K with a
  // tail past the row form's 32-element steps; N with tails in the blocks of 6 rows.
  for (int64_t M : {1, 5, 6, 7, 16, 17, 33, 64, 65, 128})
    for (auto [K, N] : std::vector<std::pair<int64_t, int64_t>>{{64, 6}, {34, 7}, {512, 193}})
      for (bool bias : {false, true}) {
        auto x = torch::randn({M, K});
        auto w16 = torch::randn({N, K}).to(torch::kBFloat16);
        auto b16 = bias ? torch::randn({N}).to(torch::kBFloat16) : torch::Tensor();
        auto want = F::linear(x.to(torch::kBFloat16), w16, b16).to(torch::kFloat);
        auto got = torch::empty({M, N});
        auto bf = bias ? b16.to(torch::kFloat) : torch::Tensor();
        linear_bf16_raw(x.data_ptr<float>(), M, K, w16.data_ptr<at::BFloat16>(), N,
                        bias ? bf.data_ptr<float>() : nullptr, got.data_ptr<float>(), N, {});
        expect_bf16_close(got, want, 1,
                          "M=" + std::to_string(M) + " K=" + std::to_string(K) +
                              " N=" + std::to_string(N) + (bias ? " bias" : ""));
      }
}

TEST_F(Bf16KernelsTest, SwigluExpertsMatchTorchInBf16) {
  const int64_t dim = 256;
  for (int64_t inter : {192, 34})
    for (int64_t M : {1, 4, 7, 16, 17, 40, 64, 100}) {
      auto x = torch::randn({M, dim});
      auto wg = (torch::randn({inter, dim}) * 0.1).to(torch::kBFloat16);
      auto wu = (torch::randn({inter, dim}) * 0.1).to(torch::kBFloat16);
      auto wd = (torch::randn({dim, inter}) * 0.1).to(torch::kBFloat16);
      auto xb = x.to(torch::kBFloat16);
      auto g = F::linear(xb, wg).to(torch::kFloat), u = F::linear(xb, wu).to(torch::kFloat);
      auto h = (F::silu(g) * u).to(torch::kBFloat16);
      auto want = F::linear(h, wd).to(torch::kFloat);
      auto got = torch::empty({M, dim});
      ExpertJob j;
      j.x = x.data_ptr<float>();
      j.rows = M;
      j.inter = inter;
      j.y = got.data_ptr<float>();
      j.w_gate16 = wg.data_ptr<at::BFloat16>();
      j.w_up16 = wu.data_ptr<at::BFloat16>();
      j.w_down16 = wd.data_ptr<at::BFloat16>();
      swiglu_experts_small_rows({j}, dim, 1, ExecutionContext{});
      expect_bf16_close(got, want, 4, "inter=" + std::to_string(inter) + " M=" + std::to_string(M));
    }
}

// With an ExecutionContext that carries bf16 copies, an MLP (the fused kernel up to
// kColumnRowsMax rows, decode_linear past it) computes what the trainer's forward computes
// under autocast (with autograd: the fused SwiGLU, which rounds silu(g) u once), and where
// a weight has no copy, fp32 as before.
TEST_F(Bf16KernelsTest, MlpWithBf16WeightsComputesAsTheTrainersAutocast) {
  MLP mlp(128, 96);
  Bf16Weights bf16;
  bf16.assign(*mlp);
  EXPECT_EQ(bf16.size(), 3);  // three weights, no biases
  ASSERT_NE(bf16.find(mlp->gate_proj->weight), nullptr);
  EXPECT_TRUE(torch::equal(*bf16.find(mlp->gate_proj->weight),
                           mlp->gate_proj->weight.to(torch::kBFloat16)));
  ExecutionContext exec;
  exec.bf16 = &bf16;
  for (int64_t T : {3, 40, 200}) {
    auto x = torch::randn({1, T, 128});
    torch::Tensor want;
    {
      compat::CpuAutocastGuard ac(true);
      want = mlp->forward(x).to(torch::kFloat).detach();
    }
    torch::NoGradGuard no_grad;
    auto got = mlp->forward(x, exec);
    expect_bf16_close(got, want, 4, "T=" + std::to_string(T));
    // Without the copies: fp32, as before.
    EXPECT_TRUE(torch::allclose(
        mlp->forward(x),
        F::linear(F::silu(mlp->gate_proj(x)) * mlp->up_proj(x), mlp->down_proj->weight), 1e-5,
        1e-5));
  }
}

}  // namespace
}  // namespace r1kit::policy
