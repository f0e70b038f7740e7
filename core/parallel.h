// A small pool of persistent threads for splitting one short, hot loop over cores.
//
// LibTorch's intra-op threads (OpenMP) serve every op: with two of them, each of the
// hundreds of tiny ops in a decode step starts a team, which made decode much slower than
// one thread on 2-vCPU machines (bench/RESULTS.md). This pool is used only where a caller
// asks for it, the heavy parts of a decode step (policy/decode_threads.h), so every other
// op stays on one thread. Between runs an idle worker spins for kSpin before it sleeps:
// a decode step's runs come a few hundred microseconds apart, and waking a sleeping
// worker costs a system call that can take longer than the part it would run.
//
// Thread-safety: run() may be called from any thread. One run uses the workers at a
// time; a run that finds them busy, or is called inside a LibTorch parallel region, does
// all of its parts on the calling thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace r1kit {

class ParallelPool {
 public:
  // The process's pool; its workers start on first use and stop at exit.
  static ParallelPool& global();

  ParallelPool() = default;
  ~ParallelPool();
  ParallelPool(const ParallelPool&) = delete;
  ParallelPool& operator=(const ParallelPool&) = delete;

  // Calls fn(p) for p in [0, parts), part 0 and any left over on the calling thread and
  // the others on up to parts - 1 workers (started as needed, at most 63); returns when
  // every part is done and every worker has left fn. fn must not throw.
  void run(int parts, const std::function<void(int)>& fn);

  // Workers started so far.
  int workers() const;

 private:
  // How long an idle worker spins for the next run before it sleeps.
  static constexpr std::chrono::microseconds kSpin{1000};

  void worker_loop();
  void take_parts();

  std::mutex run_mu_;  // held for a whole run
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::thread> threads_;
  const std::function<void(int)>* fn_ = nullptr;
  int parts_ = 0;
  std::atomic<uint64_t> generation_{0};
  bool stop_ = false;
  std::atomic<int> next_{0};
  std::atomic<int> done_{0};  // parts finished in this run
  std::atomic<int> acks_{0};  // workers through this run
};

// Cores lent by threads that are waiting on other work, for a loop running beside them
// to use: the GRPO trainer lends its core while it waits for the overlapped rollout, and
// the rollout engine's decode takes it as one more decode thread, with every kernel chosen
// as on one thread so that its results do not depend on it (EngineOptions::use_lent_cores,
// docs/grpo-training.md, "One step"). One count for the process; a LendCores lends n cores
// while it lives.
//
// Thread-safety: any thread may lend or read.
class LendCores {
 public:
  explicit LendCores(int n);
  ~LendCores();
  LendCores(const LendCores&) = delete;
  LendCores& operator=(const LendCores&) = delete;

  // Cores lent now.
  static int lent();

 private:
  int n_;
};

}  // namespace r1kit
