// `r1kit model init|info|logits`: create a model from a preset, describe one, and print
// its logits for given token ids (for checking against another implementation).
#include <torch/torch.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "apps/commands.h"
#include "policy/checkpoint.h"
#include "policy/model.h"

namespace r1kit::apps {
namespace {
using namespace r1kit::policy;

Status run_init(const std::string& preset_name, int64_t vocab, uint64_t seed,
                const std::string& out, const std::string& dtype) {
  ASSIGN_OR_RETURN(ModelArgs args, preset(preset_name, vocab));
  Transformer model(args);
  model->init_weights(seed);
  SaveOptions opts;
  if (dtype == "bf16")
    opts.dtype = torch::kBFloat16;
  else if (dtype != "f32")
    return InvalidArgument("--dtype '{}': use f32 or bf16", dtype);
  RETURN_IF_ERROR(save_model(*model, out, opts));
  const ParamCount pc = count_params(args);
  std::printf("wrote %s: preset %s, %.2fM parameters (%.2fM active per token)\n", out.c_str(),
              preset_name.c_str(), pc.total / 1e6, pc.active / 1e6);
  return OkStatus();
}

StatusOr<ModelArgs> args_of(const std::string& target) {
  if (auto p = preset(target); p.ok()) return p;
  return load_hf_config(target + "/config.json");
}

Status run_info(const std::string& target, bool json_out) {
  ASSIGN_OR_RETURN(ModelArgs a, args_of(target));
  const ParamCount pc = count_params(a);
  nlohmann::json j;
  j["model_type"] = a.model_type;
  j["parameters_total"] = pc.total;
  j["parameters_active_per_token"] = pc.active;
  j["parameters_embedding"] = pc.embedding;
  j["kv_cache_bytes_per_token_bf16"] = a.kv_cache_bytes_per_token(2);
  j["mha_cache_bytes_per_token_bf16"] = a.mha_cache_bytes_per_token(2);
  j["attention"] = a.attention == AttentionKind::kMLA ? "mla" : "gqa";
  j["vocab_size"] = a.vocab_size;
  j["dim"] = a.dim;
  j["n_layers"] = a.n_layers;
  j["n_mtp_layers"] = a.n_mtp_layers;
  if (json_out) {
    std::printf("%s\n", j.dump(2).c_str());
    return OkStatus();
  }
  std::printf("model %s (%s attention)\n", target.c_str(),
              j["attention"].get<std::string>().c_str());
  std::printf("  parameters: %.3fM total, %.3fM active per token (%.3fM in embeddings)\n",
              pc.total / 1e6, pc.active / 1e6, pc.embedding / 1e6);
  std::printf(
      "  KV cache per token (bf16): %lld bytes; with full multi-head attention: %lld bytes "
      "(%.1f%%)\n",
      static_cast<long long>(a.kv_cache_bytes_per_token(2)),
      static_cast<long long>(a.mha_cache_bytes_per_token(2)),
      100.0 * a.kv_cache_bytes_per_token(2) / a.mha_cache_bytes_per_token(2));
  std::printf("  vocab %lld, dim %lld, heads %lld, RoPE theta %g%s\n",
              static_cast<long long>(a.vocab_size), static_cast<long long>(a.dim),
              static_cast<long long>(a.n_heads), a.rope_theta,
              a.rope_llama3 ? fmt::format(", llama3 x{}", a.rope_factor).c_str()
              : a.yarn()    ? fmt::format(", YaRN x{}", a.rope_factor).c_str()
                            : "");
  std::printf("  %-6s %-5s %-38s %-44s\n", "layer", "kind", "attention", "feed-forward");
  auto attn = [&]() -> std::string {
    if (a.attention == AttentionKind::kMLA)
      return fmt::format("MLA q_lora {} kv_lora {} nope {} rope {} v {}", a.q_lora_rank,
                         a.kv_lora_rank, a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim);
    return fmt::format("GQA {}q/{}kv x {}{}{}", a.n_heads, a.n_kv_heads, a.head_dim,
                       a.qkv_bias ? " +bias" : "", a.qk_norm ? " +qk-norm" : "");
  };
  auto ffn = [&](int64_t l) -> std::string {
    if (!a.is_moe_layer(l)) return fmt::format("dense SwiGLU {}", a.inter_dim);
    return fmt::format("MoE {} routed (top-{}, {} groups keep {}) + {} shared, width {}",
                       a.n_routed_experts, a.n_activated_experts, a.n_expert_groups,
                       a.n_limited_groups, a.n_shared_experts, a.moe_inter_dim);
  };
  for (int64_t l = 0; l < a.n_layers + a.n_mtp_layers; ++l) {
    std::printf("  %-6lld %-5s %-38s %-44s\n", static_cast<long long>(l),
                l >= a.n_layers ? "MTP" : (a.is_moe_layer(l) ? "moe" : "dense"), attn().c_str(),
                ffn(l).c_str());
  }
  return OkStatus();
}

Status run_logits(const std::string& dir, const std::string& ids_text) {
  ASSIGN_OR_RETURN(std::vector<int64_t> ids, parse_id_list(ids_text));
  ASSIGN_OR_RETURN(Transformer model, load_model(dir));
  for (int64_t id : ids)
    if (id < 0 || id >= model->args().vocab_size)
      return InvalidArgument("--ids: token id {} outside the vocabulary [0, {})", id,
                             model->args().vocab_size);
  model->eval();
  torch::NoGradGuard no_grad;
  auto t = torch::tensor(ids, torch::kLong).unsqueeze(0);
  auto logits = model->forward(t).logits[0].to(torch::kFloat).contiguous();  // [T, V]
  nlohmann::json rows = nlohmann::json::array();
  const float* p = logits.data_ptr<float>();
  for (int64_t i = 0; i < logits.size(0); ++i)
    rows.push_back(std::vector<float>(p + i * logits.size(1), p + (i + 1) * logits.size(1)));
  nlohmann::json out;
  out["logits"] = rows;
  std::printf("%s\n", out.dump().c_str());
  return OkStatus();
}

}  // namespace

void add_model_command(CLI::App& root, int* exit_code) {
  auto* model = root.add_subcommand("model", "Create, describe and run policy models");
  model->require_subcommand(1);

  auto* init = model->add_subcommand(
      "init",
      "Create a randomly initialised model from a preset and save it as a checkpoint "
      "directory (config.json + model.safetensors, Hugging Face layout)");
  static std::string init_preset = "tiny", init_out, init_dtype = "f32";
  static int64_t init_vocab = 0;
  static uint64_t init_seed = 1;
  init->add_option("--preset", init_preset, "nano | tiny | small | tiny-dense")
      ->capture_default_str();
  init->add_option("--seed", init_seed, "initialisation seed")->capture_default_str();
  init->add_option("--vocab-size", init_vocab, "override the preset's vocabulary size (0: keep)");
  init->add_option("--dtype", init_dtype, "f32 or bf16 weights on disk")->capture_default_str();
  init->add_option("--out", init_out, "output checkpoint directory")->required();
  init->callback([=] {
    *exit_code = report(run_init(init_preset, init_vocab, init_seed, init_out, init_dtype));
  });

  auto* info = model->add_subcommand(
      "info",
      "Parameters (total and active per token), KV-cache bytes per token (MLA against "
      "full multi-head attention) and a layer table, for a checkpoint or a preset");
  static std::string info_target;
  static bool info_json = false;
  info->add_option("target", info_target, "checkpoint directory or preset name")->required();
  info->add_flag("--json", info_json, "print JSON instead of a table");
  info->callback([=] { *exit_code = report(run_info(info_target, info_json)); });

  auto* logits = model->add_subcommand(
      "logits",
      "Print {\"logits\": [[...V floats...] per position]} for the given token ids, "
      "computed in fp32, for a native or Hugging Face checkpoint directory");
  static std::string logits_model, logits_ids;
  logits->add_option("--model", logits_model, "checkpoint directory")->required();
  logits->add_option("--ids", logits_ids, "comma-separated token ids, e.g. 5,17,42")->required();
  logits->callback([=] { *exit_code = report(run_logits(logits_model, logits_ids)); });
}

}  // namespace r1kit::apps
