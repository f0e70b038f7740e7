// GrpcRolloutSource (the client pool) against real workers on 127.0.0.1: results equal
// the source's, failover when a worker dies or stalls mid-rollout, a restarted worker
// is used again, deadlines end a rollout nobody can serve, weight updates reach every
// worker and never mix with a concurrent rollout.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "rollout/grpc/grpc_source.h"
#include "rollout/grpc/worker.h"
#include "tests/rollout/grpc/fake_source.h"
#include "tests/temp_dir.h"

namespace r1kit::rollout {
namespace {

using std::chrono::milliseconds;
using testing::FakeSource;

GenerateRequest make_request(int prompts, int64_t group_size = 3, uint64_t seed = 11) {
  GenerateRequest r;
  for (int i = 0; i < prompts; ++i) r.prompts.push_back({{1 + i, 2 * i, 5}, 100 + i});
  r.group_size = group_size;
  r.sampling.max_new_tokens = 5;
  r.sampling.seed = seed;
  return r;
}

void expect_same_groups(const std::vector<Group>& a, const std::vector<Group>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].prompt_index, b[i].prompt_index) << i;
    ASSERT_EQ(a[i].completions.size(), b[i].completions.size()) << i;
    for (size_t j = 0; j < a[i].completions.size(); ++j) {
      const Completion& x = a[i].completions[j];
      const Completion& y = b[i].completions[j];
      EXPECT_EQ(x.token_ids, y.token_ids) << i << "," << j;
      EXPECT_EQ(x.logprobs, y.logprobs) << i << "," << j;
      EXPECT_EQ(x.finish_reason, y.finish_reason) << i << "," << j;
      EXPECT_EQ(x.policy_version, y.policy_version) << i << "," << j;
    }
  }
}

// A worker around its own fake source, restartable on the same port.
struct TestWorker {
  explicit TestWorker(int port = 0, std::string token = "") {
    WorkerOptions o;
    o.port = port;
    o.token = std::move(token);
    o.limits.vocab_size = FakeSource::kVocab;
    o.abort_generation = [this] { fake.abort(); };
    worker = std::make_unique<RolloutWorker>(fake, o);
    Status s = worker->start();
    EXPECT_TRUE(s.ok()) << s.to_string();
  }
  ~TestWorker() {
    fake.set_stalled(false);
    worker->shutdown();
  }
  std::string address() const { return "127.0.0.1:" + std::to_string(worker->port()); }
  FakeSource fake;
  std::unique_ptr<RolloutWorker> worker;
};

std::unique_ptr<RolloutSource> make_pool(const std::vector<std::string>& addrs,
                                         GrpcSourceOptions o = {}) {
  o.workers = addrs;
  auto pool = make_grpc_rollout_source(o);
  EXPECT_TRUE(pool.ok()) << pool.status().to_string();
  return std::move(pool).value();
}

TEST(GrpcPool, OneWorkerGivesTheSourcesOutputInOrder) {
  TestWorker w;
  auto pool = make_pool({w.address()});
  const GenerateRequest req = make_request(6);
  std::vector<int64_t> seen;
  auto got = pool->generate(req, [&](const Group& g) { seen.push_back(g.prompt_index); });
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  FakeSource local;
  auto want = local.generate(req);
  ASSERT_TRUE(want.ok());
  expect_same_groups(*got, *want);
  EXPECT_EQ(seen.size(), 6u);
}

TEST(GrpcPool, BadRequestsAndTokensFailFast) {
  TestWorker w(0, "tok");
  {
    auto pool = make_pool({w.address()});  // no token
    EXPECT_EQ(pool->generate(make_request(2)).status().code(), StatusCode::kUnauthenticated);
  }
  GrpcSourceOptions o;
  o.token = "tok";
  auto pool = make_pool({w.address()}, o);
  GenerateRequest bad = make_request(2);
  bad.prompts[0].ids.push_back(FakeSource::kVocab + 5);
  const Status s = pool->generate(bad).status();
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("outside the vocabulary"), std::string::npos) << s.message();
  EXPECT_TRUE(pool->generate(make_request(2)).ok());
}

