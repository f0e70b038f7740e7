// gRPC rollout benchmarks: what going through a rollout worker costs against
// the in-process engine, and how fast weights reach a worker.
//
// Everything runs in this process on loopback, with a bearer token, the way a trainer
// and one `r1kit rollout-worker` on the same host talk: a RolloutWorker (worker.h) serves
// a LocalRolloutSource on its own threads, and a GrpcRolloutSource (grpc_source.h) talks
// to it through 127.0.0.1. Presets are randomly initialised with a fixed seed.
//
// rollout: the same request (--prompts prompts x G=--group samples, --new new tokens,
//   temperature 1, no stop ids, so every sample runs to the cap) through
//   LocalRolloutSource::generate and through GrpcRolloutSource::generate, alternating,
//   --repeats times each after one warm-up of each, on the same LocalRolloutSource (the
//   worker serves the very source the in-process path calls). The tokens, log-probs, finish
//   reasons and versions must be identical (the bench fails otherwise). Overhead =
//   gRPC wall time / in-process wall time - 1, from the means and from the minimums (the
//   minimum is the more robust under load), and the same for the CPU time (user +
//   system, every thread of the process: client, worker and engine). Since the engine's
//   own run-to-run noise on a loaded machine is larger than the protocol's cost, the
//   protocol is also timed alone: the same groups through a worker whose source
//   replays them at once (20 runs), as a share of the in-process rollout.
// update: GrpcRolloutSource::update_weights with every parameter and buffer (what the
//   GRPO trainer sends each step), --updates times after one warm-up; MB/s = tensor
//   bytes (1 MB = 1e6 bytes) / wall time of the whole call (checksums, streaming,
//   worker-side staging and verification, and the swap into the worker's model). For
//   reference it also times the parts: the client's checksum pass over all bytes, and
//   LocalRolloutSource::update_weights alone (the in-process copy). It also prints the
//   CPU time (user + system, all threads) per update, which other processes on a shared
//   machine disturb less than the wall time.
//
// Threads: the worker generates on its own thread, where OpenMP would otherwise use
// every core; the bench re-executes itself with OMP_NUM_THREADS=--threads (default 1,
// as the recipes use) so that both paths run with the same thread count.
//
// Usage: grpc_bench [--presets tiny,small] [--sections rollout,update] [--repeats 3]
//                   [--updates 5] [--prompts 16] [--group 8] [--new 64] [--prompt 16]
//                   [--threads 1]
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "core/crc32c.h"
#include "policy/model.h"
#include "rollout/grpc/grpc_source.h"
#include "rollout/grpc/worker.h"
#include "rollout/local_source.h"

using namespace r1kit;
using namespace r1kit::policy;
using namespace r1kit::bench;

namespace {

constexpr const char* kToken = "grpc-bench-7f3a9c2e5b1d4e8f";

// CPU seconds (user + system) of the whole process so far: every thread, client and
// worker alike; less sensitive than wall time to other processes on the machine.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double mean(const std::vector<double>& v) {
  return std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

double min_of(const std::vector<double>& v) {
  return *std::min_element(v.begin(), v.end());
}

[[noreturn]] void die(const Status& s, const char* what) {
  std::fprintf(stderr, "grpc_bench: %s: %s\n", what, s.to_string().c_str());
  std::exit(1);
}

rollout::GenerateRequest make_request(const ModelArgs& a, int64_t prompts, int64_t G, int64_t P,
                                      int64_t new_tokens) {
  rollout::GenerateRequest r;
  auto gen = at::detail::createCPUGenerator(7);
  for (int64_t i = 0; i < prompts; ++i) {
    auto t = torch::randint(3, a.vocab_size, {P}, gen, torch::kLong);
    r.prompts.push_back(
        {std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + P), i});
  }
  r.group_size = G;
  r.sampling.max_new_tokens = new_tokens;
  r.sampling.seed = 1;
  return r;
}

