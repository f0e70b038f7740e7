// OpenBLAS's own thread pool, beside LibTorch's.
//
// Debian's LibTorch calls sgemm through libblas.so.3, which is OpenBLAS with a pool of
// its own: at::set_num_threads(1) does not limit it, and a large matmul is split over
// every core. That helps a lone training loop, and hurts when two threads of ours
// already take both cores (GRPO with rollout.overlap: each split sgemm waits for a busy
// core; bench/RESULTS.md). The functions are looked up at run time, so nothing links
// OpenBLAS itself and other BLAS libraries are left alone.
#pragma once

namespace r1kit {

class BlasThreadsGuard {
 public:
  // Sets OpenBLAS's thread count to `n` (when OpenBLAS is loaded) until destruction.
  explicit BlasThreadsGuard(int n);
  ~BlasThreadsGuard();
  BlasThreadsGuard(const BlasThreadsGuard&) = delete;
  BlasThreadsGuard& operator=(const BlasThreadsGuard&) = delete;

  // OpenBLAS's thread count now; -1 when OpenBLAS is not loaded.
  static int current();

 private:
  int old_ = -1;
};

}  // namespace r1kit
