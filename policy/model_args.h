// ModelArgs: every hyper-parameter of the policy, its presets, and the mapping to and
// from a Hugging Face config.json (DeepSeek-V2/V3, Qwen2, Qwen3, Qwen3-MoE, Llama 1-3).
//
// Follows DeepSeek-V3 inference/model.py's ModelArgs and its configs (docs/model.md,
// "ModelArgs"), extended with GQA attention for dense students. Unlike the reference
// code, nothing is guessed from tensor shapes: a checkpoint's config.json is the only
// source.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace r1kit::policy {

enum class AttentionKind {
  kMLA,  // DeepSeek Multi-head Latent Attention (compressed KV latent + decoupled RoPE key)
  kGQA,  // grouped-query attention (MHA when n_kv_heads == n_heads), Qwen2/Llama style
};

enum class ScoreFunc { kSoftmax, kSigmoid };  // MoE gate scoring (V2: softmax, V3: sigmoid)

struct ModelArgs {
  // Family the checkpoint came from, used to write config.json back the same way:
  // "deepseek_v3", "deepseek_v2", "qwen2", "qwen3", "qwen3_moe", "llama". Native r1kit
  // models use "deepseek_v3".
  std::string model_type = "deepseek_v3";

  int64_t vocab_size = 512;     // V
  int64_t dim = 64;             // d, hidden size
  int64_t n_layers = 2;         // L, decoder blocks (MTP blocks not counted)
  int64_t n_heads = 4;          // H, attention heads
  int64_t inter_dim = 128;      // FFN width of dense layers (SwiGLU)
  double norm_eps = 1e-6;       // RMSNorm epsilon
  bool tie_embeddings = false;  // lm_head shares embed_tokens' weight (Qwen2.5 small models)
  int64_t max_seq_len = 512;    // max_position_embeddings: the longest context the model is
                                // meant for (RoPE angles are computed on the fly, no table)
  int64_t bos_id = 1;           // written to config.json; the tokenizer is authoritative
  int64_t eos_id = 2;
  // Every EOS id when config.json lists several (Llama 3.1: [128001, 128008, 128009]);
  // eos_id is the first. Empty when it gives one.
  std::vector<int64_t> eos_ids;

  // ---- attention ----
  AttentionKind attention = AttentionKind::kMLA;
  // MLA (DeepSeek-V2 §2.1). q_lora_rank 0 means a direct query projection (V2-Lite).
  int64_t q_lora_rank = 0;        // d_q
  int64_t kv_lora_rank = 32;      // d_c, the cached KV latent
  int64_t qk_nope_head_dim = 16;  // d_n, per-head query/key part without RoPE
  int64_t qk_rope_head_dim = 8;   // d_r, decoupled RoPE part (one shared key head)
  int64_t v_head_dim = 16;        // d_v
  // GQA (Qwen2/Llama; docs/model.md, "GQA (students)").
  int64_t n_kv_heads = 4;  // KV heads; n_heads % n_kv_heads == 0
  int64_t head_dim = 16;   // D per head
  bool qkv_bias = false;   // Qwen2: bias on q/k/v
  bool o_bias = false;     // Llama attention_bias=true puts a bias on o_proj as well
  bool qk_norm = false;    // Qwen3: RMSNorm over each head's q and k (q_norm, k_norm
                           // weights [head_dim]) before RoPE

  // ---- RoPE / YaRN (YaRN, Peng et al. 2023; docs/model.md, "RoPE and YaRN") ----
  double rope_theta = 10000.0;
  bool rope_interleave = true;  // DeepSeek rotates pairs (2i,2i+1); Qwen2/Llama rotate halves
  double rope_factor = 1.0;     // YaRN scaling factor s; <= 1 disables YaRN
  int64_t rope_original_max_pos = 4096;  // L0, original context length
  double beta_fast = 32.0;
  double beta_slow = 1.0;
  double mscale = 1.0;          // YaRN mscale (cos/sin get m(mscale)/m(mscale_all_dim))
  double mscale_all_dim = 0.0;  // attention scale gets m(mscale_all_dim)^2 when non-zero
  // Llama 3 frequency rescaling (HF rope_type "llama3"; docs/model.md, "Llama 3 RoPE
  // scaling") instead of YaRN: rope_factor is its factor, rope_original_max_pos its
  // original context, and these two bound the blended wavelengths.
  bool rope_llama3 = false;
  double rope_low_freq_factor = 1.0;
  double rope_high_freq_factor = 4.0;

