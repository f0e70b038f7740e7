// The policy: a DeepSeek-V2/V3 transformer (MLA attention, MoE feed-forward, MTP
// heads), and the GQA variant of Qwen2, Qwen3, Qwen3-MoE and Llama (dense or MoE).
//
// Follows DeepSeek-V3 inference/model.py and the DeepSeek-V2/V3 papers (docs/model.md):
// one module per concept of the paper, ordered small to large (RMSNorm, RoPE, MLA, GQA,
// MLP, Gate, MoE, DecoderLayer, MTPLayer, Transformer). Module member names are the
// Hugging Face checkpoint keys (q_a_proj, kv_b_proj, mlp.experts.3.up_proj, ...), so the
// parameter list of a model is its checkpoint. What it does differently from DeepSeek-V3's
// inference code:
//   - it trains: MoE balancing (the auxiliary-loss-free bias update, and the
//     sequence-wise auxiliary loss) and the MTP loss live here;
//   - the naive and absorbed MLA paths share one cache format (the normalised KV
//     latent and the RoPE key), so prefill can run naive and decode absorbed;
//   - logits are returned for every position (distillation and training need them).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "policy/execution.h"
#include "policy/expert_kernels.h"
#include "policy/model_args.h"

namespace r1kit::policy {

// ---------------------------------------------------------------------------------
// Inputs and outputs of a forward pass

enum class AttnImpl {
  kAuto,    // absorbed when decoding through a cache (T == 1), naive otherwise
  kNaive,   // expand the latent to per-head keys/values (training, prefill)
  kAbsorb,  // fold W_UK into the query and W_UV into the output; attend over the latent
};

// Preallocated KV cache for a batch of B sequences of up to max_len tokens.
// MLA: a[l] = normalised KV latent c_kv [B, S, d_c], b[l] = RoPE key k_pe [B, S, d_r].
// GQA: a[l] = keys [B, S, n_kv, D], b[l] = values [B, S, n_kv, D].
// Not thread-safe; one cache per generating thread.
struct KVCache {
  std::vector<torch::Tensor> a;  // per layer, see above
  std::vector<torch::Tensor> b;  // per layer, see above
  int64_t batch = 0;             // B
  int64_t max_len = 0;           // S_max

