#include "policy/model_args.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/json.h"

namespace r1kit::policy {
using nlohmann::json;

namespace {

double yarn_mscale(double factor, double m) {
  return factor <= 1.0 ? 1.0 : 0.1 * m * std::log(factor) + 1.0;
}

}  // namespace

double ModelArgs::softmax_scale() const {
  const int64_t d = attention == AttentionKind::kMLA ? qk_head_dim() : head_dim;
  double scale = 1.0 / std::sqrt(static_cast<double>(d));
  if (yarn() && mscale_all_dim != 0.0) {
    const double m = yarn_mscale(rope_factor, mscale_all_dim);
    scale *= m * m;
  }
  return scale;
}

int64_t ModelArgs::kv_cache_bytes_per_token(int64_t bytes_per_elem) const {
  if (attention == AttentionKind::kMLA)
    return (kv_lora_rank + qk_rope_head_dim) * n_layers * bytes_per_elem;
  return 2 * n_kv_heads * head_dim * n_layers * bytes_per_elem;
}

int64_t ModelArgs::mha_cache_bytes_per_token(int64_t bytes_per_elem) const {
  if (attention == AttentionKind::kMLA)
    return n_heads * (qk_head_dim() + v_head_dim) * n_layers * bytes_per_elem;
  return 2 * n_heads * head_dim * n_layers * bytes_per_elem;
}

Status ModelArgs::validate() const {
  auto positive = [](const char* key, int64_t v) -> Status {
    if (v <= 0) return InvalidArgument("model.{}={}: must be > 0", key, v);
    return OkStatus();
  };
  RETURN_IF_ERROR(positive("vocab_size", vocab_size));
  RETURN_IF_ERROR(positive("dim", dim));
  RETURN_IF_ERROR(positive("n_layers", n_layers));
  RETURN_IF_ERROR(positive("n_heads", n_heads));
  RETURN_IF_ERROR(positive("max_seq_len", max_seq_len));
  // Sizes no model comes near; anything above is a broken or hostile config.json, refused
  // before a count (or the per-layer table of `r1kit model info`) runs over it.
  if (n_layers > kMaxLayers)
    return InvalidArgument("model.n_layers={}: more than {} layers", n_layers, kMaxLayers);
  const std::pair<const char*, int64_t> sizes[] = {{"vocab_size", vocab_size},
                                                   {"dim", dim},
                                                   {"n_heads", n_heads},
                                                   {"inter_dim", inter_dim},
                                                   {"moe_inter_dim", moe_inter_dim},
                                                   {"n_routed_experts", n_routed_experts},
                                                   {"n_mtp_layers", n_mtp_layers},
                                                   {"max_seq_len", max_seq_len}};
  for (const auto& [key, v] : sizes)
    if (v > kMaxDimension) return InvalidArgument("model.{}={}: above {}", key, v, kMaxDimension);
  if (norm_eps <= 0) return InvalidArgument("model.norm_eps={}: must be > 0", norm_eps);
  if (attention == AttentionKind::kMLA) {
    RETURN_IF_ERROR(positive("kv_lora_rank", kv_lora_rank));
    RETURN_IF_ERROR(positive("qk_nope_head_dim", qk_nope_head_dim));
    RETURN_IF_ERROR(positive("v_head_dim", v_head_dim));
    if (qk_rope_head_dim <= 0 || qk_rope_head_dim % 2 != 0)
      return InvalidArgument("model.qk_rope_head_dim={}: must be even and > 0", qk_rope_head_dim);
    if (q_lora_rank < 0) return InvalidArgument("model.q_lora_rank={}: must be >= 0", q_lora_rank);
  } else {
    RETURN_IF_ERROR(positive("n_kv_heads", n_kv_heads));
    if (head_dim <= 0 || head_dim % 2 != 0)
      return InvalidArgument("model.head_dim={}: must be even and > 0", head_dim);
    if (n_heads % n_kv_heads != 0)
      return InvalidArgument("model.n_heads={} is not a multiple of model.n_kv_heads={}", n_heads,
                             n_kv_heads);
  }
  if (n_routed_experts < 0)
    return InvalidArgument("model.n_routed_experts={}: must be >= 0", n_routed_experts);
  if (n_routed_experts > 0) {
    RETURN_IF_ERROR(positive("moe_inter_dim", moe_inter_dim));
    RETURN_IF_ERROR(positive("n_activated_experts", n_activated_experts));
    RETURN_IF_ERROR(positive("n_expert_groups", n_expert_groups));
    if (n_routed_experts % n_expert_groups != 0)
      return InvalidArgument(
          "model.n_routed_experts={} is not a multiple of model.n_expert_groups={}",
          n_routed_experts, n_expert_groups);
    if (n_limited_groups < 1 || n_limited_groups > n_expert_groups)
      return InvalidArgument("model.n_limited_groups={}: must be in [1, n_expert_groups={}]",
                             n_limited_groups, n_expert_groups);
    const int64_t reachable = n_limited_groups * (n_routed_experts / n_expert_groups);
    if (n_activated_experts > reachable)
      return InvalidArgument(
          "model.n_activated_experts={} exceeds the {} experts in model.n_limited_groups={} groups",
          n_activated_experts, reachable, n_limited_groups);
    if (n_expert_groups > 1 && expert_bias && n_routed_experts / n_expert_groups < 2)
      return InvalidArgument(
          "model.n_expert_groups={}: the biased group score sums the top 2 experts of a group, "
          "so each group needs at least 2 experts",
          n_expert_groups);
    if (n_dense_layers < 0 || n_dense_layers > n_layers)
      return InvalidArgument("model.n_dense_layers={}: must be in [0, n_layers={}]", n_dense_layers,
                             n_layers);
    if (n_shared_experts < 0)
      return InvalidArgument("model.n_shared_experts={}: must be >= 0", n_shared_experts);
  }
  if (n_dense_layers > 0 || n_routed_experts == 0)
    RETURN_IF_ERROR(positive("inter_dim", inter_dim));
  if (n_mtp_layers < 0) return InvalidArgument("model.n_mtp_layers={}: must be >= 0", n_mtp_layers);
  if ((yarn() || rope_llama3) && rope_original_max_pos <= 0)
    return InvalidArgument("model.rope_original_max_pos={}: must be > 0 with YaRN or llama3 RoPE",
                           rope_original_max_pos);
  if (rope_llama3 && !(rope_factor > 0 && rope_low_freq_factor > 0 &&
                       rope_high_freq_factor > rope_low_freq_factor))
    return InvalidArgument(
        "model: llama3 RoPE needs rope_factor > 0 and 0 < rope_low_freq_factor < "
        "rope_high_freq_factor, got {}, {}, {}",
        rope_factor, rope_low_freq_factor, rope_high_freq_factor);
  return OkStatus();
}

std::vector<std::string> preset_names() {
  return {"nano", "tiny", "small", "tiny-dense"};
}

StatusOr<ModelArgs> preset(const std::string& name, int64_t vocab_size) {
  ModelArgs a;  // defaults are the "nano" preset
  if (name == "nano") {
    // A 2-layer MoE+MLA model for unit tests: every feature on, < 1M parameters.
  } else if (name == "tiny") {
    // CPU demo: ~7M parameters with a 1k vocabulary (~6.6M with 512 pieces).
    a.vocab_size = 1024;
    a.dim = 256;
    a.n_layers = 4;
    a.n_heads = 4;
    a.inter_dim = 768;
    a.q_lora_rank = 0;
    a.kv_lora_rank = 64;
    a.qk_nope_head_dim = 32;
    a.qk_rope_head_dim = 16;
    a.v_head_dim = 32;
    a.n_routed_experts = 8;
    a.n_shared_experts = 1;
    a.n_activated_experts = 2;
    a.moe_inter_dim = 256;
    a.n_expert_groups = 2;
    a.n_limited_groups = 1;
    a.route_scale = 1.0;
    a.max_seq_len = 1024;
  } else if (name == "small") {
    // Benchmarks: ~100M parameters in total, ~20M active per token.
    a.vocab_size = 4096;
    a.dim = 512;
    a.n_layers = 8;
    a.n_heads = 8;
    a.inter_dim = 1536;
    a.q_lora_rank = 192;
    a.kv_lora_rank = 128;
    a.qk_nope_head_dim = 48;
    a.qk_rope_head_dim = 16;
    a.v_head_dim = 48;
    a.n_routed_experts = 40;
    a.n_shared_experts = 1;
    a.n_activated_experts = 4;
    a.moe_inter_dim = 192;
    a.n_expert_groups = 4;
    a.n_limited_groups = 2;
    a.route_scale = 2.5;
    a.max_seq_len = 2048;
  } else if (name == "tiny-dense") {
    // A dense GQA student (Qwen2-style: q/k/v bias, half-split RoPE), ~1.8M parameters.
    a.model_type = "qwen2";
    a.vocab_size = 1024;
    a.dim = 192;
    a.n_layers = 4;
    a.n_heads = 6;
    a.n_kv_heads = 2;
    a.head_dim = 32;
    a.inter_dim = 512;
    a.attention = AttentionKind::kGQA;
    a.qkv_bias = true;
    a.rope_interleave = false;
    a.rope_theta = 1e6;
    a.n_routed_experts = 0;
    a.n_dense_layers = 0;
    a.expert_bias = false;
    a.tie_embeddings = true;
    a.max_seq_len = 1024;
  } else {
    return NotFound("model preset '{}': known presets are nano, tiny, small, tiny-dense", name);
  }
  if (vocab_size > 0) a.vocab_size = vocab_size;
  RETURN_IF_ERROR(a.validate());
  return a;
}

// ---------------------------------------------------------------------------------
// Hugging Face config.json

namespace {

// Typed getters that name the key on error; `in` is the enclosing key of a nested object
// ("rope_scaling"), so that "rope_scaling.type" is named in full.
//
// null is a value of the wrong type, as in transformers 5, whose config classes are
// @strict dataclasses: `tie_word_embeddings: bool` refuses None ("expected bool, got
// NoneType"). (transformers 4 stored the None, and its falsy value then meant false,
// not the key's default.) The keys those classes type `X | None` are read with
// get_nullable, where null means absent (the default of docs/models.md).
template <typename T>
Status get_opt(const json& j, const char* key, T* out, std::string_view in = {}) {
  auto it = j.find(key);
  if (it == j.end()) return OkStatus();
  const std::string name = in.empty() ? std::string(key) : fmt::format("{}.{}", in, key);
  if constexpr (std::is_same_v<T, bool>) {
    if (!it->is_boolean())
      return InvalidArgument("config.json: '{}' must be a boolean, got {}", name, it->dump());
  } else if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer())
      return InvalidArgument("config.json: '{}' must be an integer, got {}", name, it->dump());
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number())
      return InvalidArgument("config.json: '{}' must be a number, got {}", name, it->dump());
  } else {
    if (!it->is_string())
      return InvalidArgument("config.json: '{}' must be a string, got {}", name, it->dump());
  }
  *out = it->get<T>();
  return OkStatus();
}

