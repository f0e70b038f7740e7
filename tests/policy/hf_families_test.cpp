// Tests of the Qwen3, Qwen3-MoE and Llama 3 families (policy/model_args.h, checkpoint.h):
// their config.json keys and tensor names round-trip through load and save, the configs
// r1kit cannot honour exactly are errors that name the key, and loading builds the model
// straight in its dtype. Their logits are checked in golden_test.cpp.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "policy/checkpoint.h"
#include "tests/temp_dir.h"

namespace r1kit::policy {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string golden_dir(const std::string& name) {
  return std::string(R1KIT_TESTDATA) + "/golden/" + name;
}

json golden_config(const std::string& name) {
  auto text = read_file(golden_dir(name) + "/config.json");
  EXPECT_TRUE(text.ok()) << text.status().to_string();
  return text.ok() ? json::parse(*text) : json();
}

std::set<std::string> weight_names(const std::string& dir) {
  auto ckpt = SafetensorsCheckpoint::open_dir(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  if (!ckpt.ok()) return {};
  auto names = ckpt->names();
  return {names.begin(), names.end()};
}

// A fresh directory per test, removed afterwards.
class HfFamiliesTest : public ::testing::Test {
 protected:
  testing::ScopedTempDir tmp_{"r1kit_hf"};
  const fs::path& root_ = tmp_.path();
};

torch::Tensor fixture_logits(TransformerImpl& m) {
  auto ids = torch::arange(3, 12, torch::kLong).unsqueeze(0);
  m.eval();
  torch::NoGradGuard ng;
  return m.forward(ids).logits;
}

// ---------------------------------------------------------------------------------
// Round trips: load a fixture, save it, load that again

class FamilyRoundTrip : public HfFamiliesTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(FamilyRoundTrip, ConfigNamesAndLogitsSurviveLoadAndSave) {
  const std::string name = GetParam();
  auto m = load_model(golden_dir(name));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  const std::string out = (root_ / "copy").string();
  Status st = save_model(**m, out);
  ASSERT_TRUE(st.ok()) << st.to_string();

  // The same tensor names as the Hugging Face file, and the family's config keys.
  EXPECT_EQ(weight_names(out), weight_names(golden_dir(name)));
  const json want = golden_config(name);
  auto text = read_file(out + "/config.json");
  ASSERT_TRUE(text.ok());
  const json got = json::parse(*text);
  for (const char* key : {"model_type",
                          "architectures",
                          "hidden_size",
                          "num_hidden_layers",
                          "num_attention_heads",
                          "num_key_value_heads",
                          "head_dim",
                          "intermediate_size",
                          "tie_word_embeddings",
                          "rope_theta",
                          "rope_scaling",
                          "max_position_embeddings",
                          "eos_token_id",
                          "num_experts",
                          "num_experts_per_tok",
                          "moe_intermediate_size",
                          "norm_topk_prob",
                          "mlp_only_layers",
                          "attention_bias",
                          "use_sliding_window",
                          "sliding_window"}) {
    if (want.contains(key)) {
      EXPECT_EQ(got[key], want[key]) << name << ": " << key;
    }
  }

  auto back = load_model(out);
  ASSERT_TRUE(back.ok()) << back.status().to_string();
  const ModelArgs &a = (*m)->args(), &b = (*back)->args();
  EXPECT_EQ(b.model_type, a.model_type);
  EXPECT_EQ(b.qk_norm, a.qk_norm);
  EXPECT_EQ(b.head_dim, a.head_dim);
  EXPECT_EQ(b.rope_llama3, a.rope_llama3);
  EXPECT_EQ(b.rope_factor, a.rope_factor);
  EXPECT_EQ(b.n_routed_experts, a.n_routed_experts);
  EXPECT_EQ(b.n_dense_layers, a.n_dense_layers);
  EXPECT_EQ(b.eos_ids, a.eos_ids);
  EXPECT_TRUE(torch::equal(fixture_logits(**m), fixture_logits(**back)));
}

INSTANTIATE_TEST_SUITE_P(Families, FamilyRoundTrip,
                         ::testing::Values("qwen3_tiny", "qwen3_moe_tiny", "llama3_tiny"));

TEST_F(HfFamiliesTest, FamiliesReadAsTheirEquations) {
  auto q3 = args_from_hf_config(golden_config("qwen3_tiny"));
  ASSERT_TRUE(q3.ok()) << q3.status().to_string();
  EXPECT_TRUE(q3->qk_norm);
  EXPECT_EQ(q3->head_dim, 24);  // not hidden_size / heads = 16
  EXPECT_FALSE(q3->qkv_bias);
  EXPECT_TRUE(q3->tie_embeddings);
  EXPECT_TRUE(q3->yarn());
  EXPECT_EQ(q3->rope_original_max_pos, 64);
  EXPECT_DOUBLE_EQ(q3->softmax_scale(), 1.0 / std::sqrt(24.0));  // no mscale^2 on GQA

  auto moe = args_from_hf_config(golden_config("qwen3_moe_tiny"));
  ASSERT_TRUE(moe.ok()) << moe.status().to_string();
  EXPECT_EQ(moe->score_func, ScoreFunc::kSoftmax);
  EXPECT_EQ(moe->n_routed_experts, 8);
  EXPECT_EQ(moe->n_shared_experts, 0);
  EXPECT_FALSE(moe->expert_bias);
  EXPECT_EQ(moe->route_scale, 1.0);
  EXPECT_TRUE(moe->norm_topk_prob);
  EXPECT_EQ(moe->n_dense_layers, 1);  // mlp_only_layers [0]
  EXPECT_FALSE(moe->is_moe_layer(0));
  EXPECT_TRUE(moe->is_moe_layer(1));

  auto l3 = args_from_hf_config(golden_config("llama3_tiny"));
  ASSERT_TRUE(l3.ok()) << l3.status().to_string();
  EXPECT_TRUE(l3->rope_llama3);
  EXPECT_FALSE(l3->yarn());
  EXPECT_EQ(l3->eos_id, 1);
  EXPECT_EQ(l3->eos_ids, (std::vector<int64_t>{1, 95, 96}));
}

TEST_F(HfFamiliesTest, HuggingFaceTensorNamesAndParameterCount) {
  auto m = load_model(golden_dir("qwen3_moe_tiny"));
  ASSERT_TRUE(m.ok()) << m.status().to_string();
  std::set<std::string> names;
  for (const auto& [name, t] : export_tensors(**m, torch::kFloat)) names.insert(name);
  for (const char* n :
       {"model.layers.0.self_attn.q_norm.weight", "model.layers.0.self_attn.k_norm.weight",
        "model.layers.0.mlp.gate_proj.weight", "model.layers.1.mlp.gate.weight",
        "model.layers.1.mlp.experts.7.down_proj.weight", "lm_head.weight"})
    EXPECT_TRUE(names.count(n)) << n;
  EXPECT_FALSE(names.count("model.layers.1.mlp.shared_experts.gate_proj.weight"));
  int64_t numel = 0;
  for (const auto& p : (*m)->parameters()) numel += p.numel();
  EXPECT_EQ(count_params((*m)->args()).total, numel);
}

// ---------------------------------------------------------------------------------
// Refusals: every error names the key

void expect_refused(const json& c, const std::string& key, const std::string& why) {
  auto r = args_from_hf_config(c);
  ASSERT_FALSE(r.ok()) << why << ": accepted";
  EXPECT_NE(r.status().message().find(key), std::string::npos)
      << why << ": " << r.status().to_string();
}

TEST_F(HfFamiliesTest, SlidingWindowsAreRefused) {
  json c = golden_config("qwen3_tiny");
  c["use_sliding_window"] = true;
  c["sliding_window"] = 4096;
  c["max_window_layers"] = 1;
  expect_refused(c, "use_sliding_window", "qwen3 window from layer 1");
  expect_refused(c, "max_window_layers", "qwen3 window from layer 1");
  c["max_window_layers"] = 2;  // no layer at or past max_window_layers: full attention
  EXPECT_TRUE(args_from_hf_config(c).ok());
  c.erase("max_window_layers");
  expect_refused(c, "max_window_layers", "qwen3 window without max_window_layers");

  json q2 = golden_config("qwen2_tiny");
  q2["use_sliding_window"] = true;
  q2["max_window_layers"] = 0;
  expect_refused(q2, "use_sliding_window", "qwen2 window");

  json layers = golden_config("qwen3_moe_tiny");
  layers["layer_types"] = {"full_attention", "sliding_attention"};
  expect_refused(layers, "layer_types", "layer_types");

  json mistral = golden_config("llama_tiny");
  mistral["model_type"] = "mistral";
  mistral["sliding_window"] = 4096;
  expect_refused(mistral, "sliding_window", "mistral window");
  mistral["sliding_window"] = nullptr;
  EXPECT_TRUE(args_from_hf_config(mistral).ok());
}

TEST_F(HfFamiliesTest, RopeTypesOtherThanTheSupportedOnesAreRefused) {
  json llama = golden_config("llama3_tiny");
  for (const char* kind : {"dynamic", "linear", "longrope"}) {
    llama["rope_scaling"]["rope_type"] = kind;
    expect_refused(llama, "rope_type", kind);
  }
  llama = golden_config("llama3_tiny");
  llama["rope_scaling"].erase("low_freq_factor");
  expect_refused(llama, "low_freq_factor", "llama3 without low_freq_factor");
  llama = golden_config("llama3_tiny");
  llama["rope_scaling"] = {{"rope_type", "default"}};
  auto plain = args_from_hf_config(llama);
  ASSERT_TRUE(plain.ok()) << plain.status().to_string();
  EXPECT_FALSE(plain->rope_llama3 || plain->yarn());

  json q3 = golden_config("qwen3_tiny");
  q3["rope_scaling"]["factor"] = 2.0;  // max_position_embeddings / original = 4
  expect_refused(q3, "factor", "yarn factor disagreeing with the context ratio");
  for (const char* key : {"mscale", "mscale_all_dim", "attention_factor"}) {
    q3 = golden_config("qwen3_tiny");
    q3["rope_scaling"][key] = 0.707;
    expect_refused(q3, key, key);
  }
  q3 = golden_config("qwen3_tiny");
  q3["partial_rotary_factor"] = 0.5;
  expect_refused(q3, "partial_rotary_factor", "partial rotary");
  q3["rope_scaling"] = nullptr;  // refused without a rope_scaling too
  expect_refused(q3, "partial_rotary_factor", "partial rotary, no rope_scaling");

  json ds = golden_config("deepseek_v3_tiny");
  ds["rope_scaling"]["type"] = "llama3";
  expect_refused(ds, "rope_scaling", "llama3 on DeepSeek");
}

TEST_F(HfFamiliesTest, TransformersFiveRopeParametersAreRead) {
  json c = golden_config("llama3_tiny");
  json rp = c["rope_scaling"];
  rp["rope_theta"] = 123456.0;
  c.erase("rope_scaling");
  c.erase("rope_theta");
  c["rope_parameters"] = rp;
  auto a = args_from_hf_config(c);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->rope_theta, 123456.0);
  EXPECT_TRUE(a->rope_llama3);
}

TEST_F(HfFamiliesTest, UnsupportedSettingsAreRefused) {
  json c = golden_config("qwen3_tiny");
  c.erase("head_dim");
  expect_refused(c, "head_dim", "qwen3 without head_dim");
  c = golden_config("qwen3_tiny");
  c["hidden_act"] = "gelu";
  expect_refused(c, "hidden_act", "gelu");

  json ds = golden_config("deepseek_v3_tiny");
  ds["moe_layer_freq"] = 2;
  expect_refused(ds, "moe_layer_freq", "moe_layer_freq");

  json moe = golden_config("qwen3_moe_tiny");
  moe["shared_expert_intermediate_size"] = 64;
  expect_refused(moe, "shared_expert_intermediate_size", "Qwen2-MoE shared expert");
  moe = golden_config("qwen3_moe_tiny");
  moe["num_experts_per_tok"] = 1;
  expect_refused(moe, "norm_topk_prob", "k = 1 renormalised");
  moe = golden_config("qwen3_moe_tiny");
  moe.erase("num_experts");
  expect_refused(moe, "num_experts", "no num_experts");
}

TEST_F(HfFamiliesTest, Qwen3MoeLayerPatterns) {
  json c = golden_config("qwen3_moe_tiny");
  c["num_hidden_layers"] = 4;
  c["mlp_only_layers"] = json::array();
  c["decoder_sparse_step"] = 2;  // layers 1 and 3 MoE, 2 dense between them
  expect_refused(c, "decoder_sparse_step", "every other layer");
  c["decoder_sparse_step"] = 1;
  c["mlp_only_layers"] = {2};
  expect_refused(c, "mlp_only_layers", "a dense layer after a MoE one");
  c["mlp_only_layers"] = {0, 1};
  auto a = args_from_hf_config(c);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->n_dense_layers, 2);
  c["num_hidden_layers"] = 2;
  c["decoder_sparse_step"] = 2;  // layer 0 dense, layer 1 MoE: expressible
  c["mlp_only_layers"] = nullptr;
  a = args_from_hf_config(c);
  ASSERT_TRUE(a.ok()) << a.status().to_string();
  EXPECT_EQ(a->n_dense_layers, 1);
}

