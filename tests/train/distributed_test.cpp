// Data parallelism's pieces (train/distributed.h, train/grad_sync.h,
// train/sharded_adamw.h): the launcher's variables, the shards, and a two-rank c10d group
// formed by two threads of this process: its collectives, the bucketed gradient sums
// against one process's gradients, and the sharded AdamW against one process's AdamW.
#include "train/distributed.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <thread>

#include "tests/temp_dir.h"
#include "tests/two_ranks.h"
#include "train/grad_sync.h"
#include "train/optim.h"
#include "train/sharded_adamw.h"

namespace r1kit::train {
namespace {

using r1kit::testing::two_ranks;

GetEnvFn env_of(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(LaunchEnvTest, NoLauncherIsOneProcess) {
  auto e = read_launch_env(env_of({{"MASTER_PORT", "1234"}}));
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(e->has_value());
}

TEST(LaunchEnvTest, ReadsTorchrunsVariables) {
  auto e = read_launch_env(env_of({{"RANK", "3"},
                                   {"WORLD_SIZE", "4"},
                                   {"LOCAL_RANK", "1"},
                                   {"LOCAL_WORLD_SIZE", "2"},
                                   {"MASTER_ADDR", "10.0.0.7"},
                                   {"MASTER_PORT", "29400"},
                                   {"TORCHELASTIC_RESTART_COUNT", "2"},
                                   {"TORCHELASTIC_USE_AGENT_STORE", "True"}}));
  ASSERT_TRUE(e.ok()) << e.status().to_string();
  ASSERT_TRUE(e->has_value());
  const LaunchEnv& l = **e;
  EXPECT_EQ(l.launcher, "torchrun");
  EXPECT_EQ(l.rank, 3);
  EXPECT_EQ(l.world_size, 4);
  EXPECT_EQ(l.local_rank, 1);
  EXPECT_EQ(l.local_world_size, 2);
  EXPECT_EQ(l.master_addr, "10.0.0.7");
  EXPECT_EQ(l.master_port, 29400);
  EXPECT_EQ(l.restart_count, 2);
  EXPECT_TRUE(l.use_agent_store);
}

TEST(LaunchEnvTest, MapsMpirunAndSlurm) {
  auto m = read_launch_env(env_of({{"OMPI_COMM_WORLD_RANK", "1"},
                                   {"OMPI_COMM_WORLD_SIZE", "2"},
                                   {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                   {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  ASSERT_TRUE(m.ok() && m->has_value());
  EXPECT_EQ((*m)->launcher, "mpirun");
  EXPECT_EQ((*m)->rank, 1);
  EXPECT_EQ((*m)->master_port, 29500);  // the default without MASTER_PORT
  auto s = read_launch_env(env_of({{"SLURM_PROCID", "5"},
                                   {"SLURM_NTASKS", "6"},
                                   {"SLURM_LOCALID", "2"},
                                   {"SLURM_NTASKS_PER_NODE", "3(x2)"},
                                   {"MASTER_ADDR", "node01"}}));
  ASSERT_TRUE(s.ok() && s->has_value()) << s.status().to_string();
  EXPECT_EQ((*s)->launcher, "slurm");
  EXPECT_EQ((*s)->rank, 5);
  EXPECT_EQ((*s)->world_size, 6);
  EXPECT_EQ((*s)->local_rank, 2);
  EXPECT_EQ((*s)->local_world_size, 3);
  EXPECT_EQ((*s)->master_addr, "node01");
}

TEST(LaunchEnvTest, BadValuesNameTheVariable) {
  auto e = read_launch_env(env_of({{"RANK", "2"}, {"WORLD_SIZE", "2"}}));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("RANK=2"), std::string::npos) << e.status().message();
  e = read_launch_env(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "http"}}));
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("MASTER_PORT=http"), std::string::npos);
}

TEST(ShardTest, ContiguousDisjointAndCovering) {
  for (int64_t n : {1, 5, 6, 7, 24}) {
    for (int world : {1, 2, 3, 4}) {
      int64_t next = 0;
      for (int r = 0; r < world; ++r) {
        const Shard s = shard_of(n, r, world);
        EXPECT_EQ(s.begin, next);
        EXPECT_GE(s.size(), n / world);
        EXPECT_LE(s.size(), n / world + 1);
        next = s.end;
      }
      EXPECT_EQ(next, n);
    }
  }
}

TEST(OneProcessTest, CollectivesAreTheIdentity) {
  DataParallel& dp = process_group();
  EXPECT_EQ(dp.world_size(), 1);
  auto t = torch::tensor({1.5, 2.5});
  dp.all_reduce_sum(t);
  dp.broadcast(t);
  dp.all_reduce_sum_async(t)();
  dp.barrier();
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.5, 2.5})));
  double x = 3;
  sum_over_ranks({&x}, dp);
  EXPECT_EQ(x, 3);
  EXPECT_TRUE(any_rank(true, dp));
  EXPECT_FALSE(any_rank(false, dp));
}

