// The generation engine: token ids in; token ids, per-token log-probs, finish reasons
// and the policy version out. Knows nothing about text except optional stop strings,
// which it checks through a decode callback.
//
// Follows the structure of nanochat's engine and llama.cpp's batch / kv-cache /
// sampler split, with vLLM-style continuous batching on a preallocated cache:
//   - the KV cache has N slots (EngineOptions::max_batch) of S tokens each; for MLA a
//     slot holds only the normalised KV latent and the RoPE key per layer (d_c + d_r),
//     read through the absorbed attention path; for GQA the keys and values per KV head;
//   - prefix sharing: a group's prompt is prefilled once (naive path, B = 1) into a
//     scratch cache, and its rows are copied into each of the G samples' slots; the
//     first token of every sample is drawn from that one prefill's logits;
//   - continuous batching: all active slots decode together, one token per step, each
//     at its own position (ForwardOptions::row_positions); a finished sequence frees
//     its slot at once (the last active slot is moved into the hole, so active slots
//     stay contiguous) and the next waiting sample takes it.
// Differences from vLLM: no paged blocks (a slot is a contiguous S-token row, so a
// sequence never needs more than one slot), no prefix cache across requests (a weight
// update would invalidate it anyway), and one request at a time.
//
// Determinism: sample j of the prompt with index i draws its t-th token with the
// uniform sample_uniform(derive_seed(seed, {i, j}), t): the tokens depend on the seed
// and the logits only, never on the batch composition (up to floating-point
// differences in the logits between batch shapes, which would have to straddle a
// sampling boundary to change a token).
//
// Exact mode (GenerateRequest::exact; docs/rollout.md, "Exact mode"): the same loop
// (continuous batching, prefix sharing, stop strings) with the model step replaced by the
// batch-invariant exact forward (policy/exact_forward.h) over a cache of its own, and the
// token drawn and scored per row (policy::exact_sample, policy::exact_token_logprob): the
// returned log-probs are bitwise what a trainer's exact forward computes for the tokens,
// whatever the batch, decode_threads, decode_impl, kernels or share_prefix.
//
// Thread-safety: generate() calls on one Engine are serialised by an internal mutex;
// abort() may be called from any thread at any time. The engine reads the model's
// weights during generate(): whoever changes them (LocalRolloutSource) must not do so
// concurrently.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "data/incremental_decoder.h"
#include "policy/bf16_weights.h"
#include "policy/exact_forward.h"
#include "policy/model.h"
#include "rollout/rollout_source.h"

namespace r1kit::rollout {

// Text of generated token ids, for stop strings only (Tokenizer::decode's contract).
using DecodeFn = data::DecodeIdsFn;
// Called with (group, sample in the group, token) as each token is sampled.
using TokenFn = std::function<void(int64_t, int64_t, int64_t)>;
// A DecodeFn over a tokenizer (the tokenizer is copied; copies share the model).
DecodeFn tokenizer_decoder(const data::Tokenizer& tokenizer);

struct EngineOptions {
  // N: cache slots, the most sequences decoded together. Memory: N * max_seq_len *
  // KV bytes per token (ModelArgs::kv_cache_bytes_per_token).
  int64_t max_batch = 64;
  // S: tokens per slot (prompt + completion), allocated at construction. 0 = the model's
  // max_seq_len as the limit, with slots allocated at kInitialCacheTokens (or the limit if
  // shorter) and grown by generate() to what a request needs: a checkpoint's
  // max_position_embeddings (40,960 for Qwen3) would otherwise reserve gigabytes a slot.
  int64_t max_seq_len = 0;
  static constexpr int64_t kInitialCacheTokens = 512;
  // Prefill a group's prompt once and copy its cache to the G samples. Off: every
  // sample prefills its own copy of the prompt (for measuring the sharing).
  bool share_prefix = true;
  // With share_prefix, the prompts of the groups that get slots together are prefilled in
  // one forward of up to this many tokens (prompts x the longest); a longer prompt alone.
  static constexpr int64_t kPrefillBatchTokens = 2048;
  // Attention path for decode steps: kAbsorb (MLA's absorbed path; the default) or
  // kNaive (expand the latent per step; for comparison). Ignored for GQA.
  policy::AttnImpl decode_impl = policy::AttnImpl::kAbsorb;
  // Threads for each forward of generate() (ExecutionContext::decode_threads,
  // policy/execution.h), in [1, 64]: the experts, the fused MLA attention and the linear
  // layers split their work over this many; every other op stays on one (generate() holds
  // its calling thread to one LibTorch intra-op thread while it runs, whatever
  // at::set_num_threads says). 1 suits a generation that shares the machine with training
  // (GRPO with rollout.overlap); the core count suits one that has it to itself.
  int decode_threads = 1;
  // Take the cores other threads lend (LendCores, core/parallel.h) as extra decode
  // threads, checked before every step. The forwards then choose every kernel as on one
  // thread (policy::ExecutionContext::same_bits_any_threads), so the results are the
  // same bits however many cores were lent when. GRPO with rollout.overlap sets it; its
  // trainer lends its core while it waits for the rollout.
  bool use_lent_cores = false;
  // Which CPU kernels generate()'s forwards may take (policy/execution.h); all by default.
  policy::KernelChoices kernels{};
  // The pool the decode threads come from (not owned; must outlive the engine's calls);
  // nullptr = ParallelPool::global().
  ParallelPool* pool = nullptr;
  // OpenBLAS's own thread count for the duration of generate() (BlasThreadsGuard,
  // core/blas_threads.h: process-wide while the call runs, restored after), >= -1.
  // kBlasThreadsAuto (the default): 1 when generate() decodes on more than one thread
  // (decode_threads_with), so that OpenBLAS's pool and ours do not compete for the cores
  // (decode_linear splits columns only over a one-thread OpenBLAS), else left alone.
  // 0: left alone. n >= 1: n.
  static constexpr int kBlasThreadsAuto = -1;
  int blas_threads = kBlasThreadsAuto;

