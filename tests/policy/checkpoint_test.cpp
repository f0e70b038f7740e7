// Tests of policy/checkpoint: Hugging Face export/import round trips (f32, bf16, sharded,
// MTP, tied and untied GQA), the exact HF tensor names and config.json keys, FP8 block
// dequantisation on import, error statuses that name the culprit, atomic directory
// replacement, and loading the golden HF fixtures (their logits are checked in
// golden_test.cpp).
#include "policy/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "data/prompt_format.h"
#include "data/tokenizer.h"

namespace r1kit::policy {
namespace {
namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    root_ = fs::path(::testing::TempDir()) /
            fmt::format("r1kit_ckpt_{}_{}_{}", info->test_suite_name(), info->name(), ::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  std::string path(const std::string& name) const { return (root_ / name).string(); }

  fs::path root_;
};

ModelArgs nano_mtp() {
  ModelArgs a = *preset("nano");
  a.n_mtp_layers = 1;
  return a;
}

// Llama-style GQA: untied, no biases, 2 KV heads for 4 query heads.
ModelArgs llama_gqa() {
  ModelArgs a = *preset("tiny-dense", /*vocab_size=*/256);
  a.model_type = "llama";
  a.dim = 64;
  a.n_layers = 2;
  a.n_heads = 4;
  a.n_kv_heads = 2;
  a.head_dim = 16;
  a.inter_dim = 96;
  a.tie_embeddings = false;
  a.qkv_bias = false;
  a.o_bias = false;
  return a;
}

// init_weights(seed), then every norm, bias and buffer perturbed so that none of them is
// a constant a broken loader could reproduce by accident (correction biases non-zero).
Transformer make_model(const ModelArgs& args, uint64_t seed) {
  Transformer m(args);
  m->init_weights(seed);
  torch::NoGradGuard ng;
  auto gen = at::detail::createCPUGenerator(seed + 1000);
  for (auto& p : m->named_parameters()) {
    const std::string& n = p.key();
    if (n.find("norm") != std::string::npos || n.find(".bias") != std::string::npos)
      p.value().add_(torch::randn(p.value().sizes(), gen, torch::kFloat) * 0.1);
  }
  for (auto& b : m->named_buffers())
    b.value().copy_(torch::randn(b.value().sizes(), gen, torch::kFloat) * 0.1);
  return m;
}

std::map<std::string, torch::Tensor> state_of(TransformerImpl& m) {
  std::map<std::string, torch::Tensor> s;
  for (const auto& p : m.named_parameters()) s[p.key()] = p.value();
  for (const auto& b : m.named_buffers()) s[b.key()] = b.value();
  return s;
}

// Every parameter and buffer has the same name, dtype, shape and bits.
void expect_same_state(TransformerImpl& a, TransformerImpl& b) {
  auto sa = state_of(a), sb = state_of(b);
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [name, ta] : sa) {
    auto it = sb.find(name);
    ASSERT_NE(it, sb.end()) << name;
    const torch::Tensor& tb = it->second;
    ASSERT_EQ(ta.scalar_type(), tb.scalar_type()) << name;
    ASSERT_EQ(ta.sizes(), tb.sizes()) << name;
    // Bitwise: compare the raw 32-bit patterns (all weights here are f32).
    EXPECT_TRUE(torch::equal(ta.contiguous().view(torch::kInt), tb.contiguous().view(torch::kInt)))
        << name;
  }
}

torch::Tensor logits_of(TransformerImpl& m, uint64_t seed = 7) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto ids = torch::randint(m.args().vocab_size, {2, 5}, gen, torch::kLong);
  m.eval();
  torch::NoGradGuard ng;
  return m.forward(ids).logits;
}

std::set<std::string> file_tensor_names(const std::string& dir) {
  auto ckpt = SafetensorsCheckpoint::open_dir(dir);
  EXPECT_TRUE(ckpt.ok()) << ckpt.status().to_string();
  if (!ckpt.ok()) return {};
  auto names = ckpt->names();
  return {names.begin(), names.end()};
}

nlohmann::json read_json(const std::string& path) {
  auto text = read_file(path);
  EXPECT_TRUE(text.ok()) << text.status().to_string();
  return text.ok() ? nlohmann::json::parse(*text) : nlohmann::json();
}

