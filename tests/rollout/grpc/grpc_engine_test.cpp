// The real engine behind a worker: the same request gives the same tokens in-process
// and through a worker, and a weight update sent through the pool makes the worker's
// outputs match the new policy's (a nano model, a few tokens: fast).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>

#include "policy/model.h"
#include "rollout/grpc/grpc_source.h"
#include "rollout/grpc/worker.h"
#include "rollout/local_source.h"
#include "tests/rollout/grpc/nano_model.h"

namespace r1kit::rollout {
namespace {

// A nano model (seed 1) served by a worker on a free loopback port, and a pool that
// reaches it.
struct NanoBehindWorker {
  LocalRolloutSource source{nano_model(1)};
  std::unique_ptr<RolloutWorker> worker;
  StatusOr<std::unique_ptr<RolloutSource>> pool = Internal("not started");

  bool start() {
    WorkerOptions wo;
    wo.limits.vocab_size = source.model_args().vocab_size;
    wo.abort_generation = [this] { source.abort(); };
    worker = std::make_unique<RolloutWorker>(source, wo);
    if (!worker->start().ok()) return false;
    GrpcSourceOptions po;
    po.workers = {"127.0.0.1:" + std::to_string(worker->port())};
    pool = make_grpc_rollout_source(po);
    EXPECT_TRUE(pool.ok()) << pool.status().to_string();
    return pool.ok();
  }
};

GenerateRequest request() {
  GenerateRequest r;
  r.prompts = {{{1, 2, 3, 4}, 0}, {{5, 6}, 1}, {{7, 8, 9}, 2}};
  r.group_size = 2;
  r.sampling.temperature = 1.0;
  r.sampling.max_new_tokens = 6;
  r.sampling.seed = 42;
  return r;
}

void expect_same(const std::vector<Group>& a, const std::vector<Group>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].completions.size(), b[i].completions.size());
    EXPECT_EQ(a[i].prompt_experts.ids, b[i].prompt_experts.ids) << i;
    EXPECT_EQ(a[i].prompt_experts.layers, b[i].prompt_experts.layers) << i;
    for (size_t j = 0; j < a[i].completions.size(); ++j) {
      EXPECT_EQ(a[i].completions[j].token_ids, b[i].completions[j].token_ids) << i << "," << j;
      EXPECT_EQ(a[i].completions[j].routed_experts.ids, b[i].completions[j].routed_experts.ids);
      EXPECT_EQ(a[i].completions[j].routed_experts.k, b[i].completions[j].routed_experts.k);
      ASSERT_EQ(a[i].completions[j].logprobs.size(), b[i].completions[j].logprobs.size());
      for (size_t t = 0; t < a[i].completions[j].logprobs.size(); ++t)
        EXPECT_NEAR(a[i].completions[j].logprobs[t], b[i].completions[j].logprobs[t], 1e-5);
    }
  }
}

TEST(GrpcEngine, WorkerMatchesInProcessAndFollowsWeightUpdates) {
  torch::NoGradGuard no_grad;
  NanoBehindWorker served;
  ASSERT_TRUE(served.start());
  auto& pool = served.pool;

  LocalRolloutSource local1(nano_model(1));
  auto remote = (*pool)->generate(request());
  ASSERT_TRUE(remote.ok()) << remote.status().to_string();
  expect_same(*remote, *local1.generate(request()));
  // The MoE routing (for routing replay) comes through the worker unchanged.
  GenerateRequest routed = request();
  routed.record_experts = true;
  auto remote_routed = (*pool)->generate(routed);
  ASSERT_TRUE(remote_routed.ok()) << remote_routed.status().to_string();
  EXPECT_FALSE((*remote_routed)[0].prompt_experts.ids.empty());
  EXPECT_FALSE((*remote_routed)[0].completions[0].routed_experts.ids.empty());
  expect_same(*remote_routed, *local1.generate(routed));

  // New weights (another initialisation), sent through the pool as version 1.
  policy::Transformer next = nano_model(2);
  NamedTensors weights;
  for (const auto& p : next->named_parameters()) weights.emplace_back(p.key(), p.value());
  for (const auto& b : next->named_buffers()) weights.emplace_back(b.key(), b.value());
  Status s = (*pool)->update_weights(weights, 1);
  ASSERT_TRUE(s.ok()) << s.to_string();
  EXPECT_EQ(served.source.policy_version(), 1);
  LocalRolloutSource local2(nano_model(2), {}, {}, 1);
  auto after = (*pool)->generate(request());
  ASSERT_TRUE(after.ok()) << after.status().to_string();
  expect_same(*after, *local2.generate(request()));
  EXPECT_NE((*after)[0].completions[0].token_ids, (*remote)[0].completions[0].token_ids)
      << "the two initialisations should sample differently";
  EXPECT_EQ((*after)[0].completions[0].policy_version, 1);
}

