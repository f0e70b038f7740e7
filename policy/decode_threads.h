// The linear layers of a decode step, split over the decode threads.
//
// A decode step is hundreds of small ops. LibTorch's intra-op threads (OpenMP) would start a
// team for each, which made decode much slower than one thread on 2-vCPU machines
// (bench/RESULTS.md). Instead a forward's ExecutionContext (policy/execution.h) names a count of
// decode threads, and only the heavy parts of a step split their work over the persistent
// pool of core/parallel.h: the routed and shared experts of a MoE layer
// (policy/expert_kernels.h), the fused MLA attention (policy/mla_decode.h) and the linear
// layers through decode_linear (attention projections, dense FFNs, the output head).
// Everything else stays on the calling thread.
//
// Thread-safety: a pure function of its arguments (and of OpenBLAS's thread count, below).
#pragma once

#include <torch/torch.h>

#include "policy/execution.h"

namespace r1kit::policy {

// x [..., K] w^T (+ b) for w [N, K]: torch::linear. Without autograd or autocast, on fp32
// CPU tensors, with exec.kernels.small_rows on, M = x.numel() / K rows take the kernels of
// expert_kernels.h instead of sgemm (no packing of w: at decode its weights come cold from
// memory): the column form where it applies (takes_columns: kColumnRowsMin to
// kColumnRowsMax rows, AVX-512), the row form below kColumnRowsMin rows (AVX2/FMA; 1.2-1.9x
// sgemm's speed on the output heads of `tiny` and `small`, bench/RESULTS.md), w's rows
// split over exec.decode_threads in blocks of 6. Each output is then computed the same way
// at any thread count. Not in the trainer's no-grad passes
// (exec.kernels.grouped_without_grad), which take the gradient pass's kernels.
// Otherwise, with exec.decode_threads > 1 and not exec.same_bits_any_threads, no
// autograd, fp32 CPU tensors, N >= 64 and OpenBLAS on one thread here
// (BlasThreadsGuard::one_thread_here, as the engine sets it; the pool's workers hold their
// own OpenMP count at one: concurrent calls then each run on their caller's thread), the
// output columns are split into exec.decode_threads parts of whole 16-column blocks, each
// a BLAS call on exec's pool (every part packs only its own rows of w).
torch::Tensor decode_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b,
                            const ExecutionContext& exec);

}  // namespace r1kit::policy
