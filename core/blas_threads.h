// OpenBLAS's threads, beside LibTorch's.
//
// Debian's LibTorch calls sgemm through libblas.so.3, which is OpenBLAS in one of two
// builds:
//   - pthreads (Debian's default): a pool of its own. at::set_num_threads(1) does not limit
//     it, and a large matmul is split over every core. That helps a lone f32 training loop
//     on one LibTorch thread, and hurts beside a second busy thread of ours (GRPO with
//     rollout.overlap) or a second LibTorch thread: the pools oversubscribe the cores.
//   - OpenMP (libopenblas0-openmp): LibTorch's own OpenMP threads. A GEMM splits over the
//     calling thread's intra-op count and runs on one thread inside a parallel region, so
//     the two never compete. r1kit's executables load this build (CMakeLists.txt links
//     them with an RPATH to it when it is installed; scripts/setup.sh installs it).
// In both builds openblas_set_num_threads(1) holds every GEMM of the process to one
// thread (in the OpenMP build it also sets the calling thread's OpenMP count). The
// functions are looked up at run time, so nothing links OpenBLAS itself and other BLAS
// libraries are left alone.
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

  // Whether the loaded OpenBLAS is its OpenMP build (runs on LibTorch's threads).
  static bool shares_openmp();

  // Whether a GEMM called on this thread now runs on this thread alone: the OpenMP build
  // follows the calling thread's OpenMP count (openblas_set_num_threads sets the caller's
  // count; what current() reports is whatever the last caller had), the pthreads build
  // its own process-wide count.
  static bool one_thread_here();

 private:
  int old_ = -1;
};

}  // namespace r1kit