// A key transformers types `X | None`: null leaves `out` as it is, like an absent key.
template <typename T>
Status get_nullable(const json& j, const char* key, T* out, std::string_view in = {}) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return OkStatus();
  return get_opt(j, key, out, in);
}

template <typename T>
Status get_req(const json& j, const char* key, T* out, std::string_view in = {}) {
  if (!j.contains(key))
    return InvalidArgument("config.json: required key '{}{}{}' is missing", in,
                           in.empty() ? "" : ".", key);
  return get_opt(j, key, out, in);
}

// A key whose value must be an object or a list, or null (absent).
Status check_kind(const json& c, const char* key, json::value_t kind) {
  auto it = c.find(key);
  if (it == c.end() || it->is_null() || it->type() == kind) return OkStatus();
  return InvalidArgument("config.json: '{}' must be {} or null, got {}", key,
                         kind == json::value_t::object ? "an object" : "a list", it->dump());
}

// DeepSeek-V2/V3: MLA + MoE (+ MTP), YaRN the only rope_scaling.
Status read_deepseek(const json& c, ModelArgs& a) {
  const bool v3 = a.model_type == "deepseek_v3";
  a.attention = AttentionKind::kMLA;
  a.rope_interleave = true;
  a.tie_embeddings = false;
  RETURN_IF_ERROR(get_opt(c, "tie_word_embeddings", &a.tie_embeddings));
  a.q_lora_rank = 0;  // absent or null: no query compression (DeepSeek-V2-Lite)
  RETURN_IF_ERROR(get_nullable(c, "q_lora_rank", &a.q_lora_rank));
  RETURN_IF_ERROR(get_req(c, "kv_lora_rank", &a.kv_lora_rank));
  RETURN_IF_ERROR(get_req(c, "qk_nope_head_dim", &a.qk_nope_head_dim));
  RETURN_IF_ERROR(get_req(c, "qk_rope_head_dim", &a.qk_rope_head_dim));
  RETURN_IF_ERROR(get_req(c, "v_head_dim", &a.v_head_dim));
  a.n_kv_heads = a.n_heads;
  a.n_routed_experts = 0;  // absent or null (r1kit writes null for a dense model): dense
  RETURN_IF_ERROR(get_nullable(c, "n_routed_experts", &a.n_routed_experts));
  a.n_shared_experts = 0;
  RETURN_IF_ERROR(get_opt(c, "n_shared_experts", &a.n_shared_experts));
  RETURN_IF_ERROR(get_nullable(c, "num_experts_per_tok", &a.n_activated_experts));
  RETURN_IF_ERROR(get_opt(c, "moe_intermediate_size", &a.moe_inter_dim));
  a.n_dense_layers = 0;
  RETURN_IF_ERROR(get_nullable(c, "first_k_dense_replace", &a.n_dense_layers));
  int64_t freq = 1;
  RETURN_IF_ERROR(get_opt(c, "moe_layer_freq", &freq));
  if (freq != 1) return Unimplemented("config.json: moe_layer_freq={} (only 1 is supported)", freq);
  a.n_expert_groups = 1;
  a.n_limited_groups = 1;
  RETURN_IF_ERROR(get_nullable(c, "n_group", &a.n_expert_groups));
  RETURN_IF_ERROR(get_nullable(c, "topk_group", &a.n_limited_groups));
  std::string scoring = v3 ? "sigmoid" : "softmax";
  RETURN_IF_ERROR(get_opt(c, "scoring_func", &scoring));
  if (scoring == "softmax")
    a.score_func = ScoreFunc::kSoftmax;
  else if (scoring == "sigmoid")
    a.score_func = ScoreFunc::kSigmoid;
  else
    return Unimplemented("config.json: scoring_func '{}' (softmax or sigmoid)", scoring);
  std::string topk_method = v3 ? "noaux_tc" : "greedy";
  RETURN_IF_ERROR(get_nullable(c, "topk_method", &topk_method));
  if (topk_method == "noaux_tc")
    a.expert_bias = true;
  else if (topk_method == "greedy" || topk_method == "group_limited_greedy")
    a.expert_bias = false;
  else
    return Unimplemented("config.json: topk_method '{}'", topk_method);
  if (topk_method == "greedy") a.n_expert_groups = a.n_limited_groups = 1;
  a.norm_topk_prob = false;
  RETURN_IF_ERROR(get_nullable(c, "norm_topk_prob", &a.norm_topk_prob));
  a.route_scale = 1.0;
  RETURN_IF_ERROR(get_opt(c, "routed_scaling_factor", &a.route_scale));
  a.scale_after_norm = v3;
  a.aux_loss_alpha = 0.0;
  RETURN_IF_ERROR(get_opt(c, "aux_loss_alpha", &a.aux_loss_alpha));
  a.bias_update_gamma = a.expert_bias ? 1e-3 : 0.0;
  a.n_mtp_layers = 0;
  RETURN_IF_ERROR(get_opt(c, "num_nextn_predict_layers", &a.n_mtp_layers));
  if (c.contains("rope_parameters"))
    return Unimplemented(
        "config.json: rope_parameters on {} (give rope_theta and rope_scaling instead)",
        a.model_type);
  RETURN_IF_ERROR(check_kind(c, "rope_scaling", json::value_t::object));
  if (c.contains("rope_scaling") && c["rope_scaling"].is_object()) {
    const json& rs = c["rope_scaling"];
    constexpr std::string_view in = "rope_scaling";
    std::string kind = "yarn";
    RETURN_IF_ERROR(get_opt(rs, "rope_type", &kind, in));
    RETURN_IF_ERROR(get_opt(rs, "type", &kind, in));  // the older name wins, as before
    if (kind != "yarn")
      return Unimplemented("config.json: rope_scaling.type '{}' (only yarn)", kind);
    RETURN_IF_ERROR(get_req(rs, "factor", &a.rope_factor, in));
    RETURN_IF_ERROR(get_opt(rs, "original_max_position_embeddings", &a.rope_original_max_pos, in));
    RETURN_IF_ERROR(get_opt(rs, "beta_fast", &a.beta_fast, in));
    RETURN_IF_ERROR(get_opt(rs, "beta_slow", &a.beta_slow, in));
    RETURN_IF_ERROR(get_opt(rs, "mscale", &a.mscale, in));
    RETURN_IF_ERROR(get_opt(rs, "mscale_all_dim", &a.mscale_all_dim, in));
  }
  bool attention_bias = false;
  RETURN_IF_ERROR(get_opt(c, "attention_bias", &attention_bias));
  if (attention_bias)
    return Unimplemented("config.json: attention_bias=true is not supported for MLA");
  return OkStatus();
}

