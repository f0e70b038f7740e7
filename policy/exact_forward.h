// The exact forward: a batch-invariant forward pass of the policy, in plain C++ over float
// buffers, whose per-token log-probs are bitwise the same whether a token is computed in a
// full-sequence forward (the trainer) or in a KV-cached decode step (the rollout engine),
// whatever the batch it sits in, its row, the thread count or the prefix sharing
// (docs/grpo-training.md, "Exact mode").
//
// Why a separate forward: LibTorch's kernels choose their reduction order by shape
// (OpenBLAS picks GEMV or GEMM kernels, blocking depends on the row count; ATen's
// elementwise loops take vectorised exp on full vectors and scalar exp on a loop's tail;
// a softmax over a row of length L reduces in another order than one of length T), so the
// same token's logits differ in the last bits between a decode step and a training
// forward (He et al., "Defeating Nondeterminism in LLM Inference", Thinking Machines Lab
// 2025, "batch invariance"). Here every quantity of a token is computed by a per-row
// function whose arithmetic depends only on that row's inputs and, for attention, on the
// cache rows 0..t of its own sequence, visited in key order:
//   - every dot product (linear layers, attention scores, the gate, the output head)
//     runs over k in one fixed order: 16 lane accumulators, then a fixed pairwise sum of
//     the lanes (exact_forward.cpp is compiled with -ffp-contract=off and without
//     fast-math, so the compiler can neither fuse nor reorder);
//   - RMSNorm, RoPE (YaRN / Llama 3 frequencies as policy::Rotary computes them), the
//     attention softmax (max, exp, sum, weighted value sum, in key order), SiLU, the MoE
//     gate (scores, correction bias, group-limited top-k, normalisation, route scale), the
//     experts and the shared experts, the final norm and the log-softmax over the
//     vocabulary are per-row loops in a fixed order;
//   - work is split over threads only across independent outputs (rows, output columns),
//     never inside a reduction (and only with at least 32k multiply-adds a part);
//   - where the CPU has AVX2 the dot products run four weight rows at a time in ymm
//     registers: the same multiply and add per lane and k as the portable loop (no FMA),
//     so the bits do not depend on which form computed them. exp, cos and sin are the C
//     library's: a remote worker built against another libm could differ.
// A full-sequence forward is the same per-row functions applied at every position, so a
// KV-cached step computes bitwise what the full forward computes at that position.
//
// One attention formulation for both sides: MLA runs "naive" (the KV latent expanded by
// kv_b_proj into per-head keys and values once per position, cached expanded), GQA as
// usual. The engine's attn_impl and kernel choices do not apply.
//
// Precision (ExactPrecision): kF32 computes in fp32. kBF16 rounds the inputs and the
// weights of every linear layer (attention projections, experts, dense MLP, the router)
// to bf16 and accumulates in fp32, like a bf16 autocast region does it; norms, RoPE,
// softmax, the output head and the log-softmax stay fp32 (as policy::token_logprobs keeps
// the head in fp32 under autocast). Weights of any float dtype are read as fp32.
//
// Thread-safety: an ExactModel is read-only after construction and may serve several
// threads; an ExactCache belongs to one caller.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "policy/execution.h"
#include "policy/model_args.h"
#include "policy/truncation.h"

namespace r1kit::policy {

class TransformerImpl;
struct CompletionLogProbs;

enum class ExactPrecision { kF32, kBF16 };
const char* exact_precision_name(ExactPrecision p);  // "f32", "bf16"

// Why the exact forward cannot run `args` ("" when it can): every DeepSeek-V2/V3 (MLA,
// MoE, dense) and GQA (Qwen2/Qwen3/Llama, dense or MoE) configuration the policy takes is
// supported; the checks are for sizes the kernels assume.
std::string exact_unsupported(const ModelArgs& args);

// The KV cache of the exact forward: per layer, per slot, per position, one key row and one
// value row (MLA: [H * d_n + d_r] keys, the RoPE key once, [H * d_v] values; GQA:
// [n_kv * D] each). fp32.
class ExactCache {
 public:
  ExactCache() = default;
  ExactCache(const ModelArgs& args, int64_t slots, int64_t max_len);
  int64_t slots() const { return slots_; }
  int64_t max_len() const { return max_len_; }
  int64_t bytes() const { return static_cast<int64_t>((k_.size() + v_.size()) * sizeof(float)); }
  float* key(int64_t layer, int64_t slot, int64_t pos);
  float* value(int64_t layer, int64_t slot, int64_t pos);
  // Copies positions [0, len) of slot `from` of `src` into slot `to` of this cache (the same
  // model; `src` may be this cache).
  void copy_slot(const ExactCache& src, int64_t from, int64_t to, int64_t len);

