// c10d's ProcessGroupGloo declares its class only under USE_C10D_GLOO, the macro
// LibTorch itself is built with; this file is kept out of the unity batches so the macro
// stays here (train/CMakeLists.txt).
#define USE_C10D_GLOO 1
#include "train/distributed.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <vector>

#include "core/logging.h"

// ProcessGroupNCCL exists only in a LibTorch built with CUDA, and the trainers keep their
// tensors on the CPU; a CUDA build defines R1KIT_CUDA_LIBTORCH (train/CMakeLists.txt).
// Not compiled in the CPU build, so untested.
#if defined(R1KIT_CUDA_LIBTORCH)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace r1kit::train {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------------
// The launcher's environment.

// One launcher's spellings of the four numbers.
struct LauncherNames {
  const char* launcher;
  const char* rank;
  const char* world_size;
  const char* local_rank;
  const char* local_world_size;
};

constexpr LauncherNames kLaunchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
};

// The leading integer of `name`'s value (SLURM writes "2(x3)"), `fallback` when unset.
StatusOr<int> env_int(const GetEnvFn& getenv, const char* name, int fallback, int lo, int hi) {
  const char* v = getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  if (end == v || x < lo || x > hi)
    return InvalidArgument("{}={}: expected an integer in [{}, {}]", name, v, lo, hi);
  return static_cast<int>(x);
}

// ---------------------------------------------------------------------------------
// The heartbeat watchdog: every rank adds to its own counter in the store twice a
// second and watches the others'. A rank whose counter stands still for dist.timeout_s,
// or a store that stops answering, ends this process with a message naming the rank.

class Watchdog {
 public:
  Watchdog(c10::intrusive_ptr<c10d::Store> store, const LaunchEnv& env, milliseconds timeout)
      : store_(std::move(store)),
        env_(env),
        timeout_(timeout),
        interval_(std::min<milliseconds>(milliseconds(500), timeout / 4)),
        counts_(env.world_size, -1),
        changed_(env.world_size, Clock::now()) {
    thread_ = std::thread([this] { loop(); });
  }
  ~Watchdog() { stop(); }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  // Ends the process: `what` failed; names the ranks that stopped beating.
  [[noreturn]] void fail(const std::string& what) {
    if (dying_) die(what);
    std::string lost;
    try {
      // A rank that died stops beating at once; give the living a few beats to show.
      const std::vector<int64_t> before = read_counts();
      std::this_thread::sleep_for(interval_ * 5);
      const std::vector<int64_t> after = read_counts();
      for (int r = 0; r < env_.world_size; ++r)
        if (r != env_.rank && after[r] == before[r]) lost += fmt::format(" {}", r);
      lost = lost.empty() ? "no rank stopped beating" : "lost rank(s):" + lost;
    } catch (const std::exception&) {
      lost = store_gone();
    }
    die(fmt::format("{}; {}", what, lost));
  }

 private:
  std::string key(int r) const { return fmt::format("heartbeat/{}", r); }

  std::vector<int64_t> read_counts() {
    std::vector<int64_t> c(env_.world_size);
    for (int r = 0; r < env_.world_size; ++r) c[r] = store_->add(key(r), 0);
    return c;
  }

  std::string store_gone() const {
    return fmt::format(
        "lost rank 0: the rendezvous store at {}:{} stopped answering (rank 0, which hosts it, "
        "or its node's launcher is gone)",
        env_.master_addr, env_.master_port);
  }