  static KVCache allocate(const ModelArgs& args, int64_t batch, int64_t max_len, torch::Dtype dtype,
                          torch::Device device = torch::kCPU);
  int64_t bytes() const;  // total bytes held
  // Slots [first, first + n), as a cache of n slots sharing this one's memory.
  KVCache slots(int64_t first, int64_t n) const;
  // Copies positions [0, len) of slot `from` of `src` (a cache of the same model) into
  // slots [to, to + n) of this one. The source slot may be a target only when n == 1 (a
  // no-op then).
  void copy_slot(const KVCache& src, int64_t from, int64_t to, int64_t len, int64_t n = 1);
};

struct ForwardOptions {
  // When set, this call's keys/values are written at positions [start_pos, start_pos+T)
  // and attention reads [0, start_pos+T) of the cache.
  KVCache* cache = nullptr;
  int64_t start_pos = 0;
  // Optional RoPE positions [B, T] (int64); default start_pos + arange(T). Packed
  // sequences restart them per sample.
  torch::Tensor positions;
  // Optional bool mask [B, T, S]: true where query t may attend key s. Default: causal
  // over absolute positions. Packing passes a block-diagonal causal mask.
  torch::Tensor attn_mask;
  AttnImpl attn_impl = AttnImpl::kAuto;
  // Threads, pool and kernel choices of this call (policy/execution.h); the default is one
  // decode thread and every kernel the CPU allows. decode_threads must be in
  // [1, kMaxDecodeThreads].
  ExecutionContext execution;
  bool compute_logits = true;  // false: skip lm_head (e.g. for token_logprobs)
  // Per-row decode (continuous batching, T must be 1): [B] int64, the cache position of
  // each row's token. Row b writes its key/value at row_positions[b] of cache row b,
  // uses it as its RoPE position, and attends to keys [0, row_positions[b]]. start_pos
  // must then be max(row_positions): keys [0, start_pos] are read for every row, those
  // past a row's own position masked out. Overrides `positions` and `attn_mask`.
  torch::Tensor row_positions;
  // Optional [B, T] mask (any dtype; nonzero = a real token, 0 = padding): trainers pass
  // their padding mask. Padding must be positions that no real position attends to (right
  // padding under causal attention; under packing, positions outside every sample). The
  // feed-forward layers (dense and MoE) run on the real tokens only, so padding costs them
  // nothing; at padding the hidden states lack the feed-forward term, and nothing may read
  // them. Padding counts in neither the expert loads (ForwardOutput::expert_load and the
  // load the bias update reads) nor the balance loss. Default: every position is real.
  torch::Tensor token_mask;
  // MoE routing replay (docs/model.md, "Routing replay"): [B, T, n_moe_layers, K] integer
  // expert ids that the MoE layers use instead of their own top-k; a token whose ids are
  // < 0 in a layer is routed by the gate as usual there. The combine weights stay the
  // gate's scores at those experts, so the gate still gets a gradient.
  torch::Tensor replay_experts;
  // Fill ForwardOutput::experts.
  bool record_experts = false;
};

struct ForwardOutput {
  torch::Tensor logits;       // [B, T, V] float32 (undefined when !compute_logits)
  torch::Tensor hidden;       // [B, T, d] after the final norm (the lm_head input)
  torch::Tensor last_hidden;  // [B, T, d] before the final norm (the MTP input h^0)
  torch::Tensor aux_loss;     // scalar: alpha-weighted sequence-wise balance loss, summed
                              // over MoE layers (0 when alpha == 0 or no MoE)
  torch::Tensor expert_load;  // [n_moe_layers, E] float: tokens routed to each expert
  torch::Tensor experts;      // [B, T, n_moe_layers, K] int16: the experts each token used
                              // (replayed or chosen); only with record_experts
};

// ---------------------------------------------------------------------------------
// Modules, small to large

// RMSNorm computed in fp32, cast back, then scaled (the HF convention).
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;  // [dim]

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// Rotary embedding with YaRN (docs/model.md, "RoPE and YaRN"). Angles are computed from
// positions on the fly, so there is no table length limit.
class Rotary {
 public:
  Rotary() = default;
  Rotary(const ModelArgs& args, int64_t rot_dim);
  // x: [B, T, h, rot_dim]; positions: [B, T] int64. Rotates in fp32, returns x's dtype.
  torch::Tensor apply(const torch::Tensor& x, const torch::Tensor& positions) const;
  // x: [B, T, h, D] with D >= rot_dim: the last rot_dim of each head rotated, the whole
  // head times `scale`, one pass and one autograd node (policy/rope.h).
  torch::Tensor apply_tail(const torch::Tensor& x, const torch::Tensor& positions,
                           double scale) const;
  // cos and sin of the angles at `positions` ([B, T]), times YaRN's cos scale: [B, T, half].
  std::pair<torch::Tensor, torch::Tensor> cos_sin(const torch::Tensor& positions) const;
  const torch::Tensor& inv_freq() const { return inv_freq_; }

 private:
  torch::Tensor inv_freq_;  // [rot_dim/2] float32, YaRN-corrected
  double cos_scale_ = 1.0;  // m(mscale) / m(mscale_all_dim)
  bool interleave_ = true;  // rotate pairs (2i, 2i+1) or halves (i, i + rot_dim/2)
};

// Multi-head Latent Attention (DeepSeek-V2 §2.1, DeepSeek-V3 §2.1.1).
class MLAImpl : public torch::nn::Module {
 public:
  explicit MLAImpl(const ModelArgs& args);
  // x: [B, T, d]; positions: [B, T]; mask: bool [B|1, 1, T, S] or undefined.
  // row_pos: ForwardOptions::row_positions (undefined outside per-row decode).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& positions,
                        const torch::Tensor& mask, KVCache* cache, int64_t layer, int64_t start_pos,
                        AttnImpl impl, const ExecutionContext& exec = {},
                        const torch::Tensor& row_pos = {});