 private:
  const float* key_c(int64_t layer, int64_t slot, int64_t pos) const;
  const float* value_c(int64_t layer, int64_t slot, int64_t pos) const;
  int64_t layers_ = 0, slots_ = 0, max_len_ = 0, kdim_ = 0, vdim_ = 0;
  std::vector<float> k_, v_;
};

// One token of an exact forward call: its sequence's cache slot, its position there, its id.
struct ExactRow {
  int64_t slot = 0;
  int64_t pos = 0;
  int64_t token = 0;
};

// The model's weights as the exact forward reads them: fp32 weights in place (a view, no
// copy), others as fp32 copies, and for kBF16 the linear layers' weights as bf16-rounded
// copies. The model must outlive it and not change while it is in use.
class ExactModel {
 public:
  // Throws c10::Error naming the unsupported part when exact_unsupported(args) is not "".
  ExactModel(TransformerImpl& model, ExactPrecision precision);
  ~ExactModel();
  ExactModel(ExactModel&&) noexcept;
  ExactModel& operator=(ExactModel&&) noexcept;

  const ModelArgs& args() const;
  ExactPrecision precision() const;

  // Runs `rows` through every layer: each row's key/value go to `cache` at (slot, pos),
  // and each row attends the keys [0, pos] of its slot (so a sequence's rows may come in
  // one call, as a prefill does, or one per call). Rows with the same (slot, pos) are not
  // allowed. Returns the final-normed hidden state of every row, [rows, d] fp32.
  // `experts` (optional): the routed experts of every row in every MoE layer,
  // [rows, n_moe_layers, K] int16. Threads: exec.decode_threads.
  torch::Tensor forward(ExactCache& cache, const std::vector<ExactRow>& rows,
                        const ExecutionContext& exec, torch::Tensor* experts = nullptr) const;

  // Tempered logits z = (h W_out^T) * (1 / temperature) of hidden rows [n, d]: [n, V].
  torch::Tensor logits(const torch::Tensor& hidden, double temperature,
                       const ExecutionContext& exec) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// log q(target) of one row of tempered logits z[0, V) under the processed distribution
// (policy/truncation.h: softmax(z) truncated by `trunc`, the target always kept), in a
// fixed order: bitwise a function of the row alone.
float exact_token_logprob(const float* z, int64_t V, int64_t target, const Truncation& trunc);

// The exact sampler (rollout/sampling.h's semantics, per row): draws from the processed
// distribution of z with the uniform u in [0, 1) by an inverse-CDF lookup in id order;
// `greedy`: the argmax (lowest id among ties). Returns the token.
int64_t exact_sample(const float* z, int64_t V, const Truncation& trunc, double u, bool greedy);

// Exact log-probs of completion tokens (the layout of policy::completion_logprobs: row i
// is prompt_ids[i] then completions[i, :], mask [B, T]): [B, T] fp32, 0 where mask is 0,
// no gradient. temperature <= 0 means 1.
torch::Tensor exact_completion_logprobs(const ExactModel& model,
                                        const std::vector<std::vector<int64_t>>& prompt_ids,
                                        const torch::Tensor& completions, const torch::Tensor& mask,
                                        double temperature, const Truncation& truncation,
                                        const ExecutionContext& exec = {});

// The precision a trainer's exact forward takes: kBF16 inside a CPU bf16 autocast region
// (train/compute.h), else kF32.
ExactPrecision exact_precision_of_autocast();

// Straight-through exact log-probs: replaces out.logprobs [B, T] by
//   lp_exact.detach() + (lp - lp.detach())
// whose value is bitwise lp_exact (x - x is exactly 0, y + 0 is y) and whose gradient is
// that of the normal forward's lp. Same arguments as the completion_logprobs call that
// produced `out`; the precision is exact_precision_of_autocast().
void make_logprobs_exact(CompletionLogProbs& out, TransformerImpl& model,
                         const std::vector<std::vector<int64_t>>& prompt_ids,
                         const torch::Tensor& completions, const torch::Tensor& mask,
                         double temperature, const Truncation& truncation);

}  // namespace r1kit::policy