// eos_token_id: one id, or a list (Llama 3.1) whose first is eos_id.
Status read_eos(const json& c, ModelArgs& a) {
  auto it = c.find("eos_token_id");
  if (it == c.end() || !it->is_array()) return get_nullable(c, "eos_token_id", &a.eos_id);
  a.eos_ids.clear();
  for (const json& v : *it) {
    if (!v.is_number_integer())
      return InvalidArgument("config.json: 'eos_token_id' must be an integer or a list of them");
    a.eos_ids.push_back(v.get<int64_t>());
  }
  if (a.eos_ids.empty()) return InvalidArgument("config.json: 'eos_token_id' is an empty list");
  a.eos_id = a.eos_ids.front();
  if (a.eos_ids.size() == 1) a.eos_ids.clear();
  return OkStatus();
}

// Sliding-window attention (Mistral's sliding_window; Qwen's use_sliding_window from layer
// max_window_layers on; transformers' layer_types) is not implemented: refused by key.
Status check_full_attention(const json& c, const ModelArgs& a) {
  RETURN_IF_ERROR(check_kind(c, "layer_types", json::value_t::array));
  if (auto w = c.find("sliding_window"); w != c.end() && !w->is_null() && !w->is_number_integer())
    return InvalidArgument("config.json: 'sliding_window' must be an integer or null, got {}",
                           w->dump());
  if (c.contains("layer_types") && c["layer_types"].is_array())
    for (const json& t : c["layer_types"])
      if (t != "full_attention")
        return Unimplemented(
            "config.json: layer_types has {}: only full_attention layers are supported "
            "(sliding-window attention is not implemented)",
            t.dump());
  const bool window = c.contains("sliding_window") && !c["sliding_window"].is_null();
  if (a.model_type == "mistral" && window)
    return Unimplemented(
        "config.json: sliding_window={} (mistral): sliding-window attention is not supported",
        c["sliding_window"].dump());
  if (a.model_type == "llama" || a.model_type == "mistral") return OkStatus();
  bool use = false;
  RETURN_IF_ERROR(get_opt(c, "use_sliding_window", &use));
  if (!use || !window) return OkStatus();
  int64_t max_window_layers = 0;
  RETURN_IF_ERROR(get_req(c, "max_window_layers", &max_window_layers));
  if (max_window_layers < a.n_layers)
    return Unimplemented(
        "config.json: use_sliding_window=true with sliding_window={} and max_window_layers={} < "
        "num_hidden_layers={}: sliding-window attention is not supported",
        c["sliding_window"].dump(), max_window_layers, a.n_layers);
  return OkStatus();
}