  [[noreturn]] void die(const std::string& why) {
    // One report: a second caller (the other thread) waits for the first to end it all.
    if (dying_.exchange(true))
      for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
    R1_LOG(error, "rank {} of {}: {}; exiting", env_.rank, env_.world_size, why);
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    // The store lives in rank 0: let the others read the heartbeats before it goes.
    if (env_.rank == 0 && !env_.use_agent_store) std::this_thread::sleep_for(interval_ * 4);
    std::_Exit(1);
  }

  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, interval_, [this] { return stop_; })) {
      std::vector<int64_t> now;
      try {
        store_->add(key(env_.rank), 1);
        now = read_counts();
      } catch (const std::exception&) {
        die(store_gone());
      }
      const auto t = Clock::now();
      for (int r = 0; r < env_.world_size; ++r) {
        if (now[r] != counts_[r]) {
          counts_[r] = now[r];
          changed_[r] = t;
        } else if (r != env_.rank && t - changed_[r] > timeout_) {
          die(fmt::format("lost rank {}: no heartbeat for {} s (dist.timeout_s)", r,
                          std::chrono::duration_cast<std::chrono::seconds>(timeout_).count()));
        }
      }
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  LaunchEnv env_;
  milliseconds timeout_, interval_;
  std::vector<int64_t> counts_;
  std::vector<Clock::time_point> changed_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<bool> dying_{false};
  std::thread thread_;
};

// ---------------------------------------------------------------------------------
// train::DataParallel over a c10d process group.

c10::intrusive_ptr<c10d::ProcessGroup> gloo_group(c10::intrusive_ptr<c10d::Store> store,
                                                  const LaunchEnv& env, milliseconds timeout);

class C10dGroup : public DataParallel {
 public:
  C10dGroup(LaunchEnv env, milliseconds timeout, c10::intrusive_ptr<c10d::Store> store,
            c10::intrusive_ptr<c10d::ProcessGroup> pg, std::string backend,
            std::shared_ptr<Watchdog> watchdog)
      : env_(std::move(env)),
        timeout_(timeout),
        store_(std::move(store)),
        pg_(std::move(pg)),
        backend_(std::move(backend)),
        watchdog_(std::move(watchdog)) {}

  int rank() const override { return env_.rank; }
  int world_size() const override { return env_.world_size; }
  std::string backend() const override { return backend_; }

  void all_reduce_sum(torch::Tensor& t) override {
    std::vector<at::Tensor> v{t};
    finish(pg_->allreduce(v), "all-reduce");
  }
  std::function<void()> all_reduce_sum_async(torch::Tensor t) override {
    std::vector<at::Tensor> v{t};
    auto work = pg_->allreduce(v);
    return [this, work] { finish(work, "all-reduce"); };
  }
  // PyTorch 1.13's ProcessGroupGloo has no reduce_scatter (it throws "does not support
  // reduce_scatter"), and the parts differ in size anyway: an all-to-all (Gloo's
  // alltoallv) sends every rank its part of this rank's `in`, and the W parts received
  // are summed in rank order. Each rank sends and receives (W - 1) / W of `in`, as a
  // ring reduce-scatter does: half a ring all-reduce's traffic (bench/grad_reduce_bench.cpp
  // times the two).
  std::function<void()> reduce_scatter_sum_async(torch::Tensor in, torch::Tensor mine,
                                                 std::vector<int64_t> counts) override {
    const int W = env_.world_size;
    TORCH_CHECK(static_cast<int>(counts.size()) == W && in.dim() == 1 && in.is_contiguous(),
                "reduce_scatter_sum_async: one count per rank and a contiguous 1-D input");
    auto parts = torch::empty({W * mine.numel()}, in.options());
    std::vector<int64_t> received(W, mine.numel());
    auto work = pg_->alltoall_base(parts, in, received, counts);
    return [this, work, parts, mine, W]() mutable {
      finish(work, "reduce-scatter");
      if (mine.numel() > 0) mine.copy_(parts.view({W, mine.numel()}).sum(0));
    };
  }
  void broadcast(torch::Tensor& t) override {
    std::vector<at::Tensor> v{t};
    c10d::BroadcastOptions o;
    o.rootRank = 0;
    finish(pg_->broadcast(v, o), "broadcast");
  }
  void all_gather(const torch::Tensor& mine, torch::Tensor& all) override {
    const int64_t n = mine.numel();
    TORCH_CHECK(all.numel() == n * env_.world_size && all.is_contiguous(),
                "all_gather: the output must hold world_size x the input, contiguously");
    std::vector<at::Tensor> in{mine.reshape({n})};
    std::vector<std::vector<at::Tensor>> out(1);
    auto flat = all.view({-1});
    for (int r = 0; r < env_.world_size; ++r) out[0].push_back(flat.narrow(0, r * n, n));
    finish(pg_->allgather(out, in), "all-gather");
  }
  // Through the store rather than Gloo: no time limit while every rank beats (the watchdog
  // ends a job whose rank died), as ranks wait here for rank 0's solo work (a tokenizer,
  // a checkpoint, an evaluation).
  void barrier() override {
    const std::string key = fmt::format("barrier/{}", barriers_++);
    try {
      store_->add(key, 1);
      while (store_->add(key, 0) < env_.world_size) std::this_thread::sleep_for(milliseconds(20));
    } catch (const std::exception& e) {
      watchdog_->fail(fmt::format("barrier failed: {}", e.what()));
    }
  }