  // ---- MoE (DeepSeek-V3 §2.1.2). n_routed_experts == 0 makes every layer dense. ----
  int64_t n_routed_experts = 4;     // N_r
  int64_t n_shared_experts = 1;     // one fused shared MLP of width n_shared * moe_inter_dim
  int64_t n_activated_experts = 2;  // top-k per token
  int64_t moe_inter_dim = 64;       // width of each routed expert
  int64_t n_dense_layers = 1;       // the first k layers use a dense FFN
  int64_t n_expert_groups = 1;      // groups for group-limited routing
  int64_t n_limited_groups = 1;     // groups kept per token
  ScoreFunc score_func = ScoreFunc::kSigmoid;
  double route_scale = 1.0;    // routed_scaling_factor
  bool norm_topk_prob = true;  // renormalise the chosen k weights to sum 1
  // V3 multiplies by route_scale after normalising; HF V2 code scales only when it does
  // not normalise. false reproduces V2.
  bool scale_after_norm = true;
  bool expert_bias = true;  // V3 e_score_correction_bias (selection only)
  // Training-time balancing.
  double bias_update_gamma = 1e-3;  // aux-loss-free bias step per optimizer step (0 = off)
  double aux_loss_alpha = 1e-4;     // sequence-wise balance loss weight (0 = off)

  // ---- Multi-token prediction (DeepSeek-V3 §2.2) ----
  int64_t n_mtp_layers = 0;  // D extra depths; 0 = off
  double mtp_lambda = 0.3;   // weight of the MTP loss

  // Derived sizes.
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  bool is_moe_layer(int64_t layer) const { return n_routed_experts > 0 && layer >= n_dense_layers; }
  bool yarn() const { return rope_factor > 1.0 && !rope_llama3; }  // YaRN on
  // Softmax scale of attention, including YaRN's mscale^2 (HF DeepSeek rule; docs/model.md,
  // "MLA").
  double softmax_scale() const;
  // Bytes of KV cache per token for `bytes_per_elem`-byte elements: MLA caches the latent
  // and the RoPE key (d_c + d_r) per layer; GQA caches k and v per KV head.
  int64_t kv_cache_bytes_per_token(int64_t bytes_per_elem = 2) const;
  // The same model's cache with full multi-head attention (k and v for every head).
  int64_t mha_cache_bytes_per_token(int64_t bytes_per_elem = 2) const;

  // Checks internal consistency: sizes positive, heads divisible, top-k <= experts,
  // groups divide experts, limited groups <= groups, k <= experts in kept groups.
  Status validate() const;
};

// Presets: "nano" (unit tests, < 1M parameters), "tiny" (CPU demo, ~7M with its 1k
// vocabulary), "small" (benchmarks, ~100M total / ~21M active), "tiny-dense" (a
// ~1.8M GQA student).
StatusOr<ModelArgs> preset(const std::string& name, int64_t vocab_size = 0);
std::vector<std::string> preset_names();

// Hugging Face config.json <-> ModelArgs. Unknown model_type or unsupported settings
// (e.g. topk_method we do not implement) are errors naming the key.
StatusOr<ModelArgs> args_from_hf_config(const nlohmann::json& config);
nlohmann::json args_to_hf_config(const ModelArgs& args);
StatusOr<ModelArgs> load_hf_config(const std::string& path);
// load_hf_config on the file's text; `path` names it in messages.
StatusOr<ModelArgs> parse_hf_config(std::string_view text, const std::string& path);

// Parameter counts: total, and active per token (dense parts + top-k and shared experts).
struct ParamCount {
  int64_t total = 0;
  int64_t active = 0;
  int64_t embedding = 0;  // embed_tokens (+ lm_head when untied)
};
ParamCount count_params(const ModelArgs& args);  // saturates at INT64_MAX

// Bounds of ModelArgs::validate on any single size (no real model comes near them).
inline constexpr int64_t kMaxLayers = 4096;
inline constexpr int64_t kMaxDimension = int64_t{1} << 30;

// Bytes of the weights at `bytes_per_param` plus the KV cache of one max_seq_len
// sequence, in floating point (any config.json, however absurd, gives a number).
double model_memory_bytes(const ModelArgs& args, int64_t bytes_per_param);
// The most a model may need: R1KIT_MODEL_MEMORY_LIMIT (bytes) from the environment,
// else the machine's physical memory.
int64_t model_memory_limit();
// ResourceExhausted naming `what` (the config.json, the recipe's model) and the sizes when
// model_memory_bytes exceeds model_memory_limit. Every model is checked before its
// tensors are allocated (policy/model_config.h build, policy/checkpoint.h load_model).
Status check_model_memory(const ModelArgs& args, int64_t bytes_per_param, std::string_view what);

}  // namespace r1kit::policy
