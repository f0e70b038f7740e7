// Hostile or careless config.json files cost nothing: JSON nested 100k deep, a null or
// wrongly typed value, sizes that overflow a count or need more memory than the machine
// has, a wrongly shaped tensor. Each is refused with an error naming the file and key,
// before anything large is allocated.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "policy/checkpoint.h"
#include "policy/model_args.h"
#include "policy/model_config.h"

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

// Writes `text` as DIR/config.json and loads it.
StatusOr<ModelArgs> load_text(const std::string& name, const std::string& text) {
  const std::string dir = ::testing::TempDir() + "/config_limits_" + name;
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
    nlohmann::json c = {{"model_type", type},       {"vocab_size", 97},
                        {"hidden_size", 28},        {"num_hidden_layers", 2},
                        {"num_attention_heads", 0}, {"num_key_value_heads", 2},
                        {"head_dim", 24}};
    EXPECT_NE(error_of("zero_heads_" + type, c).find("num_attention_heads=0: must be > 0"),
              std::string::npos)
        << type;
  }
}

TEST(ConfigLimitsTest, NullAndWrongTypesNameTheKey) {
  nlohmann::json c = deepseek_config();
  ASSERT_TRUE(load_text("ds_ok", c.dump()).ok());
  c["tie_word_embeddings"] = nullptr;  // null: the default (untied), as for every key
  auto tied = load_text("ds_null_tie", c.dump());
  ASSERT_TRUE(tied.ok()) << tied.status().message();
  EXPECT_FALSE(tied->tie_embeddings);
  c["tie_word_embeddings"] = "yes";
  EXPECT_NE(error_of("ds_str_tie", c).find("'tie_word_embeddings' must be a boolean"),
            std::string::npos);
  c = deepseek_config();
  c["rope_scaling"] = {{"type", 5}, {"factor", 2}};
  EXPECT_NE(error_of("ds_rope_type", c).find("'rope_scaling.type' must be a string, got 5"),
            std::string::npos)
      << error_of("ds_rope_type", c);
  c = llama_config();
  c["rope_scaling"] = {{"rope_type", 5}, {"factor", 2}};
  EXPECT_NE(error_of("llama_rope_type", c).find("'rope_scaling.rope_type' must be a string"),
            std::string::npos);
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
  mc.from = ::testing::TempDir() + "/config_limits_big";
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
  const std::string path = ::testing::TempDir() + "/config_limits_state.safetensors";
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