// Empty when equal, else where the first difference is.
std::string compare(const std::vector<rollout::Group>& a, const std::vector<rollout::Group>& b) {
  if (a.size() != b.size()) return fmt::format("{} groups vs {}", a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].prompt_index != b[i].prompt_index ||
        a[i].completions.size() != b[i].completions.size())
      return fmt::format("group {}: index or size differs", i);
    for (size_t j = 0; j < a[i].completions.size(); ++j) {
      const rollout::Completion &x = a[i].completions[j], &y = b[i].completions[j];
      if (x.token_ids != y.token_ids) return fmt::format("group {} sample {}: tokens differ", i, j);
      if (x.logprobs != y.logprobs)
        return fmt::format("group {} sample {}: log-probs differ", i, j);
      if (x.finish_reason != y.finish_reason || x.policy_version != y.policy_version)
        return fmt::format("group {} sample {}: finish reason or version differs", i, j);
    }
  }
  return "";
}

// Serves groups computed beforehand, at once: a worker around it costs only what the
// protocol costs (request, serialisation, streaming, the pool's bookkeeping).
class ReplaySource final : public rollout::RolloutSource {
 public:
  explicit ReplaySource(std::vector<rollout::Group> groups) : groups_(std::move(groups)) {}
  StatusOr<std::vector<rollout::Group>> generate(
      const rollout::GenerateRequest& request,
      const std::function<void(const rollout::Group&)>& on_group) override {
    if (request.prompts.size() != groups_.size())
      return InvalidArgument("replay: {} prompts, {} groups recorded", request.prompts.size(),
                             groups_.size());
    if (on_group)
      for (const auto& g : groups_) on_group(g);
    return groups_;
  }
  Status update_weights(const rollout::NamedTensors&, int64_t) override { return OkStatus(); }
  int64_t policy_version() const override { return 0; }

 private:
  std::vector<rollout::Group> groups_;
};