// YaRN on a GQA family (transformers' generic YaRN): r1kit's YaRN (docs/model.md, "RoPE
// and YaRN") with the default attention factor m(1) = 0.1 ln(factor) + 1 on cos/sin.
// transformers versions disagree on the factor when original_max_position_embeddings is
// given (the key, or max_position_embeddings / original): both must agree.
Status read_gqa_yarn(const json& rs, const char* key, ModelArgs& a) {
  for (const char* k : {"attention_factor", "mscale", "mscale_all_dim"})
    if (rs.contains(k) && !rs[k].is_null())
      return Unimplemented("config.json: {}.{} with yarn on {} (only the default attention factor)",
                           key, k, a.model_type);
  if (rs.contains("truncate") && rs["truncate"] != true)
    return Unimplemented("config.json: {}.truncate={} (only true)", key, rs["truncate"].dump());
  RETURN_IF_ERROR(get_req(rs, "factor", &a.rope_factor, key));
  if (a.rope_factor < 1.0)
    return Unimplemented("config.json: {}.factor={} (yarn needs >= 1)", key, a.rope_factor);
  a.rope_original_max_pos = a.max_seq_len;
  RETURN_IF_ERROR(get_opt(rs, "original_max_position_embeddings", &a.rope_original_max_pos, key));
  const double ratio = static_cast<double>(a.max_seq_len) / a.rope_original_max_pos;
  if (std::abs(ratio - a.rope_factor) > 1e-9 * a.rope_factor &&
      a.rope_original_max_pos != a.max_seq_len)
    return Unimplemented(
        "config.json: {}.factor={} differs from max_position_embeddings / "
        "original_max_position_embeddings = {} / {}: transformers versions read yarn "
        "differently then; make them agree",
        key, a.rope_factor, a.max_seq_len, a.rope_original_max_pos);
  RETURN_IF_ERROR(get_opt(rs, "beta_fast", &a.beta_fast, key));
  RETURN_IF_ERROR(get_opt(rs, "beta_slow", &a.beta_slow, key));
  a.mscale = 1.0;
  a.mscale_all_dim = 0.0;
  return OkStatus();
}

