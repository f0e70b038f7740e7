// CPU kernels for routed experts that receive few tokens, as in batched decode.
//
// At decode time a MoE layer sends each active expert only a handful of rows (batch 64,
// 40 experts, top-4: ~6 each). A BLAS sgemm then spends its time packing the expert's
// weight matrix, not multiplying: it is built for many rows. These kernels stream each
// weight row once per block of 6 input rows straight from the nn.Linear layout
// ([out, in], row-major) with AVX2 FMA, and fuse SwiGLU's gate, up, SiLU and product
// into one pass, so an expert costs two passes over its weights and no temporaries
// beyond its [M, inter] hidden rows.
//
// Inference only (no autograd); fp32, CPU, contiguous tensors. Results equal
// torch::linear's up to the order of summation (tests/policy/expert_kernels_test.cpp).
// Thread-safety: pure functions.
#pragma once

#include <torch/torch.h>

namespace r1kit::policy {

// Rows at or below which the kernels beat OpenBLAS sgemm on an expert of the `small`
// preset (bench/RESULTS.md, "Session 7").
inline constexpr int64_t kSmallRowsMax = 16;

// True when this CPU has AVX2 and FMA (checked once).
bool small_rows_kernels_available();

// On by default; off makes small_rows_kernels_apply false everywhere (for A/B
// measurements: bench/rollout_bench.cpp's "kernel" section). Process-wide, atomic.
void set_small_rows_kernels_enabled(bool on);

// True when swiglu_small_rows may be called on these tensors: the kernels are
// available and enabled, autograd is off, and all are fp32, on the CPU and contiguous.
bool small_rows_kernels_apply(const torch::Tensor& x, const torch::Tensor& w_gate,
                              const torch::Tensor& w_up, const torch::Tensor& w_down);

// y = x w^T for x [M, K] and w [N, K]: torch::linear without bias.
torch::Tensor linear_small_rows(const torch::Tensor& x, const torch::Tensor& w);

// down(silu(gate(x)) * up(x)) for x [M, dim], w_gate and w_up [inter, dim], w_down
// [dim, inter]: one SwiGLU expert, returns [M, dim].
torch::Tensor swiglu_small_rows(const torch::Tensor& x, const torch::Tensor& w_gate,
                                const torch::Tensor& w_up, const torch::Tensor& w_down);

}  // namespace r1kit::policy