TEST(GrpcPool, BatchesRespectTheWorkersPromptLimit) {
  FakeSource fake;
  WorkerOptions wo;
  wo.limits.max_prompts = 2;
  RolloutWorker worker(fake, wo);
  ASSERT_TRUE(worker.start().ok());
  auto pool = make_pool({"127.0.0.1:" + std::to_string(worker.port())});
  const GenerateRequest req = make_request(7);
  auto got = pool->generate(req);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  expect_same_groups(*got, *FakeSource().generate(req));
}

TEST(GrpcPool, SpreadsGroupsOverWorkers) {
  TestWorker a, b;
  a.fake.delay = b.fake.delay = milliseconds(5);
  GrpcSourceOptions o;
  o.max_groups_per_call = 4;
  // On a loaded machine a worker's first connection can fail; the pool then rightly
  // sends everything to the other and tries the first again on a later call (at once
  // here). Up to three calls for both to have served.
  o.retry_after_s = 0;
  auto pool = make_pool({a.address(), b.address()}, o);
  int calls = 0;
  do {
    ASSERT_TRUE(pool->generate(make_request(16)).ok());
    ++calls;
  } while ((a.fake.served() == 0 || b.fake.served() == 0) && calls < 3);
  EXPECT_GT(a.fake.served(), 0);
  EXPECT_GT(b.fake.served(), 0);
  EXPECT_EQ(a.fake.served() + b.fake.served(), 16 * calls);
}

TEST(GrpcPool, WorkerKilledMidRolloutThenRestarted) {
  auto a = std::make_unique<TestWorker>();
  TestWorker b;
  a->fake.delay = b.fake.delay = milliseconds(20);
  const int port_a = a->worker->port();
  GrpcSourceOptions o;
  o.max_groups_per_call = 4;
  o.retry_after_s = 0.1;
  auto pool = make_pool({a->address(), b.address()}, o);
  const GenerateRequest req = make_request(16);

  // Kill worker a once the first group has arrived (from the generate() thread; the
  // shutdown runs on another thread so on_group does not block).
  std::future<void> killer;
  int delivered = 0;
  auto got = pool->generate(req, [&](const Group&) {
    if (++delivered == 1) killer = std::async(std::launch::async, [&] { a->worker->shutdown(); });
  });
  killer.wait();
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  FakeSource local;
  expect_same_groups(*got, *local.generate(req));
  EXPECT_EQ(delivered, 16);
  EXPECT_LT(a->fake.served(), 16);

  // Restart a on the same port; after its health check it takes groups again.
  a.reset();
  a = std::make_unique<TestWorker>(port_a);
  std::this_thread::sleep_for(milliseconds(150));  // past retry_after_s
  auto again = pool->generate(make_request(16, 3, 12));
  ASSERT_TRUE(again.ok()) << again.status().to_string();
  expect_same_groups(*again, *local.generate(make_request(16, 3, 12)));
  if (a->fake.served() == 0) {  // the probe may have landed after the first dispatch
    std::this_thread::sleep_for(milliseconds(150));
    ASSERT_TRUE(pool->generate(make_request(16, 3, 13)).ok());
  }
  EXPECT_GT(a->fake.served(), 0);
}

TEST(GrpcPool, StalledWorkerFailsOverByDeadline) {
  TestWorker a, b;
  a.fake.set_stalled(true);  // accepts the call, never produces a group
  GrpcSourceOptions o;
  o.stall_timeout_s = 0.4;
  o.retry_after_s = 30;  // do not go back to a in this test
  auto pool = make_pool({a.address(), b.address()}, o);
  const auto t0 = std::chrono::steady_clock::now();
  const GenerateRequest req = make_request(8);
  auto got = pool->generate(req);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  FakeSource local;
  expect_same_groups(*got, *local.generate(req));
  EXPECT_LT(secs, 3.0);
  EXPECT_EQ(b.fake.served(), 8);
}