// rope_scaling of a GQA family (or transformers 5's rope_parameters, which also holds
// rope_theta): default (none), llama3 or yarn; any other rope_type is refused.
Status read_gqa_rope(const json& c, ModelArgs& a) {
  const char* key = c.contains("rope_parameters") ? "rope_parameters" : "rope_scaling";
  const bool scaled = c.contains(key) && !c[key].is_null();
  if (scaled && !c[key].is_object())
    return InvalidArgument("config.json: '{}' must be an object or null", key);
  // Checked with or without a rope_scaling: RoPE on part of the head is another model.
  double partial = 1.0;
  RETURN_IF_ERROR(get_opt(c, "partial_rotary_factor", &partial));
  if (scaled) RETURN_IF_ERROR(get_opt(c[key], "partial_rotary_factor", &partial));
  if (partial != 1.0)
    return Unimplemented("config.json: partial_rotary_factor={} (only 1: RoPE on the whole head)",
                         partial);
  if (!scaled) return OkStatus();
  const json& rs = c[key];
  RETURN_IF_ERROR(get_opt(rs, "rope_theta", &a.rope_theta, key));
  std::string kind = "default";
  RETURN_IF_ERROR(get_opt(rs, "type", &kind, key));
  RETURN_IF_ERROR(get_opt(rs, "rope_type", &kind, key));
  if (kind == "default") return OkStatus();
  if (kind == "yarn") return read_gqa_yarn(rs, key, a);
  if (kind != "llama3")
    return Unimplemented("config.json: {}.rope_type '{}' for {} (supported: default, llama3, yarn)",
                         key, kind, a.model_type);
  a.rope_llama3 = true;
  RETURN_IF_ERROR(get_req(rs, "factor", &a.rope_factor, key));
  RETURN_IF_ERROR(get_req(rs, "low_freq_factor", &a.rope_low_freq_factor, key));
  RETURN_IF_ERROR(get_req(rs, "high_freq_factor", &a.rope_high_freq_factor, key));
  return get_req(rs, "original_max_position_embeddings", &a.rope_original_max_pos, key);
}

// Qwen3-MoE makes layer l MoE when l is not in mlp_only_layers and (l + 1) is a multiple of
// decoder_sparse_step. r1kit's layout is dense layers first, then MoE ones: returns the
// dense prefix, or an error naming the key whose pattern does not fit.
StatusOr<int64_t> qwen3_moe_dense_prefix(const json& c, const ModelArgs& a) {
  int64_t step = 1;
  RETURN_IF_ERROR(get_opt(c, "decoder_sparse_step", &step));
  if (step < 1) return InvalidArgument("config.json: decoder_sparse_step={}: must be >= 1", step);
  std::set<int64_t> mlp_only;
  if (c.contains("mlp_only_layers") && !c["mlp_only_layers"].is_null()) {
    const json& m = c["mlp_only_layers"];
    if (!m.is_array()) return InvalidArgument("config.json: 'mlp_only_layers' must be a list");
    for (const json& l : m) {
      if (!l.is_number_integer())
        return InvalidArgument("config.json: mlp_only_layers={}: layer indices must be integers",
                               m.dump());
      mlp_only.insert(l.get<int64_t>());
    }
  }
  auto moe = [&](int64_t l) {
    return a.n_routed_experts > 0 && !mlp_only.count(l) && (l + 1) % step == 0;
  };
  int64_t prefix = 0;
  while (prefix < a.n_layers && !moe(prefix)) ++prefix;
  for (int64_t l = prefix; l < a.n_layers; ++l) {
    if (moe(l)) continue;
    return Unimplemented(
        "config.json: {}={} makes layer {} dense after MoE layer {}: r1kit has dense layers only "
        "before the first MoE layer (decoder_sparse_step 1, mlp_only_layers [0 .. k-1])",
        step != 1 ? "decoder_sparse_step" : "mlp_only_layers",
        step != 1 ? std::to_string(step) : c["mlp_only_layers"].dump(), l, prefix);
  }
  return prefix;
}

// Qwen3-MoE's sparse block: softmax over all experts, top-k, norm_topk_prob, no shared
// expert, no routed scaling.
Status read_qwen3_moe(const json& c, ModelArgs& a) {
  int64_t shared = 0;
  RETURN_IF_ERROR(get_opt(c, "shared_expert_intermediate_size", &shared));
  if (shared > 0)
    return Unimplemented(
        "config.json: shared_expert_intermediate_size={} (a Qwen2-MoE shared expert; qwen3_moe "
        "has none)",
        shared);
  RETURN_IF_ERROR(get_req(c, "num_experts", &a.n_routed_experts));
  RETURN_IF_ERROR(get_req(c, "num_experts_per_tok", &a.n_activated_experts));
  RETURN_IF_ERROR(get_req(c, "moe_intermediate_size", &a.moe_inter_dim));
  a.norm_topk_prob = false;
  RETURN_IF_ERROR(get_opt(c, "norm_topk_prob", &a.norm_topk_prob));
  if (a.norm_topk_prob && a.n_activated_experts == 1)
    return Unimplemented(
        "config.json: norm_topk_prob=true with num_experts_per_tok=1 (Qwen3-MoE then weighs the "
        "expert 1; r1kit renormalises only for k > 1)");
  a.score_func = ScoreFunc::kSoftmax;
  a.expert_bias = false;
  a.n_expert_groups = a.n_limited_groups = 1;
  a.route_scale = 1.0;
  a.scale_after_norm = true;
  a.aux_loss_alpha = 0.0;
  a.bias_update_gamma = 0.0;
  ASSIGN_OR_RETURN(a.n_dense_layers, qwen3_moe_dense_prefix(c, a));
  return OkStatus();
}