// ---------------------------------------------------------------------------------
// Loading in a dtype

TEST_F(HfFamiliesTest, LoadingInBf16EqualsLoadingInFp32ThenCasting) {
  auto f32 = load_model(golden_dir("qwen3_moe_tiny"));
  ASSERT_TRUE(f32.ok()) << f32.status().to_string();
  LoadOptions lo;
  lo.dtype = torch::kBFloat16;
  auto bf = load_model(golden_dir("qwen3_moe_tiny"), lo);
  ASSERT_TRUE(bf.ok()) << bf.status().to_string();
  auto want = (*f32)->named_parameters();
  for (const auto& p : (*bf)->named_parameters()) {
    ASSERT_EQ(p.value().scalar_type(), torch::kBFloat16) << p.key();
    EXPECT_TRUE(torch::equal(p.value(), want[p.key()].to(torch::kBFloat16))) << p.key();
  }
}

TEST_F(HfFamiliesTest, BuildingInADtypeMatchesCastingAfterwards) {
  ModelArgs a = *preset("nano");
  Transformer f32(a);
  Transformer bf(a, torch::kBFloat16, /*init=*/true);
  auto want = f32->named_parameters();
  for (const auto& p : bf->named_parameters()) {
    ASSERT_EQ(p.value().scalar_type(), torch::kBFloat16) << p.key();
    EXPECT_TRUE(torch::equal(p.value(), want[p.key()].to(torch::kBFloat16))) << p.key();
  }
  for (const auto& b : bf->named_buffers())
    EXPECT_EQ(b.value().scalar_type(), torch::kFloat) << b.key();
}

}  // namespace
}  // namespace r1kit::policy
