// RMSNorm as one pass forward and one pass backward.
//
//   y = round_x(x r) * w,   r = 1 / sqrt(mean_j(x_j^2) + eps)   (per row, in fp32)
//
// the convention of Llama, Qwen and DeepSeek-V3 in Hugging Face transformers: the norm in
// fp32, cast back to x's dtype (round_x), then scaled by the weight. The result's dtype is
// the promotion of x's and w's (bf16 x under autocast with fp32 master weights: fp32).
//
// Backward, with g = dL/dy, xh = x r (fp32, before rounding), gy = g w:
//
//   dL/dw = sum over rows of g * round_x(x r)
//   dL/dx = r (gy - xh mean_j(gy_j xh_j))
//
// treating the rounding as the identity, as autograd does for a cast. Unlike the chain of
// LibTorch ops (7 passes forward, about 12 backward, each with its own temporary; the
// timings are in bench/RESULTS.md) it reads x once forward and x and g once backward, and
// keeps gy in fp32 where autograd would round it to x's dtype.
//
// fp32 and bf16 CPU tensors, contiguous or not, any leading shape; the kernels are
// written once and compiled for AVX-512, AVX2 and the baseline ISA (policy/kernel_util.h).
// Other devices and dtypes take the chain of LibTorch ops (rms_norm_reference), which is
// also the independent implementation the tests compare with
// (tests/policy/rms_norm_test.cpp).
// Thread-safety: pure functions; rows are split over LibTorch's intra-op threads.
#pragma once

#include <torch/torch.h>

namespace r1kit::policy {

// x [..., d], weight [d]: the fused form on the CPU for fp32/bf16, else the reference.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// The same as a chain of LibTorch ops.
torch::Tensor rms_norm_reference(const torch::Tensor& x, const torch::Tensor& weight, double eps);

}  // namespace r1kit::policy
