// CPU kernels for routed experts that receive few tokens, as in batched decode.
//
// At decode time a MoE layer sends each active expert only a handful of rows (batch 64,
// 40 experts, top-4: ~6 each). A BLAS sgemm then spends its time packing the expert's
// weight matrix, not multiplying: it is built for many rows. These kernels stream each
// weight row once per block of 6 input rows straight from the nn.Linear layout
// ([out, in], row-major) with AVX2 FMA (AVX-512 where the CPU has it), and fuse SwiGLU's
// gate, up, SiLU and product into one pass, so an expert costs two passes over its
// weights and no temporaries beyond its [M, inter] hidden rows.
//
// Inference only (no autograd); fp32, CPU, contiguous tensors. Results equal
// torch::linear's up to the order of summation (tests/policy/expert_kernels_test.cpp).
// Which instruction set they use and which pool they run on come with each call
// (KernelChoices, ExecutionContext: policy/execution.h).
// Thread-safety: pure functions.
#pragma once

#include <torch/torch.h>

#include <utility>
#include <vector>

#include "policy/execution.h"

namespace r1kit::policy {

// Rows at or below which the kernels beat OpenBLAS sgemm on an expert of the `small`
// preset (the per-row timings are in bench/RESULTS.md).
inline constexpr int64_t kSmallRowsMax = 16;

// Rows up to which MoE's inference path, when it has several threads, runs an expert
// (routed, or the shared one beside them) on the row-form kernel in the pool: there a
// second core is worth more than sgemm's edge over the kernel at 17-64 rows.
inline constexpr int64_t kPoolRowsMax = 64;

// The column form (AVX-512): from kColumnRowsMin rows up to kColumnRowsMax, an expert's
// rows are transposed into columns of 16 and each weight element is broadcast against
// them: register-blocked like a GEMM's micro-kernel (6 weight rows x up to 4 vectors of
// 16 rows), with the weights read in place in their nn.Linear layout, no packing and no
// horizontal sums. Past 64 rows the rows are cut into panels of 64, and each block of
// weight rows runs against every panel while it is in L1. SwiGLU's hidden [inter, rows]
// comes out as the columns the down projection takes. Up to kSmallRowsMax rows the row
// form (a dot product per weight row and block of 6 rows) is as fast or faster; from
// there to 128 rows the column form runs near the core's FMA peak and beats sgemm by
// 1.2-1.4x on `tiny`'s dense and shared FFNs (their weights cold, as at decode); past
// 128 rows sgemm's packing pays for itself on some shapes. Timings in bench/RESULTS.md,
// "Experts as columns" and "Decode's dense FFNs as columns".
inline constexpr int64_t kColumnRowsMin = kSmallRowsMax + 1;
inline constexpr int64_t kColumnRowsMax = 128;

// The most rows an expert (or a dense SwiGLU FFN) may have to take the kernels here:
// kColumnRowsMax where the column form applies (AVX-512 chosen and columns on), else
// kPoolRowsMax with several threads, else kSmallRowsMax.
int64_t small_rows_max_rows(const KernelChoices& kernels, int threads);

// True when this CPU has AVX2 and FMA (checked once).
bool small_rows_kernels_available();

// True when this CPU has AVX-512F (checked once).
bool small_rows_avx512_available();

// True when the kernels run on 16-lane vectors under these choices: AVX-512 is chosen and
// this CPU has it.
bool small_rows_use_avx512(const KernelChoices& kernels);

// True when swiglu_small_rows may be called on these tensors: the kernels are available
// and chosen (kernels.small_rows), autograd and CPU autocast are off, this is not one of
// the trainer's no-grad passes (kernels.grouped_without_grad: those take the gradient
// pass's kernels, so that their log-probs are its bits), and all are fp32, on the CPU and
// contiguous.
bool small_rows_kernels_apply(const torch::Tensor& x, const torch::Tensor& w_gate,
                              const torch::Tensor& w_up, const torch::Tensor& w_down,
                              const KernelChoices& kernels);

// The kernels below run on AVX-512 when small_rows_use_avx512(kernels), else on AVX2.

// y = x w^T for x [M, K] and w [N, K]: torch::linear without bias.
torch::Tensor linear_small_rows(const torch::Tensor& x, const torch::Tensor& w,
                                const KernelChoices& kernels);
// The same on raw row-major fp32 memory: y [M, N] (row stride ldy) = x [M, K] w^T (+ b [N]
// when b is not null) for w [N, K]. Each output is one dot product whatever M and N, so
// column slices of w give the same bits as the whole. Requires AVX2/FMA
// (small_rows_kernels_available()).
void linear_rows_raw(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                     const float* b, float* y, int64_t ldy, const KernelChoices& kernels);

// True when M rows take the column form under these choices (kColumnRowsMin to
// kColumnRowsMax rows, AVX-512 chosen and present, columns on).
bool takes_columns(const KernelChoices& kernels, int64_t M);
// y [M, N] (row stride ldy) = x [M, K] w^T (+ b [N] when b is not null) for w [N, K], in the
// column form: torch::linear's result up to the order of summation. Raw row-major fp32
// memory; requires AVX-512F (small_rows_avx512_available()).
void linear_columns_raw(const float* x, int64_t M, int64_t K, const float* w, int64_t N,
                        const float* b, float* y, int64_t ldy);

// down(silu(gate(x)) * up(x)) for x [M, dim], w_gate and w_up [inter, dim], w_down
// [dim, inter]: one SwiGLU expert, returns [M, dim].
torch::Tensor swiglu_small_rows(const torch::Tensor& x, const torch::Tensor& w_gate,
                                const torch::Tensor& w_up, const torch::Tensor& w_down,
                                const KernelChoices& kernels);

// ---------------------------------------------------------------------------------
// bf16 compute (ExecutionContext::bf16, policy/bf16_weights.h): the same row and column
// forms with bf16 weights and AVX512-BF16's dot product (vdpbf16ps: 32 bf16 products a
// vector, summed in pairs into 16 fp32 lanes), which halves both the weight bytes and the
// instructions per product. What is rounded is what CPU autocast rounds in the trainer's
// bf16 compute (train/compute.h): a layer's input and weights to bf16 (round to nearest
// even, as a cast does), the products summed in fp32, the layer's output rounded to bf16
// again (autocast's matmuls return bf16) and handed on as fp32. In SwiGLU the gate and up
// outputs are rounded, silu(g) u is computed in fp32 and rounded as the down
// projection's input. Results equal a bf16 torch::linear's up to the order of summation
// (tests/policy/expert_kernels_test.cpp). Timings in bench/RESULTS.md, "bf16 rollouts".

// True when this CPU has AVX-512F, -BW, -VL and AVX512-BF16 (checked once).
bool bf16_kernels_available();

// True when the bf16 kernels may take a layer of inner size K with these choices:
// available, kernels.small_rows on and K even (the products come in pairs along K).
bool bf16_kernels_apply(const KernelChoices& kernels, int64_t K);

// y [M, N] (row stride ldy) = bf16(bf16(x) w^T + b) for x [M, K] fp32, w [N, K] bf16 and
// b [N] (fp32, bf16-valued; may be null): the column form from kColumnRowsMin rows when
// takes_columns, else the row form. Raw row-major memory; requires bf16_kernels_apply.
void linear_bf16_raw(const float* x, int64_t M, int64_t K, const at::BFloat16* w, int64_t N,
                     const float* b, float* y, int64_t ldy, const KernelChoices& kernels);

// One routed expert's share of a MoE layer, on raw fp32 row-major memory: rows of x
// ([rows, dim]) through the SwiGLU expert (w_gate/w_up [inter, dim], w_down [dim, inter])
// into y ([rows, dim]). With the bf16 weights set (all three), in bf16 compute as above.
struct ExpertJob {
  const float* x = nullptr;
  int64_t rows = 0;
  int64_t inter = 0;  // the expert's hidden size
  const float* w_gate = nullptr;
  const float* w_up = nullptr;
  const float* w_down = nullptr;
  float* y = nullptr;
  const at::BFloat16* w_gate16 = nullptr;
  const at::BFloat16* w_up16 = nullptr;
  const at::BFloat16* w_down16 = nullptr;
};

// Cuts jobs into at most `parts` contiguous ranges [first, second) of about equal cost
// (rows plus one pass over the weights per block of rows, times the hidden size), none
// empty unless jobs is.
std::vector<std::pair<size_t, size_t>> partition_expert_jobs(const std::vector<ExpertJob>& jobs,
                                                             int parts);

// Runs every job with the small-row kernel, the ranges of partition_expert_jobs(jobs,
// threads) on the calling thread and the workers of exec's pool (serially when threads is
// 1 or inside a LibTorch parallel region), on AVX-512 as exec.kernels says. MoE passes
// threads = exec.expert_threads(). Jobs must not overlap in y. Requires AVX2/FMA.
void swiglu_experts_small_rows(const std::vector<ExpertJob>& jobs, int64_t dim, int threads,
                               const ExecutionContext& exec);

}  // namespace r1kit::policy
