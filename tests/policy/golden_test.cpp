// Golden logits: r1kit's forward pass against an independent fp64 implementation
// written from the equations (tests/golden/make_golden.py), on tiny Hugging Face
// checkpoints of seven families: DeepSeek-V3 (sigmoid gate, groups, correction bias,
// query LoRA, YaRN, MTP), DeepSeek-V2 (softmax gate, direct query, V2 scaling rule),
// Qwen2 (GQA, q/k/v bias, tied), Llama (GQA, untied, head_dim from config), Qwen3 (q/k
// norm, head_dim independent of hidden_size, tied, half-split YaRN), Qwen3-MoE (softmax
// gate renormalised, no shared expert, mlp_only_layers) and Llama 3 (llama3 rope_scaling).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "policy/checkpoint.h"

namespace r1kit::policy {
namespace {

struct Golden {
  torch::Tensor ids;         // [1, T]
  torch::Tensor logits;      // [T, V] float64
  torch::Tensor mtp_logits;  // [T-1, V] float64 or undefined
};

torch::Tensor rows_to_tensor(const nlohmann::json& rows) {
  std::vector<double> flat;
  for (const auto& r : rows)
    for (const auto& v : r) flat.push_back(v.get<double>());
  return torch::tensor(flat, torch::kDouble).view({static_cast<int64_t>(rows.size()), -1});
}

Golden read_golden(const std::string& dir) {
  auto text = read_file(dir + "/expected.json");
  EXPECT_TRUE(text.ok()) << text.status().to_string();
  auto j = nlohmann::json::parse(*text);
  Golden g;
  g.ids = torch::tensor(j["input_ids"].get<std::vector<int64_t>>(), torch::kLong).unsqueeze(0);
  g.logits = rows_to_tensor(j["logits"]);
  if (j.contains("mtp_logits")) g.mtp_logits = rows_to_tensor(j["mtp_logits"]);
  return g;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, LogitsMatchTheIndependentImplementation) {
  const std::string dir = std::string(R1KIT_TESTDATA) + "/golden/" + GetParam();
  auto model = load_model(dir);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  Golden g = read_golden(dir);
  (*model)->eval();
  torch::NoGradGuard ng;
  for (AttnImpl impl : {AttnImpl::kNaive, AttnImpl::kAbsorb}) {
    if (impl == AttnImpl::kAbsorb && (*model)->args().attention != AttentionKind::kMLA) continue;
    ForwardOptions o;
    o.attn_impl = impl;
    auto out = (*model)->forward(g.ids, o);
    auto got = out.logits[0].to(torch::kDouble);
    ASSERT_EQ(got.sizes(), g.logits.sizes());
    const double err = (got - g.logits).abs().max().item<double>();
    std::printf("%s %s: max |logit error| %.3g\n", GetParam().c_str(),
                impl == AttnImpl::kAbsorb ? "absorbed" : "naive", err);
    EXPECT_LT(err, 1e-4) << GetParam() << (impl == AttnImpl::kAbsorb ? " absorbed" : " naive");
    if (g.mtp_logits.defined()) {
      auto mtp = (*model)->mtp_logits(g.ids, out.last_hidden);
      ASSERT_EQ(mtp.size(), 1u);
      const double mtp_err =
          (mtp[0][0].to(torch::kDouble) - g.mtp_logits).abs().max().item<double>();
      std::printf("%s MTP: max |logit error| %.3g\n", GetParam().c_str(), mtp_err);
      EXPECT_LT(mtp_err, 1e-4) << GetParam() << " MTP";
    }
  }
}

TEST_P(GoldenTest, CachedDecodeMatchesToo) {
  const std::string dir = std::string(R1KIT_TESTDATA) + "/golden/" + GetParam();
  auto model = load_model(dir);
  ASSERT_TRUE(model.ok()) << model.status().to_string();
  Golden g = read_golden(dir);
  (*model)->eval();
  torch::NoGradGuard ng;
  const int64_t T = g.ids.size(1);
  KVCache cache = KVCache::allocate((*model)->args(), 1, T, torch::kFloat);
  ForwardOptions o;
  o.cache = &cache;
  for (int64_t t = 0; t < T; ++t) {
    o.start_pos = t;
    auto step = (*model)->forward(g.ids.narrow(1, t, 1), o).logits[0][0].to(torch::kDouble);
    EXPECT_LT((step - g.logits[t]).abs().max().item<double>(), 1e-4) << "position " << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Families, GoldenTest,
                         ::testing::Values("deepseek_v3_tiny", "deepseek_v2_tiny", "qwen2_tiny",
                                           "llama_tiny", "qwen3_tiny", "qwen3_moe_tiny",
                                           "llama3_tiny"));

}  // namespace
}  // namespace r1kit::policy
