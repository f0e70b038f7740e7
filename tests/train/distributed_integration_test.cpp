// Data parallelism end to end (docs/distributed.md): build/r1kit started as 1, 2 and 3
// ranks with torchrun's environment variables on the nano preset ends at the weights of
// one process, within 1e-5, for pretrain, SFT and GRPO, and on 2 ranks for distillation
// and `r1kit run`; rank 0 alone writes the metrics, traces, evaluations and report.
// Through torchrun itself: one node, two nodes on loopback, and a restart
// (--max_restarts) that resumes from the last checkpoint. A rank that dies or stops
// answering makes the others exit non-zero within dist.timeout_s, naming it.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "core/metric_names.h"
#include "core/safetensors.h"
#include "tests/cli_util.h"
#include "tests/temp_dir.h"

namespace r1kit {
namespace {
namespace fs = std::filesystem;
using testing::r1kit_binary;
using testing::run_command;

std::string recipe(const std::string& name) {
  return std::string(R1KIT_TESTDATA) + "/dist/" + name;
}

// Each test's directories (the ranks and launchers write there) are in a directory of its
// own, removed when the test ends.
class DistributedIntegrationTest : public ::testing::Test {
 protected:
  // A new empty directory of this test's.
  std::string dist_dir(const std::string& name) const {
    const std::string dir = tmp_.join(name);
    fs::create_directories(dir);
    return dir;
  }

