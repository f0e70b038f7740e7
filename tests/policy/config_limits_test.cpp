// Hostile or careless config.json files cost nothing: JSON nested 100k deep, a null or
// wrongly typed value, sizes that overflow a count or need more memory than the machine
// has, a wrongly shaped tensor. Each is refused with an error naming the file and key,
// before anything large is allocated.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/safetensors.h"
#include "policy/checkpoint.h"
#include "policy/model_args.h"
#include "policy/model_config.h"
#include "tests/temp_dir.h"

namespace r1kit::policy {
namespace {
namespace fs = std::filesystem;

nlohmann::json llama_config() {
  std::ifstream in(std::string(R1KIT_TESTDATA) + "/golden/llama_tiny/config.json");
  return nlohmann::json::parse(in);
}
nlohmann::json deepseek_config() {
  std::ifstream in(std::string(R1KIT_TESTDATA) + "/golden/deepseek_v3_tiny/config.json");
  return nlohmann::json::parse(in);
}

// The directory load_text(name) writes to, in this process's temp dir (removed at exit).
std::string config_dir(const std::string& name) {
  static const testing::ScopedTempDir tmp("config_limits");
  return tmp.join(name);
}

// Writes `text` as DIR/config.json and loads it.
StatusOr<ModelArgs> load_text(const std::string& name, const std::string& text) {
  const std::string dir = config_dir(name);
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << text;
  return load_hf_config(dir + "/config.json");
}

std::string error_of(const std::string& name, const nlohmann::json& c) {
  auto a = load_text(name, c.dump());
  EXPECT_FALSE(a.ok()) << name;
  return a.ok() ? "" : a.status().message();
}

TEST(ConfigLimitsTest, DeepJsonIsRefusedNamingTheFile) {
  const std::string deep = "{\"model_type\": " + std::string(100000, '[') + "}";
  auto a = load_text("deep", deep);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("config.json: JSON nested deeper than 64 levels"),
            std::string::npos)
      << a.status().message();
}

// A GQA config with no attention heads divided hidden_size by zero (SIGFPE) before
// validate() could refuse it; found by fuzz/hf_config, whose corpus keeps the input.
TEST(ConfigLimitsTest, ZeroAttentionHeadsAreRefusedBeforeAnyDivision) {
  for (const std::string type : {"qwen2", "llama", "qwen3"}) {
    nlohmann::json c = {
        {"model_type", type},     {"vocab_size", 97},         {"hidden_size", 28},
        {"num_hidden_layers", 2}, {"num_attention_heads", 0}, {"num_key_value_heads", 2},
        {"head_dim", 24}};
    EXPECT_NE(error_of("zero_heads_" + type, c).find("num_attention_heads=0: must be > 0"),
              std::string::npos)
        << type;
  }
}

// Every boolean, number and string key the reader takes: null and a value of another
// JSON type are errors naming the key (transformers 5's config classes refuse null for
// them too: `tie_word_embeddings: bool`). The keys transformers types `X | None` take
// null as absent, with the documented default.
TEST(ConfigLimitsTest, NullAndWrongTypesNameTheKey) {
  struct Key {
    const char* family;  // "ds" (deepseek_v3_tiny) or "llama" (llama_tiny)
    const char* key;
    const char* type;  // in the message: "a boolean", "an integer", "a number", "a string"
    nlohmann::json wrong;
  };
  const std::vector<Key> keys = {
      {"ds", "tie_word_embeddings", "a boolean", "yes"},
      {"ds", "attention_bias", "a boolean", "false"},
      {"ds", "vocab_size", "an integer", 97.5},
      {"ds", "num_hidden_layers", "an integer", "3"},
      {"ds", "kv_lora_rank", "an integer", true},
      {"ds", "moe_intermediate_size", "an integer", "32"},
      {"ds", "n_shared_experts", "an integer", 1.5},
      {"ds", "moe_layer_freq", "an integer", "1"},
      {"ds", "num_nextn_predict_layers", "an integer", false},
      {"ds", "rms_norm_eps", "a number", "1e-6"},
      {"ds", "routed_scaling_factor", "a number", "2.5"},
      {"ds", "aux_loss_alpha", "a number", true},
      {"ds", "rope_theta", "a number", "10000"},
      {"ds", "max_position_embeddings", "an integer", 64.5},
      {"ds", "scoring_func", "a string", 1},
      {"ds", "hidden_act", "a string", false},
      {"llama", "tie_word_embeddings", "a boolean", 0},
      {"llama", "attention_bias", "a boolean", "no"},
      {"llama", "mlp_bias", "a boolean", 0},
      {"llama", "intermediate_size", "an integer", "96"},
      {"llama", "hidden_size", "an integer", 64.5},
  };
  for (const Key& k : keys) {
    nlohmann::json c = std::string(k.family) == "ds" ? deepseek_config() : llama_config();
    const std::string name = fmt::format("{}_{}", k.family, k.key);
    c[k.key] = nullptr;
    EXPECT_NE(
        error_of(name + "_null", c).find(fmt::format("'{}' must be {}, got null", k.key, k.type)),
        std::string::npos)
        << error_of(name + "_null", c);
    c[k.key] = k.wrong;
    EXPECT_NE(error_of(name + "_wrong", c)
                  .find(fmt::format("'{}' must be {}, got {}", k.key, k.type, k.wrong.dump())),
              std::string::npos)
        << error_of(name + "_wrong", c);
  }
  // Nested keys are named in full.
  nlohmann::json c = deepseek_config();
  c["rope_scaling"] = {{"type", 5}, {"factor", 2}};
  EXPECT_NE(error_of("ds_rope_type", c).find("'rope_scaling.type' must be a string, got 5"),
            std::string::npos)
      << error_of("ds_rope_type", c);
  c["rope_scaling"] = {{"type", "yarn"}, {"factor", nullptr}};
  EXPECT_NE(error_of("ds_rope_factor", c).find("'rope_scaling.factor' must be a number, got null"),
            std::string::npos)
      << error_of("ds_rope_factor", c);
  c = llama_config();
  c["rope_scaling"] = {{"rope_type", 5}, {"factor", 2}};
  EXPECT_NE(error_of("llama_rope_type", c).find("'rope_scaling.rope_type' must be a string"),
            std::string::npos);
  // Objects and lists of the wrong kind, which were skipped before.
  c = deepseek_config();
  c["rope_scaling"] = "yarn";
  EXPECT_NE(
      error_of("ds_rope_str", c).find("'rope_scaling' must be an object or null, got \"yarn\""),
      std::string::npos)
      << error_of("ds_rope_str", c);
  c = llama_config();
  c["layer_types"] = "full_attention";
  EXPECT_NE(error_of("llama_layer_types", c).find("'layer_types' must be a list or null"),
            std::string::npos)
      << error_of("llama_layer_types", c);
  c = llama_config();
  c["sliding_window"] = "4096";
  EXPECT_NE(error_of("llama_window", c).find("'sliding_window' must be an integer or null"),
            std::string::npos)
      << error_of("llama_window", c);
  c = llama_config();
  c["r1kit"] = 3;
  EXPECT_NE(error_of("llama_r1kit", c).find("'r1kit' must be an object or null, got 3"),
            std::string::npos)
      << error_of("llama_r1kit", c);
}

// The keys transformers types `X | None` (num_key_value_heads, head_dim, q_lora_rank,
// n_group, ...): null reads as absent, giving the documented default.
TEST(ConfigLimitsTest, NullableKeysReadNullAsAbsent) {
  nlohmann::json c = llama_config();
  c["num_key_value_heads"] = nullptr;  // multi-head attention
  c["head_dim"] = nullptr;             // hidden_size / heads = 64 / 4
  c["bos_token_id"] = nullptr;
  c["eos_token_id"] = nullptr;
  c["sliding_window"] = nullptr;
  c["layer_types"] = nullptr;
  auto llama = load_text("llama_nullable", c.dump());
  ASSERT_TRUE(llama.ok()) << llama.status().message();
  EXPECT_EQ(llama->n_kv_heads, 4);
  EXPECT_EQ(llama->head_dim, 16);
  c = deepseek_config();
  c["q_lora_rank"] = nullptr;  // no query compression (DeepSeek-V2-Lite writes null)
  c["norm_topk_prob"] = nullptr;
  auto ds = load_text("ds_nullable", c.dump());
  ASSERT_TRUE(ds.ok()) << ds.status().message();
  EXPECT_EQ(ds->q_lora_rank, 0);
  EXPECT_FALSE(ds->norm_topk_prob);
  EXPECT_EQ(ds->n_routed_experts, 8);
  c["n_routed_experts"] = nullptr;  // what r1kit writes for a dense DeepSeek model
  c["first_k_dense_replace"] = 3;
  auto dense = load_text("ds_dense", c.dump());
  ASSERT_TRUE(dense.ok()) << dense.status().message();
  EXPECT_EQ(dense->n_routed_experts, 0);
}

TEST(ConfigLimitsTest, AbsurdSizesAreRefusedBeforeAnyCountOrAllocation) {
  nlohmann::json c = llama_config();
  c["num_hidden_layers"] = 1000000000;
  EXPECT_NE(error_of("layers", c).find("num_hidden_layers=1000000000: more than 4096 layers"),
            std::string::npos);
  c = llama_config();
  c["vocab_size"] = int64_t{1} << 62;
  EXPECT_NE(error_of("vocab", c).find("model.vocab_size=4611686018427387904: above"),
            std::string::npos)
      << error_of("vocab", c);
  // Large but plausible sizes: the parameter count does not overflow, and building the
  // model is refused (ResourceExhausted, naming the file) before its tensors exist.
  c = llama_config();
  c["hidden_size"] = 1 << 20;
  c["intermediate_size"] = 1 << 22;
  c["num_attention_heads"] = 1 << 14;
  c["num_key_value_heads"] = 1 << 14;
  c["head_dim"] = 64;
  c["vocab_size"] = 1 << 20;
  auto big = load_text("big", c.dump());
  ASSERT_TRUE(big.ok()) << big.status().message();
  const ParamCount pc = count_params(*big);
  EXPECT_GT(pc.total, int64_t{1} << 40);
  EXPECT_GT(model_memory_bytes(*big, 4), 4.0 * pc.total);
  const Status s = check_model_memory(*big, 4, "x/config.json");
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("x/config.json: this model needs about"), std::string::npos)
      << s.message();
  ModelConfig mc;
  mc.from = config_dir("big");
  auto built = mc.build(0, 1);
  ASSERT_FALSE(built.ok());
  EXPECT_EQ(built.status().code(), StatusCode::kResourceExhausted);
  auto loaded = load_model(mc.from);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), StatusCode::kResourceExhausted);
  // The limit is configurable.
  ::setenv("R1KIT_MODEL_MEMORY_LIMIT", "1000", 1);
  EXPECT_EQ(model_memory_limit(), 1000);
  EXPECT_FALSE(check_model_memory(*preset("nano"), 4, "nano").ok());
  ::unsetenv("R1KIT_MODEL_MEMORY_LIMIT");
  EXPECT_TRUE(check_model_memory(*preset("nano"), 4, "nano").ok());
}

// A state file whose tensor has the wrong shape is refused from its header.
TEST(ConfigLimitsTest, WronglyShapedStateIsRefusedFromTheHeader) {
  Transformer m(*preset("nano"));
  const testing::ScopedTempDir tmp("config_limits_state");
  const std::string path = tmp.join("state.safetensors");
  std::vector<std::pair<std::string, torch::Tensor>> t;
  for (const auto& p : m->named_parameters())
    t.emplace_back(p.key(), p.key() == "norm.weight" ? torch::zeros({3, 1000}) : p.value());
  for (const auto& b : m->named_buffers()) t.emplace_back(b.key(), b.value());
  ASSERT_TRUE(write_safetensors(path, t).ok());
  const Status s = load_state(*m, path);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kDataLoss);
  EXPECT_NE(s.message().find("norm.weight has shape [3, 1000]"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace r1kit::policy