  torch::nn::Linear q_proj{nullptr};              // [H*d_qk, d] when q_lora_rank == 0
  torch::nn::Linear q_a_proj{nullptr};            // [d_q, d]
  RMSNorm q_a_layernorm{nullptr};                 // [d_q]
  torch::nn::Linear q_b_proj{nullptr};            // [H*d_qk, d_q]
  torch::nn::Linear kv_a_proj_with_mqa{nullptr};  // [d_c + d_r, d]
  RMSNorm kv_a_layernorm{nullptr};                // [d_c]
  torch::nn::Linear kv_b_proj{nullptr};           // [H*(d_n + d_v), d_c]
  torch::nn::Linear o_proj{nullptr};              // [d, H*d_v]

 private:
  ModelArgs args_;
  Rotary rope_;
  double scale_;
};
TORCH_MODULE(MLA);

// Grouped-query attention with optional q/k/v (and o) biases and per-head q/k RMSNorm:
// Qwen2, Qwen3 and Llama.
class GQAImpl : public torch::nn::Module {
 public:
  explicit GQAImpl(const ModelArgs& args);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& positions,
                        const torch::Tensor& mask, KVCache* cache, int64_t layer, int64_t start_pos,
                        const ExecutionContext& exec = {}, const torch::Tensor& row_pos = {});

  torch::nn::Linear q_proj{nullptr};  // [H*D, d]
  torch::nn::Linear k_proj{nullptr};  // [n_kv*D, d]
  torch::nn::Linear v_proj{nullptr};  // [n_kv*D, d]
  torch::nn::Linear o_proj{nullptr};  // [d, H*D]
  RMSNorm q_norm{nullptr};            // [D], Qwen3 only (qk_norm)
  RMSNorm k_norm{nullptr};            // [D], Qwen3 only (qk_norm)

 private:
  ModelArgs args_;
  Rotary rope_;
  double scale_;
};
TORCH_MODULE(GQA);

// SwiGLU feed-forward: down(silu(gate(x)) * up(x)). Dense FFN, routed and shared experts.
// Without autograd, a call with few fp32 rows (a routed expert at decode; at most
// small_rows_max_rows) runs the fused kernel of policy/expert_kernels.h instead of three
// sgemm's, where exec.kernels allows it; the linear layers otherwise go through
// decode_linear.
class MLPImpl : public torch::nn::Module {
 public:
  MLPImpl(int64_t dim, int64_t inter_dim);
  torch::Tensor forward(const torch::Tensor& x, const ExecutionContext& exec = {});
  // True when the fused small-row kernel (policy/expert_kernels.h) may take x: at most
  // max_rows rows, no autograd, fp32 contiguous CPU tensors, AVX2/FMA, chosen in
  // `kernels`. forward(x) takes it up to small_rows_max_rows(kernels, 1); MoE's
  // inference path up to small_rows_max_rows(kernels, its threads).
  // With `bf16` holding copies of this MLP's weights (bf16 compute, policy/bf16_weights.h),
  // only where the bf16 kernels apply as well.
  bool takes_small_rows(const torch::Tensor& x, const KernelChoices& kernels,
                        int64_t max_rows = kSmallRowsMax, const Bf16Weights* bf16 = nullptr) const;
  // This expert on x's rows into y's, for swiglu_experts_small_rows (x and y [rows, dim],
  // contiguous fp32; takes_small_rows(x, ...) must hold); in bf16 where `bf16` holds the
  // copies of its weights.
  ExpertJob small_rows_job(const torch::Tensor& x, torch::Tensor& y,
                           const Bf16Weights* bf16 = nullptr) const;

  torch::nn::Linear gate_proj{nullptr};  // [I, d]
  torch::nn::Linear up_proj{nullptr};    // [I, d]
  torch::nn::Linear down_proj{nullptr};  // [d, I]
};
TORCH_MODULE(MLP);

// Routing decision for N tokens.
struct Routing {
  torch::Tensor indices;  // [N, K] int64 chosen experts
  torch::Tensor weights;  // [N, K] float32 combine weights (normalised, scaled)
  torch::Tensor scores;   // [N, E] float32 affinities before the bias (softmax or sigmoid)
};

