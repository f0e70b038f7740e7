#include "core/blas_threads.h"

#include <dlfcn.h>

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

int BlasThreadsGuard::current() { return set_fn() && get_fn() ? get_fn()() : -1; }

BlasThreadsGuard::BlasThreadsGuard(int n) {
  old_ = current();
  if (old_ > 0) set_fn()(n);
}

BlasThreadsGuard::~BlasThreadsGuard() {
  if (old_ > 0) set_fn()(old_);
}

}  // namespace r1kit
