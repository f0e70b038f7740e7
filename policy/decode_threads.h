// Threads for the decode steps of the rollout engine, and the linear layers that use them.
//
// A decode step is hundreds of small ops. LibTorch's intra-op threads (OpenMP) would start a
// team for each, which made decode much slower than one thread on 2-vCPU machines
// (bench/RESULTS.md). Instead the engine sets a per-thread count of decode threads, and only the
// heavy parts of a step split their work over the persistent pool of core/parallel.h: the
// routed and shared experts of a MoE layer (policy/expert_kernels.h), the fused MLA
// attention (policy/mla_decode.h) and the linear layers through decode_linear (attention
// projections, dense FFNs, the output head). Everything else stays on the calling thread.
//
// Thread-safety: the count is thread-local, so a training thread beside the engine keeps 1.
#pragma once

#include <torch/torch.h>

namespace r1kit::policy {

// Decode threads of this thread: 1 (the default) or what a DecodeThreadsGuard set. MoE
// layers use max(decode_threads(), at::get_num_threads()) for their experts.
int decode_threads();

// Sets decode_threads() on this thread (at least 1) until destruction.
class DecodeThreadsGuard {
 public:
  explicit DecodeThreadsGuard(int n);
  ~DecodeThreadsGuard();
  DecodeThreadsGuard(const DecodeThreadsGuard&) = delete;
  DecodeThreadsGuard& operator=(const DecodeThreadsGuard&) = delete;

 private:
  int old_;
};

// x [..., K] w^T (+ b) for w [N, K]: torch::linear. With decode_threads() > 1, no
// autograd, fp32 CPU tensors, N >= 64 and OpenBLAS on one thread (BlasThreadsGuard, as
// the engine sets it: concurrent calls then each run on their caller's thread), the
// output columns are split into
// decode_threads() parts of whole 16-column blocks, each a BLAS call on the pool (every
// part packs only its own rows of w).
torch::Tensor decode_linear(const torch::Tensor& x, const torch::Tensor& w,
                            const torch::Tensor& b = {});

}  // namespace r1kit::policy