 private:
  testing::ScopedTempDir tmp_{"r1kit_dist"};
};

// A port nothing listens on now (the kernel's pick; released again at once).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Ranks {
  std::vector<int> rc;            // each rank's exit status
  std::vector<std::string> logs;  // each rank's stdout and stderr
  double seconds = 0;             // until the last rank exited
};

// Starts `world` processes of `r1kit ARGS` with torchrun's variables and waits for all;
// `prefix(rank)` goes before the binary (e.g. `timeout`), logs go to DIR/rankR.log.
Ranks launch(int world, const std::string& args, const std::string& dir,
             const std::function<std::string(int)>& prefix = {}) {
  const int port = free_port();
  std::string cmd = "(";
  for (int r = 0; r < world; ++r)
    cmd += fmt::format(
        "(RANK={0} WORLD_SIZE={1} LOCAL_RANK={0} LOCAL_WORLD_SIZE={1} MASTER_ADDR=127.0.0.1 "
        "MASTER_PORT={2} {3} {4} {5} > {6}/rank{0}.log 2>&1; echo $? > {6}/rank{0}.rc) & ",
        r, world, port, prefix ? prefix(r) : "", r1kit_binary(), args, dir);
  cmd += "wait)";
  const auto t0 = std::chrono::steady_clock::now();
  run_command(cmd, true);
  Ranks out;
  out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (int r = 0; r < world; ++r) {
    const std::string rc = read_text(fmt::format("{}/rank{}.rc", dir, r));
    out.rc.push_back(rc.empty() ? -1 : std::stoi(rc));
    out.logs.push_back(read_text(fmt::format("{}/rank{}.log", dir, r)));
  }
  return out;
}

// One process, no launcher variables: the reference.
void run_alone(const std::string& args) {
  auto [rc, out] = run_command(r1kit_binary() + " " + args, true);
  ASSERT_EQ(rc, 0) << out;
}

using LoadFn = std::function<torch::Tensor(const std::string&)>;

// Same-named tensors of two sets differ by at most `tol`, and the names agree.
void expect_same_tensors(const std::vector<std::string>& na, const LoadFn& a,
                         const std::vector<std::string>& nb, const LoadFn& b, double tol,
                         const std::string& what) {
  ASSERT_EQ(na, nb) << what;
  double worst = 0;
  std::string where;
  for (const auto& n : na) {
    auto ta = a(n).to(torch::kDouble), tb = b(n).to(torch::kDouble);
    const double d = ta.numel() > 0 ? (ta - tb).abs().max().item<double>() : 0.0;
    if (d > worst) {
      worst = d;
      where = n;
    }
  }
  EXPECT_LE(worst, tol) << what << ", worst: " << where;
}

void expect_same_weights(const std::string& a, const std::string& b, double tol) {
  auto ca = SafetensorsCheckpoint::open_dir(a);
  auto cb = SafetensorsCheckpoint::open_dir(b);
  ASSERT_TRUE(ca.ok() && cb.ok()) << a << " " << b;
  expect_same_tensors(
      ca->names(), [&](const std::string& n) { return *ca->load(n); }, cb->names(),
      [&](const std::string& n) { return *cb->load(n); }, tol, a + " vs " + b);
}

// Two optimizer.safetensors (train/optim.h) hold the same state within `tol`.
void expect_same_optimizer_state(const std::string& a, const std::string& b, double tol) {
  auto fa = SafetensorsFile::open(a);
  auto fb = SafetensorsFile::open(b);
  ASSERT_TRUE(fa.ok() && fb.ok()) << a << " " << b;
  auto names = [](const SafetensorsFile& f) {
    std::vector<std::string> out;
    for (const auto& t : f.tensors()) out.push_back(t.name);
    std::sort(out.begin(), out.end());
    return out;
  };
  expect_same_tensors(
      names(**fa), [&](const std::string& n) { return *(*fa)->load(n); }, names(**fb),
      [&](const std::string& n) { return *(*fb)->load(n); }, tol, a + " vs " + b);
}

int64_t lines(const std::string& path) {
  std::ifstream in(path);
  int64_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// Rank 0 logs the expert loads of the whole job: each step's `moe/load/...` shares equal
// the one-process run's.
void expect_same_expert_loads(const std::string& one, const std::string& many) {
  std::ifstream a(one), b(many);
  int64_t compared = 0;
  for (std::string la, lb; std::getline(a, la) && std::getline(b, lb);) {
    const auto ja = nlohmann::json::parse(la), jb = nlohmann::json::parse(lb);
    for (const auto& [key, value] : ja.items()) {
      if (!key.starts_with(metric::kMoeLoadPrefix)) continue;
      ASSERT_TRUE(jb.contains(key)) << many << ": " << key;
      EXPECT_NEAR(jb[key].get<double>(), value.get<double>(), 1e-6) << many << ": " << key;
      ++compared;
    }
  }
  EXPECT_GT(compared, 0) << one << " logs no expert loads";
}

// The metrics.jsonl lines of runs `a` and `b` agree on every step in each of `keys`
// (both null, or within 1e-5 relative): rank 0 logs the job's metrics, not its shard's.
void expect_same_metrics(const std::string& a, const std::string& b,
                         const std::vector<std::string>& keys) {
  std::ifstream fa(a + "/metrics.jsonl"), fb(b + "/metrics.jsonl");
  int64_t n = 0;
  for (std::string la, lb; std::getline(fa, la) && std::getline(fb, lb); ++n) {
    const auto ja = nlohmann::json::parse(la), jb = nlohmann::json::parse(lb);
    for (const auto& k : keys) {
      ASSERT_TRUE(ja.contains(k) && jb.contains(k)) << k << "\n" << la << "\n" << lb;
      if (ja[k].is_null() || jb[k].is_null()) {
        EXPECT_EQ(ja[k].is_null(), jb[k].is_null()) << k << "\n" << la << "\n" << lb;
        continue;
      }
      const double x = ja[k].get<double>(), y = jb[k].get<double>();
      EXPECT_NEAR(x, y, 1e-5 * std::max(1.0, std::abs(x))) << k << " at line " << n + 1;
    }
  }
  EXPECT_GT(n, 0);
}

// 1, 2 and 3 ranks of `cmd RECIPE` in BASE end at the weights of the one-process run, and
// log the same `metrics`.
void expect_world_size_invariant(const std::string& base, const std::string& name,
                                 const std::string& cmd, const std::string& extra, int64_t steps,
                                 const std::vector<std::string>& metrics = {}) {
  run_alone(
      fmt::format("{} {} checkpoint.dir={}/w0 {}", cmd, recipe(name + "-nano.yaml"), base, extra));
  for (int world : {1, 2, 3}) {
    const std::string dir = fmt::format("{}/w{}", base, world);
    fs::create_directories(dir);
    Ranks got = launch(
        world,
        fmt::format("{} {} checkpoint.dir={} {}", cmd, recipe(name + "-nano.yaml"), dir, extra),
        dir);
    for (int r = 0; r < world; ++r) {
      ASSERT_EQ(got.rc[r], 0) << "rank " << r << " of " << world << ":\n" << got.logs[r];
      EXPECT_NE(got.logs[r].find(fmt::format("rank {} of {} (gloo", r, world)), std::string::npos)
          << got.logs[r];
    }
    expect_same_weights(base + "/w0/final", dir + "/final", 1e-5);
    EXPECT_EQ(lines(dir + "/metrics.jsonl"), steps) << "rank 0 alone writes the metrics";
    expect_same_expert_loads(base + "/w0/metrics.jsonl", dir + "/metrics.jsonl");
    expect_same_metrics(base + "/w0", dir, metrics);
  }
}

TEST_F(DistributedIntegrationTest, SftOnOneTwoThreeRanksEndsAtTheSameWeights) {
  expect_world_size_invariant(dist_dir("sft"), "sft", "sft", "", 4);
}

TEST_F(DistributedIntegrationTest, PretrainOnOneTwoThreeRanksEndsAtTheSameWeights) {
  expect_world_size_invariant(dist_dir("pretrain"), "pretrain", "pretrain", "", 4);
}

// A small tokenizer for GRPO, which trains none.
std::string grpo_tokenizer(const std::string& dir) {
  std::ofstream corpus(dir + "/corpus.txt");
  for (int i = 0; i < 60; ++i)
    corpus << fmt::format("What is {} + {}? <think> {} </think> <answer> {} </answer>\n", i, 3 * i,
                          4 * i, 4 * i);
  corpus.close();
  auto [rc, out] = run_command(fmt::format("{} tokenizer train --input {}/corpus.txt --out "
                                           "{}/tok.model --vocab-size 320 --threads 1",
                                           r1kit_binary(), dir, dir),
                               true);
  EXPECT_EQ(rc, 0) << out;
  return dir + "/tok.model";
}

TEST_F(DistributedIntegrationTest, GrpoOnOneTwoThreeRanksEndsAtTheSameWeights) {
  const std::string tok = grpo_tokenizer(dist_dir("grpo_tok"));
  // Rank 0 logs the whole job's rewards, lengths and loss statistics.
  expect_world_size_invariant(
      dist_dir("grpo"), "grpo", "grpo", "tokenizer.path=" + tok, 3,
      {"reward", "reward_std", "accuracy", "frac_reward_zero_std", "completions/mean_length",
       "completions/min_length", "completions/max_length", "completions/clipped_ratio",
       "num_tokens", "loss", "pg_loss", "grad_norm", "clip_ratio/region_mean"});
}

TEST_F(DistributedIntegrationTest, DistillOnTwoRanksEndsAtTheSameWeights) {
  const std::string base = dist_dir("distill");
  run_alone(
      fmt::format("sft {} checkpoint.dir={}/teacher train.steps=2", recipe("sft-nano.yaml"), base));
  const std::string args =
      fmt::format("distill {} teacher.from={}/teacher/final", recipe("distill-nano.yaml"), base);
  run_alone(fmt::format("{} checkpoint.dir={}/w0", args, base));
  const std::string dir = base + "/w2";
  fs::create_directories(dir);
  Ranks got = launch(2, fmt::format("{} checkpoint.dir={}", args, dir), dir);
  for (int r = 0; r < 2; ++r) ASSERT_EQ(got.rc[r], 0) << "rank " << r << ":\n" << got.logs[r];
  // Rank 0 sampled the traces; rank 1 waited and reused them.
  EXPECT_NE(got.logs[1].find("(reused)"), std::string::npos) << got.logs[1];
  EXPECT_EQ(read_text(base + "/w0/traces.jsonl"), read_text(dir + "/traces.jsonl"));
  expect_same_weights(base + "/w0/final", dir + "/final", 1e-5);
}

TEST_F(DistributedIntegrationTest, RunPipelineOnTwoRanks) {
  // Every stage trains on both ranks; rank 0 alone evaluates and writes the report.
  const std::string base = dist_dir("run");
  run_alone(fmt::format("run {} run.dir={}/w0", recipe("run-nano.yaml"), base));
  const std::string dir = base + "/w2";
  fs::create_directories(dir);
  Ranks got = launch(2, fmt::format("run {} run.dir={}", recipe("run-nano.yaml"), dir), dir);
  for (int r = 0; r < 2; ++r) ASSERT_EQ(got.rc[r], 0) << "rank " << r << ":\n" << got.logs[r];
  EXPECT_NE(got.logs[0].find("ran [ sft grpo eval report ]"), std::string::npos) << got.logs[0];
  for (const char* f : {"/grpo/final/model.safetensors", "/grpo/eval_sft.json",
                        "/grpo/eval_grpo.json", "/report.html", "/timing.json"})
    EXPECT_TRUE(fs::exists(dir + f)) << f;
  expect_same_weights(base + "/w0/sft/final", dir + "/sft/final", 1e-5);
  expect_same_weights(base + "/w0/grpo/final", dir + "/grpo/final", 1e-5);
}

// `r1kit rollout-worker --model MODEL` in the background, its output in LOG; returns its
// pid and address ("" when it did not come up within a minute).
std::pair<std::string, std::string> start_worker(const std::string& model, const std::string& log) {
  auto [rc, pid] = run_command(
      fmt::format("{} rollout-worker --model {} --port 0 --threads 1 > {} 2>&1 & echo $!",
                  r1kit_binary(), model, log),
      false);
  pid.erase(pid.find_last_not_of("\n") + 1);
  // "rollout worker: MODEL on 127.0.0.1:PORT (vocab ..."
  for (int i = 0; i < 600; ++i) {
    const std::string text = read_text(log);
    const auto on = text.find(" on 127.0.0.1:");
    if (on != std::string::npos) return {pid, text.substr(on + 4, text.find(' ', on + 4) - on - 4)};
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return {pid, ""};
}

int64_t count_of(const std::string& text, const std::string& what) {
  int64_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST_F(DistributedIntegrationTest, GrpoRanksShareRolloutWorkersAndRankZeroPushesTheWeights) {
  const std::string base = dist_dir("workers");
  const std::string grpo =
      fmt::format("grpo {} tokenizer.path={}", recipe("grpo-nano.yaml"), grpo_tokenizer(base));
  run_alone(fmt::format("{} checkpoint.dir={}/w0", grpo, base));  // the in-process engine
  // Two workers serving a model of the same shapes; the trainer pushes its own weights.
  std::vector<std::pair<std::string, std::string>> workers;
  for (int i = 0; i < 2; ++i)
    workers.push_back(start_worker(base + "/w0/final", fmt::format("{}/worker{}.log", base, i)));
  const std::string dir = base + "/w2";
  fs::create_directories(dir);
  Ranks got;
  if (!workers[0].second.empty() && !workers[1].second.empty())
    got = launch(2,
                 fmt::format("{} checkpoint.dir={} \"rollout.workers=[{},{}]\"", grpo, dir,
                             workers[0].second, workers[1].second),
                 dir);
  for (const auto& w : workers) run_command("kill " + w.first, false);
  ASSERT_FALSE(workers[0].second.empty() || workers[1].second.empty())
      << read_text(base + "/worker0.log") << read_text(base + "/worker1.log");
  for (int r = 0; r < 2; ++r) ASSERT_EQ(got.rc[r], 0) << "rank " << r << ":\n" << got.logs[r];
  // Each worker took version 0 at the start and one version per step (3), once: from
  // rank 0 alone, not once per rank.
  for (int i = 0; i < 2; ++i) {
    const std::string log = read_text(fmt::format("{}/worker{}.log", base, i));
    EXPECT_EQ(count_of(log, "weights updated to version"), 4) << log;
    EXPECT_EQ(count_of(log, "weights updated to version 3 "), 1) << log;
  }
  // The workers sample what the in-process engine samples: the same training.
  expect_same_weights(base + "/w0/final", dir + "/final", 1e-5);
}

// ---------------------------------------------------------------------------------
// dist.shard_optimizer (ZeRO stage 1, train/sharded_adamw.h).

// Each rank's bytes of optimizer state when checkpoint `dir` was saved (trainer_state.json).
std::vector<int64_t> state_bytes(const std::string& dir) {
  auto j = nlohmann::json::parse(read_text(dir + "/trainer_state.json"));
  return j.at("optimizer_state_bytes").get<std::vector<int64_t>>();
}

// Two ranks of `args` in DIR, both exiting 0; returns rank 0's log.
std::string launch_two(const std::string& args, const std::string& dir) {
  fs::create_directories(dir);
  Ranks got = launch(2, fmt::format("{} checkpoint.dir={}", args, dir), dir);
  for (int r = 0; r < 2; ++r) EXPECT_EQ(got.rc[r], 0) << "rank " << r << ":\n" << got.logs[r];
  return got.logs[0];
}

// Two ranks of `args` with dist.shard_optimizer=true (and `extra`) in DIR.
void launch_sharded(const std::string& args, const std::string& dir,
                    const std::string& extra = "") {
  const std::string log = launch_two(args + " dist.shard_optimizer=true " + extra, dir);
  EXPECT_NE(log.find("optimizer state sharded"), std::string::npos) << log;
}

// `args` on one process in BASE/NAME1 and on two ranks in BASE/NAME2 (`two_extra` added):
// the same final weights, and the same `metrics` logged.
void expect_two_ranks_like_one(const std::string& base, const std::string& name,
                               const std::string& args, const std::string& two_extra = "",
                               const std::vector<std::string>& metrics = {}) {
  run_alone(fmt::format("{} checkpoint.dir={}/{}1", args, base, name));
  if (two_extra.starts_with("dist.shard_optimizer=true"))
    launch_sharded(args + " " + two_extra, fmt::format("{}/{}2", base, name));
  else
    launch_two(args + " " + two_extra, fmt::format("{}/{}2", base, name));
  expect_same_weights(fmt::format("{}/{}1/final", base, name),
                      fmt::format("{}/{}2/final", base, name), 1e-5);
  expect_same_metrics(fmt::format("{}/{}1", base, name), fmt::format("{}/{}2", base, name),
                      metrics);
}

TEST_F(DistributedIntegrationTest, ShardedOptimizerMatchesOneProcessHalvesItsStateAndResumes) {
  const std::string base = dist_dir("zero");
  // grad_clip 0.05 binds at every step: the clip's norm must be the global one.
  const std::string args =
      fmt::format("pretrain {} train.optim.grad_clip=0.05", recipe("pretrain-nano.yaml"));
  run_alone(fmt::format("{} checkpoint.dir={}/w0", args, base));
  // Two sharded ranks stop after the checkpoint of step 2 (gradients reduce-scattered),
  // then resume to the end (all-reduced).
  const std::string dir = base + "/w2";
  launch_sharded(args + " train.stop_after=2", dir, "dist.reduce_scatter=true");
  fs::copy(dir, base + "/w1", fs::copy_options::recursive);
  launch_sharded(args, dir);
  EXPECT_TRUE(fs::exists(dir + "/checkpoints/step-000004"));
  expect_same_weights(base + "/w0/final", dir + "/final", 1e-5);

  // The checkpoint holds the whole state, as one process's: each rank held half.
  const std::string step2 = "/checkpoints/step-000002";
  expect_same_optimizer_state(base + "/w0" + step2 + "/optimizer.safetensors",
                              dir + step2 + "/optimizer.safetensors", 1e-5);
  const auto one = state_bytes(base + "/w0" + step2), two = state_bytes(dir + step2);
  ASSERT_EQ(one.size(), 1u);
  ASSERT_EQ(two.size(), 2u);
  EXPECT_GT(one[0], 0);
  EXPECT_EQ(two[0] + two[1], one[0]);
  // Halves up to the rounding of the split (ceil(N / 2) numbers, 2 moments of 4 bytes).
  EXPECT_LE(std::max(two[0], two[1]), one[0] / 2 + 8) << two[0] << " " << two[1];

  // One process resumes the sharded checkpoint (unsharded) to the same weights.
  run_alone(fmt::format("{} checkpoint.dir={}/w1", args, base));
  expect_same_weights(base + "/w0/final", base + "/w1/final", 1e-5);
}

TEST_F(DistributedIntegrationTest, ShardedOptimizerSftAndGrpoMatchOneProcess) {
  const std::string base = dist_dir("zero_sft_grpo");
  expect_two_ranks_like_one(
      base, "sft", fmt::format("sft {} train.optim.grad_clip=0.05", recipe("sft-nano.yaml")),
      "dist.shard_optimizer=true dist.reduce_scatter=true");
  expect_two_ranks_like_one(
      base, "grpo",
      fmt::format("grpo {} tokenizer.path={}", recipe("grpo-nano.yaml"), grpo_tokenizer(base)),
      "dist.shard_optimizer=true");
}

// grpo.mini_batches > 1 (the global shuffle) and scale_rewards: batch (the job's
// statistics) on two ranks train as one process.
TEST_F(DistributedIntegrationTest, GrpoMiniBatchesAndBatchRewardScaleOnTwoRanks) {
  const std::string base = dist_dir("grpo_mb");
  const std::string grpo =
      fmt::format("grpo {} tokenizer.path={}", recipe("grpo-nano.yaml"), grpo_tokenizer(base));
  // 24 rows in 3 mini-batches of 8, twice (mu 2): each rank trains its rows of each.
  expect_two_ranks_like_one(base, "mb", grpo + " grpo.mini_batches=3 grpo.mu=2");
  expect_two_ranks_like_one(base, "scale", grpo + " grpo.loss.scale_rewards=batch");
  // Dynamic sampling keeps groups over several rounds, so a rank's groups are not one
  // contiguous run of the global batch (and a rank may keep none): both still match.
  expect_two_ranks_like_one(
      base, "dyn",
      grpo + " grpo.loss.dynamic_sampling=true grpo.mini_batches=2 grpo.loss.scale_rewards=batch",
      "",
      {"reward", "accuracy", "num_tokens", "loss", "dynamic_sampling/groups_kept",
       "dynamic_sampling/rounds", "frac_reward_zero_std"});
}

// rollout.overlap with dynamic sampling on two ranks: the next step's rounds, gathered on
// the rollout thread's own group while the update reduces on the trainer's, keep the
// same groups in the same rounds as one process with overlap, which trains the same
// weights.
TEST_F(DistributedIntegrationTest, GrpoOverlapWithDynamicSamplingOnTwoRanks) {
  const std::string base = dist_dir("grpo_overlap_dyn");
  const std::string grpo = fmt::format(
      "grpo {} tokenizer.path={} grpo.steps=4 rollout.overlap=true "
      "grpo.loss.dynamic_sampling=true grpo.mini_batches=2 grpo.loss.scale_rewards=batch",
      recipe("grpo-nano.yaml"), grpo_tokenizer(base));
  expect_two_ranks_like_one(
      base, "ovdyn", grpo, "",
      {"reward", "reward_std", "accuracy", "num_tokens", "loss", "dynamic_sampling/groups_kept",
       "dynamic_sampling/rounds", "frac_reward_zero_std", "policy_version"});
  std::ifstream in(base + "/ovdyn2/metrics.jsonl");
  int64_t kept = 0;
  for (std::string line; std::getline(in, line);)
    kept += nlohmann::json::parse(line).value("dynamic_sampling/groups_kept", 0.0) > 0;
  EXPECT_GT(kept, 0) << "some step trained, so the rollout overlapped an update";
}

// The same with no informative group anywhere (one-token completions: every reward 0),
// for 25 rounds a step: both ranks run every round on the rollout thread, step after
// step, and finish (a hang would fail the collectives after dist.timeout_s, 30 s).
TEST_F(DistributedIntegrationTest, GrpoOverlapWithDynamicSamplingNeverHangs) {
  const std::string base = dist_dir("grpo_overlap_none");
  const std::string grpo = fmt::format(
      "grpo {} tokenizer.path={} grpo.steps=4 rollout.overlap=true "
      "rollout.max_new_tokens=1 grpo.loss.dynamic_sampling=true "
      "grpo.loss.dynamic_sampling_max_rounds=25",
      recipe("grpo-nano.yaml"), grpo_tokenizer(base));
  expect_two_ranks_like_one(base, "none", grpo, "",
                            {"dynamic_sampling/groups_kept", "dynamic_sampling/rounds"});
  std::ifstream in(base + "/none2/metrics.jsonl");
  int64_t steps = 0;
  for (std::string line; std::getline(in, line); ++steps) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j.value("dynamic_sampling/rounds", 0.0), 25) << line;
    EXPECT_EQ(j.value("dynamic_sampling/groups_kept", -1.0), 0) << line;
  }
  EXPECT_EQ(steps, 4);
}

// rollout.exact on two ranks: every rank's engine/trainer log-prob gap is exactly 0, and
// rank 0 logs the job's (the ranks' max, grpo/data_parallel.cpp) as one process does.
TEST_F(DistributedIntegrationTest, GrpoExactModeOnTwoRanks) {
  const std::string base = dist_dir("grpo_exact");
  const std::string grpo = fmt::format("grpo {} tokenizer.path={} rollout.exact=true",
                                       recipe("grpo-nano.yaml"), grpo_tokenizer(base));
  expect_two_ranks_like_one(base, "exact", grpo, "",
                            {"rollout/logprob_max_abs_diff", "reward", "loss", "num_tokens"});
  std::ifstream in(base + "/exact2/metrics.jsonl");
  int64_t n = 0;
  for (std::string line; std::getline(in, line); ++n)
    EXPECT_EQ(nlohmann::json::parse(line).value("rollout/logprob_max_abs_diff", -1.0), 0.0) << line;
  EXPECT_GT(n, 0);
}

bool have_torchrun() {
  return run_command("command -v torchrun", false).first == 0;
}

// The one-process run of `sft sft-nano.yaml EXTRA` in BASE/one, then the shell command
// `job(base, args)` that runs the same arguments (with checkpoint.dir=BASE/two) through
// torchrun: it exits 0, rank 0 logs the job it formed, and the weights are one process's.
// Returns the command's output.
std::string expect_torchrun_job(
    const std::string& base, const std::string& extra,
    const std::function<std::string(const std::string&, const std::string&)>& job) {
  const std::string args = recipe("sft-nano.yaml") + " " + extra;
  run_alone(fmt::format("sft {} checkpoint.dir={}/one", args, base));
  auto [rc, out] =
      run_command(job(base, fmt::format("sft {} checkpoint.dir={}/two", args, base)), true);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("rank 0 of 2 (gloo"), std::string::npos) << out;
  expect_same_weights(base + "/one/final", base + "/two/final", 1e-5);
  return out;
}

// Debian's torchrun (PyTorch 1.13) under Python 3.11 needs --redirects and --tee given. Its
// logs go to DIR/torchelastic (by default, to a new directory in /tmp it never removes).
std::string torchrun(const std::string& dir) {
  return fmt::format("torchrun --redirects 2 --tee 2 --log_dir {}/torchelastic", dir);
}

TEST_F(DistributedIntegrationTest, TorchrunLaunchesTheJob) {
  if (!have_torchrun()) GTEST_SKIP() << "no torchrun";
  expect_torchrun_job(
      dist_dir("torchrun"), "train.steps=2", [](const std::string& base, const std::string& a) {
        return fmt::format("{} --nproc_per_node 2 --master_port {} --no_python {} {}",
                           torchrun(base), free_port(), r1kit_binary(), a);
      });
}

TEST_F(DistributedIntegrationTest, TwoTorchrunNodesOnLoopbackFormOneJob) {
  if (!have_torchrun()) GTEST_SKIP() << "no torchrun";
  const int port = free_port();
  expect_torchrun_job(
      dist_dir("nodes"), "train.steps=2", [&](const std::string& base, const std::string& a) {
        auto node = [&](int rank) {
          return fmt::format(
              "{} --nnodes 2 --node_rank {} --nproc_per_node 1 --master_addr 127.0.0.1 "
              "--master_port {} --no_python {} {}",
              torchrun(base), rank, port, r1kit_binary(), a);
        };
        // Node 1's launcher in the background; the job's status is node 0's, else node 1's.
        return fmt::format("{{ {} > {}/node1.log 2>&1 & {}; r=$?; wait $! && exit $r; }}", node(1),
                           base, node(0));
      });
}

TEST_F(DistributedIntegrationTest, TorchrunRestartResumesFromTheLastCheckpoint) {
  if (!have_torchrun()) GTEST_SKIP() << "no torchrun";
  // The first attempt stops after the checkpoint of step 2 and fails; torchrun starts
  // every rank again, and the second attempt resumes there.
  const std::string out = expect_torchrun_job(
      dist_dir("restart"), "train.steps=6 checkpoint.every=2",
      [](const std::string& base, const std::string& a) {
        const std::string wrapper = base + "/fail_once.sh";
        std::ofstream(wrapper) << "#!/bin/sh\n"
                               << "if [ \"$TORCHELASTIC_RESTART_COUNT\" = 0 ]; then \""
                               << r1kit_binary() << "\" \"$@\" train.stop_after=2; exit 1; fi\n"
                               << "exec \"" << r1kit_binary() << "\" \"$@\"\n";
        fs::permissions(wrapper, fs::perms::owner_all);
        return fmt::format(
            "{} --nproc_per_node 2 --max_restarts 1 --master_port {} --no_python {} {}",
            torchrun(base), free_port(), wrapper, a);
      });
  EXPECT_NE(out.find("restart 1"), std::string::npos) << out;
  EXPECT_NE(out.find("step-000002 (step 2)"), std::string::npos) << "resumed at step 2\n" << out;
}

// The watchdog's two ways of naming the lost rank (train/distributed.cpp).
bool names_rank_1(const std::string& log) {
  return log.find("lost rank 1") != std::string::npos ||
         log.find("lost rank(s): 1") != std::string::npos;
}

// A long run of two ranks in DIR in which rank 1 gets `signal` after 4 seconds.
Ranks run_with_lost_rank(const std::string& dir, const std::string& signal, int timeout_s) {
  return launch(
      2,
      fmt::format("sft {} checkpoint.dir={} train.steps=100000 checkpoint.every=0 "
                  "dist.timeout_s={}",
                  recipe("sft-nano.yaml"), dir, timeout_s),
      dir, [&](int r) { return r == 1 ? fmt::format("timeout -s {} 4", signal) : std::string(); });
}

TEST_F(DistributedIntegrationTest, ADeadRankEndsTheOthersNamingIt) {
  Ranks got = run_with_lost_rank(dist_dir("killed"), "KILL", 20);
  EXPECT_NE(got.rc[1], 0);
  EXPECT_NE(got.rc[0], 0) << got.logs[0];
  EXPECT_TRUE(names_rank_1(got.logs[0])) << got.logs[0];
  EXPECT_LT(got.seconds, 4 + 20) << "within dist.timeout_s of the death";
}

TEST_F(DistributedIntegrationTest, ASilentRankEndsTheOthersAfterTheTimeout) {
  // SIGSTOP: rank 1 lives and its sockets stay open, but it neither computes nor beats;
  // rank 0 gives up after dist.timeout_s. The test kills rank 1 afterwards.
  const std::string dir = dist_dir("stopped");
  const std::string env = fmt::format(
      "WORLD_SIZE=2 LOCAL_WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT={}", free_port());
  const std::string args = fmt::format(
      "{} sft {} checkpoint.dir={} train.steps=100000 checkpoint.every=0 dist.timeout_s=5",
      r1kit_binary(), recipe("sft-nano.yaml"), dir);
  auto [rc, out] =
      run_command(fmt::format("(RANK=1 LOCAL_RANK=1 {0} {1} > {2}/rank1.log 2>&1 & p=$!; sleep 4; "
                              "kill -STOP $p; sleep 15; kill -KILL $p) & "
                              "t0=$(date +%s); RANK=0 LOCAL_RANK=0 {0} {1} 2>&1; echo rank0_rc=$? "
                              "after=$(( $(date +%s) - t0 ))s; wait",
                              env, args, dir),
                  true);
  EXPECT_NE(out.find("rank0_rc=1"), std::string::npos) << out;
  EXPECT_TRUE(names_rank_1(out)) << out;
  const auto at = out.find("after=");
  ASSERT_NE(at, std::string::npos);
  EXPECT_LE(std::stoi(out.substr(at + 6)), 4 + 5 + 5) << out;
}

// A node that vanishes (its machine and launcher gone, its rank's sockets left open, as
// when a host loses power): two torchrun nodes on loopback, then node 1's rank is frozen
// and its launcher killed. Node 0's rank ends within dist.timeout_s, naming rank 1.
// (Node 0's torchrun then waits in its exit barrier; the test does not wait for it:
// docs/distributed.md, "Faults".)
TEST_F(DistributedIntegrationTest, ARankWhoseNodeVanishedEndsTheOthers) {
  if (!have_torchrun()) GTEST_SKIP() << "no torchrun";
  const std::string dir = dist_dir("vanished");
  const std::string a = fmt::format(
      "sft {} checkpoint.dir={}/two train.steps=100000 checkpoint.every=0 dist.timeout_s=5",
      recipe("sft-nano.yaml"), dir);
  auto node = [&](int rank, int port) {
    return fmt::format(
        "{} --nnodes 2 --node_rank {} --nproc_per_node 1 --master_addr 127.0.0.1 "
        "--master_port {} --no_python {} {}",
        torchrun(dir), rank, port, r1kit_binary(), a);
  };
  const int port = free_port();
  // Node 1 in a session of its own (setsid), so that its processes are found by session.
  auto [rc, out] = run_command(
      fmt::format("cd {0} && {{ setsid {1} > node1.log 2>&1 & echo $! > node1.pid; }}; "
                  "sleep 0.5; {2} > node0.log 2>&1 & n0=$!; "
                  "for i in $(seq 240); do grep -q 'step ' node0.log && break; sleep 0.5; done; "
                  "p=$(cat node1.pid); for c in $(pgrep -s $p); do [ $c != $p ] && kill -STOP $c; "
                  "done; kill -KILL $p; t0=$(date +%s); "
                  "for i in $(seq 240); do grep -q 'exitcode: 1' node0.log && break; sleep 0.5; "
                  "done; echo after=$(( $(date +%s) - t0 ))s; "
                  "kill -KILL $n0; pkill -KILL -s $p; cat node0.log",
                  dir, node(1, port), node(0, port)),
      true);
  EXPECT_TRUE(names_rank_1(out)) << out;
  EXPECT_NE(out.find("exitcode: 1"), std::string::npos) << "node 0's rank exits 1\n" << out;
  const auto at = out.find("after=");
  ASSERT_NE(at, std::string::npos) << out;
  EXPECT_LE(std::stoi(out.substr(at + 6)), 5 + 5) << "within dist.timeout_s\n" << out;
}

}  // namespace
}  // namespace r1kit