TEST(GrpcPool, NoWorkerLeftEndsWithAnErrorNotAHang) {
  {
    TestWorker a;
    a.fake.set_stalled(true);
    GrpcSourceOptions o;
    o.generate_timeout_s = 0.6;
    auto pool = make_pool({a.address()}, o);
    const auto t0 = std::chrono::steady_clock::now();
    const Status s = pool->generate(make_request(2)).status();
    EXPECT_FALSE(s.ok());
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
  }
  {
    int dead_port;
    {
      TestWorker gone;
      dead_port = gone.worker->port();
    }
    GrpcSourceOptions o;
    o.stall_timeout_s = 0.5;
    o.retry_after_s = 0.1;
    auto pool = make_pool({"127.0.0.1:" + std::to_string(dead_port)}, o);
    const auto t0 = std::chrono::steady_clock::now();
    const Status s = pool->generate(make_request(2)).status();
    EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 3.0);
  }
}

// A one-shot client (fail_fast) at a dead address fails at once with UNAVAILABLE,
// naming the address, though stall_timeout_s would have it wait 5 minutes.
TEST(GrpcPool, FailFastAtADeadAddress) {
  int dead_port;
  {
    TestWorker gone;
    dead_port = gone.worker->port();
  }
  GrpcSourceOptions o;
  o.fail_fast = true;
  const std::string address = "127.0.0.1:" + std::to_string(dead_port);
  auto pool = make_pool({address}, o);
  const auto t0 = std::chrono::steady_clock::now();
  const Status s = pool->generate(make_request(2)).status();
  EXPECT_EQ(s.code(), StatusCode::kUnavailable) << s.to_string();
  EXPECT_NE(s.to_string().find(address), std::string::npos) << s.to_string();
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 10.0);
}

TEST(GrpcPool, WeightUpdateReachesEveryWorkerBeforeTheNextRollout) {
  TestWorker a, b;
  GrpcSourceOptions o;
  o.chunk_bytes = 24;  // many chunks per tensor
  auto pool = make_pool({a.address(), b.address()}, o);
  NamedTensors weights = {{"x.weight", torch::full({4, 5}, 2.0f)},
                          {"y.bias", torch::arange(7, torch::kBFloat16)},
                          {"z.count", torch::tensor({int64_t{3}})}};
  ASSERT_TRUE(pool->update_weights(weights, 4).ok());
  EXPECT_EQ(pool->policy_version(), 4);
  for (FakeSource* f : {&a.fake, &b.fake}) {
    EXPECT_EQ(f->policy_version(), 4);
    auto got = f->weights();
    ASSERT_EQ(got.size(), 3u);
    for (const auto& [name, t] : weights) {
      EXPECT_EQ(got[name].scalar_type(), t.scalar_type()) << name;
      EXPECT_TRUE(torch::equal(got[name], t)) << name;
    }
  }
  auto out = pool->generate(make_request(4));
  ASSERT_TRUE(out.ok());
  for (const Group& g : *out)
    for (const Completion& c : g.completions) EXPECT_EQ(c.policy_version, 4);

  // The engine refusing the update (a missing tensor) leaves the old weights.
  a.fake.require({{"x.weight", {4, 5}}, {"y.bias", {7}}, {"z.count", {1}}, {"w", {1}}});
  b.fake.require({{"x.weight", {4, 5}}, {"y.bias", {7}}, {"z.count", {1}}, {"w", {1}}});
  EXPECT_FALSE(pool->update_weights(weights, 5).ok());
  EXPECT_EQ(a.fake.policy_version(), 4);
  EXPECT_EQ(b.fake.policy_version(), 4);
  EXPECT_EQ(pool->policy_version(), 4);
  EXPECT_TRUE(pool->generate(make_request(2)).ok());  // both workers still in use
}

// A data-parallel rank other than 0 (push_weights false, docs/distributed.md): its
// update sends nothing and only records the version, which its rollouts then require of
// the workers; once rank 0's pool has pushed that version, it generates from it.
TEST(GrpcPool, APoolThatDoesNotPushRequiresTheVersionAnotherPushed) {
  TestWorker w;
  GrpcSourceOptions quiet;
  quiet.push_weights = false;
  quiet.generate_timeout_s = 2;
  quiet.stall_timeout_s = 1;
  quiet.retry_after_s = 0.1;
  auto follower = make_pool({w.address()}, quiet);
  auto leader = make_pool({w.address()});
  const NamedTensors weights = {{"x.weight", torch::full({2, 2}, 1.0f)}};
  ASSERT_TRUE(follower->update_weights(weights, 3).ok());
  EXPECT_EQ(follower->policy_version(), 3);
  EXPECT_EQ(w.fake.policy_version(), 0) << "nothing was sent";
  EXPECT_FALSE(follower->generate(make_request(2)).ok()) << "the worker's weights are older";
  ASSERT_TRUE(leader->update_weights(weights, 3).ok());
  EXPECT_EQ(w.fake.policy_version(), 3);
  auto out = follower->generate(make_request(2));
  ASSERT_TRUE(out.ok()) << out.status().to_string();
  for (const Group& g : *out)
    for (const Completion& c : g.completions) EXPECT_EQ(c.policy_version, 3);
}

