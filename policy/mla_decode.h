// Absorbed MLA attention at decode, fused, for CPUs with AVX-512.
//
// At decode every row has one query token. On the absorbed path (DeepSeek-V2 §2.1.2, W_UK
// folded into the query; docs/model.md, "MLA") each head scores that token against the
// row's latent cache and RoPE keys, and sums the latents by the softmax weights. As
// LibTorch ops that is a batch of tiny matrix products per row (8 heads x a few hundred
// positions for `small`), where OpenBLAS spends its time packing; with the masked_fill,
// softmax and the copies between them it was a large share of a batch-64 decode step of
// `small` (bench/RESULTS.md). This kernel does the scores, the softmax and the weighted
// sum of one row in one pass over its cache (which then stays in cache) and spreads the
// rows over the pool of core/parallel.h.
//
// Inference only (no autograd); fp32 on the CPU. Results equal the LibTorch path's up to
// the order of summation (tests/policy/mla_decode_test.cpp). Whether it is taken and
// which pool it runs on come with each call (KernelChoices, ExecutionContext:
// policy/execution.h). Thread-safety: pure functions.
#pragma once

#include <torch/torch.h>

#include "policy/execution.h"

namespace r1kit::policy {

// True when mla_decode_attention may be called on these tensors: the CPU has AVX-512F,
// the kernel is chosen (kernels.mla_decode), autograd is off, and all are fp32 CPU
// tensors with c and pe contiguous within each row (as views of the KV cache are).
bool mla_decode_kernel_applies(const torch::Tensor& q_lat, const torch::Tensor& q_pe,
                               const torch::Tensor& c, const torch::Tensor& pe,
                               const KernelChoices& kernels);

// For every row b < B and head h < H, over the positions j < lengths[b]:
//   s[j] = scale * (q_lat[b, h] . c[b, j] + q_pe[b, h] . pe[b, j])
//   o[b, h] = sum_j softmax(s)[j] * c[b, j]
// q_lat [B, H, dc], q_pe [B, H, dr], c [B, S, dc], pe [B, S, dr]; lengths [B] int64 on the
// CPU, each in [1, S]. Returns o [B, H, dc]. The rows are split into exec.decode_threads
// parts on exec's pool; mla_decode_kernel_applies(..., exec.kernels) must hold.
torch::Tensor mla_decode_attention(const torch::Tensor& q_lat, const torch::Tensor& q_pe,
                                   const torch::Tensor& c, const torch::Tensor& pe,
                                   const torch::Tensor& lengths, double scale,
                                   const ExecutionContext& exec);

}  // namespace r1kit::policy
