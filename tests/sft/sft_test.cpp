// SFT data and loss: the response-only loss mask, packing equal to padding, gradient
// accumulation equal to one large batch, and JSONL errors that name the line.
#include "sft/sft.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/rng.h"
#include "core/torch_compat.h"
#include "tests/temp_dir.h"
#include "train/checkpoint.h"

namespace r1kit::sft {
namespace {

SftSample sample(std::vector<int64_t> ids, int64_t n_prompt) {
  return {std::move(ids), n_prompt};
}

TEST(SftDataTest, LossMaskCoversResponseTargetsOnly) {
  // ids 10 11 | 12 13 14: positions 1..3 predict 12, 13, 14 (the response).
  SftSample s = sample({10, 11, 12, 13, 14}, 2);
  SftSample t = sample({20, 21, 22}, 1);  // position 0, 1 predict 21, 22
  auto b = make_padded_batch({&s, &t}, /*pad_id=*/3);
  ASSERT_EQ(b.inputs.sizes(), (std::vector<int64_t>{2, 5}));
  EXPECT_TRUE(torch::equal(b.loss_mask[0], torch::tensor({0.f, 1.f, 1.f, 1.f, 0.f})));
  EXPECT_TRUE(torch::equal(b.loss_mask[1], torch::tensor({1.f, 1.f, 0.f, 0.f, 0.f})));
  EXPECT_TRUE(torch::equal(b.targets[0], torch::tensor({0L, 12L, 13L, 14L, 0L})));
  EXPECT_TRUE(torch::equal(b.inputs[1], torch::tensor({20L, 21L, 22L, 3L, 3L})));
  EXPECT_EQ(b.n_loss_tokens, 5);
  EXPECT_EQ(b.n_tokens, 8);
  EXPECT_FALSE(b.attn_mask.defined());
}

TEST(SftDataTest, PackingMasksAcrossSamplesAndRestartsPositions) {
  SftSample s = sample({10, 11, 12}, 1), t = sample({20, 21}, 1);
  auto b = make_packed_batch({{&s, &t}}, /*row_len=*/6, /*pad_id=*/3);
  EXPECT_TRUE(torch::equal(b.positions[0], torch::tensor({0L, 1L, 2L, 0L, 1L, 5L})));
  // The last token of s (12) would predict t's first token: not a target.
  EXPECT_TRUE(torch::equal(b.loss_mask[0], torch::tensor({1.f, 1.f, 0.f, 1.f, 0.f, 0.f})));
  auto m = b.attn_mask[0];
  EXPECT_TRUE(m[2][0].item<bool>());   // inside s
  EXPECT_FALSE(m[3][2].item<bool>());  // t cannot see s
  EXPECT_TRUE(m[4][3].item<bool>());   // inside t
  EXPECT_FALSE(m[3][4].item<bool>());  // causal
  EXPECT_TRUE(m[5][5].item<bool>());   // padding attends itself only
  EXPECT_FALSE(m[5][4].item<bool>());
  // Next-fit packing.
  SftSample u = sample({1, 2, 3, 4}, 1);
  auto rows = pack_rows({&s, &t, &u, &s}, 6);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0], (std::vector<int64_t>{0, 1}));  // 3 + 2 <= 6
  EXPECT_EQ(rows[1], (std::vector<int64_t>{2}));     // 5 + 4 > 6
  EXPECT_EQ(rows[2], (std::vector<int64_t>{3}));     // 4 + 3 > 6
}

policy::Transformer nano_model() {
  policy::ModelConfig mc;
  mc.preset = "nano";
  auto m = mc.build(/*vocab_size=*/64, /*seed=*/7);
  EXPECT_TRUE(m.ok()) << m.status().to_string();
  return *m;
}

std::vector<SftSample> random_samples(int n, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  std::vector<SftSample> out;
  for (int i = 0; i < n; ++i) {
    const int64_t len = 4 + torch::randint(10, {1}, gen).item<int64_t>();
    auto ids = torch::randint(4, 64, {len}, gen, torch::kLong);
    std::vector<int64_t> v(ids.data_ptr<int64_t>(), ids.data_ptr<int64_t>() + len);
    out.push_back(sample(v, 1 + torch::randint(len - 2, {1}, gen).item<int64_t>()));
  }
  return out;
}

