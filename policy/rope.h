// Rotary embedding on the last dimensions of each head, scaled, as one pass forward and
// one pass backward.
//
// For x [B, T, h, D] and angles at each (b, t), cos and sin [B, T, R/2] (fp32, already
// times YaRN's cos scale), with the R = 2 half rotated dimensions at the end of each head:
//
//   y[..., :D-R] = s x[..., :D-R]
//   y[..., a_i]  = s (x[a_i] cos_i - x[b_i] sin_i)
//   y[..., b_i]  = s (x[b_i] cos_i + x[a_i] sin_i)
//
// with (a_i, b_i) = (2i, 2i+1) of the tail when interleaved (DeepSeek-V3) or (i, i + R/2)
// when not (Llama, Qwen; Rotary's convention, policy/model.h), computed in fp32 and rounded
// once to x's dtype. Backward is the transposed rotation (the angle negated) times s.
//
// MLA's naive attention takes its query as [q_nope, rope(q_pe)] times the softmax scale:
// with this op that is one pass and one autograd node, instead of a narrow, the rotation's
// chain of fp32 ops, a concatenation and a multiply, each with its own backward
// (bench/RESULTS.md, "RMSNorm and RoPE in one pass"). GQA's query and key are the case
// R = D.
//
// fp32 and bf16 CPU tensors (loops compiled for AVX-512, AVX2 and the baseline ISA,
// policy/kernel_util.h); other dtypes and devices take the chain of LibTorch ops
// (rope_tail_reference, also what tests/policy/rope_test.cpp compares with).
// Thread-safety: pure functions; rows are split over LibTorch's intra-op threads.
#pragma once

#include <torch/torch.h>

namespace r1kit::policy {

// x [B, T, h, D], cos and sin [B, T, R/2] fp32 with R <= D even: y [B, T, h, D] contiguous
// in x's dtype.
torch::Tensor rope_tail(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        bool interleave, double scale);

// The same as a chain of LibTorch ops.
torch::Tensor rope_tail_reference(const torch::Tensor& x, const torch::Tensor& cos,
                                  const torch::Tensor& sin, bool interleave, double scale);

}  // namespace r1kit::policy
