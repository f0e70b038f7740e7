// The routed experts of a MoE layer with autograd, as grouped GEMMs (docs/model.md,
// "Grouped training path").
//
// With autograd, a MoE layer built from one SwiGLU module per expert puts a chain of
// autograd nodes per expert into the graph: the gather of the expert's rows, three
// linears, SiLU and product, the concatenation of the outputs, the weighting and the
// index_add back to the tokens, and in backward the zero-filled buffers and serial
// index_add of the gathers' gradients. Here the whole routed part is one autograd node:
//   forward:  sort the (token, slot) pairs by expert once; gather the tokens into one
//             contiguous [N*K, d] buffer; per active expert, its gate and up weights
//             stacked into one [2I, d] matrix (in the compute dtype) and one GEMM on its
//             slice into one [N*K, 2I] buffer; SwiGLU over the whole buffer in one fused
//             pass; per expert one GEMM into one [N*K, d] output buffer; each
//             token's K rows summed with its combine weights (a gather, no zero-fill and
//             no atomics);
//   backward: the same grouped work in reverse (gather of the output gradient scaled by
//             the combine weights, with the weights' gradient in the same pass; per
//             expert the GEMMs of the input and weight gradients, gate and up in one;
//             SwiGLU's backward in one fused pass; each token's K input-gradient rows
//             summed by a gather).
// An expert that got no token gets no gradient (undefined, as for a parameter outside
// the graph), never a zero-filled one.
//
// Dtypes: under CPU autocast the experts compute in the autocast dtype (bf16), as
// autocast's linears would, and the weight gradients come back in the parameters'
// dtype; otherwise in x's dtype (the weights must match it). The output and x's
// gradient are in x's dtype; the combine weights and their gradient in theirs (fp32).
// fp32 and bf16 CPU tensors take hand-written loops for the element-wise parts
// (AVX-512 or AVX2 where the CPU has it); other dtypes and devices take LibTorch ops for them.
// The GEMMs are LibTorch's (torch::mm), on any device. In bf16 on the CPU each expert's
// block of rows is padded with zero rows to a multiple of 32: LibTorch's bf16 GEMMs
// (oneDNN) compile a kernel for every new shape, and unpadded row counts change with every
// batch. The padding adds nothing to any output or gradient.
//
// Thread-safety: pure functions.
#pragma once

#include <torch/torch.h>

#include <vector>

namespace r1kit::policy {

// The routed experts of one MoE layer: one entry per expert, gate[e] and up[e] [I, d],
// down[e] [d, I] (nn.Linear layout).
struct ExpertWeights {
  std::vector<torch::Tensor> gate, up, down;
};

// Σ_k weights[n, k] · expert_{indices[n, k]}(x[n]) for every token n, with autograd
// into x, weights and the expert weights. x [N, d]; indices [N, K] integer expert ids in
// [0, E); weights [N, K] floating (the gate's combine weights). Returns [N, d] in x's
// dtype.
torch::Tensor grouped_experts(const torch::Tensor& x, const torch::Tensor& indices,
                              const torch::Tensor& weights, const ExpertWeights& experts);

// silu(g) * u with autograd, forward and backward each one fused pass over the
// elements (LibTorch ops outside fp32/bf16 CPU tensors). g and u of one shape and dtype.
torch::Tensor swiglu(const torch::Tensor& g, const torch::Tensor& u);

}  // namespace r1kit::policy