TEST(SftLossTest, PackedLossEqualsUnpacked) {
  auto model = nano_model();
  model->eval();
  auto samples = random_samples(6, 11);
  std::vector<const SftSample*> ptrs;
  for (auto& s : samples) ptrs.push_back(&s);
  auto padded = make_padded_batch(ptrs, 3);
  std::vector<std::vector<const SftSample*>> rows;
  for (auto idx : pack_rows(ptrs, 32)) {
    rows.emplace_back();
    for (auto i : idx) rows.back().push_back(ptrs[i]);
  }
  ASSERT_LT(rows.size(), samples.size());  // something was packed together
  auto packed = make_packed_batch(rows, 32, 3);
  ASSERT_EQ(packed.n_loss_tokens, padded.n_loss_tokens);
  torch::NoGradGuard ng;
  const double a = sft_loss_terms(*model, padded).nll_sum.item<double>() / padded.n_loss_tokens;
  const double b = sft_loss_terms(*model, packed).nll_sum.item<double>() / packed.n_loss_tokens;
  EXPECT_NEAR(a, b, 1e-5);
}

TEST(SftLossTest, AccumulationEqualsOneLargeBatch) {
  auto model = nano_model();
  model->train();
  model->args();
  auto samples = random_samples(6, 12);
  std::vector<const SftSample*> all;
  for (auto& s : samples) all.push_back(&s);
  auto grads = [&](const std::vector<std::vector<const SftSample*>>& micro) {
    int64_t n = 0;
    std::vector<SftBatch> bs;
    for (const auto& m : micro) bs.push_back(make_padded_batch(m, 3)), n += bs.back().n_loss_tokens;
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
    for (const auto& b : bs) (sft_loss_terms(*model, b).nll_sum / n).backward();
    std::vector<torch::Tensor> g;
    for (auto& p : model->parameters())
      g.push_back(p.grad().defined() ? p.grad().clone() : torch::zeros_like(p));
    return g;
  };
  auto full = grads({all});
  // Uneven split: micro-batches of 1, 2 and 3 samples with different token counts.
  auto split = grads({{all[0]}, {all[1], all[2]}, {all[3], all[4], all[5]}});
  double max_diff = 0;
  for (size_t i = 0; i < full.size(); ++i)
    max_diff = std::max(max_diff, (full[i] - split[i]).abs().max().item<double>());
  EXPECT_LT(max_diff, 1e-6);
  // The per-micro-batch mean (the bug this avoids) would differ.
  double norm = 0;
  for (auto& g : full) norm += g.pow(2).sum().item<double>();
  EXPECT_GT(norm, 0);
}

TEST(SftJsonlTest, ReadsBothShapesAndNamesBadLines) {
  const testing::ScopedTempDir tmp("sft_jsonl");
  const std::string dir = tmp.path().string();
  const std::string good = dir + "/good.jsonl";
  std::ofstream(good)
      << R"({"prompt": "What is 2+2?", "response": "4"})"
      << "\n\n"
      << R"({"messages": [{"role": "system", "content": "Be brief."},)"
      << R"( {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]})"
      << "\n";
  auto ex = read_sft_jsonl(good);
  ASSERT_TRUE(ex.ok()) << ex.status().to_string();
  ASSERT_EQ(ex->size(), 2u);
  EXPECT_EQ((*ex)[0].question, "What is 2+2?");
  EXPECT_EQ((*ex)[1].response, "Hello");
  EXPECT_EQ((*ex)[1].system_prompt.value_or(""), "Be brief.");

  const std::string bad = dir + "/bad.jsonl";
  std::ofstream(bad) << R"({"prompt": "a", "response": "b"})"
                     << "\n"
                     << R"({"prompt": "a", "response": 3})"
                     << "\n";
  auto e = read_sft_jsonl(bad);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("bad.jsonl:2"), std::string::npos) << e.status().message();
  EXPECT_NE(e.status().message().find("response"), std::string::npos);
  std::ofstream(bad) << "{not json\n";
  EXPECT_FALSE(read_sft_jsonl(bad).ok());
  std::ofstream(bad) << R"({"messages": [{"role": "user", "content": "a"}]})"
                     << "\n";
  EXPECT_NE(read_sft_jsonl(bad).status().message().find("multi-turn"), std::string::npos);
  EXPECT_FALSE(read_sft_jsonl(dir + "/missing.jsonl").ok());
}