TEST(TwoRanksTest, SumsAndBroadcasts) {
  two_ranks([](int r, DataParallel& dp) {
    EXPECT_EQ(dp.rank(), r);
    EXPECT_EQ(dp.world_size(), 2);
    EXPECT_EQ(dp.backend(), "gloo");
    auto t = torch::tensor({1.0 + r, 10.0 * (r + 1)}, torch::kDouble);
    dp.all_reduce_sum(t);
    EXPECT_TRUE(torch::equal(t, torch::tensor({3.0, 30.0}, torch::kDouble)));
    auto b = torch::full({3}, static_cast<float>(r + 7));
    dp.broadcast(b);
    EXPECT_TRUE(torch::equal(b, torch::full({3}, 7.0f)));
    EXPECT_EQ(any_rank(r == 1, dp), true);
    int64_t n = r + 1;
    sum_over_ranks({&n}, dp);
    EXPECT_EQ(n, 3);
  });
}

// A second group (DataParallel::new_group) carries one thread's reductions while the
// first group carries another thread's, at the same time, on both ranks: every sum is
// right and neither waits on the other. (On one group the two threads' collectives would
// pair up with the other rank's in whatever order each rank issued them.)
TEST(TwoRanksTest, ANewGroupReducesOnAnotherThreadWhileTheFirstReduces) {
  two_ranks([](int r, DataParallel& dp) {
    std::unique_ptr<DataParallel> side = dp.new_group();
    ASSERT_EQ(side->rank(), r);
    ASSERT_EQ(side->world_size(), 2);
    constexpr int kRounds = 200;
    int side_wrong = 0, main_wrong = 0;
    std::thread other([&] {
      for (int k = 0; k < kRounds; ++k) {
        auto t = torch::tensor({1.0 + r, static_cast<double>(k)}, torch::kDouble);
        side->all_reduce_sum(t);  // {3, 2k}
        side_wrong += t[0].item<double>() != 3 || t[1].item<double>() != 2 * k;
      }
    });
    for (int k = 0; k < kRounds; ++k) {
      // Larger tensors than the other thread's, so the two groups' work interleaves.
      auto t = torch::full({4096}, 10.0 * (r + 1) + k, torch::kDouble);
      dp.all_reduce_sum(t);  // 30 + 2k
      main_wrong += !torch::equal(t, torch::full({4096}, 30.0 + 2 * k, torch::kDouble));
    }
    other.join();
    EXPECT_EQ(side_wrong, 0) << "rank " << r;
    EXPECT_EQ(main_wrong, 0) << "rank " << r;
    // The new group's barrier is its own (it counts apart from the first group's).
    side->barrier();
    dp.barrier();
  });
}

// Three layers, the middle one used by rows 0-1 only (so by rank 0's first micro-batch
// alone: a gradient on one rank, ready in no armed backward), and one parameter
// (`unused`) that gets a gradient nowhere.
struct Net {
  torch::Tensor a, b, c, unused;
  // A generator of its own: the ranks build their nets on two threads at once, and the
  // global generator shared between them would give each rank other weights.
  Net() {
    auto gen = at::detail::createCPUGenerator(3);
    a = torch::randn({4, 4}, gen).requires_grad_();
    b = torch::randn({4, 4}, gen).requires_grad_();
    c = torch::randn({4, 1}, gen).requires_grad_();
    unused = torch::randn({2}, gen).requires_grad_();
  }
  // In registration order; the buckets take them in reverse: {c}, {b}, {a}, {unused}.
  std::vector<torch::Tensor> params() const { return {unused, a, b, c}; }
  // Sum over rows [begin, end) of the loss; rows >= 2 skip b.
  torch::Tensor loss(const torch::Tensor& x, int64_t begin, int64_t end) const {
    torch::Tensor total = torch::zeros({});
    for (int64_t i = begin; i < end; ++i) {
      auto h = torch::tanh(x[i].unsqueeze(0).mm(a));
      if (i < 2) h = torch::tanh(h.mm(b));
      total = total + h.mm(c).pow(2).sum();
    }
    return total;
  }
};