// Qwen2, Qwen3, Qwen3-MoE, Llama, Mistral: GQA with half-split RoPE.
Status read_gqa(const json& c, ModelArgs& a) {
  const std::string& type = a.model_type;
  const bool qwen3 = type == "qwen3" || type == "qwen3_moe";
  a.attention = AttentionKind::kGQA;
  a.rope_interleave = false;
  a.n_routed_experts = 0;
  a.n_shared_experts = 0;
  a.n_dense_layers = 0;
  a.n_mtp_layers = 0;
  a.expert_bias = false;
  a.n_kv_heads = a.n_heads;  // absent or null: multi-head attention
  RETURN_IF_ERROR(get_nullable(c, "num_key_value_heads", &a.n_kv_heads));
  // validate() refuses this too, but only after the division (found by fuzz/hf_config).
  if (a.n_heads <= 0)
    return InvalidArgument("config.json: num_attention_heads={}: must be > 0", a.n_heads);
  a.head_dim = a.dim / a.n_heads;
  if (qwen3)  // independent of hidden_size there, and transformers' default differs by version
    RETURN_IF_ERROR(get_req(c, "head_dim", &a.head_dim));
  else  // absent or null: hidden_size / heads
    RETURN_IF_ERROR(get_nullable(c, "head_dim", &a.head_dim));
  a.qk_norm = qwen3;
  a.qkv_bias = type == "qwen2";
  if (type != "qwen2") {
    bool attention_bias = false;
    RETURN_IF_ERROR(get_opt(c, "attention_bias", &attention_bias));
    a.qkv_bias = a.o_bias = attention_bias;
    bool mlp_bias = false;
    RETURN_IF_ERROR(get_opt(c, "mlp_bias", &mlp_bias));
    if (mlp_bias) return Unimplemented("config.json: mlp_bias=true is not supported");
  }
  RETURN_IF_ERROR(check_full_attention(c, a));
  RETURN_IF_ERROR(read_gqa_rope(c, a));
  if (type == "qwen3_moe") RETURN_IF_ERROR(read_qwen3_moe(c, a));
  return OkStatus();
}

bool is_gqa_family(const std::string& type) {
  return type == "qwen2" || type == "qwen3" || type == "qwen3_moe" || type == "llama" ||
         type == "mistral";
}

}  // namespace

StatusOr<ModelArgs> args_from_hf_config(const json& c) {
  if (!c.is_object()) return InvalidArgument("config.json: not a JSON object");
  std::string type;
  RETURN_IF_ERROR(get_req(c, "model_type", &type));
  ModelArgs a;
  a.model_type = type;
  RETURN_IF_ERROR(get_req(c, "vocab_size", &a.vocab_size));
  RETURN_IF_ERROR(get_req(c, "hidden_size", &a.dim));
  RETURN_IF_ERROR(get_req(c, "num_hidden_layers", &a.n_layers));
  if (a.n_layers > kMaxLayers)  // before anything loops over the layers
    return InvalidArgument("config.json: num_hidden_layers={}: more than {} layers", a.n_layers,
                           kMaxLayers);
  RETURN_IF_ERROR(get_req(c, "num_attention_heads", &a.n_heads));
  RETURN_IF_ERROR(get_opt(c, "intermediate_size", &a.inter_dim));
  RETURN_IF_ERROR(get_opt(c, "rms_norm_eps", &a.norm_eps));
  RETURN_IF_ERROR(get_opt(c, "tie_word_embeddings", &a.tie_embeddings));
  RETURN_IF_ERROR(get_opt(c, "max_position_embeddings", &a.max_seq_len));
  RETURN_IF_ERROR(get_opt(c, "rope_theta", &a.rope_theta));
  RETURN_IF_ERROR(get_nullable(c, "bos_token_id", &a.bos_id));
  RETURN_IF_ERROR(read_eos(c, a));
  a.rope_factor = 1.0;
  a.mscale_all_dim = 0.0;
  std::string act = "silu";
  RETURN_IF_ERROR(get_opt(c, "hidden_act", &act));
  if (act != "silu") return Unimplemented("config.json: hidden_act '{}' (only silu)", act);

  if (type == "deepseek_v2" || type == "deepseek_v3") {
    RETURN_IF_ERROR(read_deepseek(c, a));
  } else if (is_gqa_family(type)) {
    RETURN_IF_ERROR(read_gqa(c, a));
  } else {
    return Unimplemented(
        "config.json: model_type '{}' (supported: deepseek_v2, deepseek_v3, qwen2, qwen3, "
        "qwen3_moe, llama, mistral)",
        type);
  }
  RETURN_IF_ERROR(a.validate().with_context("config.json"));
  return a;
}

