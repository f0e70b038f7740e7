// The execution context of a forward pass: how many threads its heavy parts use, which
// pool those threads come from, and which CPU kernels it may take.
//
// A plain value, carried in ForwardOptions::execution (policy/model.h) beside attn_impl
// and handed down explicitly, call by call, to the layers and kernels that read it: the
// MoE layer and the small-row expert kernels (policy/expert_kernels.h), the fused MLA
// decode attention (policy/mla_decode.h) and decode_linear (policy/decode_threads.h).
// Nothing in policy/ reads a thread-local or process-wide switch instead, so two forwards
// on two threads with different contexts do not affect each other. The rollout engine
// fills it from its EngineOptions (rollout/engine.h), which the CLI fills from
// `--decode-threads` and a recipe from `grpo.rollout.decode_threads` (docs/rollout.md).
//
// The default context is what a forward with default options does: one decode thread,
// and every kernel where the CPU and the tensors allow it.
//
// Process-wide state it does not carry, read where it matters and set only by its owners:
// LibTorch's intra-op threads (at::set_num_threads, set by the CLI and the trainers from
// `--threads` / `dist.threads`; expert_threads() reads it) and OpenBLAS's own threads
// (core/blas_threads.h; the engine sets them for the duration of generate() as
// EngineOptions::blas_threads says; decode_linear splits only over a one-thread OpenBLAS).
//
// Thread-safety: a value. The pool it names may be shared by several contexts in use at
// once (ParallelPool::run: one run at a time uses the workers, another runs its parts on
// its own calling thread; core/parallel.h).
#pragma once

namespace r1kit {
class ParallelPool;
}

namespace r1kit::policy {

class Bf16Weights;

// The most decode threads a context may ask for (the pool has at most 63 workers).
inline constexpr int kMaxDecodeThreads = 64;

// Which CPU kernels a forward may take, each only where the CPU and the tensors allow
// it. All on by default; off for A/B measurements and tests (bench/rollout_bench.cpp).
struct KernelChoices {
  bool small_rows = true;         // the small-row expert kernel (expert_kernels.h); needs AVX2/FMA
  bool small_rows_avx512 = true;  // its 16-lane form where the CPU has AVX-512F; false: AVX2
  // With AVX-512, an expert's rows taken as columns from kColumnRowsMin rows up
  // (expert_kernels.h); false: the row form at every count.
  bool small_rows_columns = true;
  bool mla_decode = true;  // the fused MLA decode attention (mla_decode.h); needs AVX-512F
  // With autograd: MoE's routed experts as one grouped node (grouped_experts.h) and the
  // fused SwiGLU; false: one chain of LibTorch ops per expert (the reference).
  bool grouped_experts = true;
  // The grouped experts and fused SwiGLU without autograd too: the trainer's no-grad
  // passes (pi_old, the reference) then compute their log-probs with the kernels of its
  // gradient pass, so that the ratio is 1 where the weights are the same (in bf16 the
  // two paths round differently). policy/logprobs.h sets it; decoding leaves it off.
  bool grouped_without_grad = false;
};

struct ExecutionContext {
  // Threads for the heavy parts of a decode step, in [1, kMaxDecodeThreads]: the calling
  // thread plus decode_threads - 1 workers of the pool. 1 keeps everything on the calling
  // thread (the heavy parts then use LibTorch's own intra-op threads, if any).
  int decode_threads = 1;
  // The pool the decode threads come from; nullptr = ParallelPool::global().
  ParallelPool* pool = nullptr;
  // Every kernel chosen as on one thread, so that each output gets the same bits at any
  // decode_threads (the threads only share the work): no OpenBLAS split of a linear
  // layer past the kernels' row counts (decode_threads.h), no pool rule for experts of
  // 17-64 rows on the row form (expert_kernels.h, kPoolRowsMax). The engine sets it
  // where it may take lent cores mid-request (rollout/engine.h, use_lent_cores).
  bool same_bits_any_threads = false;
  KernelChoices kernels{};
  // bf16 compute for the linear layers whose weights have copies here (not owned; must
  // outlive the forward), without autograd: policy/bf16_weights.h. nullptr: fp32.
  const Bf16Weights* bf16 = nullptr;

  // *pool, or ParallelPool::global().
  ParallelPool& parallel_pool() const;

  // Threads for a MoE layer's experts without autograd: max(decode_threads,
  // at::get_num_threads()), so that a no-grad forward on several LibTorch intra-op
  // threads (evaluation with `--threads 2`) spreads its experts over the pool as well.
  int expert_threads() const;
};

}  // namespace r1kit::policy