TEST(TwoRanksTest, BucketedGradientsEqualOneProcesssGradients) {
  torch::manual_seed(9);
  const auto x = torch::randn({8, 4});
  Net one;
  // One process, two micro-batches of four rows each.
  one.loss(x, 0, 4).backward();
  one.loss(x, 4, 8).backward();
  ASSERT_FALSE(one.unused.grad().defined());

  std::vector<std::vector<torch::Tensor>> got(2);
  two_ranks([&](int r, DataParallel& group) {
    Net net;
    // Buckets of ~8 floats: the parameters spread over several, launched in order.
    GradientSync sync(net.params(), group, 8 * 4 / (1024.0 * 1024.0));
    EXPECT_GE(sync.n_buckets(), 3);
    // Each rank's two micro-batches: rank 0 rows 0-1 and 4-5, rank 1 rows 2-3 and 6-7; the
    // hooks launch the buckets during the second backward.
    net.loss(x, 2 * r, 2 * r + 2).backward();
    sync.before_last_backward();
    net.loss(x, 4 + 2 * r, 6 + 2 * r).backward();
    // c's bucket went out while the backward pass ran; b (not in this pass) held the rest.
    EXPECT_EQ(sync.sent_during_backward(), 1);
    sync.sum_gradients(net.params());
    for (const auto& p : net.params()) got[r].push_back(p.grad());
  });
  for (int r = 0; r < 2; ++r) {
    const auto want = one.params();
    for (size_t i = 1; i < 4; ++i) {
      ASSERT_TRUE(got[r][i].defined()) << "rank " << r << " param " << i;
      EXPECT_TRUE(torch::allclose(got[r][i], want[i].grad(), 1e-5, 1e-6))
          << "rank " << r << " param " << i;
    }
    EXPECT_FALSE(got[r][0].defined()) << "no rank had a gradient for it: it keeps none";
  }
}

// A GradientSync leaves its hooks on the parameters' gradient accumulators; once it is
// gone (armed, even) they do nothing, and the model trains alone: each rank's backward
// gives its own gradient, nothing is sent, and a new sync on the same model sums.
TEST(TwoRanksTest, HooksOfAGoneGradientSyncDoNothing) {
  torch::manual_seed(9);
  const auto x = torch::randn({8, 4});
  std::vector<torch::Tensor> alone(2), summed(2);
  two_ranks([&](int r, DataParallel& group) {
    Net net;
    {
      GradientSync gone(net.params(), group, 8 * 4 / (1024.0 * 1024.0));
      gone.before_last_backward();
    }
    net.loss(x, 2 * r, 2 * r + 2).backward();
    alone[r] = net.params()[1].grad().clone();
    GradientSync sync(net.params(), group, 8 * 4 / (1024.0 * 1024.0));
    for (auto& p : net.params()) p.mutable_grad() = torch::Tensor();
    sync.before_last_backward();
    net.loss(x, 2 * r, 2 * r + 2).backward();
    sync.sum_gradients(net.params());
    summed[r] = net.params()[1].grad().clone();
  });
  EXPECT_FALSE(torch::allclose(alone[0], alone[1])) << "each rank's own rows";
  for (int r = 0; r < 2; ++r)
    EXPECT_TRUE(torch::allclose(summed[r], alone[0] + alone[1], 1e-5, 1e-6)) << r;
}

