// The gradient sum of dist.shard_optimizer (ZeRO stage 1, train/sharded_adamw.h) on c10d's
// ProcessGroupGloo: today's all-reduce of every gradient against a reduce-scatter, which
// gives each rank only the sum of its own slice (Rajbhandari et al., "ZeRO", SC 2020,
// section 5.1: half the all-reduce's traffic). PyTorch 1.13's Gloo group has no
// reduce_scatter (the bench tries it and prints the error), so the reduce-scatter is
// emulated as the trainer would: an all-to-all (Gloo's alltoallv) that sends each rank
// its slice of every rank's gradients, then the sum of the W slices received.
//
// The ranks are threads of this process, each with its own group over loopback TCP (as
// tests/two_ranks.h). Each round times one all-reduce and one emulated reduce-scatter of
// the same flat fp32 gradient, alternating, after a small all-reduce that lines the
// ranks up; a round's time is the slowest rank's. Prints the median and minimum over the
// rounds, and whether both give the same sums on this rank's slice.
//
// Also prints the all-reduce's bandwidth and a one-thread memory copy of the same bytes.
//
// Usage: grad_reduce_bench [--numel 6551040] [--world 2] [--rounds 20]
//   --numel: gradient numbers (default: the tiny preset's trainable numbers, one 25 MB
//   bucket of train/grad_sync.h).
#define USE_C10D_GLOO 1
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

void wait(const c10::intrusive_ptr<c10d::Work>& w) {
  w->wait(std::chrono::milliseconds(120000));
}

struct Times {
  std::vector<double> all_reduce, reduce_scatter;
  double max_abs_diff = 0;
  std::string native;  // what Gloo's own reduce_scatter said
};

void rank_main(int rank, int world, int port, int64_t numel, int rounds, Times& out) {
  c10d::TCPStoreOptions so;
  so.port = static_cast<std::uint16_t>(port);
  so.isServer = rank == 0;
  so.waitWorkers = false;
  so.timeout = std::chrono::milliseconds(60000);
  auto store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", so);
  auto opts = c10d::ProcessGroupGloo::Options::create(std::chrono::milliseconds(120000));
  opts->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  opts->threads = 2;  // as train/distributed.cpp
  auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(
      c10::make_intrusive<c10d::PrefixStore>("gloo", store), rank, world, opts);

  // Rank r's slice, as train::ShardedAdamW cuts it: [r * C, min(N, (r + 1) * C)).
  const int64_t chunk = (numel + world - 1) / world;
  std::vector<int64_t> counts;
  for (int r = 0; r < world; ++r)
    counts.push_back(std::max<int64_t>(0, std::min(numel, (r + 1) * chunk) - r * chunk));
  const int64_t begin = rank * chunk, mine = counts[rank];

  // Gloo's own reduce_scatter, equal parts.
  {
    std::vector<at::Tensor> o{torch::zeros({chunk})};
    std::vector<std::vector<at::Tensor>> in(1);
    for (int r = 0; r < world; ++r) in[0].push_back(torch::ones({chunk}));
    try {
      wait(pg->reduce_scatter(o, in));
      out.native = "supported";
    } catch (const std::exception& e) {
      out.native = e.what();
      out.native = out.native.substr(0, out.native.find('\n'));
    }
  }

  auto grads = torch::randn({numel}) * (rank + 1);
  auto summed = torch::empty({numel});
  auto recv = torch::empty({world * mine});
  auto slice = torch::empty({mine});
  std::vector<int64_t> out_counts(world, mine);
  auto line_up = [&] {
    std::vector<at::Tensor> t{torch::zeros({1})};
    wait(pg->allreduce(t));
  };
  for (int i = 0; i < rounds + 1; ++i) {  // round 0 warms up
    line_up();
    auto t0 = Clock::now();
    summed.copy_(grads);  // the bucket's copy, as train/grad_sync.cpp packs it
    std::vector<at::Tensor> t{summed};
    wait(pg->allreduce(t));
    const double ar = seconds(t0);

    line_up();
    t0 = Clock::now();
    auto input = grads.clone();  // the same packing copy
    wait(pg->alltoall_base(recv, input, out_counts, counts));
    slice.copy_(recv.view({world, mine}).sum(0));
    const double rs = seconds(t0);
    if (i == 0) continue;
    out.all_reduce.push_back(ar);
    out.reduce_scatter.push_back(rs);
    out.max_abs_diff = std::max(out.max_abs_diff,
                                (slice - summed.narrow(0, begin, mine)).abs().max().item<double>());
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int64_t numel = 6551040;
  int world = 2, rounds = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--numel"))
      numel = std::atoll(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--world"))
      world = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--rounds"))
      rounds = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  torch::set_num_threads(1);
  const int port =
      20000 + static_cast<int>(std::chrono::steady_clock::now().time_since_epoch().count() % 20000);
  std::vector<Times> times(world);
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r)
    ranks.emplace_back([&, r] { rank_main(r, world, port, numel, rounds, times[r]); });
  for (auto& t : ranks) t.join();
  // Each round's time: the slowest rank's.
  std::vector<double> ar(rounds, 0), rs(rounds, 0);
  double diff = 0;
  for (const Times& t : times) {
    for (int i = 0; i < rounds; ++i) {
      ar[i] = std::max(ar[i], t.all_reduce[i]);
      rs[i] = std::max(rs[i], t.reduce_scatter[i]);
    }
    diff = std::max(diff, t.max_abs_diff);
  }
  const double mb = numel * 4.0 / (1 << 20);
  // The memory-copy rate on one thread, for scale: the same bytes copied, median of 20.
  std::vector<double> copy;
  {
    auto src = torch::randn({numel}), dst = torch::empty({numel});
    for (int i = 0; i < 21; ++i) {
      auto t0 = Clock::now();
      dst.copy_(src);
      if (i > 0) copy.push_back(seconds(t0));
    }
  }
  std::printf("Gloo reduce_scatter: %s\n", times[0].native.c_str());
  std::printf("%d ranks, %lld fp32 gradients (%.1f MB), %d rounds\n", world,
              static_cast<long long>(numel), mb, rounds);
  std::printf("all-reduce                  median %.1f ms  min %.1f ms\n", 1e3 * median(ar),
              1e3 * *std::min_element(ar.begin(), ar.end()));
  std::printf("reduce-scatter (all-to-all) median %.1f ms  min %.1f ms\n", 1e3 * median(rs),
              1e3 * *std::min_element(rs.begin(), rs.end()));
  std::printf("max |slice difference|: %g\n", diff);
  // Bus bandwidth as NCCL's tests define it: what each rank sends, 2 (W - 1) / W of the
  // bytes for a ring all-reduce, over the time.
  const double bytes = numel * 4.0;
  std::printf(
      "all-reduce: %.2f GB/s of gradients (bus %.2f GB/s); one-thread memory copy of "
      "the same bytes: median %.1f ms, %.2f GB/s\n",
      bytes / median(ar) / 1e9, 2.0 * (world - 1) / world * bytes / median(ar) / 1e9,
      1e3 * median(copy), bytes / median(copy) / 1e9);
  return 0;
}