TEST(SftRecipeTest, IncompatibleKeysAreNamed) {
  auto r = load_config_string<SftRecipe>("model: {preset: nano, n_mtp_layers: 1}\n", {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("data.pack"), std::string::npos);
  auto j = load_config_string<SftRecipe>("data: {source: jsonl}\n", {});
  ASSERT_FALSE(j.ok());
  EXPECT_NE(j.status().message().find("data.path"), std::string::npos);
}

// data.source=task: the first n_examples training problems of any task with traces, as
// the task source gives them (never a held-out one), rendered by the task's template.
TEST(SftRecipeTest, TaskExamplesAreItsTrainingProblems) {
  auto r = load_config_string<SftRecipe>(
      "task: {name: countdown, eval_size: 50, max_number: 6, max_target: 20, prefill_think: "
      "true}\ndata: {n_examples: 300}\n");
  ASSERT_TRUE(r.ok()) << r.status().to_string();
  auto examples = load_sft_examples(*r);
  ASSERT_TRUE(examples.ok()) << examples.status().to_string();
  ASSERT_EQ(examples->size(), 300u);
  auto task = data::TaskSource::create(r->task);
  ASSERT_TRUE(task.ok());
  std::set<std::string> held_out;
  for (const auto& p : task->eval()) held_out.insert(p.question);
  for (size_t i = 0; i < examples->size(); ++i) {
    const data::TaskSample p = task->train(i);
    EXPECT_EQ((*examples)[i].question, p.question);
    EXPECT_EQ((*examples)[i].response, task->sft_response(p));
    EXPECT_TRUE((*examples)[i].response.ends_with(
        " </think> <answer> " + p.metadata["answer"].get<std::string>() + " </answer>"));
    EXPECT_FALSE(held_out.contains(p.question)) << p.question;
  }

  // A JSONL task file: its training lines with a "trace" (each once); a line without one
  // is an error naming it.
  const testing::ScopedTempDir tmp("sft_task_jsonl");
  const std::string dir = tmp.path().string();
  {
    std::ofstream f(dir + "/t.jsonl");
    for (int i = 0; i < 6; ++i)
      f << "{\"prompt\": \"q" << i << "\", \"answer\": \"" << i << "\", \"trace\": \"t" << i
        << "\"}\n";
  }
  auto js = load_config_string<SftRecipe>("task: {name: jsonl, path: " + dir +
                                          "/t.jsonl, eval_size: 2}\ndata: {n_examples: 100}\n");
  ASSERT_TRUE(js.ok()) << js.status().to_string();
  auto lines = load_sft_examples(*js);
  ASSERT_TRUE(lines.ok()) << lines.status().to_string();
  ASSERT_EQ(lines->size(), 4u);  // 6 lines, 2 held out
  EXPECT_TRUE((*lines)[0].response.starts_with("<think> t"));
  {
    std::ofstream f(dir + "/t.jsonl", std::ios::app);
    for (int i = 6; i < 40; ++i) f << "{\"prompt\": \"q" << i << "\", \"answer\": \"1\"}\n";
  }
  auto missing = load_sft_examples(*js);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("has no step-by-step solution"), std::string::npos)
      << missing.status().to_string();
}

}  // namespace
}  // namespace r1kit::sft

namespace r1kit::sft {
namespace {
TEST(SftLossTest, Bf16AutocastKeepsFp32MasterWeightsAndTracksFp32) {
  auto model = nano_model();
  model->eval();
  auto samples = random_samples(4, 13);
  std::vector<const SftSample*> ptrs;
  for (auto& s : samples) ptrs.push_back(&s);
  auto b = make_padded_batch(ptrs, 3);
  const double f32 = sft_loss_terms(*model, b).nll_sum.item<double>();
  double bf16 = 0;
  {
    compat::CpuAutocastGuard ac(true);
    auto t = sft_loss_terms(*model, b);
    t.nll_sum.backward();
    bf16 = t.nll_sum.item<double>();
  }
  EXPECT_NEAR(bf16 / f32, 1.0, 0.02);  // bf16 has ~3 significant digits
  EXPECT_NE(bf16, f32);                // and it did run in bf16
  for (const auto& p : model->parameters()) {
    EXPECT_EQ(p.scalar_type(), torch::kFloat);
    if (p.grad().defined()) {
      EXPECT_EQ(p.grad().scalar_type(), torch::kFloat);
    }
  }
}

// The padding mask the trainer passes as ForwardOptions::token_mask.
TEST(SftBatchTest, MarksItsPaddingForTheExpertLoads) {
  SftSample a, b;
  a.ids = {1, 2, 3, 4, 5};
  a.n_prompt = 2;
  b.ids = {6, 7, 8};
  b.n_prompt = 1;
  auto padded = make_padded_batch({&a, &b}, /*pad_id=*/0);
  EXPECT_TRUE(torch::equal(padded.token_mask,
                           torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}}).to(torch::kBool)));
  auto packed = make_packed_batch({{&a, &b}, {&b}}, /*row_len=*/10, /*pad_id=*/0);
  EXPECT_EQ(packed.token_mask.sum().item<int64_t>(), 5 + 3 + 3);
  EXPECT_EQ(packed.token_mask.sum().item<int64_t>(), packed.n_tokens);
}

}  // namespace
}  // namespace r1kit::sft
