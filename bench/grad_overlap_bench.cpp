// How much of the gradient all-reduce the bucketed overlap of train/grad_sync.h hides
// behind the backward pass (docs/distributed.md, "Gradients"). W ranks (threads of this
// process, each joined to its own ProcessGroupGloo over loopback through train::connect,
// as tests/two_ranks.h) train one preset's model on their own random batch. Each round
// times, back to back and alternating:
//   compute  forward + backward, no all-reduce (what the step would cost alone);
//   after    the same, the gradients all-reduced as one bucket, launched when the last
//            gradient is ready: one all-reduce after the backward pass;
//   overlap  the same with buckets of --bucket-mb, each launched from the autograd hooks
//            as soon as its gradients are ready, while the backward pass goes on.
// A round's time is the slowest rank's. For `after` and `overlap` it also reports the
// exposed communication: from the end of the backward pass to the summed gradients. The
// speed-up of the overlap is (after - compute) / (overlap - compute), the all-reduce time
// a step pays in each; the share hidden is 1 - exposed(overlap) / exposed(after).
//
// Usage: grad_overlap_bench [--preset tiny] [--batch 8] [--seq 128] [--bucket-mb 4]
//                           [--rounds 10] [--world 2]
//   --batch, --seq: each rank's rows and tokens per row.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "policy/model.h"
#include "policy/model_config.h"
#include "train/distributed.h"
#include "train/grad_sync.h"

using namespace r1kit;

namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

struct Options {
  std::string preset = "tiny";
  int64_t batch = 8, seq = 128, rounds = 10;
  double bucket_mb = 4;
  int world = 2;
};

enum Mode { kCompute, kAfter, kOverlap, kModes };
const char* kNames[kModes] = {"compute", "after", "overlap"};

struct RankTimes {
  std::vector<double> step[kModes], exposed[kModes];
  int64_t buckets = 0, sent_during_backward = 0;
};