namespace {

void write_deepseek(const ModelArgs& a, json& c) {
  const bool v3 = a.model_type != "deepseek_v2";
  c["model_type"] = v3 ? "deepseek_v3" : "deepseek_v2";
  c["architectures"] = {v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM"};
  c["num_key_value_heads"] = a.n_heads;
  c["q_lora_rank"] = a.q_lora_rank > 0 ? json(a.q_lora_rank) : json(nullptr);
  c["kv_lora_rank"] = a.kv_lora_rank;
  c["qk_nope_head_dim"] = a.qk_nope_head_dim;
  c["qk_rope_head_dim"] = a.qk_rope_head_dim;
  c["v_head_dim"] = a.v_head_dim;
  c["attention_bias"] = false;
  c["n_routed_experts"] = a.n_routed_experts > 0 ? json(a.n_routed_experts) : json(nullptr);
  c["n_shared_experts"] = a.n_shared_experts;
  c["num_experts_per_tok"] = a.n_activated_experts;
  c["moe_intermediate_size"] = a.moe_inter_dim;
  c["first_k_dense_replace"] = a.n_routed_experts > 0 ? a.n_dense_layers : a.n_layers;
  c["moe_layer_freq"] = 1;
  c["n_group"] = a.n_expert_groups;
  c["topk_group"] = a.n_limited_groups;
  c["scoring_func"] = a.score_func == ScoreFunc::kSigmoid ? "sigmoid" : "softmax";
  c["topk_method"] = a.expert_bias           ? "noaux_tc"
                     : a.n_expert_groups > 1 ? "group_limited_greedy"
                                             : "greedy";
  c["norm_topk_prob"] = a.norm_topk_prob;
  c["routed_scaling_factor"] = a.route_scale;
  c["aux_loss_alpha"] = a.aux_loss_alpha;
  c["seq_aux"] = true;
  c["num_nextn_predict_layers"] = a.n_mtp_layers;
  if (a.rope_factor > 1.0) {
    c["rope_scaling"] = {{"type", "yarn"},
                         {"factor", a.rope_factor},
                         {"original_max_position_embeddings", a.rope_original_max_pos},
                         {"beta_fast", a.beta_fast},
                         {"beta_slow", a.beta_slow},
                         {"mscale", a.mscale},
                         {"mscale_all_dim", a.mscale_all_dim}};
  } else {
    c["rope_scaling"] = nullptr;
  }
}

json gqa_rope_scaling(const ModelArgs& a) {
  if (a.rope_llama3)
    return {{"rope_type", "llama3"},
            {"factor", a.rope_factor},
            {"low_freq_factor", a.rope_low_freq_factor},
            {"high_freq_factor", a.rope_high_freq_factor},
            {"original_max_position_embeddings", a.rope_original_max_pos}};
  if (!a.yarn()) return nullptr;
  json rs = {{"rope_type", "yarn"},
             {"factor", a.rope_factor},
             {"original_max_position_embeddings", a.rope_original_max_pos}};
  if (a.beta_fast != 32.0) rs["beta_fast"] = a.beta_fast;  // transformers' defaults otherwise
  if (a.beta_slow != 1.0) rs["beta_slow"] = a.beta_slow;
  return rs;
}

void write_gqa(const ModelArgs& a, json& c) {
  static const std::map<std::string, const char*> kArchitectures = {
      {"qwen2", "Qwen2ForCausalLM"},
      {"qwen3", "Qwen3ForCausalLM"},
      {"qwen3_moe", "Qwen3MoeForCausalLM"},
      {"llama", "LlamaForCausalLM"}};
  const std::string type = kArchitectures.count(a.model_type) ? a.model_type : "llama";
  c["model_type"] = type;
  c["architectures"] = {kArchitectures.at(type)};
  c["num_key_value_heads"] = a.n_kv_heads;
  c["head_dim"] = a.head_dim;
  if (type != "qwen2") c["attention_bias"] = a.qkv_bias;
  if (type == "llama") c["mlp_bias"] = false;
  if (type == "qwen3" || type == "qwen3_moe") {
    c["use_sliding_window"] = false;
    c["sliding_window"] = nullptr;
    c["max_window_layers"] = a.n_layers;
  }
  if (type == "qwen3_moe") {
    c["num_experts"] = a.n_routed_experts;
    c["num_experts_per_tok"] = a.n_activated_experts;
    c["moe_intermediate_size"] = a.moe_inter_dim;
    c["norm_topk_prob"] = a.norm_topk_prob;
    c["decoder_sparse_step"] = 1;
    std::vector<int64_t> dense;
    for (int64_t l = 0; l < a.n_layers; ++l)
      if (!a.is_moe_layer(l)) dense.push_back(l);
    c["mlp_only_layers"] = dense;
  }
  c["rope_scaling"] = gqa_rope_scaling(a);
}

}  // namespace

json args_to_hf_config(const ModelArgs& a) {
  json c;
  c["model_type"] = a.model_type;
  c["vocab_size"] = a.vocab_size;
  c["hidden_size"] = a.dim;
  c["num_hidden_layers"] = a.n_layers;
  c["num_attention_heads"] = a.n_heads;
  c["intermediate_size"] = a.inter_dim;
  c["rms_norm_eps"] = a.norm_eps;
  c["tie_word_embeddings"] = a.tie_embeddings;
  c["max_position_embeddings"] = a.max_seq_len;
  c["rope_theta"] = a.rope_theta;
  c["bos_token_id"] = a.bos_id;
  c["eos_token_id"] =
      a.eos_ids.size() > 1 && a.eos_ids.front() == a.eos_id ? json(a.eos_ids) : json(a.eos_id);
  c["hidden_act"] = "silu";
  c["torch_dtype"] = "float32";
  if (a.attention == AttentionKind::kMLA)
    write_deepseek(a, c);
  else
    write_gqa(a, c);
  // r1kit-only training settings ride along under their own key (HF loaders ignore it).
  c["r1kit"] = {{"bias_update_gamma", a.bias_update_gamma},
                {"aux_loss_alpha", a.aux_loss_alpha},
                {"mtp_lambda", a.mtp_lambda},
                {"scale_after_norm", a.scale_after_norm}};
  return c;
}

StatusOr<ModelArgs> load_hf_config(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, read_file(path));
  return parse_hf_config(text, path);
}