// Writes `tensors` as the only weights file of `dir` (config.json kept).
void rewrite_weights(const std::string& dir,
                     const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     const std::map<std::string, SafeDType>& dtype_override = {}) {
  Status st = write_sharded(dir, tensors, /*max_shard_bytes=*/1LL << 40, {{"format", "pt"}},
                            dtype_override);
  ASSERT_TRUE(st.ok()) << st.to_string();
}

bool has_tmp_sibling(const fs::path& dir) {
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().find(".tmp.") != std::string::npos) return true;
  return false;
}

// ---------------------------------------------------------------------------------
// Round trips

void expect_round_trip(const ModelArgs& args, const std::string& dir) {
  Transformer m = make_model(args, /*seed=*/11);
  Status st = save_model(*m, dir);
  ASSERT_TRUE(st.ok()) << st.to_string();
  auto loaded = load_model(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  const ModelArgs& b = (*loaded)->args();
  EXPECT_EQ(b.model_type, args.model_type);
  EXPECT_EQ(b.attention, args.attention);
  EXPECT_EQ(b.tie_embeddings, args.tie_embeddings);
  EXPECT_EQ(b.n_mtp_layers, args.n_mtp_layers);
  EXPECT_EQ(b.qkv_bias, args.qkv_bias);
  expect_same_state(*m, **loaded);
  EXPECT_TRUE(torch::equal(logits_of(*m), logits_of(**loaded)));
}

TEST_F(CheckpointTest, RoundTripNanoWithMtpAndCorrectionBias) {
  ModelArgs a = nano_mtp();
  ASSERT_TRUE(a.validate().ok());
  Transformer m = make_model(a, 11);
  // The correction biases really are non-zero (the round trip must carry them).
  int n_bias = 0;
  for (const auto& b : m->named_buffers())
    if (b.key().find("e_score_correction_bias") != std::string::npos) {
      ++n_bias;
      EXPECT_GT(b.value().abs().min().item<float>(), 0.0f) << b.key();
    }
  EXPECT_EQ(n_bias, 2);  // layer 1 and the MTP block
  expect_round_trip(a, path("nano"));
}

TEST_F(CheckpointTest, RoundTripTinyDenseTiedWithQkvBias) {
  ModelArgs a = *preset("tiny-dense");
  ASSERT_TRUE(a.tie_embeddings);
  ASSERT_TRUE(a.qkv_bias);
  expect_round_trip(a, path("dense"));
}

TEST_F(CheckpointTest, RoundTripLlamaGqaUntied) {
  ModelArgs a = llama_gqa();
  ASSERT_TRUE(a.validate().ok());
  expect_round_trip(a, path("llama"));
}

TEST_F(CheckpointTest, RoundTripIntoTrailingSlashPath) {
  Transformer m = make_model(*preset("nano"), 3);
  const std::string dir = path("slash") + "/";
  for (int i = 0; i < 2; ++i) {  // new directory, then over an existing one
    Status st = save_model(*m, dir);
    ASSERT_TRUE(st.ok()) << i << ": " << st.to_string();
  }
  EXPECT_FALSE(has_tmp_sibling(root_));
  EXPECT_FALSE(has_tmp_sibling(path("slash")));
  auto loaded = load_model(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  expect_same_state(*m, **loaded);
}

TEST_F(CheckpointTest, Bf16SaveWritesBf16ExceptCorrectionBias) {
  Transformer m = make_model(nano_mtp(), 5);
  SaveOptions so;
  so.dtype = torch::kBFloat16;
  const std::string dir = path("bf16");
  Status st = save_model(*m, dir, so);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_EQ(read_json(dir + "/config.json")["torch_dtype"], "bfloat16");

  auto file = SafetensorsFile::open(dir + "/model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().to_string();
  int n_f32 = 0;
  for (const auto& info : (*file)->tensors()) {
    const bool bias = info.name.find("e_score_correction_bias") != std::string::npos;
    n_f32 += bias;
    EXPECT_EQ(safe_dtype_name(info.dtype), bias ? "F32" : "BF16") << info.name;
  }
  EXPECT_EQ(n_f32, 2);

  auto loaded = load_model(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  auto want = state_of(*m), got = state_of(**loaded);
  ASSERT_EQ(want.size(), got.size());
  int n_rounded = 0;
  for (const auto& [name, w] : want) {
    const torch::Tensor& g = got.at(name);
    EXPECT_EQ(g.scalar_type(), torch::kFloat) << name;
    const bool bias = name.find("e_score_correction_bias") != std::string::npos;
    auto expect = bias ? w : w.to(torch::kBFloat16).to(torch::kFloat);
    EXPECT_TRUE(torch::equal(g, expect)) << name;
    n_rounded += !torch::equal(g, w);
  }
  EXPECT_GT(n_rounded, 0);  // bf16 rounding really happened

  // Loading in bf16 keeps the correction biases in fp32.
  LoadOptions lo;
  lo.dtype = torch::kBFloat16;
  auto bf = load_model(dir, lo);
  ASSERT_TRUE(bf.ok()) << bf.status().to_string();
  for (const auto& p : (*bf)->named_parameters())
    EXPECT_EQ(p.value().scalar_type(), torch::kBFloat16) << p.key();
  for (const auto& b : (*bf)->named_buffers()) {
    EXPECT_EQ(b.value().scalar_type(), torch::kFloat) << b.key();
    EXPECT_TRUE(torch::equal(b.value(), want.at(b.key()))) << b.key();
  }
}

// ---------------------------------------------------------------------------------
// Layout: config.json and HF tensor names

TEST_F(CheckpointTest, WritesHuggingFaceConfigAndNames) {
  ModelArgs a = nano_mtp();
  Transformer m = make_model(a, 1);
  const std::string dir = path("hf");
  ASSERT_TRUE(save_model(*m, dir).ok());

  nlohmann::json c = read_json(dir + "/config.json");
  EXPECT_EQ(c["model_type"], "deepseek_v3");
  EXPECT_EQ(c["hidden_size"], a.dim);
  EXPECT_EQ(c["num_hidden_layers"], a.n_layers);
  EXPECT_EQ(c["num_attention_heads"], a.n_heads);
  EXPECT_EQ(c["vocab_size"], a.vocab_size);
  EXPECT_EQ(c["kv_lora_rank"], a.kv_lora_rank);
  EXPECT_EQ(c["n_routed_experts"], a.n_routed_experts);
  EXPECT_EQ(c["num_nextn_predict_layers"], 1);
  EXPECT_EQ(c["tie_word_embeddings"], false);
  EXPECT_EQ(c["torch_dtype"], "float32");

  const std::set<std::string> names = file_tensor_names(dir);
  const int64_t L = a.n_layers;  // the MTP depth is layer L
  for (const std::string& want : {
           std::string("model.embed_tokens.weight"),
           std::string("model.norm.weight"),
           std::string("lm_head.weight"),
           std::string("model.layers.0.input_layernorm.weight"),
           std::string("model.layers.0.self_attn.kv_a_proj_with_mqa.weight"),
           std::string("model.layers.0.self_attn.kv_b_proj.weight"),
           std::string("model.layers.0.mlp.gate_proj.weight"),
           std::string("model.layers.1.mlp.experts.0.gate_proj.weight"),
           std::string("model.layers.1.mlp.experts.3.down_proj.weight"),
           std::string("model.layers.1.mlp.shared_experts.up_proj.weight"),
           std::string("model.layers.1.mlp.gate.weight"),
           std::string("model.layers.1.mlp.gate.e_score_correction_bias"),
           fmt::format("model.layers.{}.enorm.weight", L),
           fmt::format("model.layers.{}.hnorm.weight", L),
           fmt::format("model.layers.{}.eh_proj.weight", L),
           fmt::format("model.layers.{}.self_attn.kv_a_proj_with_mqa.weight", L),
           fmt::format("model.layers.{}.input_layernorm.weight", L),
           fmt::format("model.layers.{}.shared_head.norm.weight", L),
           fmt::format("model.layers.{}.embed_tokens.weight", L),
           fmt::format("model.layers.{}.shared_head.head.weight", L),
       })
    EXPECT_TRUE(names.count(want)) << want;

  // Exactly the HF names of the model's tensors, plus the two MTP copies.
  std::set<std::string> expected = {fmt::format("model.layers.{}.embed_tokens.weight", L),
                                    fmt::format("model.layers.{}.shared_head.head.weight", L)};
  for (const auto& [native, t] : state_of(*m)) expected.insert(to_hf_name(native, a));
  EXPECT_EQ(names, expected);
  for (const auto& n : names) {
    EXPECT_TRUE(n.rfind("model.", 0) == 0 || n == "lm_head.weight") << n;
    EXPECT_EQ(n.find("mtp."), std::string::npos) << n;
    EXPECT_EQ(n.find("block."), std::string::npos) << n;
  }

  // The MTP copies hold the shared embedding and head.
  auto ckpt = SafetensorsCheckpoint::open_dir(dir);
  ASSERT_TRUE(ckpt.ok());
  EXPECT_TRUE(torch::equal(*ckpt->load(fmt::format("model.layers.{}.embed_tokens.weight", L)),
                           m->embed_tokens->weight));
  EXPECT_TRUE(torch::equal(*ckpt->load(fmt::format("model.layers.{}.shared_head.head.weight", L)),
                           m->lm_head->weight));
}

TEST_F(CheckpointTest, TiedModelHasNoLmHead) {
  ModelArgs a = llama_gqa();
  a.model_type = "qwen2";
  a.tie_embeddings = true;
  a.qkv_bias = true;
  Transformer m = make_model(a, 2);
  const std::string dir = path("tied");
  ASSERT_TRUE(save_model(*m, dir).ok());
  nlohmann::json c = read_json(dir + "/config.json");
  EXPECT_EQ(c["model_type"], "qwen2");
  EXPECT_EQ(c["tie_word_embeddings"], true);
  EXPECT_EQ(c["num_key_value_heads"], 2);
  const auto names = file_tensor_names(dir);
  EXPECT_EQ(names.count("lm_head.weight"), 0u);
  EXPECT_EQ(names.count("model.embed_tokens.weight"), 1u);
  EXPECT_EQ(names.count("model.layers.1.self_attn.k_proj.bias"), 1u);
  EXPECT_EQ(names.count("model.layers.1.self_attn.o_proj.bias"), 0u);
}

TEST_F(CheckpointTest, HfNamesRoundTrip) {
  for (const ModelArgs& a : {nano_mtp(), *preset("tiny-dense"), llama_gqa()}) {
    Transformer m(a);
    for (const auto& [native, t] : state_of(*m)) {
      const std::string hf = to_hf_name(native, a);
      auto back = from_hf_name(hf, a);
      ASSERT_TRUE(back.ok()) << hf << ": " << back.status().to_string();
      EXPECT_EQ(*back, native) << hf;
    }
  }
  const ModelArgs a = nano_mtp();
  // Hand-written cases (docs/model.md, "Tensor names").
  EXPECT_EQ(to_hf_name("embed_tokens.weight", a), "model.embed_tokens.weight");
  EXPECT_EQ(to_hf_name("lm_head.weight", a), "lm_head.weight");
  EXPECT_EQ(to_hf_name("mtp.0.block.mlp.experts.1.up_proj.weight", a),
            "model.layers.2.mlp.experts.1.up_proj.weight");
  EXPECT_EQ(to_hf_name("mtp.0.shared_head.norm.weight", a),
            "model.layers.2.shared_head.norm.weight");
  EXPECT_EQ(*from_hf_name("model.layers.2.eh_proj.weight", a), "mtp.0.eh_proj.weight");
  EXPECT_EQ(*from_hf_name("model.layers.2.self_attn.o_proj.weight", a),
            "mtp.0.block.self_attn.o_proj.weight");
  // Deliberately ignored: the MTP copies and rotary buffers.
  EXPECT_EQ(*from_hf_name("model.layers.2.embed_tokens.weight", a), "");
  EXPECT_EQ(*from_hf_name("model.layers.2.shared_head.head.weight", a), "");
  EXPECT_EQ(*from_hf_name("model.layers.0.self_attn.rotary_emb.inv_freq", a), "");
  // Not part of the model.
  EXPECT_FALSE(from_hf_name("model.layers.3.eh_proj.weight", a).ok());
  EXPECT_FALSE(from_hf_name("transformer.h.0.attn.weight", a).ok());
  EXPECT_FALSE(from_hf_name("model.layers.x.mlp.weight", a).ok());
  EXPECT_FALSE(from_hf_name("model.layers.0", a).ok());
}

TEST_F(CheckpointTest, ShardedSaveLoadsBackIdentically) {
  Transformer m = make_model(nano_mtp(), 9);
  SaveOptions so;
  so.max_shard_bytes = 20000;
  const std::string dir = path("sharded");
  Status st = save_model(*m, dir, so);
  ASSERT_TRUE(st.ok()) << st.to_string();
  EXPECT_TRUE(fs::exists(dir + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir + "/model.safetensors"));
  int shards = 0;
  for (const auto& e : fs::directory_iterator(dir))
    shards += e.path().extension() == ".safetensors";
  EXPECT_GE(shards, 3);
  nlohmann::json index = read_json(dir + "/model.safetensors.index.json");
  std::set<std::string> files;
  for (const auto& [name, file] : index["weight_map"].items())
    files.insert(file.get<std::string>());
  EXPECT_EQ(static_cast<int>(files.size()), shards);
  EXPECT_EQ(index["weight_map"].size(), file_tensor_names(dir).size());

  auto loaded = load_model(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  expect_same_state(*m, **loaded);
  EXPECT_TRUE(torch::equal(logits_of(*m), logits_of(**loaded)));
}

TEST_F(CheckpointTest, TokenizerIsCopied) {
  Transformer m = make_model(*preset("nano"), 4);
  const std::string tok = path("tok.model");
  ASSERT_TRUE(write_file_atomic(tok, std::string_view("\x0a\x03spm\x00bytes", 11)).ok());
  SaveOptions so;
  so.tokenizer_path = tok;
  ASSERT_TRUE(save_model(*m, path("with_tok"), so).ok());
  auto copied = read_file(path("with_tok") + "/tokenizer.model");
  ASSERT_TRUE(copied.ok());
  EXPECT_EQ(*copied, std::string("\x0a\x03spm\x00bytes", 11));

  so.tokenizer_path = path("no_such.model");
  Status st = save_model(*m, path("bad_tok"), so);
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("no_such.model"), std::string::npos) << st.to_string();
  EXPECT_FALSE(fs::exists(path("bad_tok")));
  EXPECT_FALSE(has_tmp_sibling(root_));
}

// A tokenizer.json tokenizer travels as tokenizer.json + tokenizer_config.json, byte for
// byte, whether given as the file or as its directory; the checkpoint reloads with it.
TEST_F(CheckpointTest, HfTokenizerFilesAreCopied) {
  Transformer m = make_model(*preset("nano"), 4);
  fs::create_directories(path("hf"));
  const std::string json_text = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                                    "added_tokens": [{"id": 1, "content": "<e>", "special": true}]})";
  const std::string config = R"({"eos_token": "<e>"})";
  ASSERT_TRUE(write_file_atomic(path("hf") + "/tokenizer.json", json_text).ok());
  ASSERT_TRUE(write_file_atomic(path("hf") + "/tokenizer_config.json", config).ok());
  for (const std::string& source : {path("hf") + "/tokenizer.json", path("hf")}) {
    SaveOptions so;
    so.tokenizer_path = source;
    const std::string out = path("with_hf");
    ASSERT_TRUE(save_model(*m, out, so).ok());
    EXPECT_EQ(*read_file(out + "/tokenizer.json"), json_text);
    EXPECT_EQ(*read_file(out + "/tokenizer_config.json"), config);
    EXPECT_FALSE(fs::exists(out + "/tokenizer.model"));
    auto tok = data::Tokenizer::load(out);
    ASSERT_TRUE(tok.ok()) << tok.status().to_string();
    EXPECT_EQ(tok->eos_id(), 1);
    fs::remove_all(out);
  }
}

// A model saved with its prompt format records it in tokenizer_config.json: added to
// a copied Hugging Face config (whose own keys stay byte for byte), or written fresh
// beside a SentencePiece tokenizer; the tokenizer still loads.
TEST_F(CheckpointTest, PromptFormatIsRecordedInTokenizerConfig) {
  Transformer m = make_model(*preset("nano"), 4);
  fs::create_directories(path("hf_pf"));
  const std::string json_text = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                                    "added_tokens": [{"id": 1, "content": "<e>", "special": true}]})";
  const std::string config =
      R"({"eos_token": "<e>", "model_max_length": 1000000000000000019884624838656})";
  ASSERT_TRUE(write_file_atomic(path("hf_pf") + "/tokenizer.json", json_text).ok());
  ASSERT_TRUE(write_file_atomic(path("hf_pf") + "/tokenizer_config.json", config).ok());
  SaveOptions so;
  so.tokenizer_path = path("hf_pf");
  so.prompt_format = data::PromptFormat{"plain", false, "", nlohmann::json{{"name", "arithmetic"}}};
  ASSERT_TRUE(save_model(*m, path("out_pf"), so).ok());
  const std::string written = *read_file(path("out_pf") + "/tokenizer_config.json");
  EXPECT_EQ(written.substr(0, config.size() - 1), config.substr(0, config.size() - 1)) << written;
  auto rec = data::read_prompt_format(path("out_pf"));
  ASSERT_TRUE(rec.ok() && rec->has_value()) << rec.status().to_string();
  EXPECT_EQ((*rec)->chat_template, "plain");
  EXPECT_EQ((*rec)->task["name"], "arithmetic");
  auto tok = data::Tokenizer::load(path("out_pf"));
  ASSERT_TRUE(tok.ok()) << tok.status().to_string();
  EXPECT_EQ(tok->eos_id(), 1);

  const std::string spm = path("pf_tok.model");
  ASSERT_TRUE(write_file_atomic(spm, std::string_view("\x0a\x03spm\x00bytes", 11)).ok());
  so.tokenizer_path = spm;
  so.prompt_format = data::PromptFormat{"r1_zero", true, "", nlohmann::json()};
  ASSERT_TRUE(save_model(*m, path("out_spm"), so).ok());
  rec = data::read_prompt_format(path("out_spm"));
  ASSERT_TRUE(rec.ok() && rec->has_value()) << rec.status().to_string();
  EXPECT_EQ((*rec)->chat_template, "r1_zero");
  EXPECT_TRUE((*rec)->prefill_think);
  const auto j = nlohmann::json::parse(*read_file(path("out_spm") + "/tokenizer_config.json"));
  EXPECT_EQ(j["chat_template"],
            *data::builtin_chat_template_jinja(data::ChatTemplateKind::kR1Zero, true));
}