  // A Gloo group of its own over the same store, under a prefix of its own (its
  // rendezvous keys, its barriers); the same watchdog reports its failures.
  std::unique_ptr<DataParallel> new_group() override {
    auto store = c10::make_intrusive<c10d::PrefixStore>(fmt::format("group_{}", ++groups_), store_);
    c10::intrusive_ptr<c10d::ProcessGroup> pg;
    try {
      pg = gloo_group(c10::make_intrusive<c10d::PrefixStore>("gloo", store), env_, timeout_);
    } catch (const std::exception& e) {
      watchdog_->fail(fmt::format("creating a process group failed: {}", e.what()));
    }
    return std::make_unique<C10dGroup>(env_, timeout_, store, pg, backend_, watchdog_);
  }

  // Every rank here, then no watchdog reports a rank that left; the store's host (rank
  // 0) goes last.
  void leave() {
    barrier();
    watchdog_->stop();
    try {
      store_->add("left", 1);
      if (env_.rank == 0 && !env_.use_agent_store) {
        const auto deadline = Clock::now() + timeout_;
        while (store_->add("left", 0) < env_.world_size && Clock::now() < deadline)
          std::this_thread::sleep_for(milliseconds(10));
      }
    } catch (const std::exception& e) {
      R1_LOG(warn, "rank {}: leaving the job: {}", env_.rank, e.what());
    }
  }

 private:
  void finish(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait(timeout_);
    } catch (const std::exception& e) {
      watchdog_->fail(fmt::format("{} failed: {}", what, e.what()));
    }
  }

  LaunchEnv env_;
  milliseconds timeout_;
  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> pg_;
  std::string backend_;
  std::shared_ptr<Watchdog> watchdog_;  // shared with the groups new_group made
  int64_t barriers_ = 0;
  int64_t groups_ = 0;  // made by new_group
};

std::unique_ptr<DataParallel>& joined() {
  static std::unique_ptr<DataParallel> group;
  return group;
}

c10::intrusive_ptr<c10d::Store> tcp_store(const LaunchEnv& env, milliseconds timeout, bool server) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<std::uint16_t>(env.master_port);
  o.isServer = server;
  o.waitWorkers = false;  // the process group's rendezvous waits for every rank
  o.timeout = timeout;
  return c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
}

c10::intrusive_ptr<c10d::ProcessGroup> gloo_group(c10::intrusive_ptr<c10d::Store> store,
                                                  const LaunchEnv& env, milliseconds timeout) {
  auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
  const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
  opts->devices.push_back(ifname && *ifname
                              ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                              : c10d::ProcessGroupGloo::createDefaultDevice());
  opts->threads = 2;
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, env.rank, env.world_size, opts);
}

}  // namespace

DataParallel& process_group() {
  static DataParallel one_process;
  auto& g = joined();
  return g ? *g : one_process;
}

Shard shard_of(int64_t n, int rank, int world) {
  const int64_t base = n / world, extra = n % world;
  Shard s;
  s.begin = rank * base + std::min<int64_t>(rank, extra);
  s.end = s.begin + base + (rank < extra ? 1 : 0);
  return s;
}