TEST(GrpcPool, ConcurrentRolloutNeverSeesHalfUpdatedWeights) {
  TestWorker w;
  w.fake.delay = milliseconds(1);
  auto trainer = make_pool({w.address()});
  auto sampler = make_pool({w.address()});
  std::atomic<bool> done{false};
  std::thread updates([&] {
    for (int v = 1; v <= 8; ++v) {
      // Every tensor's first element is v: a completion made from consistent weights
      // has stamp 2 v and version v.
      NamedTensors ws = {{"p", torch::full({64}, float(v))}, {"q", torch::full({33}, float(v))}};
      EXPECT_TRUE(trainer->update_weights(ws, v).ok());
    }
    done = true;
  });
  const GenerateRequest req = make_request(3, 2);
  int rounds = 0;
  while (!done || rounds < 2) {
    auto out = sampler->generate(req);
    ASSERT_TRUE(out.ok()) << out.status().to_string();
    for (size_t i = 0; i < out->size(); ++i) {
      const Completion& c = (*out)[i].completions[0];
      const int64_t v = c.policy_version;
      const int64_t stamp = v == 0 ? 0 : 2 * v;
      Group want = FakeSource::make_group(req.prompts[i], req, v, stamp);
      EXPECT_EQ(c.token_ids, want.completions[0].token_ids) << "version " << v;
    }
    ++rounds;
  }
  updates.join();
  EXPECT_EQ(w.fake.policy_version(), 8);
}

// TLS end to end, with a throw-away self-signed certificate for 127.0.0.1.
TEST(GrpcPool, TlsWorker) {
  const r1kit::testing::ScopedTempDir tmp("r1kit_tls");
  const std::string dir = tmp.path().string();
  const std::string cmd = "mkdir -p " + dir + " && openssl req -x509 -newkey ec -pkeyopt " +
                          "ec_paramgen_curve:prime256v1 -nodes -keyout " + dir + "/key.pem -out " +
                          dir + "/cert.pem -days 2 -subj /CN=localhost -addext " +
                          "subjectAltName=IP:127.0.0.1,DNS:localhost >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) GTEST_SKIP() << "openssl is not available";
  auto slurp = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  FakeSource fake;
  WorkerOptions wo;
  wo.tls_cert_pem = slurp(dir + "/cert.pem");
  wo.tls_key_pem = slurp(dir + "/key.pem");
  wo.token = "t";
  RolloutWorker worker(fake, wo);
  ASSERT_TRUE(worker.start().ok());
  const std::string addr = "127.0.0.1:" + std::to_string(worker.port());
  GrpcSourceOptions o;
  o.token = "t";
  o.tls_root_pem = wo.tls_cert_pem;
  auto pool = make_pool({addr}, o);
  const GenerateRequest req = make_request(3);
  auto got = pool->generate(req);
  ASSERT_TRUE(got.ok()) << got.status().to_string();
  expect_same_groups(*got, *FakeSource().generate(req));
  // A plaintext client cannot talk to it.
  GrpcSourceOptions plain;
  plain.token = "t";
  plain.stall_timeout_s = 0.3;
  plain.generate_timeout_s = 2;
  auto bad = make_pool({addr}, plain);
  EXPECT_FALSE(bad->generate(req).ok());
}

TEST(GrpcPool, OptionsAreChecked) {
  GrpcSourceOptions o;
  EXPECT_EQ(make_grpc_rollout_source(o).status().code(), StatusCode::kInvalidArgument);
  o.workers = {"127.0.0.1:1"};
  o.chunk_bytes = int64_t{8} << 20;
  EXPECT_EQ(make_grpc_rollout_source(o).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace r1kit::rollout