// ---------------------------------------------------------------------------------
// FP8 import

TEST_F(CheckpointTest, Fp8WeightsAreDequantisedOnImport) {
  const ModelArgs a = *preset("nano");
  Transformer m = make_model(a, 21);
  const std::string dir = path("fp8");
  ASSERT_TRUE(save_model(*m, dir).ok());

  auto tensors = export_tensors(*m, torch::kFloat);
  std::map<std::string, SafeDType> overrides;
  std::map<std::string, torch::Tensor> expected;  // HF name -> dequantised value
  // gate_proj is one 128x64 block; lm_head [512, 64] spans four row blocks.
  const std::vector<std::string> fp8_names = {"model.layers.0.mlp.gate_proj.weight",
                                              "lm_head.weight"};
  std::vector<std::pair<std::string, torch::Tensor>> scales;
  for (auto& [name, t] : tensors) {
    if (std::find(fp8_names.begin(), fp8_names.end(), name) == fp8_names.end()) continue;
    const int64_t rows = t.size(0), cols = t.size(1), kB = 128;
    const int64_t br = (rows + kB - 1) / kB, bc = (cols + kB - 1) / kB;
    auto w = t.contiguous();
    auto scale = torch::empty({br, bc}, torch::kFloat);
    auto codes = torch::empty({rows, cols}, torch::kUInt8);
    auto deq = torch::empty({rows, cols}, torch::kFloat);
    auto wa = w.accessor<float, 2>();
    auto sa = scale.accessor<float, 2>();
    auto ca = codes.accessor<uint8_t, 2>();
    auto da = deq.accessor<float, 2>();
    for (int64_t bi = 0; bi < br; ++bi)
      for (int64_t bj = 0; bj < bc; ++bj) {
        float amax = 0.0f;
        for (int64_t i = bi * kB; i < std::min(rows, (bi + 1) * kB); ++i)
          for (int64_t j = bj * kB; j < std::min(cols, (bj + 1) * kB); ++j)
            amax = std::max(amax, std::fabs(wa[i][j]));
        // Distinct per-block scales, so a wrong block index changes the result.
        sa[bi][bj] = amax / 448.0f * (1.0f + 0.25f * static_cast<float>(bi));
      }
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        const float s = sa[i / kB][j / kB];
        ca[i][j] = float_to_fp8_e4m3(wa[i][j] / s);
        da[i][j] = fp8_e4m3_to_float(ca[i][j]) * s;
      }
    expected[name] = deq;
    EXPECT_FALSE(torch::equal(deq, w)) << name;  // quantisation is lossy here
    t = codes;
    overrides[name] = SafeDType::kF8_E4M3;
    scales.emplace_back(name + std::string(kScaleInvSuffix), scale);
  }
  ASSERT_EQ(expected.size(), 2u);
  for (auto& s : scales) tensors.push_back(s);
  rewrite_weights(dir, tensors, overrides);
  {
    auto f = SafetensorsFile::open(dir + "/model.safetensors");
    ASSERT_TRUE(f.ok());
    ASSERT_NE((*f)->find("lm_head.weight"), nullptr);
    EXPECT_EQ((*f)->find("lm_head.weight")->dtype, SafeDType::kF8_E4M3);
  }

  auto loaded = load_model(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status().to_string();
  auto got = state_of(**loaded), want = state_of(*m);
  for (const auto& [native, w] : want) {
    const std::string hf = to_hf_name(native, a);
    auto e = expected.find(hf);
    EXPECT_TRUE(torch::equal(got.at(native), e == expected.end() ? w : e->second)) << hf;
  }
}