  // The forwards' execution context: decode_threads, pool and kernels.
  policy::ExecutionContext execution() const;
  // The decode threads of a generate() whose caller has `intra_op` LibTorch intra-op
  // threads: max(decode_threads, intra_op), at most policy::kMaxDecodeThreads. generate()
  // holds its calling thread to one intra-op thread while it runs and splits a step's
  // heavy parts over these instead, so a caller's cores serve it either way (GRPO with
  // rollout.overlap gives its generation thread one; `r1kit eval --threads 2`, two).
  int decode_threads_with(int intra_op) const;
  // What generate() sets OpenBLAS's thread count to when it decodes on `threads` decode
  // threads; 0 = leaves it alone.
  int blas_threads_during_generate(int threads) const;
};
// The cache has the dtype of the model's weights (bf16 weights: a bf16 cache).

// Counters of the last generate() call.
struct EngineStats {
  int64_t prompts = 0;           // groups
  int64_t sequences = 0;         // completions
  int64_t prefill_tokens = 0;    // prompt tokens run through the model
  int64_t prefill_forwards = 0;  // forward passes that prefilled them
  int64_t generated_tokens = 0;  // completion tokens produced
  int64_t decode_steps = 0;      // batched decode forward passes
  double prefill_seconds = 0;    // wall time in prefill (including cache copies)
  double decode_seconds = 0;     // wall time in decode steps (forward + sampling)
  double total_seconds = 0;
  double mean_batch = 0;       // mean active sequences per decode step
  int max_decode_threads = 0;  // the most decode threads a step ran on (lent cores included)
};

class Engine {
 public:
  // `model` is shared (a module holder); the engine puts it in eval mode and reads
  // its weights during generate(). `decode` is needed only for stop strings.
  Engine(policy::Transformer model, EngineOptions options = {}, DecodeFn decode = {});

  // Checks a request against the model and the cache: at least one prompt, group_size
  // >= 1, every prompt non-empty with ids in [0, V), prompt + max_new_tokens within
  // the slot length, valid sampling parameters, stop strings only with a decoder.
  Status validate(const GenerateRequest& request) const;

  // Generates request.group_size completions per prompt, tagging them with
  // `policy_version`. `on_group` is called (on this thread) once per group as soon as
  // its last sample finishes; `on_token` after every sampled token (for streaming:
  // data::IncrementalDecoder turns a sample's ids into whole characters). Returns the groups in the
  // order of request.prompts. After abort(), unfinished samples end with FinishReason::kAbort and
  // keep the tokens they had.
  StatusOr<std::vector<Group>> generate(const GenerateRequest& request, int64_t policy_version,
                                        const std::function<void(const Group&)>& on_group = {},
                                        const TokenFn& on_token = {});

  // Ends the running generate() (if any) at its next step; later calls run normally.
  // A call made while no generate() runs has no effect.
  void abort() { abort_.store(true); }

  const EngineOptions& options() const { return options_; }
  // The longest sequence (prompt + completion) a request may need.
  int64_t max_seq_len() const { return max_seq_len_; }
  // KV-cache bytes one sequence slot holds now (cache_len() tokens), and in total.
  int64_t cache_bytes_per_slot() const;
  int64_t cache_bytes() const {
    return cache_.bytes() + scratch_.bytes() + (exact_cache_ ? exact_cache_->bytes() : 0) +
           (exact_scratch_ ? exact_scratch_->bytes() : 0);
  }
  int64_t cache_len() const { return cache_.max_len; }  // tokens a slot holds now
  EngineStats last_stats() const;
  policy::Transformer& model() { return model_; }

 private:
  struct Seq;
  void move_slot(int64_t from, int64_t to, int64_t len, bool exact);  // exact: exact_cache_
  // Slots of at least `len` tokens (reallocated, contents dropped, when shorter).
  void reserve_cache(int64_t len);

  policy::Transformer model_;
  EngineOptions options_;
  DecodeFn decode_;
  int64_t max_seq_len_ = 0;
  policy::KVCache cache_;    // N slots
  policy::KVCache scratch_;  // 1 slot: the current group's prefilled prompt
  // Exact mode's caches, the same shapes (allocated by the first exact request).
  std::unique_ptr<policy::ExactCache> exact_cache_, exact_scratch_;
  // bf16 compute's copies of the weights, recast by every request that asks for it.
  policy::Bf16Weights bf16_weights_;
  std::atomic<bool> abort_{false};
  mutable std::mutex mu_;  // serialises generate(); guards stats_
  EngineStats stats_;
};

}  // namespace r1kit::rollout