// Rank `rank`'s part; its group goes to `kept`, which main closes with rank 0's last (rank
// 0 hosts the rendezvous store).
void rank_main(int rank, int port, const Options& o, RankTimes& out,
               std::unique_ptr<train::DataParallel>& kept) {
  train::LaunchEnv env;
  env.rank = rank;
  env.world_size = o.world;
  env.master_port = port;
  env.launcher = "bench";
  train::DistSection dist;
  dist.timeout_s = 120;
  auto group_or = train::connect(env, dist);
  if (!group_or.ok()) {
    std::fprintf(stderr, "rank %d: %s\n", rank, group_or.status().to_string().c_str());
    std::exit(1);
  }
  kept = std::move(*group_or);
  train::DataParallel& group = *kept;

  const policy::ModelArgs a = *policy::preset(o.preset);
  policy::Transformer m(a);
  m->init_weights(1);
  m->train();
  torch::manual_seed(100 + rank);
  auto ids = torch::randint(a.vocab_size, {o.batch, o.seq + 1}, torch::kLong);
  const auto params = m->parameters();
  // Both syncs stay alive (their hooks on the same accumulators); only the armed one acts.
  train::GradientSync after(params, group, 1e9);
  train::GradientSync overlap(params, group, o.bucket_mb);
  out.buckets = overlap.n_buckets();
  auto line_up = [&] {
    auto t = torch::zeros({1});
    group.all_reduce_sum(t);
  };
  for (int64_t r = 0; r <= o.rounds; ++r) {  // round 0 warms up
    for (int mode = 0; mode < kModes; ++mode) {
      train::GradientSync* sync = mode == kAfter ? &after : mode == kOverlap ? &overlap : nullptr;
      for (auto& p : params) p.mutable_grad() = torch::Tensor();
      line_up();
      const auto t0 = Clock::now();
      auto out_fwd = m->forward(ids.narrow(1, 0, o.seq), {});
      auto loss = torch::nn::functional::cross_entropy(out_fwd.logits.reshape({-1, a.vocab_size}),
                                                       ids.narrow(1, 1, o.seq).reshape({-1}));
      if (sync) sync->before_last_backward();
      loss.backward();
      const auto t_bwd = Clock::now();
      if (sync) sync->sum_gradients(params);
      const auto t1 = Clock::now();
      if (r == 0) continue;
      out.step[mode].push_back(seconds(t0, t1));
      out.exposed[mode].push_back(seconds(t_bwd, t1));
    }
  }
  out.sent_during_backward = overlap.sent_during_backward();
  group.barrier();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const char* v = argv[i + 1];
    if (k == "--preset")
      o.preset = v;
    else if (k == "--batch")
      o.batch = std::atoll(v);
    else if (k == "--seq")
      o.seq = std::atoll(v);
    else if (k == "--bucket-mb")
      o.bucket_mb = std::atof(v);
    else if (k == "--rounds")
      o.rounds = std::atoll(v);
    else if (k == "--world")
      o.world = std::atoi(v);
    else {
      std::fprintf(stderr, "unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (!policy::preset(o.preset).ok()) {
    std::fprintf(stderr, "%s\n", policy::preset(o.preset).status().to_string().c_str());
    return 2;
  }
  torch::set_num_threads(1);
  const int port = 20000 + static_cast<int>(Clock::now().time_since_epoch().count() % 20000);
  std::vector<RankTimes> times(o.world);
  std::vector<std::unique_ptr<train::DataParallel>> groups(o.world);
  std::vector<std::thread> ranks;
  for (int r = 0; r < o.world; ++r)
    ranks.emplace_back([&, r] { rank_main(r, port, o, times[r], groups[r]); });
  for (auto& t : ranks) t.join();
  for (int r = o.world - 1; r >= 0; --r) groups[r].reset();

  // Each round's figure: the slowest rank's.
  double med[kModes], exposed[kModes];
  for (int mode = 0; mode < kModes; ++mode) {
    std::vector<double> step(o.rounds, 0), exp(o.rounds, 0);
    for (const RankTimes& t : times)
      for (int64_t i = 0; i < o.rounds; ++i) {
        step[i] = std::max(step[i], t.step[mode][i]);
        exp[i] = std::max(exp[i], t.exposed[mode][i]);
      }
    med[mode] = median(step);
    exposed[mode] = median(exp);
  }
  const auto a = *policy::preset(o.preset);
  int64_t numel = 0;
  for (const auto& p : policy::Transformer(a)->parameters()) numel += p.numel();
  std::printf(
      "%d ranks x 1 thread, preset %s (%.1f MB of fp32 gradients), %lld x %lld tokens "
      "per rank, %lld rounds; overlap buckets of %.1f MB: %lld buckets, %lld of them "
      "launched during the backward pass\n",
      o.world, o.preset.c_str(), numel * 4 / 1e6, static_cast<long long>(o.batch),
      static_cast<long long>(o.seq), static_cast<long long>(o.rounds), o.bucket_mb,
      static_cast<long long>(times[0].buckets),
      static_cast<long long>(times[0].sent_during_backward / (o.rounds + 1)));
  for (int mode = 0; mode < kModes; ++mode)
    std::printf("%-8s median step %7.1f ms   exposed all-reduce %6.1f ms\n", kNames[mode],
                1e3 * med[mode], mode == kCompute ? 0.0 : 1e3 * exposed[mode]);
  const double paid_after = med[kAfter] - med[kCompute];
  const double paid_overlap = med[kOverlap] - med[kCompute];
  std::printf(
      "all-reduce time paid per step: after %.1f ms, overlap %.1f ms (%.2fx); "
      "share of the after-backward all-reduce hidden: %.0f%%\n",
      1e3 * paid_after, 1e3 * paid_overlap, paid_after / std::max(paid_overlap, 1e-9),
      100 * (1 - exposed[kOverlap] / std::max(exposed[kAfter], 1e-9)));
  return 0;
}