StatusOr<ModelArgs> parse_hf_config(std::string_view text, const std::string& path) {
  ASSIGN_OR_RETURN(json c, parse_json(text, path));
  StatusOr<ModelArgs> args = Internal("unreached");
  try {
    args = args_from_hf_config(c);
  } catch (const nlohmann::json::exception& e) {  // a value of a type no getter expected
    return InvalidArgument("{}: {}", path, e.what());
  }
  if (!args.ok()) return args.status().with_context(path);
  ModelArgs a = *args;
  RETURN_IF_ERROR(check_kind(c, "r1kit", json::value_t::object).with_context(path));
  if (c.contains("r1kit") && c["r1kit"].is_object()) {
    const json& r = c["r1kit"];
    RETURN_IF_ERROR(get_opt(r, "bias_update_gamma", &a.bias_update_gamma).with_context(path));
    RETURN_IF_ERROR(get_opt(r, "aux_loss_alpha", &a.aux_loss_alpha).with_context(path));
    RETURN_IF_ERROR(get_opt(r, "mtp_lambda", &a.mtp_lambda).with_context(path));
    RETURN_IF_ERROR(get_opt(r, "scale_after_norm", &a.scale_after_norm).with_context(path));
  }
  return a;
}

namespace {
// count_params in floating point, in closed form (dense layers come first; MTP blocks
// follow the last layer's kind): no overflow and no loop over layers, whatever the sizes.
struct ParamCountF {
  double total = 0, active = 0, embedding = 0;
};
ParamCountF count_params_f(const ModelArgs& a) {
  const double d = static_cast<double>(a.dim), h = static_cast<double>(a.n_heads);
  double attn = 0;
  if (a.attention == AttentionKind::kMLA) {
    const double r = a.q_lora_rank;
    const double q =
        a.q_lora_rank > 0 ? d * r + r + r * h * a.qk_head_dim() : d * h * a.qk_head_dim();
    const double kv = d * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank +
                      a.kv_lora_rank * h * (a.qk_nope_head_dim + a.v_head_dim);
    attn = q + kv + h * a.v_head_dim * d;
  } else {
    const double hd = a.head_dim, kvh = a.n_kv_heads;
    const double bias = a.qkv_bias ? (h + 2 * kvh) * hd : 0;
    const double qk_norm = a.qk_norm ? 2 * hd : 0;
    attn = d * h * hd + 2 * d * kvh * hd + bias + qk_norm + h * hd * d + (a.o_bias ? d : 0);
  }
  const double common = attn + 2 * d;
  const double dense = 3 * d * a.inter_dim;
  const double expert = 3 * d * a.moe_inter_dim;
  const double shared_gate = expert * a.n_shared_experts + a.n_routed_experts * d;
  const double moe_total = a.n_routed_experts * expert + shared_gate;
  const double moe_active = a.n_activated_experts * expert + shared_gate;
  const bool moe = a.n_routed_experts > 0;
  const double n_moe =
      moe ? static_cast<double>(a.n_layers - std::min(a.n_dense_layers, a.n_layers)) : 0;
  const double n_dense = a.n_layers - n_moe;
  ParamCountF p;
  p.embedding = static_cast<double>(a.vocab_size) * d * (a.tie_embeddings ? 1 : 2);
  p.total = a.n_layers * common + n_dense * dense + n_moe * moe_total + p.embedding + d;
  p.active = a.n_layers * common + n_dense * dense + n_moe * moe_active + p.embedding + d;
  // MTP blocks (eh_proj + enorm, hnorm, shared_head.norm) count in the total only.
  p.total += a.n_mtp_layers * (common + (moe ? moe_total : dense) + 2 * d * d + 3 * d);
  return p;
}
int64_t saturate(double x) {
  return x >= 9.2e18 ? std::numeric_limits<int64_t>::max() : static_cast<int64_t>(x);
}
}  // namespace

ParamCount count_params(const ModelArgs& a) {
  const ParamCountF f = count_params_f(a);
  return {saturate(f.total), saturate(f.active), saturate(f.embedding)};
}

double model_memory_bytes(const ModelArgs& a, int64_t bytes_per_param) {
  const double kv_per_token = a.attention == AttentionKind::kMLA
                                  ? double(a.kv_lora_rank + a.qk_rope_head_dim)
                                  : 2.0 * a.n_kv_heads * a.head_dim;
  return count_params_f(a).total * bytes_per_param +
         kv_per_token * a.n_layers * bytes_per_param * a.max_seq_len;
}

int64_t model_memory_limit() {
  if (const char* env = std::getenv("R1KIT_MODEL_MEMORY_LIMIT")) {
    char* end = nullptr;
    const double v = std::strtod(env, &end);
    if (end != env && v > 0) return saturate(v);
  }
  return static_cast<int64_t>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE);
}

Status check_model_memory(const ModelArgs& a, int64_t bytes_per_param, std::string_view what) {
  const double need = model_memory_bytes(a, bytes_per_param);
  const int64_t limit = model_memory_limit();
  if (need <= static_cast<double>(limit)) return OkStatus();
  return ResourceExhausted(
      "{}: this model needs about {:.3g} GB ({:.3g}G parameters at {} bytes, plus the KV cache "
      "of one {}-token sequence), more than the {:.3g} GB limit (physical memory; set "
      "R1KIT_MODEL_MEMORY_LIMIT=bytes to change it); refused before allocating",
      what, need / 1e9, count_params_f(a).total / 1e9, bytes_per_param, a.max_seq_len, limit / 1e9);
}

}  // namespace r1kit::policy