// dist.shard_optimizer: with scatter_to_shards each rank gets the summed gradients of its
// own range of the numbers (a reduce-scatter per bucket) and zeros elsewhere. Flat, in
// parameter order: unused [0, 2), a [2, 18), b [18, 34), c [34, 38); rank 0 owns [0, 19),
// rank 1 [19, 38), so b is cut in two, and a's and c's buckets (one each) lie wholly in
// one rank's range: the other's part of them is empty. The owned slices equal the
// all-reduced gradients of the same backward passes; the global norm from the slices
// (ShardedAdamW::clip_grad_norm) is one process's.
TEST(TwoRanksTest, ScatteredGradientsAreTheAllReducedOnesSlices) {
  torch::manual_seed(9);
  const auto x = torch::randn({8, 4});
  Net one;
  one.loss(x, 0, 4).backward();
  one.loss(x, 4, 8).backward();
  const double want_norm = clip_grad_norm(one.params(), 0);
  // Each parameter's gradient, flat, zeros where it has none; and whether it has one.
  auto flat = [](const std::vector<torch::Tensor>& ps) {
    std::vector<torch::Tensor> parts;
    for (const auto& p : ps)
      parts.push_back(p.grad().defined() ? p.grad().reshape({-1}) : torch::zeros({p.numel()}));
    return torch::cat(parts);
  };
  std::vector<torch::Tensor> reduced(2), scattered(2);
  std::vector<std::vector<bool>> has(2);
  std::vector<double> norms(2);
  two_ranks([&](int r, DataParallel& group) {
    for (bool scatter : {false, true}) {
      Net net;
      GradientSync sync(net.params(), group, 8 * 4 / (1024.0 * 1024.0));
      torch::OrderedDict<std::string, torch::Tensor> named;
      for (const auto& [name, p] : {std::pair{"unused", net.unused}, std::pair{"a", net.a},
                                    std::pair{"b", net.b}, std::pair{"c", net.c}})
        named.insert(name, p);
      auto opt = ShardedAdamW::make(named, OptimConfig{}, group);
      ASSERT_TRUE(opt.ok());
      ASSERT_EQ((*opt)->total_numel(), 38);
      ASSERT_EQ((*opt)->chunk(), 19);
      if (scatter) sync.scatter_to_shards((*opt)->total_numel(), (*opt)->chunk());
      net.loss(x, 2 * r, 2 * r + 2).backward();
      sync.before_last_backward();
      net.loss(x, 4 + 2 * r, 6 + 2 * r).backward();
      sync.sum_gradients(net.params());
      (scatter ? scattered : reduced)[r] = flat(net.params());
      if (!scatter) continue;
      for (const auto& p : net.params()) has[r].push_back(p.grad().defined());
      norms[r] = (*opt)->clip_grad_norm(0);
    }
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(has[r], (std::vector<bool>{false, true, true, true}))
        << "rank " << r << ": no rank had a gradient for `unused`: it keeps none";
    const int64_t lo = 19 * r, n = 19;
    EXPECT_TRUE(torch::equal(scattered[r].narrow(0, lo, n), reduced[r].narrow(0, lo, n)))
        << "rank " << r << "\n"
        << scattered[r] << "\n"
        << reduced[r];
    auto outside = scattered[r].clone();
    outside.narrow(0, lo, n).zero_();
    EXPECT_EQ(outside.abs().max().item<float>(), 0) << "rank " << r << ": zeros outside its range";
    EXPECT_TRUE(torch::allclose(reduced[r], flat(one.params()), 1e-5, 1e-6)) << "rank " << r;
    EXPECT_NEAR(norms[r], want_norm, 1e-5 * want_norm) << "rank " << r;
  }
}

// ---------------------------------------------------------------------------------
// ZeRO stage 1 (train/sharded_adamw.h) on two ranks against one process's AdamW.

// 32 numbers: rank 0 steps [0, 16) = w and norm[0], rank 1 norm[1:], skip and v, so norm
// is cut in two. `skip` gets its first gradient at step 2.
// Deterministic values, without the (process-wide) random generator the rank threads share.
torch::OrderedDict<std::string, torch::Tensor> zero_params() {
  auto values = [](std::vector<int64_t> shape, double k) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return torch::cos(torch::arange(n, torch::kFloat) * k).reshape(shape).clone().requires_grad_();
  };
  torch::OrderedDict<std::string, torch::Tensor> d;
  d.insert("w", values({3, 5}, 0.7));  // decays
  d.insert("norm", values({7}, 1.3));  // 1-D: no decay
  d.insert("skip", values({4}, 2.1));
  d.insert("v", values({2, 3}, 0.4));
  return d;
}

// The summed gradients of step `s` (the same on every rank), clipped and stepped as
// guarded_step does; the clip (0.5) binds at every step.
void zero_step(torch::optim::AdamW& opt, const torch::OrderedDict<std::string, torch::Tensor>& ps,
               int s) {
  std::vector<torch::Tensor> params;
  for (const auto& p : ps) {
    params.push_back(p.value());
    if (p.key() == "skip" && s < 2) continue;
    p.value().mutable_grad() = torch::sin(p.value().detach() * (s + 1)) + 0.1 * s;
  }
  const GuardedStep g = guarded_step(opt, params, 0.5, 0.0);
  EXPECT_GT(g.grad_norm, 0.5);
  zero_grad(params);
}