StatusOr<std::optional<LaunchEnv>> read_launch_env(const GetEnvFn& getenv) {
  const LauncherNames* names = nullptr;
  for (const auto& l : kLaunchers)
    if (getenv(l.rank) && getenv(l.world_size)) {
      names = &l;
      break;
    }
  if (!names) return std::optional<LaunchEnv>();
  LaunchEnv e;
  e.launcher = names->launcher;
  ASSIGN_OR_RETURN(e.world_size, env_int(getenv, names->world_size, 1, 1, 1 << 20));
  ASSIGN_OR_RETURN(e.rank, env_int(getenv, names->rank, 0, 0, e.world_size - 1));
  ASSIGN_OR_RETURN(e.local_rank, env_int(getenv, names->local_rank, 0, 0, e.world_size - 1));
  ASSIGN_OR_RETURN(e.local_world_size,
                   env_int(getenv, names->local_world_size, 1, 1, e.world_size));
  ASSIGN_OR_RETURN(e.master_port, env_int(getenv, "MASTER_PORT", 29500, 1, 65535));
  ASSIGN_OR_RETURN(e.restart_count, env_int(getenv, "TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 20));
  if (const char* a = getenv("MASTER_ADDR"); a && *a) e.master_addr = a;
  if (const char* s = getenv("TORCHELASTIC_USE_AGENT_STORE"))
    e.use_agent_store = std::string(s) == "True" || std::string(s) == "1";
  return std::optional<LaunchEnv>(e);
}

StatusOr<std::unique_ptr<DataParallel>> connect(const LaunchEnv& env, const DistSection& dist) {
  const milliseconds timeout(dist.timeout_s * 1000);
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  std::unique_ptr<Watchdog> watchdog;
  try {
    auto base = tcp_store(env, timeout, env.rank == 0 && !env.use_agent_store);
    // Each attempt of a restarted job has its own keys in a store that outlives it.
    store = c10::make_intrusive<c10d::PrefixStore>(
        fmt::format("r1kit/attempt_{}", env.restart_count), base);
    pg = gloo_group(c10::make_intrusive<c10d::PrefixStore>("gloo", store), env, timeout);
    // The watchdog talks to the store on a connection of its own.
    auto beat = c10::make_intrusive<c10d::PrefixStore>(
        fmt::format("r1kit/attempt_{}", env.restart_count), tcp_store(env, timeout, false));
    watchdog = std::make_unique<Watchdog>(beat, env, timeout);
  } catch (const std::exception& e) {
    return Unavailable(
        "rank {} of {} ({}): could not join the job at MASTER_ADDR={} MASTER_PORT={} within "
        "dist.timeout_s={}: {}",
        env.rank, env.world_size, env.launcher, env.master_addr, env.master_port, dist.timeout_s,
        e.what());
  }
  return std::unique_ptr<DataParallel>(
      new C10dGroup(env, timeout, store, pg, "gloo", std::move(watchdog)));
}

Status join_process_group(const DistSection& dist) {
  if (joined()) return OkStatus();
  ASSIGN_OR_RETURN(std::optional<LaunchEnv> env, read_launch_env(std::getenv));
  if (!env) return OkStatus();
  ASSIGN_OR_RETURN(joined(), connect(*env, dist));
  R1_LOG(info, "rank {} of {} ({}; local rank {} of {}, launched by {}{})", env->rank,
         env->world_size, joined()->backend(), env->local_rank, env->local_world_size,
         env->launcher,
         env->restart_count > 0 ? fmt::format(", restart {}", env->restart_count) : "");
  // Rank 0 speaks for the job; the others report only what goes wrong.
  if (env->rank != 0) spdlog::set_level(spdlog::level::warn);
  return OkStatus();
}

void leave_process_group() {
  if (auto* g = dynamic_cast<C10dGroup*>(joined().get())) g->leave();
}

}  // namespace r1kit::train