// The MoE router (DeepSeek-V3 §2.1.2; docs/model.md, "The gate").
class GateImpl : public torch::nn::Module {
 public:
  explicit GateImpl(const ModelArgs& args);
  // x: [N, d]. `forced` [N, K] (optional): rows with ids >= 0 take those experts instead
  // of the top-k (routing replay); their weights are still the scores at those experts.
  Routing forward(const torch::Tensor& x, const torch::Tensor& forced = {});

  torch::Tensor weight;                   // [E, d]
  torch::Tensor e_score_correction_bias;  // [E] float32 buffer (selection only), or undefined

 private:
  ModelArgs args_;
};
TORCH_MODULE(Gate);

// Mixture of experts: routed SwiGLU experts plus always-on shared experts.
class MoEImpl : public torch::nn::Module {
 public:
  explicit MoEImpl(const ModelArgs& args);
  // x: [B, T, d]. Returns y [B, T, d]; *load gets [E] token counts, *aux_loss the
  // alpha-weighted sequence-wise balance loss (when training and alpha > 0). `keep` [N]
  // int64 (optional): the flat indices (b * T + t) of the tokens to run; the others are
  // routed nowhere, count nowhere and get y = 0 (ForwardOptions::token_mask). Without autograd the
  // experts run on exec.expert_threads() threads; with it, as one grouped autograd node
  // (grouped_experts.h) unless exec.kernels.grouped_experts is off (docs/model.md).
  // `forced` [B, T, K] replays experts (GateImpl::forward); *chosen gets the experts used,
  // [B, T, K] int16.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* load, torch::Tensor* aux_loss,
                        const ExecutionContext& exec = {}, const torch::Tensor& forced = {},
                        torch::Tensor* chosen = nullptr, const torch::Tensor& keep = {});

  // Auxiliary-loss-free balancing: b_i += gamma * sign(mean_load - load_i), from the
  // load accumulated since the last call (once per optimizer step), then resets it.
  // `load` overrides the accumulated one (e.g. after an all-reduce across ranks).
  void update_bias(double gamma, const torch::Tensor& load = {});
  const torch::Tensor& accumulated_load() const { return load_accum_; }  // [E] float

  Gate gate{nullptr};
  torch::nn::ModuleList experts{nullptr};
  MLP shared_experts{nullptr};

 private:
  // The routed experts' output [N, d] one LibTorch chain per expert: the no-grad path
  // (small-row kernels, pool), and with autograd when kernels.grouped_experts is off.
  // *y_shared gets the shared expert's output when it ran beside the routed ones.
  torch::Tensor routed_per_expert(const torch::Tensor& xf, const Routing& r,
                                  const torch::Tensor& counts, const ExecutionContext& exec,
                                  torch::Tensor* y_shared);
  ModelArgs args_;
  torch::Tensor load_accum_;  // [E] float32, tokens per expert in training forwards
};
TORCH_MODULE(MoE);

// One pre-norm block: h += attn(norm(h)); h += ffn(norm(h)).
class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelArgs& args, bool moe);
  // `keep` [N] int64 (optional): the flat indices (b * T + t) of the real tokens; the
  // feed-forward part runs on those only (ForwardOptions::token_mask).
  torch::Tensor forward(const torch::Tensor& h, const torch::Tensor& positions,
                        const torch::Tensor& mask, KVCache* cache, int64_t layer, int64_t start_pos,
                        AttnImpl impl, const ExecutionContext& exec, torch::Tensor* load,
                        torch::Tensor* aux_loss, const torch::Tensor& row_pos = {},
                        const torch::Tensor& forced_experts = {},
                        torch::Tensor* chosen_experts = nullptr, const torch::Tensor& keep = {});

  RMSNorm input_layernorm{nullptr};
  MLA mla{nullptr};  // registered as "self_attn" when attention is MLA
  GQA gqa{nullptr};  // registered as "self_attn" when attention is GQA
  RMSNorm post_attention_layernorm{nullptr};
  MLP dense{nullptr};  // registered as "mlp" for dense layers
  MoE moe{nullptr};    // registered as "mlp" for MoE layers
};
TORCH_MODULE(DecoderLayer);