// ---------------------------------------------------------------------------------
// Errors: a non-ok Status naming the culprit

// Saves a nano model into `dir` and returns its exported (HF-named) tensors.
std::vector<std::pair<std::string, torch::Tensor>> save_nano(const std::string& dir) {
  Transformer m = make_model(*preset("nano"), 31);
  Status st = save_model(*m, dir);
  EXPECT_TRUE(st.ok()) << st.to_string();
  return export_tensors(*m, torch::kFloat);
}

bool mentions(const Status& st, const std::string& what) {
  return st.message().find(what) != std::string::npos;
}

TEST_F(CheckpointTest, ConfigErrors) {
  const std::string dir = path("cfg");
  save_nano(dir);

  nlohmann::json c = read_json(dir + "/config.json");
  c["model_type"] = "gpt2";
  ASSERT_TRUE(write_file_atomic(dir + "/config.json", c.dump()).ok());
  auto r = load_model(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(mentions(r.status(), "gpt2")) << r.status().to_string();

  ASSERT_TRUE(write_file_atomic(dir + "/config.json", std::string_view("{\"model_type\": ")).ok());
  r = load_model(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(mentions(r.status(), "config.json")) << r.status().to_string();
  EXPECT_TRUE(mentions(r.status(), "JSON")) << r.status().to_string();

  fs::remove(dir + "/config.json");
  r = load_model(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().to_string();
  EXPECT_TRUE(mentions(r.status(), "config.json")) << r.status().to_string();

  r = load_model(path("no_such_dir"));
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(mentions(r.status(), "no_such_dir")) << r.status().to_string();
}

TEST_F(CheckpointTest, MissingTensorIsNamed) {
  const std::string dir = path("missing");
  auto tensors = save_nano(dir);
  const std::string gone = "model.layers.1.mlp.experts.0.gate_proj.weight";
  std::erase_if(tensors, [&](const auto& p) { return p.first == gone; });
  rewrite_weights(dir, tensors);
  auto r = load_model(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound) << r.status().to_string();
  EXPECT_TRUE(mentions(r.status(), gone)) << r.status().to_string();
}

TEST_F(CheckpointTest, WrongShapeIsNamedWithBothShapes) {
  const std::string dir = path("shape");
  auto tensors = save_nano(dir);
  for (auto& [name, t] : tensors)
    if (name == "model.layers.0.self_attn.kv_b_proj.weight") t = torch::zeros({t.size(0), 33});
  rewrite_weights(dir, tensors);
  auto r = load_model(dir);
  ASSERT_FALSE(r.ok());
  const std::string msg = r.status().message();
  EXPECT_TRUE(mentions(r.status(), "model.layers.0.self_attn.kv_b_proj.weight")) << msg;
  const ModelArgs a = *preset("nano");
  const int64_t rows = a.n_heads * (a.qk_nope_head_dim + a.v_head_dim);
  EXPECT_TRUE(mentions(r.status(), fmt::format("{}x33", rows))) << msg;
  EXPECT_TRUE(mentions(r.status(), fmt::format("{}x{}", rows, a.kv_lora_rank))) << msg;
}

TEST_F(CheckpointTest, ExtraTensorStrictVersusLenient) {
  const std::string dir = path("extra");
  auto tensors = save_nano(dir);
  auto clean = load_model(dir);
  ASSERT_TRUE(clean.ok());
  for (const std::string extra :
       {"model.layers.0.self_attn.extra_proj.weight", "vision.proj.weight"}) {
    auto with_extra = tensors;
    with_extra.emplace_back(extra, torch::ones({3, 4}));
    rewrite_weights(dir, with_extra);
    auto r = load_model(dir);
    ASSERT_FALSE(r.ok()) << extra;
    EXPECT_TRUE(mentions(r.status(), extra)) << r.status().to_string();

    LoadOptions lo;
    lo.strict = false;
    auto lenient = load_model(dir, lo);
    ASSERT_TRUE(lenient.ok()) << lenient.status().to_string();
    expect_same_state(**clean, **lenient);
  }
}

TEST_F(CheckpointTest, TruncatedWeightsAreDataLoss) {
  const std::string dir = path("trunc");
  save_nano(dir);
  const std::string file = dir + "/model.safetensors";
  fs::resize_file(file, fs::file_size(file) / 2);
  auto r = load_model(dir);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << r.status().to_string();
  EXPECT_TRUE(mentions(r.status(), "model.safetensors")) << r.status().to_string();
}

TEST_F(CheckpointTest, SaveUnderAFileFails) {
  Transformer m = make_model(*preset("nano"), 1);
  ASSERT_TRUE(write_file_atomic(path("blocker"), std::string_view("x")).ok());
  Status st = save_model(*m, path("blocker") + "/ckpt");
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(mentions(st, "blocker")) << st.to_string();
  EXPECT_TRUE(fs::is_regular_file(path("blocker")));
  EXPECT_FALSE(has_tmp_sibling(root_));

  // Nor is an existing file replaced by a checkpoint directory.
  st = save_model(*m, path("blocker"));
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(mentions(st, "blocker")) << st.to_string();
  EXPECT_TRUE(fs::is_regular_file(path("blocker")));
  EXPECT_FALSE(has_tmp_sibling(root_));
}

TEST_F(CheckpointTest, BadLoadDtypeIsAnError) {
  const std::string dir = path("dtype");
  save_nano(dir);
  LoadOptions lo;
  lo.dtype = torch::kInt;
  auto r = load_model(dir, lo);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(mentions(r.status(), "dtype")) << r.status().to_string();
}

// ---------------------------------------------------------------------------------
// Atomic replacement

TEST_F(CheckpointTest, SaveReplacesTheDirectoryAtomically) {
  const std::string dir = path("ckpt");
  Transformer a = make_model(*preset("nano"), 1);
  Transformer b = make_model(*preset("nano"), 2);
  ASSERT_TRUE(save_model(*a, dir).ok());
  ASSERT_TRUE(write_file_atomic(dir + "/stale.txt", std::string_view("old")).ok());
  ASSERT_TRUE(save_model(*b, dir).ok());
  EXPECT_FALSE(fs::exists(dir + "/stale.txt"));
  auto r = load_model(dir);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_state(*b, **r);

  // A failed save leaves the old checkpoint as it was, and no temporaries.
  SaveOptions bad;
  bad.dtype = torch::kInt;
  Status st = save_model(*a, dir, bad);
  ASSERT_FALSE(st.ok());
  EXPECT_TRUE(mentions(st, "dtype")) << st.to_string();
  r = load_model(dir);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_state(*b, **r);
  EXPECT_FALSE(has_tmp_sibling(root_));

  // So does one that fails midway (here: writing shards with a bad shard size).
  bad = SaveOptions();
  bad.max_shard_bytes = 0;
  ASSERT_FALSE(save_model(*a, dir, bad).ok());
  r = load_model(dir);
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  expect_same_state(*b, **r);
  EXPECT_FALSE(has_tmp_sibling(root_));
}

// ---------------------------------------------------------------------------------
// Golden HF fixtures load (their logits are checked in golden_test.cpp)

TEST_F(CheckpointTest, GoldenFixturesLoad) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(fs::path(R1KIT_TESTDATA) / "golden")) {
    if (!e.is_directory()) continue;
    ++n;
    auto r = load_model(e.path().string());
    EXPECT_TRUE(r.ok()) << e.path() << ": " << r.status().to_string();
  }
  EXPECT_EQ(n, 7);
}

}  // namespace
}  // namespace r1kit::policy
