#include "core/blas_threads.h"

#include <dlfcn.h>
#ifdef _OPENMP
#include <omp.h>
#endif

namespace r1kit {
namespace {

using SetFn = void (*)(int);
using GetFn = int (*)();

SetFn set_fn() {
  static const SetFn f = reinterpret_cast<SetFn>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  return f;
}
GetFn get_fn() {
  static const GetFn f = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return f;
}

}  // namespace

bool BlasThreadsGuard::shares_openmp() {
  // openblas_get_parallel(): 0 single-threaded build, 1 pthreads, 2 OpenMP.
  static const bool openmp = [] {
    auto f = reinterpret_cast<GetFn>(dlsym(RTLD_DEFAULT, "openblas_get_parallel"));
    return f != nullptr && f() == 2;
  }();
  return openmp;
}

bool BlasThreadsGuard::one_thread_here() {
#ifdef _OPENMP
  if (shares_openmp()) return omp_in_parallel() || omp_get_max_threads() <= 1;
#endif
  return current() <= 1;
}

int BlasThreadsGuard::current() {
  return set_fn() && get_fn() ? get_fn()() : -1;
}

BlasThreadsGuard::BlasThreadsGuard(int n) {
  old_ = current();
  if (old_ > 0) set_fn()(n);
}

BlasThreadsGuard::~BlasThreadsGuard() {
  if (old_ > 0) set_fn()(old_);
}

}  // namespace r1kit