rollout::NamedTensors named_weights(TransformerImpl& m) {
  rollout::NamedTensors out;
  for (const auto& p : m.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : m.named_buffers()) out.emplace_back(b.key(), b.value().detach());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  bench_init();
  std::string presets = "tiny,small", sections = "rollout,update";
  int64_t repeats = 3, updates = 5, prompts = 16, G = 8, new_tokens = 64, P = 16, threads = 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--presets")
      presets = v;
    else if (k == "--sections")
      sections = v;
    else if (k == "--repeats")
      repeats = std::stoll(v);
    else if (k == "--updates")
      updates = std::stoll(v);
    else if (k == "--prompts")
      prompts = std::stoll(v);
    else if (k == "--group")
      G = std::stoll(v);
    else if (k == "--new")
      new_tokens = std::stoll(v);
    else if (k == "--prompt")
      P = std::stoll(v);
    else if (k == "--threads")
      threads = std::stoll(v);
    else {
      std::fprintf(stderr, "grpc_bench: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  if (repeats < 1 || updates < 1 || threads < 1) {
    std::fprintf(stderr, "grpc_bench: --repeats, --updates and --threads must be >= 1\n");
    return 2;
  }
  // OpenMP reads OMP_NUM_THREADS once, at load: set it and start again.
  const std::string want = std::to_string(threads);
  const char* have = std::getenv("OMP_NUM_THREADS");
  if (have == nullptr || want != have) {
    setenv("OMP_NUM_THREADS", want.c_str(), 1);
    execv("/proc/self/exe", argv);
    std::perror("grpc_bench: re-executing with OMP_NUM_THREADS");
    return 1;
  }
  at::set_num_threads(static_cast<int>(threads));
  const auto secs = split(sections);
  std::printf("threads %d (OMP_NUM_THREADS=%s), loopback, bearer token\n", at::get_num_threads(),
              have);
  torch::NoGradGuard no_grad;

  for (const auto& p : split(presets)) {
    auto args_or = preset(p);
    if (!args_or.ok()) die(args_or.status(), "preset");
    const ModelArgs a = *args_or;
    Transformer m(a);
    m->init_weights(1);
    m->eval();

    rollout::EngineOptions eo;
    eo.max_batch = prompts * G;
    eo.max_seq_len = P + new_tokens;
    // One source for both paths (the same weights in the same memory, the same engine
    // and KV cache): called directly, and served by the worker.
    auto local = rollout::LocalRolloutSource::copy_of(*m, eo);
    rollout::LocalRolloutSource* served = local.get();
    rollout::WorkerOptions wo;
    wo.token = kToken;
    wo.limits.vocab_size = a.vocab_size;
    wo.limits.max_prompt_tokens = served->max_seq_len() - 1;
    wo.limits.max_new_tokens = served->max_seq_len() - 1;
    wo.abort_generation = [served] { served->abort(); };
    rollout::RolloutWorker worker(*served, wo);
    if (Status s = worker.start(); !s.ok()) die(s, "worker start");
    rollout::GrpcSourceOptions go;
    go.workers = {fmt::format("127.0.0.1:{}", worker.port())};
    go.token = kToken;
    auto remote_or = rollout::make_grpc_rollout_source(go);
    if (!remote_or.ok()) die(remote_or.status(), "grpc source");
    rollout::RolloutSource& remote = **remote_or;

    if (has(secs, "rollout")) {
      const rollout::GenerateRequest req = make_request(a, prompts, G, P, new_tokens);
      std::printf(
          "\n%s: rollout, %lld prompts x G=%lld, prompt %lld tokens, %lld new tokens, fp32, "
          "%lld slots\n",
          p.c_str(), static_cast<long long>(prompts), static_cast<long long>(G),
          static_cast<long long>(P), static_cast<long long>(new_tokens),
          static_cast<long long>(eo.max_batch));
      std::vector<double> t_local, t_grpc, c_local, c_grpc;
      std::vector<rollout::Group> recorded;
      // Timed call: wall and CPU seconds.
      auto timed = [](auto&& fn, double* wall, double* cpu) {
        const double c0 = cpu_seconds();
        const auto t0 = Clock::now();
        auto out = fn();
        *wall = seconds_since(t0);
        *cpu = cpu_seconds() - c0;
        return out;
      };
      for (int64_t r = 0; r <= repeats; ++r) {  // r = 0: warm-up of both
        // Which path runs first alternates, so that neither always follows the other.
        double tl = 0, cl = 0, tg = 0, cg = 0;
        StatusOr<std::vector<rollout::Group>> x = InvalidArgument("not run"), y = x;
        auto run_local = [&] { x = timed([&] { return local->generate(req); }, &tl, &cl); };
        auto run_grpc = [&] { y = timed([&] { return remote.generate(req); }, &tg, &cg); };
        if (r % 2 == 0) {
          run_local();
          run_grpc();
        } else {
          run_grpc();
          run_local();
        }
        if (!x.ok()) die(x.status(), "in-process generate");
        if (!y.ok()) die(y.status(), "gRPC generate");
        if (std::string d = compare(*x, *y); !d.empty()) {
          std::fprintf(stderr, "grpc_bench: %s: in-process and gRPC outputs differ: %s\n",
                       p.c_str(), d.c_str());
          return 1;
        }
        std::printf(
            "  %s: in-process %.3f s (CPU %.3f s), gRPC %.3f s (CPU %.3f s); identical tokens "
            "and log-probs\n",
            r == 0 ? "warm-up" : fmt::format("run {}", r).c_str(), tl, cl, tg, cg);
        std::fflush(stdout);
        if (r == 0) {
          recorded = std::move(*x);
          continue;
        }
        t_local.push_back(tl);
        t_grpc.push_back(tg);
        c_local.push_back(cl);
        c_grpc.push_back(cg);
      }
      auto pct = [](double a, double b) { return 100 * (a / b - 1); };
      std::printf(
          "| preset | in-process s (mean / min) | gRPC s (mean / min) | overhead: means | "
          "mins | CPU s in-process / gRPC (means) | CPU overhead |\n"
          "|---|---|---|---|---|---|---|\n");
      std::printf(
          "| %s | %.3f / %.3f | %.3f / %.3f | %+.1f%% | %+.1f%% | %.3f / %.3f | %+.1f%% |\n",
          p.c_str(), mean(t_local), min_of(t_local), mean(t_grpc), min_of(t_grpc),
          pct(mean(t_grpc), mean(t_local)), pct(min_of(t_grpc), min_of(t_local)), mean(c_local),
          mean(c_grpc), pct(mean(c_grpc), mean(c_local)));
      std::fflush(stdout);

      // The protocol alone: the same groups through a worker that replays them.
      ReplaySource replay(std::move(recorded));
      rollout::RolloutWorker replay_worker(replay, wo);
      if (Status s = replay_worker.start(); !s.ok()) die(s, "replay worker start");
      rollout::GrpcSourceOptions ro = go;
      ro.workers = {fmt::format("127.0.0.1:{}", replay_worker.port())};
      auto replay_remote = rollout::make_grpc_rollout_source(ro);
      if (!replay_remote.ok()) die(replay_remote.status(), "grpc source (replay)");
      std::vector<double> t_replay, c_replay;
      for (int64_t r = 0; r <= 20; ++r) {  // r = 0: warm-up
        const double c0 = cpu_seconds();
        const auto t0 = Clock::now();
        auto z = (*replay_remote)->generate(req);
        const double tz = seconds_since(t0), cz = cpu_seconds() - c0;
        if (!z.ok()) die(z.status(), "gRPC generate (replay)");
        if (r == 0) continue;
        t_replay.push_back(tz);
        c_replay.push_back(cz);
      }
      replay_worker.shutdown();
      std::printf(
          "protocol alone (the same %lld groups replayed by a worker, 20 runs): %.1f ms wall "
          "(min %.1f), %.1f ms CPU = %.2f%% / %.2f%% of the in-process rollout's mean wall / CPU "
          "time\n",
          static_cast<long long>(prompts), 1e3 * mean(t_replay), 1e3 * min_of(t_replay),
          1e3 * mean(c_replay), 100 * mean(t_replay) / mean(t_local),
          100 * mean(c_replay) / mean(c_local));
      std::fflush(stdout);
    }

    if (has(secs, "update")) {
      const rollout::NamedTensors w = named_weights(*m);
      int64_t bytes = 0;
      for (const auto& [_, t] : w) bytes += t.nbytes();
      const double mb = static_cast<double>(bytes) / 1e6;
      std::printf("\n%s: weight update, %zu tensors, %.1f MB\n", p.c_str(), w.size(), mb);
      // The parts, for reference.
      auto t0 = Clock::now();
      uint32_t sum = 0;
      for (const auto& [_, t] : w) sum ^= crc32c(t.data_ptr(), t.nbytes());
      const double t_sum = seconds_since(t0);
      t0 = Clock::now();
      if (Status s = local->update_weights(w, 1); !s.ok()) die(s, "in-process update");
      const double t_copy = seconds_since(t0);
      std::printf(
          "  CRC-32C pass over all bytes %.3f s (%.0f MB/s; %08x), in-process "
          "update_weights %.3f s (%.0f MB/s)\n",
          t_sum, mb / t_sum, sum, t_copy, mb / t_copy);
      std::vector<double> t_update, cpu_update;
      for (int64_t u = 0; u <= updates; ++u) {  // u = 0: warm-up
        const double c0 = cpu_seconds();
        t0 = Clock::now();
        if (Status s = remote.update_weights(w, u + 1); !s.ok()) die(s, "gRPC update_weights");
        const double t = seconds_since(t0), cpu = cpu_seconds() - c0;
        std::printf("  %s: %.3f s, %.0f MB/s, CPU %.3f s\n",
                    u == 0 ? "warm-up" : fmt::format("update {}", u).c_str(), t, mb / t, cpu);
        std::fflush(stdout);
        if (u > 0) {
          t_update.push_back(t);
          cpu_update.push_back(cpu);
        }
      }
      if (served->policy_version() != updates + 1) {
        std::fprintf(stderr, "grpc_bench: the worker has version %lld, expected %lld\n",
                     static_cast<long long>(served->policy_version()),
                     static_cast<long long>(updates + 1));
        return 1;
      }
      std::printf(
          "| preset | MB | s per update (mean / min) | MB/s (of the mean) | best MB/s | "
          "CPU s per update (mean) |\n|---|---|---|---|---|---|\n");
      std::printf("| %s | %.1f | %.3f / %.3f | %.0f | %.0f | %.3f |\n", p.c_str(), mb,
                  mean(t_update), min_of(t_update), mb / mean(t_update), mb / min_of(t_update),
                  mean(cpu_update));
      std::fflush(stdout);
    }
    worker.shutdown();
  }
  return 0;
}