// GenerateRequest::exact travels to the worker: its engine runs the exact forward, so the
// log-probs are bitwise those of an in-process exact engine (and not of the normal one).
TEST(GrpcEngine, WorkerHonoursExactMode) {
  torch::NoGradGuard no_grad;
  NanoBehindWorker served;
  ASSERT_TRUE(served.start());
  auto& pool = served.pool;
  LocalRolloutSource local(nano_model(1));
  for (ExactMode mode : {ExactMode::kF32, ExactMode::kBF16}) {
    GenerateRequest r = request();
    r.exact = mode;
    auto remote = (*pool)->generate(r);
    ASSERT_TRUE(remote.ok()) << remote.status().to_string();
    auto here = local.generate(r);
    ASSERT_TRUE(here.ok());
    for (size_t i = 0; i < here->size(); ++i)
      for (size_t j = 0; j < (*here)[i].completions.size(); ++j) {
        const auto &a = (*here)[i].completions[j], &b = (*remote)[i].completions[j];
        EXPECT_EQ(a.token_ids, b.token_ids) << exact_mode_name(mode);
        ASSERT_EQ(a.logprobs.size(), b.logprobs.size());
        EXPECT_EQ(std::memcmp(a.logprobs.data(), b.logprobs.data(), 4 * a.logprobs.size()), 0)
            << exact_mode_name(mode) << " group " << i << " sample " << j;
      }
  }
}

// GenerateRequest::bf16_compute travels to the worker: its log-probs are the in-process
// bf16-compute engine's (same kernels, same batches: equal), and not the fp32 engine's.
TEST(GrpcEngine, WorkerHonoursBf16Compute) {
  torch::NoGradGuard no_grad;
  NanoBehindWorker served;
  ASSERT_TRUE(served.start());
  auto& pool = served.pool;
  LocalRolloutSource local(nano_model(1));
  GenerateRequest r = request();
  r.bf16_compute = true;
  auto remote = (*pool)->generate(r);
  ASSERT_TRUE(remote.ok()) << remote.status().to_string();
  auto here = local.generate(r);
  ASSERT_TRUE(here.ok());
  expect_same(*remote, *here);
  auto fp32 = local.generate(request());
  ASSERT_TRUE(fp32.ok());
  double diff = 0;
  for (size_t i = 0; i < here->size(); ++i)
    for (size_t j = 0; j < (*here)[i].completions.size(); ++j) {
      const auto &a = (*here)[i].completions[j], &b = (*fp32)[i].completions[j];
      for (size_t t = 0;
           t < std::min(a.logprobs.size(), b.logprobs.size()) && a.token_ids[t] == b.token_ids[t];
           ++t)
        diff = std::max(diff, static_cast<double>(std::abs(a.logprobs[t] - b.logprobs[t])));
    }
  EXPECT_GT(diff, 1e-5) << "bf16 compute should round differently from fp32";
}

}  // namespace
}  // namespace r1kit::rollout
