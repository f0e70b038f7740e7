// The Score RPC (proto/rollout.proto): a worker over the real engine returns the log-probs
// the in-process source and policy::completion_logprobs give (within 1e-5), refuses a
// client without the bearer token, and applies Generate's limits to the sequences.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "policy/logprobs.h"
#include "policy/model.h"
#include "rollout/grpc/grpc_source.h"
#include "rollout/grpc/worker.h"
#include "rollout/local_source.h"
#include "tests/rollout/grpc/nano_model.h"

namespace r1kit::rollout {
namespace {

ScoreRequest score_request() {
  ScoreRequest r;
  r.prompts = {{1, 2, 3, 4}, {5, 6}, {7, 8, 9}};
  r.completions = {{10, 11, 12}, {13}, {}};  // an empty completion scores nothing
  return r;
}

// policy::completion_logprobs over the rows, an independent path to the same numbers.
std::vector<std::vector<float>> direct_logprobs(policy::TransformerImpl& m, const ScoreRequest& r) {
  torch::NoGradGuard ng;
  m.eval();
  std::vector<std::vector<float>> out;
  for (size_t i = 0; i < r.prompts.size(); ++i) {
    const auto T = static_cast<int64_t>(r.completions[i].size());
    if (T == 0) {
      out.emplace_back();
      continue;
    }
    auto ids = torch::tensor(r.completions[i], torch::kLong).reshape({1, T});
    auto lp = policy::completion_logprobs(m, {r.prompts[i]}, ids, torch::ones({1, T}), 1.0, false)
                  .logprobs.reshape({-1});
    out.emplace_back(lp.data_ptr<float>(), lp.data_ptr<float>() + T);
  }
  return out;
}

struct ServedNano {
  explicit ServedNano(std::string token) : source(nano_model(1)) {
    WorkerOptions wo;
    wo.token = std::move(token);
    wo.limits.vocab_size = source.model_args().vocab_size;
    wo.limits.max_prompt_tokens = 16;
    wo.limits.max_new_tokens = 8;
    wo.limits.max_prompts = 4;
    worker = std::make_unique<RolloutWorker>(source, wo);
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(worker->port()); }
  LocalRolloutSource source;
  std::unique_ptr<RolloutWorker> worker;
};

StatusOr<std::unique_ptr<RolloutSource>> pool_of(const std::string& address,
                                                 const std::string& token) {
  GrpcSourceOptions o;
  o.workers = {address};
  o.token = token;
  o.fail_fast = true;
  return make_grpc_rollout_source(o);
}

TEST(GrpcScore, WorkerMatchesInProcessLogProbs) {
  ServedNano served("s3cret");
  ASSERT_TRUE(served.worker->start().ok());
  auto pool = pool_of(served.address(), "s3cret");
  ASSERT_TRUE(pool.ok()) << pool.status().to_string();

  const ScoreRequest req = score_request();
  auto remote = (*pool)->score(req);
  ASSERT_TRUE(remote.ok()) << remote.status().to_string();
  LocalRolloutSource local(nano_model(1));
  auto in_process = local.score(req);
  ASSERT_TRUE(in_process.ok()) << in_process.status().to_string();
  policy::Transformer m = nano_model(1);
  const auto direct = direct_logprobs(*m, req);
  ASSERT_EQ(remote->logprobs.size(), 3u);
  for (size_t i = 0; i < req.completions.size(); ++i) {
    ASSERT_EQ(remote->logprobs[i].size(), req.completions[i].size()) << i;
    ASSERT_EQ(in_process->logprobs[i].size(), req.completions[i].size()) << i;
    for (size_t t = 0; t < req.completions[i].size(); ++t) {
      EXPECT_NEAR(remote->logprobs[i][t], in_process->logprobs[i][t], 1e-5) << i << "," << t;
      EXPECT_NEAR(remote->logprobs[i][t], direct[i][t], 1e-5) << i << "," << t;
      EXPECT_LT(remote->logprobs[i][t], 0.f);
    }
  }
  // The batched rows (padded together) equal the one-row forwards: padding does not leak.
  EXPECT_NE(remote->logprobs[0][0], remote->logprobs[0][1]);

  // More sequences than the worker's max_prompts (4): the pool cuts them into batches.
  ScoreRequest many;
  for (int i = 0; i < 9; ++i) {
    many.prompts.push_back({1, 2 + i});
    many.completions.push_back({3, 4});
  }
  auto batched = (*pool)->score(many);
  ASSERT_TRUE(batched.ok()) << batched.status().to_string();
  auto many_local = local.score(many);
  ASSERT_TRUE(many_local.ok());
  ASSERT_EQ(batched->logprobs.size(), 9u);
  for (size_t i = 0; i < 9; ++i)
    for (size_t t = 0; t < 2; ++t)
      EXPECT_NEAR(batched->logprobs[i][t], many_local->logprobs[i][t], 1e-5);
}

TEST(GrpcScore, RefusesWithoutTheTokenAndOverTheLimits) {
  ServedNano served("s3cret");
  ASSERT_TRUE(served.worker->start().ok());
  for (const std::string token : {"", "wrong"}) {
    auto pool = pool_of(served.address(), token);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    auto got = (*pool)->score(score_request());
    ASSERT_FALSE(got.ok());
    EXPECT_EQ(got.status().code(), StatusCode::kUnauthenticated) << got.status().to_string();
  }
  auto pool = pool_of(served.address(), "s3cret");
  ASSERT_TRUE(pool.ok());
  // Completion over max_new_tokens (8), prompt over max_prompt_tokens (16), an id outside
  // the vocabulary, an empty prompt: INVALID_ARGUMENT naming the sequence.
  const int64_t V = served.source.model_args().vocab_size;
  const std::vector<std::pair<ScoreRequest, std::string>> bad = {
      {{{{1, 2}}, {std::vector<int64_t>(9, 3)}}, "9 completion tokens"},
      {{{std::vector<int64_t>(17, 1)}, {{2}}}, "17 prompt tokens"},
      {{{{1, V}}, {{2}}}, "outside the vocabulary"},
      {{std::vector<std::vector<int64_t>>(1), {{2}}}, "empty prompt"},
  };
  for (const auto& [req, what] : bad) {
    auto got = (*pool)->score(req);
    ASSERT_FALSE(got.ok()) << what;
    EXPECT_EQ(got.status().code(), StatusCode::kInvalidArgument) << got.status().to_string();
    EXPECT_NE(got.status().message().find(what), std::string::npos) << got.status().to_string();
  }
  // The in-process source makes the same checks.
  LocalRolloutSource local(nano_model(1));
  auto local_bad = local.score({{{1, V}}, {{2}}});
  ASSERT_FALSE(local_bad.ok());
  EXPECT_EQ(local_bad.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace r1kit::rollout