// One multi-token-prediction depth (DeepSeek-V3 §2.2): h' = eh_proj([enorm(emb); hnorm(h)]),
// then a decoder block; logits through the shared head after shared_head.norm.
class MTPLayerImpl : public torch::nn::Module {
 public:
  MTPLayerImpl(const ModelArgs& args, bool moe);

  RMSNorm enorm{nullptr};
  RMSNorm hnorm{nullptr};
  torch::nn::Linear eh_proj{nullptr};  // [d, 2d], input is [emb ; h] (embedding first)
  DecoderLayer block{nullptr};
  RMSNorm shared_head_norm{nullptr};  // registered as "shared_head.norm"
};
TORCH_MODULE(MTPLayer);

class TransformerImpl : public torch::nn::Module {
 public:
  // fp32, init_weights(0).
  explicit TransformerImpl(const ModelArgs& args);
  // Parameters created in `dtype` (router correction biases stay fp32), so a bf16 model never
  // has an fp32 copy. For that LibTorch's default dtype is `dtype` while the modules are built,
  // which is process-wide (as transformers' from_pretrained does it): do not create tensors of
  // the default dtype on other threads meanwhile. `init`: init_weights(0); else the
  // parameters keep LibTorch's default initialisation, for a loader that overwrites them.
  TransformerImpl(const ModelArgs& args, torch::Dtype dtype, bool init);

  // ids: [B, T] int64.
  ForwardOutput forward(const torch::Tensor& ids, const ForwardOptions& opts = {});

  // MTP loss (DeepSeek-V3 §2.2): sum over depths k of the cross-entropy of predicting
  // ids[t+k+1] from depth k, times mtp_lambda / D, plus the MTP blocks' balance loss. `last_hidden`
  // is forward()'s last_hidden; `loss_mask` [B, T] (optional) marks target tokens that count.
  torch::Tensor mtp_loss(const torch::Tensor& ids, const torch::Tensor& last_hidden,
                         const torch::Tensor& loss_mask = {});
  // Per-depth MTP logits: element k-1 is [B, T-k, V], row t predicting ids[t+k+1].
  // *aux_loss (when given) gets the MTP blocks' balance loss.
  std::vector<torch::Tensor> mtp_logits(const torch::Tensor& ids, const torch::Tensor& last_hidden,
                                        torch::Tensor* aux_loss = nullptr);

  // Applies the bias update to every MoE layer (no-op when gamma is 0).
  void update_expert_bias(double gamma);
  // [n_moe_layers, E] load accumulated since the last bias update.
  torch::Tensor accumulated_expert_load() const;

  // The output projection [V, d] (embed_tokens' weight when tied).
  torch::Tensor output_weight() const;
  const ModelArgs& args() const { return args_; }
  // (Re)initialises every weight: normal(0, 0.02), output projections scaled by
  // 1/sqrt(2L), norms 1, biases and expert correction biases 0.
  void init_weights(uint64_t seed);
  int64_t n_moe_layers() const;

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RMSNorm norm{nullptr};
  torch::nn::Linear lm_head{nullptr};  // absent when tie_embeddings
  torch::nn::ModuleList mtp{nullptr};  // absent when n_mtp_layers == 0

 private:
  ForwardOutput forward_impl(const torch::Tensor& ids, const torch::Tensor& positions,
                             const torch::Tensor& mask, const ForwardOptions& opts);
  torch::Tensor run_layers(torch::Tensor h, const torch::Tensor& positions,
                           const torch::Tensor& mask, const ForwardOptions& opts,
                           ForwardOutput* out);
  ModelArgs args_;
};
TORCH_MODULE(Transformer);

// Builds the default causal mask over absolute positions: query at start_pos + t may
// attend keys 0..start_pos + t. Returns bool [1, 1, T, start_pos + T].
torch::Tensor causal_mask(int64_t T, int64_t start_pos, torch::Device device = torch::kCPU);

}  // namespace r1kit::policy
