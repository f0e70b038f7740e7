// See parallel.h.
#include "core/parallel.h"

#include <ATen/Parallel.h>
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <chrono>

namespace r1kit {

ParallelPool& ParallelPool::global() {
  static ParallelPool pool;
  return pool;
}

ParallelPool::~ParallelPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

int ParallelPool::workers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(threads_.size());
}

void ParallelPool::take_parts() {
  for (int p = next_.fetch_add(1); p < parts_; p = next_.fetch_add(1)) {
    (*fn_)(p);
    done_.fetch_add(1, std::memory_order_release);
  }
}

namespace {
// Spins (the awaited work is short and running on another core), yielding now and then
// in case that core was taken away.
template <typename Pred>
void spin_until(Pred done) {
  for (unsigned i = 0; !done(); ++i) {
    if (i % 1024 == 1023)
      std::this_thread::yield();
    else
      _mm_pause();
  }
}
}  // namespace

void ParallelPool::worker_loop() {
  // A worker runs its parts alone: the LibTorch ops in a part, and OpenBLAS's OpenMP build
  // (core/blas_threads.h), start no OpenMP team of their own. OpenMP's count is per
  // thread; LibTorch sets this thread's up on its first query, so ask first, then hold it.
  (void)at::get_num_threads();
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
  uint64_t seen = 0;
  for (;;) {
    // Runs come in bursts (every layer of a decode step): spin a while for the next one,
    // since waking from the condition variable costs a system call and, on some hosts,
    // longer than a part takes, then sleep.
    const auto spin_end = std::chrono::steady_clock::now() + kSpin;
    for (unsigned i = 1; generation_.load(std::memory_order_acquire) == seen; ++i) {
      if (i % 256 == 0 && std::chrono::steady_clock::now() > spin_end) break;
      _mm_pause();
    }
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || generation_.load() != seen; });
      if (stop_) return;
      seen = generation_.load();
    }
    take_parts();
    acks_.fetch_add(1, std::memory_order_release);
  }
}

void ParallelPool::run(int parts, const std::function<void(int)>& fn) {
  // Inside a LibTorch (OpenMP) parallel region the cores are taken already.
  if (parts <= 1 || at::in_parallel_region()) {
    for (int p = 0; p < parts; ++p) fn(p);
    return;
  }
  std::unique_lock<std::mutex> busy(run_mu_, std::try_to_lock);
  if (!busy.owns_lock()) {
    for (int p = 0; p < parts; ++p) fn(p);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    const size_t want = static_cast<size_t>(std::min(parts - 1, 63));
    while (threads_.size() < want) threads_.emplace_back([this] { worker_loop(); });
    fn_ = &fn;
    parts_ = parts;
    next_.store(0);
    done_.store(0);
    acks_.store(0);
    generation_.fetch_add(1, std::memory_order_release);
  }
  cv_.notify_all();
  take_parts();
  // Every worker takes part in every run (most find nothing left) and says so, so that
  // none can still be inside this run's parts when the next one starts.
  const int n = static_cast<int>(threads_.size());
  spin_until([&] { return done_.load(std::memory_order_acquire) >= parts; });
  spin_until([&] { return acks_.load(std::memory_order_acquire) >= n; });
}

namespace {
std::atomic<int> g_lent_cores{0};
}  // namespace

LendCores::LendCores(int n) : n_(std::max(n, 0)) {
  g_lent_cores.fetch_add(n_, std::memory_order_relaxed);
}

LendCores::~LendCores() {
  g_lent_cores.fetch_sub(n_, std::memory_order_relaxed);
}

int LendCores::lent() {
  return g_lent_cores.load(std::memory_order_relaxed);
}

}  // namespace r1kit