OptimConfig zero_config() {
  OptimConfig c;
  c.lr = 0.1;
  c.weight_decay = 0.1;
  return c;
}

TEST(TwoRanksTest, ShardedAdamWStepsSavesAndResumesAsOneProcess) {
  const testing::ScopedTempDir tmp("r1kit_sharded_adamw");
  const std::string file = tmp.join("optimizer.safetensors");
  auto want = zero_params();
  auto ref = make_adamw(want, zero_config());
  for (int s = 0; s < 4; ++s) zero_step(*ref, want, s);
  const int64_t ref_bytes = optimizer_state_bytes(*ref);
  EXPECT_EQ(ref_bytes, 2 * 32 * 4);
  // What one process resumed from the sharded checkpoint steps next.
  auto resumed = zero_params();
  for (const auto& p : want) resumed[p.key()].detach().copy_(p.value());
  auto one = make_adamw(resumed, zero_config());

  std::vector<int64_t> bytes(2);
  two_ranks([&](int r, DataParallel& dp) {
    auto mine = zero_params();
    // Buffers of 3 slices (W + 1) of 3 floats: the all-gather takes 6 rounds for 16.
    auto opt = ShardedAdamW::make(mine, zero_config(), dp, 3 * 3 * 4 / (1024.0 * 1024.0));
    ASSERT_TRUE(opt.ok()) << opt.status().to_string();
    EXPECT_EQ((*opt)->shard_begin(), 16 * r);
    EXPECT_EQ((*opt)->shard_end(), 16 * (r + 1));
    for (int s = 0; s < 4; ++s) zero_step(**opt, mine, s);
    for (const auto& p : want)
      EXPECT_TRUE(torch::allclose(mine[p.key()], p.value(), 0, 1e-6))
          << "rank " << r << " " << p.key();
    bytes[r] = optimizer_state_bytes(**opt);
    // The whole state on rank 0, as one process's.
    (*opt)->gather_for_save();
    if (r == 0) {
      ASSERT_TRUE(save_adamw_state(**opt, mine, file).ok());
    }
    dp.barrier();
    // Every rank resumes from the file with fresh pieces, and steps on as one process.
    auto again = ShardedAdamW::make(mine, zero_config(), dp);
    ASSERT_TRUE(again.ok());
    ASSERT_TRUE(load_adamw_state(**again, mine, file).ok());
    EXPECT_EQ(optimizer_state_bytes(**again), bytes[r]);
    zero_step(**again, mine, 4);
    if (r == 0) {  // the reference's fifth step, once
      zero_step(*ref, want, 4);
    }
    dp.barrier();
    for (const auto& p : want)
      EXPECT_TRUE(torch::allclose(mine[p.key()], p.value(), 0, 1e-6))
          << "rank " << r << " " << p.key();
  });
  EXPECT_EQ(bytes[0], 2 * 16 * 4) << "w and norm[0]: half of the moments";
  EXPECT_EQ(bytes[1], 2 * 16 * 4);
  // The sharded checkpoint is one process's: it resumes unsharded to the same weights.
  ASSERT_TRUE(load_adamw_state(*one, resumed, file).ok());
  EXPECT_EQ(optimizer_state_bytes(*one), ref_bytes);
  zero_step(*one, resumed, 4);
  for (const auto& p : want)
    EXPECT_TRUE(torch::allclose(resumed[p.key()], p.value(), 0, 1e-6)) << p.key();
}

TEST(TwoRanksTest, ShardedAdamWRefusesMixedDtypes) {
  two_ranks([](int, DataParallel& dp) {
    torch::OrderedDict<std::string, torch::Tensor> d;
    d.insert("a", torch::zeros({2}).requires_grad_());
    d.insert("b", torch::zeros({2}, torch::kDouble).requires_grad_());
    auto opt = ShardedAdamW::make(d, OptimConfig{}, dp);
    ASSERT_FALSE(opt.ok());
    EXPECT_NE(opt.status().message().find("'b'"), std::string::npos) << opt.status().message();
  });
}

}  // namespace
}  // namespace r1kit::train
