// Tests of rollout/local_source.h: completions carry the policy version; a weight
// update makes the outputs those of the new weights; bad updates change nothing; an
// update is atomic with respect to a concurrent generate().
#include "rollout/local_source.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

#include "policy/checkpoint.h"

namespace r1kit::rollout {
namespace {

using policy::Transformer;

Transformer make_source_model(uint64_t seed) {
  Transformer m(*policy::preset("nano"));
  m->init_weights(seed);
  torch::NoGradGuard ng;
  m->output_weight().mul_(40.0);
  return m;
}

NamedTensors native_weights(Transformer& m) {
  NamedTensors w;
  for (const auto& p : m->named_parameters()) w.emplace_back(p.key(), p.value().clone());
  for (const auto& b : m->named_buffers()) w.emplace_back(b.key(), b.value().clone());
  return w;
}

GenerateRequest request(int64_t max_new = 8) {
  GenerateRequest r;
  r.prompts = {{{5, 17, 99, 3}, 0}, {{42, 7}, 1}};
  r.group_size = 2;
  r.sampling.max_new_tokens = max_new;
  r.sampling.temperature = 0.8;
  r.sampling.seed = 5;
  return r;
}

std::vector<std::vector<int64_t>> source_tokens_of(const std::vector<Group>& groups) {
  std::vector<std::vector<int64_t>> out;
  for (const auto& g : groups)
    for (const auto& c : g.completions) out.push_back(c.token_ids);
  return out;
}

EngineOptions small_cache() {
  EngineOptions o;
  o.max_batch = 4;
  o.max_seq_len = 32;
  return o;
}

TEST(LocalRolloutSourceTest, UpdateWeightsSwitchesPolicyAndVersion) {
  Transformer a = make_source_model(1), b = make_source_model(2);
  LocalRolloutSource src(make_source_model(1), small_cache(), {}, /*initial_version=*/4);
  EXPECT_EQ(src.policy_version(), 4);
  auto out_a = src.generate(request());
  ASSERT_TRUE(out_a.ok()) << out_a.status().to_string();
  for (const auto& g : *out_a)
    for (const auto& c : g.completions) EXPECT_EQ(c.policy_version, 4);

  // Reference outputs of model b on its own source.
  LocalRolloutSource ref_b(make_source_model(2), small_cache());
  auto want_b = ref_b.generate(request());
  ASSERT_NE(source_tokens_of(*out_a), source_tokens_of(*want_b));

  ASSERT_TRUE(src.update_weights(native_weights(b), 5).ok());
  EXPECT_EQ(src.policy_version(), 5);
  auto out_b = src.generate(request());
  EXPECT_EQ(source_tokens_of(*out_b), source_tokens_of(*want_b));
  for (const auto& g : *out_b)
    for (const auto& c : g.completions) EXPECT_EQ(c.policy_version, 5);

  // Hugging Face names (what a checkpoint and the gRPC stream carry) work too, in
  // another dtype.
  auto hf = policy::export_tensors(*a, torch::kBFloat16);
  ASSERT_TRUE(src.update_weights(hf, 6).ok());
  EXPECT_EQ(src.policy_version(), 6);
}

TEST(LocalRolloutSourceTest, BadUpdatesChangeNothing) {
  LocalRolloutSource src(make_source_model(1), small_cache(), {}, 1);
  auto before = src.generate(request());
  Transformer other = make_source_model(3);

  auto missing = native_weights(other);
  missing.pop_back();
  auto wrong_shape = native_weights(other);
  wrong_shape.front().second = torch::zeros({3, 3});
  auto unknown = native_weights(other);
  unknown.emplace_back("layers.9.nothing.weight", torch::zeros({1}));
  auto twice = native_weights(other);
  twice.push_back(twice.front());
  for (const auto& [w, needle] : std::vector<std::pair<NamedTensors, std::string>>{
           {missing, "missing"}, {wrong_shape, "shape"}, {unknown, "unknown"}, {twice, "twice"}}) {
    Status s = src.update_weights(w, 2);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << needle;
    EXPECT_NE(s.message().find(needle), std::string::npos) << s.message();
  }
  EXPECT_EQ(src.policy_version(), 1);
  EXPECT_EQ(source_tokens_of(*src.generate(request())), source_tokens_of(*before));
}

TEST(LocalRolloutSourceTest, UpdateIsAtomicWithRespectToGenerate) {
  // Generate on one thread while another updates the weights: every completion of a
  // call carries one version, and its tokens are exactly that version's.
  LocalRolloutSource ref_a(make_source_model(1), small_cache()),
      ref_b(make_source_model(2), small_cache());
  const auto want_a = source_tokens_of(*ref_a.generate(request(24)));
  const auto want_b = source_tokens_of(*ref_b.generate(request(24)));
  Transformer b = make_source_model(2);
  const auto wb = native_weights(b);

  LocalRolloutSource src(make_source_model(1), small_cache(), {}, 0);
  std::vector<std::vector<Group>> results;
  std::thread gen([&] {
    for (int i = 0; i < 4; ++i) results.push_back(*src.generate(request(24)));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_TRUE(src.update_weights(wb, 1).ok());
  gen.join();
  for (const auto& r : results) {
    const int64_t v = r[0].completions[0].policy_version;
    for (const auto& g : r)
      for (const auto& c : g.completions) EXPECT_EQ(c.policy_version, v);
    EXPECT_EQ(source_tokens_of(r), v == 0 ? want_a : want_b) << "version " << v;
  }
  // Whether the update landed between calls depends on scheduling; after it returned,
  // every call must use the new weights.
  const auto after = *src.generate(request(24));
  EXPECT_EQ(after[0].completions[0].policy_version, 1);
  EXPECT_EQ(source_tokens_of(after), want_b);
}

TEST(LocalRolloutSourceTest, CopyOfIsIndependentOfTheTrainersModel) {
  Transformer trainer = make_source_model(1);
  auto src = LocalRolloutSource::copy_of(*trainer, small_cache(), {}, 2);
  LocalRolloutSource ref(make_source_model(1), small_cache());
  const auto want = source_tokens_of(*ref.generate(request()));
  {
    torch::NoGradGuard ng;
    for (auto& p : trainer->parameters()) p.add_(0.5);  // the trainer keeps training
  }
  auto got = src->generate(request());
  EXPECT_EQ(source_tokens_of(*got), want);
  EXPECT_EQ((*got)[0].completions[0].policy_version, 2);
}

TEST(LocalRolloutSourceTest, RejectsBadRequests) {
  LocalRolloutSource src(make_source_model(1), small_cache());
  GenerateRequest r = request();
  r.prompts[1].ids = {1, 100000};
  auto out = src.generate(r);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("100000"), std::string::npos);
}

}  // namespace
}  // namespace r1kit::rollout
